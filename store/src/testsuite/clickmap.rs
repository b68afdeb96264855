//! The conformance checks of click maps and scroll maps (`crate::clickmap`).

use replay_core::clickmap::{Activity, ElementClicks, PageActivity};

use super::{StorageExt, summary};
use crate::clickmap::{
    ClickmapElement, ClickmapQuery, DAY_MS, MAX_CLICKS_PER_VIEW, MAX_ELEMENTS_PER_PAGE, MAX_PAGES_PER_DAY,
    MAX_URLS_PER_VIEW, day_of,
};
use crate::{BatchSummary, Storage};

/// A day of the past (ingest clamps future times).
const DAY: u64 = 19_700 * DAY_MS;

fn element(path: &str, label: &str, clicks: u64, x: i64, y: i64) -> ElementClicks {
    ElementClicks { path: path.into(), label: label.into(), clicks, x_sum: x * clicks as i64, y_sum: y * clicks as i64 }
}

fn page(url: Option<&str>, elements: Vec<ElementClicks>, depth: Option<u8>, last_ms: u64) -> PageActivity {
    PageActivity { url: url.map(str::to_owned), elements, depth, last_ms }
}

fn batch(session: &str, page_id: &str, seq: u32, at_ms: u64, pages: Vec<PageActivity>) -> BatchSummary {
    let mut s = summary(session, page_id, seq, at_ms);
    s.activity = Activity { pages, dropped: 0 };
    s
}

fn query(url: &str, from_ms: u64, to_ms: u64) -> ClickmapQuery {
    ClickmapQuery { url: url.into(), from_day: day_of(from_ms), to_day: day_of(to_ms), limit: 100 }
}

const LIST: &str = "https://shop.test/list";

pub(super) fn clicks_and_scroll_depths_are_aggregated_per_page_and_day_once(db: &impl Storage) {
    let p = db.create_project("shop").expect("p");
    let other = db.create_project("blog").expect("other");
    let t = DAY + 3_600_000;
    let first = batch(
        "s1",
        "a",
        0,
        t,
        vec![page(Some(LIST), vec![element("#buy", "Buy", 3, 10, 20), element("#nav > a", "", 1, 5, 5)], Some(3), t)],
    );
    db.put_batch_blocking(p.id, &first, b"0").expect("put");
    db.put_batch_blocking(p.id, &first, b"0").expect("resent: stored once");
    // The next batch of that page view names no URL: it continues the last one.
    let next = batch("s1", "a", 1, t + 10, vec![page(None, vec![element("#buy", "", 2, 40, 50)], Some(7), t + 10)]);
    db.put_batch_blocking(p.id, &next, b"1").expect("put");
    let two_pages = vec![
        page(Some(LIST), vec![element("#buy", "Buy now", 1, 10, 20)], Some(10), t + 20),
        page(Some("https://shop.test/cart"), vec![element("#pay", "Pay", 1, 1, 1)], Some(2), t + 30),
    ];
    db.put_batch_blocking(p.id, &batch("s2", "b", 0, t + 20, two_pages), b"0").expect("put");
    db.put_batch_blocking(other.id, &first, b"0").expect("another project's");

    let map = db.clickmap(p.id, &query(LIST, t, t)).expect("map");
    assert_eq!(
        map.elements,
        [
            ClickmapElement { path: "#buy".into(), label: "Buy".into(), clicks: 6, x: 20, y: 30 },
            ClickmapElement { path: "#nav > a".into(), label: String::new(), clicks: 1, x: 5, y: 5 },
        ],
        "the resent batch counted once; the first label seen stays"
    );
    assert_eq!((map.pages, map.clicks, map.clicks_dropped), (1, 7, 0));
    // s1 reached 7 tenths (3 first, then 7), s2 the bottom.
    assert_eq!(map.reached, [2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1]);
    let sample = map.sample.expect("a sample view");
    assert_eq!((sample.session.as_str(), sample.at_ms, sample.url.as_str()), ("s2", t + 20, LIST));

    let all = db.clickmap(p.id, &query("https://shop.test/*", t, t)).expect("map");
    let paths: Vec<_> = all.elements.iter().map(|e| (e.path.as_str(), e.clicks)).collect();
    assert_eq!(paths, [("#buy", 6), ("#nav > a", 1), ("#pay", 1)]);
    assert_eq!((all.pages, all.clicks), (2, 8));
    assert_eq!((all.reached[2], all.reached[3]), (3, 2), "the cart's view reached 2 tenths");
    assert_eq!(all.sample.expect("sample").url, "https://shop.test/cart", "the latest view");

    let before = db.clickmap(p.id, &query(LIST, t - DAY_MS, t - DAY_MS)).expect("map");
    assert!(before.elements.is_empty() && before.reached == [0; 11] && before.sample.is_none(), "other days");
    let theirs = db.clickmap(other.id, &query(LIST, t, t)).expect("map");
    assert_eq!(theirs.clicks, 4, "projects are apart");
    assert_eq!(db.clickmap(p.id, &query("https://shop.test/lis", t, t)).expect("map").clicks, 0, "whole URLs");
}

pub(super) fn click_maps_are_bounded_and_count_what_they_drop(db: &impl Storage) {
    let p = db.create_project("shop").expect("p");
    let t = DAY + 1_000;
    let cap = usize::try_from(MAX_ELEMENTS_PER_PAGE).expect("cap");
    let elements: Vec<_> = (0..cap + 7).map(|i| element(&format!("#e{i:04}"), "", 1, 0, 0)).collect();
    for (seq, chunk) in elements.chunks(200).enumerate() {
        let s = batch("s", "a", seq as u32, t + seq as u64, vec![page(Some(LIST), chunk.to_vec(), None, t)]);
        db.put_batch_blocking(p.id, &s, b"x").expect("put");
    }
    let map = db.clickmap(p.id, &query(LIST, t, t)).expect("map");
    assert_eq!((map.clicks, map.clicks_dropped), (cap as u64, 7));
    assert_eq!(map.elements.len(), 100, "the query's limit");

    let pages = usize::try_from(MAX_PAGES_PER_DAY).expect("cap") + 3;
    let urls: Vec<String> = (0..pages).map(|i| format!("https://shop.test/p{i:05}")).collect();
    for (seq, chunk) in urls.chunks(16).enumerate() {
        let list = chunk.iter().map(|u| page(Some(u), vec![element("#x", "", 1, 0, 0)], Some(10), t)).collect();
        // A page view of its own per chunk: one view counts clicks on at most MAX_URLS_PER_VIEW URLs.
        let mut s = batch("many", &format!("b{seq}"), 0, t + seq as u64, list);
        s.activity.dropped = 1;
        db.put_batch_blocking(p.id, &s, b"x").expect("put");
    }
    let map = db.clickmap(p.id, &query("https://shop.test/p*", t, t)).expect("map");
    assert_eq!(map.pages, MAX_PAGES_PER_DAY as u64 - 1, "the list page took one place");
    assert_eq!(map.project_clicks_dropped, 4 + urls.chunks(16).count() as u64, "pages over the cap, batches' own");
}

pub(super) fn one_page_view_counts_at_most_its_cap_of_clicks(db: &impl Storage) {
    let p = db.create_project("shop").expect("p");
    let t = DAY + 7_000;
    let cap = MAX_CLICKS_PER_VIEW;
    // A visitor's auto-clicker: three batches of 600 clicks on one button, then on another.
    for seq in 0..3u32 {
        let els = vec![element("#buy", "Buy", 600, 10, 20), element("#more", "More", 50, 30, 40)];
        let s = batch("bot", "a", seq, t + u64::from(seq), vec![page(Some(LIST), els, None, t + u64::from(seq))]);
        db.put_batch_blocking(p.id, &s, b"x").expect("put");
    }
    let human =
        batch("human", "h", 0, t + 9, vec![page(Some(LIST), vec![element("#more", "More", 3, 30, 40)], None, t)]);
    db.put_batch_blocking(p.id, &human, b"x").expect("put");
    let map = db.clickmap(p.id, &query(LIST, t, t)).expect("map");
    assert_eq!(map.clicks, cap + 3, "the bot's view counts {cap} clicks, the human's all of theirs");
    assert_eq!(map.project_clicks_dropped, 3 * 650 - cap, "what the cap left out is counted");
    let buy = map.elements.iter().find(|e| e.path == "#buy").expect("#buy");
    let more = map.elements.iter().find(|e| e.path == "#more").expect("#more");
    // Batch 1: 600 + 50; batch 2: 350 of #buy (the batch's order), nothing of #more.
    assert_eq!((buy.clicks, more.clicks), (950, 53));
    assert_eq!((buy.x, buy.y, more.x, more.y), (10, 20, 30, 40), "cut short, the mean position stays");

    // Another page view of the same session counts again; a view past its cap of URLs counts nothing.
    let next =
        batch("bot", "a2", 0, t + 20, vec![page(Some(LIST), vec![element("#buy", "", 5, 10, 20)], None, t + 20)]);
    db.put_batch_blocking(p.id, &next, b"x").expect("put");
    let urls: Vec<String> = (0..=MAX_URLS_PER_VIEW).map(|i| format!("https://shop.test/u{i:03}")).collect();
    let list = urls.iter().map(|u| page(Some(u), vec![element("#x", "", 1, 0, 0)], None, t)).collect();
    db.put_batch_blocking(p.id, &batch("roam", "r", 0, t + 30, list), b"x").expect("put");
    let map = db.clickmap(p.id, &query(LIST, t, t)).expect("map");
    assert_eq!(map.clicks, cap + 3 + 5);
    assert_eq!(map.project_clicks_dropped, 3 * 650 - cap + 1, "the view's URL over its cap");
    let roam = db.clickmap(p.id, &query("https://shop.test/u*", t, t)).expect("map");
    assert_eq!((roam.pages, roam.clicks), (MAX_URLS_PER_VIEW as u64 + 1, MAX_URLS_PER_VIEW as u64));
}

pub(super) fn click_maps_forget_sessions_deleted_and_go_with_their_project_and_days(db: &impl Storage) {
    let p = db.create_project("shop").expect("p");
    let t = DAY + 5_000;
    let s1 = batch("s1", "a", 0, t, vec![page(Some(LIST), vec![element("#buy", "Buy", 2, 1, 1)], Some(5), t)]);
    let s2 = batch("s2", "b", 0, t + 1, vec![page(Some(LIST), vec![element("#buy", "Buy", 1, 1, 1)], Some(9), t + 1)]);
    db.put_batch_blocking(p.id, &s1, b"0").expect("put");
    db.put_batch_blocking(p.id, &s2, b"0").expect("put");
    assert_eq!(db.clickmap(p.id, &query(LIST, t, t)).expect("map").sample.expect("sample").session, "s2");
    db.delete_sessions(p.id, &["s2".to_owned()]).expect("delete");
    let map = db.clickmap(p.id, &query(LIST, t, t)).expect("map");
    assert!(map.sample.is_none(), "no session id of a deleted session is left");
    // Anonymous counts stay (see `crate::clickmap`); the labels of the page-days the deleted
    // session viewed are blanked (a label is the first click's text, perhaps that session's).
    assert_eq!((map.clicks, map.reached[0]), (3, 2));
    assert!(map.elements.iter().all(|e| e.label.is_empty()), "{:?}", map.elements);
    // A later batch of s1's view (no URL) still finds where it is, and labels the element again.
    let later = batch("s1", "a", 1, t + 9, vec![page(None, vec![element("#buy", "Buy now", 1, 1, 1)], None, t + 9)]);
    db.put_batch_blocking(p.id, &later, b"1").expect("put");
    let map = db.clickmap(p.id, &query(LIST, t, t)).expect("map");
    assert_eq!((map.clicks, map.sample.expect("sample").session.as_str()), (4, "s1"));
    assert_eq!(map.elements[0].label, "Buy now");

    // A page-day only deleted sessions viewed goes whole: its counts were theirs, and its URL
    // names the user. One that other sessions viewed too stays.
    const ALICE: &str = "https://shop.test/u/alice-smith";
    let save = || vec![page(Some(ALICE), vec![element("#save", "Save", 1, 2, 2)], Some(4), t + 20)];
    let own = |session: &str| batch(session, "c", 0, t + 20, save());
    db.put_batch_blocking(p.id, &own("s3"), b"0").expect("put");
    db.put_batch_blocking(p.id, &own("s4"), b"0").expect("put");
    db.put_batch_blocking(p.id, &own("s5"), b"0").expect("put");
    db.delete_sessions(p.id, &["s3".to_owned()]).expect("delete");
    assert_eq!(db.clickmap(p.id, &query(ALICE, t, t)).expect("map").clicks, 3, "s4 and s5 viewed it too");
    db.delete_sessions(p.id, &["s4".to_owned(), "s5".to_owned()]).expect("delete");
    let gone = db.clickmap(p.id, &query(ALICE, t, t)).expect("map");
    assert_eq!((gone.pages, gone.clicks, gone.reached, gone.elements.len()), (0, 0, [0; 11], 0), "{gone:?}");
    assert_eq!(db.clickmap(p.id, &query(LIST, t, t)).expect("map").clicks, 4, "another page-day stays");

    // A project's own retention deletes its days before the cutoff, not another project's.
    let o = db.create_project("other").expect("o");
    db.put_batch_blocking(o.id, &s1, b"0").expect("put");
    db.delete_clickmap_before(p.id, day_of(t)).expect("keeps the day");
    assert_eq!(db.clickmap(p.id, &query(LIST, t, t)).expect("map").clicks, 4);
    db.delete_clickmap_before(p.id, day_of(t) + 1).expect("deletes the day");
    assert_eq!(db.clickmap(p.id, &query(LIST, t, t)).expect("map").clicks, 0);
    assert_eq!(db.clickmap(o.id, &query(LIST, t, t)).expect("map").clicks, 2, "projects are apart");

    // The server's retention past the day: every project's aggregates of it go with its sessions.
    db.delete_sessions_before(t + 2 * DAY_MS).expect("retention");
    let map = db.clickmap(o.id, &query(LIST, t, t)).expect("map");
    assert_eq!((map.clicks, map.reached, map.sample), (0, [0; 11], None));

    let q = db.create_project("blog").expect("q");
    db.put_batch_blocking(q.id, &s1, b"0").expect("put");
    assert_eq!(db.clickmap(q.id, &query(LIST, t, t)).expect("map").clicks, 2);
    assert!(db.delete_project(q.id).expect("delete"));
    assert_eq!(db.clickmap(q.id, &query(LIST, t, t)).expect("map"), crate::clickmap::Clickmap::default());
}
