//! Click maps and scroll maps: the aggregates both engines keep at ingest, and the SQL they share
//! to write and read them.
//!
//! Each batch's [`replay_core::clickmap::Activity`] is added, in the batch's own transaction
//! (so a resent batch, stored once, counts once), to:
//! - `clickmap_pages`: per project, UTC day and normalized page URL, the clicks counted, the
//!   clicks dropped by the element cap, and a sample page view (the latest session seen on it,
//!   and when) to draw the page from;
//! - `clickmap_elements`: per page-day, clicks by element path with a label and the sums of the
//!   click positions;
//! - `clickmap_depths`: per page-day, how many page views reached at least each tenth of the
//!   page (a view counts once in each tenth up to its deepest, counted when it gets there);
//! - `clickmap_days`: per project-day, clicks and page views dropped by the caps;
//! - `clickmap_views`: per page view (session, page id, URL), its day, the deepest tenth counted
//!   so far and when it was last seen: what makes a view count once in the depths, and which
//!   URL a batch without one continues (its latest).
//!
//! Bounds: at most [`MAX_PAGES_PER_DAY`] URLs per project-day, [`MAX_ELEMENTS_PER_PAGE`] element
//! paths per page-day, [`MAX_URLS_PER_VIEW`] URLs per page view and [`MAX_CLICKS_PER_VIEW`] clicks
//! per page view and URL (`clickmap_views.clicks` counts them; the clicks of a view over the URL
//! cap are not counted); what does not fit is counted in `clickmap_days` or `clicks_dropped`. A click map reads the page-days of its URL pattern
//! and range ([`MAX_DAYS`] at most), never sessions: its cost does not grow with traffic.
//!
//! Privacy: the aggregates hold no session or user id except the sample page view, which a
//! deletion on request clears (and retention deletes page views with their sessions). The
//! counts themselves stay when one session is erased: they are anonymous sums over many
//! sessions, keyed by a URL without query or fragment and by an element's structure (tag, id,
//! classes). A label is the element's text as recorded, masked in the page like all recorded
//! text (PII patterns included), and the first click's: a deletion blanks the labels of the
//! page-days the deleted session viewed ([`FORGET_LABELS`]), and deletes the page-days no other
//! session viewed ([`forget_pages`]: their counts were that session's alone, and a URL that
//! names a user, `/u/alice-smith`, is usually viewed by that user only). They go with their day
//! when retention passes it, and with the project.

use std::borrow::Cow;

use replay_core::clickmap::{ElementClicks, PageActivity, normalize_url};

/// Most URLs kept per project and day.
pub const MAX_PAGES_PER_DAY: i64 = 1_000;
/// Most element paths kept per page and day.
pub const MAX_ELEMENTS_PER_PAGE: i64 = 500;
/// Most URLs one page view (in-page navigations) adds depths for.
pub const MAX_URLS_PER_VIEW: i64 = 50;
/// Most clicks one page view counts on one URL: the ingest key is public, so one visitor (or a
/// script) clicking in a loop must not outweigh everyone else's clicks on a page.
pub const MAX_CLICKS_PER_VIEW: u64 = 1_000;
/// Widest range a click map reads, in days.
pub const MAX_DAYS: i64 = 92;
/// Most elements a click map answers (the most clicked).
pub const MAX_ELEMENTS: usize = 500;
/// A UTC day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;

/// The UTC day (days since the Unix epoch) of a time in Unix ms.
pub fn day_of(ms: u64) -> i64 {
    i64::try_from(ms / DAY_MS).unwrap_or(i64::MAX)
}

/// What a click map asks: pages whose normalized URL matches `url` (a URL, or a pattern where
/// `*` stands for anything), on UTC days `from_day` to `to_day`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickmapQuery {
    pub url: String,
    pub from_day: i64,
    pub to_day: i64,
    /// Most elements answered (at most [`MAX_ELEMENTS`]).
    pub limit: usize,
}

/// One clicked element of a click map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickmapElement {
    /// The recorder's CSS selector of the element.
    pub path: String,
    pub label: String,
    pub clicks: u64,
    /// The mean viewport position of its clicks (CSS pixels).
    pub x: i64,
    pub y: i64,
}

/// A page view to draw a click map's page from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickmapSample {
    pub session: String,
    /// When the page was last seen at its URL in that view (Unix ms).
    pub at_ms: u64,
    pub url: String,
}

/// A click map: clicked elements (most clicked first) and the scroll map of matching pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clickmap {
    /// Distinct URLs that matched.
    pub pages: u64,
    /// Clicks counted on those pages (on any element).
    pub clicks: u64,
    /// Clicks on those pages whose element did not fit the per-page cap.
    pub clicks_dropped: u64,
    /// Clicks and page views of the project in the range dropped before reaching any page (a
    /// day over its page cap, a batch over its own caps).
    pub project_clicks_dropped: u64,
    pub project_views_dropped: u64,
    pub elements: Vec<ClickmapElement>,
    /// `reached[k]`: page views that reached at least `k` tenths of the page (`reached[0]`: all
    /// views with a depth recorded).
    pub reached: [u64; 11],
    pub sample: Option<ClickmapSample>,
}

/// The `LIKE` pattern of a click map's URL pattern: normalized like the stored URLs (lowercase,
/// no query or fragment), `%`, `_` and `\` escaped, `*` for any text. Without `*`, the URL
/// itself.
pub fn url_like(pattern: &str) -> String {
    let normalized = normalize_url(pattern).unwrap_or_default();
    let mut out = String::with_capacity(normalized.len() + 2);
    crate::search::push_like(&mut out, &normalized);
    out
}

/// `page` with at most `room` clicks left (a view's clicks under [`MAX_CLICKS_PER_VIEW`]), in
/// the order the batch gives its elements, and how many clicks were left out. An element cut
/// short keeps the mean of its positions.
pub(crate) fn within_view_cap(page: &PageActivity, room: u64) -> (Cow<'_, PageActivity>, u64) {
    let clicks: u64 = page.elements.iter().map(|e| e.clicks).sum();
    if clicks <= room {
        return (Cow::Borrowed(page), 0);
    }
    let mut left = room;
    let mut out = PageActivity { elements: Vec::new(), ..page.clone() };
    for e in &page.elements {
        if left == 0 {
            break;
        }
        let kept = e.clicks.min(left);
        left -= kept;
        let scale = |sum: i64| {
            let v = i128::from(sum) * i128::from(kept) / i128::from(e.clicks.max(1));
            i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
        };
        out.elements.push(ElementClicks { clicks: kept, x_sum: scale(e.x_sum), y_sum: scale(e.y_sum), ..e.clone() });
    }
    (Cow::Owned(out), clicks - room)
}

/// Room left under [`MAX_CLICKS_PER_VIEW`] for a view that counted `counted` clicks.
pub(crate) fn view_room(counted: i64) -> u64 {
    MAX_CLICKS_PER_VIEW.saturating_sub(u64::try_from(counted).unwrap_or(0))
}

// Writing. Every statement's `$N` first appear in numeric order: SQLite numbers them so.

/// `$1` project, `$2` day, `$3` url.
pub(crate) const PAGE_EXISTS: &str = "SELECT 1 FROM clickmap_pages WHERE project_id = $1 AND day = $2 AND url = $3";

/// `$1` project, `$2` day, `$3` url, `$4` the cap: 0 rows when there or over the cap.
pub(crate) const ADD_PAGE: &str = "INSERT INTO clickmap_pages (project_id, day, url) \
     SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT), CAST($3 AS TEXT) \
     WHERE (SELECT COUNT(*) FROM clickmap_pages WHERE project_id = $1 AND day = $2) < $4 \
     ON CONFLICT (project_id, day, url) DO NOTHING";

/// `$1` project, `$2` day, `$3` url, `$4` path, `$5` label, `$6` clicks, `$7` x sum, `$8` y sum,
/// `$9` the cap: 0 rows when the element is new and the page has the cap of elements.
pub(crate) const ADD_ELEMENT: &str = "INSERT INTO clickmap_elements \
        (project_id, day, url, path, label, clicks, x_sum, y_sum) \
     SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT), CAST($3 AS TEXT), CAST($4 AS TEXT), CAST($5 AS TEXT), \
            CAST($6 AS BIGINT), CAST($7 AS BIGINT), CAST($8 AS BIGINT) \
     WHERE EXISTS (SELECT 1 FROM clickmap_elements WHERE project_id = $1 AND day = $2 AND url = $3 AND path = $4) \
        OR (SELECT COUNT(*) FROM clickmap_elements WHERE project_id = $1 AND day = $2 AND url = $3) < $9 \
     ON CONFLICT (project_id, day, url, path) DO UPDATE SET \
        clicks = clickmap_elements.clicks + excluded.clicks, \
        x_sum = clickmap_elements.x_sum + excluded.x_sum, \
        y_sum = clickmap_elements.y_sum + excluded.y_sum, \
        label = CASE WHEN clickmap_elements.label = '' THEN excluded.label ELSE clickmap_elements.label END";

/// `$1` clicks kept, `$2` clicks dropped, `$3` when seen, `$4` session, `$5` project, `$6` day,
/// `$7` url: counts the clicks and makes this view the sample when it is the latest.
pub(crate) const PAGE_SEEN: &str = "UPDATE clickmap_pages SET clicks = clicks + $1, \
     clicks_dropped = clicks_dropped + $2, \
     sample_session = CASE WHEN $3 >= sample_ms THEN $4 ELSE sample_session END, \
     sample_ms = CASE WHEN $3 >= sample_ms THEN $3 ELSE sample_ms END \
     WHERE project_id = $5 AND day = $6 AND url = $7";

/// `$1` project, `$2` session, `$3` page id, `$4` url: the view's day, depth and clicks counted.
pub(crate) const VIEW: &str = "SELECT day, depth, clicks FROM clickmap_views \
     WHERE project_id = $1 AND session_id = $2 AND page_id = $3 AND url = $4";

/// `$1` project, `$2` session, `$3` page id, `$4` url, `$5` day, `$6` when seen, `$7` the cap of
/// URLs per view: 0 rows over it.
pub(crate) const ADD_VIEW: &str = "INSERT INTO clickmap_views \
        (project_id, session_id, page_id, url, day, depth, last_ms) \
     SELECT CAST($1 AS BIGINT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS TEXT), CAST($5 AS BIGINT), -1, \
            CAST($6 AS BIGINT) \
     WHERE (SELECT COUNT(*) FROM clickmap_views WHERE project_id = $1 AND session_id = $2 AND page_id = $3) < $7 \
     ON CONFLICT (project_id, session_id, page_id, url) DO NOTHING";

/// `$1` when seen, `$2` the depth reached (-1: none), `$3` clicks counted now, then the view's
/// key (`$4` to `$7`).
pub(crate) const SEE_VIEW: &str = "UPDATE clickmap_views SET \
     last_ms = CASE WHEN $1 > last_ms THEN $1 ELSE last_ms END, \
     depth = CASE WHEN $2 > depth THEN $2 ELSE depth END, \
     clicks = clicks + $3 \
     WHERE project_id = $4 AND session_id = $5 AND page_id = $6 AND url = $7";

/// Migration: the clicks each page view counted on each URL ([`MAX_CLICKS_PER_VIEW`]).
pub(crate) const VIEW_CLICKS: &str = "ALTER TABLE clickmap_views ADD COLUMN clicks BIGINT NOT NULL DEFAULT 0";

/// Migration: the page views of a page-day, found without reading the project's every view (a
/// deletion asks who else viewed each page-day it touches: [`forget_pages`], [`FORGET_LABELS`]).
pub(crate) const VIEWS_BY_PAGE: &str = "CREATE INDEX clickmap_views_by_page ON clickmap_views (project_id, day, url)";

/// `$1` project, `$2` session, `$3` page id: the URL the page view was last seen on.
pub(crate) const CURRENT_URL: &str = "SELECT url FROM clickmap_views \
     WHERE project_id = $1 AND session_id = $2 AND page_id = $3 ORDER BY last_ms DESC LIMIT 1";

/// `$1` project, `$2` day, `$3` url, `$4` tenth: one more view reached it.
pub(crate) const ADD_DEPTH: &str = "INSERT INTO clickmap_depths (project_id, day, url, tenth, views) \
     VALUES ($1, $2, $3, $4, 1) \
     ON CONFLICT (project_id, day, url, tenth) DO UPDATE SET views = clickmap_depths.views + 1";

/// `$1` project, `$2` day, `$3` clicks dropped, `$4` views dropped.
pub(crate) const ADD_DROPPED: &str = "INSERT INTO clickmap_days (project_id, day, clicks_dropped, views_dropped) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (project_id, day) DO UPDATE SET \
        clicks_dropped = clickmap_days.clicks_dropped + excluded.clicks_dropped, \
        views_dropped = clickmap_days.views_dropped + excluded.views_dropped";

// Reading: `$1` project, `$2` first day, `$3` last day, `$4` the URL's `LIKE` pattern.

const MATCH: &str = "project_id = $1 AND day >= $2 AND day <= $3 AND url LIKE $4 ESCAPE '\\'";

/// The elements, most clicked first; `$5` the limit.
pub(crate) fn elements_sql() -> String {
    format!(
        "SELECT path, MAX(label), CAST(SUM(clicks) AS BIGINT), CAST(SUM(x_sum) AS BIGINT), \
         CAST(SUM(y_sum) AS BIGINT) FROM clickmap_elements WHERE {MATCH} GROUP BY path ORDER BY 3 DESC, path LIMIT $5"
    )
}

/// Distinct URLs, clicks, clicks dropped.
pub(crate) fn pages_sql() -> String {
    format!(
        "SELECT COUNT(DISTINCT url), CAST(COALESCE(SUM(clicks), 0) AS BIGINT), \
         CAST(COALESCE(SUM(clicks_dropped), 0) AS BIGINT) FROM clickmap_pages WHERE {MATCH}"
    )
}

/// Views by tenth reached.
pub(crate) fn depths_sql() -> String {
    format!("SELECT tenth, CAST(SUM(views) AS BIGINT) FROM clickmap_depths WHERE {MATCH} GROUP BY tenth")
}

/// The latest sample view.
pub(crate) fn sample_sql() -> String {
    format!(
        "SELECT sample_session, sample_ms, url FROM clickmap_pages WHERE {MATCH} AND sample_session <> '' \
         ORDER BY sample_ms DESC LIMIT 1"
    )
}

/// `$1` project, `$2` first day, `$3` last day: what the project dropped.
pub(crate) const DROPPED_SQL: &str = "SELECT CAST(COALESCE(SUM(clicks_dropped), 0) AS BIGINT), \
     CAST(COALESCE(SUM(views_dropped), 0) AS BIGINT) FROM clickmap_days \
     WHERE project_id = $1 AND day >= $2 AND day <= $3";

/// `$1` project: clears samples pointing at sessions deleted on request.
pub(crate) const FORGET_SAMPLES: &str = "UPDATE clickmap_pages SET sample_session = '', sample_ms = 0 \
     WHERE project_id = $1 AND sample_session IN \
        (SELECT session_id FROM deleted_sessions WHERE project_id = $1)";

/// Blanks the element labels of the page-days a deleted session viewed (`$1` the project; the
/// engine adds the session condition on `v.session_id`), before its views go: a label is the
/// first click's text on that element that day, perhaps that session's. The next click there
/// labels it again.
pub(crate) const FORGET_LABELS: &str = "UPDATE clickmap_elements SET label = '' \
     WHERE project_id = $1 AND label <> '' AND EXISTS (SELECT 1 FROM clickmap_views v \
        WHERE v.project_id = $1 AND v.day = clickmap_elements.day AND v.url = clickmap_elements.url AND ";

/// The aggregates kept per page-day (what [`forget_pages`] deletes).
pub(crate) const PAGE_TABLES: [&str; 3] = ["clickmap_pages", "clickmap_elements", "clickmap_depths"];

/// Deletes the rows of `table` (one of [`PAGE_TABLES`]) of the page-days that the deleted
/// sessions viewed and no other session did (`$1` the project; `mine` is the engine's condition
/// that `v.session_id` is a deleted session, `theirs` that `w.session_id` is not), before their
/// views go. Counts a page-day holds are sums over its views: with that session's alone they
/// are its own, and its URL is often its own too (`/u/alice-smith/settings`).
pub(crate) fn forget_pages(table: &str, mine: &str, theirs: &str) -> String {
    format!(
        "DELETE FROM {table} WHERE project_id = $1 \
         AND EXISTS (SELECT 1 FROM clickmap_views v \
            WHERE v.project_id = $1 AND v.day = {table}.day AND v.url = {table}.url AND {mine}) \
         AND NOT EXISTS (SELECT 1 FROM clickmap_views w \
            WHERE w.project_id = $1 AND w.day = {table}.day AND w.url = {table}.url AND {theirs})"
    )
}

/// The aggregate tables (a project's deletion empties them; retention deletes their past days).
pub(crate) const DAY_TABLES: [&str; 4] = ["clickmap_pages", "clickmap_elements", "clickmap_depths", "clickmap_days"];

/// A click map's depths from `(tenth, views)` rows.
pub(crate) fn reached(rows: impl IntoIterator<Item = (i64, i64)>) -> [u64; 11] {
    let mut out = [0u64; 11];
    for (tenth, views) in rows {
        if let Some(slot) = usize::try_from(tenth).ok().and_then(|t| out.get_mut(t)) {
            *slot += u64::try_from(views).unwrap_or(0);
        }
    }
    out
}

/// Mean of a sum over `n`.
pub(crate) fn mean(sum: i64, n: i64) -> i64 {
    if n > 0 { sum / n } else { 0 }
}

/// The SQL schema both engines create (SQLite and PostgreSQL read the same DDL).
pub(crate) const SCHEMA: &str = "CREATE TABLE clickmap_pages (
        project_id BIGINT NOT NULL,
        day BIGINT NOT NULL,
        url TEXT NOT NULL,
        clicks BIGINT NOT NULL DEFAULT 0,
        clicks_dropped BIGINT NOT NULL DEFAULT 0,
        sample_session TEXT NOT NULL DEFAULT '',
        sample_ms BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (project_id, day, url)
    );
    CREATE TABLE clickmap_elements (
        project_id BIGINT NOT NULL,
        day BIGINT NOT NULL,
        url TEXT NOT NULL,
        path TEXT NOT NULL,
        label TEXT NOT NULL,
        clicks BIGINT NOT NULL,
        x_sum BIGINT NOT NULL,
        y_sum BIGINT NOT NULL,
        PRIMARY KEY (project_id, day, url, path)
    );
    CREATE TABLE clickmap_depths (
        project_id BIGINT NOT NULL,
        day BIGINT NOT NULL,
        url TEXT NOT NULL,
        tenth BIGINT NOT NULL,
        views BIGINT NOT NULL,
        PRIMARY KEY (project_id, day, url, tenth)
    );
    CREATE TABLE clickmap_days (
        project_id BIGINT NOT NULL,
        day BIGINT NOT NULL,
        clicks_dropped BIGINT NOT NULL DEFAULT 0,
        views_dropped BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (project_id, day)
    );
    CREATE TABLE clickmap_views (
        project_id BIGINT NOT NULL,
        session_id TEXT NOT NULL,
        page_id TEXT NOT NULL,
        url TEXT NOT NULL,
        day BIGINT NOT NULL,
        depth BIGINT NOT NULL,
        last_ms BIGINT NOT NULL,
        PRIMARY KEY (project_id, session_id, page_id, url)
    );";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_patterns_are_normalized_and_escaped() {
        assert_eq!(url_like("https://Shop.test/cart?x=1"), "https://shop.test/cart");
        assert_eq!(url_like("https://shop.test/p/*"), "https://shop.test/p/%");
        assert_eq!(url_like("*/50%_off"), "%/50\\%\\_off");
        assert_eq!(day_of(DAY_MS * 3 + 5), 3);
        assert_eq!(reached([(0, 4), (3, 2), (11, 9), (-1, 9)]), [4, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    }
}
