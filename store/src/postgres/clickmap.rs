//! Click maps in PostgreSQL: a batch's activity added to the aggregates in the batch's
//! transaction, and a click map read from them (the SQL is `crate::clickmap`'s).
//!
//! Rows are written in one order in every transaction (the batch's pages by URL, each page's
//! elements by path, the project-day's dropped counts last), so concurrent batches on the same
//! pages wait for each other and never deadlock. A page-day row is a point of contention for
//! busy pages: batches of it commit one after the other.

use deadpool_postgres::Transaction;

use super::{Engine, text};
use crate::clickmap::{
    ADD_DEPTH, ADD_DROPPED, ADD_ELEMENT, ADD_PAGE, ADD_VIEW, CURRENT_URL, Clickmap, ClickmapElement, ClickmapQuery,
    ClickmapSample, DROPPED_SQL, MAX_ELEMENTS, MAX_ELEMENTS_PER_PAGE, MAX_PAGES_PER_DAY, MAX_URLS_PER_VIEW,
    PAGE_EXISTS, PAGE_SEEN, SEE_VIEW, VIEW, day_of, depths_sql, elements_sql, mean, pages_sql, reached, sample_sql,
    url_like,
};
use crate::shared::{to_i64, to_u64};
use crate::{BatchSummary, Error};

/// Whether the page-day row is there (added now when under the day's cap).
async fn page_kept(tx: &Transaction<'_>, project: i64, day: i64, url: &str) -> Result<bool, Error> {
    if tx.query_opt(PAGE_EXISTS, &[&project, &day, &url]).await?.is_some() {
        return Ok(true);
    }
    Ok(tx.execute(ADD_PAGE, &[&project, &day, &url, &MAX_PAGES_PER_DAY]).await? == 1)
}

/// Adds the click map activity of `s` (a batch stored now, once) to the aggregates.
pub(super) async fn index_activity(tx: &Transaction<'_>, project: i64, s: &BatchSummary) -> Result<(), Error> {
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
        let mut view: Option<(i64, i64)> =
            tx.query_opt(VIEW, &[&project, &s.session, &s.page, &url]).await?.map(|r| (r.get(0), r.get(1)));
        let fresh = view.is_none();
        if fresh {
            let add = tx.prepare_cached(ADD_VIEW).await?;
            if tx.execute(&add, &[&project, &s.session, &s.page, &url, &day, &seen, &MAX_URLS_PER_VIEW]).await? == 1 {
                view = Some((day, -1));
            } else {
                views_dropped += 1;
            }
        }
        let depth = page.depth.map_or(-1, i64::from);
        if view.is_some() {
            tx.execute(SEE_VIEW, &[&seen, &depth, &project, &s.session, &s.page, &url]).await?;
        }
        if (clicks > 0 || fresh) && page_kept(tx, project, day, &url).await? {
            let mut lost = 0;
            let add = tx.prepare_cached(ADD_ELEMENT).await?;
            for e in &page.elements {
                let (path, label, n) = (text(&e.path), text(&e.label), to_i64(e.clicks));
                let cap = MAX_ELEMENTS_PER_PAGE;
                if tx.execute(&add, &[&project, &day, &url, &path, &label, &n, &e.x_sum, &e.y_sum, &cap]).await? == 0 {
                    lost += e.clicks;
                }
            }
            let (kept, lost) = (to_i64(clicks - lost), to_i64(lost));
            tx.execute(PAGE_SEEN, &[&kept, &lost, &seen, &s.session, &project, &day, &url]).await?;
        } else {
            clicks_dropped += clicks;
        }
        if let Some((view_day, old)) = view
            && depth > old
            && page_kept(tx, project, view_day, &url).await?
        {
            let add = tx.prepare_cached(ADD_DEPTH).await?;
            for tenth in (old + 1)..=depth {
                tx.execute(&add, &[&project, &view_day, &url, &tenth]).await?;
            }
        }
    }
    if clicks_dropped + views_dropped > 0 {
        tx.execute(ADD_DROPPED, &[&project, &day, &to_i64(clicks_dropped), &to_i64(views_dropped)]).await?;
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
