//! The replay server as a library: the axum [`app`] and everything it is built from.
//!
//! The binary (`main.rs`) only parses the command line, opens storage and serves [`app`]; tests
//! drive [`app`] directly with `tower::ServiceExt::oneshot`, without sockets.
//!
//! - [`ingest`]: `POST /api/v1/ingest`, the only write path for recorded data;
//! - [`api`]: the JSON query API (sessions, events, snapshot at time t);
//! - [`assets`]: the recorder, the viewer and the demo app, embedded in the binary;
//! - [`storage`]: the [`storage::Storage`] trait and the embedded SQLite engine;
//! - [`metrics`]: counters of ingest outcomes, exposed at `/metrics`.

pub mod api;
pub mod assets;
pub mod ingest;
pub mod metrics;
pub mod pages;
pub mod storage;

mod error;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use error::{ApiError, Error};
pub use storage::{SqliteStorage, Storage};

/// Caps and settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest request body accepted by ingest, as sent (possibly compressed).
    pub max_body_bytes: usize,
    /// Decode limits applied to every batch (its `max_bytes` caps decompression too).
    pub limits: replay_protocol::Limits,
    /// Largest answer of the events endpoint, in bytes.
    pub max_session_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_bytes: 8 * 1024 * 1024,
            limits: replay_protocol::Limits::default(),
            max_session_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub config: Arc<Config>,
    pub metrics: Arc<metrics::Metrics>,
}

impl AppState {
    pub fn new(storage: Arc<dyn Storage>, config: Config) -> Self {
        AppState { storage, config: Arc::new(config), metrics: Arc::new(metrics::Metrics::default()) }
    }

    /// Runs blocking storage work off the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Storage) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let storage = Arc::clone(&self.storage);
        tokio::task::spawn_blocking(move || f(storage.as_ref())).await?
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/ingest", post(ingest::ingest).options(ingest::preflight))
        .route("/api/v1/sessions", get(api::list_sessions))
        .route("/api/v1/sessions/{id}", get(api::get_session))
        .route("/api/v1/sessions/{id}/events", get(api::session_events))
        .route("/api/v1/sessions/{id}/snapshot", get(api::session_snapshot))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::render))
        .merge(assets::routes())
        .merge(pages::routes())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
