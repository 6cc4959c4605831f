//! Usage through the store: what each repository is charged, what the
//! store keeps, and what sharing saves (issue 17, visibility). On SQLite,
//! and on PostgreSQL when `PAVILION_TEST_POSTGRES_URL` names a cluster.

use pavilion_oci::Digest;
use pavilion_store::{ManifestRecord, MetaStore, NewManifest};

#[macro_use]
mod common;
use common::{postgres, sqlite, Db};

fn digest(data: &[u8]) -> Digest {
    Digest::compute(pavilion_oci::digest::Algorithm::Sha256, data)
}

async fn repositories_are_charged_for_what_they_hold_and_sharing_is_the_saving(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    let t = m.usage_totals().await.unwrap();
    assert_eq!(
        (t.stored_blobs, t.charged_bytes, t.dedup_saving_bytes),
        (0, 0, 0)
    );
    let (big, small) = (digest(b"big"), digest(b"small"));
    // One 1000-byte blob in two repositories, a 10-byte one in one
    // (each claimed first, as the registry does before writing bytes).
    m.claim_blob(&big, 1000, false).await.unwrap();
    m.claim_blob(&small, 10, false).await.unwrap();
    m.link_blob("a/one", &big, 1000).await.unwrap();
    m.link_blob("b/two", &big, 1000).await.unwrap();
    m.link_blob("b/two", &small, 10).await.unwrap();
    let manifest = digest(b"manifest");
    m.claim_blob(&manifest, 100, true).await.unwrap();
    for repo in ["a/one", "b/two"] {
        m.put_manifest(&NewManifest {
            repo,
            record: ManifestRecord {
                digest: manifest.clone(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 100,
                artifact_type: None,
                annotations: None,
            },
            subject: None,
            tags: &["v1"],
            blobs: &[],
            manifests: &[],
        })
        .await
        .unwrap();
    }
    let all = m.repo_usage(None, None, 100).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (
            all[0].name.as_str(),
            all[0].blob_bytes,
            all[0].manifest_bytes
        ),
        ("a/one", 1000, 100)
    );
    assert_eq!(
        (all[1].name.as_str(), all[1].blobs, all[1].bytes()),
        ("b/two", 2, 1110)
    );
    // Paging, one repository, an unknown one.
    let page = m.repo_usage(None, Some("a/one"), 100).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].name, "b/two");
    assert_eq!(m.repo_usage(None, None, 1).await.unwrap().len(), 1);
    assert_eq!(
        m.repo_usage(Some("a/one"), None, 100).await.unwrap().len(),
        1
    );
    assert!(m
        .repo_usage(Some("nope"), None, 100)
        .await
        .unwrap()
        .is_empty());
    let t = m.usage_totals().await.unwrap();
    assert_eq!((t.stored_blobs, t.stored_blob_bytes), (2, 1010));
    assert_eq!((t.stored_manifests, t.stored_manifest_bytes), (1, 100));
    assert_eq!(t.charged_bytes, 1000 + 1000 + 10 + 100 + 100);
    assert_eq!(t.dedup_saving_bytes, 1000 + 100);
}

on_both!(repositories_are_charged_for_what_they_hold_and_sharing_is_the_saving);
