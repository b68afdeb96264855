//! Users, roles and API tokens (issue 14 items 1 and 4) through the HTTP app: an admin invites a
//! user, the invitation sets the password once, a role opens a project, the user changes their
//! password and ends their own sign-ins, a disabled user is signed out, and tokens read within
//! their scopes until revoked.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, meta, page_nodes, snapshot, text};
use replay_protocol::{Batch, encode_batch};
use replay_server::{AppState, Config, app};
use replay_store::{SqliteStorage, Storage};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, String, axum::http::HeaderMap) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let (status, headers) = (res.status(), res.headers().clone());
    let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

fn setup() -> (axum::Router, i64) {
    let storage = SqliteStorage::in_memory().expect("db");
    let project = storage.create_project("shop").expect("project");
    replay_server::auth::bootstrap(&storage, Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    let app = app(AppState::new(Arc::new(storage) as Arc<dyn Storage>, Config::default()));
    let _ = project.ingest_key;
    (app, project.id)
}

async fn ingest(app: &axum::Router, key: &str) {
    let mut b = Batch::new("sess-1", "page-1", 0, 1_700_000_040_000);
    b.events = vec![at(0, meta("http://shop.test/")), at(0, snapshot(page_nodes(&[], [text(5, 4, "hi")])))];
    let req =
        Request::post("/api/v1/ingest").header("x-replay-key", key).body(Body::from(encode_batch(&b).expect("encode")));
    assert_eq!(call(app, req.expect("req")).await.0, StatusCode::OK);
}

/// A JSON request as `auth` (`Bearer ...` or a `cookie` pair).
fn json_req(method: &str, path: &str, auth: &str, body: Option<Value>) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    req = if auth.starts_with("Bearer ") { req.header("authorization", auth) } else { req.header("cookie", auth) };
    match body {
        Some(v) => req
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&v).expect("json")))
            .expect("req"),
        None => req.body(Body::empty()).expect("req"),
    }
}

fn admin() -> String {
    format!("Bearer {TOKEN}")
}

/// Signs in through the form like a browser; the login cookie pair, or `None` when refused.
async fn sign_in(app: &axum::Router, user: &str, password: &str) -> Option<String> {
    let res = app.clone().oneshot(Request::get("/login").body(Body::empty()).expect("req")).await.expect("ok");
    let form_cookie = res.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let body = String::from_utf8(res.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8");
    const FIELD: &str = "name=\"form_token\" value=\"";
    let at = body.find(FIELD).expect("token") + FIELD.len();
    let token = body[at..].split('"').next().expect("value");
    let req = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &form_cookie)
        .body(Body::from(format!("username={user}&password={password}&next=%2Fviewer%2F&form_token={token}")))
        .expect("req");
    let res = app.clone().oneshot(req).await.expect("ok");
    let cookie = res.headers().get("set-cookie")?.to_str().ok()?.split(';').next()?.to_owned();
    Some(cookie)
}

#[tokio::test]
async fn an_invited_member_signs_in_reads_their_project_only_and_manages_their_sign_ins() {
    let (app, project) = setup();
    let projects: Value =
        serde_json::from_str(&call(&app, json_req("GET", "/api/v1/me", "Bearer x", None)).await.1).unwrap_or_default();
    assert!(projects.get("user").is_none(), "a made-up token is nobody");
    // The admin invites ann: a one-time link, stored hashed.
    let (status, body, _) =
        call(&app, json_req("POST", "/api/v1/admin/users", &admin(), Some(json!({ "name": "ann" })))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: Value = serde_json::from_str(&body).expect("json");
    let link = created["invitation"]["path"].as_str().expect("an invitation").to_owned();
    assert!(link.starts_with("/invite/") && link.len() > 40, "{link}");
    assert_eq!(sign_in(&app, "ann", "whatever-password").await, None, "no password before the invitation");
    let (status, page, _) = call(&app, Request::get(link.as_str()).body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Set password"), "{page}");
    let set = |pw: &str| {
        Request::post(link.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("password={pw}")))
            .expect("req")
    };
    let (status, page, _) = call(&app, set("short")).await;
    assert_eq!(status, StatusCode::OK, "a short password is refused without using the link up");
    assert!(page.contains("at least"), "{page}");
    let (status, _, h) = call(&app, set("ann-password-1")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(h["location"].to_str().expect("ascii").starts_with("/login"));
    let (_, page, _) = call(&app, set("ann-password-2")).await;
    assert!(page.contains("was used or has expired"), "used once: {page}");

    // Signed in, ann is in no project: 404 there, nothing listed.
    let ann = sign_in(&app, "ann", "ann-password-1").await.expect("signed in");
    let sessions = format!("/api/v1/projects/{project}/sessions");
    assert_eq!(call(&app, json_req("GET", &sessions, &ann, None)).await.0, StatusCode::NOT_FOUND);
    // An owner (here the admin) makes her a read-only member: she reads, cannot export.
    let member = format!("/api/v1/projects/{project}/members/ann");
    let (status, body, _) = call(&app, json_req("PUT", &member, &admin(), Some(json!({ "role": "read_only" })))).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(call(&app, json_req("GET", &sessions, &ann, None)).await.0, StatusCode::OK);
    let (_, me, _) = call(&app, json_req("GET", "/api/v1/me", &ann, None)).await;
    let me: Value = serde_json::from_str(&me).expect("json");
    assert_eq!(me["projects"][0]["role"], "read_only", "{me}");
    let (status, _, _) = call(&app, json_req("PUT", &member, &ann, Some(json!({ "role": "owner" })))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a read-only member does not promote herself");

    // Her sign-ins: she sees both, ends the other one; this one keeps working.
    let ann2 = sign_in(&app, "ann", "ann-password-1").await.expect("second sign-in");
    let (_, list, _) = call(&app, json_req("GET", "/api/v1/me/sign-ins", &ann, None)).await;
    let list: Vec<Value> = serde_json::from_str(&list).expect("json");
    assert_eq!(list.len(), 2, "{list:?}");
    let other = list.iter().find(|s| s["current"] == false).expect("the other sign-in");
    let other_id = other["id"].as_str().expect("id");
    let (status, _, _) = call(&app, json_req("DELETE", &format!("/api/v1/me/sign-ins/{other_id}"), &ann, None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, json_req("GET", &sessions, &ann2, None)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, json_req("GET", &sessions, &ann, None)).await.0, StatusCode::OK);
    // Nobody ends another user's sign-in: the admin's sign-in id is not hers.
    let admin_cookie = sign_in(&app, "admin", "viewer-password").await.expect("admin");
    let (_, admins, _) = call(&app, json_req("GET", "/api/v1/me/sign-ins", &admin_cookie, None)).await;
    let admins: Vec<Value> = serde_json::from_str(&admins).expect("json");
    let admin_id = admins[0]["id"].as_str().expect("id");
    let (status, _, _) = call(&app, json_req("DELETE", &format!("/api/v1/me/sign-ins/{admin_id}"), &ann, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Her password: the wrong current one is refused; a change signs her out everywhere.
    let change = |current: &str| json!({ "current": current, "new": "ann-password-new" });
    let (status, _, _) =
        call(&app, json_req("POST", "/api/v1/me/password", &ann, Some(change("nope-nope-nope")))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) =
        call(&app, json_req("POST", "/api/v1/me/password", &ann, Some(change("ann-password-1")))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, json_req("GET", &sessions, &ann, None)).await.0, StatusCode::UNAUTHORIZED);
    let ann = sign_in(&app, "ann", "ann-password-new").await.expect("the new password");

    // Disabled by the admin: her sign-ins end and she cannot sign in; enabled, she can.
    let (status, _, _) =
        call(&app, json_req("PUT", "/api/v1/admin/users/ann", &admin(), Some(json!({ "disabled": true })))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(call(&app, json_req("GET", &sessions, &ann, None)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&app, "ann", "ann-password-new").await, None);
    call(&app, json_req("PUT", "/api/v1/admin/users/ann", &admin(), Some(json!({ "disabled": false })))).await;
    assert!(sign_in(&app, "ann", "ann-password-new").await.is_some());
    // Only admins see the users; the admin cannot disable themselves.
    let ann = sign_in(&app, "ann", "ann-password-new").await.expect("signed in");
    assert_eq!(call(&app, json_req("GET", "/api/v1/admin/users", &ann, None)).await.0, StatusCode::NOT_FOUND);
    let (status, _, _) = call(&app, json_req("GET", "/viewer/admin/users", &ann, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, page, _) = call(&app, json_req("GET", "/viewer/admin/users", &admin_cookie, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-user=\"ann\"") && page.contains("shop (read_only)"), "{page}");
    let (status, _, _) =
        call(&app, json_req("PUT", "/api/v1/admin/users/admin", &admin_cookie, Some(json!({ "disabled": true }))))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, page, _) = call(&app, json_req("GET", "/viewer/account", &ann, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Account ann") && page.contains("(this one)"), "{page}");
}

#[tokio::test]
async fn tokens_read_within_their_scopes_show_their_last_use_and_stop_when_revoked() {
    let storage = SqliteStorage::in_memory().expect("db");
    let a = storage.create_project("a").expect("project");
    let b = storage.create_project("b").expect("project");
    replay_server::auth::bootstrap(&storage, Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    let app = app(AppState::new(Arc::new(storage) as Arc<dyn Storage>, Config::default()));
    ingest(&app, &a.ingest_key).await;
    ingest(&app, &b.ingest_key).await;
    let admin_cookie = sign_in(&app, "admin", "viewer-password").await.expect("admin");
    // A token of the admin limited to project a, reading only.
    let (status, body, _) = call(
        &app,
        json_req(
            "POST",
            "/api/v1/me/tokens",
            &admin_cookie,
            Some(json!({ "name": "ci", "scopes": ["read"], "project": a.id })),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let made: Value = serde_json::from_str(&body).expect("json");
    let secret = made["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("rpt_"));
    assert!(!body.contains("token_hash"), "only the secret, once");
    let bearer = format!("Bearer {secret}");
    let read = |p: i64| json_req("GET", &format!("/api/v1/projects/{p}/sessions/sess-1"), &bearer, None);
    assert_eq!(call(&app, read(a.id)).await.0, StatusCode::OK);
    assert_eq!(call(&app, read(b.id)).await.0, StatusCode::NOT_FOUND, "limited to project a");
    let (status, _, _) = call(&app, json_req("GET", &format!("/api/v1/projects/{}/tokens", a.id), &bearer, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "read does not manage");
    assert_eq!(call(&app, json_req("GET", "/api/v1/admin/users", &bearer, None)).await.0, StatusCode::NOT_FOUND);
    // The list shows when it was last used, never its secret.
    let (_, list, _) = call(&app, json_req("GET", "/api/v1/me/tokens", &admin_cookie, None)).await;
    let list: Vec<Value> = serde_json::from_str(&list).expect("json");
    assert!(list[0]["last_used_ms"].as_u64().is_some(), "{list:?}");
    let (_, page, _) = call(&app, json_req("GET", "/viewer/account", &admin_cookie, None)).await;
    assert!(page.contains("data-token=") && !page.contains(&secret), "{page}");
    // A project token made by an owner reaches its project only.
    let (status, body, _) = call(
        &app,
        json_req(
            "POST",
            &format!("/api/v1/projects/{}/tokens", b.id),
            &admin(),
            Some(json!({ "name": "b", "scopes": ["read"] })),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let b_secret: Value = serde_json::from_str(&body).expect("json");
    let b_bearer = format!("Bearer {}", b_secret["secret"].as_str().expect("secret"));
    let read_b = |p: i64| json_req("GET", &format!("/api/v1/projects/{p}/sessions"), &b_bearer, None);
    assert_eq!(call(&app, read_b(b.id)).await.0, StatusCode::OK);
    assert_eq!(call(&app, read_b(a.id)).await.0, StatusCode::NOT_FOUND);
    // Tokens make no tokens: a `manage` token (a project's, or a user's limited to the project)
    // minted project tokens that outlived its revocation and its user.
    let (status, body, _) = call(
        &app,
        json_req(
            "POST",
            &format!("/api/v1/projects/{}/tokens", b.id),
            &admin(),
            Some(json!({ "name": "m", "scopes": ["read", "manage"] })),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let m: Value = serde_json::from_str(&body).expect("json");
    let m_bearer = format!("Bearer {}", m["secret"].as_str().expect("secret"));
    let mint = json!({ "name": "child", "scopes": ["read"] });
    let (status, body, _) =
        call(&app, json_req("POST", &format!("/api/v1/projects/{}/tokens", b.id), &m_bearer, Some(mint))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body, _) = call(
        &app,
        json_req(
            "POST",
            "/api/v1/me/tokens",
            &admin_cookie,
            Some(json!({ "name": "own-b", "scopes": ["read", "manage"], "project": b.id })),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let own_b: Value = serde_json::from_str(&body).expect("json");
    let own_b_bearer = format!("Bearer {}", own_b["secret"].as_str().expect("secret"));
    let mint = json!({ "name": "child", "scopes": ["read"] });
    let (status, _, _) =
        call(&app, json_req("POST", &format!("/api/v1/projects/{}/tokens", b.id), &own_b_bearer, Some(mint))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A token limited to a project does not act on its user's whole account either.
    let (status, _, _) = call(&app, json_req("DELETE", "/api/v1/me/sign-ins/any", &own_b_bearer, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let id_a = made["token"]["id"].as_i64().expect("id");
    let (status, _, _) =
        call(&app, json_req("DELETE", &format!("/api/v1/me/tokens/{id_a}"), &own_b_bearer, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "it may not revoke its user's token for project a");
    // Scopes a user may not give are refused; the admin scope is for admins' own tokens.
    let (status, _, _) = call(
        &app,
        json_req(
            "POST",
            &format!("/api/v1/projects/{}/tokens", b.id),
            &admin(),
            Some(json!({ "name": "x", "scopes": ["admin"] })),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Server administration cannot be limited to one project: an admin's own token asking for
    // both is refused, and one made before that rule (stored with both) administers nothing.
    let (status, body, _) = call(
        &app,
        json_req(
            "POST",
            "/api/v1/me/tokens",
            &admin_cookie,
            Some(json!({ "name": "x", "scopes": ["admin"], "project": a.id })),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body, _) = call(
        &app,
        json_req("POST", "/api/v1/me/tokens", &admin_cookie, Some(json!({ "name": "full", "scopes": ["admin"] }))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "an admin's own token may administer: {body}");
    let full: Value = serde_json::from_str(&body).expect("json");
    let full_bearer = format!("Bearer {}", full["secret"].as_str().expect("secret"));
    assert_eq!(call(&app, json_req("GET", "/api/v1/admin/users", &full_bearer, None)).await.0, StatusCode::OK);
    // A read-only token may not change its user's account (end sign-ins, revoke tokens).
    let id = made["token"]["id"].as_i64().expect("id");
    let (status, _, _) = call(&app, json_req("DELETE", &format!("/api/v1/me/tokens/{id}"), &bearer, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(&app, json_req("DELETE", "/api/v1/me/sign-ins/any", &bearer, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(call(&app, read(a.id)).await.0, StatusCode::OK, "still valid");
    // Revoked: refused at once.
    let (status, _, _) = call(&app, json_req("DELETE", &format!("/api/v1/me/tokens/{id}"), &admin_cookie, None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, read(a.id)).await.0, StatusCode::UNAUTHORIZED);
    // The bootstrap admin token still works (it only bootstraps).
    assert_eq!(call(&app, json_req("GET", "/api/v1/admin/users", &admin(), None)).await.0, StatusCode::OK);
}

/// Sign-in posts without the form's token (another site's, a script's) do not spend the
/// account's budget of attempts: they used to, and a few a minute locked its owner out.
#[tokio::test]
async fn posts_without_a_form_token_do_not_lock_the_account_out() {
    let (app, _) = setup();
    for _ in 0..30 {
        let req = Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("username=admin&password=wrong&next=%2Fviewer%2F"))
            .expect("req");
        let res = app.clone().oneshot(req).await.expect("ok");
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "sent back to the form");
    }
    assert!(sign_in(&app, "admin", "viewer-password").await.is_some(), "the owner still signs in");
}

/// An app whose trusted proxy is 127.0.0.1 (see [`with_peer`]), with the `admin` account.
fn behind_a_proxy() -> axum::Router {
    let storage = SqliteStorage::in_memory().expect("db");
    storage.create_project("p").expect("project");
    replay_server::auth::bootstrap(&storage, Some(TOKEN), Some("viewer-password")).expect("bootstrap");
    let trusted = vec!["127.0.0.1/32".parse().expect("net")];
    let config = Config { trusted_proxies: trusted, ..Config::default() };
    app(AppState::new(Arc::new(storage) as Arc<dyn Storage>, config))
}

/// Signs in as `admin` with `password` through the proxy, like a browser: fetches the form
/// (its cookie and token), then posts it, both with the proxy's `headers`. The form cookie as
/// set, and the answer to the post.
async fn sign_in_through_proxy(
    app: &axum::Router,
    headers: &[(&str, &str)],
    password: &str,
) -> (String, axum::response::Response) {
    let with = |mut req: axum::http::request::Builder| {
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req
    };
    let form = app.clone().oneshot(with_peer(with(Request::get("/login")).body(Body::empty()).expect("req")));
    let form = form.await.expect("ok");
    let cookie = form.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let html = String::from_utf8(form.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8");
    let token = html.split("name=\"form_token\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("token");
    let body = format!("username=admin&password={password}&next=%2Fviewer%2F&form_token={token}");
    let post = with(Request::post("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &cookie)
        .body(Body::from(body))
        .expect("req");
    (cookie, app.clone().oneshot(with_peer(post)).await.expect("ok"))
}

/// Wrong passwords for `admin` from one address, with valid form tokens (anyone can fetch the
/// form), spend that address's budget only: the owner signs in from another address.
#[tokio::test]
async fn wrong_passwords_from_one_address_do_not_lock_the_owner_out() {
    let app = behind_a_proxy();
    let from = |ip: &'static str, password: &'static str| {
        let app = app.clone();
        async move { sign_in_through_proxy(&app, &[("x-forwarded-for", ip)], password).await.1.status() }
    };
    let mut refused = false;
    for _ in 0..15 {
        refused |= from("203.0.113.9", "wrong").await == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(refused, "the guessing address runs out of attempts");
    assert_eq!(from("198.51.100.7", "viewer-password").await, StatusCode::SEE_OTHER, "the owner signs in");
}

/// A request as if it came from 127.0.0.1 (a trusted proxy in these tests).
fn with_peer(mut req: Request<Body>) -> Request<Body> {
    req.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))));
    req
}

/// Over HTTPS (a trusted proxy says so) the server sets `__Host-` cookies only, and a plain-named
/// login cookie, which plain HTTP or a sibling host could plant, signs nobody in.
#[tokio::test]
async fn over_https_a_plain_named_login_cookie_is_ignored() {
    let app = behind_a_proxy();
    let https = |req: axum::http::request::Builder| req.header("x-forwarded-proto", "https");
    let (cookie, signed_in) = sign_in_through_proxy(&app, &[("x-forwarded-proto", "https")], "viewer-password").await;
    assert!(cookie.starts_with("__Host-replay_form="), "{cookie}");
    let login = signed_in.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let value = login.strip_prefix("__Host-replay_login=").expect("a __Host- login cookie").to_owned();
    let me = |cookie: String, over_https: bool| {
        let app = app.clone();
        async move {
            let req = Request::get("/api/v1/me").header("cookie", cookie);
            let req = if over_https { https(req) } else { req };
            app.oneshot(with_peer(req.body(Body::empty()).expect("req"))).await.expect("ok").status()
        }
    };
    assert_eq!(me(format!("__Host-replay_login={value}"), true).await, StatusCode::OK);
    assert_eq!(me(format!("replay_login={value}"), true).await, StatusCode::UNAUTHORIZED, "planted over HTTPS");
    // Over plain HTTP the plain name is the one the server sets; the server's internal mark of
    // HTTPS requests is its own (a client's is dropped).
    assert_eq!(me(format!("replay_login={value}"), false).await, StatusCode::OK);
    let forged = Request::get("/api/v1/me").header("cookie", format!("replay_login={value}"));
    let forged = forged.header("x-replay-internal-https", "1").body(Body::empty()).expect("req");
    assert_eq!(app.clone().oneshot(with_peer(forged)).await.expect("ok").status(), StatusCode::OK);
}
