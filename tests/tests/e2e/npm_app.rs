//! The npm package as users install it: the sample app of `tests/npm-app/` (built by `cargo
//! xtask npm-app` into `target/npm-app/dist/`: the packed tarball installed with npm,
//! type-checked with TypeScript against the package's typings, bundled with esbuild) is served
//! from its own origin and loaded in Chromium; it sets every recorder option, and the session
//! it records is listed by the real server with what those options say.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, FixtureServer, Server};
use serde_json::Value;

/// The bundled app: `REPLAY_NPM_APP` (set by `cargo xtask test`), else `target/npm-app/dist`.
fn app_dir() -> Result<PathBuf> {
    let dir = std::env::var_os("REPLAY_NPM_APP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/npm-app/dist"));
    ensure!(dir.join("app.js").is_file(), "{} has no app.js: run `cargo xtask npm-app` first", dir.display());
    Ok(dir)
}

/// Payloads of the session's events with this one-letter tag (protocol/src/batch.rs).
fn events_of(events: &Value, tag: &str) -> Vec<Value> {
    let batches = events["batches"].as_array().cloned().unwrap_or_default();
    batches
        .iter()
        .flat_map(|b| b["events"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["data"].get(tag).cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_npm_sample_app_records_a_session_with_every_option() -> Result<()> {
    let dir = app_dir()?;
    let server = Server::start()?;
    let site = FixtureServer::start(dir, &server.base, &server.key)?;
    let browser = Browser::start().await?;
    browser.client.goto(&site.url("index.html")).await?;
    let started = browser.wait_for("return window.__started", Duration::from_secs(20)).await?;
    ensure!(started == true, "the app failed to start the recorder: {started}");
    let coupon = browser.client.find(Locator::Id("coupon")).await?;
    coupon.click().await?;
    coupon.send_keys("SPRING24").await?;
    let note = browser.client.find(Locator::Id("note")).await?;
    note.click().await?;
    note.send_keys("private-note-text").await?;
    let ignored = browser.client.find(Locator::Id("ignored")).await?;
    ignored.click().await?;
    ignored.send_keys("ignored-input-text").await?;
    browser.client.find(Locator::Css("#list li")).await?.click().await?;
    let stats = browser
        .eval_async(
            "const d = arguments[arguments.length - 1]; window.__app.flush().then(d, (e) => d({ error: String(e) }));",
        )
        .await?;
    ensure!(stats["pending"] == 0 && stats["acked"].as_u64().unwrap_or(0) >= 1, "not delivered: {stats}");
    // The wasm and the upload worker copied next to the bundle were found: uploads left from
    // the worker (without it the recorder would fall back to the page's thread).
    ensure!(stats["worker"] == true, "the upload worker did not start from the bundle's assets: {stats}");

    // Listed by the real server, with the app's facts.
    let s = server.only_session()?;
    ensure!(s["user"] == "npm-user@example.com" && s["release"] == "3.1.4", "app facts: {s}");
    let id = s["id"].as_str().context("session id")?.to_owned();
    let listed = server.get_json("/api/v1/sessions")?;
    ensure!(listed.to_string().contains(&id), "the session list names the session: {listed}");

    // Privacy options: selectors and data-replay-* attributes.
    let html = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
    ensure!(html.contains("Shop bundled with esbuild"), "the page is replayable: {html}");
    for hidden in ["masked-by-selector", "masked-by-attribute", "blocked-by-selector", "blocked-by-attribute"] {
        ensure!(!html.contains(hidden), "{hidden} was recorded: {html}");
    }
    let events = server.get_json(&format!("/api/v1/sessions/{id}/events"))?;
    let all = events.to_string();
    ensure!(all.contains("SPRING24"), "the unmasked field (`unmask`) is recorded as typed");
    ensure!(!all.contains("private-note-text"), "a field not unmasked is masked");
    ensure!(!all.contains("ignored-input-text"), "the ignored field (`ignore`) sends nothing");

    // Console levels: warn captured, log not.
    let console = events_of(&events, "console");
    let texts = serde_json::to_string(&console)?;
    ensure!(texts.contains("console-warn-captured"), "warn is captured: {texts}");
    ensure!(!texts.contains("console-log-not-captured"), "log is not: {texts}");
    // The network allow-list: the allow-listed request's response body is recorded.
    let network = events_of(&events, "network");
    ensure!(
        network.iter().any(|n| n["response_body"].as_str().is_some_and(|b| b.contains("allow-listed-response-body"))),
        "the allow-listed response body: {network:?}"
    );
    // The app's event and captured error.
    ensure!(all.contains("sample-app-started") && all.contains("sample captured error"), "custom event and error");

    let url =
        browser.eval_async("const d = arguments[arguments.length - 1]; window.__app.sessionUrl().then(d);").await?;
    ensure!(
        url.as_str().is_some_and(|u| u.starts_with(&server.base) && u.contains(&id)),
        "sessionUrl points at the player on the server: {url}"
    );
    browser.close().await?;
    Ok(())
}
