//! Static files served by the server, embedded in the binary at build time.
//!
//! - `target/web/` (built by `cargo xtask build-web`): the recorder loader `recorder.js`, the
//!   recorder's module and wasm under `recorder/`, the viewer's wasm under `viewer/`;
//! - `target/web/viewer-static/` (also by build-web, from `viewer/static/`): the viewer's pages,
//!   served under `/viewer/`.
//!
//! The demo app is [`crate::demo`].
//!
//! Viewer pages carry a strict Content-Security-Policy: only our own scripts run, recorded
//! content can load images, styles and fonts but can never run code or submit forms.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::AppState;

#[derive(RustEmbed)]
#[folder = "../target/web"]
#[allow_missing = true]
struct WebBuild;

#[derive(RustEmbed)]
#[folder = "../target/web/viewer-static"]
#[allow_missing = true]
struct ViewerPages;

/// The policy of every viewer page.
pub const VIEWER_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src * 'unsafe-inline'; img-src * data: blob:; font-src * data:; media-src * data: blob:; \
     connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'self'";

/// The policy of viewer pages opened with `?block=1` ("block external resources"): the replayed
/// page may only load from the viewer's own origin, so recorded images, fonts, stylesheets and
/// CSS `url()`/`@import` pointing elsewhere are never requested. The replay iframe (about:blank)
/// inherits the policy of the page that holds it.
pub const VIEWER_CSP_BLOCKING: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; \
     connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'self'";

/// Query of viewer pages.
#[derive(Debug, Default, serde::Deserialize)]
struct ViewerQuery {
    block: Option<String>,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/viewer/") }))
        .route("/recorder.js", get(|| async { web_file("recorder.js") }))
        // Preflights too: a page whose `fetch` wrapper adds headers to every request makes the
        // wasm's fetch (without a worker to fetch it, transport.js) a preflighted request.
        .route(
            "/recorder/{*path}",
            get(|Path(p): Path<String>| async move { web_file(&format!("recorder/{p}")) })
                .options(|h: HeaderMap| async move { crate::ingest::get_preflight(&h) }),
        )
        .route(
            "/viewer/{*path}",
            get(
                |State(s): State<AppState>,
                 uri: Uri,
                 h: HeaderMap,
                 Path(p): Path<String>,
                 Query(q): Query<ViewerQuery>| async move {
                    viewer_page(&s, &uri, &h, &p, q.block.as_deref().is_some_and(|b| b != "0")).await
                },
            ),
        )
}

/// True when the recorder and viewer wasm were built into this binary.
pub fn has_web_build() -> bool {
    WebBuild::get("recorder.js").is_some() && WebBuild::get("viewer/viewer_wasm_bg.wasm").is_some()
}

fn respond(path: &str, data: std::borrow::Cow<'static, [u8]>, mime: &str) -> Response {
    let mut response = (StatusCode::OK, data.into_owned()).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if path.starts_with("recorder") {
        // The recorder is loaded by customers' pages on other origins.
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    response
}

fn not_found() -> Response {
    crate::ApiError::not_found("file").into_response()
}

/// A viewer file (page, script, style or the viewer's wasm build), for the export page.
pub(crate) fn viewer_asset(path: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    ViewerPages::get(path).map(|f| f.data).or_else(|| WebBuild::get(&format!("viewer/{path}")).map(|f| f.data))
}

fn web_file(path: &str) -> Response {
    match WebBuild::get(path) {
        Some(f) => respond(path, f.data, f.metadata.mimetype()),
        None => not_found(),
    }
}

/// Viewer pages need a signed-in reader; their scripts, styles and wasm carry no data and are
/// served to anyone (the sign-in page uses them too).
async fn viewer_page(state: &AppState, uri: &Uri, headers: &HeaderMap, path: &str, block_external: bool) -> Response {
    if path.ends_with(".html") {
        match crate::access::caller_of(state, headers).await {
            Ok(Some(_)) => {}
            Ok(None) => return crate::auth::to_login(uri.path_and_query().map_or("/viewer/", |p| p.as_str())),
            Err(e) => return crate::ApiError::from(e).into_response(),
        }
    }
    viewer_file(path, block_external)
}

pub(crate) fn viewer_file(path: &str, block_external: bool) -> Response {
    let (data, mime) = match ViewerPages::get(path) {
        Some(f) => (f.data, f.metadata.mimetype().to_owned()),
        None => match WebBuild::get(&format!("viewer/{path}")) {
            Some(f) => (f.data, f.metadata.mimetype().to_owned()),
            None => return not_found(),
        },
    };
    let mut response = respond(path, data, &mime);
    if mime.starts_with("text/html") {
        let csp = if block_external { VIEWER_CSP_BLOCKING } else { VIEWER_CSP };
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
        // Nothing the replay loads learns which session is being watched.
        response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    response
}
