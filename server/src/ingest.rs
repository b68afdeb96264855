//! `POST /api/v1/ingest`: authenticated, capped, idempotent intake of recorded batches.
//!
//! Order of checks, cheapest first, so hostile input costs little: ingest key, body size,
//! capped decompression, capped decoding, the project's daily quotas (in memory, see
//! [`crate::quota`]), then the durable write (which refuses a batch past its session's cap). A batch is acknowledged
//! (`200`) only after storage committed it; a resent batch is acknowledged as a duplicate and
//! not stored twice. Every rejection is a 4xx JSON error with a machine-readable `reason`, and
//! is counted by that reason.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use replay_core::summarize;
use replay_store::{BatchBody, Stored};
use serde::{Deserialize, Serialize};

use crate::quota::Quotas;
use crate::reject::Reason;
use crate::{ApiError, AppState};

/// Bodies up to this size are decompressed and decoded on the async worker itself, when they
/// are no larger than [`INLINE_RAW_BYTES`] once decompressed.
const INLINE_DECODE_BYTES: usize = 4 * 1024;

/// Most bytes a body decoded on the async worker may decompress to. A 4 KB gzip body can hold
/// 4 MB (gzip expands up to ~1000×): decoding that took 233 ms of an async worker (and 107 MB)
/// for hostile bodies, and seven a second kept both workers of a 2-core server busy. Beyond
/// this, the body waits for a decode lane like a large one.
const INLINE_RAW_BYTES: usize = 64 * 1024;

/// Bodies up to this size (as sent) are decoded in the small lane, larger ones in the large
/// lane (see [`AppState::large_decode_slots`]).
const SMALL_LANE_BYTES: usize = 512 * 1024;

/// Header carrying the ingest key (the `key` query parameter works too, for `sendBeacon`).
pub const KEY_HEADER: &str = "x-replay-key";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestQuery {
    /// The ingest key, when no `x-replay-key` header could be set (`sendBeacon`).
    key: Option<String>,
    /// `gzip` when the body is gzip-compressed and no `Content-Encoding` header could be set.
    encoding: Option<String>,
}

/// The acknowledgement of a stored batch.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Ack {
    pub ok: bool,
    /// True when this (session, page, seq) had been stored before: a resend. A freeze marker
    /// and a real batch sharing a number are stored both, neither a duplicate of the other.
    pub duplicate: bool,
    pub session: String,
    pub seq: u32,
}

/// Adds the CORS headers of an ingest answer. The requesting origin is echoed (so the recorder
/// can read refusals too); whether that origin may ingest is decided by the project's
/// allow-list, not here. Only a preflight needs the methods, headers and max age; a request
/// without an `Origin` (not from a browser) needs no CORS headers at all.
fn cors(mut response: Response, origin: Option<&HeaderValue>, preflight: Option<&HeaderMap>) -> Response {
    let h = response.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("origin"));
    if origin.is_none() && preflight.is_none() {
        return response;
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.cloned().unwrap_or(HeaderValue::from_static("*")));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
    if let Some(request) = preflight {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            allowed_headers(request, "content-type, content-encoding, x-replay-key"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    }
    response
}

/// Most characters of the request headers a preflight may name and have allowed back.
const MAX_REQUEST_HEADERS: usize = 1024;

/// The request headers a preflight of the recorder's requests may send: ours, and whatever
/// else the browser asks for (`Access-Control-Request-Headers`). The page's own `fetch`
/// wrappers (an APM's `traceparent`, `sentry-trace` or `baggage`) add headers to every request
/// of the page, the recorder's too: refused, they failed its uploads and its settings (then
/// recorded without the project's `mask_all_text`). Nothing is lost by allowing them: these
/// requests never carry credentials (no `Access-Control-Allow-Credentials`), and the server
/// reads only its own headers. A list that is not header names (or too long) gets ours only.
pub(crate) fn allowed_headers(request: &HeaderMap, ours: &'static str) -> HeaderValue {
    let asked = request
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= MAX_REQUEST_HEADERS)
        .filter(|v| {
            v.split(',').map(str::trim).all(|name| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            })
        });
    match asked {
        Some(asked) => HeaderValue::from_str(&format!("{ours}, {asked}")).unwrap_or(HeaderValue::from_static(ours)),
        None => HeaderValue::from_static(ours),
    }
}

/// CORS preflight of a public `GET` the recorder makes cross-origin (its settings, its wasm
/// when the page's `fetch` loads it): any origin, the headers asked for (a page's `fetch`
/// wrapper adds its own), never credentials.
pub(crate) fn get_preflight(headers: &HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed_headers(headers, "content-type"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}

/// CORS preflight of the recorder's cross-origin uploads.
#[utoipa::path(options, path = "/api/v1/ingest", tag = "ingest",
    responses((status = 204, description = "The methods and headers a cross-origin upload may use.")))]
pub async fn preflight(headers: HeaderMap) -> Response {
    cors(StatusCode::NO_CONTENT.into_response(), headers.get(header::ORIGIN), Some(&headers))
}

/// The ingest handler.
///
/// Takes the request whole: extracting `HeaderMap` would clone every header of every upload.
#[utoipa::path(post, path = "/api/v1/ingest", tag = "ingest",
    params(IngestQuery, ("content-encoding" = Option<String>, Header, description = "`gzip` when the body is gzip-compressed (nothing else is accepted).")),
    summary = "Stores one recorded batch.",
    description = "The recorder's only write: a batch is acknowledged once storage committed it; a resent batch is acknowledged as a duplicate and not stored twice. Browsers may send it cross-origin (CORS; the project's origin allow-list decides).",
    security(("ingest_key_header" = []), ("ingest_key_query" = [])),
    request_body(content = Vec<u8>, content_type = "application/msgpack",
        description = "One batch, MessagePack as defined by `replay-protocol`; gzip-compressed with `Content-Encoding: gzip` (or `?encoding=gzip`) optional."),
    responses(
        (status = 200, description = "The batch is stored (or was before: `duplicate`).", body = Ack),
        (status = 400, description = "Bad query, body, encoding or batch (`bad_query`, `empty_body`, `bad_encoding`, `limit_exceeded`, `invalid_batch`, `malformed_batch`, `unsupported_version`)."),
        (status = 401, description = "No ingest key, or an unknown one (`missing_key`, `unknown_key`)."),
        (status = 403, description = "The page's origin is not on the project's allow-list (`origin_not_allowed`)."),
        (status = 408, description = "The body came slower than 4 KiB a second after its first 15 s (`body_too_slow`)."),
        (status = 413, description = "Body, decompressed body, batch or session over its cap (`body_too_large`, `decompressed_too_large`, `batch_too_large`, `session_full`)."),
        (status = 410, description = "The session was deleted on request (`session_deleted`); it records nothing more."),
        (status = 415, description = "A content encoding other than gzip (`unsupported_encoding`)."),
        (status = 429, description = "Rate limited, or the project's daily quota is spent (`rate_limited`, `quota_exceeded`)."),
        (status = 503, description = "Storage is unavailable or the server is busy (`storage_unavailable`, `server_busy`); retry later."),
    ))]
pub async fn ingest(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    let client = crate::client::client_ip(peer, &headers, &state.config.trusted_proxies).map(crate::client::limit_key);
    let started = std::time::Instant::now();
    let result = match Query::<IngestQuery>::try_from_uri(&parts.uri) {
        Ok(Query(query)) => ingest_inner(&state, query, client, &headers, body).await,
        Err(e) => Err(ApiError::new(Reason::BadQuery, e.body_text())),
    };
    state.metrics.latency(started.elapsed());
    let response = match result {
        Ok(ack) => {
            state.metrics.accepted(ack.duplicate);
            Json(ack).into_response()
        }
        Err(e) => {
            state.metrics.rejected(e.reason);
            tracing::info!(reason = e.reason.code(), status = e.status().as_u16(), message = %e.message, "batch rejected");
            e.into_response()
        }
    };
    cors(response, headers.get(header::ORIGIN), None)
}

async fn ingest_inner(
    state: &AppState,
    query: IngestQuery,
    client: Option<IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Ack, ApiError> {
    let key = headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(query.key.as_deref())
        .ok_or_else(|| ApiError::new(Reason::MissingKey, "an ingest key is required"))?;
    // The client's rate limit comes first: a flood of made-up keys is limited like any other.
    state.limits.check_client(client).map_err(|wait| rate_limited(wait, "client"))?;
    let unknown = || ApiError::new(Reason::UnknownKey, "unknown ingest key");
    if key.len() > 128 {
        return Err(unknown());
    }
    // Known keys are answered by the storage's cache; only a miss consults (and hashes for)
    // the cache of refused keys, so the usual request pays for neither.
    let project = match state.storage.cached_project(key) {
        Some(p) => p,
        None if state.refused.contains(key) => return Err(unknown()),
        None => {
            let owned = key.to_owned();
            match state.blocking(move |s| s.project_by_key(&owned)).await? {
                Some(p) => Arc::new(p),
                None => {
                    state.refused.insert(key);
                    return Err(unknown());
                }
            }
        }
    };
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let originless_ok = origin.is_none() && state.config.accept_originless_ingest;
    if !originless_ok && !project.allows_origin(origin) {
        return Err(ApiError::new(
            Reason::OriginNotAllowed,
            match origin {
                Some(o) => format!("origin {o} may not send data to this project"),
                None => "this project only takes data from its allowed origins; the request has no Origin".into(),
            },
        ));
    }
    state.limits.check_project(project.id).map_err(|wait| rate_limited(wait, "project"))?;

    let max_body = state.config.max_body_bytes;
    let too_large = || ApiError::new(Reason::BodyTooLarge, format!("the body is larger than {max_body} bytes"));
    // Refuse from the announced length before reading anything.
    let announced = announced_length(headers);
    if announced.is_some_and(|len| len > max_body as u64) {
        return Err(too_large());
    }
    // What the request may cost is paid before it is read: its client's share of bytes (so one
    // address cannot ask for the CPU of several cores with big batches), then room in the
    // server's budget of bytes in flight (so no number of addresses can make it hold more).
    // A body of unannounced length is charged as the largest allowed.
    let charged = announced.map_or(max_body, |len| len as usize);
    state.limits.check_client_bytes(client, charged).map_err(|wait| rate_limited(wait, "client"))?;
    // The budget is taken as the body arrives (a first part at once): a client announcing 8 MiB
    // and sending a byte now and then held 8 MiB of it, and 32 of them held the whole budget.
    let mut held = state.inflight.reserve(charged.min(FIRST_RESERVE_BYTES)).ok_or_else(server_busy)?;
    let body = read_paced(body, max_body, too_large, &mut held).await?;
    held.shrink_to(body.len());
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .or(query.encoding)
        .unwrap_or_default();
    if !matches!(encoding.as_str(), "" | "identity" | "gzip") {
        return Err(ApiError::new(
            Reason::UnsupportedEncoding,
            format!("unsupported content encoding {encoding:?}; use gzip or none"),
        ));
    }
    // Decompression and decoding are CPU work: small bodies (the usual few KB) are cheaper to
    // handle right here than to hand to the blocking pool; big ones go off the async workers.
    let limits = state.config.limits;
    let sent = body.len();
    let inflight = Arc::clone(&state.inflight);
    let inline = sent <= INLINE_DECODE_BYTES
        && (encoding != "gzip" || replay_core::gzip::gunzip_capped(&body, INLINE_RAW_BYTES).is_ok());
    let decode = move || {
        let gzip = encoding == "gzip";
        let raw;
        let _decompressed;
        let encoded: &[u8] = if gzip {
            raw = replay_core::gzip::gunzip_capped(&body, limits.max_bytes).map_err(gunzip_error)?;
            // The decompressed copy is in flight too, for as long as it is decoded.
            _decompressed = inflight.reserve(raw.len()).ok_or_else(server_busy)?;
            &raw
        } else {
            &body
        };
        // Validated and summarised in one pass over a batch whose strings borrow `encoded`:
        // the server keeps nothing of the decoded events but the summary.
        let batch = replay_protocol::decode_batch_borrowed(encoded, &limits).map_err(decode_error)?;
        let mut summary = summarize(&batch);
        // A recorder's clock may be off, or forged: nothing is indexed as later than now.
        replay_core::clamp_times(&mut summary);
        // Stored as sent: the gzip the recorder made is kept, not a second copy of the raw bytes.
        Ok::<_, ApiError>((BatchBody { bytes: body, gzip }, summary))
    };
    let (raw, summary) = if inline {
        decode()?
    } else {
        // A bounded number of bodies in the blocking pool: a burst of page starts (every tab
        // of a release opening at once) otherwise grew the pool by hundreds of threads, each
        // with its own stack and allocator heap, all competing for the cores. Large bodies
        // have a lane of their own with half the cores, so the usual page start (a few KB to
        // a few hundred) never queues behind multi-megabyte batches, a hostile client's or not.
        // (The semaphores are never closed, so acquiring only ever waits.)
        let lane = if sent <= SMALL_LANE_BYTES { &state.decode_slots } else { &state.large_decode_slots };
        let _slot = lane.acquire().await.ok();
        tokio::task::spawn_blocking(decode).await.map_err(crate::Error::from)??
    };
    let stored_bytes = raw.bytes.len() as u64;
    let now = replay_core::now_ms();
    if state.quotas.applies(&project) {
        if state.quotas.needs_seed(project.id) {
            // Once per project after a start: what the index says it stored today.
            let (id, since, max_ids) = (project.id, Quotas::day_start(now), state.quotas.seed_ids(&project));
            let usage = match state.blocking(move |s| s.usage_since(id, since, max_ids)).await {
                Ok(usage) => usage,
                Err(e) => {
                    tracing::warn!(error = %e, project = id, "reading today's usage failed; the quotas count from zero");
                    replay_store::Usage::default()
                }
            };
            state.quotas.seed(&project, &usage, now);
        }
        state.quotas.admit(&project, &summary.session, stored_bytes, now).map_err(|over| {
            let what = if over.reason == Reason::QuotaBytes { "bytes" } else { "new sessions" };
            ApiError::new(
                over.reason,
                format!("this project's daily quota of {what} is used up; retry after midnight UTC"),
            )
            .retry_after(over.retry_after_secs)
        })?;
    }
    let (session, seq, sightings_dropped) = (summary.session.clone(), summary.seq, summary.error_sightings_dropped);
    let (done, outcome) = tokio::sync::oneshot::channel();
    state.storage.put_batch(
        project.id,
        summary,
        raw,
        Box::new(move |r| {
            let _ = done.send(r);
        }),
    );
    // Engines always answer; a dropped answer means the engine is shutting down.
    let stored = match outcome.await.map_err(|_| replay_store::Error::Stopped("the storage engine"))? {
        Ok(stored) => stored,
        // Permanent for this session: its later batches are refused the same way.
        Err(replay_store::Error::SessionFull { stored, cap }) => {
            return Err(ApiError::new(
                Reason::SessionFull,
                format!("the session holds {stored} stored bytes and may hold {cap}; it records nothing more"),
            ));
        }
        // The engine holds as many batches as it may: shed like the server's own overload.
        Err(replay_store::Error::Busy) => return Err(server_busy()),
        Err(replay_store::Error::SessionDeleted) => {
            return Err(ApiError::new(
                Reason::SessionDeleted,
                "the session was deleted on request; it records nothing more",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if stored == Stored::New {
        state.quotas.stored(project.id, stored_bytes, now);
    }
    state.metrics.bytes(sent);
    state.metrics.sightings_dropped(sightings_dropped);
    Ok(Ack { ok: true, duplicate: stored == Stored::Duplicate, session, seq })
}

/// The answer to a request over a rate limit (`which`: client or project).
fn rate_limited(wait: std::time::Duration, which: &str) -> ApiError {
    let secs = wait.as_secs() + 1;
    ApiError::new(Reason::RateLimited, format!("too many batches for this {which}; retry in {secs} s"))
        .retry_after(secs)
}

/// The `Content-Length` a request announces, if any.
pub(crate) fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

/// Reads a request body of at most `cap` bytes: `too_large()` past it, `bad_body` when it
/// cannot be read, `empty_body` when there is nothing.
pub(crate) async fn read_body(
    body: Body,
    cap: usize,
    too_large: impl Fn() -> ApiError,
) -> Result<axum::body::Bytes, ApiError> {
    let body = axum::body::to_bytes(body, cap).await.map_err(|e| {
        let text = format!("{e} {}", std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default());
        if text.contains("length limit") { too_large() } else { ApiError::new(Reason::BadBody, text) }
    })?;
    if body.is_empty() {
        return Err(ApiError::new(Reason::EmptyBody, "the body is empty"));
    }
    Ok(body)
}

/// What an upload reserves of the in-flight budget before its body is read; the rest as it comes.
const FIRST_RESERVE_BYTES: usize = 256 * 1024;
/// After [`BODY_GRACE`], a body must have come at this many bytes a second on average since the
/// request began, or the request ends with 408 (a client sending a byte now and then held a
/// connection, its reservation and a slot for as long as it liked). A phone on a poor link
/// sends faster than this.
const MIN_BODY_RATE: u64 = 4 * 1024;
/// How long a body may take before [`MIN_BODY_RATE`] applies.
const BODY_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// Reads an ingest body of at most `cap` bytes as it arrives, growing `held` with it, and ends
/// the request when the body comes slower than [`MIN_BODY_RATE`].
async fn read_paced(
    body: Body,
    cap: usize,
    too_large: impl Fn() -> ApiError,
    held: &mut crate::limits::InflightBytes,
) -> Result<axum::body::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let start = tokio::time::Instant::now();
    let mut body = body;
    let mut out = Vec::new();
    loop {
        // The latest time the next bytes may come: the grace, plus what was read at the rate.
        let paid = std::time::Duration::from_secs_f64(out.len() as f64 / MIN_BODY_RATE as f64);
        let deadline = start + BODY_GRACE + paid;
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    Reason::BodyTooSlow,
                    format!("the body came slower than {MIN_BODY_RATE} bytes a second"),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(ApiError::new(Reason::BadBody, e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        if out.len() + data.len() > cap {
            return Err(too_large());
        }
        if !held.grow_to(out.len() + data.len()) {
            return Err(server_busy());
        }
        out.extend_from_slice(&data);
    }
    if out.is_empty() {
        return Err(ApiError::new(Reason::EmptyBody, "the body is empty"));
    }
    Ok(axum::body::Bytes::from(out))
}

/// The answer when the server's budget of ingest bytes in flight is spent.
fn server_busy() -> ApiError {
    ApiError::new(Reason::ServerBusy, "the server is receiving too much data at once; retry in 1 s").retry_after(1)
}

/// The answer to a gzip body that does not decompress within the cap.
pub(crate) fn gunzip_error(e: replay_core::Error) -> ApiError {
    let invalid =
        |detail: &dyn std::fmt::Display| ApiError::new(Reason::BadEncoding, format!("invalid gzip body: {detail}"));
    match e {
        replay_core::Error::TooLarge { cap } => {
            ApiError::new(Reason::DecompressedTooLarge, format!("the decompressed body is larger than {cap} bytes"))
        }
        replay_core::Error::Gzip(io) => invalid(&io),
        other => invalid(&other),
    }
}

fn decode_error(e: replay_protocol::Error) -> ApiError {
    ApiError::new(Reason::of_decode_error(&e), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_failures_keep_their_reasons() {
        let e = gunzip_error(replay_core::Error::TooLarge { cap: 10 });
        assert_eq!((e.status(), e.reason), (StatusCode::PAYLOAD_TOO_LARGE, Reason::DecompressedTooLarge));
        let bad =
            replay_core::gzip::gunzip_capped(&axum::body::Bytes::from_static(b"not gzip"), 100).expect_err("not gzip");
        let e = gunzip_error(bad);
        assert_eq!((e.status(), e.reason), (StatusCode::BAD_REQUEST, Reason::BadEncoding));
        assert!(e.message.starts_with("invalid gzip body: ") && !e.message.contains("does not decompress"));
    }
}
