//! End-to-end: a real Chromium records the demo app into the real server binary, and the
//! recording is checked through the snapshot API and the viewer.

use std::time::Duration;

use anyhow::{Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, NORMALIZE_JS, Server, first_difference};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_session_replays_in_snapshot_api_and_viewer() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let c = &browser.client;
    c.goto(&server.url("/demo?n=2000")).await?;
    browser.wait_for("return document.querySelectorAll('#list li').length === 2000", Duration::from_secs(20)).await?;
    browser.flush_within(Duration::from_secs(30)).await?;

    // Type in the filter (every keystroke re-renders the list), click a row, scroll.
    let search = c.find(Locator::Css("#search")).await?;
    search.click().await?;
    search.send_keys("Lamp 1").await?;
    let row = c.find(Locator::Css("#list li:nth-child(3)")).await?;
    row.click().await?;
    browser.eval("window.scrollTo(0, 300); return true;").await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stats = browser.flush_within(Duration::from_secs(30)).await?;
    ensure!(stats["acked"].as_u64().unwrap_or(0) >= 2, "expected several acknowledged batches: {stats}");

    let live_rows = browser.eval("return document.querySelectorAll('#list li').length").await?;
    ensure!(
        live_rows.as_u64().unwrap_or(0) > 0 && live_rows.as_u64() < Some(2000),
        "filter did not apply: {live_rows}"
    );
    let live = browser.live_html().await?;

    let session = &server.only_session()?;
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    ensure!(session["clicks"].as_u64().unwrap_or(0) >= 2, "clicks not counted: {session}");
    ensure!(session["url"].as_str().unwrap_or_default().contains("/demo"), "url not indexed: {session}");

    // (a) The server's document at the end equals the live page.
    let snapshot = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
    ensure!(snapshot == live, "snapshot differs from the live page: {}", first_difference(&snapshot, &live));

    // The document at t=0 is the unfiltered list.
    let at_start = server.get_text(&format!("/api/v1/sessions/{id}/snapshot?t=0"))?;
    ensure!(at_start.matches("<li ").count() == 2000, "t=0 should show all 2000 rows");

    // (b) The viewer, seeked to the end, shows the same document and row count.
    browser.open_player(&server, &format!("session={id}&t=end")).await?;
    let frame_rows = browser
        .eval("return document.getElementById('frame').contentDocument.querySelectorAll('#list li').length")
        .await?;
    ensure!(frame_rows == live_rows, "viewer shows {frame_rows} rows, the live page {live_rows}");
    let replayed = browser
        .eval(&format!(
            "{NORMALIZE_JS}; return __replayNormalize(document.getElementById('frame').contentDocument).replaceAll('<!--replay:script-->', '');"
        ))
        .await?;
    let replayed = replayed.as_str().unwrap_or_default();
    ensure!(replayed == live, "viewer DOM differs from the live page: {}", first_difference(replayed, &live));

    // Scripts never run in the replay frame.
    let sandbox = browser.eval("return document.getElementById('frame').getAttribute('sandbox')").await?;
    ensure!(
        !sandbox.as_str().unwrap_or("allow-scripts").contains("allow-scripts"),
        "sandbox allows scripts: {sandbox}"
    );

    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_list_and_player_pages_load() -> Result<()> {
    let server = Server::start()?;
    let index = server.get_text("/viewer/p/1/")?;
    ensure!(index.contains("<table") || index.contains("id=\"status\""), "session list missing");
    let recorder = server.get_text("/recorder.js")?;
    ensure!(recorder.contains("recorder/core.js"), "loader missing");
    ensure!(recorder.len() <= 3 * 1024, "the synchronous loader must stay under 3 KB, is {}", recorder.len());
    let demo = server.get_text("/demo")?;
    ensure!(demo.contains(&format!("data-key=\"{}\"", server.key)), "demo page does not embed the project key");
    Ok(())
}
