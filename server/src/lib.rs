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
//! - [`access`]: who the caller is and what they may do in a project (the check every route runs);
//! - [`account_pages`]: the viewer's pages for one's account, the admin's users, a project's members, invitations;
//! - [`api`]: the JSON query API (sessions, events, snapshot at time t);
//! - [`audit`]: the audit log (who watched, exported, deleted, changed what);
//! - [`projects`]: projects from the API (create, rename, delete, keys, settings);
//! - [`settings_page`]: the viewer's pages for projects and their settings;
//! - [`deletion`]: deleting a session, or every session of a user (erasure requests);
//! - [`assets`]: the recorder and the viewer, embedded in the binary;
//! - [`auth`]: signing in and out, the admin token's bootstrap, form tokens;
//! - [`client`]: the client's address behind trusted proxies, and its rate-limit key;
//! - [`config`]: settings from a file, the environment and flags;
//! - [`demo`]: the demo app and the diagnostics lab (pages with the recorder embedded);
//! - [`errors_page`]: the error groups page of the viewer;
//! - [`fetch_policy`]: `nosniff` on every answer, and pages and the API refused as subresources;
//! - [`legacy`]: the first read routes, which named no project, as redirects to the scoped ones;
//! - [`layout`]: the page layout, headers and URL encoder of every server-rendered page;
//! - [`limits`]: rate limits and the cache of refused credentials;
//! - [`openapi`]: the API's OpenAPI document (`/api/v1/openapi.json`) and its page (`/docs/api`);
//! - [`metrics`]: counters of ingest outcomes, exposed at `/metrics`;
//! - [`pages`]: the session list and the offline export;
//! - [`quota`]: per-project daily quotas (bytes, new sessions), counted in memory;
//! - [`users`]: users and roles (admin's users and invitations, project members, one's own account);
//! - [`tokens`]: API tokens with scopes, per user or per project;
//! - [`reject`]: every reason a request is refused (status, code, metric label), in one table;
//! - [`sourcemaps`]: source maps per release: upload, and a session read through them;
//! - [`symbols`]: the cache of parsed source maps, and error groups keyed by original frames;
//! - [`compare`]: a session beside sessions of the same page in another environment;
//! - [`comments`]: comments on a session at a moment, and share links to a moment;
//! - [`oidc`]: single sign-on with an OpenID Connect provider;
//! - [`sso`]: single sign-on's settings, refusals and button on the sign-in page;
//! - [`clickmap`]: click maps and scroll maps of a page from the API; [`clickmap_page`] draws them.

pub mod access;
pub mod account_pages;
pub mod api;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod clickmap;
pub mod clickmap_page;
pub mod client;
pub mod comments;
pub mod compare;
pub mod config;
pub mod deletion;
pub mod demo;
pub mod errors_page;
pub mod fetch_policy;
pub mod frustration;
pub mod ingest;
pub mod interop;
pub mod layout;
pub mod legacy;
pub mod limits;
pub mod metrics;
pub mod oidc;
pub mod openapi;
pub mod pages;
pub mod projects;
pub mod quota;
pub mod reject;
pub mod settings_page;
pub mod sourcemaps;
pub mod sso;
pub mod symbols;
pub mod tokens;
pub mod users;

mod error;

/// Storage, under the path the page modules name it by.
pub(crate) use replay_store as storage;

use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodFilter, get, on, post};

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
    /// Per-project daily quotas and this instance's counters.
    pub quotas: Arc<quota::Quotas>,
    /// Ingest bodies decoded off the async workers at once (see [`ingest`]).
    pub decode_slots: Arc<tokio::sync::Semaphore>,
    /// Ingest bodies over 512 KiB decoded at once: half the cores (at least one).
    pub large_decode_slots: Arc<tokio::sync::Semaphore>,
    /// Password checks (argon2, ~20 MB and tens of ms each) running at once: half the cores
    /// (at least one), as anyone can ask for them with made-up names.
    pub password_slots: Arc<tokio::sync::Semaphore>,
    /// Ingest bytes in flight (see [`limits::Inflight`]).
    pub inflight: Arc<limits::Inflight>,
    /// Parsed source maps and error-group re-keyings (see [`symbols`]).
    pub symbols: Arc<symbols::Cache>,
    /// Single sign-on, when a provider is configured (see [`oidc`]).
    pub sso: Option<Arc<oidc::Sso>>,
    /// The watches recorded lately, so that reading a session in parts is one entry ([`audit`]).
    pub watched: Arc<audit::Recent>,
}

impl AppState {
    pub fn new(storage: Arc<dyn Storage>, config: Config) -> Self {
        let limits = Arc::new(limits::RateLimits::new(
            config.project_rate,
            config.client_rate,
            config.client_bytes_per_second,
            config.max_body_bytes,
        ));
        let inflight = limits::Inflight::new(config.max_inflight_bytes);
        storage.limit_session_bytes(config.max_session_bytes);
        let quotas = Arc::new(quota::Quotas::new(config.quota_bytes_per_day, config.quota_sessions_per_day));
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        // Work anyone can ask for (large bodies, password checks) gets at most half the cores,
        // so the other half always serves the usual small uploads and the viewer.
        let half = (cores / 2).max(1);
        let sso = config.oidc.clone().map(|c| Arc::new(oidc::Sso::new(c)));
        AppState {
            storage,
            config: Arc::new(config),
            metrics: Arc::new(metrics::Metrics::default()),
            limits,
            refused: Arc::new(limits::Refused::default()),
            quotas,
            decode_slots: Arc::new(tokio::sync::Semaphore::new(cores)),
            large_decode_slots: Arc::new(tokio::sync::Semaphore::new(half)),
            password_slots: Arc::new(tokio::sync::Semaphore::new(half)),
            inflight,
            symbols: Arc::default(),
            sso,
            watched: Arc::default(),
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

/// Declares the API routes once: [`API_ROUTES`] (what `tests/openapi.rs` compares with the
/// OpenAPI document) and the router built from the same lines.
macro_rules! api_routes {
    ($( $method:ident $path:literal => $handler:expr; )+) => {
        /// Every route under `/api/` as (method, path), in axum's path syntax: each must be
        /// described in [`openapi`]'s document.
        pub const API_ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),+];

        fn api_router() -> Router<AppState> {
            Router::new()$(.route($path, on(MethodFilter::$method, $handler)))+
        }
    };
}

api_routes! {
    POST "/api/v1/ingest" => ingest::ingest;
    OPTIONS "/api/v1/ingest" => ingest::preflight;
    GET "/api/v1/projects/{project}/sessions" => api::list_sessions;
    GET "/api/v1/projects/{project}/sessions/{id}" => api::get_session;
    GET "/api/v1/projects/{project}/sessions/{id}/events" => api::session_events;
    GET "/api/v1/projects/{project}/sessions/{id}/snapshot" => api::session_snapshot;
    GET "/api/v1/projects/{project}/sessions/{id}/environment" => api::session_environment;
    GET "/api/v1/projects/{project}/errors" => api::list_errors;
    POST "/api/v1/projects/{project}/import/rrweb" => interop::import_rrweb;
    GET "/api/v1/projects/{project}/sessions/{id}/rrweb" => interop::export_rrweb;
    GET "/api/v1/projects/{project}/members" => users::list_members;
    PUT "/api/v1/projects/{project}/members/{user}" => users::put_member;
    DELETE "/api/v1/projects/{project}/members/{user}" => users::delete_member;
    GET "/api/v1/projects/{project}/tokens" => tokens::list_project;
    POST "/api/v1/projects/{project}/tokens" => tokens::post_project;
    DELETE "/api/v1/projects/{project}/tokens/{token}" => tokens::delete_project;
    GET "/api/v1/me" => users::me;
    POST "/api/v1/me/password" => users::post_password;
    GET "/api/v1/me/sign-ins" => users::list_sign_ins;
    DELETE "/api/v1/me/sign-ins/{id}" => users::delete_sign_in;
    GET "/api/v1/me/tokens" => tokens::list_mine;
    POST "/api/v1/me/tokens" => tokens::post_mine;
    DELETE "/api/v1/me/tokens/{token}" => tokens::delete_mine;
    GET "/api/v1/admin/users" => users::list_users;
    POST "/api/v1/admin/users" => users::post_user;
    PUT "/api/v1/admin/users/{user}" => users::put_user;
    POST "/api/v1/admin/users/{user}/invite" => users::post_invite;
    GET "/api/v1/admin/tokens" => tokens::list_all;
    DELETE "/api/v1/admin/tokens/{token}" => tokens::delete_any;
    GET "/api/v1/sessions" => legacy::sessions;
    GET "/api/v1/sessions/{id}" => legacy::session;
    GET "/api/v1/sessions/{id}/events" => legacy::events;
    GET "/api/v1/sessions/{id}/snapshot" => legacy::snapshot;
    GET "/api/v1/sessions/{id}/environment" => legacy::environment;
    GET "/api/v1/errors" => legacy::errors;
    GET "/api/v1/sessions/{id}/rrweb" => legacy::rrweb;
    DELETE "/api/v1/projects/{project}/sessions/{id}" => deletion::delete_session_api;
    POST "/api/v1/projects/{project}/erasure" => deletion::erasure_api;
    GET "/api/v1/projects/{project}/audit" => audit::audit_api;
    GET "/api/v1/projects" => projects::list_api;
    POST "/api/v1/projects" => projects::create_api;
    PATCH "/api/v1/projects/{project}" => projects::rename_api;
    DELETE "/api/v1/projects/{project}" => projects::delete_api;
    GET "/api/v1/projects/{project}/settings" => projects::settings_api;
    PUT "/api/v1/projects/{project}/settings" => projects::update_settings_api;
    POST "/api/v1/projects/{project}/keys" => projects::rotate_api;
    DELETE "/api/v1/projects/{project}/keys/{key}" => projects::revoke_api;
    GET "/api/v1/recorder/settings" => projects::recorder_settings_api;
    OPTIONS "/api/v1/recorder/settings" => projects::recorder_settings_preflight;
    GET "/api/v1/openapi.json" => openapi::openapi_json;
    PUT "/api/v1/projects/{project}/sourcemaps" => sourcemaps::upload;
    GET "/api/v1/projects/{project}/sourcemaps" => sourcemaps::list;
    GET "/api/v1/projects/{project}/sessions/{id}/symbolicated" => sourcemaps::session_symbolicated;
    GET "/api/v1/projects/{project}/sessions/{id}/compare" => compare::compare;
    GET "/api/v1/projects/{project}/sessions/{id}/comments" => comments::list_comments;
    POST "/api/v1/projects/{project}/sessions/{id}/comments" => comments::add_comment;
    DELETE "/api/v1/projects/{project}/sessions/{id}/comments/{comment}" => comments::delete_comment;
    GET "/api/v1/projects/{project}/clickmap" => clickmap::clickmap_api;
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    api_router()
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::render))
        .merge(assets::routes())
        .merge(if state.config.demo { demo::routes() } else { Router::new() })
        .merge(errors_page::routes())
        .merge(account_pages::routes())
        .merge(pages::routes())
        .merge(openapi::routes())
        .merge(deletion::routes())
        .merge(audit::routes())
        .merge(settings_page::routes())
        .merge(comments::routes())
        .merge(oidc::routes())
        .merge(clickmap_page::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), audit::record_reads))
        .layer(axum::middleware::from_fn(fetch_policy::guard))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::mark_https))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
