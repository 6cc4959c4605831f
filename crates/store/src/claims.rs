//! Writes that make references, each claiming what it references in the
//! same transaction, so that garbage collection ([`crate::gc`]) can never
//! delete something a push is about to rely on.
//!
//! The rule (argued in docs/ARCHITECTURE.md, "Garbage collection"): a
//! reference is made only in a transaction that also sets `claimed_at`
//! on the row it references (a blob, a repository's link to a blob, a
//! manifest), and only if that row exists and, for a blob, is not doomed.
//! The collector deletes (or dooms) a row only in a single statement that
//! also requires `claimed_at` older than its grace period. Both write the
//! same row, so the database orders them: if the claim is first, the
//! collector's statement finds it fresh and leaves it; if the collector is
//! first, the claim finds the row gone or doomed and the request fails
//! (the client uploads again) instead of succeeding without its bytes.

use crate::error::StoreError;
use crate::events::{self, NewEvent, Origin};
use crate::meta::{MetaStore, NewManifest};
use crate::now_millis;
use pavilion_oci::Digest;
use sqlx::{Any, Row, Transaction};

/// Kind of a `manifest_refs` row: a blob (config, layer).
pub(crate) const REF_BLOB: i64 = 0;
/// Kind of a `manifest_refs` row: a manifest (an index's child).
pub(crate) const REF_MANIFEST: i64 = 1;

/// A claim of blob `digest` that updated no row: the collector has it.
fn claimed(rows: u64, digest: &str) -> Result<(), StoreError> {
    if rows > 0 {
        return Ok(());
    }
    Err(StoreError::Collecting(digest.parse().map_err(|e| {
        StoreError::Corrupt(format!("blob digest {digest}: {e}"))
    })?))
}

/// Inserts or claims the row of blob `digest` (its bytes in the store);
/// refuses a doomed one.
async fn claim_blob_row(
    tx: &mut Transaction<'_, Any>,
    digest: &str,
    size: u64,
    manifest: bool,
    now: i64,
) -> Result<(), StoreError> {
    let r = sqlx::query(
        "INSERT INTO blobs (digest, size, created_at, claimed_at, manifest) VALUES ($1, $2, $3, $3, $4) \
         ON CONFLICT (digest) DO UPDATE SET claimed_at = excluded.claimed_at WHERE blobs.doomed_at IS NULL",
    )
    .bind(digest)
    .bind(size as i64)
    .bind(now)
    .bind(i64::from(manifest))
    .execute(&mut **tx)
    .await?;
    claimed(r.rows_affected(), digest)
}

/// Claims the existing row of blob `digest` in a transaction that is about
/// to rely on its bytes. The row must be there: an earlier
/// [`MetaStore::claim_blob`] made or claimed it before the bytes were
/// written, and if it is gone (or doomed) now, the collector took them in
/// between (a claim older than its grace period), so the request must
/// fail rather than record a reference to missing bytes.
async fn claim_existing_blob(
    tx: &mut Transaction<'_, Any>,
    digest: &str,
    now: i64,
) -> Result<(), StoreError> {
    let r = sqlx::query("UPDATE blobs SET claimed_at = $2 WHERE digest = $1 AND doomed_at IS NULL")
        .bind(digest)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    claimed(r.rows_affected(), digest)
}

/// Links blob `digest` into `repo` (creating the repository), claimed now.
async fn link(
    tx: &mut Transaction<'_, Any>,
    repo: &str,
    digest: &str,
    now: i64,
) -> Result<(), StoreError> {
    ensure_repository(tx, repo, now).await?;
    sqlx::query(
        "INSERT INTO repo_blobs (repo, digest, created_at, claimed_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (repo, digest) DO UPDATE SET claimed_at = excluded.claimed_at",
    )
    .bind(repo)
    .bind(digest)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn ensure_repository(
    tx: &mut Transaction<'_, Any>,
    repo: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(repo)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl MetaStore {
    /// Claims blob `digest` (of `size` bytes; `manifest` when they are a
    /// manifest's) before its bytes are committed or relied on: from here
    /// the collector leaves it alone for its grace period. Fails with
    /// [`StoreError::Collecting`] while the collector is deleting it.
    pub async fn claim_blob(
        &self,
        digest: &Digest,
        size: u64,
        manifest: bool,
    ) -> Result<(), StoreError> {
        let _t = self.time("blob_link");
        let mut tx = self.pool.begin().await?;
        claim_blob_row(&mut tx, &digest.to_string(), size, manifest, now_millis()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes the row [`MetaStore::claim_blob`] made for `digest` when the
    /// bytes it was claimed for never came (a failed commit): only a row
    /// that claim inserted (never claimed again since: `claimed_at` still
    /// equals `created_at`) and that nothing links or names as a manifest.
    pub async fn release_claim(&self, digest: &Digest) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM blobs WHERE digest = $1 AND doomed_at IS NULL AND claimed_at = created_at \
             AND NOT EXISTS (SELECT 1 FROM repo_blobs l WHERE l.digest = blobs.digest) \
             AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = blobs.digest)",
        )
        .bind(digest.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that `repo` holds blob `digest` of `size` bytes, whose bytes
    /// were just committed after [`MetaStore::claim_blob`] (without which
    /// it fails: see `claim_existing_blob`).
    pub async fn link_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), StoreError> {
        let _t = self.time("blob_link");
        let now = now_millis();
        let d = digest.to_string();
        let mut tx = self.pool.begin().await?;
        claim_existing_blob(&mut tx, &d, now).await?;
        // A row made by a claim before the bytes existed carries the size
        // the session had; the committed size is the truth. Uploaded, the
        // bytes count as a blob even if they are also some manifest's.
        sqlx::query("UPDATE blobs SET size = $2, manifest = 0 WHERE digest = $1")
            .bind(&d)
            .bind(size as i64)
            .execute(&mut *tx)
            .await?;
        link(&mut tx, repo, &d, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Links a blob the store already holds into `repo` (a cross-repository
    /// mount): its size, or `None` when there is no such blob or the
    /// collector is deleting it (the client then uploads it).
    pub async fn mount_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let _t = self.time("blob_link");
        let now = now_millis();
        let d = digest.to_string();
        let mut tx = self.pool.begin().await?;
        let claimed =
            sqlx::query("UPDATE blobs SET claimed_at = $2 WHERE digest = $1 AND doomed_at IS NULL")
                .bind(&d)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        if claimed.rows_affected() == 0 {
            return Ok(None);
        }
        let size: i64 = sqlx::query("SELECT size FROM blobs WHERE digest = $1")
            .bind(&d)
            .fetch_one(&mut *tx)
            .await?
            .try_get("size")?;
        link(&mut tx, repo, &d, now).await?;
        tx.commit().await?;
        Ok(Some(size as u64))
    }

    /// Records a manifest, what it references, and points its tags at it,
    /// in one transaction that claims its own bytes (whose row
    /// [`MetaStore::claim_blob`] made before they were written), every blob link and
    /// child manifest it references (each must still be there:
    /// [`StoreError::NotInRepo`] otherwise), and the manifests its tags
    /// leave (their untagged age starts now).
    pub async fn put_manifest(&self, m: &NewManifest<'_>) -> Result<(), StoreError> {
        self.put_manifest_as(m, &Origin::default()).await
    }

    /// [`MetaStore::put_manifest`] on behalf of `origin`, writing its
    /// events (pushed, signed, tagged) in the same transaction.
    pub async fn put_manifest_as(
        &self,
        m: &NewManifest<'_>,
        origin: &Origin,
    ) -> Result<(), StoreError> {
        let _t = self.time("manifest_put");
        let now = now_millis();
        let d = m.record.digest.to_string();
        let mut tx = self.pool.begin().await?;
        ensure_repository(&mut tx, m.repo, now).await?;
        claim_existing_blob(&mut tx, &d, now).await?;
        // Rows are claimed (locked) in one order, the collector's, so a
        // push and a sweep never wait on each other in a cycle.
        let mut blobs: Vec<String> = m.blobs.iter().map(|b| b.to_string()).collect();
        blobs.sort();
        blobs.dedup();
        let mut children: Vec<String> = m.manifests.iter().map(|c| c.to_string()).collect();
        children.sort();
        children.dedup();
        for b in &blobs {
            let r = sqlx::query(
                "UPDATE repo_blobs SET claimed_at = $3 WHERE repo = $1 AND digest = $2",
            )
            .bind(m.repo)
            .bind(b)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotInRepo(format!("blob {b}")));
            }
        }
        for c in &children {
            let r =
                sqlx::query("UPDATE manifests SET claimed_at = $3 WHERE repo = $1 AND digest = $2")
                    .bind(m.repo)
                    .bind(c)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotInRepo(format!("manifest {c}")));
            }
        }
        sqlx::query(
            "INSERT INTO manifests (repo, digest, media_type, size, artifact_type, subject, annotations, \
             created_at, claimed_at, refs_known) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1) \
             ON CONFLICT (repo, digest) DO UPDATE SET claimed_at = excluded.claimed_at, refs_known = 1",
        )
        .bind(m.repo)
        .bind(&d)
        .bind(&m.record.media_type)
        .bind(m.record.size as i64)
        .bind(m.record.artifact_type.as_deref())
        .bind(m.subject.as_ref().map(|s| s.to_string()))
        .bind(m.record.annotations.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let refs = m
            .blobs
            .iter()
            .map(|b| (b, REF_BLOB))
            .chain(m.manifests.iter().map(|c| (c, REF_MANIFEST)));
        for (target, kind) in refs {
            sqlx::query(
                "INSERT INTO manifest_refs (repo, manifest, digest, kind) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repo, manifest, digest) DO NOTHING",
            )
            .bind(m.repo)
            .bind(&d)
            .bind(target.to_string())
            .bind(kind)
            .execute(&mut *tx)
            .await?;
        }
        let mut feed = vec![pushed(m, &d)];
        if let Some(signed) = signed(m, &d) {
            feed.push(signed);
        }
        for tag in m.tags {
            // The claim on what the tag leaves names it: no SELECT of its
            // own (a statement under the feed's counter lock costs).
            let previous = untag_claim(&mut tx, m.repo, tag, now).await?;
            if previous.as_deref() != Some(d.as_str()) {
                feed.push(NewEvent {
                    kind: events::TAGGED,
                    repository: Some(m.repo),
                    subject: Some(format!("{}:{tag}", m.repo)),
                    data: serde_json::json!({
                        "repository": m.repo,
                        "tag": tag,
                        "digest": d,
                        "mediaType": m.record.media_type,
                        "previousDigest": previous,
                    }),
                });
            }
            sqlx::query(
                "INSERT INTO tags (repo, tag, digest, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
            )
            .bind(m.repo)
            .bind(*tag)
            .bind(&d)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        events::append(&mut tx, origin, &feed).await?;
        self.commit_events(tx).await?;
        Ok(())
    }

    /// Deletes a manifest, what it references and every tag pointing at
    /// it; `false` if absent. Its bytes and the blobs it referenced stay
    /// until garbage collection finds nothing else needs them.
    pub async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, StoreError> {
        self.delete_manifest_as(repo, digest, &Origin::default())
            .await
    }

    /// [`MetaStore::delete_manifest`] on behalf of `origin`: an untagged
    /// event for each tag that pointed at it, then deleted, in the same
    /// transaction.
    pub async fn delete_manifest_as(
        &self,
        repo: &str,
        digest: &Digest,
        origin: &Origin,
    ) -> Result<bool, StoreError> {
        let _t = self.time("delete");
        let d = digest.to_string();
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query(
            "DELETE FROM manifests WHERE repo = $1 AND digest = $2 RETURNING media_type",
        )
        .bind(repo)
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await?;
        let media_type: Option<String> = gone.map(|r| r.try_get("media_type")).transpose()?;
        let tags: Vec<String> =
            sqlx::query("SELECT tag FROM tags WHERE repo = $1 AND digest = $2 ORDER BY tag")
                .bind(repo)
                .bind(&d)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("tag"))
                .collect::<Result<_, _>>()?;
        for table in ["tags", "signature_verdicts"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE repo = $1 AND digest = $2"
            ))
            .bind(repo)
            .bind(&d)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM manifest_refs WHERE repo = $1 AND manifest = $2")
            .bind(repo)
            .bind(&d)
            .execute(&mut *tx)
            .await?;
        let Some(media_type) = media_type else {
            tx.commit().await?;
            return Ok(false);
        };
        let mut feed: Vec<NewEvent> = tags.iter().map(|t| untagged(repo, t, &d)).collect();
        feed.push(NewEvent {
            kind: events::DELETED,
            repository: Some(repo),
            subject: Some(format!("{repo}@{d}")),
            data: serde_json::json!({
                "repository": repo,
                "digest": d,
                "mediaType": media_type,
                "tags": tags,
            }),
        });
        events::append(&mut tx, origin, &feed).await?;
        self.commit_events(tx).await?;
        Ok(true)
    }

    /// Deletes a tag (the manifest stays, untagged from now); `false` if
    /// absent.
    pub async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool, StoreError> {
        self.delete_tag_as(repo, tag, &Origin::default()).await
    }

    /// [`MetaStore::delete_tag`] on behalf of `origin`, writing its
    /// untagged event in the same transaction.
    pub async fn delete_tag_as(
        &self,
        repo: &str,
        tag: &str,
        origin: &Origin,
    ) -> Result<bool, StoreError> {
        let _t = self.time("delete");
        let mut tx = self.pool.begin().await?;
        untag_claim(&mut tx, repo, tag, now_millis()).await?;
        let gone = sqlx::query("DELETE FROM tags WHERE repo = $1 AND tag = $2 RETURNING digest")
            .bind(repo)
            .bind(tag)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = gone else {
            tx.commit().await?;
            return Ok(false);
        };
        let digest: String = row.try_get("digest")?;
        events::append(&mut tx, origin, &[untagged(repo, tag, &digest)]).await?;
        self.commit_events(tx).await?;
        Ok(true)
    }
}

/// Claims the manifest `tag` points at before the tag moves or goes, so
/// that it counts as untagged from now, not from when it was pushed; the
/// digest it pointed at (`None` for a new tag).
async fn untag_claim(
    tx: &mut Transaction<'_, Any>,
    repo: &str,
    tag: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "UPDATE manifests SET claimed_at = $3 WHERE repo = $1 \
         AND digest = (SELECT t.digest FROM tags t WHERE t.repo = $1 AND t.tag = $2) \
         RETURNING digest",
    )
    .bind(repo)
    .bind(tag)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.try_get("digest")).transpose()?)
}

/// The `pushed` event of manifest `m` (digest `d`).
fn pushed<'a>(m: &NewManifest<'a>, d: &str) -> NewEvent<'a> {
    NewEvent {
        kind: events::PUSHED,
        repository: Some(m.repo),
        subject: Some(format!("{}@{d}", m.repo)),
        data: serde_json::json!({
            "repository": m.repo,
            "digest": d,
            "mediaType": m.record.media_type,
            "size": m.record.size,
            "artifactType": m.record.artifact_type,
            "subject": m.subject.as_ref().map(|s| s.to_string()),
            "tags": m.tags,
        }),
    }
}

/// The `signed` event when `m` is a signature (its artifact type) of a
/// subject: the subject is what became signed.
fn signed<'a>(m: &NewManifest<'a>, d: &str) -> Option<NewEvent<'a>> {
    let subject = m.subject.as_ref()?;
    let at = m.record.artifact_type.as_deref()?;
    if !events::SIGNATURE_ARTIFACT_TYPES.contains(&at) {
        return None;
    }
    Some(NewEvent {
        kind: events::SIGNED,
        repository: Some(m.repo),
        subject: Some(format!("{}@{subject}", m.repo)),
        data: serde_json::json!({
            "repository": m.repo,
            "digest": subject.to_string(),
            "signature": d,
            "signatureType": at,
        }),
    })
}

/// The `untagged` event of `tag`, which pointed at `digest`.
fn untagged<'a>(repo: &'a str, tag: &str, digest: &str) -> NewEvent<'a> {
    NewEvent {
        kind: events::UNTAGGED,
        repository: Some(repo),
        subject: Some(format!("{repo}:{tag}")),
        data: serde_json::json!({ "repository": repo, "tag": tag, "digest": digest }),
    }
}
