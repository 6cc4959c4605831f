//! What the everyday commands' tests share: the content they push (images,
//! indexes, models, referrers) and reading layouts and registries back.

use crate::common::run::*;
use crate::common::*;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A path as an argument (tests' paths are UTF-8).
pub(super) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The hex part of a sha256 digest (a layout's blob file name).
pub(super) fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

/// The tags of `repo` (a full `HOST/REPO`), via `pavilion tags`.
pub(super) fn tags_of(cli: &Cli, repo: &str) -> Vec<String> {
    let v = cli.run(&["tags", repo, "--output", "json"]).json();
    let mut t: Vec<String> = v["tags"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

/// The exact manifest bytes `pavilion manifest get` prints.
pub(super) fn manifest_bytes(reference: &str) -> Vec<u8> {
    let r = pv(&["manifest", "get", reference]);
    r.ok();
    r.stdout
}

/// `pavilion manifest get --descriptor` as JSON.
pub(super) fn descriptor(reference: &str) -> Value {
    pv(&["manifest", "get", "--descriptor", reference]).json()
}

// ---------------------------------------------------------------- content

/// Pushes a two-platform image index (2 manifests, 2 configs, 2 layers of
/// 200 kB) under `tag`; returns the index digest.
pub(super) async fn push_index(s: &Server, repo: &str, tag: &str, seed: u32) -> String {
    let mut entries = Vec::new();
    for (i, arch) in ["amd64", "arm64"].into_iter().enumerate() {
        let layer = xorshift_bytes(200_000, seed, i as u32, 7);
        let ld = push_blob(s, repo, &layer).await;
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{ld}"]}}}}"#
        );
        let cd = push_blob(s, repo, config.as_bytes()).await;
        let m = image_manifest((&cd, config.len()), &[(&ld, layer.len())], "");
        let md = sha256(&m);
        let r = put_manifest(s, repo, &md, Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        entries.push(format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{md}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
            m.len()
        ));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    );
    let r = put_manifest(s, repo, tag, Some(OCI_INDEX), index.as_bytes()).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    sha256(index.as_bytes())
}

/// Pushes a one-layer image whose config names the layer's diff id (what
/// skopeo expects of an uncompressed layer); returns the manifest digest
/// and the layer bytes.
pub(super) async fn push_small_image(s: &Server, repo: &str, tag: &str, layer: &[u8]) -> String {
    let ld = push_blob(s, repo, layer).await;
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{ld}"]}}}}"#
    );
    let cd = push_blob(s, repo, config.as_bytes()).await;
    let m = image_manifest((&cd, config.len()), &[(&ld, layer.len())], "");
    let r = put_manifest(s, repo, tag, Some(OCI_MANIFEST), &m).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    sha256(&m)
}

/// Makes the tiny model (`common::make_model`) in `tmp/tiny-model` and
/// pushes it to `reference` with `pavilion push` (its cache in
/// `tmp/push-cache`); returns the model's directory and the digest.
pub(super) fn push_tiny_model(cli: &Cli, reference: &str, tmp: &Path) -> (PathBuf, String) {
    let model = tmp.join("tiny-model");
    make_model(&model);
    let v = cli
        .run(&[
            "push",
            reference,
            s(&model),
            "--cache-dir",
            s(&tmp.join("push-cache")),
            "--output",
            "json",
        ])
        .json();
    (model, v["digest"].as_str().unwrap().to_string())
}

/// An artifact manifest (empty config, one layer) referring to `subject`.
pub(super) fn artifact_manifest(
    artifact_type: &str,
    layer: (&str, usize),
    subject: (&str, &str, usize),
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer.0, "size": layer.1}],
        "subject": {"mediaType": subject.0, "digest": subject.1, "size": subject.2},
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }))
    .unwrap()
}

/// The artifact type of the test signatures.
pub(super) const SIG_TYPE: &str = "application/vnd.example.signature";
/// The artifact type of the test attestations (they refer to a signature).
pub(super) const ATT_TYPE: &str = "application/vnd.example.attestation";

/// The parsed `index.json` of a layout.
pub(super) fn layout_index(dir: &Path) -> Value {
    let text = std::fs::read(dir.join("index.json")).expect("index.json");
    serde_json::from_slice(&text).expect("index.json is JSON")
}

/// The `index.json` entries of a layout: (ref.name, digest).
pub(super) fn layout_entries(dir: &Path) -> Vec<(Option<String>, String)> {
    layout_index(dir)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .map(str::to_string),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Blobs of a layout by hex, each checked to hash to its name.
pub(super) fn layout_blobs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(e.path()).unwrap();
        assert_eq!(
            sha256(&bytes),
            format!("sha256:{name}"),
            "layout blob {name} holds other bytes"
        );
        out.insert(name, bytes);
    }
    out
}

/// Every digest a manifest (or index, recursively, via the registry) reaches.
pub(super) async fn reachable(registry: &str, repo: &str, digest: &str) -> Vec<String> {
    let r = client()
        .get(format!("http://{registry}/v2/{repo}/manifests/{digest}"))
        .header("Accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let mut out = vec![digest.to_string()];
    if let Some(ms) = v["manifests"].as_array() {
        for m in ms {
            out.extend(Box::pin(reachable(registry, repo, m["digest"].as_str().unwrap())).await);
        }
    }
    if let Some(c) = v["config"]["digest"].as_str() {
        out.push(c.to_string());
    }
    for l in v["layers"].as_array().into_iter().flatten() {
        out.push(l["digest"].as_str().unwrap().to_string());
    }
    out
}
