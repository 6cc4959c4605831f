//! The registry client against a real Pavilion and a real CNCF Distribution:
//! files pushed read-once and hashed while sent, pulled as parallel ranges,
//! interrupted pulls resumed, and nothing placed unless its digest matches.

use crate::common::*;
use pavilion_client::{Client, ClientError, ClientOptions};
use pavilion_oci::{Digest, ImageRef};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn client_for() -> Client {
    Client::new(ClientOptions::default()).unwrap()
}

fn write_pattern(path: &Path, len: usize, seed: u32) -> Vec<u8> {
    let data = xorshift_bytes(len, seed, 12345, 11);
    std::fs::write(path, &data).unwrap();
    data
}

async fn round_trip(registry: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("weights.bin");
    // Not a multiple of the 32 MiB piece size, so the last range is short.
    let data = write_pattern(&src, (70 << 20) + 12345, 7);
    let r: ImageRef = format!("{registry}/client/model:v1").parse().unwrap();
    let c = client_for();
    let (digest, size) = c.push_blob_file(&r, &src).await.unwrap();
    assert_eq!(digest.to_string(), sha256(&data));
    assert_eq!(size, data.len() as u64);
    assert_eq!(c.blob_exists(&r, &digest).await.unwrap(), Some(size));
    let dest = tmp.path().join("out.bin");
    c.pull_blob_file(&r, &digest, size, &dest, 4).await.unwrap();
    assert!(std::fs::read(&dest).unwrap() == data, "pulled bytes differ");
    assert!(!tmp.path().join("out.bin.partial").exists());
    assert!(!tmp.path().join("out.bin.partial.json").exists());

    // A manifest referencing it, pushed and fetched byte-for-byte.
    let config = c
        .push_blob_bytes(&r, bytes::Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let m = image_manifest(
        (&config.to_string(), 2),
        &[(&digest.to_string(), data.len())],
        "",
    );
    let md = c
        .put_manifest(&r, OCI_MANIFEST, bytes::Bytes::from(m.clone()))
        .await
        .unwrap();
    let got = c.get_manifest(&r).await.unwrap();
    assert_eq!(got.digest, md);
    assert_eq!(got.media_type, OCI_MANIFEST);
    assert_eq!(&got.bytes[..], &m[..]);
    let pinned: ImageRef = format!("{registry}/client/model@{md}").parse().unwrap();
    assert_eq!(c.get_manifest(&pinned).await.unwrap().bytes, got.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_against_pavilion() {
    let s = Server::start(Backend::Sqlite).unwrap();
    round_trip(&s.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_against_cncf_distribution() {
    let Some(d) = Distribution::start() else {
        return;
    };
    round_trip(&d.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_pull_fetches_only_missing_pieces_and_bad_pieces_are_never_placed() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("w.bin");
    let data = write_pattern(&src, (64 << 20) + 5, 3);
    let r: ImageRef = format!("{}/client/resume:v1", s.addr).parse().unwrap();
    let c = client_for();
    let (digest, size) = c.push_blob_file(&r, &src).await.unwrap();
    let dest = tmp.path().join("w.out");
    let partial = tmp.path().join("w.out.partial");
    let record = tmp.path().join("w.out.partial.json");
    let piece = 16u64 << 20; // the client's PIECE

    // A previous run finished piece 0 only: the rest must be fetched and the
    // result verify.
    let mut half = vec![0u8; data.len()];
    half[..piece as usize].copy_from_slice(&data[..piece as usize]);
    std::fs::write(&partial, &half).unwrap();
    let progress = serde_json::json!({"digest": digest.to_string(), "size": size, "piece": piece, "done": [0]});
    std::fs::write(&record, progress.to_string()).unwrap();
    c.pull_blob_file(&r, &digest, size, &dest, 2).await.unwrap();
    assert!(std::fs::read(&dest).unwrap() == data);

    // A record claiming a piece that is really garbage: the digest check
    // refuses it and nothing lands at the destination.
    let dest2 = tmp.path().join("x.out");
    std::fs::write(tmp.path().join("x.out.partial"), vec![9u8; data.len()]).unwrap();
    std::fs::write(tmp.path().join("x.out.partial.json"), progress.to_string()).unwrap();
    let e = c
        .pull_blob_file(&r, &digest, size, &dest2, 2)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::DigestMismatch { .. }), "{e}");
    assert!(!dest2.exists());
    assert!(
        !tmp.path().join("x.out.partial").exists(),
        "a corrupt partial file is discarded"
    );

    // A digest the registry does not have: a clear registry error.
    let missing = Digest::sha256(b"not there");
    let e = c
        .pull_blob_file(&r, &missing, 10, &tmp.path().join("m"), 2)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Registry { status: 404, ref code, .. } if code == "BLOB_UNKNOWN"),
        "{e}"
    );
    assert!(!tmp.path().join("m").exists());
}

/// Which way a cutting proxy counts bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Client to registry (uploads).
    Up,
    /// Registry to client (downloads).
    Down,
}

/// What a cutting proxy saw.
#[derive(Clone, Default)]
struct Cuts {
    /// Set once the proxy has cut a connection.
    cut: Arc<AtomicBool>,
    /// Bytes carried in the counted direction, over all connections.
    carried: Arc<std::sync::atomic::AtomicU64>,
}

/// Copies `from` to `to`; when `count` is set, adds to its total and stops
/// (returning `true`) once the first connection to pass `cut_after` does.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Option<(Cuts, u64)>,
    pace: Option<std::time::Duration>,
) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut seen = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((cuts, cut_after)) = &count {
            if let Some(p) = pace {
                tokio::time::sleep(p).await;
            }
            seen += n as u64;
            cuts.carried.fetch_add(n as u64, Ordering::SeqCst);
            if seen > *cut_after && !cuts.cut.swap(true, Ordering::SeqCst) {
                return true; // drops the socket mid-transfer
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    false
}

/// A loopback TCP proxy that cuts the first connection carrying more than
/// `cut_after` bytes in direction `way`, as a flaky network would.
async fn cutting_proxy(upstream: String, cut_after: u64, way: Way) -> (String, Cuts) {
    proxy(upstream, cut_after, way, None).await
}

/// [`cutting_proxy`] that also sleeps `pace` per read (of up to 64 KiB) in
/// direction `way`, so that a transfer lasts long enough to be interrupted.
async fn proxy(
    upstream: String,
    cut_after: u64,
    way: Way,
    pace: Option<std::time::Duration>,
) -> (String, Cuts) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cuts = Cuts::default();
    let seen = cuts.clone();
    tokio::spawn(async move {
        // Bounded: a test makes a handful of connections.
        for _ in 0..64 {
            let Ok((inbound, _)) = listener.accept().await else {
                return;
            };
            let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                return;
            };
            let cuts = cuts.clone();
            tokio::spawn(async move {
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                let counted = |w| (way == w).then(|| (cuts.clone(), cut_after));
                let mut up = tokio::spawn(pump(ri, wo, counted(Way::Up), pace));
                let mut down = tokio::spawn(pump(ro, wi, counted(Way::Down), pace));
                // Whichever side cuts takes the other down with it.
                tokio::select! {
                    r = &mut up => if matches!(r, Ok(true)) { down.abort() } else { let _ = down.await; },
                    r = &mut down => if matches!(r, Ok(true)) { up.abort() } else { let _ = up.await; },
                }
            });
        }
    });
    (addr, seen)
}

/// A fresh server holding a `len`-byte pattern blob pushed under
/// `repo_tag`; returns it with the temp dir, the bytes, digest and size.
async fn pushed_pattern(
    repo_tag: &str,
    len: usize,
    seed: u32,
) -> (Server, tempfile::TempDir, Vec<u8>, Digest, u64) {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big.bin");
    let data = write_pattern(&src, len, seed);
    let direct: ImageRef = format!("{}/{repo_tag}", s.addr).parse().unwrap();
    let (digest, size) = client_for().push_blob_file(&direct, &src).await.unwrap();
    (s, tmp, data, digest, size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_cut_mid_range_retries_from_where_it_stopped() {
    let (s, tmp, data, digest, size) =
        pushed_pattern("client/cutpull:v1", (40 << 20) + 3, 17).await;
    let (proxy, cuts) = cutting_proxy(s.addr.clone(), 10 << 20, Way::Down).await;
    let via: ImageRef = format!("{proxy}/client/cutpull:v1").parse().unwrap();
    let dest = tmp.path().join("big.out");
    client_for()
        .pull_blob_file(&via, &digest, size, &dest, 1)
        .await
        .unwrap();
    assert!(std::fs::read(&dest).unwrap() == data, "pulled bytes differ");
    assert!(cuts.cut.load(Ordering::SeqCst), "the proxy must have cut");
    // The retry asked for the rest of the range, not the whole blob again.
    let carried = cuts.carried.load(Ordering::SeqCst);
    assert!(
        carried < size + (1 << 20),
        "{carried} bytes carried for a {size}-byte blob"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_cut_mid_transfer_resumes_from_the_registry_offset() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let (proxy, cuts) = cutting_proxy(s.addr.clone(), 20 << 20, Way::Up).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big.bin");
    let data = write_pattern(&src, 48 << 20, 11);
    let r: ImageRef = format!("{proxy}/client/cut:v1").parse().unwrap();
    let (digest, size) = client_for().push_blob_file(&r, &src).await.unwrap();
    assert_eq!(digest.to_string(), sha256(&data));
    assert_eq!(size, data.len() as u64);
    // The blob is whole on the server (read back directly, not via the proxy).
    let got = client()
        .get(s.url(&format!("/v2/client/cut/blobs/{digest}")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got[..] == data[..], "resumed upload differs");
    assert!(
        cuts.cut.load(Ordering::SeqCst),
        "the proxy must have cut the first transfer"
    );
}

/// Runs `pavilion` with `args`; returns the child (stdout and stderr piped).
fn spawn_pavilion(args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent-pavilion-test")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run pavilion")
}

/// Waits (bounded) until `ready` holds, then kills `child` with SIGKILL.
/// Fails the test if the command finished first.
async fn kill_when(mut child: std::process::Child, what: &str, ready: impl Fn() -> bool) {
    for _ in 0..3000 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} finished ({status}) before it could be interrupted");
        }
        if ready() {
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{what}: the interruption point never came");
}

fn assert_success(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_push_and_pull_resume_when_run_again() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let size: u64 = 96 << 20;
    let data = write_pattern(&model.join("w.safetensors"), size as usize, 23);
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();

    // Push through a slowed proxy; kill the process a third of the way in.
    let pace = Some(std::time::Duration::from_millis(1));
    let (up, cuts) = proxy(s.addr.clone(), u64::MAX, Way::Up, pace).await;
    let reference = format!("{up}/resume/model:v1");
    let child = spawn_pavilion(&[
        "push",
        &reference,
        model.to_str().unwrap(),
        "--cache-dir",
        cache,
    ]);
    let carried = cuts.carried.clone();
    kill_when(child, "push", || carried.load(Ordering::SeqCst) > size / 3).await;
    let first = cuts.carried.load(Ordering::SeqCst);
    assert!(
        first < size,
        "the first push sent everything ({first} bytes)"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args([
            "push",
            &reference,
            model.to_str().unwrap(),
            "--cache-dir",
            cache,
        ])
        .env("DOCKER_CONFIG", "/nonexistent-pavilion-test")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_success(out);
    let second = cuts.carried.load(Ordering::SeqCst) - first;
    assert!(
        second < size - size / 4,
        "the re-run sent {second} bytes of a {size}-byte file: it did not resume\n{log}"
    );

    // Pull through a slowed proxy; kill once some pieces are recorded.
    let (down, cuts) = proxy(s.addr.clone(), u64::MAX, Way::Down, pace).await;
    let reference = format!("{down}/resume/model:v1");
    let out_dir = tmp.path().join("out");
    let args = [
        "pull",
        reference.as_str(),
        "-o",
        out_dir.to_str().unwrap(),
        "--no-cache",
        "--concurrency",
        "2",
    ];
    let record = out_dir.join("w.safetensors.partial.json");
    kill_when(spawn_pavilion(&args), "pull", || {
        std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["done"].as_array().is_some_and(|d| d.len() >= 2))
    })
    .await;
    assert!(
        !out_dir.join("w.safetensors").exists(),
        "a killed pull left a final file"
    );
    let first = cuts.carried.load(Ordering::SeqCst);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent-pavilion-test")
        .output()
        .unwrap();
    assert_success(out);
    let second = cuts.carried.load(Ordering::SeqCst) - first;
    assert!(
        second < size - (16 << 20),
        "the re-run fetched {second} bytes of a {size}-byte file: it did not resume"
    );
    assert!(std::fs::read(out_dir.join("w.safetensors")).unwrap() == data);
    assert!(
        !record.exists(),
        "the piece record is removed once the file is complete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_retries_ranges_a_balancer_answers_503() {
    let (s, tmp, data, digest, size) =
        pushed_pattern("client/unavailable:v1", (20 << 20) + 5, 23).await;
    // The first two blob GETs meet a replica that lost its storage, as a
    // balancer without health checks passes it on.
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hook: ProxyHook = {
        let refused = refused.clone();
        Arc::new(move |method, path| {
            let blob_get = method == reqwest::Method::GET && path.contains("/blobs/");
            if blob_get
                && refused
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        (n < 2).then_some(n + 1)
                    })
                    .is_ok()
            {
                ProxyAction::Refuse(
                    503,
                    r#"{"errors":[{"code":"UNKNOWN","message":"object store unreachable"}]}"#,
                )
            } else {
                ProxyAction::Forward
            }
        })
    };
    let proxy = http_proxy(format!("http://{}", s.addr), hook).await;
    let via: ImageRef = format!("{proxy}/client/unavailable:v1").parse().unwrap();
    let dest = tmp.path().join("big.out");
    client_for()
        .pull_blob_file(&via, &digest, size, &dest, 2)
        .await
        .unwrap();
    assert_eq!(refused.load(Ordering::SeqCst), 2, "both 503s were met");
    assert!(std::fs::read(&dest).unwrap() == data, "pulled bytes differ");
}

/// Runs `pavilion push --output json` with `args` and a cache directory of
/// its own, off the async workers (the proxy needs them); returns the
/// report and the bytes the proxy carried upwards meanwhile.
async fn push_counted(args: &[&str], cache: &Path, cuts: &Cuts) -> (serde_json::Value, u64) {
    let before = cuts.carried.load(Ordering::SeqCst);
    let mut all: Vec<String> = vec!["push".into(), "--output".into(), "json".into()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend(["--cache-dir".into(), cache.display().to_string()]);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pavilion"))
            .args(&all)
            .env("DOCKER_CONFIG", "/nonexistent-pavilion-test")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = serde_json::from_str(&assert_success(out)).unwrap();
    (report, cuts.carried.load(Ordering::SeqCst) - before)
}

/// What a push that sends no file may still send: requests, the config and
/// the manifest (a few KB), far below one file.
const NO_FILE_BYTES: u64 = 64 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_push_from_a_fresh_machine_sends_only_what_the_registry_lacks() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let size: u64 = 3 << 20;
    write_pattern(&model.join("a.safetensors"), size as usize, 31);
    write_pattern(&model.join("b.safetensors"), size as usize, 32);
    std::fs::write(model.join("config.json"), br#"{"layers": 2}"#).unwrap();
    let (up, cuts) = proxy(s.addr.clone(), u64::MAX, Way::Up, None).await;
    let reference = format!("{up}/fresh/model:v1");
    let dir = model.to_str().unwrap();
    let cache = |n: &str| tmp.path().join(format!("cache-{n}"));

    let (first, sent) = push_counted(&[&reference, dir], &cache("1"), &cuts).await;
    assert_eq!(first["uploaded"], 3, "{first}");
    assert!(sent > 2 * size, "the first push sent only {sent} bytes");

    // Another machine, same files, nothing remembered: nothing is sent.
    let (again, sent) = push_counted(&[&reference, dir], &cache("2"), &cuts).await;
    assert_eq!(
        (&again["uploaded"], &again["present"]),
        (&0.into(), &3.into()),
        "{again}"
    );
    assert!(
        sent < NO_FILE_BYTES,
        "a re-push of unchanged files sent {sent} bytes"
    );
    assert_eq!(again["digest"], first["digest"], "the same manifest");

    // One file changed, same size: it is hashed, found missing and sent;
    // the other is not, and what is stored is the new content.
    let changed = write_pattern(&model.join("b.safetensors"), size as usize, 33);
    let (third, sent) = push_counted(&[&reference, dir], &cache("3"), &cuts).await;
    assert_eq!(
        (&third["uploaded"], &third["present"]),
        (&1.into(), &2.into()),
        "{third}"
    );
    assert!(
        sent > size && sent < size + NO_FILE_BYTES,
        "a push with one changed file sent {sent} bytes"
    );
    let out_dir = tmp.path().join("out");
    let pulled = tokio::task::spawn_blocking({
        let (r, o) = (format!("{}/fresh/model:v1", s.addr), out_dir.clone());
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_pavilion"))
                .args(["pull", &r, "-o", o.to_str().unwrap(), "--no-cache"])
                .env("DOCKER_CONFIG", "/nonexistent-pavilion-test")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_success(pulled);
    assert!(std::fs::read(out_dir.join("b.safetensors")).unwrap() == changed);

    // Another repository, told where the files live: mounted, not sent.
    let other = format!("{up}/other/model:v1");
    let (mounted, sent) =
        push_counted(&[&other, dir, "--from", "fresh/model"], &cache("4"), &cuts).await;
    assert_eq!(mounted["mounted"], 3, "{mounted}");
    assert!(sent < NO_FILE_BYTES, "a push with --from sent {sent} bytes");

    // Plain files (ORAS style) the same way.
    let file = model.join("a.safetensors");
    let files_ref = format!("{up}/fresh/files:v1");
    let args = [
        files_ref.as_str(),
        file.to_str().unwrap(),
        "--artifact-type",
        "application/x-test",
    ];
    let (_, sent) = push_counted(&args, &cache("5"), &cuts).await;
    assert!(sent > size);
    let (files_again, sent) = push_counted(&args, &cache("6"), &cuts).await;
    assert_eq!(files_again["present"], 1, "{files_again}");
    assert!(
        sent < NO_FILE_BYTES,
        "a re-push of a file sent {sent} bytes"
    );
}
