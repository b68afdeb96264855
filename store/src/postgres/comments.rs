//! Comments on sessions in the scale-out engine: one row each. Adding one locks its session's
//! row (`FOR UPDATE`) for the check, the count against [`MAX_COMMENTS_PER_SESSION`] and the
//! insert, so concurrent instances cannot pass the cap, and a deletion of the session (which
//! deletes the session row first, then its comments) waits for the insert and takes the new
//! comment with it. A session's comments are deleted with it in `queries` (on request, by
//! retention, with its project).

use tokio_postgres::Row;

use super::{Engine, text};
use crate::shared::{to_i64, to_u64};
use crate::{Comment, CommentAdded, Error, MAX_COMMENTS_PER_SESSION};

const COLUMNS: &str = "id, project_id, session_id, t_ms, author_user, author, body, created_ms";

fn comment_row(r: &Row) -> Comment {
    Comment {
        id: r.get(0),
        project_id: r.get(1),
        session_id: r.get(2),
        t: to_u64(r.get(3)),
        author_user: r.get(4),
        author: r.get(5),
        text: r.get(6),
        created_ms: to_u64(r.get(7)),
    }
}

impl Engine {
    pub(super) async fn add_comment(&self, c: Comment) -> Result<CommentAdded, Error> {
        if !c.is_valid() {
            return Ok(CommentAdded::Invalid);
        }
        let c = Comment {
            session_id: text(&c.session_id),
            author_user: text(&c.author_user),
            author: text(&c.author),
            text: text(&c.text),
            ..c
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let session = tx
            .query_opt(
                "SELECT 1 FROM sessions WHERE project_id = $1 AND id = $2 FOR UPDATE",
                &[&c.project_id, &c.session_id],
            )
            .await?;
        if session.is_none() {
            return Ok(CommentAdded::NoSuchSession);
        }
        let held: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM comments WHERE project_id = $1 AND session_id = $2",
                &[&c.project_id, &c.session_id],
            )
            .await?
            .get(0);
        if to_u64(held) >= MAX_COMMENTS_PER_SESSION as u64 {
            return Ok(CommentAdded::Full);
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO comments (project_id, session_id, t_ms, author_user, author, body, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &c.project_id,
                    &c.session_id,
                    &to_i64(c.t),
                    &c.author_user,
                    &c.author,
                    &c.text,
                    &to_i64(c.created_ms),
                ],
            )
            .await?
            .get(0);
        tx.commit().await?;
        Ok(CommentAdded::Added(Comment { id, ..c }))
    }

    pub(super) async fn comments(&self, project: i64, session: String, limit: usize) -> Result<Vec<Comment>, Error> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM comments WHERE project_id = $1 AND session_id = $2 ORDER BY t_ms, id LIMIT $3"
        );
        let rows = client.query(&sql, &[&project, &session, &i64::try_from(limit).unwrap_or(i64::MAX)]).await?;
        Ok(rows.iter().map(comment_row).collect())
    }

    pub(super) async fn comment(&self, project: i64, session: String, id: i64) -> Result<Option<Comment>, Error> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {COLUMNS} FROM comments WHERE project_id = $1 AND session_id = $2 AND id = $3");
        Ok(client.query_opt(&sql, &[&project, &session, &id]).await?.as_ref().map(comment_row))
    }

    pub(super) async fn delete_comment(&self, project: i64, session: String, id: i64) -> Result<bool, Error> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "DELETE FROM comments WHERE project_id = $1 AND session_id = $2 AND id = $3",
                &[&project, &session, &id],
            )
            .await?;
        Ok(n > 0)
    }
}
