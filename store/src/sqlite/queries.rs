//! The read queries of the embedded engine, and its small writes outside the batch path
//! (projects, retention, settings, viewer accounts and logins). Each takes the connection the
//! engine locked, with every acknowledged batch in its indexes (see [`super::SqliteStorage`]).

use replay_core::now_ms;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::model::IndexedBatch;
use crate::shared::{COMPARE_ENVIRONMENT_SQL, SESSION_COLUMNS, comparisons, to_i64, to_u64, wire_seq};
use crate::{
    AuditEntry, Error, ErrorGroup, FactComparison, FrustrationCounts, IngestKey, Project, ProjectQuota,
    RECENT_ERROR_SESSIONS, SessionFilter, SessionRow, Unsettled, Usage,
};

fn project_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
    let origins: String = r.get(3)?;
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        ingest_key: r.get(2)?,
        allowed_origins: origins.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        quota: ProjectQuota {
            bytes_per_day: r.get::<_, Option<i64>>(4)?.map(to_u64),
            sessions_per_day: r.get::<_, Option<i64>>(5)?.map(to_u64),
        },
    })
}

/// `FROM ... ORDER BY` of one session's batches (`?1` project, `?2` session) in replay order:
/// page views by their first batch's start, then sequence numbers (a freeze marker before the
/// real batch of its number: `crate::shared::stored_seq`); `$join` adds joins (the log's bodies
/// as `b`).
macro_rules! session_batches_in_replay_order {
    ($join:literal) => {
        concat!(
            "FROM batch_keys k
             JOIN (SELECT page_id, MIN(start_ms) AS page_start FROM batch_keys
                   WHERE project_id = ?1 AND session_id = ?2 GROUP BY page_id) p ON p.page_id = k.page_id ",
            $join,
            " WHERE k.project_id = ?1 AND k.session_id = ?2
             ORDER BY p.page_start, k.page_id, k.seq & 4294967295, k.seq DESC"
        )
    };
}

const PROJECT_COLUMNS: &str = "id, name, ingest_key, allowed_origins, quota_bytes_per_day, quota_sessions_per_day";

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
        dead_clicks: n(22)?,
        error_clicks: n(23)?,
        quick_backs: n(24)?,
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

pub(super) fn projects(conn: &Connection) -> Result<Vec<Project>, Error> {
    let mut stmt = conn.prepare(&format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY id"))?;
    let rows = stmt.query_map([], project_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn find_sessions(
    conn: &Connection,
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
    for (on, column) in
        [(f.has_dead_click, "dead_clicks"), (f.has_error_click, "error_clicks"), (f.has_quick_back, "quick_backs")]
    {
        if on {
            sql.push_str(&format!(" AND {column} > 0"));
        }
    }
    if f.never_recovered {
        sql.push_str(" AND never_recovered = 1");
    }
    for (clause, values) in crate::search::clauses(f) {
        sql.push_str(" AND ");
        sql.push_str(&clause);
        args.extend(values.into_iter().map(Into::into));
    }
    sql.push_str(" ORDER BY start_ms DESC, id LIMIT ? OFFSET ?");
    args.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    args.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), session_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn session(conn: &Connection, project: i64, id: &str) -> Result<Option<SessionRow>, Error> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE project_id = ?1 AND id = ?2"))?;
    Ok(stmt.query_row(params![project, id], session_row).optional()?)
}

pub(super) fn batch_keys(conn: &Connection, project: i64, session: &str) -> Result<Vec<(String, u32)>, Error> {
    let mut stmt = conn.prepare_cached(concat!("SELECT k.page_id, k.seq ", session_batches_in_replay_order!("")))?;
    let rows = stmt
        .query_map(params![project, session], |r| Ok((r.get::<_, String>(0)?, wire_seq(r.get(1)?))))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn batch_count(conn: &Connection) -> Result<u64, Error> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM batch_keys", [], |r| r.get(0))?;
    Ok(to_u64(n))
}

pub(super) fn delete_sessions_before(conn: &mut Connection, cutoff_ms: u64) -> Result<u64, Error> {
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
    tx.execute(
        "DELETE FROM comments WHERE (project_id, session_id) IN
            (SELECT project_id, id FROM sessions WHERE received_ms < ?1)",
        [cutoff],
    )?;
    tx.execute(
        "DELETE FROM session_terms WHERE (project_id, session_id) IN
            (SELECT project_id, id FROM sessions WHERE received_ms < ?1)",
        [cutoff],
    )?;
    tx.execute(
        "DELETE FROM clickmap_views WHERE (project_id, session_id) IN
            (SELECT project_id, id FROM sessions WHERE received_ms < ?1)",
        [cutoff],
    )?;
    // Click map aggregates of the days wholly before the cutoff go with their sessions.
    for table in crate::clickmap::DAY_TABLES {
        tx.execute(&format!("DELETE FROM {table} WHERE day < ?1"), [crate::clickmap::day_of(cutoff_ms)])?;
    }
    let n = tx.execute("DELETE FROM sessions WHERE received_ms < ?1", [cutoff])?;
    // Sessions deleted on request are forgotten with the sessions of their age.
    tx.execute("DELETE FROM deleted_sessions WHERE deleted_ms < ?1", [cutoff])?;
    tx.execute(
        "DELETE FROM error_groups WHERE NOT EXISTS (SELECT 1 FROM error_sessions s
            WHERE s.project_id = error_groups.project_id AND s.fingerprint = error_groups.fingerprint)",
        [],
    )?;
    tx.commit()?;
    Ok(n as u64)
}

/// Deletes the sessions `ids` of `project` (index rows, logged bodies, keys, error sightings and
/// facts; `held` are the log ids of their batches not indexed yet) and remembers their ids in
/// `deleted_sessions`; returns how many had index rows. Error groups lose the deleted
/// sessions' occurrences, and go when no session is left; a group that stays has its message
/// folded ([`replay_core::diagnostics::normalized`]): it is its first sighting's, perhaps a
/// deleted session's, and what the sightings of a group do not share is their digits (a card
/// number, an order id).
pub(super) fn delete_sessions(conn: &mut Connection, project: i64, ids: &[String], held: &[i64]) -> Result<u64, Error> {
    let tx = conn.transaction()?;
    let now = to_i64(now_ms());
    let mut n = 0;
    {
        let mut held_row = tx.prepare_cached("DELETE FROM batch_log WHERE id = ?1")?;
        for id in held {
            held_row.execute([id])?;
        }
        let mut bodies = tx.prepare_cached(
            "DELETE FROM batch_log WHERE id IN (SELECT batch FROM batch_keys WHERE project_id = ?1 AND session_id = ?2)",
        )?;
        let mut keys = tx.prepare_cached("DELETE FROM batch_keys WHERE project_id = ?1 AND session_id = ?2")?;
        let mut counts = tx.prepare_cached(
            "UPDATE error_groups SET count = MAX(0, count - (SELECT e.count FROM error_sessions e
                 WHERE e.project_id = ?1 AND e.session_id = ?2 AND e.fingerprint = error_groups.fingerprint))
             WHERE project_id = ?1
               AND fingerprint IN (SELECT fingerprint FROM error_sessions WHERE project_id = ?1 AND session_id = ?2)",
        )?;
        let mut sightings =
            tx.prepare_cached("DELETE FROM error_sessions WHERE project_id = ?1 AND session_id = ?2")?;
        let mut touched = tx.prepare_cached(
            "SELECT fingerprint, message FROM error_groups WHERE project_id = ?1
               AND fingerprint IN (SELECT fingerprint FROM error_sessions WHERE project_id = ?1 AND session_id = ?2)",
        )?;
        let mut fold =
            tx.prepare_cached("UPDATE error_groups SET message = ?3 WHERE project_id = ?1 AND fingerprint = ?2")?;
        let mut facts = tx.prepare_cached("DELETE FROM session_facts WHERE project_id = ?1 AND session_id = ?2")?;
        let mut comments = tx.prepare_cached("DELETE FROM comments WHERE project_id = ?1 AND session_id = ?2")?;
        let mut terms = tx.prepare_cached("DELETE FROM session_terms WHERE project_id = ?1 AND session_id = ?2")?;
        let mut labels = tx.prepare_cached(&format!("{} v.session_id = $2)", crate::clickmap::FORGET_LABELS))?;
        let pages = crate::clickmap::PAGE_TABLES
            .map(|table| crate::clickmap::forget_pages(table, "v.session_id = $2", "w.session_id <> $2"));
        let mut views = tx.prepare_cached("DELETE FROM clickmap_views WHERE project_id = ?1 AND session_id = ?2")?;
        let mut rows = tx.prepare_cached("DELETE FROM sessions WHERE project_id = ?1 AND id = ?2")?;
        let mut tombstone = tx.prepare_cached(
            "INSERT INTO deleted_sessions (project_id, session_id, deleted_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (project_id, session_id) DO UPDATE SET deleted_ms = excluded.deleted_ms",
        )?;
        for id in ids {
            bodies.execute(params![project, id])?;
            keys.execute(params![project, id])?;
            let groups = touched
                .query_map(params![project, id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            for (fingerprint, message) in groups {
                let folded = replay_core::diagnostics::normalized(&message);
                if folded != message {
                    fold.execute(params![project, fingerprint, folded])?;
                }
            }
            counts.execute(params![project, id])?;
            sightings.execute(params![project, id])?;
            facts.execute(params![project, id])?;
            comments.execute(params![project, id])?;
            terms.execute(params![project, id])?;
            for sql in &pages {
                tx.prepare_cached(sql)?.execute(params![project, id])?;
            }
            labels.execute(params![project, id])?;
            views.execute(params![project, id])?;
            n += rows.execute(params![project, id])? as u64;
            tombstone.execute(params![project, id, now])?;
        }
    }
    tx.execute(
        "DELETE FROM error_groups WHERE project_id = ?1 AND NOT EXISTS (SELECT 1 FROM error_sessions s
            WHERE s.project_id = error_groups.project_id AND s.fingerprint = error_groups.fingerprint)",
        [project],
    )?;
    // A click map's sample page view is the one session id its aggregates hold.
    tx.execute(crate::clickmap::FORGET_SAMPLES, [project])?;
    tx.commit()?;
    Ok(n)
}

/// Deletes a project and everything it holds (see [`crate::Storage::delete_project`]); `held`
/// are the log ids of its batches not indexed yet.
pub(super) fn delete_project(conn: &mut Connection, project: i64, held: &[i64]) -> Result<bool, Error> {
    let tx = conn.transaction()?;
    {
        let mut held_row = tx.prepare_cached("DELETE FROM batch_log WHERE id = ?1")?;
        for id in held {
            held_row.execute([id])?;
        }
    }
    tx.execute("DELETE FROM batch_log WHERE id IN (SELECT batch FROM batch_keys WHERE project_id = ?1)", [project])?;
    for table in [
        "batch_keys",
        "error_sessions",
        "error_groups",
        "session_facts",
        "session_terms",
        "sessions",
        "deleted_sessions",
        "ingest_keys",
        "artifacts",
        "comments",
        "clickmap_views",
    ]
    .into_iter()
    .chain(crate::clickmap::DAY_TABLES)
    {
        tx.execute(&format!("DELETE FROM {table} WHERE project_id = ?1"), [project])?;
    }
    let n = tx.execute("DELETE FROM projects WHERE id = ?1", [project])?;
    tx.execute(
        "INSERT INTO settings (key, value) VALUES (?1, CAST(?2 AS TEXT))
         ON CONFLICT (key) DO UPDATE SET value = CAST(MAX(CAST(value AS INTEGER), ?2) AS TEXT)",
        params![DELETED_PROJECT_FLOOR, project],
    )?;
    tx.commit()?;
    Ok(n > 0)
}

/// The `settings` row holding the highest id of a deleted project (see `insert_project`).
const DELETED_PROJECT_FLOOR: &str = "deleted_project_max_id";

pub(super) fn rename_project(conn: &Connection, project: i64, name: &str) -> Result<bool, Error> {
    Ok(conn.execute("UPDATE projects SET name = ?2 WHERE id = ?1", params![project, name])? > 0)
}

pub(super) fn project_settings(conn: &Connection, project: i64) -> Result<Option<String>, Error> {
    Ok(conn.query_row("SELECT settings FROM projects WHERE id = ?1", [project], |r| r.get(0)).optional()?)
}

pub(super) fn set_project_settings(conn: &Connection, project: i64, settings: &str) -> Result<bool, Error> {
    Ok(conn.execute("UPDATE projects SET settings = ?2 WHERE id = ?1", params![project, settings])? > 0)
}

pub(super) fn append_audit(conn: &Connection, e: &AuditEntry) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO audit_log (project_id, at_ms, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![e.project_id, to_i64(e.at_ms), e.actor, e.action, e.target, e.detail])?;
    Ok(())
}

pub(super) fn audit_log(
    conn: &Connection,
    project: i64,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<AuditEntry>, Error> {
    let rows = conn
        .prepare_cached(
            "SELECT id, project_id, at_ms, actor, action, target, detail FROM audit_log
             WHERE project_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
        )?
        .query_map(params![project, before.unwrap_or(i64::MAX), i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                project_id: r.get(1)?,
                at_ms: to_u64(r.get(2)?),
                actor: r.get(3)?,
                action: r.get(4)?,
                target: r.get(5)?,
                detail: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(super) fn delete_audit_before(conn: &Connection, cutoff_ms: u64) -> Result<u64, Error> {
    Ok(conn.execute("DELETE FROM audit_log WHERE at_ms < ?1", [to_i64(cutoff_ms)])? as u64)
}

pub(super) fn mark_unrecovered_freezes(conn: &Connection, project: i64, cutoff_ms: u64) -> Result<u64, Error> {
    let n = conn.execute(
        "UPDATE sessions SET never_recovered = 1
         WHERE never_recovered = 0 AND freeze_started_ms > freeze_ended_ms AND received_ms < ?1
           AND project_id = ?2",
        params![to_i64(cutoff_ms), project],
    )?;
    Ok(n as u64)
}

pub(super) fn unsettled_sessions(conn: &Connection, cutoff_ms: u64, limit: usize) -> Result<Vec<Unsettled>, Error> {
    let rows = conn
        .prepare_cached(
            "SELECT project_id, id, batches FROM sessions
             WHERE batches > settled_batches AND received_ms < ?1 ORDER BY received_ms LIMIT ?2",
        )?
        .query_map(params![to_i64(cutoff_ms), i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(Unsettled { project: r.get(0)?, session: r.get(1)?, batches: to_u64(r.get(2)?) })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(super) fn settle_frustration(
    conn: &Connection,
    project: i64,
    session: &str,
    batches: u64,
    counts: Option<FrustrationCounts>,
) -> Result<bool, Error> {
    let n = match counts {
        Some(c) => conn.execute(
            "UPDATE sessions SET dead_clicks = ?4, error_clicks = ?5, quick_backs = ?6, settled_batches = ?3
             WHERE project_id = ?1 AND id = ?2 AND batches = ?3",
            params![
                project,
                session,
                to_i64(batches),
                to_i64(c.dead_clicks),
                to_i64(c.error_clicks),
                to_i64(c.quick_backs)
            ],
        )?,
        None => conn.execute(
            "UPDATE sessions SET settled_batches = ?3 WHERE project_id = ?1 AND id = ?2 AND batches = ?3",
            params![project, session, to_i64(batches)],
        )?,
    };
    Ok(n > 0)
}

pub(super) fn error_groups(conn: &Connection, project: i64, limit: usize) -> Result<Vec<ErrorGroup>, Error> {
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

pub(super) fn compare_environment(
    conn: &Connection,
    project: i64,
    session: &str,
    sample: usize,
) -> Result<Vec<FactComparison>, Error> {
    let sample = i64::try_from(sample).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(COMPARE_ENVIRONMENT_SQL)?
        .query_map(params![project, session, sample], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, to_u64(r.get(3)?))))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(comparisons(rows))
}

pub(super) fn setting(conn: &Connection, key: &str) -> Result<Option<String>, Error> {
    Ok(conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
}

pub(super) fn set_setting(conn: &Connection, key: &str, value: &str) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Creates a user or sets its password; a new password ends the user's sign-ins.
pub(super) fn put_user(conn: &Connection, name: &str, password_hash: &str) -> Result<(), Error> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "INSERT INTO users (name, password_hash, created_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash",
        params![name, password_hash, to_i64(now_ms())],
    )?;
    tx.execute("DELETE FROM logins WHERE user_name = ?1", [name])?;
    tx.commit()?;
    Ok(())
}

pub(super) fn user_password_hash(conn: &Connection, name: &str) -> Result<Option<String>, Error> {
    Ok(conn.query_row("SELECT password_hash FROM users WHERE name = ?1", [name], |r| r.get(0)).optional()?)
}

pub(super) fn user_count(conn: &Connection) -> Result<u64, Error> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
    Ok(to_u64(n))
}

pub(super) fn create_login(conn: &Connection, token_hash: &str, user: &str, expires_ms: u64) -> Result<(), Error> {
    conn.execute("DELETE FROM logins WHERE expires_ms < ?1", [to_i64(now_ms())])?;
    conn.execute(
        "INSERT INTO logins (token_hash, user_name, expires_ms, created_ms) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash, user, to_i64(expires_ms), to_i64(now_ms())],
    )?;
    Ok(())
}

pub(super) fn login_user(conn: &Connection, token_hash: &str, now: u64) -> Result<Option<String>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.user_name FROM logins l JOIN users u ON u.name = l.user_name
         WHERE l.token_hash = ?1 AND l.expires_ms > ?2 AND u.disabled = 0",
    )?;
    Ok(stmt.query_row(params![token_hash, to_i64(now)], |r| r.get(0)).optional()?)
}

pub(super) fn delete_login(conn: &Connection, token_hash: &str) -> Result<(), Error> {
    conn.execute("DELETE FROM logins WHERE token_hash = ?1", [token_hash])?;
    Ok(())
}

pub(super) fn insert_project(conn: &Connection, name: &str, key: &str) -> Result<i64, Error> {
    let tx = conn.unchecked_transaction()?;
    let now = to_i64(now_ms());
    // A new project never takes the id of a deleted one (SQLite reuses the highest free rowid):
    // what outlives a project under its id (its audit trail, caches keyed by project) would
    // otherwise be the new project's. PostgreSQL's sequence never reuses an id.
    tx.execute(
        "INSERT INTO projects (id, name, ingest_key, created_ms) VALUES (
            MAX(COALESCE((SELECT MAX(id) FROM projects), 0),
                COALESCE((SELECT MAX(project_id) FROM audit_log), 0),
                COALESCE((SELECT CAST(value AS INTEGER) FROM settings WHERE key = ?4), 0)) + 1,
            ?1, ?2, ?3)",
        params![name, key, now, DELETED_PROJECT_FLOOR],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute("INSERT INTO ingest_keys (key, project_id, created_ms) VALUES (?1, ?2, ?3)", params![key, id, now])?;
    tx.commit()?;
    Ok(id)
}

/// See [`crate::Storage::rotate_key`].
pub(super) fn rotate_key(conn: &Connection, project: i64, key: &str, grace_ms: u64) -> Result<(), Error> {
    let tx = conn.unchecked_transaction()?;
    let now = now_ms();
    let (now_i, end) = (to_i64(now), to_i64(now.saturating_add(grace_ms)));
    tx.execute(
        "UPDATE ingest_keys SET expires_ms = MIN(COALESCE(expires_ms, ?2), ?2)
         WHERE project_id = ?1 AND revoked_ms IS NULL",
        params![project, end],
    )?;
    tx.execute(
        "INSERT INTO ingest_keys (key, project_id, created_ms) VALUES (?1, ?2, ?3)",
        params![key, project, now_i],
    )?;
    if tx.execute("UPDATE projects SET ingest_key = ?2 WHERE id = ?1", params![project, key])? == 0 {
        return Err(Error::NoSuchProject(project));
    }
    tx.commit()?;
    Ok(())
}

/// See [`crate::Storage::revoke_key`].
pub(super) fn revoke_key(conn: &Connection, project: i64, key: &str) -> Result<bool, Error> {
    let n = conn.execute(
        "UPDATE ingest_keys SET revoked_ms = ?3
         WHERE project_id = ?1 AND key = ?2 AND revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > ?3)",
        params![project, key, to_i64(now_ms())],
    )?;
    Ok(n > 0)
}

pub(super) fn ingest_keys(conn: &Connection, project: i64) -> Result<Vec<IngestKey>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, created_ms, expires_ms, revoked_ms FROM ingest_keys WHERE project_id = ?1
         ORDER BY created_ms DESC, rowid DESC",
    )?;
    let rows = stmt
        .query_map([project], |r| {
            Ok(IngestKey {
                key: r.get(0)?,
                created_ms: to_u64(r.get(1)?),
                expires_ms: r.get::<_, Option<i64>>(2)?.map(to_u64),
                revoked_ms: r.get::<_, Option<i64>>(3)?.map(to_u64),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn set_project_quota(conn: &Connection, project: i64, quota: ProjectQuota) -> Result<(), Error> {
    let n = conn.execute(
        "UPDATE projects SET quota_bytes_per_day = ?2, quota_sessions_per_day = ?3 WHERE id = ?1",
        params![project, quota.bytes_per_day.map(to_i64), quota.sessions_per_day.map(to_i64)],
    )?;
    if n == 0 {
        return Err(Error::NoSuchProject(project));
    }
    Ok(())
}

pub(super) fn set_allowed_origins(conn: &Connection, project: i64, origins: &[String]) -> Result<(), Error> {
    conn.execute("UPDATE projects SET allowed_origins = ?2 WHERE id = ?1", params![project, origins.join(",")])?;
    Ok(())
}

/// The project of a live key, and when the key expires.
pub(super) fn project_by_key(conn: &Connection, key: &str) -> Result<Option<(Project, Option<u64>)>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.id, p.name, p.ingest_key, p.allowed_origins, p.quota_bytes_per_day, p.quota_sessions_per_day,
                k.expires_ms
         FROM ingest_keys k JOIN projects p ON p.id = k.project_id
         WHERE k.key = ?1 AND k.revoked_ms IS NULL AND (k.expires_ms IS NULL OR k.expires_ms > ?2)",
    )?;
    let row = stmt
        .query_row(params![key, to_i64(now_ms())], |r| Ok((project_row(r)?, r.get::<_, Option<i64>>(6)?.map(to_u64))))
        .optional()?;
    Ok(row)
}

/// The batches of a session as the index knows them (their `batch_log` ids, stored sizes and
/// start times), in replay order; no body is read.
pub(super) fn indexed_batches(conn: &Connection, project: i64, session: &str) -> Result<Vec<IndexedBatch<i64>>, Error> {
    let mut stmt =
        conn.prepare_cached(concat!("SELECT k.batch, k.bytes, k.start_ms ", session_batches_in_replay_order!("")))?;
    let rows = stmt
        .query_map(params![project, session], |r| {
            Ok(IndexedBatch { body: r.get::<_, i64>(0)?, bytes: to_u64(r.get(1)?), start_ms: to_u64(r.get(2)?) })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// One logged body and its encoding (`None` when retention deleted it meanwhile).
pub(super) fn logged_body(conn: &Connection, id: i64) -> Result<Option<(Vec<u8>, String)>, Error> {
    let mut stmt = conn.prepare_cached("SELECT body, encoding FROM batch_log WHERE id = ?1")?;
    Ok(stmt.query_row([id], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))).optional()?)
}

/// Stored bytes of a session (from the session index).
pub(super) fn session_stored_bytes(conn: &Connection, project: i64, session: &str) -> Result<u64, Error> {
    let mut stmt = conn.prepare_cached("SELECT bytes FROM sessions WHERE project_id = ?1 AND id = ?2")?;
    Ok(stmt.query_row(params![project, session], |r| r.get::<_, i64>(0)).optional()?.map_or(0, to_u64))
}

/// What a project stored since `since` (see [`crate::Storage::usage_since`]).
pub(super) fn usage_since(conn: &Connection, project: i64, since: u64, max_ids: usize) -> Result<Usage, Error> {
    let since = to_i64(since);
    let (sessions, bytes): (i64, i64) = conn.query_row(
        "SELECT COUNT(*) FILTER (WHERE start_ms >= ?2), COALESCE(SUM(bytes), 0) FROM sessions
         WHERE project_id = ?1 AND received_ms >= ?2",
        params![project, since],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let session_ids = conn
        .prepare_cached(
            "SELECT id FROM sessions WHERE project_id = ?1 AND received_ms >= ?2 AND start_ms >= ?2 LIMIT ?3",
        )?
        .query_map(params![project, since, i64::try_from(max_ids).unwrap_or(i64::MAX)], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Usage { sessions: to_u64(sessions), bytes: to_u64(bytes), session_ids })
}

/// The stored bodies of a session and their encodings, in replay order.
pub(super) fn stored_bodies(conn: &Connection, project: i64, session: &str) -> Result<Vec<(Vec<u8>, String)>, Error> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT b.body, b.encoding ",
        session_batches_in_replay_order!("JOIN batch_log b ON b.id = k.batch")
    ))?;
    let rows = stmt
        .query_map(params![project, session], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_contains("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}
