//! The server under test: [`Server`] runs the `replay-server` binary (path in
//! `REPLAY_SERVER_BIN`, set by `cargo xtask test`) on a loopback port with a fresh data
//! directory and talks to its API as the admin; [`free_port`] hands out loopback ports that no
//! other test of this process was given.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

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
            .args(["--demo", "true", "--listen", listen, "--data-dir"])
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

    /// A JSON request to the API as the admin token (what automation does); the answer's JSON
    /// (`null` for an empty body), an error for a status other than 2xx.
    pub fn admin_api(&self, method: &str, path: &str, body: serde_json::Value) -> Result<serde_json::Value> {
        let answer = ureq::request(method, &self.url(path))
            .set("authorization", &format!("Bearer {ADMIN_TOKEN}"))
            .send_json(body)
            .with_context(|| format!("{method} {path}"))?;
        Ok(answer.into_json().unwrap_or(serde_json::Value::Null))
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

    /// The session list of the server's first project (the one [`Server::key`] ingests into; the
    /// unscoped legacy path answers 404 once there are several projects).
    pub fn sessions(&self) -> Result<Vec<serde_json::Value>> {
        let v = self.get_json("/api/v1/projects/1/sessions")?;
        Ok(v["sessions"].as_array().cloned().unwrap_or_default())
    }

    /// The server process's peak resident memory so far, in bytes (Linux: `VmHWM`).
    pub fn peak_memory(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no VmHWM in /proc status"))?;
        Ok(kb * 1024)
    }

    /// The one session this server holds (an error when there are none or several).
    pub fn only_session(&self) -> Result<serde_json::Value> {
        let sessions = self.sessions()?;
        ensure!(sessions.len() == 1, "expected exactly one session, got {}: {sessions:?}", sessions.len());
        Ok(sessions[0].clone())
    }

    /// The id of [`Server::only_session`].
    pub fn only_session_id(&self) -> Result<String> {
        Ok(self.only_session()?["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Ingests encoded batches with the project key; each must be acknowledged.
    pub fn ingest_all(&self, bodies: &[Vec<u8>]) -> Result<()> {
        for body in bodies {
            let (status, answer) = self.ingest(Some(&self.key), body, None)?;
            ensure!(status == 200, "ingest failed: {answer}");
        }
        Ok(())
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

/// A free loopback port, never one this function gave out before in this process. All tests
/// run as threads of one process: a port is only free until someone binds it, so a test that
/// binds it late (chromedriver, PostgreSQL, a server restarted on the same address) must not
/// find it handed to another test in between.
pub fn free_port() -> Result<u16> {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().map_err(|_| anyhow!("a test panicked while taking a port"))?;
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if given.insert(port) {
            return Ok(port);
        }
    }
    bail!("no loopback port that was not given out already")
}

/// A loopback address (`127.0.0.1:PORT`) on a [`free_port`], for a server that is restarted on
/// the same address.
pub fn free_address() -> Result<String> {
    Ok(format!("127.0.0.1:{}", free_port()?))
}
