//! Frustration signals (in every engine: Safari does not focus a clicked button, so the
//! recorder's own test of what answers clicks is what counts there): a dead button, a button that throws and a navigation undone
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
    browser.pointer_click(c.find(Locator::Css(button)).await?).await?;
    browser.eval(then).await?;
    // A click is judged once the session runs 3 s past it: the user is still there (the pointer
    // moves, which answers no click), so the click's span is over.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    browser
        .eval("document.dispatchEvent(new MouseEvent('mousemove', { clientX: 90, clientY: 60 })); return true;")
        .await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    browser.flush_within(Duration::from_secs(20)).await?;
    Ok(())
}

/// Records the three sessions; returns the server, the browser and the sessions' ids in the
/// order dead, error, back.
async fn record() -> Result<(Server, Browser, Vec<String>, FixtureServer, tempfile::TempDir)> {
    let server = Server::start_with(tempfile::tempdir()?, "127.0.0.1:0", &[("REPLAY_SETTLE_AFTER_SECS", "1")])?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("index.html"), PAGE)?;
    let shop = FixtureServer::start(dir.path().to_owned(), &server.base, &server.key)?;
    let browser = Browser::start().await?;
    session(&browser, &shop, "#dead", "return true;").await?;
    session(&browser, &shop, "#boom", "return true;").await?;
    session(&browser, &shop, "#open", "setTimeout(() => history.back(), 1000); return true;").await?;
    let sessions = server.sessions()?;
    ensure!(sessions.len() == 3, "three sessions: {sessions:?}");
    // Newest first.
    let ids = sessions.iter().rev().map(|s| s["id"].as_str().unwrap_or_default().to_owned()).collect();
    Ok((server, browser, ids, shop, dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_player_marks_dead_clicks_error_clicks_and_quick_backs_on_the_timeline() -> Result<()> {
    let (server, browser, ids, _shop, _dir) = record().await?;
    for (id, kind) in ids.iter().zip(["dead", "error", "back"]) {
        browser.open_player(&server, &format!("session={id}")).await?;
        let marks =
            browser.eval(&format!("return document.querySelectorAll('#markers i.frustration.{kind}').length")).await?;
        let all = browser
            .eval("return [...document.querySelectorAll('#markers i.frustration')].map((m) => m.className).join(',')")
            .await?;
        ensure!(marks == 1, "one {kind} mark on the timeline of {id}, got {all}");
    }
    browser.close().await
}

/// The recorder cuts a batch about every second, so a click and what follows it land in
/// different batches and no batch alone judges them: the server judges a session over all its
/// batches once it has been idle for `--settle-after-secs` (1 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_clicks_error_clicks_and_quick_backs_are_counted_and_filterable() -> Result<()> {
    let (server, browser, ids, _shop, _dir) = record().await?;
    let only = |query: &str| -> Result<Vec<String>> {
        Ok(server.get_json(&format!("/api/v1/projects/1/sessions?{query}"))?["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect())
    };
    // Settled a few seconds after each session's last batch.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while only("has_quick_back=true")?.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(only("has_dead_click=true")? == [ids[0].clone()], "dead clicks");
    // The recorder said the button answers clicks (what judges it where a click does not focus
    // a button: Safari, Firefox on macOS).
    let events = server.get_json(&format!("/api/v1/sessions/{}/events", ids[0]))?;
    let clicks: Vec<serde_json::Value> = events["batches"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["events"].as_array().into_iter().flatten())
        .filter_map(|e| e["data"].get("click").cloned())
        .collect();
    ensure!(
        clicks.len() == 1 && clicks[0]["interactive"] == true,
        "the dead button's click is interactive: {clicks:?}"
    );
    ensure!(only("has_error_click=true")? == [ids[1].clone()], "error clicks");
    ensure!(only("has_quick_back=true")? == [ids[2].clone()], "quick backs");
    let page = server.get_text("/viewer/p/1/?has_dead_click=1")?;
    ensure!(page.contains("(1 dead)") && !page.contains("(1 error)"), "the list filters dead clicks");
    browser.close().await
}
