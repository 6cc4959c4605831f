//! The pull content cache: files placed from it, never altered bytes handed out.

use super::support::*;
use crate::common::run::*;
use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

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
    let reference = format!("{a}/cache/tiny:v1");
    let (model, _) = push_tiny_model(&cli, &reference, tmp.path());
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
