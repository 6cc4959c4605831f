//! Garbage collection through the store (issue 17): what goes, what
//! stays, the dry run, retention, the one-run-at-a-time lock, and the
//! claims that make a push win over a sweep. On SQLite, and on PostgreSQL
//! when `PAVILION_TEST_POSTGRES_URL` names a cluster.

use bytes::Bytes;
use pavilion_oci::Digest;
use pavilion_store::gc::retention::{Glob, Retention, Rule};
use pavilion_store::gc::{self, GcError, Options};
use pavilion_store::{BlobStore, FsBlobStore, ManifestRecord, MetaStore, NewManifest, StoreError};
use std::time::Duration;

#[macro_use]
mod common;
use common::{postgres, sqlite, Db};

struct Reg {
    meta: MetaStore,
    blobs: FsBlobStore,
    _dir: tempfile::TempDir,
}

async fn reg(db: &Db) -> Reg {
    let dir = tempfile::tempdir().unwrap();
    Reg {
        meta: MetaStore::connect(&db.url).await.unwrap(),
        blobs: FsBlobStore::open(dir.path()).unwrap(),
        _dir: dir,
    }
}

impl Reg {
    /// Uploads `data` into `repo` as the registry does: claim, bytes, link.
    async fn blob(&self, repo: &str, data: &str) -> Digest {
        let d = Digest::sha256(data.as_bytes());
        self.meta
            .claim_blob(&d, data.len() as u64, false)
            .await
            .unwrap();
        self.blobs
            .put(&d, Bytes::from(data.to_string()))
            .await
            .unwrap();
        self.meta
            .link_blob(repo, &d, data.len() as u64)
            .await
            .unwrap();
        d
    }

    /// Pushes a manifest over `blobs` (and `children`), tagged `tags`.
    async fn manifest(
        &self,
        repo: &str,
        blobs: &[Digest],
        children: &[Digest],
        subject: Option<&Digest>,
        tags: &[&str],
    ) -> Result<Digest, StoreError> {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "blobs": blobs.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "children": children.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "subject": subject.map(|d| d.to_string()),
            "tags": tags,
        })
        .to_string();
        let d = Digest::sha256(body.as_bytes());
        self.meta.claim_blob(&d, body.len() as u64, true).await?;
        self.blobs.put(&d, Bytes::from(body.clone())).await?;
        self.meta
            .put_manifest(&NewManifest {
                repo,
                record: ManifestRecord {
                    digest: d.clone(),
                    media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                    size: body.len() as u64,
                    artifact_type: subject.map(|_| "application/vnd.cncf.notary.signature".into()),
                    annotations: None,
                },
                subject: subject.cloned(),
                tags,
                blobs,
                manifests: children,
            })
            .await?;
        Ok(d)
    }

    async fn gc(&self, retention: Retention, dry_run: bool) -> gc::Report {
        let opts = Options {
            grace: Duration::ZERO,
            dry_run,
            retention,
        };
        // Claims made in this millisecond are not older than a zero grace.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let r = gc::run(&self.meta, &self.blobs, &opts).await.unwrap();
        assert_eq!(r.error, None);
        r
    }

    async fn has_bytes(&self, d: &Digest) -> bool {
        self.blobs.stat(d).await.unwrap().is_some()
    }
}

fn names(gone: &[gc::plan::Gone]) -> Vec<String> {
    let mut v: Vec<String> = gone.iter().map(|g| g.name.clone()).collect();
    v.sort();
    v
}

async fn unreachable_manifests_and_blobs_go_and_tagged_ones_stay(db: Db) {
    let r = reg(&db).await;
    let (a, b, c) = (
        r.blob("m/x", "aaa").await,
        r.blob("m/x", "bbb").await,
        r.blob("m/x", "ccc").await,
    );
    let kept = r
        .manifest("m/x", &[a.clone(), b.clone()], &[], None, &["v1"])
        .await
        .unwrap();
    let dropped = r
        .manifest("m/x", &[b.clone(), c.clone()], &[], None, &[])
        .await
        .unwrap();
    // A signature of the tagged manifest lives with it; one of the
    // dropped manifest goes with it.
    let sig_kept = r.manifest("m/x", &[], &[], Some(&kept), &[]).await.unwrap();
    let sig_dropped = r
        .manifest("m/x", &[], &[], Some(&dropped), &[])
        .await
        .unwrap();
    // The same blob in another repository, referenced by nothing there.
    r.meta.mount_blob("m/y", &c).await.unwrap().unwrap();

    let dry = r.gc(Retention::default(), true).await;
    assert!(dry.dry_run);
    assert_eq!(names(&dry.manifests), {
        let mut v = vec![dropped.to_string(), sig_dropped.to_string()];
        v.sort();
        v
    });
    assert_eq!(dry.links, 2, "c in m/x and in m/y");
    let mut want = vec![c.to_string(), dropped.to_string(), sig_dropped.to_string()];
    want.sort();
    assert_eq!(names(&dry.blobs), want);
    let reason = &dry
        .manifests
        .iter()
        .find(|g| g.name == sig_dropped.to_string())
        .unwrap()
        .reason;
    assert!(reason.contains("referrer of"), "{reason}");
    // Nothing changed.
    assert!(r.has_bytes(&c).await);
    assert!(r
        .meta
        .manifest_by_digest("m/x", &dropped)
        .await
        .unwrap()
        .is_some());

    let done = r.gc(Retention::default(), false).await;
    assert_eq!(names(&done.manifests), names(&dry.manifests));
    assert_eq!(names(&done.blobs), names(&dry.blobs));
    assert_eq!(done.links, 2);
    assert!(done.bytes > 3);
    assert!(!r.has_bytes(&c).await && !r.has_bytes(&dropped).await);
    assert!(r
        .meta
        .manifest_by_digest("m/x", &dropped)
        .await
        .unwrap()
        .is_none());
    for d in [&a, &b, &kept, &sig_kept] {
        assert!(r.has_bytes(d).await, "{d} must stay");
    }
    assert!(r.meta.blob_in_repo("m/x", &b).await.unwrap().is_some());
    assert!(r
        .meta
        .manifest_by_digest("m/x", &sig_kept)
        .await
        .unwrap()
        .is_some());
    // A second run finds nothing.
    let again = r.gc(Retention::default(), false).await;
    assert!(again.manifests.is_empty() && again.blobs.is_empty() && again.links == 0);
}

async fn an_index_keeps_its_children_and_takes_them_when_it_goes(db: Db) {
    let r = reg(&db).await;
    let a = r.blob("i/x", "layer").await;
    let child = r
        .manifest("i/x", std::slice::from_ref(&a), &[], None, &[])
        .await
        .unwrap();
    let index = r
        .manifest("i/x", &[], std::slice::from_ref(&child), None, &["multi"])
        .await
        .unwrap();
    assert!(r.gc(Retention::default(), false).await.manifests.is_empty());
    assert!(r.meta.delete_tag("i/x", "multi").await.unwrap());
    let done = r.gc(Retention::default(), false).await;
    let mut want = vec![child.to_string(), index.to_string()];
    want.sort();
    assert_eq!(names(&done.manifests), want);
    assert!(!r.has_bytes(&a).await);
}

async fn retention_keeps_the_newest_tags_and_what_it_protects(db: Db) {
    let r = reg(&db).await;
    let mut digests = Vec::new();
    for (i, tag) in ["v1", "v2", "v3", "prod-1"].iter().enumerate() {
        let blob = r.blob("t/x", &format!("layer {i}")).await;
        digests.push(r.manifest("t/x", &[blob], &[], None, &[tag]).await.unwrap());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // v1 is signed: protected when the rule says so.
    r.manifest("t/x", &[], &[], Some(&digests[0]), &[])
        .await
        .unwrap();
    let mut rule = Rule::new(Glob::new("t/*").unwrap());
    rule.keep_last = Some(1);
    rule.tags = vec![Glob::new("v*").unwrap(), Glob::new("prod*").unwrap()];
    rule.protect_tags = vec![Glob::new("prod*").unwrap()];
    let retention = Retention {
        rules: vec![rule.clone()],
    };
    let dry = r.gc(retention.clone(), true).await;
    // Newest counted is prod-1 (kept); v3, v2, v1 beyond it; prod is protected anyway.
    assert_eq!(names(&dry.tags), vec!["v1", "v2", "v3"]);
    assert!(
        dry.tags[0].reason.contains("newest 1"),
        "{}",
        dry.tags[0].reason
    );
    rule.protect_signed = true;
    let retention = Retention { rules: vec![rule] };
    let done = r.gc(retention, false).await;
    assert_eq!(names(&done.tags), vec!["v2", "v3"]);
    assert_eq!(done.manifests.len(), 2);
    let tags = r.meta.tags("t/x", None, 100).await.unwrap();
    assert_eq!(tags, vec!["prod-1", "v1"]);
}

async fn one_run_at_a_time(db: Db) {
    let r = reg(&db).await;
    let held = gc::lock::GcLock::try_acquire(&r.meta).await.unwrap();
    let opts = Options {
        grace: Duration::ZERO,
        dry_run: false,
        retention: Retention::default(),
    };
    let other = MetaStore::connect(&db.url).await.unwrap();
    match gc::run(&other, &r.blobs, &opts).await {
        Err(GcError::Busy(e)) => {
            assert!(e.to_string().contains("another garbage collection"), "{e}")
        }
        other => panic!("a second run must be refused: {other:?}"),
    }
    held.release().await;
    gc::run(&other, &r.blobs, &opts).await.unwrap();
}

async fn a_claim_and_a_sweep_never_both_win(db: Db) {
    let r = reg(&db).await;
    let a = r.blob("c/x", "claimed").await;
    // Unreferenced and old: the sweep will doom it...
    tokio::time::sleep(Duration::from_millis(5)).await;
    r.meta.unlink_blob("c/x", &a).await.unwrap();
    let done = r.gc(Retention::default(), false).await;
    assert_eq!(names(&done.blobs), vec![a.to_string()]);
    // ...and a push of it afterwards starts afresh: claim, bytes, link.
    let again = r.blob("c/x", "claimed").await;
    assert!(r.has_bytes(&again).await);
    // A manifest referencing a link the sweep removed is refused, not
    // recorded without its blob.
    let b = r.blob("c/x", "short-lived").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    r.gc(Retention::default(), false).await;
    match r
        .manifest("c/x", std::slice::from_ref(&b), &[], None, &["v1"])
        .await
    {
        Err(StoreError::NotInRepo(what)) => assert!(what.contains(&b.to_string())),
        other => panic!("expected NotInRepo, got {other:?}"),
    }
    assert!(r.meta.manifest_by_tag("c/x", "v1").await.unwrap().is_none());
    // A claim older than the grace period protects nothing: the collector
    // may take the bytes between the claim and the reference, and then
    // the reference fails instead of pointing at missing bytes.
    let late = Digest::sha256(b"late");
    r.meta.claim_blob(&late, 4, false).await.unwrap();
    r.blobs
        .put(&late, Bytes::from_static(b"late"))
        .await
        .unwrap();
    let m = Digest::sha256(b"{}");
    r.meta.claim_blob(&m, 2, true).await.unwrap();
    r.blobs.put(&m, Bytes::from_static(b"{}")).await.unwrap();
    let done = r.gc(Retention::default(), false).await;
    // (with the bytes of the manifest refused above, unreferenced too)
    let gone = names(&done.blobs);
    assert!(
        gone.contains(&late.to_string()) && gone.contains(&m.to_string()),
        "{gone:?}"
    );
    assert!(!r.has_bytes(&late).await && !r.has_bytes(&m).await);
    match r.meta.link_blob("c/x", &late, 4).await {
        Err(StoreError::Collecting(d)) => assert_eq!(d, late),
        other => panic!("expected Collecting, got {other:?}"),
    }
    let record = ManifestRecord {
        digest: m.clone(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 2,
        artifact_type: None,
        annotations: None,
    };
    let put = r
        .meta
        .put_manifest(&NewManifest {
            repo: "c/x",
            record,
            subject: None,
            tags: &["late"],
            blobs: &[],
            manifests: &[],
        })
        .await;
    assert!(matches!(put, Err(StoreError::Collecting(_))), "{put:?}");
    assert!(r
        .meta
        .manifest_by_tag("c/x", "late")
        .await
        .unwrap()
        .is_none());
}

/// A sweep that lands between a push's first claim and the reference it
/// records (possible when the push outlasts the grace period, e.g. a grace
/// of zero) may delete the bytes the push just wrote: the push must then
/// fail, not record a link or a manifest whose bytes are gone.
async fn a_sweep_between_a_claim_and_its_reference_fails_the_push(db: Db) {
    let r = reg(&db).await;
    // An upload: claimed, bytes committed, then the sweep, then the link.
    let d = Digest::sha256(b"in flight");
    r.meta.claim_blob(&d, 9, false).await.unwrap();
    r.blobs
        .put(&d, Bytes::from_static(b"in flight"))
        .await
        .unwrap();
    let done = r.gc(Retention::default(), false).await;
    assert_eq!(names(&done.blobs), vec![d.to_string()]);
    assert!(!r.has_bytes(&d).await);
    match r.meta.link_blob("c/x", &d, 9).await {
        Err(StoreError::Collecting(_)) => {}
        other => panic!("the link must be refused: {other:?}"),
    }
    assert_eq!(r.meta.blob_in_repo("c/x", &d).await.unwrap(), None);
    // A manifest: its own bytes claimed and written, then the sweep.
    let body = br#"{"schemaVersion":2}"#;
    let m = Digest::sha256(body);
    r.meta
        .claim_blob(&m, body.len() as u64, true)
        .await
        .unwrap();
    r.blobs.put(&m, Bytes::from_static(body)).await.unwrap();
    r.gc(Retention::default(), false).await;
    assert!(!r.has_bytes(&m).await);
    let put = r
        .meta
        .put_manifest(&NewManifest {
            repo: "c/x",
            record: ManifestRecord {
                digest: m.clone(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: body.len() as u64,
                artifact_type: None,
                annotations: None,
            },
            subject: None,
            tags: &["v1"],
            blobs: &[],
            manifests: &[],
        })
        .await;
    match put {
        Err(StoreError::Collecting(_)) => {}
        other => panic!("the manifest must be refused: {other:?}"),
    }
    assert!(r.meta.manifest_by_tag("c/x", "v1").await.unwrap().is_none());
    // Pushed again from the start, both are recorded with their bytes.
    let again = r.blob("c/x", "in flight").await;
    assert!(r.has_bytes(&again).await);
}

on_both!(
    unreachable_manifests_and_blobs_go_and_tagged_ones_stay,
    an_index_keeps_its_children_and_takes_them_when_it_goes,
    retention_keeps_the_newest_tags_and_what_it_protects,
    one_run_at_a_time,
    a_claim_and_a_sweep_never_both_win,
    a_sweep_between_a_claim_and_its_reference_fails_the_push,
);
