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
//! `cargo run --release -p replay-bench-replay-hostile -- [--scale F] [--only NAME]`: `F` scales
//! every recording (default 1); NAME picks recordings whose name contains it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use replay_bench_replay_hostile::{COUNT, Recording, recording};
use replay_protocol::codec::{Limits, concat_encoded, decode_batch};
use replay_protocol::{Batch, Timeline, encode_batch, html};
use viewer_wasm::Player;

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
    for i in 0..COUNT {
        let Some(rec) = recording(scale, i) else { break };
        if rec.name.contains(&only) {
            run(&rec)?;
        }
    }
    Ok(())
}
