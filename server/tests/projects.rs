//! Projects from the API and the viewer, driven without sockets: create, rename, delete, the
//! settings (origins, quotas, the recorder's defaults, retention), key rotation with a grace
//! period and revocation as ingest sees them, the audit log of every change, and the refusals
//! (no caller, a member who is not an owner, creation by anyone but a server admin, a project
//! the caller is not in, bad values, forms without this
//! server's token).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use replay_protocol::test_util::{at, meta};
use replay_protocol::{Batch, encode_batch};
use replay_server::{AppState, Config, app};
use replay_store::{Accounts, BatchBody, BatchSummary, SqliteStorage, Storage};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token";
const T0: u64 = 1_700_000_040_000;

fn setup() -> (axum::Router, Arc<SqliteStorage>, i64) {
    let storage = Arc::new(SqliteStorage::in_memory().expect("db"));
    let p = storage.create_project("shop").expect("project");
    replay_server::auth::bootstrap(storage.as_ref(), Some(TOKEN), Some("admin-password")).expect("bootstrap");
    storage.put_user("bob", &replay_server::auth::hash_password("bob-password").expect("hash")).expect("user");
    storage.set_membership(p.id, "bob", Some("member")).expect("bob is a member of shop");
    storage.put_user("olga", &replay_server::auth::hash_password("olga-password").expect("hash")).expect("user");
    storage.set_membership(p.id, "olga", Some("owner")).expect("olga owns shop");
    let app = app(AppState::new(Arc::clone(&storage) as Arc<dyn Storage>, Config::default()));
    (app, storage, p.id)
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn admin(method: &str, path: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(if body.is_null() { Body::empty() } else { Body::from(body.to_string()) })
        .expect("request")
}

async fn ingest(app: &axum::Router, key: &str, seq: u32) -> StatusCode {
    let mut b = Batch::new("sess", "page", seq, T0 + u64::from(seq));
    b.events = vec![at(0, meta("http://shop.test/"))];
    let req = Request::post("/api/v1/ingest")
        .header("x-replay-key", key)
        .body(Body::from(encode_batch(&b).expect("encode")))
        .expect("request");
    app.clone().oneshot(req).await.expect("infallible").status()
}

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

#[tokio::test]
async fn projects_are_created_renamed_configured_and_deleted_through_the_api() {
    let (app, _, first) = setup();
    let (status, created) = call(&app, admin("POST", "/api/v1/projects", json!({ "name": " blog " }))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["name"], "blog");
    let (id, key) = (created["id"].as_i64().expect("id"), created["ingest_key"].as_str().expect("key").to_owned());
    assert_eq!(ingest(&app, &key, 0).await, StatusCode::OK, "the new key records at once");
    assert_eq!(call(&app, admin("POST", "/api/v1/projects", json!({ "name": "blog" }))).await.0, StatusCode::CONFLICT);
    assert_eq!(call(&app, admin("POST", "/api/v1/projects", json!({ "name": "" }))).await.0, StatusCode::BAD_REQUEST);
    let (_, list) = call(&app, admin("GET", "/api/v1/projects", Value::Null)).await;
    assert_eq!(list["projects"], json!([{ "id": first, "name": "shop" }, { "id": id, "name": "blog" }]));

    let path = format!("/api/v1/projects/{id}");
    let (status, renamed) = call(&app, admin("PATCH", &path, json!({ "name": "journal" }))).await;
    assert_eq!((status, renamed["name"].as_str()), (StatusCode::OK, Some("journal")));
    assert_eq!(call(&app, admin("PATCH", &path, json!({ "name": "shop" }))).await.0, StatusCode::CONFLICT);
    assert_eq!(
        call(&app, admin("PATCH", "/api/v1/projects/999", json!({ "name": "x" }))).await.0,
        StatusCode::NOT_FOUND
    );

    // Settings: what is stored comes back; origins apply to ingest at once.
    let settings = format!("/api/v1/projects/{id}/settings");
    let update = json!({
        "allowed_origins": ["https://journal.test"],
        "quota_bytes_per_day": 1000000,
        "settings": { "sample_rate": 0.5, "mode": "buffer", "mask_all_text": true,
                      "network_allow_list": ["https://api.journal.test/"], "retention_days": 7 }
    });
    let (status, view) = call(&app, admin("PUT", &settings, update)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let (_, read) = call(&app, admin("GET", &settings, Value::Null)).await;
    assert_eq!(read, view);
    assert_eq!(read["allowed_origins"], json!(["https://journal.test"]));
    assert_eq!(read["quota_bytes_per_day"], 1000000);
    assert_eq!(read["quota_sessions_per_day"], Value::Null, "the server's");
    assert_eq!(read["settings"]["mode"], "buffer");
    assert_eq!(read["settings"]["mask_all_text"], true);
    assert_eq!(read["settings"]["freeze_timeout_secs"], Value::Null);
    let originless = ingest(&app, &key, 1).await;
    assert_eq!(originless, StatusCode::FORBIDDEN, "an allow-list refuses requests without an Origin");
    for bad in [
        json!({ "settings": { "sample_rate": 2 } }),
        json!({ "allowed_origins": ["journal.test"] }),
        json!({ "settings": { "network_allow_list": ["javascript:x"] } }),
        json!({ "settings": { "retention_days": 0 } }),
        json!("not an object"),
    ] {
        assert_eq!(call(&app, admin("PUT", &settings, bad.clone())).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(call(&app, admin("GET", &settings, Value::Null)).await.1, view, "refused changes change nothing");

    // Members and project tokens: their changes are logged too.
    let member = format!("/api/v1/projects/{id}/members/bob");
    assert_eq!(call(&app, admin("PUT", &member, json!({ "role": "read_only" }))).await.0, StatusCode::NO_CONTENT);
    let tokens = format!("/api/v1/projects/{id}/tokens");
    let (status, made) = call(&app, admin("POST", &tokens, json!({ "name": "ci", "scopes": ["read"] }))).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let token_id = made["token"]["id"].as_i64().expect("token id");
    let revoke = format!("{tokens}/{token_id}");
    assert_eq!(call(&app, admin("DELETE", &revoke, Value::Null)).await.0, StatusCode::NO_CONTENT);

    // Every change is in the project's audit log, with what changed, and who did it.
    let (_, log) = call(&app, admin("GET", &format!("/api/v1/projects/{id}/audit?limit=100"), Value::Null)).await;
    let entries = log["entries"].as_array().expect("entries");
    let has = |action: &str, target: &str| entries.iter().any(|e| e["action"] == action && e["target"] == target);
    assert!(has("project.create", "blog") && has("project.rename", "journal"), "{log}");
    assert!(has("project.settings", "allowed_origins") && has("project.settings", "mask_all_text"), "{log}");
    let mode = entries.iter().find(|e| e["target"] == "mode").expect("mode change");
    assert_eq!(mode["detail"], "default → Buffer");
    let role = entries.iter().find(|e| e["action"] == "member.role").expect("role change");
    assert_eq!((role["target"].as_str(), role["detail"].as_str()), (Some("bob"), Some("read_only")));
    let token_target = format!("token:{token_id}");
    assert!(has("token.create", &token_target) && has("token.revoke", &token_target), "{log}");
    assert!(entries.iter().all(|e| e["actor"] == "admin-token"), "{log}");

    // Deleting the project deletes its sessions and ends its keys.
    assert_eq!(call(&app, admin("DELETE", &path, Value::Null)).await.0, StatusCode::OK);
    assert_eq!(call(&app, admin("DELETE", &path, Value::Null)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&app, admin("GET", &settings, Value::Null)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(ingest(&app, &key, 2).await, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&app, admin("GET", &format!("/api/v1/projects/{id}/sessions"), Value::Null)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_rotated_key_works_through_its_grace_period_and_a_revoked_one_is_refused() {
    let (app, storage, project) = setup();
    let old = storage.projects().expect("list")[0].ingest_key.clone();
    let keys = format!("/api/v1/projects/{project}/keys");
    let (status, rotated) = call(&app, admin("POST", &keys, json!({ "grace_secs": 3600 }))).await;
    assert_eq!(status, StatusCode::OK);
    let new = rotated["key"].as_str().expect("key").to_owned();
    assert_ne!(new, old);
    assert_eq!(ingest(&app, &new, 0).await, StatusCode::OK);
    assert_eq!(ingest(&app, &old, 1).await, StatusCode::OK, "the old key works through the grace period");
    let (_, view) = call(&app, admin("GET", &format!("/api/v1/projects/{project}/settings"), Value::Null)).await;
    assert_eq!(view["ingest_key"], new.as_str());
    assert_eq!(view["keys"][1]["key"], old.as_str());
    assert!(view["keys"][1]["expires_ms"].is_u64() && view["keys"][1]["live"] == true, "{view}");

    let (status, _) = call(&app, admin("DELETE", &format!("{keys}/{old}"), Value::Null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ingest(&app, &old, 2).await, StatusCode::UNAUTHORIZED, "revoked: refused at once");
    assert_eq!(call(&app, admin("DELETE", &format!("{keys}/{old}"), Value::Null)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&app, admin("POST", &keys, json!({ "grace_secs": 99_999_999 }))).await.0, StatusCode::BAD_REQUEST);
    // A rotation without grace ends the other keys now.
    let (_, again) = call(&app, admin("POST", &keys, json!({ "grace_secs": 0 }))).await;
    assert_eq!(ingest(&app, &new, 3).await, StatusCode::UNAUTHORIZED);
    assert_eq!(ingest(&app, again["key"].as_str().expect("key"), 3).await, StatusCode::OK);
}

#[tokio::test]
async fn project_administration_is_its_owners_and_creation_the_server_admins() {
    let (app, _, project) = setup();
    let bob = sign_in(&app, "bob", "bob-password").await;
    let routes = [
        ("PATCH", format!("/api/v1/projects/{project}"), json!({ "name": "x" })),
        ("DELETE", format!("/api/v1/projects/{project}"), Value::Null),
        ("GET", format!("/api/v1/projects/{project}/settings"), Value::Null),
        ("PUT", format!("/api/v1/projects/{project}/settings"), json!({})),
        ("POST", format!("/api/v1/projects/{project}/keys"), json!({ "grace_secs": 0 })),
        ("DELETE", format!("/api/v1/projects/{project}/keys/whatever"), Value::Null),
    ];
    for (method, path, body) in &routes {
        let req = |cookie: Option<&str>| {
            let mut r =
                Request::builder().method(*method).uri(path.as_str()).header("content-type", "application/json");
            if let Some(c) = cookie {
                r = r.header("cookie", c);
            }
            r.body(if body.is_null() { Body::empty() } else { Body::from(body.to_string()) }).expect("req")
        };
        assert_eq!(call(&app, req(None)).await.0, StatusCode::UNAUTHORIZED, "{method} {path}");
        let (status, body) = call(&app, req(Some(&bob))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a member: {method} {path}");
        assert_eq!(body["error"]["reason"], "forbidden");
    }
    // Creating a project is a server admin's: anyone else is answered as if there were no
    // such route, the project's owner too.
    let olga = sign_in(&app, "olga", "olga-password").await;
    for who in [&bob, &olga] {
        let req = Request::post("/api/v1/projects")
            .header("cookie", who.as_str())
            .header("content-type", "application/json")
            .body(Body::from(r#"{"name":"x"}"#))
            .expect("req");
        assert_eq!(call(&app, req).await.0, StatusCode::NOT_FOUND);
    }
    // The owner reads and changes the settings.
    let req = Request::get(format!("/api/v1/projects/{project}/settings").as_str())
        .header("cookie", &olga)
        .body(Body::empty())
        .expect("req");
    assert_eq!(call(&app, req).await.0, StatusCode::OK);
    // The list answers the caller's projects only.
    let (_, other) = call(&app, admin("POST", "/api/v1/projects", json!({ "name": "other" }))).await;
    let other = other["id"].as_i64().expect("id");
    let req = Request::get("/api/v1/projects").header("cookie", &bob).body(Body::empty()).expect("req");
    let (status, list) = call(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["projects"], json!([{ "id": project, "name": "shop" }]));
    let (_, all) = call(&app, admin("GET", "/api/v1/projects", Value::Null)).await;
    assert_eq!(all["projects"].as_array().map(Vec::len), Some(2), "{all}");
    // A project the caller is not in: 404, as for one that does not exist.
    let req = Request::get(format!("/api/v1/projects/{other}/settings").as_str())
        .header("cookie", &olga)
        .body(Body::empty())
        .expect("req");
    assert_eq!(call(&app, req).await.0, StatusCode::NOT_FOUND);
    for path in ["/api/v1/projects/999/settings", "/api/v1/projects/999"] {
        let method = if path.ends_with("settings") { "GET" } else { "DELETE" };
        assert_eq!(call(&app, admin(method, path, Value::Null)).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = call(&app, admin("POST", "/api/v1/projects/999/keys", json!({ "grace_secs": 0 }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let settings_page = format!("/viewer/p/{project}/settings");
    let viewer = Request::get(settings_page.as_str()).header("cookie", &bob).body(Body::empty()).expect("r");
    assert_eq!(call(&app, viewer).await.0, StatusCode::FORBIDDEN);
    let viewer = Request::get(settings_page.as_str()).header("cookie", &olga).body(Body::empty()).expect("r");
    assert_eq!(call(&app, viewer).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_viewer_creates_and_configures_a_project_through_forms_with_this_servers_token() {
    let (app, storage, _) = setup();
    let login = sign_in(&app, "admin", "admin-password").await;
    let get = |path: &str| Request::get(path).header("cookie", &login).body(Body::empty()).expect("req");
    let page = |path: &'static str| {
        let app = app.clone();
        let req = get(path);
        async move {
            let res = app.oneshot(req).await.expect("ok");
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            String::from_utf8(res.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8")
        }
    };
    let list = page("/viewer/projects").await;
    assert!(list.contains("shop") && list.contains("id=\"create-project\""), "{list}");
    let token = form_field(&list, "form_token");
    let post = |path: &str, fields: String| {
        Request::post(path)
            .header("cookie", &login)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(fields))
            .expect("req")
    };
    // Another site's form creates nothing.
    let (status, _) = call(&app, post("/viewer/projects/create", "name=evil&form_token=0000".into())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let res = app.clone().oneshot(post("/viewer/projects/create", format!("name=blog&form_token={token}"))).await;
    let res = res.expect("ok");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let blog = storage.projects().expect("list").into_iter().find(|p| p.name == "blog").expect("created");
    assert_eq!(res.headers()["location"], format!("/viewer/p/{}/settings", blog.id));
    let owners = storage.memberships("admin").expect("memberships");
    assert!(owners.iter().any(|m| m.project == blog.id && m.role == "owner"), "its creator owns it: {owners:?}");
    let base = format!("/viewer/p/{}/settings", blog.id);

    let fields = format!(
        "form_token={token}&allowed_origins=https%3A%2F%2Fblog.test&quota_bytes_per_day=&\
         quota_sessions_per_day=50&retention_days=&sample_rate=0.1&mode=buffer&mask_all_text=1&\
         network_allow_list=%2Fapi%2F&freeze_timeout_secs=30"
    );
    let (status, _) = call(&app, post(&base, fields.replace("sample_rate=0.1", "sample_rate=lots"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let res = app.clone().oneshot(post(&base, fields)).await.expect("ok");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let blog = storage.projects().expect("list").into_iter().find(|p| p.id == blog.id).expect("there");
    assert_eq!(blog.allowed_origins, vec!["https://blog.test"]);
    assert_eq!((blog.quota.bytes_per_day, blog.quota.sessions_per_day), (None, Some(50)));
    let stored: Value =
        serde_json::from_str(&storage.project_settings(blog.id).expect("q").expect("row")).expect("json");
    assert_eq!(stored["mode"], "buffer");
    assert_eq!(stored["freeze_timeout_secs"], 30);

    let settings = String::from_utf8(
        app.clone().oneshot(get(&base)).await.expect("ok").into_body().collect().await.expect("b").to_bytes().to_vec(),
    )
    .expect("utf-8");
    assert!(settings.contains(&blog.ingest_key) && settings.contains("checked"), "{settings}");
    let rotate = format!("grace=1&unit=hours&form_token={token}");
    assert_eq!(
        app.clone().oneshot(post(&format!("{base}/rotate"), rotate)).await.expect("ok").status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(storage.ingest_keys(blog.id).expect("keys").len(), 2);
    let revoke = format!("key={}&form_token={token}", blog.ingest_key);
    assert_eq!(
        app.clone().oneshot(post(&format!("{base}/revoke"), revoke)).await.expect("ok").status(),
        StatusCode::SEE_OTHER
    );
    assert!(storage.project_by_key(&blog.ingest_key).expect("q").is_none());
    // Rename, then delete (which needs its box ticked).
    let rename = format!("name=journal&form_token={token}");
    assert_eq!(
        app.clone().oneshot(post(&format!("{base}/rename"), rename)).await.expect("ok").status(),
        StatusCode::SEE_OTHER
    );
    let unticked = format!("form_token={token}");
    assert_eq!(call(&app, post(&format!("{base}/delete"), unticked)).await.0, StatusCode::BAD_REQUEST);
    let delete = format!("confirm=1&form_token={token}");
    assert_eq!(
        app.clone().oneshot(post(&format!("{base}/delete"), delete)).await.expect("ok").status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(storage.projects().expect("list").len(), 1);
}

#[test]
fn a_projects_own_retention_deletes_its_old_sessions_only() {
    let storage = SqliteStorage::in_memory().expect("db");
    let short = storage.create_project("short").expect("p");
    let default = storage.create_project("default").expect("p");
    let now = T0 + 10 * 86_400_000;
    for (id, start) in [("old", T0), ("recent", now - 3_600_000)] {
        let s = BatchSummary {
            session: id.into(),
            page: "p".into(),
            start_ms: start,
            end_ms: start + 1_000,
            received_ms: start + 1_000,
            ..BatchSummary::default()
        };
        for p in [short.id, default.id] {
            let (reply, stored) = std::sync::mpsc::sync_channel(1);
            let body = BatchBody { bytes: b"x".to_vec().into(), gzip: false };
            storage.put_batch(p, s.clone(), body, Box::new(move |r| drop(reply.send(r))));
            stored.recv().expect("answered").expect("stored");
        }
    }
    storage.set_project_settings(short.id, r#"{"retention_days":7}"#).expect("settings");
    assert_eq!(replay_server::projects::apply_retention(&storage, now).expect("retention"), 1);
    assert!(storage.session(short.id, "old").expect("q").is_none());
    assert!(storage.session(short.id, "recent").expect("q").is_some());
    assert!(storage.session(default.id, "old").expect("q").is_some(), "the server's retention applies to the other");
}

#[test]
fn a_projects_own_freeze_timeout_decides_when_a_frozen_session_is_marked() {
    let storage = SqliteStorage::in_memory().expect("db");
    let patient = storage.create_project("patient").expect("p");
    let default = storage.create_project("default").expect("p");
    let quick = storage.create_project("quick").expect("p");
    // Each froze, and its last batch came 120 s before `now`.
    let now = T0 + 200_000;
    let s = BatchSummary {
        session: "frozen".into(),
        page: "p".into(),
        start_ms: T0,
        end_ms: T0 + 80_000,
        received_ms: now - 120_000,
        freezes: 1,
        freeze_started_ms: T0 + 80_000,
        ..BatchSummary::default()
    };
    for p in [patient.id, default.id, quick.id] {
        let (reply, stored) = std::sync::mpsc::sync_channel(1);
        let body = BatchBody { bytes: b"x".to_vec().into(), gzip: false };
        storage.put_batch(p, s.clone(), body, Box::new(move |r| drop(reply.send(r))));
        stored.recv().expect("answered").expect("stored");
    }
    storage.set_project_settings(patient.id, r#"{"freeze_timeout_secs":300}"#).expect("settings");
    storage.set_project_settings(quick.id, r#"{"freeze_timeout_secs":5}"#).expect("settings");
    let mark = |timeout| replay_server::projects::mark_unrecovered_freezes(&storage, now, timeout).expect("mark");
    // The server's timeout (180 s) has not passed; the quick project's own (5 s) has.
    assert_eq!(mark(std::time::Duration::from_secs(180)), 1);
    let marked = |p: i64| storage.session(p, "frozen").expect("q").expect("row").never_recovered;
    assert_eq!((marked(patient.id), marked(default.id), marked(quick.id)), (false, false, true));
    // The server's 60 s has passed: the default project too, never the one that waits 300 s.
    assert_eq!(mark(std::time::Duration::from_secs(60)), 1);
    assert_eq!((marked(patient.id), marked(default.id)), (false, true));
}

#[tokio::test]
async fn the_recorder_reads_its_projects_settings_with_the_public_key() {
    let (app, storage, project) = setup();
    let key = storage.projects().expect("list")[0].ingest_key.clone();
    let read = |key: &str| Request::get(format!("/api/v1/recorder/settings?key={key}").as_str()).body(Body::empty());
    let res = app.clone().oneshot(read(&key).expect("req")).await.expect("ok");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-allow-origin"], "*", "read by the customer's pages");
    assert_eq!(res.headers()["cache-control"], "max-age=300");
    let body: Value = serde_json::from_slice(&res.into_body().collect().await.expect("body").to_bytes()).expect("json");
    let tags = json!({ "sample_rate": null, "mode": null, "mask_all_text": false, "network_allow_list": [],
                       "canvas": false });
    assert_eq!(body, tags, "nothing set: the tag's attributes apply");

    let update = json!({ "settings": { "sample_rate": 0.25, "mask_all_text": true, "retention_days": 3,
                                       "network_allow_list": ["/api/"], "canvas": true } });
    let path = format!("/api/v1/projects/{project}/settings");
    assert_eq!(call(&app, admin("PUT", &path, update)).await.0, StatusCode::OK);
    let (status, body) = call(&app, read(&key).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "sample_rate": 0.25, "mode": null, "mask_all_text": true, "network_allow_list": ["/api/"],
                "canvas": true })
    );
    assert!(body.get("retention_days").is_none(), "only what the recorder uses");

    for (key, reason) in [("nope", "unknown_key"), ("", "missing_key")] {
        let (status, body) = call(&app, read(key).expect("req")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(body["error"]["reason"], reason);
    }
}
