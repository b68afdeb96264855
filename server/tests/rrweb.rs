//! rrweb interop over HTTP: import a recording as a session, export a session as rrweb events,
//! and the refusals of hostile or malformed imports.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, click, meta, page_nodes, snapshot, text};
use replay_protocol::{Batch, encode_batch};
use replay_server::{AppState, Config, app};
use replay_store::{SqliteStorage, Storage};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";
const T0: u64 = 1_700_000_040_000;

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, body)
}

fn setup_with(config: Config) -> (axum::Router, Arc<SqliteStorage>, i64, String) {
    let storage = Arc::new(SqliteStorage::in_memory().expect("db"));
    let project = storage.create_project("p").expect("project");
    replay_server::auth::bootstrap(storage.as_ref(), Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    let router = app(AppState::new(Arc::clone(&storage) as Arc<dyn Storage>, config));
    (router, storage, project.id, project.ingest_key)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).expect("request")
}

fn import(project: i64, body: Vec<u8>) -> Request<Body> {
    Request::post(format!("/api/v1/projects/{project}/import/rrweb"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request")
}

fn recording() -> Value {
    let node = json!({ "type": 0, "id": 1, "childNodes": [
        { "type": 1, "id": 2, "name": "html", "publicId": "", "systemId": "" },
        { "type": 2, "id": 3, "tagName": "html", "attributes": {}, "childNodes": [
            { "type": 2, "id": 4, "tagName": "head", "attributes": {}, "childNodes": [] },
            { "type": 2, "id": 5, "tagName": "body", "attributes": {}, "childNodes": [
                { "type": 2, "id": 6, "tagName": "h1", "attributes": { "class": "title" }, "childNodes": [
                    { "type": 3, "id": 7, "textContent": "Cart" } ] } ] } ] } ] });
    json!([
        { "type": 4, "data": { "href": "https://shop.test/cart", "width": 1000, "height": 700 }, "timestamp": T0 },
        { "type": 2, "data": { "node": node, "initialOffset": { "left": 0, "top": 0 } }, "timestamp": T0 + 5 },
        { "type": 3, "data": { "source": 0, "texts": [], "attributes": [], "removes": [], "adds": [
            { "parentId": 5, "nextId": null, "node": { "type": 2, "id": 8, "tagName": "p", "attributes": {}, "childNodes": [] } },
            { "parentId": 8, "nextId": null, "node": { "type": 3, "id": 9, "textContent": "2 items" } } ] }, "timestamp": T0 + 900 },
        { "type": 3, "data": { "source": 2, "type": 2, "id": 6, "x": 10, "y": 10 }, "timestamp": T0 + 1000 },
        { "type": 3, "data": { "source": 9, "id": 6, "type": 0, "commands": [] }, "timestamp": T0 + 1100 },
    ])
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

async fn snapshot_html(app: &axum::Router, session: &str) -> String {
    let (status, html) = call(app, get(&format!("/api/v1/sessions/{session}/snapshot"))).await;
    assert_eq!(status, StatusCode::OK);
    String::from_utf8(html).expect("utf-8")
}

#[tokio::test]
async fn an_rrweb_recording_becomes_a_listed_replayable_session_and_exports_back() {
    let (app, storage, project, _) = setup_with(Config::default());
    let (status, body) = call(&app, import(project, bytes(&recording()))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).expect("json");
    let session = answer["session"].as_str().expect("session id").to_owned();
    assert_eq!((answer["batches"].as_u64(), answer["events_in"].as_u64()), (Some(1), Some(5)));
    assert_eq!(answer["dropped"], json!({ "canvas mutations": 1 }));

    let row = storage.session(project, &session).expect("read").expect("listed");
    assert_eq!(row.url, "https://shop.test/cart");
    assert_eq!(row.clicks, 1);
    let html = snapshot_html(&app, &session).await;
    assert_eq!(
        html,
        "<!DOCTYPE html><html><head></head><body><h1 class=\"title\">Cart</h1><p>2 items</p></body></html>"
    );

    let (status, exported) = call(&app, get(&format!("/api/v1/sessions/{session}/rrweb?project={project}"))).await;
    assert_eq!(status, StatusCode::OK);
    let events: Vec<Value> = serde_json::from_slice(&exported).expect("json array");
    assert_eq!(events[0]["type"], 4);
    assert_eq!(events[0]["data"]["href"], "https://shop.test/cart");
    assert_eq!(events[1]["type"], 2);
    assert_eq!(events[1]["timestamp"], T0 + 5);
    // The export imports again into the same document.
    let (status, body) = call(&app, import(project, exported)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let again: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(snapshot_html(&app, again["session"].as_str().expect("id")).await, html);
}

#[tokio::test]
async fn wrapped_and_gzipped_exports_import_too() {
    let (app, _, project, _) = setup_with(Config::default());
    let (status, _) = call(&app, import(project, bytes(&json!({ "events": recording() })))).await;
    assert_eq!(status, StatusCode::OK);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes(&json!({ "data": { "snapshots": recording() } }))).expect("gzip");
    let req = Request::post(format!("/api/v1/projects/{project}/import/rrweb"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json; charset=utf-8")
        .header("content-encoding", "gzip")
        .body(Body::from(gz.finish().expect("gzip")))
        .expect("request");
    let (status, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn a_session_of_ours_exports_as_rrweb_events() {
    let (app, _, project, key) = setup_with(Config::default());
    let mut b = Batch::new("ours-1", "page-1", 0, T0);
    b.flags = Batch::FLAG_PAGE_START;
    b.events = vec![
        at(0, meta("https://shop.test/")),
        at(1, snapshot(page_nodes(&[], [text(5, 4, "hello")]))),
        at(9, click(4, 2, 3)),
    ];
    b.end = T0 + 9;
    let req =
        Request::post("/api/v1/ingest").header("x-replay-key", key).body(Body::from(encode_batch(&b).expect("encode")));
    assert_eq!(call(&app, req.expect("request")).await.0, StatusCode::OK);
    let res = app.clone().oneshot(get("/api/v1/sessions/ours-1/rrweb")).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["x-replay-dropped"], "0");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let events: Vec<Value> = serde_json::from_slice(&body).expect("json");
    let types: Vec<u64> = events.iter().filter_map(|e| e["type"].as_u64()).collect();
    assert_eq!(types, vec![4, 2, 3]);
    assert_eq!(events[2]["data"], json!({ "source": 2, "type": 2, "id": 4, "x": 2, "y": 3 }));
    let body_node = &events[1]["data"]["node"]["childNodes"][0]["childNodes"][1];
    assert_eq!(body_node["childNodes"][0]["textContent"], "hello", "{body_node}");
    // Unknown sessions and hostile ids are not found; reading needs a reader.
    for path in ["/api/v1/sessions/nope/rrweb", "/api/v1/sessions/..%2F..%2Fx/rrweb"] {
        assert_eq!(call(&app, get(path)).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let anonymous = Request::get("/api/v1/sessions/ours-1/rrweb").body(Body::empty()).expect("req");
    assert_eq!(call(&app, anonymous).await.0, StatusCode::UNAUTHORIZED);
    let other_project = get(&format!("/api/v1/sessions/ours-1/rrweb?project={}", project + 1));
    assert_eq!(call(&app, other_project).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_imports_are_refused_with_reasons_and_store_nothing() {
    let mut config = Config::default();
    config.limits.max_bytes = 64 * 1024;
    let (app, storage, project, _) = setup_with(config);
    let reason = |body: &[u8]| serde_json::from_slice::<Value>(body).expect("json")["error"]["reason"].clone();

    let anonymous = Request::post(format!("/api/v1/projects/{project}/import/rrweb"))
        .header("content-type", "application/json")
        .body(Body::from(bytes(&recording())))
        .expect("req");
    assert_eq!(call(&app, anonymous).await.0, StatusCode::UNAUTHORIZED);
    let as_text = Request::post(format!("/api/v1/projects/{project}/import/rrweb"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "text/plain")
        .body(Body::from(bytes(&recording())))
        .expect("req");
    let (status, body) = call(&app, as_text).await;
    assert_eq!((status, reason(&body)), (StatusCode::UNSUPPORTED_MEDIA_TYPE, json!("not_json")));
    let (status, body) = call(&app, import(project + 7, bytes(&recording()))).await;
    assert_eq!((status, reason(&body)), (StatusCode::NOT_FOUND, json!("not_found")));

    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let mut deep_tree = String::from(r#"[{"type":2,"timestamp":1,"data":{"node":{"type":0,"id":1,"childNodes":["#);
    for i in 0..1_100 {
        deep_tree.push_str(&format!(r#"{{"type":2,"id":{},"tagName":"i","childNodes":["#, i + 2));
    }
    deep_tree.push_str(&"]}".repeat(1_100));
    deep_tree.push_str("]}}}]");
    let huge = format!("[{}]", vec![r#"{"type":0,"timestamp":1,"data":{}}"#; 3_000].join(","));
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("not JSON", b"{nope".to_vec(), StatusCode::BAD_REQUEST, "bad_recording"),
        ("not events", b"{\"a\": 1}".to_vec(), StatusCode::BAD_REQUEST, "bad_recording"),
        ("empty", Vec::new(), StatusCode::BAD_REQUEST, "empty_body"),
        (
            "no snapshot",
            b"[{\"type\":4,\"timestamp\":1,\"data\":{}}]".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_recording",
        ),
        (
            "id 0",
            bytes(
                &json!([{ "type": 2, "timestamp": T0, "data": { "node": { "type": 0, "id": 0, "childNodes": [] } } }]),
            ),
            StatusCode::BAD_REQUEST,
            "bad_recording",
        ),
        ("deep JSON", deep.into_bytes(), StatusCode::PAYLOAD_TOO_LARGE, "recording_too_large"),
        ("deep tree", deep_tree.into_bytes(), StatusCode::PAYLOAD_TOO_LARGE, "recording_too_large"),
        ("over the byte cap", huge.clone().into_bytes(), StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
    ];
    for (what, body, want_status, want_reason) in cases {
        let (status, answer) = call(&app, import(project, body)).await;
        assert_eq!((status, reason(&answer)), (want_status, json!(want_reason)), "{what}");
    }
    assert!(huge.len() > 64 * 1024);
    // Counted by reason, like ingest's refusals.
    let (_, metrics) = call(&app, get("/metrics")).await;
    let metrics = String::from_utf8(metrics).expect("utf-8");
    for reason in ["not_json", "bad_recording", "recording_too_large"] {
        let line = format!("replay_ingest_rejected_total{{reason=\"{reason}\"}} ");
        let count = metrics.lines().find_map(|l| l.strip_prefix(line.as_str())).and_then(|n| n.parse::<u64>().ok());
        assert!(count.is_some_and(|n| n >= 1), "{reason} counted: {count:?}");
    }
    assert!(storage.sessions(project, 10, 0).expect("list").is_empty(), "nothing stored");
}
