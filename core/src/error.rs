//! The error type of `replay-core`.

/// What can go wrong in the shared helpers: no randomness, or gzip data that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no randomness available: {0}")]
    Random(getrandom::Error),
    #[error("gzip data does not decompress: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("gzip data expands beyond {cap} bytes")]
    TooLarge { cap: usize },
    #[error("not an rrweb recording: {0}")]
    Rrweb(String),
    #[error("rrweb recording too large: {what} over the limit of {limit}")]
    RrwebTooLarge { what: &'static str, limit: usize },
    #[error("not a usable source map: {0}")]
    SourceMap(String),
}
