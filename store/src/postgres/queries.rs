//! The session index and everything else the engine reads, and the small writes outside the
//! batch path (retention, and the helpers `Storage`'s methods use for settings and accounts).

use std::sync::Arc;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use tokio_postgres::types::ToSql;

use replay_core::now_ms;

use super::{Engine, text};
use crate::shared::{COMPARE_ENVIRONMENT_SQL, SESSION_COLUMNS, comparisons, to_i64, to_u64};
use crate::{
    AuditEntry, Error, ErrorGroup, FactComparison, IngestKey, Project, ProjectQuota, RECENT_ERROR_SESSIONS,
    SessionFilter, SessionRow, Unsettled,
};

impl Engine {
    pub(super) async fn project_by_key(&self, key: &str) -> Result<Option<Project>, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT p.id, p.name, p.ingest_key, p.allowed_origins, p.quota_bytes_per_day, p.quota_sessions_per_day,
                        k.expires_ms
                 FROM ingest_keys k JOIN projects p ON p.id = k.project_id
                 WHERE k.key = $1 AND k.revoked_ms IS NULL AND (k.expires_ms IS NULL OR k.expires_ms > $2)",
            )
            .await?;
        let row = client.query_opt(&stmt, &[&key, &to_i64(now_ms())]).await?;
        let project = row.as_ref().map(project_row);
        if let (Some(p), Some(r)) = (&project, &row) {
            self.keys.insert(key, p, r.get::<_, Option<i64>>(6).map(to_u64));
        }
        Ok(project)
    }

    pub(super) fn cached_project(&self, key: &str) -> Option<Arc<Project>> {
        self.keys.get(key)
    }

    /// See [`crate::Storage::rotate_key`].
    pub(super) async fn rotate_key(&self, project: i64, key: String, grace_ms: u64) -> Result<String, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let now = now_ms();
        let (now_i, end) = (to_i64(now), to_i64(now.saturating_add(grace_ms)));
        tx.execute(
            "UPDATE ingest_keys SET expires_ms = LEAST(COALESCE(expires_ms, $2), $2)
             WHERE project_id = $1 AND revoked_ms IS NULL",
            &[&project, &end],
        )
        .await?;
        tx.execute(
            "INSERT INTO ingest_keys (key, project_id, created_ms) VALUES ($1, $2, $3)",
            &[&key, &project, &now_i],
        )
        .await?;
        if tx.execute("UPDATE projects SET ingest_key = $2 WHERE id = $1", &[&project, &key]).await? == 0 {
            return Err(Error::NoSuchProject(project));
        }
        tx.commit().await?;
        self.keys.clear();
        Ok(key)
    }

    /// See [`crate::Storage::revoke_key`].
    pub(super) async fn revoke_key(&self, project: i64, key: String) -> Result<bool, Error> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "UPDATE ingest_keys SET revoked_ms = $3
                 WHERE project_id = $1 AND key = $2 AND revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > $3)",
                &[&project, &key, &to_i64(now_ms())],
            )
            .await?;
        self.keys.clear();
        Ok(n > 0)
    }

    pub(super) async fn ingest_keys(&self, project: i64) -> Result<Vec<IngestKey>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT key, created_ms, expires_ms, revoked_ms FROM ingest_keys WHERE project_id = $1
                 ORDER BY created_ms DESC, key",
                &[&project],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| IngestKey {
                key: r.get(0),
                created_ms: to_u64(r.get(1)),
                expires_ms: r.get::<_, Option<i64>>(2).map(to_u64),
                revoked_ms: r.get::<_, Option<i64>>(3).map(to_u64),
            })
            .collect())
    }

    pub(super) async fn find_sessions(
        &self,
        project: i64,
        f: SessionFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<SessionRow>, Error> {
        let mut sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE project_id = $1");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(project)];
        let mut add = |clause: &str, v: Box<dyn ToSql + Sync + Send>| {
            args.push(v);
            sql.push_str(" AND ");
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(v) = f.since_ms {
            add("start_ms >= ?", Box::new(to_i64(v)));
        }
        if let Some(v) = f.until_ms {
            add("start_ms < ?", Box::new(to_i64(v)));
        }
        if let Some(v) = &f.url_contains {
            // Like the SQLite engine's LIKE: a case-insensitive substring match.
            add("strpos(lower(url), lower(?)) > 0", Box::new(text(v)));
        }
        for (column, value) in
            [("user_id", &f.user), ("release", &f.release), ("environment", &f.environment), ("browser", &f.browser)]
        {
            if let Some(v) = value {
                add(&format!("{column} = ?"), Box::new(text(v)));
            }
        }
        if let Some(v) = f.min_duration_ms {
            add("end_ms - start_ms >= ?", Box::new(to_i64(v)));
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
        for (on, column) in
            [(f.has_dead_click, "dead_clicks"), (f.has_error_click, "error_clicks"), (f.has_quick_back, "quick_backs")]
        {
            if on {
                sql.push_str(&format!(" AND {column} > 0"));
            }
        }
        if f.never_recovered {
            sql.push_str(" AND never_recovered");
        }
        for (clause, values) in crate::search::clauses(&f) {
            let mut parts = clause.split('?');
            sql.push_str(" AND ");
            sql.push_str(parts.next().unwrap_or_default());
            for (part, value) in parts.zip(values) {
                args.push(Box::new(text(&value)));
                sql.push_str(&format!("${}", args.len()));
                sql.push_str(part);
            }
        }
        args.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
        args.push(Box::new(i64::try_from(offset).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" ORDER BY start_ms DESC, id LIMIT ${} OFFSET ${}", args.len() - 1, args.len()));
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql).await?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        Ok(client.query(&stmt, &params).await?.iter().map(session_row).collect())
    }

    pub(super) async fn delete_sessions_before(&self, cutoff_ms: u64) -> Result<u64, Error> {
        let cutoff = to_i64(cutoff_ms);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let keys: Vec<String> = tx
            .query(
                "DELETE FROM batches b USING sessions s
                 WHERE s.project_id = b.project_id AND s.id = b.session_id AND s.received_ms < $1
                 RETURNING b.object_key",
                &[&cutoff],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.execute(
            "DELETE FROM error_sessions e USING sessions s
             WHERE s.project_id = e.project_id AND s.id = e.session_id AND s.received_ms < $1",
            &[&cutoff],
        )
        .await?;
        tx.execute(
            "DELETE FROM session_facts f USING sessions s
             WHERE s.project_id = f.project_id AND s.id = f.session_id AND s.received_ms < $1",
            &[&cutoff],
        )
        .await?;
        tx.execute(
            "DELETE FROM comments c USING sessions s
             WHERE s.project_id = c.project_id AND s.id = c.session_id AND s.received_ms < $1",
            &[&cutoff],
        )
        .await?;
        tx.execute(
            "DELETE FROM session_terms t USING sessions s
             WHERE s.project_id = t.project_id AND s.id = t.session_id AND s.received_ms < $1",
            &[&cutoff],
        )
        .await?;
        tx.execute(
            "DELETE FROM clickmap_views v USING sessions s
             WHERE s.project_id = v.project_id AND s.id = v.session_id AND s.received_ms < $1",
            &[&cutoff],
        )
        .await?;
        // Click map aggregates of the days wholly before the cutoff go with their sessions.
        for table in crate::clickmap::DAY_TABLES {
            tx.execute(&format!("DELETE FROM {table} WHERE day < $1"), &[&crate::clickmap::day_of(cutoff_ms)]).await?;
        }
        let n = tx.execute("DELETE FROM sessions WHERE received_ms < $1", &[&cutoff]).await?;
        // Sessions deleted on request are forgotten with the sessions of their age.
        tx.execute("DELETE FROM deleted_sessions WHERE deleted_ms < $1", &[&cutoff]).await?;
        tx.execute(
            "DELETE FROM error_groups g WHERE NOT EXISTS (SELECT 1 FROM error_sessions s
                WHERE s.project_id = g.project_id AND s.fingerprint = g.fingerprint)",
            &[],
        )
        .await?;
        tx.commit().await?;
        self.delete_objects(keys, "retention").await;
        Ok(n)
    }

    /// Deletes batch bodies whose rows are gone. Called after the rows' transaction committed:
    /// a failure here leaves unreferenced objects, never rows pointing at missing bodies.
    async fn delete_objects(&self, keys: Vec<String>, why: &'static str) {
        let paths = futures_util::stream::iter(keys.into_iter().map(|k| Ok(ObjectPath::from(k)))).boxed();
        let failed = self.store.delete_stream(paths).filter(|r| std::future::ready(r.is_err())).count().await;
        if failed > 0 {
            tracing::warn!(failed, why, "could not delete some batch bodies");
        }
    }

    /// See [`crate::Storage::delete_sessions`]. The session rows go first: that waits for
    /// batches of these sessions being indexed meanwhile (their upsert holds the row), and a
    /// batch indexed after it finds the id in `deleted_sessions` and rolls back (see
    /// `index_batch`). Rows before objects, as retention.
    pub(super) async fn delete_sessions(&self, project: i64, ids: Vec<String>) -> Result<u64, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx.execute("DELETE FROM sessions WHERE project_id = $1 AND id = ANY($2)", &[&project, &ids]).await?;
        tx.execute(
            "INSERT INTO deleted_sessions (project_id, session_id, deleted_ms) SELECT $1, unnest($2::TEXT[]), $3
             ON CONFLICT (project_id, session_id) DO UPDATE SET deleted_ms = EXCLUDED.deleted_ms",
            &[&project, &ids, &to_i64(now_ms())],
        )
        .await?;
        let keys: Vec<String> = tx
            .query(
                "DELETE FROM batches WHERE project_id = $1 AND session_id = ANY($2) RETURNING object_key",
                &[&project, &ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // A group that stays has its message folded (see the SQLite engine): digits are what its
        // sightings do not share, and the message may be a deleted session's.
        tx.execute(
            "UPDATE error_groups SET message = regexp_replace(message, '[0-9]+', 'N', 'g')
             WHERE project_id = $1 AND fingerprint IN
                 (SELECT fingerprint FROM error_sessions WHERE project_id = $1 AND session_id = ANY($2))",
            &[&project, &ids],
        )
        .await?;
        tx.execute(
            "UPDATE error_groups g SET count = GREATEST(0, g.count - e.total)
             FROM (SELECT fingerprint, SUM(count)::BIGINT AS total FROM error_sessions
                   WHERE project_id = $1 AND session_id = ANY($2) GROUP BY fingerprint) e
             WHERE g.project_id = $1 AND g.fingerprint = e.fingerprint",
            &[&project, &ids],
        )
        .await?;
        tx.execute("DELETE FROM error_sessions WHERE project_id = $1 AND session_id = ANY($2)", &[&project, &ids])
            .await?;
        tx.execute("DELETE FROM session_facts WHERE project_id = $1 AND session_id = ANY($2)", &[&project, &ids])
            .await?;
        tx.execute("DELETE FROM comments WHERE project_id = $1 AND session_id = ANY($2)", &[&project, &ids]).await?;
        tx.execute("DELETE FROM session_terms WHERE project_id = $1 AND session_id = ANY($2)", &[&project, &ids])
            .await?;
        for table in crate::clickmap::PAGE_TABLES {
            let sql = crate::clickmap::forget_pages(table, "v.session_id = ANY($2)", "NOT (w.session_id = ANY($2))");
            tx.execute(&sql, &[&project, &ids]).await?;
        }
        tx.execute(&format!("{} v.session_id = ANY($2))", crate::clickmap::FORGET_LABELS), &[&project, &ids]).await?;
        tx.execute("DELETE FROM clickmap_views WHERE project_id = $1 AND session_id = ANY($2)", &[&project, &ids])
            .await?;
        // A click map's sample page view is the one session id its aggregates hold.
        tx.execute(crate::clickmap::FORGET_SAMPLES, &[&project]).await?;
        tx.execute(
            "DELETE FROM error_groups g WHERE g.project_id = $1 AND NOT EXISTS (SELECT 1 FROM error_sessions s
                WHERE s.project_id = g.project_id AND s.fingerprint = g.fingerprint)",
            &[&project],
        )
        .await?;
        tx.commit().await?;
        self.delete_objects(keys, "deletion").await;
        Ok(n)
    }

    /// See [`crate::Storage::delete_project`]: rows in one transaction, then the objects.
    pub(super) async fn delete_project(&self, project: i64) -> Result<bool, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // A batch indexed meanwhile fails on the missing project (`sessions` references it).
        tx.execute("DELETE FROM ingest_keys WHERE project_id = $1", &[&project]).await?;
        let mut keys: Vec<String> = tx
            .query("DELETE FROM batches WHERE project_id = $1 RETURNING object_key", &[&project])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // The project's release files (source maps) go with it, bodies included.
        let artifacts =
            tx.query("DELETE FROM artifacts WHERE project_id = $1 RETURNING object_key", &[&project]).await?;
        keys.extend(artifacts.iter().map(|r| r.get::<_, String>(0)));
        for table in [
            "error_sessions",
            "error_groups",
            "session_facts",
            "session_terms",
            "sessions",
            "deleted_sessions",
            "comments",
            "clickmap_views",
        ]
        .into_iter()
        .chain(crate::clickmap::DAY_TABLES)
        {
            tx.execute(&format!("DELETE FROM {table} WHERE project_id = $1"), &[&project]).await?;
        }
        let found = tx.execute("DELETE FROM projects WHERE id = $1", &[&project]).await?;
        tx.commit().await?;
        self.keys.clear();
        self.delete_objects(keys, "project deletion").await;
        Ok(found > 0)
    }

    pub(super) async fn append_audit(&self, e: AuditEntry) -> Result<(), Error> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO audit_log (project_id, at_ms, actor, action, target, detail)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &e.project_id,
                    &to_i64(e.at_ms),
                    &text(&e.actor),
                    &text(&e.action),
                    &text(&e.target),
                    &text(&e.detail),
                ],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn audit_log(
        &self,
        project: i64,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, project_id, at_ms, actor, action, target, detail FROM audit_log
                 WHERE project_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                &[&project, &before.unwrap_or(i64::MAX), &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                project_id: r.get(1),
                at_ms: to_u64(r.get(2)),
                actor: r.get(3),
                action: r.get(4),
                target: r.get(5),
                detail: r.get(6),
            })
            .collect())
    }

    pub(super) async fn unsettled_sessions(&self, cutoff_ms: u64, limit: usize) -> Result<Vec<Unsettled>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT project_id, id, batches FROM sessions
                 WHERE batches > settled_batches AND received_ms < $1 ORDER BY received_ms LIMIT $2",
                &[&to_i64(cutoff_ms), &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await?;
        Ok(rows.iter().map(|r| Unsettled { project: r.get(0), session: r.get(1), batches: to_u64(r.get(2)) }).collect())
    }

    pub(super) async fn error_groups(&self, project: i64, limit: usize) -> Result<Vec<ErrorGroup>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT g.fingerprint, g.message, g.frame, g.count, g.first_ms, g.last_ms,
                        (SELECT COUNT(*) FROM error_sessions s
                         WHERE s.project_id = g.project_id AND s.fingerprint = g.fingerprint),
                        ARRAY(SELECT s.session_id FROM error_sessions s
                              WHERE s.project_id = g.project_id AND s.fingerprint = g.fingerprint
                              ORDER BY s.last_ms DESC, s.session_id LIMIT $3)
                 FROM error_groups g WHERE g.project_id = $1
                 ORDER BY g.last_ms DESC, g.fingerprint LIMIT $2",
                &[&project, &i64::try_from(limit).unwrap_or(i64::MAX), &(RECENT_ERROR_SESSIONS as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ErrorGroup {
                fingerprint: r.get(0),
                message: r.get(1),
                frame: r.get(2),
                count: to_u64(r.get(3)),
                first_ms: to_u64(r.get(4)),
                last_ms: to_u64(r.get(5)),
                sessions: to_u64(r.get(6)),
                recent_sessions: r.get(7),
            })
            .collect())
    }

    pub(super) async fn compare_environment(
        &self,
        project: i64,
        session: &str,
        sample: usize,
    ) -> Result<Vec<FactComparison>, Error> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(COMPARE_ENVIRONMENT_SQL).await?;
        let sample = i64::try_from(sample).unwrap_or(i64::MAX);
        let rows = client.query(&stmt, &[&project, &session, &sample]).await?;
        Ok(comparisons(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), to_u64(r.get(3))))))
    }

    pub(super) async fn execute(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn ToSql + Sync + Send>>,
    ) -> Result<u64, Error> {
        let client = self.pool.get().await?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        Ok(client.execute(sql, &params).await?)
    }

    pub(super) async fn query_opt_string(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn ToSql + Sync + Send>>,
    ) -> Result<Option<String>, Error> {
        let client = self.pool.get().await?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        Ok(client.query_opt(sql, &params).await?.map(|r| r.get(0)))
    }

    pub(super) async fn count(&self, sql: &'static str) -> Result<u64, Error> {
        let client = self.pool.get().await?;
        Ok(to_u64(client.query_one(sql, &[]).await?.get(0)))
    }
}

pub(super) fn session_row(r: &tokio_postgres::Row) -> SessionRow {
    let n = |i| to_u64(r.get::<_, i64>(i));
    let (start_ms, end_ms) = (n(1), n(2));
    SessionRow {
        id: r.get(0),
        start_ms,
        end_ms,
        duration_ms: end_ms.saturating_sub(start_ms),
        url: r.get(3),
        user_agent: r.get(4),
        pages: n(5),
        batches: n(6),
        events: n(7),
        clicks: n(8),
        bytes: n(9),
        dropped: n(10),
        recorder_errors: n(11),
        user: r.get(12),
        release: r.get(13),
        environment: r.get(14),
        browser: r.get(15),
        errors: n(16),
        freezes: n(17),
        longest_freeze_ms: n(18),
        freeze_culprit: r.get(19),
        never_recovered: r.get(20),
        rage_clicks: n(21),
        dead_clicks: n(22),
        error_clicks: n(23),
        quick_backs: n(24),
    }
}

pub(super) fn project_row(r: &tokio_postgres::Row) -> Project {
    let origins: String = r.get(3);
    Project {
        id: r.get(0),
        name: r.get(1),
        ingest_key: r.get(2),
        allowed_origins: origins.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        quota: ProjectQuota {
            bytes_per_day: r.get::<_, Option<i64>>(4).map(to_u64),
            sessions_per_day: r.get::<_, Option<i64>>(5).map(to_u64),
        },
    }
}
