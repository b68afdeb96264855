//! Click maps and scroll maps from the API:
//! `GET /api/v1/projects/{project}/clickmap?url=<url or pattern>&from=<ms>&to=<ms>` (a reader of
//! the project: [`ProjectAccess`]) answers the clicked elements of the matching pages (most
//! clicked first, with a label and their mean position), how far down the page views got, and a
//! page view to draw the page from (the latest one still stored).
//!
//! It reads the aggregates ingest keeps per project, day and page (`replay_store::clickmap`):
//! the cost is the page-days of the range (at most [`MAX_DAYS`] days), never the sessions.
//! The page `GET /viewer/p/{project}/clickmap` (`clickmap_page`) draws the same answer.

use axum::Json;
use axum::extract::{Query, State};
use replay_core::now_ms;
use replay_store::clickmap::{self, ClickmapQuery, DAY_MS, MAX_DAYS, MAX_ELEMENTS, day_of};
use serde::{Deserialize, Serialize};

use crate::access::ProjectAccess;
use crate::reject::Reason;
use crate::{ApiError, AppState};

/// Longest URL pattern accepted, in characters.
pub const MAX_PATTERN_CHARS: usize = replay_core::clickmap::MAX_URL_CHARS;
/// The range when `from` is omitted: a week up to `to`.
const DEFAULT_RANGE_MS: u64 = 7 * DAY_MS;

/// What a click map is asked for.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClickmapParams {
    /// The page: a URL (its query and fragment are ignored; matched whole, case-insensitively)
    /// or a pattern where `*` stands for anything (`https://shop.test/product/*`). At most 300
    /// characters; every page of the project when omitted.
    pub url: Option<String>,
    /// Start of the range (Unix ms, counted by UTC day); a week before `to` when omitted.
    pub from: Option<u64>,
    /// End of the range (Unix ms, counted by UTC day); now when omitted. At most 92 days after
    /// `from`.
    pub to: Option<u64>,
}

/// One clicked element.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClickedElement {
    /// The recorder's CSS selector of the element (tag, id, classes, `:nth-of-type`).
    pub path: String,
    /// Its text as recorded (masked like all recorded text); empty when none said anything.
    pub label: String,
    pub clicks: u64,
    /// Mean viewport position of its clicks (CSS pixels).
    pub x: i64,
    pub y: i64,
}

/// How far down the page views got.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScrollMap {
    /// Page views with a depth recorded.
    pub views: u64,
    /// `reached[k]`: views that saw at least `k` tenths of the page (`k` from 0 to 10).
    pub reached: Vec<u64>,
    /// `deepest[k]`: views whose deepest point was in tenth `k` (10: the bottom).
    pub deepest: Vec<u64>,
}

/// A page view to draw the page from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SampleView {
    pub session: String,
    /// When the page was last seen at its URL in that view (Unix ms, recorder clock): the
    /// moment to replay.
    pub at_ms: u64,
    /// The page's normalized URL.
    pub url: String,
}

/// A click map and scroll map.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClickmapAnswer {
    /// The pattern asked for.
    pub url: String,
    pub from: u64,
    pub to: u64,
    /// Distinct page URLs that matched.
    pub pages: u64,
    /// Clicks counted on them.
    pub clicks: u64,
    /// Clicks on them not kept by element (a page-day keeps at most 500 elements).
    pub clicks_dropped: u64,
    /// Clicks and page views of the whole project in the range dropped by the ingest caps
    /// (a day keeps at most 1,000 pages).
    pub project_clicks_dropped: u64,
    pub project_views_dropped: u64,
    /// At most 500, most clicked first.
    pub elements: Vec<ClickedElement>,
    pub scroll: ScrollMap,
    pub sample: Option<SampleView>,
}

/// The storage query of `params`, or why it is refused (`bad_query`).
pub fn resolve(params: &ClickmapParams, now: u64) -> Result<ClickmapQuery, &'static str> {
    let url = params.url.as_deref().map(str::trim).filter(|u| !u.is_empty()).unwrap_or("*");
    if replay_core::clickmap::normalize_url(url).is_none() {
        return Err("name the page: url=<a URL, or a pattern with * for anything>");
    }
    if url.chars().count() > MAX_PATTERN_CHARS {
        return Err("the URL pattern is longer than 300 characters");
    }
    let to = params.to.unwrap_or(now);
    let from = params.from.unwrap_or(to.saturating_sub(DEFAULT_RANGE_MS));
    if from > to {
        return Err("from is after to");
    }
    let (from_day, to_day) = (day_of(from), day_of(to));
    if to_day - from_day >= MAX_DAYS {
        return Err("a click map covers at most 92 days");
    }
    Ok(ClickmapQuery { url: url.to_owned(), from_day, to_day, limit: MAX_ELEMENTS })
}

/// The click map of `params` in `project` (the API's answer; the page draws it too).
pub async fn read(state: &AppState, project: i64, params: &ClickmapParams) -> Result<ClickmapAnswer, ApiError> {
    let now = now_ms();
    let query = resolve(params, now).map_err(|message| {
        state.metrics.rejected(Reason::BadQuery);
        ApiError::new(Reason::BadQuery, message)
    })?;
    let to = params.to.unwrap_or(now);
    let from = params.from.unwrap_or(to.saturating_sub(DEFAULT_RANGE_MS));
    let asked = query.clone();
    let mut map = state.blocking(move |s| s.clickmap(project, &asked)).await?;
    // The sample is the latest view kept; a session deleted since is not drawn.
    let sample = match map.sample.take() {
        Some(sample) => {
            let id = sample.session.clone();
            let stored = state.blocking(move |s| s.session(project, &id)).await?.is_some();
            stored.then_some(SampleView { session: sample.session, at_ms: sample.at_ms, url: sample.url })
        }
        None => None,
    };
    Ok(answer(query.url, from, to, map, sample))
}

fn answer(url: String, from: u64, to: u64, map: clickmap::Clickmap, sample: Option<SampleView>) -> ClickmapAnswer {
    let reached = map.reached.to_vec();
    let deepest =
        (0..reached.len()).map(|k| reached[k].saturating_sub(reached.get(k + 1).copied().unwrap_or(0))).collect();
    ClickmapAnswer {
        url,
        from,
        to,
        pages: map.pages,
        clicks: map.clicks,
        clicks_dropped: map.clicks_dropped,
        project_clicks_dropped: map.project_clicks_dropped,
        project_views_dropped: map.project_views_dropped,
        elements: map
            .elements
            .into_iter()
            .map(|e| ClickedElement { path: e.path, label: e.label, clicks: e.clicks, x: e.x, y: e.y })
            .collect(),
        scroll: ScrollMap { views: map.reached[0], reached, deepest },
        sample,
    }
}

/// `GET /api/v1/projects/{project}/clickmap`: clicked elements and scroll depths of a page.
#[utoipa::path(get, path = "/api/v1/projects/{project}/clickmap", tag = "sessions",
    params(("project" = i64, Path, description = "The project."), ClickmapParams),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The clicked elements, the scroll map and a page view to draw the page from.", body = ClickmapAnswer),
        (status = 400, description = "A URL that names no page, a pattern over 300 characters, or a range over 92 days (`bad_query`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn clickmap_api(
    access: ProjectAccess,
    State(state): State<AppState>,
    Query(params): Query<ClickmapParams>,
) -> Result<Json<ClickmapAnswer>, ApiError> {
    Ok(Json(read(&state, access.project, &params).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(url: &str, from: Option<u64>, to: Option<u64>) -> ClickmapParams {
        ClickmapParams { url: Some(url.into()), from, to }
    }

    #[test]
    fn ranges_default_to_a_week_and_are_bounded() {
        let now = 100 * DAY_MS + 5;
        let q = resolve(&params(" https://shop.test/* ", None, None), now).expect("ok");
        assert_eq!((q.url.as_str(), q.from_day, q.to_day), ("https://shop.test/*", 93, 100));
        assert!(resolve(&params("https://a.test/", Some(0), Some(92 * DAY_MS - 1)), now).is_ok());
        assert!(resolve(&params("https://a.test/", Some(0), Some(92 * DAY_MS)), now).is_err());
        assert!(resolve(&params("https://a.test/", Some(5), Some(4)), now).is_err());
        assert_eq!(resolve(&params("", None, None), now).expect("every page").url, "*");
        assert!(resolve(&params("?q", None, None), now).is_err());
        assert!(resolve(&params(&"x".repeat(301), None, None), now).is_err());
    }
}
