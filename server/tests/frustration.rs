//! Frustration signals through ingest, the session index and the list filters: a session with a
//! dead click, one with an error click, one with a quick back, and a calm one.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, meta};
use replay_protocol::{
    Batch, Click, ErrorEvent, ErrorKind, EventData, Focus, Mutation, Navigation, NavigationKind, encode_batch,
};
use replay_server::{AppState, Config, app};
use replay_store::{SqliteStorage, Storage};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";
const T0: u64 = 1_700_000_040_000;

/// An uncaught error, `boom`.
fn uncaught() -> EventData {
    EventData::Error(ErrorEvent {
        kind: ErrorKind::Uncaught,
        message: "boom".into(),
        stack: String::new(),
        source: String::new(),
        line: 0,
        column: 0,
        count: 1,
    })
}

fn nav(kind: NavigationKind, url: &str) -> EventData {
    EventData::Navigation(Navigation { url: url.into(), kind })
}

fn click() -> EventData {
    EventData::Click(Click {
        id: 9,
        x: 5,
        y: 5,
        button: 0,
        label: String::new(),
        path: String::new(),
        interactive: None,
    })
}

fn session(id: &str, n: u64, events: Vec<(u32, EventData)>) -> Batch {
    let mut b = Batch::new(id, "page-1", 0, T0 + n * 100_000);
    b.events = std::iter::once(at(0, meta("https://shop.test/list")))
        .chain(events.into_iter().map(|(t, e)| at(t, e)))
        .collect();
    b.end = b.start + 10_000;
    b
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

async fn ids(app: &axum::Router, project: i64, query: &str) -> Vec<String> {
    let req = Request::get(format!("/api/v1/projects/{project}/sessions?{query}"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let (status, list) = call(app, req).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut ids: Vec<String> =
        list["sessions"].as_array().into_iter().flatten().filter_map(|s| s["id"].as_str().map(str::to_owned)).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn dead_clicks_error_clicks_and_quick_backs_are_counted_and_filterable() {
    let storage = SqliteStorage::in_memory().expect("db");
    let created = storage.create_project("p").expect("project");
    let (project, key) = (created.id, created.ingest_key);
    replay_server::auth::bootstrap(&storage, Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    let app = app(AppState::new(Arc::new(storage), Config::default()));
    let focus = EventData::Focus(Focus { id: 9, focused: true });
    let error = uncaught();
    let answered = EventData::Mutation(Mutation { removes: vec![3], ..Mutation::default() });
    let batches = [
        session("dead", 0, vec![(1_000, focus.clone()), (1_050, click())]),
        session("error", 1, vec![(1_000, click()), (1_200, error)]),
        session(
            "back",
            2,
            vec![
                (1_000, nav(NavigationKind::Push, "https://shop.test/item/7")),
                (2_500, nav(NavigationKind::Pop, "https://shop.test/list")),
            ],
        ),
        session("calm", 3, vec![(1_000, focus), (1_050, click()), (1_400, answered)]),
    ];
    for b in batches {
        let req = Request::post("/api/v1/ingest")
            .header("x-replay-key", &key)
            .body(Body::from(encode_batch(&b).expect("encode")))
            .expect("request");
        assert_eq!(call(&app, req).await.0, StatusCode::OK);
    }
    assert_eq!(ids(&app, project, "has_dead_click=true").await, ["dead"]);
    assert_eq!(ids(&app, project, "has_error_click=true").await, ["error"]);
    assert_eq!(ids(&app, project, "has_quick_back=true").await, ["back"]);
    assert_eq!(ids(&app, project, "").await.len(), 4);
    let req = Request::get(format!("/api/v1/projects/{project}/sessions/dead"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let (_, row) = call(&app, req).await;
    assert_eq!(
        (row["dead_clicks"].as_u64(), row["error_clicks"].as_u64(), row["quick_backs"].as_u64()),
        (Some(1), Some(0), Some(0)),
        "{row}"
    );
    // The list page of the project filters the same way.
    let req = Request::get(format!("/viewer/p/{project}/?has_error_click=1"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let page = String::from_utf8(res.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8");
    assert!(page.contains("(1 error)") && !page.contains("(1 dead)"), "{page}");
}

/// The recorder cuts a batch about every second, so a click and what follows it usually land in
/// different batches: each batch judged alone counts nothing, and the whole-session judgement
/// of an idle session (`replay_server::frustration::settle`) finds them.
#[tokio::test]
async fn signals_split_across_batches_are_counted_once_the_session_is_idle() {
    let storage = Arc::new(SqliteStorage::in_memory().expect("db"));
    let created = storage.create_project("p").expect("project");
    let (project, key) = (created.id, created.ingest_key);
    replay_server::auth::bootstrap(storage.as_ref(), Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    let app = app(AppState::new(Arc::clone(&storage) as Arc<dyn Storage>, Config::default()));
    let focus = EventData::Focus(Focus { id: 9, focused: true });
    let error = uncaught();
    let answered = EventData::Mutation(Mutation { removes: vec![3], ..Mutation::default() });
    // Each session: one batch ending with the click (or the push), the next one with what followed.
    let split = |id: &str, n: u64, before: Vec<(u32, EventData)>, after: Vec<(u32, EventData)>| {
        let first = session(id, n, before);
        let mut second = Batch::new(id, "page-1", 1, first.end);
        second.events = after.into_iter().map(|(t, e)| at(t, e)).collect();
        second.end = second.start + 10_000;
        [first, second]
    };
    let sessions = [
        split("dead", 0, vec![(9_000, focus.clone()), (9_050, click())], vec![(3_000, answered.clone())]),
        split("error", 1, vec![(9_900, click())], vec![(100, error)]),
        split(
            "back",
            2,
            vec![(9_500, nav(NavigationKind::Push, "https://shop.test/item/7"))],
            vec![(1_000, nav(NavigationKind::Pop, "https://shop.test/list"))],
        ),
        split("calm", 3, vec![(9_000, focus), (9_050, click())], vec![(0, answered)]),
    ];
    for b in sessions.iter().flatten() {
        let req = Request::post("/api/v1/ingest")
            .header("x-replay-key", &key)
            .body(Body::from(encode_batch(b).expect("encode")))
            .expect("request");
        assert_eq!(call(&app, req).await.0, StatusCode::OK);
    }
    for filter in ["has_dead_click=true", "has_error_click=true", "has_quick_back=true"] {
        assert_eq!(ids(&app, project, filter).await, Vec::<String>::new(), "no batch sees {filter} alone");
    }
    let limits = replay_protocol::Limits::default();
    let settle = |cutoff| {
        replay_server::frustration::settle(storage.as_ref(), &limits, 64 << 20, cutoff, Duration::from_secs(60))
            .expect("settle")
    };
    let now = replay_core::now_ms();
    assert_eq!(settle(now - 60_000).judged, 0, "sessions still receiving are left alone");
    assert_eq!(settle(now + 1_000).judged, 4);
    assert_eq!(ids(&app, project, "has_dead_click=true").await, ["dead"]);
    assert_eq!(ids(&app, project, "has_error_click=true").await, ["error"]);
    assert_eq!(ids(&app, project, "has_quick_back=true").await, ["back"]);
    assert_eq!(settle(now + 1_000), replay_server::frustration::Round::default(), "judged once");
}
