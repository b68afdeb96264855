//! `GET /viewer/errors`: the error groups page. Errors of every session, grouped by fingerprint
//! (normalized message + top stack frame), with counts, first and last seen, and links to the
//! sessions where they happened, so a support engineer goes from "which errors hurt most" to
//! watching one happen. Server-rendered with maud, no script, signed-in readers only; the same
//! data as JSON is `GET /api/v1/errors`.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use maud::html;

use crate::layout::{self, LIST_CSP, html_response, url_encode};
use crate::pages::format_time;
use crate::{ApiError, AppState, api, auth};

/// Groups shown on the page.
const MAX_GROUPS: usize = 200;

#[derive(Debug, Default, serde::Deserialize)]
pub struct ErrorsForm {
    project: Option<i64>,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/viewer/errors", get(error_groups))
}

async fn error_groups(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    Query(form): Query<ErrorsForm>,
) -> Result<Response, ApiError> {
    if auth::reader_of(&state, &headers).await?.is_none() {
        return Ok(auth::to_login(uri.path_and_query().map_or("/viewer/errors", |p| p.as_str())));
    }
    let project = api::project_id(&state, form.project).await?;
    let groups = crate::symbols::error_groups(&state, project, MAX_GROUPS).await?;
    let content = html! {
            @if groups.is_empty() {
                p id="status" { "No errors recorded yet." }
            } @else {
                table id="errors" {
                    thead { tr { th { "Error" } th { "Where" } th { "Count" } th { "Sessions" } th { "First seen (UTC)" } th { "Last seen (UTC)" } th { "Latest sessions" } } }
                    tbody {
                        @for g in &groups {
                            tr data-fingerprint=(g.fingerprint) {
                                td.message { (g.message) }
                                td.url title=(g.frame) { @if g.frame.is_empty() { "—" } @else { (g.frame) } }
                                td.count { (g.count) }
                                td { (g.sessions) }
                                td { (format_time(g.first_ms)) }
                                td { (format_time(g.last_ms)) }
                                td.sessions {
                                    @for id in &g.recent_sessions {
                                        a href={ "player.html?session=" (url_encode(id)) } { (id.get(..8).unwrap_or(id)) } " "
                                    }
                                }
                            }
                        }
                    }
                }
            }
    };
    let markup =
        layout::page("Errors", layout::Nav::Errors, "", auth::form_token(&state, &headers).as_deref(), content);
    Ok(html_response(markup, LIST_CSP))
}
