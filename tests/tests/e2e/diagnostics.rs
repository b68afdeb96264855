//! Diagnostics in real Chromium against the real server: the two freeze scenarios (the demo's
//! 2-second "best value" computation, and a tab killed while stuck in an endless loop), and the
//! capture of console, errors, network and environment, each checked in the stored session and
//! in the viewer's panels.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use fantoccini::Locator;
use replay_e2e::{Browser, Server};
use serde_json::Value;

/// Every event of a session as (absolute time, tag, payload), in replay order; and the
/// (page, seq) of every batch.
struct Recorded {
    events: Vec<(u64, String, Value)>,
    seqs: Vec<(String, u64)>,
}

impl Recorded {
    fn load(server: &Server, id: &str) -> Result<Recorded> {
        let v = server.get_json(&format!("/api/v1/sessions/{id}/events"))?;
        let mut events = Vec::new();
        let mut seqs = Vec::new();
        for b in v["batches"].as_array().cloned().unwrap_or_default() {
            let start = b["start"].as_u64().unwrap_or(0);
            seqs.push((b["page"].as_str().unwrap_or_default().to_owned(), b["seq"].as_u64().unwrap_or(0)));
            for e in b["events"].as_array().cloned().unwrap_or_default() {
                let t = start + e["offset_ms"].as_u64().unwrap_or(0);
                if let Some((tag, payload)) = e["data"].as_object().and_then(|o| o.iter().next()) {
                    events.push((t, tag.clone(), payload.clone()));
                }
            }
        }
        Ok(Recorded { events, seqs })
    }

    /// Payloads of events with this tag (the readable names of protocol/src/readable.rs).
    fn of(&self, tag: &str) -> Vec<&Value> {
        self.events.iter().filter(|(_, t, _)| t == tag).map(|(_, _, v)| v).collect()
    }

    fn timed(&self, tag: &str) -> Vec<(u64, &Value)> {
        self.events.iter().filter(|(_, t, _)| t == tag).map(|(at, _, v)| (*at, v)).collect()
    }

    /// The freezes' `started` events (with their times) and `ended` payloads.
    fn freezes(&self) -> (Vec<(u64, &Value)>, Vec<&Value>) {
        let started = self.timed("freeze").into_iter().filter(|(_, v)| v.get("started").is_some()).collect();
        let ended = self.of("freeze").into_iter().filter_map(|v| v.get("ended")).collect();
        (started, ended)
    }
}

/// The demo with 2,000 products: a few heartbeats go by, `before` runs in the page (if any),
/// the user clicks "Find best value" (~2 s of CPU), and once the freeze's end is recorded
/// (Long Animation Frames and sampled stacks in) the session is flushed: its id and events.
async fn best_value_burn(server: &Server, browser: &Browser, before: Option<&str>) -> Result<(String, Recorded)> {
    browser.client.goto(&server.url("/demo?n=2000")).await?;
    let stats = browser.flush_within(Duration::from_secs(20)).await?;
    ensure!(stats["worker"] == true, "the watchdog needs the upload worker: {stats}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    if let Some(script) = before {
        browser.eval(script).await?;
    }
    browser.client.find(Locator::Css("#best")).await?.click().await?;
    browser.wait_for("return document.getElementById('best-result').textContent", Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    browser.flush_within(Duration::from_secs(20)).await?;
    let id = server.only_session_id()?;
    let rec = Recorded::load(server, &id)?;
    Ok((id, rec))
}

async fn panel_text(browser: &Browser, panel: &str) -> Result<String> {
    let v = browser.eval(&format!("return document.getElementById('panel-{panel}').textContent")).await?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_value_freeze_is_recorded_with_its_duration_culprit_and_the_click_before_it() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let (id, rec) = best_value_burn(&server, &browser, None).await?;
    let (started, ended) = rec.freezes();
    ensure!(started.len() == 1 && ended.len() == 1, "expected one freeze, got {started:?} / {ended:?}");
    let (frozen_at, marker) = started[0];
    let duration = ended[0]["duration"].as_u64().unwrap_or(0);
    ensure!((1800..=2200).contains(&duration), "the freeze lasted ~2 s, recorded {duration} ms");
    let culprit = &ended[0]["culprits"][0];
    ensure!(culprit["function"] == "computeBestValue", "culprit should be computeBestValue: {}", ended[0]);
    ensure!(culprit["line"].as_u64().unwrap_or(0) > 0, "the culprit has a line: {culprit}");
    ensure!(marker["started"]["last_action"] == "click button#best", "the marker names the click: {marker}");
    let clicks = rec.timed("click");
    ensure!(clicks.iter().any(|(t, _)| *t <= frozen_at + 300), "the click is recorded before the freeze");
    // The worker's marker and the page's own batches never collide: sequence numbers have no gaps.
    let mut seqs: Vec<u64> = rec.seqs.iter().map(|(_, s)| *s).collect();
    seqs.sort_unstable();
    ensure!(seqs == (0..seqs.len() as u64).collect::<Vec<_>>(), "sequence numbers with gaps: {seqs:?}");

    let row = server.get_json(&format!("/api/v1/sessions/{id}"))?;
    ensure!(row["freezes"] == 1 && row["never_recovered"] == false, "{row}");
    let longest = row["longest_freeze_ms"].as_u64().unwrap_or(0);
    ensure!(longest == duration, "index longest freeze {longest} vs {duration}");
    ensure!(row["freeze_culprit"].as_str().unwrap_or_default().starts_with("computeBestValue ("), "{row}");

    // What a support engineer sees.
    browser.open_player(&server, &format!("session={id}")).await?;
    let bands = browser.eval("return document.querySelectorAll('#markers i.freeze').length").await?;
    ensure!(bands == 1, "one freeze band on the timeline, got {bands}");
    let tip = browser.eval("return document.querySelector('#markers i.freeze').dataset.tip").await?;
    ensure!(tip.as_str().unwrap_or_default().contains("computeBestValue"), "band tip: {tip}");
    let explained = panel_text(&browser, "freezes").await?;
    for needle in ["Froze for 2.", "click button#best", "computeBestValue", "Scripts that ran"] {
        ensure!(explained.contains(needle), "freeze panel lacks {needle:?}: {explained}");
    }
    let list = server.get_text("/viewer/p/1/")?;
    ensure!(list.contains("computeBestValue"), "the session list shows the culprit");
    browser.close().await
}

/// A user clicks again while the page is frozen (a rage click). That click is handled right
/// after the freeze, before the page's next heartbeat: its cut reserves the freeze's marker and
/// the page arms a new one. The heartbeat that then ends the gap must not reserve that new
/// marker too: one freeze, one `freeze_started`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_during_a_freeze_leaves_one_freeze() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    // The second click is queued when the first starts burning (a task due at once, so it runs
    // as soon as the burn ends, ahead of the heartbeat's timer).
    let second_click = "document.addEventListener('click', (e) => { if (e.target.id === 'best') \
         setTimeout(() => document.getElementById('count').click(), 0); }, { capture: true, once: true }); \
         return true;";
    let (id, rec) = best_value_burn(&server, &browser, Some(second_click)).await?;
    let (started, ended) = rec.freezes();
    ensure!(started.len() == 1 && ended.len() == 1, "one freeze, got {started:?} / {ended:?}");
    ensure!(started[0].1["started"]["last_action"] == "click button#best", "the marker names the first click");
    let clicks = rec.of("click");
    ensure!(clicks.len() >= 2, "both clicks are recorded: {clicks:?}");
    let row = server.get_json(&format!("/api/v1/sessions/{id}"))?;
    ensure!(row["freezes"] == 1 && row["never_recovered"] == false, "{row}");
    browser.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_killed_while_frozen_is_marked_never_recovered() -> Result<()> {
    let server = Server::start_with(tempfile::tempdir()?, "127.0.0.1:0", &[("REPLAY_FREEZE_TIMEOUT_SECS", "3")])?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo/lab")).await?;
    browser.flush_within(Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Clicked from a timer so that the WebDriver call returns before the page locks up.
    browser.eval("setTimeout(() => document.getElementById('loop').click(), 50); return true;").await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let killed = browser.kill()?;
    ensure!(killed > 0, "no Chromium process to kill");

    let id = server.only_session_id()?;
    let rec = Recorded::load(&server, &id)?;
    ensure!(!rec.of("click").is_empty(), "the click that froze the page was delivered");
    let markers = rec.of("freeze");
    ensure!(markers.len() == 1, "exactly the freeze_started marker: {markers:?}");
    let marker = &markers[0]["started"];
    ensure!(marker["last_action"] == "click button#loop", "{marker}");
    ensure!(marker["url"].as_str().unwrap_or_default().ends_with("/demo/lab"), "{marker}");
    let (click_at, _) = rec.timed("click")[0];
    let (frozen_at, _) = rec.timed("freeze")[0];
    ensure!(frozen_at >= click_at, "the marker is at or after the click");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = server.get_json(&format!("/api/v1/sessions/{id}"))?;
        if row["never_recovered"] == true {
            ensure!(row["freezes"] == 1, "{row}");
            break;
        }
        if Instant::now() > deadline {
            bail!("the session was never marked never recovered: {row}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let filtered = server.get_json("/api/v1/sessions?never_recovered=true")?;
    ensure!(filtered["sessions"].as_array().map_or(0, Vec::len) == 1, "{filtered}");
    let list = server.get_text("/viewer/p/1/?never_recovered=1")?;
    ensure!(list.contains("froze, never recovered"), "the session list says it");

    let viewer = Browser::start().await?;
    viewer.open_player(&server, &format!("session={id}")).await?;
    let explained = panel_text(&viewer, "freezes").await?;
    ensure!(explained.contains("never recovered") && explained.contains("click button#loop"), "{explained}");
    let band = viewer.eval("return document.querySelectorAll('#markers i.freeze.never-recovered').length").await?;
    ensure!(band == 1, "a never-recovered band on the timeline");
    viewer.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_mode_sends_its_buffer_when_the_page_freezes() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    // A freeze the page recovers from: once it answers again, the buffer goes out.
    browser.client.goto(&server.url("/demo?n=2000&mode=buffer")).await?;
    browser.eval_async("const done = arguments[arguments.length - 1]; window.Replay.sessionUrl().then(done);").await?;
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    ensure!(server.sessions()?.is_empty(), "buffer mode sent data before anything asked for it");
    browser.client.find(Locator::Css("#best")).await?.click().await?;
    browser.wait_for("return document.getElementById('best-result').textContent", Duration::from_secs(20)).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let row = loop {
        if let Some(row) = server.sessions()?.first().cloned()
            && row["freezes"] == 1
            && row["clicks"].as_u64().unwrap_or(0) >= 1
        {
            break row;
        }
        if Instant::now() > deadline {
            bail!("the freeze did not send the buffer: {:?}", server.sessions()?);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    ensure!(row["never_recovered"] == false, "{row}");
    browser.close().await?;

    // A freeze the page never recovers from: the worker sends its copy of the buffer, then the
    // marker, while the page is stuck; the tab is then killed.
    let server = Server::start_with(tempfile::tempdir()?, "127.0.0.1:0", &[("REPLAY_FREEZE_TIMEOUT_SECS", "3")])?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo/lab?mode=buffer")).await?;
    browser.eval_async("const done = arguments[arguments.length - 1]; window.Replay.sessionUrl().then(done);").await?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    ensure!(server.sessions()?.is_empty(), "buffer mode sent data before anything asked for it");
    browser.eval("setTimeout(() => document.getElementById('loop').click(), 50); return true;").await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(browser.kill()? > 0, "no Chromium process to kill");
    let id = server.only_session_id()?;
    let rec = Recorded::load(&server, &id)?;
    ensure!(!rec.of("full_snapshot").is_empty(), "the buffer starts with a full snapshot");
    ensure!(!rec.of("click").is_empty(), "the click that froze the page was delivered");
    let markers = rec.of("freeze");
    ensure!(markers.len() == 1 && markers[0]["started"]["last_action"] == "click button#loop", "{markers:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get_json(&format!("/api/v1/sessions/{id}"))?["never_recovered"] != true {
        ensure!(Instant::now() < deadline, "the session was never marked never recovered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// What the page saw from each request, and what it sent, for the network checks.
const PAGE_ACTIVITY: &str = r#"
const done = arguments[arguments.length - 1];
(async () => {
  const out = {};
  Replay.identify('ada@example.com', { plan: 'pro' });
  Replay.setRelease('1.2.3');
  Replay.setEnvironment('staging');
  Replay.setFlags({ newCheckout: true });
  console.log('hello', { a: 1, nested: { b: [1, 2, 3] } });
  console.info('x'.repeat(5000));
  console.warn('careful');
  console.error(new Error('console boom'));
  console.assert(false, 'assert failed');
  console.assert(true, 'never recorded');
  // Errors from a page script (errors of WebDriver's own script are muted as cross-origin).
  const script = document.createElement('script');
  script.textContent = "function kaboom() { throw new Error('uncaught kaboom'); }\n" +
    "for (let i = 0; i < 3; i++) setTimeout(kaboom, 0);\n" +
    "Promise.reject(new Error('rejected promise'));";
  document.body.append(script);
  const img = document.createElement('img');
  img.src = '/missing-picture.png';
  document.body.append(img);
  Replay.captureError(new Error('captured one'));
  // A script whose URL carries a token (named by `sourceURL`): its frames in stacks name it.
  const app = document.createElement('script');
  app.textContent = "function tokenThrow() { throw new Error('thrown by app'); }\n" +
    "setTimeout(tokenThrow, 0);\n(function tokenWarn() { console.warn('warned by app'); })();\n" +
    '//# sourceURL=' + location.origin + '/static/app.js?token=STACKTOKEN5';
  document.body.append(app);
  // The wrapped APIs keep the browser's names and argument counts.
  const shape = (f) => f.name + '/' + f.length;
  out.shapes = [fetch, XMLHttpRequest.prototype.open, XMLHttpRequest.prototype.send, console.log,
    history.pushState, CSSStyleSheet.prototype.insertRule, navigator.sendBeacon].map(shape).join(' ');
  // A reactive object (Vue's kind: a Proxy that tracks what is read of it) logged by the page:
  // read through its raw object, nothing tracked.
  const tracked = [];
  const state = new Proxy({ count: 7, items: [1, 2] }, {
    get(t, k) { if (k === '__v_raw') return t; tracked.push(String(k)); return t[k]; },
    ownKeys(t) { tracked.push('(keys)'); return Reflect.ownKeys(t); },
  });
  console.log('reactive', state);
  out.tracked = tracked.join(' ');
  // A recorded node copied by the page (`{...node}`, `Object.assign`) carries no recorder id.
  const copied = (n) => Object.getOwnPropertySymbols({ ...n }).length + Object.getOwnPropertySymbols(Object.assign({}, n)).length;
  out.copiedIds = copied(document.body) + copied(document.body.firstElementChild) + (Object.getOwnPropertySymbols(document.body).length ? 0 : 100);

  const echo = '/demo/echo';
  out.notFound = (await fetch(echo + '?status=404')).status;
  const captured = await fetch(echo + '?capture=1', {
    method: 'POST', body: JSON.stringify({ hello: 'world' }),
    headers: { 'content-type': 'application/json', authorization: 'Bearer secret-token', 'x-custom': 'yes' },
  });
  out.capturedBody = await captured.json();
  const form = new FormData();
  form.append('field', 'value');
  form.append('file', new Blob(['0123456789']), 'f.txt');
  out.form = await (await fetch(echo, { method: 'POST', body: form })).json();
  out.blob = await (await fetch(echo, { method: 'PUT', body: new Blob(['x'.repeat(1234)]) })).json();
  out.buffer = await (await fetch(echo, { method: 'POST', body: new Uint8Array(77) })).json();
  out.request = await (await fetch(new Request(echo, { method: 'POST', body: 'from a Request' }))).json();
  out.keepalive = (await fetch(echo, { method: 'POST', body: 'bye', keepalive: true })).status;
  // The page reads a response as a stream while the recorder reads a clone (allow-listed).
  const streamed = await fetch(echo + '?capture=1&streamed=1');
  const reader = streamed.body.getReader();
  let streamedBytes = 0;
  for (;;) { const { done: end, value } = await reader.read(); if (end) break; streamedBytes += value.length; }
  out.streamedBytes = streamedBytes;
  const ctrl = new AbortController();
  const slow = fetch(echo + '?delay_ms=3000', { signal: ctrl.signal });
  setTimeout(() => ctrl.abort(), 100);
  try { await slow; out.abort = 'not aborted'; } catch (e) { out.abort = e.name; }
  try { await fetch('http://127.0.0.1:9/unreachable'); out.failure = 'no failure'; } catch (e) { out.failure = e.name; }
  out.xhr = await new Promise((resolve) => {
    const x = new XMLHttpRequest();
    x.open('POST', echo + '?status=201');
    x.setRequestHeader('x-from', 'xhr');
    x.onload = () => resolve(x.status + ' ' + JSON.parse(x.responseText).bytes);
    x.send('abc');
  });
  out.xhrAbort = await new Promise((resolve) => {
    const x = new XMLHttpRequest();
    x.open('GET', echo + '?delay_ms=3000');
    x.onabort = () => resolve('aborted');
    x.send();
    setTimeout(() => x.abort(), 100);
  });
  out.beacon = navigator.sendBeacon(echo + '?beacon=1', 'beacon-data');
  // One XHR reused: a request its `open` ends (no event), then two in turn.
  out.reused = await new Promise((resolve) => {
    const x = new XMLHttpRequest();
    x.open('GET', echo + '?delay_ms=3000&reuse=1');
    x.send();
    setTimeout(() => {
      x.open('GET', echo + '?status=202&reuse=2');
      x.onload = () => {
        const first = x.status;
        x.onload = () => resolve(first + ' ' + x.status);
        x.open('GET', echo + '?status=203&reuse=3');
        x.send();
      };
      x.send();
    }, 100);
  });
  return out;
})().then(done, (e) => done({ error: String(e && e.stack || e) }));
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_errors_network_and_environment_are_recorded_and_shown() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    browser.client.goto(&server.url("/demo/lab")).await?;
    browser.flush_within(Duration::from_secs(20)).await?;
    browser.eval("Replay.init({ networkAllowList: ['/demo/echo?capture=1'] }); return true;").await?;
    let page = browser.eval_async(PAGE_ACTIVITY).await?;
    // The wrappers changed nothing the page sees.
    ensure!(page["error"].is_null(), "page script failed: {page}");
    ensure!(page["notFound"] == 404, "{page}");
    ensure!(page["capturedBody"]["method"] == "POST", "{page}");
    ensure!(page["form"]["content_type"].as_str().unwrap_or_default().starts_with("multipart/form-data"), "{page}");
    ensure!(page["blob"]["bytes"] == 1234 && page["buffer"]["bytes"] == 77, "{page}");
    ensure!(page["request"]["bytes"] == 14, "{page}");
    ensure!(page["keepalive"] == 200 && page["streamedBytes"].as_u64().unwrap_or(0) > 0, "{page}");
    ensure!(page["abort"] == "AbortError" && page["failure"] == "TypeError", "{page}");
    ensure!(page["xhr"] == "201 3" && page["xhrAbort"] == "aborted" && page["beacon"] == true, "{page}");
    ensure!(page["reused"] == "202 203", "{page}");
    let shapes = "fetch/1 open/2 send/0 log/0 pushState/2 insertRule/1 sendBeacon/1";
    ensure!(page["shapes"] == shapes, "the wrappers' names and lengths are the browser's: {page}");
    ensure!(page["tracked"] == "", "the recorder read a reactive object through its proxy: {page}");
    ensure!(page["copiedIds"] == 0, "a page's copy of a recorded node has no recorder id: {page}");
    tokio::time::sleep(Duration::from_millis(6000)).await; // repeated errors are reported every 5 s
    browser.flush_within(Duration::from_secs(20)).await?;

    let id = server.only_session_id()?;
    let rec = Recorded::load(&server, &id)?;

    // Console: levels, bounded arguments, stacks where they matter.
    let console = rec.of("console");
    let find = |level: &str| console.iter().filter(|c| c["level"] == level).copied().collect::<Vec<_>>();
    let log = find("log");
    ensure!(log.iter().any(|c| c["args"][0] == "hello" && c["args"][1] == "{a: 1, nested: {b: [1, 2, 3]}}"), "{log:?}");
    ensure!(log.iter().any(|c| c["args"][0] == "reactive" && c["args"][1] == "{count: 7, items: [1, 2]}"), "{log:?}");
    let info = find("info");
    ensure!(info.iter().any(|c| c["args"][0].as_str().map_or(0, str::len) <= 1004), "long argument bounded");
    ensure!(find("warn").iter().any(|c| c["args"][0] == "careful" && !c["stack"].as_str().unwrap_or("").is_empty()));
    ensure!(find("error").iter().any(|c| c["args"][0] == "Error: console boom"));
    let asserts = find("assert");
    ensure!(asserts.len() == 1 && asserts[0]["args"][0] == "assert failed", "{asserts:?}");

    // Errors: uncaught (deduplicated with a count), rejection, resource, captured.
    let errors = rec.of("error");
    let kaboom: u64 = errors
        .iter()
        .filter(|e| e["message"].as_str().unwrap_or_default().contains("uncaught kaboom"))
        .map(|e| e["count"].as_u64().unwrap_or(0))
        .sum();
    let kaboom_events = errors.iter().filter(|e| e["message"].as_str().unwrap_or_default().contains("kaboom")).count();
    ensure!(kaboom == 3 && kaboom_events < 3, "3 occurrences in fewer events: {errors:?}");
    let uncaught = errors.iter().find(|e| e["kind"] == "uncaught").expect("an uncaught error");
    ensure!(
        uncaught["stack"].as_str().unwrap_or_default().contains("kaboom") && uncaught["line"].as_u64().unwrap_or(0) > 0,
        "{uncaught}"
    );
    ensure!(errors.iter().any(|e| e["kind"] == "rejection" && e["message"] == "Error: rejected promise"), "{errors:?}");
    ensure!(
        errors
            .iter()
            .any(|e| e["kind"] == "resource"
                && e["source"].as_str().unwrap_or_default().ends_with("/missing-picture.png")),
        "{errors:?}"
    );
    ensure!(errors.iter().any(|e| e["kind"] == "captured" && e["message"] == "Error: captured one"), "{errors:?}");
    // A token in a script's URL is scrubbed in stacks (errors and console), each frame's
    // position kept.
    let all = server.get_text(&format!("/api/v1/sessions/{id}/events"))?;
    ensure!(!all.contains("STACKTOKEN5"), "a token in a script URL was sent");
    let thrown = errors.iter().find(|e| e["message"].as_str().unwrap_or_default().contains("thrown by app"));
    let thrown_stack = thrown.map_or("", |e| e["stack"].as_str().unwrap_or_default());
    ensure!(thrown_stack.contains("/static/app.js?token=REDACTED:1:"), "{thrown:?}");
    let warned = find("warn").into_iter().find(|c| c["args"][0] == "warned by app");
    ensure!(
        warned.is_some_and(|c| c["stack"].as_str().unwrap_or_default().contains("app.js?token=REDACTED:")),
        "{warned:?}"
    );

    // Network.
    let network = rec.of("network");
    let find_req = |pred: &dyn Fn(&Value) -> bool| network.iter().find(|n| pred(n)).copied();
    ensure!(network.iter().all(|n| !n["url"].as_str().unwrap_or_default().contains("/api/v1/ingest")), "own uploads");
    ensure!(find_req(&|n| n["status"] == 404 && n["method"] == "GET").is_some(), "{network:?}");
    let captured = find_req(&|n| n["method"] == "POST" && n["url"].as_str().unwrap_or("").ends_with("capture=1"))
        .ok_or_else(|| anyhow::anyhow!("allow-listed POST missing: {network:?}"))?;
    let headers = captured["request_headers"].to_string();
    ensure!(headers.contains("x-custom") && !headers.to_lowercase().contains("authorization"), "{headers}");
    ensure!(!headers.contains("secret-token"), "{headers}");
    ensure!(captured["request_body"] == r#"{"hello":"world"}"#, "{captured}");
    ensure!(captured["response_body"].as_str().unwrap_or_default().contains(r#""method":"POST""#), "{captured}");
    let response_headers = captured["response_headers"].to_string();
    ensure!(response_headers.contains("x-lab") && !response_headers.contains("set-cookie"), "{response_headers}");
    ensure!(find_req(&|n| n["method"] == "PUT" && n["request_size"] == 1234).is_some(), "blob size: {network:?}");
    ensure!(find_req(&|n| n["request_size"] == 77).is_some(), "buffer size");
    ensure!(
        find_req(&|n| n["method"] == "POST" && n["request_size"].as_u64().unwrap_or(0) > 10 && n["request_body"] == "")
            .is_some(),
        "form data size, no body without allow-list"
    );
    ensure!(find_req(&|n| n["kind"] == "fetch" && n["aborted"] == true).is_some(), "aborted fetch");
    ensure!(find_req(&|n| n["failed"] == true && n["url"].as_str().unwrap_or("").contains(":9/")).is_some(), "failed");
    ensure!(find_req(&|n| n["kind"] == "xhr" && n["status"] == 201 && n["request_size"] == 3).is_some(), "xhr");
    ensure!(find_req(&|n| n["kind"] == "xhr" && n["aborted"] == true).is_some(), "aborted xhr");
    ensure!(find_req(&|n| n["kind"] == "beacon" && n["request_size"] == 11).is_some(), "beacon");
    // The reused XHR: each request once, the one its `open` ended as aborted.
    let reused = |n: u8| {
        network
            .iter()
            .filter(|r| r["kind"] == "xhr" && r["url"].as_str().unwrap_or_default().ends_with(&format!("reuse={n}")))
            .copied()
            .collect::<Vec<_>>()
    };
    let (first, second, third) = (reused(1), reused(2), reused(3));
    ensure!(first.len() == 1 && first[0]["aborted"] == true, "ended by open: {first:?}");
    ensure!(second.len() == 1 && second[0]["status"] == 202, "{second:?}");
    ensure!(third.len() == 1 && third[0]["status"] == 203, "{third:?}");
    ensure!(find_req(&|n| n["duration"].as_u64().unwrap_or(0) >= 90 && n["aborted"] == true).is_some(), "durations");

    // Environment and app facts.
    let env = rec.of("environment");
    ensure!(env.len() == 1, "{env:?}");
    let env = env[0];
    ensure!(env["browser"].as_str().unwrap_or_default().contains("Chrome"), "{env}");
    ensure!(!env["browser_version"].as_str().unwrap_or_default().is_empty() && env["os"] == "Linux", "{env}");
    ensure!(env["cpu_cores"].as_u64().unwrap_or(0) > 0 && env["device_pixel_ratio"].as_f64().unwrap_or(0.0) > 0.0);
    ensure!(!env["language"].as_str().unwrap_or_default().is_empty(), "{env}");
    ensure!(!env["timezone"].as_str().unwrap_or_default().is_empty(), "{env}");
    let row = server.get_json(&format!("/api/v1/sessions/{id}"))?;
    ensure!(row["user"] == "ada@example.com" && row["release"] == "1.2.3" && row["environment"] == "staging", "{row}");
    ensure!(row["browser"].as_str().unwrap_or_default().contains("Chrome"), "{row}");
    ensure!(rec.of("app").iter().any(|f| f["flags"] == r#"{"newCheckout":true}"#), "flags");

    // Error groups: one group per fingerprint, with its count and session.
    let groups = server.get_json("/api/v1/errors")?;
    let kaboom_group = groups["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["message"].as_str().unwrap_or_default().contains("uncaught kaboom")))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no group for kaboom: {groups}"))?;
    ensure!(kaboom_group["count"] == 3 && kaboom_group["recent_sessions"][0] == id.as_str(), "{kaboom_group}");

    // The viewer's panels and the error groups page.
    browser.open_player(&server, &format!("session={id}")).await?;
    let console_panel = panel_text(&browser, "console").await?;
    ensure!(console_panel.contains("hello") && console_panel.contains("careful"), "{console_panel}");
    let network_panel = panel_text(&browser, "network").await?;
    ensure!(network_panel.contains("/demo/echo") && network_panel.contains("aborted"), "{network_panel}");
    let errors_panel = panel_text(&browser, "errors").await?;
    ensure!(errors_panel.contains("uncaught kaboom") && errors_panel.contains("missing-picture.png"), "{errors_panel}");
    let env_panel = panel_text(&browser, "environment").await?;
    ensure!(env_panel.contains("Chrome") && env_panel.contains("ada@example.com"), "{env_panel}");
    browser.open_viewer(&server, "/viewer/errors").await?;
    let page = browser.eval("return document.getElementById('errors').textContent").await?;
    ensure!(page.as_str().unwrap_or_default().contains("uncaught kaboom"), "errors page: {page}");
    browser.close().await
}
