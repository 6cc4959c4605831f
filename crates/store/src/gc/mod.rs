//! Online garbage collection (issue 17): reclaims the bytes of what
//! nothing reaches while the registry takes traffic, on every backend and
//! with any number of replicas.
//!
//! A run, under the one lock every replica shares ([`lock`]):
//! 1. indexes manifests whose references are not recorded yet (pushed
//!    before this version), reading their bytes;
//! 2. plans from a snapshot ([`plan`]): tags retention removes, dead
//!    manifests, unreferenced links, unheld blobs, each with a reason;
//! 3. (not in a dry run) deletes them with guarded statements
//!    ([`sweep`]), manifests in rounds (an index before its children, a
//!    subject before its referrers), then links, then blobs: each blob is
//!    doomed in the database, its bytes deleted, and only then its row
//!    forgotten, so a run killed at any point leaves rows whose bytes may
//!    be missing only when they are doomed, which no push can claim and
//!    the next run finishes.
//!
//! Why this cannot race a push into a missing blob is argued in
//! docs/ARCHITECTURE.md ("Garbage collection") and `crate::claims`.

pub mod lock;
pub mod plan;
pub mod retention;
mod sweep;

use crate::blob::BlobStore;
use crate::error::StoreError;
use crate::meta::MetaStore;
use crate::now_millis;
use lock::{GcLock, LockError};
use pavilion_oci::{Digest, ManifestInfo};
use plan::{Gone, Plan, Snapshot};
use retention::Retention;
use std::time::Duration;

/// Blob deletions in flight at once (each is a file unlink or one or two
/// object store requests: latency, not work, so they overlap).
const DELETE_CONCURRENCY: usize = 16;

/// Most rounds of manifest deletion in one run (each round frees the next
/// level: an index's children, a subject's referrers); deeper chains
/// finish in the next run.
const MAX_ROUNDS: usize = 64;

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Nothing claimed more recently than this goes. It must exceed the
    /// longest push (a layer uploaded first is unreferenced until the
    /// manifest arrives at the end).
    pub grace: Duration,
    /// Plan and report only.
    pub dry_run: bool,
    /// Retention rules.
    pub retention: Retention,
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// When it started (Unix ms).
    pub started_at: i64,
    /// How long it took.
    pub duration_ms: u64,
    /// The grace period it used (ms).
    pub grace_ms: i64,
    /// Tags removed by retention.
    pub tags: Vec<Gone>,
    /// Manifests removed.
    pub manifests: Vec<Gone>,
    /// Blob links removed from repositories.
    pub links: u64,
    /// Blobs whose bytes were deleted.
    pub blobs: Vec<Gone>,
    /// Bytes freed in the store (manifests' and blobs').
    pub bytes: i64,
    /// Planned removals skipped because something claimed them meanwhile.
    pub skipped: u64,
    /// Repositories kept whole: a manifest's references are unknown.
    pub unindexed: Vec<String>,
    /// Why the run stopped early, if it did (the next run resumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a run did not happen or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Another run holds the lock.
    #[error("{0}")]
    Busy(LockError),
    /// The database failed before anything was deleted.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs garbage collection over `meta` and `blobs`.
pub async fn run(
    meta: &MetaStore,
    blobs: &dyn BlobStore,
    opts: &Options,
) -> Result<Report, GcError> {
    let mut lock = match GcLock::try_acquire(meta).await {
        Ok(l) => l,
        Err(LockError::Store(e)) => return Err(e.into()),
        Err(busy) => return Err(GcError::Busy(busy)),
    };
    let result = run_locked(meta, blobs, opts, &mut lock).await;
    lock.release().await;
    result
}

async fn run_locked(
    meta: &MetaStore,
    blobs: &dyn BlobStore,
    opts: &Options,
    lock: &mut GcLock,
) -> Result<Report, GcError> {
    let started = std::time::Instant::now();
    let now = now_millis();
    let grace_ms = i64::try_from(opts.grace.as_millis()).unwrap_or(i64::MAX / 2);
    let mut snap = meta.gc_snapshot().await?;
    index_old_manifests(meta, blobs, opts.dry_run, &mut snap).await?;
    let planned = plan::plan(&snap, &opts.retention, now, grace_ms);
    let mut report = Report {
        dry_run: opts.dry_run,
        started_at: now,
        grace_ms,
        unindexed: planned.unindexed.clone(),
        ..Default::default()
    };
    if opts.dry_run {
        dry_report(&planned, &mut report);
    } else {
        let cutoff = now - grace_ms;
        if let Err(e) = sweep(meta, blobs, lock, &planned, cutoff, now, &mut report).await {
            tracing::warn!(error = %e, "garbage collection stopped; the next run resumes");
            report.error = Some(e.to_string());
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    if !opts.dry_run {
        let id = uuid::Uuid::new_v4().to_string();
        let json = serde_json::to_string(&Summary::of(&report)).unwrap_or_default();
        if let Err(e) = meta.gc_record(&id, now, &json).await {
            tracing::warn!(error = %e, "could not record the garbage collection run");
        }
    }
    Ok(report)
}

/// A run as recorded in the database: the counts, not the lists.
#[derive(serde::Serialize)]
struct Summary {
    started_at: i64,
    duration_ms: u64,
    tags: usize,
    manifests: usize,
    links: u64,
    blobs: usize,
    bytes: i64,
    skipped: u64,
    error: Option<String>,
}

impl Summary {
    fn of(r: &Report) -> Summary {
        Summary {
            started_at: r.started_at,
            duration_ms: r.duration_ms,
            tags: r.tags.len(),
            manifests: r.manifests.len(),
            links: r.links,
            blobs: r.blobs.len(),
            bytes: r.bytes,
            skipped: r.skipped,
            error: r.error.clone(),
        }
    }
}

/// What a collection would free now, from the database alone (no lock,
/// no bytes read: a repository with a manifest not indexed yet counts as
/// kept whole), for `pavilion du` and the usage endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reclaimable {
    /// Bytes of the blobs (and manifests' bytes) that would be deleted.
    pub bytes: i64,
    /// How many blobs.
    pub blobs: usize,
    /// How many manifests.
    pub manifests: usize,
}

/// See [`Reclaimable`].
pub async fn reclaimable(
    meta: &MetaStore,
    retention: &Retention,
    grace: Duration,
) -> Result<Reclaimable, StoreError> {
    let snap = meta.gc_snapshot().await?;
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX / 2);
    let p = plan::plan(&snap, retention, now_millis(), grace_ms);
    Ok(Reclaimable {
        bytes: p.blobs.iter().map(|(b, _)| b.size).sum(),
        blobs: p.blobs.len(),
        manifests: p.manifests.len(),
    })
}

/// Reads what each not yet indexed manifest references from its bytes;
/// records it (or, dry, only uses it). One that cannot be read or parsed
/// stays unindexed and keeps its repository whole.
async fn index_old_manifests(
    meta: &MetaStore,
    blobs: &dyn BlobStore,
    dry_run: bool,
    snap: &mut Snapshot,
) -> Result<(), StoreError> {
    for (repo, digest, media_type) in meta.gc_unindexed().await? {
        let refs = match manifest_refs(blobs, &digest, &media_type).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%repo, %digest, error = %e, "cannot index manifest: its repository is kept whole");
                continue;
            }
        };
        if !dry_run {
            meta.gc_index(&repo, &digest, &refs).await?;
        }
        for (target, is_manifest) in refs {
            snap.refs.push(plan::RefRow {
                repo: repo.clone(),
                manifest: digest.clone(),
                digest: target,
                is_manifest,
            });
        }
        for m in snap.manifests.iter_mut() {
            if m.repo == repo && m.digest == digest {
                m.refs_known = true;
            }
        }
    }
    Ok(())
}

async fn manifest_refs(
    blobs: &dyn BlobStore,
    digest: &str,
    media_type: &str,
) -> Result<Vec<(String, bool)>, String> {
    let d: Digest = digest.parse().map_err(|e| format!("{e}"))?;
    let body = blobs.read_all(&d).await.map_err(|e| e.to_string())?;
    let info = ManifestInfo::parse(&body, Some(media_type)).map_err(|e| e.to_string())?;
    let mut refs: Vec<(String, bool)> = info
        .blobs
        .iter()
        .zip(info.external.iter().chain(std::iter::repeat(&false)))
        .filter(|(_, external)| !**external)
        .map(|(b, _)| (b.digest.to_string(), false))
        .collect();
    refs.extend(info.manifests.iter().map(|m| (m.digest.to_string(), true)));
    Ok(refs)
}

fn dry_report(planned: &Plan, report: &mut Report) {
    for (t, why) in &planned.tags {
        report.tags.push(Gone {
            repository: t.repo.clone(),
            name: t.tag.clone(),
            bytes: 0,
            reason: why.clone(),
        });
    }
    for (m, _, why) in &planned.manifests {
        report.manifests.push(Gone {
            repository: m.repo.clone(),
            name: m.digest.clone(),
            bytes: m.size,
            reason: why.clone(),
        });
    }
    report.links = planned.links.len() as u64;
    for (b, why) in &planned.blobs {
        report.bytes += b.size;
        report.blobs.push(Gone {
            repository: String::new(),
            name: b.digest.clone(),
            bytes: b.size,
            reason: why.clone(),
        });
    }
}

/// Deletes the bytes of a batch of doomed blobs, several at a time; after
/// a failure no new deletion starts. Per blob: `Some(result)`, or `None`
/// when it was not attempted.
async fn delete_bytes(
    blobs: &dyn BlobStore,
    batch: &[(String, i64)],
) -> Vec<Option<Result<(), StoreError>>> {
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut out: Vec<Option<Result<(), StoreError>>> = batch.iter().map(|_| None).collect();
    let mut pending = FuturesUnordered::new();
    let (mut next, mut failed) = (0, false);
    loop {
        while !failed && pending.len() < DELETE_CONCURRENCY && next < batch.len() {
            pending.push(delete_one(blobs, next, &batch[next].0));
            next += 1;
        }
        let Some((i, r)) = pending.next().await else {
            return out;
        };
        failed |= r.is_err();
        out[i] = Some(r);
    }
}

/// Deletes one blob's bytes; `i` is its place in the batch.
async fn delete_one(
    blobs: &dyn BlobStore,
    i: usize,
    digest: &str,
) -> (usize, Result<(), StoreError>) {
    match digest.parse::<Digest>() {
        Ok(d) => (i, blobs.delete(&d).await.map(|_| ())),
        // Never a row the registry wrote: nothing to delete.
        Err(_) => (i, Ok(())),
    }
}

/// The deletions, in order; stops at the first store or database error
/// (what was done stays done and is reported).
async fn sweep(
    meta: &MetaStore,
    blobs: &dyn BlobStore,
    lock: &mut GcLock,
    planned: &Plan,
    cutoff: i64,
    now: i64,
    report: &mut Report,
) -> Result<(), StoreError> {
    for (t, why) in &planned.tags {
        lock.still_held().await?;
        if meta.gc_delete_tag(t).await? {
            report.tags.push(Gone {
                repository: t.repo.clone(),
                name: t.tag.clone(),
                bytes: 0,
                reason: why.clone(),
            });
        } else {
            report.skipped += 1;
        }
    }
    let mut pending: Vec<&(plan::ManifestRow, i64, String)> = planned.manifests.iter().collect();
    for _ in 0..MAX_ROUNDS {
        let before = pending.len();
        let mut left = Vec::new();
        // One statement per repository and cutoff, a batch at a time.
        let mut groups: std::collections::BTreeMap<(&str, i64), Vec<_>> = Default::default();
        for item in pending {
            groups
                .entry((item.0.repo.as_str(), item.1))
                .or_default()
                .push(item);
        }
        for ((repo, m_cutoff), items) in groups {
            for chunk in items.chunks(sweep::BATCH as usize) {
                lock.still_held().await?;
                let digests: Vec<String> = chunk.iter().map(|(m, _, _)| m.digest.clone()).collect();
                let deleted: std::collections::HashSet<String> = meta
                    .gc_delete_manifests(repo, &digests, m_cutoff)
                    .await?
                    .into_iter()
                    .collect();
                for item in chunk {
                    let (m, _, why) = item;
                    if deleted.contains(&m.digest) {
                        report.manifests.push(Gone {
                            repository: m.repo.clone(),
                            name: m.digest.clone(),
                            bytes: m.size,
                            reason: why.clone(),
                        });
                    } else {
                        left.push(*item);
                    }
                }
            }
        }
        pending = left;
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    report.skipped += pending.len() as u64;
    let mut after = (String::new(), String::new());
    loop {
        lock.still_held().await?;
        let (n, last) = meta.gc_delete_links(cutoff, &after).await?;
        report.links += n;
        match last {
            Some(l) => after = l,
            None => break,
        }
    }
    // Leftovers of a run that was killed or stopped first, then new ones.
    let mut batch = meta.gc_doomed().await?;
    let mut after = String::new();
    loop {
        if batch.is_empty() {
            lock.still_held().await?;
            let (doomed, last) = meta.gc_doom_blobs(cutoff, now, &after).await?;
            match last {
                Some(l) => after = l,
                None => return Ok(()),
            }
            batch = doomed;
            if batch.is_empty() {
                continue;
            }
        }
        let outcome = delete_bytes(blobs, &batch).await;
        let mut gone = Vec::new();
        let mut spared = Vec::new();
        let mut first_error = None;
        for ((digest, size), result) in batch.iter().zip(outcome) {
            match result {
                Some(Ok(())) => {
                    gone.push(digest.clone());
                    report.bytes += size;
                    report.blobs.push(Gone {
                        repository: String::new(),
                        name: digest.clone(),
                        bytes: *size,
                        reason: "no repository holds it".into(),
                    });
                }
                // It may be half deleted: it stays doomed for the next run.
                Some(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                // Not touched after the error: spared.
                None => spared.push(digest.clone()),
            }
        }
        meta.gc_forget_blobs(&gone).await?;
        if let Some(e) = first_error {
            meta.gc_spare(&spared).await?;
            return Err(e);
        }
        batch.clear();
    }
}
