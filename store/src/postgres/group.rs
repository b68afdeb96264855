//! Group commit for the scale-out engine: batches whose bodies are in the object store wait in
//! one bounded queue per instance, and one flusher indexes every batch waiting when it starts
//! in one transaction (`bulk`), so many concurrent uploads share one commit and the rows many
//! sessions share (a busy page-day's click map, error groups) are updated once per flush.
//! Each upload's task awaits its own batch's outcome: the answer comes only after the commit
//! holding it (a batch acknowledged is durable), or with its own error.
//!
//! The duplicate checks made before uploads are grouped the same way ([`checker`]): one query
//! answers every check waiting.
//!
//! Bounds: at most [`MAX_IN_FLIGHT`] batches per instance between their arrival and their
//! answer (duplicate check, upload, queue, flush); one more is refused at once with
//! [`Error::Busy`] before anything is uploaded (the server answers 503 with `Retry-After`, as
//! for its other overloads), and counted. A flush takes at most [`GROUP_MAX_BATCHES`].
//!
//! Failures stay with their batches: a batch resent within one group waits for its first copy
//! and is a duplicate once that commits; a session over its byte cap or deleted meanwhile has
//! its batches indexed one by one (each gets its own answer) while the rest of the group goes
//! in bulk again; a deadlock with another instance is retried ([`MAX_TRIES`]); a statement
//! PostgreSQL refuses for another reason has the group indexed batch by batch, so one bad
//! batch fails alone. Only a failure of the connection itself fails the whole group.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::Engine;
use super::bulk::{BulkError, Entry, distinct_keys, refused_by_database, retryable};
use crate::{BatchSummary, Error, Stored};

/// Most batches one instance holds between their arrival and their answer.
pub(super) const MAX_IN_FLIGHT: usize = 2048;

/// Most batches one flush indexes.
pub(super) const GROUP_MAX_BATCHES: usize = 512;

/// Most attempts at a group in bulk (after a deadlock, or after taking out a session's
/// batches) before its batches are indexed one by one.
pub(super) const MAX_TRIES: usize = 4;

/// A batch waiting for a flush, with where its outcome goes.
pub(super) struct Queued {
    entry: Entry,
    reply: oneshot::Sender<Result<Stored, Error>>,
}

/// A batch's duplicate check waiting for the next round of checks: its key, and where the
/// answer goes (stored already, its session's stored bytes, session deleted).
pub(super) struct Check {
    key: (i64, String, String, i64),
    reply: oneshot::Sender<Result<(bool, u64, bool), Error>>,
}

/// The queue of one instance (cheap to share).
pub(super) struct GroupQueue {
    queue: mpsc::Sender<Queued>,
    checks: mpsc::Sender<Check>,
    slots: Arc<Semaphore>,
    /// Batches refused because [`MAX_IN_FLIGHT`] were held.
    refused: AtomicU64,
}

impl GroupQueue {
    /// The queue, and the receiving ends for [`flusher`] and [`checker`].
    pub(super) fn new() -> (Self, mpsc::Receiver<Queued>, mpsc::Receiver<Check>) {
        let (queue, queued) = mpsc::channel(MAX_IN_FLIGHT);
        let (checks, checked) = mpsc::channel(MAX_IN_FLIGHT);
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        (GroupQueue { queue, checks, slots, refused: AtomicU64::new(0) }, queued, checked)
    }

    /// Whether the batch `s` of `project` is stored already, its session's stored bytes, and
    /// whether the session was deleted on request: asked with the other checks waiting, in
    /// one query.
    pub(super) async fn check(&self, project: i64, s: &BatchSummary) -> Result<(bool, u64, bool), Error> {
        let (reply, answer) = oneshot::channel();
        let key = (project, s.session.clone(), s.page.clone(), crate::shared::stored_seq(s));
        // Never waits: no more batches are admitted than the queue holds.
        self.checks.send(Check { key, reply }).await.map_err(|_| Error::Stopped("the postgres checker"))?;
        answer.await.map_err(|_| Error::Stopped("the postgres checker"))?
    }

    /// A place for one more batch, held until its answer; [`Error::Busy`] when none is free.
    pub(super) fn admit(&self) -> Result<OwnedSemaphorePermit, Error> {
        Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if refused.is_power_of_two() {
                tracing::warn!(refused, held = MAX_IN_FLIGHT, "batches refused: too many waiting to be indexed");
            }
            Error::Busy
        })
    }

    /// Queues `entry` for the next flush and waits for its outcome (after the commit).
    pub(super) async fn index(&self, entry: Entry) -> Result<Stored, Error> {
        let (reply, outcome) = oneshot::channel();
        // Never waits: no more batches are admitted than the queue holds.
        self.queue.send(Queued { entry, reply }).await.map_err(|_| Error::Stopped("the postgres flusher"))?;
        outcome.await.map_err(|_| Error::Stopped("the postgres flusher"))?
    }
}

/// A batch to hand to [`Engine::flush`] directly, and where its answer comes.
#[cfg(test)]
pub(super) fn queued(entry: Entry) -> (Queued, oneshot::Receiver<Result<Stored, Error>>) {
    let (reply, answer) = oneshot::channel();
    (Queued { entry, reply }, answer)
}

/// The duplicate checks of many batches at once (arrays of project, session, page, seq), each
/// answered by its position.
const CHECK: &str = "SELECT u.i,
        EXISTS (SELECT 1 FROM batches b WHERE b.project_id = u.project_id AND b.session_id = u.session_id
                                          AND b.page_id = u.page_id AND b.seq = u.seq),
        COALESCE((SELECT s.bytes FROM sessions s WHERE s.project_id = u.project_id AND s.id = u.session_id), 0),
        EXISTS (SELECT 1 FROM deleted_sessions d WHERE d.project_id = u.project_id AND d.session_id = u.session_id)
     FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[])
          WITH ORDINALITY AS u(project_id, session_id, page_id, seq, i)";

/// The checker: answers the duplicate checks waiting, a round (one query) at a time, so
/// concurrent uploads do not each take a connection and a round trip before their upload.
pub(super) async fn checker(engine: Engine, mut rx: mpsc::Receiver<Check>) {
    let mut round = Vec::with_capacity(GROUP_MAX_BATCHES);
    while rx.recv_many(&mut round, GROUP_MAX_BATCHES).await > 0 {
        let round = std::mem::take(&mut round);
        match engine.check_round(&round).await {
            Ok(answers) => {
                for (c, answer) in round.into_iter().zip(answers) {
                    let _ = c.reply.send(answer.ok_or(Error::Stopped("the postgres checker")));
                }
            }
            Err(e) => {
                let shared = Arc::new(e);
                for c in round {
                    let _ = c.reply.send(Err(Error::GroupCommit(Arc::clone(&shared))));
                }
            }
        }
    }
}

/// The flusher: indexes the batches waiting, a group at a time, until the queue closes.
pub(super) async fn flusher(engine: Engine, mut rx: mpsc::Receiver<Queued>) {
    let mut group = Vec::with_capacity(GROUP_MAX_BATCHES);
    while rx.recv_many(&mut group, GROUP_MAX_BATCHES).await > 0 {
        let (engine, group) = (engine.clone(), std::mem::take(&mut group));
        // A task of its own: were a flush to panic, its batches would be answered with an
        // error (their reply channels dropped) and the next group flushed all the same.
        if let Err(e) = tokio::spawn(async move { engine.flush(group).await }).await {
            tracing::error!(error = %e, "a group commit failed unexpectedly; its batches were refused");
        }
    }
}

impl Engine {
    /// The answers to one round of checks, in its order.
    async fn check_round(&self, round: &[Check]) -> Result<Vec<Option<(bool, u64, bool)>>, Error> {
        let projects: Vec<i64> = round.iter().map(|c| c.key.0).collect();
        let sessions: Vec<&str> = round.iter().map(|c| c.key.1.as_str()).collect();
        let pages: Vec<&str> = round.iter().map(|c| c.key.2.as_str()).collect();
        let seqs: Vec<i64> = round.iter().map(|c| c.key.3).collect();
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(CHECK).await?;
        let mut out = vec![None; round.len()];
        for r in client.query(&stmt, &[&projects, &sessions, &pages, &seqs]).await? {
            let i = usize::try_from(r.get::<_, i64>(0)).unwrap_or(0);
            if let Some(slot) = i.checked_sub(1).and_then(|i| out.get_mut(i)) {
                *slot = Some((r.get(1), crate::shared::to_u64(r.get(2)), r.get(3)));
            }
        }
        Ok(out)
    }

    /// Indexes one group and answers each of its batches.
    pub(super) async fn flush(&self, queued: Vec<Queued>) {
        let (firsts, of) = distinct_keys(&queued, |q| q.entry.batch_key());
        let (mut entries, replies): (Vec<Option<Entry>>, Vec<_>) =
            queued.into_iter().map(|q| (Some(q.entry), q.reply)).unzip();
        let entries: Vec<Entry> = firsts.iter().filter_map(|&i| entries[i].take()).collect();
        let mut outcomes = self.index_entries(&entries).await;
        let mut own: Vec<Option<oneshot::Sender<Result<Stored, Error>>>> = firsts.iter().map(|_| None).collect();
        for (i, reply) in replies.into_iter().enumerate() {
            let j = of[i];
            if firsts[j] == i {
                own[j] = Some(reply);
                continue;
            }
            // A copy of a batch earlier in the group: a duplicate once that one is stored.
            let outcome = match &mut outcomes[j] {
                Ok(_) => Ok(Stored::Duplicate),
                Err(e) => Err(share(e)),
            };
            let _ = reply.send(outcome);
        }
        for (reply, outcome) in own.into_iter().zip(outcomes) {
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
        }
    }

    /// The outcome of each of `entries` (distinct keys, in arrival order).
    async fn index_entries(&self, entries: &[Entry]) -> Vec<Result<Stored, Error>> {
        let mut out: Vec<Option<Result<Stored, Error>>> = entries.iter().map(|_| None).collect();
        let mut bulk: Vec<usize> = (0..entries.len()).collect();
        let mut alone: Vec<usize> = Vec::new();
        let mut tries = 0;
        while !bulk.is_empty() {
            tries += 1;
            let group: Vec<&Entry> = bulk.iter().map(|&i| &entries[i]).collect();
            match self.index_group(&group).await {
                Ok(stored) => {
                    for (&i, s) in bulk.iter().zip(stored) {
                        out[i] = Some(Ok(s));
                    }
                    bulk.clear();
                }
                Err(BulkError::Split(sessions)) => {
                    tracing::debug!(
                        sessions = sessions.len(),
                        "sessions taken out of a group, indexed one batch at a time"
                    );
                    bulk.retain(|&i| {
                        let e = &entries[i];
                        let out_of_group = sessions.contains(&(e.project, e.summary.session.clone()));
                        if out_of_group {
                            alone.push(i);
                        }
                        !out_of_group
                    });
                    if tries >= MAX_TRIES {
                        alone.append(&mut bulk);
                    }
                }
                Err(BulkError::Db(e)) if retryable(&e) && tries < MAX_TRIES => {
                    tracing::warn!(error = %e, batches = bulk.len(), "group commit conflicted with another writer; retrying");
                }
                Err(BulkError::Db(e)) if retryable(&e) || refused_by_database(&e) => {
                    tracing::warn!(error = %e, batches = bulk.len(), "group commit failed; indexing its batches one by one");
                    alone.append(&mut bulk);
                }
                Err(BulkError::Db(e)) => {
                    tracing::error!(error = %e, batches = bulk.len(), "group commit failed");
                    let shared = Arc::new(e);
                    for i in bulk.drain(..) {
                        out[i] = Some(Err(Error::GroupCommit(Arc::clone(&shared))));
                    }
                }
            }
        }
        alone.sort_unstable();
        for i in alone {
            let e = &entries[i];
            out[i] = Some(self.index_batch(e.project, &e.summary, &e.key, e.encoding, e.size).await);
        }
        out.into_iter().map(|o| o.unwrap_or(Err(Error::Stopped("the postgres flusher")))).collect()
    }
}

/// The error of a batch's first copy, for a copy of it in the same group: refusals as
/// themselves, other errors shared (the first copy's becomes a [`Error::GroupCommit`] too).
fn share(e: &mut Error) -> Error {
    match e {
        Error::SessionFull { stored, cap } => Error::SessionFull { stored: *stored, cap: *cap },
        Error::SessionDeleted => Error::SessionDeleted,
        Error::Busy => Error::Busy,
        Error::GroupCommit(inner) => Error::GroupCommit(Arc::clone(inner)),
        other => {
            let shared = Arc::new(std::mem::replace(other, Error::Busy));
            *other = Error::GroupCommit(Arc::clone(&shared));
            Error::GroupCommit(shared)
        }
    }
}
