//! What `pavilion pull` writes on the local disk, attacked: symlinks planted
//! at the names the client creates (`FILE.partial`, `FILE.partial.json`,
//! the final file, the temporary tar archive, a tar entry's `.partial`, a
//! subdirectory), artifacts naming one path twice, failed pulls and absurd
//! declared sizes, names that collide with the client's temporary files,
//! and a hostile registry's endless answers (reads are bounded). A real
//! `pavilion serve` and real `pavilion pull` processes; assertions on
//! bytes and exit codes.

use crate::common::run::pavilion;
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

const RAW: &str = "application/vnd.cncf.model.weight.v1.raw";
const TAR: &str = "application/vnd.cncf.model.weight.config.v1.tar";
const SECRET: &[u8] = b"outside file: must never change\n";

/// Runs `pavilion` off the async workers (a proxy in this process must keep
/// answering while the CLI waits for it).
async fn pavilion_bg(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        pavilion(&a)
    })
    .await
    .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every entry under `dir` (files, directories, symlinks), relative, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
                out.push(format!("{rel}/"));
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// One layer of a hand-made artifact.
struct Layer<'a> {
    media_type: &'a str,
    bytes: &'a [u8],
    path: &'a str,
}

/// Pushes config, blobs and a ModelPack manifest of `layers` under `tag`;
/// returns the reference and the manifest bytes.
async fn push_layers(s: &Server, repo: &str, tag: &str, layers: &[Layer<'_>]) -> String {
    let config = push_blob(s, repo, b"{}").await;
    let mut descs = Vec::new();
    for l in layers {
        let d = push_blob(s, repo, l.bytes).await;
        descs.push(
            serde_json::json!({"mediaType": l.media_type, "digest": d, "size": l.bytes.len(),
            "annotations": {"org.cncf.model.filepath": l.path}}),
        );
    }
    let body = model_manifest(&config, descs);
    let r = put_manifest(s, repo, tag, Some(OCI_MANIFEST), body.as_bytes()).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    format!("{}/{repo}:{tag}", s.addr)
}

fn model_manifest(config: &str, layers: Vec<serde_json::Value>) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.cncf.model.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.model.config.v1+json", "digest": config, "size": 2},
        "layers": layers,
    })
    .to_string()
}

/// A fresh output directory and an outside file holding [`SECRET`].
fn arena(tmp: &Path, name: &str) -> (PathBuf, PathBuf) {
    let out = tmp.join(format!("out-{name}"));
    let outside = tmp.join(format!("outside-{name}"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), SECRET).unwrap();
    (out, outside)
}

/// Whether the pull was refused as unsafe (exit 4, naming the symlink) with
/// the outside file byte-for-byte what it was; else what went wrong.
fn refused_untouched(what: &str, res: &Output, outside: &Path) -> Result<(), String> {
    let err = stderr(res);
    let secret = std::fs::read(outside.join("secret")).unwrap_or_default();
    let mut wrong = Vec::new();
    if res.status.code() != Some(4) || !err.contains("symbolic link") || err.contains("panicked") {
        wrong.push(format!("exit {:?}: {}", res.status.code(), err.trim()));
    }
    if secret != SECRET {
        wrong.push(format!(
            "the outside file now holds {} bytes: {:?}...",
            secret.len(),
            String::from_utf8_lossy(&secret[..secret.len().min(60)])
        ));
    }
    if entries(outside) != ["secret"] {
        wrong.push(format!("outside the output: {:?}", entries(outside)));
    }
    match wrong.is_empty() {
        true => Ok(()),
        false => Err(format!("{what}: {}", wrong.join("; "))),
    }
}

/// One line for a case that went wrong: its exit code, what the output
/// directory holds and what the client said.
fn outcome(label: &str, res: &Output, out: &Path) -> String {
    format!(
        "{label}: exit {:?}, output holds {:?}: {}",
        res.status.code(),
        entries(out),
        stderr(res).trim()
    )
}

/// Pushes one raw layer named `path` as `repo:v1`; returns the reference.
async fn push_raw(s: &Server, repo: &str, bytes: &[u8], path: &str) -> String {
    let layer = Layer {
        media_type: RAW,
        bytes,
        path,
    };
    push_layers(s, repo, "v1", &[layer]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_planted_at_the_clients_names_are_never_written_through() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let weights = xorshift_bytes(300_000, 4, 7, 11);
    let raw = push_raw(&s, "plant/raw", &weights, "w.bin").await;
    let mut problems = Vec::new();
    // Each name the client writes for a raw layer, planted with a symlink
    // to a file outside the output directory.
    for planted in ["w.bin.partial", "w.bin.partial.json", "w.bin"] {
        let (out, outside) = arena(tmp.path(), planted);
        std::os::unix::fs::symlink(outside.join("secret"), out.join(planted)).unwrap();
        let res = pavilion(&["pull", &raw, "-o", out.to_str().unwrap(), "--no-cache"]);
        problems.extend(refused_untouched(planted, &res, &outside).err());
        if entries(&out) != [planted.to_string()] {
            problems.push(format!("{planted}: the output holds {:?}", entries(&out)));
        }
    }
    // The same with the content cache in play: a blob the cache holds is
    // placed by link, never through the planted name.
    let cache = tmp.path().join("cache");
    let warm = tmp.path().join("warm");
    let res = pavilion(&[
        "pull",
        &raw,
        "-o",
        warm.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert!(res.status.success(), "{}", stderr(&res));
    for planted in ["w.bin.partial", "w.bin"] {
        let (out, outside) = arena(tmp.path(), &format!("cached-{planted}"));
        std::os::unix::fs::symlink(outside.join("secret"), out.join(planted)).unwrap();
        let res = pavilion(&[
            "pull",
            &raw,
            "-o",
            out.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ]);
        if planted == "w.bin" {
            problems.extend(refused_untouched("cached, w.bin", &res, &outside).err());
            continue;
        }
        // Placing from the cache never opens `.partial`: the pull succeeds
        // beside the planted link, which it leaves alone.
        let placed = std::fs::symlink_metadata(out.join("w.bin")).is_ok_and(|m| m.is_file())
            && std::fs::read(out.join("w.bin")).unwrap() == weights;
        if !res.status.success()
            || !placed
            || std::fs::read(outside.join("secret")).unwrap() != SECRET
        {
            problems.push(format!(
                "cached, {planted}: placed {placed}: {}",
                stderr(&res)
            ));
        }
    }

    // A subdirectory of the output that is a symlink to elsewhere.
    let sub = push_raw(&s, "plant/sub", &weights, "sub/w.bin").await;
    let (out, outside) = arena(tmp.path(), "subdir");
    std::os::unix::fs::symlink(&outside, out.join("sub")).unwrap();
    let res = pavilion(&["pull", &sub, "-o", out.to_str().unwrap(), "--no-cache"]);
    problems.extend(refused_untouched("symlinked subdirectory", &res, &outside).err());

    // Tar layers: the temporary archive, its partial file and record, and an
    // entry's partial file.
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("tok")).unwrap();
    std::fs::write(src.join("tok/vocab.json"), b"{\"a\":1}").unwrap();
    let archive = gnu_tar(&src, &["tok"]);
    let tar_hex = sha256(&archive)["sha256:".len()..].to_string();
    let tar = push_layers(
        &s,
        "plant/tar",
        "v1",
        &[Layer {
            media_type: TAR,
            bytes: &archive,
            path: "tok",
        }],
    )
    .await;
    let tmp_tar = format!(".pavilion-layer-{tar_hex}.tar");
    for planted in [
        tmp_tar.clone(),
        format!("{tmp_tar}.partial"),
        format!("{tmp_tar}.partial.json"),
        "tok/vocab.json.partial".to_string(),
    ] {
        let (out, outside) = arena(tmp.path(), &planted.replace('/', "_"));
        std::fs::create_dir_all(out.join("tok")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), out.join(&planted)).unwrap();
        let res = pavilion(&["pull", &tar, "-o", out.to_str().unwrap(), "--no-cache"]);
        problems.extend(refused_untouched(&planted, &res, &outside).err());
        if out.join("tok/vocab.json").exists() {
            problems.push(format!("{planted}: an entry was extracted"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_path_twice_in_an_artifact_is_refused_before_anything_is_written() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("tok")).unwrap();
    std::fs::write(src.join("tok/vocab.json"), b"{\"from\":\"tar\"}").unwrap();
    let archive = gnu_tar(&src, &["tok"]);
    let cases: Vec<(&str, Vec<Layer>)> = vec![
        (
            "raw-raw",
            vec![
                Layer {
                    media_type: RAW,
                    bytes: b"first",
                    path: "w.bin",
                },
                Layer {
                    media_type: RAW,
                    bytes: b"second",
                    path: "w.bin",
                },
            ],
        ),
        (
            "tar-raw",
            vec![
                Layer {
                    media_type: TAR,
                    bytes: &archive,
                    path: "tok",
                },
                Layer {
                    media_type: RAW,
                    bytes: b"{\"from\":\"raw\"}",
                    path: "tok/vocab.json",
                },
            ],
        ),
        (
            "raw-tar",
            vec![
                Layer {
                    media_type: RAW,
                    bytes: b"{\"from\":\"raw\"}",
                    path: "tok/vocab.json",
                },
                Layer {
                    media_type: TAR,
                    bytes: &archive,
                    path: "tok",
                },
            ],
        ),
        (
            "file-and-directory",
            vec![
                Layer {
                    media_type: RAW,
                    bytes: b"a file",
                    path: "a",
                },
                Layer {
                    media_type: RAW,
                    bytes: b"under it",
                    path: "a/b",
                },
            ],
        ),
    ];
    let mut problems = Vec::new();
    for (tag, layers) in cases {
        let reference = push_layers(&s, "dup/paths", tag, &layers).await;
        for cache in [None, Some(tmp.path().join("cache"))] {
            let out = tmp.path().join(format!("out-{tag}-{}", cache.is_some()));
            let mut args = vec!["pull", &reference, "-o", out.to_str().unwrap()];
            match &cache {
                Some(c) => args.extend(["--cache-dir", c.to_str().unwrap()]),
                None => args.push("--no-cache"),
            }
            let res = pavilion(&args);
            let err = stderr(&res);
            let named = err.contains("more than once") || err.contains("both a file and");
            if res.status.code() != Some(4) || !named || !entries(&out).is_empty() {
                problems.push(outcome(
                    &format!("{tag} (cache {})", cache.is_some()),
                    &res,
                    &out,
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Serves `manifest` for `GET .../manifests/<tag>` and refuses GETs of
/// `refused_blob` with 404; everything else goes to the registry.
async fn doctored_registry(
    s: &Server,
    manifest: Option<String>,
    refused_blob: Option<String>,
) -> String {
    let manifest: Option<&'static str> = manifest.map(|m| &*Box::leak(m.into_boxed_str()));
    let hook: ProxyHook = Arc::new(move |method, path| {
        if let (Some(m), true) = (manifest, path.contains("/manifests/")) {
            if method == reqwest::Method::GET {
                return ProxyAction::Refuse(200, m);
            }
        }
        if let Some(b) = &refused_blob {
            if path.ends_with(&format!("/blobs/{b}")) {
                return ProxyAction::Refuse(
                    404,
                    r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                );
            }
        }
        ProxyAction::Forward
    });
    http_proxy(format!("http://{}", s.addr), hook).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pull_removes_what_it_created() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let second = xorshift_bytes(200_000, 9, 3, 11);
    let reference = push_layers(
        &s,
        "fail/model",
        "v1",
        &[
            Layer {
                media_type: RAW,
                bytes: b"first file",
                path: "first.bin",
            },
            Layer {
                media_type: RAW,
                bytes: &second,
                path: "deep/er/second.bin",
            },
        ],
    )
    .await;
    // The registry loses the second blob (404) after the first file landed.
    let proxy = doctored_registry(&s, None, Some(sha256(&second))).await;
    let via = reference.replacen(&s.addr, &proxy, 1);
    let out = tmp.path().join("out");
    let res = pavilion_bg(vec![
        "pull".into(),
        via,
        "-o".into(),
        out.to_str().unwrap().into(),
        "--no-cache".into(),
    ])
    .await;
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(3), "{err}");
    assert!(err.contains("BLOB_UNKNOWN"), "{err}");
    // Nothing of the artifact is left: not the verified first file (a
    // part of a model must not look like a model), not the second file's
    // partial file and record, not the directories made for it.
    assert!(entries(&out).is_empty(), "{:?}\n{err}", entries(&out));
    // A file that was already in place is not this pull's to remove.
    std::fs::write(out.join("first.bin"), b"first file").unwrap();
    let via = reference.replacen(&s.addr, &proxy, 1);
    let res = pavilion_bg(vec![
        "pull".into(),
        via,
        "-o".into(),
        out.to_str().unwrap().into(),
        "--no-cache".into(),
    ])
    .await;
    assert_eq!(res.status.code(), Some(3), "{}", stderr(&res));
    assert_eq!(entries(&out), ["first.bin"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_declared_size_fails_clearly_and_leaves_no_partial_file() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let config = push_blob(&s, "huge/model", b"{}").await;
    let layer = push_blob(&s, "huge/model", b"payload").await;
    let mut problems = Vec::new();
    for (name, sizes) in [
        ("exabyte", vec![1u64 << 60]),
        ("overflowing-total", vec![u64::MAX, u64::MAX]),
        ("over-i64", vec![(1u64 << 63) + 7]),
    ] {
        let layers = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| {
                serde_json::json!({"mediaType": RAW, "digest": layer, "size": size,
                    "annotations": {"org.cncf.model.filepath": format!("w{i}.bin")}})
            })
            .collect();
        let proxy = doctored_registry(&s, Some(model_manifest(&config, layers)), None).await;
        let out = tmp.path().join(format!("out-{name}"));
        let res = pavilion_bg(vec![
            "pull".into(),
            format!("{proxy}/huge/model:v1"),
            "-o".into(),
            out.to_str().unwrap().into(),
            "--no-cache".into(),
        ])
        .await;
        let err = stderr(&res);
        // Failed, no panic, a message naming the file and its size, nothing left.
        let clear = err.contains("w0.bin") && err.contains("bytes") && !err.contains("panicked");
        if res.status.success() || !clear || !entries(&out).is_empty() {
            problems.push(outcome(name, &res, &out));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_into_a_layout_never_writes_through_symlinks() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Over the 4 MiB that `copy` moves through memory: the ranged download
    // through `.partial` is used.
    let big = xorshift_bytes((4 << 20) + 4096, 5, 9, 11);
    let hex = sha256(&big)["sha256:".len()..].to_string();
    let reference = push_raw(&s, "lay/model", &big, "w.bin").await;
    let mut problems = Vec::new();
    for planted in [
        "blobs/sha256".to_string(),
        format!("blobs/sha256/{hex}.partial"),
        format!("blobs/sha256/{hex}.partial.json"),
        format!("blobs/sha256/{hex}"),
    ] {
        let (layout, outside) = arena(tmp.path(), &planted.replace('/', "_"));
        std::fs::create_dir_all(layout.join("blobs")).unwrap();
        let target = if planted == "blobs/sha256" {
            outside.clone()
        } else {
            std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
            outside.join("secret")
        };
        std::os::unix::fs::symlink(&target, layout.join(&planted)).unwrap();
        let res = pavilion(&["copy", &reference, &format!("oci:{}:v1", layout.display())]);
        problems.extend(refused_untouched(&planted, &res, &outside).err());
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_record_naming_pieces_past_the_end_is_ignored() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let weights = xorshift_bytes(100_000, 6, 1, 11);
    let reference = push_raw(&s, "record/model", &weights, "w.bin").await;
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // A partial file of the right size and a record that matches the blob
    // but lists a piece far past its end (and one twice).
    std::fs::write(out.join("w.bin.partial"), vec![0u8; weights.len()]).unwrap();
    for done in ["[4096]", "[0,0]"] {
        let record = format!(
            r#"{{"digest":"{}","size":{},"piece":{},"done":{done}}}"#,
            sha256(&weights),
            weights.len(),
            16u64 << 20
        );
        std::fs::write(out.join("w.bin.partial.json"), record).unwrap();
        let res = pavilion(&[
            "pull",
            &reference,
            "-o",
            out.to_str().unwrap(),
            "--no-cache",
        ]);
        assert!(res.status.success(), "{done}: {}", stderr(&res));
        assert!(std::fs::read(out.join("w.bin")).unwrap() == weights);
        assert_eq!(entries(&out), ["w.bin"]);
        std::fs::remove_file(out.join("w.bin")).unwrap();
        std::fs::write(out.join("w.bin.partial"), vec![0u8; weights.len()]).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_of_the_clients_temporary_files_are_refused_in_an_artifact() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("tok")).unwrap();
    std::fs::write(src.join("tok/vocab.json"), b"{}").unwrap();
    std::fs::write(src.join("tok/vocab.json.partial"), b"entry").unwrap();
    let entry_partial = gnu_tar(&src, &["tok"]);
    std::fs::remove_file(src.join("tok/vocab.json.partial")).unwrap();
    let plain_tar = gnu_tar(&src, &["tok"]);
    let tar_name = format!(
        ".pavilion-layer-{}.tar",
        &sha256(&plain_tar)["sha256:".len()..]
    );
    let raw = |path, bytes| Layer {
        media_type: RAW,
        bytes,
        path,
    };
    let cases: Vec<(&str, Vec<Layer>)> = vec![
        // The sibling's name is the partial file of `a`: placed first,
        // then replaced when `a` is downloaded.
        (
            "partial",
            vec![raw("a.partial", b"sibling"), raw("a", b"the file")],
        ),
        (
            "record",
            vec![raw("a.partial.json", b"{}"), raw("a", b"the file")],
        ),
        // A raw layer named like the tar layer's temporary archive, which
        // the cleanup deletes.
        (
            "archive",
            vec![
                Layer {
                    media_type: TAR,
                    bytes: &plain_tar,
                    path: "tok",
                },
                raw(&tar_name, b"removed by the cleanup"),
            ],
        ),
        (
            "entry",
            vec![Layer {
                media_type: TAR,
                bytes: &entry_partial,
                path: "tok",
            }],
        ),
    ];
    let mut problems = Vec::new();
    for (tag, layers) in cases {
        let reference = push_layers(&s, "reserved/names", tag, &layers).await;
        let out = tmp.path().join(format!("out-{tag}"));
        let res = pavilion(&[
            "pull",
            &reference,
            "-o",
            out.to_str().unwrap(),
            "--no-cache",
        ]);
        let err = stderr(&res);
        if res.status.code() != Some(4)
            || !err.contains("temporary files")
            || !entries(&out).is_empty()
        {
            problems.push(outcome(tag, &res, &out));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// A registry that answers HEAD with an empty 200 and every GET with a
/// 16 MiB chunked body (no `Content-Length`): what a hostile registry
/// sends to exhaust a client's memory. Serves at most 32 connections.
async fn endless_registry() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if head.starts_with(b"HEAD ") {
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                }
                let start = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
                if conn.write_all(start.as_bytes()).await.is_err() {
                    return;
                }
                let mut chunk = format!("{:x}\r\n{{\"manifests\":\"", 1 << 16).into_bytes();
                chunk.resize(chunk.len() + (1 << 16) - 14, b'a');
                chunk.extend_from_slice(b"\r\n");
                for _ in 0..256 {
                    if conn.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                let _ = conn.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrys_endless_manifest_or_list_is_cut_at_a_named_limit() {
    let registry = endless_registry().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let digest = sha256(b"subject");
    let mut problems = Vec::new();
    for (what, args) in [
        (
            "pull",
            vec![
                "pull".to_string(),
                format!("{registry}/r/m:v1"),
                "-o".into(),
                out.to_str().unwrap().into(),
            ],
        ),
        ("tags", vec!["tags".to_string(), format!("{registry}/r/m")]),
        (
            "discover",
            vec!["discover".to_string(), format!("{registry}/r/m@{digest}")],
        ),
    ] {
        let res = pavilion_bg(args).await;
        let err = stderr(&res);
        if res.status.code() != Some(4) || !err.contains("limit") || !err.contains("4194304") {
            problems.push(format!(
                "{what}: exit {:?}: {}",
                res.status.code(),
                err.trim()
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    assert!(!out.exists() || entries(&out).is_empty());
}
