//! rrweb interop over HTTP (and for the CLI): recordings made by rrweb, PostHog or Sentry are
//! imported as sessions, and sessions are exported as rrweb events.
//!
//! - `POST /api/v1/projects/{id}/import/rrweb`: the body is the JSON of an rrweb export (an
//!   array of events, or an object with an `events` array; gzip allowed), at most the decoded
//!   batch cap (`limits.max_bytes`) after decompression. It must be sent as
//!   `application/json`: a form on another site cannot send that without the browser asking
//!   first, so a signed-in viewer's cookie cannot be used to import from elsewhere. The
//!   recording becomes a new session of one page view, stored batch by batch through
//!   [`replay_store::Storage::put_batch`] like ingest, each batch encoded, decoded again with
//!   the server's limits and summarized; the answer names the session and what was dropped.
//! - `GET /api/v1/sessions/{id}/rrweb?project=ID`: the session as a JSON array of rrweb events
//!   (a Meta and a FullSnapshot per page view, then the incrementals), playable by
//!   `rrweb-player`; `x-replay-dropped` counts our events rrweb has no place for.
//!
//! The conversion itself is [`replay_core::rrweb`]. Parsing and printing the nested JSON
//! recurse (to a depth the import measures and caps first), so both run on a thread of their
//! own with [`replay_core::rrweb::STACK_BYTES`] of stack; one conversion per core at a time.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use replay_core::rrweb::{self, ExportLimits, ImportLimits};
use replay_protocol::codec;
use replay_store::{BatchBody, Storage};
use serde::{Deserialize, Serialize};

use crate::access::{Capability, ProjectAccess};
use crate::config::Config;
use crate::reject::Reason;
use crate::{ApiError, AppState};

/// Header of the export answer: how many of our events (or nodes) were left out.
pub const DROPPED_HEADER: &str = "x-replay-dropped";

/// The answer to an import.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Imported {
    pub session: String,
    pub project: i64,
    /// Batches stored.
    pub batches: usize,
    /// rrweb events read, and our events stored.
    pub events_in: usize,
    pub events_out: usize,
    /// What was not imported, by kind.
    pub dropped: BTreeMap<String, u32>,
}

/// The import limits under a server's config: batches within its decode limits.
pub fn import_limits(config: &Config) -> ImportLimits {
    ImportLimits { batch: config.limits, ..ImportLimits::default() }
}

fn convert_error(e: replay_core::Error) -> ApiError {
    match e {
        replay_core::Error::Rrweb(m) => ApiError::new(Reason::BadRecording, m),
        e @ replay_core::Error::RrwebTooLarge { .. } => ApiError::new(Reason::RecordingTooLarge, e.to_string()),
        other => ApiError::from(other),
    }
}

/// Runs `f` on a thread with the stack the JSON conversion needs, and waits for it.
async fn on_big_stack<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = state.decode_slots.acquire().await.ok();
    let (done, outcome) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("rrweb".into())
        .stack_size(rrweb::STACK_BYTES)
        .spawn(move || {
            let _ = done.send(f());
        })
        .map_err(|e| {
            tracing::error!(error = %e, "no thread for an rrweb conversion");
            ApiError::new(Reason::StorageUnavailable, "the server is busy, retry later").retry_after(5)
        })?;
    outcome.await.map_err(|_| ApiError::new(Reason::StorageUnavailable, "the conversion stopped"))?
}

/// Converts and stores a recording as a new session of `project` (blocking: call it off the
/// async workers, on a thread with [`rrweb::STACK_BYTES`] of stack).
pub fn import_blocking(
    storage: &dyn Storage,
    config: &Config,
    project: i64,
    json: &[u8],
) -> Result<Imported, ApiError> {
    let limits = import_limits(config);
    let session = replay_core::random_hex(16)?;
    let page = replay_core::random_hex(16)?;
    let im = rrweb::import_json(json, &session, &page, &limits).map_err(convert_error)?;
    // Encoded, then decoded and summarized exactly as ingest does: what is stored is a batch
    // the server would have taken from a recorder.
    let mut stored = Vec::with_capacity(im.batches.len());
    for batch in &im.batches {
        let bytes = codec::encode_batch(batch).map_err(|e| ApiError::new(Reason::BadRecording, e.to_string()))?;
        let decoded = replay_protocol::decode_batch_borrowed(&bytes, &config.limits)
            .map_err(|e| ApiError::new(Reason::of_decode_error(&e), e.to_string()))?;
        let mut summary = replay_core::summarize(&decoded);
        replay_core::clamp_times(&mut summary);
        drop(decoded);
        stored.push((summary, BatchBody { bytes: bytes.into(), gzip: false }));
    }
    for (summary, body) in stored {
        let (reply, outcome) = std::sync::mpsc::sync_channel(1);
        storage.put_batch(
            project,
            summary,
            body,
            Box::new(move |r| {
                let _ = reply.send(r);
            }),
        );
        outcome.recv().map_err(|_| replay_store::Error::Stopped("the storage engine"))??;
    }
    tracing::info!(project, session = %session, batches = im.batches.len(), events = im.events_out, "rrweb recording imported");
    Ok(Imported {
        session,
        project,
        batches: im.batches.len(),
        events_in: im.events_in,
        events_out: im.events_out,
        dropped: im.dropped.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    })
}

/// `POST /api/v1/projects/{project}/import/rrweb` (a member's or owner's). Refusals are counted
/// by reason, like ingest's.
#[utoipa::path(post, path = "/api/v1/projects/{project}/import/rrweb", tag = "rrweb",
    params(crate::api::ProjectPath,
        ("content-encoding" = Option<String>, Header, description = "`gzip` when the body is gzip-compressed (nothing else is accepted).")),
    security(("admin_token" = []), ("login_cookie" = [])),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "An rrweb recording: a JSON array of events, or an object with an `events` array; `Content-Encoding: gzip` optional."),
    responses(
        (status = 200, description = "Stored as a new session.", body = Imported),
        (status = 400, description = "Not an rrweb recording, or a bad body or encoding (`bad_recording`, `bad_body`, `bad_encoding`, `empty_body`)."),
        (status = 403, description = "The caller's role or token may not import (`forbidden`)."),
        (status = 404, description = "No such project, or not the caller's."),
        (status = 413, description = "Over an import limit (`body_too_large`, `decompressed_too_large`, `recording_too_large`)."),
        (status = 415, description = "Not sent as `application/json` (`not_json`), or an encoding other than gzip."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn import_rrweb(
    access: ProjectAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    access.require(Capability::Write)?;
    match import_inner(&state, access.project, &headers, body).await {
        Ok(answer) => Ok(Json(answer).into_response()),
        Err(e) => {
            state.metrics.rejected(e.reason);
            tracing::info!(reason = e.reason.code(), message = %e.message, "rrweb import refused");
            Err(e)
        }
    }
}

async fn import_inner(state: &AppState, project: i64, headers: &HeaderMap, body: Body) -> Result<Imported, ApiError> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(ApiError::new(Reason::NotJson, "send the recording as Content-Type: application/json"));
    }
    let projects = state.blocking(|s| s.projects()).await?;
    if !projects.iter().any(|p| p.id == project) {
        return Err(ApiError::not_found("project"));
    }
    let cap = state.config.limits.max_bytes;
    let too_large = || ApiError::new(Reason::BodyTooLarge, format!("the recording is larger than {cap} bytes"));
    if crate::ingest::announced_length(headers).is_some_and(|len| len > cap as u64) {
        return Err(too_large());
    }
    let body = crate::ingest::read_body(body, cap, too_large).await?;
    let gzip = match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(e) if e.eq_ignore_ascii_case("identity") => false,
        Some(e) => {
            return Err(ApiError::new(
                Reason::UnsupportedEncoding,
                format!("unsupported content encoding {e:?}; use gzip or none"),
            ));
        }
    };
    let storage = std::sync::Arc::clone(&state.storage);
    let config = std::sync::Arc::clone(&state.config);
    on_big_stack(state, move || {
        let raw;
        let json: &[u8] = if gzip {
            raw = replay_core::gzip::gunzip_capped(&body, cap).map_err(crate::ingest::gunzip_error)?;
            &raw
        } else {
            &body
        };
        import_blocking(storage.as_ref(), &config, project, json)
    })
    .await
}

/// `GET /api/v1/projects/{project}/sessions/{id}/rrweb` (a member's or owner's, or a token with
/// the `read` scope).
#[utoipa::path(get, path = "/api/v1/projects/{project}/sessions/{id}/rrweb", tag = "rrweb",
    params(crate::api::SessionPath),
    security(("admin_token" = []), ("login_cookie" = [])),
    responses(
        (status = 200, description = "The session as a JSON array of rrweb events.", body = Vec<serde_json::Value>,
            headers(("x-replay-dropped" = u32, description = "How many of our events or nodes rrweb has no place for."))),
        (status = 403, description = "The caller's role may not export (`forbidden`)."),
        (status = 404, description = "No such session, or no such project or not the caller's."),
        (status = 413, description = "The session is larger than a read may load (`session_too_large`)."),
        (status = 500, description = "A stored batch does not decode (`corrupt_session`)."),
        (status = 401, description = "No caller: neither a viewer login nor a token."),
        (status = 503, description = "Storage is unavailable; retry later."),
    ))]
pub async fn export_rrweb(
    access: ProjectAccess,
    State(state): State<AppState>,
    Path(crate::api::SessionPath { id, .. }): Path<crate::api::SessionPath>,
) -> Result<Response, ApiError> {
    access.require(Capability::Export)?;
    let project = access.project;
    // Refused from the index's sizes before any body is read when larger than a read may load.
    let bodies = crate::api::load_batches(&state, project, id).await?;
    let limits = state.config.limits;
    let (json, dropped) = on_big_stack(&state, move || {
        let mut batches = Vec::with_capacity(bodies.len());
        for body in &bodies {
            batches.push(replay_protocol::decode_batch(body, &limits).map_err(|e| {
                tracing::error!(error = %e, "stored batch does not decode");
                ApiError::new(Reason::CorruptSession, "a stored batch does not decode")
            })?);
        }
        drop(bodies);
        let timeline = replay_protocol::Timeline::from_batches(batches);
        let exported = rrweb::export(&timeline, &ExportLimits::default());
        drop(timeline);
        let dropped: u32 = exported.dropped.values().sum();
        let json = serde_json::to_vec(&exported.events)
            .map_err(|e| ApiError::new(Reason::CorruptSession, format!("the session does not print: {e}")))?;
        Ok((json, dropped))
    })
    .await?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (HeaderName::from_static(DROPPED_HEADER), HeaderValue::from(dropped)),
    ];
    Ok((headers, json).into_response())
}
