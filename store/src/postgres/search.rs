//! Keeps a batch's search terms in PostgreSQL (the SQL is `crate::search`'s).

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
