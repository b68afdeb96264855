//! SQL and row handling both engines share.

use crate::BatchSummary;
use crate::model::{COMMON_VALUES, CommonValue, FactComparison};

/// Added to a freeze marker's sequence number in the `seq` column of both engines' batch rows
/// (`batch_keys`, `batches`); see [`stored_seq`].
pub(crate) const MARKER_SEQ: i64 = 1 << 32;

/// The number a batch is keyed by in storage, with its project, session and page: its sequence
/// number, plus [`MARKER_SEQ`] for a freeze marker ([`BatchSummary::is_freeze_marker`]).
///
/// Why: the recorder numbers the marker its upload worker sends when the page stops answering
/// with the number after the batch being filled, without taking it (the page reserves it on
/// its next heartbeat or cut). Should the page fail to reserve it, its next real batch carries
/// the marker's number. Keyed on the number alone, whichever of the two came second was
/// acknowledged as a duplicate and dropped: a real batch of the user's session lost with clean
/// stats, or the freeze forgotten. Keyed apart, both are stored and indexed, in either order,
/// and nothing is decided from arrival order:
/// - the real batch is never lost;
/// - the marker stays recorded as any marker is: its event in its own stored batch (which the
///   player shows before the real batch of its number), counted in the session's `freezes`
///   and its latest `freeze_started_ms`. The server cannot tell which freeze was real. A
///   collision means the page did not see the gap itself (it reserves the number when it
///   does), so such a freeze is most likely the worker's own late check (the recorder confirms
///   a missed heartbeat in a task of its own before firing, which makes this rare). Counting
///   a doubtful freeze is the lesser harm: it is visible and explained by its replay, where a
///   dropped batch is not;
/// - a resend of either (the worker's and the page's copies of one marker, a retried upload)
///   is still a duplicate of its own kind and changes nothing.
///
/// The 64-bit column has room for the 32-bit sequence number and the kind, so neither engine's
/// primary key changes (no table rebuilt at upgrade) and rows stored before keep their keys.
/// Replay order sorts a page view's rows by `seq & 4294967295, seq DESC`: by number, a marker
/// before the real batch of its number (its event is the last moment the page answered,
/// before anything that batch holds). Bounded: a number holds at most two batches, one of each
/// kind. The usual real batch still costs no lookup: a page's highest stored seq, which tells
/// a batch past it is new, counts real batches only, and markers (a handful per session) are
/// always looked up.
pub(crate) fn stored_seq(s: &BatchSummary) -> i64 {
    i64::from(s.seq) + if s.is_freeze_marker() { MARKER_SEQ } else { 0 }
}

/// The summary of a stored batch body (`gzip` when stored compressed), decoded without the
/// configured limits (it was checked against them when it was received).
pub(crate) fn summarize_stored(body: Vec<u8>, gzip: bool) -> Result<BatchSummary, String> {
    let raw = replay_core::gzip::unpack(body, gzip).map_err(|e| e.to_string())?;
    let limits = replay_protocol::Limits {
        max_bytes: replay_core::gzip::MAX_STORED_BATCH,
        max_events: usize::MAX,
        max_nodes: usize::MAX,
        max_string: usize::MAX,
        max_attrs: usize::MAX,
    };
    let batch = replay_protocol::decode_batch_borrowed(&raw, &limits).map_err(|e| e.to_string())?;
    Ok(replay_core::summarize(&batch))
}

/// Whether a row keyed under a freeze marker's plain number (`seq` < [`MARKER_SEQ`]) holds a
/// freeze marker itself, from its stored body: a marker stored before markers were keyed
/// apart ([`stored_seq`]), which a resend of the same marker duplicates. A body that no longer
/// decodes is taken for a real batch (the resend is stored: a freeze counted twice rather than
/// a marker lost).
///
/// Why: after the upgrade, such a resend (the page's copy of the worker's marker, a retried
/// upload) is keyed `seq + MARKER_SEQ`; found new, it would be stored a second time (the
/// session's `freezes`, `batches` and `events` up by one, the marker twice in its replay).
/// Only markers are checked, only when a row of their plain number exists and that row is
/// no bigger than [`max_old_marker_bytes`] of the incoming marker (a resend is about the same
/// size: the same URL and action), and only after the session's byte cap let the marker in. So
/// a marker-shaped request never makes the server read and decode a big stored batch, and a
/// full session answers its resends without reading anything.
pub(crate) fn stored_body_is_marker(body: Vec<u8>, gzip: bool) -> bool {
    summarize_stored(body, gzip).is_ok_and(|s| s.is_freeze_marker())
}

/// The largest stored row, in bytes, that [`stored_body_is_marker`] reads for an incoming
/// marker of `incoming` bytes: twice its size plus 1 KiB (the worker's and the page's copies of
/// one marker differ only in a few fields; the slack covers gzip versus plain).
pub(crate) fn max_old_marker_bytes(incoming: usize) -> i64 {
    i64::try_from(incoming.saturating_mul(2).saturating_add(1024)).unwrap_or(i64::MAX)
}

/// The sequence number of a stored batch from its `seq` column (see [`stored_seq`]).
pub(crate) fn wire_seq(stored: i64) -> u32 {
    u32::try_from(stored.rem_euclid(MARKER_SEQ)).unwrap_or(u32::MAX)
}

/// Whether a batch starts a page view (counted in the session's `pages`): a real batch
/// numbered 0 (a marker never is: it takes the number after the batch being filled).
pub(crate) fn starts_page_view(s: &BatchSummary) -> bool {
    s.seq == 0 && !s.is_freeze_marker()
}

/// What a session row sums over its batches (and the times it moves forward): the one fold of
/// both engines' runs (SQLite's `IndexRun`, PostgreSQL's group `Run`), which apply several
/// batches of a session as one upsert when all but the first only add to these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) end_ms: u64,
    pub(crate) received_ms: u64,
    pub(crate) events: u64,
    pub(crate) clicks: u64,
    pub(crate) rage_clicks: u64,
    pub(crate) dead_clicks: u64,
    pub(crate) error_clicks: u64,
    pub(crate) quick_backs: u64,
    pub(crate) errors: u64,
    pub(crate) freezes: u64,
    pub(crate) dropped: u64,
    pub(crate) recorder_errors: u64,
}

impl Counters {
    pub(crate) fn of(s: &BatchSummary) -> Counters {
        let mut c = Counters { end_ms: s.end_ms, received_ms: s.received_ms, ..Counters::default() };
        c.add_counts(s);
        c
    }

    /// Folds in `s`, a later batch of the same session for which [`only_adds_counters`] holds.
    pub(crate) fn add(&mut self, s: &BatchSummary) {
        self.end_ms = self.end_ms.max(s.end_ms);
        self.received_ms = self.received_ms.max(s.received_ms);
        self.add_counts(s);
    }

    fn add_counts(&mut self, s: &BatchSummary) {
        self.events = self.events.saturating_add(s.events);
        self.clicks = self.clicks.saturating_add(s.clicks);
        self.rage_clicks = self.rage_clicks.saturating_add(s.rage_clicks);
        self.dead_clicks = self.dead_clicks.saturating_add(s.dead_clicks);
        self.error_clicks = self.error_clicks.saturating_add(s.error_clicks);
        self.quick_backs = self.quick_backs.saturating_add(s.quick_backs);
        self.errors = self.errors.saturating_add(s.errors);
        self.freezes = self.freezes.saturating_add(s.freezes);
        self.dropped = self.dropped.saturating_add(s.dropped);
        self.recorder_errors = self.recorder_errors.saturating_add(s.recorder_errors);
    }
}

/// Whether `b` sets none of the session row's fields an upsert takes from one batch (URL, user
/// agent, user, release, environment, browser, freeze details): applied right after an earlier
/// batch of its session (starting no earlier), it only adds [`Counters`].
pub(crate) fn only_adds_counters(b: &BatchSummary) -> bool {
    b.url.is_none()
        && b.user_agent.is_none()
        && b.user.is_none()
        && b.release.is_none()
        && b.environment.is_none()
        && b.browser.is_none()
        && b.freeze_culprit.is_none()
        && b.longest_freeze_ms == 0
        && b.freeze_started_ms == 0
        && b.freeze_ended_ms == 0
}

/// Columns of a [`crate::SessionRow`] in the order both engines read them.
pub(crate) const SESSION_COLUMNS: &str = "id, start_ms, end_ms, url, user_agent, pages, batches, events, clicks, \
     bytes, dropped, recorder_errors, user_id, release, environment, browser, errors, freezes, longest_freeze_ms, \
     freeze_culprit, never_recovered, rage_clicks, dead_clicks, error_clicks, quick_backs";

/// Adds a batch's frustration signals to its session (after the session's upsert, in its
/// transaction; only when there are any): `$1` project, `$2` session, then the counts. (The
/// SQLite engine writes the same with `?N`: it binds `$N` in order of first appearance.)
pub(crate) const ADD_FRUSTRATION: &str = "UPDATE sessions SET dead_clicks = dead_clicks + $3, \
     error_clicks = error_clicks + $4, quick_backs = quick_backs + $5 WHERE project_id = $1 AND id = $2";

/// One query for [`crate::Storage::compare_environment`] (`$1` project, `$2` session, `$3` sample
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

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// How long an instance trusts its cached copy of a project by ingest key (allowed origins may
/// change, keys may be revoked by another process or instance); both engines use it.
/// Most environment facts one session keeps. A batch adds at most
/// `replay_core::diagnostics::MAX_FACTS`, but a session of many batches, each naming new feature
/// flags, would otherwise grow its facts (index rows) without end; past the cap, facts already
/// known still take their latest value and new names are left out.
pub const MAX_FACTS_PER_SESSION: i64 = 256;

pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// Projects by ingest key, as both engines cache them for the ingest path: an entry is trusted
/// for [`KEY_CACHE_TTL`] (a key revoked or an allow-list changed by another process or
/// instance is seen within that time; changes made through this storage clear the cache at
/// once) and never past its key's own expiry (the end of a rotation's grace period). Holds
/// only keys storage accepted, so it is bounded by the number of live keys.
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CachedKey>>,
}

struct CachedKey {
    project: std::sync::Arc<crate::Project>,
    at: std::time::Instant,
    expires_ms: Option<u64>,
}

impl KeyCache {
    pub(crate) fn get(&self, key: &str) -> Option<std::sync::Arc<crate::Project>> {
        let entries = self.entries.lock().ok()?;
        let hit = entries.get(key)?;
        let live = hit.at.elapsed() < KEY_CACHE_TTL && hit.expires_ms.is_none_or(|end| replay_core::now_ms() < end);
        live.then(|| std::sync::Arc::clone(&hit.project))
    }

    pub(crate) fn insert(&self, key: &str, project: &crate::Project, expires_ms: Option<u64>) {
        if let Ok(mut entries) = self.entries.lock() {
            let entry =
                CachedKey { project: std::sync::Arc::new(project.clone()), at: std::time::Instant::now(), expires_ms };
            entries.insert(key.to_owned(), entry);
        }
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}
