//! The OpenAPI document against the running routes: every API route of `app()` is described,
//! and every described operation answers (no 404/405 for a route-level reason) with a status
//! the document lists, without credentials and with them.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, meta, page_nodes, snapshot, text};
use replay_protocol::{Batch, encode_batch};
use replay_server::auth::digest;
use replay_server::{API_ROUTES, AppState, Config, app};
use replay_store::{Accounts, NewToken, SqliteStorage, Storage};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";
const T0: u64 = 1_700_000_040_000;
const SESSION: &str = "sess-openapi";
/// Ids of the tokens `setup` makes.
const PROJECT_TOKEN: i64 = 1;
const OWN_TOKEN: i64 = 2;
/// The session the deletion operation deletes.
const DOOMED: &str = "sess-doomed";
/// The comment `setup` adds (the one the comment's deletion deletes).
const COMMENT: i64 = 1;

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, body)
}

/// An app with one project holding one session (and the project's ingest key, and a second
/// key of it for the revocation to end).
async fn setup() -> (axum::Router, i64, String, String) {
    let storage = SqliteStorage::in_memory().expect("db");
    let project = storage.create_project("p").expect("project");
    storage.create_project("to delete").expect("project");
    replay_server::auth::bootstrap(&storage, Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    // What the account routes act on: a user to add and change, the admin's sign-ins (one to
    // call with, one to end), a user whose password changes, a project token and an own token.
    storage.put_user("guest", "$argon2id$unusable").expect("user");
    let far = 4_000_000_000_000;
    storage.create_login(&digest("admin-cookie"), "admin", far).expect("login");
    storage.create_login(&digest("admin-other-cookie"), "admin", far).expect("login");
    let pw_hash = replay_server::auth::hash_password("old-password-1").expect("hash");
    storage.put_user("changer", &pw_hash).expect("user");
    storage.create_login(&digest("changer-cookie"), "changer", far).expect("login");
    let token = |user: Option<&str>, hash: &str| NewToken {
        token_hash: digest(hash),
        name: "t".into(),
        user: user.map(str::to_owned),
        project: Some(project.id),
        scopes: vec!["read".into()],
    };
    assert_eq!(storage.create_token(&token(None, "project-token")).expect("token"), PROJECT_TOKEN);
    assert_eq!(storage.create_token(&token(Some("admin"), "own-token")).expect("token"), OWN_TOKEN);
    let spare = storage.rotate_key(project.id, 3_600_000).expect("a second key");
    let router = app(AppState::new(Arc::new(storage) as Arc<dyn Storage>, Config::default()));
    let (status, _) = call(&router, ingest_request(&project.ingest_key, 0)).await;
    assert_eq!(status, StatusCode::OK);
    let mut doomed = Batch::new(DOOMED, "page-1", 0, T0);
    doomed.events = vec![at(0, meta("http://shop.test/"))];
    let req = Request::post("/api/v1/ingest")
        .header("x-replay-key", &project.ingest_key)
        .body(Body::from(encode_batch(&doomed).expect("encode")))
        .expect("request");
    assert_eq!(call(&router, req).await.0, StatusCode::OK);
    // The comment the comment's deletion deletes.
    let req = Request::post(format!("/api/v1/projects/{}/sessions/{SESSION}/comments", project.id))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({ "t": 0, "text": "doomed" }).to_string()))
        .expect("request");
    let (status, body) = call(&router, req).await;
    assert!(status == StatusCode::OK && body.starts_with(format!("{{\"id\":{COMMENT},").as_bytes()));
    (router, project.id, project.ingest_key, spare)
}

fn batch(seq: u32) -> Vec<u8> {
    let mut b = Batch::new(SESSION, "page-1", seq, T0 + u64::from(seq));
    b.events = vec![at(0, meta("http://shop.test/")), at(0, snapshot(page_nodes(&[], [text(5, 4, "hello")])))];
    b.end = b.start;
    encode_batch(&b).expect("encode")
}

fn ingest_request(key: &str, seq: u32) -> Request<Body> {
    Request::post("/api/v1/ingest").header("x-replay-key", key).body(Body::from(batch(seq))).expect("request")
}

fn recording() -> Vec<u8> {
    let node = json!({ "type": 0, "id": 1, "childNodes": [
        { "type": 2, "id": 2, "tagName": "html", "attributes": {}, "childNodes": [
            { "type": 2, "id": 3, "tagName": "body", "attributes": {}, "childNodes": [] } ] } ] });
    serde_json::to_vec(&json!([
        { "type": 4, "data": { "href": "https://shop.test/", "width": 1000, "height": 700 }, "timestamp": T0 },
        { "type": 2, "data": { "node": node, "initialOffset": { "left": 0, "top": 0 } }, "timestamp": T0 + 5 },
    ]))
    .expect("json")
}

/// A request of the operation's shape: ids that exist, the body it takes, credentials when
/// `authorized`.
fn request(method: &str, path: &str, project: i64, keys: (&str, &str), seq: u32, authorized: bool) -> Request<Body> {
    let (key, spare) = keys;
    let me = path.starts_with("/api/v1/me");
    let id = if path.starts_with("/api/v1/me/sign-ins/") {
        digest("admin-other-cookie")
    } else if method == "delete" && path.ends_with("/sessions/{id}") {
        // A session of its own: the others' operations still find theirs.
        DOOMED.to_owned()
    } else {
        SESSION.to_owned()
    };
    let token = if me { OWN_TOKEN } else { PROJECT_TOKEN };
    // The project's deletion deletes a project of its own: the others' operations still find
    // theirs.
    let project = if method == "delete" && path == "/api/v1/projects/{project}" { project + 1 } else { project };
    let mut uri = path
        .replace("{project}", &project.to_string())
        .replace("{id}", &id)
        .replace("{user}", "guest")
        .replace("{token}", &token.to_string())
        .replace("{key}", spare)
        .replace("{comment}", &COMMENT.to_string());
    if path == "/api/v1/recorder/settings" && authorized {
        uri = format!("{path}?key={key}");
    }
    // The first, unscoped routes: the server holds two projects, so they name theirs.
    if path.starts_with("/api/v1/sessions") || path == "/api/v1/errors" {
        uri.push_str(&format!("?project={project}"));
    }
    // Release files are addressed by release and URL.
    if path.ends_with("/sourcemaps") {
        uri.push_str("?release=1&url=~/app.js");
    }
    let mut req = Request::builder().method(method.to_uppercase().as_str()).uri(&uri);
    let json = |v: Value| Body::from(serde_json::to_vec(&v).expect("json"));
    let body = match (method, path) {
        ("post", "/api/v1/ingest") => {
            if authorized {
                req = req.header("x-replay-key", key);
            }
            Body::from(batch(seq))
        }
        ("post", "/api/v1/projects/{project}/import/rrweb") => Body::from(recording()),
        ("post", "/api/v1/admin/users") => json(json!({ "name": format!("new-{seq}") })),
        ("post", "/api/v1/me/password") => json(json!({ "current": "old-password-1", "new": "new-password-2" })),
        ("post", p) if p.ends_with("/tokens") => json(json!({ "name": "made", "scopes": ["read"] })),
        ("put", p) if p.ends_with("/members/{user}") => json(json!({ "role": "member" })),
        ("post", "/api/v1/projects") | ("patch", "/api/v1/projects/{project}") => {
            json(json!({ "name": format!("project {seq}") }))
        }
        ("post", "/api/v1/projects/{project}/keys") => json(json!({ "grace_secs": 60 })),
        ("post", "/api/v1/projects/{project}/erasure") => json(json!({ "user": "nobody" })),
        ("post", p) if p.ends_with("/comments") => json(json!({ "t": 0, "text": "described" })),
        ("put", "/api/v1/projects/{project}/settings") => {
            json(json!({ "allowed_origins": [], "settings": { "mask_all_text": true } }))
        }
        ("put", _) => json(json!({ "disabled": false })),
        ("post", _) => json(json!({})),
        _ => Body::empty(),
    };
    if matches!(method, "post" | "put" | "patch") && path != "/api/v1/ingest" {
        req = req.header("content-type", "application/json");
    }
    if authorized {
        // The own account's routes need a user: the admin's sign-in (the password change,
        // which ends every sign-in of its user, another user's).
        req = match path {
            "/api/v1/me/password" => req.header("cookie", "replay_login=changer-cookie"),
            _ if me => req.header("cookie", "replay_login=admin-cookie"),
            _ => req.header("authorization", format!("Bearer {TOKEN}")),
        };
    }
    req.body(body).expect("request")
}

async fn document(app: &axum::Router) -> Value {
    let (status, body) = call(app, Request::get("/api/v1/openapi.json").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK, "the document is public");
    serde_json::from_slice(&body).expect("the document is JSON")
}

/// Every (method, path) the document describes, methods lowercase.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if ["get", "put", "post", "delete", "options", "head", "patch"].contains(&method.as_str()) {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn every_api_route_is_described() {
    let (app, _, _, _) = setup().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"), "{}", doc["openapi"]);
    let described: Vec<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    assert!(API_ROUTES.len() >= 10, "the API routes are listed");
    for (method, path) in API_ROUTES {
        assert!(path.starts_with("/api/"), "{path} is an API route");
        assert!(
            described.contains(&(method.to_lowercase(), (*path).to_owned())),
            "{method} {path} is routed but not described"
        );
    }
    for (method, path) in &described {
        assert!(
            API_ROUTES.iter().any(|(m, p)| m.to_lowercase() == *method && p == path),
            "{method} {path} is described but not in API_ROUTES"
        );
    }
}

#[tokio::test]
async fn every_described_operation_answers_with_a_documented_status() {
    let (app, project, key, spare) = setup().await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() >= API_ROUTES.len());
    for (i, (method, path, op)) in ops.iter().enumerate() {
        let documented = |status: StatusCode| op["responses"].get(status.as_str()).is_some();
        let secured = op.get("security").is_some();
        let seq = 1 + 2 * u32::try_from(i).expect("few operations");

        let (status, body) = call(&app, request(method, path, project, (&key, &spare), seq, false)).await;
        let body = String::from_utf8_lossy(&body);
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} without credentials: {status} {body}"
        );
        if secured {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} needs credentials: {body}");
        }
        assert!(documented(status), "{method} {path} answered an undocumented {status} without credentials");

        let (status, body) = call(&app, request(method, path, project, (&key, &spare), seq + 1, true)).await;
        let text = String::from_utf8_lossy(&body);
        assert!(status.is_success(), "{method} {path} with credentials: {status} {text}");
        assert!(documented(status), "{method} {path} answered an undocumented {status}");
        let json_only = op["responses"][status.as_str()]["content"]
            .as_object()
            .is_some_and(|c| c.keys().all(|k| k == "application/json"));
        if json_only && !body.is_empty() {
            serde_json::from_slice::<Value>(&body).unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
        }
    }
}

#[tokio::test]
async fn error_answers_are_described_with_the_error_body() {
    let (app, _, _, _) = setup().await;
    let doc = document(&app).await;
    for (method, path, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().expect("responses") {
            let code: u16 = status.parse().expect("numeric status");
            if code >= 400 {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
            if code == 429 || code == 503 {
                assert!(response["headers"].get("retry-after").is_some(), "{method} {path} {status}");
            }
        }
    }
    // An actual refusal has that shape.
    let (status, body) = call(&app, Request::get("/api/v1/sessions").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["reason"], "unauthorized");
    assert!(body["error"]["message"].is_string());
    for name in ["SessionRow", "ErrorGroup", "FactComparison", "Ack", "Imported", "ErrorBody"] {
        assert!(doc["components"]["schemas"].get(name).is_some(), "schema {name}");
    }
    for name in ["admin_token", "login_cookie", "ingest_key_header", "ingest_key_query"] {
        assert!(doc["components"]["securitySchemes"].get(name).is_some(), "security scheme {name}");
    }
}

#[tokio::test]
async fn the_api_page_lists_every_operation_without_scripts() {
    let (app, _, _, _) = setup().await;
    let doc = document(&app).await;
    let res = app.clone().oneshot(Request::get("/docs/api").body(Body::empty()).expect("req")).await.expect("ok");
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(!csp.contains("script-src"), "{csp}");
    let html = String::from_utf8(res.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8");
    assert!(!html.contains("<script"));
    for (method, path, _) in operations(&doc) {
        assert!(html.contains(&format!("{} {path}", method.to_uppercase())), "{method} {path} on the page");
    }
    for name in doc["components"]["schemas"].as_object().expect("schemas").keys() {
        assert!(html.contains(&format!("id=\"{name}\"")), "schema {name} on the page");
    }
    assert!(html.contains("never_recovered"), "a schema's fields are listed");
}
