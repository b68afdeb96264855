//! API tokens with scopes, replacing the single admin token (which stays, to bootstrap).
//!
//! A token belongs to a user (it acts for them, never beyond their roles, optionally limited to
//! one project) or to one project (made by an owner; it reaches that project only). Its scopes
//! cap it further: `read` (watch and export sessions), `manage` (everything an owner does),
//! `admin` (server administration; only a server admin's own token may have it). The secret
//! (`rpt_` + 64 hex digits) is shown once; only its SHA-256 digest is stored, with when it was
//! last used (to the minute). Revoking ends it at once. [`crate::access`] resolves a request's
//! bearer token into a caller.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use replay_core::{now_ms, random_hex};
use replay_store::{ApiToken, NewToken};
use serde::{Deserialize, Serialize};

use crate::access::{AdminAccess, Caller, Capability, ProjectAccess, Scope};
use crate::auth::digest;
use crate::reject::Reason;
use crate::{ApiError, AppState};

/// Prefix of every API token's secret (so scanners and people can tell what leaked).
pub const PREFIX: &str = "rpt_";

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(Reason::BadAccountRequest, message)
}

/// Body of the routes that make a token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    /// What the token is for (shown in lists), 1 to 100 characters.
    pub name: String,
    /// Any of `read`, `manage`, `admin`.
    pub scopes: Vec<String>,
    /// For a user's token: the one project it may reach (every project of the user otherwise).
    pub project: Option<i64>,
}

/// A new token and its secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewTokenAnswer {
    pub token: ApiToken,
    /// `Authorization: Bearer <secret>`; not stored, not shown again.
    pub secret: String,
}

fn scopes(req: &TokenRequest, allowed: &[Scope]) -> Result<Vec<String>, ApiError> {
    if req.name.trim().is_empty() || req.name.chars().count() > 100 {
        return Err(bad("a token's name is 1 to 100 characters"));
    }
    let mut out: Vec<String> = Vec::new();
    for s in &req.scopes {
        let scope = Scope::parse(s).ok_or_else(|| bad("a scope is read, manage or admin"))?;
        if !allowed.contains(&scope) {
            return Err(bad(format!("this token may not have the {s} scope")));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    if out.is_empty() {
        return Err(bad("give the token at least one scope"));
    }
    Ok(out)
}

async fn make(
    state: &AppState,
    name: String,
    user: Option<String>,
    project: Option<i64>,
    scopes: Vec<String>,
) -> Result<NewTokenAnswer, ApiError> {
    if project.is_some() && scopes.iter().any(|s| s == Scope::Admin.as_str()) {
        // Server administration reaches every project: it cannot be limited to one.
        return Err(bad("a token limited to one project cannot have the admin scope"));
    }
    let secret = format!("{PREFIX}{}", random_hex(32)?);
    let new = NewToken { token_hash: digest(&secret), name: name.trim().to_owned(), user, project, scopes };
    let token = state
        .blocking(move |s| {
            let id = s.create_token(&new)?;
            s.token(id)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    tracing::info!(id = token.id, user = ?token.user, project = ?token.project, "api token created");
    Ok(NewTokenAnswer { token, secret })
}

/// Makes a token for the signed-in user (`caller` must be a sign-in: tokens do not make tokens).
pub async fn create_mine(state: &AppState, caller: &Caller, req: TokenRequest) -> Result<NewTokenAnswer, ApiError> {
    let Caller::User { name, admin } = caller else {
        return Err(bad("tokens are made from a sign-in"));
    };
    let allowed: &[Scope] = if *admin { &Scope::ALL } else { &[Scope::Read, Scope::Manage] };
    let scopes = scopes(&req, allowed)?;
    if let Some(p) = req.project
        && caller.grant(state, p).await?.is_none()
    {
        return Err(ApiError::not_found("project"));
    }
    make(state, req.name, Some(name.clone()), req.project, scopes).await
}

/// Revokes a token if `owns` says the caller may; 404 otherwise (another's token is not found).
async fn revoke(state: &AppState, id: i64, owns: impl FnOnce(&ApiToken) -> bool) -> Result<StatusCode, ApiError> {
    let token =
        state.blocking(move |s| s.token(id)).await?.filter(|t| owns(t)).ok_or_else(|| ApiError::not_found("token"))?;
    if token.revoked_ms.is_none() {
        state.blocking(move |s| s.revoke_token(id, now_ms())).await?;
        tracing::info!(id, "api token revoked");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/me/tokens`: the caller's own tokens, newest first (revoked ones included).
#[utoipa::path(get, path = "/api/v1/me/tokens", tag = "tokens",
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The tokens (never their secrets).", body = Vec<ApiToken>),
        (status = 404, description = "The caller is no user."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list_mine(caller: Caller, State(state): State<AppState>) -> Result<Json<Vec<ApiToken>>, ApiError> {
    let user = caller.user().ok_or_else(|| ApiError::not_found("account"))?.to_owned();
    Ok(Json(state.blocking(move |s| s.tokens(Some(&user), None)).await?))
}

/// `POST /api/v1/me/tokens`: makes a token acting for the signed-in user.
#[utoipa::path(post, path = "/api/v1/me/tokens", tag = "tokens",
    security(("login_cookie" = [])),
    request_body(content = TokenRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The token and its secret (shown once).", body = NewTokenAnswer),
        (status = 400, description = "A bad name or scope, or not a sign-in (`bad_request`)."),
        (status = 404, description = "The project is not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn post_mine(
    caller: Caller,
    State(state): State<AppState>,
    Json(req): Json<TokenRequest>,
) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(create_mine(&state, &caller, req).await?)).into_response())
}

/// `DELETE /api/v1/me/tokens/{token}`: revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/api/v1/me/tokens/{token}", tag = "tokens",
    params(("token" = i64, Path, description = "Token id.")),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 204, description = "Revoked (or already was)."),
        (status = 403, description = "A read-only token may not revoke its user's tokens (`forbidden`)."),
        (status = 404, description = "No such token of the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn delete_mine(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    caller.require_account_rights()?;
    let user = caller.user().ok_or_else(|| ApiError::not_found("token"))?.to_owned();
    revoke(&state, id, |t| t.user.as_deref() == Some(user.as_str())).await
}

/// The path of a project token's route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProjectTokenPath {
    /// Project id.
    pub project: i64,
    /// Token id.
    pub token: i64,
}

/// `GET /api/v1/projects/{project}/tokens`: the project's tokens (an owner's).
#[utoipa::path(get, path = "/api/v1/projects/{project}/tokens", tag = "tokens",
    params(crate::api::ProjectPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The project's tokens (never their secrets).", body = Vec<ApiToken>),
        (status = 403, description = "The caller is not an owner (`forbidden`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list_project(
    access: ProjectAccess,
    State(state): State<AppState>,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    access.require(Capability::Manage)?;
    let project = access.project;
    let tokens = state.blocking(move |s| s.tokens(None, Some(project))).await?;
    // The project's own tokens, not its members' tokens limited to it.
    Ok(Json(tokens.into_iter().filter(|t| t.user.is_none()).collect()))
}

/// Makes a token of `access`'s project (an owner's), from a sign-in or the admin token: a
/// token that made tokens would outlive its own revocation and its user's (a leaked `manage`
/// token minted project tokens, which made more).
pub async fn create_project_token(
    state: &AppState,
    access: &ProjectAccess,
    req: TokenRequest,
) -> Result<NewTokenAnswer, ApiError> {
    access.require(Capability::Manage)?;
    if matches!(access.caller, Caller::Token { .. }) {
        return Err(ApiError::new(crate::reject::Reason::Forbidden, "tokens are made from a sign-in, not by tokens"));
    }
    let scopes = scopes(&req, &[Scope::Read, Scope::Manage])?;
    let made = make(state, req.name, None, Some(access.project), scopes).await?;
    let t = &made.token;
    let (target, detail) = (format!("token:{}", t.id), format!("{} ({})", t.name, t.scopes.join(" ")));
    crate::audit::record(state, access.project, access.caller.label(), crate::audit::TOKEN_CREATE, target, detail)
        .await;
    Ok(made)
}

/// Revokes a token of `access`'s project (an owner's), and logs it.
pub async fn revoke_project_token(state: &AppState, access: &ProjectAccess, id: i64) -> Result<StatusCode, ApiError> {
    access.require(Capability::Manage)?;
    let project = access.project;
    let done = revoke(state, id, |t| t.user.is_none() && t.project == Some(project)).await?;
    let (label, target) = (access.caller.label(), format!("token:{id}"));
    crate::audit::record(state, project, label, crate::audit::TOKEN_REVOKE, target, String::new()).await;
    Ok(done)
}

/// `POST /api/v1/projects/{project}/tokens`: makes a token of the project (an owner's).
#[utoipa::path(post, path = "/api/v1/projects/{project}/tokens", tag = "tokens",
    params(crate::api::ProjectPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    request_body(content = TokenRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The token and its secret (shown once).", body = NewTokenAnswer),
        (status = 400, description = "A bad name or scope (`bad_request`)."),
        (status = 403, description = "The caller is not an owner (`forbidden`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn post_project(
    access: ProjectAccess,
    State(state): State<AppState>,
    Json(req): Json<TokenRequest>,
) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(create_project_token(&state, &access, req).await?)).into_response())
}

/// `DELETE /api/v1/projects/{project}/tokens/{token}`: revokes a token of the project.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/tokens/{token}", tag = "tokens",
    params(ProjectTokenPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 204, description = "Revoked (or already was)."),
        (status = 403, description = "The caller is not an owner (`forbidden`)."),
        (status = 404, description = "No such token of this project, or no such project or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn delete_project(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(ProjectTokenPath { token, .. }): Path<ProjectTokenPath>,
) -> Result<StatusCode, ApiError> {
    revoke_project_token(&state, &access, token).await
}

/// `GET /api/v1/admin/tokens`: every token (a server admin's).
#[utoipa::path(get, path = "/api/v1/admin/tokens", tag = "tokens",
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "Every token, newest first (never their secrets).", body = Vec<ApiToken>),
        (status = 404, description = "The caller is not a server admin."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list_all(_admin: AdminAccess, State(state): State<AppState>) -> Result<Json<Vec<ApiToken>>, ApiError> {
    Ok(Json(state.blocking(|s| s.tokens(None, None)).await?))
}

/// `DELETE /api/v1/admin/tokens/{token}`: revokes any token (a server admin's).
#[utoipa::path(delete, path = "/api/v1/admin/tokens/{token}", tag = "tokens",
    params(("token" = i64, Path, description = "Token id.")),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 204, description = "Revoked (or already was)."),
        (status = 404, description = "No such token, or the caller is not a server admin."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn delete_any(
    _admin: AdminAccess,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    revoke(&state, id, |_| true).await
}
