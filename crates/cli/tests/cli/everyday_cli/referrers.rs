//! Referrers (`discover`, `copy --recursive`, the tag-schema fallback).

use super::support::*;
use crate::common::run::*;
use crate::common::*;
use serde_json::Value;
use std::path::Path;

/// Pushes, with the CLI only (`blob put`, `manifest put`), a signature
/// referring to `subject` and an attestation referring to the signature.
/// Returns (signature digest, attestation digest).
fn push_referrers(
    registry_repo: &str,
    subject: &str,
    subject_size: usize,
    tmp: &Path,
) -> (String, String) {
    let empty = tmp.join("empty.json");
    std::fs::write(&empty, b"{}").unwrap();
    let sig_payload = tmp.join("sig.bin");
    std::fs::write(&sig_payload, b"a signature over the image").unwrap();
    let att_payload = tmp.join("att.bin");
    std::fs::write(&att_payload, b"an attestation of the signature").unwrap();
    for f in [&empty, &sig_payload, &att_payload] {
        let out = pv(&["blob", "put", registry_repo, s(f)]).ok();
        assert_eq!(out.trim(), sha256(&std::fs::read(f).unwrap()));
    }
    let sig = artifact_manifest(
        SIG_TYPE,
        (&sha256(b"a signature over the image"), 26),
        (OCI_MANIFEST, subject, subject_size),
    );
    let sig_digest = sha256(&sig);
    let sig_file = tmp.join("sig.json");
    std::fs::write(&sig_file, &sig).unwrap();
    let out = pv(&[
        "manifest",
        "put",
        &format!("{registry_repo}@{sig_digest}"),
        s(&sig_file),
    ])
    .ok();
    assert_eq!(out.trim(), sig_digest);
    let att = artifact_manifest(
        ATT_TYPE,
        (&sha256(b"an attestation of the signature"), 31),
        (OCI_MANIFEST, &sig_digest, sig.len()),
    );
    let att_digest = sha256(&att);
    // From standard input this time.
    let out = Cli::default()
        .run_stdin(
            &[
                "manifest",
                "put",
                &format!("{registry_repo}@{att_digest}"),
                "-",
            ],
            Some(&att),
        )
        .ok();
    assert_eq!(out.trim(), att_digest);
    (sig_digest, att_digest)
}

/// Asserts `discover` of `reference` shows exactly sig -> att.
fn assert_referrer_tree(reference: &str, sig: &str, att: &str) {
    let v = pv(&["discover", reference, "--output", "json"]).json();
    let top = v["referrers"].as_array().expect("referrers array");
    assert_eq!(top.len(), 1, "{reference}: one referrer expected: {v:#}");
    assert_eq!(top[0]["digest"], sig, "{v:#}");
    assert_eq!(top[0]["artifactType"], SIG_TYPE, "{v:#}");
    let nested = top[0]["referrers"].as_array().expect("nested referrers");
    assert_eq!(nested.len(), 1, "{v:#}");
    assert_eq!(nested[0]["digest"], att, "{v:#}");
    assert_eq!(nested[0]["artifactType"], ATT_TYPE, "{v:#}");
    assert_eq!(nested[0]["referrers"], serde_json::json!([]), "{v:#}");
    // The text tree names both.
    let text = pv(&["discover", reference]).ok();
    assert!(text.contains(sig) && text.contains(att), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_travel_with_recursive_copies() {
    let srv = Server::start(Backend::Sqlite).unwrap();
    let a = &srv.addr;
    let tmp = tempfile::tempdir().unwrap();
    let image = push_small_image(&srv, "ref/src", "v1", b"image layer").await;
    let image_size = manifest_bytes(&format!("{a}/ref/src:v1")).len();
    let (sig, att) = push_referrers(&format!("{a}/ref/src"), &image, image_size, tmp.path());

    assert_referrer_tree(&format!("{a}/ref/src:v1"), &sig, &att);
    let only = pv(&[
        "discover",
        &format!("{a}/ref/src:v1"),
        "--artifact-type",
        ATT_TYPE,
        "--output",
        "json",
    ])
    .json();
    assert_eq!(
        only["referrers"],
        serde_json::json!([]),
        "the filter applies at the first level"
    );

    // Without -r the referrers stay behind.
    pv(&[
        "copy",
        &format!("{a}/ref/src:v1"),
        &format!("{a}/ref/plain:v1"),
    ])
    .ok();
    let v = pv(&["discover", &format!("{a}/ref/plain:v1"), "--output", "json"]).json();
    assert_eq!(v["referrers"], serde_json::json!([]));

    // Pavilion -> Pavilion.
    let out = pv(&[
        "copy",
        "-r",
        &format!("{a}/ref/src:v1"),
        &format!("{a}/ref/dst:v1"),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(out["digest"], image.as_str());
    assert_eq!(out["referrers"], 2, "{out:#}");
    assert_eq!(out["manifests"], 3, "{out:#}");
    assert_eq!(out["blobs_copied"], 0, "all mounted or present: {out:#}");
    assert_referrer_tree(&format!("{a}/ref/dst:v1"), &sig, &att);
    assert_eq!(
        manifest_bytes(&format!("{a}/ref/dst@{sig}")),
        manifest_bytes(&format!("{a}/ref/src@{sig}"))
    );

    // Pavilion -> layout: referrers listed untagged in index.json.
    let dir = tmp.path().join("layout");
    let out = pv(&[
        "copy",
        "--recursive",
        &format!("{a}/ref/src:v1"),
        &format!("oci:{}:v1", dir.display()),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(out["referrers"], 2, "{out:#}");
    let mut entries = layout_entries(&dir);
    entries.sort();
    let mut want = vec![
        (None, sig.clone()),
        (None, att.clone()),
        (Some("v1".to_string()), image.clone()),
    ];
    want.sort();
    assert_eq!(entries, want);
    let blobs = layout_blobs(&dir);
    for d in [&image, &sig, &att, &sha256(b"{}")] {
        assert!(blobs.contains_key(hex_of(d)), "{d} missing from the layout");
    }
    // Layout -> Pavilion, recursively: the tree comes out of the layout.
    let out = pv(&[
        "copy",
        "-r",
        &format!("oci:{}:v1", dir.display()),
        &format!("{a}/ref/from-layout:v1"),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(out["referrers"], 2, "{out:#}");
    assert_referrer_tree(&format!("{a}/ref/from-layout:v1"), &sig, &att);

    // Pavilion -> Distribution 2.8 (no referrers API): the tag schema.
    let Some(dist) = Distribution::start() else {
        return;
    };
    let d = &dist.addr;
    let out = pv(&[
        "copy",
        "-r",
        &format!("{a}/ref/src:v1"),
        &format!("{d}/ref/dist:v1"),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(out["referrers"], 2, "{out:#}");
    let tags = tags_of(&Cli::default(), &format!("{d}/ref/dist"));
    let image_tag = format!("sha256-{}", hex_of(&image));
    let sig_tag = format!("sha256-{}", hex_of(&sig));
    let mut want = vec![image_tag.clone(), sig_tag.clone(), "v1".to_string()];
    want.sort();
    assert_eq!(tags, want, "the fallback tags of both subjects");
    let fallback: Value =
        serde_json::from_slice(&manifest_bytes(&format!("{d}/ref/dist:{image_tag}"))).unwrap();
    assert_eq!(fallback["mediaType"], OCI_INDEX);
    let listed: Vec<&str> = fallback["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [sig.as_str()]);
    assert_eq!(fallback["manifests"][0]["artifactType"], SIG_TYPE);
    assert_referrer_tree(&format!("{d}/ref/dist:v1"), &sig, &att);
    assert_eq!(
        manifest_bytes(&format!("{d}/ref/dist@{att}")),
        manifest_bytes(&format!("{a}/ref/src@{att}"))
    );
    // Copying again does not list a referrer twice.
    pv(&[
        "copy",
        "-r",
        &format!("{a}/ref/src:v1"),
        &format!("{d}/ref/dist:v1"),
    ])
    .ok();
    let fallback: Value =
        serde_json::from_slice(&manifest_bytes(&format!("{d}/ref/dist:{image_tag}"))).unwrap();
    assert_eq!(
        fallback["manifests"].as_array().unwrap().len(),
        1,
        "{fallback:#}"
    );
    // And from Distribution (tag schema as the source) back into Pavilion.
    let out = pv(&[
        "copy",
        "-r",
        &format!("{d}/ref/dist:v1"),
        &format!("{a}/ref/via-dist:v1"),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(out["referrers"], 2, "{out:#}");
    assert_referrer_tree(&format!("{a}/ref/via-dist:v1"), &sig, &att);
}
