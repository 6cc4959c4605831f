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

/// What a quota counts (issue 17, item 4): one repository's bytes, the
/// same number as its usage row; a namespace's, every repository below it
/// together, chosen by name prefix, so `_` in a name is no wildcard and
/// neighbours whose names merely start alike are not counted.
async fn quota_usage_is_one_repository_or_one_namespace(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    assert_eq!(m.repo_bytes("re_s/a").await.unwrap(), 0);
    assert_eq!(m.namespace_bytes("re_s").await.unwrap(), 0);
    let shared = digest(b"shared");
    let sizes = [
        ("re_s/a", 1000),
        ("re_s/a/b", 200),
        ("re_s", 30_000),
        ("rexs/a", 40_000),
        ("re_s-x/a", 50_000),
        ("re_s.x/a", 60_000),
        ("re_s0/a", 70_000),
        ("re_sa/a", 80_000),
    ];
    m.claim_blob(&shared, 5, false).await.unwrap();
    m.claim_blob(&digest(b"m"), 7, true).await.unwrap();
    for (i, (repo, size)) in sizes.iter().enumerate() {
        let own = digest(format!("own {i}").as_bytes());
        m.claim_blob(&own, *size, false).await.unwrap();
        m.link_blob(repo, &own, *size).await.unwrap();
        // One blob every repository holds: each is charged for it.
        m.link_blob(repo, &shared, 5).await.unwrap();
    }
    m.put_manifest(&NewManifest {
        repo: "re_s/a",
        record: ManifestRecord {
            digest: digest(b"m"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 7,
            artifact_type: None,
            annotations: None,
        },
        subject: None,
        tags: &["v1"],
        blobs: std::slice::from_ref(&shared),
        manifests: &[],
    })
    .await
    .unwrap();
    assert_eq!(m.repo_bytes("re_s/a").await.unwrap(), 1000 + 5 + 7);
    let row = m.repo_usage(Some("re_s/a"), None, 1).await.unwrap();
    assert_eq!(row[0].bytes(), m.repo_bytes("re_s/a").await.unwrap());
    assert_eq!(m.repo_bytes("re_s/a/b").await.unwrap(), 205);
    assert_eq!(
        m.namespace_bytes("re_s").await.unwrap(),
        (1000 + 5 + 7) + 205,
        "re_s/a and re_s/a/b, not re_s itself nor its look-alikes"
    );
    assert_eq!(m.namespace_bytes("re_s/a").await.unwrap(), 205);
    assert_eq!(m.namespace_bytes("nothing").await.unwrap(), 0);
}

on_both!(
    repositories_are_charged_for_what_they_hold_and_sharing_is_the_saving,
    quota_usage_is_one_repository_or_one_namespace,
);
