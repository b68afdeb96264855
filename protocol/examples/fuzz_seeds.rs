//! Writes a few valid batches (snapshot, mutations, every event kind, a mutation big enough for
//! the player to defer its node lists, as sent and delta-coded) as seeds for the fuzz targets
//! (`decode_batch`, `decode_deferred`): `cargo run -p replay-protocol --example fuzz_seeds -- DIR`.

use replay_protocol::{
    AddedSubtree, Attr, AttrChange, Batch, Click, Console, ConsoleLevel, CssChange, CssOp, Event, EventData, Input,
    Mutation, Namespace, Node, NodeKind, PageMeta, Snapshot, TextChange, Viewport, codec::encode_batch_compact,
    encode_batch,
};

fn el(id: u32, parent: u32, tag: &str) -> Node {
    Node {
        id,
        parent,
        kind: NodeKind::Element {
            tag: tag.into(),
            ns: Namespace::Html,
            attrs: vec![Attr { name: "class".into(), value: "c".into() }],
        },
    }
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus/decode_batch".into());
    std::fs::create_dir_all(&dir)?;
    let mut b = Batch::new("seed-session", "seed-page", 0, 1_800_000_000_000);
    b.events = vec![
        Event {
            t: 0,
            data: EventData::Meta(PageMeta {
                url: "https://x.test/".into(),
                title: "t".into(),
                viewport: Viewport { width: 800, height: 600 },
                user_agent: "ua".into(),
                referrer: String::new(),
            }),
        },
        Event {
            t: 1,
            data: EventData::Snapshot(Snapshot {
                nodes: vec![
                    Node { id: 1, parent: 0, kind: NodeKind::Document },
                    el(2, 1, "html"),
                    el(3, 2, "body"),
                    Node { id: 4, parent: 3, kind: NodeKind::Text("hi".into()) },
                    Node { id: 5, parent: 3, kind: NodeKind::ShadowRoot },
                ],
                scroll_x: 0,
                scroll_y: 0,
            }),
        },
        Event {
            t: 2,
            data: EventData::Mutation(Mutation {
                removes: vec![4],
                adds: vec![AddedSubtree { parent: 3, next: 0, nodes: vec![el(6, 3, "p"), el(7, 6, "b")] }],
                attrs: vec![AttrChange { id: 3, name: "id".into(), value: Some("x".into()) }],
                texts: vec![TextChange { id: 4, text: "t".into() }],
            }),
        },
        Event { t: 3, data: EventData::Input(Input { id: 6, value: "**".into(), checked: Some(true) }) },
        Event { t: 4, data: EventData::Click(Click { id: 6, x: 1, y: 2, button: 0 }) },
        Event {
            t: 5,
            data: EventData::Console(Console {
                level: ConsoleLevel::Warn,
                args: vec!["a".into()],
                stack: String::new(),
            }),
        },
        Event { t: 6, data: EventData::Css(CssChange { owner: 3, sheet: 0, op: CssOp::Text("p{color:red}".into()) }) },
    ];
    b.end = b.start + 6;
    let bytes = encode_batch(&b).map_err(std::io::Error::other)?;
    std::fs::write(format!("{dir}/full"), &bytes)?;
    for (i, e) in b.events.iter().enumerate() {
        let mut one = Batch::new("s", "p", 1, 1);
        one.events = vec![e.clone()];
        std::fs::write(format!("{dir}/event-{i}"), encode_batch(&one).map_err(std::io::Error::other)?)?;
    }
    // A list rendered at once: enough added subtrees for the player's deferred decoding.
    let mut big = Batch::new("s", "p", 2, 1);
    let adds = (0..20u32)
        .map(|r| AddedSubtree {
            parent: 3,
            next: 0,
            nodes: vec![
                el(100 + r * 2, 3, "li"),
                Node { id: 101 + r * 2, parent: 100 + r * 2, kind: NodeKind::Text(format!("row {r}")) },
            ],
        })
        .collect();
    big.events = vec![Event { t: 0, data: EventData::Mutation(Mutation { adds, ..Mutation::default() }) }];
    std::fs::write(format!("{dir}/big-mutation"), encode_batch(&big).map_err(std::io::Error::other)?)?;
    std::fs::write(format!("{dir}/big-mutation-compact"), encode_batch_compact(big).map_err(std::io::Error::other)?)?;
    Ok(())
}
