//! The writer thread and its group commit: every batch waiting when a transaction starts goes
//! into it, appended to `batch_log`; the acknowledgements then go to the sync thread (see
//! [`super::sync`]), and index entries to the bulk index (see [`super::index`]).
//!
//! The writer is the one serial stage of ingest: it only executes statements and appends to
//! the log (syncing and checkpointing happen on threads of their own). A batch waits for a
//! sync after its commit anyway, so the writer commits the next group only once the sync
//! thread is idle, and under heavy load at most every [`BUSY_COMMIT_EVERY`]: each sync costs
//! about 100 µs of CPU on a virtual disk, and a group of 80 batches costs hardly more to commit
//! than a group of 10. A full group ([`GROUP_MAX_BATCHES`], [`GROUP_MAX_BYTES`]), or one
//! waiting [`GROUP_WAIT_MAX`] for a slow disk, commits regardless. Between groups the writer
//! writes index chunks ([`super::index::flush_step`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crossbeam_channel as channel;
use replay_core::BatchSummary;
use rusqlite::{OptionalExtension, params};

use super::Db;
use super::index::{
    BatchKeyRef, FLUSH_AFTER, HIGHEST_INDEXED_SEQ, IndexEntry, PageKeyRef, SessionKeyRef, flush_all, flush_step,
};
use super::sync::{AckPath, Acks};
use crate::shared::{max_old_marker_bytes, stored_body_is_marker, stored_seq, to_i64};
use crate::{BatchBody, BatchDone, Error, Stored};

/// A batch waiting for the writer thread, with where to send the outcome.
pub(super) struct PendingBatch {
    pub(super) project: i64,
    pub(super) summary: BatchSummary,
    pub(super) body: BatchBody,
    pub(super) reply: BatchDone,
}

/// Most batches (and bytes) one transaction takes.
pub(super) const GROUP_MAX_BATCHES: usize = 512;
pub(super) const GROUP_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Batches of one group commit at and above which the load counts as heavy, see [`writer_loop`].
pub(super) const BUSY_GROUP: usize = 8;

/// Under heavy load, the shortest time between two group commits (and so between two syncs).
pub(super) const BUSY_COMMIT_EVERY: Duration = Duration::from_millis(2);

/// Longest a group waits for the sync thread (counted from when the writer took its first
/// batch): a disk slower than this gets overlapping commits, each sync then covering several.
pub(super) const GROUP_WAIT_MAX: Duration = Duration::from_millis(20);

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
pub(super) fn writer_loop(
    conn: Arc<Mutex<Db>>,
    rx: channel::Receiver<PendingBatch>,
    groups_committed: &AtomicU64,
    acks: AckPath,
) {
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
pub(super) struct Group {
    pub(super) batches: Vec<PendingBatch>,
    pub(super) bytes: usize,
    /// When the writer took the first of them.
    pub(super) since: Instant,
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
pub(super) struct Unsynced {
    /// The sync thread's reports: how many groups each sync covered.
    pub(super) reports: channel::Receiver<usize>,
    pub(super) groups: usize,
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
pub(super) fn commit_group(conn: &Mutex<Db>, mut group: Vec<PendingBatch>, bytes: usize, acks: &AckPath) -> bool {
    let started = Instant::now();
    let result = write_group(conn, &mut group, matches!(acks, AckPath::AfterSync { .. }));
    tracing::debug!(batches = group.len(), bytes, elapsed_us = started.elapsed().as_micros() as u64, "group committed");
    match result {
        Ok(outcomes) => {
            let replies: Acks = group.into_iter().zip(outcomes).map(|(p, outcome)| (p.reply, outcome)).collect();
            match acks {
                AckPath::Direct => {
                    replies.into_iter().for_each(|(reply, outcome)| reply(outcome));
                    false
                }
                AckPath::AfterSync { to_sync, .. } => match to_sync.send(replies) {
                    Ok(()) => true,
                    Err(mpsc::SendError(replies)) => {
                        for (reply, _) in replies {
                            reply(Err(Error::Stopped("the sync thread")));
                        }
                        false
                    }
                },
            }
        }
        Err(e) => {
            tracing::error!(error = %e, batches = group.len(), "group commit failed");
            let e = Arc::new(e);
            for p in group {
                (p.reply)(Err(Error::GroupCommit(Arc::clone(&e))));
            }
            false
        }
    }
}

/// Writes one group in one transaction. With `synced_later`, the commit does not sync the log
/// (the sync thread does, before anything is acknowledged); everything else that writes on
/// this connection keeps `synchronous=FULL`.
pub(super) fn write_group(
    conn: &Mutex<Db>,
    group: &mut [PendingBatch],
    synced_later: bool,
) -> Result<Vec<Result<Stored, Error>>, Error> {
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
/// written; nor are new batches that would take their session past the per-session cap
/// (refused with [`Error::SessionFull`]).
pub(super) fn write_group_tx(db: &mut Db, group: &mut [PendingBatch]) -> Result<Vec<Result<Stored, Error>>, Error> {
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
        let mut plain_row = tx.prepare_cached(
            "SELECT l.body, l.encoding FROM batch_keys k JOIN batch_log l ON l.id = k.batch
             WHERE k.project_id = ?1 AND k.session_id = ?2 AND k.page_id = ?3 AND k.seq = ?4
               AND k.bytes <= ?5",
        )?;
        let mut deleted =
            tx.prepare_cached("SELECT 1 FROM deleted_sessions WHERE project_id = ?1 AND session_id = ?2")?;
        let mut session_bytes = tx.prepare_cached("SELECT bytes FROM sessions WHERE project_id = ?1 AND id = ?2")?;
        for (i, p) in group.iter().enumerate() {
            let s = &p.summary;
            let page = PageKeyRef(p.project, &s.session, &s.page);
            let known = index.pages.get(&page).copied();
            let highest = match known {
                Some(h) => h,
                None => {
                    // A page the writer knows is never of a deleted session (deletion forgets
                    // its pages), so only unknown pages are looked up.
                    if deleted.exists(params![p.project, s.session])? {
                        outcomes.push(Err(Error::SessionDeleted));
                        continue;
                    }
                    highest_indexed.query_row(params![p.project, s.session, s.page], |r| r.get::<_, i64>(0))?
                }
            };
            // Past the highest stored real batch: new (the usual case), without looking
            // anything up. A freeze marker is keyed apart and always looked up
            // (`crate::shared::stored_seq`).
            let seq = stored_seq(s);
            let fresh = !s.is_freeze_marker() && i64::from(s.seq) > highest;
            if !fresh
                && (index.keys.contains(&BatchKeyRef(p.project, &s.session, &s.page, seq))
                    || indexed.exists(params![p.project, s.session, s.page, seq])?)
            {
                outcomes.push(Ok(Stored::Duplicate));
                continue;
            }
            let size = p.body.bytes.len() as u64;
            if let Some(cap) = index.session_cap {
                let session = SessionKeyRef(p.project, &s.session);
                let stored = match index.session_bytes.get(&session) {
                    Some(&b) => b,
                    None => {
                        let indexed: Option<i64> =
                            session_bytes.query_row(params![p.project, s.session], |r| r.get(0)).optional()?;
                        let b = indexed.map_or(0, crate::shared::to_u64);
                        index.session_bytes.insert((p.project, s.session.clone()), b);
                        b
                    }
                };
                if stored.saturating_add(size) > cap {
                    outcomes.push(Err(Error::SessionFull { stored, cap }));
                    continue;
                }
            }
            // A marker stored under its plain number before markers were keyed apart: this
            // is its resend (`crate::shared::stored_body_is_marker`; after the cap check and
            // only for a marker-sized row, so a request cannot make it read a big body). Only
            // indexed rows can be such: pending keys and recovered entries are keyed as
            // markers already.
            if s.is_freeze_marker() {
                let old: Option<(Vec<u8>, String)> = plain_row
                    .query_row(
                        params![p.project, s.session, s.page, s.seq, max_old_marker_bytes(p.body.bytes.len())],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if old.is_some_and(|(body, encoding)| stored_body_is_marker(body, encoding == "gzip")) {
                    outcomes.push(Ok(Stored::Duplicate));
                    continue;
                }
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
            if let Some(b) = index.session_bytes.get_mut(&SessionKeyRef(p.project, &s.session)) {
                *b += size;
            }
            id += 1;
            added.push(i);
            outcomes.push(Ok(Stored::New));
        }
        Ok(())
    })();
    let committed = appended.and_then(|()| Ok(tx.commit()?));
    if let Err(e) = committed {
        // Rolled back: none of these keys is stored after all.
        for &i in &added {
            let p = &group[i];
            index.keys.remove(&BatchKeyRef(p.project, &p.summary.session, &p.summary.page, stored_seq(&p.summary)));
            if let Some(b) = index.session_bytes.get_mut(&SessionKeyRef(p.project, &p.summary.session)) {
                *b = b.saturating_sub(p.body.bytes.len() as u64);
            }
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
            key_only: false,
        });
    }
    index.next_id = id;
    index.publish();
    Ok(outcomes)
}

/// Appends one batch to the log.
pub(super) const APPEND_BATCH: &str =
    "INSERT INTO batch_log (id, project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, body, encoding)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
