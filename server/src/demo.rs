//! The demo app and the diagnostics lab: pages with the recorder embedded for the default
//! project, for trying the product by hand and for the end-to-end tests.
//!
//! - `GET /demo`: the product catalogue (`server/assets/demo.html`, embedded in the binary);
//!   `?mode=buffer`, `?sample=0.5` and `?buffer_seconds=30` pass through to its script tag;
//! - `GET /demo/lab`: a page with a button (`#loop`) that freezes the main thread for good (the
//!   "tab that never recovers"); it takes the demo's recorder options;
//! - `/demo/echo` (any method): answers what it received (`method`, `bytes`, `content_type`) as
//!   JSON; `?status=N` picks the status, `?delay_ms=N` (at most 10 s) answers late, so a request
//!   can be aborted in flight. It also sets a cookie, which the recorder must never record.
//!
//! The demo pages are served with `Document-Policy: js-profiling`, which lets the recorder
//! sample stacks and name the function that froze the page.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use rust_embed::RustEmbed;

use crate::{ApiError, AppState};

#[derive(RustEmbed)]
#[folder = "assets"]
struct DemoPages;

/// The header that allows the JS Self-Profiling API on a page.
pub const PROFILING_POLICY: (&str, &str) = ("document-policy", "js-profiling");

const LAB_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Replay lab</title>
<script src="/recorder.js" data-key="{{INGEST_KEY}}"{{RECORDER_OPTIONS}} defer></script>
</head>
<body>
<h1>Replay lab</h1>
<p><button id="loop" type="button">Freeze forever</button> runs an endless loop: the tab never recovers.</p>
<p id="out"></p>
<script>
  function spinForever() {
    // Deliberately endless: the watchdog must report this freeze from the worker.
    var n = 0;
    for (;;) { n = (n + 1) % 1000003; }
  }
  document.getElementById('loop').addEventListener('click', function () {
    document.getElementById('out').textContent = 'looping';
    spinForever();
  });
</script>
</body>
</html>
"#;

pub fn routes() -> Router<AppState> {
    Router::new().route("/demo", get(demo)).route("/demo/lab", get(lab)).route("/demo/echo", any(echo))
}

/// Adds the profiling policy to a demo page.
pub fn allow_profiling(response: &mut Response) {
    response.headers_mut().insert(PROFILING_POLICY.0, HeaderValue::from_static(PROFILING_POLICY.1));
}

async fn lab(State(state): State<AppState>, Query(q): Query<DemoQuery>) -> Response {
    let key = match default_key(&state).await {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        LAB_PAGE.replace("{{INGEST_KEY}}", &key).replace("{{RECORDER_OPTIONS}}", &q.attributes()),
    )
        .into_response();
    allow_profiling(&mut response);
    response
}

#[derive(Debug, serde::Deserialize)]
struct EchoQuery {
    status: Option<u16>,
    delay_ms: Option<u64>,
}

async fn echo(method: Method, Query(q): Query<EchoQuery>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(ms) = q.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms.min(10_000))).await;
    }
    let status = q.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let answer = serde_json::json!({ "method": method.as_str(), "bytes": body.len(), "content_type": content_type });
    (
        status,
        [
            (header::SET_COOKIE, "lab_session=never-recorded; Path=/demo"),
            (header::HeaderName::from_static("x-lab"), "echo"),
        ],
        axum::Json(answer),
    )
        .into_response()
}

/// Recorder options the demo passes through to its script tag (`/demo?mode=buffer`,
/// `?sample=0.5`, `?buffer_seconds=30`), so each mode can be tried without editing a page.
#[derive(Debug, serde::Deserialize, Default)]
pub struct DemoQuery {
    mode: Option<String>,
    sample: Option<f64>,
    buffer_seconds: Option<u32>,
    /// The recorder's periodic cut in ms (`data-flush-interval`, 1 s to 10 min).
    flush_interval: Option<u32>,
}

impl DemoQuery {
    pub fn attributes(&self) -> String {
        let mut out = String::new();
        if self.mode.as_deref() == Some("buffer") {
            out.push_str(" data-mode=\"buffer\"");
        }
        if let Some(s) = self.sample.filter(|s| (0.0..=1.0).contains(s)) {
            out.push_str(&format!(" data-sample-rate=\"{s}\""));
        }
        if let Some(b) = self.buffer_seconds {
            out.push_str(&format!(" data-buffer-seconds=\"{b}\""));
        }
        if let Some(ms) = self.flush_interval.filter(|ms| (1_000..=600_000).contains(ms)) {
            out.push_str(&format!(" data-flush-interval=\"{ms}\""));
        }
        out
    }
}

/// `GET /demo`: the product catalogue with the recorder embedded for the default project.
async fn demo(State(state): State<AppState>, Query(q): Query<DemoQuery>) -> Response {
    let Some(page) = DemoPages::get("demo.html") else {
        return ApiError::not_found("file").into_response();
    };
    let key = match default_key(&state).await {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let html = String::from_utf8_lossy(&page.data)
        .replace("{{INGEST_KEY}}", &key)
        .replace("{{RECORDER_OPTIONS}}", &q.attributes());
    let mut response = (StatusCode::OK, html).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    allow_profiling(&mut response);
    response
}

/// The ingest key of the default (first) project, which the demo pages record into.
async fn default_key(state: &AppState) -> Result<String, ApiError> {
    let projects = state.blocking(|s| s.projects()).await?;
    Ok(projects.first().map(|p| p.ingest_key.clone()).unwrap_or_default())
}
