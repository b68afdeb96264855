//! [`Accounts`] in the scale-out engine.

use replay_core::now_ms;

use super::{PostgresStorage, text};
use crate::Error;
use crate::accounts::{
    Accounts, ApiToken, Login, Membership, NewToken, TOKEN_USE_RESOLUTION_MS, User, join_scopes, split_scopes,
};
use crate::shared::{to_i64, to_u64};

const TOKEN_COLUMNS: &str = "id, name, user_name, project_id, scopes, created_ms, last_used_ms, revoked_ms";

fn token_row(r: &tokio_postgres::Row) -> ApiToken {
    ApiToken {
        id: r.get(0),
        name: r.get(1),
        user: r.get(2),
        project: r.get(3),
        scopes: split_scopes(&r.get::<_, String>(4)),
        created_ms: to_u64(r.get(5)),
        last_used_ms: r.get::<_, Option<i64>>(6).map(to_u64),
        revoked_ms: r.get::<_, Option<i64>>(7).map(to_u64),
    }
}

fn user_row(r: &tokio_postgres::Row) -> User {
    User { name: r.get(0), admin: r.get(1), disabled: r.get(2), created_ms: to_u64(r.get(3)) }
}

fn membership_row(r: &tokio_postgres::Row) -> Membership {
    Membership { project: r.get(0), user: r.get(1), role: r.get(2) }
}

impl Accounts for PostgresStorage {
    fn users(&self) -> Result<Vec<User>, Error> {
        self.block(|e| async move {
            let c = e.pool.get().await?;
            let rows = c.query("SELECT name, admin, disabled, created_ms FROM users ORDER BY name", &[]).await?;
            Ok(rows.iter().map(user_row).collect())
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, Error> {
        let name = text(name);
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            let row =
                c.query_opt("SELECT name, admin, disabled, created_ms FROM users WHERE name = $1", &[&name]).await?;
            Ok(row.as_ref().map(user_row))
        })
    }

    fn set_user_admin(&self, name: &str, admin: bool) -> Result<bool, Error> {
        let name = text(name);
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            Ok(c.execute("UPDATE users SET admin = $2 WHERE name = $1", &[&name, &admin]).await? > 0)
        })
    }

    fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool, Error> {
        let name = text(name);
        self.block(move |e| async move {
            let mut c = e.pool.get().await?;
            let tx = c.transaction().await?;
            let n = tx.execute("UPDATE users SET disabled = $2 WHERE name = $1", &[&name, &disabled]).await?;
            if disabled {
                tx.execute("DELETE FROM logins WHERE user_name = $1", &[&name]).await?;
                tx.execute("DELETE FROM invites WHERE user_name = $1", &[&name]).await?;
                // Its tokens end for good (see the SQLite engine).
                tx.execute(
                    "UPDATE api_tokens SET revoked_ms = $2 WHERE user_name = $1 AND revoked_ms IS NULL",
                    &[&name, &to_i64(now_ms())],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    fn set_membership(&self, project: i64, user: &str, role: Option<&str>) -> Result<(), Error> {
        let (user, role) = (text(user), role.map(text));
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            match role {
                Some(role) => {
                    c.execute(
                        "INSERT INTO memberships (project_id, user_name, role) VALUES ($1, $2, $3)
                         ON CONFLICT (project_id, user_name) DO UPDATE SET role = EXCLUDED.role",
                        &[&project, &user, &role],
                    )
                    .await?
                }
                None => {
                    c.execute("DELETE FROM memberships WHERE project_id = $1 AND user_name = $2", &[&project, &user])
                        .await?
                }
            };
            Ok(())
        })
    }

    fn members(&self, project: i64) -> Result<Vec<Membership>, Error> {
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            let rows = c
                .query(
                    "SELECT project_id, user_name, role FROM memberships WHERE project_id = $1 ORDER BY user_name",
                    &[&project],
                )
                .await?;
            Ok(rows.iter().map(membership_row).collect())
        })
    }

    fn memberships(&self, user: &str) -> Result<Vec<Membership>, Error> {
        let user = text(user);
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            let rows = c
                .query(
                    "SELECT project_id, user_name, role FROM memberships WHERE user_name = $1 ORDER BY project_id",
                    &[&user],
                )
                .await?;
            Ok(rows.iter().map(membership_row).collect())
        })
    }

    fn logins(&self, user: &str, now: u64) -> Result<Vec<Login>, Error> {
        let user = text(user);
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            let rows = c
                .query(
                    "SELECT token_hash, created_ms, expires_ms FROM logins WHERE user_name = $1 AND expires_ms > $2
                     ORDER BY created_ms DESC, token_hash",
                    &[&user, &to_i64(now)],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| Login { id: r.get(0), created_ms: to_u64(r.get(1)), expires_ms: to_u64(r.get(2)) })
                .collect())
        })
    }

    fn create_invite(&self, token_hash: &str, user: &str, expires_ms: u64) -> Result<(), Error> {
        let (token, user) = (text(token_hash), text(user));
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            c.execute("DELETE FROM invites WHERE expires_ms < $1", &[&to_i64(now_ms())]).await?;
            c.execute(
                "INSERT INTO invites (token_hash, user_name, expires_ms) VALUES ($1, $2, $3)",
                &[&token, &user, &to_i64(expires_ms)],
            )
            .await?;
            Ok(())
        })
    }

    fn take_invite(&self, token_hash: &str, now: u64) -> Result<Option<String>, Error> {
        let token = text(token_hash);
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            // One statement: two instances taking the same invitation cannot both get it.
            let row = c
                .query_opt("DELETE FROM invites WHERE token_hash = $1 RETURNING user_name, expires_ms", &[&token])
                .await?;
            Ok(row.and_then(|r| (to_u64(r.get(1)) > now).then(|| r.get(0))))
        })
    }

    fn create_token(&self, t: &NewToken) -> Result<i64, Error> {
        let t = NewToken {
            token_hash: text(&t.token_hash),
            name: text(&t.name),
            user: t.user.as_deref().map(text),
            project: t.project,
            scopes: t.scopes.iter().map(|s| text(s)).collect(),
        };
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            let row = c
                .query_one(
                    "INSERT INTO api_tokens (token_hash, name, user_name, project_id, scopes, created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[&t.token_hash, &t.name, &t.user, &t.project, &join_scopes(&t.scopes), &to_i64(now_ms())],
                )
                .await?;
            Ok(row.get(0))
        })
    }

    fn use_token(&self, token_hash: &str, now: u64) -> Result<Option<ApiToken>, Error> {
        let token = text(token_hash);
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            let sql = format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE token_hash = $1 AND revoked_ms IS NULL
                 AND (user_name IS NULL OR NOT EXISTS (SELECT 1 FROM users u WHERE u.name = t.user_name AND u.disabled))"
            );
            let Some(row) = c.query_opt(&sql, &[&token]).await? else { return Ok(None) };
            let mut token = token_row(&row);
            if token.last_used_ms.is_none_or(|t| now.saturating_sub(t) >= TOKEN_USE_RESOLUTION_MS) {
                c.execute("UPDATE api_tokens SET last_used_ms = $2 WHERE id = $1", &[&token.id, &to_i64(now)]).await?;
                token.last_used_ms = Some(now);
            }
            Ok(Some(token))
        })
    }

    fn tokens(&self, user: Option<&str>, project: Option<i64>) -> Result<Vec<ApiToken>, Error> {
        let user = user.map(text);
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            let sql = format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE ($1::TEXT IS NULL OR user_name = $1)
                 AND ($2::BIGINT IS NULL OR project_id = $2) ORDER BY id DESC"
            );
            let rows = c.query(&sql, &[&user, &project]).await?;
            Ok(rows.iter().map(token_row).collect())
        })
    }

    fn token(&self, id: i64) -> Result<Option<ApiToken>, Error> {
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1");
            Ok(c.query_opt(&sql, &[&id]).await?.as_ref().map(token_row))
        })
    }

    fn revoke_token(&self, id: i64, now: u64) -> Result<bool, Error> {
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            Ok(c.execute(
                "UPDATE api_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
                &[&id, &to_i64(now)],
            )
            .await?
                > 0)
        })
    }

    fn sso_user(&self, issuer: &str, subject: &str) -> Result<Option<String>, Error> {
        let (issuer, subject) = (text(issuer), text(subject));
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            let row = c
                .query_opt("SELECT user_name FROM sso_links WHERE issuer = $1 AND subject = $2", &[&issuer, &subject])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn link_sso(&self, issuer: &str, subject: &str, user: &str, now: u64) -> Result<Option<String>, Error> {
        let (issuer, subject, user) = (text(issuer), text(subject), text(user));
        self.block(move |e| async move {
            let c = e.pool.get().await?;
            // Without a conflict target: neither the identity's link nor the user's link at
            // this issuer is replaced (an instance inserting the same row at once waits for it).
            c.execute(
                "INSERT INTO sso_links (issuer, subject, user_name, created_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&issuer, &subject, &user, &to_i64(now)],
            )
            .await?;
            let row = c
                .query_opt("SELECT user_name FROM sso_links WHERE issuer = $1 AND subject = $2", &[&issuer, &subject])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }
}
