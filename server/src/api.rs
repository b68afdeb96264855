//! The JSON query API: the session index, a session's events, and the document at time t.
//!
//! Every route names its project in its path (`/api/v1/projects/{project}/...`) and takes a
//! [`ProjectAccess`]: a caller who may not read that project gets 404, as for a project that
//! does not exist, so a session id only ever means a session of that project. Everything read
//! back from storage is decoded again with the protocol's limits: stored data is as untrusted
//! as it was at ingest.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use replay_protocol::{Timeline, codec, html};
use replay_store::{
    BatchRange, ENVIRONMENT_SAMPLE, ErrorGroup, FactComparison, RangeRequest, SessionFilter, SessionRow,
};
use serde::{Deserialize, Serialize};

use crate::access::ProjectAccess;
use crate::reject::Reason;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Rows answered: 50 when omitted, at most 500.
    limit: Option<usize>,
    /// Rows skipped.
    offset: Option<usize>,
    /// Started at or after (Unix ms).
    since: Option<u64>,
    /// Started before (Unix ms).
    until: Option<u64>,
    /// The first page's URL contains this.
    url: Option<String>,
    /// The identified user.
    user: Option<String>,
    /// The release the recorder reported.
    release: Option<String>,
    /// The environment the recorder reported.
    environment: Option<String>,
    /// Browser name (and major version).
    browser: Option<String>,
    /// Only sessions with an error.
    #[serde(default)]
    has_error: bool,
    /// Only sessions with a freeze.
    #[serde(default)]
    has_freeze: bool,
    /// Only sessions with a rage click (4+ rapid clicks on one spot).
    #[serde(default)]
    has_rage_click: bool,
    /// Only sessions at least this long (ms).
    min_duration_ms: Option<u64>,
    /// Only sessions with a dead click (a click on something clickable that nothing answered).
    #[serde(default)]
    has_dead_click: bool,
    /// Only sessions with an error click (a click followed by an error).
    #[serde(default)]
    has_error_click: bool,
    /// Only sessions with a quick back (a navigation undone within seconds).
    #[serde(default)]
    has_quick_back: bool,
    /// Only sessions that froze and never recovered.
    #[serde(default)]
    never_recovered: bool,
    /// Only sessions where an element with this text was clicked. Search patterns (this and
    /// the next four): case-insensitive, a substring, or with `*` a whole text where `*` is
    /// anything; at most 200 characters (longer: 400 `bad_query`).
    clicked: Option<String>,
    /// Only sessions where a request to a matching URL failed (status 400 or more, or a
    /// network error).
    failed_request: Option<String>,
    /// Only sessions with a matching console message.
    console: Option<String>,
    /// Only sessions that showed a page with a matching URL.
    visited: Option<String>,
    /// With `visited`: only sessions that showed a matching page after that one.
    then_visited: Option<String>,
}

impl ListQuery {
    /// The storage filter of this query (empty strings do not filter).
    pub fn filter(&self) -> SessionFilter {
        let text = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        SessionFilter {
            since_ms: self.since,
            until_ms: self.until,
            url_contains: text(&self.url),
            user: text(&self.user),
            identified: None,
            release: text(&self.release),
            environment: text(&self.environment),
            browser: text(&self.browser),
            has_error: self.has_error,
            has_freeze: self.has_freeze,
            has_rage_click: self.has_rage_click,
            min_duration_ms: self.min_duration_ms,
            never_recovered: self.never_recovered,
            has_dead_click: self.has_dead_click,
            has_error_click: self.has_error_click,
            has_quick_back: self.has_quick_back,
            clicked: text(&self.clicked),
            failed_request: text(&self.failed_request),
            console: text(&self.console),
            visited: text(&self.visited),
            then_visited: text(&self.then_visited),
        }
    }

    /// Refuses search patterns over the cap.
    fn check(&self) -> Result<(), ApiError> {
        let patterns = [&self.clicked, &self.failed_request, &self.console, &self.visited, &self.then_visited];
        if patterns.into_iter().flatten().all(|p| replay_store::search::pattern_ok(p)) {
            Ok(())
        } else {
            Err(ApiError::new(Reason::BadQuery, "a search pattern is longer than 200 characters"))
        }
    }
}

/// Query of the events endpoint: an optional range of batches in replay order.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Index of the first batch to return (replay order); 0 when omitted.
    from: Option<usize>,
    /// Stop adding batches once they hold this many stored bytes (as the recorder sent them,
    /// usually gzip; at least one batch is returned); everything when omitted. The range is
    /// chosen from the index: only its batches are read.
    max_bytes: Option<usize>,
}

/// The path of a project's routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProjectPath {
    /// Project id.
    pub project: i64,
}

/// The path of a session's routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    /// Project id.
    pub project: i64,
    /// Session id (unique inside its project only).
    pub id: String,
}

/// Answer header of the events endpoint: how many batches the session has.
pub const BATCHES_HEADER: &str = "x-replay-batches";
/// Answer header of the events endpoint: index of the first batch not in this answer, absent
/// when the answer reaches the end of the session.
pub const NEXT_HEADER: &str = "x-replay-next";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    /// Milliseconds since the session's first event; omitted means the end of the session.
    t: Option<u64>,
}

/// JSON answer of `GET /api/v1/sessions/{id}/events`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchList {
    /// The batches in replay order, each as defined by `replay-protocol`'s `Batch`, in its
    /// readable form: event kinds and node kinds by name (`{"offset_ms": 5, "data":
    /// {"full_snapshot": ...}}`, `"mutations"`, `"click"`, `"freeze"`, ...), small enums by
    /// name (`"level": "error"`); the one-letter wire tags only travel in MessagePack.
    #[schema(value_type = Vec<Object>)]
    #[serde(serialize_with = "readable_batches")]
    pub batches: Vec<replay_protocol::Batch>,
}

fn readable_batches<S: serde::Serializer>(batches: &[replay_protocol::Batch], s: S) -> Result<S::Ok, S::Error> {
    replay_protocol::Readable(batches).serialize(s)
}

/// Answer of `GET /api/v1/sessions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionRow>,
}

/// A session index row as JSON.
pub type SessionRowJson = SessionRow;

fn check_id(id: &str) -> Result<(), ApiError> {
    if codec::is_valid_id(id) { Ok(()) } else { Err(ApiError::not_found("session")) }
}

/// `GET /api/v1/sessions`: newest first, `limit` (default 50, at most 500), `offset`, and the
/// filters of [`ListQuery`].
#[utoipa::path(get, path = "/api/v1/projects/{project}/sessions", tag = "sessions", params(ProjectPath, ListQuery),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "Session index rows, newest first.", body = SessionList),
        (status = 400, description = "A search pattern is longer than 200 characters (`bad_query`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list_sessions(
    access: ProjectAccess,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let project = access.project;
    let limit = q.limit.unwrap_or(50).min(500);
    let offset = q.offset.unwrap_or(0);
    q.check()?;
    let filter = q.filter();
    let rows = state.blocking(move |s| s.find_sessions(project, &filter, limit, offset)).await?;
    Ok(Json(SessionList { sessions: rows }))
}

/// Query of the error groups endpoint.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErrorsQuery {
    /// Groups answered: 100 when omitted, at most 500.
    limit: Option<usize>,
}

/// Answer of `GET /api/v1/errors`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorGroupList {
    pub groups: Vec<ErrorGroup>,
}

/// `GET /api/v1/errors`: errors grouped by fingerprint (message + top frame), most recently
/// seen first, with counts, first and last seen, and the latest sessions of each group.
#[utoipa::path(get, path = "/api/v1/projects/{project}/errors", tag = "errors", params(ProjectPath, ErrorsQuery),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "Error groups, most recently seen first.", body = ErrorGroupList),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn list_errors(
    access: ProjectAccess,
    State(state): State<AppState>,
    Query(q): Query<ErrorsQuery>,
) -> Result<Json<ErrorGroupList>, ApiError> {
    let project = access.project;
    let limit = q.limit.unwrap_or(100).min(500);
    let groups = crate::symbols::error_groups(&state, project, limit).await?;
    Ok(Json(ErrorGroupList { groups }))
}

/// `GET /api/v1/sessions/{id}`.
#[utoipa::path(get, path = "/api/v1/projects/{project}/sessions/{id}", tag = "sessions", params(SessionPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The session's index row.", body = SessionRow),
        (status = 404, description = "No such session, or no such project or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn get_session(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(SessionPath { id, .. }): Path<SessionPath>,
) -> Result<Json<SessionRowJson>, ApiError> {
    check_id(&id)?;
    let project = access.project;
    let row = state.blocking(move |s| s.session(project, &id)).await?.ok_or_else(|| ApiError::not_found("session"))?;
    Ok(Json(row))
}

/// How a session's environment compares with the project's other sessions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnvironmentComparison {
    pub facts: Vec<FactComparison>,
}

/// `GET /api/v1/sessions/{id}/environment`: each environment fact (browser, OS, viewport, pixel
/// ratio, memory, cores, connection, language, time zone, release, environment, feature flags)
/// with how many sessions share its value and the most common values.
#[utoipa::path(get, path = "/api/v1/projects/{project}/sessions/{id}/environment", tag = "sessions", params(SessionPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "Each environment fact with how many sessions share its value.", body = EnvironmentComparison),
        (status = 404, description = "No such session, or no such project or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn session_environment(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(SessionPath { id, .. }): Path<SessionPath>,
) -> Result<Json<EnvironmentComparison>, ApiError> {
    check_id(&id)?;
    let project = access.project;
    let facts = state.blocking(move |s| s.compare_environment(project, &id, ENVIRONMENT_SAMPLE)).await?;
    Ok(Json(EnvironmentComparison { facts }))
}

/// Every batch of a session (export, snapshot at the end), refused from the index's sizes
/// before any body is read when it is larger than a read may load.
pub(crate) async fn load_batches(state: &AppState, project: i64, id: String) -> Result<Vec<Vec<u8>>, ApiError> {
    let max = state.config.max_read_bytes as u64;
    Ok(load_range(state, project, id, RangeRequest::whole(max)).await?.bodies)
}

/// The batches `req` chooses (see [`replay_store::Storage::batch_range`]): not found when the
/// session has none, too large (from the index, before reading) past `req.refuse_over` stored
/// bytes, or (after reading) past `max_read_bytes` decoded.
async fn load_range(state: &AppState, project: i64, id: String, req: RangeRequest) -> Result<BatchRange, ApiError> {
    check_id(&id)?;
    let too_large = || ApiError::new(Reason::SessionTooLarge, "session is too large to load");
    let range = match state.blocking(move |s| Ok::<_, crate::Error>(s.batch_range(project, &id, &req))).await? {
        Ok(r) => r,
        Err(replay_store::Error::RangeTooLarge { .. }) => return Err(too_large()),
        Err(e) => return Err(e.into()),
    };
    if range.total == 0 {
        return Err(ApiError::not_found("session"));
    }
    let total: usize = range.bodies.iter().map(Vec::len).sum();
    if total > state.config.max_read_bytes {
        return Err(too_large());
    }
    Ok(range)
}

/// Decodes stored batches off the async workers: a big session takes seconds, which stalled
/// every other request (ingest, `/healthz`) on those threads.
async fn decode_all(state: &AppState, bodies: Vec<Vec<u8>>) -> Result<Vec<replay_protocol::Batch>, ApiError> {
    let limits = state.config.limits;
    tokio::task::spawn_blocking(move || decode_stored(&bodies, &limits)).await.map_err(crate::Error::from)?
}

/// Decodes a session's stored batches; one that does not decode (they were checked at ingest:
/// the storage is damaged, or the limits were lowered since) fails the read with
/// `corrupt_session`, never a silent gap in what the caller is shown.
pub fn decode_stored(
    bodies: &[Vec<u8>],
    limits: &replay_protocol::Limits,
) -> Result<Vec<replay_protocol::Batch>, ApiError> {
    bodies.iter().map(|b| replay_protocol::decode_batch(b, limits)).collect::<Result<Vec<_>, _>>().map_err(|e| {
        tracing::error!(error = %e, "stored batch does not decode");
        ApiError::new(Reason::CorruptSession, "a stored batch does not decode")
    })
}

/// `GET /api/v1/sessions/{id}/events`: the batches in replay order. MessagePack (an array of
/// batches) when the client accepts `application/msgpack`, JSON otherwise.
///
/// `?from=N&max_bytes=B` returns a range, so a player can show the first frame before a long
/// session has downloaded: batches from index `N` until they hold `B` stored bytes (at least
/// one). A range costs its own batches, not the session's: the sizes come from the index and
/// only the range's bodies are read.
/// The answer says how many batches the session has ([`BATCHES_HEADER`]) and where the next
/// range starts ([`NEXT_HEADER`], absent at the end).
#[utoipa::path(get, path = "/api/v1/projects/{project}/sessions/{id}/events", tag = "sessions", params(SessionPath, EventsQuery),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The batches in replay order: JSON with readable names (event kinds such as `full_snapshot`, `mutations`, `click`, `freeze`; `offset_ms`; console levels and request kinds by name), or, with `Accept: application/msgpack`, a MessagePack array of the batches as stored (one-letter tags, integer codes).",
            content(
                (BatchList = "application/json"),
                (Vec<u8> = "application/msgpack"),
            ),
            headers(
                ("x-replay-batches" = u64, description = "How many batches the session has."),
                ("x-replay-next" = u64, description = "Index of the first batch not in this answer; absent at the end of the session."),
            )),
        (status = 404, description = "No such session, or no such project or not the caller's."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 500, description = "A stored batch does not decode (`corrupt_session`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn session_events(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(SessionPath { id, .. }): Path<SessionPath>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let project = access.project;
    let max = state.config.max_read_bytes as u64;
    let req = RangeRequest {
        from: q.from.unwrap_or(0),
        max_bytes: q.max_bytes.map_or(u64::MAX, |b| b as u64),
        ..RangeRequest::whole(max)
    };
    let range = load_range(&state, project, id, req).await?;
    let bodies = range.bodies;
    let mut range_headers = HeaderMap::new();
    range_headers.insert(BATCHES_HEADER, range.total.into());
    if let Some(next) = range.next {
        range_headers.insert(NEXT_HEADER, next.into());
    }
    let wants_msgpack =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/msgpack"));
    if wants_msgpack {
        let body = codec::concat_encoded(bodies.iter().map(Vec::as_slice));
        return Ok((range_headers, [(header::CONTENT_TYPE, "application/msgpack")], body).into_response());
    }
    // Decoded and printed off the async workers (see `decode_all`).
    let limits = state.config.limits;
    let json = tokio::task::spawn_blocking(move || {
        let batches = decode_stored(&bodies, &limits)?;
        serde_json::to_vec(&BatchList { batches })
            .map_err(|e| ApiError::new(Reason::CorruptSession, format!("the session does not print: {e}")))
    })
    .await
    .map_err(crate::Error::from)??;
    Ok((range_headers, [(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// The batches the document `t` ms after the session's first event needs: the prefix (replay
/// order) before the first batch that started after that time, chosen from the index. The
/// index knows when the earliest batch started, not its first event, so the time is first
/// taken from the earliest batch; when the decoded first event is later, the prefix is read
/// again up to the time it gives (a longer prefix never changes the first event: the batches
/// it adds start after that time).
async fn batches_until(
    state: &AppState,
    project: i64,
    id: String,
    t: u64,
) -> Result<Vec<replay_protocol::Batch>, ApiError> {
    let max = state.config.max_read_bytes as u64;
    let mut offset = t;
    // Twice is enough when the index's times are the batches' own; clamped (forged) times
    // may need more, and after a few tries the whole session is read.
    for _ in 0..3 {
        let req = RangeRequest { until_offset_ms: Some(offset), ..RangeRequest::whole(max) };
        let BatchRange { bodies, next, first_start_ms, .. } = load_range(state, project, id.clone(), req).await?;
        let batches = decode_all(state, bodies).await?;
        let first_event = batches
            .iter()
            .flat_map(|b| b.events.iter().map(|e| b.start.saturating_add(u64::from(e.t))))
            .min()
            .unwrap_or(first_start_ms);
        let needed = first_event.saturating_add(t).saturating_sub(first_start_ms);
        if next.is_none() || needed <= offset {
            return Ok(batches);
        }
        offset = needed;
    }
    decode_all(state, load_batches(state, project, id).await?).await
}

/// `GET /api/v1/sessions/{id}/snapshot?t=MS`: the normalized HTML of the recorded document at
/// `t` milliseconds after the session's first event (the end when omitted). Scripts are never
/// included, and the answer carries a CSP that forbids running anything if opened directly.
#[utoipa::path(get, path = "/api/v1/projects/{project}/sessions/{id}/snapshot", tag = "sessions", params(SessionPath, SnapshotQuery),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The normalized HTML of the document at `t` (scripts never included; sent with a sandbox CSP).", body = String, content_type = "text/html"),
        (status = 404, description = "No such session, or no such project or not the caller's."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 500, description = "A stored batch does not decode (`corrupt_session`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn session_snapshot(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(SessionPath { id, .. }): Path<SessionPath>,
    Query(q): Query<SnapshotQuery>,
) -> Result<Response, ApiError> {
    let project = access.project;
    let batches = match q.t {
        None => decode_all(&state, load_batches(&state, project, id).await?).await?,
        Some(t) => batches_until(&state, project, id, t).await?,
    };
    let html = tokio::task::spawn_blocking(move || {
        let timeline = Timeline::from_batches(batches);
        let at = q.t.map(|t| timeline.start().unwrap_or(0).saturating_add(t));
        html::document_html(&timeline.dom_at(at))
    })
    .await
    .map_err(crate::Error::from)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'"),
        ],
        html,
    )
        .into_response())
}
