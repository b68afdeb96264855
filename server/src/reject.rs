//! Every reason the server refuses a request, in one table.
//!
//! A refusal is a [`Reason`]: its HTTP status, the machine-readable `reason` code of the JSON
//! error body, and the label it is counted under in `replay_ingest_rejected_total` all come from
//! the table below, so the list of what a client can be told, and what an operator can see in
//! the metrics, is read in one place. Handlers build an [`crate::ApiError`] from a reason and a
//! human-readable message; they never spell a code or a status themselves.

use axum::http::StatusCode;

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident => $status:ident, $code:literal, $label:literal; )+) => {
        /// Why a request was refused. See the module docs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $( $(#[$doc])* $variant, )+
        }

        impl Reason {
            /// Every reason, in table order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),+];

            /// The HTTP status answered.
            pub fn status(self) -> StatusCode {
                match self { $(Reason::$variant => StatusCode::$status,)+ }
            }

            /// The `reason` of the JSON error body.
            pub fn code(self) -> &'static str {
                match self { $(Reason::$variant => $code,)+ }
            }

            /// The `reason` label of `replay_ingest_rejected_total`.
            pub fn metric_label(self) -> &'static str {
                match self { $(Reason::$variant => $label,)+ }
            }
        }
    };
}

reasons! {
    // Ingest: who sends, from where, how fast.
    /// The query string does not parse.
    BadQuery => BAD_REQUEST, "bad_query", "bad_query";
    /// No ingest key in the header or the query.
    MissingKey => UNAUTHORIZED, "missing_key", "missing_key";
    /// The ingest key belongs to no project.
    UnknownKey => UNAUTHORIZED, "unknown_key", "unknown_key";
    /// The page's origin is not on the project's allow-list.
    OriginNotAllowed => FORBIDDEN, "origin_not_allowed", "origin_not_allowed";
    /// Too many batches from this client or for this project.
    RateLimited => TOO_MANY_REQUESTS, "rate_limited", "rate_limited";
    // Ingest: the body as sent.
    /// Larger than `max_body_bytes` (announced or read).
    BodyTooLarge => PAYLOAD_TOO_LARGE, "body_too_large", "body_too_large";
    /// The body could not be read.
    BadBody => BAD_REQUEST, "bad_body", "bad_body";
    /// The body came slower than the server waits for (see `ingest::MIN_BODY_RATE`).
    BodyTooSlow => REQUEST_TIMEOUT, "body_too_slow", "body_too_slow";
    /// Nothing was sent.
    EmptyBody => BAD_REQUEST, "empty_body", "empty_body";
    /// A content encoding other than gzip or none.
    UnsupportedEncoding => UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding", "unsupported_encoding";
    /// The gzip stream is invalid or truncated.
    BadEncoding => BAD_REQUEST, "bad_encoding", "bad_encoding";
    /// The body inflates past the decompressed cap (a zip bomb stops here).
    DecompressedTooLarge => PAYLOAD_TOO_LARGE, "decompressed_too_large", "decompressed_too_large";
    // Ingest: the batch.
    /// The batch is larger than the decoder's limits allow.
    BatchTooLarge => PAYLOAD_TOO_LARGE, "batch_too_large", "batch_too_large";
    /// The batch would take its session past `--max-session-bytes` (stored); the session keeps
    /// what it has, and later batches of it are refused too.
    SessionFull => PAYLOAD_TOO_LARGE, "session_full", "session_full";
    /// The session was deleted on request (`DELETE /api/v1/projects/{project}/sessions/{id}`,
    /// an erasure); its later
    /// batches are refused too, so a recorder still running cannot bring it back.
    SessionDeleted => GONE, "session_deleted", "session_deleted";
    /// The project stored its `--quota-bytes-per-day` today (UTC); retry after midnight UTC.
    QuotaBytes => TOO_MANY_REQUESTS, "quota_exceeded", "quota_bytes";
    /// The project started its `--quota-sessions-per-day` today (UTC); retry after midnight UTC.
    QuotaSessions => TOO_MANY_REQUESTS, "quota_exceeded", "quota_sessions";
    /// A collection or string of the batch is over its limit.
    LimitExceeded => BAD_REQUEST, "limit_exceeded", "limit_exceeded";
    /// A protocol version this server does not read.
    UnsupportedVersion => BAD_REQUEST, "unsupported_version", "unsupported_version";
    /// The batch decodes but breaks an invariant (ids, sequence, times).
    InvalidBatch => BAD_REQUEST, "invalid_batch", "invalid_batch";
    /// The bytes are not a batch.
    MalformedBatch => BAD_REQUEST, "malformed_batch", "malformed_batch";
    // rrweb import.
    /// An import not sent as `application/json`.
    NotJson => UNSUPPORTED_MEDIA_TYPE, "not_json", "not_json";
    /// The body is not an rrweb recording (JSON, event or node shapes, ids).
    BadRecording => BAD_REQUEST, "bad_recording", "bad_recording";
    /// The recording is over an import limit (events, nodes, depth, string length).
    RecordingTooLarge => PAYLOAD_TOO_LARGE, "recording_too_large", "recording_too_large";
    // Reads and sign-in.
    /// No reader: neither a viewer login nor a valid token.
    Unauthorized => UNAUTHORIZED, "unauthorized", "unauthorized";
    /// A sign-in or sign-out form posted from another site (its `Origin` is not this server).
    CrossSiteForm => FORBIDDEN, "cross_site_request", "cross_site_request";
    /// A state-changing form without the token this server's pages put in it.
    BadFormToken => FORBIDDEN, "bad_form_token", "bad_form_token";
    /// Too many sign-in attempts from this address (answered like an ingest rate limit, counted
    /// apart from it).
    LoginRateLimited => TOO_MANY_REQUESTS, "rate_limited", "login_rate_limited";
    /// The caller is a member of the project but their role (or token scope) does not allow
    /// this (see `access`).
    Forbidden => FORBIDDEN, "forbidden", "forbidden";
    /// A request of the accounts API or its pages that cannot be done as asked (a bad name, a
    /// short password, an unknown role or scope).
    BadAccountRequest => BAD_REQUEST, "bad_request", "bad_account_request";
    /// The session, project or file does not exist (or is not the caller's).
    NotFound => NOT_FOUND, "not_found", "not_found";
    /// Another project has the name asked for.
    NameTaken => CONFLICT, "name_taken", "name_taken";
    /// The session is larger than a read may load.
    SessionTooLarge => PAYLOAD_TOO_LARGE, "session_too_large", "session_too_large";
    /// A comment that is not `{t, text}`, is blank or over its length, or names a moment past
    /// any session's end.
    BadComment => BAD_REQUEST, "bad_comment", "bad_comment";
    /// The session holds the most comments a session may; delete some first.
    TooManyComments => CONFLICT, "too_many_comments", "too_many_comments";
    /// A stored batch does not decode any more.
    CorruptSession => INTERNAL_SERVER_ERROR, "corrupt_session", "corrupt_session";
    // The server itself.
    /// Storage failed; the client should retry (the cause is logged, never sent).
    StorageUnavailable => SERVICE_UNAVAILABLE, "storage_unavailable", "storage_unavailable";
    /// The server's budget of ingest bytes in flight is spent (`--max-inflight-bytes`).
    ServerBusy => SERVICE_UNAVAILABLE, "server_busy", "server_busy";
}

impl Reason {
    /// How a batch that fails to decode is refused.
    pub fn of_decode_error(e: &replay_protocol::Error) -> Reason {
        use replay_protocol::Error as E;
        match e {
            E::TooLarge { .. } => Reason::BatchTooLarge,
            E::LimitExceeded { .. } => Reason::LimitExceeded,
            E::UnsupportedVersion(_) => Reason::UnsupportedVersion,
            E::Invalid(_) => Reason::InvalidBatch,
            E::Malformed(_) | E::Encode(_) | E::Tape { .. } => Reason::MalformedBatch,
        }
    }

    /// The reason's position in [`Reason::ALL`] (a counter index).
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?} is at its own index");
            let code = r.code();
            assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
            assert!(r.status().is_client_error() || r.status().is_server_error(), "{r:?}");
        }
        let mut labels: Vec<_> = Reason::ALL.iter().map(|r| r.metric_label()).collect();
        labels.sort_unstable();
        let n = labels.len();
        labels.dedup();
        assert_eq!(labels.len(), n, "every reason is counted under its own label");
    }

    #[test]
    fn decode_errors_map_to_batch_reasons() {
        let e = replay_protocol::Error::UnsupportedVersion(99);
        assert_eq!(Reason::of_decode_error(&e), Reason::UnsupportedVersion);
        assert_eq!(Reason::of_decode_error(&e).status(), StatusCode::BAD_REQUEST);
    }
}
