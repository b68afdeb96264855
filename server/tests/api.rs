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

const TOKEN: &str = "test-admin-token";

fn setup_with(config: Config) -> (axum::Router, String) {
    let storage = SqliteStorage::in_memory().expect("db");
    let key = storage.create_project("p").expect("project").ingest_key;
    replay_server::auth::bootstrap(&storage, Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    (app(AppState::new(Arc::new(storage), config)), key)
}

fn setup() -> (axum::Router, String) {
    setup_with(Config::default())
}

/// A GET as the admin.
fn get(path: &str) -> Request<Body> {
    Request::get(path).header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).expect("request")
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
    let (status, body) = call(&app, get("/api/v1/sessions")).await;
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let row = &list["sessions"][0];
    assert_eq!(row["id"], "sess-1");
    assert_eq!(row["url"], "http://shop.test/list");
    assert_eq!(row["clicks"], 1);
    assert_eq!(row["duration_ms"], 1500);

    let snapshot = |t: &str| get(&format!("/api/v1/sessions/sess-1/snapshot{t}"));
    let (_, early) = call(&app, snapshot("?t=100")).await;
    assert_eq!(String::from_utf8_lossy(&early), "<html><head></head><body>hello</body></html>");
    let (status, end) = call(&app, snapshot("")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(String::from_utf8_lossy(&end), "<html><head></head><body>hello<p class=\"late\"></p></body></html>");

    let (status, events) = call(&app, get("/api/v1/sessions/sess-1/events")).await;
    assert_eq!(status, StatusCode::OK);
    let events: serde_json::Value = serde_json::from_slice(&events).expect("json");
    assert_eq!(events["batches"].as_array().map(Vec::len), Some(2));

    let msgpack = Request::get("/api/v1/sessions/sess-1/events")
        .header("accept", "application/msgpack")
        .header("authorization", format!("Bearer {TOKEN}"))
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
        let (status, body) = call(&app, get(path)).await;
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

#[tokio::test]
async fn reading_needs_the_admin_token_or_a_login() {
    let (app, key) = setup();
    let (status, _) = call(&app, post(&key, encode_batch(&page_batches()[0]).expect("encode"))).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/api/v1/sessions", "/api/v1/sessions/sess-1/events", "/api/v1/sessions/sess-1/snapshot"] {
        let anonymous = Request::get(path).body(Body::empty()).expect("req");
        let (status, body) = call(&app, anonymous).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(String::from_utf8_lossy(&body).contains("unauthorized"));
        let ingest_key_is_not_a_read_key =
            Request::get(path).header("authorization", format!("Bearer {key}")).body(Body::empty()).expect("req");
        assert_eq!(call(&app, ingest_key_is_not_a_read_key).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
    // Viewer pages send anonymous visitors to the sign-in page.
    let res = app.clone().oneshot(Request::get("/viewer/player.html?session=x").body(Body::empty()).expect("req"));
    let res = res.await.expect("infallible");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login?next=/viewer/player.html%3Fsession%3Dx");

    // Wrong password: back to the form, no cookie.
    let form = |pw: &str| {
        Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("username=admin&password={pw}&next=%2Fviewer%2F")))
            .expect("req")
    };
    let res = app.clone().oneshot(form("nope")).await.expect("infallible");
    assert!(res.headers().get("set-cookie").is_none());
    assert!(res.headers()["location"].to_str().expect("ascii").starts_with("/login?failed=1"));
    // Right password: an HttpOnly, SameSite=Strict cookie that can read.
    let res = app.clone().oneshot(form("viewer-password")).await.expect("infallible");
    let cookie = res.headers()["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert_eq!(res.headers()["location"], "/viewer/");
    let pair = cookie.split(';').next().expect("name=value").to_owned();
    let with_cookie = Request::get("/api/v1/sessions").header("cookie", &pair).body(Body::empty()).expect("req");
    assert_eq!(call(&app, with_cookie).await.0, StatusCode::OK);
    // Signing out ends it.
    let out = Request::post("/logout").header("cookie", &pair).body(Body::empty()).expect("req");
    app.clone().oneshot(out).await.expect("infallible");
    let after = Request::get("/api/v1/sessions").header("cookie", &pair).body(Body::empty()).expect("req");
    assert_eq!(call(&app, after).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_flood_over_the_project_rate_gets_429_with_retry_after() {
    let config = Config { project_rate: replay_server::limits::Rate { per_second: 1, burst: 2 }, ..Config::default() };
    let (app, key) = setup_with(config);
    let mut statuses = Vec::new();
    for seq in 0..4 {
        let mut b = page_batches().remove(0);
        b.seq = seq;
        let res = app.clone().oneshot(post(&key, encode_batch(&b).expect("encode"))).await.expect("infallible");
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(res.headers().contains_key("retry-after"));
        }
    }
    assert_eq!(statuses[..2], [StatusCode::OK, StatusCode::OK]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn disallowed_origin_is_refused_and_stores_nothing() {
    let storage = Arc::new(SqliteStorage::in_memory().expect("db"));
    let p = storage.create_project("shop").expect("project");
    storage.set_allowed_origins(p.id, &["https://shop.example".into()]).expect("origins");
    let app = app(AppState::new(storage.clone(), Config::default()));
    let body = encode_batch(&page_batches()[0]).expect("encode");
    let from = |origin: &str| {
        Request::post("/api/v1/ingest")
            .header("x-replay-key", &p.ingest_key)
            .header("origin", origin)
            .body(Body::from(body.clone()))
            .expect("req")
    };
    let res = app.clone().oneshot(from("https://evil.example")).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://evil.example", "the recorder can read why");
    assert!(storage.sessions(p.id, 10, 0).expect("list").is_empty());
    let res = app.clone().oneshot(from("https://shop.example")).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn rapid_clicks_on_one_spot_are_indexed_as_rage_clicks() {
    let (app, key) = setup();
    let click = |t: u32, x: i32| Event { t, data: EventData::Click(Click { id: 9, x, y: 40, button: 0 }) };
    let mut angry = Batch::new("angry", "p", 0, 1_800_000_000_000);
    // Five clicks 150 ms apart on the "Pay" button, then one deliberate click much later.
    angry.events =
        vec![click(0, 100), click(150, 102), click(300, 99), click(450, 101), click(600, 100), click(9_000, 300)];
    let mut calm = Batch::new("calm", "p", 0, 1_800_000_100_000);
    // A triple click (selecting a paragraph) is not rage.
    calm.events = vec![click(0, 10), click(120, 10), click(240, 10)];
    for b in [angry, calm] {
        let (status, body) = call(&app, post(&key, encode_batch(&b).expect("encode"))).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    let (_, body) = call(&app, get("/api/v1/sessions?has_rage_click=true")).await;
    let list: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let ids: Vec<&str> = list["sessions"].as_array().expect("list").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, vec!["angry"]);
    assert_eq!(
        (list["sessions"][0]["rage_clicks"].as_u64(), list["sessions"][0]["clicks"].as_u64()),
        (Some(1), Some(6))
    );
}

#[tokio::test]
async fn a_session_environment_is_compared_with_the_other_sessions() {
    let (app, key) = setup();
    let env = |browser: &str, version: &str, language: &str| replay_protocol::Environment {
        browser: browser.into(),
        browser_version: version.into(),
        os: "Windows".into(),
        device_pixel_ratio: 1.0,
        device_memory: 8.0,
        cpu_cores: 8,
        connection: "4g".into(),
        language: language.into(),
        timezone: "Europe/Paris".into(),
    };
    let sessions = [
        ("a", env("Chrome", "156.0.1", "fr-FR")),
        ("b", env("Chrome", "156.0.2", "fr-FR")),
        ("c", env("Chrome", "155.0.9", "fr-FR")),
        ("odd", env("Firefox", "140.0", "fi-FI")),
    ];
    for (i, (id, e)) in sessions.into_iter().enumerate() {
        let mut b = Batch::new(id, "p", 0, 1_800_000_000_000 + i as u64 * 1000);
        b.events.push(Event { t: 0, data: EventData::Environment(e) });
        b.events.push(Event {
            t: 1,
            data: EventData::App(replay_protocol::AppFact::Flags(r#"{"newCheckout":true}"#.into())),
        });
        let (status, body) = call(&app, post(&key, encode_batch(&b).expect("encode"))).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    let (status, body) = call(&app, get("/api/v1/sessions/odd/environment")).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let fact = |name: &str| v["facts"].as_array().and_then(|f| f.iter().find(|x| x["name"] == name)).cloned();
    let browser = fact("browser").expect("browser fact");
    assert_eq!(
        (browser["value"].as_str(), browser["same"].as_u64(), browser["total"].as_u64()),
        (Some("Firefox 140"), Some(1), Some(4))
    );
    assert_eq!(browser["common"][0]["value"], "Chrome 156", "major versions are compared");
    assert_eq!(browser["common"][0]["sessions"], 2);
    let os = fact("os").expect("os fact");
    assert_eq!((os["same"].as_u64(), os["total"].as_u64()), (Some(4), Some(4)));
    assert_eq!(fact("flag newCheckout").expect("flag")["value"], "true");
    assert_eq!(fact("language").expect("language")["value"], "fi-FI");
    let (status, _) =
        call(&app, Request::get("/api/v1/sessions/odd/environment").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "reads need credentials");
}
