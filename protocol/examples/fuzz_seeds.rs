//! Writes a few valid batches (snapshot, mutations, every event kind, a mutation big enough for
//! the player to defer its node lists, as sent and delta-coded) as seeds for the fuzz targets
//! (`decode_batch`, `decode_deferred`): `cargo run -p replay-protocol --example fuzz_seeds -- DIR`.

use replay_protocol::test_util::{at, click, document, el, page_meta, snapshot, text};
use replay_protocol::{
    AddedSubtree, AttrChange, Batch, Console, ConsoleLevel, CssChange, CssOp, EventData, Input, Mutation, Node,
    NodeKind, PageMeta, TextChange, codec::encode_batch_compact, encode_batch,
};

/// Every element of the seeds carries one class attribute.
const CLASS: &[(&str, &str)] = &[("class", "c")];

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus/decode_batch".into());
    std::fs::create_dir_all(&dir)?;
    let mut b = Batch::new("seed-session", "seed-page", 0, 1_800_000_000_000);
    b.events = vec![
        at(0, EventData::Meta(PageMeta { title: "t".into(), user_agent: "ua".into(), ..page_meta("https://x.test/") })),
        at(
            1,
            snapshot(vec![
                document(1),
                el(2, 1, "html", CLASS),
                el(3, 2, "body", CLASS),
                text(4, 3, "hi"),
                Node { id: 5, parent: 3, kind: NodeKind::ShadowRoot },
            ]),
        ),
        at(
            2,
            EventData::Mutation(Mutation {
                removes: vec![4],
                adds: vec![AddedSubtree {
                    parent: 3,
                    next: 0,
                    nodes: vec![el(6, 3, "p", CLASS), el(7, 6, "b", CLASS)],
                }],
                attrs: vec![AttrChange { id: 3, name: "id".into(), value: Some("x".into()) }],
                texts: vec![TextChange { id: 4, text: "t".into() }],
            }),
        ),
        at(3, EventData::Input(Input { id: 6, value: "**".into(), checked: Some(true) })),
        at(4, click(6, 1, 2)),
        at(5, EventData::Console(Console { level: ConsoleLevel::Warn, args: vec!["a".into()], stack: String::new() })),
        at(6, EventData::Css(CssChange { owner: 3, sheet: 0, op: CssOp::Text("p{color:red}".into()) })),
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
            nodes: vec![el(100 + r * 2, 3, "li", CLASS), text(101 + r * 2, 100 + r * 2, format!("row {r}"))],
        })
        .collect();
    big.events = vec![at(0, EventData::Mutation(Mutation { adds, ..Mutation::default() }))];
    std::fs::write(format!("{dir}/big-mutation"), encode_batch(&big).map_err(std::io::Error::other)?)?;
    std::fs::write(format!("{dir}/big-mutation-compact"), encode_batch_compact(big).map_err(std::io::Error::other)?)?;
    Ok(())
}
