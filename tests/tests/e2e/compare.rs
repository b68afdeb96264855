//! Staging vs production, side by side: the demo shop recorded once with 50 products as
//! `staging` and once with 50,000 as `production`, the same search typed in both. Compared with
//! the staging session, the production one differs most by its DOM size and its freeze, in the
//! API and in the viewer's environment panel.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, Server};

/// Records one session of the demo with `n` products in `environment`, in a tab of its own
/// (a new tab is a new session).
async fn record(browser: &Browser, server: &Server, n: u32, environment: &str) -> Result<()> {
    let c = &browser.client;
    let tab = c.new_window(true).await?;
    c.switch_to_window(tab.handle).await?;
    c.goto(&server.url(&format!("/demo?n={n}"))).await?;
    browser.eval(&format!("Replay.setEnvironment('{environment}'); return true;")).await?;
    browser.flush_within(Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.find(Locator::Css("#search")).await?.send_keys("Smart").await?;
    // Heartbeats resume after the re-renders; the freeze's end is recorded then.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    browser.flush_within(Duration::from_secs(60)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_differs_from_staging_by_its_dom_size_and_its_freeze() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    record(&browser, &server, 50, "staging").await?;
    record(&browser, &server, 50_000, "production").await?;

    let sessions = server.sessions()?;
    let production = sessions.iter().find(|s| s["environment"] == "production").context("the production session")?;
    ensure!(sessions.iter().any(|s| s["environment"] == "staging"), "{sessions:?}");
    let id = production["id"].as_str().unwrap_or_default().to_owned();
    ensure!(production["freezes"].as_u64().unwrap_or(0) >= 1, "production froze: {production}");

    let c = server.get_json(&format!("/api/v1/projects/1/sessions/{id}/compare"))?;
    ensure!(c["other_environment"] == "staging" && c["path"] == "/demo", "{c}");
    ensure!(c["peers"].as_array().map(Vec::len) == Some(1), "one staging session: {c}");
    let names: Vec<&str> =
        c["differences"].as_array().map(|d| d.iter().filter_map(|x| x["name"].as_str()).collect()).unwrap_or_default();
    let top: Vec<&str> = names.iter().take(4).copied().collect();
    ensure!(top.contains(&"dom_nodes"), "DOM size is among the top differences: {names:?}");
    ensure!(
        top.contains(&"freeze_ms") || top.contains(&"freezes"),
        "the freeze is among the top differences: {names:?}"
    );
    ensure!(c["session"]["dom_nodes"].as_u64() > c["peers"][0]["dom_nodes"].as_u64().map(|n| n * 10), "{c}");
    // Asked the other way round, from staging, the same two stand out.
    let staging =
        sessions.iter().find(|s| s["environment"] == "staging").and_then(|s| s["id"].as_str()).unwrap_or_default();
    let back = server.get_json(&format!("/api/v1/projects/1/sessions/{staging}/compare?environment=production"))?;
    let back_names: Vec<&str> = back["differences"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    ensure!(back_names.contains(&"dom_nodes") && back_names.contains(&"freeze_ms"), "{back_names:?}");

    browser.open_player(&server, &format!("session={id}")).await?;
    let panel = browser
        .wait_for(
            "const t = document.getElementById('panel-environment').textContent; return t.includes('Differs most') ? t : null",
            Duration::from_secs(30),
        )
        .await?;
    let panel = panel.as_str().unwrap_or_default();
    for needle in ["production vs staging: 1 session of /demo", "DOM size:", "Freeze time:"] {
        ensure!(panel.contains(needle), "environment panel lacks {needle:?}: {panel}");
    }
    browser.close().await
}
