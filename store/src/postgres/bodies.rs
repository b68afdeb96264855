//! Storing a batch and reading bodies back: the body goes to a fresh object first, then the
//! batch is indexed by the next group commit (`group`, `bulk`), or alone by [`Engine::index_batch`]
//! (one transaction: the batch row, the session index, error groups and facts) when the group
//! cannot take it.
//! A crash in between leaves an unreferenced object, never a row without a body; a concurrent
//! duplicate loses the insert race and deletes its own object.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use replay_core::{BatchSummary, random_hex};
use tokio_postgres::types::ToSql;

use std::sync::atomic::Ordering;

use super::bulk::Entry;
use super::{Engine, opt_text, text};
use crate::model::{IndexedBatch, choose_range, unpack_chosen};
use crate::shared::{max_old_marker_bytes, starts_page_view, stored_body_is_marker, stored_seq, to_i64, to_u64};
use crate::{BatchBody, BatchRange, Error, RangeRequest, Stored, unpack};

/// Batch bodies fetched at once when a session is read.
const PARALLEL_FETCHES: usize = 16;

impl Engine {
    pub(super) fn object_key(&self, project: i64, s: &BatchSummary, nonce: &str) -> ObjectPath {
        // Session and page ids are validated at decode ([A-Za-z0-9_-]{1,64}), so they are safe
        // path parts; the nonce keeps a racing duplicate from overwriting the winner's body.
        self.prefix
            .clone()
            .join(format!("p{project}"))
            .join(s.session.as_str())
            .join(format!("{}-{}-{nonce}", s.page, s.seq))
    }

    pub(super) async fn put_batch(&self, project: i64, s: BatchSummary, body: BatchBody) -> Result<Stored, Error> {
        // Held until the answer: refused at once, before any upload, when the instance holds
        // as many batches as it may.
        let _slot = self.group.admit()?;
        let (stored, session_bytes, deleted) = self.group.check(project, &s).await?;
        if deleted {
            // Checked again in the transaction, against a deletion meanwhile.
            return Err(Error::SessionDeleted);
        }
        if stored {
            return Ok(Stored::Duplicate);
        }
        let cap = self.session_cap.load(Ordering::Relaxed);
        if session_bytes.saturating_add(body.bytes.len() as u64) > cap {
            // Checked again in the transaction, against concurrent uploads of the session.
            return Err(Error::SessionFull { stored: session_bytes, cap });
        }
        if s.is_freeze_marker() && self.marker_stored_under_plain_seq(project, &s, body.bytes.len()).await? {
            return Ok(Stored::Duplicate);
        }
        let key = self.object_key(project, &s, &random_hex(8)?);
        let size = i64::try_from(body.bytes.len()).unwrap_or(i64::MAX);
        let encoding = if body.gzip { "gzip" } else { "" };
        self.store.put(&key, body.bytes.into()).await?;
        let entry = Entry { project, summary: s, key: key.to_string(), encoding, size };
        let inserted = self.group.index(entry).await;
        match inserted {
            Ok(Stored::New) => Ok(Stored::New),
            other => {
                // A duplicate that lost the race, or a failed transaction: the body is unused.
                if let Err(e) = self.store.delete(&key).await {
                    tracing::warn!(error = %e, key = %key, "could not delete an unused batch body");
                }
                other
            }
        }
    }

    /// Whether the freeze marker `s` was stored before markers were keyed apart, under its
    /// plain number ([`stored_body_is_marker`]). Checked here, before the upload, for every
    /// path that indexes (group, bulk, per batch): such rows are never written any more, so
    /// no concurrent upload can add one before the transaction.
    /// Only a row no bigger than [`max_old_marker_bytes`] of the incoming marker is read, and a
    /// body gone meanwhile (deleted, expired) is not one.
    async fn marker_stored_under_plain_seq(
        &self,
        project: i64,
        s: &BatchSummary,
        incoming: usize,
    ) -> Result<bool, Error> {
        let row = {
            let client = self.pool.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT object_key, encoding FROM batches
                     WHERE project_id = $1 AND session_id = $2 AND page_id = $3 AND seq = $4 AND bytes <= $5",
                )
                .await?;
            let bound = max_old_marker_bytes(incoming);
            client.query_opt(&stmt, &[&project, &s.session, &s.page, &i64::from(s.seq), &bound]).await?
        };
        let Some(row) = row else { return Ok(false) };
        let (key, encoding): (String, String) = (row.get(0), row.get(1));
        let bytes = match self.store.get(&ObjectPath::from(key)).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        Ok(stored_body_is_marker(bytes.to_vec(), encoding == "gzip"))
    }

    pub(super) async fn index_batch(
        &self,
        project: i64,
        s: &BatchSummary,
        key: &str,
        encoding: &str,
        size: i64,
    ) -> Result<Stored, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO batches (project_id, session_id, page_id, seq, start_ms, end_ms, received_ms, object_key,
                                      encoding, bytes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        let rows = tx
            .execute(
                &insert,
                &[
                    &project,
                    &s.session,
                    &s.page,
                    &stored_seq(s),
                    &to_i64(s.start_ms),
                    &to_i64(s.end_ms),
                    &to_i64(s.received_ms),
                    &key,
                    &encoding,
                    &size,
                ],
            )
            .await?;
        if rows == 0 {
            return Ok(Stored::Duplicate);
        }
        let upsert = tx
            .prepare_cached(concat!(
                "INSERT INTO sessions AS t (project_id, id, start_ms, end_ms, url, user_agent, pages, batches, events,
                        clicks, bytes, dropped, recorder_errors, user_id, release, environment, browser, errors,
                        freezes, received_ms, longest_freeze_ms, freeze_culprit, freeze_started_ms, freeze_ended_ms,
                        rage_clicks)
                 VALUES ($1, $2, $3, $4, COALESCE($5, ''), COALESCE($6, ''), $7, 1, $8, $9, $10, $11, $12,
                         COALESCE($13, ''), COALESCE($14, ''), COALESCE($15, ''), COALESCE($16, ''), $17, $18, $19,
                         $20, COALESCE($21, ''), $22, $23, $24)
                 ON CONFLICT (project_id, id) DO UPDATE SET
                    user_id = CASE WHEN $13::TEXT IS NOT NULL THEN EXCLUDED.user_id ELSE t.user_id END,
                    release = CASE WHEN $14::TEXT IS NOT NULL THEN EXCLUDED.release ELSE t.release END,
                    environment = CASE WHEN $15::TEXT IS NOT NULL THEN EXCLUDED.environment ELSE t.environment END,
                    ",
                session_merge!(),
                "
                 WHERE t.bytes + EXCLUDED.bytes <= $25",
            ))
            .await?;
        let (url, agent, user) = (opt_text(s.url.as_ref()), opt_text(s.user_agent.as_ref()), opt_text(s.user.as_ref()));
        let (release, environment) = (opt_text(s.release.as_ref()), opt_text(s.environment.as_ref()));
        let (browser, culprit) = (opt_text(s.browser.as_ref()), opt_text(s.freeze_culprit.as_ref()));
        let cap = to_i64(self.session_cap.load(Ordering::Relaxed));
        let params: [&(dyn ToSql + Sync); 25] = [
            &project,
            &s.session,
            &to_i64(s.start_ms),
            &to_i64(s.end_ms),
            &url,
            &agent,
            &i64::from(starts_page_view(s)),
            &to_i64(s.events),
            &to_i64(s.clicks),
            &size,
            &to_i64(s.dropped),
            &to_i64(s.recorder_errors),
            &user,
            &release,
            &environment,
            &browser,
            &to_i64(s.errors),
            &to_i64(s.freezes),
            &to_i64(s.received_ms),
            &to_i64(s.longest_freeze_ms),
            &culprit,
            &to_i64(s.freeze_started_ms),
            &to_i64(s.freeze_ended_ms),
            &to_i64(s.rage_clicks),
            &cap,
        ];
        if tx.execute(&upsert, &params).await? == 0 {
            // Over the session's cap (a concurrent upload got there first): rolled back.
            let stored: i64 = tx
                .query_one("SELECT bytes FROM sessions WHERE project_id = $1 AND id = $2", &[&project, &s.session])
                .await?
                .get(0);
            return Err(Error::SessionFull { stored: to_u64(stored), cap: to_u64(cap) });
        }
        // After the upsert: it waited for a deletion holding the session's row, and this
        // statement sees what that deletion committed (see `delete_sessions`).
        let deleted = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM deleted_sessions WHERE project_id = $1 AND session_id = $2)")
            .await?;
        if tx.query_one(&deleted, &[&project, &s.session]).await?.get::<_, bool>(0) {
            return Err(Error::SessionDeleted);
        }
        if s.dead_clicks + s.error_clicks + s.quick_backs > 0 {
            let counts = [to_i64(s.dead_clicks), to_i64(s.error_clicks), to_i64(s.quick_backs)];
            tx.execute(crate::shared::ADD_FRUSTRATION, &[&project, &s.session, &counts[0], &counts[1], &counts[2]])
                .await?;
        }
        if !s.facts.is_empty() {
            let fact = tx
                .prepare_cached(
                    "INSERT INTO session_facts (project_id, session_id, name, value)
                     SELECT $1, $2, $3, $4
                     WHERE EXISTS (SELECT 1 FROM session_facts
                                   WHERE project_id = $1 AND session_id = $2 AND name = $3)
                        OR (SELECT COUNT(*) FROM session_facts WHERE project_id = $1 AND session_id = $2) < $5
                     ON CONFLICT (project_id, session_id, name) DO UPDATE SET value = EXCLUDED.value",
                )
                .await?;
            let cap = crate::shared::MAX_FACTS_PER_SESSION;
            for (name, value) in &s.facts {
                tx.execute(&fact, &[&project, &s.session, &text(name), &text(value), &cap]).await?;
            }
        }
        super::search::index_terms(&tx, project, s).await?;
        let mut hot = super::clickmap::HotRows::default();
        super::clickmap::index_activity(&tx, project, s, &mut hot).await?;
        hot.write(&tx).await?;
        if !s.error_sightings.is_empty() {
            let group = tx
                .prepare_cached(
                    "INSERT INTO error_groups AS g (project_id, fingerprint, message, frame, count, first_ms, last_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $6)
                     ON CONFLICT (project_id, fingerprint) DO UPDATE SET
                        count = g.count + EXCLUDED.count,
                        first_ms = LEAST(g.first_ms, EXCLUDED.first_ms),
                        last_ms = GREATEST(g.last_ms, EXCLUDED.last_ms)",
                )
                .await?;
            let session = tx
                .prepare_cached(
                    "INSERT INTO error_sessions AS e (project_id, fingerprint, session_id, count, last_ms)
                         VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (project_id, fingerprint, session_id) DO UPDATE SET
                        count = e.count + EXCLUDED.count,
                        last_ms = GREATEST(e.last_ms, EXCLUDED.last_ms)",
                )
                .await?;
            for e in &s.error_sightings {
                let (fingerprint, count, at) = (text(&e.fingerprint), to_i64(e.count), to_i64(e.at_ms));
                tx.execute(&group, &[&project, &fingerprint, &text(&e.message), &text(&e.frame), &count, &at]).await?;
                tx.execute(&session, &[&project, &fingerprint, &s.session, &count, &at]).await?;
            }
        }
        tx.commit().await?;
        Ok(Stored::New)
    }

    pub(super) async fn batch_rows(&self, project: i64, session: &str) -> Result<Vec<tokio_postgres::Row>, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT b.page_id, b.seq, b.object_key, b.encoding FROM batches b
                 JOIN (SELECT page_id, MIN(start_ms) AS page_start FROM batches
                       WHERE project_id = $1 AND session_id = $2 GROUP BY page_id) p ON p.page_id = b.page_id
                 WHERE b.project_id = $1 AND b.session_id = $2
                 ORDER BY p.page_start, b.page_id, b.seq & 4294967295, b.seq DESC",
            )
            .await?;
        Ok(client.query(&stmt, &[&project, &session]).await?)
    }

    /// The batches of a session as the index knows them (object key and encoding, stored size,
    /// start time), in replay order; no body is read.
    pub(super) async fn indexed_batches(
        &self,
        project: i64,
        session: &str,
    ) -> Result<Vec<IndexedBatch<(String, String)>>, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT b.object_key, b.encoding, b.bytes, b.start_ms FROM batches b
                 JOIN (SELECT page_id, MIN(start_ms) AS page_start FROM batches
                       WHERE project_id = $1 AND session_id = $2 GROUP BY page_id) p ON p.page_id = b.page_id
                 WHERE b.project_id = $1 AND b.session_id = $2
                 ORDER BY p.page_start, b.page_id, b.seq & 4294967295, b.seq DESC",
            )
            .await?;
        Ok(client
            .query(&stmt, &[&project, &session])
            .await?
            .iter()
            .map(|r| IndexedBatch { body: (r.get(0), r.get(1)), bytes: to_u64(r.get(2)), start_ms: to_u64(r.get(3)) })
            .collect())
    }

    /// See [`crate::Storage::batch_range`]: only the chosen objects are fetched.
    pub(super) async fn batch_range(
        &self,
        project: i64,
        session: &str,
        range: RangeRequest,
    ) -> Result<BatchRange, Error> {
        let index = self.indexed_batches(project, session).await?;
        let (chosen, next, first_start_ms) = choose_range(&index, &range)?;
        // Fetched as stored, then decompressed in order within the read's budget.
        let keys: Vec<(String, String)> = chosen.iter().map(|&i| index[i].body.clone()).collect();
        let stored: Vec<(Vec<u8>, bool)> = futures_util::stream::iter(keys.into_iter().map(|(key, encoding)| {
            let store = Arc::clone(&self.store);
            async move {
                let bytes = store.get(&ObjectPath::from(key)).await?.bytes().await?;
                Ok::<_, Error>((bytes.to_vec(), encoding == "gzip"))
            }
        }))
        .buffered(PARALLEL_FETCHES)
        .try_collect()
        .await?;
        let (bodies, next) = unpack_chosen(stored, &chosen, next, &range)?;
        Ok(BatchRange { total: index.len(), bodies, next, first_start_ms })
    }

    pub(super) async fn batches(&self, project: i64, session: &str) -> Result<Vec<Vec<u8>>, Error> {
        let rows = self.batch_rows(project, session).await?;
        futures_util::stream::iter(rows.into_iter().map(|row| {
            let store = Arc::clone(&self.store);
            async move {
                let key: String = row.get(2);
                let encoding: String = row.get(3);
                let bytes = store.get(&ObjectPath::from(key)).await?.bytes().await?;
                Ok::<_, Error>(unpack(bytes.to_vec(), encoding == "gzip")?)
            }
        }))
        .buffered(PARALLEL_FETCHES)
        .try_collect()
        .await
    }
}
