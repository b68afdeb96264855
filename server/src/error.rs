//! The server library's error type and the JSON error answered to HTTP clients.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::reject::Reason;

/// Failures inside the server (storage, I/O); never caused by a client's bad input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("postgres error: {}", postgres_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres connection pool: {}", pool_detail(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("storage lock poisoned by an earlier panic")]
    Poisoned,
    #[error("storage error: {0}")]
    Storage(String),
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What PostgreSQL said (its message and SQLSTATE), or the client's error and its causes:
/// `tokio_postgres::Error`'s own text is often just "db error".
fn postgres_detail(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn pool_detail(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => postgres_detail(pg),
        other => other.to_string(),
    }
}

/// An HTTP error answer: a [`Reason`] (which gives the status and the machine-readable code) and
/// a human-readable message.
#[derive(Debug)]
pub struct ApiError {
    pub reason: Reason,
    pub message: String,
    /// Seconds for a `Retry-After` header (rate limits, unavailable storage).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    reason: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError { reason, message: message.into(), retry_after: None }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.reason.status()
    }

    /// Adds a `Retry-After` header to the answer.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(Reason::NotFound, format!("{what} not found"))
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        // The real cause goes to the log; the client gets a safe message.
        tracing::error!(error = %e, "internal error");
        ApiError::new(Reason::StorageUnavailable, "storage is unavailable, retry later").retry_after(5)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { reason: self.reason.code(), message: &self.message } };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
