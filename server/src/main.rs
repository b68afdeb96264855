//! `replay-server`: the single binary that ingests, stores and serves session replays.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use replay_server::config::{FileConfig, Overrides, Settings, resolve};
use replay_server::{AppState, auth, deletion};
use replay_store::Storage;

/// mimalloc instead of the system allocator: ingest allocates on the async workers and frees
/// on the storage writer thread (bodies, summaries), which glibc's per-thread arenas handle
/// with locks and consolidation (about a sixth of the server's CPU at saturation).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "replay-server", version, about = "Session replay: ingest, storage, viewer")]
struct Cli {
    /// TOML config file; flags and environment variables override it.
    #[arg(long, env = "REPLAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free port, printed).
    #[arg(long, env = "REPLAY_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// Directory of the embedded storage (default ./data).
    #[arg(long, env = "REPLAY_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Largest ingest body in bytes, as sent (default 8 MiB).
    #[arg(long, env = "REPLAY_MAX_BODY_BYTES", global = true)]
    max_body_bytes: Option<usize>,
    /// Largest batch in bytes after decompression (default 32 MiB).
    #[arg(long, env = "REPLAY_MAX_BATCH_BYTES", global = true)]
    max_batch_bytes: Option<usize>,
    /// Days to keep sessions; 0 keeps them forever (default 30).
    #[arg(long, env = "REPLAY_RETENTION_DAYS", global = true)]
    retention_days: Option<u32>,
    /// Days to keep audit log entries; 0 keeps them forever (default 365).
    #[arg(long, env = "REPLAY_AUDIT_RETENTION_DAYS", global = true)]
    audit_retention_days: Option<u32>,
    /// Mark the viewer's login cookie Secure (when served over HTTPS).
    #[arg(long, env = "REPLAY_SECURE_COOKIES", global = true)]
    secure_cookies: Option<bool>,
    /// Ingest batches per second allowed per client address (burst: --client-burst).
    #[arg(long, env = "REPLAY_CLIENT_RATE", global = true)]
    client_rate: Option<u32>,
    #[arg(long, env = "REPLAY_CLIENT_BURST", global = true)]
    client_burst: Option<u32>,
    /// Load balancers in front of the server (comma-separated CIDR ranges or addresses): the
    /// client address comes from their X-Forwarded-For/Forwarded headers, HTTPS from their
    /// X-Forwarded-Proto. Nobody is trusted by default.
    #[arg(long, env = "REPLAY_TRUSTED_PROXIES", value_delimiter = ',', global = true)]
    trusted_proxies: Option<Vec<String>>,
    /// Accept ingest without an Origin header for projects that have an origin allow-list
    /// (server-to-server senders). Refused by default: anyone can send such requests.
    #[arg(long, env = "REPLAY_ACCEPT_ORIGINLESS_INGEST", global = true)]
    accept_originless_ingest: Option<bool>,
    /// Most stored bytes (as sent, usually gzip) one session may hold; later batches of a
    /// session past it are refused (`session_full`). 0: no cap (default 64 MiB).
    #[arg(long, env = "REPLAY_MAX_SESSION_BYTES", global = true)]
    max_session_bytes: Option<u64>,
    /// Ingest bytes (as sent) per second allowed per client address, burst 16 MiB; 0: no limit
    /// (default 1 MiB).
    #[arg(long, env = "REPLAY_CLIENT_BYTES_PER_SECOND", global = true)]
    client_bytes_per_second: Option<u64>,
    /// Most ingest bytes held at once by all uploads together (bodies and their decompressed
    /// copies); past it uploads get 503 `server_busy`. 0: no budget (default 256 MiB).
    #[arg(long, env = "REPLAY_MAX_INFLIGHT_BYTES", global = true)]
    max_inflight_bytes: Option<u64>,
    /// Per project and UTC day: most stored bytes accepted (then `quota_exceeded`, 429 until
    /// midnight UTC). 0 or unset: no quota.
    #[arg(long, env = "REPLAY_QUOTA_BYTES_PER_DAY", global = true)]
    quota_bytes_per_day: Option<u64>,
    /// Per project and UTC day: most new sessions accepted. 0 or unset: no quota.
    #[arg(long, env = "REPLAY_QUOTA_SESSIONS_PER_DAY", global = true)]
    quota_sessions_per_day: Option<u64>,
    /// Ingest batches per second allowed per project (default 2000).
    #[arg(long, env = "REPLAY_PROJECT_RATE", global = true)]
    project_rate: Option<u32>,
    /// Burst of --project-rate (default: twice the rate).
    #[arg(long, env = "REPLAY_PROJECT_BURST", global = true)]
    project_burst: Option<u32>,
    /// Admin token for API clients (`Authorization: Bearer ...`). Generated and printed once
    /// when neither this nor a stored one exists.
    #[arg(long, env = "REPLAY_ADMIN_TOKEN", hide_env_values = true, global = true)]
    admin_token: Option<String>,
    /// Password of the first viewer account `admin` (generated and printed when unset).
    #[arg(long, env = "REPLAY_ADMIN_PASSWORD", hide_env_values = true, global = true)]
    admin_password: Option<String>,
    /// File holding the admin token (one line): keeps the secret out of `ps` and the
    /// environment. Instead of --admin-token.
    #[arg(long, env = "REPLAY_ADMIN_TOKEN_FILE", global = true, conflicts_with = "admin_token")]
    admin_token_file: Option<PathBuf>,
    /// A secret that may read /metrics (`Authorization: Bearer ...`), for a Prometheus scraper;
    /// server admins always may.
    #[arg(long, env = "REPLAY_METRICS_TOKEN", hide_env_values = true, global = true)]
    metrics_token: Option<String>,
    /// File holding the metrics token (one line). Instead of --metrics-token.
    #[arg(long, env = "REPLAY_METRICS_TOKEN_FILE", global = true, conflicts_with = "metrics_token")]
    metrics_token_file: Option<PathBuf>,
    /// Serve the demo pages (/demo, /demo/lab, /demo/echo), which record into the first project
    /// and so publish its ingest key. Off by default; `cargo xtask run` turns them on.
    #[arg(long, env = "REPLAY_DEMO", global = true)]
    demo: Option<bool>,
    /// File holding the password of the viewer account `admin` (one line). Instead of
    /// --admin-password.
    #[arg(long, env = "REPLAY_ADMIN_PASSWORD_FILE", global = true, conflicts_with = "admin_password")]
    admin_password_file: Option<PathBuf>,
    /// Seconds after which a session whose page froze and sent nothing since is marked
    /// "froze, never recovered" (default 60).
    #[arg(long, env = "REPLAY_FREEZE_TIMEOUT_SECS", global = true)]
    freeze_timeout_secs: Option<u64>,
    /// Seconds without a batch after which a session's frustration signals (dead clicks, error
    /// clicks, quick backs) are judged over the whole session (default 60).
    #[arg(long, env = "REPLAY_SETTLE_AFTER_SECS", global = true)]
    settle_after_secs: Option<u64>,
    /// Scale-out storage: PostgreSQL for the session index (`postgres://user:pass@host/db`);
    /// needs --object-store-url. Several instances may share both.
    #[arg(long, env = "REPLAY_POSTGRES_URL", hide_env_values = true, global = true)]
    postgres_url: Option<String>,
    /// Schema of the tables in PostgreSQL (default: the connection's search_path).
    #[arg(long, env = "REPLAY_POSTGRES_SCHEMA", global = true)]
    postgres_schema: Option<String>,
    /// Most PostgreSQL connections one instance opens (default 16).
    #[arg(long, env = "REPLAY_POSTGRES_MAX_CONNECTIONS", global = true)]
    postgres_max_connections: Option<usize>,
    /// Where batch bodies go with --postgres-url: `s3://bucket/prefix` (endpoint and keys from
    /// the AWS_* environment variables or the config file) or `file:///shared/dir`.
    #[arg(long, env = "REPLAY_OBJECT_STORE_URL", global = true)]
    object_store_url: Option<String>,
    /// PEM file of certificate authorities for TLS to PostgreSQL (besides the system's); TLS
    /// is also on when the URL says `sslmode=require`. The certificate is always verified.
    #[arg(long, env = "REPLAY_POSTGRES_CA_FILE", global = true)]
    postgres_ca_file: Option<PathBuf>,
    /// Single sign-on: the OpenID Connect provider's issuer URL (https, or http on a loopback
    /// address). Needs --oidc-client-id, --oidc-client-secret and --oidc-redirect-url.
    #[arg(long, env = "REPLAY_OIDC_ISSUER", global = true)]
    oidc_issuer: Option<String>,
    /// The client id registered at the OpenID Connect provider.
    #[arg(long, env = "REPLAY_OIDC_CLIENT_ID", global = true)]
    oidc_client_id: Option<String>,
    /// The client secret at the provider (never printed; prefer the variable or a file).
    #[arg(long, env = "REPLAY_OIDC_CLIENT_SECRET", hide_env_values = true, global = true)]
    oidc_client_secret: Option<String>,
    /// File holding the client secret (one line). Instead of --oidc-client-secret.
    #[arg(long, env = "REPLAY_OIDC_CLIENT_SECRET_FILE", global = true, conflicts_with = "oidc_client_secret")]
    oidc_client_secret_file: Option<PathBuf>,
    /// This server's callback as registered at the provider: https://HOST/login/sso/callback.
    #[arg(long, env = "REPLAY_OIDC_REDIRECT_URL", global = true)]
    oidc_redirect_url: Option<String>,
    /// The provider's name on the sign-in button, "Sign in with NAME" (default: the issuer's host).
    #[arg(long, env = "REPLAY_OIDC_NAME", global = true)]
    oidc_name: Option<String>,
    /// Create an account (a member of no project) for a verified e-mail address no account has.
    /// Off by default: only accounts an admin created or invited sign in.
    #[arg(long, env = "REPLAY_OIDC_AUTO_CREATE", global = true)]
    oidc_auto_create: Option<bool>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Manage viewer accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Import an rrweb recording (a JSON file of events, as rrweb, PostHog or Sentry export it)
    /// as a new session of a project, and print the session id.
    ImportRrweb {
        #[arg(long)]
        project: i64,
        file: PathBuf,
    },
    /// Manage the source maps of releases.
    Sourcemaps {
        #[command(subcommand)]
        command: SourcemapsCommand,
    },
    /// Delete every session of an identified user (`Replay.identify`) in a project, as an
    /// erasure request asks, and print how many were deleted. Their later batches are refused.
    Erase {
        #[arg(long)]
        project: i64,
        #[arg(long)]
        user: String,
    },
    /// Manage recorded sessions.
    Session {
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Ask the server running on this machine (at --listen) for /healthz; exit status 0 when it
    /// answers 200. The container image's health check: the image has no shell or HTTP client.
    Healthcheck,
}

#[derive(Subcommand, Debug)]
enum SourcemapsCommand {
    /// Store a release's source maps and minified files (`.js`, `.mjs`, `.cjs`, `.map` under
    /// DIR), each under `--url-prefix` + its path in DIR (`~/` matches any origin).
    Upload {
        #[arg(long)]
        project: i64,
        #[arg(long)]
        release: String,
        #[arg(long)]
        url_prefix: String,
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ProjectCommand {
    /// Create a project and print its ingest key.
    Create {
        name: String,
        /// Origins allowed to send data, comma-separated (default: any).
        #[arg(long, value_delimiter = ',')]
        origins: Vec<String>,
    },
    /// List projects with their ingest keys and allowed origins.
    List,
    /// Set the origins allowed to send data to a project (empty: any).
    Origins {
        id: i64,
        #[arg(value_delimiter = ',')]
        origins: Vec<String>,
    },
    /// Make a new ingest key for a project and print it; the project's other keys stay valid
    /// for the grace period (a running server sees the change within 30 s).
    RotateKey {
        #[arg(long)]
        project: i64,
        /// How long the old keys keep working: e.g. 24h, 30m, 90s, 7d, 0 (default 24h).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        grace: Duration,
    },
    /// End one of a project's ingest keys at once (a running server refuses it within 30 s).
    RevokeKey {
        #[arg(long)]
        project: i64,
        key: String,
    },
    /// List a project's ingest keys, newest first, with when each ends.
    Keys {
        #[arg(long)]
        project: i64,
    },
    /// Set a project's own daily quotas (over --quota-bytes-per-day and
    /// --quota-sessions-per-day): a number (0: no quota) or `default` (the server's). A quota
    /// not named stays as it is.
    Quota {
        #[arg(long)]
        project: i64,
        #[arg(long, value_parser = parse_quota)]
        bytes_per_day: Option<QuotaValue>,
        #[arg(long, value_parser = parse_quota)]
        sessions_per_day: Option<QuotaValue>,
    },
}

/// A project's own quota as given on the command line: `default` (the server's) or a number.
#[derive(Debug, Clone, Copy)]
struct QuotaValue(Option<u64>);

fn parse_quota(text: &str) -> Result<QuotaValue, String> {
    match text.trim() {
        "default" => Ok(QuotaValue(None)),
        n => n.parse().map(|n| QuotaValue(Some(n))).map_err(|_| format!("{text:?} is not a number or `default`")),
    }
}

/// How a project's own quota reads in `project list`.
fn quota_text(own: Option<u64>) -> String {
    match own {
        None => "default".into(),
        Some(0) => "none".into(),
        Some(n) => n.to_string(),
    }
}

/// A duration such as `24h`, `30m`, `90s`, `7d` or `0`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 24h, 30m, 90s or 7d"))?;
    let seconds = match unit {
        "" if n == 0 => 0,
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3_600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{text:?} is not a duration like 24h, 30m, 90s or 7d")),
    };
    Ok(Duration::from_secs(seconds))
}

#[derive(Subcommand, Debug)]
enum SessionCommand {
    /// Delete one session (index, bodies, errors, facts); its later batches are refused.
    Delete {
        #[arg(long)]
        project: i64,
        id: String,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a viewer account (or reset its password) and print the new password.
    Set { name: String },
    /// Give a user a role in a project (`owner`, `member`, `read_only`), or `none` to remove them.
    Role { name: String, project: i64, role: String },
    /// Make a user a server admin (`--off`: no longer).
    Admin {
        name: String,
        #[arg(long)]
        off: bool,
    },
    /// Disable a user (their sign-ins and tokens end; `--off`: enable again).
    Disable {
        name: String,
        #[arg(long)]
        off: bool,
    },
    /// Make an API token and print its secret (once): a project's (`--project`), or a user's
    /// (`--user`, optionally limited to `--project`). Scopes: read, manage, admin.
    Token {
        #[arg(long)]
        name: String,
        #[arg(long, value_delimiter = ',', default_value = "read")]
        scopes: Vec<String>,
        #[arg(long)]
        project: Option<i64>,
        #[arg(long)]
        user: Option<String>,
    },
}

/// `user ...` beyond `set`: roles, admins, disabling, tokens, straight into the storage.
fn user_command(storage: &dyn Storage, command: UserCommand) -> anyhow::Result<()> {
    use replay_server::access::{Role, Scope};
    match command {
        UserCommand::Set { .. } => unreachable!("handled by the caller"),
        UserCommand::Role { name, project, role } => {
            anyhow::ensure!(storage.user(&name)?.is_some(), "no user {name}");
            anyhow::ensure!(storage.projects()?.iter().any(|p| p.id == project), "no project {project}");
            let role = match role.as_str() {
                "none" => None,
                r => Some(Role::parse(r).with_context(|| format!("{r:?} is not owner, member, read_only or none"))?),
            };
            storage.set_membership(project, &name, role.map(Role::as_str))?;
            println!("{name} in project {project}: {}", role.map_or("none", Role::as_str));
        }
        UserCommand::Admin { name, off } => {
            anyhow::ensure!(storage.set_user_admin(&name, !off)?, "no user {name}");
            println!("{name}: server admin {}", if off { "no" } else { "yes" });
        }
        UserCommand::Disable { name, off } => {
            anyhow::ensure!(storage.set_user_disabled(&name, !off)?, "no user {name}");
            println!("{name}: {}", if off { "enabled" } else { "disabled" });
        }
        UserCommand::Token { name, scopes, project, user } => {
            anyhow::ensure!(project.is_some() || user.is_some(), "a token belongs to a --project or a --user");
            for s in &scopes {
                anyhow::ensure!(Scope::parse(s).is_some(), "{s:?} is not read, manage or admin");
            }
            let secret = format!("{}{}", replay_server::tokens::PREFIX, replay_core::random_hex(32)?);
            let new = replay_store::NewToken { token_hash: auth::digest(&secret), name, user, project, scopes };
            let id = storage.create_token(&new)?;
            println!("token {id}: {secret}");
        }
    }
    Ok(())
}

/// `import-rrweb`: the import of the HTTP API, straight into the storage.
fn import_rrweb(
    storage: Arc<dyn Storage>,
    config: &replay_server::Config,
    project: i64,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    anyhow::ensure!(storage.projects()?.iter().any(|p| p.id == project), "project {project} does not exist");
    let cap = config.limits.max_bytes;
    let len = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.len();
    anyhow::ensure!(len <= cap as u64, "{} is larger than {cap} bytes", file.display());
    let json = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let config = config.clone();
    let imported = std::thread::Builder::new()
        .stack_size(replay_core::rrweb::STACK_BYTES)
        .spawn(move || replay_server::interop::import_blocking(storage.as_ref(), &config, project, &json))?
        .join()
        .map_err(|_| anyhow::anyhow!("the import failed"))?
        .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.reason.code()))?;
    for (kind, count) in &imported.dropped {
        eprintln!("not imported: {count} {kind}");
    }
    println!("{}", imported.session);
    Ok(())
}

/// A secret given directly, or read from `file` (its first line; trailing white space is not
/// part of it).
fn secret(given: Option<String>, file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let Some(path) = file else { return Ok(given) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the secret in {}", path.display()))?;
    let value = text.lines().next().unwrap_or_default().trim_end();
    anyhow::ensure!(!value.is_empty(), "{} holds no secret", path.display());
    Ok(Some(value.to_owned()))
}

/// The file to read a secret from: the one the command line names, else the config file's
/// unless the command line gave the secret itself.
fn secret_file(
    flag_file: &Option<PathBuf>,
    flag_secret: &Option<String>,
    file_file: &Option<PathBuf>,
) -> Option<PathBuf> {
    match (flag_file, flag_secret) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(_)) => None,
        (None, None) => file_file.clone(),
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REPLAY_LOG").unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => FileConfig::load(path).map_err(anyhow::Error::msg)?,
        None => FileConfig::default(),
    };
    // A secret file named by a flag or variable wins over the secret itself, which wins over
    // the config file's secret file (the config file's secret itself comes last, in `resolve`).
    let token_file = secret_file(&cli.admin_token_file, &cli.admin_token, &file.admin_token_file);
    cli.admin_token = secret(cli.admin_token.take(), token_file.as_deref())?;
    let metrics_file = secret_file(&cli.metrics_token_file, &cli.metrics_token, &file.metrics_token_file);
    cli.metrics_token = secret(cli.metrics_token.take(), metrics_file.as_deref())?;
    let password_file = secret_file(&cli.admin_password_file, &cli.admin_password, &file.admin_password_file);
    cli.admin_password = secret(cli.admin_password.take(), password_file.as_deref())?;
    let oidc_secret_file =
        secret_file(&cli.oidc_client_secret_file, &cli.oidc_client_secret, &file.oidc_client_secret_file);
    cli.oidc_client_secret = secret(cli.oidc_client_secret.take(), oidc_secret_file.as_deref())?;
    let settings = resolve(
        file,
        Overrides {
            listen: cli.listen,
            data_dir: cli.data_dir.clone(),
            max_body_bytes: cli.max_body_bytes,
            max_batch_bytes: cli.max_batch_bytes,
            retention_days: cli.retention_days,
            audit_retention_days: cli.audit_retention_days,
            secure_cookies: cli.secure_cookies,
            admin_token: cli.admin_token.clone(),
            metrics_token: cli.metrics_token.clone(),
            demo: cli.demo,
            admin_password: cli.admin_password.clone(),
            freeze_timeout_secs: cli.freeze_timeout_secs,
            settle_after_secs: cli.settle_after_secs,
            client_rate_per_second: cli.client_rate,
            client_burst: cli.client_burst,
            project_rate_per_second: cli.project_rate,
            project_burst: cli.project_burst,
            trusted_proxies: cli.trusted_proxies.clone(),
            accept_originless_ingest: cli.accept_originless_ingest,
            max_session_bytes: cli.max_session_bytes,
            client_bytes_per_second: cli.client_bytes_per_second,
            max_inflight_bytes: cli.max_inflight_bytes,
            quota_bytes_per_day: cli.quota_bytes_per_day,
            quota_sessions_per_day: cli.quota_sessions_per_day,
            postgres_url: cli.postgres_url.clone(),
            postgres_schema: cli.postgres_schema.clone(),
            postgres_max_connections: cli.postgres_max_connections,
            postgres_ca_file: cli.postgres_ca_file.clone(),
            object_store_url: cli.object_store_url.clone(),
            oidc_issuer: cli.oidc_issuer.clone(),
            oidc_client_id: cli.oidc_client_id.clone(),
            oidc_client_secret: cli.oidc_client_secret.clone(),
            oidc_redirect_url: cli.oidc_redirect_url.clone(),
            oidc_name: cli.oidc_name.clone(),
            oidc_auto_create: cli.oidc_auto_create,
        },
        std::env::vars(),
    )
    .map_err(anyhow::Error::msg)?;
    if matches!(cli.command, Some(Command::Healthcheck)) {
        return healthcheck(settings.listen, Duration::from_secs(3));
    }
    let storage =
        replay_store::open(&settings.backend, &settings.data_dir).with_context(|| match &settings.backend {
            replay_server::config::Backend::Embedded => format!("opening {}", settings.data_dir.display()),
            replay_server::config::Backend::Postgres { object_store_url, .. } => {
                format!("opening PostgreSQL and the object store {object_store_url}")
            }
        })?;
    match cli.command {
        Some(Command::Project { command }) => project_command(storage.as_ref(), command),
        Some(Command::User { command: UserCommand::Set { name } }) => {
            let password = replay_core::random_hex(12)?;
            storage.put_user(&name, &auth::hash_password(&password)?)?;
            println!("viewer account {name}: password {password}");
            Ok(())
        }
        Some(Command::User { command }) => user_command(storage.as_ref(), command),
        Some(Command::Erase { project, user }) => {
            anyhow::ensure!(storage.projects()?.iter().any(|p| p.id == project), "project {project} does not exist");
            anyhow::ensure!(!user.is_empty(), "name the user to erase");
            let deleted = deletion::erase_user(storage.as_ref(), project, &user, deletion::CLI_ACTOR)?;
            println!("deleted {} sessions of that user in project {project}", deleted.len());
            Ok(())
        }
        Some(Command::Session { command: SessionCommand::Delete { project, id } }) => {
            let found = deletion::delete_session(storage.as_ref(), project, &id, deletion::CLI_ACTOR)?;
            anyhow::ensure!(found, "project {project} has no session {id}");
            println!("session {id} deleted");
            Ok(())
        }
        Some(Command::ImportRrweb { project, file }) => import_rrweb(storage, &settings.config, project, &file),
        Some(Command::Sourcemaps { command: SourcemapsCommand::Upload { project, release, url_prefix, dir } }) => {
            upload_sourcemaps(storage.as_ref(), project, &release, &url_prefix, &dir)
        }
        Some(Command::Healthcheck) => unreachable!("answered before the storage is opened"),
        None | Some(Command::Serve) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(serve(settings, storage))
        }
    }
}

/// `GET /healthz` on the server listening at `listen` (an unspecified address is reached on
/// the loopback of its family), over a plain TCP connection with `timeout` for each step.
fn healthcheck(listen: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut target = listen;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let mut stream =
        std::net::TcpStream::connect_timeout(&target, timeout).with_context(|| format!("connecting to {target}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..])? {
            0 => break,
            n => len += n,
        }
    }
    let status_line = String::from_utf8_lossy(&head[..len]);
    let status_line = status_line.lines().next().unwrap_or_default();
    anyhow::ensure!(status_line.split(' ').nth(1) == Some("200"), "{target} answered {status_line:?}");
    println!("healthy: {target}");
    Ok(())
}

/// `replay-server sourcemaps upload`: every file of `dir` a release upload takes.
fn upload_sourcemaps(
    storage: &dyn Storage,
    project: i64,
    release: &str,
    prefix: &str,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    anyhow::ensure!(storage.projects()?.iter().any(|p| p.id == project), "no project with id {project}");
    let files =
        replay_server::sourcemaps::release_files(dir, prefix).with_context(|| format!("reading {}", dir.display()))?;
    anyhow::ensure!(!files.is_empty(), "no .js or .map files in {}", dir.display());
    for (path, url) in &files {
        let size = std::fs::metadata(path)?.len();
        anyhow::ensure!(
            size <= replay_store::MAX_ARTIFACT_BYTES as u64,
            "{} holds {size} bytes, more than a release file may",
            path.display()
        );
        let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        storage.put_artifact(project, release, url, &body).with_context(|| format!("storing {url}"))?;
        println!("{url} ({size} bytes)");
    }
    println!("{} files stored for release {release} of project {project}", files.len());
    Ok(())
}

fn project_command(storage: &dyn Storage, command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create { name, origins } => {
            let p = storage.create_project(&name)?;
            storage.set_allowed_origins(p.id, &origins)?;
            println!("project {} created (id {}), ingest key: {}", p.name, p.id, p.ingest_key);
        }
        ProjectCommand::List => {
            for p in storage.projects()? {
                let origins = if p.allowed_origins.is_empty() { "*".into() } else { p.allowed_origins.join(",") };
                let quota = format!(
                    "bytes/day {} sessions/day {}",
                    quota_text(p.quota.bytes_per_day),
                    quota_text(p.quota.sessions_per_day)
                );
                println!("{}\t{}\t{}\t{}\t{quota}", p.id, p.name, p.ingest_key, origins);
            }
        }
        ProjectCommand::RotateKey { project, grace } => {
            let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
            let key = storage.rotate_key(project, grace_ms)?;
            println!("project {project}: new ingest key: {key}");
            println!("  its previous keys keep working for {}s", grace.as_secs());
        }
        ProjectCommand::RevokeKey { project, key } => {
            anyhow::ensure!(storage.revoke_key(project, &key)?, "project {project} has no live key {key}");
            println!("project {project}: key {key} revoked");
        }
        ProjectCommand::Keys { project } => {
            let now = replay_core::now_ms();
            for k in storage.ingest_keys(project)? {
                let state = match (k.revoked_ms, k.expires_ms) {
                    (Some(_), _) => "revoked".to_owned(),
                    (None, Some(end)) if end <= now => "expired".to_owned(),
                    (None, Some(end)) => format!("ends in {}s", (end - now).div_ceil(1000)),
                    (None, None) => "live".to_owned(),
                };
                println!("{}\t{state}", k.key);
            }
        }
        ProjectCommand::Quota { project, bytes_per_day, sessions_per_day } => {
            let current = storage
                .projects()?
                .into_iter()
                .find(|p| p.id == project)
                .ok_or_else(|| anyhow::anyhow!("no project with id {project}"))?;
            let quota = replay_store::ProjectQuota {
                bytes_per_day: bytes_per_day.map_or(current.quota.bytes_per_day, |v| v.0),
                sessions_per_day: sessions_per_day.map_or(current.quota.sessions_per_day, |v| v.0),
            };
            storage.set_project_quota(project, quota)?;
            println!(
                "project {project}: bytes/day {}, sessions/day {} (a running server applies it within 30 s)",
                quota_text(quota.bytes_per_day),
                quota_text(quota.sessions_per_day)
            );
        }
        ProjectCommand::Origins { id, origins } => {
            storage.set_allowed_origins(id, &origins)?;
            println!(
                "project {id} accepts data from: {}",
                if origins.is_empty() { "any origin".into() } else { origins.join(", ") }
            );
        }
    }
    Ok(())
}

async fn serve(settings: Settings, storage: Arc<dyn Storage>) -> anyhow::Result<()> {
    let project = match storage.projects()?.into_iter().next() {
        Some(p) => p,
        None => match storage.create_project("default") {
            Ok(p) => {
                println!("created project \"default\"");
                p
            }
            // Another instance sharing the storage created it first.
            Err(e) => storage.projects()?.into_iter().next().ok_or(e)?,
        },
    };
    let boot = auth::bootstrap(storage.as_ref(), settings.admin_token.as_deref(), settings.admin_password.as_deref())?;
    if !replay_server::assets::has_web_build() {
        tracing::warn!("this binary was built without the recorder/viewer wasm; run `cargo xtask run`");
    }
    let state = AppState::new(storage, settings.config.clone());
    let listener =
        tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    println!("replay-server listening on http://{addr}");
    println!("  viewer:     http://{addr}/viewer/");
    if settings.config.demo {
        println!("  demo app:   http://{addr}/demo");
    }
    println!("  ingest key: {} (project \"{}\")", project.ingest_key, project.name);
    match &boot.new_user {
        Some((user, Some(password))) => println!("  viewer login (shown once): {user} / {password}"),
        Some((user, None)) => println!("  viewer login: {user} (the password you configured)"),
        None => {}
    }
    if let Some(token) = &boot.new_admin_token {
        println!("  admin token (shown once, for Authorization: Bearer): {token}");
    }
    println!(
        "  embed:      <script src=\"http://{addr}/recorder.js\" data-key=\"{}\" defer></script>",
        project.ingest_key
    );
    let backend = match &settings.backend {
        replay_server::config::Backend::Embedded => format!("sqlite in {}", settings.data_dir.display()),
        replay_server::config::Backend::Postgres { object_store_url, .. } => {
            format!("postgres + {object_store_url}")
        }
    };
    tracing::info!(%addr, storage = %backend, retention_days = settings.config.retention_days, "serving");
    tokio::spawn(housekeeping(state.clone()));
    tokio::spawn(unrecovered_freezes(state.clone(), settings.freeze_timeout));
    tokio::spawn(settle_frustration(state.clone(), settings.settle_after));
    let app = replay_server::app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Every minute: forget idle rate-limit keys; every hour: apply retention (sessions, audit log).
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut minutes = 0u64;
    loop {
        tick.tick().await;
        state.limits.forget_idle();
        state.refused.forget_expired();
        let days = state.config.retention_days;
        if days > 0 && minutes.is_multiple_of(60) {
            let cutoff = replay_core::now_ms().saturating_sub(u64::from(days) * 86_400_000);
            match state.blocking(move |s| s.delete_sessions_before(cutoff)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, days, "retention applied"),
                Err(e) => tracing::error!(error = %e, "retention failed"),
            }
        }
        if minutes.is_multiple_of(60) {
            let now = replay_core::now_ms();
            match state.blocking(move |s| replay_server::projects::apply_retention(s, now)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "projects' own retention applied"),
                Err(e) => tracing::error!(error = %e, "projects' own retention failed"),
            }
        }
        let audit_days = state.config.audit_retention_days;
        if audit_days > 0 && minutes.is_multiple_of(60) {
            let cutoff = replay_core::now_ms().saturating_sub(u64::from(audit_days) * 86_400_000);
            match state.blocking(move |s| s.delete_audit_before(cutoff)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, days = audit_days, "audit log pruned"),
                Err(e) => tracing::error!(error = %e, "pruning the audit log failed"),
            }
        }
        minutes += 1;
    }
}

/// Marks sessions "froze, never recovered": their page sent a `freeze_started` marker (from
/// the recorder's worker) and then nothing for their project's freeze timeout (`timeout`, the
/// server's, unless the project has its own), so the tab was killed or closed while frozen.
/// Checked a few times per server timeout, at least every 15 s.
async fn unrecovered_freezes(state: AppState, timeout: Duration) {
    let mut tick = tokio::time::interval((timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(15)));
    loop {
        tick.tick().await;
        let now = replay_core::now_ms();
        match state.blocking(move |s| replay_server::projects::mark_unrecovered_freezes(s, now, timeout)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "froze and never recovered"),
            Err(e) => tracing::error!(error = %e, "checking unrecovered freezes failed"),
        }
    }
}

/// Judges the frustration signals of sessions idle for `after` over the whole session (see
/// `replay_server::frustration`), a round a few times per `after`, each round bounded.
async fn settle_frustration(state: AppState, after: Duration) {
    let mut tick = tokio::time::interval((after / 4).clamp(Duration::from_secs(1), Duration::from_secs(15)));
    let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
    loop {
        tick.tick().await;
        let cutoff = replay_core::now_ms().saturating_sub(after_ms);
        let (limits, max_read) = (state.config.limits, state.config.max_read_bytes);
        let round = state.blocking(move |s| {
            replay_server::frustration::settle(s, &limits, max_read, cutoff, Duration::from_secs(5))
        });
        match round.await {
            Ok(r) if r == replay_server::frustration::Round::default() => {}
            Ok(r) => tracing::debug!(judged = r.judged, skipped = r.skipped, raced = r.raced, "frustration settled"),
            Err(e) => tracing::error!(error = %e, "settling frustration signals failed"),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM; in-flight requests then finish before the process exits.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthcheck_needs_a_200_from_healthz() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let answers = ["HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", "HTTP/1.1 503 Service Unavailable\r\n\r\n"];
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut requests = Vec::new();
            for answer in answers {
                let (mut conn, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 256];
                let n = conn.read(&mut buf).expect("read");
                requests.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                conn.write_all(answer.as_bytes()).expect("write");
            }
            requests
        });
        let unspecified = SocketAddr::from(([0, 0, 0, 0], addr.port()));
        assert!(healthcheck(unspecified, Duration::from_secs(3)).is_ok(), "0.0.0.0 is reached on the loopback");
        assert!(healthcheck(addr, Duration::from_secs(3)).is_err(), "503 is unhealthy");
        let requests = server.join().expect("server");
        assert!(requests[0].starts_with("GET /healthz HTTP/1.1\r\n"), "{requests:?}");
        assert!(healthcheck(addr, Duration::from_secs(3)).is_err(), "nothing listens any more");
    }

    /// The command line's flags and variables are those of the settings list (which the docs'
    /// table is generated from), and each flag goes with its variable.
    #[test]
    fn every_flag_and_variable_is_in_the_settings_list() {
        use clap::CommandFactory;
        use replay_server::config::settings::SETTINGS;
        let mut from_cli = std::collections::BTreeSet::new();
        for arg in Cli::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if ["help", "version"].contains(&long) {
                continue;
            }
            let env = arg.get_env().and_then(|e| e.to_str()).map(str::to_owned);
            from_cli.insert((format!("--{long}"), env));
        }
        let listed: std::collections::BTreeSet<(String, Option<String>)> =
            SETTINGS.iter().filter_map(|s| Some((s.flag?.to_owned(), s.env.map(str::to_owned)))).collect();
        assert_eq!(from_cli, listed, "the flags and variables of `replay-server` and the settings list");
    }

    #[test]
    fn a_secret_file_on_the_command_line_wins_then_the_secret_then_the_config_files() {
        let (flag, file) = (Some(PathBuf::from("flag")), Some(PathBuf::from("file")));
        assert_eq!(secret_file(&flag, &Some("s".into()), &file), flag);
        assert_eq!(secret_file(&None, &Some("s".into()), &file), None);
        assert_eq!(secret_file(&None, &None, &file), file);
    }

    #[test]
    fn grace_periods_parse_with_their_unit() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("12").is_err() && parse_duration("1w").is_err() && parse_duration("h").is_err());
    }

    #[test]
    fn secrets_come_from_their_file_without_the_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token \n").expect("write");
        assert_eq!(secret(None, Some(&path)).expect("read").as_deref(), Some("s3cret-token"));
        assert_eq!(secret(Some("direct".into()), None).expect("given").as_deref(), Some("direct"));
        std::fs::write(&path, "\n").expect("write");
        assert!(secret(None, Some(&path)).is_err(), "an empty file is an error, not an empty token");
        assert!(secret(None, Some(&dir.path().join("missing"))).is_err());
    }
}
