//! Hostile recordings built to hit quadratic paths of the replay model: attribute storms,
//! 100,000 page views, deep nesting, a million tiny mutations. `replay-hostile-bench` (`main.rs`)
//! times them natively; the end-to-end benchmark `hostile_replay` times them in the wasm player
//! in Chromium.

use replay_protocol::batch::{AddedSubtree, AttrChange, Input, MousePoint, Mutation, Node, Scroll, TextChange};
use replay_protocol::test_util::{at, click, el, meta, page_nodes, snapshot, text};
use replay_protocol::{Batch, EventData};

/// Start of every recording (in the past: ingest clamps future times).
const BASE: u64 = 1_700_000_040_000;

/// One hostile recording: its name and its batches in upload order.
pub struct Recording {
    pub name: String,
    pub batches: Vec<Batch>,
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
pub fn attribute_storm(changes: usize, names: usize, removals: bool) -> Recording {
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
pub fn many_pages(pages: usize, big: usize) -> Recording {
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
pub fn deep_nesting(depth: usize) -> Recording {
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
pub fn tiny_mutations(count: usize) -> Recording {
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

/// How many recordings [`recording`] makes.
pub const COUNT: usize = 6;

/// Recording `i` (of [`COUNT`]) at `scale` (1 = the sizes named in `bench/README.md`), as
/// session `hostile-{i}`. One at a time: at full scale together they hold gigabytes.
pub fn recording(scale: f64, i: usize) -> Option<Recording> {
    let n = |x: usize| ((x as f64 * scale) as usize).max(1);
    let mut rec = match i {
        0 => attribute_storm(n(1_000_000), 4, false),
        1 => attribute_storm(n(1_000_000), n(100_000), false),
        2 => attribute_storm(n(1_000_000), 1_000, true),
        3 => many_pages(n(100_000), n(200_000)),
        4 => deep_nesting(n(100_000)),
        5 => tiny_mutations(n(1_000_000)),
        _ => return None,
    };
    for b in &mut rec.batches {
        b.session = format!("hostile-{i}");
    }
    Some(rec)
}

/// Not hostile, only long: a one-hour working session (`seconds` of it, one batch per second)
/// of `per_second` events each second on a page of a 1,000-row table: mouse trails, text and
/// class changes, scrolls, typing, clicks and rows replaced. At 3,600 s × 278 events it is the
/// million-event session of issue 15's viewer target, as session `long`.
pub fn long_session(seconds: u32, per_second: u32) -> Recording {
    const ROWS: u32 = 1_000;
    let row = |r: u32| 1_000 + r * 3;
    let mut nodes = vec![el(10, 4, "table", &[]), el(20, 4, "input", &[("type", "search")])];
    for r in 0..ROWS {
        nodes.push(el(row(r), 10, "tr", &[("class", "row")]));
        nodes.push(el(row(r) + 1, row(r), "td", &[]));
        nodes.push(text(row(r) + 2, row(r) + 1, format!("product {r}")));
    }
    let mut first = page_batch("p0", 0, BASE);
    first.events = vec![at(0, meta("https://shop.example/catalogue")), at(0, snapshot(page_nodes(&[], nodes)))];
    let mut batches = vec![first];
    // Rows replaced over time get fresh ids; `live[r]` is the id of row r's `<tr>` now.
    let mut live: Vec<u32> = (0..ROWS).map(row).collect();
    let mut next_id = 10_000_000u32;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % u64::from(n.max(1))) as u32
    };
    for s in 0..seconds {
        let mut b = page_batch("p0", s + 1, BASE + u64::from(s) * 1_000);
        for e in 0..per_second {
            let t = e * 1_000 / per_second.max(1);
            let r = rand(ROWS);
            let data = match e % 14 {
                0..=4 => EventData::MouseMove(
                    (0..3).map(|k| MousePoint { x: rand(1_280) as i32, y: rand(900) as i32, dt: k * 16 }).collect(),
                ),
                5..=7 => EventData::Mutation(Mutation {
                    texts: vec![TextChange { id: live[r as usize] + 2, text: format!("product {r} · {s}") }],
                    ..Mutation::default()
                }),
                8 | 9 => EventData::Mutation(Mutation {
                    attrs: vec![AttrChange {
                        id: live[r as usize],
                        name: "class".into(),
                        value: Some(if s % 2 == 0 { "row hot".into() } else { "row".into() }),
                    }],
                    ..Mutation::default()
                }),
                10 => EventData::Scroll(Scroll { id: 0, x: 0, y: rand(30_000) as i32 }),
                11 => EventData::Input(Input { id: 20, value: "*".repeat(1 + rand(12) as usize), checked: None }),
                12 => click(live[r as usize], rand(1_280) as i32, rand(900) as i32),
                _ => {
                    // Row r replaced by a new one with fresh ids, in place.
                    let old = live[r as usize];
                    let id = next_id;
                    next_id += 3;
                    live[r as usize] = id;
                    let next = live.get(r as usize + 1).copied().unwrap_or(0);
                    EventData::Mutation(Mutation {
                        removes: vec![old],
                        adds: vec![AddedSubtree {
                            parent: 10,
                            next,
                            nodes: vec![
                                el(id, 0, "tr", &[("class", "row")]),
                                el(id + 1, id, "td", &[]),
                                text(id + 2, id + 1, format!("product {r} (new {s})")),
                            ],
                        }],
                        ..Mutation::default()
                    })
                }
            };
            b.events.push(at(t, data));
        }
        b.end = b.start + 1_000;
        batches.push(b);
    }
    for b in &mut batches {
        b.session = "long".into();
    }
    Recording { name: format!("{seconds} s of {per_second} events a second"), batches }
}
