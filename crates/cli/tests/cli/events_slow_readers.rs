//! Issue 19's last fault: a slow Server-Sent Events client cannot make the
//! server's memory grow without bound. Readers of the feed and of a
//! continuous query that stop reading while 20,000 events are written
//! leave the server's resident memory far below what queueing those events
//! for them would take; and once they read again, they get every event.

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

const PUTS: usize = 600;
const TAGS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_hold_bounded_memory_and_lose_nothing() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let config = br#"{"seed":"slow"}"#;
    let cd = push_blob(&s, "slow/app", config).await;
    // Warm up: the allocator's arenas and the pools reach their size.
    for i in 0..20 {
        let m = image_manifest(
            (&cd, config.len()),
            &[],
            &format!(r#","annotations":{{"n":"w{i}"}}"#),
        );
        let r = put_manifest(&s, "slow/app", &format!("w{i}"), Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 201);
    }
    // One reader through an HTTP client (hyper reads a body only as it is
    // polled), to read again later; the rest on raw sockets never read.
    let mut kept = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(s.url("/pavilion/v1/events?after=0&limit=1000"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 200);
    let ne: usize = std::env::var("NE").map(|v| v.parse().unwrap()).unwrap_or(31);
    let nq: usize = std::env::var("NQ").map(|v| v.parse().unwrap()).unwrap_or(4);
    let mut readers: Vec<TcpStream> = (0..ne)
        .map(|_| stalled(&s, "/pavilion/v1/events?after=0&limit=1000"))
        .collect();
    let q = "MATCH%20(t%3ATag)-%5B%3ATAGS%5D-%3E(m%3AManifest)%20RETURN%20t.name%20AS%20tag";
    readers.extend((0..nq).map(|_| stalled(&s, &format!("/pavilion/v1/queries?query={q}"))));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(&s);
    for i in 0..PUTS {
        let m = image_manifest(
            (&cd, config.len()),
            &[],
            &format!(r#","annotations":{{"n":"{i}"}}"#),
        );
        let digest = sha256(&m);
        let tags: Vec<String> = (0..TAGS).map(|t| format!("tag=p{i}-t{t}")).collect();
        let r = put_manifest(
            &s,
            "slow/app",
            &format!("{digest}?{}", tags.join("&")),
            Some(OCI_MANIFEST),
            &m,
        )
        .await;
        assert_eq!(r.status(), 201);
    }
    // 20 warm-up pushes wrote pushed + tagged each; each PUT here pushed
    // and one tagged per tag.
    let total = (20 * 2 + PUTS * (TAGS + 1)) as i64;
    // Time for the streams to fill what the sockets take.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss(&s);
    let grown = after.saturating_sub(before);
    // Queued for each of 32 readers, the events (about 500 bytes each as
    // CloudEvents) would be 32 x 10 MB; the design holds one page each.
    assert!(
        grown < 96 << 20,
        "the server grew by {grown} bytes with stalled readers ({total} events; {before} -> {after})"
    );
    // Reading again, the kept reader gets every event, in order.
    let mut buf = String::new();
    let mut last = 0i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while last < total {
        let chunk = tokio::time::timeout_at(deadline, kept.chunk())
            .await
            .unwrap_or_else(|_| panic!("stalled at {last} of {total}"))
            .unwrap()
            .expect("the stream stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(pos) = buf.find("\n\n") {
            let ev: String = buf.drain(..pos + 2).collect();
            if let Some(id) = ev.lines().find_map(|l| l.strip_prefix("id:")) {
                let id: i64 = id.trim().parse().unwrap();
                assert_eq!(id, last + 1, "gap after {last}");
                last = id;
            }
        }
    }
    assert_eq!(last, total);
    drop(readers);
}
