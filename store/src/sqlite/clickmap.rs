//! Click maps in the SQLite index: a batch's activity added to the aggregates (in the index
//! flush's transaction) and a click map read from them (the SQL is `crate::clickmap`'s).

use rusqlite::{Connection, OptionalExtension, params};

use crate::BatchSummary;
use crate::Error;
use crate::clickmap::{
    ADD_DEPTH, ADD_DROPPED, ADD_ELEMENT, ADD_PAGE, ADD_VIEW, CURRENT_URL, Clickmap, ClickmapElement, ClickmapQuery,
    ClickmapSample, DROPPED_SQL, MAX_ELEMENTS_PER_PAGE, MAX_PAGES_PER_DAY, MAX_URLS_PER_VIEW, PAGE_EXISTS, PAGE_SEEN,
    SEE_VIEW, VIEW, day_of, depths_sql, elements_sql, mean, pages_sql, reached, sample_sql, url_like, view_room,
    within_view_cap,
};
use crate::shared::{to_i64, to_u64};

/// Whether the page-day row is there (added now when under the day's cap).
fn page_kept(tx: &Connection, project: i64, day: i64, url: &str) -> rusqlite::Result<bool> {
    if tx.prepare_cached(PAGE_EXISTS)?.query_row(params![project, day, url], |_| Ok(())).optional()?.is_some() {
        return Ok(true);
    }
    Ok(tx.prepare_cached(ADD_PAGE)?.execute(params![project, day, url, MAX_PAGES_PER_DAY])? == 1)
}

/// Adds the click map activity of `s` (a batch indexed now, once) to the aggregates.
pub(super) fn index_activity(tx: &Connection, project: i64, s: &BatchSummary) -> rusqlite::Result<()> {
    if s.activity.is_empty() {
        return Ok(());
    }
    let day = day_of(s.start_ms);
    let (mut clicks_dropped, mut views_dropped) = (s.activity.dropped, 0u64);
    for page in &s.activity.pages {
        let clicks: u64 = page.elements.iter().map(|e| e.clicks).sum();
        let url = match &page.url {
            Some(u) => u.clone(),
            None => {
                let current = tx
                    .prepare_cached(CURRENT_URL)?
                    .query_row(params![project, s.session, s.page], |r| r.get::<_, String>(0))
                    .optional()?;
                let Some(u) = current else {
                    clicks_dropped += clicks;
                    continue;
                };
                u
            }
        };
        let seen = to_i64(page.last_ms);
        let mut view = tx
            .prepare_cached(VIEW)?
            .query_row(params![project, s.session, s.page, url], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .optional()?;
        let fresh = view.is_none();
        if fresh {
            let cap = MAX_URLS_PER_VIEW;
            if tx.prepare_cached(ADD_VIEW)?.execute(params![project, s.session, s.page, url, day, seen, cap])? == 1 {
                view = Some((day, -1, 0));
            } else {
                views_dropped += 1;
            }
        }
        // Clicks count only in a view kept, up to its cap.
        let (page, over) = within_view_cap(page, view.map_or(0, |(_, _, counted)| view_room(counted)));
        clicks_dropped += over;
        let clicks = clicks - over;
        let depth = page.depth.map_or(-1, i64::from);
        if view.is_some() {
            let counted = to_i64(clicks);
            tx.prepare_cached(SEE_VIEW)?.execute(params![seen, depth, counted, project, s.session, s.page, url])?;
        }
        let view = view.map(|(day, depth, _)| (day, depth));
        if (clicks > 0 || fresh) && page_kept(tx, project, day, &url)? {
            let mut lost = 0;
            let mut add = tx.prepare_cached(ADD_ELEMENT)?;
            for e in &page.elements {
                let n = to_i64(e.clicks);
                if add.execute(params![
                    project,
                    day,
                    url,
                    e.path,
                    e.label,
                    n,
                    e.x_sum,
                    e.y_sum,
                    MAX_ELEMENTS_PER_PAGE
                ])? == 0
                {
                    lost += e.clicks;
                }
            }
            let kept = to_i64(clicks - lost);
            tx.prepare_cached(PAGE_SEEN)?.execute(params![kept, to_i64(lost), seen, s.session, project, day, url])?;
        } else {
            clicks_dropped += clicks;
        }
        if let Some((view_day, old)) = view
            && depth > old
            && page_kept(tx, project, view_day, &url)?
        {
            let mut add = tx.prepare_cached(ADD_DEPTH)?;
            for tenth in (old + 1)..=depth {
                add.execute(params![project, view_day, url, tenth])?;
            }
        }
    }
    if clicks_dropped + views_dropped > 0 {
        tx.prepare_cached(ADD_DROPPED)?.execute(params![
            project,
            day,
            to_i64(clicks_dropped),
            to_i64(views_dropped)
        ])?;
    }
    Ok(())
}

/// A click map of `project` (see [`crate::Storage::clickmap`]).
pub(super) fn clickmap(conn: &Connection, project: i64, q: &ClickmapQuery) -> Result<Clickmap, Error> {
    let like = url_like(&q.url);
    let (from, to) = (q.from_day, q.to_day);
    let limit = i64::try_from(q.limit.min(crate::clickmap::MAX_ELEMENTS)).unwrap_or(0);
    let elements = conn
        .prepare_cached(&elements_sql())?
        .query_map(params![project, from, to, like, limit], |r| {
            let clicks: i64 = r.get(2)?;
            Ok(ClickmapElement {
                path: r.get(0)?,
                label: r.get(1)?,
                clicks: to_u64(clicks),
                x: mean(r.get(3)?, clicks),
                y: mean(r.get(4)?, clicks),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let (pages, clicks, clicks_dropped): (i64, i64, i64) = conn
        .prepare_cached(&pages_sql())?
        .query_row(params![project, from, to, like], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let depths = conn
        .prepare_cached(&depths_sql())?
        .query_map(params![project, from, to, like], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<(i64, i64)>, _>>()?;
    let sample = conn
        .prepare_cached(&sample_sql())?
        .query_row(params![project, from, to, like], |r| {
            Ok(ClickmapSample { session: r.get(0)?, at_ms: to_u64(r.get(1)?), url: r.get(2)? })
        })
        .optional()?;
    let (project_clicks_dropped, project_views_dropped): (i64, i64) =
        conn.prepare_cached(DROPPED_SQL)?.query_row(params![project, from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Clickmap {
        pages: to_u64(pages),
        clicks: to_u64(clicks),
        clicks_dropped: to_u64(clicks_dropped),
        project_clicks_dropped: to_u64(project_clicks_dropped),
        project_views_dropped: to_u64(project_views_dropped),
        elements,
        reached: reached(depths),
        sample,
    })
}
