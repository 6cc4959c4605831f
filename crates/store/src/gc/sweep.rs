//! The collector's SQL: reading the snapshot the plan is made from, and
//! the guarded deletions. Each deletion is one statement that re-states
//! the condition it relies on (old enough, still unreferenced), so that a
//! claim made since the snapshot wins (see `crate::claims`).
//!
//! On PostgreSQL each guarded deletion first locks its rows (`SELECT ...
//! FOR UPDATE`) and decides in a second statement: under READ COMMITTED,
//! a DELETE or UPDATE that waits for a row a push is claiming re-checks
//! only that row's own columns once the push commits, while its NOT EXISTS
//! subqueries keep the statement's older snapshot and miss the references
//! the push just inserted; only `claimed_at` would then stand between
//! them, which a grace period shorter than the push's transaction (or
//! clock skew) defeats. A statement started after the lock is granted
//! sees every reference committed before it. SQLite has one writer and
//! needs neither.

use super::plan::{BlobRow, LinkRow, ManifestRow, RefRow, Snapshot, TagRow};
use crate::error::StoreError;
use crate::meta::{Engine, MetaStore};
use sqlx::Row;

/// Rows one guarded batch deletes or dooms at most: short transactions,
/// so pushes are never held up behind the collector for long.
pub(crate) const BATCH: i64 = 500;

/// `$start, $start+1, ...`: `n` placeholders for an IN list.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn flag(row: &sqlx::any::AnyRow, col: &str) -> Result<bool, StoreError> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

impl MetaStore {
    /// Everything the plan needs, read table by table.
    pub(crate) async fn gc_snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut s = Snapshot::default();
        for r in sqlx::query(
            "SELECT repo, digest, size, claimed_at, subject, artifact_type, refs_known FROM manifests",
        )
        .fetch_all(&self.pool)
        .await?
        {
            s.manifests.push(ManifestRow {
                repo: r.try_get("repo")?,
                digest: r.try_get("digest")?,
                size: r.try_get("size")?,
                claimed_at: r.try_get("claimed_at")?,
                subject: r.try_get("subject")?,
                artifact_type: r.try_get("artifact_type")?,
                refs_known: flag(&r, "refs_known")?,
            });
        }
        for r in sqlx::query("SELECT repo, tag, digest, updated_at FROM tags")
            .fetch_all(&self.pool)
            .await?
        {
            s.tags.push(TagRow {
                repo: r.try_get("repo")?,
                tag: r.try_get("tag")?,
                digest: r.try_get("digest")?,
                updated_at: r.try_get("updated_at")?,
            });
        }
        for r in sqlx::query("SELECT repo, manifest, digest, kind FROM manifest_refs")
            .fetch_all(&self.pool)
            .await?
        {
            s.refs.push(RefRow {
                repo: r.try_get("repo")?,
                manifest: r.try_get("manifest")?,
                digest: r.try_get("digest")?,
                is_manifest: r.try_get::<i64, _>("kind")? == crate::claims::REF_MANIFEST,
            });
        }
        for r in sqlx::query("SELECT repo, digest, claimed_at FROM repo_blobs")
            .fetch_all(&self.pool)
            .await?
        {
            s.links.push(LinkRow {
                repo: r.try_get("repo")?,
                digest: r.try_get("digest")?,
                claimed_at: r.try_get("claimed_at")?,
            });
        }
        for r in sqlx::query(
            "SELECT digest, size, claimed_at, CASE WHEN doomed_at IS NULL THEN 0 ELSE 1 END AS doomed FROM blobs",
        )
        .fetch_all(&self.pool)
        .await?
        {
            s.blobs.push(BlobRow {
                digest: r.try_get("digest")?,
                size: r.try_get("size")?,
                claimed_at: r.try_get("claimed_at")?,
                doomed: flag(&r, "doomed")?,
            });
        }
        Ok(s)
    }

    /// Manifests whose references are not indexed yet (pushed before the
    /// lifecycle migration, or by an older replica): (repo, digest, media type).
    pub(crate) async fn gc_unindexed(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT repo, digest, media_type FROM manifests WHERE refs_known = 0")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("repo")?,
                    r.try_get("digest")?,
                    r.try_get("media_type")?,
                ))
            })
            .collect()
    }

    /// Records what an old manifest references, read from its bytes.
    pub(crate) async fn gc_index(
        &self,
        repo: &str,
        digest: &str,
        refs: &[(String, bool)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE manifests SET refs_known = 1 WHERE repo = $1 AND digest = $2")
            .bind(repo)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() > 0 {
            for (target, is_manifest) in refs {
                sqlx::query(
                    "INSERT INTO manifest_refs (repo, manifest, digest, kind) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (repo, manifest, digest) DO NOTHING",
                )
                .bind(repo)
                .bind(digest)
                .bind(target)
                .bind(if *is_manifest {
                    crate::claims::REF_MANIFEST
                } else {
                    crate::claims::REF_BLOB
                })
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a tag retention dropped, if it still points where it did
    /// when planned and was not set again since.
    /// Its `untagged` event is written in the same transaction.
    pub(crate) async fn gc_delete_tag(&self, t: &TagRow) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "DELETE FROM tags WHERE repo = $1 AND tag = $2 AND digest = $3 AND updated_at = $4",
        )
        .bind(&t.repo)
        .bind(&t.tag)
        .bind(&t.digest)
        .bind(t.updated_at)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            tx.commit().await?;
            return Ok(false);
        }
        let event = crate::events::NewEvent {
            kind: crate::events::UNTAGGED,
            repository: Some(&t.repo),
            subject: Some(format!("{}:{}", t.repo, t.tag)),
            data: serde_json::json!({
                "repository": t.repo,
                "tag": t.tag,
                "digest": t.digest,
                "by": "gc",
            }),
        };
        crate::events::append(&mut tx, &crate::events::Origin::default(), &[event]).await?;
        self.commit_events(tx).await?;
        Ok(true)
    }

    /// Deletes the manifests of `repo` among `digests` (at most [`BATCH`])
    /// that the plan found dead, if they still are: claimed before
    /// `cutoff`, untagged, in no index that still exists, their subject (if
    /// any) gone, and every manifest of the repository indexed. With them
    /// go their references and recorded verdicts. Returns those deleted.
    pub(crate) async fn gc_delete_manifests(
        &self,
        repo: &str,
        digests: &[String],
        cutoff: i64,
    ) -> Result<Vec<String>, StoreError> {
        let list = placeholders(3, digests.len());
        let mut tx = self.pool.begin().await?;
        if self.engine() == Engine::Postgres {
            // Lock first, decide in the next statement (module docs).
            let lock = format!(
                "SELECT 1 FROM manifests WHERE repo = $1 AND claimed_at < $2 AND digest IN ({list}) \
                 ORDER BY digest FOR UPDATE"
            );
            let mut q = sqlx::query(&lock).bind(repo).bind(cutoff);
            for d in digests {
                q = q.bind(d);
            }
            q.execute(&mut *tx).await?;
        }
        let delete = format!(
            "DELETE FROM manifests WHERE repo = $1 AND claimed_at < $2 AND digest IN ({list}) \
             AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo = $1 AND t.digest = manifests.digest) \
             AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN manifests p \
                 ON p.repo = r.repo AND p.digest = r.manifest \
                 WHERE r.repo = $1 AND r.digest = manifests.digest AND r.kind = 1 \
                 AND p.digest <> manifests.digest) \
             AND (subject IS NULL OR NOT EXISTS \
                 (SELECT 1 FROM manifests s WHERE s.repo = $1 AND s.digest = manifests.subject)) \
             AND NOT EXISTS (SELECT 1 FROM manifests u WHERE u.repo = $1 AND u.refs_known = 0) \
             RETURNING digest, media_type"
        );
        let mut q = sqlx::query(&delete).bind(repo).bind(cutoff);
        for d in digests {
            q = q.bind(d);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        let mut deleted: Vec<String> = Vec::with_capacity(rows.len());
        let mut feed = Vec::with_capacity(rows.len());
        for r in &rows {
            let digest: String = r.try_get("digest")?;
            let media_type: String = r.try_get("media_type")?;
            feed.push(crate::events::NewEvent {
                kind: crate::events::DELETED,
                repository: Some(repo),
                subject: Some(format!("{repo}@{digest}")),
                data: serde_json::json!({
                    "repository": repo,
                    "digest": digest,
                    "mediaType": media_type,
                    "tags": [],
                    "by": "gc",
                }),
            });
            deleted.push(digest);
        }
        if !deleted.is_empty() {
            let list = placeholders(2, deleted.len());
            for sql in [
                format!("DELETE FROM manifest_refs WHERE repo = $1 AND manifest IN ({list})"),
                format!("DELETE FROM signature_verdicts WHERE repo = $1 AND digest IN ({list})"),
            ] {
                let mut q = sqlx::query(&sql).bind(repo);
                for d in &deleted {
                    q = q.bind(d);
                }
                q.execute(&mut *tx).await?;
            }
        }
        crate::events::append(&mut tx, &crate::events::Origin::default(), &feed).await?;
        self.commit_events(tx).await?;
        Ok(deleted)
    }

    /// Deletes up to [`BATCH`] links claimed before `cutoff` that no
    /// manifest of their repository references (none in a repository with
    /// a manifest not indexed), after `after` in (repo, digest) order so
    /// that each batch starts where the last one ended instead of
    /// re-reading the links that stay. Returns how many went and where the
    /// batch ended (`None`: nothing left to look at).
    pub(crate) async fn gc_delete_links(
        &self,
        cutoff: i64,
        after: &(String, String),
    ) -> Result<(u64, Option<(String, String)>), StoreError> {
        let unreferenced = "NOT EXISTS (SELECT 1 FROM manifest_refs r \
                 WHERE r.repo = l.repo AND r.digest = l.digest AND r.kind = 0) \
             AND NOT EXISTS (SELECT 1 FROM manifests u WHERE u.repo = l.repo AND u.refs_known = 0)";
        let rows = sqlx::query(&format!(
            "SELECT l.repo, l.digest FROM repo_blobs l WHERE (l.repo, l.digest) > ($2, $3) \
             AND l.claimed_at < $1 AND {unreferenced} ORDER BY l.repo, l.digest LIMIT $4"
        ))
        .bind(cutoff)
        .bind(&after.0)
        .bind(&after.1)
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await?;
        let Some(last) = rows.last() else {
            return Ok((0, None));
        };
        let last: (String, String) = (last.try_get("repo")?, last.try_get("digest")?);
        // The same condition again in the deleting statement: a link
        // claimed since the read above is left alone.
        let sql = format!(
            "DELETE FROM repo_blobs WHERE (repo, digest) > ($2, $3) AND (repo, digest) <= ($4, $5) \
             AND claimed_at < $1 AND {}",
            unreferenced
                .replace("l.repo", "repo_blobs.repo")
                .replace("l.digest", "repo_blobs.digest")
        );
        let mut tx = self.pool.begin().await?;
        if self.engine() == Engine::Postgres {
            sqlx::query(
                "SELECT 1 FROM repo_blobs WHERE (repo, digest) > ($2, $3) AND (repo, digest) <= ($4, $5) \
                 AND claimed_at < $1 ORDER BY repo, digest FOR UPDATE",
            )
            .bind(cutoff)
            .bind(&after.0)
            .bind(&after.1)
            .bind(&last.0)
            .bind(&last.1)
            .execute(&mut *tx)
            .await?;
        }
        let r = sqlx::query(&sql)
            .bind(cutoff)
            .bind(&after.0)
            .bind(&after.1)
            .bind(&last.0)
            .bind(&last.1)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((r.rows_affected(), Some(last)))
    }

    /// Dooms up to [`BATCH`] blobs claimed before `cutoff` that no link
    /// and no manifest holds, with digests after `after` (each batch
    /// starts where the last ended): from here they cannot be claimed,
    /// and their bytes may be deleted. Returns (digest, size) of each, and
    /// where the batch ended (`None`: nothing left to look at).
    pub(crate) async fn gc_doom_blobs(
        &self,
        cutoff: i64,
        now: i64,
        after: &str,
    ) -> Result<(Vec<(String, i64)>, Option<String>), StoreError> {
        let unheld = "NOT EXISTS (SELECT 1 FROM repo_blobs l WHERE l.digest = b.digest) \
             AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)";
        let rows = sqlx::query(&format!(
            "SELECT b.digest FROM blobs b WHERE b.digest > $2 AND b.doomed_at IS NULL \
             AND b.claimed_at < $1 AND {unheld} ORDER BY b.digest LIMIT $3"
        ))
        .bind(cutoff)
        .bind(after)
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await?;
        let Some(last) = rows.last() else {
            return Ok((Vec::new(), None));
        };
        let last: String = last.try_get("digest")?;
        // Re-stated in the dooming statement: a blob claimed since the
        // read above is left alone.
        let sql = format!(
            "UPDATE blobs SET doomed_at = $2 WHERE digest > $3 AND digest <= $4 \
             AND doomed_at IS NULL AND claimed_at < $1 AND {} RETURNING digest, size",
            unheld.replace("b.digest", "blobs.digest")
        );
        let mut tx = self.pool.begin().await?;
        if self.engine() == Engine::Postgres {
            sqlx::query(
                "SELECT 1 FROM blobs WHERE digest > $2 AND digest <= $3 AND doomed_at IS NULL \
                 AND claimed_at < $1 ORDER BY digest FOR UPDATE",
            )
            .bind(cutoff)
            .bind(after)
            .bind(&last)
            .execute(&mut *tx)
            .await?;
        }
        let rows = sqlx::query(&sql)
            .bind(cutoff)
            .bind(now)
            .bind(after)
            .bind(&last)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let doomed = rows
            .iter()
            .map(|r| Ok((r.try_get("digest")?, r.try_get("size")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((doomed, Some(last)))
    }

    /// Blobs a run doomed but did not finish (it was killed or failed).
    pub(crate) async fn gc_doomed(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT digest, size FROM blobs WHERE doomed_at IS NOT NULL ORDER BY digest",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("digest")?, r.try_get("size")?)))
            .collect()
    }

    /// Forgets doomed blobs whose bytes are gone (at most [`BATCH`]).
    pub(crate) async fn gc_forget_blobs(&self, digests: &[String]) -> Result<(), StoreError> {
        self.by_digests(
            "DELETE FROM blobs WHERE doomed_at IS NOT NULL AND digest IN",
            digests,
        )
        .await
    }

    /// Lifts the doom of blobs whose bytes were not touched (at most
    /// [`BATCH`]; a run that stops on a store error gives back what it did
    /// not start on).
    pub(crate) async fn gc_spare(&self, digests: &[String]) -> Result<(), StoreError> {
        self.by_digests("UPDATE blobs SET doomed_at = NULL WHERE digest IN", digests)
            .await
    }

    /// Runs `sql` followed by the list of `digests`, in one statement.
    async fn by_digests(&self, sql: &str, digests: &[String]) -> Result<(), StoreError> {
        if digests.is_empty() {
            return Ok(());
        }
        let sql = format!("{sql} ({})", placeholders(1, digests.len()));
        let mut q = sqlx::query(&sql);
        for d in digests {
            q = q.bind(d);
        }
        q.execute(&self.pool).await?;
        Ok(())
    }

    /// Records a run (the newest 100 are kept).
    pub(crate) async fn gc_record(
        &self,
        id: &str,
        started_at: i64,
        report: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO gc_runs (id, started_at, finished_at, report) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(started_at)
        .bind(crate::now_millis())
        .bind(report)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM gc_runs WHERE id NOT IN (SELECT id FROM gc_runs ORDER BY started_at DESC LIMIT 100)",
        )
        .execute(&mut *tx)
        .await?;
        // The run's summary is a handful of counts (and an error line).
        let summary: serde_json::Value =
            serde_json::from_str(report).unwrap_or(serde_json::Value::Null);
        let event = crate::events::NewEvent {
            kind: crate::events::GC_COMPLETED,
            repository: None,
            subject: Some(format!("gc/{id}")),
            data: serde_json::json!({ "run": id, "report": summary }),
        };
        crate::events::append(&mut tx, &crate::events::Origin::default(), &[event]).await?;
        self.commit_events(tx).await?;
        Ok(())
    }

    /// The newest recorded run's report (JSON), if any.
    pub async fn gc_last_run(&self) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT report FROM gc_runs ORDER BY started_at DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("report")).transpose()?)
    }
}
