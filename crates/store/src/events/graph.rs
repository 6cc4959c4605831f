//! What a continuous query starts from: the registry's manifests, tags and
//! latest decisions, read in one transaction together with the feed's
//! position at that moment. Applying the events after that position to
//! the snapshot then gives every later state once: a change is either in
//! the snapshot or in an event after it, never both, never neither.

use crate::error::StoreError;
use crate::meta::{Engine, MetaStore};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A manifest as a query sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphManifest {
    /// Its repository.
    pub repo: String,
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its artifact type, when it has one.
    pub artifact_type: Option<String>,
    /// The digest of its subject, for a referrer.
    pub subject: Option<String>,
    /// Its own bytes plus those of the blobs it references (config and
    /// layers): what pulling it moves.
    pub size: i64,
    /// When it was first stored (Unix ms).
    pub created_at: i64,
    /// Its annotations as stored (JSON text), when it has any.
    pub annotations: Option<String>,
}

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphTag {
    /// Its repository.
    pub repo: String,
    /// The tag.
    pub tag: String,
    /// What it names.
    pub digest: String,
    /// When it last moved (Unix ms).
    pub updated_at: i64,
}

/// The latest decision at one point about one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphDecision {
    /// Its row in the decision log.
    pub id: i64,
    /// When it was made (Unix ms).
    pub at: i64,
    /// `push`, `pull`, `admission` or `authorization`.
    pub point: String,
    /// The repository, when there is one.
    pub repository: Option<String>,
    /// What was decided about (`repo@digest`, `repo:tag`, ...).
    pub subject: String,
    /// The outcome.
    pub allowed: bool,
    /// How many rules denied.
    pub denials: i64,
    /// How many rules warned.
    pub warnings: i64,
}

/// Everything a query starts from, as of event `seq`.
#[derive(Debug, Clone, Default)]
pub struct GraphSnapshot {
    /// The feed's last sequence number when the snapshot was read.
    pub seq: i64,
    /// Every manifest.
    pub manifests: Vec<GraphManifest>,
    /// Every tag.
    pub tags: Vec<GraphTag>,
    /// The latest decision per subject and point.
    pub decisions: Vec<GraphDecision>,
}

const MANIFEST_COLUMNS: &str = "m.repo, m.digest, m.media_type, m.artifact_type, m.subject, \
     m.created_at, m.annotations, CAST(m.size + COALESCE((SELECT SUM(b.size) FROM manifest_refs r \
     JOIN blobs b ON b.digest = r.digest WHERE r.repo = m.repo AND r.manifest = m.digest \
     AND r.kind = 0), 0) AS BIGINT) AS total";

fn manifest_from(row: &AnyRow) -> Result<GraphManifest, StoreError> {
    Ok(GraphManifest {
        repo: row.try_get("repo")?,
        digest: row.try_get("digest")?,
        media_type: row.try_get("media_type")?,
        artifact_type: row.try_get("artifact_type")?,
        subject: row.try_get("subject")?,
        size: row.try_get("total")?,
        created_at: row.try_get("created_at")?,
        annotations: row.try_get("annotations")?,
    })
}

fn count(text: &str) -> i64 {
    serde_json::from_str::<Vec<serde_json::Value>>(text).map_or(0, |v| v.len() as i64)
}

impl MetaStore {
    /// The whole graph and the feed's position, read in one snapshot; `None`
    /// when it holds more than `limit` manifests and tags together (the
    /// caller refuses rather than hold an unbounded graph in memory).
    pub async fn graph_snapshot(&self, limit: i64) -> Result<Option<GraphSnapshot>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.engine() == Engine::Postgres {
            // One snapshot for every statement below (read committed would
            // take a new one per statement, and a push landing between two
            // of them would be missed or seen twice).
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let seq: i64 = sqlx::query(
            "SELECT COALESCE(MAX(last), 0) AS last FROM event_counters WHERE scope = ''",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("last")?;
        let n: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM manifests) + (SELECT COUNT(*) FROM tags) AS n",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if n > limit {
            return Ok(None);
        }
        let manifests = sqlx::query(&format!("SELECT {MANIFEST_COLUMNS} FROM manifests m"))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(manifest_from)
            .collect::<Result<_, _>>()?;
        let tags = sqlx::query("SELECT repo, tag, digest, updated_at FROM tags")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                Ok(GraphTag {
                    repo: r.try_get("repo")?,
                    tag: r.try_get("tag")?,
                    digest: r.try_get("digest")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let decisions = sqlx::query(
            "SELECT id, at, point, repository, subject, allowed, deny, warn FROM decisions \
             WHERE id IN (SELECT MAX(id) FROM decisions GROUP BY subject, point)",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(GraphDecision {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                point: r.try_get("point")?,
                repository: r.try_get("repository")?,
                subject: r.try_get("subject")?,
                allowed: r.try_get::<i64, _>("allowed")? != 0,
                denials: count(&r.try_get::<String, _>("deny")?),
                warnings: count(&r.try_get::<String, _>("warn")?),
            })
        })
        .collect::<Result<_, StoreError>>()?;
        tx.commit().await?;
        Ok(Some(GraphSnapshot {
            seq,
            manifests,
            tags,
            decisions,
        }))
    }

    /// One manifest as a query sees it, if it is still stored.
    pub async fn graph_manifest(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<GraphManifest>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM manifests m WHERE m.repo = $1 AND m.digest = $2"
        ))
        .bind(repo)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(manifest_from).transpose()
    }

    /// The verdict recorded for signature `digest` of `repo` under the
    /// trust configuration `generation`, if one was.
    pub async fn signature_verdict(
        &self,
        repo: &str,
        digest: &str,
        generation: &str,
    ) -> Result<Option<bool>, StoreError> {
        let row = sqlx::query(
            "SELECT valid FROM signature_verdicts WHERE repo = $1 AND digest = $2 AND generation = $3",
        )
        .bind(repo)
        .bind(digest)
        .bind(generation)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>("valid"))
            .transpose()?
            .map(|v| v != 0))
    }
}
