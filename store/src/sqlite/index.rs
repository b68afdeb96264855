//! The bulk index: entries of logged batches wait in memory ([`PendingIndex`]) and are
//! written to `batch_keys`, the session index, error groups and environment facts in bulk,
//! sorted by session, by [`flush_chunk`]; opening the database indexes again what a crash left
//! unindexed ([`recover_index`]).
//!
//! Why in bulk: written per batch, each of these random-place indexes dirtied about one 4 KB
//! page per batch, and the log write, checksum and checkpoint of those pages were most of the
//! writer's time. A batch is appended to `batch_log` in arrival order (always its last page)
//! and acknowledged once that is synced; its index entries wait and are written every
//! [`FLUSH_AT_ENTRIES`] batches or [`FLUSH_AFTER`], and before any read. A flush writes its
//! sorted entries in chunks of [`FLUSH_CHUNK`] between group commits (so it never holds
//! acknowledgements long) and folds a session's consecutive count-only batches into one upsert
//! ([`IndexRun`]); the writer skips the key lookup for a batch past its page's highest stored
//! seq (the usual case; resends are still looked up).
//!
//! Invariant: rows past `index_state.indexed_through` are the only ones that may be missing
//! from the indexes, and opening the database indexes them again from their bodies. A chunk
//! that fails is retried entry by entry: entries that still fail while the database takes
//! other writes are held (their batches stay in the log, their keys in the duplicate checks,
//! the watermark below them), tried again every [`HELD_RETRY_AFTER`] and indexed by the next
//! open at the latest; when the database takes no write at all (a full disk), all stay
//! pending and are retried.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use replay_core::BatchSummary;
use rusqlite::{Connection, params};

use super::Db;
use crate::Error;
use crate::shared::{Counters, MARKER_SEQ, only_adds_counters, starts_page_view, stored_seq, to_i64, to_u64};

/// Index entries of batches already in `batch_log` (durable, acknowledged) but not yet in
/// `batch_keys` and the session index.
///
/// Why: the batches' key index and the session index are hit at random places (one place per
/// live session), so each group commit dirtied about one 4 KB page of each per batch, and the
/// log write, checksum and checkpoint of those pages were most of the writer's time. Appending
/// the batch to `batch_log` (always its last page) and writing the index entries of thousands
/// of batches at once, sorted, dirties each index page once per flush instead.
///
/// Invariants:
/// - A batch is acknowledged once its `batch_log` row is durable, whether or not it is indexed.
/// - Rows of `batch_log` with `id > index_state.indexed_through` are exactly those whose
///   entries may be missing from the indexes; opening the database indexes them again
///   ([`recover_index`]), from their bodies, so a crash loses no index entry.
/// - Every read of the database first flushes (see [`super::SqliteStorage::lock`]): readers never see
///   an acknowledged batch missing from the indexes, unless its entry failed to index on its
///   own and is held until the next open (see [`flush_chunk`]; logged as an error).
/// - A key is stored once: the writer refuses a batch whose key is in `keys` (pending) or in
///   `batch_keys`; a flush that finds the key already indexed for another row deletes its row.
#[derive(Default)]
pub(super) struct PendingIndex {
    /// Entries not yet taken by a flush, in id order.
    pub(super) entries: Vec<IndexEntry>,
    /// Entries of the flush under way, sorted by session and id, descending (see
    /// [`flush_chunk`]).
    pub(super) flushing: Vec<IndexEntry>,
    /// Entries that failed to index on their own while the database took other writes (see
    /// [`flush_chunk`]): held out of flushes, tried again every [`HELD_RETRY_AFTER`], and
    /// indexed from the log when the database is next opened (`indexed_through` stays below
    /// them). Their keys stay in `keys`, their pages in `pages`. Indexed late, such an entry
    /// may set its session's latest-value fields (user, release, environment) from an older
    /// batch than the ones already indexed.
    pub(super) held: Vec<IndexEntry>,
    /// When entries were last held.
    pub(super) held_since: Option<Instant>,
    /// The backlog's size for [`crate::Storage::index_backlog`], read without the lock.
    pub(super) published: Arc<IndexCounts>,
    /// Keys of `entries`, `flushing` and `held`, for duplicate checks before they reach
    /// `batch_keys`.
    pub(super) keys: hashbrown::HashSet<BatchKey>,
    /// The highest sequence number stored (logged, indexed or pending; -1 for none) of every
    /// page that sent a batch since the map was last cleared, so a batch past it is known to
    /// be new without looking up its key. A value may be too high (a rolled-back group, a
    /// retention run), which only costs a lookup, never too low: a page gets in the map only
    /// with its highest indexed seq, and the map is cleared only when nothing is pending or
    /// held, so a page missing from it has no pending entries.
    pub(super) pages: hashbrown::HashMap<PageKey, i64>,
    /// Stored bytes (indexed and pending) of every session that sent a batch since the map was
    /// last cleared, for the per-session cap (kept only while `session_cap` is set). Like
    /// `pages`: a session gets in the map with its indexed bytes, and the map is cleared only
    /// when nothing is pending or held (the held entries' sessions stay), so a session missing
    /// from it has no pending entries. A value may be too high after a retention run, which
    /// clears the map too.
    pub(super) session_bytes: hashbrown::HashMap<SessionKey, u64>,
    /// Most stored bytes one session may hold ([`crate::Storage::limit_session_bytes`]).
    pub(super) session_cap: Option<u64>,
    /// When the oldest entry was added.
    pub(super) oldest: Option<Instant>,
    /// The id of the next `batch_log` row (ids only ever grow, even after retention deleted
    /// the newest rows, so `indexed_through` never covers a row that was not indexed).
    pub(super) next_id: i64,
}

impl PendingIndex {
    /// Entries a flush will write (not the held ones).
    pub(super) fn len(&self) -> usize {
        self.entries.len() + self.flushing.len()
    }

    pub(super) fn publish(&self) {
        self.published.pending.store(self.len() as u64, Ordering::Relaxed);
        self.published.held.store(self.held.len() as u64, Ordering::Relaxed);
    }

    pub(super) fn held_retry_due(&self) -> bool {
        self.held_since.is_some_and(|t| t.elapsed() >= HELD_RETRY_AFTER)
    }

    /// Forgets the stored bytes of every session without a held entry (called when nothing
    /// is pending).
    pub(super) fn forget_session_bytes(&mut self) {
        let held: hashbrown::HashSet<SessionKeyRef<'_>> =
            self.held.iter().map(|e| SessionKeyRef(e.project, &e.summary.session)).collect();
        self.session_bytes.retain(|(project, session), _| held.contains(&SessionKeyRef(*project, session)));
    }

    /// Forgets everything held in memory of the sessions `ids` of `project` (deleted on
    /// request, after a flush): their held entries (whose log rows the deletion removes),
    /// keys, pages and stored bytes. A page of theirs missing from `pages` makes the writer look
    /// its session up in `deleted_sessions`, which refuses it.
    pub(super) fn forget_sessions(&mut self, project: i64, ids: &hashbrown::HashSet<&str>) {
        self.forget(|p, s| p == project && ids.contains(s));
    }

    /// Forgets everything held in memory of the sessions `doomed` names (by project and
    /// session), as [`PendingIndex::forget_sessions`].
    pub(super) fn forget(&mut self, doomed: impl Fn(i64, &str) -> bool) {
        self.held.retain(|e| !doomed(e.project, &e.summary.session));
        if self.held.is_empty() {
            self.held_since = None;
        }
        self.keys.retain(|(p, s, _, _)| !doomed(*p, s));
        self.pages.retain(|(p, s, _), _| !doomed(*p, s));
        self.session_bytes.retain(|(p, s), _| !doomed(*p, s));
        self.publish();
    }

    /// Notes a batch whose entry became pending: its key takes part in duplicate checks, and
    /// its page's highest seq (`known` so far, from the map or `batch_keys`) covers it, unless
    /// it is a freeze marker (always looked up: see [`crate::shared::stored_seq`]).
    pub(super) fn remember(&mut self, project: i64, s: &BatchSummary, known: i64) {
        self.keys.insert((project, s.session.clone(), s.page.clone(), stored_seq(s)));
        let highest = if s.is_freeze_marker() { known } else { known.max(i64::from(s.seq)) };
        match self.pages.get_mut(&PageKeyRef(project, &s.session, &s.page)) {
            Some(h) => *h = highest,
            None => {
                self.pages.insert((project, s.session.clone(), s.page.clone()), highest);
            }
        }
    }
}

/// [`PendingIndex`]'s counts, published after every change.
#[derive(Default)]
pub(super) struct IndexCounts {
    pub(super) pending: AtomicU64,
    pub(super) held: AtomicU64,
}

/// How often held index entries are tried again.
pub(super) const HELD_RETRY_AFTER: Duration = Duration::from_secs(60);

/// (project, session, page, stored seq: [`crate::shared::stored_seq`]) of a pending batch.
pub(super) type BatchKey = (i64, String, String, i64);
/// (project, session, page).
pub(super) type PageKey = (i64, String, String);

/// (project, session).
pub(super) type SessionKey = (i64, String);

/// A [`SessionKey`] looked up without copying its string.
#[derive(Hash, PartialEq, Eq)]
pub(super) struct SessionKeyRef<'a>(pub(super) i64, pub(super) &'a str);

impl hashbrown::Equivalent<SessionKey> for SessionKeyRef<'_> {
    fn equivalent(&self, k: &SessionKey) -> bool {
        self.0 == k.0 && self.1 == k.1
    }
}

/// A [`BatchKey`] looked up without copying its strings (hashes like the tuple it stands for).
#[derive(Hash)]
pub(super) struct BatchKeyRef<'a>(pub(super) i64, pub(super) &'a str, pub(super) &'a str, pub(super) i64);

impl hashbrown::Equivalent<BatchKey> for BatchKeyRef<'_> {
    fn equivalent(&self, k: &BatchKey) -> bool {
        self.0 == k.0 && self.1 == k.1 && self.2 == k.2 && self.3 == k.3
    }
}

/// A [`PageKey`] looked up without copying its strings.
#[derive(Hash, PartialEq, Eq)]
pub(super) struct PageKeyRef<'a>(pub(super) i64, pub(super) &'a str, pub(super) &'a str);

impl hashbrown::Equivalent<PageKey> for PageKeyRef<'_> {
    fn equivalent(&self, k: &PageKey) -> bool {
        self.0 == k.0 && self.1 == k.1 && self.2 == k.2
    }
}

/// One logged batch's contribution to the indexes.
pub(super) struct IndexEntry {
    pub(super) id: i64,
    pub(super) project: i64,
    pub(super) bytes: usize,
    pub(super) summary: BatchSummary,
    /// Keyed from its `batch_log` row alone: its body no longer decoded at recovery, so its
    /// summary is the row's key with no events, and whether it is a freeze marker (keyed
    /// apart: [`crate::shared::stored_seq`]) is unknown. Such an entry is applied after the
    /// decoded entries of its session, and its key held by another row does not make it a
    /// copy to drop while the other key of its number is free (see [`apply_index_entries`]).
    pub(super) key_only: bool,
}

/// Pending index entries at which the writer flushes them.
pub(super) const FLUSH_AT_ENTRIES: usize = 16 * 1024;

/// Pages whose highest seq the writer remembers, beyond which it forgets them all at the end of
/// a flush (a forgotten page costs one lookup at its next batch).
pub(super) const PAGES_KNOWN_MAX: usize = 100_000;

/// Index entries one transaction of a flush writes (a few milliseconds of the writer's time).
pub(super) const FLUSH_CHUNK: usize = 1024;

/// Longest an index entry waits for a flush when no read asks for one.
pub(super) const FLUSH_AFTER: Duration = Duration::from_secs(2);

/// Writes one chunk of index entries when a flush is under way, or starts one when enough
/// entries wait, when the oldest waited [`FLUSH_AFTER`], or (`idle`) whenever any wait. Returns
/// whether the flush goes on. A failed chunk stays pending and is retried.
pub(super) fn flush_step(conn: &Mutex<Db>, idle: bool) -> bool {
    let Ok(mut db) = conn.lock() else { return false };
    let index = &db.index;
    let due = !index.flushing.is_empty()
        || index.held_retry_due()
        || !index.entries.is_empty()
            && (idle
                || index.entries.len() >= FLUSH_AT_ENTRIES
                || index.oldest.is_some_and(|t| t.elapsed() >= FLUSH_AFTER));
    if !due {
        return false;
    }
    match flush_chunk(&mut db, FLUSH_CHUNK) {
        Ok(()) => !db.index.flushing.is_empty(),
        Err(e) => {
            tracing::error!(error = %e, pending = db.index.len(), "writing the index failed; retrying later");
            false
        }
    }
}

/// Writes every pending index entry.
pub(super) fn flush_all(db: &mut Db) -> Result<(), Error> {
    while db.index.len() > 0 {
        flush_chunk(db, usize::MAX)?;
    }
    Ok(())
}

/// Writes up to `max` index entries in one transaction and moves `indexed_through` as far as
/// the entries still pending allow. A flush sorts the entries waiting when it starts by session
/// (then arrival) and writes them in that order, chunk by chunk: each chunk covers its own
/// range of sessions in every index, so each index page is dirtied about once per flush, and a
/// chunk holds the writer (and the acknowledgements waiting for it) for a few milliseconds
/// only. A chunk that fails is tried again entry by entry; entries that fail while others go
/// in are held (see [`PendingIndex::held`]), and when none goes in the whole chunk stays
/// pending and the error is returned.
pub(super) fn flush_chunk(db: &mut Db, max: usize) -> Result<(), Error> {
    let result = flush_chunk_unpublished(db, max);
    db.index.publish();
    result
}

pub(super) fn flush_chunk_unpublished(db: &mut Db, max: usize) -> Result<(), Error> {
    let Db { conn, index } = db;
    if index.flushing.is_empty() {
        let retry_held = index.held_retry_due();
        if index.entries.is_empty() && !retry_held {
            return Ok(());
        }
        index.flushing = std::mem::take(&mut index.entries);
        if retry_held {
            index.flushing.append(&mut index.held);
            index.held_since = None;
        }
        index.oldest = None;
        // By session, and within a session by id: the session index takes some fields from
        // the latest batch and some from the first, so a session's batches are applied in the
        // order they arrived. Descending: chunks are taken from the end and written reversed.
        index.flushing.sort_unstable_by(flush_order);
    }
    let started = Instant::now();
    let mut chunk = index.flushing.split_off(index.flushing.len().saturating_sub(max));
    // Every row up to `through` is indexed once this chunk is: rows get ids in arrival order,
    // and entries wait in `flushing` (any ids) or `entries` (ids after all of `flushing`'s),
    // or are held (any ids).
    let unwritten = match index.flushing.iter().map(|e| e.id).min() {
        Some(id) => id,
        None => index.entries.first().map_or(index.next_id, |e| e.id),
    };
    let through = index.held.iter().map(|e| e.id).fold(unwritten, i64::min) - 1;
    if let Err(e) = write_index_entries(conn, &chunk, through) {
        // One bad entry must not keep every later batch out of the indexes: each entry is
        // tried on its own (the watermark left alone). When none goes in and the database
        // takes no write either, the cause is not an entry (a full disk, say): all stay
        // pending and are retried. Otherwise the failing ones are held.
        let (written, mut failed, last_error) = write_index_entries_one_by_one(conn, chunk);
        let last_error = last_error.unwrap_or(e);
        if written.is_empty() && !takes_writes(conn) {
            // Back where they were: the end of `flushing`, in its order.
            failed.sort_unstable_by(flush_order);
            index.flushing.extend(failed);
            return Err(last_error);
        }
        tracing::error!(
            error = %last_error,
            held = failed.len(),
            first_ids = ?failed.iter().take(10).map(|e| e.id).collect::<Vec<_>>(),
            "some batches could not be indexed; they stay in the log, are tried again every minute and are indexed again when the database is next opened"
        );
        index.held.extend(failed);
        index.held_since = Some(Instant::now());
        chunk = written;
    }
    for e in &chunk {
        index.keys.remove(&BatchKeyRef(e.project, &e.summary.session, &e.summary.page, stored_seq(&e.summary)));
    }
    if index.len() == 0 && index.pages.len() > PAGES_KNOWN_MAX {
        // Held entries' pages stay: their seqs are in no index a lookup would read.
        {
            let held: hashbrown::HashSet<PageKeyRef<'_>> =
                index.held.iter().map(|e| PageKeyRef(e.project, &e.summary.session, &e.summary.page)).collect();
            index.pages.retain(|(project, session, page), _| held.contains(&PageKeyRef(*project, session, page)));
        }
        index.forget_session_bytes();
    }
    tracing::debug!(
        entries = chunk.len(),
        left = index.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "index chunk written"
    );
    Ok(())
}

/// Writes `chunk` (in reverse order: by session, then arrival) to the indexes and sets `indexed_through`,
/// in one transaction.
pub(super) fn write_index_entries(conn: &mut Connection, chunk: &[IndexEntry], through: i64) -> Result<(), Error> {
    let tx = conn.transaction()?;
    apply_index_entries(&tx, chunk)?;
    tx.execute("UPDATE index_state SET indexed_through = MAX(indexed_through, ?1)", [through])?;
    tx.commit()?;
    Ok(())
}

/// Tries `chunk`'s entries one by one in one transaction, each under a savepoint (the
/// watermark is left alone). Returns the entries written and the others, with the last error;
/// when the transaction itself fails, nothing is written and every entry is returned as failed.
pub(super) fn write_index_entries_one_by_one(
    conn: &mut Connection,
    chunk: Vec<IndexEntry>,
) -> (Vec<IndexEntry>, Vec<IndexEntry>, Option<Error>) {
    let mut written = Vec::with_capacity(chunk.len());
    let mut failed = Vec::new();
    let mut last_error = None;
    // In application order (the chunk is descending).
    let mut entries = chunk.into_iter().rev();
    let outcome = (|| -> Result<(), Error> {
        let mut tx = conn.transaction()?;
        for entry in entries.by_ref() {
            let savepoint = tx.savepoint()?;
            match apply_index_entries(&savepoint, std::slice::from_ref(&entry)) {
                Ok(()) => {
                    savepoint.commit()?;
                    written.push(entry);
                }
                Err(e) => {
                    // Dropping the savepoint rolls this entry back.
                    drop(savepoint);
                    last_error = Some(e);
                    failed.push(entry);
                }
            }
        }
        tx.commit()?;
        Ok(())
    })();
    if let Err(e) = outcome {
        // Rolled back whole: nothing of it is written.
        failed.extend(entries);
        failed.append(&mut written);
        last_error = Some(e);
    }
    (written, failed, last_error)
}

/// Whether the database takes a write at all (an empty update, committed).
pub(super) fn takes_writes(conn: &mut Connection) -> bool {
    conn.transaction()
        .and_then(|tx| {
            tx.execute("UPDATE index_state SET indexed_through = indexed_through", [])?;
            tx.commit()
        })
        .is_ok()
}

/// The order of a flush's entries: by session, then id, descending (see [`flush_chunk`]); a
/// session's [`IndexEntry::key_only`] entries apart, before its others (so written after them:
/// a decoded batch takes its key before an entry whose key is a guess can).
pub(super) fn flush_order(a: &IndexEntry, b: &IndexEntry) -> std::cmp::Ordering {
    (b.project, &b.summary.session, b.key_only, b.id).cmp(&(a.project, &a.summary.session, a.key_only, a.id))
}

/// Writes `chunk` (in reverse order: by session, then arrival) to the indexes.
pub(super) fn apply_index_entries(tx: &Connection, chunk: &[IndexEntry]) -> Result<(), Error> {
    {
        let mut key = tx.prepare_cached(INSERT_KEY)?;
        let mut indexed_as = tx.prepare_cached(
            "SELECT batch FROM batch_keys WHERE project_id = ?1 AND session_id = ?2 AND page_id = ?3 AND seq = ?4",
        )?;
        let mut drop_row = tx.prepare_cached("DELETE FROM batch_log WHERE id = ?1")?;
        let mut upsert = tx.prepare_cached(UPSERT_SESSION)?;
        let mut run: Option<IndexRun> = None;
        for e in chunk.iter().rev() {
            let s = &e.summary;
            let bytes = i64::try_from(e.bytes).unwrap_or(i64::MAX);
            let seq = stored_seq(s);
            if key.execute(params![e.project, s.session, s.page, seq, to_i64(s.start_ms), e.id, bytes])? == 0 {
                // Already indexed: by a flush that raced this one (a storage dropped while
                // the same database was opened again), or a duplicate row to drop.
                let existing: i64 = indexed_as.query_row(params![e.project, s.session, s.page, seq], |r| r.get(0))?;
                if existing == e.id {
                    continue;
                }
                // A batch whose key is a guess (its body no longer decodes) is maybe not a
                // copy of the row holding it: the marker of that number keyed as the real
                // batch. It takes the other key of its number when that is free (indexed,
                // so deletions and retention reach it); a number holds one batch of each kind,
                // so with both taken it is a copy.
                let other = seq + MARKER_SEQ;
                let keyed_apart = e.key_only
                    && seq < MARKER_SEQ
                    && key.execute(params![e.project, s.session, s.page, other, to_i64(s.start_ms), e.id, bytes])? > 0;
                if !keyed_apart {
                    drop_row.execute([e.id])?;
                    continue;
                }
                tracing::warn!(
                    id = e.id,
                    "a logged batch that no longer decodes shares its number with another; keyed as its freeze marker"
                );
            }
            if run.as_mut().is_some_and(|r| r.absorb(e)) {
                continue;
            }
            if let Some(done) = run.replace(IndexRun::new(e)) {
                index_batch(tx, &mut upsert, &done)?;
            }
        }
        if let Some(done) = run {
            index_batch(tx, &mut upsert, &done)?;
        }
    }
    Ok(())
}

/// Queues for indexing the `batch_log` rows past `indexed_through` (those a crash may have left
/// unindexed), summarised again from their bodies, and flushes them. Also sets `next_id`.
pub(super) fn recover_index(db: &mut Db) -> Result<(), Error> {
    let (through, last): (i64, i64) = db.query_row(
        "SELECT indexed_through, (SELECT COALESCE(MAX(id), 0) FROM batch_log) FROM index_state",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    db.index.next_id = through.max(last) + 1;
    if last <= through {
        return Ok(());
    }
    let rows = db
        .prepare(
            "SELECT id, project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body, encoding
             FROM batch_log WHERE id > ?1 ORDER BY id",
        )?
        .query_map([through], |r| {
            let minimal = BatchSummary {
                session: r.get(2)?,
                page: r.get(3)?,
                seq: r.get(4)?,
                start_ms: to_u64(r.get(5)?),
                end_ms: to_u64(r.get(6)?),
                received_ms: to_u64(r.get(7)?),
                ..BatchSummary::default()
            };
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, minimal, r.get::<_, Vec<u8>>(8)?, r.get::<_, String>(9)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let recovered = rows.len();
    for (id, project, minimal, body, encoding) in rows {
        let bytes = body.len();
        let (summary, key_only) = match resummarize(body, encoding == "gzip", &minimal) {
            Ok(s) => (s, false),
            Err(e) => {
                // Indexed with what the row itself says, when its key is free: the batch stays
                // reachable (see `IndexEntry::key_only`).
                tracing::warn!(id, error = %e, "a logged batch no longer decodes; indexing its key only");
                (minimal, true)
            }
        };
        db.index.entries.push(IndexEntry { id, project, bytes, summary, key_only });
    }
    // Left pending when this fails (the writer retries, reads flush first): the batches are
    // safe in the log either way, and a database that cannot write its index now still serves.
    let flushed = flush_all(db);
    if let Err(e) = &flushed {
        tracing::error!(error = %e, pending = db.index.len(), "indexing the logged batches failed; retrying later");
    }
    // Entries still pending or held take part in duplicate checks like the writer's own.
    let Db { conn, index } = db;
    if index.len() > 0 || !index.held.is_empty() {
        let mut highest_indexed = conn.prepare(HIGHEST_INDEXED_SEQ)?;
        // (Copied out: `remember` needs the index mutably; this path is rare.)
        let waiting: Vec<(i64, BatchSummary)> = index
            .entries
            .iter()
            .chain(&index.flushing)
            .chain(&index.held)
            .map(|e| (e.project, e.summary.clone()))
            .collect();
        for (project, s) in &waiting {
            let known = match index.pages.get(&PageKeyRef(*project, &s.session, &s.page)) {
                Some(&h) => h,
                None => highest_indexed.query_row(params![project, s.session, s.page], |r| r.get::<_, i64>(0))?,
            };
            index.remember(*project, s, known);
        }
    }
    index.publish();
    if flushed.is_ok() {
        tracing::info!(batches = recovered, "indexed batches logged before the last shutdown");
    }
    Ok(())
}

/// The summary of a logged batch, as ingest made it (with the row's own key and receipt time).
pub(super) fn resummarize(body: Vec<u8>, gzip: bool, row: &BatchSummary) -> Result<BatchSummary, String> {
    let mut summary = crate::shared::summarize_stored(body, gzip)?;
    if (summary.session.as_str(), summary.page.as_str(), summary.seq) != (&row.session, &row.page, row.seq) {
        return Err("the body's key differs from its row's".into());
    }
    // The row keeps what ingest accepted (times clamped to the receive time included).
    (summary.received_ms, summary.start_ms, summary.end_ms) = (row.received_ms, row.start_ms, row.end_ms);
    Ok(summary)
}

/// The highest indexed seq of one page's real batches (`?1` project, `?2` session, `?3` page),
/// -1 for none; freeze markers' keys ([`crate::shared::MARKER_SEQ`] and above) do not count.
pub(super) const HIGHEST_INDEXED_SEQ: &str = "SELECT COALESCE(MAX(seq), -1) FROM batch_keys
     WHERE project_id = ?1 AND session_id = ?2 AND page_id = ?3 AND seq < 4294967296";

/// Indexes one logged batch's key; ignored (0 rows) when the key is indexed already.
pub(super) const INSERT_KEY: &str =
    "INSERT OR IGNORE INTO batch_keys (project_id, session_id, page_id, seq, start_ms, batch, bytes)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Adds one batch's summary to its session's row of the index.
pub(super) const UPSERT_SESSION: &str =
    "INSERT INTO sessions (project_id, id, start_ms, end_ms, url, user_agent, pages, batches, events, clicks,
                                   bytes, dropped, recorder_errors, user_id, release, environment, browser, errors,
                                   freezes, received_ms, longest_freeze_ms, freeze_culprit, freeze_started_ms,
                                   freeze_ended_ms, rage_clicks)
             VALUES (?1, ?2, ?3, ?4, COALESCE(?5, ''), COALESCE(?6, ''), ?7, ?25, ?8, ?9, ?10, ?11, ?12,
                     COALESCE(?13, ''), COALESCE(?14, ''), COALESCE(?15, ''), COALESCE(?16, ''), ?17, ?18, ?19,
                     ?20, COALESCE(?21, ''), ?22, ?23, ?24)
             ON CONFLICT (project_id, id) DO UPDATE SET
                start_ms = MIN(start_ms, excluded.start_ms),
                end_ms = MAX(end_ms, excluded.end_ms),
                url = CASE WHEN url = '' OR excluded.start_ms < start_ms AND excluded.url != '' THEN excluded.url
                      ELSE url END,
                user_agent = CASE WHEN user_agent = '' THEN excluded.user_agent ELSE user_agent END,
                user_id = CASE WHEN ?13 IS NOT NULL THEN excluded.user_id ELSE user_id END,
                release = CASE WHEN ?14 IS NOT NULL THEN excluded.release ELSE release END,
                environment = CASE WHEN ?15 IS NOT NULL THEN excluded.environment ELSE environment END,
                browser = CASE WHEN browser = '' THEN excluded.browser ELSE browser END,
                pages = pages + excluded.pages,
                batches = batches + excluded.batches,
                events = events + excluded.events,
                clicks = clicks + excluded.clicks,
                rage_clicks = rage_clicks + excluded.rage_clicks,
                bytes = bytes + excluded.bytes,
                dropped = dropped + excluded.dropped,
                recorder_errors = recorder_errors + excluded.recorder_errors,
                errors = errors + excluded.errors,
                freezes = freezes + excluded.freezes,
                received_ms = MAX(received_ms, excluded.received_ms),
                longest_freeze_ms = MAX(longest_freeze_ms, excluded.longest_freeze_ms),
                freeze_culprit = CASE WHEN excluded.longest_freeze_ms > longest_freeze_ms
                                 THEN excluded.freeze_culprit ELSE freeze_culprit END,
                freeze_started_ms = MAX(freeze_started_ms, excluded.freeze_started_ms),
                freeze_ended_ms = MAX(freeze_ended_ms, excluded.freeze_ended_ms),
                never_recovered = CASE WHEN MAX(freeze_ended_ms, excluded.freeze_ended_ms)
                                            >= MAX(freeze_started_ms, excluded.freeze_started_ms)
                                  THEN 0 ELSE never_recovered END";

/// What [`index_batch`] adds to a session: one batch's summary, or several batches' in a row
/// of one session when all but the first only add to counters (see [`IndexRun::absorb`]).
pub(super) struct IndexRun {
    pub(super) project: i64,
    /// The first batch's summary: what the upsert takes from one batch, and what the other
    /// indexes (facts, terms, click maps, errors) add.
    pub(super) summary: BatchSummary,
    /// The run's sums.
    pub(super) counts: Counters,
    /// Bytes of the batches as stored.
    pub(super) bytes: usize,
    pub(super) batches: u64,
    /// Batches that start a page view ([`starts_page_view`]).
    pub(super) pages: u64,
}

impl IndexRun {
    fn new(e: &IndexEntry) -> Self {
        IndexRun {
            project: e.project,
            counts: Counters::of(&e.summary),
            summary: e.summary.clone(),
            bytes: e.bytes,
            batches: 1,
            pages: u64::from(starts_page_view(&e.summary)),
        }
    }

    /// Adds `e`, the next batch of the same session in arrival order, when applying the two as
    /// one gives the session row exactly what applying them one after the other gives: `e`
    /// only adds to counters ([`only_adds_counters`]), adds nothing to the other indexes
    /// (facts, errors, search terms, click maps) and starts no earlier.
    fn absorb(&mut self, e: &IndexEntry) -> bool {
        let (a, b) = (&self.summary, &e.summary);
        let neutral = only_adds_counters(b)
            && b.facts.is_empty()
            && b.error_sightings.is_empty()
            && b.search_terms.is_empty()
            && b.search_terms_dropped == 0
            && b.activity.is_empty();
        if e.project != self.project || b.session != a.session || !neutral || b.start_ms < a.start_ms {
            return false;
        }
        self.counts.add(b);
        self.bytes += e.bytes;
        self.batches += 1;
        self.pages += u64::from(starts_page_view(b));
        true
    }
}

/// Adds a run of logged batches of one session to the session index, error groups and
/// environment facts, inside the caller's transaction.
pub(super) fn index_batch(
    tx: &Connection,
    upsert: &mut rusqlite::CachedStatement<'_>,
    run: &IndexRun,
) -> Result<(), Error> {
    let (project, s, c, bytes) = (run.project, &run.summary, &run.counts, run.bytes);
    upsert.execute(params![
        project,
        s.session,
        to_i64(s.start_ms),
        to_i64(c.end_ms),
        s.url,
        s.user_agent,
        to_i64(run.pages),
        to_i64(c.events),
        to_i64(c.clicks),
        i64::try_from(bytes).unwrap_or(i64::MAX),
        to_i64(c.dropped),
        to_i64(c.recorder_errors),
        s.user,
        s.release,
        s.environment,
        s.browser,
        to_i64(c.errors),
        to_i64(c.freezes),
        to_i64(c.received_ms),
        to_i64(s.longest_freeze_ms),
        s.freeze_culprit,
        to_i64(s.freeze_started_ms),
        to_i64(s.freeze_ended_ms),
        to_i64(c.rage_clicks),
        to_i64(run.batches),
    ])?;
    if c.dead_clicks + c.error_clicks + c.quick_backs > 0 {
        tx.prepare_cached(
            "UPDATE sessions SET dead_clicks = dead_clicks + ?3, error_clicks = error_clicks + ?4,
             quick_backs = quick_backs + ?5 WHERE project_id = ?1 AND id = ?2",
        )?
        .execute(params![
            project,
            s.session,
            to_i64(c.dead_clicks),
            to_i64(c.error_clicks),
            to_i64(c.quick_backs)
        ])?;
    }
    for (name, value) in &s.facts {
        tx.prepare_cached(
            "INSERT INTO session_facts (project_id, session_id, name, value)
             SELECT ?1, ?2, ?3, ?4
             WHERE EXISTS (SELECT 1 FROM session_facts WHERE project_id = ?1 AND session_id = ?2 AND name = ?3)
                OR (SELECT COUNT(*) FROM session_facts WHERE project_id = ?1 AND session_id = ?2) < ?5
             ON CONFLICT (project_id, session_id, name) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![project, s.session, name, value, crate::shared::MAX_FACTS_PER_SESSION])?;
    }
    super::search::index_terms(tx, project, s)?;
    super::clickmap::index_activity(tx, project, s)?;
    for e in &s.error_sightings {
        tx.prepare_cached(
            "INSERT INTO error_groups (project_id, fingerprint, message, frame, count, first_ms, last_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT (project_id, fingerprint) DO UPDATE SET
                count = count + excluded.count,
                first_ms = MIN(first_ms, excluded.first_ms),
                last_ms = MAX(last_ms, excluded.last_ms)",
        )?
        .execute(params![project, e.fingerprint, e.message, e.frame, to_i64(e.count), to_i64(e.at_ms)])?;
        tx.prepare_cached(
            "INSERT INTO error_sessions (project_id, fingerprint, session_id, count, last_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (project_id, fingerprint, session_id) DO UPDATE SET
                count = count + excluded.count,
                last_ms = MAX(last_ms, excluded.last_ms)",
        )?
        .execute(params![project, e.fingerprint, s.session, to_i64(e.count), to_i64(e.at_ms)])?;
    }
    Ok(())
}
