//! The change feed (issue 19, items 1 to 3, pull side): each change writes
//! its event in the change's own transaction, numbered by one gapless
//! global sequence and a sequence per repository; `GET
//! /pavilion/v1/events` pages them as CloudEvents, or streams them as
//! Server-Sent Events resumed with `Last-Event-ID`; `pavilion events tail`
//! follows the stream.

use crate::common::run::*;
use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const NOTARY: &str = "application/vnd.cncf.notary.signature";

/// Pushes an image (config, one layer) to `repo` under `reference`;
/// returns its digest and size.
async fn push(s: &Server, repo: &str, reference: &str, seed: &str, extra: &str) -> (String, usize) {
    let config = format!(r#"{{"seed":"{seed}"}}"#);
    let layer = format!("layer of {seed}");
    let cd = push_blob(s, repo, config.as_bytes()).await;
    let ld = push_blob(s, repo, layer.as_bytes()).await;
    let m = image_manifest((&cd, config.len()), &[(&ld, layer.len())], extra);
    // No reference: by digest.
    let reference = match reference {
        "" => sha256(&m),
        r => r.to_string(),
    };
    let r = put_manifest(s, repo, &reference, Some(OCI_MANIFEST), &m).await;
    assert_eq!(r.status(), 201, "push: {}", r.text().await.unwrap());
    (sha256(&m), m.len())
}

/// Every event after `after`, paged `limit` at a time.
async fn all_events(s: &Server, after: i64, limit: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let page = get_json(
            s,
            &format!("/pavilion/v1/events?after={cursor}&limit={limit}"),
        )
        .await;
        let events = page["events"].as_array().unwrap().clone();
        let next = page["next"].as_i64().unwrap();
        if next == cursor {
            assert!(events.is_empty());
            return out;
        }
        cursor = next;
        out.extend(events);
    }
}

/// `(type without prefix, subject)` of each event.
fn summary(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            let t = e["type"].as_str().unwrap();
            let t = t.strip_prefix("dev.pavilion.").unwrap_or(t);
            (
                t.to_string(),
                e["subject"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn seqs(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["pavilionseq"].as_i64().unwrap())
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Pushes, a tag move, a signature, an untag and a delete produce exactly
/// these events, in this order, numbered 1.. globally and per repository.
async fn ordered_events(s: Server) {
    let (a1, a1_size) = push(&s, "feed/a", "v1", "a1", "").await;
    let (a2, _) = push(&s, "feed/a", "v1", "a2", "").await;
    let (b1, _) = push(&s, "feed/b", "stable", "b1", "").await;
    let sig_extra = format!(
        r#","artifactType":"{NOTARY}","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{a1}","size":{a1_size}}}"#
    );
    let (sig, _) = push(&s, "feed/a", "", "sig", &sig_extra).await;
    let r = request(&s, reqwest::Method::DELETE, "/v2/feed/a/manifests/v1").await;
    assert_eq!(r.status(), 202);
    let r = request(
        &s,
        reqwest::Method::DELETE,
        &format!("/v2/feed/b/manifests/{b1}"),
    )
    .await;
    assert_eq!(r.status(), 202);

    let events = all_events(&s, 0, 3).await;
    let expected = pairs(&[
        ("artifact.pushed", &format!("feed/a@{a1}")),
        ("artifact.tagged", "feed/a:v1"),
        ("artifact.pushed", &format!("feed/a@{a2}")),
        ("artifact.tagged", "feed/a:v1"),
        ("artifact.pushed", &format!("feed/b@{b1}")),
        ("artifact.tagged", "feed/b:stable"),
        ("artifact.pushed", &format!("feed/a@{sig}")),
        ("artifact.signed", &format!("feed/a@{a1}")),
        ("artifact.untagged", "feed/a:v1"),
        ("artifact.untagged", "feed/b:stable"),
        ("artifact.deleted", &format!("feed/b@{b1}")),
    ]);
    assert_eq!(summary(&events), expected, "{events:#?}");
    assert_eq!(seqs(&events), (1..=11).collect::<Vec<_>>());
    let repo_seqs: Vec<(String, i64)> = events
        .iter()
        .map(|e| {
            (
                e["data"]["repository"].as_str().unwrap().to_string(),
                e["pavilionreposeq"].as_i64().unwrap(),
            )
        })
        .collect();
    let of = |repo: &str| -> Vec<i64> {
        repo_seqs
            .iter()
            .filter(|(r, _)| r == repo)
            .map(|(_, n)| *n)
            .collect()
    };
    assert_eq!(of("feed/a"), (1..=7).collect::<Vec<_>>());
    assert_eq!(of("feed/b"), (1..=4).collect::<Vec<_>>());
    // The moved tag names where it was; the first setting had nothing.
    assert_eq!(events[1]["data"]["previousDigest"], Value::Null);
    assert_eq!(events[3]["data"]["previousDigest"], a1.as_str());
    assert_eq!(events[3]["data"]["digest"], a2.as_str());
    assert_eq!(events[7]["data"]["signatureType"], NOTARY);
    assert_eq!(events[8]["data"]["digest"], a2.as_str());
    // CloudEvents 1.0 structured mode.
    for e in &events {
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["source"], "/pavilion/registry");
        assert_eq!(e["datacontenttype"], "application/json");
        assert_eq!(e["pavilionschema"], "1");
        assert_eq!(e["id"].as_str().unwrap().len(), 36, "a UUID: {e}");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    // Ids are stable: read again, the same.
    let again = all_events(&s, 0, 100).await;
    assert_eq!(again, events);
    // Filters: a repository glob and a type.
    let page = get_json(&s, "/pavilion/v1/events?repository=feed/b&limit=100").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 4);
    assert_eq!(page["next"], 11);
    let page = get_json(
        &s,
        "/pavilion/v1/events?type=dev.pavilion.artifact.untagged",
    )
    .await;
    assert_eq!(seqs(page["events"].as_array().unwrap()), [9, 10]);
}

backend_tests!(sqlite_order, Sqlite, feed => ordered_events;);
backend_tests!(postgres_order, Postgres, feed => ordered_events;);

/// A traceparent and (under no authentication) no actor travel with the
/// change into its events.
async fn traceparent_travels(s: Server) {
    let config = br#"{"seed":"t"}"#;
    let cd = push_blob(&s, "feed/t", config).await;
    let m = image_manifest((&cd, config.len()), &[], "");
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = client()
        .put(s.url("/v2/feed/t/manifests/v1"))
        .header("content-type", OCI_MANIFEST)
        .header("traceparent", tp)
        .body(m)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let events = all_events(&s, 0, 10).await;
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e["traceparent"], tp);
        assert!(e.get("pavilionactor").is_none());
    }
}

backend_tests!(sqlite_trace, Sqlite, feed => traceparent_travels;);

/// `kill -9` right after a push was acknowledged loses none of its
/// events: they committed with it, before the 201.
async fn kill9_loses_nothing(mut s: Server) {
    let (d, _) = push(&s, "feed/k", "v1", "k", "").await;
    s.kill9();
    s.restart();
    let events = all_events(&s, 0, 10).await;
    assert_eq!(
        summary(&events),
        pairs(&[
            ("artifact.pushed", &format!("feed/k@{d}")),
            ("artifact.tagged", "feed/k:v1"),
        ])
    );
}

backend_tests!(sqlite_kill9, Sqlite, feed => kill9_loses_nothing;);
backend_tests!(postgres_kill9, Postgres, feed => kill9_loses_nothing;);

/// Two replicas on one PostgreSQL database push concurrently while a pager
/// reads with `after=` as they go: it sees one gapless sequence, each
/// event once, nothing skipped (a number is handed out only in commit
/// order), and each repository's own numbers in order.
async fn replicas_one_ordered_log(s: Server) {
    let r = s.replica();
    const PUSHES: usize = 15;
    let writers = [(&s, "one"), (&r, "two")];
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pager = {
        let done = done.clone();
        let urls = [s.url("/pavilion/v1/events"), r.url("/pavilion/v1/events")];
        tokio::spawn(async move {
            let mut seen: Vec<Value> = Vec::new();
            let mut cursor = 0i64;
            let mut turn = 0usize;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let url = &urls[turn % 2];
                turn += 1;
                let page: Value = client()
                    .get(format!("{url}?after={cursor}&limit=3"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let next = page["next"].as_i64().unwrap();
                seen.extend(page["events"].as_array().unwrap().iter().cloned());
                if next == cursor && finished {
                    return seen;
                }
                cursor = next;
            }
        })
    };
    let pushes = writers.iter().map(|(server, name)| async move {
        for i in 0..PUSHES {
            // Two repositories per replica, written by both.
            let repo = format!("feed/r{}", i % 2);
            push(
                server,
                &repo,
                &format!("{name}-{i}"),
                &format!("{name}{i}"),
                "",
            )
            .await;
        }
    });
    futures::future::join_all(pushes).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = pager.await.unwrap();
    let total = 2 * PUSHES * 2;
    assert_eq!(seqs(&seen), (1..=total as i64).collect::<Vec<_>>());
    let mut per_repo: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in &seen {
        per_repo
            .entry(e["data"]["repository"].as_str().unwrap().to_string())
            .or_default()
            .push(e["pavilionreposeq"].as_i64().unwrap());
    }
    for (repo, ns) in per_repo {
        assert_eq!(ns, (1..=ns.len() as i64).collect::<Vec<_>>(), "{repo}");
    }
    // Each push's pushed and tagged are adjacent: one transaction.
    for pair in seen.chunks(2) {
        assert_eq!(pair[0]["type"], "dev.pavilion.artifact.pushed");
        assert_eq!(pair[1]["type"], "dev.pavilion.artifact.tagged");
        assert_eq!(pair[0]["data"]["digest"], pair[1]["data"]["digest"]);
    }
}

backend_tests!(postgres_replicas, Postgres, feed => replicas_one_ordered_log;);

/// Reads SSE events (`id`, data) from `resp` until `n` arrived.
async fn sse_read(resp: &mut reqwest::Response, n: usize) -> Vec<(i64, Value)> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let (mut id, mut data) = (None, String::new());
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
            .await
            .expect("an event within 20 s")
            .unwrap()
            .expect("the stream stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(pos) = buf.find('\n') {
            let line: String = buf.drain(..=pos).collect();
            let line = line.trim_end();
            if line.is_empty() {
                if !data.is_empty() {
                    out.push((id.take().unwrap(), serde_json::from_str(&data).unwrap()));
                    data.clear();
                }
            } else if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().parse::<i64>().unwrap());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }
    out
}

async fn open_stream(s: &Server, last: Option<i64>) -> reqwest::Response {
    let mut rq = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(s.url("/pavilion/v1/events"))
        .header("accept", "text/event-stream");
    if let Some(l) = last {
        rq = rq.header("last-event-id", l.to_string());
    }
    rq.send().await.unwrap()
}

/// A stream sends events as they commit with `id:` = sequence; resumed
/// with `Last-Event-ID` it sends exactly the ones missed, and so does
/// `pavilion events tail --after`.
async fn sse_resume(s: Server) {
    push(&s, "feed/s", "v1", "s1", "").await;
    let mut stream = open_stream(&s, None).await;
    assert_eq!(stream.status(), 200);
    assert!(hdr(&stream, "content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let first = sse_read(&mut stream, 2).await;
    assert_eq!(first.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1, 2]);
    // Live: a push while the stream is open arrives on it.
    push(&s, "feed/s", "v2", "s2", "").await;
    let live = sse_read(&mut stream, 2).await;
    assert_eq!(live.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(live[0].1["pavilionseq"], 3);
    drop(stream);
    // Missed while away.
    push(&s, "feed/s", "v3", "s3", "").await;
    push(&s, "feed/s", "v4", "s4", "").await;
    let mut resumed = open_stream(&s, Some(4)).await;
    let missed = sse_read(&mut resumed, 4).await;
    assert_eq!(
        missed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [5, 6, 7, 8]
    );
    assert_eq!(missed[3].1["subject"], "feed/s:v4");
    drop(resumed);
    // The client resumes the same way.
    let addr = s.addr.clone();
    let run = tokio::task::spawn_blocking(move || {
        pv(&[
            "events", "tail", &addr, "--after", "5", "--count", "3", "--output", "json",
        ])
    })
    .await
    .unwrap();
    let lines: Vec<Value> = run
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(seqs(&lines), [6, 7, 8]);
    let addr = s.addr.clone();
    let text = tokio::task::spawn_blocking(move || {
        pv(&["events", "tail", &addr, "--after", "7", "--count", "1"])
    })
    .await
    .unwrap()
    .ok();
    assert!(
        text.starts_with("8 ") && text.contains(" artifact.tagged feed/s:v4"),
        "{text}"
    );
}

backend_tests!(sqlite_sse, Sqlite, feed => sse_resume;);

/// Each bad input is a 400 with one line naming the problem.
async fn bad_input(s: Server) {
    let cases = [
        ("after=x", "after"),
        ("after=-1", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        (
            "type=dev.pavilion.artifact.exploded",
            "dev.pavilion.artifact.exploded",
        ),
        ("repository=team/[a", "repository"),
        ("colour=red", "colour"),
    ];
    for (q, names) in cases {
        let r = client()
            .get(s.url(&format!("/pavilion/v1/events?{q}")))
            .send()
            .await
            .unwrap();
        let (status, e) = error_body(r).await;
        assert_eq!(status, 400, "{q}: {e}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains(names) && !message.contains('\n'),
            "{q}: {message}"
        );
    }
    let r = client()
        .get(s.url("/pavilion/v1/events"))
        .header("accept", "text/event-stream")
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    let (status, e) = error_body(r).await;
    assert_eq!(status, 400);
    assert!(e["message"].as_str().unwrap().contains("Last-Event-ID"));
    let run = pv(&["events", "tail", &s.addr, "--after", "-3"]);
    run.fails(2);
}

backend_tests!(sqlite_bad, Sqlite, feed => bad_input;);

/// At most 64 streams are open on a replica; the 65th is refused with 503
/// until one closes. Shutdown ends open streams at once rather than
/// waiting out its grace period for them.
async fn stream_bound(mut s: Server) {
    let mut open = Vec::new();
    for _ in 0..64 {
        let r = open_stream(&s, None).await;
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let r = open_stream(&s, None).await;
    let (status, e) = error_body(r).await;
    assert_eq!(status, 503, "{e}");
    assert!(e["message"].as_str().unwrap().contains("64"), "{e}");
    open.pop();
    // The server notices the closed connection at its next write (a
    // keep-alive or an event): an event makes that prompt.
    push(&s, "feed/x", "v1", "x", "").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = open_stream(&s, None).await;
        if r.status() == 200 {
            open.push(r);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed stream's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    let stopped = tokio::task::spawn_blocking(move || s.terminate())
        .await
        .unwrap();
    assert!(stopped, "clean exit");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown waited {:?} for open streams",
        started.elapsed()
    );
    drop(open);
}

backend_tests!(sqlite_bound, Sqlite, feed => stream_bound;);

/// `events tail` follows the stream until the registry shuts down, then
/// says on stderr where to resume.
async fn tail_until_shutdown(mut s: Server) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(["events", "tail", &s.addr])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(2)
            .collect::<Vec<_>>()
    });
    push(&s, "feed/tail", "v1", "t", "").await;
    let lines = tokio::task::spawn_blocking(move || lines.join().unwrap())
        .await
        .unwrap();
    assert!(
        lines[0].starts_with("1 ") && lines[0].contains("artifact.pushed feed/tail@"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("2 ") && lines[1].ends_with("artifact.tagged feed/tail:v1"),
        "{lines:?}"
    );
    let stopped = tokio::task::spawn_blocking(move || s.terminate())
        .await
        .unwrap();
    assert!(stopped);
    let out = tokio::task::spawn_blocking(move || {
        let status = wait_bounded(&mut child, "events tail");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        (status, err)
    })
    .await
    .unwrap();
    assert!(out.0.success(), "{}", out.1);
    assert!(out.1.contains("resume with --after 2"), "{}", out.1);
}

backend_tests!(sqlite_tail, Sqlite, feed => tail_until_shutdown;);
