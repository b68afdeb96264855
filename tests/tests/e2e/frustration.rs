//! Frustration signals in Chromium: a dead button, a button that throws and a navigation undone
//! at once, each in a session of its own; each session is flagged and found by its filter.

use std::time::Duration;

use anyhow::{Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, FixtureServer, Server};

const PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>shop</title>
<script src=\"{{SERVER}}/recorder.js\" data-key=\"{{KEY}}\"></script></head>
<body><button id=\"dead\">Add to cart</button> <button id=\"boom\">Pay</button> <button id=\"open\">Open item</button>
<p id=\"out\"></p>
<script>
document.getElementById('boom').addEventListener('click', () => { throw new Error('payment failed'); });
document.getElementById('open').addEventListener('click', () => {
  history.pushState({}, '', '?item=7');
  document.getElementById('out').textContent = 'item 7';
});
</script></body></html>";

/// One session (its own tab): load the page, click `button`, run `then` (JavaScript), wait and
/// deliver.
async fn session(browser: &Browser, fixtures: &FixtureServer, button: &str, then: &str) -> Result<()> {
    let c = &browser.client;
    let tab = c.new_window(true).await?;
    c.switch_to_window(tab.handle).await?;
    c.goto(&fixtures.url("index.html")).await?;
    browser.flush_within(Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.find(Locator::Css(button)).await?.click().await?;
    browser.eval(then).await?;
    // A click is judged once its batch runs 3 s past it.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    browser.flush_within(Duration::from_secs(20)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_clicks_error_clicks_and_quick_backs_are_flagged_and_filterable() -> Result<()> {
    let server = Server::start()?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("index.html"), PAGE)?;
    let shop = FixtureServer::start(dir.path().to_owned(), &server.base, &server.key)?;
    let browser = Browser::start().await?;
    session(&browser, &shop, "#dead", "return true;").await?;
    session(&browser, &shop, "#boom", "return true;").await?;
    session(&browser, &shop, "#open", "setTimeout(() => history.back(), 1000); return true;").await?;

    let sessions = server.sessions()?;
    ensure!(sessions.len() == 3, "three sessions: {sessions:?}");
    let only = |query: &str| -> Result<Vec<serde_json::Value>> {
        Ok(server.get_json(&format!("/api/v1/projects/1/sessions?{query}"))?["sessions"].as_array().cloned().unwrap_or_default())
    };
    let dead = only("has_dead_click=true")?;
    let error = only("has_error_click=true")?;
    let back = only("has_quick_back=true")?;
    ensure!(dead.len() == 1 && dead[0]["dead_clicks"] == 1 && dead[0]["errors"] == 0, "dead: {dead:?} of {sessions:?}");
    ensure!(error.len() == 1 && error[0]["error_clicks"] == 1 && error[0]["errors"] == 1, "error: {error:?} of {sessions:?}");
    ensure!(back.len() == 1 && back[0]["quick_backs"] == 1, "back: {back:?} of {sessions:?}");
    let ids = [&dead[0]["id"], &error[0]["id"], &back[0]["id"]];
    ensure!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2], "each signal in its own session");

    // The list filters the same way, and the player marks the signal on the timeline.
    let page = server.get_text("/viewer/p/1/?has_dead_click=1")?;
    ensure!(page.contains("(1 dead)") && !page.contains("(1 error)"), "the list filters dead clicks");
    browser.open_player(&server, &format!("session={}", dead[0]["id"].as_str().unwrap_or_default())).await?;
    let marks = browser.eval("return document.querySelectorAll('#markers i.frustration.dead').length").await?;
    ensure!(marks == 1, "one dead-click mark on the timeline, got {marks}");
    browser.close().await
}
