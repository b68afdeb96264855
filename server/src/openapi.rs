//! The HTTP API described in OpenAPI 3.1, generated from the handlers' annotations
//! (`#[utoipa::path]`) and the answer types (`ToSchema`), served at `GET /api/v1/openapi.json`,
//! and the same document as a server-rendered page at `GET /docs/api`.
//!
//! Error answers are described once: every 4xx/5xx response of an operation gets the JSON error
//! body ([`crate::error::ErrorBody`]), and 429/503 the `Retry-After` header, from [`Fill`].
//! The document holds no data, so both routes are public. `tests/openapi.rs` checks that every
//! route of [`crate::API_ROUTES`] is described and that every described route answers.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Header, ObjectBuilder, OpenApi as Document, PathItem, RefOr, Type};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::AppState;

/// Security scheme names used by the handlers' annotations.
pub const ADMIN_TOKEN: &str = "admin_token";
pub const LOGIN_COOKIE: &str = "login_cookie";
pub const INGEST_KEY_HEADER: &str = "ingest_key_header";
pub const INGEST_KEY_QUERY: &str = "ingest_key_query";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "replay",
        description = "The JSON API of the session-replay server: ingest of recorded batches, the \
            session index, a session's events, its document at time t and its environment, error \
            groups, and rrweb import and export.\n\nEvery read names its project in its path \
            (`/api/v1/projects/{project}/...`); a caller who may not read that project gets 404. \
            Reads need a caller: a token (`Authorization: Bearer`: the bootstrap admin token or an \
            API token with scopes) or a viewer's login cookie. The routes without a project \
            (tag `legacy`) redirect to the scoped ones. Ingest needs a project's ingest \
            key. Every refusal is a JSON error body `{\"error\":{\"reason\",\"message\"}}` whose \
            `reason` is machine-readable.\n\nNot described here (they are not API): the viewer's \
            pages (`/viewer/`, `/viewer/p/{project}/...`, `/login`, `/logout`, \
            `/docs/api`), the embedded recorder and viewer files (`/recorder.js`, `/recorder/...`, \
            `/viewer/...`), the demo pages (`/demo`, `/demo/lab`, `/demo/echo`), `/healthz` and the Prometheus `/metrics`."
    ),
    paths(
        openapi_json,
        crate::ingest::ingest,
        crate::ingest::preflight,
        crate::api::list_sessions,
        crate::api::get_session,
        crate::api::session_events,
        crate::api::session_snapshot,
        crate::api::session_environment,
        crate::api::list_errors,
        crate::legacy::sessions,
        crate::legacy::session,
        crate::legacy::events,
        crate::legacy::snapshot,
        crate::legacy::environment,
        crate::legacy::errors,
        crate::legacy::rrweb,
        crate::interop::import_rrweb,
        crate::interop::export_rrweb,
        crate::users::list_members,
        crate::users::put_member,
        crate::users::delete_member,
        crate::tokens::list_project,
        crate::tokens::post_project,
        crate::tokens::delete_project,
        crate::users::me,
        crate::users::post_password,
        crate::users::list_sign_ins,
        crate::users::delete_sign_in,
        crate::tokens::list_mine,
        crate::tokens::post_mine,
        crate::tokens::delete_mine,
        crate::users::list_users,
        crate::users::post_user,
        crate::users::put_user,
        crate::users::post_invite,
        crate::tokens::list_all,
        crate::tokens::delete_any,
        crate::sourcemaps::upload,
        crate::sourcemaps::list,
        crate::sourcemaps::session_symbolicated,
        crate::compare::compare,
        crate::deletion::delete_session_api,
        crate::deletion::erasure_api,
        crate::audit::audit_api,
        crate::projects::list_api,
        crate::projects::recorder_settings_api,
        crate::projects::recorder_settings_preflight,
        crate::projects::create_api,
        crate::projects::settings_api,
        crate::projects::update_settings_api,
        crate::projects::rotate_api,
        crate::projects::revoke_api,
        crate::projects::rename_api,
        crate::projects::delete_api,
        crate::comments::list_comments,
        crate::comments::add_comment,
        crate::comments::delete_comment,
        crate::clickmap::clickmap_api,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&Fill),
)]
pub struct ApiDoc;

/// Adds the security schemes, and the error body and `Retry-After` to every error response.
struct Fill;

impl Modify for Fill {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A bearer token: an API token (`rpt_...`, scoped) or the bootstrap admin token (`--admin-token`)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            LOGIN_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::HOST_COOKIE,
                "A viewer's sign-in (`POST /login`); `replay_login` when the server is not behind HTTPS.",
            ))),
        );
        components.add_security_scheme(
            INGEST_KEY_HEADER,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::ingest::KEY_HEADER,
                "A project's ingest key.",
            ))),
        );
        components.add_security_scheme(
            INGEST_KEY_QUERY,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "key",
                "A project's ingest key in the query (for `navigator.sendBeacon`, which sets no headers).",
            ))),
        );
        let error = RefOr::Ref(utoipa::openapi::Ref::from_schema_name(crate::error::ErrorBody::name()));
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                if let Some(body) = &mut op.request_body {
                    binary(body.content.get_mut(MSGPACK));
                }
                for (status, response) in op.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else { continue };
                    binary(response.content.get_mut(MSGPACK));
                    let code: u16 = status.parse().unwrap_or(0);
                    if code >= 400 && response.content.is_empty() {
                        response.content.insert("application/json".into(), Content::new(Some(error.clone())));
                    }
                    if code == 429 || code == 503 {
                        let mut h = Header::new(ObjectBuilder::new().schema_type(Type::Integer).build());
                        h.description = Some("Seconds to wait before retrying.".into());
                        response.headers.insert("retry-after".into(), h);
                    }
                }
            }
        }
    }
}

/// The name of a content's schema when it is a component (`ErrorBody`), or its type.
fn schema_name(c: &Content) -> String {
    match &c.schema {
        Some(RefOr::Ref(r)) => r.ref_location.rsplit('/').next().unwrap_or_default().to_owned(),
        Some(RefOr::T(s)) => type_of(&serde_json::to_value(s).unwrap_or_default()),
        None => String::new(),
    }
}

/// A JSON schema's type in a few words: `string`, `integer`, `array of SessionRow`, ...
fn type_of(v: &serde_json::Value) -> String {
    if let Some(r) = v.get("$ref").and_then(|r| r.as_str()) {
        return r.rsplit('/').next().unwrap_or_default().to_owned();
    }
    match v.get("type") {
        Some(serde_json::Value::String(t)) if t == "array" => {
            format!("array of {}", v.get("items").map(type_of).unwrap_or_default())
        }
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(serde_json::Value::Array(ts)) => ts.iter().filter_map(|t| t.as_str()).collect::<Vec<_>>().join(" or "),
        _ => "any".to_owned(),
    }
}

/// A schema's field on the page: name, type, description.
type Field = (String, String, String);

/// Every component schema with its fields.
fn schemas(doc: &Document) -> Vec<(String, Vec<Field>)> {
    let Some(components) = &doc.components else { return Vec::new() };
    components
        .schemas
        .iter()
        .map(|(name, schema)| {
            let v = serde_json::to_value(schema).unwrap_or_default();
            let fields = v
                .get("properties")
                .and_then(|p| p.as_object())
                .into_iter()
                .flatten()
                .map(|(field, s)| {
                    let description = s.get("description").and_then(|d| d.as_str()).unwrap_or_default().to_owned();
                    (field.clone(), type_of(s), description)
                })
                .collect();
            (name.clone(), fields)
        })
        .collect()
}

/// MessagePack bodies are bytes, not the array of numbers `Vec<u8>` would describe.
fn binary(content: Option<&mut Content>) {
    if let Some(c) = content {
        c.schema = Some(RefOr::T(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                .content_media_type(MSGPACK)
                .build()
                .into(),
        ));
    }
}

const MSGPACK: &str = "application/msgpack";

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.options, &mut item.head, &mut item.patch]
        .into_iter()
        .filter_map(Option::as_mut)
}

/// The document, built once.
static DOCUMENT: LazyLock<Document> = LazyLock::new(ApiDoc::openapi);
static DOCUMENT_JSON: LazyLock<String> = LazyLock::new(|| DOCUMENT.to_pretty_json().unwrap_or_default());

/// The API document (also what the test reads).
pub fn document() -> &'static Document {
    &DOCUMENT
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json"))
)]
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], DOCUMENT_JSON.as_str()).into_response()
}

/// The routes of the human-readable page (the document route is in [`crate::API_ROUTES`]).
pub fn routes() -> Router<AppState> {
    Router::new().route("/docs/api", get(docs_page))
}

/// `GET /docs/api`: the document as a page (operations, parameters, responses), rendered here:
/// no script, nothing from elsewhere.
async fn docs_page() -> Response {
    crate::layout::html_response(docs_markup(), crate::layout::LIST_CSP)
}

fn docs_markup() -> Markup {
    let doc = document();
    let mut ops = Vec::new();
    for (path, item) in &doc.paths.paths {
        let mut item = item.clone();
        let methods = ["get", "put", "post", "delete", "options", "head", "patch"];
        let fields = [
            item.get.take(),
            item.put.take(),
            item.post.take(),
            item.delete.take(),
            item.options.take(),
            item.head.take(),
            item.patch.take(),
        ];
        for (method, op) in methods.into_iter().zip(fields) {
            if let Some(op) = op {
                ops.push((method, path.clone(), op));
            }
        }
    }
    html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "HTTP API · Replay" }
                link rel="stylesheet" href="/viewer/viewer.css";
            }
            body.page {
                h1 { (doc.info.title) " HTTP API " small { (doc.info.version) } }
                p { "Machine-readable: " a href="/api/v1/openapi.json" { "/api/v1/openapi.json" } " (OpenAPI 3.1)." }
                @if let Some(d) = &doc.info.description {
                    @for para in d.split("\n\n") { p { (para) } }
                }
                @for (method, path, op) in &ops {
                    section {
                        h2 { code { (method.to_uppercase()) " " (path) } }
                        @if let Some(s) = &op.summary { p { (s) } }
                        @if let Some(d) = &op.description { @for para in d.split("\n\n") { p { (para) } } }
                        @if let Some(sec) = &op.security {
                            p { "Credentials: " (schemes(sec)) }
                        }
                        @if let Some(params) = &op.parameters {
                            h3 { "Parameters" }
                            ul {
                                @for p in params {
                                    li {
                                        code { (p.name) } " (" (serde_json::to_value(&p.parameter_in).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) ")"
                                        @if let Some(d) = &p.description { ": " (d) }
                                    }
                                }
                            }
                        }
                        @if let Some(body) = &op.request_body {
                            h3 { "Body" }
                            p {
                                @for (ty, c) in &body.content { code { (ty) } " " (schema_name(c)) " " }
                                @if let Some(d) = &body.description { ": " (d) }
                            }
                        }
                        h3 { "Responses" }
                        ul {
                            @for (status, r) in &op.responses.responses {
                                li {
                                    strong { (status) }
                                    @if let RefOr::T(r) = r {
                                        " " (r.description)
                                        @for (ty, c) in &r.content { " " code { (ty) } " " (schema_name(c)) }
                                        @for h in r.headers.keys() { " header " code { (h) } }
                                    }
                                }
                            }
                        }
                    }
                }
                h2 { "Schemas" }
                @for (name, schema) in schemas(doc) {
                    section id=(name) {
                        h3 { (name) }
                        ul {
                            @for (field, ty, description) in schema {
                                li { code { (field) } " " (ty) @if !description.is_empty() { ": " (description) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn schemes(sec: &[utoipa::openapi::security::SecurityRequirement]) -> String {
    let v = serde_json::to_value(sec).unwrap_or_default();
    let names: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_object())
        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(" + "))
        .collect();
    names.join(", or ")
}
