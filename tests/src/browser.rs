//! The browser: [`Browser`] starts Debian's `chromedriver` and a headless Chromium session with
//! a fresh profile, stops both when dropped, and knows the pages under test (signing in to the
//! viewer, waiting for the player, flushing the recorder, serializing the live document).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use fantoccini::{Client, ClientBuilder};

use crate::dom::NORMALIZE_JS;
use crate::server::{ADMIN_PASSWORD, Server, free_port};

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
            "return document.body.dataset.loaded === '1' || document.body.dataset.state === 'error'",
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
