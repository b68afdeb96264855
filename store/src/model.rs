//! What the engines store and answer: projects, session rows and their filter, error groups,
//! environment comparisons, stored bodies and the outcome of storing one.

use serde::Serialize;

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
            // With an allow-list, a request without an Origin (not from a browser, where anyone
            // can write any header) is refused; the server may accept them
            // (`--accept-originless-ingest`) before calling this.
            None => false,
            Some(o) => self.allowed_origins.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(o)),
        }
    }
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

/// Outcome of storing a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The batch is new and now durable.
    New,
    /// The same (session, page, seq) was stored before; nothing changed.
    Duplicate,
}

/// See [`crate::Storage::index_backlog`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexBacklog {
    pub pending: u64,
    pub held: u64,
}

/// How many of a project's most recent sessions [`crate::Storage::compare_environment`] compares a
/// session with: enough for a share of 10% to rest on 500 sessions, and a bounded cost
/// in a project that keeps millions.
pub const ENVIRONMENT_SAMPLE: usize = 5_000;
