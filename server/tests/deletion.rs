//! Deletion on request and the audit log, driven without sockets: `DELETE
//! /api/v1/projects/{project}/sessions/{id}`, the erasure of a user's sessions, the viewer's
//! delete form, and the audit log that records them with the watches and exports; with their
//! refusals (no caller, a member who is not an owner, another project, a form without this
//! server's token).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, meta, page_nodes, snapshot, text};
use replay_protocol::{AppFact, Batch, EventData, encode_batch};
use replay_server::{AppState, Config, app};
use replay_store::{Accounts, SqliteStorage, Storage};
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";
const T0: u64 = 1_700_000_040_000;

struct Setup {
    app: axum::Router,
    storage: Arc<SqliteStorage>,
    key: String,
    project: i64,
    other: i64,
}

fn setup() -> Setup {
    let storage = Arc::new(SqliteStorage::in_memory().expect("db"));
    let p = storage.create_project("p").expect("project");
    let other = storage.create_project("other").expect("project");
    replay_server::auth::bootstrap(storage.as_ref(), Some(TOKEN), Some("admin-password")).expect("bootstrap");
    let bob = replay_server::auth::hash_password("bob-password").expect("hash");
    storage.put_user("bob", &bob).expect("user");
    storage.set_membership(p.id, "bob", Some("member")).expect("bob is a member of p");
    let carol = replay_server::auth::hash_password("carol-password").expect("hash");
    storage.put_user("carol", &carol).expect("user");
    storage.set_membership(p.id, "carol", Some("owner")).expect("carol owns p");
    let app = app(AppState::new(Arc::clone(&storage) as Arc<dyn Storage>, Config::default()));
    Setup { app, storage, key: p.ingest_key, project: p.id, other: other.id }
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, body)
}

fn batch(session: &str, seq: u32, user: Option<&str>) -> Vec<u8> {
    let mut b = Batch::new(session, "page-1", seq, T0 + u64::from(seq) * 100);
    b.events = vec![at(0, meta("http://shop.test/")), at(0, snapshot(page_nodes(&[], [text(5, 4, "hello")])))];
    if let Some(user) = user {
        b.events.push(at(1, EventData::App(AppFact::Identify { user: user.into(), traits: "{}".into() })));
    }
    b.end = b.start + 10;
    encode_batch(&b).expect("encode")
}

async fn ingest(s: &Setup, session: &str, seq: u32, user: Option<&str>) -> (StatusCode, String) {
    let req = Request::post("/api/v1/ingest")
        .header("x-replay-key", &s.key)
        .body(Body::from(batch(session, seq, user)))
        .expect("request");
    let (status, body) = call(&s.app, req).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn admin(method: &str, path: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(body)
        .expect("request")
}

fn as_cookie(method: &str, path: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"user":"ada"}"#))
        .expect("request")
}

/// Signs `user` in through the sign-in form, as a browser does; the login cookie (`name=value`).
async fn sign_in(app: &axum::Router, user: &str, password: &str) -> String {
    let res = app.clone().oneshot(Request::get("/login").body(Body::empty()).expect("req")).await.expect("ok");
    let form_cookie = res.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let page = String::from_utf8(res.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8");
    let token = form_field(&page, "form_token");
    let req = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &form_cookie)
        .body(Body::from(format!("username={user}&password={password}&next=%2Fviewer%2F&form_token={token}")))
        .expect("req");
    let res = app.clone().oneshot(req).await.expect("ok");
    res.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned()
}

fn form_field(page: &str, name: &str) -> String {
    let field = format!("name=\"{name}\" value=\"");
    let at = page.find(&field).unwrap_or_else(|| panic!("no {name} in {page}")) + field.len();
    page[at..].split('"').next().expect("value").to_owned()
}

async fn audit(s: &Setup, project: i64) -> Vec<Value> {
    let (status, body) = call(&s.app, admin("GET", &format!("/api/v1/projects/{project}/audit"), Body::empty())).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let log: Value = serde_json::from_slice(&body).expect("json");
    log["entries"].as_array().expect("entries").clone()
}

fn exists(s: &Setup, project: i64, id: &str) -> bool {
    s.storage.session(project, id).expect("q").is_some()
}

#[tokio::test]
async fn a_deleted_session_is_gone_from_every_read_and_its_recorder_is_refused() {
    let s = setup();
    for id in ["gone", "kept"] {
        assert_eq!(ingest(&s, id, 0, None).await.0, StatusCode::OK);
    }
    let path = format!("/api/v1/projects/{}/sessions/gone", s.project);
    let (status, body) = call(&s.app, admin("DELETE", &path, Body::empty())).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("json")["deleted"], 1);

    for read in ["", "/events", "/snapshot", "/rrweb"] {
        let req = admin("GET", &format!("/api/v1/projects/{}/sessions/gone{read}", s.project), Body::empty());
        assert_eq!(call(&s.app, req).await.0, StatusCode::NOT_FOUND, "GET {read}");
    }
    let (_, list) =
        call(&s.app, admin("GET", &format!("/api/v1/projects/{}/sessions", s.project), Body::empty())).await;
    let list: Value = serde_json::from_slice(&list).expect("json");
    let ids: Vec<&str> = list["sessions"].as_array().expect("rows").iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, vec!["kept"]);
    assert!(s.storage.batches(s.project, "gone").expect("batches").is_empty());

    // The page still recording, or resending its buffer, is refused for good (the recorder
    // stops on this reason) and brings nothing back.
    for seq in [0, 1] {
        let (status, body) = ingest(&s, "gone", seq, None).await;
        assert_eq!(status, StatusCode::GONE, "{body}");
        assert!(body.contains("\"session_deleted\""), "{body}");
    }
    assert!(!exists(&s, s.project, "gone"));
    assert_eq!(ingest(&s, "kept", 1, None).await.0, StatusCode::OK, "other sessions record on");

    // Deleting it again: not found.
    assert_eq!(call(&s.app, admin("DELETE", &path, Body::empty())).await.0, StatusCode::NOT_FOUND);
    let log = audit(&s, s.project).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0]["action"].as_str(), log[0]["target"].as_str()), (Some("session.delete"), Some("gone")));
    assert_eq!(log[0]["actor"], "admin-token");
}

#[tokio::test]
async fn deletion_is_refused_to_members_and_in_another_project() {
    let s = setup();
    assert_eq!(ingest(&s, "sess", 0, Some("ada")).await.0, StatusCode::OK);
    let path = format!("/api/v1/projects/{}/sessions/sess", s.project);
    let erase = format!("/api/v1/projects/{}/erasure", s.project);

    // No reader.
    for (method, p) in [("DELETE", &path), ("POST", &erase)] {
        let req = Request::builder().method(method).uri(p.as_str()).body(Body::empty()).expect("req");
        assert_eq!(call(&s.app, req).await.0, StatusCode::UNAUTHORIZED, "{method} {p}");
    }
    // A member of the project who is not its owner.
    let bob = sign_in(&s.app, "bob", "bob-password").await;
    for (method, p) in [("DELETE", &path), ("POST", &erase)] {
        let (status, body) = call(&s.app, as_cookie(method, p, &bob)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {p}");
        assert!(String::from_utf8_lossy(&body).contains("\"forbidden\""));
    }
    let (status, _) = call(&s.app, as_cookie("GET", &format!("/api/v1/projects/{}/audit", s.project), &bob)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the audit log is not every member's");
    // An owner of p in a project they are not a member of: not found, like a project that
    // does not exist.
    let carol = sign_in(&s.app, "carol", "carol-password").await;
    for p in [format!("/api/v1/projects/{}/sessions/sess", s.other), format!("/api/v1/projects/{}/erasure", s.other)] {
        let method = if p.ends_with("erasure") { "POST" } else { "DELETE" };
        assert_eq!(call(&s.app, as_cookie(method, &p, &carol)).await.0, StatusCode::NOT_FOUND, "{p}");
    }
    // The admin, in another project or one that does not exist: the session is not there.
    let elsewhere = format!("/api/v1/projects/{}/sessions/sess", s.other);
    assert_eq!(call(&s.app, admin("DELETE", &elsewhere, Body::empty())).await.0, StatusCode::NOT_FOUND);
    let nowhere = "/api/v1/projects/999/sessions/sess";
    assert_eq!(call(&s.app, admin("DELETE", nowhere, Body::empty())).await.0, StatusCode::NOT_FOUND);
    let (status, body) =
        call(&s.app, admin("POST", &format!("/api/v1/projects/{}/erasure", s.other), Body::from(r#"{"user":"ada"}"#)))
            .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("json")["deleted"], 0, "project {} has none", s.other);
    assert_eq!(
        call(&s.app, admin("POST", "/api/v1/projects/999/erasure", Body::from(r#"{"user":"ada"}"#))).await.0,
        StatusCode::NOT_FOUND
    );
    // An erasure must name someone: never "every session nobody identified".
    for body in [r#"{"user":""}"#, "{}", "not json"] {
        assert_eq!(call(&s.app, admin("POST", &erase, Body::from(body))).await.0, StatusCode::BAD_REQUEST, "{body}");
    }
    assert!(exists(&s, s.project, "sess"), "nothing was deleted");
    assert!(audit(&s, s.project).await.is_empty());
}

#[tokio::test]
async fn an_erasure_deletes_every_session_of_the_user_and_logs_a_digest() {
    let s = setup();
    // Identified in a later batch of the session, and in another session.
    assert_eq!(ingest(&s, "a1", 0, None).await.0, StatusCode::OK);
    assert_eq!(ingest(&s, "a1", 1, Some("ada@example.com")).await.0, StatusCode::OK);
    assert_eq!(ingest(&s, "a2", 0, Some("ada@example.com")).await.0, StatusCode::OK);
    assert_eq!(ingest(&s, "b1", 0, Some("bob@example.com")).await.0, StatusCode::OK);
    assert_eq!(ingest(&s, "anon", 0, None).await.0, StatusCode::OK);

    // By an owner of the project.
    let carol = sign_in(&s.app, "carol", "carol-password").await;
    let erase = format!("/api/v1/projects/{}/erasure", s.project);
    let req = Request::post(erase.as_str())
        .header("cookie", &carol)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"user":"ada@example.com"}"#))
        .expect("req");
    let (status, body) = call(&s.app, req).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("json")["deleted"], 2);
    assert!(!exists(&s, s.project, "a1") && !exists(&s, s.project, "a2"));
    assert!(exists(&s, s.project, "b1") && exists(&s, s.project, "anon"));
    assert_eq!(ingest(&s, "a2", 1, Some("ada@example.com")).await.0, StatusCode::GONE, "the tab still open");

    let log = audit(&s, s.project).await;
    assert_eq!(log[0]["action"], "user.erase");
    assert_eq!(log[0]["detail"], "2 sessions deleted");
    assert_eq!(log[0]["actor"], "user:carol");
    let target = log[0]["target"].as_str().expect("target");
    assert!(target.starts_with("user sha256:") && !target.contains("ada"), "the log keeps no user id: {target}");
}

#[tokio::test]
async fn the_viewer_deletes_a_session_through_its_form_with_this_servers_token() {
    let s = setup();
    assert_eq!(ingest(&s, "sess", 0, Some("ada")).await.0, StatusCode::OK);
    let login = sign_in(&s.app, "admin", "admin-password").await;
    let page = format!("/viewer/p/{}/delete?session=sess", s.project);
    let action = format!("/viewer/p/{}/delete", s.project);
    let req = Request::get(page.as_str()).header("cookie", &login).body(Body::empty()).expect("req");
    let (status, html) = call(&s.app, req).await;
    let html = String::from_utf8(html).expect("utf-8");
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Delete this session?") && html.contains("method=\"post\""), "{html}");
    let token = form_field(&html, "form_token");

    let post = |cookie: &str, fields: String| {
        Request::post(action.as_str())
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(fields))
            .expect("req")
    };
    // Another site's form (no token, a wrong one) deletes nothing.
    for given in ["", "&form_token=0000"] {
        let (status, body) = call(&s.app, post(&login, format!("session=sess{given}"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{given:?}");
        assert!(String::from_utf8_lossy(&body).contains("bad_form_token"));
    }
    // A member who is not an owner: no confirmation page, and their own valid token (from the
    // session list's sign-out form) deletes nothing.
    let bob = sign_in(&s.app, "bob", "bob-password").await;
    let bob_page = Request::get(page.as_str()).header("cookie", &bob).body(Body::empty()).expect("req");
    assert_eq!(call(&s.app, bob_page).await.0, StatusCode::FORBIDDEN);
    let list = format!("/viewer/p/{}/", s.project);
    let bob_list = Request::get(list.as_str()).header("cookie", &bob).body(Body::empty()).expect("req");
    let bob_token = form_field(&String::from_utf8(call(&s.app, bob_list).await.1).expect("utf-8"), "form_token");
    let (status, _) = call(&s.app, post(&bob, format!("session=sess&form_token={bob_token}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(exists(&s, s.project, "sess"));
    // Signed out: sent to sign in.
    let res = s.app.clone().oneshot(Request::get(page.as_str()).body(Body::empty()).expect("req")).await.expect("ok");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let res = s.app.clone().oneshot(post(&login, format!("session=sess&form_token={token}"))).await.expect("ok");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], format!("/viewer/p/{}/", s.project));
    assert!(!exists(&s, s.project, "sess"));
    let log = audit(&s, s.project).await;
    assert_eq!((log[0]["action"].as_str(), log[0]["actor"].as_str()), (Some("session.delete"), Some("user:admin")));
}

#[tokio::test]
async fn watches_and_exports_are_audited_once_per_watch() {
    let s = setup();
    assert_eq!(ingest(&s, "sess", 0, None).await.0, StatusCode::OK);
    assert_eq!(ingest(&s, "sess", 1, None).await.0, StatusCode::OK);
    let bob = sign_in(&s.app, "bob", "bob-password").await;
    let read = |path: String| Request::get(path.as_str()).header("cookie", &bob).body(Body::empty()).expect("req");
    // A watch: the events from the start, then the rest of them (not another watch).
    assert_eq!(
        call(&s.app, read(format!("/api/v1/projects/{}/sessions/sess/events?max_bytes=1", s.project))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&s.app, read(format!("/api/v1/projects/{}/sessions/sess/events?from=1", s.project))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&s.app, read(format!("/api/v1/projects/{}/sessions/sess/rrweb", s.project))).await.0,
        StatusCode::OK
    );
    // The legacy unscoped routes are watches and exports too.
    assert_eq!(
        call(&s.app, read(format!("/api/v1/sessions/sess/events?project={}&from=00", s.project))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&s.app, read(format!("/api/v1/sessions/sess/rrweb?project={}", s.project))).await.0,
        StatusCode::OK
    );
    // Failed reads are not watches.
    assert_eq!(
        call(&s.app, read(format!("/api/v1/projects/{}/sessions/nope/events", s.project))).await.0,
        StatusCode::NOT_FOUND
    );
    let log = audit(&s, s.project).await;
    let seen: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| {
            (e["actor"].as_str().unwrap_or(""), e["action"].as_str().unwrap_or(""), e["target"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("user:bob", "session.export", "sess"),
            ("user:bob", "session.watch", "sess"),
            ("user:bob", "session.export", "sess"),
            ("user:bob", "session.watch", "sess"),
        ]
    );
    assert!(audit(&s, s.other).await.is_empty(), "another project's log is its own");

    // The admin's page shows the log; a member's is refused.
    let admin_login = sign_in(&s.app, "admin", "admin-password").await;
    let req = Request::get(format!("/viewer/p/{}/audit", s.project).as_str())
        .header("cookie", &admin_login)
        .body(Body::empty())
        .expect("req");
    let (status, html) = call(&s.app, req).await;
    let html = String::from_utf8(html).expect("utf-8");
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("session.watch") && html.contains("<td>user:bob</td>"), "{html}");
    let req = Request::get(format!("/viewer/p/{}/audit", s.project).as_str())
        .header("cookie", &bob)
        .body(Body::empty())
        .expect("req");
    assert_eq!(call(&s.app, req).await.0, StatusCode::FORBIDDEN);
}
