//! Click maps in PostgreSQL: a batch's activity added to the aggregates in the batch's
//! transaction, and a click map read from them (the SQL is `crate::clickmap`'s).
//!
//! A batch's activity is written in two parts. What belongs to its session (the page views in
//! `clickmap_views`, which its session row's lock, taken first, keeps other writers off) is
//! written batch by batch, in arrival order, by [`index_activity`]. What many sessions share
//! (a busy page-day's row in `clickmap_pages`, its elements and depths, the project-day's
//! dropped counts) is added up in [`HotRows`] and written once per transaction by
//! [`HotRows::write`]: a group commit of many batches on one page updates its row once, so
//! instances writing the same pages wait for each other once per flush, not once per batch.
//!
//! Hot rows are written in one order in every transaction (pages by project, day and URL, each
//! page's elements by path before the page's row, then depths, then the project-days' dropped
//! counts), so concurrent flushes never deadlock on them. Within one flush, merged increments
//! give the same sums as batch by batch; only when a page passes its cap of elements in the
//! middle of a flush may the last elements kept differ (taken by path instead of by arrival).

use std::borrow::Cow;
use std::collections::BTreeMap;

use deadpool_postgres::Transaction;

use super::{Engine, text};
use crate::clickmap::{
    ADD_DROPPED, ADD_ELEMENT, ADD_PAGE, ADD_VIEW, CURRENT_URL, Clickmap, ClickmapElement, ClickmapQuery,
    ClickmapSample, DROPPED_SQL, MAX_ELEMENTS, MAX_ELEMENTS_PER_PAGE, MAX_PAGES_PER_DAY, MAX_URLS_PER_VIEW,
    PAGE_EXISTS, PAGE_SEEN, SEE_VIEW, VIEW, day_of, depths_sql, elements_sql, mean, pages_sql, reached, sample_sql,
    url_like, view_room, within_view_cap,
};
use crate::shared::{to_i64, to_u64};
use crate::{BatchSummary, Error};
use replay_core::clickmap::PageActivity;

/// (project, day, url) of a page-day row.
type PageDay = (i64, i64, String);

/// The increments of one transaction to the rows many sessions share, merged by row.
#[derive(Default)]
pub(super) struct HotRows {
    /// Whether each page-day row touched so far is there (added when under the day's cap).
    kept: BTreeMap<PageDay, bool>,
    pages: BTreeMap<PageDay, PageIncrement>,
    /// Views that reached each tenth, by page-day and tenth.
    depths: BTreeMap<(i64, i64, String, i64), i64>,
    /// Clicks and page views dropped, by project and day.
    dropped: BTreeMap<(i64, i64), (u64, u64)>,
}

/// What a transaction adds to one page-day: its clicks by element, and its latest view.
#[derive(Default)]
struct PageIncrement {
    clicks: u64,
    elements: BTreeMap<String, ElementIncrement>,
    /// The latest view's time and session (on a tie, the later batch's).
    seen: i64,
    session: String,
}

#[derive(Default)]
struct ElementIncrement {
    /// The first non-empty label.
    label: String,
    clicks: u64,
    x_sum: i64,
    y_sum: i64,
}

impl HotRows {
    /// Whether the page-day row is there (added now when under the day's cap), asked once
    /// per transaction and page-day.
    async fn page_kept(&mut self, tx: &Transaction<'_>, project: i64, day: i64, url: &str) -> Result<bool, Error> {
        let key = (project, day, url.to_owned());
        if let Some(&kept) = self.kept.get(&key) {
            return Ok(kept);
        }
        let kept = tx.query_opt(PAGE_EXISTS, &[&project, &day, &url]).await?.is_some()
            || tx.execute(ADD_PAGE, &[&project, &day, &url, &MAX_PAGES_PER_DAY]).await? == 1
            // Added meanwhile by a transaction this one waited for (0 rows: a conflict, or
            // the day's cap): this statement sees what it committed.
            || tx.query_opt(PAGE_EXISTS, &[&project, &day, &url]).await?.is_some();
        self.kept.insert(key, kept);
        Ok(kept)
    }

    /// Adds one page of a batch (`day`, `url`: the batch's day and the page's URL) to the
    /// page-day's clicks and elements when it is kept (otherwise its clicks are dropped), and
    /// the tenths its view reached beyond `view`'s depth so far (`view`: the view's day and
    /// depth before this batch, when the view is kept).
    #[allow(clippy::too_many_arguments)]
    async fn add_page(
        &mut self,
        tx: &Transaction<'_>,
        project: i64,
        s: &BatchSummary,
        (day, url): (i64, &str),
        page: &PageActivity,
        fresh: bool,
        view: Option<(i64, i64)>,
        clicks_dropped: &mut u64,
    ) -> Result<(), Error> {
        let clicks: u64 = page.elements.iter().map(|e| e.clicks).sum();
        let seen = to_i64(page.last_ms);
        if (clicks > 0 || fresh) && self.page_kept(tx, project, day, url).await? {
            let inc = self.pages.entry((project, day, url.to_owned())).or_default();
            inc.clicks += clicks;
            if seen >= inc.seen {
                (inc.seen, inc.session) = (seen, s.session.clone());
            }
            for e in &page.elements {
                let el = inc.elements.entry(e.path.clone()).or_default();
                if el.label.is_empty() {
                    el.label.clone_from(&e.label);
                }
                el.clicks += e.clicks;
                el.x_sum += e.x_sum;
                el.y_sum += e.y_sum;
            }
        } else {
            *clicks_dropped += clicks;
        }
        let depth = page.depth.map_or(-1, i64::from);
        if let Some((view_day, old)) = view
            && depth > old
            && self.page_kept(tx, project, view_day, url).await?
        {
            for tenth in (old + 1)..=depth {
                *self.depths.entry((project, view_day, url.to_owned(), tenth)).or_default() += 1;
            }
        }
        Ok(())
    }

    fn drop_counts(&mut self, project: i64, day: i64, clicks: u64, views: u64) {
        if clicks + views > 0 {
            let d = self.dropped.entry((project, day)).or_default();
            d.0 += clicks;
            d.1 += views;
        }
    }

    /// Writes the merged increments, in the one order every transaction uses.
    pub(super) async fn write(self, tx: &Transaction<'_>) -> Result<(), Error> {
        if self.pages.is_empty() && self.depths.is_empty() && self.dropped.is_empty() {
            return Ok(());
        }
        let add = tx.prepare_cached(ADD_ELEMENT).await?;
        let seen = tx.prepare_cached(PAGE_SEEN).await?;
        for ((project, day, url), page) in &self.pages {
            let mut lost = 0;
            for (path, e) in &page.elements {
                let (label, n, cap) = (text(&e.label), to_i64(e.clicks), MAX_ELEMENTS_PER_PAGE);
                if tx.execute(&add, &[project, day, url, &text(path), &label, &n, &e.x_sum, &e.y_sum, &cap]).await? == 0
                {
                    lost += e.clicks;
                }
            }
            let (kept, lost) = (to_i64(page.clicks.saturating_sub(lost)), to_i64(lost));
            tx.execute(&seen, &[&kept, &lost, &page.seen, &page.session, project, day, url]).await?;
        }
        if !self.depths.is_empty() {
            let (mut projects, mut days, mut urls, mut tenths, mut views) = (vec![], vec![], vec![], vec![], vec![]);
            for ((project, day, url, tenth), n) in self.depths {
                projects.push(project);
                days.push(day);
                urls.push(url);
                tenths.push(tenth);
                views.push(n);
            }
            tx.execute(ADD_DEPTHS, &[&projects, &days, &urls, &tenths, &views]).await?;
        }
        for ((project, day), (clicks, views)) in self.dropped {
            tx.execute(ADD_DROPPED, &[&project, &day, &to_i64(clicks), &to_i64(views)]).await?;
        }
        Ok(())
    }
}

/// Views reaching tenths of page-days, many rows at once (keys unique): arrays of project,
/// day, url, tenth and how many more views.
const ADD_DEPTHS: &str = "INSERT INTO clickmap_depths AS d (project_id, day, url, tenth, views) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[]) \
     ON CONFLICT (project_id, day, url, tenth) DO UPDATE SET views = d.views + EXCLUDED.views";

/// Adds the click map activity of `s` (a batch stored now, once): its page views at once, its
/// increments of shared rows to `hot` (written by [`HotRows::write`] before the commit).
pub(super) async fn index_activity(
    tx: &Transaction<'_>,
    project: i64,
    s: &BatchSummary,
    hot: &mut HotRows,
) -> Result<(), Error> {
    if s.activity.is_empty() {
        return Ok(());
    }
    let day = day_of(s.start_ms);
    let (mut clicks_dropped, mut views_dropped) = (s.activity.dropped, 0u64);
    for page in &s.activity.pages {
        let clicks: u64 = page.elements.iter().map(|e| e.clicks).sum();
        let url = match &page.url {
            Some(u) => text(u),
            None => match tx.query_opt(CURRENT_URL, &[&project, &s.session, &s.page]).await? {
                Some(row) => row.get::<_, String>(0),
                None => {
                    clicks_dropped += clicks;
                    continue;
                }
            },
        };
        let seen = to_i64(page.last_ms);
        let mut view: Option<(i64, i64, i64)> =
            tx.query_opt(VIEW, &[&project, &s.session, &s.page, &url]).await?.map(|r| (r.get(0), r.get(1), r.get(2)));
        let fresh = view.is_none();
        if fresh {
            let add = tx.prepare_cached(ADD_VIEW).await?;
            if tx.execute(&add, &[&project, &s.session, &s.page, &url, &day, &seen, &MAX_URLS_PER_VIEW]).await? == 1 {
                view = Some((day, -1, 0));
            } else {
                views_dropped += 1;
            }
        }
        // Clicks count only in a view kept, up to its cap.
        let (page, over) = within_view_cap(page, view.map_or(0, |(_, _, counted)| view_room(counted)));
        clicks_dropped += over;
        let depth = page.depth.map_or(-1, i64::from);
        if view.is_some() {
            let counted = to_i64(clicks - over);
            tx.execute(SEE_VIEW, &[&seen, &depth, &counted, &project, &s.session, &s.page, &url]).await?;
        }
        let view = view.map(|(day, depth, _)| (day, depth));
        hot.add_page(tx, project, s, (day, &url), &page, fresh, view, &mut clicks_dropped).await?;
    }
    hot.drop_counts(project, day, clicks_dropped, views_dropped);
    Ok(())
}

/// One URL of a page view as `clickmap_views` holds it, changed in memory by a group's batches.
struct ViewRow {
    url: String,
    day: i64,
    depth: i64,
    last_ms: i64,
    /// Clicks counted so far (at most [`crate::clickmap::MAX_CLICKS_PER_VIEW`]).
    clicks: i64,
    changed: bool,
}

/// One batch's pages as [`index_activities`] followed them: each page's URL, whether its view
/// is new, and its view's day and depth before the batch (when the view is kept).
struct BatchPages<'a> {
    project: i64,
    s: &'a BatchSummary,
    day: i64,
    clicks_dropped: u64,
    views_dropped: u64,
    pages: Vec<PageSeen<'a>>,
}

/// A page of a batch: its URL, what it did, whether its view is new, and its view's day and
/// depth before the batch (when the view is kept).
type PageSeen<'a> = (String, Cow<'a, PageActivity>, bool, Option<(i64, i64)>);

/// The views of the page views `$1`..`$3` (arrays of project, session, page id).
const LOAD_VIEWS: &str = "SELECT v.project_id, v.session_id, v.page_id, v.url, v.day, v.depth, v.last_ms, v.clicks \
     FROM clickmap_views v JOIN UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[]) AS u(project_id, session_id, page_id) \
     ON v.project_id = u.project_id AND v.session_id = u.session_id AND v.page_id = u.page_id";

/// Views added or seen again, many rows at once (keys unique).
const SAVE_VIEWS: &str = "INSERT INTO clickmap_views AS v (project_id, session_id, page_id, url, day, depth, last_ms, \
        clicks) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[], \
        $8::BIGINT[]) \
     ON CONFLICT (project_id, session_id, page_id, url) DO UPDATE SET \
        depth = GREATEST(v.depth, EXCLUDED.depth), last_ms = GREATEST(v.last_ms, EXCLUDED.last_ms), \
        clicks = GREATEST(v.clicks, EXCLUDED.clicks)";

/// [`index_activity`] for a group's new batches (in arrival order) at once: the page views
/// they touch are read in one query, followed batch by batch in memory as [`index_activity`]
/// writes them (the sessions' rows are locked, so no one else changes them meanwhile), and
/// written back in one statement.
pub(super) async fn index_activities(
    tx: &Transaction<'_>,
    batches: &[(i64, &BatchSummary)],
    hot: &mut HotRows,
) -> Result<(), Error> {
    let keys: std::collections::BTreeSet<(i64, &str, &str)> = batches
        .iter()
        .filter(|(_, s)| !s.activity.pages.is_empty())
        .map(|(p, s)| (*p, s.session.as_str(), s.page.as_str()))
        .collect();
    let mut views: std::collections::HashMap<(i64, String, String), Vec<ViewRow>> = std::collections::HashMap::new();
    if !keys.is_empty() {
        let (mut projects, mut sessions, mut pages) = (vec![], vec![], vec![]);
        for (p, s, page) in &keys {
            projects.push(*p);
            sessions.push(*s);
            pages.push(*page);
        }
        for r in tx.query(LOAD_VIEWS, &[&projects, &sessions, &pages]).await? {
            let row = ViewRow {
                url: r.get(3),
                day: r.get(4),
                depth: r.get(5),
                last_ms: r.get(6),
                clicks: r.get(7),
                changed: false,
            };
            views.entry((r.get(0), r.get(1), r.get(2))).or_default().push(row);
        }
    }
    // The page views followed batch by batch; what each page of each batch adds to the rows
    // many sessions share is applied below.
    let mut done: Vec<BatchPages<'_>> = Vec::new();
    for &(project, s) in batches {
        if s.activity.is_empty() {
            continue;
        }
        let day = day_of(s.start_ms);
        let mut b = BatchPages { project, s, day, clicks_dropped: s.activity.dropped, views_dropped: 0, pages: vec![] };
        for page in &s.activity.pages {
            let rows = views.entry((project, s.session.clone(), s.page.clone())).or_default();
            let url = match &page.url {
                Some(u) => text(u),
                // The URL the view was last seen on.
                None => match rows.iter().max_by_key(|r| r.last_ms) {
                    Some(r) => r.url.clone(),
                    None => {
                        b.clicks_dropped += page.elements.iter().map(|e| e.clicks).sum::<u64>();
                        continue;
                    }
                },
            };
            let seen = to_i64(page.last_ms);
            let mut at = rows.iter().position(|r| r.url == url);
            let fresh = at.is_none();
            if fresh {
                if i64::try_from(rows.len()).unwrap_or(i64::MAX) < MAX_URLS_PER_VIEW {
                    rows.push(ViewRow { url: url.clone(), day, depth: -1, last_ms: seen, clicks: 0, changed: true });
                    at = Some(rows.len() - 1);
                } else {
                    b.views_dropped += 1;
                }
            }
            let row = at.and_then(|i| rows.get_mut(i));
            // Clicks count only in a view kept, up to its cap.
            let (page, over) = within_view_cap(page, row.as_ref().map_or(0, |r| view_room(r.clicks)));
            b.clicks_dropped += over;
            let counted = to_i64(page.elements.iter().map(|e| e.clicks).sum::<u64>());
            let view = row.map(|r| {
                let before = (r.day, r.depth);
                r.last_ms = r.last_ms.max(seen);
                r.depth = r.depth.max(page.depth.map_or(-1, i64::from));
                r.clicks = r.clicks.saturating_add(counted);
                r.changed = true;
                before
            });
            b.pages.push((url, page, fresh, view));
        }
        done.push(b);
    }
    // The page-days asked about, looked up (and added) in one order: flushes of several
    // instances adding the same new page-days (each day's first views) never deadlock.
    let mut asked: std::collections::BTreeSet<(i64, i64, &str)> = std::collections::BTreeSet::new();
    for b in &done {
        for (url, page, fresh, view) in &b.pages {
            if *fresh || page.elements.iter().any(|e| e.clicks > 0) {
                asked.insert((b.project, b.day, url.as_str()));
            }
            if let Some((view_day, old)) = view
                && page.depth.map_or(-1, i64::from) > *old
            {
                asked.insert((b.project, *view_day, url.as_str()));
            }
        }
    }
    for (project, day, url) in asked {
        hot.page_kept(tx, project, day, url).await?;
    }
    for mut b in done {
        for (url, page, fresh, view) in &b.pages {
            hot.add_page(tx, b.project, b.s, (b.day, url), page, *fresh, *view, &mut b.clicks_dropped).await?;
        }
        hot.drop_counts(b.project, b.day, b.clicks_dropped, b.views_dropped);
    }
    let mut changed: Vec<((i64, String, String), ViewRow)> = views
        .into_iter()
        .flat_map(|(key, rows)| rows.into_iter().filter(|r| r.changed).map(move |r| (key.clone(), r)))
        .collect();
    changed.sort_unstable_by(|a, b| (&a.0, &a.1.url).cmp(&(&b.0, &b.1.url)));
    if !changed.is_empty() {
        let projects: Vec<i64> = changed.iter().map(|(k, _)| k.0).collect();
        let sessions: Vec<&str> = changed.iter().map(|(k, _)| k.1.as_str()).collect();
        let pages: Vec<&str> = changed.iter().map(|(k, _)| k.2.as_str()).collect();
        let urls: Vec<&str> = changed.iter().map(|(_, r)| r.url.as_str()).collect();
        let days: Vec<i64> = changed.iter().map(|(_, r)| r.day).collect();
        let depths: Vec<i64> = changed.iter().map(|(_, r)| r.depth).collect();
        let seen: Vec<i64> = changed.iter().map(|(_, r)| r.last_ms).collect();
        let clicks: Vec<i64> = changed.iter().map(|(_, r)| r.clicks).collect();
        tx.execute(SAVE_VIEWS, &[&projects, &sessions, &pages, &urls, &days, &depths, &seen, &clicks]).await?;
    }
    Ok(())
}

impl Engine {
    /// See [`crate::Storage::clickmap`].
    pub(super) async fn clickmap(&self, project: i64, q: ClickmapQuery) -> Result<Clickmap, Error> {
        let client = self.pool.get().await?;
        let like = text(&url_like(&q.url));
        let (from, to) = (q.from_day, q.to_day);
        let limit = i64::try_from(q.limit.min(MAX_ELEMENTS)).unwrap_or(0);
        let elements = client
            .query(&elements_sql(), &[&project, &from, &to, &like, &limit])
            .await?
            .iter()
            .map(|r| {
                let clicks: i64 = r.get(2);
                ClickmapElement {
                    path: r.get(0),
                    label: r.get(1),
                    clicks: to_u64(clicks),
                    x: mean(r.get(3), clicks),
                    y: mean(r.get(4), clicks),
                }
            })
            .collect();
        let pages = client.query_one(&pages_sql(), &[&project, &from, &to, &like]).await?;
        let depths = client.query(&depths_sql(), &[&project, &from, &to, &like]).await?;
        let sample = client.query_opt(&sample_sql(), &[&project, &from, &to, &like]).await?.map(|r| ClickmapSample {
            session: r.get(0),
            at_ms: to_u64(r.get(1)),
            url: r.get(2),
        });
        let dropped = client.query_one(DROPPED_SQL, &[&project, &from, &to]).await?;
        Ok(Clickmap {
            pages: to_u64(pages.get(0)),
            clicks: to_u64(pages.get(1)),
            clicks_dropped: to_u64(pages.get(2)),
            project_clicks_dropped: to_u64(dropped.get(0)),
            project_views_dropped: to_u64(dropped.get(1)),
            elements,
            reached: reached(depths.iter().map(|r| (r.get(0), r.get(1)))),
            sample,
        })
    }
}
