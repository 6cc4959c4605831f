//! Issue 19's last fault: a slow Server-Sent Events client cannot make the
//! server's memory grow without bound.
//!
//! The feed: 32 readers that stop reading while 18,640 events are written
//! leave the server's resident memory far below what queueing those
//! events for them would take, and one of them, reading again, gets every
//! event in order.
//!
//! Continuous queries: a subscription's graph grows with the registry
//! (bounded by `[events] query_max_elements`) and so does its result;
//! readers that stop reading cost no more than readers that keep up,
//! because a subscription applies the next page of events only once its
//! last diff was taken.

use crate::common::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// The server's resident set, in bytes.
fn rss(s: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid().unwrap())).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Opens a stream on `path` and reads nothing.
fn stalled(s: &Server, path: &str) -> TcpStream {
    let mut c = TcpStream::connect(&s.addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        s.addr
    )
    .unwrap();
    c
}

/// An SSE response held by an HTTP client: hyper reads a body only as it
/// is polled, so until then it is a reader that does not read.
async fn held(s: &Server, path: &str) -> reqwest::Response {
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(s.url(path))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

/// Pushes the config and 20 tagged manifests, so that the allocator's
/// arenas and the pools have reached their size; returns the config.
async fn warm_up(s: &Server) -> String {
    let config = br#"{"seed":"slow"}"#;
    let cd = push_blob(s, "slow/app", config).await;
    for i in 0..20 {
        let m = manifest(&cd, &format!("w{i}"));
        let r = put_manifest(s, "slow/app", &format!("w{i}"), Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 201);
    }
    cd
}

/// A manifest whose annotations carry 4 KB, so that rows showing them
/// are heavy.
fn manifest(cd: &str, n: &str) -> Vec<u8> {
    let pad = "x".repeat(4096);
    image_manifest(
        (cd, 15),
        &[],
        &format!(r#","annotations":{{"n":"{n}","pad":"{pad}"}}"#),
    )
}

/// `puts` manifests with `tags` tags each: one pushed and `tags` tagged
/// events per PUT.
async fn write(s: &Server, cd: &str, puts: usize, tags: usize) {
    for i in 0..puts {
        let m = manifest(cd, &i.to_string());
        let digest = sha256(&m);
        let t: Vec<String> = (0..tags).map(|t| format!("tag=p{i}-t{t}")).collect();
        let r = put_manifest(
            s,
            "slow/app",
            &format!("{digest}?{}", t.join("&")),
            Some(OCI_MANIFEST),
            &m,
        )
        .await;
        assert_eq!(r.status(), 201);
    }
}

/// Reads `resp` until an SSE event with id `last` (events numbered from
/// `from`, each one more than the one before).
async fn read_ids(resp: &mut reqwest::Response, from: i64, last: i64) {
    let mut buf = String::new();
    let mut at = from;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while at < last {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("stalled at {at} of {last}"))
            .unwrap()
            .expect("the stream stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(pos) = buf.find("\n\n") {
            let ev: String = buf.drain(..pos + 2).collect();
            if let Some(id) = ev.lines().find_map(|l| l.strip_prefix("id:")) {
                let id: i64 = id.trim().parse().unwrap();
                assert_eq!(id, at + 1, "gap after {at}");
                at = id;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_feed_readers_hold_bounded_memory_and_lose_nothing() {
    const PUTS: usize = 600;
    const TAGS: usize = 30;
    let s = Server::start(Backend::Sqlite).unwrap();
    let cd = warm_up(&s).await;
    let path = "/pavilion/v1/events?after=0&limit=1000";
    let mut kept = held(&s, path).await;
    let readers: Vec<TcpStream> = (0..31).map(|_| stalled(&s, path)).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(&s);
    write(&s, &cd, PUTS, TAGS).await;
    let total = (20 * 2 + PUTS * (TAGS + 1)) as i64;
    // Time for the streams to fill what the sockets take.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = rss(&s).saturating_sub(before);
    // Queued for each of 32 readers, the events (about 500 bytes each as
    // CloudEvents) would be 32 x 9 MB; the design holds one page each.
    assert!(
        grown < 96 << 20,
        "the server grew by {grown} bytes with 32 stalled readers of {total} events"
    );
    read_ids(&mut kept, 0, total).await;
    drop(readers);
}

/// What 4 subscriptions to a query over tags cost the server while 6,200
/// events are written, when they read (`reading`) or not. Each row shows
/// its manifest's 4 KB of annotations: queued for a reader that does not
/// read, the diffs would be 6,000 rows x 4 KB = 24 MB per subscription.
async fn query_cost(reading: bool) -> u64 {
    const PUTS: usize = 200;
    const TAGS: usize = 30;
    let s = Server::start(Backend::Sqlite).unwrap();
    let cd = warm_up(&s).await;
    let q = "MATCH%20(t%3ATag)-%5B%3ATAGS%5D-%3E(m%3AManifest)%20RETURN%20t.name%20AS%20tag%2C%20m.annotations%20AS%20a";
    let path = format!("/pavilion/v1/queries?query={q}");
    let mut subs = Vec::new();
    for _ in 0..4 {
        subs.push(held(&s, &path).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(&s);
    write(&s, &cd, PUTS, TAGS).await;
    if reading {
        // Each reads until its diffs reach the last event.
        let last = (20 * 2 + PUTS * (TAGS + 1)) as i64;
        for sub in &mut subs {
            let mut buf = String::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            'read: loop {
                let chunk = tokio::time::timeout_at(deadline, sub.chunk())
                    .await
                    .expect("diffs up to the last event")
                    .unwrap()
                    .expect("open");
                buf.push_str(&String::from_utf8_lossy(&chunk));
                for line in buf.lines() {
                    if line.strip_prefix("id:").map(str::trim) == Some(&last.to_string()) {
                        break 'read;
                    }
                }
                let keep = buf.rfind('\n').map_or(0, |p| p + 1);
                buf.drain(..keep);
            }
        }
    } else {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    rss(&s).saturating_sub(before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_query_readers_cost_no_more_than_readers_that_keep_up() {
    let reading = query_cost(true).await;
    let stalled = query_cost(false).await;
    // Readers that keep up hold the whole result (6,600 rows of 4 KB, in
    // the graph and the result set); a stalled one holds what it applied
    // before its socket filled, plus one diff. A queue of diffs for it
    // would add its 24 MB on top of everything a reader keeps.
    assert!(
        stalled < reading + (8 << 20),
        "4 stalled subscriptions grew the server by {stalled} bytes; 4 that read, by {reading}"
    );
}
