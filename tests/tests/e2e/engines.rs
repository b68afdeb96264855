//! What every engine must do, written so that it holds in each (`REPLAY_BROWSER=chromium|firefox|
//! webkit`; CI runs this module with the core subset in all three): the freeze watchdog without
//! Long Animation Frames or the JS profiler, which only Chromium has. The demo's "Find best
//! value" burns ~2 s of CPU in one task: the session shows one freeze, of at least the
//! watchdog's second, started by that click, in the index and on the player's timeline; the
//! function behind it is named where the engine allows (Chromium). The demo runs with 2,000
//! products (`?n=2000`) so that its own first render is no freeze on a slow machine. A page left
//! alone and then stuck shows its freeze from its last heartbeat: the worker's marker was moved
//! in time by the heartbeats, in each engine's worker.

use std::time::Duration;

use anyhow::{Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, Server};
use serde_json::Value;

/// The session's events with this one-letter tag (protocol/src/batch.rs), with their times.
fn timed(events: &Value, tag: &str) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    for b in events["batches"].as_array().cloned().unwrap_or_default() {
        let start = b["start"].as_u64().unwrap_or(0);
        for e in b["events"].as_array().cloned().unwrap_or_default() {
            if let Some(v) = e["data"].get(tag) {
                out.push((start + e["offset_ms"].as_u64().unwrap_or(0), v.clone()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_burn_is_one_freeze_started_by_its_click_in_every_engine() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo?n=2000")).await?;
    let stats = browser.flush_within(Duration::from_secs(30)).await?;
    ensure!(stats["worker"] == true, "the watchdog needs the upload worker: {stats}");
    // Let a few heartbeats go by, then the user clicks "Find best value" (~2 s of CPU).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    browser.client.find(Locator::Css("#best")).await?.click().await?;
    browser.wait_for("return document.getElementById('best-result').textContent", Duration::from_secs(30)).await?;
    // The freeze's end is recorded once the page has answered again for a moment.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    browser.flush_within(Duration::from_secs(30)).await?;

    let id = server.only_session_id()?;
    let events = server.get_json(&format!("/api/v1/sessions/{id}/events"))?;
    let freezes = timed(&events, "freeze");
    eprintln!("FREEZES {freezes:?}");
    let started: Vec<_> = freezes.iter().filter(|(_, v)| v.get("started").is_some()).collect();
    let ended: Vec<_> = freezes.iter().filter_map(|(_, v)| v.get("ended")).collect();
    ensure!(
        started.len() == 1 && ended.len() == 1,
        "{:?}: one burn, one freeze; got {started:?} / {ended:?}",
        browser.engine
    );
    let (frozen_at, marker) = started[0];
    let duration = ended[0]["duration"].as_u64().unwrap_or(0);
    ensure!(duration >= 1000, "a freeze is at least the watchdog's second: {duration} ms");
    ensure!(marker["started"]["last_action"] == "click button#best", "the marker names the click: {marker}");
    let clicks = timed(&events, "click");
    ensure!(clicks.iter().any(|(t, _)| *t <= frozen_at + 300), "the click is recorded before the freeze");
    if browser.engine.is_chromium() {
        ensure!(ended[0]["culprits"][0]["function"] == "computeBestValue", "the culprit: {}", ended[0]);
    }

    let row = server.get_json(&format!("/api/v1/sessions/{id}"))?;
    ensure!(row["freezes"] == 1 && row["never_recovered"] == false, "{row}");
    ensure!(row["longest_freeze_ms"].as_u64() == Some(duration), "the index's longest freeze: {row}");
    browser.open_player(&server, &format!("session={id}")).await?;
    let bands = browser.eval("return document.querySelectorAll('#markers i.freeze').length").await?;
    ensure!(bands == 1, "one freeze band on the timeline, got {bands}");
    browser.close().await
}

/// A page left alone, then stuck in a script nobody clicked for. Its heartbeats moved the
/// worker's marker in time without encoding it again (recorder/js/watchdog.js, the worker's
/// `moveMarker`): the freeze still starts at the last heartbeat before the script, not when
/// the marker was armed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_page_s_freeze_starts_at_its_last_heartbeat_in_every_engine() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo/lab")).await?;
    let stats = browser.flush_within(Duration::from_secs(30)).await?;
    ensure!(stats["worker"] == true, "the watchdog needs the upload worker: {stats}");
    browser
        .eval(
            "setTimeout(() => { window.__burnStart = Date.now(); const end = Date.now() + 2500; \
             while (Date.now() < end); }, 3000); return true;",
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(7000)).await;
    let burn_start = browser.eval("return window.__burnStart").await?.as_u64().unwrap_or(0);
    ensure!(burn_start > 0, "the script ran");
    browser.flush_within(Duration::from_secs(30)).await?;
    let id = server.only_session_id()?;
    let events = server.get_json(&format!("/api/v1/sessions/{id}/events"))?;
    let freezes = timed(&events, "freeze");
    let started: Vec<_> = freezes.iter().filter(|(_, v)| v.get("started").is_some()).collect();
    ensure!(started.len() == 1, "{:?}: one freeze, got {freezes:?}", browser.engine);
    let (frozen_at, marker) = started[0];
    // Heartbeats come every 250 ms; the page's clock and Date.now() may differ by a few ms.
    ensure!(
        *frozen_at <= burn_start + 20 && burn_start <= frozen_at + 600,
        "{:?}: the freeze starts at the last heartbeat before the script ({burn_start}), recorded {frozen_at}: {marker}",
        browser.engine
    );
    ensure!(marker["started"]["url"].as_str().unwrap_or_default().ends_with("/demo/lab"), "{marker}");
    browser.close().await
}
