//! The fidelity suite: each fixture page under `tests/fixtures/fidelity/` is recorded in
//! Chromium while a scripted interaction runs, then (a) the live page's normalized DOM
//! ([`NORMALIZE_JS`]: CSSOM rules, adopted sheets and frame documents included) is compared
//! with the server's `snapshot?t=` after each of three steps, and (b) a screenshot of the live
//! page at the end is compared with one of the viewer's replay and with one of the snapshot
//! API's document rendered at the recorded page's address, same viewport.
//! A table (page, DOM equal, pixel mismatch % of the viewer and of the snapshot) is printed;
//! the test fails on any DOM difference or a mismatch of 1% or more.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use replay_e2e::{Browser, FixtureServer, NORMALIZE_JS, Server, first_difference, fixtures_dir, pixel_mismatch};

const PAGES: &[&str] = &[
    "css",
    "cssinjs",
    "shadow",
    "adopted",
    "iframe",
    "frames",
    "templates",
    "fonts",
    "elements",
    "inputs",
    "media",
    "navigation",
    "dashboard",
];
/// Pages whose last look the snapshot's HTML cannot carry, so its pixels are not compared:
/// what is shown there lives in properties, not markup.
const SNAPSHOT_PIXELS_EXEMPT: &[(&str, &str)] = &[
    ("elements", "a modal dialog: the top layer and its backdrop have no markup"),
    ("inputs", "typed values, checked states, the selection and an inner scroll position are properties"),
    ("dashboard", "a modal dialog, and typed values"),
];
const MAX_MISMATCH_PERCENT: f64 = 1.0;
/// Per-channel difference under which two pixels count as equal (anti-aliasing noise).
const TOLERANCE: u8 = 16;

struct Row {
    page: &'static str,
    dom_equal: Vec<bool>,
    first_difference: Option<String>,
    mismatch: f64,
    snapshot_mismatch: f64,
}

const RUN_STEP: &str = r#"
const done = arguments[arguments.length - 1];
(async () => {
  await window.fidelitySteps[STEP]();
  await new Promise((r) => setTimeout(r, 400));
  const t = performance.timeOrigin + performance.now();
  const dom = __replayNormalize(document);
  const stats = await window.Replay.flush();
  return { t, dom, stats };
})().then(done, (e) => done({ error: String(e && e.stack || e) }));
"#;

async fn record_page(server: &Server, browser: &Browser, page: &'static str) -> Result<Row> {
    let site = FixtureServer::start(fixtures_dir("fidelity"), &server.base, &server.key)?;
    let c = &browser.client;
    c.goto(&site.url(&format!("{page}.html"))).await?;
    browser.wait_for("return !!(window.Replay && window.fidelitySteps)", Duration::from_secs(10)).await?;
    let stats = browser
        .eval_async("const done = arguments[arguments.length - 1]; window.Replay.flush().then(done, (e) => done({ error: String(e) }));")
        .await?;
    ensure!(stats["acked"].as_u64().unwrap_or(0) >= 1, "{page}: recorder did not start: {stats}");
    let mut checkpoints = Vec::new();
    for step in 0..3 {
        let script = format!("{NORMALIZE_JS}\n{}", RUN_STEP.replace("STEP", &step.to_string()));
        let out = browser.eval_async(&script).await?;
        if let Some(e) = out.get("error") {
            bail!("{page}: step {step} failed: {e}");
        }
        ensure!(out["stats"]["pending"] == 0 && out["stats"]["rejected"] == 0, "{page}: not delivered: {out}");
        let t = out["t"].as_f64().context("checkpoint time")?;
        checkpoints.push((t, out["dom"].as_str().unwrap_or_default().to_owned()));
    }
    // The final look: no caret or focus ring (the replay does not move focus).
    let size = browser
        .eval("if (document.activeElement) document.activeElement.blur(); return [innerWidth, innerHeight];")
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let live_png = c.screenshot().await?;

    let sessions = server.sessions()?;
    let session = sessions
        .iter()
        .find(|s| s["url"].as_str().unwrap_or_default().contains(&format!("/{page}.html")))
        .with_context(|| format!("{page}: no session in {sessions:?}"))?;
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    let start = session["start_ms"].as_f64().context("session start")?;
    let mut dom_equal = Vec::new();
    let mut first = None;
    for (t, live) in &checkpoints {
        let at = (t - start).max(0.0) as u64;
        let replay = without_api_fonts(&server.get_text(&format!("/api/v1/sessions/{id}/snapshot?t={at}"))?);
        let equal = &replay == live;
        if !equal && first.is_none() {
            first = Some(first_difference(&replay, live));
        }
        dom_equal.push(equal);
    }

    browser.open_player(server, &format!("session={id}&t=end")).await.with_context(|| format!("{page}: viewer"))?;
    // Show the replay frame unscaled over the whole viewport, exactly the live page's size.
    let (w, h) = (size[0].as_u64().unwrap_or(1280), size[1].as_u64().unwrap_or(900));
    browser
        .eval(&format!(
            "const wrap = document.getElementById('frame-wrap'); \
             wrap.style.cssText = 'position:fixed;left:0;top:0;transform:none;z-index:2147483647;box-shadow:none'; \
             const f = document.getElementById('frame'); f.style.width = '{w}px'; f.style.height = '{h}px'; \
             document.getElementById('cursor').hidden = true; document.getElementById('cursor').style.display = 'none'; return true;"
        ))
        .await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let replay_png = c.screenshot().await?;
    if let Ok(dir) = std::env::var("REPLAY_FIDELITY_SHOTS") {
        let _ = std::fs::write(format!("{dir}/{page}-live.png"), &live_png);
        let _ = std::fs::write(format!("{dir}/{page}-replay.png"), &replay_png);
    }
    let mismatch = pixel_mismatch(&live_png, &replay_png, TOLERANCE)?;

    // The snapshot API's document, rendered where the page was (its relative URLs load).
    let snapshot = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
    let at = format!("snapshot-of-{page}.html");
    site.put(&at, snapshot.into_bytes());
    c.goto(&site.url(&at)).await?;
    browser.wait_for("return document.readyState === 'complete'", Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let snapshot_png = c.screenshot().await?;
    if let Ok(dir) = std::env::var("REPLAY_FIDELITY_SHOTS") {
        let _ = std::fs::write(format!("{dir}/{page}-snapshot.png"), &snapshot_png);
    }
    let snapshot_mismatch = pixel_mismatch(&live_png, &snapshot_png, TOLERANCE)?;
    Ok(Row { page, dom_equal, first_difference: first, mismatch, snapshot_mismatch })
}

/// The snapshot writes fonts added through the `FontFace` API as `<style data-replay-font>` at
/// the end of the head, which the live DOM has no markup for: left out of the DOM comparison
/// (the pixels show them).
fn without_api_fonts(html: &str) -> String {
    const OPEN: &str = "<style data-replay-font=\"\">";
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find(OPEN) {
        out.push_str(&rest[..i]);
        rest = rest[i..].find("</style>").map_or("", |j| &rest[i + j + "</style>".len()..]);
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_page_replays_with_the_same_dom_and_pixels() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let mut rows = Vec::new();
    for page in PAGES {
        let row = record_page(&server, &browser, page).await;
        match row {
            Ok(r) => rows.push(r),
            Err(e) => {
                let _ = browser.close().await;
                return Err(e.context(format!("fixture page {page}")));
            }
        }
    }
    browser.close().await?;

    println!(
        "\n| page | DOM equal (3 checkpoints) | viewer pixel mismatch % | snapshot pixel mismatch % |\n|---|---|---|---|"
    );
    for r in &rows {
        let dom = r.dom_equal.iter().map(|e| if *e { "yes" } else { "NO" }).collect::<Vec<_>>().join(" / ");
        println!("| {} | {} | {:.3} | {:.3} |", r.page, dom, r.mismatch, r.snapshot_mismatch);
    }
    let mut failures = Vec::new();
    for r in &rows {
        if r.dom_equal.iter().any(|e| !e) {
            failures.push(format!("{}: DOM differs {}", r.page, r.first_difference.as_deref().unwrap_or("")));
        }
        if r.mismatch >= MAX_MISMATCH_PERCENT {
            failures.push(format!("{}: {:.3}% of the viewer's pixels differ", r.page, r.mismatch));
        }
        let exempt = SNAPSHOT_PIXELS_EXEMPT.iter().any(|(p, _)| *p == r.page);
        if r.snapshot_mismatch >= MAX_MISMATCH_PERCENT && !exempt {
            failures.push(format!("{}: {:.3}% of the snapshot's pixels differ", r.page, r.snapshot_mismatch));
        }
    }
    ensure!(failures.is_empty(), "fidelity regressions:\n{}", failures.join("\n"));
    Ok(())
}

/// Issue 15 item 1: the full snapshot is taken in slices while the page goes on changing (the
/// `mutating` fixture moves, removes, inserts and edits rows on every task), and the replay still
/// equals the live page. Fails when the snapshot is taken in one task: then no tick of the page
/// runs between the recorder starting to observe and its snapshot being in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_changing_during_the_sliced_snapshot_replays_as_it_is() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let result = async {
        let site = FixtureServer::start(fixtures_dir("fidelity"), &server.base, &server.key)?;
        browser.client.goto(&site.url("mutating.html")).await?;
        browser.wait_for("return !!window.Replay", Duration::from_secs(10)).await?;
        let started = browser
            .eval_async(
                "const done = arguments[arguments.length - 1]; \
                 window.Replay.sessionUrl().then(() => { const m = window.mutator; \
                 done({ during: m.ticks - m.observedAt, observedAt: m.observedAt }); }, (e) => done({ error: String(e) }));",
            )
            .await?;
        let during = started["during"].as_i64().context("ticks during the snapshot")?;
        ensure!(
            started["observedAt"].as_i64().unwrap_or(-1) >= 0 && during >= 3,
            "the page did not run during the snapshot (it was taken in one task): {started}"
        );
        // Changes go on after the snapshot too, then stop; the recorder catches up in its slices.
        let script = format!(
            "{NORMALIZE_JS}\nconst done = arguments[arguments.length - 1]; (async () => {{ \
             await new Promise((r) => setTimeout(r, 300)); window.mutator.stop = true; \
             await new Promise((r) => setTimeout(r, 400)); \
             const t = performance.timeOrigin + performance.now(); const dom = __replayNormalize(document); \
             const stats = await window.Replay.flush(); return {{ t, dom, stats }}; \
             }})().then(done, (e) => done({{ error: String(e && e.stack || e) }}));"
        );
        let out = browser.eval_async(&script).await?;
        if let Some(e) = out.get("error") {
            bail!("checkpoint failed: {e}");
        }
        ensure!(out["stats"]["pending"] == 0 && out["stats"]["rejected"] == 0, "not delivered: {}", out["stats"]);
        let t = out["t"].as_f64().context("checkpoint time")?;
        let live = out["dom"].as_str().unwrap_or_default().to_owned();
        let sessions = server.sessions()?;
        let session = sessions
            .iter()
            .find(|s| s["url"].as_str().unwrap_or_default().contains("/mutating.html"))
            .with_context(|| format!("no session in {sessions:?}"))?;
        let id = session["id"].as_str().unwrap_or_default().to_owned();
        let start = session["start_ms"].as_f64().context("session start")?;
        let at = (t - start).max(0.0) as u64;
        let replay = server.get_text(&format!("/api/v1/sessions/{id}/snapshot?t={at}"))?;
        if let Ok(dir) = std::env::var("REPLAY_FIDELITY_SHOTS") {
            let _ = std::fs::write(format!("{dir}/mutating-live.html"), &live);
            let _ = std::fs::write(format!("{dir}/mutating-replay.html"), &replay);
        }
        println!("mutating page: {during} ticks of the page ran during the snapshot; live DOM {} bytes", live.len());
        ensure!(replay == live, "the replay differs from the page: {}", first_difference(&replay, &live));
        Ok(())
    }
    .await;
    browser.close().await?;
    result
}

/// Shadow roots that adopt a sheet in place (`adoptedStyleSheets.push`) around the DOM pass that
/// records them (4,000 new cards, pushes from the task that adds them on, one per timer task):
/// each one adopts it in the replay too. (The race a review found, a push between two slices
/// of that pass sent before the replay had the root, is not reliably hit here: this passes on
/// the code before `rootWalked` as well.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopted_lists_changed_while_walked_in_slices_replay() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let result = async {
        let site = FixtureServer::start(fixtures_dir("fidelity"), &server.base, &server.key)?;
        browser.client.goto(&site.url("adoptedslices.html")).await?;
        browser.wait_for("return !!window.Replay", Duration::from_secs(10)).await?;
        browser.flush_within(Duration::from_secs(20)).await?;
        let pushed = browser
            .eval_async("const d = arguments[arguments.length - 1]; window.addCards(4000, 60).then(d);")
            .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        browser.flush_within(Duration::from_secs(30)).await?;
        let live = browser.eval("return window.adopting(document);").await?;
        ensure!(live == pushed, "live: {live} adopting, {pushed} pushed");
        let id = server.only_session()?["id"].as_str().context("session id")?.to_owned();
        browser.open_player(&server, &format!("session={id}&t=end")).await?;
        let replay = browser
            .eval(
                "const doc = document.getElementById('frame').contentDocument; \
                 return [...doc.querySelectorAll('x-card')].filter((c) => c.shadowRoot && c.shadowRoot.adoptedStyleSheets.length > 0).length;",
            )
            .await?;
        ensure!(replay == live, "the replay has {replay} cards adopting the sheet, the page {live}");
        Ok(())
    }
    .await;
    browser.close().await?;
    result
}
