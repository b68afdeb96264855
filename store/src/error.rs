//! The error type of `replay-store`.

use std::sync::Arc;

/// Why a storage operation failed. Apart from [`Error::SessionFull`], [`Error::SessionDeleted`] and
/// [`Error::RangeTooLarge`] (refusals by a configured cap, answered as such), none is caused by
/// a client's input: the server answers them all as "storage unavailable" and logs the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {}", postgres_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres connection pool: {}", pool_detail(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("postgres connection pool setup: {0}")]
    PoolSetup(#[from] deadpool_postgres::BuildError),
    #[error("invalid postgres schema name {0:?}: use letters, digits and _")]
    InvalidSchema(String),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    #[error("postgres ca file {path}: {source}")]
    CaFile {
        path: std::path::PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate authority to verify postgres with (set postgres_ca_file)")]
    NoCertificateAuthority,
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("invalid object store url {url:?}: {source}")]
    ObjectStoreUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A stored body that no longer decodes.
    #[error("stored batch is corrupt: {0}")]
    Corrupt(#[source] replay_core::Error),
    #[error("no randomness available: {0}")]
    Random(getrandom::Error),
    #[error("storage lock poisoned by an earlier panic")]
    Poisoned,
    /// A thread or runtime of the engine is gone (it names which); nothing more is stored.
    #[error("{0} stopped")]
    Stopped(&'static str),
    /// The write-ahead log could not be synced: nothing is acknowledged from then on.
    #[error("syncing the write-ahead log failed; refusing writes: {0}")]
    SyncFailed(#[source] Arc<std::io::Error>),
    /// The batch would take its session past the stored bytes a session may hold
    /// ([`crate::Storage::limit_session_bytes`]); the session's earlier batches stay.
    #[error("the session holds {stored} stored bytes; with this batch it would pass its cap of {cap}")]
    SessionFull { stored: u64, cap: u64 },
    /// The batch belongs to a session deleted on request ([`crate::Storage::delete_sessions`]):
    /// nothing of it is stored, so a recorder still running cannot bring the session back.
    #[error("the session was deleted on request; it records nothing more")]
    SessionDeleted,
    /// The batches a read chose hold more bytes than it may load ([`crate::RangeRequest`]):
    /// stored bytes, known from the index before any body is read, or decompressed bytes,
    /// counted as the bodies are read.
    #[error("the batches to read hold {bytes} bytes or more, more than a read may load")]
    RangeTooLarge { bytes: u64 },
    #[error("no project with id {0}")]
    NoSuchProject(i64),
    /// A release artifact (source map, minified file) over [`crate::MAX_ARTIFACT_BYTES`].
    #[error("the file holds {bytes} bytes, more than the {cap} a release artifact may")]
    ArtifactTooLarge { bytes: u64, cap: u64 },
    /// A release already holds [`crate::MAX_ARTIFACTS_PER_RELEASE`] artifacts.
    #[error("the release already holds {cap} files")]
    TooManyArtifacts { cap: u64 },
    /// The engine holds as many batches waiting to be stored as it may: retry shortly.
    #[error("too many batches are waiting to be stored; retry shortly")]
    Busy,
    /// The group commit a batch was part of failed (shared by every batch of the group).
    #[error("group commit failed: {0}")]
    GroupCommit(#[source] Arc<Error>),
}

impl From<replay_core::Error> for Error {
    fn from(e: replay_core::Error) -> Self {
        match e {
            replay_core::Error::Random(e) => Error::Random(e),
            other => Error::Corrupt(other),
        }
    }
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
