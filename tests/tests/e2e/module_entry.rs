//! The recorder's ES module entry (the npm package's `index.js`), imported by a page the way an
//! app's bundle would: `init({ server, key })` records a session like the script tag does.

use std::time::Duration;

use anyhow::{Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, FixtureServer, Server, fixtures_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_importing_the_module_entry_is_recorded() -> Result<()> {
    let server = Server::start()?;
    let dir = fixtures_dir("npm");
    let site = FixtureServer::start(dir, &server.base, &server.key)?;
    let browser = Browser::start().await?;
    browser.client.goto(&site.url("app.html")).await?;
    let started = browser.wait_for("return window.__started", Duration::from_secs(15)).await?;
    ensure!(started == true, "init failed: {started}");
    let search = browser.client.find(Locator::Id("search")).await?;
    search.click().await?;
    search.send_keys("lamp").await?;
    browser.client.find(Locator::Css("#list li")).await?.click().await?;
    let stats = browser
        .eval_async("const d = arguments[arguments.length - 1]; window.__replay.flush().then(d, (e) => d({ error: String(e) }));")
        .await?;
    ensure!(stats["pending"] == 0 && stats["acked"].as_u64().unwrap_or(0) >= 1, "not delivered: {stats}");
    let s = &server.only_session()?;
    ensure!(s["user"] == "module-user@example.com" && s["release"] == "2.0.0", "app facts: {s}");
    ensure!(s["clicks"].as_u64() == Some(2), "both clicks (the search box, the list item): {s}");
    let id = s["id"].as_str().unwrap_or_default();
    let html = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
    ensure!(html.contains("Shop built with a bundler"), "the page is replayable: {html}");
    let url =
        browser.eval_async("const d = arguments[arguments.length - 1]; window.__replay.sessionUrl().then(d);").await?;
    ensure!(
        url.as_str().is_some_and(|u| u.starts_with(&server.base) && u.contains(id)),
        "sessionUrl points at the player on the server: {url}"
    );
    browser.close().await?;
    Ok(())
}
