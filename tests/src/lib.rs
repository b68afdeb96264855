//! Harness of the end-to-end tests: the real server binary and real Chromium.
//!
//! [`Server`] starts `replay-server` (path in `REPLAY_SERVER_BIN`, set by `cargo xtask test`) on
//! a random loopback port with a fresh data directory. [`Browser`] starts Debian's
//! `chromedriver` and a headless Chromium session with a fresh profile. Both stop when dropped.
//! [`NORMALIZE_JS`] serializes a live document the way the server's snapshot endpoint does, so
//! the two can be compared as strings. [`services`] starts PostgreSQL and an S3-compatible
//! object store for the scale-out storage tests.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use fantoccini::{Client, ClientBuilder};

pub mod services;

/// Serializes the live document like `GET /snapshot`: doctype, then `outerHTML` of the root
/// element with `<script>` elements removed and open shadow roots as declarative templates.
pub const NORMALIZE_JS: &str = r#"
function __replayNormalize(doc) {
  const clone = doc.documentElement.cloneNode(true);
  const live = [doc.documentElement];
  const copies = [clone];
  // Shadow roots are not cloned: walk live and clone in parallel to write them as templates.
  while (live.length) {
    const l = live.pop(), c = copies.pop();
    if (l.shadowRoot) {
      const tpl = doc.createElement('template');
      tpl.setAttribute('shadowrootmode', 'open');
      for (const k of l.shadowRoot.childNodes) {
        const kc = k.cloneNode(true);
        tpl.content.appendChild(kc);
        // Shadow roots nested inside shadow content are written as templates too.
        if (k.nodeType === 1) { live.push(k); copies.push(kc); }
      }
      c.insertBefore(tpl, c.firstChild);
    }
    const lk = l.children, ck = c.children;
    const offset = l.shadowRoot ? 1 : 0;
    for (let i = 0; i < lk.length; i++) { live.push(lk[i]); copies.push(ck[i + offset]); }
  }
  for (const s of clone.querySelectorAll('script')) s.remove();
  const dt = doc.doctype ? '<!DOCTYPE ' + doc.doctype.name + '>' : '';
  return dt + clone.outerHTML;
}
"#;

/// Path of the server binary under test.
pub fn server_bin() -> Result<PathBuf> {
    let p = std::env::var_os("REPLAY_SERVER_BIN")
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("REPLAY_SERVER_BIN is not set: run the end-to-end tests with `cargo xtask test`"))?;
    if !p.is_file() {
        bail!("REPLAY_SERVER_BIN={} does not exist: run `cargo xtask test`", p.display());
    }
    Ok(p)
}

/// A running `replay-server` on a random loopback port.
pub struct Server {
    child: Child,
    pub base: String,
    pub key: String,
    pub data_dir: tempfile::TempDir,
}

/// Admin token every test server is started with (`Authorization: Bearer`).
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";
/// Password of the viewer account `admin` on every test server.
pub const ADMIN_PASSWORD: &str = "e2e-viewer-password";

impl Server {
    /// Starts the server with a fresh data directory and waits until it listens.
    pub fn start() -> Result<Server> {
        let data_dir = tempfile::tempdir()?;
        Self::start_in(data_dir)
    }

    /// Starts the server on an existing data directory.
    pub fn start_in(data_dir: tempfile::TempDir) -> Result<Server> {
        Self::start_with(data_dir, "127.0.0.1:0", &[])
    }

    /// Starts the server on `listen` with extra environment variables.
    pub fn start_with(data_dir: tempfile::TempDir, listen: &str, env: &[(&str, &str)]) -> Result<Server> {
        let mut child = Command::new(server_bin()?)
            .args(["--listen", listen, "--data-dir"])
            .arg(data_dir.path())
            .env("REPLAY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("REPLAY_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting replay-server")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut base, mut key) = (String::new(), String::new());
        let deadline = Instant::now() + Duration::from_secs(30);
        while base.is_empty() || key.is_empty() {
            if Instant::now() > deadline {
                bail!("replay-server did not print its address and key in time");
            }
            let line = lines.next().ok_or_else(|| anyhow!("replay-server exited early"))??;
            if let Some(rest) = line.strip_prefix("replay-server listening on ") {
                base = rest.trim().to_owned();
            } else if let Some(rest) = line.trim().strip_prefix("ingest key: ") {
                key = rest.split_whitespace().next().unwrap_or_default().to_owned();
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, base, key, data_dir })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET a JSON document as the admin.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        Ok(self.get(path).call()?.into_json()?)
    }

    /// GET a text document as the admin.
    pub fn get_text(&self, path: &str) -> Result<String> {
        Ok(self.get(path).call()?.into_string()?)
    }

    /// A GET request carrying the admin token.
    pub fn get(&self, path: &str) -> ureq::Request {
        ureq::get(&self.url(path)).set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
    }

    /// POST a body to ingest; returns the status and the JSON answer.
    pub fn ingest(&self, key: Option<&str>, body: &[u8], encoding: Option<&str>) -> Result<(u16, serde_json::Value)> {
        let mut req = ureq::post(&self.url("/api/v1/ingest")).set("content-type", "application/msgpack");
        if let Some(k) = key {
            req = req.set("x-replay-key", k);
        }
        if let Some(e) = encoding {
            req = req.set("content-encoding", e);
        }
        match req.send_bytes(body) {
            Ok(r) => Ok((r.status(), r.into_json()?)),
            Err(ureq::Error::Status(code, r)) => Ok((code, r.into_json()?)),
            Err(e) => Err(e.into()),
        }
    }

    /// The session list.
    pub fn sessions(&self) -> Result<Vec<serde_json::Value>> {
        let v = self.get_json("/api/v1/sessions")?;
        Ok(v["sessions"].as_array().cloned().unwrap_or_default())
    }

    /// Stops the server gracefully (SIGTERM), waits up to 20 s for it to exit, and gives back
    /// whether it exited successfully and its data directory.
    pub fn terminate(mut self) -> Result<(bool, tempfile::TempDir)> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(exit) = self.child.try_wait()? {
                break exit;
            }
            if Instant::now() > deadline {
                bail!("replay-server did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let dir = tempfile::tempdir()?;
        Ok((exit.success(), std::mem::replace(&mut self.data_dir, dir)))
    }

    /// Stops the server abruptly (SIGKILL) and gives back its data directory.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.data_dir, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A headless Chromium driven through chromedriver.
pub struct Browser {
    driver: Child,
    pub client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium session (1280×900 window).
    pub async fn start() -> Result<Browser> {
        let chromedriver = std::env::var("REPLAY_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("REPLAY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port()?;
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {chromedriver} (install chromium-driver, or run `cargo xtask test`)"))?;
        let profile = tempfile::tempdir()?;
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = match caps {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("a json object literal"),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(caps.clone());
            match builder.connect(&url).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(anyhow!("cannot start a Chromium session: {e}")),
            }
        };
        Ok(Browser { driver, client, _profile: profile })
    }

    /// Opens a viewer page (`/viewer/...`) of `server`, signed in when the server requires it.
    /// Tests must open viewer pages through this, never with a bare `goto`.
    pub async fn open_viewer(&self, server: &Server, path: &str) -> Result<()> {
        self.client.goto(&server.url(path)).await?;
        let here = self.client.current_url().await?;
        if here.path() == "/login" {
            let script = format!(
                "document.getElementById('username').value = 'admin';
                 document.getElementById('password').value = {};
                 document.querySelector('form').submit(); return true;",
                serde_json::Value::from(ADMIN_PASSWORD)
            );
            self.eval(&script).await?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.client.current_url().await?.path() == "/login" {
                if Instant::now() > deadline {
                    bail!("signing in to the viewer did not leave the sign-in page");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Runs a script and returns its value.
    pub async fn eval(&self, script: &str) -> Result<serde_json::Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// Runs an async script: the last argument is the callback to call with the result.
    pub async fn eval_async(&self, script: &str) -> Result<serde_json::Value> {
        Ok(self.client.execute_async(script, vec![]).await?)
    }

    /// Polls `script` until it returns a truthy value.
    pub async fn wait_for(&self, script: &str, timeout: Duration) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(script).await?;
            let truthy = !matches!(v, serde_json::Value::Null | serde_json::Value::Bool(false))
                && v != serde_json::json!(0)
                && v != serde_json::json!("");
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for `{script}`");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills this browser abruptly, like the OS killing a frozen tab: the Chromium processes of
    /// this session (found by its own profile directory) with all their descendants (zygotes,
    /// renderers), then chromedriver. Returns how many processes were killed.
    pub fn kill(mut self) -> Result<usize> {
        let profile = self._profile.path().display().to_string();
        let mut parent_of = Vec::new();
        let mut ours = Vec::new();
        for entry in std::fs::read_dir("/proc")? {
            let entry = entry?;
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // "pid (comm) state ppid ...": comm may contain spaces, so read after the last ')'.
            let ppid = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            parent_of.push((pid, ppid.unwrap_or(0)));
            if std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&profile))
            {
                ours.push(pid);
            }
        }
        let mut i = 0;
        while i < ours.len() {
            let parent = ours[i];
            for &(pid, ppid) in &parent_of {
                if ppid == parent && !ours.contains(&pid) {
                    ours.push(pid);
                }
            }
            i += 1;
        }
        for pid in &ours {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        Ok(ours.len())
    }

    /// Ends the session and stops chromedriver.
    pub async fn close(mut self) -> Result<()> {
        let result = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        result.map_err(Into::into)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A static file server for fixture pages on a random loopback port (its own origin, so each
/// page gets its own session storage). `{{SERVER}}` and `{{KEY}}` in `.html`, `.css` and `.js`
/// files are replaced; `tone.wav` is a generated 3 s tone; byte ranges are honoured (media
/// elements seek through them). Stops when dropped.
pub struct FixtureServer {
    pub base: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FixtureServer {
    pub fn start(dir: PathBuf, server: &str, key: &str) -> Result<FixtureServer> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let base = format!("http://{}", listener.local_addr()?);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (flag, server, key) = (stop.clone(), server.to_owned(), key.to_owned());
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (dir, server, key) = (dir.clone(), server.clone(), key.clone());
                        std::thread::spawn(move || {
                            let _ = serve_fixture(stream, &dir, &server, &key);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(FixtureServer { base, stop })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A 3 s, 8 kHz mono 16-bit WAV of a quiet 440 Hz tone.
pub fn tone_wav() -> Vec<u8> {
    let rate = 8000u32;
    let samples: Vec<i16> = (0..rate * 3)
        .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 3000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

fn serve_fixture(stream: std::net::TcpStream, dir: &std::path::Path, server: &str, key: &str) -> Result<()> {
    use std::io::Write;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        let mut range: Option<(usize, Option<usize>)> = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("range: bytes=") {
                let (a, b) = r.trim().split_once('-').unwrap_or(("0", ""));
                range = Some((a.parse().unwrap_or(0), b.parse().ok()));
            }
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let path = path.split(['?', '#']).next().unwrap_or("/").trim_start_matches('/');
        let safe = !path.contains("..") && !path.is_empty();
        let body: Option<Vec<u8>> = if path == "tone.wav" {
            Some(tone_wav())
        } else if safe {
            std::fs::read(dir.join(path)).ok()
        } else {
            None
        };
        let ctype = match path.rsplit('.').next() {
            Some("html") => "text/html; charset=utf-8",
            Some("css") => "text/css",
            Some("js") => "text/javascript",
            Some("svg") => "image/svg+xml",
            Some("wav") => "audio/wav",
            _ => "application/octet-stream",
        };
        let Some(mut body) = body else {
            stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?;
            continue;
        };
        if ctype.starts_with("text/") {
            let text = String::from_utf8_lossy(&body).replace("{{SERVER}}", server).replace("{{KEY}}", key);
            body = text.into_bytes();
        }
        let total = body.len();
        let (status, slice, extra) = match range {
            Some((start, end)) if start < total => {
                let end = end.unwrap_or(total - 1).min(total - 1);
                ("206 Partial Content", &body[start..=end], format!("content-range: bytes {start}-{end}/{total}\r\n"))
            }
            _ => ("200 OK", &body[..], String::new()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\naccept-ranges: bytes\r\ncache-control: no-store\r\n{extra}\r\n",
            slice.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(slice)?;
    }
}

/// Share of pixels (percent) that differ between two PNG screenshots (a channel differing by
/// more than `tolerance`), compared over the area both cover.
pub fn pixel_mismatch(a: &[u8], b: &[u8], tolerance: u8) -> Result<f64> {
    fn decode(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>)> {
        let mut decoder = png::Decoder::new(bytes);
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info()?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf)?;
        let channels = info.color_type.samples();
        let mut rgb = Vec::with_capacity(info.width as usize * info.height as usize * 3);
        for px in buf[..info.buffer_size()].chunks_exact(channels) {
            match channels {
                1 | 2 => rgb.extend_from_slice(&[px[0], px[0], px[0]]),
                _ => rgb.extend_from_slice(&px[..3]),
            }
        }
        Ok((info.width as usize, info.height as usize, rgb))
    }
    let (wa, ha, pa) = decode(a)?;
    let (wb, hb, pb) = decode(b)?;
    let (w, h) = (wa.min(wb), ha.min(hb));
    if w == 0 || h == 0 {
        bail!("empty screenshot");
    }
    let mut differing = 0usize;
    for y in 0..h {
        for x in 0..w {
            let ia = (y * wa + x) * 3;
            let ib = (y * wb + x) * 3;
            if (0..3).any(|c| pa[ia + c].abs_diff(pb[ib + c]) > tolerance) {
                differing += 1;
            }
        }
    }
    Ok(differing as f64 * 100.0 / (w * h) as f64)
}

/// What simulated recorders had acknowledged: session → sequence numbers.
pub type Acked = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, std::collections::BTreeSet<u32>>>>;

/// A simulated recorder: sends one click per batch in order, resending a batch until it is
/// acknowledged, and remembers what was acknowledged. With several `bases` (instances behind a
/// load balancer), each batch goes to the next one, and a failed send is retried on the next.
pub fn stream_session(bases: &[String], key: &str, session: &str, acked: &Acked, stop: Instant) {
    use replay_protocol::{Batch, Click, Event, EventData, encode_batch};
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
    let mut seq = 0u32;
    let mut turn = 0usize;
    while Instant::now() < stop && !bases.is_empty() {
        let mut b = Batch::new(session, "page-1", seq, 1_800_000_000_000 + u64::from(seq) * 100);
        b.events.push(Event { t: 0, data: EventData::Click(Click { id: seq, x: 1, y: 2, button: 0 }) });
        let body = encode_batch(&b).unwrap_or_default();
        let base = &bases[turn % bases.len()];
        turn += 1;
        let ok = agent
            .post(&format!("{base}/api/v1/ingest"))
            .set("x-replay-key", key)
            .send_bytes(&body)
            .is_ok_and(|r| r.status() == 200);
        if ok {
            if let Ok(mut map) = acked.lock() {
                map.entry(session.to_owned()).or_default().insert(seq);
            }
            seq += 1;
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Every acknowledged batch of every session is stored once, without gaps in sequence numbers,
/// and counted once in the index; returns how many batches were acknowledged.
pub fn check_acknowledged(
    server: &Server,
    acked: &std::collections::BTreeMap<String, std::collections::BTreeSet<u32>>,
) -> Result<usize> {
    let mut total = 0;
    for (session, seqs) in acked {
        let row = server.get_json(&format!("/api/v1/sessions/{session}"))?;
        let stored = row["batches"].as_u64().unwrap_or(0);
        let last = *seqs.iter().next_back().unwrap_or(&0);
        ensure!(seqs.len() as u32 == last + 1, "{session}: the client saw a gap in its own acks");
        // The server may also hold one batch whose acknowledgement the stop swallowed (the
        // client resends it and gets a duplicate acknowledgement; it is never stored twice).
        ensure!(
            stored == u64::from(last) + 1 || stored == u64::from(last) + 2,
            "{session}: {stored} stored, {} acknowledged",
            seqs.len()
        );
        ensure!(row["clicks"].as_u64() == Some(stored), "{session}: the index counts each batch once: {row}");
        let events = server.get_json(&format!("/api/v1/sessions/{session}/events"))?;
        let stored_seqs: Vec<u64> = events["batches"]
            .as_array()
            .map(|a| a.iter().filter_map(|b| b["seq"].as_u64()).collect())
            .unwrap_or_default();
        let expected: Vec<u64> = (0..stored).collect();
        ensure!(stored_seqs == expected, "{session}: stored sequence numbers have a gap or a duplicate");
        total += seqs.len();
    }
    Ok(total)
}
