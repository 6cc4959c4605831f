//! What a repository browser lists, through the store: repositories found
//! by a part of their name (wildcards taken literally), their counts and
//! times; a repository's tags with the bytes each names and its
//! signatures; and decisions by subject. On SQLite, and on PostgreSQL when
//! `PAVILION_TEST_POSTGRES_URL` names a cluster.

use pavilion_oci::Digest;
use pavilion_store::{DecisionQuery, ManifestRecord, MetaStore, NewDecision, NewManifest};

#[macro_use]
mod common;
use common::{postgres, sqlite, Db};

const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SIGNATURE: &str = "application/vnd.cncf.notary.signature";

fn digest(data: &[u8]) -> Digest {
    Digest::compute(pavilion_oci::digest::Algorithm::Sha256, data)
}

/// A blob of `size` bytes named by `seed`, linked to `repo`.
async fn blob(m: &MetaStore, repo: &str, seed: &str, size: u64) -> Digest {
    let d = digest(seed.as_bytes());
    m.claim_blob(&d, size, false).await.unwrap();
    m.link_blob(repo, &d, size).await.unwrap();
    d
}

/// Records a manifest of `size` bytes named by `seed` in `repo`.
#[allow(clippy::too_many_arguments)]
async fn manifest(
    m: &MetaStore,
    repo: &str,
    seed: &str,
    size: u64,
    media_type: &str,
    artifact_type: Option<&str>,
    subject: Option<&Digest>,
    tags: &[&str],
    blobs: &[Digest],
    children: &[Digest],
) -> Digest {
    let d = digest(seed.as_bytes());
    m.claim_blob(&d, size, true).await.unwrap();
    m.put_manifest(&NewManifest {
        repo,
        record: ManifestRecord {
            digest: d.clone(),
            media_type: media_type.into(),
            size,
            artifact_type: artifact_type.map(str::to_string),
            annotations: None,
        },
        subject: subject.cloned(),
        tags,
        blobs,
        manifests: children,
    })
    .await
    .unwrap();
    d
}

async fn names(m: &MetaStore, q: &str, last: Option<&str>, n: i64) -> Vec<String> {
    m.search_repositories(q, last, n)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect()
}

async fn repositories_match_a_literal_part_of_their_name(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    // The store takes names as given; the registry only ever passes valid
    // (lowercase) ones, but `%`, `_`, `\` and `!` must match only
    // themselves whatever is stored.
    for name in ["a_b", "axb", "x%y", "x\\y", "x!y", "team/model", "zzz"] {
        blob(&m, name, &format!("b-{name}"), 1).await;
    }
    assert_eq!(names(&m, "a_b", None, 100).await, ["a_b"]);
    assert_eq!(names(&m, "_", None, 100).await, ["a_b"]);
    assert_eq!(names(&m, "%", None, 100).await, ["x%y"]);
    assert_eq!(names(&m, "\\", None, 100).await, ["x\\y"]);
    assert_eq!(names(&m, "!", None, 100).await, ["x!y"]);
    assert_eq!(names(&m, "TEAM/M", None, 100).await, ["team/model"]);
    assert_eq!(names(&m, "nothing", None, 100).await, Vec::<String>::new());
    // Byte order, after `last`, at most `n`.
    let all = names(&m, "", None, 100).await;
    assert_eq!(
        all,
        ["a_b", "axb", "team/model", "x!y", "x%y", "x\\y", "zzz"]
    );
    assert_eq!(names(&m, "", Some("axb"), 2).await, ["team/model", "x!y"]);
    assert_eq!(names(&m, "x", Some("x!y"), 100).await, ["x%y", "x\\y"]);
    // Counts and the newest change; a repository of blobs only has none.
    let cfg = blob(&m, "team/model", "cfg", 10).await;
    let v1 = manifest(
        &m,
        "team/model",
        "m1",
        100,
        IMAGE,
        None,
        None,
        &["v1", "latest"],
        std::slice::from_ref(&cfg),
        &[],
    )
    .await;
    manifest(
        &m,
        "team/model",
        "m2",
        100,
        IMAGE,
        None,
        None,
        &[],
        &[cfg],
        &[],
    )
    .await;
    manifest(
        &m,
        "team/model",
        "sig",
        50,
        IMAGE,
        Some(SIGNATURE),
        Some(&v1),
        &[],
        &[],
        &[],
    )
    .await;
    let rows = m.search_repositories("team", None, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].tags, rows[0].manifests), (2, 3));
    let at = rows[0].updated_at.expect("a time");
    assert!((pavilion_store::now_millis() - at).abs() < 60_000, "{at}");
    let zzz = m.search_repositories("zzz", None, 10).await.unwrap();
    assert_eq!(
        (zzz[0].tags, zzz[0].manifests, zzz[0].updated_at),
        (0, 0, None)
    );
}

async fn tags_carry_what_they_name(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    let r = "team/app";
    let (cfg, shared, amd, arm) = (
        blob(&m, r, "cfg", 10).await,
        blob(&m, r, "shared", 1000).await,
        blob(&m, r, "amd", 200).await,
        blob(&m, r, "arm", 300).await,
    );
    let a = manifest(
        &m,
        r,
        "a",
        100,
        IMAGE,
        None,
        None,
        &["amd64"],
        &[cfg.clone(), shared.clone(), amd],
        &[],
    )
    .await;
    let b = manifest(
        &m,
        r,
        "b",
        110,
        IMAGE,
        None,
        None,
        &[],
        &[cfg, shared, arm],
        &[],
    )
    .await;
    // The index: its own bytes, both children, and each distinct blob once
    // (the config and the shared layer are counted once).
    let idx = manifest(
        &m,
        r,
        "idx",
        50,
        INDEX,
        None,
        None,
        &["multi"],
        &[],
        &[a.clone(), b],
    )
    .await;
    // Two signatures of the index, one other referrer.
    let ecfg = blob(&m, r, "{}", 2).await;
    for (seed, t) in [
        ("s1", SIGNATURE),
        ("s2", SIGNATURE),
        ("sbom", "application/spdx+json"),
    ] {
        manifest(
            &m,
            r,
            seed,
            40,
            IMAGE,
            Some(t),
            Some(&idx),
            &[],
            std::slice::from_ref(&ecfg),
            &[],
        )
        .await;
    }
    let tags = m.tag_summaries(r, None, 10, SIGNATURE).await.unwrap();
    let got: Vec<_> = tags
        .iter()
        .map(|t| (t.tag.as_str(), t.size, t.total_size, t.signatures))
        .collect();
    assert_eq!(
        got,
        [
            ("amd64", 100, Some(100 + 10 + 1000 + 200), 0),
            ("multi", 50, Some(50 + 100 + 110 + 10 + 1000 + 200 + 300), 2),
        ]
    );
    assert_eq!(tags[1].digest, idx.to_string());
    assert_eq!(tags[1].media_type, INDEX);
    assert_eq!(tags[0].artifact_type, None);
    assert!(tags[0].pushed_at > 0);
    // Paging.
    let page = m
        .tag_summaries(r, Some("amd64"), 1, SIGNATURE)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].tag, "multi");
    assert!(m
        .tag_summaries(r, Some("multi"), 10, SIGNATURE)
        .await
        .unwrap()
        .is_empty());
    assert!(m
        .tag_summaries("nope", None, 10, SIGNATURE)
        .await
        .unwrap()
        .is_empty());
}

async fn decisions_by_subject(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    for (subject, allowed) in [
        ("r@sha256:1", false),
        ("r@sha256:2", true),
        ("r@sha256:1", true),
    ] {
        m.record_decision(&NewDecision {
            point: "push",
            repository: Some("r"),
            subject,
            allowed,
            deny: &[],
            warn: &[],
            detail: &serde_json::Value::Null,
            actor: None,
            traceparent: None,
        })
        .await
        .unwrap();
    }
    let q = |subject: &str, n| DecisionQuery {
        subject: Some(subject.to_string()),
        point: Some("push".into()),
        n,
        ..Default::default()
    };
    let one = m.decisions(&q("r@sha256:1", 10)).await.unwrap();
    let got: Vec<_> = one
        .iter()
        .map(|d| (d.subject.as_str(), d.allowed))
        .collect();
    assert_eq!(got, [("r@sha256:1", true), ("r@sha256:1", false)]);
    let latest = m.decisions(&q("r@sha256:1", 1)).await.unwrap();
    assert!(latest[0].allowed);
    assert!(m.decisions(&q("r@sha256", 10)).await.unwrap().is_empty());
}

on_both!(
    repositories_match_a_literal_part_of_their_name,
    tags_carry_what_they_name,
    decisions_by_subject,
);
