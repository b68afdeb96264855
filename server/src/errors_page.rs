//! `GET /viewer/p/{project}/errors`: the error groups page of a project. Errors of every session, grouped by fingerprint
//! (normalized message + top stack frame), with counts, first and last seen, and links to the
//! sessions where they happened, so a support engineer goes from "which errors hurt most" to
//! watching one happen. Server-rendered with maud, no script, signed-in readers only; the same
//! data as JSON is `GET /api/v1/errors`.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use maud::html;

use crate::access::ProjectAccess;
use crate::layout::{self, LIST_CSP, html_response, url_encode};
use crate::pages::format_time;
use crate::{ApiError, AppState, auth};

/// Groups shown on the page.
const MAX_GROUPS: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new().route("/viewer/p/{project}/errors", get(error_groups))
}

/// The page: its links to the player are relative (`player.html?session=`), so they stay in
/// the project.
async fn error_groups(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let project = access.project;
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
    let nav = crate::pages::project_nav(&state, &access).await?;
    let token = auth::form_token(&state, &headers);
    let markup = layout::project_page("Errors", layout::Nav::Errors, &nav, token.as_deref(), content);
    Ok(html_response(markup, LIST_CSP))
}
