//! `GET /viewer/p/{project}/clickmap?url=&from=&to=`: the click map page of a project. A form
//! (the page's URL or pattern, a range of UTC days), then the answer of [`crate::clickmap`]
//! drawn as a picture by `viewer/static/clickmap.js`: the latest matching page view replayed
//! (the player's wasm engine and renderer, in an iframe sandboxed without scripts) at its whole
//! height, a badge with the count over each clicked element found by its path (coloured from
//! cool to hot), the elements not found listed beside it, and the scroll map as bands showing
//! the share of page views that reached each depth. The same figures are in the page as tables
//! (rendered here with maud, every recorded string escaped), so the page says everything
//! without its script; the script sets recorded text only as text.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use crate::access::ProjectAccess;
use crate::clickmap::{ClickmapAnswer, ClickmapParams};
use crate::layout::{self, html_response, url_encode};
use crate::pages::{format_time, parse_datetime};
use crate::{ApiError, AppState, auth};

/// The page's policy: the viewer's (its script and the wasm engine; the replayed page's images,
/// styles and fonts from anywhere, never scripts), and its form submits to itself.
const CLICKMAP_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src * 'unsafe-inline'; img-src * data: blob:; font-src * data:; media-src * data: blob:; \
     connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'self'";

pub fn routes() -> Router<AppState> {
    Router::new().route("/viewer/p/{project}/clickmap", get(clickmap_page))
}

/// The form's fields: dates as `<input type=date>` sends them (`YYYY-MM-DD`, UTC days).
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    url: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn day_text(ms: u64) -> String {
    format_time(ms).chars().take(10).collect()
}

async fn clickmap_page(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let project = access.project;
    let now = replay_core::now_ms();
    let day = replay_store::clickmap::DAY_MS;
    let date = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).and_then(parse_datetime);
    // The last day counts whole.
    let to = date(&q.to).map_or(now, |t| t + day - 1);
    let from = date(&q.from).unwrap_or(to.saturating_sub(6 * day));
    let url = q.url.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let params = ClickmapParams { url: Some(url.clone()), from: Some(from), to: Some(to) };
    let answer = if url.is_empty() {
        None
    } else {
        match crate::clickmap::resolve(&params, now) {
            Err(message) => Some(Err(message)),
            Ok(_) => Some(Ok(crate::clickmap::read(&state, project, &params).await?)),
        }
    };
    let content = html! {
        form #clickmap-form .filters method="get" {
            label { "Page " input #clickmap-url type="text" name="url" size="50" value=(url)
                placeholder="https://shop.example/product/*"; }
            label { "From " input #clickmap-from type="date" name="from" value=(day_text(from)); }
            label { "To " input #clickmap-to type="date" name="to" value=(day_text(to)); }
            button type="submit" { "Show" }
        }
        @match answer {
            None => p #status { "Name a page (a URL, or a pattern with * for anything) to see where its visitors clicked and how far they scrolled." },
            Some(Err(message)) => p #status .error { (message) },
            Some(Ok(map)) => (drawn(project, &map)),
        }
    };
    let nav = crate::pages::project_nav(&state, &access).await?;
    let token = auth::form_token(&state, &headers);
    let markup = layout::project_page("Click map", layout::Nav::Clickmap, &nav, token.as_deref(), content);
    Ok(html_response(markup, CLICKMAP_CSP))
}

fn percent(part: u64, whole: u64) -> u64 {
    (part * 100 + whole / 2).checked_div(whole).unwrap_or(0)
}

/// The answer: the picture (drawn by the script), the elements and the scroll map as tables.
fn drawn(project: i64, map: &ClickmapAnswer) -> Markup {
    let api =
        format!("/api/v1/projects/{project}/clickmap?url={}&from={}&to={}", url_encode(&map.url), map.from, map.to);
    html! {
        p #clickmap-summary {
            (map.clicks) " clicks on " (map.elements.len()) " elements of " (map.pages) " page(s); "
            (map.scroll.views) " page views with a scroll depth, " (day_text(map.from)) " to " (day_text(map.to)) " (UTC)."
            @if map.clicks_dropped + map.project_clicks_dropped + map.project_views_dropped > 0 {
                " Over the caps: " (map.clicks_dropped + map.project_clicks_dropped) " clicks and "
                (map.project_views_dropped) " page views not counted."
            }
        }
        @if let Some(s) = &map.sample {
            p #clickmap-sample {
                "Drawn from "
                a href={ "player.html?session=" (url_encode(&s.session)) } { (s.url) }
                " as seen at " (format_time(s.at_ms)) " UTC."
            }
        }
        div .clickmap {
            div #clickmap-picture .clickmap-picture data-api=(api) data-project=(project)
                data-session=[map.sample.as_ref().map(|s| s.session.as_str())]
                data-at=[map.sample.as_ref().map(|s| s.at_ms)] data-state="loading" {
                p #clickmap-message .message { @if map.sample.is_none() { "No page view of these pages is stored to draw them from." } @else { "Drawing the page…" } }
                div #clickmap-stage .clickmap-stage {
                    iframe #clickmap-frame title="The page" sandbox="allow-same-origin" referrerpolicy="no-referrer" {}
                    div #clickmap-overlay .clickmap-overlay {}
                }
            }
            div .clickmap-side {
                h2 { "Clicked elements" }
                @if map.elements.is_empty() {
                    p { "No clicks recorded on these pages in this range." }
                } @else {
                    table #clickmap-elements {
                        thead { tr { th { "Clicks" } th { "Element" } th { "Path" } } }
                        tbody {
                            @for e in &map.elements {
                                tr data-path=(e.path) {
                                    td .count { (e.clicks) }
                                    td { @if e.label.is_empty() { "—" } @else { (e.label) } }
                                    td .path { code { (e.path) } }
                                }
                            }
                        }
                    }
                }
                h2 { "Not found on the page drawn" }
                table #clickmap-missing {
                    thead { tr { th { "Clicks" } th { "Element" } th { "Path" } } }
                    tbody {}
                }
                h2 { "Scroll map" }
                table #scroll-map {
                    thead { tr { th { "Depth" } th { "Page views that reached it" } th { "Share" } } }
                    tbody {
                        @for (k, n) in map.scroll.reached.iter().enumerate().skip(1) {
                            tr data-depth=(k * 10) {
                                td { (k * 10) " %" }
                                td .count { (n) }
                                td .share { (percent(*n, map.scroll.views)) " %" }
                            }
                        }
                    }
                }
            }
        }
        script type="module" src="/viewer/clickmap.js" {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_and_never_divide_by_zero() {
        assert_eq!((percent(1, 3), percent(2, 3), percent(5, 0), percent(20, 20)), (33, 67, 0, 100));
    }
}
