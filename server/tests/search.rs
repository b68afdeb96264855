//! Search by what happened, through ingest, the session index and the list's filters (API
//! query parameters and the viewer's list form): a session that clicked "Pay now", one whose
//! request failed, one that logged an error, one that went from the list to checkout, and one
//! that went the other way.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, meta};
use replay_protocol::{
    Batch, Click, Console, ConsoleLevel, EventData, Navigation, NavigationKind, Network, RequestKind, encode_batch,
};
use replay_server::{AppState, Config, app};
use replay_store::{SqliteStorage, Storage};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";
const T0: u64 = 1_700_000_040_000;

fn session(id: &str, n: u64, url: &str, events: Vec<EventData>) -> Batch {
    let mut b = Batch::new(id, "page-1", 0, T0 + n * 100_000);
    b.events = std::iter::once(at(0, meta(url))).chain(events.into_iter().map(|e| at(1_000, e))).collect();
    b.end = b.start + 10_000;
    b
}

fn click(label: &str) -> EventData {
    EventData::Click(Click {
        id: 9,
        x: 5,
        y: 5,
        button: 0,
        label: label.into(),
        path: String::new(),
        interactive: None,
    })
}

fn request(url: &str, status: u16, failed: bool) -> EventData {
    EventData::Network(Network {
        kind: RequestKind::Fetch,
        method: "GET".into(),
        url: url.into(),
        status,
        duration: 10,
        request_size: 0,
        response_size: 0,
        failed,
        aborted: false,
        error: String::new(),
        request_headers: vec![],
        response_headers: vec![],
        request_body: String::new(),
        response_body: String::new(),
        failure: Default::default(),
        timing: None,
    })
}

fn console(text: &str) -> EventData {
    EventData::Console(Console { level: ConsoleLevel::Error, args: vec![text.into()], stack: String::new() })
}

fn nav(url: &str) -> EventData {
    EventData::Navigation(Navigation { url: url.into(), kind: NavigationKind::Push })
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, Vec<u8>) {
    let req = Request::get(path).header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).expect("req");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    (status, res.into_body().collect().await.expect("body").to_bytes().to_vec())
}

async fn ids(app: &axum::Router, project: i64, query: &str) -> Vec<String> {
    let (status, body) = get(app, &format!("/api/v1/projects/{project}/sessions?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let list: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let mut ids: Vec<String> =
        list["sessions"].as_array().into_iter().flatten().filter_map(|s| s["id"].as_str().map(str::to_owned)).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn sessions_are_found_by_what_happened_in_the_api_and_the_list() {
    let storage = SqliteStorage::in_memory().expect("db");
    let created = storage.create_project("p").expect("project");
    let (project, key) = (created.id, created.ingest_key);
    replay_server::auth::bootstrap(&storage, Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    let app = app(AppState::new(Arc::new(storage), Config::default()));
    let list = "https://shop.test/list";
    let checkout = "https://shop.test/checkout";
    let batches = [
        session("payer", 0, list, vec![click("Pay now")]),
        session("masked", 6, list, vec![click("*** ****")]),
        session(
            "failer",
            1,
            list,
            vec![request("https://api.test/cart?id=3", 500, false), request("https://api.test/ok", 200, false)],
        ),
        session("offline", 2, list, vec![request("https://api.test/stock", 0, true)]),
        session("logger", 3, list, vec![console("TypeError: price is undefined")]),
        session("buyer", 4, list, vec![nav(checkout)]),
        session("returner", 5, checkout, vec![nav(list)]),
    ];
    for b in batches {
        let req = Request::post("/api/v1/ingest")
            .header("x-replay-key", &key)
            .body(Body::from(encode_batch(&b).expect("encode")))
            .expect("request");
        assert_eq!(app.clone().oneshot(req).await.expect("infallible").status(), StatusCode::OK);
    }
    assert_eq!(ids(&app, project, "clicked=pay%20NOW").await, ["payer"]);
    assert_eq!(ids(&app, project, "clicked=*").await, ["payer"], "a masked label is not kept");
    assert_eq!(ids(&app, project, "failed_request=api.test/cart").await, ["failer"]);
    assert_eq!(ids(&app, project, "failed_request=https://api.test/*").await, ["failer", "offline"]);
    assert!(ids(&app, project, "failed_request=/ok").await.is_empty(), "a 200 did not fail");
    assert_eq!(ids(&app, project, "console=price%20is%20undefined").await, ["logger"]);
    assert_eq!(ids(&app, project, "visited=/list&then_visited=/checkout").await, ["buyer"]);
    assert_eq!(ids(&app, project, "visited=/checkout&then_visited=/list").await, ["returner"]);
    assert_eq!(ids(&app, project, "").await.len(), 7);
    // Patterns are capped.
    let long = "x".repeat(201);
    let (status, body) = get(&app, &format!("/api/v1/projects/{project}/sessions?console={long}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("bad_query"));
    // The viewer's list filters the same way.
    for (query, only) in [
        ("clicked=pay", "payer"),
        ("failed_request=cart", "failer"),
        ("console=typeerror", "logger"),
        ("visited=list&then_visited=checkout", "buyer"),
    ] {
        let (status, page) = get(&app, &format!("/viewer/p/{project}/?{query}")).await;
        assert_eq!(status, StatusCode::OK);
        let page = String::from_utf8(page).expect("utf-8");
        for id in ["payer", "masked", "failer", "offline", "logger", "buyer", "returner"] {
            assert_eq!(page.contains(&format!("session={id}")), id == only, "{query}: {id}");
        }
    }
}
