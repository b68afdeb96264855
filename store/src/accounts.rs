//! People and machines that read: viewer accounts (server admins, disabled accounts), their
//! roles per project (memberships), their sign-ins, one-time invitations, and API tokens with
//! scopes, and single sign-on identities linked to accounts. Secrets never reach storage: sign-ins, invitations and tokens are kept as SHA-256
//! digests, passwords as argon2 hashes (made by the server).
//!
//! [`Accounts`] is part of every engine's [`crate::Storage`]; what a role or a scope allows is
//! decided by the server, storage only keeps the names.

use serde::Serialize;

use crate::Error;

/// A viewer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub name: String,
    /// A server admin: manages users and reads every project.
    pub admin: bool,
    /// A disabled account cannot sign in, and its sign-ins and tokens no longer count.
    pub disabled: bool,
    pub created_ms: u64,
}

/// A user's role in a project (`owner`, `member` or `read_only`, see the server's `access`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Membership {
    pub project: i64,
    pub user: String,
    pub role: String,
}

/// One live sign-in of a user. `id` is the digest of its cookie: it names the sign-in (to end
/// it) and cannot be turned back into the cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Login {
    pub id: String,
    pub created_ms: u64,
    pub expires_ms: u64,
}

/// An API token (its secret is never stored, only its digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// The user the token acts for (at most that user's rights), or none for a project token.
    pub user: Option<String>,
    /// The one project the token may reach, or none for every project its user may.
    pub project: Option<i64>,
    /// Scope names (`read`, `manage`, `admin`; see the server's `tokens`).
    pub scopes: Vec<String>,
    pub created_ms: u64,
    pub last_used_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
}

/// What a new token is: everything but its id and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub token_hash: String,
    pub name: String,
    pub user: Option<String>,
    pub project: Option<i64>,
    pub scopes: Vec<String>,
}

/// A token's `last_used_ms` is written at most this often (a busy token costs no write per
/// request).
pub const TOKEN_USE_RESOLUTION_MS: u64 = 60_000;

/// Accounts, memberships, sign-ins, invitations and API tokens.
pub trait Accounts {
    /// Every account, by name.
    fn users(&self) -> Result<Vec<User>, Error>;
    fn user(&self, name: &str) -> Result<Option<User>, Error>;
    /// Makes an account a server admin or not; false when there is no such account.
    fn set_user_admin(&self, name: &str, admin: bool) -> Result<bool, Error>;
    /// Disables an account (its sign-ins, invitations and tokens end) or enables it again;
    /// false when there is no such account.
    fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool, Error>;
    /// Sets `user`'s role in `project`, or removes them from it (`None`).
    fn set_membership(&self, project: i64, user: &str, role: Option<&str>) -> Result<(), Error>;
    /// The members of a project, by name.
    fn members(&self, project: i64) -> Result<Vec<Membership>, Error>;
    /// The projects a user is a member of, by project id.
    fn memberships(&self, user: &str) -> Result<Vec<Membership>, Error>;
    /// A user's live sign-ins, newest first.
    fn logins(&self, user: &str, now_ms: u64) -> Result<Vec<Login>, Error>;
    /// Stores an invitation (`token_hash`: digest of the link's secret) for `user`.
    fn create_invite(&self, token_hash: &str, user: &str, expires_ms: u64) -> Result<(), Error>;
    /// Uses an invitation up: its user when it was live; it is gone either way.
    fn take_invite(&self, token_hash: &str, now_ms: u64) -> Result<Option<String>, Error>;
    /// Stores a new API token; returns its id.
    fn create_token(&self, token: &NewToken) -> Result<i64, Error>;
    /// The live (not revoked, user not disabled) token with this digest, its last use noted
    /// (at most every [`TOKEN_USE_RESOLUTION_MS`]).
    fn use_token(&self, token_hash: &str, now_ms: u64) -> Result<Option<ApiToken>, Error>;
    /// Tokens of a user (`user`), of a project (`project`), or every token (both `None`),
    /// newest first, revoked ones included.
    fn tokens(&self, user: Option<&str>, project: Option<i64>) -> Result<Vec<ApiToken>, Error>;
    fn token(&self, id: i64) -> Result<Option<ApiToken>, Error>;
    /// Revokes a token at once; false when it was unknown or already revoked.
    fn revoke_token(&self, id: i64, now_ms: u64) -> Result<bool, Error>;
    /// The user a single sign-on identity (an OpenID Connect provider's `issuer` and its
    /// `subject` there) is linked to.
    fn sso_user(&self, issuer: &str, subject: &str) -> Result<Option<String>, Error>;
    /// Links a single sign-on identity to `user`, unless the identity is linked already or
    /// `user` already has another identity at this issuer (either link stays as it was); answers
    /// the user the identity is linked to afterwards, so `Some(user)` means linked to `user`.
    fn link_sso(&self, issuer: &str, subject: &str, user: &str, now_ms: u64) -> Result<Option<String>, Error>;
}

/// Scopes as stored: space-separated names.
pub(crate) fn join_scopes(scopes: &[String]) -> String {
    scopes.join(" ")
}

pub(crate) fn split_scopes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}
