//! Server settings: defaults, overridden by a TOML file, overridden by the environment and
//! command-line flags (`main.rs` reads those with clap; both land in [`Overrides`]). Every
//! setting, with its flag, variable and file key, is listed once in [`settings::SETTINGS`], which
//! the docs' reference table is generated from and the tests hold the three sources to.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::limits::Rate;

pub mod settings;
/// Days the audit log keeps an entry by default: a year, long enough to answer who watched a
/// session when a customer asks.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 365;

/// Caps and settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest request body accepted by ingest, as sent (possibly compressed).
    pub max_body_bytes: usize,
    /// Decode limits applied to every batch (its `max_bytes` caps decompression too).
    pub limits: replay_protocol::Limits,
    /// Most bytes a whole-session read (export, snapshot, events without a range) may load:
    /// checked against the stored sizes in the index before any body is read, and against the
    /// decoded bytes after.
    pub max_read_bytes: usize,
    /// Most stored bytes (as sent, usually gzip) one session may hold; a batch past it is
    /// refused (`session_full`) and the session keeps what it has. `None`: no cap.
    pub max_session_bytes: Option<u64>,
    /// Per project and UTC day: most stored bytes, and most new sessions (`None`: no quota).
    pub quota_bytes_per_day: Option<u64>,
    pub quota_sessions_per_day: Option<u64>,
    /// Mark the login cookie `Secure` (serve over HTTPS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// Ingest rate limit per project (batches per second, burst).
    pub project_rate: Rate,
    /// Ingest rate limit per client address.
    pub client_rate: Rate,
    /// Ingest bytes (as sent) per second per client address, with a burst of 16 MiB or the
    /// largest body, whichever is larger. `None`: no byte limit.
    pub client_bytes_per_second: Option<u64>,
    /// Most ingest bytes held at once by all requests together (bodies as read and their
    /// decompressed copies, until storage acknowledges); past it uploads get 503
    /// `server_busy`. `None`: no budget.
    pub max_inflight_bytes: Option<u64>,
    /// Sessions whose last event is older than this many days are deleted (0 keeps forever).
    pub retention_days: u32,
    /// Audit log entries older than this many days are deleted (0 keeps them forever).
    pub audit_retention_days: u32,
    /// Peers whose forwarding headers (`X-Forwarded-For`, `Forwarded`, `X-Forwarded-Proto`) are
    /// believed: the load balancers in front of the server (see [`crate::client`]).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Accept ingest without an `Origin` header for projects with an origin allow-list
    /// (server-to-server senders); refused by default, as anyone can send them.
    pub accept_originless_ingest: bool,
    /// Single sign-on with an OpenID Connect provider (see [`crate::oidc`], [`crate::sso`]); `None`: passwords only.
    pub oidc: Option<crate::sso::OidcConfig>,
    /// Serve the demo pages (`/demo`, `/demo/lab`, `/demo/echo`, [`crate::demo`]): they embed
    /// the first project's ingest key, so a server on the internet keeps them off.
    pub demo: bool,
    /// A bearer secret that may read `/metrics` (a scraper's); server admins always may.
    pub metrics_token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_bytes: 8 * 1024 * 1024,
            limits: replay_protocol::Limits::default(),
            max_read_bytes: 512 * 1024 * 1024,
            max_session_bytes: Some(DEFAULT_MAX_SESSION_BYTES),
            quota_bytes_per_day: None,
            quota_sessions_per_day: None,
            secure_cookies: false,
            project_rate: Rate { per_second: 2_000, burst: 4_000 },
            client_rate: Rate { per_second: 20, burst: 200 },
            client_bytes_per_second: Some(DEFAULT_CLIENT_BYTES_PER_SECOND),
            max_inflight_bytes: Some(DEFAULT_MAX_INFLIGHT_BYTES),
            retention_days: 30,
            audit_retention_days: DEFAULT_AUDIT_RETENTION_DAYS,
            trusted_proxies: Vec::new(),
            accept_originless_ingest: false,
            oidc: None,
            demo: false,
            metrics_token: None,
        }
    }
}

/// Default of [`Config::client_bytes_per_second`]: 1 MiB/s, hundreds of times what a
/// recording page sends after its first snapshot.
pub const DEFAULT_CLIENT_BYTES_PER_SECOND: u64 = 1024 * 1024;
/// Default of [`Config::max_inflight_bytes`]: 256 MiB.
pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 256 * 1024 * 1024;

/// Default of [`Config::max_session_bytes`]: 64 MiB stored (hours of a busy page, gzip).
pub const DEFAULT_MAX_SESSION_BYTES: u64 = 64 * 1024 * 1024;

/// The config file (`--config replay.toml`). Every key is optional; unknown keys are errors so
/// a typo never silently falls back to a default.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on, e.g. "0.0.0.0:8080".
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded storage.
    pub data_dir: Option<PathBuf>,
    /// Largest ingest body, as sent.
    pub max_body_bytes: Option<usize>,
    /// Largest batch after decompression.
    pub max_batch_bytes: Option<usize>,
    /// Days to keep sessions (0 = forever).
    pub retention_days: Option<u32>,
    /// Days to keep audit log entries (0 = forever).
    pub audit_retention_days: Option<u32>,
    /// Mark the login cookie Secure.
    pub secure_cookies: Option<bool>,
    /// The admin token for API clients (prefer the REPLAY_ADMIN_TOKEN environment variable).
    pub admin_token: Option<String>,
    /// A file whose first line is the admin token.
    pub admin_token_file: Option<PathBuf>,
    /// A bearer secret for the Prometheus scraper of `/metrics`.
    pub metrics_token: Option<String>,
    /// A file whose first line is that secret.
    pub metrics_token_file: Option<PathBuf>,
    /// Serve the demo pages.
    pub demo: Option<bool>,
    /// The password of the viewer account `admin` when it is first created.
    pub admin_password: Option<String>,
    /// A file whose first line is that password.
    pub admin_password_file: Option<PathBuf>,
    /// Seconds after which a session frozen since its last batch is marked never recovered.
    pub freeze_timeout_secs: Option<u64>,
    /// Seconds without a batch after which a session's frustration signals are judged over
    /// the whole session.
    pub settle_after_secs: Option<u64>,
    /// Batches per second per project, and burst.
    pub project_rate_per_second: Option<u32>,
    pub project_burst: Option<u32>,
    /// Batches per second per client address, and burst.
    pub client_rate_per_second: Option<u32>,
    pub client_burst: Option<u32>,
    /// Load balancers whose forwarding headers name the client: CIDR ranges or addresses.
    pub trusted_proxies: Option<Vec<String>>,
    /// Accept ingest without an Origin header for projects with an origin allow-list.
    pub accept_originless_ingest: Option<bool>,
    /// Most stored bytes per session (0 = no cap).
    pub max_session_bytes: Option<u64>,
    /// Ingest bytes per second per client address (0 = no limit).
    pub client_bytes_per_second: Option<u64>,
    /// Most ingest bytes in flight at once (0 = no budget).
    pub max_inflight_bytes: Option<u64>,
    /// Per project and UTC day: most stored bytes and most new sessions (0 = no quota).
    pub quota_bytes_per_day: Option<u64>,
    pub quota_sessions_per_day: Option<u64>,
    /// Scale-out storage: the session index in this PostgreSQL database
    /// (`postgres://user:password@host/db`); needs `object_store_url`.
    pub postgres_url: Option<String>,
    /// Schema for the tables in PostgreSQL (default: the connection's search_path).
    pub postgres_schema: Option<String>,
    /// Most PostgreSQL connections one instance opens (default 16).
    pub postgres_max_connections: Option<usize>,
    /// PEM file of CAs to trust for TLS to PostgreSQL (besides the system's); implies TLS.
    pub postgres_ca_file: Option<PathBuf>,
    /// Where batch bodies go with PostgreSQL: `s3://bucket/prefix` or `file:///shared/dir`.
    pub object_store_url: Option<String>,
    /// Object store settings (`aws_endpoint`, `aws_region`, `aws_access_key_id`,
    /// `aws_secret_access_key`, `aws_allow_http`, ...); `AWS_*` environment variables too.
    pub object_store_options: Option<BTreeMap<String, String>>,
    /// Single sign-on: the OpenID Connect provider's issuer URL (https, or http on loopback).
    pub oidc_issuer: Option<String>,
    /// The client id registered at the provider.
    pub oidc_client_id: Option<String>,
    /// The client secret (prefer the REPLAY_OIDC_CLIENT_SECRET variable or a file).
    pub oidc_client_secret: Option<String>,
    /// A file whose first line is the client secret.
    pub oidc_client_secret_file: Option<PathBuf>,
    /// This server's callback URL registered at the provider (`https://…/login/sso/callback`).
    pub oidc_redirect_url: Option<String>,
    /// The provider's name on the sign-in button.
    pub oidc_name: Option<String>,
    /// Create an account for a verified e-mail address no account has.
    pub oidc_auto_create: Option<bool>,
}

impl FileConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
    }
}

/// Values given on the command line or in the environment (they win over the file).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
    pub max_batch_bytes: Option<usize>,
    pub retention_days: Option<u32>,
    pub audit_retention_days: Option<u32>,
    pub secure_cookies: Option<bool>,
    /// The admin token, already read from its file when one was named.
    pub admin_token: Option<String>,
    /// The metrics token, already read from its file when one was named.
    pub metrics_token: Option<String>,
    pub demo: Option<bool>,
    /// The `admin` password, already read from its file when one was named.
    pub admin_password: Option<String>,
    pub freeze_timeout_secs: Option<u64>,
    pub settle_after_secs: Option<u64>,
    pub client_rate_per_second: Option<u32>,
    pub client_burst: Option<u32>,
    pub project_rate_per_second: Option<u32>,
    pub project_burst: Option<u32>,
    pub trusted_proxies: Option<Vec<String>>,
    pub accept_originless_ingest: Option<bool>,
    pub max_session_bytes: Option<u64>,
    pub client_bytes_per_second: Option<u64>,
    pub max_inflight_bytes: Option<u64>,
    pub quota_bytes_per_day: Option<u64>,
    pub quota_sessions_per_day: Option<u64>,
    pub postgres_url: Option<String>,
    pub postgres_schema: Option<String>,
    pub postgres_max_connections: Option<usize>,
    pub postgres_ca_file: Option<PathBuf>,
    pub object_store_url: Option<String>,
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    /// The client secret, already read from its file when one was named.
    pub oidc_client_secret: Option<String>,
    pub oidc_redirect_url: Option<String>,
    pub oidc_name: Option<String>,
    pub oidc_auto_create: Option<bool>,
}

/// Which storage engine to open (defined by the storage crate, which opens it).
pub use replay_store::Backend;

/// Everything the binary needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub backend: Backend,
    pub admin_token: Option<String>,
    /// The password of the viewer account `admin` when it is first created.
    pub admin_password: Option<String>,
    /// After this long without a batch, a frozen session is marked never recovered (at least 1 s).
    pub freeze_timeout: std::time::Duration,
    /// After this long without a batch, a session's frustration signals are judged over the
    /// whole session ([`crate::frustration`]; at least 1 s).
    pub settle_after: std::time::Duration,
    pub config: Config,
}

/// Merges defaults, the file and the overrides (in that order of increasing priority).
/// `env` is the process environment (for the object store's `AWS_*` settings).
pub fn resolve(
    file: FileConfig,
    cli: Overrides,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, String> {
    let backend = match (cli.postgres_url.or(file.postgres_url), cli.object_store_url.or(file.object_store_url)) {
        (None, None) => Backend::Embedded,
        (Some(url), Some(object_store_url)) => {
            let mut object_store_options: BTreeMap<String, String> =
                env.into_iter().filter(|(k, _)| k.starts_with("AWS_")).map(|(k, v)| (k.to_lowercase(), v)).collect();
            object_store_options.extend(file.object_store_options.unwrap_or_default());
            Backend::Postgres {
                url,
                schema: cli.postgres_schema.or(file.postgres_schema),
                max_connections: cli.postgres_max_connections.or(file.postgres_max_connections).unwrap_or(16),
                ca_file: cli.postgres_ca_file.or(file.postgres_ca_file),
                object_store_url,
                object_store_options,
            }
        }
        (Some(_), None) => return Err("postgres_url needs object_store_url (where batch bodies go)".into()),
        (None, Some(_)) => return Err("object_store_url needs postgres_url (where the session index goes)".into()),
    };
    let oidc = crate::sso::from_settings(
        cli.oidc_issuer.or(file.oidc_issuer),
        cli.oidc_client_id.or(file.oidc_client_id),
        cli.oidc_client_secret.or(file.oidc_client_secret),
        cli.oidc_redirect_url.or(file.oidc_redirect_url),
        cli.oidc_name.or(file.oidc_name),
        cli.oidc_auto_create.or(file.oidc_auto_create).unwrap_or(false),
    )?;
    let d = Config::default();
    let mut config = Config {
        oidc,
        max_body_bytes: cli.max_body_bytes.or(file.max_body_bytes).unwrap_or(d.max_body_bytes),
        retention_days: cli.retention_days.or(file.retention_days).unwrap_or(d.retention_days),
        audit_retention_days: cli.audit_retention_days.or(file.audit_retention_days).unwrap_or(d.audit_retention_days),
        secure_cookies: cli.secure_cookies.or(file.secure_cookies).unwrap_or(d.secure_cookies),
        project_rate: {
            let per_second =
                cli.project_rate_per_second.or(file.project_rate_per_second).unwrap_or(d.project_rate.per_second);
            // The burst, unless given, is twice the rate (the default's too).
            Rate { per_second, burst: cli.project_burst.or(file.project_burst).unwrap_or(per_second.saturating_mul(2)) }
        },
        client_rate: Rate {
            per_second: cli.client_rate_per_second.or(file.client_rate_per_second).unwrap_or(d.client_rate.per_second),
            burst: cli.client_burst.or(file.client_burst).unwrap_or(d.client_rate.burst),
        },
        trusted_proxies: crate::client::parse_trusted(
            &cli.trusted_proxies.or(file.trusted_proxies).unwrap_or_default(),
        )?,
        accept_originless_ingest: cli
            .accept_originless_ingest
            .or(file.accept_originless_ingest)
            .unwrap_or(d.accept_originless_ingest),
        demo: cli.demo.or(file.demo).unwrap_or(d.demo),
        metrics_token: cli.metrics_token.or(file.metrics_token).filter(|t| !t.is_empty()),
        // 0 turns a cap or quota off.
        max_session_bytes: match cli.max_session_bytes.or(file.max_session_bytes) {
            Some(0) => None,
            Some(n) => Some(n),
            None => d.max_session_bytes,
        },
        client_bytes_per_second: match cli.client_bytes_per_second.or(file.client_bytes_per_second) {
            Some(0) => None,
            Some(n) => Some(n),
            None => d.client_bytes_per_second,
        },
        max_inflight_bytes: match cli.max_inflight_bytes.or(file.max_inflight_bytes) {
            Some(0) => None,
            Some(n) => Some(n),
            None => d.max_inflight_bytes,
        },
        quota_bytes_per_day: cli.quota_bytes_per_day.or(file.quota_bytes_per_day).filter(|&n| n > 0),
        quota_sessions_per_day: cli.quota_sessions_per_day.or(file.quota_sessions_per_day).filter(|&n| n > 0),
        ..d
    };
    if let Some(b) = cli.max_batch_bytes.or(file.max_batch_bytes) {
        config.limits.max_bytes = b;
    }
    Ok(Settings {
        listen: cli.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        data_dir: cli.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./data")),
        backend,
        admin_token: cli.admin_token.or(file.admin_token).filter(|t| !t.is_empty()),
        admin_password: cli.admin_password.or(file.admin_password).filter(|p| !p.is_empty()),
        freeze_timeout: std::time::Duration::from_secs(
            cli.freeze_timeout_secs.or(file.freeze_timeout_secs).unwrap_or(60).max(1),
        ),
        settle_after: std::time::Duration::from_secs(
            cli.settle_after_secs.or(file.settle_after_secs).unwrap_or(60).max(1),
        ),
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let file: FileConfig =
            toml::from_str("listen = \"0.0.0.0:9000\"\nretention_days = 7\nclient_burst = 5\n").expect("valid toml");
        let s = resolve(file, Overrides { retention_days: Some(1), ..Overrides::default() }, []).expect("valid");
        assert_eq!(s.listen, SocketAddr::from(([0, 0, 0, 0], 9000)));
        assert_eq!(s.config.retention_days, 1);
        assert_eq!(s.config.client_rate.burst, 5);
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.backend, Backend::Embedded);
        assert!(s.config.trusted_proxies.is_empty(), "no proxy is trusted unless named");
        let file: FileConfig = toml::from_str("trusted_proxies = [\"10.0.0.0/8\"]\n").expect("valid toml");
        let s = resolve(file, Overrides::default(), []).expect("valid");
        assert_eq!(s.config.trusted_proxies.len(), 1);
        let bad = Overrides { trusted_proxies: Some(vec!["10.0.0.0/99".into()]), ..Overrides::default() };
        assert!(resolve(FileConfig::default(), bad, []).is_err());
    }

    #[test]
    fn postgres_needs_an_object_store_and_takes_aws_settings_from_the_environment() {
        let file: FileConfig = toml::from_str(
            "postgres_url = \"postgres://replay@db/replay\"\n[object_store_options]\naws_region = \"eu-west-1\"\n",
        )
        .expect("valid toml");
        assert!(resolve(file, Overrides::default(), []).is_err());
        let file: FileConfig = toml::from_str(
            "postgres_url = \"postgres://replay@db/replay\"\n[object_store_options]\naws_region = \"eu-west-1\"\n",
        )
        .expect("valid toml");
        let env = [("AWS_ENDPOINT".to_string(), "http://127.0.0.1:9000".to_string()), ("HOME".into(), "/".into())];
        let overrides = Overrides { object_store_url: Some("s3://replay/batches".into()), ..Overrides::default() };
        let Backend::Postgres { object_store_options, max_connections, .. } =
            resolve(file, overrides, env).expect("valid").backend
        else {
            panic!("expected the postgres backend");
        };
        assert_eq!(max_connections, 16);
        assert_eq!(object_store_options.get("aws_endpoint").map(String::as_str), Some("http://127.0.0.1:9000"));
        assert_eq!(object_store_options.get("aws_region").map(String::as_str), Some("eu-west-1"));
        assert!(!object_store_options.contains_key("home"));
    }

    #[test]
    fn caps_and_quotas_come_from_the_file_or_flags_and_zero_turns_them_off() {
        let s = resolve(FileConfig::default(), Overrides::default(), []).expect("valid");
        assert_eq!(s.config.max_session_bytes, Some(DEFAULT_MAX_SESSION_BYTES));
        assert_eq!((s.config.quota_bytes_per_day, s.config.quota_sessions_per_day), (None, None));
        let file: FileConfig =
            toml::from_str("max_session_bytes = 1000\nquota_bytes_per_day = 5000\nquota_sessions_per_day = 7\n")
                .expect("valid toml");
        let cli = Overrides { quota_sessions_per_day: Some(0), ..Overrides::default() };
        let s = resolve(file, cli, []).expect("valid");
        assert_eq!(s.config.max_session_bytes, Some(1000));
        assert_eq!((s.config.quota_bytes_per_day, s.config.quota_sessions_per_day), (Some(5000), None));
        let cli = Overrides { max_session_bytes: Some(0), ..Overrides::default() };
        assert_eq!(resolve(FileConfig::default(), cli, []).expect("valid").config.max_session_bytes, None);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("retention_dayz = 7").is_err());
    }
}
