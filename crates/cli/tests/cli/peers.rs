//! Real clients against a real Pavilion: skopeo (Debian) copies OCI image
//! layouts in and out byte-identically; oras-py (PyPI) pushes and pulls
//! artifacts, including one with a `subject` that the referrers API lists.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Writes `data` as a blob of the OCI layout at `dir`; returns (digest, size).
fn layout_blob(dir: &Path, data: &[u8]) -> (String, usize) {
    let d = sha256(data);
    let hex = d.trim_start_matches("sha256:");
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("blobs/sha256").join(hex), data).unwrap();
    (d, data.len())
}

/// An OCI layout holding a two-platform image index tagged `v1`, with
/// uncompressed tar-ish layers (skopeo copies them untouched).
fn make_layout(dir: &Path) -> String {
    let mut manifests = Vec::new();
    for (arch, fill) in [("amd64", 1u8), ("arm64", 2u8)] {
        let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8 ^ fill).collect();
        let (ld, ls) = layout_blob(dir, &layer);
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{ld}"]}}}}"#
        );
        let (cd, cs) = layout_blob(dir, config.as_bytes());
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cs}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{ls}}}]}}"#
        );
        let (md, ms) = layout_blob(dir, m.as_bytes());
        manifests.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{ms},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#
        ));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        manifests.join(",")
    );
    let (id, is) = layout_blob(dir, index.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{id}","size":{is},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#
        ),
    )
    .unwrap();
    id
}

fn blobs_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        out.insert(
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path()).unwrap(),
        );
    }
    out
}

both_backends! {
    skopeo_round_trip_is_byte_identical => |s: Server| async move {
        if require_peer("skopeo", have("skopeo")).is_none() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let dst = tmp.path().join("dst");
        let index_digest = make_layout(&src);
        let remote = format!("docker://{}/peers/skopeo:v1", s.addr);
        tool(Command::new("skopeo").args(["copy", "--all", "--preserve-digests", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", src.display())).arg(&remote));
        // The index arrives byte-identical, under its own digest and media type.
        let r = client().get(s.url("/v2/peers/skopeo/manifests/v1"))
            .header("Accept", "application/vnd.oci.image.index.v1+json").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/vnd.oci.image.index.v1+json");
        assert_eq!(r.headers()["docker-content-digest"], index_digest.as_str());
        tool(Command::new("skopeo").args(["copy", "--all", "--preserve-digests", "--src-tls-verify=false"])
            .arg(&remote).arg(format!("oci:{}:v1", dst.display())));
        assert_eq!(blobs_of(&src), blobs_of(&dst), "every blob and manifest must come back byte-identical");
        // skopeo's own view of the tag list.
        let tags = tool(Command::new("skopeo").args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{}/peers/skopeo", s.addr)));
        assert!(tags.contains("\"v1\""), "{tags}");
    };

    skopeo_pushes_docker_schema2 => |s: Server| async move {
        if require_peer("skopeo", have("skopeo")).is_none() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_layout(&src);
        let remote = format!("docker://{}/peers/docker:v2", s.addr);
        // One platform, converted to Docker Image Manifest V2 Schema 2 as docker and podman push it.
        tool(Command::new("skopeo").args(["copy", "--format", "v2s2", "--override-arch", "arm64", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", src.display())).arg(&remote));
        let raw = tool(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false"]).arg(&remote));
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
        let r = client().head(s.url("/v2/peers/docker/manifests/v2")).send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "application/vnd.docker.distribution.manifest.v2+json");
        assert_eq!(r.headers()["docker-content-digest"], sha256(raw.as_bytes()).as_str());
        let dir = tmp.path().join("dirout");
        tool(Command::new("skopeo").args(["copy", "--src-tls-verify=false"]).arg(&remote).arg(format!("dir:{}", dir.display())));
        assert_eq!(std::fs::read(dir.join("manifest.json")).unwrap(), raw.as_bytes());
    };

    oras_py_push_pull_and_subject => |s: Server| async move {
        let py = std::env::var("PAVILION_TEST_ORAS_PYTHON").ok();
        if require_peer("oras-py (PAVILION_TEST_ORAS_PYTHON)", py.is_some()).is_none() {
            return;
        }
        let py = py.unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path();
        std::fs::write(work.join("weights.bin"), vec![7u8; 100_000]).unwrap();
        std::fs::write(work.join("README.md"), b"# a model\n").unwrap();
        let script = r#"
import json, sys, os
import oras.client, oras.oci
host, workdir, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
os.chdir(workdir)
c = oras.client.OrasClient(hostname=host, insecure=True)
target = f"{host}/peers/oras:v1"
c.push(files=["weights.bin", "README.md"], target=target)
c.push(files=["weights.bin"], target=f"{host}/peers/oras:chunked", do_chunked=True, chunk_size=30000)
files = c.pull(target=target, outdir=outdir)
m = c.get_manifest(target)
subject = oras.oci.Subject.from_manifest(m)
with open("sig.txt", "w") as f:
    f.write("a signature")
c.push(files=["sig.txt"], target=f"{host}/peers/oras:sig", subject=subject)
print(json.dumps({"files": sorted(os.path.basename(f) for f in files), "subject": subject.digest}))
"#;
        let out_dir = work.join("out");
        let stdout = tool(Command::new(&py).arg("-c").arg(script).arg(&s.addr).arg(work).arg(&out_dir));
        let last = stdout.lines().last().unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(v["files"], serde_json::json!(["README.md", "weights.bin"]));
        assert_eq!(std::fs::read(out_dir.join("weights.bin")).unwrap(), vec![7u8; 100_000]);
        assert_eq!(std::fs::read(out_dir.join("README.md")).unwrap(), b"# a model\n");
        // The chunked push landed the same blob.
        let r = client().get(s.url("/v2/peers/oras/manifests/chunked"))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json").send().await.unwrap();
        assert_eq!(r.status(), 200);
        // The pushed subject digest is the stored manifest's digest, and the
        // referrer carrying it is listed.
        let subject = v["subject"].as_str().unwrap();
        let r = client().head(s.url("/v2/peers/oras/manifests/v1")).send().await.unwrap();
        assert_eq!(r.headers()["docker-content-digest"], subject);
        let r = client().get(s.url(&format!("/v2/peers/oras/referrers/{subject}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let idx: serde_json::Value = r.json().await.unwrap();
        let sig = client().head(s.url("/v2/peers/oras/manifests/sig")).send().await.unwrap();
        let sig_digest = sig.headers()["docker-content-digest"].to_str().unwrap().to_string();
        let listed: Vec<&str> = idx["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap()).collect();
        assert_eq!(listed, vec![sig_digest.as_str()]);
    };
}
