//! OCI layout directories: `copy` through them, skopeo and Pavilion reading
//! each other's, and bad layouts refused with clear errors.

use super::support::*;
use crate::common::run::*;
use crate::common::*;
use serde_json::Value;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_through_oci_layouts() {
    let srv = Server::start(Backend::Sqlite).unwrap();
    let a = &srv.addr;
    let tmp = tempfile::tempdir().unwrap();
    // One layer over the in-memory limit (4 MiB), so the ranged path writes it.
    let big = xorshift_bytes((4 << 20) + 1000, 4, 4, 3);
    let image = push_small_image(&srv, "lay/src", "v1", &big).await;
    let index = push_index(&srv, "lay/src", "multi", 5).await;

    let dir = tmp.path().join("layout");
    let out = pv(&[
        "copy",
        &format!("{a}/lay/src:v1"),
        &format!("oci:{}:v1", dir.display()),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(out["digest"], image.as_str());
    assert_eq!(out["blobs_copied"], 2, "{out:#}");
    // The layout is what the image-spec describes.
    let marker: Value =
        serde_json::from_slice(&std::fs::read(dir.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(marker["imageLayoutVersion"], "1.0.0");
    let idx = layout_index(&dir);
    assert_eq!(idx["schemaVersion"], 2);
    assert_eq!(
        layout_entries(&dir),
        [(Some("v1".to_string()), image.clone())]
    );
    assert_eq!(idx["manifests"][0]["mediaType"], OCI_MANIFEST);
    let blobs = layout_blobs(&dir);
    let mut want: Vec<String> = reachable(a, "lay/src", &image)
        .await
        .iter()
        .map(|d| hex_of(d).to_string())
        .collect();
    want.sort();
    assert_eq!(blobs.keys().cloned().collect::<Vec<_>>(), want);
    assert_eq!(blobs[hex_of(&sha256(&big))], big);
    assert_eq!(
        idx["manifests"][0]["size"].as_u64().unwrap() as usize,
        blobs[hex_of(&image)].len()
    );

    // A second tag (an index) in the same layout; without a tag the
    // destination takes the source's.
    pv(&[
        "copy",
        &format!("{a}/lay/src:multi"),
        &format!("oci:{}", dir.display()),
    ])
    .ok();
    let mut entries = layout_entries(&dir);
    entries.sort();
    assert_eq!(
        entries,
        [
            (Some("multi".to_string()), index.clone()),
            (Some("v1".to_string()), image.clone())
        ]
    );

    // Layout -> another repository: the same digests, byte-identical.
    for (tag, digest) in [("v1", &image), ("multi", &index)] {
        let out = pv(&[
            "copy",
            &format!("oci:{}:{tag}", dir.display()),
            &format!("{a}/lay/back:{tag}"),
            "--output",
            "json",
        ])
        .json();
        assert_eq!(out["digest"], digest.as_str());
        assert_eq!(
            manifest_bytes(&format!("{a}/lay/back:{tag}")),
            manifest_bytes(&format!("{a}/lay/src:{tag}"))
        );
    }
    let r = client()
        .get(srv.url(&format!("/v2/lay/back/blobs/{}", sha256(&big))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &big[..]);
    // By digest from the layout, too.
    pv(&[
        "copy",
        &format!("oci:{}@{image}", dir.display()),
        &format!("{a}/lay/bydigest:d"),
    ])
    .ok();
    assert_eq!(
        descriptor(&format!("{a}/lay/bydigest:d"))["digest"],
        image.as_str()
    );

    // Layout -> layout, under a new tag.
    let dir2 = tmp.path().join("layout2");
    let out = pv(&[
        "copy",
        &format!("oci:{}:multi", dir.display()),
        &format!("oci:{}:copied", dir2.display()),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(out["digest"], index.as_str());
    assert_eq!(out["manifests"], 3);
    assert_eq!(out["blobs_copied"], 4);
    assert_eq!(
        layout_entries(&dir2),
        [(Some("copied".to_string()), index.clone())]
    );
    let b1 = layout_blobs(&dir);
    for (hex, bytes) in layout_blobs(&dir2) {
        assert_eq!(b1.get(&hex), Some(&bytes), "{hex} differs between layouts");
    }
    assert_eq!(
        layout_blobs(&dir2).len(),
        7,
        "index, 2 manifests, 2 configs, 2 layers"
    );
    // Copying the same tag again leaves one entry for it.
    pv(&[
        "copy",
        &format!("oci:{}:v1", dir.display()),
        &format!("oci:{}:copied", dir2.display()),
    ])
    .ok();
    assert_eq!(
        layout_entries(&dir2),
        [(Some("copied".to_string()), image.clone())],
        "a tag names one manifest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_and_pavilion_read_each_others_layouts() {
    let srv = Server::start(Backend::Sqlite).unwrap();
    if require_peer("skopeo", have("skopeo")).is_none() {
        return;
    }
    let a = &srv.addr;
    let tmp = tempfile::tempdir().unwrap();
    let layer = xorshift_bytes(250_000, 6, 1, 5);
    let image = push_small_image(&srv, "sk/src", "v1", &layer).await;
    let original = manifest_bytes(&format!("{a}/sk/src:v1"));

    // skopeo reads a layout Pavilion wrote.
    let ours = tmp.path().join("ours");
    pv(&[
        "copy",
        &format!("{a}/sk/src:v1"),
        &format!("oci:{}:v1", ours.display()),
    ])
    .ok();
    tool(Command::new("skopeo").args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", ours.display()),
        &format!("docker://{a}/sk/by-skopeo:v1"),
    ]));
    assert_eq!(
        manifest_bytes(&format!("{a}/sk/by-skopeo:v1")),
        original,
        "skopeo pushed what Pavilion's layout holds"
    );
    let raw = tool(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:v1", ours.display()),
    ]));
    assert_eq!(raw.as_bytes(), &original[..]);

    // Pavilion reads a layout skopeo wrote.
    let theirs = tmp.path().join("theirs");
    tool(Command::new("skopeo").args([
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{a}/sk/src:v1"),
        &format!("oci:{}:v1", theirs.display()),
    ]));
    let out = pv(&[
        "copy",
        &format!("oci:{}:v1", theirs.display()),
        &format!("{a}/sk/from-skopeo:v1"),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(out["digest"], image.as_str());
    assert_eq!(manifest_bytes(&format!("{a}/sk/from-skopeo:v1")), original);
    let r = client()
        .get(srv.url(&format!("/v2/sk/from-skopeo/blobs/{}", sha256(&layer))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &layer[..]);
    // And copies it on into another layout of its own.
    let again = tmp.path().join("again");
    pv(&[
        "copy",
        &format!("oci:{}:v1", theirs.display()),
        &format!("oci:{}:v1", again.display()),
    ])
    .ok();
    assert_eq!(layout_blobs(&again), layout_blobs(&theirs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_layouts_get_clear_errors() {
    let srv = Server::start(Backend::Sqlite).unwrap();
    let a = &srv.addr;
    let tmp = tempfile::tempdir().unwrap();

    // A directory that is not a layout.
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(
        plain.join("index.json"),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    let r = pv(&[
        "copy",
        &format!("oci:{}:v1", plain.display()),
        &format!("{a}/bad/x:v1"),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not an OCI layout"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(
        !plain.join("oci-layout").exists(),
        "the source is left alone"
    );
    // A path that does not exist at all.
    let r = pv(&[
        "copy",
        &format!("oci:{}:v1", tmp.path().join("missing").display()),
        &format!("{a}/bad/x:v1"),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not an OCI layout"), "{}", r.stderr);
    assert!(!tmp.path().join("missing").exists());

    // index.json that is not JSON.
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(broken.join("blobs/sha256")).unwrap();
    std::fs::write(
        broken.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(broken.join("index.json"), b"<html>not json</html>").unwrap();
    let r = pv(&[
        "copy",
        &format!("oci:{}:v1", broken.display()),
        &format!("{a}/bad/x:v1"),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("index.json"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    // As a destination, a broken index.json is not overwritten either.
    push_small_image(&srv, "bad/src", "v1", b"bad layer").await;
    let r = pv(&[
        "copy",
        &format!("{a}/bad/src:v1"),
        &format!("oci:{}:v1", broken.display()),
    ]);
    assert_ne!(r.code, 0);
    assert_eq!(
        std::fs::read(broken.join("index.json")).unwrap(),
        b"<html>not json</html>"
    );

    // Two tags and none named: a usage error.
    let two = tmp.path().join("two");
    for t in ["one", "two"] {
        pv(&[
            "copy",
            &format!("{a}/bad/src:v1"),
            &format!("oci:{}:{t}", two.display()),
        ])
        .ok();
    }
    let err = pv(&[
        "copy",
        &format!("oci:{}", two.display()),
        &format!("{a}/bad/y:v1"),
    ])
    .fails(2)
    .to_string();
    assert!(
        err.contains("oci:PATH:TAG") || err.contains("several"),
        "{err}"
    );
    pv(&["manifest", "get", &format!("{a}/bad/y:v1")]).fails(3);
    // One tag named: fine. An unknown tag: not found.
    pv(&[
        "copy",
        &format!("oci:{}:two", two.display()),
        &format!("{a}/bad/y:v1"),
    ])
    .ok();
    pv(&[
        "copy",
        &format!("oci:{}:three", two.display()),
        &format!("{a}/bad/y:v3"),
    ])
    .fails(3);
    // A malformed layout reference.
    pv(&[
        "copy",
        &format!("oci:{}:bad tag", two.display()),
        &format!("{a}/bad/y:v1"),
    ])
    .fails(2);
}
