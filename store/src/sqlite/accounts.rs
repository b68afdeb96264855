//! [`Accounts`] in the embedded engine: reads on the lookup connection, writes on the main one
//! (these tables are never touched by the batch writer, so no index flush is needed).

use replay_core::now_ms;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStorage;
use crate::Error;
use crate::accounts::{
    Accounts, ApiToken, Login, Membership, NewToken, TOKEN_USE_RESOLUTION_MS, User, join_scopes, split_scopes,
};
use crate::shared::{to_i64, to_u64};

const TOKEN_COLUMNS: &str = "id, name, user_name, project_id, scopes, created_ms, last_used_ms, revoked_ms";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get(0)?,
        name: r.get(1)?,
        user: r.get(2)?,
        project: r.get(3)?,
        scopes: split_scopes(&r.get::<_, String>(4)?),
        created_ms: to_u64(r.get(5)?),
        last_used_ms: r.get::<_, Option<i64>>(6)?.map(to_u64),
        revoked_ms: r.get::<_, Option<i64>>(7)?.map(to_u64),
    })
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User { name: r.get(0)?, admin: r.get(1)?, disabled: r.get(2)?, created_ms: to_u64(r.get(3)?) })
}

fn membership_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Membership> {
    Ok(Membership { project: r.get(0)?, user: r.get(1)?, role: r.get(2)? })
}

impl SqliteStorage {
    /// Runs a write on the main connection, without flushing the index.
    fn write_accounts<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        f(&self.conn.lock().map_err(|_| Error::Poisoned)?.conn)
    }
}

impl Accounts for SqliteStorage {
    fn users(&self) -> Result<Vec<User>, Error> {
        self.lookup(|c| {
            let mut stmt = c.prepare("SELECT name, admin, disabled, created_ms FROM users ORDER BY name")?;
            Ok(stmt.query_map([], user_row)?.collect::<Result<_, _>>()?)
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, Error> {
        self.lookup(|c| {
            Ok(c.query_row("SELECT name, admin, disabled, created_ms FROM users WHERE name = ?1", [name], user_row)
                .optional()?)
        })
    }

    fn set_user_admin(&self, name: &str, admin: bool) -> Result<bool, Error> {
        self.write_accounts(|c| Ok(c.execute("UPDATE users SET admin = ?2 WHERE name = ?1", params![name, admin])? > 0))
    }

    fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool, Error> {
        self.write_accounts(|c| {
            let tx = c.unchecked_transaction()?;
            let n = tx.execute("UPDATE users SET disabled = ?2 WHERE name = ?1", params![name, disabled])?;
            if disabled {
                tx.execute("DELETE FROM logins WHERE user_name = ?1", [name])?;
                tx.execute("DELETE FROM invites WHERE user_name = ?1", [name])?;
                // Its tokens end for good: enabling the account again must not bring back a
                // token that leaked.
                tx.execute(
                    "UPDATE api_tokens SET revoked_ms = ?2 WHERE user_name = ?1 AND revoked_ms IS NULL",
                    params![name, to_i64(now_ms())],
                )?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn set_membership(&self, project: i64, user: &str, role: Option<&str>) -> Result<(), Error> {
        self.write_accounts(|c| {
            match role {
                Some(role) => c.execute(
                    "INSERT INTO memberships (project_id, user_name, role) VALUES (?1, ?2, ?3)
                     ON CONFLICT (project_id, user_name) DO UPDATE SET role = excluded.role",
                    params![project, user, role],
                )?,
                None => c.execute(
                    "DELETE FROM memberships WHERE project_id = ?1 AND user_name = ?2",
                    params![project, user],
                )?,
            };
            Ok(())
        })
    }

    fn members(&self, project: i64) -> Result<Vec<Membership>, Error> {
        self.lookup(|c| {
            let mut stmt = c.prepare(
                "SELECT project_id, user_name, role FROM memberships WHERE project_id = ?1 ORDER BY user_name",
            )?;
            Ok(stmt.query_map([project], membership_row)?.collect::<Result<_, _>>()?)
        })
    }

    fn memberships(&self, user: &str) -> Result<Vec<Membership>, Error> {
        self.lookup(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT project_id, user_name, role FROM memberships WHERE user_name = ?1 ORDER BY project_id",
            )?;
            Ok(stmt.query_map([user], membership_row)?.collect::<Result<_, _>>()?)
        })
    }

    fn logins(&self, user: &str, now: u64) -> Result<Vec<Login>, Error> {
        self.lookup(|c| {
            let mut stmt = c.prepare(
                "SELECT token_hash, created_ms, expires_ms FROM logins WHERE user_name = ?1 AND expires_ms > ?2
                 ORDER BY created_ms DESC, token_hash",
            )?;
            let rows = stmt.query_map(params![user, to_i64(now)], |r| {
                Ok(Login { id: r.get(0)?, created_ms: to_u64(r.get(1)?), expires_ms: to_u64(r.get(2)?) })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn create_invite(&self, token_hash: &str, user: &str, expires_ms: u64) -> Result<(), Error> {
        self.write_accounts(|c| {
            c.execute("DELETE FROM invites WHERE expires_ms < ?1", [to_i64(now_ms())])?;
            c.execute(
                "INSERT INTO invites (token_hash, user_name, expires_ms) VALUES (?1, ?2, ?3)",
                params![token_hash, user, to_i64(expires_ms)],
            )?;
            Ok(())
        })
    }

    fn take_invite(&self, token_hash: &str, now: u64) -> Result<Option<String>, Error> {
        self.write_accounts(|c| {
            let tx = c.unchecked_transaction()?;
            let found: Option<(String, i64)> = tx
                .query_row("SELECT user_name, expires_ms FROM invites WHERE token_hash = ?1", [token_hash], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            tx.execute("DELETE FROM invites WHERE token_hash = ?1", [token_hash])?;
            tx.commit()?;
            Ok(found.filter(|(_, expires)| to_u64(*expires) > now).map(|(user, _)| user))
        })
    }

    fn create_token(&self, t: &NewToken) -> Result<i64, Error> {
        self.write_accounts(|c| {
            c.execute(
                "INSERT INTO api_tokens (token_hash, name, user_name, project_id, scopes, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![t.token_hash, t.name, t.user, t.project, join_scopes(&t.scopes), to_i64(now_ms())],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    fn use_token(&self, token_hash: &str, now: u64) -> Result<Option<ApiToken>, Error> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE token_hash = ?1 AND revoked_ms IS NULL
             AND (user_name IS NULL OR NOT EXISTS (SELECT 1 FROM users u WHERE u.name = t.user_name AND u.disabled = 1))"
        );
        let token = self.lookup(|c| Ok(c.query_row(&sql, [token_hash], token_row).optional()?))?;
        let Some(mut token) = token else { return Ok(None) };
        if token.last_used_ms.is_none_or(|t| now.saturating_sub(t) >= TOKEN_USE_RESOLUTION_MS) {
            self.write_accounts(|c| {
                c.execute("UPDATE api_tokens SET last_used_ms = ?2 WHERE id = ?1", params![token.id, to_i64(now)])?;
                Ok(())
            })?;
            token.last_used_ms = Some(now);
        }
        Ok(Some(token))
    }

    fn tokens(&self, user: Option<&str>, project: Option<i64>) -> Result<Vec<ApiToken>, Error> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE (?1 IS NULL OR user_name = ?1)
             AND (?2 IS NULL OR project_id = ?2) ORDER BY id DESC"
        );
        self.lookup(|c| {
            let mut stmt = c.prepare(&sql)?;
            Ok(stmt.query_map(params![user, project], token_row)?.collect::<Result<_, _>>()?)
        })
    }

    fn token(&self, id: i64) -> Result<Option<ApiToken>, Error> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1");
        self.lookup(|c| Ok(c.query_row(&sql, [id], token_row).optional()?))
    }

    fn sso_user(&self, issuer: &str, subject: &str) -> Result<Option<String>, Error> {
        self.lookup(|c| {
            Ok(c.query_row(
                "SELECT user_name FROM sso_links WHERE issuer = ?1 AND subject = ?2",
                params![issuer, subject],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    fn link_sso(&self, issuer: &str, subject: &str, user: &str, now: u64) -> Result<Option<String>, Error> {
        self.write_accounts(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO sso_links (issuer, subject, user_name, created_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                params![issuer, subject, user, to_i64(now)],
            )?;
            let linked = tx
                .query_row(
                    "SELECT user_name FROM sso_links WHERE issuer = ?1 AND subject = ?2",
                    params![issuer, subject],
                    |r| r.get(0),
                )
                .optional()?;
            tx.commit()?;
            Ok(linked)
        })
    }

    fn revoke_token(&self, id: i64, now: u64) -> Result<bool, Error> {
        self.write_accounts(|c| {
            Ok(c.execute(
                "UPDATE api_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, to_i64(now)],
            )? > 0)
        })
    }
}
