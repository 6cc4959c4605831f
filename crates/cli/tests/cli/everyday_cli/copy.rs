//! `copy` between registries: mounts within Pavilion, Pavilion to CNCF
//! Distribution and back byte for byte, a layer listed twice.

use super::support::*;
use crate::common::run::*;
use crate::common::*;
use serde_json::Value;
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_within_pavilion_mounts_every_blob() {
    let srv = Server::start(Backend::Sqlite).unwrap();
    let a = &srv.addr;
    let index = push_index(&srv, "copy/src", "v1", 1).await;

    let report = pv(&[
        "copy",
        &format!("{a}/copy/src:v1"),
        &format!("{a}/copy/dst:v1"),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(report["digest"], index.as_str(), "{report:#}");
    assert_eq!(report["manifests"], 3, "index + two manifests: {report:#}");
    assert_eq!(
        (
            report["blobs_mounted"].as_u64(),
            report["blobs_copied"].as_u64(),
            report["blobs_skipped"].as_u64(),
            report["bytes"].as_u64(),
        ),
        (Some(4), Some(0), Some(0), Some(0)),
        "within one registry every blob is mounted, none sent: {report:#}"
    );
    assert_eq!(
        manifest_bytes(&format!("{a}/copy/dst:v1")),
        manifest_bytes(&format!("{a}/copy/src:v1")),
        "the index arrives byte-identical"
    );
    // Every manifest and blob is readable in the destination repository.
    for d in reachable(a, "copy/src", &index).await {
        let r = client()
            .get(srv.url(&format!("/v2/copy/dst/blobs/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{d} missing from copy/dst");
        assert_eq!(sha256(&r.bytes().await.unwrap()), d);
    }

    // Again: everything is already there.
    let again = pv(&[
        "copy",
        &format!("{a}/copy/src:v1"),
        &format!("{a}/copy/dst:v2"),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(
        (
            again["blobs_skipped"].as_u64(),
            again["blobs_mounted"].as_u64(),
            again["blobs_copied"].as_u64()
        ),
        (Some(4), Some(0), Some(0)),
        "{again:#}"
    );
    assert_eq!(
        tags_of(&Cli::default(), &format!("{a}/copy/dst")),
        ["v1", "v2"]
    );
    // Text output: the digest on stdout, a summary on stderr.
    let r = pv(&[
        "copy",
        &format!("{a}/copy/src@{index}"),
        &format!("{a}/copy/third:v1"),
    ]);
    assert_eq!(r.ok().trim(), index);
    assert!(r.stderr.contains("mounted"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_pavilion_to_distribution_and_back_is_byte_identical() {
    let srv = Server::start(Backend::Sqlite).unwrap();
    let Some(dist) = Distribution::start() else {
        return;
    };
    let (a, d) = (&srv.addr, &dist.addr);
    let index = push_index(&srv, "img/multi", "v1", 2).await;
    let single =
        push_small_image(&srv, "img/single", "v1", &xorshift_bytes(300_000, 3, 0, 9)).await;
    let original = manifest_bytes(&format!("{a}/img/multi:v1"));

    let out = pv(&[
        "copy",
        &format!("{a}/img/multi:v1"),
        &format!("{d}/mirror/multi:v1"),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(out["digest"], index.as_str());
    assert_eq!(out["manifests"], 3);
    assert_eq!(
        (out["blobs_copied"].as_u64(), out["blobs_mounted"].as_u64()),
        (Some(4), Some(0)),
        "{out:#}"
    );
    assert!(
        out["bytes"].as_u64().unwrap() > 400_000,
        "both layers sent: {out:#}"
    );
    assert_eq!(
        manifest_bytes(&format!("{d}/mirror/multi:v1")),
        original,
        "Distribution serves the index byte-identical"
    );
    assert_eq!(
        descriptor(&format!("{d}/mirror/multi:v1"))["digest"],
        index.as_str()
    );
    // The child manifests too, by digest.
    let children: Value = serde_json::from_slice(&original).unwrap();
    for m in children["manifests"].as_array().unwrap() {
        let md = m["digest"].as_str().unwrap();
        assert_eq!(
            manifest_bytes(&format!("{d}/mirror/multi@{md}")),
            manifest_bytes(&format!("{a}/img/multi@{md}"))
        );
    }

    // And back, into a fresh repository of Pavilion.
    let back = pv(&[
        "copy",
        &format!("{d}/mirror/multi:v1"),
        &format!("{a}/img/returned:v1"),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(back["digest"], index.as_str());
    assert_eq!(back["blobs_copied"], 4, "{back:#}");
    assert_eq!(manifest_bytes(&format!("{a}/img/returned:v1")), original);
    for dg in reachable(a, "img/multi", &index).await {
        let r = client()
            .get(srv.url(&format!("/v2/img/returned/blobs/{dg}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{dg}");
        assert_eq!(sha256(&r.bytes().await.unwrap()), dg);
    }

    // A plain image manifest as well, by tag and then by digest.
    pv(&[
        "copy",
        &format!("{a}/img/single:v1"),
        &format!("{d}/mirror/single:v1"),
    ])
    .ok();
    assert_eq!(
        manifest_bytes(&format!("{d}/mirror/single@{single}")),
        manifest_bytes(&format!("{a}/img/single:v1"))
    );
    assert_eq!(
        tags_of(&Cli::default(), &format!("{d}/mirror/single")),
        ["v1"]
    );
}

/// Pushes an image whose manifest lists each of `layers` twice (as images
/// with repeated empty layers do); returns (digest, distinct blob bytes).
async fn push_repeated_layers(
    s: &Server,
    repo: &str,
    tag: &str,
    layers: &[&[u8]],
) -> (String, u64) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cd = push_blob(s, repo, config).await;
    let mut list = Vec::new();
    let mut distinct = config.len() as u64;
    for l in layers {
        let d = push_blob(s, repo, l).await;
        list.push((d.clone(), l.len()));
        list.push((d, l.len()));
        distinct += l.len() as u64;
    }
    let refs: Vec<(&str, usize)> = list.iter().map(|(d, n)| (d.as_str(), *n)).collect();
    let m = image_manifest((&cd, config.len()), &refs, "");
    let r = put_manifest(s, repo, tag, Some(OCI_MANIFEST), &m).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    (sha256(&m), distinct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_handles_a_layer_listed_twice() {
    let srv = Server::start(Backend::Sqlite).unwrap();
    let a = &srv.addr;
    let tmp = tempfile::tempdir().unwrap();
    let small = xorshift_bytes(600_000, 11, 1, 6);
    let big = xorshift_bytes((4 << 20) + 10, 12, 2, 6);
    let (small_img, small_bytes) = push_repeated_layers(&srv, "dup/img", "small", &[&small]).await;
    let (big_img, big_bytes) = push_repeated_layers(&srv, "dup/img", "big", &[&big]).await;
    // Every step is tried; the failures are reported together.
    let mut problems = Vec::new();
    let mut check = |what: &str, r: Run, digest: &str, distinct: u64, dir: Option<&Path>| {
        if r.code != 0 {
            problems.push(format!("{what}: exit {}: {}", r.code, r.stderr.trim()));
            return false;
        }
        let v: Value = serde_json::from_slice(&r.stdout).unwrap();
        if v["digest"] != digest {
            problems.push(format!("{what}: digest {} != {digest}", v["digest"]));
        }
        if let Some(dir) = dir {
            let blobs = layout_blobs(dir);
            if blobs.len() != 3 {
                problems.push(format!(
                    "{what}: {} blobs in the layout, want 3 (manifest, config, layer)",
                    blobs.len()
                ));
            }
            let strays: Vec<String> = files_of(dir)
                .into_keys()
                .filter(|p| {
                    p.ends_with(".partial") || p.ends_with(".tmp") || p.ends_with(".json.partial")
                })
                .collect();
            if !strays.is_empty() {
                problems.push(format!("{what}: left {strays:?}"));
            }
        }
        if v["bytes"].as_u64() != Some(distinct) {
            problems.push(format!(
                "{what}: sent {} bytes in {} blobs for {distinct} bytes of distinct blobs (each blob should move once)",
                v["bytes"], v["blobs_copied"]
            ));
        }
        true
    };
    // Registry -> layout, through memory (small) and as ranges (big).
    let l_small = tmp.path().join("small");
    let r = pv(&[
        "copy",
        &format!("{a}/dup/img:small"),
        &format!("oci:{}:v1", l_small.display()),
        "--output",
        "json",
    ]);
    let small_ok = check(
        "registry -> layout (600 kB layer twice)",
        r,
        &small_img,
        small_bytes,
        Some(&l_small),
    );
    let l_big = tmp.path().join("big");
    let r = pv(&[
        "copy",
        &format!("{a}/dup/img:big"),
        &format!("oci:{}:v1", l_big.display()),
        "--output",
        "json",
    ]);
    check(
        "registry -> layout (4 MiB layer twice)",
        r,
        &big_img,
        big_bytes,
        Some(&l_big),
    );
    if small_ok {
        // Layout -> layout and layout -> registry.
        let l2 = tmp.path().join("small2");
        let r = pv(&[
            "copy",
            &format!("oci:{}:v1", l_small.display()),
            &format!("oci:{}:v1", l2.display()),
            "--output",
            "json",
        ]);
        check(
            "layout -> layout (600 kB layer twice)",
            r,
            &small_img,
            small_bytes,
            Some(&l2),
        );
        let r = pv(&[
            "copy",
            &format!("oci:{}:v1", l_small.display()),
            &format!("{a}/dup/back:v1"),
            "--output",
            "json",
        ]);
        if check(
            "layout -> registry (600 kB layer twice)",
            r,
            &small_img,
            small_bytes,
            None,
        ) {
            assert_eq!(
                manifest_bytes(&format!("{a}/dup/back:v1")),
                manifest_bytes(&format!("{a}/dup/img:small"))
            );
        }
    }
    assert!(
        problems.is_empty(),
        "copying a manifest that lists a layer twice:\n  {}",
        problems.join("\n  ")
    );
}
