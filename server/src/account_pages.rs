//! The viewer's pages for people and their rights (no script, like every list page): one's own
//! account (`/viewer/account`: password, sign-ins, API tokens), the server admin's users
//! (`/viewer/admin/users`: create, invite, disable, memberships), a project's members
//! (`/viewer/p/{project}/members`: owners change roles, add and remove people, and make the
//! project's tokens), and the invitation page (`/invite/{secret}`) that sets a new user's
//! password. They act through [`crate::users`] and [`crate::tokens`], as the JSON API does;
//! every form carries [`auth::form_token`], and the invitation form its secret.

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use replay_core::now_ms;
use serde::Deserialize;

use crate::access::{AdminAccess, Caller, Capability, ProjectAccess, Role, Scope};
use crate::auth::{self, digest};
use crate::layout::{self, LIST_CSP, Nav, html_response};
use crate::pages::format_time;
use crate::users::{self, NewUser, PasswordChange, UserChange};
use crate::{ApiError, AppState, tokens};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/invite/{secret}", get(invite_page).post(accept_invite))
        .route("/viewer/account", get(account).post(account_action))
        .route("/viewer/admin/users", get(admin_users).post(admin_action))
        .route("/viewer/p/{project}/members", get(members).post(members_action))
}

/// Every form's fields (each form uses some of them).
#[derive(Debug, Default, Deserialize)]
struct Fields {
    form_token: Option<String>,
    action: Option<String>,
    name: Option<String>,
    user: Option<String>,
    password: Option<String>,
    current: Option<String>,
    role: Option<String>,
    project: Option<String>,
    id: Option<String>,
    admin: Option<String>,
    scope_read: Option<String>,
    scope_manage: Option<String>,
    scope_admin: Option<String>,
}

fn text(v: &Option<String>) -> String {
    v.as_deref().map(str::trim).unwrap_or_default().to_owned()
}

/// A message above a page's content: what the last form did, or why it was refused.
fn notice(message: Option<&str>, error: bool) -> Markup {
    html! {
        @if let Some(m) = message {
            @if error { p.error #notice { (m) } } @else { p.notice #notice { (m) } }
        }
    }
}

fn page(title: &str, nav: Nav, headers: &HeaderMap, state: &AppState, content: Markup) -> Response {
    let token = auth::form_token(state, headers);
    html_response(layout::page(title, nav, "", token.as_deref(), content), LIST_CSP)
}

fn hidden_token(token: &str) -> Markup {
    html! { input type="hidden" name="form_token" value=(token); }
}

// ---- invitation ----

/// `GET /invite/{secret}`: the form that sets the invited user's password.
async fn invite_page(Path(secret): Path<String>) -> Response {
    invite_form(&secret, None)
}

fn invite_form(secret: &str, error: Option<&str>) -> Response {
    let content = html! {
        form method="post" action=(format!("/invite/{}", layout::url_encode(secret))) {
            (notice(error, true))
            p { "Choose your password (at least " (users::MIN_PASSWORD) " characters)." }
            label { "Password " input #password name="password" type="password" autocomplete="new-password" required; }
            button #set-password type="submit" { "Set password" }
        }
    };
    html_response(layout::page("Welcome", Nav::SignIn, "login", None, content), LIST_CSP)
}

/// `POST /invite/{secret}`: sets the password once; the link is then used up.
async fn accept_invite(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    Form(f): Form<Fields>,
) -> Result<Response, ApiError> {
    let password = text(&f.password);
    if let Err(e) = users::check_password(&password) {
        return Ok(invite_form(&secret, Some(&e.message)));
    }
    let hash = digest(&secret);
    let Some(user) = state.blocking(move |s| s.take_invite(&hash, now_ms())).await? else {
        return Ok(invite_form(&secret, Some("This invitation was used or has expired; ask for a new one.")));
    };
    let pw = users::hash_password(&state, password).await?;
    let u = user.clone();
    state.blocking(move |s| s.put_user(&u, &pw)).await?;
    tracing::info!(user = %user, "invitation used");
    Ok(Redirect::to("/login?next=/viewer/").into_response())
}

// ---- one's own account ----

async fn account(caller: Caller, State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    account_page(&state, &caller, &headers, None, false, None).await
}

async fn account_page(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    message: Option<&str>,
    error: bool,
    secret: Option<&str>,
) -> Result<Response, ApiError> {
    let user = users::my_user(state, caller).await?;
    let projects = caller.projects(state).await?;
    let sign_ins = users::my_sign_ins(state, caller, headers).await?;
    let name = user.name.clone();
    let my_tokens = state.blocking(move |s| s.tokens(Some(&name), None)).await?;
    let token = auth::form_token(state, headers).unwrap_or_default();
    let content = html! {
        (notice(message, error))
        @if let Some(secret) = secret {
            p.notice { "Your new token (shown once; send it as " code { "Authorization: Bearer …" } "): " code #new-token { (secret) } }
        }
        h2 { "Account " (user.name) @if user.admin { " (server admin)" } }
        table #my-projects { thead { tr { th { "Project" } th { "Role" } } } tbody {
            @for (p, g) in &projects { tr { td { a href=(format!("/viewer/p/{}/", p.id)) { (p.name) } } td { (g.role.as_str()) } } }
        } }
        h2 { "Password" }
        form.stack method="post" action="/viewer/account" {
            (hidden_token(&token))
            input type="hidden" name="action" value="password";
            label { "Current " input name="current" type="password" autocomplete="current-password" required; }
            label { "New " input name="password" type="password" autocomplete="new-password" required; }
            button #change-password type="submit" { "Change password (signs you out everywhere)" }
        }
        h2 { "Sign-ins" }
        table #sign-ins { thead { tr { th { "Since (UTC)" } th { "Until (UTC)" } th {} } } tbody {
            @for s in &sign_ins { tr {
                td { (format_time(s.login.created_ms)) @if s.current { " (this one)" } }
                td { (format_time(s.login.expires_ms)) }
                td { form method="post" action="/viewer/account" {
                    (hidden_token(&token))
                    input type="hidden" name="action" value="end-sign-in";
                    input type="hidden" name="id" value=(s.login.id);
                    button type="submit" { "End" }
                } }
            } }
        } }
        h2 { "API tokens" }
        (token_table(&my_tokens, &token, "/viewer/account"))
        form.stack #new-token-form method="post" action="/viewer/account" {
            (hidden_token(&token))
            input type="hidden" name="action" value="token";
            label { "Name " input name="name" required; }
            label { input type="checkbox" name="scope_read" value="1" checked; " read sessions" }
            label { input type="checkbox" name="scope_manage" value="1"; " manage projects" }
            @if user.admin { label { input type="checkbox" name="scope_admin" value="1"; " server admin" } }
            label { "Project " select name="project" {
                option value="" { "all of mine" }
                @for (p, _) in &projects { option value=(p.id) { (p.name) } }
            } }
            button type="submit" { "Create token" }
        }
    };
    Ok(page("Account", Nav::Account, headers, state, content))
}

fn token_table(list: &[replay_store::ApiToken], form_token: &str, action: &str) -> Markup {
    html! {
        table.tokens { thead { tr { th { "Name" } th { "Scopes" } th { "Project" } th { "Created (UTC)" } th { "Last used (UTC)" } th {} } } tbody {
            @for t in list { tr data-token=(t.id) {
                td { (t.name) }
                td { (t.scopes.join(", ")) }
                td { @if let Some(p) = t.project { (p) } @else { "all" } }
                td { (format_time(t.created_ms)) }
                td.last-used { @if let Some(u) = t.last_used_ms { (format_time(u)) } @else { "never" } }
                td { @if let Some(r) = t.revoked_ms { "revoked " (format_time(r)) } @else {
                    form method="post" action=(action) {
                        (hidden_token(form_token))
                        input type="hidden" name="action" value="revoke";
                        input type="hidden" name="id" value=(t.id);
                        button type="submit" { "Revoke" }
                    }
                } }
            } }
        } }
    }
}

fn chosen_scopes(f: &Fields) -> Vec<String> {
    [(&f.scope_read, Scope::Read), (&f.scope_manage, Scope::Manage), (&f.scope_admin, Scope::Admin)]
        .into_iter()
        .filter(|(v, _)| !text(v).is_empty())
        .map(|(_, s)| s.as_str().to_owned())
        .collect()
}

/// `POST /viewer/account`: the account page's forms.
async fn account_action(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Result<Response, ApiError> {
    auth::check_form_token(&state, &headers, f.form_token.as_deref())?;
    let outcome: Result<(String, Option<String>), ApiError> = match text(&f.action).as_str() {
        "password" => {
            let change = PasswordChange { current: text(&f.current), new: text(&f.password) };
            match users::change_password(&state, &caller, change).await {
                Ok(()) => return Ok(Redirect::to("/login?next=/viewer/account").into_response()),
                Err(e) => Err(e),
            }
        }
        "end-sign-in" => {
            users::end_sign_in(&state, &caller, text(&f.id)).await.map(|()| ("Sign-in ended.".into(), None))
        }
        "token" => {
            let req = tokens::TokenRequest {
                name: text(&f.name),
                scopes: chosen_scopes(&f),
                project: text(&f.project).parse().ok(),
            };
            tokens::create_mine(&state, &caller, req).await.map(|t| ("Token created.".into(), Some(t.secret)))
        }
        "revoke" => {
            let id: i64 = text(&f.id).parse().unwrap_or(-1);
            let user = caller.user().unwrap_or_default().to_owned();
            let mine =
                state.blocking(move |s| s.token(id)).await?.is_some_and(|t| t.user.as_deref() == Some(user.as_str()));
            if mine {
                state.blocking(move |s| s.revoke_token(id, now_ms())).await?;
                Ok(("Token revoked.".into(), None))
            } else {
                Err(ApiError::not_found("token"))
            }
        }
        _ => Err(ApiError::not_found("action")),
    };
    match outcome {
        Ok((m, secret)) => account_page(&state, &caller, &headers, Some(&m), false, secret.as_deref()).await,
        Err(e) => account_page(&state, &caller, &headers, Some(&e.message), true, None).await,
    }
}

// ---- the server admin's users ----

async fn admin_users(
    admin: AdminAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin_page(&state, &admin.0, &headers, None, false).await
}

async fn admin_page(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    message: Option<&str>,
    error: bool,
) -> Result<Response, ApiError> {
    let all = state.blocking(|s| s.users()).await?;
    let projects = state.blocking(|s| s.projects()).await?;
    let mut roles = Vec::with_capacity(all.len());
    for u in &all {
        let name = u.name.clone();
        roles.push(state.blocking(move |s| s.memberships(&name)).await?);
    }
    let project_name =
        |id: i64| projects.iter().find(|p| p.id == id).map_or_else(|| id.to_string(), |p| p.name.clone());
    let token = auth::form_token(state, headers).unwrap_or_default();
    let me = caller.user().unwrap_or_default();
    let content = html! {
        (notice(message, error))
        h2 { "Users" }
        table #users { thead { tr { th { "Name" } th { "Server admin" } th { "State" } th { "Projects" } th {} } } tbody {
            @for (u, ms) in all.iter().zip(&roles) { tr data-user=(u.name) {
                td { (u.name) }
                td { @if u.admin { "yes" } @else { "—" } }
                td { @if u.disabled { "disabled" } @else { "active" } }
                td { @for m in ms { (project_name(m.project)) " (" (m.role) ") " } }
                td { @if u.name != me {
                    form.inline method="post" action="/viewer/admin/users" {
                        (hidden_token(&token))
                        input type="hidden" name="user" value=(u.name);
                        @if u.disabled { button name="action" value="enable" type="submit" { "Enable" } }
                        @else {
                            button name="action" value="disable" type="submit" { "Disable" }
                            " " button name="action" value="invite" type="submit" { "New invitation link" }
                        }
                    }
                } }
            } }
        } }
        h2 { "Add a user" }
        form.stack #add-user method="post" action="/viewer/admin/users" {
            (hidden_token(&token))
            input type="hidden" name="action" value="create";
            label { "Name " input name="name" required; }
            label { "Password (empty: an invitation link) " input name="password" type="password" autocomplete="new-password"; }
            label { input type="checkbox" name="admin" value="1"; " server admin" }
            button type="submit" { "Add" }
        }
        h2 { "Roles" }
        form.stack #set-role method="post" action="/viewer/admin/users" {
            (hidden_token(&token))
            input type="hidden" name="action" value="role";
            label { "User " select name="user" { @for u in &all { option value=(u.name) { (u.name) } } } }
            label { "Project " select name="project" { @for p in &projects { option value=(p.id) { (p.name) } } } }
            (role_select())
            button type="submit" { "Set" }
        }
    };
    Ok(page("Users", Nav::Admin, headers, state, content))
}

fn role_select() -> Markup {
    html! {
        label { "Role " select name="role" {
            @for r in Role::ALL { option value=(r.as_str()) selected[r == Role::Member] { (r.as_str()) } }
            option value="none" { "no access" }
        } }
    }
}

/// `POST /viewer/admin/users`: the admin page's forms.
async fn admin_action(
    AdminAccess(caller): AdminAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Result<Response, ApiError> {
    auth::check_form_token(&state, &headers, f.form_token.as_deref())?;
    let user = text(&f.user);
    let outcome: Result<String, ApiError> = match text(&f.action).as_str() {
        "create" => {
            let password = Some(text(&f.password)).filter(|p| !p.is_empty());
            let invited = password.is_none();
            let new = NewUser { name: text(&f.name), password, admin: !text(&f.admin).is_empty() };
            match users::create_user(&state, new).await {
                Ok(created) if invited => users::invite(&state, created.user.name)
                    .await
                    .map(|i| format!("Added. Send them this link (works once, for 7 days): {}", i.path)),
                Ok(created) => Ok(format!("Added {}.", created.user.name)),
                Err(e) => Err(e),
            }
        }
        "invite" => users::invite(&state, user).await.map(|i| format!("New link (works once, for 7 days): {}", i.path)),
        "disable" | "enable" => {
            let disabled = text(&f.action) == "disable";
            let change = UserChange { disabled: Some(disabled), admin: None };
            users::change_user(&state, &caller, user, change)
                .await
                .map(|u| format!("{} is {}.", u.name, if u.disabled { "disabled" } else { "enabled" }))
        }
        "role" => {
            let project: i64 = text(&f.project).parse().unwrap_or(-1);
            match ProjectAccess::check(&state, caller.clone(), project).await? {
                Some(access) => {
                    let role = Role::parse(&text(&f.role));
                    users::set_role(&state, &access, user, role).await.map(|()| "Role set.".to_owned())
                }
                None => Err(ApiError::not_found("project")),
            }
        }
        _ => Err(ApiError::not_found("action")),
    };
    match outcome {
        Ok(m) => admin_page(&state, &caller, &headers, Some(&m), false).await,
        Err(e) => admin_page(&state, &caller, &headers, Some(&e.message), true).await,
    }
}

// ---- a project's members ----

async fn members(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    members_page(&state, &access, &headers, None, false, None).await
}

async fn members_page(
    state: &AppState,
    access: &ProjectAccess,
    headers: &HeaderMap,
    message: Option<&str>,
    error: bool,
    secret: Option<&str>,
) -> Result<Response, ApiError> {
    let project = access.project;
    let list = state.blocking(move |s| s.members(project)).await?;
    let owner = access.grant.allows(Capability::Manage);
    let project_tokens = if owner {
        let all = state.blocking(move |s| s.tokens(None, Some(project))).await?;
        all.into_iter().filter(|t| t.user.is_none()).collect()
    } else {
        Vec::new()
    };
    let token = auth::form_token(state, headers).unwrap_or_default();
    let action = format!("/viewer/p/{project}/members");
    let content = html! {
        (notice(message, error))
        @if let Some(secret) = secret {
            p.notice { "The project's new token (shown once): " code #new-token { (secret) } }
        }
        h2 { "Members" }
        table #members { thead { tr { th { "User" } th { "Role" } } } tbody {
            @for m in &list { tr data-user=(m.user) { td { (m.user) } td { (m.role) } } }
        } }
        @if owner {
            form.stack #set-member method="post" action=(action) {
                (hidden_token(&token))
                input type="hidden" name="action" value="role";
                label { "User " input name="user" required; }
                (role_select())
                button type="submit" { "Set" }
            }
            h2 { "Project tokens" }
            (token_table(&project_tokens, &token, &action))
            form.stack method="post" action=(action) {
                (hidden_token(&token))
                input type="hidden" name="action" value="token";
                label { "Name " input name="name" required; }
                label { input type="checkbox" name="scope_read" value="1" checked; " read sessions" }
                label { input type="checkbox" name="scope_manage" value="1"; " manage the project" }
                button type="submit" { "Create token" }
            }
        }
    };
    let nav = crate::pages::project_nav(state, access).await?;
    let markup =
        layout::project_page("Members", Nav::Members, &nav, auth::form_token(state, headers).as_deref(), content);
    Ok(html_response(markup, LIST_CSP))
}

/// `POST /viewer/p/{project}/members`: an owner's forms.
async fn members_action(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Result<Response, ApiError> {
    auth::check_form_token(&state, &headers, f.form_token.as_deref())?;
    access.require(Capability::Manage)?;
    let outcome: Result<(String, Option<String>), ApiError> = match text(&f.action).as_str() {
        "role" => users::set_role(&state, &access, text(&f.user), Role::parse(&text(&f.role)))
            .await
            .map(|()| ("Role set.".to_owned(), None)),
        "token" => {
            let req = tokens::TokenRequest { name: text(&f.name), scopes: chosen_scopes(&f), project: None };
            tokens::create_project_token(&state, &access, req)
                .await
                .map(|t| ("Token created.".to_owned(), Some(t.secret)))
        }
        "revoke" => {
            let id: i64 = text(&f.id).parse().unwrap_or(-1);
            tokens::revoke_project_token(&state, &access, id).await.map(|_| ("Token revoked.".to_owned(), None))
        }
        _ => Err(ApiError::not_found("action")),
    };
    match outcome {
        Ok((m, secret)) => members_page(&state, &access, &headers, Some(&m), false, secret.as_deref()).await,
        Err(e) => members_page(&state, &access, &headers, Some(&e.message), true, None).await,
    }
}
