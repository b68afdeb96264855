//! The diagnostics lab: small pages and endpoints, next to the demo app, for trying the
//! recorder's diagnostics by hand and for the end-to-end tests.
//!
//! - `GET /demo/lab`: a page with the recorder embedded and a button (`#loop`) that freezes the
//!   main thread for good (the "tab that never recovers"); it takes the demo's recorder options
//!   (`?mode=buffer`, ...);
//! - `/demo/echo` (any method): answers what it received (`method`, `bytes`, `content_type`) as
//!   JSON; `?status=N` picks the status, `?delay_ms=N` (at most 10 s) answers late, so a request
//!   can be aborted in flight. It also sets a cookie, which the recorder must never record.
//!
//! Both demo pages are served with `Document-Policy: js-profiling`, which lets the recorder
//! sample stacks and name the function that froze the page.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use crate::AppState;

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
    Router::new().route("/demo/lab", get(lab)).route("/demo/echo", any(echo))
}

/// Adds the profiling policy to a demo page.
pub fn allow_profiling(response: &mut Response) {
    response.headers_mut().insert(PROFILING_POLICY.0, HeaderValue::from_static(PROFILING_POLICY.1));
}

async fn lab(State(state): State<AppState>, Query(q): Query<crate::assets::DemoQuery>) -> Response {
    let key = match state.blocking(|s| s.projects()).await {
        Ok(projects) => projects.first().map(|p| p.ingest_key.clone()).unwrap_or_default(),
        Err(e) => return crate::ApiError::from(e).into_response(),
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
