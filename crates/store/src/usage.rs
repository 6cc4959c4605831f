//! How much the registry stores and for whom (issue 17, visibility): bytes
//! per repository, what the store actually keeps, and what deduplication
//! saves. A repository is charged for every blob linked to it (uploaded or
//! mounted into it) and its manifests; a blob linked to two repositories
//! counts in both while the store keeps one copy, and the difference is the
//! saving.

use crate::error::StoreError;
use crate::meta::MetaStore;
use sqlx::Row;

/// Most repositories one usage page lists.
pub const MAX_USAGE_PAGE: i64 = 1000;

/// One repository's share.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepoUsage {
    /// The repository.
    pub name: String,
    /// Blobs linked to it.
    pub blobs: i64,
    /// Their bytes.
    pub blob_bytes: i64,
    /// Manifests in it.
    pub manifests: i64,
    /// Their bytes.
    pub manifest_bytes: i64,
}

impl RepoUsage {
    /// Blob and manifest bytes together.
    pub fn bytes(&self) -> i64 {
        self.blob_bytes + self.manifest_bytes
    }
}

/// The registry's totals.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Distinct blobs the store keeps.
    pub stored_blobs: i64,
    /// Their bytes.
    pub stored_blob_bytes: i64,
    /// Distinct manifests (by digest) the store keeps.
    pub stored_manifests: i64,
    /// Their bytes.
    pub stored_manifest_bytes: i64,
    /// What every repository is charged, added up.
    pub charged_bytes: i64,
    /// `charged_bytes` minus what is stored: the saving from keeping one
    /// copy of content several repositories hold.
    pub dedup_saving_bytes: i64,
}

/// A count or sum (sums are cast to BIGINT in SQL: PostgreSQL's SUM of a
/// BIGINT is NUMERIC, which the Any driver does not decode).
fn int(row: &sqlx::any::AnyRow, col: &str) -> Result<i64, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.unwrap_or(0))
}

impl MetaStore {
    /// Usage of the repositories after `last` (in byte order), at most `n`
    /// (and at most [`MAX_USAGE_PAGE`]); `only` limits it to one.
    pub async fn repo_usage(
        &self,
        only: Option<&str>,
        last: Option<&str>,
        n: i64,
    ) -> Result<Vec<RepoUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.name AS name, \
             (SELECT COUNT(*) FROM repo_blobs l WHERE l.repo = r.name) AS blobs, \
             (SELECT CAST(SUM(b.size) AS BIGINT) FROM repo_blobs l JOIN blobs b ON b.digest = l.digest \
              WHERE l.repo = r.name) AS blob_bytes, \
             (SELECT COUNT(*) FROM manifests m WHERE m.repo = r.name) AS manifests, \
             (SELECT CAST(SUM(m.size) AS BIGINT) FROM manifests m WHERE m.repo = r.name) AS manifest_bytes \
             FROM repositories r WHERE r.name > $1 AND ($2 = '' OR r.name = $2) \
             ORDER BY r.name LIMIT $3",
        )
        .bind(last.unwrap_or(""))
        .bind(only.unwrap_or(""))
        .bind(n.clamp(1, MAX_USAGE_PAGE))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RepoUsage {
                    name: r.try_get("name")?,
                    blobs: int(r, "blobs")?,
                    blob_bytes: int(r, "blob_bytes")?,
                    manifests: int(r, "manifests")?,
                    manifest_bytes: int(r, "manifest_bytes")?,
                })
            })
            .collect()
    }

    /// The bytes `repo` is charged, as [`RepoUsage::bytes`] counts them:
    /// its blob links (each blob once) and its manifests. Both sums walk
    /// the primary keys, which start with the repository.
    pub async fn repo_bytes(&self, repo: &str) -> Result<i64, StoreError> {
        let _t = self.time("usage");
        let row = sqlx::query(
            "SELECT \
             (SELECT CAST(SUM(b.size) AS BIGINT) FROM repo_blobs l JOIN blobs b ON b.digest = l.digest \
              WHERE l.repo = $1) AS blob_bytes, \
             (SELECT CAST(SUM(m.size) AS BIGINT) FROM manifests m WHERE m.repo = $1) AS manifest_bytes",
        )
        .bind(repo)
        .fetch_one(&self.pool)
        .await?;
        Ok(int(&row, "blob_bytes")? + int(&row, "manifest_bytes")?)
    }

    /// The bytes every repository named `<namespace>/...` is charged,
    /// added up (`namespace` itself is not one of them). The names are
    /// taken as a byte range of `repositories` (`ns/` up to `ns0`, `0`
    /// being the byte after `/`), which is ordered byte-wise on both
    /// databases, never with LIKE: `_` and `%` are legal in names.
    pub async fn namespace_bytes(&self, namespace: &str) -> Result<i64, StoreError> {
        let _t = self.time("usage");
        let row = sqlx::query(
            "SELECT \
             (SELECT CAST(SUM(b.size) AS BIGINT) FROM repositories r \
              JOIN repo_blobs l ON l.repo = r.name JOIN blobs b ON b.digest = l.digest \
              WHERE r.name >= $1 AND r.name < $2) AS blob_bytes, \
             (SELECT CAST(SUM(m.size) AS BIGINT) FROM repositories r JOIN manifests m ON m.repo = r.name \
              WHERE r.name >= $1 AND r.name < $2) AS manifest_bytes",
        )
        .bind(format!("{namespace}/"))
        .bind(format!("{namespace}0"))
        .fetch_one(&self.pool)
        .await?;
        Ok(int(&row, "blob_bytes")? + int(&row, "manifest_bytes")?)
    }

    /// The registry's totals.
    pub async fn usage_totals(&self) -> Result<Totals, StoreError> {
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM blobs WHERE manifest = 0) AS stored_blobs, \
             (SELECT CAST(SUM(size) AS BIGINT) FROM blobs WHERE manifest = 0) AS stored_blob_bytes, \
             (SELECT COUNT(*) FROM (SELECT DISTINCT digest FROM manifests) d) AS stored_manifests, \
             (SELECT CAST(SUM(size) AS BIGINT) FROM (SELECT digest, MAX(size) AS size FROM manifests GROUP BY digest) d) \
               AS stored_manifest_bytes, \
             (SELECT CAST(SUM(b.size) AS BIGINT) FROM repo_blobs l JOIN blobs b ON b.digest = l.digest) AS charged_blobs, \
             (SELECT CAST(SUM(size) AS BIGINT) FROM manifests) AS charged_manifests",
        )
        .fetch_one(&self.pool)
        .await?;
        let stored_blob_bytes = int(&row, "stored_blob_bytes")?;
        let stored_manifest_bytes = int(&row, "stored_manifest_bytes")?;
        let charged = int(&row, "charged_blobs")? + int(&row, "charged_manifests")?;
        Ok(Totals {
            stored_blobs: int(&row, "stored_blobs")?,
            stored_blob_bytes,
            stored_manifests: int(&row, "stored_manifests")?,
            stored_manifest_bytes,
            charged_bytes: charged,
            dedup_saving_bytes: (charged - stored_blob_bytes - stored_manifest_bytes).max(0),
        })
    }
}
