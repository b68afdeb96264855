//! Durable storage of projects, the session index, batch bodies and viewer accounts.
//!
//! [`Storage`] is the seam between the HTTP layer and the engines; handlers never see SQL.
//! The embedded default, [`SqliteStorage`], needs no setup; [`PostgresStorage`] (PostgreSQL for
//! the index, an S3-compatible object store for bodies) lets several instances share one
//! store. Every engine must pass the one conformance suite (`testsuite`, behind the cargo
//! feature of that name). Batches are keyed by `(project, session, page, seq)`: storing the
//! same key twice is a no-op, which is what makes ingest idempotent. A freeze marker
//! ([`BatchSummary::is_freeze_marker`]) is keyed apart from the real batch of its number, so
//! neither is ever dropped as the other's resend (`shared::stored_seq` says why).
//!
//! Modules:
//! - [`accounts`]: viewer accounts, memberships, sign-ins, invitations and API tokens;
//! - [`clickmap`]: click maps and scroll maps, aggregated at ingest per project, day and page;
//! - [`model`]: what the engines store and answer (projects and their ingest keys, session rows,
//!   error groups, environment comparisons, filters, stored bodies, batch ranges, usage);
//! - `shared`: SQL, row handling and the cache of projects by key both engines use;
//! - [`sqlite`]: the embedded engine (writer thread with group commit, sync thread, bulk index,
//!   schema, read queries);
//! - [`postgres`]: the scale-out engine (schema, queries, batch bodies in the object store);
//! - `testsuite` (feature `testsuite`): the conformance suite and blocking helpers for tests;
//! - [`Error`]: why a storage operation failed.
//!
//! This crate knows nothing of HTTP: it builds on `replay-core` (what the index keeps of a
//! batch) and `replay-protocol`, and the server builds on it.

pub mod accounts;
pub mod clickmap;
pub mod model;
pub mod postgres;
pub mod search;
mod shared;
pub mod sqlite;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

mod error;

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The object store crate the scale-out engine is built on (for callers that make stores).
pub use object_store;
use replay_core::gzip::unpack;
pub use replay_core::{BatchSummary, ErrorSighting};

pub use accounts::{Accounts, ApiToken, Login, Membership, NewToken, User};
pub use error::Error;
pub use model::{Artifact, MAX_ARTIFACT_BYTES, MAX_ARTIFACT_NAME, MAX_ARTIFACTS_PER_RELEASE};
pub use model::{
    AuditEntry, BatchBody, BatchRange, COMMON_VALUES, CommonValue, ENVIRONMENT_SAMPLE, ERASE_ROUND, ErrorGroup,
    FactComparison, FrustrationCounts, IndexBacklog, IngestKey, Project, ProjectQuota, RECENT_ERROR_SESSIONS,
    RangeRequest, SessionFilter, SessionRow, Stored, Unsettled, Usage,
};
pub use model::{Comment, CommentAdded, MAX_COMMENT_CHARS, MAX_COMMENTS_PER_SESSION};
pub use postgres::{PostgresOptions, PostgresStorage};
pub use shared::KEY_CACHE_TTL;
pub use sqlite::SqliteStorage;

/// Receives the outcome of [`Storage::put_batch`], possibly on another thread. Engines call it
/// exactly once.
pub type BatchDone = Box<dyn FnOnce(Result<Stored, Error>) + Send>;

/// Storage engines implement this; the server only talks to storage through it.
pub trait Storage: Accounts + Send + Sync + 'static {
    /// Creates a project with a fresh ingest key.
    fn create_project(&self, name: &str) -> Result<Project, Error>;
    /// Replaces a project's allowed origins.
    fn set_allowed_origins(&self, project: i64, origins: &[String]) -> Result<(), Error>;
    /// Replaces a project's own daily quotas.
    fn set_project_quota(&self, project: i64, quota: ProjectQuota) -> Result<(), Error>;
    /// Renames a project; false when there is no such project. Names are unique: a name taken
    /// by another project is an error.
    fn rename_project(&self, project: i64, name: &str) -> Result<bool, Error>;
    /// Deletes a project with everything it holds: its sessions (rows, bodies or objects, error
    /// groups and sightings, facts, deleted ids), ingest keys and settings. Its audit log stays
    /// until pruned. False when there is no such project.
    fn delete_project(&self, project: i64) -> Result<bool, Error>;
    /// A project's own settings as the server wrote them (JSON text, `{}` when never set);
    /// `None` when there is no such project.
    fn project_settings(&self, project: i64) -> Result<Option<String>, Error>;
    /// Replaces a project's own settings; false when there is no such project.
    fn set_project_settings(&self, project: i64, settings: &str) -> Result<bool, Error>;
    /// All projects, oldest first.
    fn projects(&self) -> Result<Vec<Project>, Error>;
    /// The project owning a live ingest key (not revoked, not past its expiry).
    fn project_by_key(&self, key: &str) -> Result<Option<Project>, Error>;
    /// Makes a new ingest key for `project` (it becomes the project's `ingest_key`) and keeps
    /// its other live keys valid for `grace_ms` more (those ending sooner keep their end).
    /// Returns the new key.
    fn rotate_key(&self, project: i64, grace_ms: u64) -> Result<String, Error>;
    /// Ends one of `project`'s keys at once; false when it has no such live key.
    fn revoke_key(&self, project: i64, key: &str) -> Result<bool, Error>;
    /// The keys of a project, newest first (revoked and expired ones included).
    fn ingest_keys(&self, project: i64) -> Result<Vec<IngestKey>, Error>;
    /// Stores one batch durably (idempotent on its key: a resent batch is
    /// [`Stored::Duplicate`] and changes nothing) and updates the session index, then hands the
    /// outcome to `done`, possibly on another thread. Never blocks the caller: engines with a
    /// group-commit writer queue the batch for it, so thousands of concurrent uploads do not
    /// each hold a thread while they wait. `done` runs only once the batch is durable.
    ///
    /// The body is kept as given (gzip bodies stay compressed; [`Storage::batches`] returns
    /// them decoded).
    fn put_batch(&self, project: i64, summary: BatchSummary, body: BatchBody, done: BatchDone);
    /// The project owning an ingest key, when the engine knows it without any I/O (a cache);
    /// `None` means "ask [`Storage::project_by_key`]".
    fn cached_project(&self, _key: &str) -> Option<Arc<Project>> {
        None
    }
    /// Sessions of a project, newest first.
    fn sessions(&self, project: i64, limit: usize, offset: usize) -> Result<Vec<SessionRow>, Error> {
        self.find_sessions(project, &SessionFilter::default(), limit, offset)
    }
    /// Sessions of a project matching `filter`, newest first.
    fn find_sessions(
        &self,
        project: i64,
        filter: &SessionFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<SessionRow>, Error>;
    /// One session's index row.
    fn session(&self, project: i64, id: &str) -> Result<Option<SessionRow>, Error>;
    /// The encoded (uncompressed MessagePack) batches of a session, in (page start, page, seq)
    /// order.
    fn batches(&self, project: i64, session: &str) -> Result<Vec<Vec<u8>>, Error>;
    /// The batches of a session that `range` chooses, decoded, in replay order. The choice is
    /// made from the index (each batch's stored size and start time); only the chosen bodies
    /// are read, and none when they hold more than `range.refuse_over` stored bytes
    /// ([`Error::RangeTooLarge`]). Engines read bodies without holding up the writer.
    fn batch_range(&self, project: i64, session: &str, range: &RangeRequest) -> Result<BatchRange, Error>;
    /// Stored bytes (as sent, usually gzip) of a session's batches, from the index; 0 for none.
    fn session_stored_bytes(&self, project: i64, session: &str) -> Result<u64, Error>;
    /// Caps the stored bytes one session may hold (`None`: no cap, the default): a new batch
    /// that would pass it is refused with [`Error::SessionFull`] and nothing of it is stored
    /// (a resent batch already stored is still a [`Stored::Duplicate`]). Checked from the
    /// index at put time. Set it before the first batch.
    fn limit_session_bytes(&self, cap: Option<u64>);
    /// What a project stored since `since_ms`, from the session index: the sessions that
    /// started since (with the ids of at most `max_ids` of them), and the stored bytes of the
    /// sessions that received a batch since (a session that started before counts whole).
    /// For seeding quota counters; not for the ingest path.
    fn usage_since(&self, project: i64, since_ms: u64, max_ids: usize) -> Result<Usage, Error>;
    /// `(page, seq)` of every stored batch of a session, in replay order (a freeze marker and a
    /// real batch sharing a number both appear, the marker first).
    fn batch_keys(&self, project: i64, session: &str) -> Result<Vec<(String, u32)>, Error>;
    /// Number of stored batches in all projects.
    fn batch_count(&self) -> Result<u64, Error>;
    /// Deletes sessions (and their batches) whose last batch was received before `cutoff_ms`;
    /// returns how many sessions were deleted.
    fn delete_sessions_before(&self, cutoff_ms: u64) -> Result<u64, Error>;
    /// Deletes sessions of `project` on request (one session, or a user's erasure): their index
    /// rows, batch bodies, error sightings (and error groups left without a session) and
    /// environment facts. Each id is remembered: a batch of a deleted session arriving later (a
    /// recorder still running, a resent batch) is refused with [`Error::SessionDeleted`] and
    /// stores nothing, until retention ([`Storage::delete_sessions_before`]) forgets the id
    /// with the sessions of its age. Returns how many of the sessions had been stored.
    fn delete_sessions(&self, project: i64, ids: &[String]) -> Result<u64, Error>;
    /// Deletes every session of `project` that identified `user` (`Replay.identify`): the
    /// index's user (the latest), or any user it identified before another, as an erasure
    /// request asks; returns their ids. Nothing for an empty `user` (the sessions nobody
    /// identified).
    fn delete_user_sessions(&self, project: i64, user: &str) -> Result<Vec<String>, Error> {
        let mut deleted = Vec::new();
        if user.is_empty() {
            return Ok(deleted);
        }
        let latest = SessionFilter { user: Some(user.to_owned()), ..SessionFilter::default() };
        let any = SessionFilter { identified: Some(user.to_owned()), ..SessionFilter::default() };
        for filter in [latest, any] {
            // Each round deletes what it found and deleted ids never come back, so rounds end;
            // the bound only guards against an engine that failed to delete.
            for _ in 0..100_000 {
                let ids: Vec<String> =
                    self.find_sessions(project, &filter, ERASE_ROUND, 0)?.into_iter().map(|r| r.id).collect();
                if ids.is_empty() {
                    break;
                }
                self.delete_sessions(project, &ids)?;
                deleted.extend(ids);
            }
        }
        Ok(deleted)
    }
    /// Appends an entry to a project's audit log (its `id` is ignored).
    fn append_audit(&self, entry: &AuditEntry) -> Result<(), Error>;
    /// A project's audit log, newest first: at most `limit` entries with an id below `before`
    /// (all when `None`).
    fn audit_log(&self, project: i64, before: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>, Error>;
    /// Deletes audit entries older than `cutoff_ms` in all projects; returns how many.
    fn delete_audit_before(&self, cutoff_ms: u64) -> Result<u64, Error>;
    /// Adds a comment to a session of its project (`comment.id` is ignored): refused, storing
    /// nothing, when the session is not there (never recorded, or deleted), when it holds
    /// [`MAX_COMMENTS_PER_SESSION`] comments already, or when the text is not valid
    /// ([`Comment::is_valid`]). A session's comments go with it ([`Storage::delete_sessions`],
    /// retention, [`Storage::delete_project`]).
    fn add_comment(&self, comment: &Comment) -> Result<CommentAdded, Error>;
    /// A session's comments by moment (then by when they were added): at most `limit`.
    fn comments(&self, project: i64, session: &str, limit: usize) -> Result<Vec<Comment>, Error>;
    /// One comment of a session.
    fn comment(&self, project: i64, session: &str, id: i64) -> Result<Option<Comment>, Error>;
    /// Deletes one comment of a session; false when there is no such comment.
    fn delete_comment(&self, project: i64, session: &str, id: i64) -> Result<bool, Error>;
    /// Marks "froze, never recovered" the sessions of `project` whose latest freeze has no end
    /// and whose last batch was received before `cutoff_ms`; returns how many were marked.
    fn mark_unrecovered_freezes(&self, project: i64, cutoff_ms: u64) -> Result<u64, Error>;
    /// Sessions whose frustration counts are still the sum of each batch's own judgement (a
    /// click in one batch and its effect in the next are not seen) and whose last batch was
    /// received before `cutoff_ms`: at most `limit`, idle longest first.
    fn unsettled_sessions(&self, cutoff_ms: u64, limit: usize) -> Result<Vec<Unsettled>, Error>;
    /// Replaces a session's frustration counts by the judgement over all its batches (`None`
    /// keeps them: the session could not be judged) and marks it settled, only if it still has
    /// `batches` batches (a later batch has it judged again). Returns whether it was written.
    fn settle_frustration(
        &self,
        project: i64,
        session: &str,
        batches: u64,
        counts: Option<FrustrationCounts>,
    ) -> Result<bool, Error>;
    /// Error groups of a project, most recently seen first.
    fn error_groups(&self, project: i64, limit: usize) -> Result<Vec<ErrorGroup>, Error>;
    /// Each environment fact of a session, with how many sessions share its value and which
    /// values are most common (empty when the session reported none), among the project's
    /// `sample` most recently started sessions and the session itself (see
    /// [`ENVIRONMENT_SAMPLE`]).
    fn compare_environment(&self, project: i64, session: &str, sample: usize) -> Result<Vec<FactComparison>, Error>;
    /// A click map and scroll map of the pages matching `query` over its days, from the
    /// aggregates kept at ingest ([`clickmap`]): its cost is the page-days it covers.
    fn clickmap(&self, project: i64, query: &clickmap::ClickmapQuery) -> Result<clickmap::Clickmap, Error>;
    /// Deletes a project's click map aggregates of the UTC days before `day` (a project's own
    /// retention, shorter than the server's, which deletes every project's with its sessions).
    fn delete_clickmap_before(&self, project: i64, day: i64) -> Result<(), Error>;

    /// Stores a release artifact (a source map or a minified file) under its URL, replacing one
    /// of the same URL; refused over [`MAX_ARTIFACT_BYTES`], or when the release already holds
    /// [`MAX_ARTIFACTS_PER_RELEASE`] other files.
    fn put_artifact(&self, project: i64, release: &str, url: &str, body: &[u8]) -> Result<(), Error>;
    /// The body of a release artifact.
    fn artifact(&self, project: i64, release: &str, url: &str) -> Result<Option<Vec<u8>>, Error>;
    /// The artifacts of a release, by URL.
    fn artifacts(&self, project: i64, release: &str) -> Result<Vec<Artifact>, Error>;

    /// A server setting (e.g. the admin token's hash).
    fn setting(&self, key: &str) -> Result<Option<String>, Error>;
    fn set_setting(&self, key: &str, value: &str) -> Result<(), Error>;
    /// Viewer accounts: creates or replaces a user with an argon2 password hash (PHC string).
    /// Setting a password ends every sign-in of that user.
    fn put_user(&self, name: &str, password_hash: &str) -> Result<(), Error>;
    fn user_password_hash(&self, name: &str) -> Result<Option<String>, Error>;
    fn user_count(&self) -> Result<u64, Error>;
    /// Viewer logins: `token_hash` is the SHA-256 of the cookie value.
    fn create_login(&self, token_hash: &str, user: &str, expires_ms: u64) -> Result<(), Error>;
    /// The user of a live login.
    fn login_user(&self, token_hash: &str, now_ms: u64) -> Result<Option<String>, Error>;
    fn delete_login(&self, token_hash: &str) -> Result<(), Error>;
    /// Stored batches whose index entries are not written yet: those waiting for the next
    /// bulk write, and those held after failing to index on their own (indexed again when the
    /// storage is next opened). Zero for engines that index as they store.
    fn index_backlog(&self) -> IndexBacklog {
        IndexBacklog::default()
    }
}

/// Which storage engine to open.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// The embedded default: SQLite in the data directory.
    Embedded,
    /// PostgreSQL for the index, an object store for batch bodies; several instances may share
    /// them.
    Postgres {
        url: String,
        schema: Option<String>,
        max_connections: usize,
        /// CA file for TLS to PostgreSQL (TLS is on with it, or with `sslmode=require`).
        ca_file: Option<PathBuf>,
        object_store_url: String,
        /// Object store settings: `AWS_*` variables from the environment, then the file's.
        object_store_options: std::collections::BTreeMap<String, String>,
    },
}

/// The object store at `url` (`s3://bucket/prefix`, `file:///dir`) with `options`
/// (`aws_endpoint`, `aws_access_key_id`, ...), and the prefix inside it.
pub fn open_object_store<K: AsRef<str>, V: Into<String>>(
    url: &str,
    options: impl IntoIterator<Item = (K, V)>,
) -> Result<(Arc<dyn object_store::ObjectStore>, object_store::path::Path), Error> {
    let location = url::Url::parse(url).map_err(|source| Error::ObjectStoreUrl { url: url.to_owned(), source })?;
    let (store, prefix) = object_store::parse_url_opts(&location, options)?;
    Ok((Arc::from(store), prefix))
}

/// Opens the engine `backend` names (the embedded one in `data_dir`).
pub fn open(backend: &Backend, data_dir: &Path) -> Result<Arc<dyn Storage>, Error> {
    match backend {
        Backend::Embedded => Ok(Arc::new(SqliteStorage::open(data_dir)?)),
        Backend::Postgres { url, schema, max_connections, ca_file, object_store_url, object_store_options } => {
            let (store, prefix) = open_object_store(object_store_url, object_store_options)?;
            Ok(Arc::new(PostgresStorage::connect(PostgresOptions {
                url: url.clone(),
                schema: schema.clone(),
                store,
                prefix,
                max_connections: *max_connections,
                ca_file: ca_file.clone(),
            })?))
        }
    }
}
