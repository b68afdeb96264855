//! The API's first read routes, which named no project (`/api/v1/sessions/...?project=ID`, the
//! first project when omitted), kept working: each answers exactly as its project-scoped route
//! (`/api/v1/projects/{project}/...`) for the project named by `?project=` or, without one, for
//! the only project the caller may read. A caller who may read several projects must name one
//! (404 otherwise: never a silent choice, which is how a session of project 2 once opened
//! project 1's session with the same id), and a project the caller may not read is 404, as on
//! the scoped routes: the check is the same [`ProjectAccess`].

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::access::{Caller, ProjectAccess};
use crate::api::{self, SessionPath};
use crate::{ApiError, AppState, interop};

#[derive(Debug, Default, Deserialize)]
struct LegacyQuery {
    project: Option<String>,
}

/// The caller inside the project a legacy route means (see the module docs).
async fn access(state: &AppState, caller: Caller, uri: &Uri) -> Result<ProjectAccess, ApiError> {
    let named = Query::<LegacyQuery>::try_from_uri(uri).map(|q| q.0.project).unwrap_or_default();
    let project = match named {
        Some(p) => p.trim().parse::<i64>().map_err(|_| ApiError::not_found("project"))?,
        None => match caller.projects(state).await?.as_slice() {
            [(only, _)] => only.id,
            _ => {
                return Err(ApiError::not_found(
                    "project (you may read several: name one with ?project=ID, or use /api/v1/projects/{project}/...);",
                ));
            }
        },
    };
    ProjectAccess::check(state, caller, project).await?.ok_or_else(|| ApiError::not_found("project"))
}

/// The project a legacy route answered for `caller` (for the audit log), as [`access`] resolves it.
pub(crate) async fn project_of(state: &AppState, caller: Caller, uri: &Uri) -> Option<i64> {
    access(state, caller, uri).await.ok().map(|a| a.project)
}

/// The typed query of the scoped route, read from the legacy route's query (`project` ignored).
fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> Result<Query<T>, ApiError> {
    Query::<T>::try_from_uri(uri).map_err(|e| ApiError::new(crate::reject::Reason::BadAccountRequest, e.body_text()))
}

fn session_path(access: &ProjectAccess, id: String) -> Path<SessionPath> {
    Path(SessionPath { project: access.project, id })
}

/// `GET /api/v1/sessions` (legacy): as `GET /api/v1/projects/{project}/sessions`.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "legacy",
    params(("project" = Option<i64>, Query, description = "Project id; without it, the caller's only project.")),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "As `/api/v1/projects/{project}/sessions`."),
        (status = 403, description = "The caller's role may not do this (`forbidden`)."),
        (status = 404, description = "No such session or project, or not the caller's, or no project named and the caller may read several."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 500, description = "A stored batch does not decode (`corrupt_session`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn sessions(caller: Caller, State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let access = access(&state, caller, &uri).await?;
    Ok(api::list_sessions(access, State(state), query(&uri)?).await.into_response())
}

/// `GET /api/v1/errors` (legacy): as `GET /api/v1/projects/{project}/errors`.
#[utoipa::path(get, path = "/api/v1/errors", tag = "legacy",
    params(("project" = Option<i64>, Query, description = "Project id; without it, the caller's only project.")),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "As `/api/v1/projects/{project}/errors`."),
        (status = 403, description = "The caller's role may not do this (`forbidden`)."),
        (status = 404, description = "No such session or project, or not the caller's, or no project named and the caller may read several."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 500, description = "A stored batch does not decode (`corrupt_session`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn errors(caller: Caller, State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let access = access(&state, caller, &uri).await?;
    Ok(api::list_errors(access, State(state), query(&uri)?).await.into_response())
}

/// `GET /api/v1/sessions/{id}` (legacy): as `GET /api/v1/projects/{project}/sessions/{id}`.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "legacy",
    params(("id" = String, Path, description = "Session id."), ("project" = Option<i64>, Query, description = "Project id; without it, the caller's only project.")),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "As `/api/v1/projects/{project}/sessions/{id}`."),
        (status = 403, description = "The caller's role may not do this (`forbidden`)."),
        (status = 404, description = "No such session or project, or not the caller's, or no project named and the caller may read several."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 500, description = "A stored batch does not decode (`corrupt_session`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn session(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let access = access(&state, caller, &uri).await?;
    let path = session_path(&access, id);
    Ok(api::get_session(access, State(state), path).await.into_response())
}

/// `GET /api/v1/sessions/{id}/events` (legacy): as `GET /api/v1/projects/{project}/sessions/{id}/events`.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/events", tag = "legacy",
    params(("id" = String, Path, description = "Session id."), ("project" = Option<i64>, Query, description = "Project id; without it, the caller's only project.")),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "As `/api/v1/projects/{project}/sessions/{id}/events`."),
        (status = 403, description = "The caller's role may not do this (`forbidden`)."),
        (status = 404, description = "No such session or project, or not the caller's, or no project named and the caller may read several."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 500, description = "A stored batch does not decode (`corrupt_session`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn events(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let access = access(&state, caller, &uri).await?;
    let path = session_path(&access, id);
    Ok(api::session_events(access, State(state), path, query(&uri)?, headers).await.into_response())
}

/// `GET /api/v1/sessions/{id}/snapshot` (legacy): as `GET /api/v1/projects/{project}/sessions/{id}/snapshot`.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/snapshot", tag = "legacy",
    params(("id" = String, Path, description = "Session id."), ("project" = Option<i64>, Query, description = "Project id; without it, the caller's only project.")),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "As `/api/v1/projects/{project}/sessions/{id}/snapshot`."),
        (status = 403, description = "The caller's role may not do this (`forbidden`)."),
        (status = 404, description = "No such session or project, or not the caller's, or no project named and the caller may read several."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 500, description = "A stored batch does not decode (`corrupt_session`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn snapshot(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let access = access(&state, caller, &uri).await?;
    let path = session_path(&access, id);
    Ok(api::session_snapshot(access, State(state), path, query(&uri)?).await.into_response())
}

/// `GET /api/v1/sessions/{id}/environment` (legacy): as `GET /api/v1/projects/{project}/sessions/{id}/environment`.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/environment", tag = "legacy",
    params(("id" = String, Path, description = "Session id."), ("project" = Option<i64>, Query, description = "Project id; without it, the caller's only project.")),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "As `/api/v1/projects/{project}/sessions/{id}/environment`."),
        (status = 403, description = "The caller's role may not do this (`forbidden`)."),
        (status = 404, description = "No such session or project, or not the caller's, or no project named and the caller may read several."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 500, description = "A stored batch does not decode (`corrupt_session`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn environment(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let access = access(&state, caller, &uri).await?;
    let path = session_path(&access, id);
    Ok(api::session_environment(access, State(state), path).await.into_response())
}

/// `GET /api/v1/sessions/{id}/rrweb` (legacy): as `GET /api/v1/projects/{project}/sessions/{id}/rrweb`.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/rrweb", tag = "legacy",
    params(("id" = String, Path, description = "Session id."), ("project" = Option<i64>, Query, description = "Project id; without it, the caller's only project.")),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "As `/api/v1/projects/{project}/sessions/{id}/rrweb`."),
        (status = 403, description = "The caller's role may not do this (`forbidden`)."),
        (status = 404, description = "No such session or project, or not the caller's, or no project named and the caller may read several."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 500, description = "A stored batch does not decode (`corrupt_session`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn rrweb(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let access = access(&state, caller, &uri).await?;
    let path = session_path(&access, id);
    Ok(interop::export_rrweb(access, State(state), path).await.into_response())
}
