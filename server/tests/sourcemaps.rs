//! Source maps per release over HTTP: upload (admin only, capped), a session's stacks and
//! culprits read through them, and error groups keyed by original frames so that two releases
//! of the same bug, minified differently, are one group.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, meta};
use replay_protocol::{AppFact, Batch, ErrorEvent, ErrorKind, EventData, Freeze, ScriptTiming, encode_batch};
use replay_server::{AppState, Config, app};
use replay_store::{Accounts, SqliteStorage, Storage};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";
const ORIGINAL: &str = "class ProductList {\n  filter(items) {\n    if (items.length > 3) {\n      throw new Error('too many: ' + items.length);\n    }\n    return items;\n  }\n}\n\nfunction computeBestValue(items) {\n  let best = 0;\n  for (const i of items) { best = Math.max(best, i); }\n  return best;\n}\n";

/// The original minified for release `n`: a different amount of code in front each time, so
/// every minified position moves. Returns (minified, map).
fn release(n: usize) -> (String, String) {
    let pad = "var z=1;".repeat(n * 7);
    let min = format!(
        "{pad}class P{{f(a){{if(a.length>3){{throw new Error('too many: '+a.length)}}return a}}}}function c(b){{let d=0;for(const i of b){{d=Math.max(d,i)}}return d}}\n//# sourceMappingURL=app.min.js.map"
    );
    let mut b = sourcemap::SourceMapBuilder::new(Some("app.min.js"));
    let src = b.add_source("src/products.js");
    b.set_source_contents(src, Some(ORIGINAL));
    for (m, o, name) in [
        ("P{", "ProductList {", Some("ProductList")),
        ("f(a)", "filter(items)", Some("filter")),
        ("throw", "throw", None),
        ("c(b)", "computeBestValue(items)", Some("computeBestValue")),
        ("(b){", "(items) {\n  let", None),
    ] {
        let dst = min.find(m).expect("minified needle");
        let o_at = ORIGINAL.find(o).expect("original needle");
        let line = ORIGINAL[..o_at].matches('\n').count() as u32;
        let col = (o_at - ORIGINAL[..o_at].rfind('\n').map_or(0, |n| n + 1)) as u32;
        b.add(0, dst as u32, line, col, Some("src/products.js"), name, false);
    }
    let mut map = Vec::new();
    b.into_sourcemap().to_writer(&mut map).expect("map");
    (min, String::from_utf8(map).expect("utf-8"))
}

const URL: &str = "https://cdn.example/js/app.min.js";

/// A session of release `rel` whose page threw in `P.f` and froze in `c`.
fn session(id: &str, rel: &str, min: &str, start: u64) -> Batch {
    let col = min.find("throw").expect("throw") + 1;
    let stack = format!("Error: too many: 5\n    at P.f ({URL}:1:{col})\n    at https://cdn.example/js/app.min.js:1:1");
    let mut b = Batch::new(id, "page-1", 0, start);
    b.events = vec![
        at(0, meta("https://shop.test/list")),
        at(1, EventData::App(AppFact::Release(rel.to_owned()))),
        at(
            5,
            EventData::Error(ErrorEvent {
                kind: ErrorKind::Uncaught,
                message: "Uncaught Error: too many: 5".into(),
                stack,
                source: URL.into(),
                line: 1,
                column: col as u32,
                count: 1,
            }),
        ),
        at(
            9,
            EventData::Freeze(Freeze::Ended {
                duration: 2000,
                culprits: vec![ScriptTiming {
                    invoker: "BUTTON#best.onclick".into(),
                    invoker_type: "event-listener".into(),
                    source_url: URL.into(),
                    function: "c".into(),
                    char_position: min.find("(b){").expect("params") as i32,
                    duration: 2000,
                    forced_style_layout: 0,
                    pause_duration: 0,
                    line: 0,
                    column: 0,
                }],
            }),
        ),
    ];
    b.end = start + 10;
    b
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).expect("request")
}

fn put(project: i64, release: &str, url: &str, body: impl Into<Body>) -> Request<Body> {
    Request::put(format!("/api/v1/projects/{project}/sourcemaps?release={release}&url={url}"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(body.into())
        .expect("request")
}

#[tokio::test]
async fn two_releases_of_one_bug_are_one_group_once_their_maps_are_uploaded() {
    let storage = SqliteStorage::in_memory().expect("db");
    let project = storage.create_project("p").expect("project");
    replay_server::auth::bootstrap(&storage, Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    let app = app(AppState::new(Arc::new(storage), Config::default()));
    let (min1, map1) = release(1);
    let (min2, map2) = release(2);
    for b in [session("s-one", "1.0", &min1, 1_700_000_040_000), session("s-two", "2.0", &min2, 1_700_000_050_000)] {
        let req = Request::post("/api/v1/ingest")
            .header("x-replay-key", &project.ingest_key)
            .body(Body::from(encode_batch(&b).expect("encode")))
            .expect("request");
        assert_eq!(call(&app, req).await.0, StatusCode::OK);
    }
    // Without maps, the minified frames differ: two groups.
    let errors = format!("/api/v1/projects/{}/errors", project.id);
    let (_, groups) = call(&app, get(&errors)).await;
    assert_eq!(groups["groups"].as_array().map(Vec::len), Some(2), "{groups}");

    for (rel, min, map) in [("1.0", &min1, &map1), ("2.0", &min2, &map2)] {
        let (status, list) = call(&app, put(project.id, rel, URL, min.clone())).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        // The map under the any-origin form of the URL the minified file names.
        let (status, list) = call(&app, put(project.id, rel, "~/js/app.min.js.map", map.clone())).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["files"].as_array().map(Vec::len), Some(2), "{list}");
    }

    let (_, groups) = call(&app, get(&errors)).await;
    let groups = groups["groups"].as_array().cloned().unwrap_or_default();
    assert_eq!(groups.len(), 1, "one bug, one group: {groups:?}");
    assert_eq!(groups[0]["frame"], "ProductList.filter (src/products.js:4:7)");
    assert_eq!((groups[0]["count"].as_u64(), groups[0]["sessions"].as_u64()), (Some(2), Some(2)));
    assert_eq!(groups[0]["recent_sessions"][0], "s-two", "the newest session first");

    let (status, read) = call(&app, get(&format!("/api/v1/projects/{}/sessions/s-two/symbolicated", project.id))).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["release"], "2.0");
    let top = &read["stacks"][0]["frames"][0]["original"];
    assert_eq!(
        (top["function"].as_str(), top["file"].as_str(), top["line"].as_u64()),
        (Some("ProductList.filter"), Some("src/products.js"), Some(4))
    );
    assert!(
        top["context"]
            .as_array()
            .is_some_and(|c| c.iter().any(|l| l.as_str().is_some_and(|l| l.contains("throw new Error")))),
        "{top}"
    );
    let culprit = &read["scripts"][0]["original"];
    assert_eq!(
        (culprit["function"].as_str(), culprit["line"].as_u64()),
        (Some("computeBestValue"), Some(10)),
        "{read}"
    );
}

#[tokio::test]
async fn uploads_need_a_manager_of_the_project_and_a_bounded_size() {
    let storage = SqliteStorage::in_memory().expect("db");
    let project = storage.create_project("p").expect("project");
    replay_server::auth::bootstrap(&storage, Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    // Project tokens: one that manages the project (what CI uses to upload), one that reads.
    for (secret, scope) in [("rpt_manage", "manage"), ("rpt_read", "read")] {
        storage
            .create_token(&replay_store::NewToken {
                token_hash: replay_server::auth::digest(secret),
                name: secret.into(),
                user: None,
                project: Some(project.id),
                scopes: vec![scope.into()],
            })
            .expect("token");
    }
    let app = app(AppState::new(Arc::new(storage), Config::default()));
    let with_token = |secret: &str| {
        Request::put(format!("/api/v1/projects/{}/sourcemaps?release=1&url=~/js/a.js", project.id))
            .header("authorization", format!("Bearer {secret}"))
            .body(Body::from("var a;"))
            .expect("request")
    };
    let (status, body) = call(&app, with_token("rpt_read")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a read token does not upload: {body}");
    let (status, body) = call(&app, with_token("rpt_manage")).await;
    assert_eq!(status, StatusCode::OK, "a manage token does: {body}");
    assert_eq!(body["files"].as_array().map(Vec::len), Some(1), "{body}");
    let anonymous = Request::put(format!("/api/v1/projects/{}/sourcemaps?release=1&url={URL}", project.id))
        .body(Body::from("{}"))
        .expect("request");
    assert_eq!(call(&app, anonymous).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, put(project.id + 7, "1", URL, "{}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&app, put(project.id, "1", "relative/app.js", "{}")).await.0, StatusCode::BAD_REQUEST);
    let big = vec![b' '; replay_store::MAX_ARTIFACT_BYTES + 1];
    let (status, body) = call(&app, put(project.id, "1", URL, big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (_, list) = call(&app, get(&format!("/api/v1/projects/{}/sourcemaps?release=1", project.id))).await;
    assert_eq!(list["files"].as_array().map(Vec::len), Some(1), "nothing refused is stored: {list}");
}
