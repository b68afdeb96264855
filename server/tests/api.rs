//! The HTTP application driven without sockets (`tower::ServiceExt::oneshot`) over in-memory
//! storage: ingest, the session index, events and the snapshot at time t.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, click, el, meta, page_nodes, snapshot, text};
use replay_protocol::{AddedSubtree, Batch, Event, EventData, Mutation, encode_batch};
use replay_server::{AppState, Config, app};
use replay_store::{SqliteStorage, Storage};
use tower::ServiceExt;

fn page_batches() -> Vec<Batch> {
    let mut first = Batch::new("sess-1", "page-1", 0, 10_000);
    first.events = vec![at(0, meta("http://shop.test/list")), at(0, snapshot(page_nodes(&[], [text(5, 4, "hello")])))];
    first.end = 10_000;
    let mut second = Batch::new("sess-1", "page-1", 1, 11_000);
    second.events = vec![
        at(0, click(4, 1, 1)),
        at(
            500,
            EventData::Mutation(Mutation {
                adds: vec![AddedSubtree { parent: 4, next: 0, nodes: vec![el(6, 4, "p", &[("class", "late")])] }],
                ..Mutation::default()
            }),
        ),
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

/// Opens the sign-in page like a browser: its form cookie (`name=value`) and the token the form
/// carries.
async fn sign_in_form(app: &axum::Router, headers: &[(&str, &str)]) -> (String, String) {
    let mut req = Request::get("/login");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app.clone().oneshot(req.body(Body::empty()).expect("req")).await.expect("infallible");
    let cookie = res.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let body = String::from_utf8(res.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8");
    const FIELD: &str = "name=\"form_token\" value=\"";
    let at = body.find(FIELD).expect("the form has a token") + FIELD.len();
    let token = body[at..].split('"').next().expect("value").to_owned();
    (cookie, token)
}

/// A sign-in POST with the form's cookie and token.
fn login_request(form_cookie: &str, token: &str, fields: &str) -> Request<Body> {
    Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", form_cookie)
        .body(Body::from(format!("{fields}&form_token={token}")))
        .expect("req")
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
async fn a_freeze_marker_numbered_like_a_real_batch_never_costs_the_real_batch() {
    let (app, key) = setup();
    let [first, second] = <[Batch; 2]>::try_from(page_batches()).expect("two batches");
    // The worker's marker took the number of the page's next real batch (the page had not
    // reserved it): sent before it, and again (by the page) after it.
    let mut marker = Batch::new("sess-1", "page-1", 1, 10_800);
    let started = replay_protocol::Freeze::Started { url: "http://shop.test/list".into(), last_action: "click".into() };
    marker.events = vec![at(0, EventData::Freeze(started))];
    let ack = |body: &[u8]| -> bool {
        let ack: serde_json::Value = serde_json::from_slice(body).expect("json");
        ack["duplicate"].as_bool().expect("duplicate")
    };
    for (b, duplicate) in [(&first, false), (&marker, false), (&second, false), (&marker, true), (&second, true)] {
        let (status, body) = call(&app, post(&key, encode_batch(b).expect("encode"))).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert_eq!(ack(&body), duplicate, "seq {} ({} events)", b.seq, b.events.len());
    }
    let (_, body) = call(&app, get("/api/v1/sessions/sess-1")).await;
    let row: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!((row["batches"].as_u64(), row["clicks"].as_u64(), row["freezes"].as_u64()), (Some(3), Some(1), Some(1)));
    // The real batch's mutation is replayed; the freeze is shown before it.
    let (_, end) = call(&app, get("/api/v1/sessions/sess-1/snapshot")).await;
    assert_eq!(String::from_utf8_lossy(&end), "<html><head></head><body>hello<p class=\"late\"></p></body></html>");
    let msgpack = Request::get("/api/v1/sessions/sess-1/events")
        .header("accept", "application/msgpack")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("req");
    let (_, bytes) = call(&app, msgpack).await;
    let batches = replay_protocol::codec::decode_batches(&bytes, &replay_protocol::Limits::default(), usize::MAX)
        .expect("decodes");
    let order: Vec<(u32, bool)> = batches.iter().map(|b| (b.seq, b.is_freeze_marker())).collect();
    assert_eq!(order, [(0, false), (1, true), (1, false)]);
}

#[tokio::test]
async fn json_events_read_with_descriptive_names_not_wire_letters() {
    let (app, key) = setup();
    for b in page_batches() {
        assert_eq!(call(&app, post(&key, encode_batch(&b).expect("encode"))).await.0, StatusCode::OK);
    }
    let (status, body) = call(&app, get("/api/v1/projects/1/sessions/sess-1/events")).await;
    assert_eq!(status, StatusCode::OK);
    let events: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let first = &events["batches"][0]["events"];
    assert_eq!(first[0]["data"]["page"]["url"], "http://shop.test/list");
    assert_eq!(first[1]["offset_ms"], 0);
    assert_eq!(first[1]["data"]["full_snapshot"]["nodes"][0]["kind"], "document");
    assert_eq!(first[1]["data"]["full_snapshot"]["nodes"][1]["kind"]["element"]["ns"], "html");
    let second = &events["batches"][1]["events"];
    assert_eq!(second[0]["data"]["click"]["id"], 4);
    assert_eq!(second[1]["offset_ms"], 500);
    assert_eq!(second[1]["data"]["mutations"]["adds"][0]["nodes"][0]["kind"]["element"]["tag"], "p");
    // No one-letter tag is left anywhere: every object key is a word.
    let mut stack = vec![&events];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    assert!(k.len() > 2 || k == "id" || k == "ns" || k == "x" || k == "y", "a wire tag {k:?} in {v}");
                    stack.push(v);
                }
            }
            serde_json::Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    // MessagePack keeps the wire form, byte for byte as stored.
    let msgpack = Request::get("/api/v1/projects/1/sessions/sess-1/events")
        .header("accept", "application/msgpack")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("req");
    let (_, bytes) = call(&app, msgpack).await;
    let stored: Vec<Vec<u8>> = page_batches().iter().map(|b| encode_batch(b).expect("encode")).collect();
    let concatenated = replay_protocol::codec::concat_encoded(stored.iter().map(Vec::as_slice));
    assert_eq!(bytes, concatenated);
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
    let (form_cookie, token) = sign_in_form(&app, &[]).await;
    let form =
        |pw: &str| login_request(&form_cookie, &token, &format!("username=admin&password={pw}&next=%2Fviewer%2F"));
    let res = app.clone().oneshot(form("nope")).await.expect("infallible");
    assert!(res.headers().get("set-cookie").is_none());
    assert!(res.headers()["location"].to_str().expect("ascii").starts_with("/login?failed=1"));
    // Right password: an HttpOnly, SameSite=Strict cookie that can read.
    let res = app.clone().oneshot(form("viewer-password")).await.expect("infallible");
    let cookie = res.headers()["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert_eq!(res.headers()["location"], "/viewer/");
    // A crafted link cannot send a fresh sign-in to another site (browsers drop the tab of
    // `/\t/evil.example` and follow `//evil.example`).
    for next in ["%2F%09%2Fevil.example", "%2F%5Cevil.example", "https%3A%2F%2Fevil.example", "%2F%0A%2Fevil.example"] {
        let crafted =
            login_request(&form_cookie, &token, &format!("username=admin&password=viewer-password&next={next}"));
        let res = app.clone().oneshot(crafted).await.expect("infallible");
        assert_eq!(res.headers()["location"], "/viewer/", "next={next}");
    }
    let pair = cookie.split(';').next().expect("name=value").to_owned();
    let with_cookie = Request::get("/api/v1/sessions").header("cookie", &pair).body(Body::empty()).expect("req");
    assert_eq!(call(&app, with_cookie).await.0, StatusCode::OK);
    // Signing out ends it (with the token the signed-in pages' sign-out form carries).
    let list = Request::get("/viewer/p/1/").header("cookie", &pair).body(Body::empty()).expect("req");
    let (_, list) = call(&app, list).await;
    let list = String::from_utf8(list).expect("utf-8");
    const FIELD: &str = "name=\"form_token\" value=\"";
    let at = list.find(FIELD).expect("a sign-out form") + FIELD.len();
    let out_token = list[at..].split('"').next().expect("value").to_owned();
    let out = Request::post("/logout")
        .header("cookie", &pair)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("form_token={out_token}")))
        .expect("req");
    assert_eq!(call(&app, out).await.0, StatusCode::SEE_OTHER);
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
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let trusted = replay_server::client::parse_trusted(&["10.0.0.0/8".into()]).expect("valid");
    let config = Config {
        client_rate: replay_server::limits::Rate { per_second: 1, burst: 2 },
        trusted_proxies: trusted,
        ..Config::default()
    };
    let (app, key) = setup_with(config);
    let via = |peer: [u8; 4], forwarded: &str, seq: u32| {
        let mut b = page_batches().remove(0);
        b.seq = seq;
        let mut req = post(&key, encode_batch(&b).expect("encode"));
        req.headers_mut().insert("x-forwarded-for", forwarded.parse().expect("header"));
        req.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((peer, 40_000))));
        req
    };
    let balancer = [10, 0, 0, 1];
    let mut seq = 0;
    let mut send = async |peer, forwarded: &str| {
        seq += 1;
        call(&app, via(peer, forwarded, seq)).await.0
    };
    // Two clients behind the balancer: each has its own bucket.
    assert_eq!(send(balancer, "203.0.113.1").await, StatusCode::OK);
    assert_eq!(send(balancer, "203.0.113.1").await, StatusCode::OK);
    assert_eq!(send(balancer, "203.0.113.1").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(send(balancer, "203.0.113.2, 10.0.0.7").await, StatusCode::OK, "another client is not limited");
    // A visitor's own X-Forwarded-For is not believed: its requests count as its own address.
    let visitor = [198, 51, 100, 3];
    assert_eq!(send(visitor, "203.0.113.50").await, StatusCode::OK);
    assert_eq!(send(visitor, "203.0.113.51").await, StatusCode::OK);
    assert_eq!(send(visitor, "203.0.113.52").await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn made_up_keys_are_rate_limited_per_client_before_any_lookup() {
    let config = Config { client_rate: replay_server::limits::Rate { per_second: 1, burst: 3 }, ..Config::default() };
    let (app, key) = setup_with(config);
    let from = |ip: [u8; 4], key: &str| {
        let mut req = post(key, encode_batch(&page_batches().remove(0)).expect("encode"));
        req.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((ip, 40_000))));
        req
    };
    let attacker = [203, 0, 113, 9];
    let mut answers = Vec::new();
    for i in 0..6 {
        let (status, body) = call(&app, from(attacker, &format!("made-up-key-{}", i % 2))).await;
        answers.push((status, String::from_utf8_lossy(&body).contains("rate_limited")));
    }
    assert_eq!(answers[..3], [(StatusCode::UNAUTHORIZED, false); 3], "unknown keys are refused");
    assert_eq!(answers[3..], [(StatusCode::TOO_MANY_REQUESTS, true); 3], "then the client is limited: {answers:?}");
    // Nobody else is affected, and a real key from a fresh client goes through.
    assert_eq!(call(&app, from([198, 51, 100, 7], &key)).await.0, StatusCode::OK);
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
    // Without an Origin (anyone can send that): refused too, unless the server accepts them.
    let originless =
        || Request::post("/api/v1/ingest").header("x-replay-key", &p.ingest_key).body(Body::from(body.clone()));
    let res = app.clone().oneshot(originless().expect("req")).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app.clone().oneshot(from("https://shop.example")).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    let lenient = app_with(storage.clone(), Config { accept_originless_ingest: true, ..Config::default() });
    let mut second = page_batches().remove(1);
    second.seq = 7;
    let req = Request::post("/api/v1/ingest")
        .header("x-replay-key", &p.ingest_key)
        .body(Body::from(encode_batch(&second).expect("encode")));
    assert_eq!(lenient.oneshot(req.expect("req")).await.expect("infallible").status(), StatusCode::OK);
}

fn app_with(storage: Arc<SqliteStorage>, config: Config) -> axum::Router {
    app(AppState::new(storage, config))
}

#[tokio::test]
async fn rapid_clicks_on_one_spot_are_indexed_as_rage_clicks() {
    let (app, key) = setup();
    let on_pay = |t: u32, x: i32| at(t, click(9, x, 40));
    let mut angry = Batch::new("angry", "p", 0, 1_700_000_040_000);
    // Five clicks 150 ms apart on the "Pay" button, then one deliberate click much later.
    angry.events =
        vec![on_pay(0, 100), on_pay(150, 102), on_pay(300, 99), on_pay(450, 101), on_pay(600, 100), on_pay(9_000, 300)];
    let mut calm = Batch::new("calm", "p", 0, 1_700_000_140_000);
    // A triple click (selecting a paragraph) is not rage.
    calm.events = vec![on_pay(0, 10), on_pay(120, 10), on_pay(240, 10)];
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
        let mut b = Batch::new(id, "p", 0, 1_700_000_040_000 + i as u64 * 1000);
        b.events.push(at(0, EventData::Environment(e)));
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

/// A response's status, one header and body, for requests whose headers matter.
async fn call_with_header(
    app: &axum::Router,
    req: Request<Body>,
    header: &str,
) -> (StatusCode, Option<String>, String) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let value = res.headers().get(header).map(|v| v.to_str().expect("ascii header").to_owned());
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, value, String::from_utf8_lossy(&body).into_owned())
}

// The policies written out in full: a weakened policy must fail here, not slip through review.
const PLAYER_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src * 'unsafe-inline'; img-src * data: blob:; font-src * data:; media-src * data: blob:; \
     connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'self'";
const PLAYER_BLOCKING_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; \
     connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'self'";
const LIST_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'";
const EXPORT_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline' data: 'wasm-unsafe-eval'; \
     style-src * 'unsafe-inline'; img-src * data: blob:; font-src * data:; media-src * data: blob:; \
     base-uri 'none'; form-action 'none'";

#[tokio::test]
async fn viewer_pages_send_no_referrer() {
    let (app, _) = setup();
    for (path, expected) in
        [("/viewer/p/1/", "no-referrer"), ("/viewer/p/1/errors", "no-referrer"), ("/login", "same-origin")]
    {
        let (status, policy, _) = call_with_header(&app, get(path), "referrer-policy").await;
        assert_eq!((status, policy.as_deref()), (StatusCode::OK, Some(expected)), "{path}");
    }
}

#[tokio::test]
async fn viewer_pages_send_their_exact_content_security_policy() {
    let (app, key) = setup();
    for b in page_batches() {
        assert_eq!(call(&app, post(&key, encode_batch(&b).expect("encode"))).await.0, StatusCode::OK);
    }
    let csp = |path: &str| {
        let app = app.clone();
        let path = path.to_owned();
        async move {
            let (status, policy, body) = call_with_header(&app, get(&path), "content-security-policy").await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            (policy.unwrap_or_else(|| panic!("{path} sends no content-security-policy")), body)
        }
    };
    assert_eq!(csp("/viewer/p/1/player.html?session=sess-1").await.0, PLAYER_POLICY);
    assert_eq!(csp("/viewer/p/1/player.html?session=sess-1&block=0").await.0, PLAYER_POLICY);
    assert_eq!(csp("/viewer/p/1/player.html?session=sess-1&block=1").await.0, PLAYER_BLOCKING_POLICY);
    assert_eq!(csp("/viewer/p/1/").await.0, LIST_POLICY);
    assert_eq!(csp("/viewer/p/1/?environment=production&page=2").await.0, LIST_POLICY);
    assert!(
        replay_server::assets::has_web_build(),
        "the export embeds the viewer's wasm: run `cargo xtask build-web` (or `cargo xtask test`) first"
    );
    let (policy, html) = csp("/viewer/p/1/export/sess-1").await;
    assert_eq!(policy, EXPORT_POLICY);
    // Opened from disk the file has no headers: the same policy travels in the file itself.
    assert!(
        html.contains(&format!("<meta http-equiv=\"Content-Security-Policy\" content=\"{EXPORT_POLICY}\">")),
        "the exported file carries its policy in a meta element"
    );
}

#[tokio::test]
async fn anonymous_visitors_are_sent_to_sign_in_and_cannot_export() {
    let (app, key) = setup();
    assert_eq!(call(&app, post(&key, encode_batch(&page_batches()[0]).expect("encode"))).await.0, StatusCode::OK);
    let anonymous = |path: &str| Request::get(path).body(Body::empty()).expect("req");
    for (path, next) in [
        ("/viewer/", "/login?next=/viewer/"),
        ("/viewer/?user=ada&page=2", "/login?next=/viewer/%3Fuser%3Dada%26page%3D2"),
    ] {
        let (status, location, body) = call_with_header(&app, anonymous(path), "location").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location.as_deref(), Some(next), "{path}");
        assert!(!body.contains("sess-1"), "{path}: the redirect lists no session");
    }
    // The export is a download, not a page: no redirect, a refusal, and no recording in it.
    for request in [
        anonymous("/viewer/p/1/export/sess-1"),
        Request::get("/viewer/p/1/export/sess-1")
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .expect("req"),
        Request::get("/viewer/p/1/export/sess-1")
            .header("cookie", format!("{}=forged", replay_server::auth::COOKIE))
            .body(Body::empty())
            .expect("req"),
    ] {
        let (status, disposition, body) = call_with_header(&app, request, "content-disposition").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(disposition, None, "nothing to download");
        assert!(body.contains("unauthorized") && !body.contains("replay-session"), "{body}");
    }
    // Signed in, the list answers.
    let (form_cookie, token) = sign_in_form(&app, &[]).await;
    let login = login_request(&form_cookie, &token, "username=admin&password=viewer-password&next=%2Fviewer%2F");
    let res = app.clone().oneshot(login).await.expect("infallible");
    let cookie = res.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let signed_in = Request::get("/viewer/p/1/").header("cookie", &cookie).body(Body::empty()).expect("req");
    let (status, _, body) = call_with_header(&app, signed_in, "location").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("data-session=\"sess-1\""), "the signed-in list shows the session");
}

/// Session ids of the list's rows, top to bottom.
fn listed(html: &str) -> Vec<String> {
    html.split("data-session=\"").skip(1).filter_map(|s| s.split('"').next()).map(str::to_owned).collect()
}

/// The `href` of the pager link with `id` ("next", "prev"), unescaped.
fn pager_link(html: &str, id: &str) -> Option<String> {
    let start = format!("id=\"{id}\" href=\"");
    let rest = &html[html.find(&start)? + start.len()..];
    Some(rest[..rest.find('"')?].replace("&amp;", "&"))
}

/// The text of each cell of the row of `session` (tags dropped, entities of maud's escaping undone).
fn cells(html: &str, session: &str) -> Vec<String> {
    let row_at = html.find(&format!("data-session=\"{session}\"")).expect("row of the session");
    let row = &html[row_at..html[row_at..].find("</tr>").map_or(html.len(), |e| row_at + e)];
    row.split("<td")
        .skip(1)
        .map(|cell| {
            let inner = &cell[cell.find('>').map_or(0, |i| i + 1)..cell.find("</td>").unwrap_or(cell.len())];
            let mut text = String::new();
            let mut in_tag = false;
            for c in inner.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            text.replace("&amp;", "&").trim().to_owned()
        })
        .collect()
}

/// A minute-aligned time (2023-11-14 22:14 UTC) the list tests count from: in the past, as
/// ingest clamps times in the future to the receive time.
const LIST_BASE_MS: u64 = 1_700_000_040_000;

/// One page view that starts at `start`, in `environment`.
fn list_session(id: &str, start: u64, environment: &str) -> Batch {
    let mut b = Batch::new(id, "p", 0, start);
    b.flags = Batch::FLAG_PAGE_START;
    b.events = vec![
        at(0, meta("http://shop.test/list")),
        at(0, EventData::App(replay_protocol::AppFact::Environment(environment.into()))),
    ];
    b.end = start + 1_000;
    b
}

#[tokio::test]
async fn the_session_list_pages_through_a_filter_without_losing_it_or_repeating_rows() {
    let (app, key) = setup();
    let page_size = replay_server::pages::PAGE_SIZE;
    let minute = 60_000;
    // Production sessions a minute apart, staging ones in between (the filter must skip them).
    let production = page_size + 20;
    for i in 0..production {
        let b = list_session(&format!("prod-{i:03}"), LIST_BASE_MS + i as u64 * minute, "production");
        assert_eq!(call(&app, post(&key, encode_batch(&b).expect("encode"))).await.0, StatusCode::OK);
    }
    for i in 0..5 {
        let b = list_session(&format!("stage-{i}"), LIST_BASE_MS + i as u64 * 10 * minute + 30_000, "staging");
        assert_eq!(call(&app, post(&key, encode_batch(&b).expect("encode"))).await.0, StatusCode::OK);
    }
    let page = |path: String| {
        let app = app.clone();
        async move {
            let (status, body) = call(&app, get(&path)).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            String::from_utf8(body).expect("utf-8 page")
        }
    };

    // Environment and an exclusive `to`: sessions that started before minute `cut`.
    let cut = page_size + 5;
    let to = "2023-11-14T23:09";
    assert_eq!(cut, 55, "`to` above is minute 55 of LIST_BASE_MS");
    let first = page(format!("/viewer/p/1/?environment=production&to={to}")).await;
    let first_ids = listed(&first);
    let newest_first: Vec<String> = (0..cut).rev().map(|i| format!("prod-{i:03}")).collect();
    assert_eq!(first_ids, newest_first[..page_size], "a full first page, newest first");
    assert!(pager_link(&first, "prev").is_none(), "the first page has no newer page");
    let next = pager_link(&first, "next").expect("a link to the older sessions");
    assert_eq!(next, "?to=2023-11-14T23%3A09&environment=production&page=2", "the filters survive paging");

    let second = page(format!("/viewer/p/1/{next}")).await;
    let second_ids = listed(&second);
    assert_eq!(second_ids, newest_first[page_size..], "the rest, and nothing the first page showed");
    assert!(pager_link(&second, "next").is_none(), "the last page links no further");
    assert_eq!(pager_link(&second, "prev").as_deref(), Some("?to=2023-11-14T23%3A09&environment=production&page=1"));
    assert!(
        second.contains("value=\"production\"") && second.contains("value=\"2023-11-14T23:09\""),
        "the form keeps the filter"
    );

    // A positive environment filter lists exactly that environment.
    let staging = page("/viewer/p/1/?environment=staging".into()).await;
    assert_eq!(listed(&staging), ["stage-4", "stage-3", "stage-2", "stage-1", "stage-0"]);
    assert!(pager_link(&staging, "next").is_none());
    // `to` alone: everything that started before minute 10, both environments.
    let early = page("/viewer/p/1/?to=2023-11-14T22:24".into()).await;
    let mut expected: Vec<String> = (1..10).rev().map(|i| format!("prod-{i:03}")).collect();
    expected.extend(["stage-0".to_owned(), "prod-000".to_owned()]);
    assert_eq!(listed(&early), expected);
}

#[tokio::test]
async fn a_session_row_shows_start_duration_pages_user_errors_and_freezes() {
    let (app, key) = setup();
    let error = |count: u32| replay_protocol::ErrorEvent {
        kind: replay_protocol::ErrorKind::Uncaught,
        message: "TypeError: x is undefined".into(),
        stack: String::new(),
        source: "http://shop.test/app.js".into(),
        line: 1,
        column: 2,
        count,
    };
    let mut first = Batch::new("row", "page-a", 0, LIST_BASE_MS);
    first.flags = Batch::FLAG_PAGE_START;
    first.events = vec![
        at(0, meta("http://shop.test/cart")),
        Event {
            t: 10,
            data: EventData::App(replay_protocol::AppFact::Identify {
                user: "ada@example.com".into(),
                traits: "{}".into(),
            }),
        },
        at(2_000, EventData::Error(error(1))),
        at(3_000, click(4, 1, 1)),
        Event {
            t: 4_000,
            data: EventData::Freeze(replay_protocol::Freeze::Started {
                url: "http://shop.test/cart".into(),
                last_action: "click".into(),
            }),
        },
        Event {
            t: 6_300,
            data: EventData::Freeze(replay_protocol::Freeze::Ended { duration: 2_300, culprits: vec![] }),
        },
    ];
    first.end = LIST_BASE_MS + 60_000;
    let mut second = Batch::new("row", "page-b", 0, LIST_BASE_MS + 60_000);
    second.flags = Batch::FLAG_PAGE_START;
    second.events = vec![at(0, meta("http://shop.test/pay")), at(1_000, EventData::Error(error(2)))];
    second.end = LIST_BASE_MS + 125_000;
    for b in [first, second] {
        let (status, body) = call(&app, post(&key, encode_batch(&b).expect("encode"))).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    let (status, body) = call(&app, get("/viewer/p/1/")).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8(body).expect("utf-8");
    let row = cells(&html, "row");
    let headers: Vec<&str> = vec![
        "Started (UTC)",
        "Duration",
        "Page",
        "Pages",
        "User",
        "Browser",
        "Clicks",
        "Errors",
        "Freezes",
        "Longest freeze",
        "Dropped",
    ];
    assert!(html.contains(&headers.iter().map(|h| format!("<th>{h}</th>")).collect::<String>()), "column order");
    let shown: Vec<(&str, &str)> = headers.iter().copied().zip(row.iter().map(String::as_str)).collect();
    assert_eq!(
        shown,
        vec![
            ("Started (UTC)", "2023-11-14 22:14:00"),
            ("Duration", "2m 05s"),
            ("Page", "http://shop.test/cart"),
            ("Pages", "2"),
            ("User", "ada@example.com"),
            ("Browser", "Other"),
            ("Clicks", "1"),
            ("Errors", "3"),
            ("Freezes", "1"),
            ("Longest freeze", "2.3 s"),
            ("Dropped", "0"),
        ]
    );
    assert!(html.contains("href=\"player.html?session=row\""), "the start links to the player");
}

#[tokio::test]
async fn sign_in_and_sign_out_need_the_token_of_this_servers_forms() {
    let (app, _) = setup();
    let fields = "username=admin&password=viewer-password&next=%2Fviewer%2F";
    // Another site can make a browser post the sign-in form (signing the visitor in to an
    // account it controls), but cannot read the form cookie to copy its token.
    let (form_cookie, token) = sign_in_form(&app, &[]).await;
    assert!(form_cookie.starts_with("replay_form=") && token.len() == 64, "{form_cookie}");
    for (cookie, given) in [
        (None, None),
        (None, Some(token.as_str())),
        (Some(form_cookie.as_str()), None),
        (Some(form_cookie.as_str()), Some("0000")),
    ] {
        let mut req = Request::post("/login").header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let body = match given {
            Some(t) => format!("{fields}&form_token={t}"),
            None => fields.to_owned(),
        };
        let res = app.clone().oneshot(req.body(Body::from(body)).expect("req")).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert!(res.headers().get("set-cookie").is_none(), "no sign-in without the token ({cookie:?}, {given:?})");
        assert_eq!(res.headers()["location"], "/login?expired=1&next=/viewer/");
    }
    // A second visit keeps the browser's token, so two open sign-in tabs both work.
    let (again, token_again) = sign_in_form(&app, &[("cookie", &form_cookie)]).await;
    assert_eq!((again.as_str(), token_again.as_str()), (form_cookie.as_str(), token.as_str()));
    let res = app.clone().oneshot(login_request(&form_cookie, &token, fields)).await.expect("infallible");
    let login = res.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let can_read = |app: axum::Router, cookie: String| async move {
        let req = Request::get("/api/v1/sessions").header("cookie", cookie).body(Body::empty()).expect("req");
        call(&app, req).await.0 == StatusCode::OK
    };
    assert!(can_read(app.clone(), login.clone()).await);
    // A forced sign-out (no token, or another login's token) is refused and ends nothing.
    for body in ["", "form_token=", "form_token=0123456789abcdef"] {
        let out = Request::post("/logout")
            .header("cookie", &login)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("req");
        let (status, answer) = call(&app, out).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body:?}");
        assert!(String::from_utf8_lossy(&answer).contains("bad_form_token"));
    }
    assert!(can_read(app.clone(), login.clone()).await, "the refused sign-outs ended nothing");
    let (status, metrics) = call(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(metrics).expect("utf-8");
    assert!(metrics.contains(r#"reason="bad_form_token"} 7"#), "four sign-ins and three sign-outs counted: {metrics}");
}

#[tokio::test]
async fn over_https_cookies_are_secure_and_host_prefixed() {
    let config = Config { secure_cookies: true, ..Config::default() };
    let (app, _) = setup_with(config);
    let (form_cookie, token) = sign_in_form(&app, &[]).await;
    assert!(form_cookie.starts_with("__Host-replay_form="), "{form_cookie}");
    let res = app
        .clone()
        .oneshot(login_request(&form_cookie, &token, "username=admin&password=viewer-password"))
        .await
        .expect("infallible");
    let set = res.headers()["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(set.starts_with("__Host-replay_login=") && set.contains("; Secure") && set.contains("Path=/"), "{set}");
    assert!(!set.contains("Domain"), "{set}");
    let value = set.split(';').next().and_then(|p| p.split_once('=')).map(|(_, v)| v.to_owned()).expect("value");
    let read = |cookie: String| {
        let app = app.clone();
        async move {
            let req = Request::get("/api/v1/sessions").header("cookie", cookie).body(Body::empty()).expect("req");
            call(&app, req).await.0
        }
    };
    assert_eq!(read(format!("__Host-replay_login={value}")).await, StatusCode::OK);
    // A plain-named cookie (which a sibling host or a plain-HTTP page could plant) is ignored.
    assert_eq!(read(format!("replay_login={value}")).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_session_past_its_byte_cap_is_refused_counted_and_keeps_its_batches() {
    let batches: Vec<Vec<u8>> = page_batches().iter().map(|b| encode_batch(b).expect("encode")).collect();
    let config = Config { max_session_bytes: Some(batches[0].len() as u64 + 1), ..Config::default() };
    let (app, key) = setup_with(config);
    assert_eq!(call(&app, post(&key, batches[0].clone())).await.0, StatusCode::OK);
    let (status, body) = call(&app, post(&key, batches[1].clone())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{}", String::from_utf8_lossy(&body));
    let error: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(error["error"]["reason"], "session_full");
    let (status, body) = call(&app, post(&key, batches[0].clone())).await;
    assert_eq!(status, StatusCode::OK, "a resend of a stored batch is still acknowledged");
    assert!(String::from_utf8_lossy(&body).contains("\"duplicate\":true"));
    let (_, metrics) = call(&app, get("/metrics")).await;
    assert!(String::from_utf8_lossy(&metrics).contains("replay_ingest_rejected_total{reason=\"session_full\"} 1"));
    let (status, events) = call(&app, get("/api/v1/sessions/sess-1/events")).await;
    assert_eq!(status, StatusCode::OK);
    let events: serde_json::Value = serde_json::from_slice(&events).expect("json");
    assert_eq!(events["batches"].as_array().map(Vec::len), Some(1), "the session keeps what it had");
}

#[tokio::test]
async fn the_snapshot_at_a_time_counts_from_the_first_event_not_the_first_batch_start() {
    let (app, key) = setup();
    // The first event comes 200 ms after its batch starts; t=100 is 10 300, after the second
    // batch's mutation at 10 250.
    let mut first = Batch::new("late", "page-1", 0, 10_000);
    first.events = vec![at(200, meta("http://shop.test/")), at(200, snapshot(page_nodes(&[], [text(5, 4, "hi")])))];
    first.end = 10_200;
    let mut second = Batch::new("late", "page-1", 1, 10_250);
    second.events = vec![at(
        0,
        EventData::Mutation(Mutation {
            adds: vec![AddedSubtree { parent: 4, next: 0, nodes: vec![el(6, 4, "p", &[])] }],
            ..Mutation::default()
        }),
    )];
    second.end = 10_250;
    let mut third = Batch::new("late", "page-1", 2, 50_000);
    third.events = vec![at(0, EventData::Mutation(Mutation { removes: vec![6], ..Mutation::default() }))];
    third.end = 50_000;
    for b in [&first, &second, &third] {
        assert_eq!(call(&app, post(&key, encode_batch(b).expect("encode"))).await.0, StatusCode::OK);
    }
    let (status, html) = call(&app, get("/api/v1/sessions/late/snapshot?t=100")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(String::from_utf8_lossy(&html), "<html><head></head><body>hi<p></p></body></html>");
    let (_, html) = call(&app, get("/api/v1/sessions/late/snapshot")).await;
    assert_eq!(String::from_utf8_lossy(&html), "<html><head></head><body>hi</body></html>");
}

#[tokio::test]
async fn daily_quotas_refuse_new_sessions_and_bytes_with_retry_after_and_are_counted() {
    let batches = page_batches();
    let encoded: Vec<Vec<u8>> = batches.iter().map(|b| encode_batch(b).expect("encode")).collect();
    let config = Config { quota_sessions_per_day: Some(1), ..Config::default() };
    let (app, key) = setup_with(config);
    assert_eq!(call(&app, post(&key, encoded[0].clone())).await.0, StatusCode::OK);
    let mut other = batches[0].clone();
    other.session = "sess-2".into();
    let res = app.clone().oneshot(post(&key, encode_batch(&other).expect("encode"))).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=86_400).contains(&retry), "until the next UTC day: {retry}");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\"quota_exceeded\""));
    assert_eq!(call(&app, post(&key, encoded[1].clone())).await.0, StatusCode::OK, "a session of the day goes on");

    let config = Config { quota_bytes_per_day: Some(encoded[0].len() as u64), ..Config::default() };
    let (app, key) = setup_with(config);
    assert_eq!(call(&app, post(&key, encoded[0].clone())).await.0, StatusCode::OK);
    assert_eq!(call(&app, post(&key, encoded[1].clone())).await.0, StatusCode::TOO_MANY_REQUESTS);
    let (_, metrics) = call(&app, get("/metrics")).await;
    assert!(String::from_utf8_lossy(&metrics).contains("replay_ingest_rejected_total{reason=\"quota_bytes\"} 1"));
    let (_, list) = call(&app, get("/api/v1/sessions")).await;
    let list: serde_json::Value = serde_json::from_slice(&list).expect("json");
    assert_eq!(list["sessions"][0]["batches"], 1, "the refused batch stored nothing");
}

#[tokio::test]
async fn a_rotated_key_works_in_its_grace_period_and_a_revoked_key_is_refused_at_once() {
    let storage = Arc::new(SqliteStorage::in_memory().expect("db"));
    let p = storage.create_project("shop").expect("project");
    let app = app_with(storage.clone(), Config::default());
    let batches: Vec<Vec<u8>> = page_batches().iter().map(|b| encode_batch(b).expect("encode")).collect();
    assert_eq!(call(&app, post(&p.ingest_key, batches[0].clone())).await.0, StatusCode::OK, "cached now");
    let new = storage.rotate_key(p.id, 3_600_000).expect("rotate");
    assert_eq!(call(&app, post(&new, batches[1].clone())).await.0, StatusCode::OK);
    assert_eq!(call(&app, post(&p.ingest_key, batches[1].clone())).await.0, StatusCode::OK, "in its grace period");
    assert!(storage.revoke_key(p.id, &p.ingest_key).expect("revoke"));
    let (status, body) = call(&app, post(&p.ingest_key, batches[1].clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", String::from_utf8_lossy(&body));
    assert_eq!(call(&app, post(&new, batches[1].clone())).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_project_s_own_quota_applies_without_a_server_wide_one() {
    let storage = Arc::new(SqliteStorage::in_memory().expect("db"));
    let p = storage.create_project("small").expect("project");
    let own = replay_store::ProjectQuota { bytes_per_day: None, sessions_per_day: Some(1) };
    storage.set_project_quota(p.id, own).expect("quota");
    let app = app_with(storage.clone(), Config::default());
    let first = page_batches().remove(0);
    assert_eq!(call(&app, post(&p.ingest_key, encode_batch(&first).expect("encode"))).await.0, StatusCode::OK);
    let mut other = first.clone();
    other.session = "sess-2".into();
    let (status, body) = call(&app, post(&p.ingest_key, encode_batch(&other).expect("encode"))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("quota_exceeded"));
}

/// A stored batch that no longer decodes (here: the server restarted with lower limits than the
/// batch was accepted under) fails every read of its session with `corrupt_session`: the events,
/// the environment comparison and the symbolicated stacks, never a silently shorter session.
#[tokio::test]
async fn a_stored_batch_that_no_longer_decodes_fails_every_read_of_its_session() {
    let storage = Arc::new(SqliteStorage::in_memory().expect("db"));
    let key = storage.create_project("p").expect("project").ingest_key;
    replay_server::auth::bootstrap(storage.as_ref(), Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    let before = app_with(Arc::clone(&storage), Config::default());
    let mut b = Batch::new("sess-1", "page-1", 0, 1_700_000_040_000);
    b.events = vec![
        at(0, meta("https://shop.test/list")),
        at(0, snapshot(page_nodes(&[], [text(5, 4, "a text longer than the later limit")]))),
        at(1, EventData::App(replay_protocol::AppFact::Release("1.0.0".into()))),
    ];
    let (status, body) = call(&before, post(&key, encode_batch(&b).expect("encode"))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _) = call(&before, get("/api/v1/projects/1/sessions/sess-1/compare")).await;
    assert_eq!(status, StatusCode::OK, "reads while the batch decodes");

    let mut config = Config::default();
    config.limits.max_string = 8;
    let after = app_with(storage, config);
    for path in [
        "/api/v1/projects/1/sessions/sess-1/events",
        "/api/v1/projects/1/sessions/sess-1/compare",
        "/api/v1/projects/1/sessions/sess-1/symbolicated",
    ] {
        let (status, body) = call(&after, get(path)).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {body}");
        assert!(body.contains("corrupt_session"), "{path}: {body}");
    }
}

#[tokio::test]
async fn metrics_answer_server_admins_and_the_metrics_token_only_and_demo_pages_are_opt_in() {
    let storage = SqliteStorage::in_memory().expect("db");
    storage.create_project("p").expect("project");
    replay_server::auth::bootstrap(&storage, Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    storage.put_user("ann", "$argon2id$unusable").expect("user");
    let in_a_day = 4_000_000_000_000;
    storage.create_login(&replay_server::auth::digest("cookie-ann"), "ann", in_a_day).expect("login");
    let config = Config { metrics_token: Some("scraper-secret".into()), demo: false, ..Config::default() };
    let app = app(AppState::new(Arc::new(storage), config));
    let with_bearer = |bearer: &str| {
        Request::get("/metrics").header("authorization", format!("Bearer {bearer}")).body(Body::empty()).expect("req")
    };
    let (status, body) = call(&app, Request::get("/metrics").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", String::from_utf8_lossy(&body));
    assert!(!String::from_utf8_lossy(&body).contains("replay_ingest"), "no counter leaks in the refusal");
    let (status, _) = call(&app, with_bearer("scraper-secre")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a near miss is no token");
    for bearer in ["scraper-secret", TOKEN] {
        let (status, body) = call(&app, with_bearer(bearer)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(String::from_utf8_lossy(&body).contains("replay_index_backlog_batches"), "the exposition");
    }
    // A signed-in viewer who is not a server admin reads no server-wide counters.
    let req = Request::get("/metrics").header("cookie", "replay_login=cookie-ann").body(Body::empty()).expect("req");
    assert_eq!(call(&app, req).await.0, StatusCode::FORBIDDEN);
    // The demo pages publish the first project's key: off unless asked for.
    for path in ["/demo", "/demo/lab", "/demo/echo"] {
        assert_eq!(call(&app, get(path)).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (demo, key) = setup_with(Config { demo: true, ..Config::default() });
    let (status, page) = call(&demo, Request::get("/demo").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&page).contains(&key), "the demo records into the first project");
}

#[tokio::test]
async fn pages_and_the_api_are_never_subresources_and_no_answer_is_sniffed() {
    let (app, _) = setup();
    // What a replayed page's `<link rel=stylesheet>` or `<img>` asks, with the reader's cookie.
    for (path, dest) in [("/viewer/", "style"), ("/api/v1/sessions", "image"), ("/api/v1/projects/1/sessions", "font")]
    {
        let req = Request::get(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("sec-fetch-site", "same-origin")
            .header("sec-fetch-mode", "no-cors")
            .header("sec-fetch-dest", dest)
            .body(Body::empty())
            .expect("req");
        let res = app.clone().oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path} as {dest}");
    }
    // The viewer's own fetch of the same data passes, and says nosniff like every answer.
    let req = Request::get("/api/v1/projects/1/sessions")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-dest", "empty")
        .body(Body::empty())
        .expect("req");
    let res = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    for path in ["/viewer/", "/login", "/healthz", "/api/v1/nothing-here"] {
        let res = app.clone().oneshot(Request::get(path).body(Body::empty()).expect("req")).await.expect("infallible");
        assert_eq!(res.headers().get("x-content-type-options").map(|v| v.as_bytes()), Some(&b"nosniff"[..]), "{path}");
    }
}

/// A page's `fetch` wrapper (an APM adding `traceparent` or `sentry-trace` to every request)
/// makes the recorder's uploads and settings request send a preflight asking for those headers:
/// both are allowed (the requests carry no credentials); a list that is not header names gets
/// the recorder's own headers only.
#[tokio::test]
async fn preflights_allow_the_headers_a_page_adds_to_every_request() {
    let storage = Arc::new(SqliteStorage::in_memory().expect("db"));
    let app = app(AppState::new(storage, Config::default()));
    let preflight = |path: &str, asked: &str| {
        Request::options(path)
            .header("origin", "https://shop.example")
            .header("access-control-request-method", if path.contains("ingest") { "POST" } else { "GET" })
            .header("access-control-request-headers", asked)
            .body(Body::empty())
            .expect("req")
    };
    // The recorder's wasm too: the page's `fetch` loads it where workers are refused.
    for path in ["/api/v1/ingest", "/api/v1/recorder/settings?key=k", "/recorder/recorder_wasm_bg.wasm"] {
        let res = app.clone().oneshot(preflight(path, "content-type,sentry-trace,traceparent")).await.expect("ok");
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{path}");
        let allowed = res.headers()["access-control-allow-headers"].to_str().expect("text").to_owned();
        assert!(allowed.contains("sentry-trace") && allowed.contains("traceparent"), "{path}: {allowed}");
        assert!(res.headers().get("access-control-allow-credentials").is_none(), "{path}");
        assert!(res.headers().contains_key("access-control-allow-origin"), "{path}");
        let res = app.clone().oneshot(preflight(path, "x-ok, bad header")).await.expect("ok");
        let allowed = res.headers()["access-control-allow-headers"].to_str().expect("text").to_owned();
        assert!(!allowed.contains("x-ok"), "{path}: not a list of header names: {allowed}");
    }
}
