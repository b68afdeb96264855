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
    Store(#[from] replay_store::Error),
    #[error(transparent)]
    Core(#[from] replay_core::Error),
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
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

/// The JSON body of every refusal.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

/// Why a request was refused.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail<'a> {
    /// Machine-readable code (`unauthorized`, `not_found`, `rate_limited`, `body_too_large`, ...).
    reason: &'a str,
    /// Human-readable explanation.
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

impl From<replay_store::Error> for ApiError {
    fn from(e: replay_store::Error) -> Self {
        ApiError::from(Error::from(e))
    }
}

impl From<replay_core::Error> for ApiError {
    fn from(e: replay_core::Error) -> Self {
        ApiError::from(Error::from(e))
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
