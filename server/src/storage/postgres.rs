//! The scale-out engine: the session index in PostgreSQL, batch bodies in an object store
//! (S3-compatible, or a shared directory).
//!
//! Several `replay-server` instances can point at the same database and bucket: nothing about
//! a session lives in one instance's memory, so a load balancer may send any request anywhere.
//! The only per-instance state is a short-lived cache of projects by ingest key (changes to a
//! project's allowed origins reach other instances within [`KEY_CACHE_TTL`]) and the rate
//! limiters.
//!
//! Storing a batch: if its key `(project, session, page, seq)` is already indexed the batch is a
//! duplicate and nothing is written. Otherwise the body goes to a fresh object first, then one
//! transaction inserts the batch row and updates the session index and error groups. The
//! batch is durable (and acknowledged) only after both: the object store answered the upload
//! and PostgreSQL committed. A concurrent duplicate loses the insert race and deletes its own
//! object. A crash between the upload and the commit leaves an unreferenced object, never a
//! row without a body.
//!
//! [`Storage`] is synchronous while the drivers are async: the engine runs them on its own
//! small tokio runtime, so it can be called from any thread, including the server's async
//! workers (through `put_batch_then`, which never blocks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::{
    BatchBody, BatchDone, BatchSummary, COMPARE_ENVIRONMENT_SQL, ErrorGroup, FactComparison, Project,
    RECENT_ERROR_SESSIONS, SESSION_COLUMNS, SessionFilter, SessionRow, Storage, Stored, comparisons, new_key, now_ms,
    random_hex, unpack,
};
use crate::Error;

/// How long an instance trusts its cached copy of a project (allowed origins may change).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

/// Batch bodies fetched at once when a session is read.
const PARALLEL_FETCHES: usize = 16;

/// Where the engine keeps things.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database` (or key=value form).
    pub url: String,
    /// Schema for the engine's tables (created when missing); `None` uses the connection's
    /// default `search_path`.
    pub schema: Option<String>,
    /// The object store for batch bodies, and the prefix inside it.
    pub store: Arc<dyn ObjectStore>,
    pub prefix: ObjectPath,
    /// Most connections this instance opens.
    pub max_connections: usize,
    /// PEM file of certificate authorities to trust for TLS to PostgreSQL, besides the
    /// system's (managed databases often sign with their own CA).
    pub ca_file: Option<std::path::PathBuf>,
}

/// PostgreSQL + object store storage; cheap to clone.
#[derive(Clone)]
pub struct PostgresStorage {
    engine: Engine,
    runtime: Arc<OwnRuntime>,
}

/// Projects by ingest key, with when each was read.
type KeyCache = HashMap<String, (Arc<Project>, Instant)>;

/// The async half: a connection pool and the object store.
#[derive(Clone)]
struct Engine {
    pool: Pool,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    keys: Arc<Mutex<KeyCache>>,
}

/// The engine's runtime. Dropped without waiting, because the last clone of the storage may
/// be dropped inside another runtime (where a blocking shutdown would panic).
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl OwnRuntime {
    fn handle(&self) -> Result<&tokio::runtime::Handle, Error> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle).ok_or_else(|| Error::Storage("runtime stopped".into()))
    }
}

const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite engine has after its migration 4, in PostgreSQL types.
    "CREATE TABLE projects (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        ingest_key TEXT NOT NULL UNIQUE,
        allowed_origins TEXT NOT NULL DEFAULT '',
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE sessions (
        project_id BIGINT NOT NULL REFERENCES projects(id),
        id TEXT NOT NULL,
        start_ms BIGINT NOT NULL,
        end_ms BIGINT NOT NULL,
        url TEXT NOT NULL DEFAULT '',
        user_agent TEXT NOT NULL DEFAULT '',
        user_id TEXT NOT NULL DEFAULT '',
        release TEXT NOT NULL DEFAULT '',
        environment TEXT NOT NULL DEFAULT '',
        browser TEXT NOT NULL DEFAULT '',
        pages BIGINT NOT NULL DEFAULT 0,
        batches BIGINT NOT NULL DEFAULT 0,
        events BIGINT NOT NULL DEFAULT 0,
        clicks BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0,
        dropped BIGINT NOT NULL DEFAULT 0,
        recorder_errors BIGINT NOT NULL DEFAULT 0,
        errors BIGINT NOT NULL DEFAULT 0,
        freezes BIGINT NOT NULL DEFAULT 0,
        received_ms BIGINT NOT NULL DEFAULT 0,
        longest_freeze_ms BIGINT NOT NULL DEFAULT 0,
        freeze_culprit TEXT NOT NULL DEFAULT '',
        freeze_started_ms BIGINT NOT NULL DEFAULT 0,
        freeze_ended_ms BIGINT NOT NULL DEFAULT 0,
        never_recovered BOOLEAN NOT NULL DEFAULT FALSE,
        PRIMARY KEY (project_id, id)
    );
    CREATE INDEX sessions_by_start ON sessions(project_id, start_ms DESC);
    CREATE INDEX sessions_by_received ON sessions(received_ms);
    CREATE INDEX sessions_open_freezes ON sessions(received_ms)
        WHERE NOT never_recovered AND freeze_started_ms > freeze_ended_ms;
    CREATE TABLE batches (
        project_id BIGINT NOT NULL,
        session_id TEXT NOT NULL,
        page_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        start_ms BIGINT NOT NULL,
        end_ms BIGINT NOT NULL,
        received_ms BIGINT NOT NULL,
        object_key TEXT NOT NULL,
        encoding TEXT NOT NULL,
        bytes BIGINT NOT NULL,
        PRIMARY KEY (project_id, session_id, page_id, seq)
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_ms BIGINT NOT NULL);
    CREATE TABLE logins (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        expires_ms BIGINT NOT NULL
    );
    CREATE TABLE error_groups (
        project_id BIGINT NOT NULL,
        fingerprint TEXT NOT NULL,
        message TEXT NOT NULL,
        frame TEXT NOT NULL,
        count BIGINT NOT NULL,
        first_ms BIGINT NOT NULL,
        last_ms BIGINT NOT NULL,
        PRIMARY KEY (project_id, fingerprint)
    );
    CREATE INDEX error_groups_by_last ON error_groups(project_id, last_ms DESC);
    CREATE TABLE error_sessions (
        project_id BIGINT NOT NULL,
        fingerprint TEXT NOT NULL,
        session_id TEXT NOT NULL,
        count BIGINT NOT NULL,
        last_ms BIGINT NOT NULL,
        PRIMARY KEY (project_id, fingerprint, session_id)
    );
    CREATE INDEX error_sessions_by_session ON error_sessions(project_id, session_id);",
    // 2: rage clicks in the session index.
    "ALTER TABLE sessions ADD COLUMN rage_clicks BIGINT NOT NULL DEFAULT 0;",
    // 3: environment facts, to compare a session with the others.
    "CREATE TABLE session_facts (
        project_id BIGINT NOT NULL,
        session_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (project_id, session_id, name)
    );
    CREATE INDEX session_facts_by_value ON session_facts(project_id, name, value);",
];

/// Arbitrary constant naming the advisory lock that serialises migrations between instances.
const MIGRATION_LOCK: i64 = 0x7265_706c_6179;

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// PostgreSQL text cannot hold NUL; recorded strings are hostile and may.
fn text(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

fn opt_text(s: Option<&String>) -> Option<String> {
    s.map(|s| text(s))
}

impl PostgresStorage {
    /// Connects, creates the schema when asked, and applies pending migrations (safe when
    /// several instances start at once).
    pub fn connect(options: PostgresOptions) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("replay-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Io { path: "postgres runtime".into(), source: e })?;
        let runtime = Arc::new(OwnRuntime(Some(runtime)));
        let mut config: tokio_postgres::Config =
            options.url.parse().map_err(|e| Error::Storage(format!("invalid postgres url: {e}")))?;
        if let Some(schema) = &options.schema {
            if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || schema.is_empty() {
                return Err(Error::Storage("postgres schema must be letters, digits and _".into()));
            }
            config.options(format!("-c search_path={schema}"));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        // TLS when the URL asks for it (`sslmode=require`) or a CA file is given: the server's
        // certificate is always verified (system roots plus the CA file), unlike libpq's
        // `require`. Otherwise plain TCP, for databases on a private network or a socket.
        let manager = if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require || options.ca_file.is_some()
        {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(options.ca_file.as_deref())?);
            Manager::from_config(config, tls, manager_config)
        } else {
            Manager::from_config(config, NoTls, manager_config)
        };
        let pool = {
            // The pool spawns nothing itself, but building it needs a runtime context.
            let _guard = runtime.handle()?.enter();
            Pool::builder(manager)
                .max_size(options.max_connections.max(1))
                .wait_timeout(Some(Duration::from_secs(30)))
                .create_timeout(Some(Duration::from_secs(10)))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| Error::Storage(format!("postgres pool: {e}")))?
        };
        let engine =
            Engine { pool, store: options.store, prefix: options.prefix, keys: Arc::new(Mutex::new(HashMap::new())) };
        let storage = PostgresStorage { engine, runtime };
        let schema = options.schema.clone();
        storage.block(move |e| async move { e.migrate(schema.as_deref()).await })?;
        Ok(storage)
    }

    /// Runs `f` on the engine's runtime and waits for it (from any thread).
    fn block<T, F, Fut>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(Engine) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.engine.clone());
        self.runtime.handle()?.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| Error::Storage("the postgres runtime stopped".into()))?
    }
}

/// A rustls client trusting the system's certificate authorities and those in `ca_file`.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot parse is skipped, as every TLS client does.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| Error::Storage(format!("cannot read postgres CA file {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| Error::Storage(format!("invalid postgres CA file {}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| Error::Storage(format!("unusable CA in {}: {e}", path.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(Error::Storage("no certificate authority to verify postgres with (set postgres_ca_file)".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Storage(format!("tls setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Engine {
    async fn migrate(&self, schema: Option<&str>) -> Result<(), Error> {
        let mut client = self.pool.get().await?;
        if let Some(schema) = schema {
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await?;
        }
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        let fresh: bool = tx.query_one("SELECT to_regclass('replay_migrations') IS NULL", &[]).await?.get(0);
        if fresh {
            tx.batch_execute("CREATE TABLE replay_migrations (version BIGINT NOT NULL)").await?;
        }
        let done: i64 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM replay_migrations", &[]).await?.get(0);
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(usize::try_from(done).unwrap_or(0)) {
            tx.batch_execute(migration).await?;
            let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
            tx.execute("INSERT INTO replay_migrations (version) VALUES ($1)", &[&version]).await?;
            tracing::info!(version, "postgres migration applied");
        }
        tx.commit().await?;
        Ok(())
    }

    fn object_key(&self, project: i64, s: &BatchSummary, nonce: &str) -> ObjectPath {
        // Session and page ids are validated at decode ([A-Za-z0-9_-]{1,64}), so they are safe
        // path parts; the nonce keeps a racing duplicate from overwriting the winner's body.
        self.prefix
            .clone()
            .join(format!("p{project}"))
            .join(s.session.as_str())
            .join(format!("{}-{}-{nonce}", s.page, s.seq))
    }

    async fn exists(&self, project: i64, s: &BatchSummary) -> Result<bool, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT 1 FROM batches WHERE project_id = $1 AND session_id = $2 AND page_id = $3 AND seq = $4",
            )
            .await?;
        Ok(client.query_opt(&stmt, &[&project, &s.session, &s.page, &i64::from(s.seq)]).await?.is_some())
    }

    async fn put_batch(&self, project: i64, s: BatchSummary, body: BatchBody) -> Result<Stored, Error> {
        if self.exists(project, &s).await? {
            return Ok(Stored::Duplicate);
        }
        let key = self.object_key(project, &s, &random_hex(8)?);
        let size = i64::try_from(body.bytes.len()).unwrap_or(i64::MAX);
        let encoding = if body.gzip { "gzip" } else { "" };
        self.store.put(&key, body.bytes.into()).await?;
        let inserted = self.index_batch(project, &s, key.as_ref(), encoding, size).await;
        match inserted {
            Ok(Stored::New) => Ok(Stored::New),
            other => {
                // A duplicate that lost the race, or a failed transaction: the body is unused.
                if let Err(e) = self.store.delete(&key).await {
                    tracing::warn!(error = %e, key = %key, "could not delete an unused batch body");
                }
                other
            }
        }
    }

    async fn index_batch(
        &self,
        project: i64,
        s: &BatchSummary,
        key: &str,
        encoding: &str,
        size: i64,
    ) -> Result<Stored, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO batches (project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, object_key,
                                      encoding, bytes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        let rows = tx
            .execute(
                &insert,
                &[
                    &project,
                    &s.session,
                    &s.page,
                    &i64::from(s.seq),
                    &to_i64(s.start_ms),
                    &to_i64(s.end_ms),
                    &to_i64(s.received_ms),
                    &key,
                    &encoding,
                    &size,
                ],
            )
            .await?;
        if rows == 0 {
            return Ok(Stored::Duplicate);
        }
        let upsert = tx
            .prepare_cached(
                "INSERT INTO sessions AS t (project_id, id, start_ms, end_ms, url, user_agent, pages, batches, events,
                        clicks, bytes, dropped, recorder_errors, user_id, release, environment, browser, errors,
                        freezes, received_ms, longest_freeze_ms, freeze_culprit, freeze_started_ms, freeze_ended_ms,
                        rage_clicks)
                 VALUES ($1, $2, $3, $4, COALESCE($5, ''), COALESCE($6, ''), $7, 1, $8, $9, $10, $11, $12,
                         COALESCE($13, ''), COALESCE($14, ''), COALESCE($15, ''), COALESCE($16, ''), $17, $18, $19,
                         $20, COALESCE($21, ''), $22, $23, $24)
                 ON CONFLICT (project_id, id) DO UPDATE SET
                    start_ms = LEAST(t.start_ms, EXCLUDED.start_ms),
                    end_ms = GREATEST(t.end_ms, EXCLUDED.end_ms),
                    url = CASE WHEN t.url = '' OR (EXCLUDED.start_ms < t.start_ms AND EXCLUDED.url <> '')
                          THEN EXCLUDED.url ELSE t.url END,
                    user_agent = CASE WHEN t.user_agent = '' THEN EXCLUDED.user_agent ELSE t.user_agent END,
                    user_id = CASE WHEN $13::TEXT IS NOT NULL THEN EXCLUDED.user_id ELSE t.user_id END,
                    release = CASE WHEN $14::TEXT IS NOT NULL THEN EXCLUDED.release ELSE t.release END,
                    environment = CASE WHEN $15::TEXT IS NOT NULL THEN EXCLUDED.environment ELSE t.environment END,
                    browser = CASE WHEN t.browser = '' THEN EXCLUDED.browser ELSE t.browser END,
                    pages = t.pages + EXCLUDED.pages,
                    batches = t.batches + 1,
                    events = t.events + EXCLUDED.events,
                    clicks = t.clicks + EXCLUDED.clicks,
                    rage_clicks = t.rage_clicks + EXCLUDED.rage_clicks,
                    bytes = t.bytes + EXCLUDED.bytes,
                    dropped = t.dropped + EXCLUDED.dropped,
                    recorder_errors = t.recorder_errors + EXCLUDED.recorder_errors,
                    errors = t.errors + EXCLUDED.errors,
                    freezes = t.freezes + EXCLUDED.freezes,
                    received_ms = GREATEST(t.received_ms, EXCLUDED.received_ms),
                    longest_freeze_ms = GREATEST(t.longest_freeze_ms, EXCLUDED.longest_freeze_ms),
                    freeze_culprit = CASE WHEN EXCLUDED.longest_freeze_ms > t.longest_freeze_ms
                                     THEN EXCLUDED.freeze_culprit ELSE t.freeze_culprit END,
                    freeze_started_ms = GREATEST(t.freeze_started_ms, EXCLUDED.freeze_started_ms),
                    freeze_ended_ms = GREATEST(t.freeze_ended_ms, EXCLUDED.freeze_ended_ms),
                    never_recovered = CASE WHEN GREATEST(t.freeze_ended_ms, EXCLUDED.freeze_ended_ms)
                                                >= GREATEST(t.freeze_started_ms, EXCLUDED.freeze_started_ms)
                                      THEN FALSE ELSE t.never_recovered END",
            )
            .await?;
        let (url, agent, user) = (opt_text(s.url.as_ref()), opt_text(s.user_agent.as_ref()), opt_text(s.user.as_ref()));
        let (release, environment) = (opt_text(s.release.as_ref()), opt_text(s.environment.as_ref()));
        let (browser, culprit) = (opt_text(s.browser.as_ref()), opt_text(s.freeze_culprit.as_ref()));
        let params: [&(dyn ToSql + Sync); 24] = [
            &project,
            &s.session,
            &to_i64(s.start_ms),
            &to_i64(s.end_ms),
            &url,
            &agent,
            &i64::from(s.seq == 0),
            &to_i64(s.events),
            &to_i64(s.clicks),
            &size,
            &to_i64(s.dropped),
            &to_i64(s.recorder_errors),
            &user,
            &release,
            &environment,
            &browser,
            &to_i64(s.errors),
            &to_i64(s.freezes),
            &to_i64(s.received_ms),
            &to_i64(s.longest_freeze_ms),
            &culprit,
            &to_i64(s.freeze_started_ms),
            &to_i64(s.freeze_ended_ms),
            &to_i64(s.rage_clicks),
        ];
        tx.execute(&upsert, &params).await?;
        if !s.facts.is_empty() {
            let fact = tx
                .prepare_cached(
                    "INSERT INTO session_facts (project_id, session_id, name, value) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (project_id, session_id, name) DO UPDATE SET value = EXCLUDED.value",
                )
                .await?;
            for (name, value) in &s.facts {
                tx.execute(&fact, &[&project, &s.session, &text(name), &text(value)]).await?;
            }
        }
        if !s.error_sightings.is_empty() {
            let group = tx
                .prepare_cached(
                    "INSERT INTO error_groups AS g (project_id, fingerprint, message, frame, count, first_ms, last_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $6)
                     ON CONFLICT (project_id, fingerprint) DO UPDATE SET
                        count = g.count + EXCLUDED.count,
                        first_ms = LEAST(g.first_ms, EXCLUDED.first_ms),
                        last_ms = GREATEST(g.last_ms, EXCLUDED.last_ms)",
                )
                .await?;
            let session = tx
                .prepare_cached(
                    "INSERT INTO error_sessions AS e (project_id, fingerprint, session_id, count, last_ms)
                         VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (project_id, fingerprint, session_id) DO UPDATE SET
                        count = e.count + EXCLUDED.count,
                        last_ms = GREATEST(e.last_ms, EXCLUDED.last_ms)",
                )
                .await?;
            for e in &s.error_sightings {
                let (fingerprint, count, at) = (text(&e.fingerprint), to_i64(e.count), to_i64(e.at_ms));
                tx.execute(&group, &[&project, &fingerprint, &text(&e.message), &text(&e.frame), &count, &at]).await?;
                tx.execute(&session, &[&project, &fingerprint, &s.session, &count, &at]).await?;
            }
        }
        tx.commit().await?;
        Ok(Stored::New)
    }

    async fn batch_rows(&self, project: i64, session: &str) -> Result<Vec<tokio_postgres::Row>, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT b.page_id, b.seq, b.object_key, b.encoding FROM batches b
                 JOIN (SELECT page_id, MIN(start_ms) AS page_start FROM batches
                       WHERE project_id = $1 AND session_id = $2 GROUP BY page_id) p ON p.page_id = b.page_id
                 WHERE b.project_id = $1 AND b.session_id = $2
                 ORDER BY p.page_start, b.page_id, b.seq",
            )
            .await?;
        Ok(client.query(&stmt, &[&project, &session]).await?)
    }

    async fn batches(&self, project: i64, session: &str) -> Result<Vec<Vec<u8>>, Error> {
        let rows = self.batch_rows(project, session).await?;
        futures_util::stream::iter(rows.into_iter().map(|row| {
            let store = Arc::clone(&self.store);
            async move {
                let key: String = row.get(2);
                let encoding: String = row.get(3);
                let bytes = store.get(&ObjectPath::from(key)).await?.bytes().await?;
                unpack(bytes.to_vec(), encoding == "gzip")
            }
        }))
        .buffered(PARALLEL_FETCHES)
        .try_collect()
        .await
    }

    async fn project_by_key(&self, key: &str) -> Result<Option<Project>, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT id, name, ingest_key, allowed_origins FROM projects WHERE ingest_key = $1")
            .await?;
        let project = client.query_opt(&stmt, &[&key]).await?.map(|r| project_row(&r));
        if let (Some(p), Ok(mut cache)) = (&project, self.keys.lock()) {
            cache.insert(key.to_owned(), (Arc::new(p.clone()), Instant::now()));
        }
        Ok(project)
    }

    fn cached_project(&self, key: &str) -> Option<Arc<Project>> {
        let cache = self.keys.lock().ok()?;
        cache.get(key).filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL).map(|(p, _)| Arc::clone(p))
    }

    async fn find_sessions(
        &self,
        project: i64,
        f: SessionFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<SessionRow>, Error> {
        let mut sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE project_id = $1");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(project)];
        let mut add = |clause: &str, v: Box<dyn ToSql + Sync + Send>| {
            args.push(v);
            sql.push_str(" AND ");
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(v) = f.since_ms {
            add("start_ms >= ?", Box::new(to_i64(v)));
        }
        if let Some(v) = f.until_ms {
            add("start_ms < ?", Box::new(to_i64(v)));
        }
        if let Some(v) = &f.url_contains {
            // Like the SQLite engine's LIKE: a case-insensitive substring match.
            add("strpos(lower(url), lower(?)) > 0", Box::new(text(v)));
        }
        for (column, value) in
            [("user_id", &f.user), ("release", &f.release), ("environment", &f.environment), ("browser", &f.browser)]
        {
            if let Some(v) = value {
                add(&format!("{column} = ?"), Box::new(text(v)));
            }
        }
        if let Some(v) = f.min_duration_ms {
            add("end_ms - start_ms >= ?", Box::new(to_i64(v)));
        }
        if f.has_error {
            sql.push_str(" AND errors > 0");
        }
        if f.has_freeze {
            sql.push_str(" AND freezes > 0");
        }
        if f.has_rage_click {
            sql.push_str(" AND rage_clicks > 0");
        }
        if f.never_recovered {
            sql.push_str(" AND never_recovered");
        }
        args.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
        args.push(Box::new(i64::try_from(offset).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" ORDER BY start_ms DESC, id LIMIT ${} OFFSET ${}", args.len() - 1, args.len()));
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql).await?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        Ok(client.query(&stmt, &params).await?.iter().map(session_row).collect())
    }

    async fn delete_sessions_before(&self, cutoff_ms: u64) -> Result<u64, Error> {
        let cutoff = to_i64(cutoff_ms);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let keys: Vec<String> = tx
            .query(
                "DELETE FROM batches b USING sessions s
                 WHERE s.project_id = b.project_id AND s.id = b.session_id AND s.received_ms < $1
                 RETURNING b.object_key",
                &[&cutoff],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.execute(
            "DELETE FROM error_sessions e USING sessions s
             WHERE s.project_id = e.project_id AND s.id = e.session_id AND s.received_ms < $1",
            &[&cutoff],
        )
        .await?;
        tx.execute(
            "DELETE FROM session_facts f USING sessions s
             WHERE s.project_id = f.project_id AND s.id = f.session_id AND s.received_ms < $1",
            &[&cutoff],
        )
        .await?;
        let n = tx.execute("DELETE FROM sessions WHERE received_ms < $1", &[&cutoff]).await?;
        tx.execute(
            "DELETE FROM error_groups g WHERE NOT EXISTS (SELECT 1 FROM error_sessions s
                WHERE s.project_id = g.project_id AND s.fingerprint = g.fingerprint)",
            &[],
        )
        .await?;
        tx.commit().await?;
        // Bodies go after the rows: a failure here leaves unreferenced objects, never rows
        // pointing at missing bodies.
        let paths = futures_util::stream::iter(keys.into_iter().map(|k| Ok(ObjectPath::from(k)))).boxed();
        let failed = self.store.delete_stream(paths).filter(|r| std::future::ready(r.is_err())).count().await;
        if failed > 0 {
            tracing::warn!(failed, "retention could not delete some batch bodies");
        }
        Ok(n)
    }

    async fn error_groups(&self, project: i64, limit: usize) -> Result<Vec<ErrorGroup>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT g.fingerprint, g.message, g.frame, g.count, g.first_ms, g.last_ms,
                        (SELECT COUNT(*) FROM error_sessions s
                         WHERE s.project_id = g.project_id AND s.fingerprint = g.fingerprint),
                        ARRAY(SELECT s.session_id FROM error_sessions s
                              WHERE s.project_id = g.project_id AND s.fingerprint = g.fingerprint
                              ORDER BY s.last_ms DESC, s.session_id LIMIT $3)
                 FROM error_groups g WHERE g.project_id = $1
                 ORDER BY g.last_ms DESC, g.fingerprint LIMIT $2",
                &[&project, &i64::try_from(limit).unwrap_or(i64::MAX), &(RECENT_ERROR_SESSIONS as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ErrorGroup {
                fingerprint: r.get(0),
                message: r.get(1),
                frame: r.get(2),
                count: to_u64(r.get(3)),
                first_ms: to_u64(r.get(4)),
                last_ms: to_u64(r.get(5)),
                sessions: to_u64(r.get(6)),
                recent_sessions: r.get(7),
            })
            .collect())
    }

    async fn compare_environment(
        &self,
        project: i64,
        session: &str,
        sample: usize,
    ) -> Result<Vec<FactComparison>, Error> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(COMPARE_ENVIRONMENT_SQL).await?;
        let sample = i64::try_from(sample).unwrap_or(i64::MAX);
        let rows = client.query(&stmt, &[&project, &session, &sample]).await?;
        Ok(comparisons(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), to_u64(r.get(3))))))
    }

    async fn execute(&self, sql: &'static str, params: Vec<Box<dyn ToSql + Sync + Send>>) -> Result<u64, Error> {
        let client = self.pool.get().await?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        Ok(client.execute(sql, &params).await?)
    }

    async fn query_opt_string(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn ToSql + Sync + Send>>,
    ) -> Result<Option<String>, Error> {
        let client = self.pool.get().await?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        Ok(client.query_opt(sql, &params).await?.map(|r| r.get(0)))
    }

    async fn count(&self, sql: &'static str) -> Result<u64, Error> {
        let client = self.pool.get().await?;
        Ok(to_u64(client.query_one(sql, &[]).await?.get(0)))
    }
}

fn session_row(r: &tokio_postgres::Row) -> SessionRow {
    let n = |i| to_u64(r.get::<_, i64>(i));
    let (start_ms, end_ms) = (n(1), n(2));
    SessionRow {
        id: r.get(0),
        start_ms,
        end_ms,
        duration_ms: end_ms.saturating_sub(start_ms),
        url: r.get(3),
        user_agent: r.get(4),
        pages: n(5),
        batches: n(6),
        events: n(7),
        clicks: n(8),
        bytes: n(9),
        dropped: n(10),
        recorder_errors: n(11),
        user: r.get(12),
        release: r.get(13),
        environment: r.get(14),
        browser: r.get(15),
        errors: n(16),
        freezes: n(17),
        longest_freeze_ms: n(18),
        freeze_culprit: r.get(19),
        never_recovered: r.get(20),
        rage_clicks: n(21),
    }
}

fn project_row(r: &tokio_postgres::Row) -> Project {
    let origins: String = r.get(3);
    Project {
        id: r.get(0),
        name: r.get(1),
        ingest_key: r.get(2),
        allowed_origins: origins.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
    }
}

/// Boxes query parameters (they must outlive the call into the engine's runtime).
macro_rules! params {
    ($($p:expr),* $(,)?) => { vec![$(Box::new($p) as Box<dyn ToSql + Sync + Send>),*] };
}

impl Storage for PostgresStorage {
    fn create_project(&self, name: &str) -> Result<Project, Error> {
        let (name, key) = (text(name), new_key()?);
        self.block(move |e| async move {
            let client = e.pool.get().await?;
            let row = client
                .query_one(
                    "INSERT INTO projects (name, ingest_key, created_ms) VALUES ($1, $2, $3) RETURNING id",
                    &[&name, &key, &to_i64(now_ms())],
                )
                .await?;
            Ok(Project { id: row.get(0), name, ingest_key: key, allowed_origins: vec![] })
        })
    }

    fn set_allowed_origins(&self, project: i64, origins: &[String]) -> Result<(), Error> {
        let joined = text(&origins.join(","));
        self.block(move |e| async move {
            e.execute("UPDATE projects SET allowed_origins = $2 WHERE id = $1", params![project, joined]).await?;
            if let Ok(mut k) = e.keys.lock() {
                k.clear();
            }
            Ok(())
        })
    }

    fn projects(&self) -> Result<Vec<Project>, Error> {
        self.block(|e| async move {
            let client = e.pool.get().await?;
            let rows =
                client.query("SELECT id, name, ingest_key, allowed_origins FROM projects ORDER BY id", &[]).await?;
            Ok(rows.iter().map(project_row).collect())
        })
    }

    fn project_by_key(&self, key: &str) -> Result<Option<Project>, Error> {
        if let Some(p) = self.engine.cached_project(key) {
            return Ok(Some(Project::clone(&p)));
        }
        let key = text(key);
        self.block(move |e| async move { e.project_by_key(&key).await })
    }

    fn put_batch_body(&self, project: i64, summary: &BatchSummary, body: &BatchBody) -> Result<Stored, Error> {
        let (summary, body) = (summary.clone(), body.clone());
        self.block(move |e| async move { e.put_batch(project, summary, body).await })
    }

    fn put_batch_then(&self, project: i64, summary: BatchSummary, body: BatchBody, done: BatchDone) {
        match self.runtime.handle() {
            Ok(handle) => {
                let engine = self.engine.clone();
                handle.spawn(async move { done(engine.put_batch(project, summary, body).await) });
            }
            Err(e) => done(Err(e)),
        }
    }

    fn cached_project(&self, key: &str) -> Option<Arc<Project>> {
        self.engine.cached_project(key)
    }

    fn find_sessions(
        &self,
        project: i64,
        filter: &SessionFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<SessionRow>, Error> {
        let filter = filter.clone();
        self.block(move |e| async move { e.find_sessions(project, filter, limit, offset).await })
    }

    fn session(&self, project: i64, id: &str) -> Result<Option<SessionRow>, Error> {
        let id = text(id);
        self.block(move |e| async move {
            let client = e.pool.get().await?;
            let stmt = client
                .prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE project_id = $1 AND id = $2"))
                .await?;
            Ok(client.query_opt(&stmt, &[&project, &id]).await?.as_ref().map(session_row))
        })
    }

    fn batches(&self, project: i64, session: &str) -> Result<Vec<Vec<u8>>, Error> {
        let session = text(session);
        self.block(move |e| async move { e.batches(project, &session).await })
    }

    fn batch_keys(&self, project: i64, session: &str) -> Result<Vec<(String, u32)>, Error> {
        let session = text(session);
        self.block(move |e| async move {
            let rows = e.batch_rows(project, &session).await?;
            Ok(rows.iter().map(|r| (r.get(0), u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX))).collect())
        })
    }

    fn batch_count(&self) -> Result<u64, Error> {
        self.block(|e| async move { e.count("SELECT COUNT(*) FROM batches").await })
    }

    fn delete_sessions_before(&self, cutoff_ms: u64) -> Result<u64, Error> {
        self.block(move |e| async move { e.delete_sessions_before(cutoff_ms).await })
    }

    fn mark_unrecovered_freezes(&self, cutoff_ms: u64) -> Result<u64, Error> {
        self.block(move |e| async move {
            e.execute(
                "UPDATE sessions SET never_recovered = TRUE
                 WHERE NOT never_recovered AND freeze_started_ms > freeze_ended_ms AND received_ms < $1",
                params![to_i64(cutoff_ms)],
            )
            .await
        })
    }

    fn error_groups(&self, project: i64, limit: usize) -> Result<Vec<ErrorGroup>, Error> {
        self.block(move |e| async move { e.error_groups(project, limit).await })
    }

    fn compare_environment(&self, project: i64, session: &str, sample: usize) -> Result<Vec<FactComparison>, Error> {
        let session = text(session);
        self.block(move |e| async move { e.compare_environment(project, &session, sample).await })
    }

    fn setting(&self, key: &str) -> Result<Option<String>, Error> {
        let key = text(key);
        self.block(move |e| async move {
            e.query_opt_string("SELECT value FROM settings WHERE key = $1", params![key]).await
        })
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), Error> {
        let (key, value) = (text(key), text(value));
        self.block(move |e| async move {
            e.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                params![key, value],
            )
            .await
            .map(drop)
        })
    }

    fn put_user(&self, name: &str, password_hash: &str) -> Result<(), Error> {
        let (name, hash) = (text(name), text(password_hash));
        self.block(move |e| async move {
            e.execute(
                "INSERT INTO users (name, password_hash, created_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash",
                params![name, hash, to_i64(now_ms())],
            )
            .await
            .map(drop)
        })
    }

    fn user_password_hash(&self, name: &str) -> Result<Option<String>, Error> {
        let name = text(name);
        self.block(move |e| async move {
            e.query_opt_string("SELECT password_hash FROM users WHERE name = $1", params![name]).await
        })
    }

    fn user_count(&self) -> Result<u64, Error> {
        self.block(|e| async move { e.count("SELECT COUNT(*) FROM users").await })
    }

    fn create_login(&self, token_hash: &str, user: &str, expires_ms: u64) -> Result<(), Error> {
        let (token, user) = (text(token_hash), text(user));
        self.block(move |e| async move {
            e.execute("DELETE FROM logins WHERE expires_ms < $1", params![to_i64(now_ms())]).await?;
            e.execute(
                "INSERT INTO logins (token_hash, user_name, expires_ms) VALUES ($1, $2, $3)",
                params![token, user, to_i64(expires_ms)],
            )
            .await
            .map(drop)
        })
    }

    fn login_user(&self, token_hash: &str, now: u64) -> Result<Option<String>, Error> {
        let token = text(token_hash);
        self.block(move |e| async move {
            e.query_opt_string(
                "SELECT user_name FROM logins WHERE token_hash = $1 AND expires_ms > $2",
                params![token, to_i64(now)],
            )
            .await
        })
    }

    fn delete_login(&self, token_hash: &str) -> Result<(), Error> {
        let token = text(token_hash);
        self.block(move |e| async move {
            e.execute("DELETE FROM logins WHERE token_hash = $1", params![token]).await.map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_bytes_never_reach_postgres() {
        assert_eq!(text("a\0b"), "a\u{fffd}b");
        assert_eq!(opt_text(Some(&"x".to_string())).as_deref(), Some("x"));
    }
}
