//! The store and the database failing under a running registry: the object
//! store unreachable mid-upload, part uploads that fail (retried, or
//! refused cleanly and resumed, never a corrupted blob), and the metadata
//! database restarted under load (clean 503s, then recovery).

use crate::common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn s3_endpoint() -> Option<String> {
    let endpoint = std::env::var("PAVILION_TEST_S3_ENDPOINT").ok();
    require_peer("radosgw (PAVILION_TEST_S3_ENDPOINT)", endpoint.is_some())?;
    endpoint
}

/// `--storage` for radosgw reached through `proxy_addr`, under a prefix of
/// this test's own; 5 MiB parts so small blobs cross part boundaries.
fn storage_through(proxy_addr: &str, name: &str, extra: &str) -> String {
    format!(
        "s3://pavilion-test/{name}-{}?endpoint=http://{proxy_addr}&region=default&allow_http=true&part_size=5242880{extra}",
        std::process::id(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_the_store_going_away_mid_upload() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let proxy = switch_proxy(endpoint.trim_start_matches("http://").to_string()).await;
    let url = storage_through(&proxy.addr, "outage", "");
    let Some(s) = Server::start_with(Backend::Postgres, &["--storage", &url]) else {
        return;
    };
    let blob = stepped_bytes(16 << 20, 5);
    let loc = open_session(&s, "outage/blob").await;
    assert_eq!(
        patch_chunk(&s, &loc, 0, &blob[..6 << 20]).await.status(),
        202
    );

    // The store goes away: the next chunk fails cleanly (503, the reason
    // named), the server stays up and nothing of the session is lost.
    proxy.up.store(false, Ordering::SeqCst);
    let r = patch_chunk(&s, &loc, 6 << 20, &blob[6 << 20..12 << 20]).await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("object store"), "{body}");
    assert_eq!(
        client().get(s.url("/v2/")).send().await.unwrap().status(),
        200,
        "the registry itself still answers"
    );

    // Back again: the session is where it was; the upload completes.
    proxy.up.store(true, Ordering::SeqCst);
    assert_eq!(session_offset(&s, &loc).await, 6 << 20);
    assert_eq!(
        patch_chunk(&s, &loc, 6 << 20, &blob[6 << 20..])
            .await
            .status(),
        202
    );
    commit_and_compare(&s, &s, "outage/blob", &loc, &blob).await;
}

/// An HTTP proxy in front of the S3 server that fails part uploads
/// (`PUT ...?partNumber=`) the two ways they fail in the wild, taking
/// turns: refused before anything is stored (503 Slow Down), and stored but
/// the answer lost (a 500 in place of the store's 200). `transient` fails
/// that many part uploads, never two in a row; `always` fails every one.
struct PartFaults {
    addr: String,
    transient: Arc<AtomicUsize>,
    always: Arc<AtomicBool>,
    injected: Arc<AtomicUsize>,
    parts_seen: Arc<AtomicUsize>,
}

async fn part_faults(upstream: String) -> PartFaults {
    let (transient, always) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (injected, parts_seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let last_failed = AtomicBool::new(false);
    let hook: ProxyHook = {
        let (transient, always) = (transient.clone(), always.clone());
        let (injected, parts_seen) = (injected.clone(), parts_seen.clone());
        Arc::new(move |method, path| {
            if method != reqwest::Method::PUT || !path.contains("partNumber=") {
                return ProxyAction::Forward;
            }
            parts_seen.fetch_add(1, Ordering::SeqCst);
            let take_turn = !last_failed.load(Ordering::SeqCst)
                && transient
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
            let fail = always.load(Ordering::SeqCst) || take_turn;
            last_failed.store(fail, Ordering::SeqCst);
            if !fail {
                ProxyAction::Forward
            } else if injected.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                ProxyAction::Refuse(503, "<Error><Code>SlowDown</Code></Error>")
            } else {
                ProxyAction::ForwardThenFail(500, "<Error><Code>InternalError</Code></Error>")
            }
        })
    };
    PartFaults {
        addr: http_proxy(upstream, hook).await,
        transient,
        always,
        injected,
        parts_seen,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_part_uploads_are_retried_or_refused_and_never_corrupt_a_blob() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let proxy = part_faults(endpoint).await;
    // Two retries, quickly: enough for one failed try, and a persistent
    // failure reaches the client in well under a second.
    let url = storage_through(&proxy.addr, "parts", "&max_retries=2&retry_timeout_secs=30");
    let Some(s) = Server::start_with(Backend::Postgres, &["--storage", &url]) else {
        return;
    };
    let repo = "faults/parts";
    let blob = stepped_bytes(27 << 20, 11);
    let loc = open_session(&s, repo).await;

    // Transient: the first tries of two parts fail, one each way; the
    // store client retries them and the registry's client never knows.
    proxy.transient.store(2, Ordering::SeqCst);
    assert_eq!(
        patch_chunk(&s, &loc, 0, &blob[..9 << 20]).await.status(),
        202
    );
    assert_eq!(
        patch_chunk(&s, &loc, 9 << 20, &blob[9 << 20..17 << 20])
            .await
            .status(),
        202
    );
    assert_eq!(proxy.injected.load(Ordering::SeqCst), 2, "both faults hit");
    assert!(
        proxy.parts_seen.load(Ordering::SeqCst) >= 5,
        "3 parts + 2 retries"
    );

    // Persistent: every try fails; the chunk is refused with 503 naming
    // the store, the session stays where it was, nothing is committed.
    proxy.always.store(true, Ordering::SeqCst);
    let r = patch_chunk(&s, &loc, 17 << 20, &blob[17 << 20..]).await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("object store"), "{body}");
    assert_eq!(session_offset(&s, &loc).await, 17 << 20);
    assert_blob_absent(&s, repo, &sha256(&blob)).await;

    // Healed: the client resends from the offset.
    proxy.always.store(false, Ordering::SeqCst);
    assert_eq!(
        patch_chunk(&s, &loc, 17 << 20, &blob[17 << 20..])
            .await
            .status(),
        202
    );
    // The commit sends the last part (2 MiB): failing, it is refused with
    // 503 and the session kept; the PUT sent again completes the blob whole.
    proxy.always.store(true, Ordering::SeqCst);
    let r = client()
        .put(s.url(&format!("{loc}?digest={}", sha256(&blob))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(session_offset(&s, &loc).await, 27 << 20);
    assert_blob_absent(&s, repo, &sha256(&blob)).await;
    proxy.always.store(false, Ordering::SeqCst);
    commit_and_compare(&s, &s, repo, &loc, &blob).await;
}

/// A PostgreSQL cluster of this test's own, so that restarting it does not
/// disturb the other tests (they share the test command's cluster).
struct OwnPostgres {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

impl OwnPostgres {
    fn start() -> Option<OwnPostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("pg_ctl").exists())
            .max();
        require_peer("PostgreSQL server binaries", bin.is_some())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("pavilion-faults-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = OwnPostgres {
            bin: bin.unwrap(),
            dir,
            port,
        };
        if is_root() {
            // initdb refuses root: the cluster belongs to `postgres`.
            assert!(std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .unwrap()
                .success());
        }
        let data = pg.dir.join("data");
        let data = data.to_str().unwrap();
        pg.run(
            "initdb",
            &["-D", data, "-U", "postgres", "--auth=trust", "--no-sync"],
        );
        pg.ctl("start");
        Some(pg)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `tool` from the server's binaries, run as the cluster's owner
    /// (`postgres` when we are root: initdb refuses root).
    fn command(&self, tool: &str) -> std::process::Command {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            std::process::Command::new(exe)
        };
        cmd.current_dir("/");
        cmd
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.command(tool).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl start|stop` (fast shutdown: sessions are cut, as in a restart).
    fn ctl(&self, action: &str) {
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let mut args = vec!["-D", data.to_str().unwrap(), "-w", "-t", "60"];
        if action == "start" {
            args.extend(["-l", log.to_str().unwrap(), "-o", &opts]);
        } else {
            args.extend(["-m", "fast"]);
        }
        args.push(action);
        self.run("pg_ctl", &args);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// What one request of the load loop got back.
#[derive(Debug)]
enum Outcome {
    Ok,
    Unavailable,
    Other(String),
}

/// One step of the load: tag a small image under a new tag, then read the
/// tag back. Returns the digest when the tag was acknowledged.
async fn tag_and_read(s: &Server, manifest: &[u8], tag: &str) -> (Outcome, bool) {
    let classify = |status: u16, body: String| match status {
        200 | 201 => Outcome::Ok,
        503 if body.contains("metadata database") => Outcome::Unavailable,
        _ => Outcome::Other(format!("{status} {body}")),
    };
    let r = match client()
        .put(s.url(&format!("/v2/faults/db/manifests/{tag}")))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_vec())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (Outcome::Other(format!("transport: {e}")), false),
    };
    let status = r.status().as_u16();
    let put = classify(status, r.text().await.unwrap_or_default());
    if !matches!(put, Outcome::Ok) {
        return (put, false);
    }
    let r = match client()
        .get(s.url(&format!("/v2/faults/db/manifests/{tag}")))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (Outcome::Other(format!("transport: {e}")), true),
    };
    let status = r.status().as_u16();
    (classify(status, r.text().await.unwrap_or_default()), true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_fails_cleanly_then_recovers() {
    let Some(pg) = OwnPostgres::start() else {
        return;
    };
    let url = pg.url();
    let Some(s) = Server::start_with(Backend::Sqlite, &["--database-url", &url]) else {
        return;
    };
    let s = Arc::new(s);
    let image = push_image(&s, "faults/db", "before", "db-restart").await;
    let manifest = get_manifest(&s, "faults/db", "before")
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();
    assert_eq!(sha256(&manifest), image);

    // Three writers tag the image under new tags and read each back, in a
    // bounded loop, while the database stops and starts again.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        let (s, stop, manifest) = (s.clone(), stop.clone(), manifest.clone());
        writers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..2000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let tag = format!("w{w}-{i}");
                let (outcome, acknowledged) = tag_and_read(&s, &manifest, &tag).await;
                seen.push((Instant::now(), tag, outcome, acknowledged));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped_at = Instant::now();
    pg.ctl("stop");
    // While it is down, a request waits for the pool's connection
    // attempts and then gets a clean 503 naming the database.
    let r = client()
        .get(s.url("/v2/faults/db/manifests/before"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("metadata database"), "{body}");
    assert!(
        client().get(s.url("/v2/")).send().await.unwrap().status() == 200,
        "the registry process itself stays up"
    );
    pg.ctl("start");
    let started_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);

    let mut unavailable = 0;
    let mut after = 0;
    let mut acknowledged = Vec::new();
    for w in writers {
        for (at, tag, outcome, acked) in w.await.unwrap() {
            match outcome {
                Outcome::Ok if at > started_at => after += 1,
                Outcome::Ok => {}
                Outcome::Unavailable => {
                    unavailable += 1;
                    assert!(at > stopped_at, "503 before the database stopped");
                }
                Outcome::Other(what) => panic!("{tag}: not a clean failure: {what}"),
            }
            if acked {
                acknowledged.push(tag);
            }
        }
    }
    assert!(unavailable > 0, "the writers saw the outage");
    assert!(
        after > 0,
        "the writers recovered once the database was back"
    );
    // Everything acknowledged survived the restart; the server never lost
    // its footing.
    for tag in &acknowledged {
        let r = get_manifest(&s, "faults/db", tag).await;
        assert_eq!(r.status(), 200, "{tag} was acknowledged");
        assert_eq!(
            hdr(&r, "docker-content-digest").as_deref(),
            Some(image.as_str())
        );
    }
}
