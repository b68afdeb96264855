//! Ingest counters, exposed in the Prometheus text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::AppState;

/// Counters of ingest outcomes.
#[derive(Debug, Default)]
pub struct Metrics {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    bytes: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Counts a batch acknowledged (new or duplicate).
    pub fn accepted(&self, duplicate: bool) {
        if duplicate { &self.duplicates } else { &self.accepted }.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the bytes of an acknowledged body.
    pub fn bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a batch rejected for `reason`.
    pub fn rejected(&self, reason: &'static str) {
        if let Ok(mut map) = self.rejected.lock() {
            *map.entry(reason).or_default() += 1;
        }
    }

    /// Rejections so far, by reason.
    pub fn rejections(&self) -> BTreeMap<&'static str, u64> {
        self.rejected.lock().map(|m| m.clone()).unwrap_or_default()
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
        let _ = writeln!(out, "# TYPE replay_ingest_rejected_total counter");
        for (reason, n) in self.rejections() {
            let _ = writeln!(out, "replay_ingest_rejected_total{{reason=\"{reason}\"}} {n}");
        }
        out
    }
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.exposition())
}
