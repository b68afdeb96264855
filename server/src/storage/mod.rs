//! Durable storage of projects, the session index, batch bodies and viewer accounts.
//!
//! [`Storage`] is the seam between the HTTP layer and the engines; handlers never see SQL.
//! The embedded default, [`SqliteStorage`], needs no setup; [`PostgresStorage`] (PostgreSQL for
//! the index, an S3-compatible object store for bodies) lets several instances share one
//! store. Every engine must pass the one
//! [`conformance`] suite. Batches are keyed by `(project, session, page, seq)`: storing the
//! same key twice is a no-op, which is what makes ingest idempotent.

pub mod conformance;
mod postgres;
mod sqlite;

/// The object store crate the scale-out engine is built on (for callers that make stores).
pub use object_store;
pub use postgres::{KEY_CACHE_TTL, PostgresOptions, PostgresStorage};
pub use sqlite::SqliteStorage;

use std::sync::Arc;

use serde::Serialize;

use crate::Error;

/// A project: the unit of isolation. Its ingest key is public (write-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub ingest_key: String,
    /// Origins allowed to send batches (`https://shop.example`); empty means any origin.
    pub allowed_origins: Vec<String>,
}

impl Project {
    /// True when a request from `origin` (the `Origin` header, if any) may ingest.
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        match origin {
            _ if self.allowed_origins.is_empty() => true,
            // Requests without an Origin (server-to-server, old beacons) are not cross-site
            // browser requests; the key alone authorises them.
            None => true,
            Some(o) => self.allowed_origins.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(o)),
        }
    }
}

/// Facts about a batch that the session index aggregates, extracted at ingest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub session: String,
    pub page: String,
    pub seq: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    /// When the server received the batch (server clock, Unix ms): retention is based on it,
    /// never on the recorder's clock.
    pub received_ms: u64,
    /// URL of the page, when the batch carries page meta.
    pub url: Option<String>,
    pub user_agent: Option<String>,
    pub user: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub browser: Option<String>,
    pub events: u64,
    pub clicks: u64,
    /// Bursts of rapid clicks on one spot ([`replay_protocol::rage`]).
    pub rage_clicks: u64,
    pub errors: u64,
    pub freezes: u64,
    pub dropped: u64,
    pub recorder_errors: u64,
    /// Longest freeze that ended in this batch (ms) and its culprit (`function (file:line)`).
    pub longest_freeze_ms: u64,
    pub freeze_culprit: Option<String>,
    /// Time (Unix ms, recorder clock) of the latest `freeze_started` / `freeze_ended` in this
    /// batch, 0 for none. A session whose latest start is after its latest end is frozen.
    pub freeze_started_ms: u64,
    pub freeze_ended_ms: u64,
    /// Errors of this batch by fingerprint (for the error groups).
    pub error_sightings: Vec<ErrorSighting>,
    /// Environment facts (`browser`, `os`, `viewport`, `flag:name`, ...) and their values, to
    /// compare a session with the others ([`Storage::compare_environment`]). The latest value
    /// of a fact wins.
    pub facts: Vec<(String, String)>,
}

/// How one environment fact of a session compares with the project's other sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactComparison {
    pub name: String,
    /// This session's value.
    pub value: String,
    /// Sessions of the sample (this one included) with this value.
    pub same: u64,
    /// Sessions of the sample that reported this fact at all.
    pub total: u64,
    /// The most common values, most common first (at most [`COMMON_VALUES`]).
    pub common: Vec<CommonValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommonValue {
    pub value: String,
    pub sessions: u64,
}

/// How many common values a [`FactComparison`] lists.
pub const COMMON_VALUES: usize = 3;

/// Errors of one fingerprint seen in one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorSighting {
    /// Hash of the normalized message and the top stack frame.
    pub fingerprint: String,
    pub message: String,
    /// The top stack frame (or `source:line:column`), empty when unknown.
    pub frame: String,
    pub count: u64,
    /// Time of the last occurrence in the batch (Unix ms, recorder clock).
    pub at_ms: u64,
}

/// Errors grouped by fingerprint, across the sessions of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorGroup {
    pub fingerprint: String,
    pub message: String,
    pub frame: String,
    /// Occurrences in all sessions.
    pub count: u64,
    /// Sessions where it happened.
    pub sessions: u64,
    pub first_ms: u64,
    pub last_ms: u64,
    /// The sessions where it happened most recently (at most [`RECENT_ERROR_SESSIONS`]).
    pub recent_sessions: Vec<String>,
}

/// How many sessions an [`ErrorGroup`] lists.
pub const RECENT_ERROR_SESSIONS: usize = 5;

/// One row of the session index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    pub id: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub duration_ms: u64,
    pub url: String,
    pub user_agent: String,
    pub user: String,
    pub release: String,
    pub environment: String,
    pub browser: String,
    pub pages: u64,
    pub batches: u64,
    pub events: u64,
    pub clicks: u64,
    pub rage_clicks: u64,
    pub errors: u64,
    pub freezes: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub recorder_errors: u64,
    /// Longest recovered freeze (ms) and what caused it (`function (file:line)`).
    pub longest_freeze_ms: u64,
    pub freeze_culprit: String,
    /// The page froze and never answered again (no `freeze_ended` before the freeze timeout).
    pub never_recovered: bool,
}

/// What to select from the session index. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Sessions that started at or after this time (Unix ms).
    pub since_ms: Option<u64>,
    /// Sessions that started before this time (Unix ms).
    pub until_ms: Option<u64>,
    pub url_contains: Option<String>,
    pub user: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub browser: Option<String>,
    pub has_error: bool,
    pub has_freeze: bool,
    /// Only sessions with at least one rage click.
    pub has_rage_click: bool,
    pub min_duration_ms: Option<u64>,
    /// Only sessions that froze and never recovered.
    pub never_recovered: bool,
}

/// A batch body as stored: the MessagePack bytes, or their gzip as the recorder sent it
/// (validated by decoding before it gets here; storing it as sent saves disk and time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchBody {
    pub bytes: Vec<u8>,
    pub gzip: bool,
}

/// Largest batch a stored gzip body may expand to when read back.
pub const MAX_STORED_BATCH: usize = 64 * 1024 * 1024;

thread_local! {
    /// One libdeflate decompressor per thread (its tables are allocated once).
    static INFLATE: std::cell::RefCell<libdeflater::Decompressor> =
        std::cell::RefCell::new(libdeflater::Decompressor::new());
}

/// The uncompressed size a gzip body's trailer announces (modulo 2^32, as sent: untrusted),
/// 0 when the body is too short to have one.
pub(crate) fn gzip_announced_size(body: &[u8]) -> usize {
    body.len()
        .checked_sub(4)
        .and_then(|at| body.get(at..))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| u32::from_le_bytes(b) as usize)
}

/// Decompresses a whole gzip body in one libdeflate call when the size its trailer announces
/// is at most `cap` (the caller's caps, also bounding what the trailer may make it allocate),
/// about twice as fast as streaming inflate on recorder-sized bodies. `None` for whatever it
/// does not take (a trailer that lies, several members, corrupt data, a header CRC, which
/// libdeflate skips without checking): the caller then decides with the streaming decoder.
/// Ingest and reads both try it first, so a body stored after passing it is readable.
pub(crate) fn gunzip_whole(body: &[u8], cap: usize) -> Option<Vec<u8>> {
    const FHCRC: u8 = 0x02;
    let flags = *body.get(3)?;
    let announced = gzip_announced_size(body);
    if flags & FHCRC != 0 || announced == 0 || announced > cap {
        return None;
    }
    let mut out = vec![0; announced];
    (INFLATE.with_borrow_mut(|d| d.gzip_decompress(body, &mut out)) == Ok(announced)).then_some(out)
}

/// Decodes a stored body to MessagePack bytes (capped at [`MAX_STORED_BATCH`]).
pub fn unpack(bytes: Vec<u8>, gzip: bool) -> Result<Vec<u8>, Error> {
    if !gzip {
        return Ok(bytes);
    }
    if let Some(out) = gunzip_whole(&bytes, MAX_STORED_BATCH.min(bytes.len().saturating_mul(1032))) {
        return Ok(out);
    }
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .take(MAX_STORED_BATCH as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Storage(format!("stored batch does not decompress: {e}")))?;
    if out.len() > MAX_STORED_BATCH {
        return Err(Error::Storage("stored batch expands beyond the cap".into()));
    }
    Ok(out)
}

/// Receives the outcome of [`Storage::put_batch_then`].
pub type BatchDone = Box<dyn FnOnce(Result<Stored, Error>) + Send>;

/// Outcome of storing a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The batch is new and now durable.
    New,
    /// The same (session, page, seq) was stored before; nothing changed.
    Duplicate,
}

/// Storage engines implement this; the server only talks to storage through it.
pub trait Storage: Send + Sync + 'static {
    /// Creates a project with a fresh ingest key.
    fn create_project(&self, name: &str) -> Result<Project, Error>;
    /// Replaces a project's allowed origins.
    fn set_allowed_origins(&self, project: i64, origins: &[String]) -> Result<(), Error>;
    /// All projects, oldest first.
    fn projects(&self) -> Result<Vec<Project>, Error>;
    /// The project owning an ingest key.
    fn project_by_key(&self, key: &str) -> Result<Option<Project>, Error>;
    /// Stores one encoded batch durably (idempotent on its key) and updates the session index.
    /// Returns only after the batch is durable.
    /// The body is kept as given (gzip bodies stay compressed; [`Storage::batches`] returns
    /// them decoded).
    fn put_batch_body(&self, project: i64, summary: &BatchSummary, body: &BatchBody) -> Result<Stored, Error>;
    /// [`Storage::put_batch_body`] with an uncompressed MessagePack body.
    fn put_batch(&self, project: i64, summary: &BatchSummary, raw: &[u8]) -> Result<Stored, Error> {
        self.put_batch_body(project, summary, &BatchBody { bytes: raw.to_vec(), gzip: false })
    }
    /// Like [`Storage::put_batch_body`], but hands the outcome to `done` (possibly on another
    /// thread) instead of blocking the caller: engines with a group-commit writer override it
    /// so that thousands of concurrent uploads do not each hold a thread while they wait.
    fn put_batch_then(&self, project: i64, summary: BatchSummary, body: BatchBody, done: BatchDone) {
        done(self.put_batch_body(project, &summary, &body));
    }
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
    /// `(page, seq)` of every stored batch of a session, in replay order.
    fn batch_keys(&self, project: i64, session: &str) -> Result<Vec<(String, u32)>, Error>;
    /// Number of stored batches in all projects.
    fn batch_count(&self) -> Result<u64, Error>;
    /// Deletes sessions (and their batches) whose last batch was received before `cutoff_ms`;
    /// returns how many sessions were deleted.
    fn delete_sessions_before(&self, cutoff_ms: u64) -> Result<u64, Error>;
    /// Marks "froze, never recovered" the sessions whose latest freeze has no end and whose
    /// last batch was received before `cutoff_ms`; returns how many were marked.
    fn mark_unrecovered_freezes(&self, cutoff_ms: u64) -> Result<u64, Error>;
    /// Error groups of a project, most recently seen first.
    fn error_groups(&self, project: i64, limit: usize) -> Result<Vec<ErrorGroup>, Error>;
    /// Each environment fact of a session, with how many sessions share its value and which
    /// values are most common (empty when the session reported none), among the project's
    /// `sample` most recently started sessions and the session itself (see
    /// [`ENVIRONMENT_SAMPLE`]).
    fn compare_environment(&self, project: i64, session: &str, sample: usize) -> Result<Vec<FactComparison>, Error>;

    /// A server setting (e.g. the admin token's hash).
    fn setting(&self, key: &str) -> Result<Option<String>, Error>;
    fn set_setting(&self, key: &str, value: &str) -> Result<(), Error>;
    /// Viewer accounts: creates or replaces a user with an argon2 password hash (PHC string).
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

/// See [`Storage::index_backlog`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexBacklog {
    pub pending: u64,
    pub held: u64,
}

/// The object store at `url` (`s3://bucket/prefix`, `file:///dir`) with `options`
/// (`aws_endpoint`, `aws_access_key_id`, ...), and the prefix inside it.
pub fn open_object_store<K: AsRef<str>, V: Into<String>>(
    url: &str,
    options: impl IntoIterator<Item = (K, V)>,
) -> Result<(std::sync::Arc<dyn object_store::ObjectStore>, object_store::path::Path), Error> {
    let location =
        url::Url::parse(url).map_err(|e| Error::Storage(format!("invalid object_store_url {url:?}: {e}")))?;
    let (store, prefix) = object_store::parse_url_opts(&location, options)?;
    Ok((std::sync::Arc::from(store), prefix))
}

/// Opens the engine `backend` names (the embedded one in `data_dir`).
pub fn open(
    backend: &crate::config::Backend,
    data_dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn Storage>, Error> {
    use crate::config::Backend;
    match backend {
        Backend::Embedded => Ok(std::sync::Arc::new(SqliteStorage::open(data_dir)?)),
        Backend::Postgres { url, schema, max_connections, ca_file, object_store_url, object_store_options } => {
            let (store, prefix) = open_object_store(object_store_url, object_store_options)?;
            Ok(std::sync::Arc::new(PostgresStorage::connect(PostgresOptions {
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

/// Columns of a [`SessionRow`] in the order both engines read them.
pub(crate) const SESSION_COLUMNS: &str = "id, start_ms, end_ms, url, user_agent, pages, batches, events, clicks, \
     bytes, dropped, recorder_errors, user_id, release, environment, browser, errors, freezes, longest_freeze_ms, \
     freeze_culprit, never_recovered, rage_clicks";

/// One query for [`Storage::compare_environment`] (`$1` project, `$2` session, `$3` sample
/// size; both engines bind them by position, and SQLite numbers `$N` parameters in the order
/// they first appear, so they must first appear in this order): for each fact of the session, its value and how
/// many sessions of the sample have each value of that fact, by fact, most common first.
///
/// The sample is the project's `$3` most recently started sessions plus the session itself, found
/// through the `sessions_by_start` index; the facts are then read by primary key. The cost is
/// bounded by the sample, however many sessions the project has kept.
pub(crate) const COMPARE_ENVIRONMENT_SQL: &str = "SELECT f.name, f.value, o.value, COUNT(*)
     FROM (SELECT name, value FROM session_facts WHERE project_id = $1 AND session_id = $2) f
     JOIN (SELECT id FROM (SELECT id FROM sessions WHERE project_id = $1 ORDER BY start_ms DESC LIMIT $3) recent
           UNION SELECT $2) sample ON 1 = 1
     JOIN session_facts o ON o.project_id = $1 AND o.session_id = sample.id AND o.name = f.name
     GROUP BY f.name, f.value, o.value
     ORDER BY f.name, COUNT(*) DESC, o.value";

/// How many of a project's most recent sessions [`Storage::compare_environment`] compares a
/// session with: enough for a share of 10% to rest on 500 sessions, and a bounded cost
/// in a project that keeps millions.
pub const ENVIRONMENT_SAMPLE: usize = 5_000;

/// [`FactComparison`]s from the rows of [`COMPARE_ENVIRONMENT_SQL`]:
/// `(name, this session's value, a value, sessions with it)`.
pub(crate) fn comparisons(rows: impl IntoIterator<Item = (String, String, String, u64)>) -> Vec<FactComparison> {
    let mut out: Vec<FactComparison> = Vec::new();
    for (name, own, value, sessions) in rows {
        if out.last().is_none_or(|c| c.name != name) {
            out.push(FactComparison { name, value: own, same: 0, total: 0, common: Vec::new() });
        }
        let Some(c) = out.last_mut() else { continue };
        c.total += sessions;
        if value == c.value {
            c.same = sessions;
        }
        if c.common.len() < COMMON_VALUES {
            c.common.push(CommonValue { value, sessions });
        }
    }
    out
}

/// Unix epoch milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A new random ingest key: 32 lowercase hex characters (128 bits).
pub fn new_key() -> Result<String, Error> {
    random_hex(16)
}
