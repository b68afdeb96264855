//! `with-postgres <program> [args…]`: runs a command while a private PostgreSQL cluster is up
//! ([`replay_e2e::services::Postgres`], on 127.0.0.1, gone afterwards), with
//! `REPLAY_TEST_POSTGRES_URL` naming its database. `cargo xtask test` runs the workspace's tests
//! inside it, so the tests that run on both engines when that variable is set (the isolation walk
//! of `server/tests/isolation.rs`) never skip PostgreSQL there. Exits with the command's status.

use std::process::Command;

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let program = args.next().context("usage: with-postgres <program> [args…]")?;
    let pg = replay_e2e::services::Postgres::start()?;
    let status = Command::new(&program)
        .args(args)
        .env("REPLAY_TEST_POSTGRES_URL", pg.url())
        .status()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    drop(pg);
    std::process::exit(status.code().unwrap_or(1));
}
