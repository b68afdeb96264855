//! The one error type of the protocol crate.

/// Everything that can go wrong while encoding, decoding or validating recorded data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is larger than the configured byte cap.
    #[error("batch is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The bytes are not a valid MessagePack batch of this protocol.
    #[error("malformed batch: {0}")]
    Malformed(#[source] rmp_serde::decode::Error),
    /// Encoding failed (only possible for values that break the format's own limits).
    #[error("cannot encode batch: {0}")]
    Encode(#[source] rmp_serde::encode::Error),
    /// The batch was produced by a protocol version this build does not understand.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u16),
    /// A decoded value breaks one of the [`crate::Limits`].
    #[error("limit exceeded: {what} is {actual}, the limit is {limit}")]
    LimitExceeded { what: &'static str, actual: usize, limit: usize },
    /// A structural rule of the format is broken (empty session id, end before start, ...).
    #[error("invalid batch: {0}")]
    Invalid(&'static str),
    /// The tape handed over by the in-page walker is inconsistent.
    #[error("invalid tape at position {at}: {reason}")]
    Tape { at: usize, reason: &'static str },
}
