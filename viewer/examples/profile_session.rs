//! Times the engine's phases on saved ranges (bench/adapter.mjs with REPLAY_BENCH_SAVE_SESSION):
//! `cargo run --release -p replay-viewer --example profile_session -- DIR [REPS]`.
//! With `CHECK=1` it checks that a seek to the end gives the document that applying every event
//! gives; with `INSPECT=1` it lists the session's mutations.
use std::time::Instant;

use viewer_wasm::Player;

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/tmp/pv-session".into());
    let reps: usize = std::env::args().nth(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let mut ranges = Vec::new();
    for i in 0.. {
        match std::fs::read(format!("{dir}/range-{i}.msgpack")) {
            Ok(b) => ranges.push(b),
            Err(_) => break,
        }
    }
    if std::env::var_os("CHECK").is_some() {
        // The seek's end state equals applying every event in full.
        let mut p = Player::empty();
        let mut reference = replay_protocol::Dom::new();
        for r in &ranges {
            let _ = p.append(r.clone());
            if let Ok(batches) = replay_protocol::codec::decode_batches(r, &Default::default(), usize::MAX) {
                for b in batches {
                    for e in b.events {
                        reference.apply(&e.data);
                    }
                }
            }
        }
        p.move_to(usize::MAX);
        let (a, b) = (replay_protocol::html::document_html(p.dom()), replay_protocol::html::document_html(&reference));
        println!("end state equal: {} ({} bytes)", a == b, a.len());
        return;
    }
    if std::env::var_os("INSPECT").is_some() {
        inspect(&ranges);
        return;
    }
    for rep in 0..reps {
        // The player takes each range's bytes (as from JavaScript): copies made before timing.
        let first = ranges[0].clone();
        let rest = ranges[1..].to_vec();
        let t = Instant::now();
        let mut p = Player::empty();
        let _ = p.append(first);
        let t_append0 = t.elapsed();
        let start = p.start();
        let t1 = Instant::now();
        let target = p.event_times().iter().take_while(|&&t| t <= start).count();
        p.move_to(target);
        let t_move0 = t1.elapsed();
        let first = p.seek(start);
        let t_seek0 = t1.elapsed();
        let t2 = Instant::now();
        for r in rest {
            let _ = p.append(r);
        }
        let t_append = t2.elapsed();
        let t3 = Instant::now();
        p.move_to(p.event_count());
        let t_move = t3.elapsed();
        let t4 = Instant::now();
        let end = p.seek(p.end());
        let t_write = t4.elapsed();
        println!(
            "rep {rep}: append0 {:?} moveTo0 {:?} seek0 {:?} ({} B) | appendRest {:?} moveToEnd {:?} writeEnd {:?} ({} B) events {} keyframes {}",
            t_append0,
            t_move0,
            t_seek0,
            first.len(),
            t_append,
            t_move,
            t_write,
            end.len(),
            p.event_count(),
            p.keyframe_count()
        );
    }
}

#[allow(dead_code)]
fn inspect(ranges: &[Vec<u8>]) {
    use replay_protocol::EventData;
    use replay_protocol::codec::{Limits, decode_batches};
    for r in ranges {
        let Ok(batches) = decode_batches(r, &Limits::default(), usize::MAX) else { continue };
        for b in batches {
            for e in b.events {
                if let EventData::Mutation(m) = &e.data {
                    let nexts = m.adds.iter().filter(|a| a.next != 0).count();
                    let nodes: usize = m.adds.iter().map(|a| a.nodes.len()).sum();
                    println!(
                        "mutation removes {} adds {} (nodes {nodes}, with next {nexts}) first add parent {:?} next {:?} root {:?} first removes {:?}",
                        m.removes.len(),
                        m.adds.len(),
                        m.adds.first().map(|a| a.parent),
                        m.adds.first().map(|a| a.next),
                        m.adds.first().and_then(|a| a.nodes.first()).map(|n| n.id),
                        &m.removes[..m.removes.len().min(3)]
                    );
                }
            }
        }
    }
}
