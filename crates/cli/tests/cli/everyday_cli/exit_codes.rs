//! The exit codes that tell failures apart, and corrupted content refused.

use super::support::*;
use crate::common::run::*;
use crate::common::*;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

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

    // 3: a manifest naming a blob the registry lacks (MANIFEST_BLOB_UNKNOWN,
    // a 400, is "not found" like every *_UNKNOWN code); nothing stored.
    let missing = format!("sha256:{}", "0".repeat(64));
    let orphan = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": missing, "size": 2},
        "layers": []
    });
    let f = tmp.path().join("orphan.json");
    std::fs::write(&f, orphan.to_string()).unwrap();
    let err = pv(&["manifest", "put", &format!("{a}/codes/img:orphan"), s(&f)])
        .fails(3)
        .to_string();
    assert!(err.contains("MANIFEST_BLOB_UNKNOWN"), "{err}");
    assert_eq!(tags_of(&Cli::default(), &format!("{a}/codes/img")), ["v1"]);

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
    // The refused copy may not have created the layout at all.
    let strays: Vec<String> = if dir2.exists() {
        files_of(&dir2)
            .into_keys()
            .filter(|p| p.ends_with(".partial") || p.ends_with(".tmp"))
            .collect()
    } else {
        Vec::new()
    };
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
