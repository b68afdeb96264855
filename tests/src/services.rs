//! Backing services for the scale-out storage tests: a private PostgreSQL cluster and an
//! S3-compatible object store, both on 127.0.0.1 and both gone when dropped.
//!
//! [`Postgres`] runs Debian's PostgreSQL binaries (`apt-get install postgresql`; `cargo xtask
//! test` installs them when missing) on a fresh data directory with trust authentication;
//! when the tests run as root, the cluster runs as the `postgres` system user, since
//! PostgreSQL refuses to run as root. [`ObjectStoreServer`] serves the `s3s-fs` crate's
//! S3 implementation in-process, over real HTTP with signed requests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// A private PostgreSQL cluster.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres_user: bool,
    pub port: u16,
}

/// The newest `/usr/lib/postgresql/<version>/bin` on this machine.
fn postgres_bin() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (apt-get install postgresql; `cargo xtask test` does it)")?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| anyhow!("no PostgreSQL server binaries in /usr/lib/postgresql"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Postgres {
    /// Creates and starts a cluster on a free port; returns once it accepts connections.
    pub fn start() -> Result<Postgres> {
        Self::start_with(false)
    }

    /// Like [`Postgres::start`], but the cluster only accepts TLS connections from TCP clients,
    /// with a certificate for `127.0.0.1` signed by a fresh CA ([`Postgres::ca_file`]).
    pub fn start_tls() -> Result<Postgres> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Result<Postgres> {
        let bin = postgres_bin()?;
        let as_postgres_user = is_root();
        let dir = tempfile::Builder::new().prefix("replay-pg").tempdir()?;
        if tls {
            make_certificates(dir.path())?;
        }
        if as_postgres_user {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status()?;
            anyhow::ensure!(status.success(), "chown of the cluster directory failed");
        }
        let port = crate::server::free_port()?;
        let pg = Postgres { bin, dir, as_postgres_user, port };
        let data = pg.data_dir();
        pg.run("initdb", &["-D", path_str(&data)?, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])?;
        let mut options =
            format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=on", path_str(pg.dir.path())?);
        if tls {
            // Only TLS over TCP: a client that does not encrypt is refused.
            std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n")?;
            let certs = pg.dir.path();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                path_str(&certs.join("server.crt"))?,
                path_str(&certs.join("server.key"))?
            ));
        }
        let log = pg.dir.path().join("postgres.log");
        pg.run("pg_ctl", &["-D", path_str(&data)?, "-l", path_str(&log)?, "-o", &options, "-w", "-t", "60", "start"])
            .with_context(|| format!("starting postgres; log: {}", std::fs::read_to_string(&log).unwrap_or_default()))?;
        Ok(pg)
    }

    /// The CA that signed a TLS cluster's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let program = self.bin.join(tool);
        let output = if self.as_postgres_user {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
        } else {
            Command::new(&program).args(args).output()
        }
        .with_context(|| format!("running {}", program.display()))?;
        if !output.status.success() {
            bail!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Connection URL of the `postgres` database as the superuser.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Ok(data) = path_str(&self.data_dir()) {
            let _ = self.run("pg_ctl", &["-D", data, "-m", "immediate", "-w", "stop"]);
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the `openssl` tool.
fn make_certificates(dir: &Path) -> Result<()> {
    let openssl = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .context("running openssl")?;
        anyhow::ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=replay-test-ca",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    // PostgreSQL refuses a key others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", p.display()))
}

/// An S3-compatible server (s3s-fs) on a free loopback port, storing into a temporary
/// directory. It has one bucket, [`ObjectStoreServer::BUCKET`].
pub struct ObjectStoreServer {
    pub port: u16,
    pub root: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ObjectStoreServer {
    pub const BUCKET: &'static str = "replay";
    pub const ACCESS_KEY: &'static str = "replay-test-access";
    pub const SECRET_KEY: &'static str = "replay-test-secret-0123456789";

    pub fn start() -> Result<ObjectStoreServer> {
        let root = tempfile::Builder::new().prefix("replay-s3").tempdir()?;
        std::fs::create_dir(root.path().join(Self::BUCKET))?;
        let fs = s3s_fs::FileSystem::new(root.path()).map_err(|e| anyhow!("s3s-fs: {e:?}"))?;
        let service = {
            let mut b = s3s::service::S3ServiceBuilder::new(fs);
            b.set_auth(s3s::auth::SimpleAuth::from_single(Self::ACCESS_KEY, Self::SECRET_KEY));
            b.build()
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("s3s-fs".into()).spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let http = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                loop {
                    let socket = tokio::select! {
                        r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                        _ = &mut stopped => break,
                    };
                    let conn =
                        http.serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone()).into_owned();
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
            });
        })?;
        Ok(ObjectStoreServer { port, root, stop: Some(stop), thread: Some(thread) })
    }

    /// Object store settings (as `AWS_*` environment variables) that reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT".into(), format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), Self::ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), Self::SECRET_KEY.into()),
        ]
    }

    /// Files stored under `prefix` in the bucket (bodies as objects).
    pub fn objects_under(&self, prefix: &str) -> Result<usize> {
        fn count(dir: &Path) -> usize {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .map(|e| {
                            let p = e.path();
                            if p.is_dir() {
                                count(&p)
                            } else {
                                usize::from(!e.file_name().to_string_lossy().starts_with('.'))
                            }
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        Ok(count(&self.root.path().join(Self::BUCKET).join(prefix)))
    }

    /// Waits until the port accepts connections.
    pub fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("the object store server did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for ObjectStoreServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
