//! Delivery in real Chromium against the real server: an outage, a reload, a closed tab, and a
//! server killed while 50 sessions stream to it. Nothing acknowledged may be lost.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, Server, Streams, UNLIMITED_CLIENT_RATE, check_acknowledged, first_difference, free_address};

async fn type_into_search(browser: &Browser, text: &str) -> Result<()> {
    let search = browser.client.find(Locator::Css("#search")).await?;
    search.clear().await?;
    // An empty filter is typed as a space taken back (WebKitWebDriver refuses an empty text),
    // so the page still gets its input events.
    search.send_keys(if text.is_empty() { " \u{E003}" } else { text }).await?;
    Ok(())
}

/// The stored batches in one line, for a failure message: each one's sequence number and
/// event count, with the freeze markers named.
fn batch_outline(events: &serde_json::Value) -> String {
    let batches = events["batches"].as_array().map_or(&[][..], Vec::as_slice);
    let parts: Vec<String> = batches
        .iter()
        .map(|b| {
            let n = b["events"].as_array().map_or(0, Vec::len);
            let freeze = if b.to_string().contains("freeze") { " freeze" } else { "" };
            format!("{}:{n}{freeze}", b["seq"])
        })
        .collect();
    parts.join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_is_complete_after_the_server_was_down_for_20_seconds() -> Result<()> {
    let listen = free_address()?;
    let server = Server::start_with(tempfile::tempdir()?, &listen, &[])?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo?n=300")).await?;
    let stats = browser.flush_within(Duration::from_secs(20)).await?;
    ensure!(stats["worker"] == true, "uploads should run in the worker: {stats}");

    let dir = server.kill();
    type_into_search(&browser, "Lamp").await?;
    browser.client.find(Locator::Css("#list li:nth-child(2)")).await?.click().await?;
    // Batches are cut every 5 s while the server is down; uploads fail and back off.
    tokio::time::sleep(Duration::from_secs(20)).await;
    type_into_search(&browser, "Lamp 2").await?;

    let server = Server::start_with(dir, &listen, &[])?;
    let stats = browser.flush_within(Duration::from_secs(90)).await?;
    ensure!(stats["acked"].as_u64().unwrap_or(0) >= 2, "{stats}");
    let live = browser.live_html().await?;
    let id = server.only_session_id()?;
    let replayed = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
    ensure!(replayed == live, "the replay after the outage differs from the page");
    browser.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_continues_the_same_session() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo?n=300")).await?;
    browser.flush_within(Duration::from_secs(20)).await?;
    type_into_search(&browser, "Mug").await?;
    browser.client.refresh().await?;
    browser.wait_for("return document.querySelectorAll('#list li').length === 300", Duration::from_secs(20)).await?;
    type_into_search(&browser, "Watch").await?;
    browser.flush_within(Duration::from_secs(20)).await?;
    let session = server.only_session()?;
    ensure!(session["pages"] == 2, "two page views expected in one session: {session}");
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    let live = browser.live_html().await?;
    let replayed = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
    ensure!(replayed == live, "the replay does not end on the reloaded page as the user saw it");
    // Before the reload, the first page view showed the "Mug" filter.
    let events = server.get_json(&format!("/api/v1/sessions/{id}/events"))?;
    ensure!(events["batches"].as_array().map_or(0, Vec::len) >= 3, "batches of both page views expected");
    browser.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_keystrokes_survive_closing_the_tab() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let c = &browser.client;
    let first = c.window().await?;
    let tab = c.new_window(true).await?;
    c.switch_to_window(tab.handle).await?;
    c.goto(&server.url("/demo?n=300")).await?;
    browser.flush_within(Duration::from_secs(20)).await?;
    type_into_search(&browser, "Kettle 1").await?;
    let rows = browser.eval("return document.querySelectorAll('#list li').length").await?;
    // Close right away: only the pagehide flush can deliver the last keystrokes.
    c.close_window().await?;
    c.switch_to_window(first).await?;
    let id = server.only_session_id()?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let html = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
        if html.matches("<li ").count() as u64 == rows.as_u64().unwrap_or(u64::MAX) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the last keystrokes never arrived: {} rows replayed, {rows} live", html.matches("<li ").count());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.close().await
}

/// An error in a buffer-mode page sends what it held: the session then replays to the page as
/// it is (`what` names the check in the failure).
async fn error_sends_the_buffer_that_replays_to_the_page(server: &Server, browser: &Browser, what: &str) -> Result<()> {
    browser.eval("setTimeout(() => { throw new Error('checkout failed'); }); return true;").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    browser.flush_within(Duration::from_secs(20)).await?;
    let id = server.only_session_id()?;
    let live = browser.live_html().await?;
    ensure!(server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))? == live, "{what}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_mode_sends_only_when_an_error_asks() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo?n=300&mode=buffer")).await?;
    browser.eval_async("const done = arguments[arguments.length - 1]; window.Replay.sessionUrl().then(done);").await?;
    type_into_search(&browser, "Lamp").await?;
    // Two flush ticks pass: in buffer mode nothing leaves the page.
    tokio::time::sleep(Duration::from_secs(11)).await;
    ensure!(server.sessions()?.is_empty(), "buffer mode sent data before anything asked for it");
    error_sends_the_buffer_that_replays_to_the_page(&server, &browser, "buffered replay differs from the page").await?;
    browser.close().await
}

/// Buffer mode starts each held window at a full snapshot, now walked in slices like the first
/// one (in one task it was a 200-300 ms long task per window on a big page): the window sent
/// when an error asks still replays to the page as it is, changes made during and after the
/// snapshots' slices included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_mode_windows_start_at_a_sliced_snapshot_and_replay_to_the_page() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo?n=1000&mode=buffer&buffer_seconds=1")).await?;
    browser.eval_async("const done = arguments[arguments.length - 1]; window.Replay.sessionUrl().then(done);").await?;
    // Style sheets changed through the CSSOM before the windows' snapshots: each snapshot resets
    // the replay's sheets, so each must carry them again (a `<style>` whose sheet is more than
    // its text, an adopted constructed sheet).
    browser
        .eval(
            "const s = document.createElement('style'); s.textContent = 'h1 { letter-spacing: 1px; }';
             document.head.append(s);
             setTimeout(() => {
               s.sheet.insertRule('h1 { color: rgb(180, 35, 24); }', 1);
               const c = new CSSStyleSheet();
               c.replaceSync('body { outline: 1px solid rgb(18, 183, 106); }');
               document.adoptedStyleSheets = [c];
             }, 100);
             return true;",
        )
        .await?;
    // Three flush ticks (5 s apart), each past the window: three snapshots, typing in between.
    for filter in ["Lamp", "", "Desk"] {
        type_into_search(&browser, filter).await?;
        tokio::time::sleep(Duration::from_millis(5200)).await;
    }
    // (A page frozen for a second would send its buffer: the page is kept small enough that a
    // loaded machine does not freeze it.)
    ensure!(server.sessions()?.is_empty(), "buffer mode sent data before anything asked for it");
    type_into_search(&browser, "Chair").await?;
    error_sends_the_buffer_that_replays_to_the_page(
        &server,
        &browser,
        "the buffered window replays differently from the page",
    )
    .await?;
    browser.close().await
}

/// Issue 15 (memory): the upload worker keeps every batch it was handed until its own garbage
/// collection, which an upload-only worker seldom needs; past 4 MB of batches the page replaces
/// it by a fresh one (recorder/js/transport.js, `renewWorker`). The replay must not notice:
/// nothing is lost or doubled across the switch, and batches after it are delivered too. The
/// same re-renders grow the wasm memory, so the recorder also moves to fresh wasm instances
/// (recorder/src/renew.rs; at the end of a big pass, core.js `S.afterEmit`): the replay must
/// not notice that either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_worker_is_replaced_after_big_batches_and_nothing_is_lost() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo?n=20000")).await?;
    browser.flush_within(Duration::from_secs(60)).await?;
    // Re-renders of thousands of rows: several MB of batches, more than one worker's share.
    let mut renewals = 0;
    let mut wasm_renewals = 0;
    for filter in ["a", "", "e", "", "o", ""] {
        type_into_search(&browser, filter).await?;
        let stats = browser.flush_within(Duration::from_secs(60)).await?;
        ensure!(stats["rejected"] == 0 && stats["droppedBatches"] == 0 && stats["pending"] == 0, "{stats}");
        ensure!(stats["worker"] == true, "uploads should run in a worker: {stats}");
        renewals = stats["workerRenewals"].as_u64().unwrap_or(0);
        wasm_renewals = stats["renewals"].as_u64().unwrap_or(0);
        if renewals >= 2 && wasm_renewals >= 2 {
            break;
        }
    }
    ensure!(renewals >= 1, "the upload worker was never replaced after MBs of batches");
    ensure!(wasm_renewals >= 1, "the recorder never moved to a fresh wasm instance after big passes");
    // After the switch: a small change still arrives, and the replay ends on the page as it is.
    type_into_search(&browser, "Lamp 1").await?;
    let stats = browser.flush_within(Duration::from_secs(60)).await?;
    ensure!(stats["rejected"] == 0 && stats["droppedBatches"] == 0, "{stats}");
    let id = server.only_session_id()?;
    let live = browser.live_html().await?;
    let replayed = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
    if replayed != live {
        let events = server.get_json(&format!("/api/v1/sessions/{id}/events"))?;
        let dump = std::env::temp_dir().join(format!("replay-upload-worker-{id}.json"));
        std::fs::write(&dump, events.to_string())?;
        bail!(
            "the replay differs from the page after the upload worker was replaced ({stats}); batches {} (all in {}): {}",
            batch_outline(&events),
            dump.display(),
            first_difference(&replayed, &live)
        );
    }
    let session = server.only_session()?;
    ensure!(session["dropped"] == 0, "events were dropped: {session}");
    browser.close().await
}

/// A re-render that grows the wasm memory gives it back when its DOM job ends: with the
/// periodic cut ten minutes away and no flush asked for, each big re-render (a second apart)
/// moves the recorder to a fresh instance. (Before, only the tick or a flush did: one renewal,
/// the final flush's.) The replay still equals the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_re_renders_give_the_wasm_memory_back_when_their_job_ends() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo?n=20000&flush_interval=600000")).await?;
    // The first flush takes the snapshot's renewal out of the count.
    let first = browser.flush_within(Duration::from_secs(60)).await?;
    let before = first["renewals"].as_u64().unwrap_or(0);
    for filter in ["a", "", "e", ""] {
        type_into_search(&browser, filter).await?;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let stats = browser.flush_within(Duration::from_secs(60)).await?;
    ensure!(stats["rejected"] == 0 && stats["droppedBatches"] == 0, "{stats}");
    let renewals = stats["renewals"].as_u64().unwrap_or(0).saturating_sub(before);
    ensure!(renewals >= 2, "4 big re-renders and a flush renewed the wasm instance {renewals} times: {stats}");
    let id = server.only_session_id()?;
    let live = browser.live_html().await?;
    let replayed = server.get_text(&format!("/api/v1/sessions/{id}/snapshot"))?;
    ensure!(replayed == live, "the replay differs from the page: {}", first_difference(&replayed, &live));
    browser.close().await
}

/// The upload worker's freeze watchdog checks on a timer that can run late (its thread busy
/// compressing a big batch, or starved of CPU on a loaded machine), with the page's next
/// heartbeat already waiting behind it. Fired then, the marker reports a freeze the page never
/// saw and takes a sequence number the page did not reserve (its gap was under 950 ms), which
/// the page's next real batch carries too. (The server used to keep the marker in place of
/// that batch, whose changes the replay then lacked; it now keeps both, see `replay_store`'s
/// `stored_seq`.) Run in node on a modelled event loop (tests/src/worker_loop.js), so the
/// timing is exact: the worker confirms a missed heartbeat in a task of its own, after what is
/// already queued; a page that really stops beating still gets its marker sent. And a check
/// starved through a real freeze (WebKit in CI) confirms only after the page has answered: the
/// batch and the re-armed marker the page posts a few ms before its heartbeat are proof of
/// life too, so the worker never fires that new marker (the page sends the freeze itself).
/// And a marker the heartbeats moved in time (`moveMarker`) goes out as the bytes wasm would
/// have armed at the last heartbeat (the server keeps the first of two equal numbers, so a
/// difference would pass unseen in the browser tests).
#[test]
fn a_late_watchdog_check_lets_a_queued_heartbeat_in_first() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir()?;
    for file in ["upload-worker.js", "upload-core.js"] {
        std::fs::copy(root.join("recorder/js").join(file), dir.path().join(file))?;
    }
    std::fs::copy(root.join("tests/src/worker_loop.js"), dir.path().join("worker_loop.js"))?;
    std::fs::write(dir.path().join("package.json"), r#"{ "type": "module" }"#)?;
    // A marker as wasm arms it, and the same marker armed 250 ms later: what the worker must
    // send after a heartbeat that only moved it in time.
    let marker_at = |ms: u64| {
        let mut b = replay_protocol::Batch::new("s1", "p1", 3, ms);
        b.events.push(replay_protocol::Event {
            t: 0,
            data: replay_protocol::EventData::Freeze(replay_protocol::Freeze::Started {
                url: "https://shop.example/cart".into(),
                last_action: "click button#pay".into(),
            }),
        });
        b
    };
    let armed = marker_at(1_796_000_000_000);
    let at = replay_protocol::codec::batch_times_at(&armed).ok_or_else(|| anyhow::anyhow!("epoch times move"))?;
    let case = serde_json::json!({
        "marker": replay_protocol::codec::encode_batch_compact(armed)?,
        "at": at,
        "time": 1_796_000_000_250u64,
        "expected": replay_protocol::codec::encode_batch_compact(marker_at(1_796_000_000_250))?,
    });
    let out = Command::new("node")
        .arg(dir.path().join("worker_loop.js"))
        .env("REPLAY_MOVE_CASE", case.to_string())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "node failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let fired: serde_json::Value = serde_json::from_str(stdout.trim())?;
    ensure!(fired["frozen"] == serde_json::json!([0]), "a page that stopped beating gets one marker: {fired}");
    ensure!(fired["late"] == serde_json::json!([]), "a late check fired past a queued heartbeat: {fired}");
    ensure!(
        fired["starved"] == serde_json::json!([]),
        "a check starved through the freeze fired the marker re-armed after it: {fired}"
    );
    ensure!(
        fired["silent"] == serde_json::json!([0]),
        "a page silent after its last batch gets one marker, 1 s after that batch: {fired}"
    );
    ensure!(
        fired["moved"] == fired["expected"] && fired["moved"].as_array().is_some_and(|m| !m.is_empty()),
        "the worker's marker, moved by a heartbeat, is the marker wasm arms at that time: {fired}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_sampled_out_sends_nothing() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo?n=100&sample=0")).await?;
    let stats =
        browser.eval_async("const done = arguments[arguments.length - 1]; window.Replay.flush().then(done);").await?;
    ensure!(stats["acked"] == 0, "{stats}");
    type_into_search(&browser, "Mug").await?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    ensure!(server.sessions()?.is_empty(), "a session outside the sample was recorded");
    browser.close().await
}

#[test]
fn graceful_shutdown_finishes_in_flight_uploads_and_loses_nothing() -> Result<()> {
    let listen = free_address()?;
    let server = Server::start_with(tempfile::tempdir()?, &listen, &UNLIMITED_CLIENT_RATE)?;
    let stop = Instant::now() + Duration::from_secs(4);
    let streams = Streams::start(std::slice::from_ref(&server.base), &server.key, "term", 20, stop);
    std::thread::sleep(Duration::from_millis(1000));
    let (clean, dir) = server.terminate()?;
    ensure!(clean, "replay-server did not exit cleanly on SIGTERM");
    let server = Server::start_with(dir, &listen, &UNLIMITED_CLIENT_RATE)?;
    let acked = streams.join();
    ensure!(acked.len() == 20, "every session should have delivered something");
    let total = check_acknowledged(&server, &acked)?;
    eprintln!("graceful shutdown test: {total} batches acknowledged, all present after restart");
    Ok(())
}

#[test]
fn sigkill_while_50_sessions_stream_loses_no_acknowledged_batch() -> Result<()> {
    let listen = free_address()?;
    let server = Server::start_with(tempfile::tempdir()?, &listen, &UNLIMITED_CLIENT_RATE)?;
    let stop = Instant::now() + Duration::from_secs(6);
    let streams = Streams::start(std::slice::from_ref(&server.base), &server.key, "kill", 50, stop);
    std::thread::sleep(Duration::from_millis(1500));
    let dir = server.kill();
    std::thread::sleep(Duration::from_millis(500));
    let server = Server::start_with(dir, &listen, &UNLIMITED_CLIENT_RATE)?;
    let acked = streams.join();
    ensure!(acked.len() == 50, "every session should have delivered something");
    let total = check_acknowledged(&server, &acked)?;
    eprintln!("sigkill test: {total} batches acknowledged across 50 sessions, all present after restart");
    Ok(())
}
