//! The scale-out engine: the session index in PostgreSQL, batch bodies in an object store
//! (S3-compatible, or a shared directory).
//!
//! Several `replay-server` instances can point at the same database and bucket: nothing about
//! a session lives in one instance's memory, so a load balancer may send any request anywhere.
//! The only per-instance state is a short-lived cache of projects by ingest key (changes to a
//! project's allowed origins, and revoked keys, reach other instances within
//! [`crate::KEY_CACHE_TTL`]; a key in a rotation's grace period is dropped from it at its end) and the
//! rate limiters.
//!
//! A read of batches chooses them from the `batches` rows (stored size, start time) and fetches
//! only those objects. The per-session byte cap is checked with the duplicate check (one query)
//! before the upload, and again in the group's transaction (concurrent uploads of a session).
//!
//! Storing a batch: if its key `(project, session, page, seq)` is already indexed the batch is a
//! duplicate and nothing is written (a freeze marker is keyed apart from the real batch of its
//! number: `shared::stored_seq`). Otherwise the body goes to a fresh object first, then the
//! batch waits for the next group commit (`group`): one transaction indexes every batch waiting
//! (its row, the session index, search terms, click maps, error groups) with multi-row
//! statements (`bulk`). The batch is durable (and acknowledged) only after both: the object
//! store answered the upload and PostgreSQL committed the group holding it. A concurrent
//! duplicate loses the insert race and deletes its own object. A crash between the upload and
//! the commit leaves an unreferenced object, never a row without a body.
//!
//! [`Storage`] is synchronous while the drivers are async: the engine runs them on its own
//! small tokio runtime, so it can be called from any thread, including the server's async
//! workers (through `put_batch`, which never blocks).
//!
//! Modules:
//! - `schema`: the tables and their migrations (serialised between instances);
//! - `bodies`: storing a batch (body object, then index row) and reading bodies back;
//! - `group`: the bounded queue of batches waiting for a group commit, and its flusher;
//! - `bulk`: one group's transaction, in multi-row statements;
//! - `queries`: the session index, error groups, environment comparisons, retention and the
//!   small reads and writes of projects, settings and accounts;
//! - `artifacts`: release artifacts (source maps, minified files), rows and object bodies;
//! - `comments`: comments on sessions at a moment.

/// How a session's index row takes in what a batch (or a group's sum of batches, `EXCLUDED`)
/// adds: the one merge rule of both ways of storing (`bodies`, batch by batch, and `bulk`, a
/// group at a time), as a SQL fragment for `concat!`. The fields set only when a batch names
/// them (user, release, environment) are left to each caller.
macro_rules! session_merge {
    () => {
        "start_ms = LEAST(t.start_ms, EXCLUDED.start_ms),
        end_ms = GREATEST(t.end_ms, EXCLUDED.end_ms),
        url = CASE WHEN t.url = '' OR (EXCLUDED.start_ms < t.start_ms AND EXCLUDED.url <> '')
              THEN EXCLUDED.url ELSE t.url END,
        user_agent = CASE WHEN t.user_agent = '' THEN EXCLUDED.user_agent ELSE t.user_agent END,
        browser = CASE WHEN t.browser = '' THEN EXCLUDED.browser ELSE t.browser END,
        pages = t.pages + EXCLUDED.pages,
        batches = t.batches + EXCLUDED.batches,
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
                          THEN FALSE ELSE t.never_recovered END"
    };
}

mod accounts;
mod artifacts;
mod bodies;
mod bulk;
mod clickmap;
mod comments;
mod group;
mod queries;
mod schema;
mod search;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use replay_core::{BatchSummary, new_key, now_ms};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use self::queries::{project_row, session_row};
use crate::shared::{KeyCache, SESSION_COLUMNS, to_i64, to_u64, wire_seq};
use crate::{
    AuditEntry, BatchBody, BatchDone, BatchRange, Comment, CommentAdded, Error, ErrorGroup, FactComparison, IngestKey,
    Project, ProjectQuota, RangeRequest, SessionFilter, SessionRow, Storage, Usage,
};

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

/// The async half: a connection pool and the object store.
#[derive(Clone)]
struct Engine {
    pool: Pool,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    keys: Arc<KeyCache>,
    /// Most stored bytes one session may hold (`u64::MAX`: no cap).
    session_cap: Arc<AtomicU64>,
    /// Batches waiting for the next group commit (`group`).
    group: Arc<group::GroupQueue>,
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
        self.0.as_ref().map(tokio::runtime::Runtime::handle).ok_or(Error::Stopped("the postgres runtime"))
    }
}

/// PostgreSQL text cannot hold NUL; recorded strings are hostile and may.
pub(super) fn text(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

pub(super) fn opt_text(s: Option<&String>) -> Option<String> {
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
        let mut config: tokio_postgres::Config = options.url.parse()?;
        if let Some(schema) = &options.schema {
            if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || schema.is_empty() {
                return Err(Error::InvalidSchema(schema.clone()));
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
                .build()?
        };
        let (queue, queued, checks) = group::GroupQueue::new();
        let engine = Engine {
            pool,
            store: options.store,
            prefix: options.prefix,
            keys: Arc::new(KeyCache::default()),
            session_cap: Arc::new(AtomicU64::new(u64::MAX)),
            group: Arc::new(queue),
        };
        let storage = PostgresStorage { engine, runtime };
        let schema = options.schema.clone();
        storage.block(move |e| async move { e.migrate(schema.as_deref()).await })?;
        storage.runtime.handle()?.spawn(group::flusher(storage.engine.clone(), queued));
        storage.runtime.handle()?.spawn(group::checker(storage.engine.clone(), checks));
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
        rx.recv().map_err(|_| Error::Stopped("the postgres runtime"))?
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
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|source| Error::CaFile { path: path.to_owned(), source })?;
        for cert in certs {
            let cert = cert.map_err(|source| Error::CaFile { path: path.to_owned(), source })?;
            roots.add(cert)?;
        }
    }
    if roots.is_empty() {
        return Err(Error::NoCertificateAuthority);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Boxes query parameters (they must outlive the call into the engine's runtime).
macro_rules! params {
    ($($p:expr),* $(,)?) => { vec![$(Box::new($p) as Box<dyn ToSql + Sync + Send>),*] };
}

impl Storage for PostgresStorage {
    fn create_project(&self, name: &str) -> Result<Project, Error> {
        let (name, key) = (text(name), new_key()?);
        self.block(move |e| async move {
            let mut client = e.pool.get().await?;
            let tx = client.transaction().await?;
            let now = to_i64(now_ms());
            let row = tx
                .query_one(
                    "INSERT INTO projects (name, ingest_key, created_ms) VALUES ($1, $2, $3) RETURNING id",
                    &[&name, &key, &now],
                )
                .await?;
            let id: i64 = row.get(0);
            tx.execute("INSERT INTO ingest_keys (key, project_id, created_ms) VALUES ($1, $2, $3)", &[&key, &id, &now])
                .await?;
            tx.commit().await?;
            Ok(Project { id, name, ingest_key: key, allowed_origins: vec![], quota: ProjectQuota::default() })
        })
    }

    fn set_project_quota(&self, project: i64, quota: ProjectQuota) -> Result<(), Error> {
        let (bytes, sessions) = (quota.bytes_per_day.map(to_i64), quota.sessions_per_day.map(to_i64));
        self.block(move |e| async move {
            let n = e
                .execute(
                    "UPDATE projects SET quota_bytes_per_day = $2, quota_sessions_per_day = $3 WHERE id = $1",
                    params![project, bytes, sessions],
                )
                .await?;
            e.keys.clear();
            if n == 0 {
                return Err(Error::NoSuchProject(project));
            }
            Ok(())
        })
    }

    fn rotate_key(&self, project: i64, grace_ms: u64) -> Result<String, Error> {
        let key = new_key()?;
        self.block(move |e| async move { e.rotate_key(project, key, grace_ms).await })
    }

    fn revoke_key(&self, project: i64, key: &str) -> Result<bool, Error> {
        let key = text(key);
        self.block(move |e| async move { e.revoke_key(project, key).await })
    }

    fn ingest_keys(&self, project: i64) -> Result<Vec<IngestKey>, Error> {
        self.block(move |e| async move { e.ingest_keys(project).await })
    }

    fn set_allowed_origins(&self, project: i64, origins: &[String]) -> Result<(), Error> {
        let joined = text(&origins.join(","));
        self.block(move |e| async move {
            e.execute("UPDATE projects SET allowed_origins = $2 WHERE id = $1", params![project, joined]).await?;
            e.keys.clear();
            Ok(())
        })
    }

    fn rename_project(&self, project: i64, name: &str) -> Result<bool, Error> {
        let name = text(name);
        self.block(move |e| async move {
            let n = e.execute("UPDATE projects SET name = $2 WHERE id = $1", params![project, name]).await?;
            e.keys.clear();
            Ok(n > 0)
        })
    }

    fn delete_project(&self, project: i64) -> Result<bool, Error> {
        self.block(move |e| async move { e.delete_project(project).await })
    }

    fn project_settings(&self, project: i64) -> Result<Option<String>, Error> {
        self.block(move |e| async move {
            e.query_opt_string("SELECT settings FROM projects WHERE id = $1", params![project]).await
        })
    }

    fn set_project_settings(&self, project: i64, settings: &str) -> Result<bool, Error> {
        let settings = text(settings);
        self.block(move |e| async move {
            let n = e.execute("UPDATE projects SET settings = $2 WHERE id = $1", params![project, settings]).await?;
            Ok(n > 0)
        })
    }

    fn projects(&self) -> Result<Vec<Project>, Error> {
        self.block(|e| async move {
            let client = e.pool.get().await?;
            let rows = client
                .query(
                    "SELECT id, name, ingest_key, allowed_origins, quota_bytes_per_day, quota_sessions_per_day
                         FROM projects ORDER BY id",
                    &[],
                )
                .await?;
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

    fn put_batch(&self, project: i64, summary: BatchSummary, body: BatchBody, done: BatchDone) {
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

    fn batch_range(&self, project: i64, session: &str, range: &RangeRequest) -> Result<BatchRange, Error> {
        let (session, range) = (text(session), *range);
        self.block(move |e| async move { e.batch_range(project, &session, range).await })
    }

    fn session_stored_bytes(&self, project: i64, session: &str) -> Result<u64, Error> {
        let session = text(session);
        self.block(move |e| async move {
            let client = e.pool.get().await?;
            let row = client
                .query_opt("SELECT bytes FROM sessions WHERE project_id = $1 AND id = $2", &[&project, &session])
                .await?;
            Ok(row.map_or(0, |r| to_u64(r.get(0))))
        })
    }

    fn limit_session_bytes(&self, cap: Option<u64>) {
        self.engine.session_cap.store(cap.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn usage_since(&self, project: i64, since_ms: u64, max_ids: usize) -> Result<Usage, Error> {
        self.block(move |e| async move {
            let client = e.pool.get().await?;
            let since = to_i64(since_ms);
            let row = client
                .query_one(
                    "SELECT COUNT(*) FILTER (WHERE start_ms >= $2), COALESCE(SUM(bytes), 0)::BIGINT FROM sessions
                     WHERE project_id = $1 AND received_ms >= $2",
                    &[&project, &since],
                )
                .await?;
            let ids = client
                .query(
                    "SELECT id FROM sessions WHERE project_id = $1 AND received_ms >= $2 AND start_ms >= $2 LIMIT $3",
                    &[&project, &since, &i64::try_from(max_ids).unwrap_or(i64::MAX)],
                )
                .await?;
            Ok(Usage {
                sessions: to_u64(row.get(0)),
                bytes: to_u64(row.get(1)),
                session_ids: ids.iter().map(|r| r.get(0)).collect(),
            })
        })
    }

    fn batch_keys(&self, project: i64, session: &str) -> Result<Vec<(String, u32)>, Error> {
        let session = text(session);
        self.block(move |e| async move {
            let rows = e.batch_rows(project, &session).await?;
            Ok(rows.iter().map(|r| (r.get(0), wire_seq(r.get(1)))).collect())
        })
    }

    fn batch_count(&self) -> Result<u64, Error> {
        self.block(|e| async move { e.count("SELECT COUNT(*) FROM batches").await })
    }

    fn delete_sessions_before(&self, cutoff_ms: u64) -> Result<u64, Error> {
        self.block(move |e| async move { e.delete_sessions_before(cutoff_ms).await })
    }

    fn delete_sessions(&self, project: i64, ids: &[String]) -> Result<u64, Error> {
        let ids: Vec<String> = ids.iter().map(|id| text(id)).collect();
        self.block(move |e| async move { e.delete_sessions(project, ids).await })
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), Error> {
        let entry = entry.clone();
        self.block(move |e| async move { e.append_audit(entry).await })
    }

    fn audit_log(&self, project: i64, before: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        self.block(move |e| async move { e.audit_log(project, before, limit).await })
    }

    fn delete_audit_before(&self, cutoff_ms: u64) -> Result<u64, Error> {
        self.block(move |e| async move {
            e.execute("DELETE FROM audit_log WHERE at_ms < $1", params![to_i64(cutoff_ms)]).await
        })
    }

    fn add_comment(&self, comment: &Comment) -> Result<CommentAdded, Error> {
        let comment = comment.clone();
        self.block(move |e| async move { e.add_comment(comment).await })
    }

    fn comments(&self, project: i64, session: &str, limit: usize) -> Result<Vec<Comment>, Error> {
        let session = text(session);
        self.block(move |e| async move { e.comments(project, session, limit).await })
    }

    fn comment(&self, project: i64, session: &str, id: i64) -> Result<Option<Comment>, Error> {
        let session = text(session);
        self.block(move |e| async move { e.comment(project, session, id).await })
    }

    fn delete_comment(&self, project: i64, session: &str, id: i64) -> Result<bool, Error> {
        let session = text(session);
        self.block(move |e| async move { e.delete_comment(project, session, id).await })
    }

    fn mark_unrecovered_freezes(&self, project: i64, cutoff_ms: u64) -> Result<u64, Error> {
        self.block(move |e| async move {
            e.execute(
                "UPDATE sessions SET never_recovered = TRUE
                 WHERE NOT never_recovered AND freeze_started_ms > freeze_ended_ms AND received_ms < $1
                   AND project_id = $2",
                params![to_i64(cutoff_ms), project],
            )
            .await
        })
    }

    fn unsettled_sessions(&self, cutoff_ms: u64, limit: usize) -> Result<Vec<crate::Unsettled>, Error> {
        self.block(move |e| async move { e.unsettled_sessions(cutoff_ms, limit).await })
    }

    fn settle_frustration(
        &self,
        project: i64,
        session: &str,
        batches: u64,
        counts: Option<crate::FrustrationCounts>,
    ) -> Result<bool, Error> {
        let session = text(session);
        let batches = to_i64(batches);
        let n = self.block(move |e| async move {
            match counts {
                Some(c) => {
                    e.execute(
                        "UPDATE sessions SET dead_clicks = $4, error_clicks = $5, quick_backs = $6,
                         settled_batches = $3 WHERE project_id = $1 AND id = $2 AND batches = $3",
                        params![
                            project,
                            session,
                            batches,
                            to_i64(c.dead_clicks),
                            to_i64(c.error_clicks),
                            to_i64(c.quick_backs)
                        ],
                    )
                    .await
                }
                None => {
                    e.execute(
                        "UPDATE sessions SET settled_batches = $3 WHERE project_id = $1 AND id = $2 AND batches = $3",
                        params![project, session, batches],
                    )
                    .await
                }
            }
        })?;
        Ok(n > 0)
    }

    fn error_groups(&self, project: i64, limit: usize) -> Result<Vec<ErrorGroup>, Error> {
        self.block(move |e| async move { e.error_groups(project, limit).await })
    }

    fn compare_environment(&self, project: i64, session: &str, sample: usize) -> Result<Vec<FactComparison>, Error> {
        let session = text(session);
        self.block(move |e| async move { e.compare_environment(project, &session, sample).await })
    }

    fn clickmap(
        &self,
        project: i64,
        query: &crate::clickmap::ClickmapQuery,
    ) -> Result<crate::clickmap::Clickmap, Error> {
        let query = query.clone();
        self.block(move |e| async move { e.clickmap(project, query).await })
    }

    fn delete_clickmap_before(&self, project: i64, day: i64) -> Result<(), Error> {
        self.block(move |e| async move {
            let client = e.pool.get().await?;
            for table in crate::clickmap::DAY_TABLES {
                client
                    .execute(&format!("DELETE FROM {table} WHERE project_id = $1 AND day < $2"), &[&project, &day])
                    .await?;
            }
            Ok(())
        })
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

    fn put_artifact(&self, project: i64, release: &str, url: &str, body: &[u8]) -> Result<(), Error> {
        let (release, url, body) = (release.to_owned(), url.to_owned(), body.to_vec());
        self.block(move |e| async move { e.put_artifact(project, &release, &url, body).await })
    }

    fn artifact(&self, project: i64, release: &str, url: &str) -> Result<Option<Vec<u8>>, Error> {
        let (release, url) = (release.to_owned(), url.to_owned());
        self.block(move |e| async move { e.artifact(project, &release, &url).await })
    }

    fn artifacts(&self, project: i64, release: &str) -> Result<Vec<crate::Artifact>, Error> {
        let release = release.to_owned();
        self.block(move |e| async move { e.artifacts(project, &release).await })
    }

    fn put_user(&self, name: &str, password_hash: &str) -> Result<(), Error> {
        let (name, hash) = (text(name), text(password_hash));
        self.block(move |e| async move {
            // One statement: the password changes and the user's sign-ins end together.
            e.execute(
                "WITH u AS (
                     INSERT INTO users (name, password_hash, created_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash
                     RETURNING name)
                 DELETE FROM logins WHERE user_name IN (SELECT name FROM u)",
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
                "INSERT INTO logins (token_hash, user_name, expires_ms, created_ms) VALUES ($1, $2, $3, $4)",
                params![token, user, to_i64(expires_ms), to_i64(now_ms())],
            )
            .await
            .map(drop)
        })
    }

    fn login_user(&self, token_hash: &str, now: u64) -> Result<Option<String>, Error> {
        let token = text(token_hash);
        self.block(move |e| async move {
            e.query_opt_string(
                "SELECT l.user_name FROM logins l JOIN users u ON u.name = l.user_name
                 WHERE l.token_hash = $1 AND l.expires_ms > $2 AND NOT u.disabled",
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
mod text_tests {
    use super::*;

    #[test]
    fn nul_bytes_never_reach_postgres() {
        assert_eq!(text("a\0b"), "a\u{fffd}b");
        assert_eq!(opt_text(Some(&"x".to_string())).as_deref(), Some("x"));
    }
}
