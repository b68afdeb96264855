//! Users and roles: the server admin's users (create, invite, disable), a project's members
//! and their roles (owners manage them), and each user's own account (password, sign-ins).
//!
//! An invitation is a one-time link (`/invite/{secret}`) that sets the invited user's password;
//! only its digest is stored, it expires after [`INVITE_TTL_MS`], and using it (or disabling
//! the user) ends it. JSON routes that change state take `application/json` bodies only, which
//! a page of another site cannot send with the viewer's cookie (no CORS here); the viewer's
//! forms carry [`crate::auth::form_token`] (see [`crate::account_pages`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use replay_core::{now_ms, random_hex};
use replay_store::{Login, Membership, User};
use serde::{Deserialize, Serialize};

use crate::access::{AdminAccess, Caller, Capability, ProjectAccess, Role};
use crate::auth::{self, digest};
use crate::reject::Reason;
use crate::{ApiError, AppState, Error};

/// How long an invitation link works.
pub const INVITE_TTL_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Longest password accepted (argon2 hashes any length; this bounds the work).
pub const MAX_PASSWORD: usize = 512;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(Reason::BadAccountRequest, message)
}

/// A user name: 1 to 64 of `a-z 0-9 . _ @ -`.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if ok { Ok(()) } else { Err(bad("a user name is 1 to 64 of a-z, 0-9, '.', '_', '@', '-'")) }
}

pub fn check_password(password: &str) -> Result<(), ApiError> {
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(bad(format!("a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")))
    }
}

/// Hashes a password off the async workers, at most one per slot at once.
pub async fn hash_password(state: &AppState, password: String) -> Result<String, ApiError> {
    let _slot = state.password_slots.acquire().await.ok();
    Ok(tokio::task::spawn_blocking(move || auth::hash_password(&password)).await.map_err(Error::from)??)
}

/// An invitation for `user`: its link's path (shown once) and when it ends.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub user: String,
    /// `/invite/{secret}`: open it on this server to set the password (once).
    pub path: String,
    pub expires_ms: u64,
}

pub async fn invite(state: &AppState, user: String) -> Result<Invitation, ApiError> {
    let secret = random_hex(24)?;
    let hash = digest(&secret);
    let expires_ms = now_ms() + INVITE_TTL_MS;
    let u = user.clone();
    state.blocking(move |s| s.create_invite(&hash, &u, expires_ms)).await?;
    tracing::info!(user = %user, "invitation made");
    Ok(Invitation { user, path: format!("/invite/{secret}"), expires_ms })
}

/// Body of `POST /api/v1/admin/users`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    pub name: String,
    /// The password; without one, the answer carries an invitation link that sets it.
    pub password: Option<String>,
    /// Make the user a server admin.
    #[serde(default)]
    pub admin: bool,
}

/// Answer of `POST /api/v1/admin/users`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Created {
    pub user: User,
    pub invitation: Option<Invitation>,
}

/// Creates a user (with a password, or an unusable one and an invitation).
pub async fn create_user(state: &AppState, new: NewUser) -> Result<Created, ApiError> {
    check_name(&new.name)?;
    if let Some(p) = &new.password {
        check_password(p)?;
    }
    let name = new.name.clone();
    if state.blocking(move |s| s.user(&name)).await?.is_some() {
        return Err(bad("a user with this name exists"));
    }
    // Without a password the account gets a random one nobody knows until the invitation.
    let password = match new.password {
        Some(p) => p,
        None => random_hex(32)?,
    };
    let hash = hash_password(state, password).await?;
    let (name, admin) = (new.name.clone(), new.admin);
    let user = state
        .blocking(move |s| {
            s.put_user(&name, &hash)?;
            s.set_user_admin(&name, admin)?;
            s.user(&name)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    tracing::info!(user = %user.name, admin, "user created");
    Ok(Created { user, invitation: None })
}

/// `GET /api/v1/admin/users`: every account.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "users",
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "Every account, by name.", body = Vec<User>),
        (status = 404, description = "The caller is not a server admin."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list_users(_admin: AdminAccess, State(state): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(state.blocking(|s| s.users()).await?))
}

/// `POST /api/v1/admin/users`: creates a user; without a password, with an invitation link.
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "users",
    security(("admin_token" = []), ("login_cookie" = [])),
    request_body(content = NewUser, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `invitation` when no password was given.", body = Created),
        (status = 400, description = "A bad name or password, or the name is taken (`bad_request`)."),
        (status = 404, description = "The caller is not a server admin."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn post_user(
    _admin: AdminAccess,
    State(state): State<AppState>,
    Json(new): Json<NewUser>,
) -> Result<Response, ApiError> {
    let with_password = new.password.is_some();
    let mut created = create_user(&state, new).await?;
    if !with_password {
        created.invitation = Some(invite(&state, created.user.name.clone()).await?);
    }
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `POST /api/v1/admin/users/{user}/invite`: a new invitation link (to reset a password).
#[utoipa::path(post, path = "/api/v1/admin/users/{user}/invite", tag = "users",
    params(("user" = String, Path, description = "User name.")),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The link, shown once.", body = Invitation),
        (status = 404, description = "No such user, or the caller is not a server admin."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn post_invite(
    _admin: AdminAccess,
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<Json<Invitation>, ApiError> {
    let u = user.clone();
    let found = state.blocking(move |s| s.user(&u)).await?.ok_or_else(|| ApiError::not_found("user"))?;
    if found.disabled {
        return Err(bad("enable the user first"));
    }
    Ok(Json(invite(&state, user).await?))
}

/// Body of `PUT /api/v1/admin/users/{user}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UserChange {
    /// Disable (their sign-ins, invitations and tokens end) or enable the user.
    pub disabled: Option<bool>,
    /// Make the user a server admin or not.
    pub admin: Option<bool>,
}

/// `PUT /api/v1/admin/users/{user}`: disables or enables a user, or changes whether they are a
/// server admin. An admin cannot disable or demote themselves (someone must stay admin).
#[utoipa::path(put, path = "/api/v1/admin/users/{user}", tag = "users",
    params(("user" = String, Path, description = "User name.")),
    security(("admin_token" = []), ("login_cookie" = [])),
    request_body(content = UserChange, content_type = "application/json"),
    responses(
        (status = 200, description = "The user as changed.", body = User),
        (status = 400, description = "An admin changing themselves (`bad_request`)."),
        (status = 404, description = "No such user, or the caller is not a server admin."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn put_user(
    AdminAccess(caller): AdminAccess,
    State(state): State<AppState>,
    Path(user): Path<String>,
    Json(change): Json<UserChange>,
) -> Result<Json<User>, ApiError> {
    change_user(&state, &caller, user, change).await.map(Json)
}

pub async fn change_user(
    state: &AppState,
    caller: &Caller,
    user: String,
    change: UserChange,
) -> Result<User, ApiError> {
    if caller.user() == Some(user.as_str()) && (change.disabled == Some(true) || change.admin == Some(false)) {
        return Err(bad("you cannot disable or demote yourself"));
    }
    let u = user.clone();
    let found = state
        .blocking(move |s| {
            if let Some(d) = change.disabled {
                s.set_user_disabled(&u, d)?;
            }
            if let Some(a) = change.admin {
                s.set_user_admin(&u, a)?;
            }
            s.user(&u)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    tracing::info!(user = %user, by = %caller.label(), disabled = found.disabled, admin = found.admin, "user changed");
    Ok(found)
}

/// `GET /api/v1/projects/{project}/members`: who is in the project, with their roles.
#[utoipa::path(get, path = "/api/v1/projects/{project}/members", tag = "members",
    params(crate::api::ProjectPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The members, by name.", body = Vec<Membership>),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list_members(
    access: ProjectAccess,
    State(state): State<AppState>,
) -> Result<Json<Vec<Membership>>, ApiError> {
    let project = access.project;
    Ok(Json(state.blocking(move |s| s.members(project)).await?))
}

/// The path of a member's route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// Project id.
    pub project: i64,
    /// User name.
    pub user: String,
}

/// Body of `PUT /api/v1/projects/{project}/members/{user}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RoleBody {
    /// `owner`, `member` or `read_only`.
    pub role: String,
}

/// Sets a user's role in a project (an owner's). The last owner cannot step down or be
/// removed, so every project keeps someone who manages it.
pub async fn set_role(
    state: &AppState,
    access: &ProjectAccess,
    user: String,
    role: Option<Role>,
) -> Result<(), ApiError> {
    access.require(Capability::Manage)?;
    let project = access.project;
    let u = user.clone();
    let exists = state.blocking(move |s| s.user(&u)).await?.is_some();
    if !exists {
        return Err(ApiError::not_found("user"));
    }
    let members = state.blocking(move |s| s.members(project)).await?;
    let owners: Vec<&Membership> = members.iter().filter(|m| m.role == Role::Owner.as_str()).collect();
    if owners.len() == 1 && owners[0].user == user && role != Some(Role::Owner) {
        return Err(bad("a project keeps at least one owner: make someone else owner first"));
    }
    let u = user.clone();
    state.blocking(move |s| s.set_membership(project, &u, role.map(Role::as_str))).await?;
    let detail = role.map_or("removed", Role::as_str).to_owned();
    crate::audit::record(state, project, access.caller.label(), crate::audit::MEMBER_ROLE, user.clone(), detail).await;
    tracing::info!(project, user = %user, role = role.map_or("none", Role::as_str), by = %access.caller.label(), "membership changed");
    Ok(())
}

/// `PUT /api/v1/projects/{project}/members/{user}`: adds a user or changes their role.
#[utoipa::path(put, path = "/api/v1/projects/{project}/members/{user}", tag = "members",
    params(MemberPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    request_body(content = RoleBody, content_type = "application/json"),
    responses(
        (status = 204, description = "Set."),
        (status = 400, description = "An unknown role, or the last owner stepping down (`bad_request`)."),
        (status = 403, description = "The caller is not an owner of the project (`forbidden`)."),
        (status = 404, description = "No such user, or no such project or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn put_member(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(MemberPath { user, .. }): Path<MemberPath>,
    Json(body): Json<RoleBody>,
) -> Result<StatusCode, ApiError> {
    let role = Role::parse(&body.role).ok_or_else(|| bad("a role is owner, member or read_only"))?;
    set_role(&state, &access, user, Some(role)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/projects/{project}/members/{user}`: removes a user from the project.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/members/{user}", tag = "members",
    params(MemberPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 204, description = "Removed (or was not a member)."),
        (status = 400, description = "The last owner (`bad_request`)."),
        (status = 403, description = "The caller is not an owner of the project (`forbidden`)."),
        (status = 404, description = "No such user, or no such project or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn delete_member(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(MemberPath { user, .. }): Path<MemberPath>,
) -> Result<StatusCode, ApiError> {
    set_role(&state, &access, user, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user's account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub user: User,
    /// The projects the user may read, with their role.
    pub projects: Vec<MyProject>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyProject {
    pub id: i64,
    pub name: String,
    pub role: String,
}

/// The caller's user record: 404 for the admin token and project tokens, which are nobody's.
pub async fn my_user(state: &AppState, caller: &Caller) -> Result<User, ApiError> {
    let name = caller.user().ok_or_else(|| ApiError::not_found("account (this token belongs to no user)"))?.to_owned();
    state.blocking(move |s| s.user(&name)).await?.ok_or_else(|| ApiError::not_found("account"))
}

/// `GET /api/v1/me`: the caller's account and projects.
#[utoipa::path(get, path = "/api/v1/me", tag = "account",
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The account and its projects.", body = Me),
        (status = 404, description = "The caller is no user (the admin token, a project token)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn me(caller: Caller, State(state): State<AppState>) -> Result<Json<Me>, ApiError> {
    let user = my_user(&state, &caller).await?;
    let projects = caller
        .projects(&state)
        .await?
        .into_iter()
        .map(|(p, g)| MyProject { id: p.id, name: p.name, role: g.role.as_str().to_owned() })
        .collect();
    Ok(Json(Me { user, projects }))
}

/// Body of `POST /api/v1/me/password`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PasswordChange {
    pub current: String,
    pub new: String,
}

/// Changes the caller's password after checking the current one; every sign-in of the user
/// ends (sign in again).
pub async fn change_password(state: &AppState, caller: &Caller, change: PasswordChange) -> Result<(), ApiError> {
    let user = my_user(state, caller).await?;
    check_password(&change.new)?;
    if !matches!(caller, Caller::User { .. }) {
        return Err(bad("passwords are changed from a sign-in, not with a token"));
    }
    // The current password is guessed no faster than at sign-in (a stolen sign-in cookie must
    // not make it a free oracle, nor fill the password checks' slots).
    if !state.limits.check_login_account(&user.name, None) {
        state.metrics.rejected(Reason::LoginRateLimited);
        return Err(ApiError::new(Reason::LoginRateLimited, "too many password attempts"));
    }
    let name = user.name.clone();
    let stored = state.blocking(move |s| s.user_password_hash(&name)).await?.unwrap_or_default();
    let current = change.current;
    let ok = {
        let _slot = state.password_slots.acquire().await.ok();
        tokio::task::spawn_blocking(move || auth::verify_password(&current, &stored)).await.map_err(Error::from)?
    };
    if !ok {
        return Err(ApiError::new(Reason::Forbidden, "the current password is wrong"));
    }
    let hash = hash_password(state, change.new).await?;
    let name = user.name.clone();
    state.blocking(move |s| s.put_user(&name, &hash)).await?;
    tracing::info!(user = %user.name, "password changed");
    Ok(())
}

/// `POST /api/v1/me/password`: changes the caller's password (every sign-in of theirs ends).
#[utoipa::path(post, path = "/api/v1/me/password", tag = "account",
    security(("login_cookie" = [])),
    request_body(content = PasswordChange, content_type = "application/json"),
    responses(
        (status = 204, description = "Changed; sign in again."),
        (status = 400, description = "The new password is too short or too long, or the caller is a token (`bad_request`)."),
        (status = 403, description = "The current password is wrong (`forbidden`)."),
        (status = 404, description = "The caller is no user."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn post_password(
    caller: Caller,
    State(state): State<AppState>,
    Json(change): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    change_password(&state, &caller, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One of the caller's sign-ins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignIn {
    #[serde(flatten)]
    pub login: Login,
    /// This request's own sign-in.
    pub current: bool,
}

pub async fn my_sign_ins(
    state: &AppState,
    caller: &Caller,
    headers: &axum::http::HeaderMap,
) -> Result<Vec<SignIn>, ApiError> {
    let user = my_user(state, caller).await?;
    let current = auth::login_cookie(state, headers).map(|c| digest(&c));
    let logins = state.blocking(move |s| s.logins(&user.name, now_ms())).await?;
    Ok(logins
        .into_iter()
        .map(|login| SignIn { current: current.as_deref() == Some(login.id.as_str()), login })
        .collect())
}

/// `GET /api/v1/me/sign-ins`: the caller's live sign-ins, newest first.
#[utoipa::path(get, path = "/api/v1/me/sign-ins", tag = "account",
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The sign-ins.", body = Vec<SignIn>),
        (status = 404, description = "The caller is no user."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list_sign_ins(
    caller: Caller,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Vec<SignIn>>, ApiError> {
    Ok(Json(my_sign_ins(&state, &caller, &headers).await?))
}

/// Ends one of the caller's own sign-ins (another user's id is not found).
pub async fn end_sign_in(state: &AppState, caller: &Caller, id: String) -> Result<(), ApiError> {
    caller.require_account_rights()?;
    let user = my_user(state, caller).await?;
    let name = user.name.clone();
    let ended = state
        .blocking(move |s| {
            let mine = s.logins(&name, now_ms())?.iter().any(|l| l.id == id);
            if mine {
                s.delete_login(&id)?;
            }
            Ok::<_, replay_store::Error>(mine)
        })
        .await?;
    if ended { Ok(()) } else { Err(ApiError::not_found("sign-in")) }
}

/// `DELETE /api/v1/me/sign-ins/{id}`: ends one of the caller's sign-ins.
#[utoipa::path(delete, path = "/api/v1/me/sign-ins/{id}", tag = "account",
    params(("id" = String, Path, description = "The sign-in's id (from the list).")),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 204, description = "Ended."),
        (status = 403, description = "A read-only token may not end its user's sign-ins (`forbidden`)."),
        (status = 404, description = "No such sign-in of the caller's, or the caller is no user."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn delete_sign_in(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    end_sign_in(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
