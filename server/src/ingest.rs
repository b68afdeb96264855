//! `POST /api/v1/ingest`: authenticated, capped, idempotent intake of recorded batches.
//!
//! Order of checks, cheapest first, so hostile input costs little: ingest key, body size,
//! capped decompression, capped decoding, then the durable write. A batch is acknowledged
//! (`200`) only after storage committed it; a resent batch is acknowledged as a duplicate and
//! not stored twice. Every rejection is a 4xx JSON error with a machine-readable `reason`, and
//! is counted by that reason.

use std::cell::RefCell;
use std::io::Read;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes};
use flate2::bufread::GzDecoder;
use replay_protocol::{AppFact, Batch, EventData, Freeze};
use serde::{Deserialize, Serialize};

use crate::reject::Reason;
use crate::storage::{BatchBody, BatchSummary, Stored};
use crate::{ApiError, AppState};

/// Bodies up to this size are decompressed and decoded on the async worker itself (gzip expands
/// at most ~1000×, so the worst case stays a few milliseconds).
const INLINE_DECODE_BYTES: usize = 4 * 1024;

/// Header carrying the ingest key (the `key` query parameter works too, for `sendBeacon`).
pub const KEY_HEADER: &str = "x-replay-key";

#[derive(Debug, Deserialize)]
pub struct IngestQuery {
    key: Option<String>,
    /// `gzip` when the body is gzip-compressed and no `Content-Encoding` header could be set.
    encoding: Option<String>,
}

/// The acknowledgement of a stored batch.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ack {
    pub ok: bool,
    /// True when this (session, page, seq) had been stored before.
    pub duplicate: bool,
    pub session: String,
    pub seq: u32,
}

/// Adds the CORS headers of an ingest answer. The requesting origin is echoed (so the recorder
/// can read refusals too); whether that origin may ingest is decided by the project's
/// allow-list, not here. Only a preflight needs the methods, headers and max age; a request
/// without an `Origin` (not from a browser) needs no CORS headers at all.
fn cors(mut response: Response, origin: Option<&HeaderValue>, preflight: bool) -> Response {
    let h = response.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("origin"));
    if origin.is_none() && !preflight {
        return response;
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.cloned().unwrap_or(HeaderValue::from_static("*")));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
    if preflight {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, content-encoding, x-replay-key"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    }
    response
}

/// CORS preflight of the recorder's cross-origin uploads.
pub async fn preflight(headers: HeaderMap) -> Response {
    cors(StatusCode::NO_CONTENT.into_response(), headers.get(header::ORIGIN), true)
}

/// The ingest handler.
///
/// Takes the request whole: extracting `HeaderMap` would clone every header of every upload.
pub async fn ingest(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let client = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
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
    cors(response, headers.get(header::ORIGIN), false)
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
    if key.len() > 128 {
        return Err(ApiError::new(Reason::UnknownKey, "unknown ingest key"));
    }
    let project = match state.storage.cached_project(key) {
        Some(p) => p,
        None => {
            let key = key.to_owned();
            state
                .blocking(move |s| s.project_by_key(&key))
                .await?
                .map(Arc::new)
                .ok_or_else(|| ApiError::new(Reason::UnknownKey, "unknown ingest key"))?
        }
    };
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !project.allows_origin(origin) {
        return Err(ApiError::new(
            Reason::OriginNotAllowed,
            format!("origin {} may not send data to this project", origin.unwrap_or_default()),
        ));
    }
    if let Err((wait, which)) = state.limits.check_ingest(project.id, client) {
        let secs = wait.as_secs() + 1;
        return Err(ApiError::new(
            Reason::RateLimited,
            format!("too many batches for this {which}; retry in {secs} s"),
        )
        .retry_after(secs));
    }

    let max_body = state.config.max_body_bytes;
    let too_large = || ApiError::new(Reason::BodyTooLarge, format!("the body is larger than {max_body} bytes"));
    // Refuse from the announced length before reading anything.
    let announced =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > max_body as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, max_body).await.map_err(|e| {
        let text = format!("{e} {}", std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default());
        if text.contains("length limit") { too_large() } else { ApiError::new(Reason::BadBody, text) }
    })?;
    if body.is_empty() {
        return Err(ApiError::new(Reason::EmptyBody, "the body is empty"));
    }
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
    let decode = move || {
        let gzip = encoding == "gzip";
        let raw;
        let encoded: &[u8] = if gzip {
            raw = gunzip_capped(&body, limits.max_bytes)?;
            &raw
        } else {
            &body
        };
        // Validated and summarised in one pass over a batch whose strings borrow `encoded`:
        // the server keeps nothing of the decoded events but the summary.
        let batch = replay_protocol::decode_batch_borrowed(encoded, &limits).map_err(decode_error)?;
        let summary = summarize(&batch);
        // Stored as sent: the gzip the recorder made is kept, not a second copy of the raw bytes.
        Ok::<_, ApiError>((BatchBody { bytes: body.to_vec(), gzip }, summary))
    };
    let (raw, summary) = if sent <= INLINE_DECODE_BYTES {
        decode()?
    } else {
        // As many big bodies in the blocking pool as there are cores: a burst of page starts
        // (every tab of a release opening at once) otherwise grew the pool by hundreds of
        // threads, each with its own stack and allocator heap, all competing for the cores.
        // (The semaphore is never closed, so acquiring only ever waits.)
        let _slot = state.decode_slots.acquire().await.ok();
        tokio::task::spawn_blocking(decode).await.map_err(crate::Error::from)??
    };
    let (session, seq) = (summary.session.clone(), summary.seq);
    let (done, outcome) = tokio::sync::oneshot::channel();
    state.storage.put_batch_then(
        project.id,
        summary,
        raw,
        Box::new(move |r| {
            let _ = done.send(r);
        }),
    );
    let stored = outcome.await.map_err(|_| crate::Error::Storage("storage dropped the batch".into()))??;
    state.metrics.bytes(sent);
    Ok(Ack { ok: true, duplicate: stored == Stored::Duplicate, session, seq })
}

/// Deflate cannot expand data more than about 1032 times.
const MAX_DEFLATE_RATIO: usize = 1032;

thread_local! {
    /// One gzip decoder per thread, reset for every body: its inflate state and window are
    /// allocated once per thread instead of once per request.
    static GUNZIP: RefCell<Option<GzDecoder<bytes::buf::Reader<Bytes>>>> = const { RefCell::new(None) };
}

/// Decompresses gzip, refusing to produce more than `max` bytes (zip bombs stop there).
///
/// The output is sized up front from the size the gzip trailer announces (the size modulo
/// 2^32, as sent, so untrusted): capped by `max` and by what deflate can produce from this
/// body, it only saves the regrowing copies and never lets a small body reserve much memory.
/// The body is read in place (`bufread`), without the 32 KB copy buffer of `read::GzDecoder`.
fn gunzip_capped(body: &Bytes, max: usize) -> Result<Vec<u8>, ApiError> {
    let announced = crate::storage::gzip_announced_size(body);
    let cap = announced.min(max).min(body.len().saturating_mul(MAX_DEFLATE_RATIO));
    // The whole body at once when the announced size is within the caps; whatever that does
    // not take goes through the streaming decoder below.
    if let Some(out) = crate::storage::gunzip_whole(body, cap) {
        return Ok(out);
    }
    let mut out = Vec::with_capacity(cap + 1);
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let read = GUNZIP.with_borrow_mut(|slot| {
        let input = body.clone().reader();
        let decoder = match slot {
            Some(d) => {
                d.reset(input);
                d
            }
            None => slot.insert(GzDecoder::new(input)),
        };
        let read = Read::by_ref(decoder).take(limit).read_to_end(&mut out);
        // Let go of the body now rather than at the next request.
        decoder.reset(Bytes::new().reader());
        read
    });
    read.map_err(|e| ApiError::new(Reason::BadEncoding, format!("invalid gzip body: {e}")))?;
    if out.len() > max {
        return Err(ApiError::new(
            Reason::DecompressedTooLarge,
            format!("the decompressed body is larger than {max} bytes"),
        ));
    }
    Ok(out)
}

fn decode_error(e: replay_protocol::Error) -> ApiError {
    ApiError::new(Reason::of_decode_error(&e), e.to_string())
}

/// The facts of a batch that the session index keeps, from a batch decoded owned or borrowed
/// (only these few strings are copied).
pub fn summarize<S: AsRef<str>>(batch: &Batch<S>) -> BatchSummary {
    let owned = |v: &S| v.as_ref().to_owned();
    let mut s = BatchSummary {
        session: owned(&batch.session),
        page: owned(&batch.page),
        seq: batch.seq,
        start_ms: batch.start,
        end_ms: batch.end,
        received_ms: crate::storage::now_ms(),
        events: batch.events.len() as u64,
        dropped: u64::from(batch.dropped),
        recorder_errors: u64::from(batch.recorder_errors),
        ..BatchSummary::default()
    };
    let mut rage = replay_protocol::rage::RageDetector::new();
    for e in &batch.events {
        match &e.data {
            EventData::Meta(m) => {
                if s.url.is_none() {
                    s.url = Some(owned(&m.url));
                    s.user_agent = Some(owned(&m.user_agent));
                }
                let viewport = format!("{}×{}", m.viewport.width, m.viewport.height);
                crate::diagnostics::push_fact(&mut s.facts, "viewport", &viewport);
            }
            EventData::Click(c) => {
                s.clicks += 1;
                s.rage_clicks += u64::from(rage.click(batch.time_of(e), c));
            }
            EventData::Error(err) => {
                s.errors += u64::from(err.count.max(1));
                crate::diagnostics::add_sighting(
                    &mut s.error_sightings,
                    crate::diagnostics::sighting(err, batch.time_of(e)),
                );
            }
            EventData::Freeze(Freeze::Started { .. }) => {
                s.freezes += 1;
                s.freeze_started_ms = s.freeze_started_ms.max(batch.time_of(e));
            }
            EventData::Freeze(Freeze::Ended { duration, culprits }) => {
                s.freeze_ended_ms = s.freeze_ended_ms.max(batch.time_of(e));
                if u64::from(*duration) > s.longest_freeze_ms {
                    s.longest_freeze_ms = u64::from(*duration);
                    s.freeze_culprit = culprits.first().map(crate::diagnostics::culprit_text);
                }
            }
            EventData::Environment(env) => {
                if !env.browser.as_ref().is_empty() {
                    s.browser = Some(owned(&env.browser));
                }
                crate::diagnostics::environment_facts(&mut s.facts, env);
            }
            EventData::App(AppFact::Identify { user, .. }) => s.user = Some(owned(user)),
            EventData::App(AppFact::Release(r)) => {
                s.release = Some(owned(r));
                crate::diagnostics::push_fact(&mut s.facts, "release", r.as_ref());
            }
            EventData::App(AppFact::Environment(v)) => {
                s.environment = Some(owned(v));
                crate::diagnostics::push_fact(&mut s.facts, "environment", v.as_ref());
            }
            EventData::App(AppFact::Flags(json)) => crate::diagnostics::flag_facts(&mut s.facts, json.as_ref()),
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use replay_protocol::{
        Click, Environment, ErrorEvent, ErrorKind, Event, Limits, Node, NodeKind, PageMeta, ScriptTiming, Snapshot,
        Viewport, decode_batch, decode_batch_borrowed, encode_batch,
    };

    use super::*;

    fn culprit(function: &str, line: u32) -> ScriptTiming {
        ScriptTiming {
            invoker: "BUTTON.onclick".into(),
            invoker_type: "event-listener".into(),
            source_url: "https://shop.test/app.js".into(),
            function: function.into(),
            char_position: -1,
            duration: 900,
            forced_style_layout: 0,
            pause_duration: 0,
            line,
            column: 7,
        }
    }

    fn error(message: &str, stack: &str, count: u32) -> EventData {
        EventData::Error(ErrorEvent {
            kind: ErrorKind::Uncaught,
            message: message.into(),
            stack: stack.into(),
            source: "https://shop.test/app.js".into(),
            line: 3,
            column: 9,
            count,
        })
    }

    fn environment(browser: &str) -> EventData {
        EventData::Environment(Environment {
            browser: browser.into(),
            browser_version: "156".into(),
            os: "Linux".into(),
            device_pixel_ratio: 1.0,
            device_memory: 8.0,
            cpu_cores: 2,
            connection: "4g".into(),
            language: "en".into(),
            timezone: "UTC".into(),
        })
    }

    fn meta(url: &str) -> EventData {
        EventData::Meta(PageMeta {
            url: url.into(),
            title: "t".into(),
            viewport: Viewport { width: 1, height: 1 },
            user_agent: format!("ua of {url}"),
            referrer: String::new(),
        })
    }

    /// Batches with every event the summary looks at, in varied orders and repeats.
    fn varied_batches() -> Vec<Batch> {
        let events: Vec<EventData> = vec![
            meta("https://shop.test/a"),
            meta("https://shop.test/b"),
            EventData::Snapshot(Snapshot {
                nodes: vec![Node { id: 1, parent: 0, kind: NodeKind::Document }],
                scroll_x: 0,
                scroll_y: 0,
            }),
            EventData::Click(Click { id: 1, x: 2, y: 3, button: 0 }),
            error("order 123 failed", "Error: order 123 failed\n    at pay (https://shop.test/app.js:3:9)", 0),
            error("order 456 failed", "Error: order 456 failed\n    at pay (https://shop.test/app.js:3:9)", 4),
            error("\u{1F600} no stack", "", 1),
            EventData::Freeze(Freeze::Started { url: "https://shop.test/a".into(), last_action: "click".into() }),
            EventData::Freeze(Freeze::Ended { duration: 1200, culprits: vec![culprit("burn", 40)] }),
            EventData::Freeze(Freeze::Ended { duration: 3000, culprits: vec![culprit("", 0), culprit("x", 1)] }),
            EventData::Freeze(Freeze::Ended { duration: 10, culprits: vec![] }),
            environment(""),
            environment("Chrome"),
            EventData::App(AppFact::Identify { user: "ada".into(), traits: "{}".into() }),
            EventData::App(AppFact::Release("1.2.3".into())),
            EventData::App(AppFact::Environment("production".into())),
            EventData::App(AppFact::Flags("{\"a\":true}".into())),
        ];
        let mut batches = Vec::new();
        for rotation in 0..events.len() {
            let mut b = Batch::new("s-1", "p_1", rotation as u32, 1_800_000_000_000);
            let mut list = events.clone();
            list.rotate_left(rotation);
            list.truncate(events.len() - rotation % 5);
            b.events = list.into_iter().enumerate().map(|(i, data)| Event { t: i as u32 * 100, data }).collect();
            b.end = b.start + 5_000;
            b.dropped = rotation as u32;
            b.recorder_errors = (rotation % 3) as u32;
            batches.push(b);
        }
        batches.push(Batch::new("empty", "page", 0, 5));
        batches
    }

    #[test]
    fn the_borrowed_summary_equals_the_one_of_the_full_decode() {
        let limits = Limits::default();
        for b in varied_batches() {
            for wire in [
                encode_batch(&b).expect("encode"),
                replay_protocol::codec::encode_batch_compact(b.clone()).expect("encode"),
            ] {
                let mut owned = summarize(&decode_batch(&wire, &limits).expect("decode"));
                let mut borrowed = summarize(&decode_batch_borrowed(&wire, &limits).expect("decode"));
                (owned.received_ms, borrowed.received_ms) = (0, 0);
                assert_eq!(owned, borrowed, "batch {}", b.seq);
            }
        }
    }

    #[test]
    fn the_summary_keeps_the_first_url_the_last_facts_and_the_longest_freeze() {
        let b = &varied_batches()[0];
        let wire = encode_batch(b).expect("encode");
        let s = summarize(&decode_batch_borrowed(&wire, &Limits::default()).expect("decode"));
        assert_eq!(s.url.as_deref(), Some("https://shop.test/a"));
        assert_eq!(s.user_agent.as_deref(), Some("ua of https://shop.test/a"));
        assert_eq!((s.clicks, s.errors, s.freezes), (1, 1 + 4 + 1, 1));
        assert_eq!(s.longest_freeze_ms, 3000);
        assert_eq!(s.freeze_culprit.as_deref(), Some("BUTTON.onclick (https://shop.test/app.js)"));
        assert_eq!(s.error_sightings.len(), 2, "the two orders share a fingerprint");
        assert_eq!(s.error_sightings[0].count, 5);
        assert_eq!(
            (s.browser.as_deref(), s.user.as_deref(), s.release.as_deref(), s.environment.as_deref()),
            (Some("Chrome"), Some("ada"), Some("1.2.3"), Some("production"))
        );
    }

    fn gzip(data: &[u8]) -> Bytes {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).expect("in memory");
        Bytes::from(gz.finish().expect("in memory"))
    }

    #[test]
    fn gunzip_returns_the_original_bytes() {
        let data: Vec<u8> = (0..50_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        assert_eq!(gunzip_capped(&gzip(&data), 1 << 20).expect("valid gzip"), data);
    }

    #[test]
    fn a_lying_size_trailer_reserves_no_more_than_deflate_can_produce() {
        let mut body = gzip(b"hello").to_vec();
        let n = body.len();
        body[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        let body = Bytes::from(body);
        // The trailer is checked after the data: the lie is an error, found without having
        // reserved 4 GB on its word.
        let e = gunzip_capped(&body, usize::MAX).expect_err("size mismatch");
        assert_eq!(e.reason, Reason::BadEncoding);
        let body = gzip(&[0u8; 4096]);
        let out = gunzip_capped(&body, 1 << 30).expect("valid gzip");
        assert!(out.capacity() <= body.len() * MAX_DEFLATE_RATIO + 1);
    }

    #[test]
    fn bodies_the_whole_buffer_inflater_refuses_get_the_streaming_answer() {
        // Two gzip members back to back: the streaming decoder reads the first, as before.
        let mut two = gzip(b"first member").to_vec();
        two.extend_from_slice(&gzip(b"second"));
        assert_eq!(gunzip_capped(&Bytes::from(two), 1 << 20).expect("first member"), b"first member");
        // A trailer announcing fewer bytes than the data holds: refused as bad gzip.
        let mut short = gzip(b"hello world").to_vec();
        let n = short.len();
        short[n - 4..].copy_from_slice(&5u32.to_le_bytes());
        let e = gunzip_capped(&Bytes::from(short), 1 << 20).expect_err("size mismatch");
        assert_eq!(e.reason, Reason::BadEncoding);
        // A header CRC (which libdeflate would skip unchecked) that is wrong: refused.
        let plain = gzip(b"hello world").to_vec();
        let mut with_crc = plain[..10].to_vec();
        with_crc[3] |= 0x02;
        with_crc.extend([0xde, 0xad]);
        with_crc.extend(&plain[10..]);
        let e = gunzip_capped(&Bytes::from(with_crc), 1 << 20).expect_err("bad header crc");
        assert_eq!(e.reason, Reason::BadEncoding);
    }

    #[test]
    fn a_zip_bomb_stops_at_the_cap() {
        let body = gzip(&vec![0u8; 1 << 20]);
        let e = gunzip_capped(&body, 64 * 1024).expect_err("over the cap");
        assert_eq!(e.reason, Reason::DecompressedTooLarge);
        let e = gunzip_capped(&body.slice(..body.len() / 2), 1 << 21).expect_err("truncated");
        assert_eq!(e.reason, Reason::BadEncoding);
    }

    #[test]
    fn the_reused_decoder_starts_afresh_after_every_body_good_or_bad() {
        let a: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        let b = b"second body".to_vec();
        assert_eq!(gunzip_capped(&gzip(&a), 1 << 20).expect("first"), a);
        let truncated = gzip(&a);
        assert!(gunzip_capped(&truncated.slice(..truncated.len() - 9), 1 << 20).is_err());
        assert!(gunzip_capped(&Bytes::from_static(b"not gzip at all"), 1 << 20).is_err());
        assert!(gunzip_capped(&gzip(&a), 100).is_err(), "over the cap mid-stream");
        assert_eq!(gunzip_capped(&gzip(&b), 1 << 20).expect("after errors"), b);
        assert_eq!(gunzip_capped(&gzip(&a), 1 << 20).expect("again"), a);
    }
}
