//! The embedded default engine: one SQLite database in the data directory.
//!
//! WAL journal: a batch is acknowledged once its transaction committed and the log holding it
//! was synced, so it survives a crash or a power cut. Batches are written by one writer thread
//! with group commit: every batch waiting when a transaction starts goes into it; a sync thread
//! then syncs the log once for every group committed meanwhile (see [`sync_loop`]), so one
//! fsync acknowledges many concurrent uploads, and the writer paces its commits by the syncs
//! (see [`writer_loop`]). Every other write keeps `synchronous=FULL`.
//!
//! Batches are appended to `batch_log` in arrival order; the indexes derived from them (the
//! batches' keys, the session index, error groups, environment facts) are written later, in
//! bulk, by [`flush_chunk`]: see [`PendingIndex`] for why and for the invariants. Schema
//! changes are numbered migrations recorded in `PRAGMA user_version`; they only ever append.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crossbeam_channel as channel;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{
    BatchBody, BatchDone, BatchSummary, COMPARE_ENVIRONMENT_SQL, ErrorGroup, FactComparison, IndexBacklog, Project,
    RECENT_ERROR_SESSIONS, SESSION_COLUMNS, SessionFilter, SessionRow, Storage, Stored, comparisons, new_key, now_ms,
    unpack,
};
use crate::Error;

/// SQLite storage; cheap to clone (one shared connection and one group-commit writer).
#[derive(Clone)]
pub struct SqliteStorage {
    conn: Arc<Mutex<Db>>,
    writer: channel::Sender<PendingBatch>,
    /// Projects by ingest key (hit on every ingest request); cleared when projects change.
    keys: Arc<Mutex<HashMap<String, Arc<Project>>>>,
    /// Group commits so far (tells the checkpoint thread whether there is anything to do).
    groups_committed: Arc<AtomicU64>,
    /// The index backlog's size, as the writer last published it.
    backlog: Arc<IndexCounts>,
}

/// A batch waiting for the writer thread, with where to send the outcome.
struct PendingBatch {
    project: i64,
    summary: BatchSummary,
    body: BatchBody,
    reply: BatchDone,
}

/// The connection, with the index entries of logged batches not yet written to the indexes.
/// Both live under one lock: whoever holds it sees the indexes complete once it flushed.
struct Db {
    conn: Connection,
    index: PendingIndex,
}

impl std::ops::Deref for Db {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

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
/// - Every read of the database first flushes (see [`SqliteStorage::lock`]): readers never see
///   an acknowledged batch missing from the indexes, unless its entry failed to index on its
///   own and is held until the next open (see [`flush_chunk`]; logged as an error).
/// - A key is stored once: the writer refuses a batch whose key is in `keys` (pending) or in
///   `batch_keys`; a flush that finds the key already indexed for another row deletes its row.
#[derive(Default)]
struct PendingIndex {
    /// Entries not yet taken by a flush, in id order.
    entries: Vec<IndexEntry>,
    /// Entries of the flush under way, sorted by session and id, descending (see
    /// [`flush_chunk`]).
    flushing: Vec<IndexEntry>,
    /// Entries that failed to index on their own while the database took other writes (see
    /// [`flush_chunk`]): held out of flushes, tried again every [`HELD_RETRY_AFTER`], and
    /// indexed from the log when the database is next opened (`indexed_through` stays below
    /// them). Their keys stay in `keys`, their pages in `pages`. Indexed late, such an entry
    /// may set its session's latest-value fields (user, release, environment) from an older
    /// batch than the ones already indexed.
    held: Vec<IndexEntry>,
    /// When entries were last held.
    held_since: Option<Instant>,
    /// The backlog's size for [`Storage::index_backlog`], read without the lock.
    published: Arc<IndexCounts>,
    /// Keys of `entries`, `flushing` and `held`, for duplicate checks before they reach
    /// `batch_keys`.
    keys: hashbrown::HashSet<BatchKey>,
    /// The highest sequence number stored (logged, indexed or pending; -1 for none) of every
    /// page that sent a batch since the map was last cleared, so a batch past it is known to
    /// be new without looking up its key. A value may be too high (a rolled-back group, a
    /// retention run), which only costs a lookup, never too low: a page gets in the map only
    /// with its highest indexed seq, and the map is cleared only when nothing is pending or
    /// held, so a page missing from it has no pending entries.
    pages: hashbrown::HashMap<PageKey, i64>,
    /// When the oldest entry was added.
    oldest: Option<Instant>,
    /// The id of the next `batch_log` row (ids only ever grow, even after retention deleted
    /// the newest rows, so `indexed_through` never covers a row that was not indexed).
    next_id: i64,
}

impl PendingIndex {
    /// Entries a flush will write (not the held ones).
    fn len(&self) -> usize {
        self.entries.len() + self.flushing.len()
    }

    fn publish(&self) {
        self.published.pending.store(self.len() as u64, Ordering::Relaxed);
        self.published.held.store(self.held.len() as u64, Ordering::Relaxed);
    }

    fn held_retry_due(&self) -> bool {
        self.held_since.is_some_and(|t| t.elapsed() >= HELD_RETRY_AFTER)
    }

    /// Notes a batch whose entry became pending: its key takes part in duplicate checks, and
    /// its page's highest seq (`known` so far, from the map or `batch_keys`) covers it.
    fn remember(&mut self, project: i64, s: &BatchSummary, known: i64) {
        self.keys.insert((project, s.session.clone(), s.page.clone(), s.seq));
        let highest = known.max(i64::from(s.seq));
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
struct IndexCounts {
    pending: AtomicU64,
    held: AtomicU64,
}

/// How often held index entries are tried again.
const HELD_RETRY_AFTER: Duration = Duration::from_secs(60);

/// (project, session, page, seq) of a pending batch.
type BatchKey = (i64, String, String, u32);
/// (project, session, page).
type PageKey = (i64, String, String);

/// A [`BatchKey`] looked up without copying its strings (hashes like the tuple it stands for).
#[derive(Hash)]
struct BatchKeyRef<'a>(i64, &'a str, &'a str, u32);

impl hashbrown::Equivalent<BatchKey> for BatchKeyRef<'_> {
    fn equivalent(&self, k: &BatchKey) -> bool {
        self.0 == k.0 && self.1 == k.1 && self.2 == k.2 && self.3 == k.3
    }
}

/// A [`PageKey`] looked up without copying its strings.
#[derive(Hash, PartialEq, Eq)]
struct PageKeyRef<'a>(i64, &'a str, &'a str);

impl hashbrown::Equivalent<PageKey> for PageKeyRef<'_> {
    fn equivalent(&self, k: &PageKey) -> bool {
        self.0 == k.0 && self.1 == k.1 && self.2 == k.2
    }
}

/// One logged batch's contribution to the indexes.
struct IndexEntry {
    id: i64,
    project: i64,
    bytes: usize,
    summary: BatchSummary,
}

/// Pending index entries at which the writer flushes them.
const FLUSH_AT_ENTRIES: usize = 16 * 1024;

/// Pages whose highest seq the writer remembers, beyond which it forgets them all at the end of
/// a flush (a forgotten page costs one lookup at its next batch).
const PAGES_KNOWN_MAX: usize = 100_000;

/// Index entries one transaction of a flush writes (a few milliseconds of the writer's time).
const FLUSH_CHUNK: usize = 1024;

/// Longest an index entry waits for a flush when no read asks for one.
const FLUSH_AFTER: Duration = Duration::from_secs(2);

/// Most batches (and bytes) one transaction takes.
const GROUP_MAX_BATCHES: usize = 512;
const GROUP_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Pages of write-ahead log after which the writer checkpoints itself, when the checkpoint
/// thread falls behind (SQLite's default is 1,000 pages, checkpointed by the writer).
const WAL_CHECKPOINT_PAGES: i64 = 16 * 1024;

/// How often the checkpoint thread looks for new commits.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Copies committed pages from the write-ahead log into the database, on a connection of its
/// own. Done by the writer (SQLite's default), every thousandth page made one group commit
/// wait for a whole checkpoint with its fsync, on the one thread all ingest waits for; here the
/// writer only appends and syncs the log. `PASSIVE` never blocks the writer or readers, and a
/// checkpoint that caught up lets the next commit start the log from its beginning again.
/// Stops once the storage is gone (the count is then held by this thread alone).
fn checkpoint_loop(conn: &Connection, groups_committed: &Arc<AtomicU64>) {
    let mut seen = 0;
    while Arc::strong_count(groups_committed) > 1 {
        std::thread::sleep(CHECKPOINT_EVERY);
        let now = groups_committed.load(Ordering::Relaxed);
        if now == seen {
            continue;
        }
        seen = now;
        let started = std::time::Instant::now();
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok((busy, log, done)) => tracing::debug!(
                busy,
                log_pages = log,
                checkpointed_pages = done,
                elapsed_us = started.elapsed().as_micros() as u64,
                "checkpoint"
            ),
            Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
        }
    }
}

/// Acknowledgements of committed groups waiting for the log to reach the disk.
type Acks = Vec<(BatchDone, Result<Stored, Error>)>;

/// Where the writer's acknowledgements go once a group committed.
enum AckPath {
    /// In-memory database: nothing to sync, acknowledge at once.
    Direct,
    /// File database: through the sync thread (see [`sync_loop`]), which answers on `synced`
    /// how many of the groups handed to it are durable.
    AfterSync { to_sync: mpsc::Sender<Acks>, synced: channel::Receiver<usize> },
}

/// Makes committed groups durable, then acknowledges them.
///
/// The writer commits each group with `synchronous=NORMAL` (the log is written, not synced)
/// and hands the acknowledgements here; this thread syncs the write-ahead log once for every
/// group that committed meanwhile, tells the writer, and only then acknowledges their batches.
/// A batch is still acknowledged only once its commit is on disk: the sync starts after the
/// group's frames were written, and syncing a file makes all of its written bytes durable,
/// whichever descriptor wrote them; a log synced that way recovers every transaction in it
/// (SQLite's own `synchronous=FULL` issues the same sync at the end of each commit). What
/// changes is that the writer, the one serial stage of ingest, no longer sleeps through the
/// sync: it gathers the next group while the disk works (see [`writer_loop`]).
///
/// A failed sync is not retried (after a failed `fsync` the kernel may have dropped the
/// unwritten pages): every batch from then on is refused as a storage error, so nothing is
/// ever acknowledged without being durable.
fn sync_loop(wal: &Path, rx: &mpsc::Receiver<Acks>, synced: &channel::Sender<usize>) {
    let mut file: Option<std::fs::File> = None;
    let mut broken: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut acks = first;
        let mut groups = 1;
        while let Ok(more) = rx.try_recv() {
            acks.extend(more);
            groups += 1;
        }
        if broken.is_none() {
            let started = std::time::Instant::now();
            let result = match &file {
                Some(f) => f.sync_data(),
                None => std::fs::File::open(wal).and_then(|f| {
                    let r = f.sync_data();
                    file = Some(f);
                    r
                }),
            };
            match result {
                Ok(()) => {
                    tracing::debug!(
                        batches = acks.len(),
                        groups,
                        elapsed_us = started.elapsed().as_micros() as u64,
                        "log synced"
                    )
                }
                Err(e) => {
                    tracing::error!(error = %e, path = %wal.display(), "syncing the write-ahead log failed; refusing writes");
                    broken = Some(format!("syncing the write-ahead log failed: {e}"));
                }
            }
        }
        // The writer may commit its next group while these acknowledgements go out. Once it
        // stopped, nothing waits for this.
        let _ = synced.send(groups);
        for (reply, outcome) in acks {
            reply(match &broken {
                None => outcome,
                Some(message) => Err(Error::Storage(message.clone())),
            });
        }
    }
}

/// Batches of one group commit at and above which the load counts as heavy, see [`writer_loop`].
const BUSY_GROUP: usize = 8;

/// Under heavy load, the shortest time between two group commits (and so between two syncs).
const BUSY_COMMIT_EVERY: Duration = Duration::from_millis(2);

/// Longest a group waits for the sync thread (counted from when the writer took its first
/// batch): a disk slower than this gets overlapping commits, each sync then covering several.
const GROUP_WAIT_MAX: Duration = Duration::from_millis(20);

/// The writer thread: commits the batches waiting, in groups, and writes index chunks between
/// groups (see [`flush_step`]).
///
/// When to commit a group: a batch is acknowledged only after the sync that follows its
/// commit, so committing again while a sync is under way gains nothing; it only costs a
/// commit (and later a sync) for fewer batches. The writer therefore commits once the sync
/// thread is idle, and under heavy load (the last group had [`BUSY_GROUP`] batches or more) at
/// most every [`BUSY_COMMIT_EVERY`]: each sync costs about 100 µs of CPU on a virtual disk, and
/// a few milliseconds more of latency are nothing to an upload that waits for its
/// acknowledgement off the page's main thread. Under light load a batch commits as soon as the
/// previous sync is done, as before. A full group (counting the batches still queued), or one
/// waiting [`GROUP_WAIT_MAX`], commits regardless. An in-memory database has no sync and
/// commits at once.
fn writer_loop(conn: Arc<Mutex<Db>>, rx: channel::Receiver<PendingBatch>, groups_committed: &AtomicU64, acks: AckPath) {
    let mut unsynced = Unsynced {
        reports: match &acks {
            AckPath::Direct => channel::never(),
            AckPath::AfterSync { synced, .. } => synced.clone(),
        },
        groups: 0,
    };
    let paced = matches!(acks, AckPath::AfterSync { .. });
    let mut flushing = false;
    let mut group = Group::default();
    let mut last_commit = Instant::now();
    let mut last_group = 0;
    let mut disconnected = false;
    loop {
        while !group.is_full()
            && let Ok(p) = rx.try_recv()
        {
            group.push(p);
        }
        unsynced.drain();
        // Batches still queued count too: the group commits full rather than sleep on.
        let full = group.batches.len() + rx.len() >= GROUP_MAX_BATCHES || group.is_full();
        let next_allowed =
            if paced && last_group >= BUSY_GROUP { last_commit + BUSY_COMMIT_EVERY } else { last_commit };
        let now = Instant::now();
        let due = !group.batches.is_empty()
            && (full
                || unsynced.groups == 0 && now >= next_allowed
                || now.duration_since(group.since) >= GROUP_WAIT_MAX);
        if due {
            let Group { batches, bytes, .. } = std::mem::take(&mut group);
            last_group = batches.len();
            last_commit = now;
            let committed = commit_group(&conn, batches, bytes, &acks);
            groups_committed.fetch_add(1, Ordering::Relaxed);
            unsynced.groups += usize::from(committed && paced);
            flushing = flush_step(&conn, false);
            continue;
        }
        if disconnected {
            // The storage is gone: index what is pending (a crash instead would leave it to
            // the next open).
            if let Ok(mut db) = conn.lock()
                && let Err(e) = flush_all(&mut db)
            {
                tracing::error!(error = %e, "writing the index failed; the next open will");
            }
            return;
        }
        if group.batches.is_empty() {
            // While a flush is under way, its next chunk is written as soon as no batch waits.
            let timeout = if flushing { Duration::ZERO } else { FLUSH_AFTER };
            let reports = unsynced.reports.clone();
            channel::select! {
                recv(rx) -> p => match p {
                    Ok(p) => group.push(p),
                    Err(_) => disconnected = true,
                },
                recv(reports) -> n => unsynced.heard(n.ok()),
                default(timeout) => flushing = flush_step(&conn, true),
            }
        } else {
            // A group waits for the sync or for its time: batches arriving meanwhile stay in
            // the channel until then instead of waking this thread one by one.
            let until = if unsynced.groups == 0 { next_allowed } else { group.since + GROUP_WAIT_MAX };
            match unsynced.reports.recv_timeout(until.saturating_duration_since(now)) {
                Ok(n) => unsynced.heard(Some(n)),
                Err(channel::RecvTimeoutError::Timeout) => {}
                Err(channel::RecvTimeoutError::Disconnected) => unsynced.heard(None),
            }
        }
    }
}

/// The batches the writer gathers for its next commit.
struct Group {
    batches: Vec<PendingBatch>,
    bytes: usize,
    /// When the writer took the first of them.
    since: Instant,
}

impl Default for Group {
    fn default() -> Self {
        Group { batches: Vec::new(), bytes: 0, since: Instant::now() }
    }
}

impl Group {
    fn push(&mut self, p: PendingBatch) {
        if self.batches.is_empty() {
            self.since = Instant::now();
        }
        self.bytes += p.body.bytes.len();
        self.batches.push(p);
    }

    fn is_full(&self) -> bool {
        self.batches.len() >= GROUP_MAX_BATCHES || self.bytes >= GROUP_MAX_BYTES
    }
}

/// The groups the writer handed to the sync thread and has not yet heard are durable.
struct Unsynced {
    /// The sync thread's reports: how many groups each sync covered.
    reports: channel::Receiver<usize>,
    groups: usize,
}

impl Unsynced {
    /// Takes a report, or (`None`) the news that the sync thread is gone: it never stops while
    /// the writer lives, short of a panic. Nothing will be synced then, and waiting for it would
    /// spin; each group's acknowledgements now fail to reach it, refusing the batches.
    fn heard(&mut self, report: Option<usize>) {
        match report {
            Some(n) => self.groups = self.groups.saturating_sub(n),
            None => {
                self.reports = channel::never();
                self.groups = 0;
            }
        }
    }

    /// Takes every report already sent.
    fn drain(&mut self) {
        loop {
            match self.reports.try_recv() {
                Ok(n) => self.heard(Some(n)),
                Err(channel::TryRecvError::Empty) => return,
                Err(channel::TryRecvError::Disconnected) => return self.heard(None),
            }
        }
    }
}

/// Commits one group and hands its acknowledgements on; returns whether it went to the sync
/// thread (a failed commit answers its batches at once).
fn commit_group(conn: &Mutex<Db>, mut group: Vec<PendingBatch>, bytes: usize, acks: &AckPath) -> bool {
    let started = Instant::now();
    let result = write_group(conn, &mut group, matches!(acks, AckPath::AfterSync { .. }));
    tracing::debug!(batches = group.len(), bytes, elapsed_us = started.elapsed().as_micros() as u64, "group committed");
    match result {
        Ok(outcomes) => {
            let replies: Acks = group.into_iter().zip(outcomes).map(|(p, outcome)| (p.reply, Ok(outcome))).collect();
            match acks {
                AckPath::Direct => {
                    replies.into_iter().for_each(|(reply, outcome)| reply(outcome));
                    false
                }
                AckPath::AfterSync { to_sync, .. } => match to_sync.send(replies) {
                    Ok(()) => true,
                    Err(mpsc::SendError(replies)) => {
                        for (reply, _) in replies {
                            reply(Err(Error::Storage("the sync thread stopped".into())));
                        }
                        false
                    }
                },
            }
        }
        Err(e) => {
            tracing::error!(error = %e, batches = group.len(), "group commit failed");
            let message = e.to_string();
            for p in group {
                (p.reply)(Err(Error::Storage(message.clone())));
            }
            false
        }
    }
}

/// Writes one chunk of index entries when a flush is under way, or starts one when enough
/// entries wait, when the oldest waited [`FLUSH_AFTER`], or (`idle`) whenever any wait. Returns
/// whether the flush goes on. A failed chunk stays pending and is retried.
fn flush_step(conn: &Mutex<Db>, idle: bool) -> bool {
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
fn flush_all(db: &mut Db) -> Result<(), Error> {
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
fn flush_chunk(db: &mut Db, max: usize) -> Result<(), Error> {
    let result = flush_chunk_unpublished(db, max);
    db.index.publish();
    result
}

fn flush_chunk_unpublished(db: &mut Db, max: usize) -> Result<(), Error> {
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
        index.keys.remove(&BatchKeyRef(e.project, &e.summary.session, &e.summary.page, e.summary.seq));
    }
    if index.len() == 0 && index.pages.len() > PAGES_KNOWN_MAX {
        // Held entries' pages stay: their seqs are in no index a lookup would read.
        let held: hashbrown::HashSet<PageKeyRef<'_>> =
            index.held.iter().map(|e| PageKeyRef(e.project, &e.summary.session, &e.summary.page)).collect();
        index.pages.retain(|(project, session, page), _| held.contains(&PageKeyRef(*project, session, page)));
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
fn write_index_entries(conn: &mut Connection, chunk: &[IndexEntry], through: i64) -> Result<(), Error> {
    let tx = conn.transaction()?;
    apply_index_entries(&tx, chunk)?;
    tx.execute("UPDATE index_state SET indexed_through = MAX(indexed_through, ?1)", [through])?;
    tx.commit()?;
    Ok(())
}

/// Tries `chunk`'s entries one by one in one transaction, each under a savepoint (the
/// watermark is left alone). Returns the entries written and the others, with the last error;
/// when the transaction itself fails, nothing is written and every entry is returned as failed.
fn write_index_entries_one_by_one(
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
fn takes_writes(conn: &mut Connection) -> bool {
    conn.transaction()
        .and_then(|tx| {
            tx.execute("UPDATE index_state SET indexed_through = indexed_through", [])?;
            tx.commit()
        })
        .is_ok()
}

/// The order of a flush's entries: by session, then id, descending (see [`flush_chunk`]).
fn flush_order(a: &IndexEntry, b: &IndexEntry) -> std::cmp::Ordering {
    (b.project, &b.summary.session, b.id).cmp(&(a.project, &a.summary.session, a.id))
}

/// Writes `chunk` (in reverse order: by session, then arrival) to the indexes.
fn apply_index_entries(tx: &Connection, chunk: &[IndexEntry]) -> Result<(), Error> {
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
            if key.execute(params![e.project, s.session, s.page, s.seq, to_i64(s.start_ms), e.id])? == 0 {
                // Already indexed: by a flush that raced this one (a storage dropped while
                // the same database was opened again), or a duplicate row to drop.
                let existing: i64 = indexed_as.query_row(params![e.project, s.session, s.page, s.seq], |r| r.get(0))?;
                if existing != e.id {
                    drop_row.execute([e.id])?;
                }
                continue;
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
fn recover_index(db: &mut Db) -> Result<(), Error> {
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
        let summary = match resummarize(body, encoding == "gzip", &minimal) {
            Ok(s) => s,
            Err(e) => {
                // Indexed with what the row itself says: the batch stays reachable.
                tracing::warn!(id, error = %e, "a logged batch no longer decodes; indexing its key only");
                minimal
            }
        };
        db.index.entries.push(IndexEntry { id, project, bytes, summary });
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
fn resummarize(body: Vec<u8>, gzip: bool, row: &BatchSummary) -> Result<BatchSummary, String> {
    let raw = unpack(body, gzip).map_err(|e| e.to_string())?;
    // Already validated against the configured limits when it was received.
    let limits = replay_protocol::Limits {
        max_bytes: super::MAX_STORED_BATCH,
        max_events: usize::MAX,
        max_nodes: usize::MAX,
        max_string: usize::MAX,
        max_attrs: usize::MAX,
    };
    let batch = replay_protocol::decode_batch_borrowed(&raw, &limits).map_err(|e| e.to_string())?;
    let mut summary = crate::ingest::summarize(&batch);
    if (summary.session.as_str(), summary.page.as_str(), summary.seq) != (&row.session, &row.page, row.seq) {
        return Err("the body's key differs from its row's".into());
    }
    summary.received_ms = row.received_ms;
    Ok(summary)
}

/// Writes one group in one transaction. With `synced_later`, the commit does not sync the log
/// (the sync thread does, before anything is acknowledged); everything else that writes on
/// this connection keeps `synchronous=FULL`.
fn write_group(conn: &Mutex<Db>, group: &mut [PendingBatch], synced_later: bool) -> Result<Vec<Stored>, Error> {
    let mut db = conn.lock().map_err(|_| Error::Poisoned)?;
    if synced_later {
        db.pragma_update(None, "synchronous", "NORMAL")?;
    }
    let outcomes = write_group_tx(&mut db, group);
    if synced_later && let Err(e) = db.pragma_update(None, "synchronous", "FULL") {
        // The group is committed either way: its outcome stands (failing it would make its
        // clients resend stored batches). The next group tries again.
        tracing::warn!(error = %e, "restoring synchronous=FULL failed");
    }
    outcomes
}

/// Appends the group's new batches to `batch_log` and, once that committed, queues their index
/// entries. Duplicates (of a stored, a pending or an earlier batch of the group) are not
/// written.
fn write_group_tx(db: &mut Db, group: &mut [PendingBatch]) -> Result<Vec<Stored>, Error> {
    let Db { conn, index } = db;
    let tx = conn.transaction()?;
    let mut outcomes = Vec::with_capacity(group.len());
    // Indexes into `group` of the batches appended, in id order.
    let mut added: Vec<usize> = Vec::new();
    let mut id = index.next_id;
    let appended = (|| -> Result<(), Error> {
        // Looked up once per group: the cache hashes the whole SQL text on every lookup.
        let mut append = tx.prepare_cached(APPEND_BATCH)?;
        let mut indexed = tx.prepare_cached(
            "SELECT 1 FROM batch_keys WHERE project_id = ?1 AND session_id = ?2 AND page_id = ?3 AND seq = ?4",
        )?;
        let mut highest_indexed = tx.prepare_cached(HIGHEST_INDEXED_SEQ)?;
        for (i, p) in group.iter().enumerate() {
            let s = &p.summary;
            let page = PageKeyRef(p.project, &s.session, &s.page);
            let known = index.pages.get(&page).copied();
            let highest = match known {
                Some(h) => h,
                None => highest_indexed.query_row(params![p.project, s.session, s.page], |r| r.get::<_, i64>(0))?,
            };
            // Past the highest stored: new (the usual case), without looking anything up.
            let fresh = i64::from(s.seq) > highest;
            if !fresh
                && (index.keys.contains(&BatchKeyRef(p.project, &s.session, &s.page, s.seq))
                    || indexed.exists(params![p.project, s.session, s.page, s.seq])?)
            {
                outcomes.push(Stored::Duplicate);
                continue;
            }
            append.execute(params![
                id,
                p.project,
                s.session,
                s.page,
                s.seq,
                to_i64(s.start_ms),
                to_i64(s.end_ms),
                to_i64(s.received_ms),
                &p.body.bytes[..],
                if p.body.gzip { "gzip" } else { "" }
            ])?;
            index.remember(p.project, s, highest);
            id += 1;
            added.push(i);
            outcomes.push(Stored::New);
        }
        Ok(())
    })();
    let committed = appended.and_then(|()| Ok(tx.commit()?));
    if let Err(e) = committed {
        // Rolled back: none of these keys is stored after all.
        for &i in &added {
            let p = &group[i];
            index.keys.remove(&BatchKeyRef(p.project, &p.summary.session, &p.summary.page, p.summary.seq));
        }
        return Err(e);
    }
    if !added.is_empty() && index.oldest.is_none() {
        index.oldest = Some(Instant::now());
    }
    for (i, id) in added.into_iter().zip(index.next_id..) {
        let p = &mut group[i];
        index.entries.push(IndexEntry {
            id,
            project: p.project,
            bytes: p.body.bytes.len(),
            summary: std::mem::take(&mut p.summary),
        });
    }
    index.next_id = id;
    index.publish();
    Ok(outcomes)
}

const MIGRATIONS: &[&str] = &[
    // 1: projects, session index, batches.
    "CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        ingest_key TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        id TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        url TEXT NOT NULL DEFAULT '',
        user_agent TEXT NOT NULL DEFAULT '',
        pages INTEGER NOT NULL DEFAULT 0,
        batches INTEGER NOT NULL DEFAULT 0,
        events INTEGER NOT NULL DEFAULT 0,
        clicks INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        dropped INTEGER NOT NULL DEFAULT 0,
        recorder_errors INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (project_id, id)
    );
    CREATE INDEX sessions_by_start ON sessions(project_id, start_ms DESC);
    CREATE TABLE batches (
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        page_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (project_id, session_id, page_id, seq)
    );",
    // 2: richer session index, allowed origins, settings, viewer accounts and logins.
    "ALTER TABLE projects ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN release TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN environment TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN browser TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN errors INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN freezes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN received_ms INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX sessions_by_received ON sessions(received_ms);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_ms INTEGER NOT NULL);
    CREATE TABLE logins (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        expires_ms INTEGER NOT NULL
    );",
    // 3: bodies stored as sent (gzip stays gzip).
    "ALTER TABLE batches ADD COLUMN encoding TEXT NOT NULL DEFAULT '';",
    // 4: freeze forensics in the session index, error groups.
    "ALTER TABLE sessions ADD COLUMN longest_freeze_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN freeze_culprit TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN freeze_started_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN freeze_ended_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN never_recovered INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX sessions_open_freezes ON sessions(received_ms)
        WHERE never_recovered = 0 AND freeze_started_ms > freeze_ended_ms;
    CREATE TABLE error_groups (
        project_id INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        message TEXT NOT NULL,
        frame TEXT NOT NULL,
        count INTEGER NOT NULL,
        first_ms INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, fingerprint)
    );
    CREATE INDEX error_groups_by_last ON error_groups(project_id, last_ms DESC);
    CREATE TABLE error_sessions (
        project_id INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        session_id TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, fingerprint, session_id)
    );
    CREATE INDEX error_sessions_by_session ON error_sessions(project_id, session_id);",
    // 5: rage clicks in the session index.
    "ALTER TABLE sessions ADD COLUMN rage_clicks INTEGER NOT NULL DEFAULT 0;",
    // 6: environment facts, to compare a session with the others.
    "CREATE TABLE session_facts (
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (project_id, session_id, name)
    );
    CREATE INDEX session_facts_by_value ON session_facts(project_id, name, value);",
    // 7: batches appended to a log in arrival order, their keys indexed in bulk (see
    // `PendingIndex`).
    "CREATE TABLE batch_log (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        page_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        body BLOB NOT NULL,
        encoding TEXT NOT NULL DEFAULT ''
    );
    INSERT INTO batch_log (project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body, encoding)
        SELECT project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body, encoding
        FROM batches ORDER BY rowid;
    CREATE TABLE batch_keys (
        project_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        page_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        batch INTEGER NOT NULL,
        PRIMARY KEY (project_id, session_id, page_id, seq)
    ) WITHOUT ROWID;
    INSERT INTO batch_keys (project_id, session_id, page_id, seq, start_ms, batch)
        SELECT project_id, session_id, page_id, seq, start_ms, id FROM batch_log;
    DROP TABLE batches;
    CREATE TABLE index_state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_through INTEGER NOT NULL);
    INSERT INTO index_state (id, indexed_through) VALUES (1, (SELECT COALESCE(MAX(id), 0) FROM batch_log));",
];

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqliteStorage {
    /// Opens (creating when needed) the database `replay.sqlite3` in `dir` and migrates it.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?;
        let path = dir.join("replay.sqlite3");
        let storage = Self::init(Connection::open(&path)?, Some(dir.join("replay.sqlite3-wal")))?;
        // Checkpoints move on to a connection of their own (see `checkpoint_loop`); the writer
        // only checkpoints itself when the log grows past `WAL_CHECKPOINT_PAGES`.
        storage.lock()?.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        let checkpointer = Connection::open(&path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        let writes = Arc::clone(&storage.groups_committed);
        std::thread::Builder::new()
            .name("replay-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &writes))
            .map_err(|e| Error::Io { path: "checkpoint thread".into(), source: e })?;
        Ok(storage)
    }

    /// A throwaway in-memory database, for tests.
    pub fn in_memory() -> Result<Self, Error> {
        Self::init(Connection::open_in_memory()?, None)
    }

    /// `wal`: the write-ahead log of a file database, synced by the sync thread.
    fn init(conn: Connection, wal: Option<PathBuf>) -> Result<Self, Error> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // The session index and the batches' key index are hit at random places (one per live
        // session): the default 2 MB cache made the writer read pages back at a few thousand
        // sessions. Negative: KiB.
        conn.pragma_update(None, "cache_size", -32 * 1024)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", i64::try_from(i + 1).unwrap_or(i64::MAX))?;
            tx.commit()?;
        }
        let mut db = Db { conn, index: PendingIndex::default() };
        recover_index(&mut db)?;
        let backlog = Arc::clone(&db.index.published);
        let conn = Arc::new(Mutex::new(db));
        let (writer, rx) = channel::unbounded();
        let writer_conn = Arc::clone(&conn);
        let groups_committed = Arc::new(AtomicU64::new(0));
        let committed = Arc::clone(&groups_committed);
        let acks = match wal {
            None => AckPath::Direct,
            Some(wal) => {
                let (to_sync, unsynced) = mpsc::channel();
                let (tell_writer, synced) = channel::unbounded();
                std::thread::Builder::new()
                    .name("replay-sqlite-sync".into())
                    .spawn(move || sync_loop(&wal, &unsynced, &tell_writer))
                    .map_err(|e| Error::Io { path: "sync thread".into(), source: e })?;
                AckPath::AfterSync { to_sync, synced }
            }
        };
        std::thread::Builder::new()
            .name("replay-sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx, &committed, acks))
            .map_err(|e| Error::Io { path: "writer thread".into(), source: e })?;
        Ok(SqliteStorage { conn, writer, keys: Arc::new(Mutex::new(HashMap::new())), groups_committed, backlog })
    }

    fn forget_keys(&self) {
        if let Ok(mut k) = self.keys.lock() {
            k.clear();
        }
    }

    /// The database, with every acknowledged batch in its indexes (pending entries are flushed
    /// first; a failed flush is logged and leaves them for the writer to retry).
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Db>, Error> {
        let mut db = self.conn.lock().map_err(|_| Error::Poisoned)?;
        if db.index.len() > 0
            && let Err(e) = flush_all(&mut db)
        {
            tracing::error!(error = %e, pending = db.index.len(), "writing the index failed; reading without it");
        }
        Ok(db)
    }
}

fn project_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
    let origins: String = r.get(3)?;
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        ingest_key: r.get(2)?,
        allowed_origins: origins.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
    })
}

/// `FROM ... ORDER BY` of one session's batches (`?1` project, `?2` session) in replay order:
/// page views by their first batch's start, then sequence numbers; `$join` adds joins (the
/// log's bodies as `b`).
macro_rules! session_batches_in_replay_order {
    ($join:literal) => {
        concat!(
            "FROM batch_keys k
             JOIN (SELECT page_id, MIN(start_ms) AS page_start FROM batch_keys
                   WHERE project_id = ?1 AND session_id = ?2 GROUP BY page_id) p ON p.page_id = k.page_id ",
            $join,
            " WHERE k.project_id = ?1 AND k.session_id = ?2
             ORDER BY p.page_start, k.page_id, k.seq"
        )
    };
}

const PROJECT_COLUMNS: &str = "id, name, ingest_key, allowed_origins";

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    let n = |i| r.get::<_, i64>(i).map(to_u64);
    let (start_ms, end_ms) = (n(1)?, n(2)?);
    Ok(SessionRow {
        id: r.get(0)?,
        start_ms,
        end_ms,
        duration_ms: end_ms.saturating_sub(start_ms),
        url: r.get(3)?,
        user_agent: r.get(4)?,
        pages: n(5)?,
        batches: n(6)?,
        events: n(7)?,
        clicks: n(8)?,
        bytes: n(9)?,
        dropped: n(10)?,
        recorder_errors: n(11)?,
        user: r.get(12)?,
        release: r.get(13)?,
        environment: r.get(14)?,
        browser: r.get(15)?,
        errors: n(16)?,
        freezes: n(17)?,
        longest_freeze_ms: n(18)?,
        freeze_culprit: r.get(19)?,
        never_recovered: r.get::<_, i64>(20)? != 0,
        rage_clicks: n(21)?,
    })
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like_contains(s: &str) -> String {
    let mut out = String::from("%");
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Appends one batch to the log.
const APPEND_BATCH: &str =
    "INSERT INTO batch_log (id, project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body, encoding)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// The highest indexed seq of one page (`?1` project, `?2` session, `?3` page), -1 for none.
const HIGHEST_INDEXED_SEQ: &str =
    "SELECT COALESCE(MAX(seq), -1) FROM batch_keys WHERE project_id = ?1 AND session_id = ?2 AND page_id = ?3";

/// Indexes one logged batch's key; ignored (0 rows) when the key is indexed already.
const INSERT_KEY: &str = "INSERT OR IGNORE INTO batch_keys (project_id, session_id, page_id, seq, start_ms, batch)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Adds one batch's summary to its session's row of the index.
const UPSERT_SESSION: &str =
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
struct IndexRun {
    project: i64,
    summary: BatchSummary,
    /// Bytes of the batches as stored.
    bytes: usize,
    batches: u64,
    /// Batches that start a page view (`seq` 0).
    pages: u64,
}

impl IndexRun {
    fn new(e: &IndexEntry) -> Self {
        IndexRun {
            project: e.project,
            summary: e.summary.clone(),
            bytes: e.bytes,
            batches: 1,
            pages: u64::from(e.summary.seq == 0),
        }
    }

    /// Adds `e`, the next batch of the same session in arrival order, when applying the two as
    /// one gives the session row exactly what applying them one after the other gives: `e`
    /// sets none of the fields the upsert takes from one batch (URL, user agent, user,
    /// release, environment, browser, freeze details, facts, errors) and starts no earlier,
    /// so it only adds to counters and moves the end and receipt times.
    fn absorb(&mut self, e: &IndexEntry) -> bool {
        let (a, b) = (&mut self.summary, &e.summary);
        let neutral = b.url.is_none()
            && b.user_agent.is_none()
            && b.user.is_none()
            && b.release.is_none()
            && b.environment.is_none()
            && b.browser.is_none()
            && b.freeze_culprit.is_none()
            && b.longest_freeze_ms == 0
            && b.freeze_started_ms == 0
            && b.freeze_ended_ms == 0
            && b.facts.is_empty()
            && b.error_sightings.is_empty();
        if e.project != self.project || b.session != a.session || !neutral || b.start_ms < a.start_ms {
            return false;
        }
        a.end_ms = a.end_ms.max(b.end_ms);
        a.received_ms = a.received_ms.max(b.received_ms);
        a.events += b.events;
        a.clicks += b.clicks;
        a.rage_clicks += b.rage_clicks;
        a.errors += b.errors;
        a.freezes += b.freezes;
        a.dropped += b.dropped;
        a.recorder_errors += b.recorder_errors;
        self.bytes += e.bytes;
        self.batches += 1;
        self.pages += u64::from(b.seq == 0);
        true
    }
}

/// Adds a run of logged batches of one session to the session index, error groups and
/// environment facts, inside the caller's transaction.
fn index_batch(tx: &Connection, upsert: &mut rusqlite::CachedStatement<'_>, run: &IndexRun) -> Result<(), Error> {
    let (project, s, bytes) = (run.project, &run.summary, run.bytes);
    upsert.execute(params![
        project,
        s.session,
        to_i64(s.start_ms),
        to_i64(s.end_ms),
        s.url,
        s.user_agent,
        to_i64(run.pages),
        to_i64(s.events),
        to_i64(s.clicks),
        i64::try_from(bytes).unwrap_or(i64::MAX),
        to_i64(s.dropped),
        to_i64(s.recorder_errors),
        s.user,
        s.release,
        s.environment,
        s.browser,
        to_i64(s.errors),
        to_i64(s.freezes),
        to_i64(s.received_ms),
        to_i64(s.longest_freeze_ms),
        s.freeze_culprit,
        to_i64(s.freeze_started_ms),
        to_i64(s.freeze_ended_ms),
        to_i64(s.rage_clicks),
        to_i64(run.batches),
    ])?;
    for (name, value) in &s.facts {
        tx.prepare_cached(
            "INSERT INTO session_facts (project_id, session_id, name, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (project_id, session_id, name) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![project, s.session, name, value])?;
    }
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

impl Storage for SqliteStorage {
    fn create_project(&self, name: &str) -> Result<Project, Error> {
        let key = new_key()?;
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO projects (name, ingest_key, created_ms) VALUES (?1, ?2, ?3)",
            params![name, key, to_i64(now_ms())],
        )?;
        Ok(Project { id: conn.last_insert_rowid(), name: name.to_owned(), ingest_key: key, allowed_origins: vec![] })
    }

    fn set_allowed_origins(&self, project: i64, origins: &[String]) -> Result<(), Error> {
        let conn = self.lock()?;
        conn.execute("UPDATE projects SET allowed_origins = ?2 WHERE id = ?1", params![project, origins.join(",")])?;
        drop(conn);
        self.forget_keys();
        Ok(())
    }

    fn projects(&self) -> Result<Vec<Project>, Error> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(&format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY id"))?;
        let rows = stmt.query_map([], project_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn project_by_key(&self, key: &str) -> Result<Option<Project>, Error> {
        if let Some(p) = self.cached_project(key) {
            return Ok(Some(Project::clone(&p)));
        }
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(&format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE ingest_key = ?1"))?;
        let project = stmt.query_row([key], project_row).optional()?;
        if let (Some(p), Ok(mut cache)) = (&project, self.keys.lock()) {
            cache.insert(key.to_owned(), Arc::new(p.clone()));
        }
        Ok(project)
    }

    fn put_batch_body(&self, project: i64, s: &BatchSummary, body: &BatchBody) -> Result<Stored, Error> {
        let (reply, outcome) = mpsc::sync_channel(1);
        self.put_batch_then(
            project,
            s.clone(),
            body.clone(),
            Box::new(move |r| {
                let _ = reply.send(r);
            }),
        );
        outcome.recv().map_err(|_| Error::Storage("the writer thread stopped".into()))?
    }

    fn put_batch_then(&self, project: i64, summary: BatchSummary, body: BatchBody, done: BatchDone) {
        let pending = PendingBatch { project, summary, body, reply: done };
        if let Err(channel::SendError(p)) = self.writer.send(pending) {
            (p.reply)(Err(Error::Storage("the writer thread stopped".into())));
        }
    }

    fn cached_project(&self, key: &str) -> Option<Arc<Project>> {
        self.keys.lock().ok().and_then(|k| k.get(key).cloned())
    }

    fn find_sessions(
        &self,
        project: i64,
        f: &SessionFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<SessionRow>, Error> {
        let mut sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE project_id = ?");
        let mut args: Vec<rusqlite::types::Value> = vec![project.into()];
        let mut add = |clause: &str, v: rusqlite::types::Value| {
            sql.push_str(" AND ");
            sql.push_str(clause);
            args.push(v);
        };
        if let Some(v) = f.since_ms {
            add("start_ms >= ?", to_i64(v).into());
        }
        if let Some(v) = f.until_ms {
            add("start_ms < ?", to_i64(v).into());
        }
        if let Some(v) = &f.url_contains {
            add("url LIKE ? ESCAPE '\\'", like_contains(v).into());
        }
        for (column, value) in
            [("user_id", &f.user), ("release", &f.release), ("environment", &f.environment), ("browser", &f.browser)]
        {
            if let Some(v) = value {
                add(&format!("{column} = ?"), v.clone().into());
            }
        }
        if let Some(v) = f.min_duration_ms {
            add("end_ms - start_ms >= ?", to_i64(v).into());
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
            sql.push_str(" AND never_recovered = 1");
        }
        sql.push_str(" ORDER BY start_ms DESC, id LIMIT ? OFFSET ?");
        args.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        args.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), session_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn session(&self, project: i64, id: &str) -> Result<Option<SessionRow>, Error> {
        let conn = self.lock()?;
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE project_id = ?1 AND id = ?2"))?;
        Ok(stmt.query_row(params![project, id], session_row).optional()?)
    }

    fn batches(&self, project: i64, session: &str) -> Result<Vec<Vec<u8>>, Error> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT b.body, b.encoding ",
            session_batches_in_replay_order!("JOIN batch_log b ON b.id = k.batch")
        ))?;
        let rows = stmt
            .query_map(params![project, session], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        drop(stmt);
        drop(conn);
        rows.into_iter().map(|(body, encoding)| unpack(body, encoding == "gzip")).collect()
    }

    fn batch_keys(&self, project: i64, session: &str) -> Result<Vec<(String, u32)>, Error> {
        let conn = self.lock()?;
        let mut stmt =
            conn.prepare_cached(concat!("SELECT k.page_id, k.seq ", session_batches_in_replay_order!("")))?;
        let rows = stmt
            .query_map(params![project, session], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn index_backlog(&self) -> IndexBacklog {
        // Not through the lock: a scrape never waits behind a commit or a flush.
        IndexBacklog {
            pending: self.backlog.pending.load(Ordering::Relaxed),
            held: self.backlog.held.load(Ordering::Relaxed),
        }
    }

    fn batch_count(&self) -> Result<u64, Error> {
        let conn = self.lock()?;
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM batch_keys", [], |r| r.get(0))?;
        Ok(to_u64(n))
    }

    fn delete_sessions_before(&self, cutoff_ms: u64) -> Result<u64, Error> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let cutoff = to_i64(cutoff_ms);
        tx.execute(
            "DELETE FROM batch_log WHERE id IN (SELECT k.batch FROM batch_keys k JOIN sessions s
                ON s.project_id = k.project_id AND s.id = k.session_id WHERE s.received_ms < ?1)",
            [cutoff],
        )?;
        tx.execute(
            "DELETE FROM batch_keys WHERE (project_id, session_id) IN
                (SELECT project_id, id FROM sessions WHERE received_ms < ?1)",
            [cutoff],
        )?;
        tx.execute(
            "DELETE FROM error_sessions WHERE (project_id, session_id) IN
                (SELECT project_id, id FROM sessions WHERE received_ms < ?1)",
            [cutoff],
        )?;
        tx.execute(
            "DELETE FROM session_facts WHERE (project_id, session_id) IN
                (SELECT project_id, id FROM sessions WHERE received_ms < ?1)",
            [cutoff],
        )?;
        let n = tx.execute("DELETE FROM sessions WHERE received_ms < ?1", [cutoff])?;
        tx.execute(
            "DELETE FROM error_groups WHERE NOT EXISTS (SELECT 1 FROM error_sessions s
                WHERE s.project_id = error_groups.project_id AND s.fingerprint = error_groups.fingerprint)",
            [],
        )?;
        tx.commit()?;
        Ok(n as u64)
    }

    fn mark_unrecovered_freezes(&self, cutoff_ms: u64) -> Result<u64, Error> {
        let conn = self.lock()?;
        let n = conn.execute(
            "UPDATE sessions SET never_recovered = 1
             WHERE never_recovered = 0 AND freeze_started_ms > freeze_ended_ms AND received_ms < ?1",
            [to_i64(cutoff_ms)],
        )?;
        Ok(n as u64)
    }

    fn error_groups(&self, project: i64, limit: usize) -> Result<Vec<ErrorGroup>, Error> {
        let conn = self.lock()?;
        let mut groups = conn
            .prepare_cached(
                "SELECT g.fingerprint, g.message, g.frame, g.count, g.first_ms, g.last_ms,
                        (SELECT COUNT(*) FROM error_sessions s
                         WHERE s.project_id = g.project_id AND s.fingerprint = g.fingerprint)
                 FROM error_groups g WHERE g.project_id = ?1
                 ORDER BY g.last_ms DESC, g.fingerprint LIMIT ?2",
            )?
            .query_map(params![project, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(ErrorGroup {
                    fingerprint: r.get(0)?,
                    message: r.get(1)?,
                    frame: r.get(2)?,
                    count: to_u64(r.get(3)?),
                    first_ms: to_u64(r.get(4)?),
                    last_ms: to_u64(r.get(5)?),
                    sessions: to_u64(r.get(6)?),
                    recent_sessions: Vec::new(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut recent = conn.prepare_cached(
            "SELECT session_id FROM error_sessions WHERE project_id = ?1 AND fingerprint = ?2
             ORDER BY last_ms DESC, session_id LIMIT ?3",
        )?;
        for g in &mut groups {
            g.recent_sessions = recent
                .query_map(params![project, g.fingerprint, RECENT_ERROR_SESSIONS as i64], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
        }
        Ok(groups)
    }

    fn compare_environment(&self, project: i64, session: &str, sample: usize) -> Result<Vec<FactComparison>, Error> {
        let conn = self.lock()?;
        let sample = i64::try_from(sample).unwrap_or(i64::MAX);
        let rows = conn
            .prepare_cached(COMPARE_ENVIRONMENT_SQL)?
            .query_map(params![project, session, sample], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, to_u64(r.get(3)?))))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(comparisons(rows))
    }

    fn setting(&self, key: &str) -> Result<Option<String>, Error> {
        let conn = self.lock()?;
        Ok(conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), Error> {
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn put_user(&self, name: &str, password_hash: &str) -> Result<(), Error> {
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO users (name, password_hash, created_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash",
            params![name, password_hash, to_i64(now_ms())],
        )?;
        Ok(())
    }

    fn user_password_hash(&self, name: &str) -> Result<Option<String>, Error> {
        let conn = self.lock()?;
        Ok(conn.query_row("SELECT password_hash FROM users WHERE name = ?1", [name], |r| r.get(0)).optional()?)
    }

    fn user_count(&self) -> Result<u64, Error> {
        let conn = self.lock()?;
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
        Ok(to_u64(n))
    }

    fn create_login(&self, token_hash: &str, user: &str, expires_ms: u64) -> Result<(), Error> {
        let conn = self.lock()?;
        conn.execute("DELETE FROM logins WHERE expires_ms < ?1", [to_i64(now_ms())])?;
        conn.execute(
            "INSERT INTO logins (token_hash, user_name, expires_ms) VALUES (?1, ?2, ?3)",
            params![token_hash, user, to_i64(expires_ms)],
        )?;
        Ok(())
    }

    fn login_user(&self, token_hash: &str, now: u64) -> Result<Option<String>, Error> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached("SELECT user_name FROM logins WHERE token_hash = ?1 AND expires_ms > ?2")?;
        Ok(stmt.query_row(params![token_hash, to_i64(now)], |r| r.get(0)).optional()?)
    }

    fn delete_login(&self, token_hash: &str) -> Result<(), Error> {
        let conn = self.lock()?;
        conn.execute("DELETE FROM logins WHERE token_hash = ?1", [token_hash])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_passes_the_conformance_suite() {
        crate::storage::conformance::run(|| SqliteStorage::in_memory().expect("in-memory database"));
    }

    #[test]
    fn data_survives_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = SqliteStorage::open(dir.path()).expect("db");
            let p = db.create_project("p").expect("project");
            let s = BatchSummary { session: "s".into(), page: "p".into(), ..BatchSummary::default() };
            db.put_batch(p.id, &s, b"a").expect("put");
        }
        let db = SqliteStorage::open(dir.path()).expect("db");
        assert_eq!(db.projects().expect("projects").len(), 1);
        assert_eq!(db.batch_count().expect("count"), 1);
    }

    #[test]
    fn nothing_is_acknowledged_when_the_log_cannot_be_synced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (to_sync, unsynced) = mpsc::channel::<Acks>();
        let (tell_writer, synced) = channel::unbounded();
        let (reply, outcomes) = mpsc::channel();
        for _ in 0..2 {
            let reply = reply.clone();
            let done: BatchDone = Box::new(move |r| {
                let _ = reply.send(r);
            });
            to_sync.send(vec![(done, Ok(Stored::New))]).expect("send");
        }
        drop(to_sync);
        // No log file there: the first sync fails, and every later group is refused too.
        sync_loop(&dir.path().join("missing-wal"), &unsynced, &tell_writer);
        let outcomes: Vec<_> = outcomes.try_iter().collect();
        assert_eq!(outcomes.len(), 2);
        // The writer hears of both groups, synced or not, so it never waits for them.
        assert_eq!(synced.try_iter().sum::<usize>(), 2);
        assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
    }

    /// A writer thread on a fresh in-memory database whose sync side the test plays: returns
    /// the writer's queue, the groups it hands over for syncing and where to say they synced.
    fn writer_with_test_sync() -> (channel::Sender<PendingBatch>, mpsc::Receiver<Acks>, channel::Sender<usize>) {
        let conn = Connection::open_in_memory().expect("db");
        for m in MIGRATIONS {
            conn.execute_batch(m).expect("migrate");
        }
        let db = Arc::new(Mutex::new(Db { conn, index: PendingIndex::default() }));
        let (writer, rx) = channel::unbounded();
        let (to_sync, unsynced) = mpsc::channel();
        let (tell_writer, synced) = channel::unbounded();
        std::thread::spawn(move || {
            writer_loop(db, rx, &AtomicU64::new(0), AckPath::AfterSync { to_sync, synced });
        });
        (writer, unsynced, tell_writer)
    }

    fn pending(seq: u32, outcomes: &mpsc::Sender<Result<Stored, Error>>) -> PendingBatch {
        let outcomes = outcomes.clone();
        PendingBatch {
            project: 1,
            summary: BatchSummary { session: "s".into(), page: "p".into(), seq, ..BatchSummary::default() },
            body: BatchBody { bytes: vec![seq as u8], gzip: false },
            reply: Box::new(move |r| {
                let _ = outcomes.send(r);
            }),
        }
    }

    #[test]
    fn a_group_commits_even_when_the_sync_never_answers() {
        let (writer, unsynced, _tell_writer) = writer_with_test_sync();
        let (outcomes, results) = mpsc::channel();
        let wait = Duration::from_secs(10);
        writer.send(pending(0, &outcomes)).expect("send");
        let first = unsynced.recv_timeout(wait).expect("first group");
        assert_eq!(first.len(), 1);
        // The first group is never reported synced: the next one still commits, after at
        // most GROUP_WAIT_MAX, and goes to the sync thread too.
        writer.send(pending(1, &outcomes)).expect("send");
        writer.send(pending(2, &outcomes)).expect("send");
        let mut later = 0;
        while later < 2 {
            later += unsynced.recv_timeout(wait).expect("later group").len();
        }
        // Nothing was acknowledged: that is the sync thread's job once the log is durable.
        assert!(results.try_recv().is_err());
    }

    #[test]
    fn batches_are_refused_once_the_sync_thread_is_gone() {
        let (writer, unsynced, tell_writer) = writer_with_test_sync();
        drop(unsynced);
        drop(tell_writer);
        let (outcomes, results) = mpsc::channel();
        let wait = Duration::from_secs(10);
        for seq in 0..3 {
            writer.send(pending(seq, &outcomes)).expect("send");
            let outcome = results.recv_timeout(wait).expect("an answer");
            assert!(matches!(outcome, Err(Error::Storage(ref m)) if m.contains("sync thread")), "{outcome:?}");
        }
    }

    #[test]
    fn acknowledged_batches_of_a_file_database_are_in_it_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteStorage::open(dir.path()).expect("db");
        let p = db.create_project("p").expect("project");
        let (reply, outcomes) = mpsc::channel();
        for seq in 0..300 {
            let s = BatchSummary { session: format!("s{}", seq % 7), page: "p".into(), seq, ..BatchSummary::default() };
            let reply = reply.clone();
            db.put_batch_then(
                p.id,
                s,
                BatchBody { bytes: vec![1, 2, 3], gzip: false },
                Box::new(move |r| {
                    let _ = reply.send(r);
                }),
            );
        }
        drop(reply);
        let outcomes: Vec<_> = outcomes.iter().collect();
        assert_eq!(outcomes.len(), 300);
        assert!(outcomes.iter().all(|o| matches!(o, Ok(Stored::New))));
        drop(db);
        let db = SqliteStorage::open(dir.path()).expect("db");
        assert_eq!(db.batch_count().expect("count"), 300);
        assert_eq!(db.session(p.id, "s3").expect("session").map(|s| s.batches), Some(43));
    }

    /// An encoded batch with `clicks` clicks, and its summary as ingest makes it.
    fn batch(session: &str, seq: u32, clicks: u32) -> (BatchSummary, Vec<u8>) {
        use replay_protocol::{Batch, Click, Event, EventData};
        let mut b = Batch::new(session, "page", seq, 1_800_000_000_000 + u64::from(seq) * 5_000);
        for i in 0..clicks {
            b.events.push(Event { t: i * 10, data: EventData::Click(Click { id: 1, x: 0, y: 0, button: 0 }) });
        }
        let bytes = replay_protocol::encode_batch(&b).expect("encode");
        let summary = crate::ingest::summarize(
            &replay_protocol::decode_batch_borrowed(&bytes, &Default::default()).expect("decode"),
        );
        (summary, bytes)
    }

    #[test]
    fn batches_logged_but_not_indexed_are_indexed_when_the_database_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let project = {
            let db = SqliteStorage::open(dir.path()).expect("db");
            let p = db.create_project("p").expect("project");
            let (s, body) = batch("kept", 0, 1);
            db.put_batch(p.id, &s, &body).expect("put");
            assert_eq!(db.batch_count().expect("count"), 1);
            p.id
        };
        // What a crash between a group commit and the next index flush leaves: rows past
        // `indexed_through`, one of them a second copy of an indexed key.
        {
            let conn = Connection::open(dir.path().join("replay.sqlite3")).expect("raw");
            let (_, unindexed) = batch("lost", 0, 3);
            let (_, copy) = batch("kept", 0, 1);
            for (id, session, body) in [(10, "lost", unindexed), (11, "kept", copy)] {
                conn.execute(
                    "INSERT INTO batch_log (id, project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body)
                     VALUES (?1, ?2, ?3, 'page', 0, 1800000000000, 1800000000000, 7, ?4)",
                    params![id, project, session, body],
                )
                .expect("insert");
            }
        }
        let db = SqliteStorage::open(dir.path()).expect("db");
        let lost = db.session(project, "lost").expect("session").expect("indexed on open");
        assert_eq!((lost.batches, lost.clicks), (1, 3), "summarised again from its body");
        assert_eq!(db.session(project, "kept").expect("session").map(|s| s.batches), Some(1));
        assert_eq!(db.batch_count().expect("count"), 2);
        let rows: i64 =
            db.lock().expect("lock").query_row("SELECT COUNT(*) FROM batch_log", [], |r| r.get(0)).expect("rows");
        assert_eq!(rows, 2, "the second copy of an indexed key is dropped");
        // New rows continue after the recovered ones.
        let (s, body) = batch("next", 0, 0);
        db.put_batch(project, &s, &body).expect("put");
        let id: i64 = db
            .lock()
            .expect("lock")
            .query_row("SELECT batch FROM batch_keys WHERE session_id = 'next'", [], |r| r.get(0))
            .expect("id");
        assert_eq!(id, 12);
    }

    #[test]
    fn resent_batches_are_duplicates_whether_pending_indexed_or_from_before_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let put = |db: &SqliteStorage, seq: u32| {
            let s = BatchSummary { session: "s".into(), page: "p".into(), seq, ..BatchSummary::default() };
            db.put_batch(1, &s, b"x").expect("put")
        };
        {
            let db = SqliteStorage::open(dir.path()).expect("db");
            db.create_project("p").expect("project");
            for seq in 0..6 {
                assert_eq!(put(&db, seq), Stored::New);
            }
            assert_eq!(put(&db, 3), Stored::Duplicate, "still pending");
            assert_eq!(db.batch_count().expect("count"), 6);
            assert_eq!(put(&db, 4), Stored::Duplicate, "indexed");
            assert_eq!(put(&db, 9), Stored::New);
        }
        let db = SqliteStorage::open(dir.path()).expect("db");
        assert_eq!(put(&db, 5), Stored::Duplicate, "stored before the restart");
        assert_eq!(put(&db, 7), Stored::New, "below the highest seq, never sent");
        assert_eq!(put(&db, 7), Stored::Duplicate);
        assert_eq!(put(&db, 10), Stored::New);
        assert_eq!(db.session(1, "s").expect("session").map(|s| s.batches), Some(9));
    }

    /// Stores batch `seq` of `session` (page `p`, project 1).
    fn put_in(db: &SqliteStorage, session: &str, seq: u32) -> Stored {
        let s = BatchSummary { session: session.into(), page: "p".into(), seq, ..BatchSummary::default() };
        db.put_batch(1, &s, b"x").expect("put")
    }

    fn batches_of(db: &SqliteStorage, session: &str) -> Option<u64> {
        db.session(1, session).expect("session").map(|s| s.batches)
    }

    /// Makes the index refuse `session`'s row (a connection's own trigger, gone on reopening).
    fn poison_session(db: &SqliteStorage, session: &str) {
        db.conn
            .lock()
            .expect("lock")
            .execute_batch(&format!(
                "CREATE TEMP TRIGGER poison BEFORE INSERT ON sessions WHEN NEW.id = '{session}'
                 BEGIN SELECT RAISE(ABORT, 'poisoned'); END;"
            ))
            .expect("trigger");
    }

    #[test]
    fn a_lone_batch_that_cannot_be_indexed_is_held_and_tried_again() {
        let db = SqliteStorage::in_memory().expect("db");
        db.create_project("p").expect("project");
        poison_session(&db, "bad");
        assert_eq!(put_in(&db, "bad", 0), Stored::New);
        // A flush of that one entry fails while the database takes other writes: held.
        assert_eq!(batches_of(&db, "bad"), None);
        assert_eq!(db.index_backlog(), IndexBacklog { pending: 0, held: 1 });
        assert_eq!(put_in(&db, "a", 0), Stored::New);
        assert_eq!(batches_of(&db, "a"), Some(1), "later batches are indexed");
        // Once the cause is gone, the next retry (due after a minute) indexes it.
        {
            let mut conn = db.conn.lock().expect("lock");
            conn.execute_batch("DROP TRIGGER temp.poison").expect("drop trigger");
            conn.index.held_since = Instant::now().checked_sub(HELD_RETRY_AFTER);
        }
        assert_eq!(put_in(&db, "a", 1), Stored::New, "a commit, then a flush step");
        let deadline = Instant::now() + Duration::from_secs(10);
        while db.index_backlog().held > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(batches_of(&db, "bad"), Some(1));
        assert_eq!(db.index_backlog(), IndexBacklog::default());
    }

    #[test]
    fn a_batch_that_cannot_be_indexed_does_not_hold_up_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = SqliteStorage::open(dir.path()).expect("db");
            db.create_project("p").expect("project");
            // Stands in for entries that fail for good: one session's row is refused (after its
            // keys went in, which must be rolled back with it).
            poison_session(&db, "bad");
            for seq in 0..3 {
                for session in ["a", "bad", "b"] {
                    assert_eq!(put_in(&db, session, seq), Stored::New);
                }
            }
            // Reads flush first: the other sessions are indexed, the bad one is held.
            assert_eq!(batches_of(&db, "a"), Some(3));
            assert_eq!(batches_of(&db, "b"), Some(3));
            assert_eq!(batches_of(&db, "bad"), None);
            assert_eq!(db.index_backlog(), IndexBacklog { pending: 0, held: 3 }, "operators see it");
            assert_eq!(db.batch_count().expect("count"), 6, "no key of the held batches stayed");
            assert_eq!(put_in(&db, "bad", 1), Stored::Duplicate, "a held batch is still known");
            assert_eq!(put_in(&db, "a", 3), Stored::New);
            assert_eq!(batches_of(&db, "a"), Some(4), "later flushes go on");
        }
        // Opened again (the trigger was the connection's own): the held batches are indexed
        // from the log, and nothing is indexed twice.
        let db = SqliteStorage::open(dir.path()).expect("db");
        assert_eq!(batches_of(&db, "bad"), Some(3));
        assert_eq!(batches_of(&db, "a"), Some(4));
        assert_eq!(batches_of(&db, "b"), Some(3));
        assert_eq!(db.batch_count().expect("count"), 10);
    }

    #[test]
    fn a_database_whose_index_cannot_be_written_at_open_still_opens_and_catches_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = SqliteStorage::open(dir.path()).expect("db");
            db.create_project("p").expect("project");
            for seq in 0..4 {
                put_in(&db, "s", seq);
            }
            // As a crash would leave it: logged, not indexed. Then the index and its watermark
            // refuse every write, as a full disk would.
            let conn = db.conn.lock().expect("lock");
            conn.execute_batch(
                "DELETE FROM batch_keys; DELETE FROM sessions; UPDATE index_state SET indexed_through = 0;
                 CREATE TRIGGER refuse BEFORE INSERT ON batch_keys BEGIN SELECT RAISE(ABORT, 'refused'); END;
                 CREATE TRIGGER refuse_state BEFORE UPDATE ON index_state BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .expect("unindex");
        }
        // Indexing at open fails: the database opens anyway, with the entries pending (not
        // held: nothing went in, and the database took no write either).
        let db = SqliteStorage::open(dir.path()).expect("db");
        assert_eq!(db.index_backlog(), IndexBacklog { pending: 4, held: 0 });
        assert_eq!(put_in(&db, "s", 2), Stored::Duplicate, "a pending batch is known");
        assert!(db.session(1, "s").is_ok(), "reads still answer");
        db.conn
            .lock()
            .expect("lock")
            .execute_batch("DROP TRIGGER refuse; DROP TRIGGER refuse_state")
            .expect("drop triggers");
        assert_eq!(put_in(&db, "s", 4), Stored::New);
        assert_eq!(batches_of(&db, "s"), Some(5));
        assert_eq!(db.batch_count().expect("count"), 5);
    }

    #[test]
    fn batches_indexed_together_give_the_rows_they_give_one_by_one() {
        // A small deterministic generator: runs of batches of two sessions, some setting the
        // fields the session index takes from one batch, some only counting.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for case in 0..40 {
            let (one_by_one, together) =
                (SqliteStorage::in_memory().expect("db"), SqliteStorage::in_memory().expect("db"));
            for db in [&one_by_one, &together] {
                db.create_project("p").expect("project");
            }
            // Page ids are random, so key order is not arrival order.
            let mut seqs = [[0u32; 2]; 2];
            for _ in 0..30 {
                let which = next(2) as usize;
                let page = next(2) as usize;
                let pick = |n: u64, v: &str| (n == 0).then(|| v.to_owned());
                let mut s = BatchSummary {
                    session: format!("s{which}"),
                    page: ["z", "a"][page].into(),
                    seq: seqs[which][page],
                    start_ms: 1_000 + next(50) * 10,
                    received_ms: 5_000 + next(1_000),
                    events: next(9),
                    clicks: next(3),
                    errors: next(2),
                    freezes: next(2),
                    dropped: next(2),
                    url: pick(next(4), &format!("https://x.test/{}", next(3))),
                    user_agent: pick(next(6), "UA"),
                    user: pick(next(5), &format!("u{}", next(3))),
                    release: pick(next(5), "1.0"),
                    browser: pick(next(6), "Chrome"),
                    longest_freeze_ms: if next(5) == 0 { next(900) } else { 0 },
                    ..BatchSummary::default()
                };
                s.end_ms = s.start_ms + next(5_000);
                if s.longest_freeze_ms > 0 {
                    s.freeze_culprit = Some(format!("f{}", next(3)));
                    s.freeze_started_ms = s.start_ms;
                    s.freeze_ended_ms = if next(2) == 0 { s.end_ms } else { 0 };
                }
                seqs[which][page] += 1;
                one_by_one.put_batch(1, &s, b"x").expect("put");
                // A read flushes: one by one applies each batch on its own.
                one_by_one.session(1, &s.session).expect("read");
                together.put_batch(1, &s, b"x").expect("put");
            }
            for session in ["s0", "s1"] {
                assert_eq!(
                    together.session(1, session).expect("read"),
                    one_by_one.session(1, session).expect("read"),
                    "case {case}, session {session}"
                );
            }
        }
    }

    #[test]
    fn a_version_6_database_moves_its_batches_to_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let conn = Connection::open(dir.path().join("replay.sqlite3")).expect("raw");
            for m in &MIGRATIONS[..6] {
                conn.execute_batch(m).expect("migration");
            }
            conn.pragma_update(None, "user_version", 6).expect("version");
            conn.execute("INSERT INTO projects (id, name, ingest_key, created_ms) VALUES (1, 'p', 'k', 0)", [])
                .expect("project");
            for (page, seq, start) in [("b", 0, 200), ("a", 1, 100), ("a", 0, 100)] {
                conn.execute(
                    "INSERT INTO batches (project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body)
                     VALUES (1, 's', ?1, ?2, ?3, ?3, 0, ?4)",
                    params![page, seq, start, format!("{page}{seq}").into_bytes()],
                )
                .expect("batch");
            }
        }
        let db = SqliteStorage::open(dir.path()).expect("db");
        let bodies: Vec<Vec<u8>> = db.batches(1, "s").expect("batches");
        assert_eq!(bodies, [b"a0".to_vec(), b"a1".to_vec(), b"b0".to_vec()], "replay order kept");
        let s = BatchSummary { session: "s".into(), page: "a".into(), seq: 1, ..BatchSummary::default() };
        assert_eq!(db.put_batch(1, &s, b"again").expect("put"), Stored::Duplicate);
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_contains("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}
