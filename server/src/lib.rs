//! The replay server as a library: the axum [`app`] and everything it is built from.
//!
//! The binary (`main.rs`) only parses the command line, opens storage and serves [`app`]; tests
//! drive [`app`] directly with `tower::ServiceExt::oneshot`, without sockets.
//!
//! Layers: `replay-protocol` (wire types) → `replay-core` (what the index keeps of a batch) →
//! `replay-store` (the [`Storage`] trait and its engines) → this crate (HTTP). Handlers reach
//! storage only through [`Storage`]; no module but the router uses [`ingest`].
//!
//! - [`ingest`]: `POST /api/v1/ingest`, the only write path for recorded data;
//! - [`interop`]: rrweb recordings imported as sessions, sessions exported as rrweb events;
//! - [`api`]: the JSON query API (sessions, events, snapshot at time t);
//! - [`assets`]: the recorder and the viewer, embedded in the binary;
//! - [`auth`]: who may read (admin token, viewer logins);
//! - [`client`]: the client's address behind trusted proxies, and its rate-limit key;
//! - [`config`]: settings from a file, the environment and flags;
//! - [`demo`]: the demo app and the diagnostics lab (pages with the recorder embedded);
//! - [`errors_page`]: the error groups page of the viewer;
//! - [`layout`]: the page layout, headers and URL encoder of every server-rendered page;
//! - [`limits`]: rate limits and the cache of refused credentials;
//! - [`metrics`]: counters of ingest outcomes, exposed at `/metrics`;
//! - [`pages`]: the session list and the offline export;
//! - [`reject`]: every reason a request is refused (status, code, metric label), in one table.

pub mod api;
pub mod assets;
pub mod auth;
pub mod client;
pub mod config;
pub mod demo;
pub mod errors_page;
pub mod ingest;
pub mod interop;
pub mod layout;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod reject;

mod error;

/// Storage, under the path the page modules name it by.
pub(crate) use replay_store as storage;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use error::{ApiError, Error};
use replay_store::Storage;

pub use config::Config;

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub config: Arc<Config>,
    pub metrics: Arc<metrics::Metrics>,
    pub limits: Arc<limits::RateLimits>,
    /// Ingest keys, tokens and login cookies recently found unknown (answered from memory).
    pub refused: Arc<limits::Refused>,
    /// Ingest bodies decoded off the async workers at once (see [`ingest`]).
    pub decode_slots: Arc<tokio::sync::Semaphore>,
    /// Password checks (argon2, ~20 MB and tens of ms each) running at once: one per core.
    pub password_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(storage: Arc<dyn Storage>, config: Config) -> Self {
        let limits = Arc::new(limits::RateLimits::new(config.project_rate, config.client_rate));
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        AppState {
            storage,
            config: Arc::new(config),
            metrics: Arc::new(metrics::Metrics::default()),
            limits,
            refused: Arc::new(limits::Refused::default()),
            decode_slots: Arc::new(tokio::sync::Semaphore::new(cores)),
            password_slots: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

    /// Runs blocking storage work off the async workers.
    pub async fn blocking<T: Send + 'static, E: Into<Error> + Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Storage) -> Result<T, E> + Send + 'static,
    ) -> Result<T, Error> {
        let storage = Arc::clone(&self.storage);
        tokio::task::spawn_blocking(move || f(storage.as_ref()).map_err(Into::into)).await?
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
        .route("/api/v1/sessions/{id}/environment", get(api::session_environment))
        .route("/api/v1/errors", get(api::list_errors))
        .route("/api/v1/projects/{id}/import/rrweb", post(interop::import_rrweb))
        .route("/api/v1/sessions/{id}/rrweb", get(interop::export_rrweb))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::render))
        .merge(assets::routes())
        .merge(demo::routes())
        .merge(errors_page::routes())
        .merge(pages::routes())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
