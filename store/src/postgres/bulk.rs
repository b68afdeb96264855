//! The bulk index: one transaction indexes a whole group of batches (see `group`) with
//! multi-row statements (`UNNEST` of arrays), and commits them together.
//!
//! What a flush writes, in this order (every transaction takes its locks in one order, so
//! flushes of several instances wait for each other instead of deadlocking; a deadlock with
//! another writer is retried by the caller):
//! 1. the batch rows, sorted by key, in one `INSERT .. ON CONFLICT DO NOTHING RETURNING`: the
//!    keys it returns are the new batches; the others were stored already (a resend, or the
//!    same batch through another instance, whose transaction this one waited for) and add
//!    nothing to any aggregate;
//! 2. the session rows, sorted, in rounds of one multi-row upsert each: round `r` holds the
//!    `r`-th run of each session's new batches (a run is a batch, plus the batches after it
//!    that only add to counters, folded into it as the SQLite engine's bulk index does), so a
//!    session's batches apply in arrival order and each statement touches a row once. The
//!    first round locks every session row of the group (waiting for a deletion under way), and
//!    the deleted sessions are then looked up in one query;
//! 3. what belongs to one session, under those locks: frustration counts (summed), facts, search
//!    terms and page views (what is stored read in one or two queries, followed batch by batch
//!    in memory with the per-session caps applied in arrival order, written in one statement);
//! 4. what many sessions share, merged over the group: click-map page-days, elements, depths
//!    and dropped counts ([`super::clickmap::HotRows`]), error groups and their sessions, one
//!    statement per row or per table.
//!
//! A session over its byte cap (the upsert's condition) or deleted meanwhile makes the flush
//! roll back and name its sessions ([`BulkError::Split`]): their batches are then indexed one
//! by one (`bodies::index_batch`, which answers each exactly), the others in bulk again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;

use replay_core::BatchSummary;

use super::{Engine, opt_text, text};
use crate::shared::{Counters, MAX_FACTS_PER_SESSION, only_adds_counters, starts_page_view, stored_seq, to_i64};
use crate::{Error, Stored};

/// A batch whose body is in the object store, to index.
pub(super) struct Entry {
    pub(super) project: i64,
    pub(super) summary: BatchSummary,
    pub(super) key: String,
    pub(super) encoding: &'static str,
    pub(super) size: i64,
}

impl Entry {
    /// The batch's key as stored (a freeze marker apart from the real batch of its number:
    /// [`stored_seq`]).
    pub(super) fn batch_key(&self) -> (i64, &str, &str, i64) {
        (self.project, &self.summary.session, &self.summary.page, stored_seq(&self.summary))
    }
}

/// Why a bulk flush wrote nothing.
pub(super) enum BulkError {
    /// The batches of these sessions must be indexed one by one (a session over its byte cap,
    /// or deleted meanwhile).
    Split(HashSet<(i64, String)>),
    Db(Error),
}

impl<E: Into<Error>> From<E> for BulkError {
    fn from(e: E) -> Self {
        BulkError::Db(e.into())
    }
}

/// What one session upsert adds: a batch, or a run of a session's batches in arrival order
/// where all after the first only add to counters (see [`Run::absorb`]).
struct Run<'a> {
    first: &'a BatchSummary,
    start_ms: u64,
    counts: Counters,
    pages: i64,
    batches: i64,
    bytes: i64,
}

impl<'a> Run<'a> {
    fn new(e: &'a Entry) -> Self {
        let s = &e.summary;
        Run {
            first: s,
            start_ms: s.start_ms,
            counts: Counters::of(s),
            pages: i64::from(starts_page_view(s)),
            batches: 1,
            bytes: e.size,
        }
    }

    /// Folds in `e`, the session's next batch, when applying the two as one upsert gives the
    /// session row what applying them one after the other gives: `e` only adds to counters
    /// ([`only_adds_counters`]) and starts no earlier.
    fn absorb(&mut self, e: &'a Entry) -> bool {
        let b = &e.summary;
        if !only_adds_counters(b) || b.start_ms < self.start_ms {
            return false;
        }
        self.counts.add(b);
        self.pages += i64::from(starts_page_view(b));
        self.batches += 1;
        self.bytes = self.bytes.saturating_add(e.size);
        true
    }
}

/// The batch rows of a group, keys sorted; returns the keys inserted (the others were there).
const INSERT_BATCHES: &str = "INSERT INTO batches (project_id, session_id, page_id, seq, start_ms, end_ms, received_ms,
                              object_key, encoding, bytes)
     SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[],
                          $7::BIGINT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[])
     ON CONFLICT DO NOTHING
     RETURNING project_id, session_id, page_id, seq";

/// One round of session upserts (one row per session, sorted); `$26` the byte cap. Returns the
/// sessions written: one missing would pass its cap. The latest-value fields (user, release,
/// environment) of rows there already are set by [`SET_LATEST`].
const UPSERT_SESSIONS: &str = concat!(
    "INSERT INTO sessions AS t (project_id, id, start_ms, end_ms, url, user_agent, pages,
        batches, events, clicks, bytes, dropped, recorder_errors, user_id, release, environment, browser, errors,
        freezes, received_ms, longest_freeze_ms, freeze_culprit, freeze_started_ms, freeze_ended_ms, rage_clicks)
     SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[],
                          $8::BIGINT[], $9::BIGINT[], $10::BIGINT[], $11::BIGINT[], $12::BIGINT[], $13::BIGINT[],
                          $14::TEXT[], $15::TEXT[], $16::TEXT[], $17::TEXT[], $18::BIGINT[], $19::BIGINT[],
                          $20::BIGINT[], $21::BIGINT[], $22::TEXT[], $23::BIGINT[], $24::BIGINT[], $25::BIGINT[])
     ON CONFLICT (project_id, id) DO UPDATE SET
        ",
    session_merge!(),
    "
     WHERE t.bytes + EXCLUDED.bytes <= $26
     RETURNING project_id, id"
);

/// The fields a batch sets when it names them (NULL: left as they are), after an upsert round.
const SET_LATEST: &str = "UPDATE sessions s SET user_id = COALESCE(u.user_id, s.user_id),
        release = COALESCE(u.release, s.release), environment = COALESCE(u.environment, s.environment)
     FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[]) AS u(project_id, id, user_id, release,
                 environment)
     WHERE s.project_id = u.project_id AND s.id = u.id";

/// Which of the group's sessions were deleted on request.
const DELETED: &str = "SELECT d.project_id, d.session_id FROM deleted_sessions d
     JOIN UNNEST($1::BIGINT[], $2::TEXT[]) AS u(project_id, id) ON d.project_id = u.project_id AND d.session_id = u.id";

/// Frustration signals added to sessions (one row per session).
const ADD_FRUSTRATION: &str = "UPDATE sessions s SET dead_clicks = s.dead_clicks + u.dead,
        error_clicks = s.error_clicks + u.error, quick_backs = s.quick_backs + u.quick
     FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[]) AS u(project_id, id, dead, error,
                 quick)
     WHERE s.project_id = u.project_id AND s.id = u.id";

/// Which of the facts the group names its sessions have already.
const LOAD_FACT_NAMES: &str = "SELECT f.project_id, f.session_id, f.name FROM session_facts f
     JOIN UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[]) AS u(project_id, id, name)
       ON f.project_id = u.project_id AND f.session_id = u.id AND f.name = u.name";

/// How many facts each of the group's sessions with facts has.
const COUNT_FACTS: &str = "SELECT f.project_id, f.session_id, COUNT(*) FROM session_facts f
     JOIN UNNEST($1::BIGINT[], $2::TEXT[]) AS u(project_id, id) ON f.project_id = u.project_id AND f.session_id = u.id
     GROUP BY f.project_id, f.session_id";

/// The group's facts, one row per session and name (sorted), each with its latest value.
const SAVE_FACTS: &str = "INSERT INTO session_facts (project_id, session_id, name, value)
     SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[])
     ON CONFLICT (project_id, session_id, name) DO UPDATE SET value = EXCLUDED.value";

/// Error groups, one row per fingerprint (sorted).
const ADD_ERROR_GROUPS: &str =
    "INSERT INTO error_groups AS g (project_id, fingerprint, message, frame, count, first_ms,
                                  last_ms)
     SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[])
     ON CONFLICT (project_id, fingerprint) DO UPDATE SET
        count = g.count + EXCLUDED.count,
        first_ms = LEAST(g.first_ms, EXCLUDED.first_ms),
        last_ms = GREATEST(g.last_ms, EXCLUDED.last_ms)";

/// Error sightings by session, one row per fingerprint and session (sorted).
const ADD_ERROR_SESSIONS: &str = "INSERT INTO error_sessions AS e (project_id, fingerprint, session_id, count, last_ms)
     SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[])
     ON CONFLICT (project_id, fingerprint, session_id) DO UPDATE SET
        count = e.count + EXCLUDED.count,
        last_ms = GREATEST(e.last_ms, EXCLUDED.last_ms)";

/// Whether a failed transaction is worth trying again as it was (a deadlock with another
/// writer, or a serialization failure).
pub(super) fn retryable(e: &Error) -> bool {
    let code = match e {
        Error::Postgres(e) => e.code(),
        Error::Pool(deadpool_postgres::PoolError::Backend(e)) => e.code(),
        _ => None,
    };
    code.is_some_and(|c| {
        *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            || *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// Whether PostgreSQL refused a statement (a batch's data may be the cause, so the batches are
/// tried one by one), rather than the connection or the pool failing (which would fail every
/// batch alike).
pub(super) fn refused_by_database(e: &Error) -> bool {
    matches!(e, Error::Postgres(e) if e.as_db_error().is_some())
}

impl Engine {
    /// Indexes `entries` (distinct keys, in arrival order) in one transaction; the outcome of
    /// each, in the same order, once committed.
    pub(super) async fn index_group(&self, entries: &[&Entry]) -> Result<Vec<Stored>, BulkError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;

        // 1. Batch rows, by key.
        let mut order: Vec<&Entry> = entries.to_vec();
        order.sort_unstable_by(|a, b| a.batch_key().cmp(&b.batch_key()));
        let n = order.len();
        let (mut projects, mut sessions, mut pages, mut seqs) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut starts, mut ends, mut received) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut keys, mut encodings, mut sizes) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for e in &order {
            let s = &e.summary;
            projects.push(e.project);
            sessions.push(s.session.as_str());
            pages.push(s.page.as_str());
            seqs.push(stored_seq(s));
            starts.push(to_i64(s.start_ms));
            ends.push(to_i64(s.end_ms));
            received.push(to_i64(s.received_ms));
            keys.push(e.key.as_str());
            encodings.push(e.encoding);
            sizes.push(e.size);
        }
        let insert = tx.prepare_cached(INSERT_BATCHES).await?;
        let inserted: HashSet<(i64, String, String, i64)> = tx
            .query(
                &insert,
                &[&projects, &sessions, &pages, &seqs, &starts, &ends, &received, &keys, &encodings, &sizes],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        let is_new: Vec<bool> = entries
            .iter()
            .map(|e| {
                let s = &e.summary;
                inserted.contains(&(e.project, s.session.clone(), s.page.clone(), stored_seq(s)))
            })
            .collect();
        let new: Vec<&Entry> = entries.iter().zip(&is_new).filter(|(_, n)| **n).map(|(e, _)| *e).collect();
        if new.is_empty() {
            tx.commit().await?;
            return Ok(vec![Stored::Duplicate; entries.len()]);
        }

        // 2. Session rows, in rounds; each session's runs in arrival order.
        let mut runs: BTreeMap<(i64, &str), Vec<Run<'_>>> = BTreeMap::new();
        for e in &new {
            let list = runs.entry((e.project, e.summary.session.as_str())).or_default();
            if !list.last_mut().is_some_and(|r| r.absorb(e)) {
                list.push(Run::new(e));
            }
        }
        let cap = to_i64(self.session_cap.load(Ordering::Relaxed));
        let upsert = tx.prepare_cached(UPSERT_SESSIONS).await?;
        // A run over the cap on its own (a new session's row is inserted without the upsert's
        // condition): its batches are judged one by one.
        let mut split: HashSet<(i64, String)> = runs
            .iter()
            .filter(|(_, list)| list.iter().any(|r| r.bytes > cap))
            .map(|((project, session), _)| (*project, (*session).to_owned()))
            .collect();
        if !split.is_empty() {
            return Err(BulkError::Split(split));
        }
        let rounds = runs.values().map(Vec::len).max().unwrap_or(0);
        for round in 0..rounds {
            let rows: Vec<(&(i64, &str), &Run<'_>)> =
                runs.iter().filter_map(|(k, list)| list.get(round).map(|r| (k, r))).collect();
            let written = upsert_round(&tx, &upsert, &rows, cap).await?;
            for ((project, session), _) in &rows {
                if !written.contains(&(*project, (*session).to_owned())) {
                    split.insert((*project, (*session).to_owned()));
                }
            }
            if round == 0 {
                // After the first upsert: it waited for a deletion holding a session's row, and
                // this statement sees what that deletion committed (see `delete_sessions`).
                let (projects, ids): (Vec<i64>, Vec<&str>) = runs.keys().copied().unzip();
                for r in tx.query(DELETED, &[&projects, &ids]).await? {
                    split.insert((r.get(0), r.get(1)));
                }
            }
            if !split.is_empty() {
                // Rolled back when `tx` drops.
                return Err(BulkError::Split(split));
            }
        }

        // 3. What belongs to one session, batch by batch.
        let mut frustration: BTreeMap<(i64, &str), [i64; 3]> = BTreeMap::new();
        for e in &new {
            let s = &e.summary;
            if s.dead_clicks + s.error_clicks + s.quick_backs > 0 {
                let f = frustration.entry((e.project, s.session.as_str())).or_default();
                f[0] += to_i64(s.dead_clicks);
                f[1] += to_i64(s.error_clicks);
                f[2] += to_i64(s.quick_backs);
            }
        }
        if !frustration.is_empty() {
            let (mut projects, mut ids, mut dead, mut error, mut quick) = (vec![], vec![], vec![], vec![], vec![]);
            for ((project, id), [d, e, q]) in frustration {
                projects.push(project);
                ids.push(id);
                dead.push(d);
                error.push(e);
                quick.push(q);
            }
            tx.execute(ADD_FRUSTRATION, &[&projects, &ids, &dead, &error, &quick]).await?;
        }
        write_facts(&tx, &new).await?;
        let batches: Vec<(i64, &BatchSummary)> = new.iter().map(|e| (e.project, &e.summary)).collect();
        super::search::index_terms_bulk(&tx, &batches).await?;
        let mut hot = super::clickmap::HotRows::default();
        super::clickmap::index_activities(&tx, &batches, &mut hot).await?;

        // 4. What many sessions share, merged.
        hot.write(&tx).await?;
        write_errors(&tx, &new).await?;
        tx.commit().await?;
        Ok(is_new.iter().map(|&n| if n { Stored::New } else { Stored::Duplicate }).collect())
    }
}

/// One round of session upserts; returns the sessions written.
async fn upsert_round(
    tx: &deadpool_postgres::Transaction<'_>,
    upsert: &tokio_postgres::Statement,
    rows: &[(&(i64, &str), &Run<'_>)],
    cap: i64,
) -> Result<HashSet<(i64, String)>, Error> {
    let n = rows.len();
    let mut ints: [Vec<i64>; 17] = std::array::from_fn(|_| Vec::with_capacity(n));
    let mut texts: [Vec<String>; 6] = std::array::from_fn(|_| Vec::with_capacity(n));
    let mut ids = Vec::with_capacity(n);
    for ((project, id), r) in rows {
        let s = r.first;
        ids.push(*id);
        let values = [
            *project,
            to_i64(r.start_ms),
            to_i64(r.counts.end_ms),
            r.pages,
            r.batches,
            to_i64(r.counts.events),
            to_i64(r.counts.clicks),
            r.bytes,
            to_i64(r.counts.dropped),
            to_i64(r.counts.recorder_errors),
            to_i64(r.counts.errors),
            to_i64(r.counts.freezes),
            to_i64(r.counts.received_ms),
            to_i64(s.longest_freeze_ms),
            to_i64(s.freeze_started_ms),
            to_i64(s.freeze_ended_ms),
            to_i64(r.counts.rage_clicks),
        ];
        for (column, v) in ints.iter_mut().zip(values) {
            column.push(v);
        }
        let strings = [&s.url, &s.user_agent, &s.user, &s.release, &s.environment, &s.browser];
        for (column, v) in texts.iter_mut().zip(strings) {
            column.push(opt_text(v.as_ref()).unwrap_or_default());
        }
    }
    let culprits: Vec<String> =
        rows.iter().map(|(_, r)| opt_text(r.first.freeze_culprit.as_ref()).unwrap_or_default()).collect();
    let [
        projects,
        starts,
        ends,
        pages,
        batches,
        events,
        clicks,
        bytes,
        dropped,
        recorder_errors,
        errors,
        freezes,
        received,
        longest,
        freeze_started,
        freeze_ended,
        rage,
    ] = &ints;
    let [urls, agents, users, releases, environments, browsers] = &texts;
    let written = tx
        .query(
            upsert,
            &[
                projects,
                &ids,
                starts,
                ends,
                urls,
                agents,
                pages,
                batches,
                events,
                clicks,
                bytes,
                dropped,
                recorder_errors,
                users,
                releases,
                environments,
                browsers,
                errors,
                freezes,
                received,
                longest,
                &culprits,
                freeze_started,
                freeze_ended,
                rage,
                &cap,
            ],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let named: Vec<&(&(i64, &str), &Run<'_>)> = rows
        .iter()
        .filter(|(_, r)| r.first.user.is_some() || r.first.release.is_some() || r.first.environment.is_some())
        .collect();
    if !named.is_empty() {
        let projects: Vec<i64> = named.iter().map(|((p, _), _)| *p).collect();
        let ids: Vec<&str> = named.iter().map(|((_, id), _)| *id).collect();
        let field = |f: fn(&BatchSummary) -> Option<&String>| -> Vec<Option<String>> {
            named.iter().map(|(_, r)| opt_text(f(r.first))).collect()
        };
        let (users, releases) = (field(|s| s.user.as_ref()), field(|s| s.release.as_ref()));
        let environments = field(|s| s.environment.as_ref());
        tx.execute(SET_LATEST, &[&projects, &ids, &users, &releases, &environments]).await?;
    }
    Ok(written)
}

/// One error group's sum over a group of batches.
struct GroupSum {
    message: String,
    frame: String,
    count: i64,
    first_ms: i64,
    last_ms: i64,
}

/// The group's facts: the names its sessions have already and how many facts each has, read in
/// two queries; the facts followed batch by batch in memory, as the batch-by-batch statement
/// (`bodies::index_batch`) decides each: a name the session has takes its latest value, a new
/// one is kept while the session has fewer than [`MAX_FACTS_PER_SESSION`]; written in one
/// statement.
async fn write_facts(tx: &deadpool_postgres::Transaction<'_>, new: &[&Entry]) -> Result<(), Error> {
    type Key = (i64, String, String);
    let mut named: BTreeSet<Key> = BTreeSet::new();
    for e in new {
        for (name, _) in &e.summary.facts {
            named.insert((e.project, e.summary.session.clone(), text(name)));
        }
    }
    if named.is_empty() {
        return Ok(());
    }
    let (mut projects, mut sessions, mut names) = (vec![], vec![], vec![]);
    for (p, s, n) in &named {
        projects.push(*p);
        sessions.push(s.as_str());
        names.push(n.as_str());
    }
    let mut known: HashSet<Key> = HashSet::new();
    for r in tx.query(LOAD_FACT_NAMES, &[&projects, &sessions, &names]).await? {
        known.insert((r.get(0), r.get(1), r.get(2)));
    }
    let with_facts: BTreeSet<(i64, &str)> = named.iter().map(|(p, s, _)| (*p, s.as_str())).collect();
    let (projects, sessions): (Vec<i64>, Vec<&str>) = with_facts.into_iter().unzip();
    let mut count: HashMap<(i64, String), i64> = HashMap::new();
    for r in tx.query(COUNT_FACTS, &[&projects, &sessions]).await? {
        count.insert((r.get(0), r.get(1)), r.get(2));
    }
    let mut writes: BTreeMap<Key, String> = BTreeMap::new();
    for e in new {
        for (name, value) in &e.summary.facts {
            let key = (e.project, e.summary.session.clone(), text(name));
            if let Some(v) = writes.get_mut(&key) {
                *v = text(value);
            } else if known.contains(&key) {
                writes.insert(key, text(value));
            } else {
                let n = count.entry((key.0, key.1.clone())).or_insert(0);
                if *n < MAX_FACTS_PER_SESSION {
                    *n += 1;
                    writes.insert(key, text(value));
                }
            }
        }
    }
    if writes.is_empty() {
        // Every new name was past its session's cap.
        return Ok(());
    }
    let projects: Vec<i64> = writes.keys().map(|k| k.0).collect();
    let sessions: Vec<&str> = writes.keys().map(|k| k.1.as_str()).collect();
    let names: Vec<&str> = writes.keys().map(|k| k.2.as_str()).collect();
    let values: Vec<&str> = writes.values().map(String::as_str).collect();
    tx.execute(SAVE_FACTS, &[&projects, &sessions, &names, &values]).await?;
    Ok(())
}

/// Error groups and sightings by session of the new batches, merged by row.
async fn write_errors(tx: &deadpool_postgres::Transaction<'_>, new: &[&Entry]) -> Result<(), Error> {
    let mut groups: BTreeMap<(i64, String), GroupSum> = BTreeMap::new();
    // (project, fingerprint, session) -> (count, last)
    let mut sightings: BTreeMap<(i64, String, &str), (i64, i64)> = BTreeMap::new();
    for e in new {
        for x in &e.summary.error_sightings {
            let (fingerprint, count, at) = (text(&x.fingerprint), to_i64(x.count), to_i64(x.at_ms));
            let g = groups.entry((e.project, fingerprint.clone())).or_insert_with(|| GroupSum {
                message: text(&x.message),
                frame: text(&x.frame),
                count: 0,
                first_ms: at,
                last_ms: at,
            });
            g.count = g.count.saturating_add(count);
            g.first_ms = g.first_ms.min(at);
            g.last_ms = g.last_ms.max(at);
            let s = sightings.entry((e.project, fingerprint, e.summary.session.as_str())).or_insert((0, at));
            s.0 = s.0.saturating_add(count);
            s.1 = s.1.max(at);
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    let projects: Vec<i64> = groups.keys().map(|k| k.0).collect();
    let fingerprints: Vec<&str> = groups.keys().map(|k| k.1.as_str()).collect();
    let messages: Vec<&str> = groups.values().map(|g| g.message.as_str()).collect();
    let frames: Vec<&str> = groups.values().map(|g| g.frame.as_str()).collect();
    let counts: Vec<i64> = groups.values().map(|g| g.count).collect();
    let firsts: Vec<i64> = groups.values().map(|g| g.first_ms).collect();
    let lasts: Vec<i64> = groups.values().map(|g| g.last_ms).collect();
    tx.execute(ADD_ERROR_GROUPS, &[&projects, &fingerprints, &messages, &frames, &counts, &firsts, &lasts]).await?;
    let projects: Vec<i64> = sightings.keys().map(|k| k.0).collect();
    let fingerprints: Vec<&str> = sightings.keys().map(|k| k.1.as_str()).collect();
    let sessions: Vec<&str> = sightings.keys().map(|k| k.2).collect();
    let counts: Vec<i64> = sightings.values().map(|v| v.0).collect();
    let lasts: Vec<i64> = sightings.values().map(|v| v.1).collect();
    tx.execute(ADD_ERROR_SESSIONS, &[&projects, &fingerprints, &sessions, &counts, &lasts]).await?;
    Ok(())
}

/// The batches of a group with distinct keys (the first of each key, in arrival order), and for
/// every queued batch the index of the batch it shares its key with.
pub(super) fn distinct_keys<T>(items: &[T], key: impl Fn(&T) -> (i64, &str, &str, i64)) -> (Vec<usize>, Vec<usize>) {
    let mut seen: HashMap<(i64, &str, &str, i64), usize> = HashMap::with_capacity(items.len());
    let mut firsts = Vec::with_capacity(items.len());
    let mut of = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let k = key(item);
        let first = *seen.entry(k).or_insert_with(|| {
            firsts.push(i);
            firsts.len() - 1
        });
        of.push(first);
    }
    (firsts, of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(session: &str, seq: u32, start_ms: u64) -> Entry {
        let summary = BatchSummary {
            session: session.into(),
            page: "p".into(),
            seq,
            start_ms,
            end_ms: start_ms + 10,
            received_ms: start_ms + 20,
            events: 2,
            clicks: 1,
            ..BatchSummary::default()
        };
        Entry { project: 1, summary, key: String::new(), encoding: "", size: 100 }
    }

    #[test]
    fn runs_fold_only_batches_that_add_to_counters() {
        let mut first = entry("s", 0, 1_000);
        first.summary.url = Some("https://shop.test/".into());
        let (plain, mut named, earlier) = (entry("s", 1, 2_000), entry("s", 2, 3_000), entry("s", 3, 500));
        named.summary.user = Some("ada".into());
        let mut run = Run::new(&first);
        assert!(run.absorb(&plain), "counters and times only");
        assert!(!run.absorb(&named), "names a user: a run of its own");
        assert!(!run.absorb(&earlier), "starts earlier: the URL rule depends on the order");
        assert_eq!((run.batches, run.pages, run.counts.events, run.counts.clicks, run.bytes), (2, 1, 4, 2, 200));
        assert_eq!((run.start_ms, run.counts.end_ms, run.counts.received_ms), (1_000, 2_010, 2_020));
    }

    #[test]
    fn a_resent_key_in_one_group_follows_its_first() {
        let keys = [(1, "s", "p", 0), (1, "s", "p", 1), (1, "s", "p", 0), (2, "s", "p", 0)];
        let (firsts, of) = distinct_keys(&keys, |k| *k);
        assert_eq!(firsts, [0, 1, 3]);
        assert_eq!(of, [0, 1, 0, 2]);
    }
}
