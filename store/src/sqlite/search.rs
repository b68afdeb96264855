//! Keeps a batch's search terms in the SQLite index (the SQL is `crate::search`'s).

use rusqlite::{Connection, params};

use crate::BatchSummary;
use crate::search::{ADD_DROPPED, ADD_TERM, MAX_TERMS_PER_KIND};
use crate::shared::to_i64;

/// Adds the terms of `s` to its session (after the session's upsert, in its transaction),
/// counting those over the session's cap with the ones the summary already left out.
pub(super) fn index_terms(tx: &Connection, project: i64, s: &BatchSummary) -> rusqlite::Result<()> {
    let mut dropped = s.search_terms_dropped;
    if !s.search_terms.is_empty() {
        let mut add = tx.prepare_cached(ADD_TERM)?;
        let cap = i64::try_from(MAX_TERMS_PER_KIND).unwrap_or(i64::MAX);
        for t in &s.search_terms {
            let (first, last) = (to_i64(t.first_ms), to_i64(t.last_ms));
            if add.execute(params![project, s.session, t.kind.code(), t.text, first, last, cap])? == 0 {
                dropped += 1;
            }
        }
    }
    if dropped > 0 {
        tx.prepare_cached(ADD_DROPPED)?.execute(params![project, s.session, to_i64(dropped)])?;
    }
    Ok(())
}
