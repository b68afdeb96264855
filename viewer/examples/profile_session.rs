//! Times the engine's phases on saved ranges (bench/adapter.mjs with REPLAY_BENCH_SAVE_SESSION):
//! `cargo run --release -p replay-viewer --example profile_session -- DIR`.
use std::time::Instant;

use viewer_wasm::Player;

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/tmp/pv-session".into());
    let mut ranges = Vec::new();
    for i in 0.. {
        match std::fs::read(format!("{dir}/range-{i}.msgpack")) {
            Ok(b) => ranges.push(b),
            Err(_) => break,
        }
    }
    for rep in 0..3 {
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
        let end = p.seek(p.end());
        let t_seek_end = t3.elapsed();
        println!(
            "rep {rep}: append0 {:?} seek0 {:?} ({} B) | appendRest {:?} seekEnd {:?} ({} B) events {} keyframes {}",
            t_append0,
            t_seek0,
            first.len(),
            t_append,
            t_seek_end,
            end.len(),
            p.event_count(),
            p.keyframe_count()
        );
    }
}
