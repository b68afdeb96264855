//! Projects kept apart (issue 14): every link, form and API call of the viewer carries its
//! project, session ids mean a session of that project only, and a caller who may not read a
//! project gets 404 on every route of it, for every role. The table-driven test walks
//! [`API_ROUTES`]: a route added later must be named in [`EXPECTED`] or the test fails.
//!
//! Each test runs on SQLite, and on PostgreSQL (with a local object store) when
//! `REPLAY_TEST_POSTGRES_URL` names a database (e.g. `postgres://postgres@127.0.0.1:5432/postgres`);
//! without it the PostgreSQL runs print that they were skipped.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, meta, page_nodes, snapshot, text};
use replay_protocol::{Batch, encode_batch};
use replay_server::auth::digest;
use replay_server::{API_ROUTES, AppState, Config, app};
use replay_store::{SqliteStorage, Storage};
use serde_json::json;
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";
const T0: u64 = 1_700_000_040_000;
/// A session id recorded in both projects.
const SHARED: &str = "same-id";
/// The id of owner-a's comment on A's [`SHARED`] session.
const COMMENT: i64 = 1;
/// Far in the future, for sign-ins made directly in storage.
const LATER: u64 = 4_000_000_000_000;

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, String, axum::http::HeaderMap) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

fn batch(session: &str, url: &str, words: &str) -> Vec<u8> {
    let mut b = Batch::new(session, "page-1", 0, T0);
    b.events = vec![at(0, meta(url)), at(0, snapshot(page_nodes(&[], [text(5, 4, words)])))];
    encode_batch(&b).expect("encode")
}

struct World {
    app: axum::Router,
    storage: Arc<dyn Storage>,
    a: i64,
    b: i64,
    key_a: String,
    key_b: String,
}

/// Project A (`a.test`) and project B (`b.test`), each holding a session with the id
/// [`SHARED`] (and B one more, `only-b`), and viewer users with each role in A only.
/// The storage engines the tests run on: SQLite, and PostgreSQL when configured (a schema of
/// its own per test, bodies in a temporary directory).
fn engines(test: &str) -> Vec<Arc<dyn Storage>> {
    let mut out: Vec<Arc<dyn Storage>> = vec![Arc::new(SqliteStorage::in_memory().expect("db"))];
    match std::env::var("REPLAY_TEST_POSTGRES_URL") {
        Ok(url) => {
            let dir = std::env::temp_dir().join(format!("replay-isolation-{test}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("bodies directory");
            let (store, prefix) =
                replay_store::open_object_store(&format!("file://{}", dir.display()), Vec::<(String, String)>::new())
                    .expect("object store");
            let pg = replay_store::PostgresStorage::connect(replay_store::PostgresOptions {
                url,
                schema: Some(format!("isolation_{test}_{}", std::process::id())),
                store,
                prefix,
                max_connections: 4,
                ca_file: None,
            })
            .expect("postgres");
            out.push(Arc::new(pg));
        }
        Err(_) => eprintln!("{test}: REPLAY_TEST_POSTGRES_URL is not set; PostgreSQL skipped"),
    }
    out
}

async fn world(storage: Arc<dyn Storage>) -> World {
    let a = storage.create_project("alpha").expect("project");
    let b = storage.create_project("bravo").expect("project");
    replay_server::auth::bootstrap(storage.as_ref(), Some(TOKEN), Some("admin-password")).expect("bootstrap");
    let storage: Arc<dyn Storage> = storage;
    for (user, role) in
        [("owner-a", Some("owner")), ("member-a", Some("member")), ("reader-a", Some("read_only")), ("outsider", None)]
    {
        storage.put_user(user, "$argon2id$unusable").expect("user");
        if let Some(role) = role {
            storage.set_membership(a.id, user, Some(role)).expect("membership");
        }
        storage.create_login(&digest(&format!("cookie-{user}")), user, LATER).expect("login");
    }
    storage.create_login(&digest("cookie-admin"), "admin", LATER).expect("login");
    let app = app(AppState::new(Arc::clone(&storage), Config::default()));
    for (key, session, url, words) in [
        (&a.ingest_key, SHARED, "http://a.test/", "alpha words"),
        (&b.ingest_key, SHARED, "http://b.test/", "bravo words"),
        (&b.ingest_key, "only-b", "http://b.test/only", "bravo only"),
    ] {
        let req = Request::post("/api/v1/ingest")
            .header("x-replay-key", key.as_str())
            .body(Body::from(batch(session, url, words)));
        let (status, body, _) = call(&app, req.expect("request")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // A comment of owner-a on A's session, the first of the store ([`COMMENT`]).
    let comment = replay_store::Comment {
        id: 0,
        project_id: a.id,
        session_id: SHARED.into(),
        t: 0,
        author_user: "owner-a".into(),
        author: "owner-a".into(),
        text: "alpha comment".into(),
        created_ms: T0,
    };
    let added = storage.add_comment(&comment).expect("comment");
    assert!(matches!(added, replay_store::CommentAdded::Added(ref c) if c.id == COMMENT), "{added:?}");
    World { app, storage, a: a.id, b: b.id, key_a: a.ingest_key, key_b: b.ingest_key }
}

/// A GET as the signed-in viewer user `user` (`admin` is the server admin).
fn as_user(user: &str, path: &str) -> Request<Body> {
    Request::get(path).header("cookie", format!("replay_login=cookie-{user}")).body(Body::empty()).expect("request")
}

fn as_admin_token(path: &str) -> Request<Body> {
    Request::get(path).header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_the_second_project_opens_in_the_second_project_from_every_link() {
    for storage in engines("a75") {
        a_session_of_the_second_project_opens_in_the_second_project_from_every_link_on(storage).await;
    }
}

async fn a_session_of_the_second_project_opens_in_the_second_project_from_every_link_on(storage: Arc<dyn Storage>) {
    let w = world(storage).await;
    let b = w.b;
    // The list of project B: its rows, pager and filter form stay in B (relative links under
    // /viewer/p/B/), and the header offers the other project.
    let (status, html, _) = call(&w.app, as_user("admin", &format!("/viewer/p/{b}/"))).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(&format!("href=\"player.html?session={SHARED}\"")), "{html}");
    assert!(html.contains("http://b.test/") && !html.contains("http://a.test/"), "only B's sessions: {html}");
    assert!(html.contains("id=\"project-switcher\"") && html.contains("alpha") && html.contains("bravo"), "{html}");
    assert!(html.contains(&format!("<option value=\"{b}\" selected>bravo</option>")), "B is the current one: {html}");
    assert!(html.contains(&format!("href=\"/viewer/p/{b}/errors\"")), "the header's Errors stays in B: {html}");
    // The player there is served, and the API it calls answers B's session for that id.
    let (status, _, _) = call(&w.app, as_user("admin", &format!("/viewer/p/{b}/player.html?session={SHARED}"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, row, _) = call(&w.app, as_user("admin", &format!("/api/v1/projects/{b}/sessions/{SHARED}"))).await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert!(row.contains("http://b.test/"), "B's session, not A's with the same id: {row}");
    let (_, html, _) =
        call(&w.app, as_user("admin", &format!("/api/v1/projects/{b}/sessions/{SHARED}/snapshot"))).await;
    assert!(html.contains("bravo words"), "{html}");
    let (_, html, _) =
        call(&w.app, as_user("admin", &format!("/api/v1/projects/{}/sessions/{SHARED}/snapshot", w.a))).await;
    assert!(html.contains("alpha words"), "{html}");
    // The errors page of B links to B's player (relative to /viewer/p/B/).
    let (status, _, _) = call(&w.app, as_user("admin", &format!("/viewer/p/{b}/errors"))).await;
    assert_eq!(status, StatusCode::OK);

    // The switcher's form and the old entry points go to the named project's page.
    let (status, _, h) = call(&w.app, as_user("admin", &format!("/viewer/?project={b}&user=x"))).await;
    assert_eq!(
        (status, h["location"].to_str().ok()),
        (StatusCode::SEE_OTHER, Some(format!("/viewer/p/{b}/?user=x").as_str()))
    );
    // An old player link without a project never silently opens the first project: the
    // reader picks among the projects holding that id.
    let (status, html, _) = call(&w.app, as_user("admin", &format!("/viewer/player.html?session={SHARED}"))).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(&format!("/viewer/p/{b}/player.html?session={SHARED}")), "{html}");
    let (status, _, h) = call(&w.app, as_user("admin", "/viewer/player.html?session=only-b")).await;
    assert_eq!(
        (status, h["location"].to_str().ok()),
        (StatusCode::SEE_OTHER, Some(format!("/viewer/p/{b}/player.html?session=only-b").as_str()))
    );
    // `Replay.sessionUrl()` names the page's key, which names its project.
    let (status, _, h) =
        call(&w.app, as_user("admin", &format!("/viewer/open?key={}&session={SHARED}", w.key_b))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h["location"].to_str().ok(), Some(format!("/viewer/p/{b}/player.html?session={SHARED}").as_str()));
    // A reader of A only learns nothing from B's key: the same 404 as an unknown key.
    let (status, b_key, _) =
        call(&w.app, as_user("member-a", &format!("/viewer/open?key={}&session={SHARED}", w.key_b))).await;
    let (unknown, no_key, _) =
        call(&w.app, as_user("member-a", &format!("/viewer/open?key=nope&session={SHARED}"))).await;
    assert_eq!((status, unknown), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND), "{b_key}");
    assert_eq!(b_key, no_key, "B's key answers as an unknown key");
    let (status, _, h) =
        call(&w.app, as_user("member-a", &format!("/viewer/open?key={}&session={SHARED}", w.key_a))).await;
    assert_eq!(
        (status, h["location"].to_str().ok()),
        (StatusCode::SEE_OTHER, Some(format!("/viewer/p/{}/player.html?session={SHARED}", w.a).as_str()))
    );

    // The first API routes: with the project named they answer for it; without, a reader of
    // several projects must name one (never the first project's session).
    let (status, row, _) = call(&w.app, as_admin_token(&format!("/api/v1/sessions/{SHARED}?project={b}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(row.contains("http://b.test/"), "{row}");
    let (status, body, _) = call(&w.app, as_admin_token(&format!("/api/v1/sessions/{SHARED}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // A reader of one project needs not name it.
    let (status, row, _) = call(&w.app, as_user("member-a", &format!("/api/v1/sessions/{SHARED}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(row.contains("http://a.test/"), "{row}");
}

/// What a route needs, for the table-driven test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Any caller who may read the project (`read_only` and up).
    Read,
    /// A member or owner.
    Member,
    /// An owner.
    Owner,
    /// An owner, and it destroys what the walk reads (a session, the project, a key): the walk
    /// checks who is refused, not the owner's success (tests/deletion.rs and tests/projects.rs
    /// do).
    OwnerDestroys,
    /// Not a project's route (ingest with its key, the public API document).
    NoProject,
    /// A server admin's route: 404 to everyone else.
    ServerAdmin,
    /// The caller's own account (any signed-in user; nobody else's data).
    OwnAccount,
}

/// Every API route and what it needs. A route in [`API_ROUTES`] missing here fails the test.
const EXPECTED: &[(&str, &str, Needs)] = &[
    ("POST", "/api/v1/ingest", Needs::NoProject),
    ("OPTIONS", "/api/v1/ingest", Needs::NoProject),
    ("GET", "/api/v1/openapi.json", Needs::NoProject),
    ("GET", "/api/v1/projects/{project}/sessions", Needs::Read),
    ("GET", "/api/v1/projects/{project}/sessions/{id}", Needs::Read),
    ("GET", "/api/v1/projects/{project}/sessions/{id}/events", Needs::Read),
    ("GET", "/api/v1/projects/{project}/sessions/{id}/snapshot", Needs::Read),
    ("GET", "/api/v1/projects/{project}/sessions/{id}/environment", Needs::Read),
    ("GET", "/api/v1/projects/{project}/errors", Needs::Read),
    ("GET", "/api/v1/projects/{project}/sessions/{id}/rrweb", Needs::Member),
    ("POST", "/api/v1/projects/{project}/import/rrweb", Needs::Member),
    ("GET", "/api/v1/sessions", Needs::Read),
    ("GET", "/api/v1/sessions/{id}", Needs::Read),
    ("GET", "/api/v1/sessions/{id}/events", Needs::Read),
    ("GET", "/api/v1/sessions/{id}/snapshot", Needs::Read),
    ("GET", "/api/v1/sessions/{id}/environment", Needs::Read),
    ("GET", "/api/v1/errors", Needs::Read),
    ("GET", "/api/v1/sessions/{id}/rrweb", Needs::Member),
    ("PUT", "/api/v1/projects/{project}/sourcemaps", Needs::Owner),
    ("GET", "/api/v1/projects/{project}/sourcemaps", Needs::Read),
    ("GET", "/api/v1/projects/{project}/sessions/{id}/symbolicated", Needs::Read),
    ("GET", "/api/v1/projects/{project}/sessions/{id}/compare", Needs::Read),
    ("GET", "/api/v1/projects/{project}/clickmap", Needs::Read),
    ("GET", "/api/v1/projects/{project}/members", Needs::Read),
    ("PUT", "/api/v1/projects/{project}/members/{user}", Needs::Owner),
    ("DELETE", "/api/v1/projects/{project}/members/{user}", Needs::Owner),
    ("GET", "/api/v1/projects/{project}/tokens", Needs::Owner),
    ("POST", "/api/v1/projects/{project}/tokens", Needs::Owner),
    ("DELETE", "/api/v1/projects/{project}/tokens/{token}", Needs::Owner),
    ("GET", "/api/v1/me", Needs::OwnAccount),
    ("POST", "/api/v1/me/password", Needs::OwnAccount),
    ("GET", "/api/v1/me/sign-ins", Needs::OwnAccount),
    ("DELETE", "/api/v1/me/sign-ins/{id}", Needs::OwnAccount),
    ("GET", "/api/v1/me/tokens", Needs::OwnAccount),
    ("POST", "/api/v1/me/tokens", Needs::OwnAccount),
    ("DELETE", "/api/v1/me/tokens/{token}", Needs::OwnAccount),
    ("GET", "/api/v1/admin/users", Needs::ServerAdmin),
    ("POST", "/api/v1/admin/users", Needs::ServerAdmin),
    ("PUT", "/api/v1/admin/users/{user}", Needs::ServerAdmin),
    ("POST", "/api/v1/admin/users/{user}/invite", Needs::ServerAdmin),
    ("GET", "/api/v1/admin/tokens", Needs::ServerAdmin),
    ("DELETE", "/api/v1/admin/tokens/{token}", Needs::ServerAdmin),
    ("GET", "/api/v1/recorder/settings", Needs::NoProject),
    ("OPTIONS", "/api/v1/recorder/settings", Needs::NoProject),
    ("GET", "/api/v1/projects", Needs::OwnAccount),
    ("POST", "/api/v1/projects", Needs::ServerAdmin),
    ("PATCH", "/api/v1/projects/{project}", Needs::Owner),
    ("GET", "/api/v1/projects/{project}/settings", Needs::Owner),
    ("PUT", "/api/v1/projects/{project}/settings", Needs::Owner),
    ("POST", "/api/v1/projects/{project}/keys", Needs::Owner),
    ("GET", "/api/v1/projects/{project}/audit", Needs::Owner),
    ("POST", "/api/v1/projects/{project}/erasure", Needs::Owner),
    ("DELETE", "/api/v1/projects/{project}/keys/{key}", Needs::OwnerDestroys),
    ("DELETE", "/api/v1/projects/{project}/sessions/{id}", Needs::OwnerDestroys),
    ("DELETE", "/api/v1/projects/{project}", Needs::OwnerDestroys),
    ("GET", "/api/v1/projects/{project}/sessions/{id}/comments", Needs::Read),
    ("POST", "/api/v1/projects/{project}/sessions/{id}/comments", Needs::Member),
    // Its author's or an owner's: the walk's comment is owner-a's (made in `world`), so members
    // are refused; the owner's deletion is tests/comments.rs's.
    ("DELETE", "/api/v1/projects/{project}/sessions/{id}/comments/{comment}", Needs::OwnerDestroys),
];

fn rrweb_recording() -> Vec<u8> {
    let node = json!({ "type": 0, "id": 1, "childNodes": [
        { "type": 2, "id": 2, "tagName": "html", "attributes": {}, "childNodes": [
            { "type": 2, "id": 3, "tagName": "body", "attributes": {}, "childNodes": [] } ] } ] });
    serde_json::to_vec(&json!([
        { "type": 4, "data": { "href": "https://import.test/", "width": 1000, "height": 700 }, "timestamp": T0 },
        { "type": 2, "data": { "node": node, "initialOffset": { "left": 0, "top": 0 } }, "timestamp": T0 + 5 },
    ]))
    .expect("json")
}

/// A request of a route's shape for project `project`, as `who` (a user's sign-in, or a
/// bearer token when it starts with `rpt_`). `{user}` is `guest` (a user the test adds and
/// removes), `{token}` is `token`.
fn request(method: &str, path: &str, project: i64, who: &str, token: i64) -> Request<Body> {
    let legacy = path.starts_with("/api/v1/sessions") || path == "/api/v1/errors";
    let mut uri = path
        .replace("{project}", &project.to_string())
        .replace("{id}", SHARED)
        .replace("{user}", "guest")
        .replace("{token}", &token.to_string())
        .replace("{key}", "no-such-key")
        .replace("{comment}", &COMMENT.to_string());
    if legacy {
        uri.push_str(&format!("?project={project}"));
    }
    // Release files are named by release and URL.
    if path.ends_with("/sourcemaps") {
        uri.push_str("?release=1&url=~/app.js");
    }
    // A click map names its page.
    if path.ends_with("/clickmap") {
        uri.push_str("?url=http://a.test/*");
    }
    let mut req = Request::builder().method(method).uri(uri);
    req = if who.starts_with("rpt_") {
        req.header("authorization", format!("Bearer {who}"))
    } else {
        req.header("cookie", format!("replay_login=cookie-{who}"))
    };
    let body = match (method, path) {
        (_, "/api/v1/projects/{project}/import/rrweb") => rrweb_recording(),
        ("PUT", p) if p.ends_with("/members/{user}") => br#"{"role":"read_only"}"#.to_vec(),
        ("POST", p) if p.ends_with("/tokens") => br#"{"name":"walk","scopes":["read"]}"#.to_vec(),
        ("POST", p) if p.ends_with("/keys") => br#"{"grace_secs":3600}"#.to_vec(),
        ("POST", p) if p.ends_with("/erasure") => br#"{"user":"nobody"}"#.to_vec(),
        ("POST", p) if p.ends_with("/comments") => br#"{"t":1000,"text":"walked"}"#.to_vec(),
        ("PATCH", _) => json!({ "name": format!("walked {project}") }).to_string().into_bytes(),
        ("POST" | "PUT", _) => b"{}".to_vec(),
        _ => return req.body(Body::empty()).expect("request"),
    };
    req.header("content-type", "application/json").body(Body::from(body)).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_by_role_and_token_scope_and_other_projects_are_404() {
    for storage in engines("every70") {
        every_route_answers_by_role_and_token_scope_and_other_projects_are_404_on(storage).await;
    }
}

async fn every_route_answers_by_role_and_token_scope_and_other_projects_are_404_on(storage: Arc<dyn Storage>) {
    let w = world(storage).await;
    let missing: Vec<String> = API_ROUTES
        .iter()
        .filter(|(m, p)| !EXPECTED.iter().any(|(em, ep, _)| em == m && ep == p))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(missing.is_empty(), "routes this test does not know what they need; add them to EXPECTED: {missing:?}");
    // A project token of A (it revokes itself during the walk: made again per use), and
    // tokens that read: one of A's project, one of member-a limited to A.
    let a_token = |name: &str, user: Option<&str>, scopes: &[&str]| {
        let secret = format!("rpt_{name}");
        w.storage
            .create_token(&replay_store::NewToken {
                token_hash: digest(&secret),
                name: name.into(),
                user: user.map(str::to_owned),
                project: Some(w.a),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            })
            .expect("token");
        secret
    };
    let project_read = a_token("project-read", None, &["read"]);
    let member_read = a_token("member-read", Some("member-a"), &["read"]);
    w.storage.put_user("guest", "$argon2id$unusable").expect("user");
    let roles = [("owner-a", Needs::Owner), ("member-a", Needs::Member), ("reader-a", Needs::Read)];
    let rank = |n: Needs| match n {
        Needs::Read => 0,
        Needs::Member => 1,
        Needs::Owner | Needs::OwnerDestroys => 2,
        _ => 3,
    };
    let mut checked = 0;
    for (method, path, needs) in EXPECTED {
        assert!(API_ROUTES.contains(&(method, path)), "{method} {path} is not routed any more");
        let token = w
            .storage
            .create_token(&replay_store::NewToken {
                token_hash: digest(&format!("walk-{method}-{path}")),
                name: "walked".into(),
                user: None,
                project: Some(w.a),
                scopes: vec!["read".into()],
            })
            .expect("token");
        match needs {
            Needs::NoProject => continue,
            Needs::ServerAdmin => {
                for user in ["owner-a", "member-a", "reader-a", "outsider", member_read.as_str(), project_read.as_str()]
                {
                    let (status, body, _) = call(&w.app, request(method, path, w.a, user, token)).await;
                    assert_eq!(status, StatusCode::NOT_FOUND, "{user} {method} {path}: {body}");
                }
                if *method == "GET" {
                    let (status, body, _) = call(&w.app, request(method, path, w.a, "admin", token)).await;
                    assert_eq!(status, StatusCode::OK, "admin {method} {path}: {body}");
                }
                continue;
            }
            Needs::OwnAccount => {
                if *method == "GET" {
                    for user in ["member-a", "outsider"] {
                        let (status, body, _) = call(&w.app, request(method, path, w.a, user, token)).await;
                        assert_eq!(status, StatusCode::OK, "{user} {method} {path}: {body}");
                        assert!(!body.contains("bravo") && !body.contains("owner-a"), "{user} {method} {path}: {body}");
                    }
                }
                continue;
            }
            _ => {}
        }
        for (user, role) in roles {
            // Their own project: answered by role.
            let destroys = *needs == Needs::OwnerDestroys && rank(role) >= rank(*needs);
            if !destroys {
                let (status, body, _) = call(&w.app, request(method, path, w.a, user, token)).await;
                assert!(
                    !body.contains("b.test") && !body.contains("bravo"),
                    "{user} {method} {path}: B's data: {body}"
                );
                if rank(role) >= rank(*needs) {
                    assert!(status.is_success(), "{user} ({role:?}) {method} {path} in A: {status} {body}");
                } else {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{user} ({role:?}) {method} {path} in A: {body}");
                }
            }
            // Another project: 404, whatever the role, as for a project that does not exist.
            for other in [w.b, w.b + 100] {
                let (status, body, _) = call(&w.app, request(method, path, other, user, token)).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{user} {method} {path} in project {other}: {body}");
                assert!(!body.contains("b.test") && !body.contains("bravo"), "{user} {method} {path}: {body}");
                checked += 1;
            }
        }
        // Tokens of A: never B, and within A at most their scope (`read`: watch and export).
        for secret in [&project_read, &member_read] {
            let (status, body, _) = call(&w.app, request(method, path, w.b, secret, token)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "token {secret} {method} {path} in B: {body}");
            let (status, body, _) = call(&w.app, request(method, path, w.a, secret, token)).await;
            let reads = *method == "GET" && !matches!(needs, Needs::Owner | Needs::OwnerDestroys);
            if reads {
                assert!(status.is_success(), "token {secret} {method} {path} in A: {status} {body}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "token {secret} {method} {path} in A: {body}");
            }
        }
        // A user of no project gets 404 in both.
        for project in [w.a, w.b] {
            let (status, body, _) = call(&w.app, request(method, path, project, "outsider", token)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "outsider {method} {path} in {project}: {body}");
        }
        // The server admin reads both.
        if *needs == Needs::OwnerDestroys {
            continue;
        }
        let (status, body, _) = call(&w.app, request(method, path, w.b, "admin", token)).await;
        assert!(
            status.is_success() || status == StatusCode::NOT_FOUND && path.contains("{token}"),
            "admin {method} {path} in B: {status} {body}"
        );
    }
    assert!(checked >= 20 * 3 * 2, "{checked}");
    // Only the admin's imports reached B; A's members' went to A.
    let b_sessions = w.storage.sessions(w.b, 50, 0).expect("q");
    assert_eq!(b_sessions.iter().filter(|s| s.url.contains("b.test")).count(), 2);
    assert_eq!(b_sessions.iter().filter(|s| s.url.contains("import.test")).count(), 1, "the admin's one import");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_pages_of_a_project_are_404_to_non_members_and_their_links_stay_in_it() {
    for storage in engines("viewer75") {
        viewer_pages_of_a_project_are_404_to_non_members_and_their_links_stay_in_it_on(storage).await;
    }
}

async fn viewer_pages_of_a_project_are_404_to_non_members_and_their_links_stay_in_it_on(storage: Arc<dyn Storage>) {
    let w = world(storage).await;
    let delete = format!("/delete?session={SHARED}");
    let (player, export) = (format!("/player.html?session={SHARED}"), format!("/export/{SHARED}"));
    let share = format!("/sessions/{SHARED}?t=5");
    for page in ["/", "/errors", &player, &export, "/settings", "/audit", &delete, &share] {
        for user in ["member-a", "outsider"] {
            let (status, body, _) = call(&w.app, as_user(user, &format!("/viewer/p/{}{page}", w.b))).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{user} {page} of B: {body}");
            assert!(!body.contains("b.test") && !body.contains("bravo"), "{body}");
        }
    }
    let (status, body, _) = call(&w.app, as_user("member-a", &format!("/viewer/p/{}/export/{SHARED}", w.a))).await;
    // (Without the web build in this binary the export has no player to inline.)
    assert!(status == StatusCode::OK || body.contains("viewer build not found"), "a member exports: {status} {body}");
    let (status, _, _) = call(&w.app, as_user("reader-a", &format!("/viewer/p/{}/export/{SHARED}", w.a))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "read-only does not");
    // An owner's pages: 403 to a member of the project, shown to its owner, and the owner's
    // header links to the settings (a member's does not).
    for page in ["/settings", "/audit", &delete] {
        let (status, _, _) = call(&w.app, as_user("member-a", &format!("/viewer/p/{}{page}", w.a))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "member-a {page} of A");
        let (status, body, _) = call(&w.app, as_user("owner-a", &format!("/viewer/p/{}{page}", w.a))).await;
        assert_eq!(status, StatusCode::OK, "owner-a {page} of A: {body}");
        assert!(!body.contains("b.test") && !body.contains("bravo"), "{body}");
        assert!(body.contains(&format!("href=\"/viewer/p/{}/settings\"", w.a)) || page == "/settings", "{body}");
    }
    // The list of projects: the caller's only, the create form for server admins only.
    let (_, html, _) = call(&w.app, as_user("owner-a", "/viewer/projects")).await;
    assert!(html.contains("alpha") && !html.contains("bravo") && !html.contains("create-project"), "{html}");
    let (_, html, _) = call(&w.app, as_user("admin", "/viewer/projects")).await;
    assert!(html.contains("alpha") && html.contains("bravo") && html.contains("create-project"), "{html}");
    // The list shows only the reader's projects in the switcher.
    let (_, html, _) = call(&w.app, as_user("member-a", &format!("/viewer/p/{}/", w.a))).await;
    assert!(html.contains("alpha") && !html.contains("bravo"), "{html}");
    // An old link to B's session does not open anything for a member of A only.
    let (status, _, _) = call(&w.app, as_user("member-a", "/viewer/player.html?session=only-b")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without a sign-in, a project page asks for one.
    let req = Request::get(format!("/viewer/p/{}/", w.a)).body(Body::empty()).expect("req");
    let (status, _, h) = call(&w.app, req).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(h["location"].to_str().expect("ascii").starts_with("/login?next="));
}
