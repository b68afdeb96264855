//! What a browser may load from this server, and how: the answer to a replayed page that asks
//! for the viewer's own pages and API with the support engineer's cookie.
//!
//! The replay runs in a frame of the viewer's origin (same-origin, without scripts), and a
//! recording is the sender's to write (the ingest key is public). A recorded
//! `<link rel=stylesheet href="/viewer/p/1/">` loaded the session list as a style sheet (read
//! out through CSS `url()`s); `<img src="/viewer/p/1/export/ID">` exported a session in the
//! engineer's name. Two layers:
//!
//! - every answer says `X-Content-Type-Options: nosniff`: no page or JSON answer is ever taken
//!   for a style sheet or a script;
//! - a browser's request for a signed-in page or the API (its `Sec-Fetch-*` headers say what it
//!   is for) is refused (403) unless it is a navigation to a document or a frame, or a
//!   `fetch`/XHR (`empty` destination, `cors` or `same-origin` mode): images, style sheets,
//!   fonts, prefetches and every other subresource are refused whatever page asks. Requests
//!   without these headers (API clients, old browsers) are not concerned; nor are ingest (the
//!   customers' pages, keyed by their public key) and the viewer's and recorder's own files.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::reject::Reason;

/// Runs the policy around every request (see the module docs).
pub async fn guard(request: Request, next: Next) -> Response {
    if let Some(why) = refusal(request.uri().path(), request.headers()) {
        let mut refused = ApiError::new(Reason::Forbidden, why).into_response();
        nosniff(&mut refused);
        return refused;
    }
    let mut response = next.run(request).await;
    nosniff(&mut response);
    response
}

fn nosniff(response: &mut Response) {
    response.headers_mut().entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
}

/// Whether `path` answers with a signed-in reader's data (pages, the API, the metrics).
fn guarded(path: &str) -> bool {
    if path == "/api/v1/ingest" {
        return false;
    }
    if path.starts_with("/api/") || path == "/metrics" || path.starts_with("/invite/") || path == "/login" {
        return true;
    }
    match path.strip_prefix("/viewer/") {
        // The viewer's files (`/viewer/player.js`, `/viewer/viewer.css`, the wasm) carry no data;
        // its pages have no extension or `.html`. Session ids have no dot.
        Some(rest) => {
            let last = rest.rsplit('/').next().unwrap_or_default();
            !last.contains('.') || last.ends_with(".html")
        }
        None => false,
    }
}

/// Why a request is refused, if it is.
fn refusal(path: &str, headers: &HeaderMap) -> Option<String> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !headers.contains_key("sec-fetch-site") || !guarded(path) {
        return None;
    }
    let (dest, mode) = (value("sec-fetch-dest"), value("sec-fetch-mode"));
    // A browser that sends the site and mode but not the destination is judged by its mode.
    let navigation = mode == "navigate" && matches!(dest, "document" | "iframe" | "frame" | "");
    let script_request = matches!(dest, "empty" | "") && matches!(mode, "cors" | "same-origin");
    if navigation || script_request {
        return None;
    }
    let dest = if dest.is_empty() { "(none)" } else { dest };
    Some(format!("this address answers pages and the API, not a subresource (Sec-Fetch-Dest: {dest}, mode: {mode})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(site: &str, dest: &str, mode: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_str(site).expect("ascii"));
        h.insert("sec-fetch-dest", HeaderValue::from_str(dest).expect("ascii"));
        h.insert("sec-fetch-mode", HeaderValue::from_str(mode).expect("ascii"));
        h
    }

    #[test]
    fn subresources_of_pages_and_the_api_are_refused_navigations_and_fetches_pass() {
        for (path, dest, mode) in [
            ("/viewer/p/1/", "style", "no-cors"),
            ("/viewer/p/1/export/abc", "image", "no-cors"),
            ("/api/v1/projects/1/sessions/abc/events", "image", "no-cors"),
            ("/api/v1/projects/1/sessions", "empty", "no-cors"), // <link rel=prefetch>
            ("/viewer/player.html", "script", "no-cors"),
            ("/metrics", "font", "cors"),
        ] {
            assert!(refusal(path, &headers("same-origin", dest, mode)).is_some(), "{path} as {dest}/{mode}");
        }
        for (path, dest, mode) in [
            ("/viewer/p/1/", "document", "navigate"),
            ("/viewer/p/1/player.html", "iframe", "navigate"),
            ("/api/v1/projects/1/sessions/abc/events", "empty", "cors"),
            ("/api/v1/projects/1/sessions/abc/events", "empty", "same-origin"),
            // Not data: the viewer's files, the recorder, ingest (from customers' pages).
            ("/viewer/player.js", "script", "no-cors"),
            ("/viewer/viewer.css", "style", "no-cors"),
            ("/recorder.js", "script", "no-cors"),
            ("/api/v1/ingest", "empty", "no-cors"),
        ] {
            assert!(refusal(path, &headers("same-origin", dest, mode)).is_none(), "{path} as {dest}/{mode}");
        }
        // A browser that names no destination is judged by its mode.
        let mut partial = HeaderMap::new();
        partial.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        partial.insert("sec-fetch-mode", HeaderValue::from_static("cors"));
        assert!(refusal("/api/v1/projects/1/sessions", &partial).is_none());
        partial.insert("sec-fetch-mode", HeaderValue::from_static("no-cors"));
        assert!(refusal("/api/v1/projects/1/sessions", &partial).is_some());
        // A client that sends no Fetch Metadata (curl, an API client) is not concerned.
        assert!(refusal("/api/v1/projects/1/sessions", &HeaderMap::new()).is_none());
    }
}
