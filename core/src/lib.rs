//! What the session index keeps of a recorded batch, and the small helpers the server and its
//! storage engines share. No HTTP and no database here: `replay-store` and `replay-server` both
//! build on this crate, and it on `replay-protocol` only.
//!
//! - [`summary`]: [`BatchSummary`] and [`summarize`], the one-pass summary of a decoded batch
//!   (at ingest, and when an engine indexes a stored body again);
//! - [`diagnostics`]: freeze culprits, error fingerprints ([`ErrorSighting`]) and the
//!   environment facts that sessions are compared by;
//! - [`gzip`]: the capped decompression of uploads and the decoding of stored bodies;
//! - [`clickmap`]: what click maps and scroll maps keep of a batch (clicks by page and element,
//!   the deepest tenth of a page seen);
//! - [`clock`]: the server's clock ([`now_ms`]);
//! - [`ids`]: random keys and tokens ([`random_hex`], [`new_key`]);
//! - [`rrweb`]: rrweb recordings imported as batches, sessions exported as rrweb events;
//! - [`symbolicate`]: minified stack frames and freeze culprits read through a release's source
//!   maps (original function, file, line, a few lines of source), and fingerprints of original frames;
//! - [`Error`]: what these helpers can fail with.

pub mod clickmap;
pub mod clock;
pub mod diagnostics;
pub mod gzip;
pub mod ids;
pub mod rrweb;
pub mod summary;
pub mod symbolicate;

mod error;

pub use clock::now_ms;
pub use diagnostics::ErrorSighting;
pub use error::Error;
pub use ids::{new_key, random_hex};
pub use summary::{BatchSummary, SearchTerm, TermKind, clamp_times, summarize};
