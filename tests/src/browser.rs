//! The browser: [`Browser`] starts a WebDriver server and a browser session with a fresh profile,
//! stops both when dropped, and knows the pages under test (signing in to the viewer, waiting
//! for the player, flushing the recorder, serializing the live document).
//!
//! Three engines ([`Engine`], chosen with `REPLAY_BROWSER`: `chromium` by default, `firefox`,
//! `webkit`): Debian's headless Chromium through its `chromedriver`; Firefox ESR (headless)
//! through `geckodriver` (`REPLAY_GECKODRIVER`, built from crates.io by `cargo xtask test` into
//! `target/tools/bin/`); WebKitGTK's `MiniBrowser` (`REPLAY_MINIBROWSER`, found with `dpkg -L`)
//! through `WebKitWebDriver`, on a private Xvfb display the harness starts (MiniBrowser has no
//! headless mode under automation).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use fantoccini::{Client, ClientBuilder};

use crate::dom::NORMALIZE_JS;
use crate::server::{ADMIN_PASSWORD, Server, free_port};

/// A browser engine the end-to-end tests can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Blink, through chromedriver (the default).
    Chromium,
    /// Gecko (Firefox ESR), through geckodriver.
    Firefox,
    /// WebKit (Safari's engine) in WebKitGTK's MiniBrowser, through WebKitWebDriver.
    WebKit,
}

impl Engine {
    /// The engine named by `REPLAY_BROWSER` (`chromium` when unset).
    pub fn from_env() -> Result<Engine> {
        match std::env::var("REPLAY_BROWSER").as_deref().unwrap_or("chromium") {
            "chromium" | "chrome" | "" => Ok(Engine::Chromium),
            "firefox" | "gecko" => Ok(Engine::Firefox),
            "webkit" | "minibrowser" => Ok(Engine::WebKit),
            other => bail!("REPLAY_BROWSER={other:?}: expected chromium, firefox or webkit"),
        }
    }

    /// True for the engine whose extra diagnostics (Long Animation Frames, the JS profiler,
    /// `performance.memory`) the recorder uses where present.
    pub fn is_chromium(self) -> bool {
        self == Engine::Chromium
    }
}

/// A browser session driven through its WebDriver server.
pub struct Browser {
    driver: Child,
    pub client: Client,
    pub engine: Engine,
    /// The private X display of a WebKit session.
    display: Option<Child>,
    _profile: tempfile::TempDir,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// Starts a private Xvfb and returns it with its display (`:N`), chosen by Xvfb itself.
fn start_xvfb() -> Result<(Child, String)> {
    let mut xvfb = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", "1400x1000x24", "-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting Xvfb (install xvfb, or run `cargo xtask test`)")?;
    let stdout = xvfb.stdout.take().context("Xvfb's stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let number = line.trim();
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        let _ = xvfb.kill();
        let _ = xvfb.wait();
        bail!("Xvfb did not name its display: {line:?}");
    }
    Ok((xvfb, format!(":{number}")))
}

/// MiniBrowser: `REPLAY_MINIBROWSER`, else where Debian's WebKitGTK packages put it.
fn minibrowser() -> String {
    if let Ok(path) = std::env::var("REPLAY_MINIBROWSER") {
        return path;
    }
    ["webkit2gtk-4.1", "webkit2gtk-4.0", "webkitgtk-6.0"]
        .iter()
        .map(|d| format!("/usr/lib/x86_64-linux-gnu/{d}/MiniBrowser"))
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or_else(|| "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser".into())
}

impl Browser {
    /// Starts the engine of `REPLAY_BROWSER` (see [`Engine::from_env`]) with a fresh profile and a
    /// 1280×900 window.
    pub async fn start() -> Result<Browser> {
        Browser::start_engine(Engine::from_env()?).await
    }

    /// Starts a session of `engine`: its WebDriver server on a free port, then the browser.
    pub async fn start_engine(engine: Engine) -> Result<Browser> {
        let port = free_port()?;
        let profile = tempfile::tempdir()?;
        let mut display = None;
        let (driver, caps) = match engine {
            Engine::Chromium => {
                let chromedriver = env_or("REPLAY_CHROMEDRIVER", "/usr/bin/chromedriver");
                let chromium = env_or("REPLAY_CHROMIUM", "/usr/bin/chromium");
                let driver = Command::new(&chromedriver)
                    .arg(format!("--port={port}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| {
                        format!("starting {chromedriver} (install chromium-driver, or run `cargo xtask test`)")
                    })?;
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
                (driver, caps)
            }
            Engine::Firefox => {
                let geckodriver = env_or("REPLAY_GECKODRIVER", "geckodriver");
                let firefox = env_or("REPLAY_FIREFOX", "/usr/bin/firefox-esr");
                // geckodriver makes a fresh profile per session; Marionette on a port of the
                // system's choosing (0), so that parallel sessions never collide.
                let driver = Command::new(&geckodriver)
                    .args(["--port", &port.to_string(), "--marionette-port", "0"])
                    .env("TMPDIR", profile.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| format!("starting {geckodriver} (run `cargo xtask test`, which builds it)"))?;
                let caps = serde_json::json!({
                    "browserName": "firefox",
                    "moz:firefoxOptions": {
                        "binary": firefox,
                        "args": ["-headless", "--width=1280", "--height=900"],
                        "prefs": {
                            "app.update.enabled": false,
                            "browser.shell.checkDefaultBrowser": false,
                            "datareporting.policy.dataSubmissionEnabled": false,
                            "toolkit.telemetry.enabled": false,
                            "browser.startup.homepage_override.mstone": "ignore",
                            // The watchdog's worker must keep its timers in a busy test machine.
                            "dom.min_background_timeout_value": 4,
                        }
                    }
                });
                (driver, caps)
            }
            Engine::WebKit => {
                let (xvfb, name) = start_xvfb()?;
                display = Some(xvfb);
                let webdriver = env_or("REPLAY_WEBKITWEBDRIVER", "WebKitWebDriver");
                let driver = Command::new(&webdriver)
                    .arg(format!("--port={port}"))
                    .env("DISPLAY", &name)
                    .env("HOME", profile.path())
                    .env("XDG_CACHE_HOME", profile.path().join("cache"))
                    .env("XDG_DATA_HOME", profile.path().join("data"))
                    .env("XDG_CONFIG_HOME", profile.path().join("config"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| {
                        format!("starting {webdriver} (install webkit2gtk-driver, or run `cargo xtask test`)")
                    })?;
                let caps = serde_json::json!({
                    "webkitgtk:browserOptions": {
                        "binary": minibrowser(),
                        "args": ["--automation"],
                    }
                });
                (driver, caps)
            }
        };
        let caps = match caps {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("a json object literal"),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(caps.clone());
            match builder.connect(&url).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(anyhow!("cannot start a {engine:?} session: {e}")),
            }
        };
        // Async scripts wait on the page (a flush, a snapshot taken in slices); WebDriver's
        // default of 30 s is short for a slow engine on a loaded machine. `EVAL_LIMIT` still
        // bounds every evaluation from this side.
        client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(Some(SCRIPT_TIMEOUT), None, None))
            .await
            .context("setting the script timeout")?;
        if engine == Engine::WebKit {
            // MiniBrowser opens at its own size; the tests' pages expect 1280×900.
            client.set_window_rect(0, 0, 1280, 900).await.context("sizing the MiniBrowser window")?;
        }
        Ok(Browser { driver, client, engine, display, _profile: profile })
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
            // The URL changes when the navigation commits; Firefox and WebKit may still answer
            // scripts from the sign-in page's document then, so wait until the document that
            // answers is the new one and has loaded.
            self.wait_for(
                "return location.pathname !== '/login' && document.readyState === 'complete'",
                Duration::from_secs(10),
            )
            .await?;
        }
        Ok(())
    }

    /// On the admin's Users page (`/viewer/admin/users`, signed in as a server admin): adds
    /// `user` without a password and returns the one-time invitation link the page shows
    /// (`/invite/…`), with which they choose their own.
    pub async fn invite(&self, server: &Server, user: &str) -> Result<String> {
        self.open_viewer(server, "/viewer/admin/users").await?;
        let script = format!(
            "const f = document.getElementById('add-user'); f.elements.name.value = {}; f.submit(); return true;",
            serde_json::Value::from(user)
        );
        self.eval(&script).await?;
        let notice = self
            .wait_for(
                "const n = document.getElementById('notice'); return n && n.textContent.includes('/invite/') ? n.textContent : null",
                Duration::from_secs(10),
            )
            .await?;
        let notice = notice.as_str().unwrap_or_default();
        let at = notice.find("/invite/").ok_or_else(|| anyhow::anyhow!("no invitation link in {notice:?}"))?;
        Ok(notice[at..].trim().to_owned())
    }

    /// Signs `user` in with `password` from a fresh cookie jar (whoever was signed in is
    /// forgotten) and waits until the sign-in page is left.
    pub async fn sign_in(&self, server: &Server, user: &str, password: &str) -> Result<()> {
        self.client.goto(&server.url("/login")).await?;
        self.client.delete_all_cookies().await?;
        self.client.goto(&server.url("/login")).await?;
        let script = format!(
            "document.getElementById('username').value = {}; document.getElementById('password').value = {};
             document.querySelector('form').submit(); return true;",
            serde_json::Value::from(user),
            serde_json::Value::from(password),
        );
        self.eval(&script).await?;
        self.wait_for(
            "return location.pathname !== '/login' && document.readyState === 'complete'",
            Duration::from_secs(10),
        )
        .await?;
        Ok(())
    }

    /// Opens the player (`/viewer/player.html?{query}`) and waits until it has loaded the whole
    /// session (see [`Browser::wait_player`]).
    pub async fn open_player(&self, server: &Server, query: &str) -> Result<()> {
        self.open_viewer(server, &format!("/viewer/player.html?{query}")).await?;
        self.wait_player().await
    }

    /// Waits until the player on this page has loaded every range of its session and shown the
    /// position it was opened at (`data-loaded`), or failed; a failure is an error with the
    /// player's message.
    pub async fn wait_player(&self) -> Result<()> {
        self.wait_for(
            // The body is null while the page is still being parsed (Firefox answers then).
            "return !!document.body && (document.body.dataset.loaded === '1' || document.body.dataset.state === 'error')",
            Duration::from_secs(30),
        )
        .await?;
        let state = self.eval("return document.body.dataset.state").await?;
        if state != "ready" {
            let message = self.eval("return document.getElementById('message').textContent").await?;
            bail!("player failed: {message}");
        }
        Ok(())
    }

    /// Starts `Replay.flush()` and waits (up to `timeout`) for everything to be acknowledged;
    /// returns the recorder's delivery statistics.
    pub async fn flush_within(&self, timeout: Duration) -> Result<serde_json::Value> {
        self.eval(
            "window.__flushed = null; window.Replay.flush().then((s) => { window.__flushed = s; }); return true;",
        )
        .await?;
        let stats = self.wait_for("return window.__flushed", timeout).await?;
        ensure!(stats["pending"] == 0 && stats["rejected"] == 0, "not everything was delivered: {stats}");
        Ok(stats)
    }

    /// The live page's document serialized like the server's snapshot endpoint.
    pub async fn live_html(&self) -> Result<String> {
        let v = self.eval(&format!("{NORMALIZE_JS}; return __replayNormalize(document);")).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Clicks `element` the way a user does: the pointer moves to its centre, presses and
    /// releases (WebDriver actions). An element click (`Element::click`) may touch the element
    /// first (Firefox's leaves a `style` attribute change on it), which a page would count as
    /// the click's answer. WebKitWebDriver's actions did not return here: WebKit takes the
    /// element click, which leaves no trace.
    pub async fn pointer_click(&self, element: fantoccini::elements::Element) -> Result<()> {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        if self.engine == Engine::WebKit {
            element.click().await?;
            return Ok(());
        }
        let mouse = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement { element, duration: None, x: 0.0, y: 0.0 })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        self.client.perform_actions(mouse).await?;
        self.client.release_actions().await?;
        Ok(())
    }

    /// Runs a script and returns its value. A page whose main thread never answers (a loop in
    /// the page or in the recorder) fails the call after [`EVAL_LIMIT`] instead of holding the
    /// test, and the suite, forever: the WebDriver server's own script timeout cannot fire while
    /// the renderer is busy.
    pub async fn eval(&self, script: &str) -> Result<serde_json::Value> {
        bounded(script, self.client.execute(script, vec![])).await
    }

    /// Runs an async script: the last argument is the callback to call with the result. Bounded
    /// like [`Browser::eval`].
    pub async fn eval_async(&self, script: &str) -> Result<serde_json::Value> {
        bounded(script, self.client.execute_async(script, vec![])).await
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
        // The browser's processes: those started with this session's profile, and whatever the
        // WebDriver server started (MiniBrowser and its web processes name no profile).
        let ours = process_tree(self.driver.id(), |cmdline| cmdline.contains(&profile))?;
        for pid in &ours {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        self.stop_display();
        Ok(ours.len())
    }

    /// Ends the session and stops the WebDriver server.
    pub async fn close(mut self) -> Result<()> {
        let result = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        self.stop_display();
        result.map_err(Into::into)
    }

    fn stop_display(&mut self) {
        if let Some(mut xvfb) = self.display.take() {
            let _ = xvfb.kill();
            let _ = xvfb.wait();
        }
    }
}

/// The processes descending from `root` or from a process whose command line `matches`, with
/// those, without `root` itself.
fn process_tree(root: u32, matches: impl Fn(&str) -> bool) -> Result<Vec<u32>> {
    let mut parent_of = Vec::new();
    let mut ours = vec![root];
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may contain spaces, so read after the last ')'.
        let ppid = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        parent_of.push((pid, ppid.unwrap_or(0)));
        if pid != root
            && std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| matches(&String::from_utf8_lossy(&c)))
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
    ours.retain(|&p| p != root);
    Ok(ours)
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed before `close` leaves no browser behind: the driver's children
        // (the browser and its processes) go with it.
        let running = matches!(self.driver.try_wait(), Ok(None));
        if let Some(children) = running.then(|| process_tree(self.driver.id(), |_| false).ok()).flatten() {
            for pid in children {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        self.stop_display();
    }
}

/// The WebDriver script timeout of every session: how long an async script may take to call
/// back before the WebDriver server fails it.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// How long one script evaluation may take before the test fails: far beyond any test's own
/// waits (they poll with short evaluations), short enough that a hung page ends its test.
pub const EVAL_LIMIT: Duration = Duration::from_secs(300);

/// Awaits a WebDriver evaluation of `script` for at most [`EVAL_LIMIT`].
async fn bounded(
    script: &str,
    call: impl std::future::Future<Output = Result<serde_json::Value, fantoccini::error::CmdError>>,
) -> Result<serde_json::Value> {
    match tokio::time::timeout(EVAL_LIMIT, call).await {
        Ok(v) => Ok(v?),
        Err(_) => {
            let head: String = script.chars().take(120).collect();
            bail!("the page did not answer within {EVAL_LIMIT:?} (its main thread is busy or hung): `{head}`")
        }
    }
}
