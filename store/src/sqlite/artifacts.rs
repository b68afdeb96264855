//! Release artifacts (source maps and the minified files they map) in the embedded engine: one
//! row per (project, release, URL), the body in the row.

use replay_core::now_ms;
use rusqlite::{Connection, OptionalExtension, params};

use crate::model::check_artifact;
use crate::shared::{to_i64, to_u64};
use crate::{Artifact, Error, MAX_ARTIFACTS_PER_RELEASE};

pub(super) fn put(conn: &Connection, project: i64, release: &str, url: &str, body: &[u8]) -> Result<(), Error> {
    check_artifact(body)?;
    let tx = conn.unchecked_transaction()?;
    let others: i64 = tx.query_row(
        "SELECT COUNT(*) FROM artifacts WHERE project_id = ?1 AND release = ?2 AND url <> ?3",
        params![project, release, url],
        |r| r.get(0),
    )?;
    if to_u64(others) >= MAX_ARTIFACTS_PER_RELEASE as u64 {
        return Err(Error::TooManyArtifacts { cap: MAX_ARTIFACTS_PER_RELEASE as u64 });
    }
    tx.execute(
        "INSERT INTO artifacts (project_id, release, url, body, uploaded_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (project_id, release, url) DO UPDATE SET body = excluded.body, uploaded_ms = excluded.uploaded_ms",
        params![project, release, url, body, to_i64(now_ms())],
    )?;
    tx.commit()?;
    Ok(())
}

pub(super) fn get(conn: &Connection, project: i64, release: &str, url: &str) -> Result<Option<Vec<u8>>, Error> {
    Ok(conn
        .query_row(
            "SELECT body FROM artifacts WHERE project_id = ?1 AND release = ?2 AND url = ?3",
            params![project, release, url],
            |r| r.get(0),
        )
        .optional()?)
}

pub(super) fn list(conn: &Connection, project: i64, release: &str) -> Result<Vec<Artifact>, Error> {
    let mut stmt = conn.prepare(
        "SELECT url, length(body), uploaded_ms FROM artifacts WHERE project_id = ?1 AND release = ?2 ORDER BY url",
    )?;
    let rows = stmt.query_map(params![project, release], |r| {
        Ok(Artifact { url: r.get(0)?, bytes: to_u64(r.get(1)?), uploaded_ms: to_u64(r.get(2)?) })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
