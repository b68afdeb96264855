//! The audit log: who watched, exported or deleted which session, and who changed which
//! setting or member, per project; kept `--audit-retention-days` (pruned by the housekeeping in
//! `main.rs`), shown to the project's owners at `GET /viewer/audit` and
//! `GET /api/v1/projects/{id}/audit`.
//!
//! Deletions and setting changes are recorded by their handlers ([`append`]). Watching and
//! exporting are recorded by [`record_reads`], a layer around the whole app that notes the
//! successful answers of the reads that start a watch (a session's events from the start) or
//! an export (rrweb, the offline export page), so the read handlers stay as they are.
//!
//! Also who may do what, until per-project roles exist: [`require_admin`] (the admin token or
//! the `admin` account) guards every destructive or administrative route.

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Router, http::Uri};
use maud::html;
use serde::{Deserialize, Serialize};

use crate::auth::{self, Reader};
use crate::layout::{self, LIST_CSP, html_response, url_encode};
use crate::reject::Reason;
use crate::storage::{AuditEntry, Storage};
use crate::{ApiError, AppState, api};

/// Actions recorded.
pub const SESSION_WATCH: &str = "session.watch";
pub const SESSION_EXPORT: &str = "session.export";
pub const SESSION_DELETE: &str = "session.delete";
pub const USER_ERASE: &str = "user.erase";
pub const PROJECT_CREATE: &str = "project.create";
pub const PROJECT_RENAME: &str = "project.rename";
pub const PROJECT_DELETE: &str = "project.delete";
pub const PROJECT_SETTINGS: &str = "project.settings";
pub const KEY_ROTATE: &str = "key.rotate";
pub const KEY_REVOKE: &str = "key.revoke";

/// The viewer account the server creates at first start; it administers the server until
/// per-project roles exist.
pub const ADMIN_ACCOUNT: &str = "admin";

/// Entries one page or API answer lists at most.
pub const PAGE_MAX: usize = 500;

/// Who did it, as the log names them.
pub fn actor(reader: &Reader) -> String {
    match reader {
        Reader::Admin => "admin token".to_owned(),
        Reader::User(name) => name.clone(),
    }
}

/// Refuses (403 `forbidden`) anyone but the admin token and the `admin` account.
pub fn require_admin(state: &AppState, reader: &Reader) -> Result<(), ApiError> {
    // roles: the project's owners may do this too (the other branch's role check goes here).
    match reader {
        Reader::Admin => Ok(()),
        Reader::User(name) if name == ADMIN_ACCOUNT => Ok(()),
        Reader::User(_) => {
            state.metrics.rejected(Reason::Forbidden);
            Err(ApiError::new(Reason::Forbidden, "only the admin may do this"))
        }
    }
}

/// The project `requested` (the first one when `None`), refused as not found when it does not
/// exist.
pub async fn existing_project(state: &AppState, requested: Option<i64>) -> Result<i64, ApiError> {
    let id = api::project_id(state, requested).await?;
    let projects = state.blocking(|s| s.projects()).await?;
    if projects.iter().any(|p| p.id == id) { Ok(id) } else { Err(ApiError::not_found("project")) }
}

/// A digest naming an erased user without keeping who they were: whoever knows the id can
/// check that it was erased, the log alone does not tell it.
pub fn user_digest(user: &str) -> String {
    let digest = auth::digest(&format!("replay-erased-user\n{user}"));
    format!("user sha256:{}", digest.get(..16).unwrap_or(&digest))
}

/// Appends an entry (now) to `project`'s log. A failure is logged, never the caller's failure:
/// what was done stays done.
pub fn append(storage: &dyn Storage, project: i64, actor: &str, action: &str, target: &str, detail: &str) {
    let entry = AuditEntry {
        id: 0,
        project_id: project,
        at_ms: replay_core::now_ms(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: detail.to_owned(),
    };
    if let Err(e) = storage.append_audit(&entry) {
        tracing::error!(error = %e, project, action, target, "writing the audit log failed");
    }
}

/// [`append`] off the async workers.
pub async fn record(
    state: &AppState,
    project: i64,
    actor: String,
    action: &'static str,
    target: String,
    detail: String,
) {
    let done = state
        .blocking(move |s| {
            append(s, project, &actor, action, &target, &detail);
            Ok::<_, crate::Error>(())
        })
        .await;
    if let Err(e) = done {
        tracing::error!(error = %e, action, "writing the audit log failed");
    }
}

/// Which read a request is, for the log: a watch (a session's events from the start) or an
/// export, and of which session.
fn audited_read(method: &Method, uri: &Uri) -> Option<(&'static str, String)> {
    if method != Method::GET {
        return None;
    }
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    let param = |name: &str| {
        query.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('='))).map(str::to_owned)
    };
    if let Some(rest) = path.strip_prefix("/api/v1/sessions/") {
        if let Some(id) = rest.strip_suffix("/events") {
            let from_start = param("from").is_none_or(|f| f == "0");
            return from_start.then(|| (SESSION_WATCH, id.to_owned()));
        }
        if let Some(id) = rest.strip_suffix("/rrweb") {
            return Some((SESSION_EXPORT, id.to_owned()));
        }
        return None;
    }
    path.strip_prefix("/viewer/export/").map(|id| (SESSION_EXPORT, id.to_owned()))
}

/// The `project` query parameter of `uri`, if any.
fn project_param(uri: &Uri) -> Option<i64> {
    uri.query()?.split('&').find_map(|kv| kv.strip_prefix("project=")).and_then(|v| v.parse().ok())
}

/// Records the watches and exports that succeeded (see the module docs).
pub async fn record_reads(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some((action, id)) = audited_read(request.method(), request.uri()) else {
        return next.run(request).await;
    };
    // Ids are checked by the handler: only a successful answer is recorded.
    let requested = project_param(request.uri());
    let headers: HeaderMap = request.headers().clone();
    let response = next.run(request).await;
    if response.status().is_success() {
        let reader = auth::reader_of(&state, &headers).await.ok().flatten();
        let project = api::project_id(&state, requested).await.ok();
        if let (Some(reader), Some(project)) = (reader, project) {
            record(&state, project, actor(&reader), action, id, String::new()).await;
        }
    }
    response
}

/// Query of the audit log.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries older than this id (the `next_before` of the previous page).
    before: Option<i64>,
    /// Entries answered: 100 when omitted, at most 500.
    limit: Option<usize>,
}

/// Answer of `GET /api/v1/projects/{id}/audit`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditLog {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// `before` of the next page; absent on the last one.
    pub next_before: Option<i64>,
}

async fn read_log(state: &AppState, project: i64, before: Option<i64>, limit: usize) -> Result<AuditLog, ApiError> {
    let limit = limit.clamp(1, PAGE_MAX);
    let entries = state.blocking(move |s| s.audit_log(project, before, limit)).await?;
    let next_before = if entries.len() == limit { entries.last().map(|e| e.id) } else { None };
    Ok(AuditLog { entries, next_before })
}

/// `GET /api/v1/projects/{id}/audit`: the project's audit log, newest first (the admin's).
#[utoipa::path(get, path = "/api/v1/projects/{id}/audit", tag = "audit",
    params(("id" = i64, Path, description = "Project id."), AuditQuery),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "Who watched, exported or deleted which session, who changed what; newest first.", body = AuditLog),
        (status = 401, description = "No reader: neither a viewer login nor the admin token."),
        (status = 403, description = "The reader is not the admin (`forbidden`)."),
        (status = 404, description = "No such project."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn audit_api(
    reader: Reader,
    State(state): State<AppState>,
    Path(project): Path<i64>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditLog>, ApiError> {
    require_admin(&state, &reader)?;
    let project = existing_project(&state, Some(project)).await?;
    Ok(Json(read_log(&state, project, q.before, q.limit.unwrap_or(100)).await?))
}

/// Query of the audit page.
#[derive(Debug, Deserialize, Default)]
pub struct AuditPageQuery {
    project: Option<i64>,
    before: Option<i64>,
}

/// `GET /viewer/audit`: the audit log of a project as a page (the admin's).
async fn audit_page(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<AuditPageQuery>,
) -> Result<Response, ApiError> {
    let Some(reader) = auth::reader_of(&state, &headers).await? else {
        return Ok(auth::to_login(uri.path_and_query().map_or("/viewer/audit", |p| p.as_str())));
    };
    require_admin(&state, &reader)?;
    let project = existing_project(&state, q.project).await?;
    let log = read_log(&state, project, q.before, 100).await?;
    let content = html! {
        h1 { "Audit log" }
        p { "Who watched, exported or deleted which session, and who changed which setting, in project " (project) ", newest first." }
        @if log.entries.is_empty() {
            p id="status" { "Nothing recorded yet." }
        } @else {
            table id="audit" {
                thead { tr { th { "When (UTC)" } th { "Who" } th { "What" } th { "Which" } th { "Detail" } } }
                tbody {
                    @for e in &log.entries {
                        tr data-action=(e.action) {
                            td { (crate::pages::format_time(e.at_ms)) }
                            td { (e.actor) }
                            td { (e.action) }
                            td { (e.target) }
                            td { (e.detail) }
                        }
                    }
                }
            }
        }
        @if let Some(before) = log.next_before {
            nav.pager { a id="next" href={ "?project=" (project) "&before=" (before) } { "Older →" } }
        }
        p { a href={ "settings?project=" (url_encode(&project.to_string())) } { "Project settings" } }
    };
    let markup =
        layout::page("Audit log", layout::Nav::Sessions, "", auth::form_token(&state, &headers).as_deref(), content);
    Ok(html_response(markup, LIST_CSP))
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/viewer/audit", get(audit_page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_and_exports_are_told_from_other_reads() {
        let read = |m: Method, u: &str| audited_read(&m, &u.parse().expect("uri"));
        assert_eq!(read(Method::GET, "/api/v1/sessions/s1/events?project=2"), Some((SESSION_WATCH, "s1".into())));
        assert_eq!(read(Method::GET, "/api/v1/sessions/s1/events?from=0"), Some((SESSION_WATCH, "s1".into())));
        assert_eq!(read(Method::GET, "/api/v1/sessions/s1/events?from=3"), None, "the rest of a watch");
        assert_eq!(read(Method::GET, "/api/v1/sessions/s1/rrweb"), Some((SESSION_EXPORT, "s1".into())));
        assert_eq!(read(Method::GET, "/viewer/export/s1?project=2"), Some((SESSION_EXPORT, "s1".into())));
        assert_eq!(read(Method::GET, "/api/v1/sessions/s1"), None);
        assert_eq!(read(Method::GET, "/api/v1/sessions/s1/snapshot"), None);
        assert_eq!(read(Method::POST, "/api/v1/sessions/s1/events"), None);
        assert_eq!(project_param(&"/x?a=1&project=7".parse().expect("uri")), Some(7));
        assert_eq!(project_param(&"/x?project=x".parse().expect("uri")), None);
    }

    #[test]
    fn an_erased_user_is_named_by_a_digest_only() {
        let d = user_digest("ada@example.com");
        assert!(d.starts_with("user sha256:") && !d.contains("ada"), "{d}");
        assert_eq!(d, user_digest("ada@example.com"));
        assert_ne!(d, user_digest("bob@example.com"));
    }
}
