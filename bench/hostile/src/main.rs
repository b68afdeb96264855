//! Hostile-replay benchmark: recordings built to hit quadratic paths of the replay model, timed
//! where they would freeze something.
//!
//! For each recording it prints (a) the server side, what `GET /api/v1/sessions/{id}/snapshot`
//! does on its blocking thread: decode the stored batches, order them (`Timeline`), apply them
//! to the protocol's `Dom` and write the HTML; and (b) the player side, the viewer's replay
//! code (`viewer_wasm::Player`) compiled for the host, not in wasm in a browser: time to first
//! frame (load the first batch, describe the document at the start, as `benchReplay` times
//! `open` → `ready`) and to seek to the end (load the other batches, seek to the last event).
//! The wasm player in a browser is slower than this native build, so compare these figures with
//! each other (before and after a change, one scale and the next), not with the browser's; a
//! quadratic path shows the same way in both.
//!
//! `cargo run --release -p replay-bench-hostile -- [--scale F] [--only NAME]`: `F` scales
//! every recording (default 1); NAME picks recordings whose name contains it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use replay_protocol::batch::{AddedSubtree, AttrChange, Mutation, Node};
use replay_protocol::codec::{Limits, concat_encoded, decode_batch};
use replay_protocol::test_util::{at, el, meta, page_nodes, snapshot, text};
use replay_protocol::{Batch, EventData, Timeline, encode_batch, html};
use viewer_wasm::Player;

/// Start of every recording (in the past: ingest clamps future times).
const BASE: u64 = 1_700_000_040_000;

/// One hostile recording: its name and its batches in upload order.
struct Recording {
    name: String,
    batches: Vec<Batch>,
}

fn page_batch(page: &str, seq: u32, start: u64) -> Batch {
    let mut b = Batch::new("hostile", page, seq, start);
    if seq == 0 {
        b.flags = Batch::FLAG_PAGE_START;
    }
    b
}

/// `changes` attribute changes on one `<div>`, cycling through `names` attribute names, in
/// batches of 10,000 (1,000 mutations of 10 changes); with `removals`, every other change
/// removes an attribute (the first of the list, so that the rest must move).
fn attribute_storm(changes: usize, names: usize, removals: bool) -> Recording {
    let mut first = page_batch("p0", 0, BASE);
    first.events =
        vec![at(0, meta("https://shop.example/")), at(0, snapshot(page_nodes(&[], [el(10, 4, "div", &[])])))];
    let mut batches = vec![first];
    let mut done = 0;
    let mut seq = 1;
    while done < changes {
        let mut b = page_batch("p0", seq, BASE + u64::from(seq) * 1_000);
        for e in 0..1_000u32 {
            let attrs: Vec<AttrChange> = (0..10)
                .map(|k| {
                    let i = done + e as usize * 10 + k;
                    let names = names.max(1);
                    // With removals: all names set once, then each oldest name (first in the
                    // list) removed and set again (last in the list), in turn.
                    let (name, value) = match i.checked_sub(names) {
                        Some(j) if removals => {
                            (format!("data-a{}", (j / 2) % names), (j % 2 == 1).then(|| format!("{i}")))
                        }
                        _ => (format!("data-a{}", i % names), Some(format!("{i}"))),
                    };
                    AttrChange { id: 10, name, value }
                })
                .collect();
            b.events.push(at(e, EventData::Mutation(Mutation { attrs, ..Mutation::default() })));
        }
        done += 10_000;
        seq += 1;
        batches.push(b);
    }
    let how = if removals { ", every other one a removal" } else { "" };
    Recording { name: format!("{changes} attribute changes on one node, {names} names{how}"), batches }
}

/// A first page of `big` nodes, then `pages` page views of one small snapshot each.
fn many_pages(pages: usize, big: usize) -> Recording {
    let mut batches = Vec::with_capacity(pages + 1);
    let mut first = page_batch("p0", 0, BASE);
    let content = (0..big as u32).map(|i| el(10 + i, 4, "p", &[]));
    first.events = vec![at(0, meta("https://shop.example/")), at(0, snapshot(page_nodes(&[], content)))];
    batches.push(first);
    for p in 1..=pages {
        let mut b = page_batch(&format!("p{p}"), 0, BASE + p as u64 * 10);
        b.events = vec![
            at(0, meta(&format!("https://shop.example/{p}"))),
            at(0, snapshot(page_nodes(&[], [el(10, 4, "h1", &[]), text(11, 10, format!("page {p}"))]))),
        ];
        batches.push(b);
    }
    Recording { name: format!("{pages} page views after one of {big} nodes"), batches }
}

/// A snapshot nested `depth` levels deep, then a mutation that adds another `depth`-deep chain
/// at the bottom and one that removes the whole thing.
fn deep_nesting(depth: usize) -> Recording {
    let chain = |from: u32, parent: u32| -> Vec<Node> {
        (0..depth as u32).map(|i| el(from + i, if i == 0 { parent } else { from + i - 1 }, "div", &[])).collect()
    };
    let mut first = page_batch("p0", 0, BASE);
    first.events = vec![at(0, meta("https://shop.example/")), at(0, snapshot(page_nodes(&[], chain(10, 4))))];
    let mut second = page_batch("p0", 1, BASE + 1_000);
    let start = 10 + depth as u32;
    let mut added = chain(start, 0);
    if let Some(root) = added.first_mut() {
        root.parent = 0;
    }
    second.events = vec![
        at(
            0,
            EventData::Mutation(Mutation {
                adds: vec![AddedSubtree { parent: start - 1, next: 0, nodes: added }],
                ..Mutation::default()
            }),
        ),
        at(10, EventData::Mutation(Mutation { removes: vec![10], ..Mutation::default() })),
    ];
    Recording { name: format!("{depth} levels of nesting, twice, then removed"), batches: vec![first, second] }
}

/// `count` tiny mutations: each adds a text node to the body and removes the previous one.
fn tiny_mutations(count: usize) -> Recording {
    let mut first = page_batch("p0", 0, BASE);
    first.events = vec![at(0, meta("https://shop.example/")), at(0, snapshot(page_nodes(&[], [])))];
    let mut batches = vec![first];
    let per_batch = 10_000;
    for (seq, from) in (0..count).step_by(per_batch).enumerate() {
        let seq = seq as u32 + 1;
        let mut b = page_batch("p0", seq, BASE + u64::from(seq) * 20_000);
        for i in from..(from + per_batch).min(count) {
            let id = 100 + i as u32;
            b.events.push(at(
                (i - from) as u32,
                EventData::Mutation(Mutation {
                    removes: if i > 0 { vec![id - 1] } else { vec![] },
                    adds: vec![AddedSubtree { parent: 4, next: 0, nodes: vec![text(id, 0, "x")] }],
                    ..Mutation::default()
                }),
            ));
        }
        batches.push(b);
    }
    Recording { name: format!("{count} tiny mutations"), batches }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn run(rec: &Recording) -> Result<()> {
    let encoded: Vec<Vec<u8>> = rec.batches.iter().map(encode_batch).collect::<Result<_, _>>()?;
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    println!("{} ({} batches, {:.1} MB encoded)", rec.name, encoded.len(), bytes as f64 / 1e6);

    // Server: what the snapshot handler does.
    let t = Instant::now();
    let limits = Limits::default();
    let batches: Vec<Batch> = encoded.iter().map(|b| decode_batch(b, &limits)).collect::<Result<_, _>>()?;
    let decode = t.elapsed();
    let t = Instant::now();
    let timeline = Timeline::from_batches(batches);
    let order = t.elapsed();
    let t = Instant::now();
    let dom = timeline.dom_at(None);
    let model = t.elapsed();
    let t = Instant::now();
    let out = html::document_html(&dom);
    let write = t.elapsed();
    println!(
        "  server snapshot: {} total (decode {}, order {}, model {}, html {}); {} nodes, {} refused, {:.1} KB html",
        ms(decode + order + model + write),
        ms(decode),
        ms(order),
        ms(model),
        ms(write),
        dom.len(),
        dom.refused,
        out.len() as f64 / 1e3
    );
    drop((timeline, dom, out));

    // Player: first frame from the first batch, then the rest and a seek to the end.
    let t = Instant::now();
    let first = encoded.first().context("no batch")?;
    let mut player = Player::empty();
    player.append(concat_encoded(std::iter::once(first.as_slice()))).map_err(|_| anyhow::anyhow!("append"))?;
    let frame = player.seek_frame(player.start());
    let first_frame = t.elapsed();
    let t = Instant::now();
    // Ranges of 200 batches, as the player downloads them.
    for range in encoded[1..].chunks(200) {
        player.append(concat_encoded(range.iter().map(Vec::as_slice))).map_err(|_| anyhow::anyhow!("append"))?;
    }
    let end = player.end();
    let answer = player.seek_frame(end);
    let to_end = t.elapsed();
    println!(
        "  player: first frame {} ({} B), seek to the end {} ({} events, {} nodes at the end, {} B)",
        ms(first_frame),
        frame.len(),
        ms(to_end),
        player.event_count(),
        player.dom().len(),
        answer.len()
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let scale: f64 = arg("--scale").map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let only = arg("--only").unwrap_or_default();
    let n = |x: usize| ((x as f64 * scale) as usize).max(1);
    let recordings: Vec<Box<dyn Fn() -> Recording>> = vec![
        Box::new(move || attribute_storm(n(1_000_000), 4, false)),
        Box::new(move || attribute_storm(n(1_000_000), n(100_000), false)),
        Box::new(move || attribute_storm(n(1_000_000), 1_000, true)),
        Box::new(move || many_pages(n(100_000), n(200_000))),
        Box::new(move || deep_nesting(n(100_000))),
        Box::new(move || tiny_mutations(n(1_000_000))),
    ];
    for make in recordings {
        let rec = make();
        if rec.name.contains(&only) {
            run(&rec)?;
        }
    }
    Ok(())
}
