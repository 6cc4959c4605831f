//! `pavilion push` and `pavilion pull` end to end, as a user runs them,
//! against a real Pavilion (and CNCF Distribution, and oras-py).

use crate::common::run::pavilion;
use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "pavilion failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {out}"))
}

async fn model_round_trip(registry: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny-model");
    make_model(&model);
    // A dot-file beside the model's files: push leaves it out.
    std::fs::write(model.join(".hidden"), b"not packed").unwrap();
    let reference = format!("{registry}/models/tiny:v1");
    let cache = tmp.path().join("cache");
    let push = |reference: &str, extra: &[&str]| {
        let mut a = vec![
            "push",
            reference,
            model.to_str().unwrap(),
            "--license",
            "MIT",
            "--output",
            "json",
        ];
        a.extend(["--cache-dir", cache.to_str().unwrap()]);
        a.extend(extra);
        json(&ok(pavilion(&a)))
    };
    let first = push(&reference, &[]);
    assert_eq!(
        (first["uploaded"].as_u64(), first["present"].as_u64()),
        (Some(5), Some(0))
    );
    let again = push(&reference, &[]);
    assert_eq!(
        first["digest"], again["digest"],
        "packing the same directory twice gives the same digest"
    );
    assert_eq!(
        (again["uploaded"].as_u64(), again["present"].as_u64()),
        (Some(0), Some(5)),
        "unchanged files are not read or sent again"
    );
    // Another repository: every blob mounted from the first, none sent.
    let other = format!("{registry}/models/tiny-copy:v1");
    let mounted = push(&other, &["--from", "models/tiny"]);
    assert_eq!(
        (mounted["uploaded"].as_u64(), mounted["mounted"].as_u64()),
        (Some(0), Some(5))
    );
    assert_eq!(mounted["digest"], first["digest"]);

    let out = tmp.path().join("out");
    ok(pavilion(&["pull", &reference, "-o", out.to_str().unwrap()]));
    let mut expected = files_of(&model);
    expected.remove(".hidden");
    assert_eq!(
        files_of(&out),
        expected,
        "every file lands in place, byte-identical"
    );

    // The manifest and config say what a ModelPack reader expects.
    let r = client()
        .get(format!("http://{registry}/v2/models/tiny/manifests/v1"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    let m: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        m["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.cncf.model.config.v1+json"
    );
    let types: Vec<&str> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "application/vnd.cncf.model.weight.config.v1.raw",
            "application/vnd.cncf.model.weight.config.v1.raw",
            "application/vnd.cncf.model.weight.v1.raw",
            "application/vnd.cncf.model.code.v1.raw",
            "application/vnd.cncf.model.doc.v1.raw",
        ]
    );
    let config_digest = m["config"]["digest"].as_str().unwrap();
    let c: serde_json::Value = client()
        .get(format!(
            "http://{registry}/v2/models/tiny/blobs/{config_digest}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["descriptor"]["name"], "tiny-model");
    assert_eq!(c["descriptor"]["licenses"], serde_json::json!(["MIT"]));
    assert_eq!(c["config"]["format"], "safetensors");
    assert_eq!(c["config"]["paramSize"], "1.0m");
    assert_eq!(c["config"]["precision"], "bf16");
    assert_eq!(c["modelfs"]["type"], "layers");
    let layer_digests: Vec<&serde_json::Value> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["digest"])
        .collect();
    let diff_ids: Vec<&serde_json::Value> =
        c["modelfs"]["diffIds"].as_array().unwrap().iter().collect();
    assert_eq!(diff_ids, layer_digests);

    // --include pulls only matching files.
    let some = tmp.path().join("some");
    ok(pavilion(&[
        "pull",
        &reference,
        "-o",
        some.to_str().unwrap(),
        "--include",
        "*.json",
    ]));
    let names: Vec<String> = files_of(&some).into_keys().collect();
    assert_eq!(names, ["config.json", "tokenizer.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_push_pull_against_pavilion() {
    let s = Server::start(Backend::Sqlite).unwrap();
    model_round_trip(&s.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_push_pull_against_cncf_distribution() {
    let Some(d) = Distribution::start() else {
        return;
    };
    model_round_trip(&d.addr).await;
}

/// Pushes a hand-made manifest whose one layer is named `path`.
async fn push_named_layer(
    s: &Server,
    repo: &str,
    tag: &str,
    media_type: &str,
    key: &str,
    path: &str,
) {
    let config = push_blob(s, repo, b"{}").await;
    let layer = push_blob(s, repo, b"payload").await;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.cncf.model.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.model.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": media_type, "digest": layer, "size": 7, "annotations": {key: path}}],
    });
    let r = put_manifest(
        s,
        repo,
        tag,
        Some(OCI_MANIFEST),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_refuses_escaping_paths_and_symlinks_before_writing() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let raw = "application/vnd.cncf.model.weight.v1.raw";
    for (tag, path) in [
        ("up", "../escape.bin"),
        ("abs", "/tmp/pavilion-abs-escape.bin"),
        ("dots", "a/../../b"),
    ] {
        push_named_layer(&s, "bad/paths", tag, raw, "org.cncf.model.filepath", path).await;
        let out = tmp.path().join(format!("out-{tag}"));
        let res = pavilion(&[
            "pull",
            &format!("{}/bad/paths:{tag}", s.addr),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(!res.status.success(), "{path} must be refused");
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(err.contains("not a plain relative path"), "{err}");
        assert!(files_of(&out).is_empty(), "nothing written for {path}");
    }
    assert!(!tmp.path().join("escape.bin").exists());
    assert!(!Path::new("/tmp/pavilion-abs-escape.bin").exists());

    // A symlink already in the output directory is never written through.
    push_named_layer(
        &s,
        "bad/paths",
        "link",
        raw,
        "org.cncf.model.filepath",
        "link/x.bin",
    )
    .await;
    let out = tmp.path().join("out-link");
    let target = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&target, out.join("link")).unwrap();
    let res = pavilion(&[
        "pull",
        &format!("{}/bad/paths:link", s.addr),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("symbolic link"));
    assert!(files_of(&target).is_empty());

    // Legacy names that older tools write are understood.
    push_named_layer(
        &s,
        "old/tools",
        "v1",
        "application/vnd.cnai.model.weight.v1.raw",
        "org.cnai.model.filepath",
        "w/legacy.bin",
    )
    .await;
    let out = tmp.path().join("out-legacy");
    ok(pavilion(&[
        "pull",
        &format!("{}/old/tools:v1", s.addr),
        "-o",
        out.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read(out.join("w/legacy.bin")).unwrap(), b"payload");

    // Bad references and missing models are one-line errors.
    let res = pavilion(&["pull", "Not A Ref", "-o", out.to_str().unwrap()]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("invalid reference"));
    let res = pavilion(&[
        "pull",
        &format!("{}/old/tools:missing", s.addr),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("MANIFEST_UNKNOWN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_pushed_with_artifact_type_are_pulled_by_oras_py_and_back() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let py = std::env::var("PAVILION_TEST_ORAS_PYTHON").ok();
    if require_peer("oras-py (PAVILION_TEST_ORAS_PYTHON)", py.is_some()).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("weights.gguf");
    let b = tmp.path().join("notes.txt");
    std::fs::write(&a, xorshift_bytes(300_000, 9, 2, 11)).unwrap();
    std::fs::write(&b, b"hello").unwrap();
    let reference = format!("{}/files/art:v1", s.addr);
    ok(pavilion(&[
        "push",
        &reference,
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--artifact-type",
        "application/vnd.example.bundle",
    ]));
    let out = tmp.path().join("oras-out");
    let script = "import sys, oras.client\nc = oras.client.OrasClient(insecure=True)\nc.pull(target=sys.argv[1], outdir=sys.argv[2])\n";
    let res = Command::new(py.unwrap())
        .arg("-c")
        .arg(script)
        .arg(&reference)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(
        std::fs::read(out.join("weights.gguf")).unwrap(),
        std::fs::read(&a).unwrap()
    );
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"hello");
    // And pavilion pulls the same artifact by the files' titles.
    let back = tmp.path().join("back");
    ok(pavilion(&[
        "pull",
        &reference,
        "-o",
        back.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read(back.join("notes.txt")).unwrap(), b"hello");
    // Refused inputs: not a media type, a directory, two files of one name.
    let res = pavilion(&[
        "push",
        &reference,
        a.to_str().unwrap(),
        "--artifact-type",
        "nope",
    ]);
    assert!(String::from_utf8_lossy(&res.stderr).contains("not a media type"));
    let res = pavilion(&[
        "push",
        &reference,
        tmp.path().to_str().unwrap(),
        "--artifact-type",
        "a/b",
    ]);
    assert!(String::from_utf8_lossy(&res.stderr).contains("is not a file"));
    let res = pavilion(&[
        "push",
        &reference,
        a.to_str().unwrap(),
        a.to_str().unwrap(),
        "--artifact-type",
        "a/b",
    ]);
    assert!(String::from_utf8_lossy(&res.stderr).contains("two files are named"));
}

/// Pushes `tar` (an archive made by GNU tar, as modctl's layers are) as a
/// ModelPack tar layer named `path`; returns the manifest's tag reference.
async fn push_tar_layer(s: &Server, repo: &str, tag: &str, tar: &[u8], path: &str) -> String {
    let config = push_blob(s, repo, b"{}").await;
    let layer = push_blob(s, repo, tar).await;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.cncf.model.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.model.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.cncf.model.weight.config.v1.tar", "digest": layer,
                    "size": tar.len(), "annotations": {"org.cncf.model.filepath": path}}],
    });
    let r = put_manifest(
        s,
        repo,
        tag,
        Some(OCI_MANIFEST),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status(), 201);
    format!("{}/{repo}:{tag}", s.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_extracts_tar_layers_and_refuses_links_in_them() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("tok")).unwrap();
    std::fs::write(src.join("tok/vocab.json"), b"{\"a\":1}").unwrap();
    std::fs::write(src.join("tok/merges.txt"), b"a b\n").unwrap();
    let good = push_tar_layer(&s, "tar/model", "v1", &gnu_tar(&src, &["tok"]), "tok").await;
    let out = tmp.path().join("out");
    let report = json(&ok(pavilion(&[
        "pull",
        &good,
        "-o",
        out.to_str().unwrap(),
        "--no-cache",
        "--output",
        "json",
    ])));
    assert_eq!(
        std::fs::read(out.join("tok/vocab.json")).unwrap(),
        b"{\"a\":1}"
    );
    assert_eq!(std::fs::read(out.join("tok/merges.txt")).unwrap(), b"a b\n");
    assert_eq!(report["files"].as_array().unwrap().len(), 2, "{report}");
    // No temporary archive is left beside the files.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["tok".to_string()]);

    // A symlink inside a tar layer is refused (exit 4) and nothing is written.
    std::os::unix::fs::symlink("/etc/passwd", src.join("tok/evil")).unwrap();
    let bad = push_tar_layer(&s, "tar/model", "evil", &gnu_tar(&src, &["tok"]), "tok").await;
    let out2 = tmp.path().join("out2");
    let res = pavilion(&["pull", &bad, "-o", out2.to_str().unwrap(), "--no-cache"]);
    assert_eq!(
        res.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stderr).contains("symbolic link"));
    assert!(
        !out2.join("tok").exists(),
        "entries were written before the check"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_of_a_container_image_says_it_is_not_a_model() {
    let s = Server::start(Backend::Sqlite).unwrap();
    push_image(&s, "plain/image", "v1", "seed").await;
    let tmp = tempfile::tempdir().unwrap();
    let res = pavilion(&[
        "pull",
        &format!("{}/plain/image:v1", s.addr),
        "-o",
        tmp.path().to_str().unwrap(),
    ]);
    // A usage error: pull cannot fetch this, and the message says what can.
    assert_eq!(res.status.code(), Some(2));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("not a model"), "{err}");
    assert!(err.contains("pavilion copy"), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_onto_a_full_disk_fails_clearly_and_places_nothing() {
    if require_peer("unshare -rm with tmpfs mounts", can_unshare_mount()).is_none() {
        return;
    }
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    make_model(&model);
    let reference = format!("{}/full/model:v1", s.addr);
    ok(pavilion(&[
        "push",
        &reference,
        model.to_str().unwrap(),
        "--cache-dir",
        tmp.path().join("c").to_str().unwrap(),
    ]));
    // A 1 MiB tmpfs cannot hold the 2 MiB weight file.
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs {d} && {bin} pull {reference} -o {d}/out --no-cache; echo \"rc=$?\"; ls -a {d}/out",
        d = disk.display(),
        bin = env!("CARGO_BIN_EXE_pavilion"),
    );
    let res = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .env("DOCKER_CONFIG", "/nonexistent-pavilion-test")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr),
    );
    assert!(stdout.contains("rc=1"), "{stdout}\n{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        !stdout.lines().any(|l| l == "model.safetensors"),
        "a partial file got the final name: {stdout}"
    );
}

/// SHA-256 of a file, read in pieces (the big file is not loaded whole).
fn file_sha256(path: &Path) -> String {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = pavilion_oci::Algorithm::Sha256.hasher();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return h.finish().to_string();
        }
        h.update(&buf[..n]);
    }
}

/// A model with a weight file over 1 GiB (sparse in the middle, random at
/// both ends) and empty files, pushed and pulled byte-identically.
async fn big_and_empty_round_trip(registry: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("big-model");
    std::fs::create_dir_all(model.join("sub")).unwrap();
    let big = model.join("big.gguf");
    let len: u64 = (1 << 30) + 4097;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(len).unwrap();
        f.write_all_at(&xorshift_bytes(1 << 20, 7, 3, 13), 0)
            .unwrap();
        f.write_all_at(&xorshift_bytes(1 << 20, 8, 5, 13), len - (1 << 20))
            .unwrap();
    }
    std::fs::write(model.join("empty.txt"), b"").unwrap();
    std::fs::write(model.join("sub/empty.json"), b"").unwrap();
    std::fs::write(model.join("config.json"), b"{}").unwrap();
    let reference = format!("{registry}/models/big:v1");
    let cache = tmp.path().join("cache");
    ok(pavilion(&[
        "push",
        &reference,
        model.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]));
    let out = tmp.path().join("out");
    ok(pavilion(&[
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "--no-cache",
    ]));
    assert_eq!(std::fs::metadata(out.join("big.gguf")).unwrap().len(), len);
    assert_eq!(file_sha256(&out.join("big.gguf")), file_sha256(&big));
    for f in ["empty.txt", "sub/empty.json"] {
        let m = std::fs::metadata(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(m.len(), 0, "{f}");
    }
    assert_eq!(std::fs::read(out.join("config.json")).unwrap(), b"{}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_1_gib_and_empty_files_round_trip() {
    let s = Server::start(Backend::Sqlite).unwrap();
    big_and_empty_round_trip(&s.addr).await;
    drop(s);
    if let Some(d) = Distribution::start() {
        big_and_empty_round_trip(&d.addr).await;
    }
}
