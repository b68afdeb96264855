//! Release artifacts (source maps and the minified files they map) in the scale-out engine: a
//! row per (project, release, URL) in PostgreSQL, the body in a fresh object of the object
//! store, uploaded before the row commits (a row never points at a missing object); a replaced
//! body's object is deleted after the new row committed.

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use replay_core::{now_ms, random_hex};

use super::{Engine, text};
use crate::model::check_artifact;
use crate::shared::{to_i64, to_u64};
use crate::{Artifact, Error, MAX_ARTIFACTS_PER_RELEASE};

impl Engine {
    pub(super) async fn put_artifact(
        &self,
        project: i64,
        release: &str,
        url: &str,
        body: Vec<u8>,
    ) -> Result<(), Error> {
        check_artifact(&body)?;
        let (release, url) = (text(release), text(url));
        let mut client = self.pool.get().await?;
        let others: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM artifacts WHERE project_id = $1 AND release = $2 AND url <> $3",
                &[&project, &release, &url],
            )
            .await?
            .get(0);
        if to_u64(others) >= MAX_ARTIFACTS_PER_RELEASE as u64 {
            return Err(Error::TooManyArtifacts { cap: MAX_ARTIFACTS_PER_RELEASE as u64 });
        }
        let key = self.prefix.clone().join(format!("p{project}")).join("artifacts").join(random_hex(12)?);
        let bytes = to_i64(body.len() as u64);
        self.store.put(&key, body.into()).await?;
        let tx = client.transaction().await?;
        let old: Option<String> = tx
            .query_opt(
                "SELECT object_key FROM artifacts WHERE project_id = $1 AND release = $2 AND url = $3 FOR UPDATE",
                &[&project, &release, &url],
            )
            .await?
            .map(|r| r.get(0));
        let written = tx
            .execute(
                "INSERT INTO artifacts (project_id, release, url, object_key, bytes, uploaded_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (project_id, release, url)
                 DO UPDATE SET object_key = EXCLUDED.object_key, bytes = EXCLUDED.bytes, uploaded_ms = EXCLUDED.uploaded_ms",
                &[&project, &release, &url, &key.as_ref(), &bytes, &to_i64(now_ms())],
            )
            .await;
        let committed = match written {
            Ok(_) => tx.commit().await,
            Err(e) => Err(e),
        };
        if let Err(e) = committed {
            if let Err(d) = self.store.delete(&key).await {
                tracing::warn!(error = %d, key = %key, "could not delete an unused artifact body");
            }
            return Err(e.into());
        }
        if let Some(old) = old
            && let Err(e) = self.store.delete(&ObjectPath::from(old.as_str())).await
        {
            tracing::warn!(error = %e, key = %old, "could not delete a replaced artifact body");
        }
        Ok(())
    }

    pub(super) async fn artifact(&self, project: i64, release: &str, url: &str) -> Result<Option<Vec<u8>>, Error> {
        let (release, url) = (text(release), text(url));
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT object_key FROM artifacts WHERE project_id = $1 AND release = $2 AND url = $3",
                &[&project, &release, &url],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let key: String = row.get(0);
        let bytes = self.store.get(&ObjectPath::from(key)).await?.bytes().await?;
        Ok(Some(bytes.to_vec()))
    }

    pub(super) async fn artifacts(&self, project: i64, release: &str) -> Result<Vec<Artifact>, Error> {
        let release = text(release);
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT url, bytes, uploaded_ms FROM artifacts WHERE project_id = $1 AND release = $2 ORDER BY url",
                &[&project, &release],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Artifact { url: r.get(0), bytes: to_u64(r.get(1)), uploaded_ms: to_u64(r.get(2)) })
            .collect())
    }
}
