//! Click maps and scroll maps through ingest, the aggregates and the API and page: sessions of
//! one page click known elements known numbers of times and reach known depths; a resent batch
//! counts once; the API and the page answer those counts, per project and URL pattern.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, meta};
use replay_protocol::{Batch, Click, EventData, Navigation, NavigationKind, ScrollDepth, encode_batch};
use replay_server::{AppState, Config, app};
use replay_store::{SqliteStorage, Storage};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";
const T0: u64 = 1_700_000_040_000;
const LIST: &str = "https://shop.test/list?page=2";

fn click(path: &str, label: &str) -> EventData {
    EventData::Click(Click {
        id: 9,
        x: 10,
        y: 20,
        button: 0,
        label: label.into(),
        path: path.into(),
        interactive: None,
    })
}

fn depth(bottom: u32) -> EventData {
    EventData::ScrollDepth(ScrollDepth { bottom, height: 1000 })
}

fn batch(session: &str, seq: u32, start: u64, events: Vec<EventData>) -> Batch {
    let mut b = Batch::new(session, "page-1", seq, start);
    b.events = events.into_iter().enumerate().map(|(i, e)| at(i as u32 * 10, e)).collect();
    b.end = b.start + 1_000;
    b
}

async fn send(app: &axum::Router, key: &str, b: &Batch) {
    let req = Request::post("/api/v1/ingest")
        .header("x-replay-key", key)
        .body(Body::from(encode_batch(b).expect("encode")))
        .expect("request");
    assert_eq!(app.clone().oneshot(req).await.expect("infallible").status(), StatusCode::OK);
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let req = Request::get(path).header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).expect("req");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    (status, String::from_utf8_lossy(&res.into_body().collect().await.expect("body").to_bytes()).into_owned())
}

#[tokio::test]
async fn a_click_map_counts_each_element_and_depth_of_a_page_once() {
    let storage = SqliteStorage::in_memory().expect("db");
    let created = storage.create_project("p").expect("project");
    let other = storage.create_project("other").expect("other");
    let (project, key) = (created.id, created.ingest_key);
    replay_server::auth::bootstrap(&storage, Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    let app = app(AppState::new(Arc::new(storage), Config::default()));
    // Session i clicks #buy i+1 times and the link once; sessions reach 30 %, 60 % and the
    // bottom in turn. The second batch of each page view names no URL.
    let mut want_buy = 0;
    for i in 0..6u32 {
        let id = format!("s{i}");
        let start = T0 + u64::from(i) * 60_000;
        let first = batch(&id, 0, start, vec![meta(LIST), depth(300), click("body > nav > a:nth-of-type(2)", "Next")]);
        send(&app, &key, &first).await;
        send(&app, &key, &first).await;
        let mut events: Vec<EventData> = (0..=i).map(|_| click("#buy", "<b>Buy</b>")).collect();
        want_buy += i + 1;
        events.push(depth([300, 600, 1000][i as usize % 3]));
        send(&app, &key, &batch(&id, 1, start + 2_000, events)).await;
    }
    // Another page of the same site, and the same page in another project.
    let cart = batch("c", 0, T0, vec![meta("https://shop.test/cart"), click("#pay", "Pay"), depth(1000)]);
    send(&app, &key, &cart).await;
    send(&app, &other.ingest_key, &batch("x", 0, T0, vec![meta(LIST), click("#buy", "Buy")])).await;
    // An in-page navigation moves the clicks after it to the new URL.
    let moved = batch(
        "n",
        0,
        T0,
        vec![
            meta(LIST),
            EventData::Navigation(Navigation { url: "https://shop.test/cart#x".into(), kind: NavigationKind::Push }),
            click("#pay", "Pay"),
        ],
    );
    send(&app, &key, &moved).await;

    let range = format!("from={}&to={}", T0 - 1, T0 + 3_600_000);
    let (status, body) =
        get(&app, &format!("/api/v1/projects/{project}/clickmap?url=https://SHOP.test/list&{range}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let map: serde_json::Value = serde_json::from_str(&body).expect("json");
    let counts: Vec<(String, u64)> = map["elements"]
        .as_array()
        .expect("elements")
        .iter()
        .map(|e| (e["path"].as_str().unwrap_or_default().to_owned(), e["clicks"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(
        counts,
        [("#buy".to_owned(), u64::from(want_buy)), ("body > nav > a:nth-of-type(2)".to_owned(), 6)],
        "resent batches count once, other pages and projects apart"
    );
    assert_eq!(map["elements"][0]["label"], "<b>Buy</b>");
    assert_eq!((map["elements"][0]["x"].as_i64(), map["elements"][0]["y"].as_i64()), (Some(10), Some(20)));
    // 6 views with a depth (the navigating one recorded none): 3, 6 and 10 tenths, twice each.
    let reached: Vec<u64> =
        map["scroll"]["reached"].as_array().expect("reached").iter().filter_map(|v| v.as_u64()).collect();
    assert_eq!(reached, [6, 6, 6, 6, 4, 4, 4, 2, 2, 2, 2]);
    assert_eq!(map["scroll"]["deepest"][10], 2);
    assert_eq!(map["scroll"]["deepest"][6], 2);
    assert_eq!(map["sample"]["session"], "s5", "the latest view");
    assert_eq!(map["clicks"], 6 + want_buy);

    let (_, body) = get(&app, &format!("/api/v1/projects/{project}/clickmap?url=https://shop.test/*&{range}")).await;
    let all: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((all["pages"].as_u64(), all["elements"][2]["path"].as_str()), (Some(2), Some("#pay")));
    assert_eq!(all["elements"][2]["clicks"], 2, "the click after the navigation is the cart's");

    // Outside the range, and bad queries.
    let (_, body) = get(&app, &format!("/api/v1/projects/{project}/clickmap?url={LIST}&from=0&to=1000")).await;
    assert!(body.contains("\"elements\":[]"), "{body}");
    for bad in
        ["url=?q", &format!("url={}", "x".repeat(301)), "url=https://a.test/&from=5&to=4", "url=https://a.test/&from=0"]
    {
        let (status, body) = get(&app, &format!("/api/v1/projects/{project}/clickmap?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body.contains("bad_query"), "{body}");
    }
    let (_, body) = get(&app, &format!("/api/v1/projects/{project}/clickmap?{range}")).await;
    assert!(body.contains("\"pages\":2"), "every page when none is named: {body}");
    let (status, _) = get(&app, "/api/v1/projects/99/clickmap?url=https://shop.test/list").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The page: the form, the elements (recorded text escaped), the scroll map, the script.
    let from_day = "2023-11-14";
    let (status, page) =
        get(&app, &format!("/viewer/p/{project}/clickmap?url=https://shop.test/list&from={from_day}&to={from_day}"))
            .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("&lt;b&gt;Buy&lt;/b&gt;") && !page.contains("<b>Buy"), "escaped");
    assert!(page.contains(&format!("<td class=\"count\">{want_buy}</td>")), "{page}");
    assert!(
        page.contains(
            "<tr data-depth=\"100\"><td>100 %</td><td class=\"count\">2</td><td class=\"share\">33 %</td></tr>"
        ),
        "{page}"
    );
    assert!(page.contains("src=\"/viewer/clickmap.js\"") && page.contains("data-session=\"s5\""));
    assert!(page.contains("<span>Click map</span>"), "the nav marks the page");
    let (_, empty) = get(&app, &format!("/viewer/p/{project}/clickmap")).await;
    assert!(empty.contains("Name a page"), "{empty}");
}
