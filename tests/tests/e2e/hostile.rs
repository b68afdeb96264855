//! Hostile pages: a 1,000,000-character text node, 5,000 levels of nesting, 2,000 shadow
//! roots and an attribute storm (~100,000 changes per second) are recorded without errors in
//! the page; the per-node throttle drops and counts changes, leaves a note in the recording,
//! and still delivers every node's final state.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use replay_e2e::{Browser, FixtureServer, Server, fixtures_dir};

/// The session's last state (the snapshot API) is the live page's document.
async fn replay_equals_page(server: &Server, browser: &Browser) -> Result<()> {
    let live = browser.live_html().await?;
    let sessions = server.sessions()?;
    let id = sessions.first().and_then(|s| s["id"].as_str()).context("no session")?.to_owned();
    let snapshot = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
    ensure!(snapshot == live, "the replay differs from the page:\n{snapshot}\n---\n{live}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_page_is_recorded_with_bounded_throttled_output() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let dir = fixtures_dir("hostile");
    let site = FixtureServer::start(dir, &server.base, &server.key)?;
    let result = async {
        browser.client.goto(&site.url("hostile.html")).await?;
        browser.wait_for("return !!window.Replay", Duration::from_secs(10)).await?;
        let stats = browser
            .eval_async("const d = arguments[arguments.length - 1]; window.Replay.flush().then(d, (e) => d({ error: String(e) }));")
            .await?;
        ensure!(stats["acked"].as_u64().unwrap_or(0) >= 1, "snapshot not delivered: {stats}");
        let changes = browser
            .eval_async("const d = arguments[arguments.length - 1]; window.storm(1500).then(d);")
            .await?;
        ensure!(changes.as_u64().unwrap_or(0) > 50_000, "the storm was too small: {changes}");
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let stats = browser.flush_within(Duration::from_secs(30)).await?;
        ensure!(stats["error"] == "", "recorder error: {stats}");
        let errors = browser.eval("return window.__errors").await?;
        ensure!(errors == 0, "errors reached the page: {errors}");
        let live = browser.live_html().await?;

        let sessions = server.sessions()?;
        let session = sessions.first().context("no session")?;
        let id = session["id"].as_str().unwrap_or_default();
        ensure!(session["dropped"].as_u64().unwrap_or(0) > 0, "throttled changes not counted: {session}");
        let events = server.get_text(&format!("/api/v1/sessions/{id}/events"))?;
        ensure!(events.contains("throttled"), "no throttle note in the recording");
        // Final state kept: the document at the end equals the live page.
        let snapshot = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
        ensure!(snapshot == live, "final state differs from the live page");
        Ok(())
    }
    .await;
    browser.close().await?;
    result
}

/// A page that changed its builtins before the recorder loaded, as real ones do: MooTools'
/// `Array.from` (which wraps a string whole: nothing was recorded at all), and Zone.js
/// (Angular), stood in for by `hostile/builtins.html`, where the app starts the recorder from its
/// own zone and changes the DOM and the CSSOM from it. The recording replays to the page, and
/// none of the recorder's timers, listeners or observer callbacks runs in the app's zone (each
/// would be a change detection of the whole app: a mouse move, a slice, a heartbeat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_with_patched_builtins_and_zones_is_recorded_without_running_in_its_zone() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let site = FixtureServer::start(fixtures_dir("hostile"), &server.base, &server.key)?;
    let result = async {
        browser.client.goto(&site.url("builtins.html")).await?;
        browser.wait_for("return !!window.Replay && !!window.startInApp", Duration::from_secs(10)).await?;
        browser
            .eval_async("const d = arguments[arguments.length - 1]; window.startInApp().then(() => d(true), (e) => d(String(e)));")
            .await?;
        for n in [3, 5] {
            browser.eval(&format!("return window.changeInApp({n});")).await?;
            // Mouse moves, a click and a scroll: the recorder's listeners.
            browser
                .eval("for (let i = 0; i < 5; i++) document.body.dispatchEvent(new MouseEvent('mousemove', { clientX: 10 * i, clientY: 20, bubbles: true })); document.getElementById('add').click(); window.dispatchEvent(new Event('scroll')); return true;")
                .await?;
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        let stats = browser.flush_within(Duration::from_secs(20)).await?;
        ensure!(stats["error"] == "" && stats["acked"].as_u64().unwrap_or(0) >= 1, "{stats}");
        let ticks = browser.eval("return [window.__ticks, window.__tickSources, window.__errors];").await?;
        ensure!(ticks[0] == 0, "the recorder's callbacks ran in the app's zone: {ticks}");
        let seen = browser.eval("return window.__seenByPageFetch;").await?;
        let ours = seen.as_array().into_iter().flatten().filter(|u| u.as_str().is_some_and(|u| u.starts_with(&server.base)));
        ensure!(ours.count() == 0, "a request of the recorder went through the page's fetch (and its headers): {seen}");
        // A page's own `then` on every object (a thenable protocol of its own): `flush()` still
        // settles (it resolved to a plain object, a thenable then, and hung).
        let settled = browser
            .eval_async(
                "const d = arguments[arguments.length - 1];
                 const end = (v) => { delete Object.prototype.then; d(v); };
                 Object.prototype.then = function () {};
                 window.__zone_symbol__setTimeout(() => end('hung'), 5000);
                 Replay.flush().then((s) => end(s && typeof s.acked === 'number' ? 'settled' : 'odd: ' + String(s)));",
            )
            .await?;
        ensure!(settled == "settled", "flush() with Object.prototype.then: {settled}");
        replay_equals_page(&server, &browser).await
    }
    .await;
    browser.close().await?;
    result
}

/// A page whose content security policy refuses workers (`worker-src 'none'`): the recorder
/// loads its wasm with the page's `fetch` and uploads from the main thread (upload-core.js), and
/// the recording still replays to the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_refuses_workers_is_recorded_from_the_main_thread() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let site = FixtureServer::start(fixtures_dir("hostile"), &server.base, &server.key)?;
    let result = async {
        browser.client.goto(&site.url("noworker.html")).await?;
        browser.wait_for("return !!window.Replay", Duration::from_secs(10)).await?;
        let first = browser.flush_within(Duration::from_secs(20)).await?;
        ensure!(first["acked"].as_u64().unwrap_or(0) >= 1 && first["worker"] == false, "{first}");
        browser.eval("return window.addItems(40);").await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stats = browser.flush_within(Duration::from_secs(20)).await?;
        ensure!(stats["error"] == "" && stats["worker"] == false, "{stats}");
        let violations = browser.eval("return window.__violations;").await?;
        ensure!(
            violations.as_array().is_some_and(|v| v.iter().any(|d| d == "worker-src")),
            "the policy refused no worker: {violations}"
        );
        replay_equals_page(&server, &browser).await
    }
    .await;
    browser.close().await?;
    result
}

/// The real Zone.js (pinned in `tools/js`), as Angular apps load it: the app starts the
/// recorder from its zone and changes the DOM and the CSSOM from it. No task of the recorder's
/// (a slice, a flush, a heartbeat, a listener, the observer) runs in the app's zone, where each
/// would be a change detection of the whole app; the recording replays to the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_zone_js_sees_no_task_of_the_recorder_in_the_apps_zone() -> Result<()> {
    let zone = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/jstools/node_modules/zone.js/bundles/zone.umd.min.js");
    let zone = std::fs::read(&zone)
        .with_context(|| format!("{}: run `cargo xtask test` (npm ci in tools/js)", zone.display()))?;
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let site = FixtureServer::start(fixtures_dir("hostile"), &server.base, &server.key)?;
    site.put("zone.js", zone);
    let result = async {
        browser.client.goto(&site.url("zone.html")).await?;
        browser.wait_for("return !!window.Replay && !!window.startInApp && !!window.Zone", Duration::from_secs(10)).await?;
        browser.eval("window.__counting = true; return true;").await?;
        browser
            .eval_async("const d = arguments[arguments.length - 1]; window.startInApp().then(() => d(true), (e) => d(String(e)));")
            .await?;
        for n in [3, 5] {
            browser.eval(&format!("return window.changeInApp({n});")).await?;
            // Mouse moves, a click, a scroll and a key: the recorder's listeners.
            browser
                .eval("for (let i = 0; i < 5; i++) document.body.dispatchEvent(new MouseEvent('mousemove', { clientX: 10 * i, clientY: 20, bubbles: true })); document.getElementById('add').click(); window.dispatchEvent(new Event('scroll')); document.body.dispatchEvent(new KeyboardEvent('keydown', { key: 'a', bubbles: true })); return true;")
                .await?;
            // Past a heartbeat, a periodic flush and the CSSOM's own flush.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let stats = browser.flush_within(Duration::from_secs(20)).await?;
        ensure!(stats["error"] == "" && stats["acked"].as_u64().unwrap_or(0) >= 1, "{stats}");
        let tasks = browser.eval("window.__counting = false; return [window.__appTasks, window.__appSources, window.__errors];").await?;
        ensure!(tasks[0] == 0 && tasks[2] == serde_json::json!([]), "tasks of the recorder ran in the app's zone: {tasks}");
        replay_equals_page(&server, &browser).await
    }
    .await;
    browser.close().await?;
    result
}
