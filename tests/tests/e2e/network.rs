//! Network detail end to end: a page on one loopback origin makes a same-origin fetch with
//! `Timing-Allow-Origin` (its Resource Timing phases and sizes recorded), a cross-origin fetch
//! without it (timing restricted, not zeros), a request the server drops (a network error), one
//! to a closed port and one refused by CORS at a second origin (each a cross-origin failure,
//! which Chromium and Firefox do not tell apart; WebKit names CORS), and talks to a WebSocket echo server on the second origin
//! twice: once at an allow-listed URL (payloads captured, secret fields redacted) and once not
//! (counts and sizes only). Checked in the events API's readable JSON and in the player's
//! network panel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use replay_e2e::{Browser, Server};
use serde_json::Value;
use sha1::Digest as _;

/// The body of `/data` (its size is checked against the recorded sizes).
const DATA_LEN: usize = 1000;
/// Messages the page sends on each socket (the echo server answers each).
const CAPTURED: [&str; 4] = [
    r#"{"password":"hunter2","n":0}"#,
    r#"{"password":"hunter2","n":1,"pad":"xxxxxxxxxx"}"#,
    "plain text message",
    "ünïcödé ✓",
];
const PLAIN: [&str; 3] = ["not-captured-1", "not-captured-22", "not-captured-333"];

/// A loopback HTTP server for the test's two origins (stops when dropped).
struct Origin {
    base: String,
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Origin {
    fn start(page: String) -> Result<Origin> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let page = Arc::new(page);
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let page = page.clone();
                        std::thread::spawn(move || {
                            let _ = serve(stream, &page);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Origin { base: format!("http://127.0.0.1:{port}"), port, stop })
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, page: &str) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut key = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':')
                && name.trim().eq_ignore_ascii_case("sec-websocket-key")
            {
                key = Some(value.trim().to_owned());
            }
        }
        let (extra, ctype, body): (&str, &str, Vec<u8>) = match path.split('?').next().unwrap_or("") {
            "/ws" => return echo(reader, stream, key.context("no websocket key")?),
            // Same origin: the connection is dropped without an answer.
            "/drop" => return Ok(()),
            "/data" => ("timing-allow-origin: *\r\n", "text/plain", vec![b'd'; DATA_LEN]),
            // Readable cross-origin, but no Timing-Allow-Origin: the timing is restricted.
            "/timed" => ("access-control-allow-origin: *\r\n", "text/plain", b"cross-origin".to_vec()),
            // No Access-Control-Allow-Origin: the page may not read it.
            "/cors" => ("", "application/json", b"{\"secret\":1}".to_vec()),
            "/" => ("", "text/html; charset=utf-8", page.as_bytes().to_vec()),
            _ => ("", "text/plain", b"not found".to_vec()),
        };
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\ncache-control: no-store\r\n{extra}\r\n",
            body.len()
        )?;
        stream.write_all(&body)?;
    }
}

/// A WebSocket echo (RFC 6455): every text or binary frame sent back; a close answered.
fn echo(mut reader: BufReader<TcpStream>, mut stream: TcpStream, key: String) -> Result<()> {
    let mut sha = sha1::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    write!(
        stream,
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
    )?;
    loop {
        let mut head = [0u8; 2];
        reader.read_exact(&mut head)?;
        let opcode = head[0] & 0x0f;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            reader.read_exact(&mut b)?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            reader.read_exact(&mut b)?;
            len = u64::from_be_bytes(b);
        }
        ensure!(len <= 1 << 20, "frame too large");
        let mut mask = [0u8; 4];
        if head[1] & 0x80 != 0 {
            reader.read_exact(&mut mask)?;
        }
        let mut payload = vec![0u8; usize::try_from(len)?];
        reader.read_exact(&mut payload)?;
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        let mut frame = vec![0x80 | opcode];
        if payload.len() < 126 {
            frame.push(u8::try_from(payload.len())?);
        } else {
            frame.push(126);
            frame.extend(u16::try_from(payload.len())?.to_be_bytes());
        }
        frame.extend(&payload);
        stream.write_all(&frame)?;
        if opcode == 8 {
            return Ok(());
        }
    }
}

/// The page's activity; returns what the page saw.
const ACTIVITY: &str = r#"
const [done, B, CLOSED, captured, plain] = [arguments[arguments.length - 1], arguments[0], arguments[1], arguments[2], arguments[3]];
(async () => {
  const out = {};
  const failure = async (url) => { try { await fetch(url); return 'ok'; } catch (e) { return e.name; } };
  out.data = (await (await fetch('/data')).text()).length;
  out.timed = await (await fetch(B + '/timed')).text();
  out.drop = await failure('/drop');
  out.closed = await failure(`http://127.0.0.1:${CLOSED}/x`);
  out.cors = await failure(B + '/cors');
  const talk = async (url, messages) => {
    const ws = new WebSocket(url);
    out.transparent = ws instanceof WebSocket && WebSocket.OPEN === 1 && WebSocket.name === 'WebSocket'
      && ws.readyState === WebSocket.CONNECTING && Object.getPrototypeOf(ws) === WebSocket.prototype;
    ws.binaryType = 'arraybuffer';
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    const echoed = [];
    const all = new Promise((resolve) => {
      ws.addEventListener('message', (ev) => { echoed.push(ev.data); if (echoed.length === messages.length) resolve(); });
    });
    for (const m of messages) ws.send(m);
    await all;
    const closed = new Promise((resolve) => { ws.onclose = resolve; });
    ws.close(1000, 'done');
    await closed;
    return echoed.join('|') === messages.join('|');
  };
  out.captured = await talk(B.replace('http', 'ws') + '/ws?capture=1', captured);
  out.plain = await talk(B.replace('http', 'ws') + '/ws', plain);
  done(out);
})().catch((e) => done({ error: String(e) }));
"#;

/// Network events and WebSocket events of the only session, from the readable JSON.
fn recorded(server: &Server) -> Result<(Vec<Value>, Vec<Value>)> {
    let id = server.only_session_id()?;
    let v = server.get_json(&format!("/api/v1/sessions/{id}/events"))?;
    let (mut requests, mut sockets) = (Vec::new(), Vec::new());
    for b in v["batches"].as_array().cloned().unwrap_or_default() {
        for e in b["events"].as_array().cloned().unwrap_or_default() {
            if let Some(n) = e["data"].get("network") {
                requests.push(n.clone());
            }
            if let Some(w) = e["data"].get("websocket") {
                sockets.push(w.clone());
            }
        }
    }
    Ok((requests, sockets))
}

fn utf8_len(messages: &[&str]) -> u64 {
    messages.iter().map(|m| m.len() as u64).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_timing_failures_and_websockets_are_recorded_and_shown() -> Result<()> {
    let server = Server::start()?;
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>net</title>\
         <script src=\"{}/recorder.js\" data-key=\"{}\"></script></head><body><p>network</p></body></html>",
        server.base, server.key
    );
    let a = Origin::start(page)?;
    let b = Origin::start(String::new())?;
    let closed = replay_e2e::free_port()?;
    ensure!(a.port != closed && b.port != closed);
    let browser = Browser::start().await?;
    browser.client.goto(&format!("{}/", a.base)).await?;
    browser.flush_within(Duration::from_secs(20)).await?;
    let allow = serde_json::json!([format!("ws://127.0.0.1:{}/ws?capture=1", b.port)]);
    browser.eval(&format!("Replay.init({{ networkAllowList: {allow} }}); return true;")).await?;
    let saw = browser
        .client
        .execute_async(
            ACTIVITY,
            vec![
                Value::from(b.base.clone()),
                Value::from(closed),
                serde_json::json!(CAPTURED),
                serde_json::json!(PLAIN),
            ],
        )
        .await?;
    ensure!(saw["error"].is_null(), "page script failed: {saw}");
    // The wrappers changed nothing the page sees.
    ensure!(saw["data"] == DATA_LEN && saw["timed"] == "cross-origin", "{saw}");
    ensure!(saw["drop"] == "TypeError" && saw["closed"] == "TypeError" && saw["cors"] == "TypeError", "{saw}");
    ensure!(saw["transparent"] == true && saw["captured"] == true && saw["plain"] == true, "{saw}");
    // A request waits at most 5 s for its timing entry (browsers that make none for failures).
    tokio::time::sleep(Duration::from_secs(6)).await;
    browser.flush_within(Duration::from_secs(20)).await?;

    let (requests, sockets) = recorded(&server)?;
    let find = |suffix: &str| {
        requests
            .iter()
            .find(|n| n["url"].as_str().is_some_and(|u| u.ends_with(suffix)))
            .cloned()
            .with_context(|| format!("no request to {suffix}: {requests:?}"))
    };

    // The same-origin fetch with Timing-Allow-Origin: its phases and sizes.
    let data = find("/data")?;
    let t = &data["timing"];
    ensure!(data["status"] == 200 && data["failure"] == "none" && t["restricted"] == false, "{data}");
    ensure!(t["encoded_size"] == DATA_LEN && t["decoded_size"] == DATA_LEN, "{data}");
    ensure!(t["transfer_size"].as_u64().unwrap_or(0) > DATA_LEN as u64, "headers count in the transfer: {data}");
    ensure!(t["protocol"] == "http/1.1", "{data}");
    let phases = ["blocked_us", "dns_us", "connect_us", "tls_us", "ttfb_us", "download_us"];
    let sum: u64 = phases.iter().map(|p| t[p].as_u64().unwrap_or(u64::MAX / 8)).sum();
    ensure!(t["tls_us"] == 0, "no TLS over plain HTTP: {data}");
    ensure!(sum <= (data["duration"].as_u64().unwrap_or(0) + 1) * 1000, "phases within the request: {data}");

    // Cross-origin, readable, no Timing-Allow-Origin: restricted, not zeros.
    let timed = find("/timed")?;
    ensure!(timed["status"] == 200 && timed["timing"]["restricted"] == true, "{timed}");

    // Failures with their reasons.
    let drop = find("/drop")?;
    ensure!(drop["failed"] == true && drop["failure"] == "network", "same-origin drop: {drop}");
    let refused = find(&format!(":{closed}/x"))?;
    ensure!(refused["failed"] == true && refused["failure"] == "cross_origin", "closed port: {refused}");
    // Chromium and Firefox say the same of a CORS refusal as of a closed port; WebKit names CORS.
    let cors = find("/cors")?;
    let said = cors["failure"].as_str().unwrap_or_default();
    ensure!(cors["failed"] == true && (said == "cross_origin" || said == "cors") && cors["status"] == 0, "{cors}");

    // WebSockets: one connection each, opened and closed cleanly, counted and sized both ways.
    let of = |capture: bool| -> Vec<&Value> {
        sockets.iter().filter(|w| w["url"].as_str().is_some_and(|u| u.ends_with("?capture=1") == capture)).collect()
    };
    for (events, sent) in [(of(true), &CAPTURED[..]), (of(false), &PLAIN[..])] {
        let close = events.iter().find(|w| w["phase"] == "close").with_context(|| format!("no close: {events:?}"))?;
        ensure!(events.iter().any(|w| w["phase"] == "open"), "{events:?}");
        ensure!(close["sent"] == sent.len() && close["received"] == sent.len(), "{close}");
        ensure!(close["sent_bytes"] == utf8_len(sent) && close["received_bytes"] == utf8_len(sent), "{close}");
        ensure!(close["code"] == 1000 && close["reason"] == "done" && close["clean"] == true, "{close}");
        ensure!(events.len() <= 4, "summarized, not one event per message: {events:?}");
    }
    let payloads: Vec<&Value> = of(true).iter().flat_map(|w| w["messages"].as_array().into_iter().flatten()).collect();
    ensure!(payloads.len() == 2 * CAPTURED.len(), "{payloads:?}");
    ensure!(payloads.iter().all(|m| !m["data"].as_str().unwrap_or("hunter2").contains("hunter2")), "{payloads:?}");
    ensure!(
        payloads
            .iter()
            .filter(|m| m["sent"] == true && m["data"].as_str().is_some_and(|d| d.contains("\"n\":1")))
            .count()
            == 1
    );
    ensure!(payloads.iter().any(|m| m["data"] == "ünïcödé ✓" && m["size"] == "ünïcödé ✓".len()), "{payloads:?}");
    ensure!(of(false).iter().all(|w| w["messages"].as_array().is_some_and(Vec::is_empty)), "not allow-listed");

    // The player's network panel.
    let id = server.only_session_id()?;
    browser.open_player(&server, &format!("session={id}")).await?;
    let panel = browser
        .eval(
            "const p = document.getElementById('panel-network');
             const row = (url) => [...p.querySelectorAll('li.entry')].find((li) => li.querySelector('.url')?.textContent.endsWith(url));
             const data = row('/data');
             const ws = [...p.querySelectorAll('li.entry[data-kind=ws]')];
             return {
               legend: [...p.querySelectorAll('.legend .legend-item')].map((l) => l.textContent),
               phases: data ? data.querySelectorAll('.waterfall .ph').length : -1,
               detail: data ? data.querySelector('.net-detail').textContent : '',
               failures: [...p.querySelectorAll('li.entry[data-failure]')].map((li) => li.dataset.failure + ' ' + li.querySelector('.status').textContent),
               restricted: row('/timed')?.querySelector('.net-detail').textContent || '',
               sockets: ws.map((li) => ({ url: li.querySelector('.url').textContent, state: li.querySelector('.status').textContent,
                 counts: li.querySelector('.ws-counts').textContent, sent: li.dataset.sent, received: li.dataset.received,
                 payloads: [...li.querySelectorAll('.ws-messages li')].map((m) => m.textContent) })),
             };",
        )
        .await?;
    let legend = panel["legend"].to_string();
    ensure!(["DNS", "Connect", "TLS", "Waiting (TTFB)", "Download"].iter().all(|l| legend.contains(l)), "{panel}");
    ensure!(panel["phases"].as_i64().unwrap_or(0) >= 1, "the /data bar is segmented: {panel}");
    let detail = panel["detail"].as_str().unwrap_or_default();
    ensure!(
        detail.contains(&format!("{DATA_LEN} B encoded, {DATA_LEN} B decoded")) && detail.contains("DNS"),
        "{detail}"
    );
    ensure!(panel["restricted"].as_str().unwrap_or_default().contains("Timing-Allow-Origin"), "{panel}");
    let failures = panel["failures"].to_string();
    ensure!(failures.contains("network network error"), "{failures}");
    let expected = if said == "cors" { "cors blocked by CORS" } else { "cross_origin CORS or network error" };
    ensure!(failures.contains("cross_origin CORS or network error") && failures.contains(expected), "{failures}");
    ensure!(failures.matches("CORS").count() == 2, "{failures}");
    let ws = panel["sockets"].as_array().cloned().unwrap_or_default();
    ensure!(ws.len() == 2, "one row per connection: {panel}");
    for s in &ws {
        let capture = s["url"].as_str().is_some_and(|u| u.ends_with("?capture=1"));
        let n = if capture { CAPTURED.len() } else { PLAIN.len() };
        let count = n.to_string();
        ensure!(s["sent"].as_str() == Some(count.as_str()) && s["received"].as_str() == Some(count.as_str()), "{s}");
        ensure!(s["state"].as_str().is_some_and(|st| st.starts_with("closed 1000 done")), "{s}");
        let payloads = s["payloads"].as_array().map_or(0, Vec::len);
        ensure!(payloads == if capture { 2 * n } else { 0 }, "{s}");
        ensure!(!s.to_string().contains("hunter2") && !s.to_string().contains("not-captured"), "{s}");
    }
    browser.close().await
}
