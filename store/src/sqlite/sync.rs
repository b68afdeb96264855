//! The threads that make the write-ahead log durable and keep it short: the sync thread
//! ([`sync_loop`]), which syncs the log once for every group committed meanwhile, tells the
//! writer, and only then acknowledges their batches; and the checkpoint thread
//! ([`checkpoint_loop`]) on a connection of its own.
//!
//! A batch is acknowledged only once its commit is on disk; once a sync fails, nothing more is
//! acknowledged.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crossbeam_channel as channel;
use rusqlite::Connection;

use crate::{BatchDone, Error, Stored};

/// Pages of write-ahead log after which the writer checkpoints itself, when the checkpoint
/// thread falls behind (SQLite's default is 1,000 pages, checkpointed by the writer).
pub(super) const WAL_CHECKPOINT_PAGES: i64 = 16 * 1024;

/// How often the checkpoint thread looks for new commits.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Copies committed pages from the write-ahead log into the database, on a connection of its
/// own. Done by the writer (SQLite's default), every thousandth page made one group commit
/// wait for a whole checkpoint with its fsync, on the one thread all ingest waits for; here the
/// writer only appends and syncs the log. `PASSIVE` never blocks the writer or readers, and a
/// checkpoint that caught up lets the next commit start the log from its beginning again.
/// Stops once the storage is gone (the count is then held by this thread alone).
pub(super) fn checkpoint_loop(conn: &Connection, groups_committed: &Arc<AtomicU64>) {
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
pub(super) type Acks = Vec<(BatchDone, Result<Stored, Error>)>;

/// Where the writer's acknowledgements go once a group committed.
pub(super) enum AckPath {
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
/// sync: it gathers the next group while the disk works (see [`super::writer::writer_loop`]).
///
/// A failed sync is not retried (after a failed `fsync` the kernel may have dropped the
/// unwritten pages): every batch from then on is refused as a storage error, so nothing is
/// ever acknowledged without being durable.
pub(super) fn sync_loop(wal: &Path, rx: &mpsc::Receiver<Acks>, synced: &channel::Sender<usize>) {
    let mut file: Option<std::fs::File> = None;
    let mut broken: Option<Arc<std::io::Error>> = None;
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
                    broken = Some(Arc::new(e));
                }
            }
        }
        // The writer may commit its next group while these acknowledgements go out. Once it
        // stopped, nothing waits for this.
        let _ = synced.send(groups);
        for (reply, outcome) in acks {
            reply(match &broken {
                None => outcome,
                Some(e) => Err(Error::SyncFailed(Arc::clone(e))),
            });
        }
    }
}
