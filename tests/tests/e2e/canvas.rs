//! Canvas frames (issue 17 item 2): `fixtures/canvas/chart.html` (an animated 2D bar chart, a
//! WebGL canvas without `preserveDrawingBuffer`, a canvas opted out with
//! `data-replay-canvas="false"` and one inside a `data-replay-mask` subtree) recorded in Chromium
//! with canvases turned on in the project's settings (the recorder's remote settings).
//!
//! - the replay's canvas pixels equal the live page's at three moments (the player seeks to each;
//!   the live WebGL pixels are read in the frame they were drawn), and differ from the next
//!   moment's (the comparison sees a change);
//! - the opted-out and the masked canvases are never recorded (no frame of theirs is stored, and
//!   their replayed canvases stay blank);
//! - with a small byte budget, frames beyond it are dropped, counted (the `canvas` figures
//!   `Replay.flush()` resolves with, the batches' `dropped`) and noted in the recording; the frames stored stay within it.
//!
//! The recording cost on the animated chart (main-thread ms per frame, bytes per second) is
//! printed, never asserted.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use replay_e2e::{ADMIN_TOKEN, Browser, FixtureServer, Server, fixtures_dir, pixel_mismatch};
use serde_json::{Value, json};

/// Per-channel difference under which two pixels count as equal (WebP at quality 0.8).
const TOLERANCE: u8 = 48;
/// Most pixels (percent) of a replayed canvas that may differ from the live one.
const MAX_MISMATCH_PERCENT: f64 = 2.0;

/// Turns the project's canvas setting on (what the recorder reads at start).
fn canvases_on(server: &Server) -> Result<()> {
    ureq::put(&server.url("/api/v1/projects/1/settings"))
        .set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .send_json(json!({ "settings": { "canvas": true } }))
        .context("turning canvases on")?;
    Ok(())
}

/// Waits for the recorder, and for its first batch to be acknowledged.
async fn started(browser: &Browser) -> Result<()> {
    browser.wait_for("return !!(window.Replay && window.setStep)", Duration::from_secs(10)).await?;
    let stats = browser.flush_within(Duration::from_secs(20)).await?;
    ensure!(stats["acked"].as_u64().unwrap_or(0) >= 1, "recorder did not start: {stats}");
    Ok(())
}

/// Draws step `n`, waits until the recorder has sent a frame more of both recorded canvases and
/// everything is delivered; returns the moment (epoch ms) and the live PNGs of the chart and the
/// WebGL canvas (the latter read in the frame it was drawn).
async fn step(browser: &Browser, n: u32) -> Result<(f64, Vec<u8>, Vec<u8>)> {
    let script = r#"
const done = arguments[arguments.length - 1];
(async () => {
  const frames = async () => ((await window.Replay.flush()).canvas || { frames: 0 }).frames;
  const before = await frames();
  await window.setStep(STEP);
  const until = performance.now() + 10000;
  while (await frames() < before + 2 && performance.now() < until) await new Promise((r) => setTimeout(r, 100));
  const captured = await frames() - before;
  const stats = await window.Replay.flush();
  const t = performance.timeOrigin + performance.now();
  const bytes = (url) => Array.from(atob(url.split(',')[1]), (c) => c.charCodeAt(0));
  return { t, captured, stats, chart: bytes(document.getElementById('chart').toDataURL('image/png')),
           gl: bytes(window.glPixels) };
})().then(done, (e) => done({ error: String(e && e.stack || e) }));
"#;
    let out = browser.eval_async(&script.replace("STEP", &n.to_string())).await?;
    ensure!(out.get("error").is_none(), "step {n}: {out}");
    ensure!(out["captured"].as_u64().unwrap_or(0) >= 2, "step {n}: frames of both canvases: {}", out["stats"]);
    ensure!(out["stats"]["pending"] == 0 && out["stats"]["rejected"] == 0, "step {n}: not delivered: {}", out["stats"]);
    Ok((out["t"].as_f64().context("moment")?, png(&out["chart"])?, png(&out["gl"])?))
}

fn png(v: &Value) -> Result<Vec<u8>> {
    let list = v.as_array().context("png bytes")?;
    Ok(list.iter().map(|b| b.as_u64().unwrap_or(0) as u8).collect())
}

/// The replayed canvas `id` as PNG bytes, and how many of its pixels are not transparent.
async fn replayed(browser: &Browser, id: &str) -> Result<(Vec<u8>, u64)> {
    let out = browser
        .eval(&format!(
            "const c = document.getElementById('frame').contentDocument.getElementById('{id}'); \
             if (!c) return null; \
             const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
             let painted = 0; for (let i = 3; i < px.length; i += 4) if (px[i]) painted++; \
             const url = c.toDataURL('image/png'); \
             return {{ painted, png: Array.from(atob(url.split(',')[1]), (ch) => ch.charCodeAt(0)) }};"
        ))
        .await?;
    ensure!(!out.is_null(), "no replayed canvas #{id}");
    Ok((png(&out["png"])?, out["painted"].as_u64().unwrap_or(0)))
}

/// The session's stored events (JSON) of the only session.
fn events(server: &Server) -> Result<(String, Vec<Value>)> {
    let id = server.only_session_id()?;
    let list = server.get_json(&format!("/api/v1/projects/1/sessions/{id}/events"))?;
    let batches = list["batches"].as_array().context("batches")?.clone();
    Ok((id, batches))
}

/// Canvas frames stored: (node id → frames, total image bytes).
fn canvas_frames(batches: &[Value]) -> (BTreeMap<u64, u32>, usize) {
    let mut per_id = BTreeMap::new();
    let mut bytes = 0;
    for b in batches {
        for e in b["events"].as_array().into_iter().flatten() {
            if let Some(f) = e["data"].get("canvas") {
                *per_id.entry(f["id"].as_u64().unwrap_or(0)).or_insert(0) += 1;
                bytes += f["data"].as_array().map_or(0, Vec::len);
            }
        }
    }
    (per_id, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canvases_replay_as_recorded_and_masked_or_opted_out_ones_are_not_recorded() -> Result<()> {
    let server = Server::start()?;
    canvases_on(&server)?;
    let site = FixtureServer::start(fixtures_dir("canvas"), &server.base, &server.key)?;
    let browser = Browser::start().await?;
    browser.client.goto(&site.url("chart.html")).await?;
    started(&browser).await?;
    let mut moments = Vec::new();
    for n in 1..=3 {
        moments.push(step(&browser, n).await?);
    }

    // The cost on the animated chart: 3 s of animation at the page's 60 fps, recorded at 10 fps.
    let cost = browser
        .eval_async(
            "const done = arguments[arguments.length - 1];
             (async () => {
               const a = (await window.Replay.flush()).canvas;
               const t0 = performance.now();
               const drawn = await window.animate(3000);
               const b = (await window.Replay.flush()).canvas;
               const s = (performance.now() - t0) / 1000;
               return { drawn, frames: b.frames - a.frames, bytes: b.bytes - a.bytes, mainMs: b.mainMs - a.mainMs, s };
             })().then(done, (e) => done({ error: String(e) }));",
        )
        .await?;
    let frames = cost["frames"].as_f64().unwrap_or(0.0).max(1.0);
    let seconds = cost["s"].as_f64().unwrap_or(1.0);
    println!(
        "canvas cost (animated chart 400x260, 10 fps cap): {} page frames drawn, {} canvas frames recorded in {seconds:.1} s; \
         main thread {:.3} ms per recorded frame; {:.0} bytes per recorded frame; {:.0} bytes/s",
        cost["drawn"],
        cost["frames"],
        cost["mainMs"].as_f64().unwrap_or(0.0) / frames,
        cost["bytes"].as_f64().unwrap_or(0.0) / frames,
        cost["bytes"].as_f64().unwrap_or(0.0) / seconds,
    );
    ensure!(cost["frames"].as_u64().unwrap_or(0) >= 5, "the animation is recorded: {cost}");

    let (id, batches) = events(&server)?;
    let (per_id, _) = canvas_frames(&batches);
    ensure!(
        per_id.len() == 2,
        "frames of exactly two canvases (chart and WebGL), not the opted-out or masked ones: {per_id:?}"
    );
    let sessions = server.sessions()?;
    let start = sessions[0]["start_ms"].as_f64().context("session start")?;

    browser.open_player(&server, &format!("session={id}")).await?;
    let mut previous: Option<(Vec<u8>, Vec<u8>)> = None;
    for (k, (t, live_chart, live_gl)) in moments.iter().enumerate() {
        browser.eval(&format!("window.replayPlayer.seek({}); return true", (t - start).max(0.0))).await?;
        // The frames are decoded asynchronously: wait until both canvases show the moment.
        let mut shown = (Vec::new(), Vec::new(), 100.0, 100.0);
        for _ in 0..50 {
            let chart = replayed(&browser, "chart").await?.0;
            let gl = replayed(&browser, "gl").await?.0;
            let (mc, mg) = (pixel_mismatch(live_chart, &chart, TOLERANCE)?, pixel_mismatch(live_gl, &gl, TOLERANCE)?);
            shown = (chart, gl, mc, mg);
            if mc < MAX_MISMATCH_PERCENT && mg < MAX_MISMATCH_PERCENT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (chart, gl, mc, mg) = shown;
        println!("moment {}: replayed chart differs from the live one on {mc:.2}% of pixels, WebGL {mg:.2}%", k + 1);
        ensure!(mc < MAX_MISMATCH_PERCENT, "moment {}: chart {mc:.2}% of pixels differ", k + 1);
        ensure!(mg < MAX_MISMATCH_PERCENT, "moment {}: WebGL {mg:.2}% of pixels differ", k + 1);
        if let Some((prev_chart, prev_gl)) = &previous {
            let (dc, dg) = (pixel_mismatch(prev_chart, &chart, TOLERANCE)?, pixel_mismatch(prev_gl, &gl, TOLERANCE)?);
            ensure!(dc > 10.0 && dg > 10.0, "moment {}: the replay did not change ({dc:.1}%, {dg:.1}%)", k + 1);
        }
        previous = Some((chart, gl));
        for blank in ["optout", "secret"] {
            let painted = replayed(&browser, blank).await?.1;
            ensure!(painted == 0, "moment {}: the replayed #{blank} shows {painted} painted pixels", k + 1);
        }
    }
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_beyond_the_byte_budget_are_dropped_counted_and_noted() -> Result<()> {
    const BUDGET: usize = 40_000;
    let server = Server::start()?;
    canvases_on(&server)?;
    let site = FixtureServer::start(fixtures_dir("canvas"), &server.base, &server.key)?;
    let page = std::fs::read_to_string(fixtures_dir("canvas").join("chart.html"))?;
    site.put("budget.html", page.replace("BUDGET", &format!("data-canvas-budget=\"{BUDGET}\"")).into_bytes());
    let browser = Browser::start().await?;
    browser.client.goto(&site.url("budget.html")).await?;
    started(&browser).await?;
    // Bounded: a flush that never settles fails the test instead of holding the suite (once, in
    // CI, this step never returned while the page's renderer stayed busy; not reproduced since).
    let stats = tokio::time::timeout(
        Duration::from_secs(120),
        browser.eval_async(
            "const done = arguments[arguments.length - 1];
             window.animate(3000).then(() => window.Replay.flush()).then(done, (e) => done({ error: String(e) }));",
        ),
    )
    .await
    .context("the animation and flush did not end within 120 s")??;
    let canvas = &stats["canvas"];
    ensure!(canvas["dropped"].as_u64().unwrap_or(0) > 0, "frames over the budget are dropped and counted: {stats}");
    ensure!(canvas["bytes"].as_u64().unwrap_or(u64::MAX) <= BUDGET as u64, "within the budget: {stats}");
    ensure!(stats["dropped"].as_u64().unwrap_or(0) > 0, "the batches count the drops: {stats}");

    let (_, batches) = events(&server)?;
    let (per_id, bytes) = canvas_frames(&batches);
    ensure!(!per_id.is_empty() && bytes <= BUDGET, "stored frames stay within the budget: {bytes} bytes, {per_id:?}");
    let notes: Vec<&Value> = batches
        .iter()
        .flat_map(|b| b["events"].as_array().into_iter().flatten())
        .filter_map(|e| e["data"].get("note"))
        .filter(|n| n["text"].as_str().unwrap_or_default().contains("byte budget"))
        .collect();
    ensure!(!notes.is_empty(), "the drop is noted in the recording for the viewer");
    ensure!(
        notes.iter().all(|n| n["kind"] == "dropped" && n["count"].as_u64().unwrap_or(0) >= 1),
        "notes of kind dropped: {notes:?}"
    );
    browser.close().await?;
    Ok(())
}
