//! The audit log: who watched, exported or deleted which session, and who changed which
//! setting, member or token, per project; kept `--audit-retention-days` (pruned by the
//! housekeeping in `main.rs`), shown to the project's owners at `GET /viewer/p/{project}/audit`
//! and `GET /api/v1/projects/{project}/audit`. The actor is [`Caller::label`].
//!
//! Deletions and setting changes are recorded by their handlers ([`append`]). Watching and
//! exporting are recorded by [`record_reads`], a layer around the whole app that notes the
//! successful answers of the reads that show a session (its events, from the start or any
//! later range, and its snapshot at a time) or export it (rrweb, the offline export page), so
//! the read handlers stay as they are. A read from the start is always an entry; a later range
//! or a snapshot is one unless the same caller's watch of that session was recorded in the last
//! [`WATCH_WINDOW`] ([`Recent`]): a player reading a session in parts leaves one entry, and no
//! read of its content leaves none. The session id is logged decoded, as the handler reads it.

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Router, http::Uri};
use maud::html;
use serde::{Deserialize, Serialize};

use crate::access::{Caller, Capability, ProjectAccess, caller_of};
use crate::auth;
use crate::layout::{self, LIST_CSP, html_response};
use crate::storage::{AuditEntry, Storage};
use crate::{ApiError, AppState};

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
pub const MEMBER_ROLE: &str = "member.role";
pub const TOKEN_CREATE: &str = "token.create";
pub const TOKEN_REVOKE: &str = "token.revoke";
pub const COMMENT_ADD: &str = "comment.add";
pub const COMMENT_DELETE: &str = "comment.delete";

/// Entries one page or API answer lists at most.
pub const PAGE_MAX: usize = 500;

/// Who did it, as the log names them ([`Caller::label`]).
pub fn actor(caller: &Caller) -> String {
    caller.label()
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

/// The project a read names: in its path, or (the legacy unscoped routes) the one the legacy
/// route resolves for its caller once it answered.
#[derive(Debug, PartialEq)]
enum ReadProject {
    Named(i64),
    Legacy,
}

/// `from` as the events handler reads it (the same query decoding).
#[derive(Deserialize)]
struct FromQuery {
    from: Option<usize>,
}

/// How long a recorded watch covers the same caller's later reads of the session.
pub const WATCH_WINDOW: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// Most watches remembered (then the memory starts over: at worst, entries are repeated).
const RECENT_MAX: usize = 10_000;

/// The watches recorded lately: (project, actor, session) → when.
#[derive(Debug, Default)]
pub struct Recent(std::sync::Mutex<std::collections::HashMap<(i64, String, String), std::time::Instant>>);

impl Recent {
    /// Notes a watch now; true when it is to be recorded (`always`, or none was within the window).
    fn note(&self, key: (i64, String, String), always: bool) -> bool {
        let Ok(mut map) = self.0.lock() else { return true };
        let fresh = map.get(&key).is_some_and(|at| at.elapsed() < WATCH_WINDOW);
        if fresh && !always {
            return false;
        }
        if map.len() >= RECENT_MAX {
            map.retain(|_, at| at.elapsed() < WATCH_WINDOW);
            if map.len() >= RECENT_MAX {
                map.clear();
            }
        }
        map.insert(key, std::time::Instant::now());
        true
    }
}

/// A session id of a path as the handler reads it (percent-decoded); `None` when it is not one.
fn decoded_id(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|id| replay_protocol::codec::is_valid_id(id))
}

/// What a read is for the log: the action, whether it is always an entry (a watch from the
/// start, an export), its project and its session.
struct AuditedRead {
    action: &'static str,
    always: bool,
    project: ReadProject,
    id: String,
}

/// Which read a request is, for the log: a watch (a session's events, any range, or its
/// snapshot) or an export, of which project and session: the project-scoped paths, the legacy
/// unscoped ones (which answer as the scoped ones do) and the viewer's export.
fn audited_read(method: &Method, uri: &Uri) -> Option<AuditedRead> {
    if method != Method::GET {
        return None;
    }
    let path = uri.path();
    // `from` decoded as the handler decodes it (`from=00` is the start too); a query the
    // handler refuses is answered with an error, which is not recorded anyway.
    let from_start = || Query::<FromQuery>::try_from_uri(uri).is_ok_and(|q| q.0.from.unwrap_or(0) == 0);
    let (project, rest) = if let Some(rest) = path.strip_prefix("/api/v1/projects/") {
        let (project, rest) = rest.split_once('/')?;
        (ReadProject::Named(project.parse().ok()?), rest)
    } else if let Some(rest) = path.strip_prefix("/api/v1/") {
        (ReadProject::Legacy, rest)
    } else {
        let rest = path.strip_prefix("/viewer/p/")?;
        let (project, rest) = rest.split_once('/')?;
        let id = decoded_id(rest.strip_prefix("export/")?)?;
        let project = ReadProject::Named(project.parse().ok()?);
        return Some(AuditedRead { action: SESSION_EXPORT, always: true, project, id });
    };
    let rest = rest.strip_prefix("sessions/")?;
    if let Some(id) = rest.strip_suffix("/events") {
        return Some(AuditedRead { action: SESSION_WATCH, always: from_start(), project, id: decoded_id(id)? });
    }
    if let Some(id) = rest.strip_suffix("/snapshot") {
        return Some(AuditedRead { action: SESSION_WATCH, always: false, project, id: decoded_id(id)? });
    }
    let id = decoded_id(rest.strip_suffix("/rrweb")?)?;
    Some(AuditedRead { action: SESSION_EXPORT, always: true, project, id })
}

/// Records the watches and exports that succeeded (see the module docs).
pub async fn record_reads(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(AuditedRead { action, always, project, id }) = audited_read(request.method(), request.uri()) else {
        return next.run(request).await;
    };
    // The handler checks the caller and the ids: only a successful answer is recorded.
    let headers: HeaderMap = request.headers().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    if response.status().is_success()
        && let Ok(Some(caller)) = caller_of(&state, &headers).await
    {
        let label = actor(&caller);
        let project = match project {
            ReadProject::Named(p) => Some(p),
            ReadProject::Legacy => crate::legacy::project_of(&state, caller, &uri).await,
        };
        if let Some(project) = project
            && (action != SESSION_WATCH || state.watched.note((project, label.clone(), id.clone()), always))
        {
            record(&state, project, label, action, id, String::new()).await;
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

/// Answer of `GET /api/v1/projects/{project}/audit`.
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

/// `GET /api/v1/projects/{project}/audit`: the project's audit log, newest first (its
/// owners').
#[utoipa::path(get, path = "/api/v1/projects/{project}/audit", tag = "audit",
    params(crate::api::ProjectPath, AuditQuery),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "Who watched, exported or deleted which session, who changed what; newest first.", body = AuditLog),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 403, description = "The caller is not an owner of the project (`forbidden`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn audit_api(
    access: ProjectAccess,
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditLog>, ApiError> {
    access.require(Capability::Manage)?;
    Ok(Json(read_log(&state, access.project, q.before, q.limit.unwrap_or(100)).await?))
}

/// Query of the audit page.
#[derive(Debug, Deserialize, Default)]
pub struct AuditPageQuery {
    before: Option<i64>,
}

/// `GET /viewer/p/{project}/audit`: the audit log of a project as a page (its owners').
async fn audit_page(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditPageQuery>,
) -> Result<Response, ApiError> {
    access.require(Capability::Manage)?;
    let project = access.project;
    let log = read_log(&state, project, q.before, 100).await?;
    let content = html! {
        h1 { "Audit log" }
        p { "Who watched, exported or deleted which session, and who changed which setting, member or token, newest first." }
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
            nav.pager { a id="next" href={ "?before=" (before) } { "Older →" } }
        }
        p { a href={ "/viewer/p/" (project) "/settings" } { "Project settings" } }
    };
    let nav = crate::pages::project_nav(&state, &access).await?;
    let markup = layout::project_page(
        "Audit log",
        layout::Nav::Settings,
        &nav,
        auth::form_token(&state, &headers).as_deref(),
        content,
    );
    Ok(html_response(markup, LIST_CSP))
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/viewer/p/{project}/audit", get(audit_page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_and_exports_are_told_from_other_reads() {
        let read = |m: Method, u: &str| {
            audited_read(&m, &u.parse().expect("uri")).map(|r| (r.action, r.always, r.project, r.id))
        };
        let watch = Some((SESSION_WATCH, true, ReadProject::Named(2), "s1".to_owned()));
        assert_eq!(read(Method::GET, "/api/v1/projects/2/sessions/s1/events"), watch);
        assert_eq!(read(Method::GET, "/api/v1/projects/2/sessions/s1/events?from=0"), watch);
        // Decoded as the handler decodes it: these are the start too, and the same session.
        assert_eq!(read(Method::GET, "/api/v1/projects/2/sessions/s1/events?from=00"), watch);
        assert_eq!(read(Method::GET, "/api/v1/projects/2/sessions/s1/events?from=%30"), watch);
        assert_eq!(read(Method::GET, "/api/v1/projects/2/sessions/s%31/events"), watch);
        // A later range and a snapshot are watches too (one entry per window, see `Recent`).
        let later = Some((SESSION_WATCH, false, ReadProject::Named(2), "s1".to_owned()));
        assert_eq!(read(Method::GET, "/api/v1/projects/2/sessions/s1/events?from=3"), later, "the rest of a watch");
        assert_eq!(read(Method::GET, "/api/v1/projects/2/sessions/s1/snapshot?t=5"), later);
        // The legacy unscoped routes (their project is resolved once they answered).
        let legacy = |action, always| Some((action, always, ReadProject::Legacy, "s1".to_owned()));
        assert_eq!(read(Method::GET, "/api/v1/sessions/s1/events?project=2"), legacy(SESSION_WATCH, true));
        assert_eq!(read(Method::GET, "/api/v1/sessions/s1/rrweb"), legacy(SESSION_EXPORT, true));
        assert_eq!(read(Method::GET, "/api/v1/sessions/s1/events?from=2"), legacy(SESSION_WATCH, false));
        assert_eq!(read(Method::GET, "/api/v1/sessions/s1/snapshot"), legacy(SESSION_WATCH, false));
        let export = Some((SESSION_EXPORT, true, ReadProject::Named(2), "s1".to_owned()));
        assert_eq!(read(Method::GET, "/api/v1/projects/2/sessions/s1/rrweb"), export);
        assert_eq!(read(Method::GET, "/viewer/p/2/export/s1"), export);
        assert_eq!(read(Method::GET, "/api/v1/projects/2/sessions/s1"), None);
        assert_eq!(read(Method::GET, "/api/v1/projects/2/sessions/s%2F1/events"), None, "not a session id");
        assert_eq!(read(Method::GET, "/api/v1/projects/x/sessions/s1/rrweb"), None);
        assert_eq!(read(Method::GET, "/viewer/p/2/player.html"), None);
        assert_eq!(read(Method::POST, "/api/v1/projects/2/sessions/s1/events"), None);
    }

    #[test]
    fn a_watch_covers_the_same_callers_later_reads_for_a_while() {
        let recent = Recent::default();
        let key = |who: &str, id: &str| (2, who.to_owned(), id.to_owned());
        assert!(recent.note(key("user:ann", "s1"), false), "a snapshot with no watch before is an entry");
        assert!(!recent.note(key("user:ann", "s1"), false), "the next range is not");
        assert!(recent.note(key("user:bob", "s1"), false), "another reader is");
        assert!(recent.note(key("user:ann", "s2"), false), "another session is");
        assert!(recent.note(key("user:ann", "s1"), true), "a read from the start always is");
    }

    #[test]
    fn an_erased_user_is_named_by_a_digest_only() {
        let d = user_digest("ada@example.com");
        assert!(d.starts_with("user sha256:") && !d.contains("ada"), "{d}");
        assert_eq!(d, user_digest("ada@example.com"));
        assert_ne!(d, user_digest("bob@example.com"));
    }
}
