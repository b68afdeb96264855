//! Harness of the end-to-end tests (the `e2e` test binary, `tests/e2e/`): the real server
//! binary, real Chromium, and what the tests share.
//!
//! - [`server`]: [`Server`] starts `replay-server` (path in `REPLAY_SERVER_BIN`, set by `cargo
//!   xtask test`) on a loopback port with a fresh data directory and talks to its API;
//!   [`free_port`] gives ports no other test of the process got.
//! - [`browser`]: [`Browser`] starts `chromedriver` and a headless Chromium session with a fresh
//!   profile, signs in to the viewer, opens the player, flushes the recorder.
//! - [`fixtures`]: [`FixtureServer`] serves fixture pages on their own origin.
//! - [`dom`]: [`NORMALIZE_JS`] serializes a live document the way the snapshot endpoint does,
//!   [`first_difference`] shows where two serializations part, [`pixel_mismatch`] compares
//!   screenshots.
//! - [`recorders`]: simulated recorders streaming clicks, and the check that every
//!   acknowledged batch was stored.
//! - [`services`]: PostgreSQL and an S3-compatible object store for the scale-out storage tests.
//!
//! Servers, browsers and services stop when dropped. All tests run as threads of one process,
//! so nothing here is global but the set of ports [`free_port`] gave out; every test starts
//! its own servers, browser and services.
//!
//! Protocol values (nodes, page metadata, batches) are built with `replay_protocol::test_util`.

pub mod browser;
pub mod dom;
pub mod fixtures;
pub mod recorders;
pub mod server;
pub mod services;

pub use browser::{Browser, Engine};
pub use dom::{NORMALIZE_JS, first_difference, pixel_mismatch};
pub use fixtures::{FixtureServer, fixtures_dir, tone_wav};
pub use recorders::{Acked, Streams, UNLIMITED_CLIENT_RATE, check_acknowledged, stream_session};
pub use server::{ADMIN_PASSWORD, ADMIN_TOKEN, Server, free_address, free_port, server_bin};
