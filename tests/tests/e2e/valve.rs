//! The recorder's safety valve (issue 15) in the real recorder: on a page churning its DOM far
//! beyond the recorder's budget (0.5 % of the main thread judged over 5 s here; 3 % over a
//! minute by default), it first records page changes once a second in their final state, then
//! stops, each step a note in the recording that the player's Performance panel shows; the
//! page's own work never stops.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, FixtureServer, Server, fixtures_dir};

/// Waits until the session's recorded events contain `text` (the notes travel with the batches
/// the recorder cuts every few seconds; the test never makes it flush, which would drain its
/// pending work and change what it measures).
async fn recorded(server: &Server, text: &str) -> Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let sessions = server.sessions()?;
        if let Some(id) = sessions.first().and_then(|s| s["id"].as_str()) {
            // Big (every change of 2,000 items): read whole rather than through `get_text`'s cap.
            let mut events = String::new();
            std::io::Read::read_to_string(
                &mut server.get(&format!("/api/v1/sessions/{id}/events")).call()?.into_reader(),
                &mut events,
            )?;
            if events.contains(text) {
                return Ok(id.to_owned());
            }
        }
        ensure!(std::time::Instant::now() < deadline, "no note {text:?} was recorded in time");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_budget_the_recorder_coalesces_then_stops_and_says_so() -> Result<()> {
    let server = Server::start()?;
    let site = FixtureServer::start(fixtures_dir("valve"), &server.base, &server.key)?;
    let browser = Browser::start().await?;
    browser.client.goto(&site.url("busy.html")).await?;
    browser.wait_for("return !!window.Replay", Duration::from_secs(10)).await?;
    let calm = browser.flush_within(Duration::from_secs(20)).await?;
    ensure!(
        calm["valve"]["level"] == 0 && calm["valve"]["budgetPct"].as_f64() == Some(0.5),
        "starts at level 0: {calm}"
    );

    browser.eval("window.go(); return true").await?;
    recorded(&server, "page changes are now recorded once a second").await?;
    let id = recorded(&server, "recording stopped to protect the page").await?;
    // The page goes on: its own timer still ticks after the recorder stopped.
    let before = browser.eval("return Number(document.getElementById('ticks').textContent)").await?;
    browser
        .wait_for(
            &format!(
                "return Number(document.getElementById('ticks').textContent) > {} + 5",
                before.as_u64().unwrap_or(0)
            ),
            Duration::from_secs(10),
        )
        .await?;
    let stats = browser.flush_within(Duration::from_secs(20)).await?;
    let v = &stats["valve"];
    println!("safety valve at the stop: {v}");
    ensure!(v["level"] == 2 && v["sharePct"].as_f64().unwrap_or(0.0) > 0.5, "stopped over its budget: {v}");

    // The replay says why it is coarse and why it ends: the notes in the Performance panel.
    browser.open_player(&server, &format!("session={id}")).await?;
    browser.client.find(Locator::Css("[data-tab='performance']")).await?.click().await?;
    let shown = browser.eval("return document.getElementById('panel-performance').textContent").await?;
    let shown = shown.as_str().context("the panel's text")?;
    ensure!(
        shown.contains("recorded once a second") && shown.contains("recording stopped to protect the page"),
        "the player shows both notes: {shown}"
    );
    browser.close().await?;
    Ok(())
}
