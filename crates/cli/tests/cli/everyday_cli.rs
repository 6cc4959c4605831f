use crate::common::run::*;
use crate::common::*;

// The everyday commands as a user runs them, end to end through the real
// binary against real registries (Pavilion, CNCF Distribution 2.8, with and
// without htpasswd) and OCI layout directories, with skopeo as a peer:
// `copy` (mounts, layouts, `--recursive` referrers and the tag-schema
// fallback), `tag`/`tags`/`repos`, `manifest`, `blob`, `discover`, `ls`,
// `inspect`, `login`/`logout` (inline and through a credential helper), the
// pull content cache, and the exit codes that tell failures apart.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs an external tool (skopeo, htpasswd), bounded in time; returns stdout.
fn tool(cmd: &mut Command) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

/// The tags of `repo` (a full `HOST/REPO`), via `pavilion tags`.
fn tags_of(cli: &Cli, repo: &str) -> Vec<String> {
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
fn manifest_bytes(reference: &str) -> Vec<u8> {
    let r = pv(&["manifest", "get", reference]);
    r.ok();
    r.stdout
}

/// `pavilion manifest get --descriptor` as JSON.
fn descriptor(reference: &str) -> Value {
    pv(&["manifest", "get", "--descriptor", reference]).json()
}

// ---------------------------------------------------------------- content

/// Pushes a two-platform image index (2 manifests, 2 configs, 2 layers of
/// 200 kB) under `tag`; returns the index digest.
async fn push_index(s: &Server, repo: &str, tag: &str, seed: u32) -> String {
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
async fn push_small_image(s: &Server, repo: &str, tag: &str, layer: &[u8]) -> String {
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

/// A small model directory (as in model_cli.rs): a 1 MiB safetensors
/// weight, configs, code and docs.
fn make_model(dir: &Path) {
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    let header = br#"{"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[512,1024],"data_offsets":[0,1048576]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend(xorshift_bytes(1 << 20, 5, 1, 11));
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
    std::fs::write(dir.join("config.json"), br#"{"model_type":"tiny"}"#).unwrap();
    std::fs::write(dir.join("tokenizer.json"), br#"{"v":1}"#).unwrap();
    std::fs::write(dir.join("README.md"), b"# tiny\n").unwrap();
    std::fs::write(dir.join("scripts/run.py"), b"print('hi')\n").unwrap();
}

/// Every regular file under `dir` (relative path -> bytes).
fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Asserts `dir` holds exactly `expected` (names, then bytes), printing
/// names and digests rather than bytes when it does not.
fn assert_files(dir: &Path, expected: &BTreeMap<String, Vec<u8>>, what: &str) {
    let got = files_of(dir);
    let show = |m: &BTreeMap<String, Vec<u8>>| -> Vec<String> {
        m.iter()
            .map(|(k, v)| format!("{k} ({} bytes, {})", v.len(), sha256(v)))
            .collect()
    };
    assert!(
        got == *expected,
        "{what}: {} holds\n  {:?}\nexpected\n  {:?}",
        dir.display(),
        show(&got),
        show(expected)
    );
}

/// Pushes `model` to `reference` with `pavilion push`; returns the digest.
fn push_model(cli: &Cli, reference: &str, model: &Path, cache: &Path) -> String {
    let v = cli
        .run(&[
            "push",
            reference,
            s(model),
            "--cache-dir",
            s(cache),
            "--output",
            "json",
        ])
        .json();
    v["digest"].as_str().unwrap().to_string()
}

/// An artifact manifest (empty config, one layer) referring to `subject`.
fn artifact_manifest(
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

const SIG_TYPE: &str = "application/vnd.example.signature";
const ATT_TYPE: &str = "application/vnd.example.attestation";

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

/// The parsed `index.json` of a layout.
fn layout_index(dir: &Path) -> Value {
    let text = std::fs::read(dir.join("index.json")).expect("index.json");
    serde_json::from_slice(&text).expect("index.json is JSON")
}

/// The `index.json` entries of a layout: (ref.name, digest).
fn layout_entries(dir: &Path) -> Vec<(Option<String>, String)> {
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
fn layout_blobs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
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
async fn reachable(registry: &str, repo: &str, digest: &str) -> Vec<String> {
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

// ---------------------------------------------------------------- 1. copy between registries

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_follow_every_page() {
    let srv = Server::start_with(Backend::Sqlite, &["--max-page", "3"]).unwrap();
    let a = &srv.addr;
    let tmp = tempfile::tempdir().unwrap();
    let image = push_small_image(&srv, "paged/img", "v0", b"paged layer").await;
    let mut args = vec!["tag".to_string(), format!("{a}/paged/img:v0")];
    args.extend((1..=9).map(|i| format!("t{i:02}")));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    pv(&argv).ok();
    let mut want: Vec<String> = (1..=9).map(|i| format!("t{i:02}")).collect();
    want.push("v0".into());
    want.sort();
    assert_eq!(
        tags_of(&Cli::default(), &format!("{a}/paged/img")),
        want,
        "10 tags over 4 pages"
    );
    for i in 0..7 {
        pv(&[
            "copy",
            &format!("{a}/paged/img:v0"),
            &format!("{a}/paged/r{i}:v0"),
        ])
        .ok();
    }
    let v = pv(&["repos", a, "--output", "json"]).json();
    let mut repos: Vec<String> = (0..7).map(|i| format!("paged/r{i}")).collect();
    repos.push("paged/img".into());
    repos.sort();
    assert_eq!(
        v["repositories"],
        serde_json::json!(repos),
        "8 repositories over 3 pages"
    );
    // Seven referrers: three pages of the referrers API.
    std::fs::write(tmp.path().join("empty"), b"{}").unwrap();
    pv(&[
        "blob",
        "put",
        &format!("{a}/paged/img"),
        s(&tmp.path().join("empty")),
    ])
    .ok();
    let size = manifest_bytes(&format!("{a}/paged/img:v0")).len();
    let mut sigs = Vec::new();
    for i in 0..7 {
        let payload = format!("signature {i}");
        let f = tmp.path().join(format!("p{i}"));
        std::fs::write(&f, &payload).unwrap();
        pv(&["blob", "put", &format!("{a}/paged/img"), s(&f)]).ok();
        let m = artifact_manifest(
            SIG_TYPE,
            (&sha256(payload.as_bytes()), payload.len()),
            (OCI_MANIFEST, &image, size),
        );
        let mf = tmp.path().join(format!("m{i}.json"));
        std::fs::write(&mf, &m).unwrap();
        pv(&[
            "manifest",
            "put",
            &format!("{a}/paged/img@{}", sha256(&m)),
            s(&mf),
        ])
        .ok();
        sigs.push(sha256(&m));
    }
    sigs.sort();
    let v = pv(&["discover", &format!("{a}/paged/img:v0"), "--output", "json"]).json();
    let mut listed: Vec<String> = v["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, sigs, "every referrer, from every page");
    // And a recursive copy carries all seven.
    let out = pv(&[
        "copy",
        "-r",
        &format!("{a}/paged/img:v0"),
        &format!("{a}/paged/copy:v0"),
        "--output",
        "json",
    ])
    .json();
    assert_eq!(out["referrers"], 7, "{out:#}");
}

// ---------------------------------------------------------------- 2. OCI layouts

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

// ---------------------------------------------------------------- 3. referrers

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

// ---------------------------------------------------------------- 4. small commands

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_repos_manifests_blobs_ls_and_inspect() {
    let srv = Server::start(Backend::Sqlite).unwrap();
    let a = &srv.addr;
    let tmp = tempfile::tempdir().unwrap();
    let cli = Cli::default();
    let model = tmp.path().join("tiny-model");
    make_model(&model);
    let digest = push_model(
        &cli,
        &format!("{a}/team/tiny:v1"),
        &model,
        &tmp.path().join("c"),
    );

    // tag / tags
    let out = pv(&["tag", &format!("{a}/team/tiny:v1"), "stable", "latest"]).ok();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("{a}/team/tiny:stable"),
            format!("{a}/team/tiny:latest")
        ]
    );
    let v = pv(&[
        "tag",
        &format!("{a}/team/tiny@{digest}"),
        "rc1",
        "--output",
        "json",
    ])
    .json();
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(
        tags_of(&cli, &format!("{a}/team/tiny")),
        ["latest", "rc1", "stable", "v1"]
    );
    for t in ["latest", "rc1", "stable"] {
        assert_eq!(
            descriptor(&format!("{a}/team/tiny:{t}"))["digest"],
            digest.as_str()
        );
    }
    let text = pv(&["tags", &format!("{a}/team/tiny")]).ok();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, ["latest", "rc1", "stable", "v1"]);
    pv(&["tag", &format!("{a}/team/tiny:v1"), "bad tag!"]).fails(2);

    // repos
    push_small_image(&srv, "other/img", "x", b"x").await;
    let v = pv(&["repos", a, "--output", "json"]).json();
    assert_eq!(
        v["repositories"],
        serde_json::json!(["other/img", "team/tiny"])
    );
    assert_eq!(
        pv(&["repos", a]).ok().lines().collect::<Vec<_>>(),
        ["other/img", "team/tiny"]
    );

    // manifest get: body and descriptor
    let body = manifest_bytes(&format!("{a}/team/tiny:v1"));
    assert_eq!(sha256(&body), digest);
    let d = descriptor(&format!("{a}/team/tiny:stable"));
    assert_eq!(d["mediaType"], OCI_MANIFEST);
    assert_eq!(d["digest"], digest.as_str());
    assert_eq!(d["size"].as_u64().unwrap() as usize, body.len());
    assert_eq!(manifest_bytes(&format!("{a}/team/tiny@{digest}")), body);

    // ls
    let v = pv(&["ls", &format!("{a}/team/tiny:v1"), "--output", "json"]).json();
    let mut listed: Vec<(String, u64, String)> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["size"].as_u64().unwrap(),
                f["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    let expected: Vec<(String, u64, String)> = files_of(&model)
        .into_iter()
        .map(|(p, b)| (p, b.len() as u64, sha256(&b)))
        .collect();
    assert_eq!(
        listed, expected,
        "ls names every file with its size and digest"
    );
    let text = pv(&["ls", &format!("{a}/team/tiny:v1")]).ok();
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "{}\tmodel.safetensors\t",
            std::fs::metadata(model.join("model.safetensors"))
                .unwrap()
                .len()
        ))),
        "{text}"
    );

    // inspect
    let v = pv(&["inspect", &format!("{a}/team/tiny:v1"), "--output", "json"]).json();
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(
        v["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(v["layers"], 5);
    assert_eq!(
        v["size"].as_u64().unwrap(),
        expected.iter().map(|e| e.1).sum::<u64>()
    );
    assert_eq!(v["config"]["descriptor"]["name"], "tiny-model");
    assert_eq!(v["config"]["config"]["format"], "safetensors");
    assert_eq!(v["subject"], Value::Null);
    let text = pv(&["inspect", &format!("{a}/team/tiny:v1")]).ok();
    assert!(text.contains(&digest), "{text}");
    assert!(text.contains("tiny-model"), "{text}");
    assert!(text.contains("safetensors"), "{text}");

    // blob put / get (file and stdout) / delete
    let data = xorshift_bytes(3 << 20, 7, 7, 1);
    let f = tmp.path().join("blob.bin");
    std::fs::write(&f, &data).unwrap();
    let v = pv(&[
        "blob",
        "put",
        &format!("{a}/team/blobs"),
        s(&f),
        "--output",
        "json",
    ])
    .json();
    let bd = sha256(&data);
    assert_eq!(v["digest"], bd.as_str());
    assert_eq!(v["size"].as_u64().unwrap() as usize, data.len());
    let got = tmp.path().join("got.bin");
    pv(&[
        "blob",
        "get",
        &format!("{a}/team/blobs@{bd}"),
        "-o",
        s(&got),
        "--concurrency",
        "3",
    ])
    .ok();
    assert_eq!(std::fs::read(&got).unwrap(), data);
    let r = pv(&["blob", "get", &format!("{a}/team/blobs@{bd}")]);
    r.ok();
    assert_eq!(r.stdout, data, "blob get to stdout");
    let r = pv(&["blob", "get", &format!("{a}/team/blobs@{bd}"), "-o", "-"]);
    r.ok();
    assert_eq!(r.stdout, data, "blob get -o -");
    // From standard input.
    let out = Cli::default()
        .run_stdin(
            &["blob", "put", &format!("{a}/team/blobs"), "-"],
            Some(b"stdin bytes"),
        )
        .ok();
    assert_eq!(out.trim(), sha256(b"stdin bytes"));
    assert_eq!(
        pv(&[
            "blob",
            "get",
            &format!("{a}/team/blobs@{}", sha256(b"stdin bytes"))
        ])
        .stdout,
        b"stdin bytes"
    );
    pv(&["blob", "delete", &format!("{a}/team/blobs@{bd}")]).ok();
    assert_blob_absent(&srv, "team/blobs", &bd).await;
    pv(&["blob", "get", &format!("{a}/team/blobs@{bd}")]).fails(3);
    let gone = tmp.path().join("gone.bin");
    pv(&[
        "blob",
        "get",
        &format!("{a}/team/blobs@{bd}"),
        "-o",
        s(&gone),
    ])
    .fails(3);
    assert!(!gone.exists());

    // manifest delete by tag: the manifest and every tag naming it go.
    pv(&["manifest", "delete", &format!("{a}/team/tiny:stable")]).ok();
    pv(&["manifest", "get", &format!("{a}/team/tiny@{digest}")]).fails(3);
    pv(&["manifest", "get", &format!("{a}/team/tiny:v1")]).fails(3);
    let left = tags_of(&cli, &format!("{a}/team/tiny"));
    assert!(left.is_empty(), "{left:?}");
    pv(&["manifest", "delete", &format!("{a}/team/tiny@{digest}")]).fails(3);
}

// ---------------------------------------------------------------- 5. pull cache

/// `files[].source` of a `pull --output json`, by path.
fn sources(v: &Value) -> BTreeMap<String, String> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn all(names: &BTreeMap<String, Vec<u8>>, source: &str) -> BTreeMap<String, String> {
    names
        .keys()
        .map(|k| (k.clone(), source.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_cache_places_files_and_never_hands_out_altered_bytes() {
    use std::os::unix::fs::MetadataExt;
    let srv = Server::start(Backend::Sqlite).unwrap();
    let a = &srv.addr;
    let tmp = tempfile::tempdir().unwrap();
    let cli = Cli::default();
    let model = tmp.path().join("tiny-model");
    make_model(&model);
    let reference = format!("{a}/cache/tiny:v1");
    push_model(&cli, &reference, &model, &tmp.path().join("push-cache"));
    let expected = files_of(&model);
    let cache = tmp.path().join("cache");
    let pull = |dir: &Path| {
        pv(&[
            "pull",
            &reference,
            "-o",
            s(dir),
            "--cache-dir",
            s(&cache),
            "--output",
            "json",
        ])
        .json()
    };

    let (da, db, dd) = (
        tmp.path().join("A"),
        tmp.path().join("B"),
        tmp.path().join("D"),
    );
    let v = pull(&da);
    assert_eq!(sources(&v), all(&expected, "registry"), "{v:#}");
    assert_files(&da, &expected, "first pull");
    let weight_hex = sha256(&expected["model.safetensors"]);
    let cached = cache.join("blobs/sha256").join(hex_of(&weight_hex));
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        expected["model.safetensors"],
        "the cache holds the verified blob"
    );

    let v = pull(&db);
    assert_eq!(sources(&v), all(&expected, "cache"), "{v:#}");
    assert_files(&db, &expected, "placed from the cache");
    let placed = std::fs::metadata(db.join("model.safetensors")).unwrap();
    let in_cache = std::fs::metadata(&cached).unwrap();
    // Hardlinked (same inode) or reflinked (own inode, same bytes, checked above).
    eprintln!(
        "placement: {}",
        if placed.ino() == in_cache.ino() {
            "hardlink"
        } else {
            "reflink/copy"
        }
    );

    let v = pull(&db);
    assert_eq!(sources(&v), all(&expected, "present"), "{v:#}");
    assert_files(&db, &expected, "already present");

    // Alter B's weight in place (same size): through a hardlink this also
    // alters the cache's copy.
    std::thread::sleep(Duration::from_millis(20));
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(db.join("model.safetensors"))
            .unwrap();
        f.write_all_at(b"TAMPERED", 4096).unwrap();
        f.sync_all().unwrap();
    }
    assert_ne!(
        std::fs::read(db.join("model.safetensors")).unwrap(),
        expected["model.safetensors"]
    );

    let v = pull(&dd);
    assert_files(&dd, &expected, "D must get the correct bytes");
    let src = sources(&v);
    assert_eq!(src["model.safetensors"], "registry", "{v:#}");
    for (p, how) in &src {
        if p != "model.safetensors" {
            assert_eq!(how, "cache", "{p}: {v:#}");
        }
    }
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        expected["model.safetensors"],
        "the cache holds correct bytes again"
    );
    // Pulling into B again repairs the altered file; A (which may share the
    // altered inode) is repaired the same way, never reported present.
    for dir in [&db, &da] {
        let v = pull(dir);
        assert_ne!(sources(&v)["model.safetensors"], "present", "{v:#}");
        assert_files(dir, &expected, "repaired by a new pull");
    }

    // --no-cache: the cache is not read, everything is downloaded.
    let nc = tmp.path().join("nocache");
    let v = pv(&[
        "pull",
        &reference,
        "-o",
        s(&nc),
        "--no-cache",
        "--output",
        "json",
    ])
    .json();
    assert_eq!(sources(&v), all(&expected, "registry"), "{v:#}");
    assert_files(&nc, &expected, "--no-cache");

    // The same directory named by a relative path: still only the model's
    // files in it afterwards, all with the right bytes.
    let rel = Cli {
        cwd: Some(tmp.path().to_path_buf()),
        ..Default::default()
    };
    let v = rel
        .run(&[
            "pull",
            &reference,
            "-o",
            "B",
            "--cache-dir",
            s(&cache),
            "--output",
            "json",
        ])
        .json();
    assert_eq!(sources(&v).len(), expected.len(), "{v:#}");
    assert_files(
        &db,
        &expected,
        &format!("pulling into B by a relative path ({v})"),
    );
}

// ---------------------------------------------------------------- 6. login / logout

/// A bcrypt htpasswd file for `user`:`pass`.
fn htpasswd_file(dir: &Path, user: &str, pass: &str) -> PathBuf {
    let line = tool(Command::new("htpasswd").args(["-Bbn", user, pass]));
    let p = dir.join("htpasswd");
    std::fs::write(&p, line.trim()).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_logout_against_distribution_with_htpasswd() {
    if require_peer("htpasswd (apache2-utils)", have("htpasswd")).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let htpasswd = htpasswd_file(tmp.path(), "alice", "s3cret pw");
    let Some(dist) = Distribution::start_with_htpasswd(Some(&htpasswd)) else {
        return;
    };
    let d = &dist.addr;
    let config_dir = tmp.path().join("docker");
    let cli = Cli::with_config(&config_dir);
    let config = config_dir.join("config.json");

    // Anonymous access is refused as an authentication failure.
    cli.run(&["tags", &format!("{d}/auth/tiny")]).fails(6);

    // Other settings in config.json survive every change.
    std::fs::create_dir_all(&config_dir).unwrap();
    let before = r#"{"auths":{"other.example:5000":{"auth":"dTpw"}},"psFormat":"table"}"#;
    std::fs::write(&config, before).unwrap();
    let err = cli
        .run(&["login", d, "-u", "alice", "-p", "wrong"])
        .fails(6)
        .to_string();
    assert!(!err.contains("wrong"), "the password is not echoed: {err}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        before,
        "a failed login writes nothing"
    );
    cli.run(&["login", d, "-u", "bob", "-p", "s3cret pw"])
        .fails(6);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);

    // The right password, from standard input.
    let r = cli.run_stdin(
        &["login", d, "-u", "alice", "--password-stdin"],
        Some(b"s3cret pw\n"),
    );
    r.ok();
    assert!(r.stderr.contains("Login Succeeded"), "{}", r.stderr);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(v["psFormat"], "table");
    assert_eq!(v["auths"]["other.example:5000"]["auth"], "dTpw");
    assert_eq!(
        v["auths"][d.as_str()]["auth"],
        base64(b"alice:s3cret pw").as_str()
    );

    // Push, pull, tags, copy with the saved credential.
    let model = tmp.path().join("tiny-model");
    make_model(&model);
    let digest = push_model(
        &cli,
        &format!("{d}/auth/tiny:v1"),
        &model,
        &tmp.path().join("c"),
    );
    assert_eq!(tags_of(&cli, &format!("{d}/auth/tiny")), ["v1"]);
    let v = cli.run(&["repos", d, "--output", "json"]).json();
    assert_eq!(v["repositories"], serde_json::json!(["auth/tiny"]));
    let out = tmp.path().join("pulled");
    cli.run(&[
        "pull",
        &format!("{d}/auth/tiny:v1"),
        "-o",
        s(&out),
        "--no-cache",
    ])
    .ok();
    assert_eq!(files_of(&out), files_of(&model));
    let layout = tmp.path().join("layout");
    let v = cli
        .run(&[
            "copy",
            &format!("{d}/auth/tiny:v1"),
            &format!("oci:{}:v1", layout.display()),
            "--output",
            "json",
        ])
        .json();
    assert_eq!(v["digest"], digest.as_str());
    // Without the config, the same pull is refused.
    pv(&["manifest", "get", &format!("{d}/auth/tiny:v1")]).fails(6);

    // Logout removes only this registry's entry; then access fails again.
    cli.run(&["logout", d]).ok();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert!(v["auths"].get(d.as_str()).is_none(), "{v:#}");
    assert_eq!(v["auths"]["other.example:5000"]["auth"], "dTpw");
    assert_eq!(v["psFormat"], "table");
    cli.run(&["tags", &format!("{d}/auth/tiny")]).fails(6);
    cli.run(&[
        "pull",
        &format!("{d}/auth/tiny:v1"),
        "-o",
        s(&out),
        "--no-cache",
    ])
    .fails(6);
}

/// A docker credential helper keeping one credential in a file next to it,
/// logging each call.
const HELPER: &str = r#"#!/bin/sh
here=$(dirname "$0")
input=$(cat)
echo "$1 $(printf '%s' "$input" | head -c 200 | tr -d '\n' | sed 's/"Secret":"[^"]*"/"Secret":"*"/')" >> "$here/calls.log"
case "$1" in
  store) printf '%s' "$input" > "$here/store.json" ;;
  get)
    if [ -f "$here/store.json" ] && grep -q "\"ServerURL\":\"$input\"" "$here/store.json"; then
      cat "$here/store.json"
    else
      echo "credentials not found in native keychain"
      exit 1
    fi ;;
  erase) rm -f "$here/store.json" ;;
  *) exit 1 ;;
esac
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_helper_stores_and_serves_the_login() {
    if require_peer("htpasswd (apache2-utils)", have("htpasswd")).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let htpasswd = htpasswd_file(tmp.path(), "carol", "hunter2");
    let Some(dist) = Distribution::start_with_htpasswd(Some(&htpasswd)) else {
        return;
    };
    let d = &dist.addr;
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-pvtest");
    std::fs::write(&helper, HELPER).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config_dir = tmp.path().join("docker");
    std::fs::create_dir_all(&config_dir).unwrap();
    let config = config_dir.join("config.json");
    std::fs::write(&config, r#"{"credsStore":"pvtest"}"#).unwrap();
    let cli = Cli {
        docker_config: Some(config_dir.clone()),
        path_prefix: Some(bin.clone()),
        cwd: None,
    };

    // Nothing stored yet: the helper says "not found", which is no credential.
    cli.run(&["tags", &format!("{d}/helper/img")]).fails(6);
    cli.run(&["login", d, "-u", "carol", "-p", "nope"]).fails(6);
    assert!(
        !bin.join("store.json").exists(),
        "a failed login stores nothing"
    );

    cli.run(&["login", d, "-u", "carol", "-p", "hunter2"]).ok();
    let stored: Value = serde_json::from_slice(
        &std::fs::read(bin.join("store.json")).expect("helper store called"),
    )
    .unwrap();
    assert_eq!(stored["ServerURL"], d.as_str());
    assert_eq!(stored["Username"], "carol");
    assert_eq!(stored["Secret"], "hunter2");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        !text.contains("hunter2"),
        "the secret stays in the helper: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["credsStore"], "pvtest");

    // Commands get the credential from the helper.
    let srv = Server::start(Backend::Sqlite).unwrap();
    push_small_image(&srv, "src/img", "v1", b"helper layer").await;
    cli.run(&[
        "copy",
        &format!("{}/src/img:v1", srv.addr),
        &format!("{d}/helper/img:v1"),
    ])
    .ok();
    assert_eq!(tags_of(&cli, &format!("{d}/helper/img")), ["v1"]);
    let log = std::fs::read_to_string(bin.join("calls.log")).unwrap();
    assert!(
        log.lines().any(|l| l == format!("get {d}")),
        "the helper was asked for {d}: {log}"
    );

    // Logout erases through the helper; then access fails again.
    cli.run(&["logout", d]).ok();
    assert!(!bin.join("store.json").exists(), "erase was called");
    let log = std::fs::read_to_string(bin.join("calls.log")).unwrap();
    assert!(log.lines().any(|l| l == format!("erase {d}")), "{log}");
    cli.run(&["tags", &format!("{d}/helper/img")]).fails(6);

    // credHelpers (per host) takes precedence over an inline entry.
    cli.run(&["login", d, "-u", "carol", "-p", "hunter2"]).ok();
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"{d}":{{"auth":"{}"}}}},"credHelpers":{{"{d}":"pvtest"}}}}"#,
            base64(b"carol:wrong")
        ),
    )
    .unwrap();
    assert_eq!(tags_of(&cli, &format!("{d}/helper/img")), ["v1"]);
}

// ---------------------------------------------------------------- 7. exit codes

/// A tiny registry on loopback that serves every blob with the right
/// length and the wrong bytes (HEAD, whole GET and ranged GET).
fn corrupting_registry(bad: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let bad = bad.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let method = head.split_whitespace().next().unwrap_or("").to_string();
                let range = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("range")
                        .then(|| v.trim().trim_start_matches("bytes=").to_string())
                });
                let (status, extra, body): (&str, String, &[u8]) = match range {
                    Some(r) => {
                        let (s, e) = r.split_once('-').unwrap();
                        let s: usize = s.parse().unwrap();
                        let e: usize = e.parse::<usize>().unwrap().min(bad.len() - 1);
                        (
                            "206 Partial Content",
                            format!("Content-Range: bytes {s}-{e}/{}\r\n", bad.len()),
                            &bad[s..=e],
                        )
                    }
                    None => ("200 OK", String::new(), &bad[..]),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes());
                if method != "HEAD" {
                    let _ = conn.write_all(body);
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_failures_apart() {
    let srv = Server::start(Backend::Sqlite).unwrap();
    let a = &srv.addr;
    let tmp = tempfile::tempdir().unwrap();
    push_small_image(&srv, "codes/img", "v1", b"codes layer").await;

    // 2: malformed references, anywhere.
    for args in [
        vec!["tags", "127.0.0.1:1/Not A Repo"],
        vec!["manifest", "get", "127.0.0.1:1/UPPER/case:v1"],
        vec!["copy", "127.0.0.1:1/bad ref!", "oci:/tmp/never-written"],
        vec![
            "pull",
            "127.0.0.1:1/no spaces:v1",
            "-o",
            "/tmp/never-written",
        ],
        vec!["discover", "127.0.0.1:1/a/b:bad tag!"],
    ] {
        let err = pv(&args).fails(2).to_string();
        assert!(
            !err.trim().is_empty() && err.trim().lines().count() == 1,
            "one line: {err}"
        );
    }
    assert!(!Path::new("/tmp/never-written").exists());
    // 2: a blob named without a digest.
    pv(&["blob", "get", &format!("{a}/codes/img:v1")]).fails(2);
    pv(&["blob", "delete", &format!("{a}/codes/img:v1")]).fails(2);

    // 2: manifest put of a file that is not a manifest; nothing stored.
    let before = tags_of(&Cli::default(), &format!("{a}/codes/img"));
    for (name, body) in [
        ("not-json.json", &b"{ this is not json"[..]),
        ("not-manifest.json", &br#"{"hello":"world"}"#[..]),
    ] {
        let f = tmp.path().join(name);
        std::fs::write(&f, body).unwrap();
        pv(&["manifest", "put", &format!("{a}/codes/img:broken"), s(&f)]).fails(2);
    }
    assert_eq!(tags_of(&Cli::default(), &format!("{a}/codes/img")), before);
    assert_eq!(before, ["v1"]);

    // 3: unknown tags, repositories, digests.
    pv(&["manifest", "get", &format!("{a}/codes/img:missing")]).fails(3);
    pv(&["inspect", &format!("{a}/codes/img:missing")]).fails(3);
    pv(&["discover", &format!("{a}/codes/img:missing")]).fails(3);
    pv(&["tag", &format!("{a}/codes/img:missing"), "x"]).fails(3);
    let dest = tmp.path().join("not-created");
    pv(&[
        "copy",
        &format!("{a}/codes/img:missing"),
        &format!("oci:{}:v1", dest.display()),
    ])
    .fails(3);
    assert!(!dest.exists(), "a failed copy leaves no layout behind");
    pv(&[
        "pull",
        &format!("{a}/codes/img:missing"),
        "-o",
        s(&tmp.path().join("p")),
        "--no-cache",
    ])
    .fails(3);
    pv(&[
        "blob",
        "get",
        &format!("{a}/codes/img@{}", sha256(b"never pushed")),
    ])
    .fails(3);

    // 5: nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let err = pv(&["tags", &format!("{closed}/codes/img")])
        .fails(5)
        .to_string();
    assert!(err.contains(&closed), "{err}");
    pv(&["manifest", "get", &format!("{closed}/codes/img:v1")]).fails(5);
    pv(&["login", &closed, "-u", "u", "-p", "p"]).fails(5);
    let dest = tmp.path().join("unreachable");
    pv(&[
        "copy",
        &format!("{closed}/codes/img:v1"),
        &format!("oci:{}:v1", dest.display()),
    ])
    .fails(5);
    assert!(!dest.exists());
    pv(&[
        "copy",
        &format!("{a}/codes/img:v1"),
        &format!("{closed}/codes/img:v1"),
    ])
    .fails(5);

    // 4: bytes that do not hash to the digest asked for.
    let wanted = xorshift_bytes(100_000, 8, 8, 2);
    let mut wrong = wanted.clone();
    wrong[50_000] ^= 0xff;
    let bad = corrupting_registry(wrong);
    let wd = sha256(&wanted);
    pv(&["blob", "get", &format!("{bad}/any/repo@{wd}")]).fails(4);
    let out = tmp.path().join("corrupt.bin");
    pv(&[
        "blob",
        "get",
        &format!("{bad}/any/repo@{wd}"),
        "-o",
        s(&out),
    ])
    .fails(4);
    assert!(
        !out.exists(),
        "no file appears when the bytes do not verify"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("corrupt.bin"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // 4: an artifact naming a file outside the output directory.
    let cfg = push_blob(&srv, "codes/unsafe", b"{}").await;
    let payload = push_blob(&srv, "codes/unsafe", b"payload").await;
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.cncf.model.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.model.config.v1+json", "digest": cfg, "size": 2},
        "layers": [{"mediaType": "application/vnd.cncf.model.weight.v1.raw", "digest": payload, "size": 7,
                    "annotations": {"org.cncf.model.filepath": "../escape.bin"}}],
    });
    let r = put_manifest(
        &srv,
        "codes/unsafe",
        "v1",
        Some(OCI_MANIFEST),
        m.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let into = tmp.path().join("unsafe-out");
    pv(&[
        "pull",
        &format!("{a}/codes/unsafe:v1"),
        "-o",
        s(&into),
        "--no-cache",
    ])
    .fails(4);
    assert!(!tmp.path().join("escape.bin").exists());

    // A manifest whose bytes do not hash to the digest it was asked by.
    pv(&["manifest", "get", &format!("{bad}/any/repo@{wd}")]).fails(4);
    pv(&[
        "copy",
        &format!("{bad}/any/repo@{wd}"),
        &format!("{a}/codes/never:v1"),
    ])
    .fails(4);
    pv(&["manifest", "get", &format!("{a}/codes/never:v1")]).fails(3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_layout_is_refused_and_nothing_is_pushed() {
    let srv = Server::start(Backend::Sqlite).unwrap();
    let a = &srv.addr;
    let tmp = tempfile::tempdir().unwrap();
    let layer = xorshift_bytes(500_000, 9, 9, 4);
    let image = push_small_image(&srv, "corrupt/src", "v1", &layer).await;
    let dir = tmp.path().join("layout");
    pv(&[
        "copy",
        &format!("{a}/corrupt/src:v1"),
        &format!("oci:{}:v1", dir.display()),
    ])
    .ok();

    // The layer's file now holds other bytes of the same length.
    let layer_file = dir.join("blobs/sha256").join(hex_of(&sha256(&layer)));
    let mut other = layer.clone();
    other[123] ^= 1;
    std::fs::write(&layer_file, &other).unwrap();
    let err = pv(&[
        "copy",
        &format!("oci:{}:v1", dir.display()),
        &format!("{a}/corrupt/dst:v1"),
    ])
    .fails(4)
    .to_string();
    assert!(err.contains("digest mismatch"), "{err}");
    pv(&["manifest", "get", &format!("{a}/corrupt/dst:v1")]).fails(3);
    pv(&["manifest", "get", &format!("{a}/corrupt/dst@{image}")]).fails(3);
    assert_blob_absent(&srv, "corrupt/dst", &sha256(&layer)).await;
    assert_blob_absent(&srv, "corrupt/dst", &sha256(&other)).await;
    // Into another layout: refused as well, no blob file, no tag.
    let dir2 = tmp.path().join("layout2");
    pv(&[
        "copy",
        &format!("oci:{}:v1", dir.display()),
        &format!("oci:{}:v1", dir2.display()),
    ])
    .fails(4);
    assert!(
        !dir2
            .join("blobs/sha256")
            .join(hex_of(&sha256(&layer)))
            .exists(),
        "the bad bytes are not stored under the digest"
    );
    if dir2.join("index.json").exists() {
        assert!(layout_entries(&dir2).is_empty(), "no tag for a failed copy");
    }
    let strays: Vec<String> = files_of(&dir2)
        .into_keys()
        .filter(|p| p.ends_with(".partial") || p.ends_with(".tmp"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");

    // A manifest blob that was altered is refused too.
    std::fs::write(&layer_file, &layer).unwrap();
    let manifest_file = dir.join("blobs/sha256").join(hex_of(&image));
    let mut m = std::fs::read(&manifest_file).unwrap();
    let last = m.len() - 1;
    m.insert(last, b' ');
    std::fs::write(&manifest_file, &m).unwrap();
    pv(&[
        "copy",
        &format!("oci:{}:v1", dir.display()),
        &format!("{a}/corrupt/dst2:v1"),
    ])
    .fails(4);
    pv(&["manifest", "get", &format!("{a}/corrupt/dst2:v1")]).fails(3);
}

// ---------------------------------------------------------------- 8. bad input

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
