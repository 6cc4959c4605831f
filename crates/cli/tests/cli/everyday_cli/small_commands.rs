//! The small commands: `tag`, `tags`, `repos`, `manifest`, `blob`, `ls`,
//! `inspect`, and listings that follow every page.

use super::support::*;
use crate::common::run::*;
use crate::common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_repos_manifests_blobs_ls_and_inspect() {
    let srv = Server::start(Backend::Sqlite).unwrap();
    let a = &srv.addr;
    let tmp = tempfile::tempdir().unwrap();
    let cli = Cli::default();
    let (model, digest) = push_tiny_model(&cli, &format!("{a}/team/tiny:v1"), tmp.path());

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
