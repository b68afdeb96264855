//! Server-rendered viewer pages: the session list with its filters, and the export of one
//! session as a single self-contained HTML file that plays offline.
//!
//! The list is rendered with maud (every recorded string is escaped) and sends a CSP without
//! any script: the page is plain HTML and a GET form. Filters run in the storage engine
//! ([`crate::storage::SessionFilter`]); the browser filter also matches the user agent, for
//! sessions recorded before the recorder reported its environment. Both pages need a signed-in
//! reader.

use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use maud::html;
use replay_protocol::codec;
use serde::Deserialize;

use crate::access::{Caller, Capability, ProjectAccess};
use crate::layout::{self, LIST_CSP, html_response, url_encode};
use crate::storage::SessionRow;
use crate::{ApiError, AppState, api, assets, auth};

/// Sessions per page of the list.
pub const PAGE_SIZE: usize = 50;
/// Most index rows scanned to answer one filtered page.
const MAX_SCANNED: usize = 50_000;
/// Policy of an exported file: its own inline scripts and modules (data: URLs in its import
/// map) run; the replayed page still cannot (sandboxed iframe), nothing is sent anywhere.
const EXPORT_CSP: &str = "default-src 'none'; script-src 'unsafe-inline' data: 'wasm-unsafe-eval'; \
     style-src * 'unsafe-inline'; img-src * data: blob:; font-src * data:; media-src * data: blob:; \
     base-uri 'none'; form-action 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/viewer/", get(home))
        .route("/viewer/errors", get(|c: Caller, s: State<AppState>, q: RawQuery| to_project_page(c, s, q, "errors")))
        .route("/viewer/player.html", get(legacy_player))
        .route("/viewer/export/{id}", get(legacy_export))
        .route("/viewer/open", get(open_by_key))
        .route("/viewer/p/{project}/", get(session_list))
        .route(
            "/viewer/p/{project}",
            get(|Path(p): Path<i64>| async move { Redirect::permanent(&format!("/viewer/p/{p}/")) }),
        )
        .route("/viewer/p/{project}/player.html", get(player))
        .route("/viewer/p/{project}/export/{id}", get(export))
}

/// The header of a project's pages: its name, and the reader's other projects to switch to.
pub async fn project_nav(state: &AppState, access: &ProjectAccess) -> Result<layout::ProjectNav, ApiError> {
    let projects = access.caller.projects(state).await?;
    Ok(layout::ProjectNav {
        current: access.project,
        projects: projects.into_iter().map(|(p, _)| (p.id, p.name)).collect(),
        admin: access.caller.is_server_admin(),
        manage: access.grant.allows(crate::access::Capability::Manage),
    })
}

/// Splits a query into its `project` and the rest (encoded again).
fn split_project(query: Option<&str>) -> (Option<i64>, String) {
    let mut project = None;
    let mut rest = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k == "project" {
            project = v.trim().parse().ok();
        } else {
            rest.push(format!("{}={}", url_encode(&k), url_encode(&v)));
        }
    }
    (project, rest.join("&"))
}

/// `GET /viewer/` and `/viewer/errors`: to the page of the project named by `?project=` (the
/// switcher's form), else of the reader's first project.
async fn to_project_page(
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    page: &'static str,
) -> Result<Response, ApiError> {
    let (named, rest) = split_project(q.as_deref());
    let projects = caller.projects(&state).await?;
    let chosen = match named {
        Some(id) => projects.iter().find(|(p, _)| p.id == id).ok_or_else(|| ApiError::not_found("project"))?,
        None => match projects.first() {
            Some(p) => p,
            None => {
                let content = html! {
                    p id="status" { "You are not a member of any project yet. Ask an owner of a project or the server's admin to add you." }
                };
                let markup = layout::page("Sessions", layout::Nav::Sessions, "", None, content);
                return Ok(html_response(markup, LIST_CSP));
            }
        },
    };
    let query = if rest.is_empty() { String::new() } else { format!("?{rest}") };
    Ok(Redirect::to(&format!("/viewer/p/{}/{page}{query}", chosen.0.id)).into_response())
}

async fn home(caller: Caller, state: State<AppState>, q: RawQuery) -> Result<Response, ApiError> {
    to_project_page(caller, state, q, "").await
}

/// `GET /viewer/p/{project}/player.html`: the player, for a reader of the project.
async fn player(_access: ProjectAccess, Query(q): Query<PlayerQuery>) -> Response {
    assets::viewer_file("player.html", q.block.as_deref().is_some_and(|b| b != "0"))
}

#[derive(Debug, Default, Deserialize)]
struct PlayerQuery {
    block: Option<String>,
    session: Option<String>,
    key: Option<String>,
}

/// The readable projects holding a session with this id (at most a few lookups: one per
/// project the reader may read, at most 100).
async fn projects_with_session(state: &AppState, caller: &Caller, id: &str) -> Result<Vec<(i64, String)>, ApiError> {
    if !codec::is_valid_id(id) {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for (p, _) in caller.projects(state).await?.into_iter().take(100) {
        let id = id.to_owned();
        if state.blocking(move |s| s.session(p.id, &id)).await?.is_some() {
            found.push((p.id, p.name));
        }
    }
    Ok(found)
}

/// A link of the first viewer (`/viewer/player.html?session=S`, `/viewer/export/S`, without a
/// project): to the project named by `?project=`, else to the one readable project holding
/// that session; when several do, the reader picks one (never a silent choice).
async fn to_session_page(
    state: &AppState,
    caller: &Caller,
    id: &str,
    query: Option<&str>,
    page: impl Fn(i64) -> String,
) -> Result<Response, ApiError> {
    let (named, rest) = split_project(query);
    let suffix = if rest.is_empty() { String::new() } else { format!("?{rest}") };
    if let Some(project) = named {
        return Ok(Redirect::to(&format!("{}{suffix}", page(project))).into_response());
    }
    let found = projects_with_session(state, caller, id).await?;
    match found.as_slice() {
        [] => Err(ApiError::not_found("session")),
        [(project, _)] => Ok(Redirect::to(&format!("{}{suffix}", page(*project))).into_response()),
        several => {
            let content = html! {
                p id="status" { "A session with this id was recorded in several of your projects. Which one?" }
                ul.choices { @for (id, name) in several { li { a href=(format!("{}{suffix}", page(*id))) { (name) } } } }
            };
            Ok(html_response(layout::page("Which project?", layout::Nav::Sessions, "", None, content), LIST_CSP))
        }
    }
}

async fn legacy_player(
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let session = split_query_value(q.as_deref(), "session").unwrap_or_default();
    if session.is_empty() {
        // The player without a session (the benchmark drives it itself): the first project's.
        return to_project_page(caller, State(state), RawQuery(q), "player.html").await;
    }
    to_session_page(&state, &caller, &session, q.as_deref(), |p| format!("/viewer/p/{p}/player.html")).await
}

async fn legacy_export(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let page = |p: i64| format!("/viewer/p/{p}/export/{}", url_encode(&id));
    to_session_page(&state, &caller, &id, q.as_deref(), page).await
}

fn split_query_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `GET /viewer/open?key=K&session=S`: what the recorder's `Replay.sessionUrl()` links to. The
/// page knows its ingest key (public) but not its project's id; the key names the project, and
/// the player there checks that the reader may read it. A key of a project the caller may not
/// read answers 404 like an unknown key: the key (public) must not tell a signed-in user of
/// another team which project it is.
async fn open_by_key(
    caller: Caller,
    State(state): State<AppState>,
    Query(q): Query<PlayerQuery>,
) -> Result<Response, ApiError> {
    let (Some(key), Some(session)) = (q.key, q.session) else { return Err(ApiError::not_found("session")) };
    if key.len() > 200 || !codec::is_valid_id(&session) {
        return Err(ApiError::not_found("session"));
    }
    let project =
        state.blocking(move |s| s.project_by_key(&key)).await?.ok_or_else(|| ApiError::not_found("project"))?;
    if caller.grant(&state, project.id).await?.is_none() {
        return Err(ApiError::not_found("project"));
    }
    Ok(Redirect::to(&format!("/viewer/p/{}/player.html?session={}", project.id, url_encode(&session))).into_response())
}

/// The list filters as they arrive from the form (every field optional, empty = unset).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct FilterForm {
    pub from: Option<String>,
    pub to: Option<String>,
    pub url: Option<String>,
    pub user: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub browser: Option<String>,
    pub has_error: Option<String>,
    pub has_freeze: Option<String>,
    pub has_rage_click: Option<String>,
    pub has_dead_click: Option<String>,
    pub has_error_click: Option<String>,
    pub has_quick_back: Option<String>,
    pub never_recovered: Option<String>,
    /// Seconds.
    pub min_duration: Option<String>,
    pub page: Option<String>,
    /// Search by what happened (see `replay_store::search`).
    pub clicked: Option<String>,
    pub failed_request: Option<String>,
    pub console: Option<String>,
    pub visited: Option<String>,
    pub then_visited: Option<String>,
}

/// What the list is filtered by: the storage filter, plus the browser, which is also matched
/// against the user agent (sessions recorded before the recorder reported its environment).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionFilter {
    /// Everything the storage engine answers (its `browser` stays unset; see `browser`).
    pub stored: crate::storage::SessionFilter,
    /// The browser contains this, case-insensitive: `chrome`, `firefox`.
    pub browser: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A search pattern of the form; one over the cap is ignored, like any value that does not parse.
fn pattern(v: &Option<String>) -> Option<String> {
    non_empty(v).filter(|p| replay_store::search::pattern_ok(p))
}

impl SessionFilter {
    /// Reads the form leniently: values that do not parse are ignored.
    pub fn from_form(f: &FilterForm) -> Self {
        SessionFilter {
            stored: crate::storage::SessionFilter {
                since_ms: non_empty(&f.from).and_then(|v| parse_datetime(&v)),
                until_ms: non_empty(&f.to).and_then(|v| parse_datetime(&v)),
                url_contains: non_empty(&f.url).map(|s| s.to_lowercase()),
                user: non_empty(&f.user),
                identified: None,
                release: non_empty(&f.release),
                environment: non_empty(&f.environment),
                browser: None,
                has_error: non_empty(&f.has_error).is_some(),
                has_freeze: non_empty(&f.has_freeze).is_some(),
                has_rage_click: non_empty(&f.has_rage_click).is_some(),
                min_duration_ms: non_empty(&f.min_duration)
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(|s| (s * 1000.0) as u64),
                never_recovered: non_empty(&f.never_recovered).is_some(),
                has_dead_click: non_empty(&f.has_dead_click).is_some(),
                has_error_click: non_empty(&f.has_error_click).is_some(),
                has_quick_back: non_empty(&f.has_quick_back).is_some(),
                clicked: pattern(&f.clicked),
                failed_request: pattern(&f.failed_request),
                console: pattern(&f.console),
                visited: pattern(&f.visited),
                then_visited: pattern(&f.then_visited),
            },
            browser: non_empty(&f.browser).map(|s| s.to_lowercase()),
        }
    }

    /// The part of the filter the storage engine answers.
    pub fn to_storage(&self) -> crate::storage::SessionFilter {
        self.stored.clone()
    }

    /// True when the row passes the filters checked in memory (time, URL, duration, browser).
    pub fn matches(&self, row: &SessionRow) -> bool {
        let f = &self.stored;
        f.since_ms.is_none_or(|t| row.start_ms >= t)
            && f.until_ms.is_none_or(|t| row.start_ms < t)
            && f.url_contains.as_deref().is_none_or(|u| row.url.to_lowercase().contains(u))
            && self.browser.as_deref().is_none_or(|b| {
                browser_of(&row.user_agent).to_lowercase().contains(b) || row.browser.to_lowercase().contains(b)
            })
            && f.min_duration_ms.is_none_or(|d| row.duration_ms >= d)
    }
}

/// The browser named by a user agent string.
pub fn browser_of(ua: &str) -> &'static str {
    if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chromium/") || ua.contains("HeadlessChrome/") {
        "Chromium"
    } else if ua.contains("Chrome/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else if ua.is_empty() {
        "—"
    } else {
        "Other"
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]` (an `<input type=datetime-local>`), as UTC.
pub fn parse_datetime(v: &str) -> Option<u64> {
    let (date, time) = v.split_once(['T', ' ']).unwrap_or((v, "00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min) = (t.next()??, t.next()??);
    let s = t.next().flatten().unwrap_or(0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || !(0..24).contains(&h) || !(0..60).contains(&min) {
        return None;
    }
    let secs = days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + s;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of Unix epoch ms.
pub fn format_time(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil_from_days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn format_duration(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 { format!("{s}s") } else { format!("{}m {:02}s", s / 60, s % 60) }
}

/// One page of sessions passing `filter`, newest first, and whether there are more.
fn filter_sessions(
    storage: &dyn crate::Storage,
    project: i64,
    filter: &SessionFilter,
    page: usize,
) -> Result<(Vec<SessionRow>, bool), crate::Error> {
    let skip = page * PAGE_SIZE;
    let (mut matched, mut out) = (0usize, Vec::new());
    let mut offset = 0;
    const CHUNK: usize = 500;
    let stored = filter.to_storage();
    while offset < MAX_SCANNED {
        let rows = storage.find_sessions(project, &stored, CHUNK, offset)?;
        let n = rows.len();
        for row in rows {
            if !filter.matches(&row) {
                continue;
            }
            matched += 1;
            if matched > skip {
                if out.len() == PAGE_SIZE {
                    return Ok((out, true));
                }
                out.push(row);
            }
        }
        if n < CHUNK {
            break;
        }
        offset += CHUNK;
    }
    Ok((out, false))
}

/// `GET /viewer/p/{project}/`: the project's session list, newest first, filtered and
/// paginated. Every link and form of the page is relative to the project's path.
async fn session_list(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(form): Query<FilterForm>,
) -> Result<Response, ApiError> {
    let filter = SessionFilter::from_form(&form);
    let page: usize = non_empty(&form.page).and_then(|p| p.parse().ok()).unwrap_or(1).max(1) - 1;
    let project = access.project;
    let f = filter.clone();
    let (rows, more) = state.blocking(move |s| filter_sessions(s, project, &f, page)).await?;
    let link = |page: usize| {
        let mut q: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("from", &form.from),
            ("to", &form.to),
            ("url", &form.url),
            ("user", &form.user),
            ("release", &form.release),
            ("environment", &form.environment),
            ("browser", &form.browser),
            ("has_error", &form.has_error),
            ("has_freeze", &form.has_freeze),
            ("has_rage_click", &form.has_rage_click),
            ("has_dead_click", &form.has_dead_click),
            ("has_error_click", &form.has_error_click),
            ("has_quick_back", &form.has_quick_back),
            ("never_recovered", &form.never_recovered),
            ("min_duration", &form.min_duration),
            ("clicked", &form.clicked),
            ("failed_request", &form.failed_request),
            ("console", &form.console),
            ("visited", &form.visited),
            ("then_visited", &form.then_visited),
        ] {
            if let Some(v) = non_empty(v) {
                q.push((k, v));
            }
        }
        q.push(("page", (page + 1).to_string()));
        let encoded: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect();
        format!("?{}", encoded.join("&"))
    };
    let val = |v: &Option<String>| v.clone().unwrap_or_default();
    let content = html! {
            form.filters method="get" action="" {
                label { "From (UTC) " input type="datetime-local" name="from" value=(val(&form.from)); }
                label { "To (UTC) " input type="datetime-local" name="to" value=(val(&form.to)); }
                label { "URL contains " input type="search" name="url" value=(val(&form.url)); }
                label { "User " input type="search" name="user" value=(val(&form.user)); }
                label { "Release " input type="search" name="release" value=(val(&form.release)); }
                label { "Environment " input type="search" name="environment" value=(val(&form.environment)); }
                label { "Browser " input type="search" name="browser" value=(val(&form.browser)); }
                label { "Min duration (s) " input type="number" min="0" name="min_duration" value=(val(&form.min_duration)); }
                label { input type="checkbox" name="has_error" value="1" checked[filter.stored.has_error]; " Has error" }
                label { input type="checkbox" name="has_freeze" value="1" checked[filter.stored.has_freeze]; " Has freeze" }
                label { input type="checkbox" name="has_rage_click" value="1" checked[filter.stored.has_rage_click]; " Rage clicks" }
                label { input type="checkbox" name="has_dead_click" value="1" checked[filter.stored.has_dead_click]; " Dead clicks" }
                label { input type="checkbox" name="has_error_click" value="1" checked[filter.stored.has_error_click]; " Error clicks" }
                label { input type="checkbox" name="has_quick_back" value="1" checked[filter.stored.has_quick_back]; " Quick backs" }
                label { input type="checkbox" name="never_recovered" value="1" checked[filter.stored.never_recovered]; " Froze, never recovered" }
                label { "Clicked " input type="search" name="clicked" placeholder="button text" value=(val(&form.clicked)); }
                label { "Request failed " input type="search" name="failed_request" placeholder="URL, * for any" value=(val(&form.failed_request)); }
                label { "Console " input type="search" name="console" value=(val(&form.console)); }
                label { "Visited " input type="search" name="visited" placeholder="page A" value=(val(&form.visited)); }
                label { "then " input type="search" name="then_visited" placeholder="page B" value=(val(&form.then_visited)); }
                button type="submit" { "Filter" }
                a href="./" { "Clear" }
            }
            @if rows.is_empty() {
                p id="status" { @if page == 0 { "No sessions match. Recorded sessions appear here within seconds (a server started with --demo true has a demo app at /demo)." } @else { "No more sessions." } }
            } @else {
                table id="sessions" {
                    thead { tr { th { "Started (UTC)" } th { "Duration" } th { "Page" } th { "Pages" } th { "User" } th { "Browser" } th { "Clicks" } th { "Errors" } th { "Freezes" } th { "Longest freeze" } th { "Dropped" } } }
                    tbody {
                        @for s in &rows {
                            tr data-session=(s.id) {
                                td { a href={ "player.html?session=" (url_encode(&s.id)) } { (format_time(s.start_ms)) } }
                                td { (format_duration(s.duration_ms)) }
                                td.url title=(s.url) { @if s.url.is_empty() { "(unknown)" } @else { (s.url) } }
                                td { (s.pages) }
                                td { @if s.user.is_empty() { "—" } @else { (s.user) } }
                                td { @if s.browser.is_empty() { (browser_of(&s.user_agent)) } @else { (s.browser) } }
                                td.clicks { (s.clicks) @if s.rage_clicks > 0 { " " span.rage title="bursts of rapid clicks on one spot" { "(" (s.rage_clicks) " rage)" } }
                                    @if s.dead_clicks > 0 { " " span.dead title="clicks on something clickable that nothing answered" { "(" (s.dead_clicks) " dead)" } }
                                    @if s.error_clicks > 0 { " " span.error-click title="clicks followed by an error" { "(" (s.error_clicks) " error)" } }
                                    @if s.quick_backs > 0 { " " span.quick-back title="navigations undone within seconds" { "(" (s.quick_backs) " quick back)" } } }
                                td { (s.errors) }
                                td { (s.freezes) }
                                td.freeze title=(s.freeze_culprit) {
                                    @if s.never_recovered { strong.never-recovered { "froze, never recovered" } " " }
                                    @if s.longest_freeze_ms > 0 { (format!("{:.1} s", s.longest_freeze_ms as f64 / 1000.0)) " " span.culprit { (s.freeze_culprit) } }
                                    @else if !s.never_recovered { "—" }
                                }
                                td { (s.dropped) }
                            }
                        }
                    }
                }
            }
            nav.pager {
                @if page > 0 { a id="prev" href=(link(page - 1)) { "← Newer" } }
                span { "Page " (page + 1) }
                @if more { a id="next" href=(link(page + 1)) { "Older →" } }
            }
    };
    let nav = project_nav(&state, &access).await?;
    let token = auth::form_token(&state, &headers);
    let markup = layout::project_page("Sessions", layout::Nav::Sessions, &nav, token.as_deref(), content);
    Ok(html_response(markup, LIST_CSP))
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", BASE64.encode(bytes))
}

/// `GET /viewer/p/{project}/export/{id}`: the session as one HTML file with the player, its
/// wasm and the recording inlined; it plays from disk with no server. A member's or owner's.
async fn export(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(api::SessionPath { id, .. }): Path<api::SessionPath>,
) -> Result<Response, ApiError> {
    access.require(Capability::Export)?;
    if !codec::is_valid_id(&id) {
        return Err(ApiError::not_found("session"));
    }
    let project = access.project;
    let bodies = api::load_batches(&state, project, id.clone()).await?;
    let session = codec::concat_encoded(bodies.iter().map(Vec::as_slice));
    let file = |p: &str| assets::viewer_asset(p).ok_or_else(|| ApiError::not_found("viewer build"));
    let text = |p: &str| file(p).map(|b| String::from_utf8_lossy(&b).into_owned());
    let page = text("player.html")?;
    let css = text("viewer.css")?;
    let mut imports = serde_json::Map::new();
    for module in ["viewer_wasm.js", "render.js", "panels.js", "freezes.js", "comments.js"] {
        imports.insert(format!("./{module}"), data_url("text/javascript", &file(module)?).into());
    }
    let import_map = serde_json::json!({ "imports": imports }).to_string();
    let player = text("player.js")?.replace("</script", "<\\/script");
    // Base64 and JSON of data: URLs hold no `<`, so nothing here can close the script elements.
    let inline = format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{EXPORT_CSP}\">\n\
         <style>{}</style>\n\
         <script type=\"importmap\">{import_map}</script>\n\
         <script type=\"application/octet-stream\" id=\"replay-wasm\">{}</script>\n\
         <script type=\"application/octet-stream\" id=\"replay-session\" data-session=\"{id}\">{}</script>\n\
         <script type=\"module\">{player}</script>",
        css.replace("</style", "<\\/style"),
        BASE64.encode(file("viewer_wasm_bg.wasm")?),
        BASE64.encode(&session),
    );
    let html = page.replace(
        "<link rel=\"stylesheet\" href=\"/viewer/viewer.css\">\n<script type=\"module\" src=\"/viewer/player.js\"></script>",
        &inline,
    );
    if !html.contains("id=\"replay-session\"") {
        return Err(ApiError::not_found("player template"));
    }
    let mut response = html.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    // The session id passed `is_valid_id`: `[A-Za-z0-9_-]` only.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"replay-{id}.html\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(EXPORT_CSP));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(start_ms: u64, url: &str, duration_ms: u64, ua: &str) -> SessionRow {
        SessionRow {
            id: "s".into(),
            start_ms,
            end_ms: start_ms + duration_ms,
            duration_ms,
            url: url.into(),
            user_agent: ua.into(),
            pages: 1,
            batches: 1,
            events: 1,
            clicks: 0,
            rage_clicks: 0,
            dead_clicks: 0,
            error_clicks: 0,
            quick_backs: 0,
            bytes: 1,
            dropped: 0,
            recorder_errors: 0,
            user: String::new(),
            release: String::new(),
            environment: String::new(),
            browser: String::new(),
            errors: 0,
            freezes: 0,
            longest_freeze_ms: 0,
            freeze_culprit: String::new(),
            never_recovered: false,
        }
    }

    #[test]
    fn datetimes_from_the_form_are_read_as_utc() {
        assert_eq!(parse_datetime("1970-01-01T00:00"), Some(0));
        assert_eq!(parse_datetime("2026-11-03T10:15"), Some(1_793_700_900_000));
        assert_eq!(format_time(1_793_700_900_000), "2026-11-03 10:15:00");
        assert_eq!(parse_datetime("2026-13-01"), None);
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn filters_apply_time_url_duration_and_browser() {
        let form = FilterForm {
            from: Some("1970-01-01T00:01".into()),
            url: Some("CHECKOUT".into()),
            min_duration: Some("5".into()),
            browser: Some("chrom".into()),
            ..FilterForm::default()
        };
        let f = SessionFilter::from_form(&form);
        let chrome = "Mozilla/5.0 Chrome/156.0 Safari/537.36";
        assert!(f.matches(&row(60_000, "https://shop/checkout", 5_000, chrome)));
        assert!(!f.matches(&row(59_999, "https://shop/checkout", 5_000, chrome)), "too early");
        assert!(!f.matches(&row(60_000, "https://shop/cart", 5_000, chrome)), "url");
        assert!(!f.matches(&row(60_000, "https://shop/checkout", 4_999, chrome)), "too short");
        assert!(!f.matches(&row(60_000, "https://shop/checkout", 5_000, "Firefox/140")), "browser");
    }

    #[test]
    fn every_form_filter_reaches_the_storage_filter() {
        let form = FilterForm {
            user: Some(" ann ".into()),
            release: Some("1.2".into()),
            environment: Some("production".into()),
            has_error: Some("1".into()),
            has_freeze: Some("1".into()),
            has_rage_click: Some("1".into()),
            never_recovered: Some("1".into()),
            min_duration: Some("".into()),
            ..FilterForm::default()
        };
        let f = SessionFilter::from_form(&form).to_storage();
        assert!(f.never_recovered);
        assert_eq!(f.user.as_deref(), Some("ann"));
        assert_eq!((f.release.as_deref(), f.environment.as_deref()), (Some("1.2"), Some("production")));
        assert!(f.has_error && f.has_freeze && f.has_rage_click);
        assert_eq!(f.min_duration_ms, None);
    }
}
