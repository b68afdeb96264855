//! The HTTP application driven without sockets (`tower::ServiceExt::oneshot`) over in-memory
//! storage: ingest, the session index, events and the snapshot at time t.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::{
    AddedSubtree, Attr, Batch, Click, Event, EventData, Mutation, Namespace, Node, NodeKind, PageMeta, Snapshot,
    Viewport, encode_batch,
};
use replay_server::{AppState, Config, SqliteStorage, Storage, app};
use tower::ServiceExt;

fn el(id: u32, parent: u32, tag: &str) -> Node {
    Node { id, parent, kind: NodeKind::Element { tag: tag.into(), ns: Namespace::Html, attrs: vec![] } }
}

fn page_batches() -> Vec<Batch> {
    let mut first = Batch::new("sess-1", "page-1", 0, 10_000);
    first.events = vec![
        Event {
            t: 0,
            data: EventData::Meta(PageMeta {
                url: "http://shop.test/list".into(),
                title: "Shop".into(),
                viewport: Viewport { width: 800, height: 600 },
                user_agent: "test".into(),
                referrer: String::new(),
            }),
        },
        Event {
            t: 0,
            data: EventData::Snapshot(Snapshot {
                nodes: vec![
                    Node { id: 1, parent: 0, kind: NodeKind::Document },
                    el(2, 1, "html"),
                    el(3, 2, "head"),
                    el(4, 2, "body"),
                    Node { id: 5, parent: 4, kind: NodeKind::Text("hello".into()) },
                ],
                scroll_x: 0,
                scroll_y: 0,
            }),
        },
    ];
    first.end = 10_000;
    let mut second = Batch::new("sess-1", "page-1", 1, 11_000);
    second.events = vec![
        Event { t: 0, data: EventData::Click(Click { id: 4, x: 1, y: 1, button: 0 }) },
        Event {
            t: 500,
            data: EventData::Mutation(Mutation {
                adds: vec![AddedSubtree {
                    parent: 4,
                    next: 0,
                    nodes: vec![Node {
                        id: 6,
                        parent: 4,
                        kind: NodeKind::Element {
                            tag: "p".into(),
                            ns: Namespace::Html,
                            attrs: vec![Attr { name: "class".into(), value: "late".into() }],
                        },
                    }],
                }],
                ..Mutation::default()
            }),
        },
    ];
    second.end = 11_500;
    vec![first, second]
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, body)
}

fn setup() -> (axum::Router, String) {
    let storage = SqliteStorage::in_memory().expect("db");
    let key = storage.create_project("p").expect("project").ingest_key;
    (app(AppState::new(Arc::new(storage), Config::default())), key)
}

fn post(key: &str, body: Vec<u8>) -> Request<Body> {
    Request::post("/api/v1/ingest").header("x-replay-key", key).body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn ingested_session_is_listed_and_replayable_at_any_time() {
    let (app, key) = setup();
    // Out of order on purpose: the server orders by page and sequence.
    for b in page_batches().into_iter().rev() {
        let (status, body) = call(&app, post(&key, encode_batch(&b).expect("encode"))).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    let (status, body) = call(&app, Request::get("/api/v1/sessions").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let row = &list["sessions"][0];
    assert_eq!(row["id"], "sess-1");
    assert_eq!(row["url"], "http://shop.test/list");
    assert_eq!(row["clicks"], 1);
    assert_eq!(row["duration_ms"], 1500);

    let snapshot = |t: &str| Request::get(format!("/api/v1/sessions/sess-1/snapshot{t}")).body(Body::empty());
    let (_, early) = call(&app, snapshot("?t=100").expect("req")).await;
    assert_eq!(String::from_utf8_lossy(&early), "<html><head></head><body>hello</body></html>");
    let (status, end) = call(&app, snapshot("").expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(String::from_utf8_lossy(&end), "<html><head></head><body>hello<p class=\"late\"></p></body></html>");

    let (status, events) =
        call(&app, Request::get("/api/v1/sessions/sess-1/events").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    let events: serde_json::Value = serde_json::from_slice(&events).expect("json");
    assert_eq!(events["batches"].as_array().map(Vec::len), Some(2));

    let msgpack = Request::get("/api/v1/sessions/sess-1/events")
        .header("accept", "application/msgpack")
        .body(Body::empty())
        .expect("req");
    let (_, bytes) = call(&app, msgpack).await;
    let batches = replay_protocol::codec::decode_batches(&bytes, &replay_protocol::Limits::default(), usize::MAX)
        .expect("decodes");
    assert_eq!(batches.iter().map(|b| b.seq).collect::<Vec<_>>(), vec![0, 1]);
}

#[tokio::test]
async fn unknown_sessions_and_hostile_ids_are_not_found() {
    let (app, _) = setup();
    for path in ["/api/v1/sessions/nope/snapshot", "/api/v1/sessions/..%2F..%2Fetc/events", "/api/v1/sessions/x"] {
        let (status, body) = call(&app, Request::get(path).body(Body::empty()).expect("req")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json error");
        assert_eq!(v["error"]["reason"], "not_found");
    }
}

#[tokio::test]
async fn key_of_another_project_cannot_write_into_this_one() {
    let storage = Arc::new(SqliteStorage::in_memory().expect("db"));
    let a = storage.create_project("a").expect("a");
    let b = storage.create_project("b").expect("b");
    let app = app(AppState::new(storage.clone(), Config::default()));
    let batch = encode_batch(&page_batches()[0]).expect("encode");
    let (status, _) = call(&app, post(&b.ingest_key, batch)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(storage.sessions(a.id, 10, 0).expect("list").is_empty());
    assert_eq!(storage.sessions(b.id, 10, 0).expect("list").len(), 1);
}
