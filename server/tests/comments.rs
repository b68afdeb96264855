//! Comments on a session at a moment and share links to a moment (issue 14 item 7), driven
//! without sockets: who may add, list and delete them, what is refused (and stores nothing),
//! the audit log's entries, comments gone with their session, and the share link that opens
//! for members of the project only.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, meta, page_nodes, snapshot, text};
use replay_protocol::{Batch, encode_batch};
use replay_server::auth::digest;
use replay_server::{AppState, Config, app};
use replay_store::{Accounts, Comment, CommentAdded, SqliteStorage, Storage};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";
const T0: u64 = 1_700_000_040_000;
/// Far in the future, for sign-ins made directly in storage.
const LATER: u64 = 4_000_000_000_000;

struct Setup {
    app: axum::Router,
    storage: Arc<SqliteStorage>,
    project: i64,
    other: i64,
}

/// Project `p` with session `s` (and `other` with a session `s` of its own); users `own`
/// (owner), `ann` and `bob` (members), `ro` (read-only) of `p`, and `out` of `other` only, each
/// signed in with the cookie `cookie-<name>`.
async fn setup() -> Setup {
    let storage = Arc::new(SqliteStorage::in_memory().expect("db"));
    let p = storage.create_project("p").expect("project");
    let other = storage.create_project("other").expect("project");
    replay_server::auth::bootstrap(storage.as_ref(), Some(TOKEN), Some("admin-password")).expect("bootstrap");
    for (user, project, role) in [
        ("own", p.id, "owner"),
        ("ann", p.id, "member"),
        ("bob", p.id, "member"),
        ("ro", p.id, "read_only"),
        ("out", other.id, "owner"),
    ] {
        storage.put_user(user, "$argon2id$unusable").expect("user");
        storage.set_membership(project, user, Some(role)).expect("membership");
        storage.create_login(&digest(&format!("cookie-{user}")), user, LATER).expect("login");
    }
    let app = app(AppState::new(Arc::clone(&storage) as Arc<dyn Storage>, Config::default()));
    let s = Setup { app, storage, project: p.id, other: other.id };
    for key in [&p.ingest_key, &other.ingest_key] {
        let mut b = Batch::new("s", "page-1", 0, T0);
        b.events = vec![at(0, meta("http://shop.test/")), at(0, snapshot(page_nodes(&[], [text(5, 4, "hello")])))];
        b.end = b.start + 10_000;
        let req = Request::post("/api/v1/ingest")
            .header("x-replay-key", key.as_str())
            .body(Body::from(encode_batch(&b).expect("encode")))
            .expect("request");
        let (status, body) = call(&s.app, req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    s
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let location = res.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
    // Redirects answer their target as the body, for the assertions.
    (status, location.unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()))
}

/// A request as the signed-in `user`; a JSON body when given.
fn as_user(user: &str, method: &str, path: &str, body: Option<Value>) -> Request<Body> {
    let req = Request::builder().method(method).uri(path).header("cookie", format!("replay_login=cookie-{user}"));
    match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("request")
}

fn comments_path(project: i64, session: &str) -> String {
    format!("/api/v1/projects/{project}/sessions/{session}/comments")
}

async fn list(s: &Setup, user: &str) -> (StatusCode, Value) {
    let (status, body) = call(&s.app, as_user(user, "GET", &comments_path(s.project, "s"), None)).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn add(s: &Setup, user: &str, t: u64, text: &str) -> (StatusCode, Value) {
    let req = as_user(user, "POST", &comments_path(s.project, "s"), Some(json!({ "t": t, "text": text })));
    let (status, body) = call(&s.app, req).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

fn texts(list: &Value) -> Vec<String> {
    list["comments"].as_array().into_iter().flatten().map(|c| c["text"].as_str().unwrap_or("").to_owned()).collect()
}

#[tokio::test]
async fn members_comment_at_a_moment_and_every_reader_sees_them_by_moment() {
    let s = setup().await;
    let (status, ann) = add(&s, "ann", 4_000, "the button does nothing").await;
    assert_eq!(status, StatusCode::OK, "{ann}");
    assert_eq!((ann["t"].as_u64(), ann["author"].as_str()), (Some(4_000), Some("ann")));
    assert_eq!(ann["can_delete"], true, "its author may delete it");
    let hostile = "<img src=x onerror=alert(1)>";
    let (status, own) = add(&s, "own", 1_000, hostile).await;
    assert_eq!(status, StatusCode::OK, "{own}");

    for reader in ["ro", "bob", "own"] {
        let (status, listed) = list(&s, reader).await;
        assert_eq!(status, StatusCode::OK, "{reader}: {listed}");
        assert_eq!(texts(&listed), [hostile, "the button does nothing"], "{reader}: by moment, text as written");
        assert_eq!(listed["can_add"], reader != "ro", "{reader}: read-only members add nothing");
    }
    // Who may delete what, as the list tells the viewer.
    let (_, by_bob) = list(&s, "bob").await;
    assert_eq!(by_bob["comments"][0]["can_delete"], false, "bob: not his");
    let (_, by_own) = list(&s, "own").await;
    assert_eq!(by_own["comments"][1]["can_delete"], true, "an owner deletes any");

    // A read-only member is refused, and nothing is stored.
    let (status, body) = add(&s, "ro", 2_000, "me too").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["reason"], "forbidden");
    // The admin token comments as itself.
    let req = Request::post(comments_path(s.project, "s"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({ "t": 0, "text": "from the API" }).to_string()))
        .expect("request");
    let (status, body) = call(&s.app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"author\":\"admin-token\""), "{body}");
    assert_eq!(s.storage.comments(s.project, "s", 100).expect("list").len(), 3);
    // The other project's session of the same id has none.
    assert!(s.storage.comments(s.other, "s", 100).expect("list").is_empty());

    // Added comments are in the audit log.
    let log = s.storage.audit_log(s.project, None, 100).expect("audit");
    let added: Vec<(&str, &str)> =
        log.iter().filter(|e| e.action == "comment.add").map(|e| (e.actor.as_str(), e.target.as_str())).collect();
    assert_eq!(added, [("admin-token", "s"), ("user:own", "s"), ("user:ann", "s")], "{log:?}");
}

#[tokio::test]
async fn bad_comments_are_refused_and_store_nothing() {
    let s = setup().await;
    let path = comments_path(s.project, "s");
    let long = "x".repeat(2_001);
    for (body, reason) in [
        (json!({ "t": 0, "text": "   " }), "bad_comment"),
        (json!({ "t": 0, "text": long }), "bad_comment"),
        (json!({ "t": 0 }), "bad_comment"),
        (json!({ "t": -5, "text": "x" }), "bad_comment"),
        (json!({ "t": 40u64 * 24 * 3600 * 1000, "text": "x" }), "bad_comment"),
        (json!(["x"]), "bad_comment"),
    ] {
        let (status, answer) = call(&s.app, as_user("ann", "POST", &path, Some(body.clone()))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(answer.contains(reason), "{body}: {answer}");
    }
    // The longest text is fine, counted in characters.
    let (status, _) = add(&s, "ann", 0, &"é".repeat(2_000)).await;
    assert_eq!(status, StatusCode::OK);
    s.storage.delete_comment(s.project, "s", 1).expect("delete");

    // Not JSON (a form of another site), and a body over the cap.
    let form = Request::post(&path)
        .header("cookie", "replay_login=cookie-ann")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("t=0&text=x"))
        .expect("request");
    let (status, answer) = call(&s.app, form).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    let huge = json!({ "t": 0, "text": "x", "pad": "y".repeat(20_000) });
    let (status, answer) = call(&s.app, as_user("ann", "POST", &path, Some(huge))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");

    // No such session, another project's session, a project the caller is not in: 404.
    let ok = json!({ "t": 0, "text": "x" });
    let (status, _) = call(&s.app, as_user("ann", "POST", &comments_path(s.project, "nope"), Some(ok.clone()))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&s.app, as_user("ann", "POST", &comments_path(s.other, "s"), Some(ok.clone()))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "ann is not in the other project");
    let (status, _) = call(&s.app, as_user("out", "GET", &comments_path(s.project, "s"), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nor is out in this one");
    let (status, _) = call(&s.app, as_user("ann", "GET", &comments_path(s.project, "nope"), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "listing a session that is not there");
    assert!(s.storage.comments(s.project, "s", 100).expect("list").is_empty(), "nothing was stored");
    assert!(s.storage.comments(s.other, "s", 100).expect("list").is_empty());
    let metrics = Request::get("/metrics").header("authorization", format!("Bearer {TOKEN}"));
    let refused = call(&s.app, metrics.body(Body::empty()).expect("request")).await.1;
    assert!(refused.contains("reason=\"bad_comment\"} 6"), "refusals are counted: {refused}");
}

#[tokio::test]
async fn a_full_session_refuses_more_comments() {
    let s = setup().await;
    for i in 0..replay_store::MAX_COMMENTS_PER_SESSION as u64 {
        let c = Comment {
            id: 0,
            project_id: s.project,
            session_id: "s".into(),
            t: i,
            author_user: "ann".into(),
            author: "ann".into(),
            text: "many".into(),
            created_ms: T0,
        };
        assert!(matches!(s.storage.add_comment(&c).expect("add"), CommentAdded::Added(_)));
    }
    let (status, body) = add(&s, "ann", 0, "one more").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["reason"], "too_many_comments");
    let (_, listed) = list(&s, "ann").await;
    assert_eq!(texts(&listed).len(), replay_store::MAX_COMMENTS_PER_SESSION, "all listed, no more stored");
}

#[tokio::test]
async fn a_comment_is_deleted_by_its_author_or_an_owner_only() {
    let s = setup().await;
    let (_, ann) = add(&s, "ann", 1_000, "ann's").await;
    let (_, bob) = add(&s, "bob", 2_000, "bob's").await;
    let one = |c: &Value, project: i64| format!("{}/{}", comments_path(project, "s"), c["id"].as_i64().expect("an id"));
    // Another member, a read-only member, someone of another project: refused.
    for (user, status) in
        [("bob", StatusCode::FORBIDDEN), ("ro", StatusCode::FORBIDDEN), ("out", StatusCode::NOT_FOUND)]
    {
        let (got, body) = call(&s.app, as_user(user, "DELETE", &one(&ann, s.project), None)).await;
        assert_eq!(got, status, "{user}: {body}");
    }
    // Through another project or another session of the id: not found.
    let (status, _) = call(&s.app, as_user("out", "DELETE", &one(&ann, s.other), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let path = format!("/api/v1/projects/{}/sessions/other/comments/{}", s.project, ann["id"]);
    let (status, _) = call(&s.app, as_user("ann", "DELETE", &path, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        call(&s.app, as_user("ann", "DELETE", &format!("{}/x", comments_path(s.project, "s")), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not an id");
    let (_, listed) = list(&s, "ann").await;
    assert_eq!(texts(&listed), ["ann's", "bob's"], "nothing deleted yet");

    // Its author, and an owner for anyone's.
    let (status, body) = call(&s.app, as_user("ann", "DELETE", &one(&ann, s.project), None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = call(&s.app, as_user("ann", "DELETE", &one(&ann, s.project), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "gone already");
    let (status, body) = call(&s.app, as_user("own", "DELETE", &one(&bob, s.project), None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, listed) = list(&s, "ann").await;
    assert!(texts(&listed).is_empty(), "{listed}");
    let log = s.storage.audit_log(s.project, None, 100).expect("audit");
    let deleted: Vec<(&str, &str)> =
        log.iter().filter(|e| e.action == "comment.delete").map(|e| (e.actor.as_str(), e.detail.as_str())).collect();
    let (a, b) = (ann["id"].as_i64().unwrap_or(0), bob["id"].as_i64().unwrap_or(0));
    assert_eq!(
        deleted,
        [("user:own", format!("comment {b} by bob").as_str()), ("user:ann", &format!("comment {a} by ann"))]
    );
}

#[tokio::test]
async fn deleting_the_session_deletes_its_comments() {
    let s = setup().await;
    add(&s, "ann", 1_000, "soon gone").await;
    let req = as_user("own", "DELETE", &format!("/api/v1/projects/{}/sessions/s", s.project), None);
    let (status, body) = call(&s.app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = list(&s, "ann").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the session is gone");
    assert!(s.storage.comments(s.project, "s", 100).expect("list").is_empty(), "and its comments with it");
    let (status, _) = add(&s, "ann", 1_000, "too late").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_share_link_opens_the_player_at_its_moment_for_members_only() {
    let s = setup().await;
    let link = format!("/viewer/p/{}/sessions/s?t=4500", s.project);
    for user in ["ro", "ann", "own"] {
        let (status, location) = call(&s.app, as_user(user, "GET", &link, None)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{user}: {location}");
        assert_eq!(location, format!("/viewer/p/{}/player.html?session=s&t=4500", s.project), "{user}");
    }
    let (_, location) = call(&s.app, as_user("ann", "GET", &format!("/viewer/p/{}/sessions/s", s.project), None)).await;
    assert_eq!(location, format!("/viewer/p/{}/player.html?session=s", s.project), "no moment: the start");
    let (_, location) =
        call(&s.app, as_user("ann", "GET", &format!("/viewer/p/{}/sessions/s?t=soon", s.project), None)).await;
    assert_eq!(location, format!("/viewer/p/{}/player.html?session=s", s.project), "a bad moment is ignored");
    // Anyone else: 404, as for a project that does not exist; a session not there: 404.
    let (status, body) = call(&s.app, as_user("out", "GET", &link, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = call(&s.app, as_user("ann", "GET", &format!("/viewer/p/{}/sessions/s?t=1", s.other), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the other project's session of the same id");
    let (status, _) =
        call(&s.app, as_user("ann", "GET", &format!("/viewer/p/{}/sessions/nope", s.project), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without a sign-in: sign in first, then back to the link.
    let (status, location) = call(&s.app, Request::get(&link).body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert!(location.starts_with("/login"), "{location}");
}
