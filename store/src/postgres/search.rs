//! Keeps a batch's search terms in PostgreSQL (the SQL is `crate::search`'s), one batch at a
//! time or a group commit's batches at once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use deadpool_postgres::Transaction;

use super::text;
use crate::search::{ADD_DROPPED, ADD_TERM, MAX_TERMS_PER_KIND};
use crate::shared::to_i64;
use crate::{BatchSummary, Error};

/// Adds the terms of `s` to its session (after the session's upsert, in the batch's
/// transaction), counting those over the session's cap with the ones the summary left out.
pub(super) async fn index_terms(tx: &Transaction<'_>, project: i64, s: &BatchSummary) -> Result<(), Error> {
    let mut dropped = s.search_terms_dropped;
    if !s.search_terms.is_empty() {
        let add = tx.prepare_cached(ADD_TERM).await?;
        let cap = i64::try_from(MAX_TERMS_PER_KIND).unwrap_or(i64::MAX);
        for t in &s.search_terms {
            let (kind, term, first, last) = (t.kind.code(), text(&t.text), to_i64(t.first_ms), to_i64(t.last_ms));
            if tx.execute(&add, &[&project, &s.session, &kind, &term, &first, &last, &cap]).await? == 0 {
                dropped += 1;
            }
        }
    }
    if dropped > 0 {
        tx.execute(ADD_DROPPED, &[&project, &s.session, &to_i64(dropped)]).await?;
    }
    Ok(())
}

/// The stored terms among `$1`..`$4` (arrays of project, session, kind, term).
const LOAD_TERMS: &str = "SELECT t.project_id, t.session_id, t.kind, t.term FROM session_terms t \
     JOIN UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[]) AS u(project_id, session_id, kind, term) \
     ON t.project_id = u.project_id AND t.session_id = u.session_id AND t.kind = u.kind AND t.term = u.term";

/// How many terms of each kind `$1`..`$3` (arrays of project, session, kind) the sessions keep.
const COUNT_TERMS: &str = "SELECT t.project_id, t.session_id, t.kind, COUNT(*) FROM session_terms t \
     JOIN UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[]) AS u(project_id, session_id, kind) \
     ON t.project_id = u.project_id AND t.session_id = u.session_id AND t.kind = u.kind \
     GROUP BY t.project_id, t.session_id, t.kind";

/// Terms added or seen again, many rows at once (keys unique).
const SAVE_TERMS: &str = "INSERT INTO session_terms AS t (project_id, session_id, kind, term, first_ms, last_ms) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[]) \
     ON CONFLICT (project_id, session_id, kind, term) DO UPDATE SET \
        first_ms = LEAST(t.first_ms, EXCLUDED.first_ms), last_ms = GREATEST(t.last_ms, EXCLUDED.last_ms)";

/// Terms the sessions could not keep, one row per session.
const SAVE_DROPPED: &str = "UPDATE sessions s SET terms_dropped = s.terms_dropped + u.n \
     FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[]) AS u(project_id, id, n) \
     WHERE s.project_id = u.project_id AND s.id = u.id";

/// [`index_terms`] for a group's new batches (in arrival order) at once: which of their terms
/// are stored and how many of each kind their sessions keep are read in two queries, the cap
/// applied batch by batch in memory as [`index_terms`] does (the sessions' rows are locked, so
/// no one else adds terms to them meanwhile), and the terms written in one statement.
pub(super) async fn index_terms_bulk(tx: &Transaction<'_>, batches: &[(i64, &BatchSummary)]) -> Result<(), Error> {
    type Key = (i64, String, i64, String);
    let mut wanted: BTreeSet<Key> = BTreeSet::new();
    for (project, s) in batches {
        for t in &s.search_terms {
            wanted.insert((*project, s.session.clone(), t.kind.code(), text(&t.text)));
        }
    }
    let mut stored: HashSet<Key> = HashSet::new();
    let mut kept: HashMap<(i64, String, i64), i64> = HashMap::new();
    if !wanted.is_empty() {
        let (mut projects, mut sessions, mut kinds, mut terms) = (vec![], vec![], vec![], vec![]);
        for (p, s, k, t) in &wanted {
            projects.push(*p);
            sessions.push(s.as_str());
            kinds.push(*k);
            terms.push(t.as_str());
        }
        for r in tx.query(LOAD_TERMS, &[&projects, &sessions, &kinds, &terms]).await? {
            stored.insert((r.get(0), r.get(1), r.get(2), r.get(3)));
        }
        let kinds_of: BTreeSet<(i64, &str, i64)> = wanted.iter().map(|(p, s, k, _)| (*p, s.as_str(), *k)).collect();
        let (mut projects, mut sessions, mut kinds) = (vec![], vec![], vec![]);
        for (p, s, k) in kinds_of {
            projects.push(p);
            sessions.push(s);
            kinds.push(k);
        }
        for r in tx.query(COUNT_TERMS, &[&projects, &sessions, &kinds]).await? {
            kept.insert((r.get(0), r.get(1), r.get(2)), r.get(3));
        }
    }
    let cap = i64::try_from(MAX_TERMS_PER_KIND).unwrap_or(i64::MAX);
    let mut writes: BTreeMap<Key, (i64, i64)> = BTreeMap::new();
    let mut dropped: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for (project, s) in batches {
        let mut lost = to_i64(s.search_terms_dropped);
        for t in &s.search_terms {
            let key = (*project, s.session.clone(), t.kind.code(), text(&t.text));
            let (first, last) = (to_i64(t.first_ms), to_i64(t.last_ms));
            if let Some(w) = writes.get_mut(&key) {
                (w.0, w.1) = (w.0.min(first), w.1.max(last));
            } else if stored.contains(&key) {
                writes.insert(key, (first, last));
            } else {
                let n = kept.entry((key.0, key.1.clone(), key.2)).or_insert(0);
                if *n < cap {
                    *n += 1;
                    writes.insert(key, (first, last));
                } else {
                    lost += 1;
                }
            }
        }
        if lost > 0 {
            *dropped.entry((*project, s.session.as_str())).or_default() += lost;
        }
    }
    if !writes.is_empty() {
        let projects: Vec<i64> = writes.keys().map(|k| k.0).collect();
        let sessions: Vec<&str> = writes.keys().map(|k| k.1.as_str()).collect();
        let kinds: Vec<i64> = writes.keys().map(|k| k.2).collect();
        let terms: Vec<&str> = writes.keys().map(|k| k.3.as_str()).collect();
        let firsts: Vec<i64> = writes.values().map(|v| v.0).collect();
        let lasts: Vec<i64> = writes.values().map(|v| v.1).collect();
        tx.execute(SAVE_TERMS, &[&projects, &sessions, &kinds, &terms, &firsts, &lasts]).await?;
    }
    if !dropped.is_empty() {
        let (mut projects, mut ids, mut counts) = (vec![], vec![], vec![]);
        for ((p, s), n) in dropped {
            projects.push(p);
            ids.push(s);
            counts.push(n);
        }
        tx.execute(SAVE_DROPPED, &[&projects, &ids, &counts]).await?;
    }
    Ok(())
}
