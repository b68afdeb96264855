//! A benchmark, not a test (ignored unless asked for; it prints figures and asserts no time):
//! the hostile recordings of `bench/replay-hostile` (attribute storms, many page views, deep nesting,
//! tiny mutations) ingested into the real server, answered by the snapshot API, and replayed by
//! the wasm player in Chromium through its benchmark hook (`replayPlayer.benchReplay`, as
//! `bench/adapter.mjs` drives it): time to first frame (`open` → `ready`) and to seek to the end.
//!
//! `cargo xtask build`, then with the e2e environment (see `xtask test`):
//! `REPLAY_HOSTILE_SCALE=0.1 cargo test --release -p replay-e2e --test e2e -- --ignored hostile_replay --nocapture`
//! (`REPLAY_HOSTILE_SCALE`, default 0.1, scales the recordings: 1 is the sizes of
//! `bench/README.md`, whose ingest alone takes minutes; `REPLAY_HOSTILE_ONLY=NAME` keeps the
//! recordings whose name contains NAME).

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use replay_bench_replay_hostile::{COUNT, recording};
use replay_e2e::{Browser, Server};
use replay_protocol::encode_batch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: prints figures"]
async fn hostile_recordings_in_the_snapshot_api_and_the_wasm_player() -> Result<()> {
    let scale: f64 = std::env::var("REPLAY_HOSTILE_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(0.1);
    let only = std::env::var("REPLAY_HOSTILE_ONLY").unwrap_or_default();
    // Rate limits lifted: a recording arrives all at once, not over its hours.
    let lifted =
        [("REPLAY_CLIENT_RATE", "1000000"), ("REPLAY_CLIENT_BURST", "1000000"), ("REPLAY_PROJECT_RATE", "1000000")];
    let server = Server::start_with(tempfile::tempdir()?, "127.0.0.1:0", &lifted)?;
    let browser = Browser::start().await?;
    let result = async {
        for i in 0..COUNT {
            let Some(rec) = recording(scale, i) else { break };
            if !rec.name.contains(&only) {
                continue;
            }
            let bodies: Vec<Vec<u8>> = rec.batches.iter().map(encode_batch).collect::<Result<_, _>>()?;
            drop(rec.batches);
            let t = Instant::now();
            server.ingest_all(&bodies)?;
            let ingest = t.elapsed();
            let id = format!("hostile-{i}");
            let t = Instant::now();
            let html = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
            let snapshot = t.elapsed();
            browser.open_viewer(&server, "/viewer/player.html?bench=1").await?;
            browser
                .wait_for("return window.replayPlayer && !!window.replayPlayer.benchReplay", Duration::from_secs(20))
                .await?;
            let r = browser
                .eval_async(&format!(
                    "const done = arguments[arguments.length - 1]; \
                     window.replayPlayer.benchReplay('{id}', 'div').then(done, (e) => done({{ error: String(e) }}));"
                ))
                .await?;
            ensure!(r.get("error").is_none(), "{}: benchReplay failed: {r}", rec.name);
            let ms = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "{}: ingest {} ms ({} batches); snapshot API {} ms ({:.1} KB); wasm player: first frame {:.0} ms, \
                 seek to the end {:.0} ms (engine {:.0} ms; {} events, {} ranges)",
                rec.name,
                ingest.as_millis(),
                bodies.len(),
                snapshot.as_millis(),
                html.len() as f64 / 1e3,
                ms("startReadyMs"),
                ms("seekEndSyncMs"),
                r["profile"]["endSeekEngineMs"].as_f64().unwrap_or(f64::NAN),
                r["events"],
                r["ranges"],
            );
        }
        Ok(())
    }
    .await;
    browser.close().await?;
    result
}
