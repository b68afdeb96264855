//! Deletion on request: one session, or every session of an identified user (`Replay.identify`)
//! as an erasure request (GDPR art. 17) asks: from the API
//! (`DELETE /api/v1/projects/{project}/sessions/{id}`, `POST /api/v1/projects/{project}/erasure`),
//! the viewer (`/viewer/p/{project}/delete?session=`, a confirmation page and its form) and the
//! command line (`replay-server session delete`, `replay-server erase`).
//!
//! Storage deletes everything of the sessions (index rows, bodies or objects, error sightings,
//! facts) and remembers their ids: a recorder still running on the user's page, or one
//! resending its buffer, is refused (`410 session_deleted`), and the recorder then stops
//! recording that session. A page opened later starts a new session; an erasure does not stop
//! a user from being recorded again (the site must stop calling `Replay.identify` for them, or
//! stop recording them).
//!
//! Every deletion is written to the project's audit log; an erased user is named there by a
//! digest only ([`audit::user_digest`]). Deleting is the project's owners' (and server
//! admins'): [`Capability::Manage`].

use axum::Json;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::html;
use replay_protocol::codec;
use serde::{Deserialize, Serialize};

use crate::access::{Capability, ProjectAccess};
use crate::api::SessionPath;
use crate::audit;
use crate::auth;
use crate::layout::{self, LIST_CSP, html_response, url_encode};
use crate::reject::Reason;
use crate::storage::{Error, Storage};
use crate::{ApiError, AppState};

/// The actor the audit log names for the command line.
pub const CLI_ACTOR: &str = "command line";

/// Deletes one session of `project` and logs it; false (nothing deleted, nothing remembered)
/// when the project has no such session.
pub fn delete_session(storage: &dyn Storage, project: i64, id: &str, actor: &str) -> Result<bool, Error> {
    if storage.session(project, id)?.is_none() {
        return Ok(false);
    }
    storage.delete_sessions(project, &[id.to_owned()])?;
    audit::append(storage, project, actor, audit::SESSION_DELETE, id, "");
    Ok(true)
}

/// Deletes every session of `user` in `project` and logs the erasure; returns their ids.
pub fn erase_user(storage: &dyn Storage, project: i64, user: &str, actor: &str) -> Result<Vec<String>, Error> {
    let deleted = storage.delete_user_sessions(project, user)?;
    let detail = format!("{} sessions deleted", deleted.len());
    audit::append(storage, project, actor, audit::USER_ERASE, &audit::user_digest(user), &detail);
    Ok(deleted)
}

/// Answer of a deletion.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deleted {
    /// Sessions deleted.
    pub deleted: u64,
}

fn valid_id(id: &str) -> Result<(), ApiError> {
    if codec::is_valid_id(id) { Ok(()) } else { Err(ApiError::not_found("session")) }
}

/// `DELETE /api/v1/projects/{project}/sessions/{id}`: deletes the session with everything
/// stored of it; its later batches are refused (`410 session_deleted`). The project's owners'.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/sessions/{id}", tag = "deletion",
    params(SessionPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The session is deleted.", body = Deleted),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller is not an owner of the project (`forbidden`)."),
        (status = 404, description = "No such session, or no such project or not the caller's."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn delete_session_api(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(SessionPath { id, .. }): Path<SessionPath>,
) -> Result<Json<Deleted>, ApiError> {
    access.require(Capability::Manage)?;
    valid_id(&id)?;
    let (project, actor) = (access.project, audit::actor(&access.caller));
    let found = state.blocking(move |s| delete_session(s, project, &id, &actor)).await?;
    if !found {
        return Err(ApiError::not_found("session"));
    }
    Ok(Json(Deleted { deleted: 1 }))
}

/// Body of an erasure request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Erasure {
    /// The user id the site passed to `Replay.identify` (the session index's `user`).
    pub user: String,
}

/// Longest user id an erasure names (the recorder caps what it sends below this).
const USER_MAX: usize = 1024;

/// `POST /api/v1/projects/{project}/erasure`: deletes every session of an identified user in
/// the project, as an erasure request asks; their later batches are refused. The project's
/// owners'.
#[utoipa::path(post, path = "/api/v1/projects/{project}/erasure", tag = "deletion",
    params(crate::api::ProjectPath),
    request_body(content = Erasure, content_type = "application/json"),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The user's sessions are deleted (possibly none).", body = Deleted),
        (status = 400, description = "No user named, or not JSON (`bad_query`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller is not an owner of the project (`forbidden`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn erasure_api(
    access: ProjectAccess,
    State(state): State<AppState>,
    body: Result<Json<Erasure>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Deleted>, ApiError> {
    access.require(Capability::Manage)?;
    let project = access.project;
    let Ok(Json(Erasure { user })) = body else {
        state.metrics.rejected(Reason::BadQuery);
        return Err(ApiError::new(Reason::BadQuery, "send {\"user\": \"<the id given to Replay.identify>\"}"));
    };
    if user.is_empty() || user.len() > USER_MAX {
        state.metrics.rejected(Reason::BadQuery);
        return Err(ApiError::new(Reason::BadQuery, "name the user to erase (at most 1024 bytes)"));
    }
    let actor = audit::actor(&access.caller);
    let deleted = state.blocking(move |s| erase_user(s, project, &user, &actor)).await?;
    Ok(Json(Deleted { deleted: deleted.len() as u64 }))
}

/// Query of the confirmation page.
#[derive(Debug, Deserialize, Default)]
pub struct ConfirmQuery {
    session: Option<String>,
}

/// `GET /viewer/p/{project}/delete?session=`: what the session is, and the form that deletes
/// it (the project's owners').
async fn confirm_page(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ConfirmQuery>,
) -> Result<Response, ApiError> {
    access.require(Capability::Manage)?;
    let project = access.project;
    let id = q.session.unwrap_or_default();
    valid_id(&id)?;
    let lookup = id.clone();
    let row =
        state.blocking(move |s| s.session(project, &lookup)).await?.ok_or_else(|| ApiError::not_found("session"))?;
    let token = auth::form_token(&state, &headers);
    let content = html! {
        h1 { "Delete this session?" }
        table.summary {
            tr { th { "Session" } td { (row.id) } }
            tr { th { "Started (UTC)" } td { (crate::pages::format_time(row.start_ms)) } }
            tr { th { "Page" } td.url { (row.url) } }
            tr { th { "User" } td { @if row.user.is_empty() { "—" } @else { (row.user) } } }
        }
        p { "Everything recorded of it is deleted for good: its events, errors and environment. Batches its page still sends are refused." }
        form #delete-session method="post" action={ "/viewer/p/" (project) "/delete" } {
            input type="hidden" name="form_token" value=(token.as_deref().unwrap_or_default());
            input type="hidden" name="session" value=(row.id);
            button type="submit" { "Delete session" }
            " "
            a href={ "/viewer/p/" (project) "/player.html?session=" (url_encode(&row.id)) } { "Cancel" }
        }
    };
    let nav = crate::pages::project_nav(&state, &access).await?;
    let markup = layout::project_page("Delete session", layout::Nav::Sessions, &nav, token.as_deref(), content);
    Ok(html_response(markup, LIST_CSP))
}

/// The confirmation form.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    form_token: Option<String>,
    session: String,
}

/// `POST /viewer/p/{project}/delete`: deletes the session and goes back to the project's
/// session list.
async fn delete_form(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<DeleteForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let Ok(Form(form)) = form else {
        state.metrics.rejected(Reason::BadQuery);
        return Err(ApiError::new(Reason::BadQuery, "the form lacks the session"));
    };
    auth::check_form_token(&state, &headers, form.form_token.as_deref())?;
    access.require(Capability::Manage)?;
    valid_id(&form.session)?;
    let (project, actor, id) = (access.project, audit::actor(&access.caller), form.session);
    let found = state.blocking(move |s| delete_session(s, project, &id, &actor)).await?;
    if !found {
        return Err(ApiError::not_found("session"));
    }
    // 303: the list is fetched with GET.
    Ok(Redirect::to(&format!("/viewer/p/{project}/")).into_response())
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/viewer/p/{project}/delete", get(confirm_page).post(delete_form))
}
