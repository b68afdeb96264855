//! Ingest counters, exposed in the Prometheus text format at `/metrics`, to server admins and
//! to the bearer of the configured metrics token (a scraper's, [`crate::config::Config::metrics_token`]).
//! The counters are the whole server's (every project's traffic): nobody else may read them.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::reject::Reason;
use crate::{ApiError, AppState, access, auth};

/// Counters of ingest outcomes.
#[derive(Debug)]
pub struct Metrics {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    bytes: AtomicU64,
    /// Errors of accepted batches left out of the error groups by the per-batch cap.
    sightings_dropped: AtomicU64,
    /// Rejections by [`Reason::index`]; storage failures are also [`Reason::StorageUnavailable`].
    rejected: [AtomicU64; Reason::ALL.len()],
    /// Ingest latency histogram: counts per bucket of [`LATENCY_BUCKETS_MS`], then +Inf.
    latency: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    latency_sum_us: AtomicU64,
}

// By hand: arrays of more than 32 counters have no derived `Default`.
impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            sightings_dropped: AtomicU64::new(0),
            rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_us: AtomicU64::new(0),
        }
    }
}

/// Upper bounds of the ingest latency histogram buckets, in milliseconds.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000];

impl Metrics {
    /// Counts a batch acknowledged (new or duplicate).
    pub fn accepted(&self, duplicate: bool) {
        if duplicate { &self.duplicates } else { &self.accepted }.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long one ingest request took.
    pub fn latency(&self, d: std::time::Duration) {
        let ms = d.as_millis();
        let bucket = LATENCY_BUCKETS_MS.iter().position(|&b| ms <= u128::from(b)).unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts errors left out of the error groups (`replay_core::diagnostics::MAX_SIGHTINGS_PER_BATCH`).
    pub fn sightings_dropped(&self, n: u64) {
        if n > 0 {
            self.sightings_dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts the bytes of an acknowledged body.
    pub fn bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a request rejected for `reason`.
    pub fn rejected(&self, reason: Reason) {
        self.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Rejections so far of one reason.
    pub fn rejections(&self, reason: Reason) -> u64 {
        self.rejected[reason.index()].load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every counter.
    pub fn exposition(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE replay_ingest_batches_total counter");
        let _ = writeln!(
            out,
            "replay_ingest_batches_total{{outcome=\"stored\"}} {}",
            self.accepted.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "replay_ingest_batches_total{{outcome=\"duplicate\"}} {}",
            self.duplicates.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE replay_ingest_bytes_total counter");
        let _ = writeln!(out, "replay_ingest_bytes_total {}", self.bytes.load(Ordering::Relaxed));
        let _ = writeln!(out, "# TYPE replay_ingest_error_sightings_dropped_total counter");
        let _ = writeln!(
            out,
            "replay_ingest_error_sightings_dropped_total {}",
            self.sightings_dropped.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE replay_ingest_rejected_total counter");
        // Labels in alphabetical order, each once it has counted something.
        let mut seen: Vec<(&str, u64)> =
            Reason::ALL.iter().map(|&r| (r.metric_label(), self.rejections(r))).filter(|&(_, n)| n > 0).collect();
        seen.sort_unstable();
        for (label, n) in seen {
            let _ = writeln!(out, "replay_ingest_rejected_total{{reason=\"{label}\"}} {n}");
        }
        let _ = writeln!(out, "# TYPE replay_storage_errors_total counter");
        let _ = writeln!(out, "replay_storage_errors_total {}", self.rejections(Reason::StorageUnavailable));
        let _ = writeln!(out, "# TYPE replay_ingest_seconds histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            cumulative += self.latency[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "replay_ingest_seconds_bucket{{le=\"{}\"}} {cumulative}", *bound as f64 / 1000.0);
        }
        cumulative += self.latency[LATENCY_BUCKETS_MS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "replay_ingest_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "replay_ingest_seconds_sum {}", self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "replay_ingest_seconds_count {cumulative}");
        out
    }
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let scraper = state
        .config
        .metrics_token
        .as_deref()
        .zip(access::bearer(&headers))
        .is_some_and(|(want, given)| auth::same(&auth::digest(want), &auth::digest(given)));
    if !scraper {
        match access::caller_of(&state, &headers).await? {
            Some(caller) if caller.is_server_admin() => {}
            Some(_) => return Err(ApiError::new(Reason::Forbidden, "the metrics are for server admins")),
            None => {
                return Err(ApiError::new(
                    Reason::Unauthorized,
                    "send Authorization: Bearer with the metrics token or an admin token",
                ));
            }
        }
    }
    let mut out = state.metrics.exposition();
    let backlog = state.storage.index_backlog();
    let _ = writeln!(out, "# TYPE replay_index_backlog_batches gauge");
    let _ = writeln!(out, "replay_index_backlog_batches{{state=\"pending\"}} {}", backlog.pending);
    let _ = writeln!(out, "replay_index_backlog_batches{{state=\"held\"}} {}", backlog.held);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
