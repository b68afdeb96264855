//! What the engines store and answer: projects and their ingest keys, session rows and their
//! filter, error groups, environment comparisons, stored bodies and the outcome of storing one,
//! ranges of batches (chosen from the index) and a project's usage.

use serde::Serialize;

/// A project: the unit of isolation. Its ingest keys are public (write-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    /// The newest key (others may be accepted during a rotation's grace period, see
    /// [`IngestKey`]).
    pub ingest_key: String,
    /// Origins allowed to send batches (`https://shop.example`); empty means any origin.
    pub allowed_origins: Vec<String>,
    /// The project's own daily quotas, over the server's.
    pub quota: ProjectQuota,
}

/// A project's own daily quotas: each `None` takes the server's (`--quota-bytes-per-day`,
/// `--quota-sessions-per-day`), `Some(0)` means no quota for this project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProjectQuota {
    pub bytes_per_day: Option<u64>,
    pub sessions_per_day: Option<u64>,
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

/// One ingest key of a project. A project has several while a rotation's grace period runs:
/// a key is accepted until it expires or is revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestKey {
    pub key: String,
    pub created_ms: u64,
    /// When the key stops being accepted (`None`: never, until revoked).
    pub expires_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
}

impl IngestKey {
    /// Whether the key is accepted at `now_ms`.
    pub fn live(&self, now_ms: u64) -> bool {
        self.revoked_ms.is_none() && self.expires_ms.is_none_or(|end| now_ms < end)
    }
}

/// How one environment fact of a session compares with the project's other sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommonValue {
    pub value: String,
    pub sessions: u64,
}

/// How many common values a [`FactComparison`] lists.
pub const COMMON_VALUES: usize = 3;

/// Errors grouped by fingerprint, across the sessions of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Frustration signals ([`replay_protocol::frustration`]).
    pub dead_clicks: u64,
    pub error_clicks: u64,
    pub quick_backs: u64,
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
    /// The user the session identified last (the index's user).
    pub user: Option<String>,
    /// Any user the session identified, exactly (an erasure request's user).
    pub identified: Option<String>,
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
    /// Only sessions with a dead click, an error click, a quick back.
    pub has_dead_click: bool,
    pub has_error_click: bool,
    pub has_quick_back: bool,
    /// Search by what happened ([`crate::search`]): a clicked element's text, a failed
    /// request's URL, a console message, a page's URL shown (and, with `then_visited`, a page
    /// shown after it). Patterns: a substring, or with `*` a whole term.
    pub clicked: Option<String>,
    pub failed_request: Option<String>,
    pub console: Option<String>,
    pub visited: Option<String>,
    pub then_visited: Option<String>,
}

/// A batch body as stored: the MessagePack bytes, or their gzip as the recorder sent it
/// (validated by decoding before it gets here; storing it as sent saves disk and time). The
/// bytes are shared with the request that carried them, never copied on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchBody {
    pub bytes: bytes::Bytes,
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

/// Which batches of a session [`crate::Storage::batch_range`] reads. The choice is made from
/// the index (each batch's stored size and start time); only the chosen bodies are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeRequest {
    /// Index of the first batch, in replay order.
    pub from: usize,
    /// Stop adding batches once their stored bytes (as sent: usually gzip) reach this; at least
    /// one batch is read.
    pub max_bytes: u64,
    /// Stop before the first batch (replay order) that started more than this many ms after
    /// the session's earliest indexed batch (the index's times: clamped to the receive time at
    /// ingest). What the document at a time needs is such a prefix: replay stops at the first
    /// event past the time.
    pub until_offset_ms: Option<u64>,
    /// Refuse ([`crate::Error::RangeTooLarge`]) without reading any body when the chosen
    /// batches hold more stored bytes than this.
    pub refuse_over: u64,
}

impl RangeRequest {
    /// Every batch of the session, refused past `refuse_over` stored bytes.
    pub fn whole(refuse_over: u64) -> Self {
        RangeRequest { from: 0, max_bytes: u64::MAX, until_offset_ms: None, refuse_over }
    }
}

/// What [`crate::Storage::batch_range`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchRange {
    /// Batches the session has.
    pub total: usize,
    /// The chosen bodies, decoded (uncompressed MessagePack), in replay order.
    pub bodies: Vec<Vec<u8>>,
    /// Index of the first batch after the range, `None` when the range reaches the end.
    pub next: Option<usize>,
    /// Start of the session's earliest indexed batch (Unix ms).
    pub first_start_ms: u64,
}

/// One batch as the index knows it, in replay order: where its body is, its stored size and
/// start time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexedBatch<K> {
    pub(crate) body: K,
    pub(crate) bytes: u64,
    pub(crate) start_ms: u64,
}

/// The batches of `index` (replay order) that `req` chooses (consecutive positions), with
/// `next` and the earliest start; or the stored bytes they hold when that is over
/// `req.refuse_over`.
pub(crate) fn choose_range<K>(
    index: &[IndexedBatch<K>],
    req: &RangeRequest,
) -> Result<(Vec<usize>, Option<usize>, u64), crate::Error> {
    let first_start = index.iter().map(|b| b.start_ms).min().unwrap_or(0);
    let from = req.from.min(index.len());
    let mut chosen = Vec::new();
    let mut bytes = 0u64;
    let mut end = from;
    while end < index.len() && (chosen.is_empty() || bytes < req.max_bytes) {
        let b = &index[end];
        if req.until_offset_ms.is_some_and(|t| b.start_ms.saturating_sub(first_start) > t) {
            break;
        }
        bytes = bytes.saturating_add(b.bytes);
        chosen.push(end);
        end += 1;
    }
    if bytes > req.refuse_over {
        return Err(crate::Error::RangeTooLarge { bytes });
    }
    Ok((chosen, (end < index.len()).then_some(end), first_start))
}

/// Most decompressed bytes a ranged read takes per stored byte it asked for (`max_bytes`):
/// recordings deflate 5 to 10 times; a body built to deflate 1,000 times no longer makes a
/// 4 MiB range read decompress gigabytes.
pub(crate) const RAW_PER_STORED: u64 = 16;

/// Decompresses the bodies [`choose_range`] chose, in replay order, within what the read may
/// take decompressed: a ranged read stops once they pass `max_bytes` × [`RAW_PER_STORED`] (at
/// least one body; `next` then names the first one left), and a read of everything past
/// `refuse_over` is refused ([`crate::Error::RangeTooLarge`]) as soon as the bodies decompressed
/// so far pass it. The index only knows stored sizes, which a hostile body makes ~1,000 times
/// smaller than what it decompresses to.
pub(crate) fn unpack_chosen(
    stored: impl IntoIterator<Item = (Vec<u8>, bool)>,
    chosen: &[usize],
    next: Option<usize>,
    req: &RangeRequest,
) -> Result<(Vec<Vec<u8>>, Option<usize>), crate::Error> {
    let budget = (req.max_bytes != u64::MAX).then(|| req.max_bytes.saturating_mul(RAW_PER_STORED));
    let mut bodies = Vec::with_capacity(chosen.len());
    let mut raw = 0u64;
    for (k, (body, gzip)) in stored.into_iter().enumerate() {
        if budget.is_some_and(|b| raw >= b) && !bodies.is_empty() {
            return Ok((bodies, chosen.get(k).copied().or(next)));
        }
        let body = replay_core::gzip::unpack(body, gzip)?;
        raw = raw.saturating_add(body.len() as u64);
        if raw > req.refuse_over {
            return Err(crate::Error::RangeTooLarge { bytes: raw });
        }
        bodies.push(body);
    }
    Ok((bodies, next))
}

/// What a project stored since a time (see [`crate::Storage::usage_since`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sessions that started at or after the time.
    pub sessions: u64,
    /// Ids of those sessions (at most as many as asked for).
    pub session_ids: Vec<String>,
    /// Stored bytes of the sessions that received a batch at or after the time (a session that
    /// started before counts whole: an upper bound).
    pub bytes: u64,
}

/// A file uploaded for a release to read its stacks with: a source map, or the minified file
/// it maps (for function names and character positions). Keyed by (project, release, URL); a
/// URL may start with `~/` to match any origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Artifact {
    pub url: String,
    pub bytes: u64,
    pub uploaded_ms: u64,
}

/// Largest release artifact stored (a big application's source map is a few MB).
pub const MAX_ARTIFACT_BYTES: usize = 32 << 20;
/// Most artifacts one release holds.
pub const MAX_ARTIFACTS_PER_RELEASE: usize = 1_000;
/// Longest release name and artifact URL stored.
pub const MAX_ARTIFACT_NAME: usize = 2_048;

/// Refuses an artifact over [`MAX_ARTIFACT_BYTES`].
pub(crate) fn check_artifact(body: &[u8]) -> Result<(), crate::Error> {
    if body.len() > MAX_ARTIFACT_BYTES {
        return Err(crate::Error::ArtifactTooLarge { bytes: body.len() as u64, cap: MAX_ARTIFACT_BYTES as u64 });
    }
    Ok(())
}

/// One line of a project's audit log: who did what to which session, setting or member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Assigned by storage (ignored when appending); grows with every entry.
    pub id: i64,
    pub project_id: i64,
    pub at_ms: u64,
    /// Who: `admin` for the admin token, else the viewer account's name.
    pub actor: String,
    /// What, e.g. `session.watch`, `session.export`, `session.delete`, `user.erase`,
    /// `project.settings`.
    pub action: String,
    /// Which session, setting or member.
    pub target: String,
    /// Free text: what changed, how many sessions.
    pub detail: String,
}

/// Most sessions [`crate::Storage::delete_user_sessions`] deletes in one round (it runs rounds
/// until none is left).
pub const ERASE_ROUND: usize = 500;

/// A session whose frustration counts were summed batch by batch and not yet judged over the
/// whole session (see [`crate::Storage::unsettled_sessions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsettled {
    pub project: i64,
    pub session: String,
    /// The session's batch count when listed: the judgement is written only if it still is.
    pub batches: u64,
}

/// A session's frustration counts ([`replay_protocol::frustration`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrustrationCounts {
    pub dead_clicks: u64,
    pub error_clicks: u64,
    pub quick_backs: u64,
}

/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2_000;
/// Most comments one session holds; more are refused ([`CommentAdded::Full`]).
pub const MAX_COMMENTS_PER_SESSION: usize = 1_000;

/// A comment on a session at a moment of it, left by someone who may write in its project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Comment {
    /// Assigned by storage (ignored when adding).
    pub id: i64,
    pub project_id: i64,
    pub session_id: String,
    /// The moment, in milliseconds from the session's start.
    pub t: u64,
    /// The author's account (the user name); empty for the admin token and project tokens.
    pub author_user: String,
    /// The author as shown: the user name, or what the token is.
    pub author: String,
    /// Plain text, at most [`MAX_COMMENT_CHARS`] characters; never markup.
    pub text: String,
    /// When it was written (Unix ms; set by the caller).
    pub created_ms: u64,
}

impl Comment {
    /// Whether the text is one a session may hold: not blank, at most [`MAX_COMMENT_CHARS`]
    /// characters, and the author within the same bound.
    pub fn is_valid(&self) -> bool {
        !self.text.trim().is_empty()
            && self.text.chars().count() <= MAX_COMMENT_CHARS
            && self.author.chars().count() <= MAX_COMMENT_CHARS
            && self.author_user.chars().count() <= MAX_COMMENT_CHARS
    }
}

/// What became of a comment given to [`crate::Storage::add_comment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentAdded {
    /// Stored, with its id.
    Added(Comment),
    /// The project has no such session (never recorded, or deleted): nothing is stored.
    NoSuchSession,
    /// The session holds [`MAX_COMMENTS_PER_SESSION`] comments already: nothing is stored.
    Full,
    /// Blank or longer than [`MAX_COMMENT_CHARS`] ([`Comment::is_valid`]): nothing is stored.
    Invalid,
}
