//! Live transfers (issue 18, item 5): `GET /pavilion/v1/transfers` as JSON
//! and as Server-Sent Events lists each upload and download in flight with
//! its repository, digest or session, bytes so far, total, rate and ETA;
//! `pavilion top` shows them; the client's own push reports its progress
//! with `--output json`. Transfers are held in flight by the test (a body
//! it feeds, a response it stops reading, a throttling proxy) so that what
//! is listed is known exactly.

use crate::common::run::pv;
use crate::common::*;
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;

const MIB: usize = 1 << 20;

/// The transfers the server lists now.
async fn listed(s: &Server) -> Vec<Value> {
    let doc = get_json(s, "/pavilion/v1/transfers").await;
    assert_eq!(doc["untracked"], 0, "{doc}");
    doc["transfers"]
        .as_array()
        .expect("a transfers array")
        .clone()
}

/// Polls until `ok` holds for the list (at most 10 s), returning that list.
async fn wait_list(s: &Server, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..200 {
        let l = listed(s).await;
        if ok(&l) {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not seen in 10 s; last list {:?}", listed(s).await);
}

/// A request body the test feeds piece by piece.
fn fed_body() -> (
    tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    reqwest::Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, reqwest::Body::wrap_stream(stream))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_in_flight_is_listed_streamed_and_shown_by_top_until_it_ends() {
    let Some(s) = Server::start(Backend::Sqlite) else {
        return;
    };
    assert!(listed(&s).await.is_empty());
    let data = xorshift_bytes(3 * MIB, 7, 1, 13);
    let loc = open_session(&s, "team/model").await;
    let session = loc
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let (tx, body) = fed_body();
    let url = s.url(&loc);
    let patch = tokio::spawn(async move {
        client()
            .patch(url)
            .header("content-type", "application/octet-stream")
            .header("content-length", (3 * MIB).to_string())
            .header("content-range", format!("0-{}", 3 * MIB - 1))
            .body(body)
            .send()
            .await
            .unwrap()
    });
    // Server-Sent Events, every 100 ms, read alongside.
    let events = client()
        .get(s.url("/pavilion/v1/transfers?interval_ms=100"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(hdr(&events, "content-type").unwrap(), "text/event-stream");
    let mut events = events.bytes_stream();

    tx.send(Ok(data[..MIB].to_vec().into())).await.unwrap();
    let l = wait_list(&s, "1 MiB of the upload", |l| {
        l.len() == 1 && l[0]["bytes"] == MIB as u64
    })
    .await;
    let t = &l[0];
    assert_eq!(t["direction"], "upload");
    assert_eq!(t["repository"], "team/model");
    assert_eq!(t["session"], session.as_str());
    assert_eq!(t["total"], 3 * MIB as u64);
    assert_eq!(t["identity"], "-");
    assert!(t.get("digest").is_none(), "a chunk names no digest: {t}");
    assert!(t["elapsed_seconds"].as_f64().unwrap() >= 0.0);

    // `pavilion top`, once as JSON and once as the table.
    let reg = s.addr.clone();
    let top = tokio::task::spawn_blocking(move || {
        let json = pv(&["top", &reg, "-n", "1", "--output", "json"]).json();
        let text = pv(&["top", &reg, "-n", "1"]).ok();
        (json, text)
    })
    .await
    .unwrap();
    assert_eq!(top.0["transfers"][0]["repository"], "team/model");
    assert_eq!(top.0["transfers"][0]["bytes"], MIB as u64);
    assert!(top.1.contains("1 transfers in flight"), "{}", top.1);
    let row = top
        .1
        .lines()
        .find(|l| l.contains("team/model"))
        .expect("a row");
    assert!(row.starts_with("up "), "{row}");
    assert!(row.contains("1.0 MiB/3.0 MiB"), "{row}");
    assert!(row.contains(&format!("upload {}", &session[..8])), "{row}");

    // The stream shows the same transfer moving.
    let mut seen = Vec::new();
    tx.send(Ok(data[MIB..2 * MIB].to_vec().into()))
        .await
        .unwrap();
    let mut buf = String::new();
    for _ in 0..100 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("an event within 5 s")
            .expect("the stream stays open")
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            assert!(event.starts_with("event: transfers\nid: "), "{event:?}");
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("a data line");
            let doc: Value = serde_json::from_str(data).unwrap();
            if let Some(t) = doc["transfers"].as_array().and_then(|a| a.first()) {
                seen.push(t["bytes"].as_u64().unwrap());
            }
        }
        if seen.last() == Some(&(2 * MIB as u64)) {
            break;
        }
    }
    assert_eq!(seen.last(), Some(&(2 * MIB as u64)), "events: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");

    tx.send(Ok(data[2 * MIB..].to_vec().into())).await.unwrap();
    drop(tx);
    assert_eq!(patch.await.unwrap().status(), 202);
    wait_list(&s, "the finished upload gone", |l| l.is_empty()).await;
    commit_and_compare(&s, &s, "team/model", &loc, &data).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_is_listed_until_its_last_byte() {
    let Some(s) = Server::start(Backend::Sqlite) else {
        return;
    };
    let data = xorshift_bytes(48 * MIB, 3, 2, 11);
    let digest = push_blob(&s, "team/big", &data).await;
    let resp = client()
        .get(s.url(&format!("/v2/team/big/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut got = body.next().await.unwrap().unwrap().len();
    // Not read further: the socket's buffers fill and the server waits.
    let l = wait_list(&s, "the download", |l| {
        l.len() == 1 && l[0]["bytes"].as_u64().unwrap() > 0
    })
    .await;
    let t = &l[0];
    assert_eq!(t["direction"], "download");
    assert_eq!(t["repository"], "team/big");
    assert_eq!(t["digest"], digest.as_str());
    assert_eq!(t["total"], 48 * MIB as u64);
    assert!(t["bytes"].as_u64().unwrap() < 48 * MIB as u64, "{t}");
    while let Some(c) = body.next().await {
        got += c.unwrap().len();
    }
    assert_eq!(got, 48 * MIB);
    wait_list(&s, "the finished download gone", |l| l.is_empty()).await;

    // A range request is its own transfer, from its start to its end.
    let resp = client()
        .get(s.url(&format!("/v2/team/big/blobs/{digest}")))
        .header("range", format!("bytes={}-{}", 8 * MIB, 40 * MIB - 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    let l = wait_list(&s, "the range download", |l| l.len() == 1).await;
    assert_eq!(l[0]["total"], 40 * MIB as u64);
    assert!(l[0]["bytes"].as_u64().unwrap() > 8 * MIB as u64);
    drop(body);
    wait_list(&s, "the abandoned range download gone", |l| l.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_queries_malformed_names_and_too_many_streams_are_refused() {
    let Some(s) = Server::start(Backend::Sqlite) else {
        return;
    };
    for q in [
        "interval_ms=5",
        "interval_ms=x",
        "direction=sideways",
        "bogus=1",
    ] {
        let r = request(
            &s,
            reqwest::Method::GET,
            &format!("/pavilion/v1/transfers?{q}"),
        )
        .await;
        let (status, code, msg) = error_parts(r).await;
        assert_eq!((status, code.as_str()), (400, "UNSUPPORTED"), "{q}");
        assert!(msg.contains("query parameter"), "{msg}");
    }
    // An upload to a name the registry refuses is never listed, even
    // while its body is still arriving (a terminal reads the list).
    let (tx, body) = fed_body();
    let url = s.url("/v2/bad%1b%5b2J/blobs/uploads/x");
    let patch = tokio::spawn(async move { client().patch(url).body(body).send().await });
    tx.send(Ok(vec![0u8; 64 * 1024].into())).await.unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(listed(&s).await.is_empty());
    }
    drop(tx);
    let _ = patch.await;

    // At most 64 event streams at once; a 65th waits its turn (503), and
    // a closed stream frees its place.
    let sse = || {
        client()
            .get(s.url("/pavilion/v1/transfers"))
            .header("accept", "text/event-stream")
            .send()
    };
    let mut open = Vec::new();
    for _ in 0..64 {
        let r = sse().await.unwrap();
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let refused = sse().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(hdr(&refused, "retry-after").is_some());
    drop(open.pop());
    let mut freed = false;
    for _ in 0..100 {
        let r = sse().await.unwrap();
        if r.status() == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "a closed stream's place was not freed");

    // `pavilion top` refuses what it cannot use.
    let reg = s.addr.clone();
    let (bad_interval, bad_host) = tokio::task::spawn_blocking(move || {
        (
            pv(&["top", &reg, "--interval", "0.01", "-n", "1"]),
            pv(&["top", &format!("{reg}/repo"), "-n", "1"]),
        )
    })
    .await
    .unwrap();
    assert!(bad_interval.fails(2).contains("--interval"));
    assert!(bad_host.fails(2).contains("is not a registry host"));
}

#[tokio::test(flavor = "multi_thread")]
async fn under_authentication_the_list_needs_the_catalog_grant() {
    use crate::common::auth::{admin_and_dev_config, basic};
    let dir = tempfile::tempdir().unwrap();
    let Some(config) = admin_and_dev_config(dir.path(), "") else {
        return;
    };
    let Some(s) = Server::start_with(Backend::Sqlite, &["--config", config.to_str().unwrap()])
    else {
        return;
    };
    let anon = request(&s, reqwest::Method::GET, "/pavilion/v1/transfers").await;
    assert_eq!(anon.status(), 401);
    let as_user = |user: &'static str, pw: &'static str| {
        client()
            .get(s.url("/pavilion/v1/transfers"))
            .header("authorization", basic(user, pw))
            .send()
    };
    assert_eq!(as_user("admin", "pw-a").await.unwrap().status(), 200);
    let dev = as_user("dev", "pw-d").await.unwrap().status().as_u16();
    assert!(
        dev == 401 || dev == 403,
        "dev holds no catalog grant: {dev}"
    );
}

/// A loopback TCP proxy to `upstream` passing client-to-server bytes at
/// about `per_sec` bytes a second (answers pass freely): a push through it
/// lasts long enough to be watched.
async fn throttled(upstream: String, per_sec: u64) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut ri, mut wi) = inbound.into_split();
                let (mut ro, mut wo) = outbound.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match ri.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if wo.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let pause = Duration::from_secs_f64(n as f64 / per_sec as f64);
                        tokio::time::sleep(pause).await;
                    }
                    let _ = wo.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut ro, &mut wi).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn top_watches_a_running_push_and_the_push_reports_json_progress() {
    let Some(s) = Server::start(Backend::Sqlite) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weights.bin");
    let size = 12 * MIB;
    std::fs::write(&file, xorshift_bytes(size, 5, 3, 17)).unwrap();
    let proxy = throttled(s.addr.clone(), 4 * MIB as u64).await;
    let reference = format!("{proxy}/team/watched:v1");
    let f = file.to_str().unwrap().to_string();
    let cache = dir.path().join("cache").to_str().unwrap().to_string();
    let push = std::thread::spawn(move || {
        pv(&[
            "push",
            "--artifact-type",
            "application/vnd.test.weights",
            &reference,
            &f,
            "--cache-dir",
            &cache,
            "--output",
            "json",
        ])
    });
    let l = wait_list(&s, "the push's upload", |l| {
        l.iter()
            .any(|t| t["repository"] == "team/watched" && t["bytes"].as_u64().unwrap() > 0)
    })
    .await;
    let t = l
        .iter()
        .find(|t| t["repository"] == "team/watched")
        .unwrap();
    assert_eq!(t["direction"], "upload");
    assert_eq!(t["total"], size as u64);
    let reg = s.addr.clone();
    let shown =
        tokio::task::spawn_blocking(move || pv(&["top", &reg, "-n", "2", "-d", "0.5"]).ok())
            .await
            .unwrap();
    assert_eq!(
        shown.matches("team/watched").count(),
        2,
        "two refreshes, each with the push: {shown}"
    );
    let run = tokio::task::spawn_blocking(move || push.join().unwrap())
        .await
        .unwrap();
    let result = run.json();
    assert_eq!(result["bytes"], size as u64);
    let progress: Vec<Value> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("{\"progress\""))
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["progress"].clone())
        .collect();
    assert!(
        progress.len() >= 2,
        "one a second for a 3 s push: {}",
        run.stderr
    );
    for p in &progress {
        assert_eq!(p["direction"], "upload");
        assert!(p["reference"]
            .as_str()
            .unwrap()
            .ends_with("/team/watched:v1"));
        assert_eq!(p["total"], size as u64, "{p}");
        assert!(p["bytes"].as_u64().unwrap() <= size as u64);
    }
    let bytes: Vec<u64> = progress
        .iter()
        .map(|p| p["bytes"].as_u64().unwrap())
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] <= w[1]), "{bytes:?}");
    assert!(bytes.last().unwrap() > &0);
}
