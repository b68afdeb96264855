//! Comments on sessions in the embedded engine: one row each, keyed by session and moment.
//! Written on the main connection under its lock (the pending index flushed first), so the
//! session check, the count against [`MAX_COMMENTS_PER_SESSION`] and the insert see one state.
//! A session's comments are deleted with it in `queries` (on request, by retention, with its
//! project).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::shared::{to_i64, to_u64};
use crate::{Comment, CommentAdded, Error, MAX_COMMENTS_PER_SESSION};

const COLUMNS: &str = "id, project_id, session_id, t_ms, author_user, author, body, created_ms";

fn comment_row(r: &Row<'_>) -> rusqlite::Result<Comment> {
    Ok(Comment {
        id: r.get(0)?,
        project_id: r.get(1)?,
        session_id: r.get(2)?,
        t: to_u64(r.get(3)?),
        author_user: r.get(4)?,
        author: r.get(5)?,
        text: r.get(6)?,
        created_ms: to_u64(r.get(7)?),
    })
}

pub(super) fn add(conn: &Connection, c: &Comment) -> Result<CommentAdded, Error> {
    if !c.is_valid() {
        return Ok(CommentAdded::Invalid);
    }
    let tx = conn.unchecked_transaction()?;
    let session = tx
        .prepare_cached("SELECT 1 FROM sessions WHERE project_id = ?1 AND id = ?2")?
        .query_row(params![c.project_id, c.session_id], |_| Ok(()))
        .optional()?;
    if session.is_none() {
        return Ok(CommentAdded::NoSuchSession);
    }
    let held: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM comments WHERE project_id = ?1 AND session_id = ?2")?
        .query_row(params![c.project_id, c.session_id], |r| r.get(0))?;
    if to_u64(held) >= MAX_COMMENTS_PER_SESSION as u64 {
        return Ok(CommentAdded::Full);
    }
    tx.prepare_cached(
        "INSERT INTO comments (project_id, session_id, t_ms, author_user, author, body, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        c.project_id,
        c.session_id,
        to_i64(c.t),
        c.author_user,
        c.author,
        c.text,
        to_i64(c.created_ms)
    ])?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(CommentAdded::Added(Comment { id, ..c.clone() }))
}

pub(super) fn list(conn: &Connection, project: i64, session: &str, limit: usize) -> Result<Vec<Comment>, Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM comments WHERE project_id = ?1 AND session_id = ?2 ORDER BY t_ms, id LIMIT ?3");
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![project, session, i64::try_from(limit).unwrap_or(i64::MAX)], comment_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn get(conn: &Connection, project: i64, session: &str, id: i64) -> Result<Option<Comment>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM comments WHERE project_id = ?1 AND session_id = ?2 AND id = ?3");
    Ok(conn.prepare_cached(&sql)?.query_row(params![project, session, id], comment_row).optional()?)
}

pub(super) fn delete(conn: &Connection, project: i64, session: &str, id: i64) -> Result<bool, Error> {
    let n = conn
        .prepare_cached("DELETE FROM comments WHERE project_id = ?1 AND session_id = ?2 AND id = ?3")?
        .execute(params![project, session, id])?;
    Ok(n > 0)
}
