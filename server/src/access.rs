//! Who is calling, and what they may do in the project a route names: the one check every
//! route runs.
//!
//! - [`Caller`] (an extractor: 401 without one) is who is asking: the bootstrap admin token, a
//!   signed-in viewer user (a server admin or not), or an API token (of a user, or of one
//!   project, with scopes). Disabled users and revoked tokens are no caller.
//! - [`ProjectAccess`] (an extractor) is a caller inside the project named by the route's
//!   `{project}` path parameter, with what they may do there ([`Capability`]). A caller who
//!   may not read that project gets **404, exactly as for a project that does not exist**:
//!   whether project 7 exists is not given away, and no route ever answers another project's
//!   data. Handlers then ask [`ProjectAccess::require`] for more than reading (403 for a
//!   member whose role or token is too weak).
//! - [`AdminAccess`] (an extractor) is a server admin (admin token, admin user, or a token
//!   with the `admin` scope of an admin user); anyone else gets 404.
//!
//! Roles per project: `owner` (settings, keys, members, and all a member does), `member`
//! (watch, export, import, comment), `read_only` (watch). Server admins act as owners of every
//! project. A token never does more than its scopes (`read`: watch and export; `manage`: all an
//! owner does; `admin`: server administration) nor more than its user may.
//!
//! Viewer pages (paths under `/viewer/`) send a caller without credentials to sign in instead
//! of answering 401.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use replay_core::now_ms;
use replay_store::{ApiToken, Membership, Project};

use crate::auth;
use crate::reject::Reason;
use crate::{ApiError, AppState, Error};

/// A role in a project, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    ReadOnly,
    Member,
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::ReadOnly, Role::Member, Role::Owner];

    /// The name stored and shown (`read_only`, `member`, `owner`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read_only",
            Role::Member => "member",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    fn allows(self, cap: Capability) -> bool {
        match cap {
            Capability::Read => true,
            Capability::Export | Capability::Write => self >= Role::Member,
            Capability::Manage => self == Role::Owner,
        }
    }
}

/// What a route does in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// List, watch, snapshot, environment, errors.
    Read,
    /// Take a session out (the offline file, rrweb export).
    Export,
    /// Add data to the project (rrweb import, comments).
    Write,
    /// Settings, ingest keys, members, project tokens.
    Manage,
}

/// A token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read sessions: watch and export.
    Read,
    /// Manage a project: everything an owner does.
    Manage,
    /// Server administration (users, every project), for tokens of server admins only.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Manage, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Manage => "manage",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|r| r.as_str() == s)
    }

    fn allows(self, cap: Capability) -> bool {
        match self {
            Scope::Read => matches!(cap, Capability::Read | Capability::Export),
            Scope::Manage | Scope::Admin => true,
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The bootstrap admin token (`--admin-token`): a server admin.
    AdminToken,
    /// A signed-in viewer user.
    User { name: String, admin: bool },
    /// An API token; `user_admin` tells whether its user (if any) is a server admin.
    Token { token: ApiToken, user_admin: bool },
}

impl Caller {
    /// The user this caller acts for, if any.
    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::AdminToken => None,
            Caller::User { name, .. } => Some(name),
            Caller::Token { token, .. } => token.user.as_deref(),
        }
    }

    /// Whether the caller administers the server.
    pub fn is_server_admin(&self) -> bool {
        match self {
            Caller::AdminToken => true,
            Caller::User { admin, .. } => *admin,
            // A token limited to one project never administers the server, whatever its scopes
            // (such tokens can no longer be made; one made before is held to its project).
            Caller::Token { token, user_admin } => {
                *user_admin && token.project.is_none() && token.scopes.iter().any(|s| s == "admin")
            }
        }
    }

    /// Refuses (403) a read-only API token, or one limited to a project, the account changes of
    /// its user (ending sign-ins, revoking tokens): a token handed to a reporting job, or given
    /// one project, must not act on its user's whole account.
    pub fn require_account_rights(&self) -> Result<(), crate::ApiError> {
        match self {
            Caller::Token { token, .. } if token.scopes.iter().all(|s| s == Scope::Read.as_str()) => {
                Err(crate::ApiError::new(
                    crate::reject::Reason::Forbidden,
                    "a read-only token may not change its user's sign-ins or tokens",
                ))
            }
            Caller::Token { token, .. } if token.project.is_some() => Err(crate::ApiError::new(
                crate::reject::Reason::Forbidden,
                "a token limited to a project may not change its user's sign-ins or tokens",
            )),
            _ => Ok(()),
        }
    }

    /// A name for logs and the audit trail: `admin-token`, `user:ann`, `token:12`.
    pub fn label(&self) -> String {
        match self {
            Caller::AdminToken => "admin-token".into(),
            Caller::User { name, .. } => format!("user:{name}"),
            Caller::Token { token, .. } => format!("token:{}", token.id),
        }
    }

    /// What this caller may do in `project`: `None` when it may not even read it (answer 404),
    /// including when there is no such project.
    pub async fn grant(&self, state: &AppState, project: i64) -> Result<Option<Grant>, Error> {
        Ok(self.projects(state).await?.into_iter().find(|(p, _)| p.id == project).map(|(_, g)| g))
    }

    /// The projects this caller may read, oldest first, with what it may do in each.
    pub async fn projects(&self, state: &AppState) -> Result<Vec<(Project, Grant)>, Error> {
        let all = state.blocking(|s| s.projects()).await?;
        let memberships = match self.user() {
            Some(user) => {
                let user = user.to_owned();
                state.blocking(move |s| s.memberships(&user)).await?
            }
            None => Vec::new(),
        };
        Ok(all.into_iter().filter_map(|p| self.grant_from(p.id, &memberships).map(|g| (p, g))).collect())
    }

    /// The grant in an existing `project`, given the memberships of the caller's user.
    fn grant_from(&self, project: i64, memberships: &[Membership]) -> Option<Grant> {
        let member_role = || memberships.iter().find(|m| m.project == project).and_then(|m| Role::parse(&m.role));
        match self {
            Caller::AdminToken | Caller::User { admin: true, .. } => Some(Grant { role: Role::Owner, scopes: None }),
            Caller::User { .. } => member_role().map(|role| Grant { role, scopes: None }),
            Caller::Token { token, user_admin } => {
                if token.project.is_some_and(|p| p != project) {
                    return None;
                }
                let role = match &token.user {
                    Some(_) if *user_admin => Some(Role::Owner),
                    Some(_) => member_role(),
                    // A project token reaches its own project only, with its scopes.
                    None => (token.project == Some(project)).then_some(Role::Owner),
                };
                let scopes = token.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
                role.map(|role| Grant { role, scopes: Some(scopes) })
            }
        }
    }
}

/// What a caller may do in one project: their role, capped by their token's scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: Role,
    /// A token's scopes; `None` for people and the admin token.
    pub scopes: Option<Vec<Scope>>,
}

impl Grant {
    pub fn allows(&self, cap: Capability) -> bool {
        self.role.allows(cap) && self.scopes.as_ref().is_none_or(|s| s.iter().any(|s| s.allows(cap)))
    }
}

/// The `Bearer` token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// Resolves the caller of a request, if any: a bearer token (the admin token or an API token),
/// else the viewer's login cookie. Unknown secrets are remembered for a while
/// ([`crate::limits::Refused`]) so guessing them costs no storage lookups.
pub async fn caller_of(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, Error> {
    if let Some(token) = bearer(headers) {
        if state.refused.contains(token) {
            return Ok(None);
        }
        let given = auth::digest(token);
        let stored = state.blocking(|s| s.setting(auth::ADMIN_TOKEN_SETTING)).await?;
        if stored.is_some_and(|d| auth::same(&d, &given)) {
            return Ok(Some(Caller::AdminToken));
        }
        let found = state.blocking(move |s| s.use_token(&given, now_ms())).await?;
        let caller = match found {
            Some(token) => {
                let user_admin = match token.user.clone() {
                    Some(u) => state.blocking(move |s| s.user(&u)).await?.is_some_and(|u| u.admin && !u.disabled),
                    None => false,
                };
                Some(Caller::Token { token, user_admin })
            }
            None => None,
        };
        if caller.is_none() {
            state.refused.insert(token);
        }
        return Ok(caller);
    }
    if let Some(cookie) = auth::login_cookie(state, headers) {
        if state.refused.contains(&cookie) {
            return Ok(None);
        }
        let hash = auth::digest(&cookie);
        let user = state.blocking(move |s| s.login_user(&hash, now_ms())).await?;
        let caller = match user {
            Some(name) => {
                let n = name.clone();
                let record = state.blocking(move |s| s.user(&n)).await?;
                record.filter(|u| !u.disabled).map(|u| Caller::User { name, admin: u.admin })
            }
            None => None,
        };
        if caller.is_none() {
            state.refused.insert(&cookie);
        }
        return Ok(caller);
    }
    Ok(None)
}

/// The refusal for a request without a caller: viewer pages go to sign in, the API answers 401.
fn no_caller(parts: &Parts) -> Response {
    let path = parts.uri.path();
    // A page goes to sign in; the export is a download, refused like the API.
    if path.starts_with("/viewer/") && !path.contains("/export/") {
        return auth::to_login(parts.uri.path_and_query().map_or(path, |p| p.as_str()));
    }
    ApiError::new(Reason::Unauthorized, "sign in to the viewer or send Authorization: Bearer <token>").into_response()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match caller_of(state, &parts.headers).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(no_caller(parts)),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

/// A caller inside the project the route's `{project}` names (see the module docs).
#[derive(Debug, Clone)]
pub struct ProjectAccess {
    pub caller: Caller,
    pub project: i64,
    pub grant: Grant,
}

impl ProjectAccess {
    /// Refuses (403) what the caller's role or token may not do in this project.
    pub fn require(&self, cap: Capability) -> Result<(), ApiError> {
        if self.grant.allows(cap) {
            Ok(())
        } else {
            Err(ApiError::new(
                Reason::Forbidden,
                format!("your role in this project ({}) does not allow this", self.grant.role.as_str()),
            ))
        }
    }

    /// The project a caller may read, by id: `None` (answer 404) otherwise.
    pub async fn check(state: &AppState, caller: Caller, project: i64) -> Result<Option<ProjectAccess>, Error> {
        Ok(caller.grant(state, project).await?.map(|grant| ProjectAccess { caller, project, grant }))
    }
}

/// The `{project}` path parameter of a request.
pub fn project_param(params: &RawPathParams) -> Option<&str> {
    params.iter().find(|(k, _)| *k == "project").map(|(_, v)| v)
}

impl FromRequestParts<AppState> for ProjectAccess {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let not_found = || ApiError::not_found("project").into_response();
        let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| not_found())?;
        let project: i64 = project_param(&params).and_then(|p| p.parse().ok()).ok_or_else(not_found)?;
        let caller = Caller::from_request_parts(parts, state).await?;
        match ProjectAccess::check(state, caller, project).await {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err(not_found()),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

/// A server admin (see the module docs); anyone else gets 404, as for a route that is not there.
#[derive(Debug, Clone)]
pub struct AdminAccess(pub Caller);

impl FromRequestParts<AppState> for AdminAccess {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.is_server_admin() {
            Ok(AdminAccess(caller))
        } else {
            Err(ApiError::not_found("page").into_response())
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_token_limited_to_one_project_never_administers_the_server() {
        let token = |project: Option<i64>| Caller::Token {
            token: replay_store::ApiToken {
                id: 1,
                name: "t".into(),
                user: Some("admin".into()),
                project,
                scopes: vec!["admin".into()],
                created_ms: 0,
                last_used_ms: None,
                revoked_ms: None,
            },
            user_admin: true,
        };
        assert!(token(None).is_server_admin());
        assert!(!token(Some(2)).is_server_admin(), "made before the rule, held to its project");
    }
    use super::*;

    #[test]
    fn roles_and_scopes_allow_what_the_docs_say() {
        let g = |role, scopes: Option<Vec<Scope>>| Grant { role, scopes };
        assert!(g(Role::ReadOnly, None).allows(Capability::Read));
        assert!(!g(Role::ReadOnly, None).allows(Capability::Export));
        assert!(g(Role::Member, None).allows(Capability::Export) && g(Role::Member, None).allows(Capability::Write));
        assert!(!g(Role::Member, None).allows(Capability::Manage));
        assert!(g(Role::Owner, None).allows(Capability::Manage));
        let read = Some(vec![Scope::Read]);
        assert!(g(Role::Owner, read.clone()).allows(Capability::Export), "read scope exports");
        assert!(!g(Role::Owner, read.clone()).allows(Capability::Manage), "a token is capped by its scopes");
        assert!(!g(Role::Owner, read).allows(Capability::Write));
        assert!(!g(Role::ReadOnly, Some(vec![Scope::Manage])).allows(Capability::Export), "and by its user's role");
        assert!(!g(Role::Owner, Some(vec![])).allows(Capability::Read), "no scope, nothing");
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
