//! Times the engine's phases on saved ranges (bench/adapter.mjs with REPLAY_BENCH_SAVE_SESSION):
//! `cargo run --release -p replay-viewer --example profile_session -- DIR [REPS]`.
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
    for rep in 0..reps {
        let t = Instant::now();
        let mut p = Player::empty();
        let _ = p.append(&ranges[0]);
        let t_append0 = t.elapsed();
        let start = p.start();
        let t1 = Instant::now();
        let first = p.seek(start);
        let t_seek0 = t1.elapsed();
        let t2 = Instant::now();
        for r in &ranges[1..] {
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
            "rep {rep}: append0 {:?} seek0 {:?} ({} B) | appendRest {:?} moveToEnd {:?} writeEnd {:?} ({} B) events {} keyframes {}",
            t_append0,
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
