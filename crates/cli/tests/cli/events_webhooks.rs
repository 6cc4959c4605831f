//! Webhooks (issue 19, item 3, delivery): the change feed POSTed to a real
//! receiver as binary-mode CloudEvents signed with HMAC-SHA256, in
//! sequence order, retried, dead-lettered, replayed, surviving a receiver
//! that is down, a `kill -9` of the server, and a second replica.

use crate::common::receiver::{verify_signature, Got, Receiver};
use crate::common::run::pv;
use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const SECRET: &str = "test-secret-0123456789";

fn file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// One `[[events.webhook]]` named `name` posting to `url`, plus `extra`.
fn hook(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[events.webhook]]\nname = \"{name}\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n{extra}\n"
    )
}

/// Waits, at most `secs`, until `done` holds; panics naming `what`.
async fn wait_for<F, Fut>(what: &str, secs: u64, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every event in the feed.
async fn feed(s: &Server) -> Vec<Value> {
    let page = get_json(s, "/pavilion/v1/events?limit=1000").await;
    page["events"].as_array().unwrap().clone()
}

/// `GET /pavilion/v1/webhooks`' entry for `name`.
async fn status(s: &Server, name: &str) -> Value {
    let list = get_json(s, "/pavilion/v1/webhooks").await;
    list["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no webhook {name}: {list}"))
}

/// Distinct event ids among `got`, in first-arrival order.
fn first_arrivals(got: &[Got]) -> Vec<Got> {
    let mut seen = BTreeSet::new();
    got.iter()
        .filter(|g| seen.insert(g.h("ce-id").to_string()))
        .cloned()
        .collect()
}

/// Asserts each repository's events arrived in its own sequence order.
fn in_repository_order(got: &[Got]) {
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for g in got {
        let body: Value = serde_json::from_slice(&g.body).unwrap();
        let repo = body["repository"].as_str().unwrap_or("").to_string();
        let n: i64 = g.h("ce-pavilionreposeq").parse().unwrap();
        let prev = last.insert(repo.clone(), n).unwrap_or(0);
        assert!(n > prev, "{repo}: {n} after {prev}");
    }
}

async fn replay(s: &Server, args: &[&str]) -> String {
    let mut all = vec!["events", "replay", &s.addr];
    all.extend_from_slice(args);
    let all: Vec<String> = all.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        pv(&args).ok()
    })
    .await
    .unwrap()
}

/// (a) Pushes to two repositories deliver every event, each with its
/// CloudEvents headers, its data as the body and a signature a receiver
/// verifies with its own HMAC; in sequence order. A webhook added to the
/// configuration starts at the end of the feed, not at its beginning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_and_in_order() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = file(dir.path(), "serve.toml", "");
    let mut s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    push_image(&s, "before/app", "v0", "before").await;
    file(dir.path(), "serve.toml", &hook("all", &rx.url("/in"), ""));
    s.restart();
    for i in 0..3 {
        push_image(&s, "team/a", &format!("v{i}"), &format!("a{i}")).await;
        push_image(&s, "team/b", &format!("v{i}"), &format!("b{i}")).await;
    }
    let events = feed(&s).await;
    assert_eq!(events.len(), 14);
    let expected: Vec<&Value> = events[2..].iter().collect();
    wait_for("12 deliveries", 60, || async { rx.delivered().len() >= 12 }).await;
    let got = rx.delivered();
    assert_eq!(got.len(), 12, "each once: {got:#?}");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.path, "/in");
        assert_eq!(g.h("ce-specversion"), "1.0");
        assert_eq!(g.h("ce-id"), e["id"]);
        assert_eq!(g.h("ce-source"), "/pavilion/registry");
        assert_eq!(g.h("ce-type"), e["type"]);
        assert_eq!(g.h("ce-subject"), e["subject"]);
        assert_eq!(g.h("ce-time"), e["time"]);
        assert_eq!(g.h("ce-pavilionschema"), "1");
        assert_eq!(g.h("ce-pavilionseq"), e["pavilionseq"].to_string());
        assert_eq!(g.h("ce-pavilionreposeq"), e["pavilionreposeq"].to_string());
        assert_eq!(g.h("content-type"), "application/json");
        let body: Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(body, e["data"]);
        verify_signature(SECRET.as_bytes(), g.h("pavilion-signature"), &g.body, 300).unwrap();
        // Anything else signs nothing.
        assert!(verify_signature(
            b"another-secret-0123",
            g.h("pavilion-signature"),
            &g.body,
            300
        )
        .is_err());
    }
    let seqs: Vec<i64> = got.iter().map(Got::seq).collect();
    assert_eq!(seqs, (3..=14).collect::<Vec<_>>());
    in_repository_order(&got);
    let st = status(&s, "all").await;
    wait_for("the cursor at 14", 30, || async {
        status(&s, "all").await["cursor"] == 14
    })
    .await;
    assert_eq!(st["dead_letters"], 0);
    assert_eq!(st["url"], rx.url("/in"));
    let metrics = crate::observability::scrape(&s).await;
    assert!(
        metrics
            .contains("pavilion_webhook_deliveries_total{webhook=\"all\",result=\"delivered\"} 12"),
        "{metrics}"
    );
}

/// (b) A receiver that is down (its port closed) and comes back misses
/// nothing, and gets the events in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_then_back_misses_nothing() {
    let mut rx = Receiver::start().await;
    rx.down().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = file(
        dir.path(),
        "serve.toml",
        &hook("down", &rx.url("/"), "max_attempts = 100\nretry_initial = \"100ms\"\nretry_max = \"400ms\"\ntimeout = \"2s\""),
    );
    let s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    for i in 0..3 {
        push_image(&s, "down/app", &format!("v{i}"), &format!("d{i}")).await;
    }
    wait_for("a failed attempt recorded", 30, || async {
        status(&s, "down").await["last_error"].is_string()
    })
    .await;
    let st = status(&s, "down").await;
    assert!(
        st["last_error"].as_str().unwrap().contains("connect"),
        "{st}"
    );
    assert_eq!(st["cursor"], 0);
    rx.up().await;
    wait_for("6 events", 60, || async {
        first_arrivals(&rx.delivered()).len() >= 6
    })
    .await;
    let got = first_arrivals(&rx.delivered());
    let ids: Vec<String> = got.iter().map(|g| g.h("ce-id").to_string()).collect();
    let want: Vec<String> = feed(&s)
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, want);
    assert_eq!(
        got.iter().map(Got::seq).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
}

/// (c) A receiver answering 500: after `max_attempts` the event is a dead
/// letter (listed), the cursor moves on and later events are delivered;
/// `events replay --dead` delivers the dead letters once the receiver is
/// fixed, and `--from` sends everything after a sequence number again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_events_are_dead_lettered_and_replayed() {
    let rx = Receiver::start().await;
    rx.shared.fail.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let cfg = file(
        dir.path(),
        "serve.toml",
        &hook(
            "dl",
            &rx.url("/"),
            "max_attempts = 3\nretry_initial = \"50ms\"\nretry_max = \"100ms\"",
        ),
    );
    let s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    push_image(&s, "dead/app", "v1", "dead").await;
    wait_for("2 dead letters", 60, || async {
        status(&s, "dl").await["dead_letters"] == 2
    })
    .await;
    let st = status(&s, "dl").await;
    assert_eq!(st["cursor"], 2, "{st}");
    let dead = st["dead"].as_array().unwrap();
    assert_eq!(
        (dead[0]["seq"].as_i64(), dead[1]["seq"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(dead[0]["attempts"], 3);
    assert!(dead[0]["error"].as_str().unwrap().contains("500"), "{st}");
    assert_eq!(rx.got().len(), 6, "three attempts each");
    rx.shared.fail.store(false, Ordering::SeqCst);
    push_image(&s, "live/app", "v1", "live").await;
    wait_for("the later events", 60, || async {
        rx.delivered().len() >= 2
    })
    .await;
    assert_eq!(
        rx.delivered().iter().map(Got::seq).collect::<Vec<_>>(),
        [3, 4]
    );
    assert_eq!(status(&s, "dl").await["dead_letters"], 2);

    let out = replay(&s, &["--webhook", "dl", "--dead"]).await;
    assert!(out.contains("2 dead letters queued"), "{out}");
    wait_for("the dead letters delivered", 60, || async {
        rx.delivered().len() >= 4
    })
    .await;
    let seqs: Vec<i64> = rx.delivered().iter().map(Got::seq).collect();
    assert_eq!(seqs, [3, 4, 1, 2]);
    wait_for("no dead letters left", 30, || async {
        status(&s, "dl").await["dead_letters"] == 0
    })
    .await;

    let out = replay(&s, &["--webhook", "dl", "--from", "2", "--output", "json"]).await;
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["cursor"], 2);
    wait_for("3 and 4 again", 60, || async { rx.delivered().len() >= 6 }).await;
    let seqs: Vec<i64> = rx.delivered().iter().map(Got::seq).collect();
    assert_eq!(seqs, [3, 4, 1, 2, 3, 4]);

    let metrics = crate::observability::scrape(&s).await;
    assert!(
        metrics.contains("pavilion_webhook_deliveries_total{webhook=\"dl\",result=\"dead\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pavilion_webhook_deliveries_total{webhook=\"dl\",result=\"failed\"} 6"),
        "{metrics}"
    );
    // Mistakes are 400s and 404s naming what is wrong, never 500s.
    for (q, code) in [
        ("dl/replay", 400),
        ("dl/replay?from=x", 400),
        ("dl/replay?from=99", 400),
        ("nope/replay?dead=true", 404),
    ] {
        let r = client()
            .post(s.url(&format!("/pavilion/v1/webhooks/{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), code, "{q}: {}", r.text().await.unwrap());
    }
}

/// (d) `kill -9` of the server while it delivers, then a restart: every
/// event arrives at least once (a duplicate is allowed, a loss is not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_delivery_loses_nothing() {
    let rx = Receiver::start().await;
    rx.shared.delay_ms.store(100, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let cfg = file(dir.path(), "serve.toml", &hook("k", &rx.url("/"), ""));
    let mut s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    for i in 0..8 {
        push_image(&s, "kill/app", &format!("v{i}"), &format!("k{i}")).await;
    }
    wait_for("some deliveries", 60, || async { rx.got().len() >= 3 }).await;
    s.kill9();
    s.restart();
    wait_for("16 events", 90, || async {
        first_arrivals(&rx.delivered()).len() >= 16
    })
    .await;
    let ids: BTreeSet<String> = rx
        .delivered()
        .iter()
        .map(|g| g.h("ce-id").to_string())
        .collect();
    let want: BTreeSet<String> = feed(&s)
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, want);
    eprintln!(
        "kill -9: {} requests for {} events",
        rx.delivered().len(),
        want.len()
    );
    in_repository_order(&first_arrivals(&rx.delivered()));
}

/// (e) Two replicas on one PostgreSQL database with one webhook: every
/// event arrives once, in order, from one replica at a time (the lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_deliver_one_at_a_time() {
    let rx = Receiver::start().await;
    rx.shared.delay_ms.store(20, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let cfg = file(dir.path(), "serve.toml", &hook("r", &rx.url("/"), ""));
    let Some(s) = Server::start_with(Backend::Postgres, &["--config", &cfg]) else {
        return;
    };
    let r = s.replica();
    for i in 0..5 {
        let server = if i % 2 == 0 { &s } else { &r };
        push_image(server, "rep/app", &format!("v{i}"), &format!("r{i}")).await;
    }
    wait_for("10 events", 60, || async {
        first_arrivals(&rx.delivered()).len() >= 10
    })
    .await;
    let got = rx.delivered();
    assert_eq!(
        got.iter().map(Got::seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(rx.shared.max_in_flight.load(Ordering::SeqCst), 1);
    let (a, b) = (status(&s, "r").await, status(&r, "r").await);
    assert!(a["lease_holder"].is_string(), "{a}");
    assert_eq!(a["lease_holder"], b["lease_holder"]);
}

/// (f) Each kind of bad entry stops serve with one line naming the key.
#[test]
fn a_bad_webhook_stops_serve_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let ok = "url = \"http://127.0.0.1:9/\"\nsecret = \"0123456789abcdef\"\n";
    let missing_file = dir.path().join("missing.key");
    let cases = [
        (format!("[[events.webhook]]\n{ok}"), "name"),
        (format!("[[events.webhook]]\nname = \"Bad_Name\"\n{ok}"), "name"),
        ("[[events.webhook]]\nname = \"a\"\nsecret = \"0123456789abcdef\"\n".to_string(), "url"),
        ("[[events.webhook]]\nname = \"a\"\nurl = \"ftp://h/\"\nsecret = \"0123456789abcdef\"\n".to_string(), "url"),
        ("[[events.webhook]]\nname = \"a\"\nurl = \"http://h/\"\n".to_string(), "secret"),
        ("[[events.webhook]]\nname = \"a\"\nurl = \"http://h/\"\nsecret = \"short\"\n".to_string(), "secret"),
        (format!("[[events.webhook]]\nname = \"a\"\nurl = \"http://h/\"\nsecret_file = \"{}\"\n", missing_file.display()), "secret_file"),
        (format!("[[events.webhook]]\nname = \"a\"\n{ok}types = [\"dev.pavilion.nope\"]\n"), "types"),
        (format!("[[events.webhook]]\nname = \"a\"\n{ok}repositories = [\"a[\"]\n"), "repositories"),
        (format!("[[events.webhook]]\nname = \"a\"\n{ok}max_attempts = 0\n"), "max_attempts"),
        (format!("[[events.webhook]]\nname = \"a\"\n{ok}retry_initial = \"soon\"\n"), "retry_initial"),
        (format!("[[events.webhook]]\nname = \"a\"\n{ok}retry_initial = \"1m\"\nretry_max = \"1s\"\n"), "retry_max"),
        (format!("[[events.webhook]]\nname = \"a\"\n{ok}timeout = \"0s\"\n"), "timeout"),
        (format!("[[events.webhook]]\nname = \"a\"\n{ok}colour = \"red\"\n"), "colour"),
        (format!("[[events.webhook]]\nname = \"a\"\n{ok}[[events.webhook]]\nname = \"a\"\n{ok}"), "used twice"),
    ];
    for (text, names) in cases {
        let cfg = file(dir.path(), "serve.toml", &text);
        let data = dir.path().join("data");
        let out = crate::common::run::pavilion(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--config",
            &cfg,
        ]);
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(names), "{text}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{text}: {err}");
    }
}

/// (g) `repositories` and `types` choose what a webhook is sent; it moves
/// past the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_and_types_filter() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}{}",
        hook("repo", &rx.url("/repo"), "repositories = [\"keep/**\"]"),
        hook(
            "types",
            &rx.url("/types"),
            "types = [\"dev.pavilion.artifact.tagged\"]"
        ),
    );
    let cfg = file(dir.path(), "serve.toml", &text);
    let s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    push_image(&s, "keep/x/y", "v1", "keep").await;
    push_image(&s, "drop/z", "v1", "drop").await;
    push_image(&s, "keep/x/y", "v2", "keep2").await;
    wait_for("both cursors at the end", 60, || async {
        status(&s, "repo").await["cursor"] == 6 && status(&s, "types").await["cursor"] == 6
    })
    .await;
    let got = rx.delivered();
    let of = |p: &str| -> Vec<(String, String)> {
        got.iter()
            .filter(|g| g.path == p)
            .map(|g| (g.h("ce-type").to_string(), g.h("ce-subject").to_string()))
            .collect()
    };
    let repo = of("/repo");
    assert_eq!(repo.len(), 4, "{repo:?}");
    assert!(
        repo.iter().all(|(_, s)| s.starts_with("keep/x/y")),
        "{repo:?}"
    );
    let types = of("/types");
    assert_eq!(
        types,
        [
            (
                "dev.pavilion.artifact.tagged".to_string(),
                "keep/x/y:v1".to_string()
            ),
            (
                "dev.pavilion.artifact.tagged".to_string(),
                "drop/z:v1".to_string()
            ),
            (
                "dev.pavilion.artifact.tagged".to_string(),
                "keep/x/y:v2".to_string()
            ),
        ]
    );
    assert_eq!(status(&s, "types").await["lag"], 0);
}

/// Under authentication the list needs the feed's grant (the catalog),
/// and a replay the registry-wide grant: a grant on every repository,
/// however wide, is not enough for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_need_the_registry_grant() {
    use crate::common::auth::{basic, htpasswd_file};
    let dir = tempfile::tempdir().unwrap();
    let Some(users) = htpasswd_file(dir.path(), &[("admin", "pw-a"), ("repos", "pw-r")]) else {
        return;
    };
    let text = format!(
        "{}[auth]\nhtpasswd = {:?}\n[auth.grants]\nadmin = [\"registry:catalog:*\"]\nrepos = [\"repository:**:*\"]\n",
        hook("h", "http://127.0.0.1:9/", ""),
        users.to_str().unwrap()
    );
    let cfg = file(dir.path(), "serve.toml", &text);
    let s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    let call = |method: reqwest::Method, path: &str, who: Option<String>| {
        let mut r = client().request(method, s.url(path));
        if let Some(w) = who {
            r = r.header("authorization", w);
        }
        r.send()
    };
    let list = "/pavilion/v1/webhooks";
    let replay = "/pavilion/v1/webhooks/h/replay?from=0";
    let (admin, repos) = (basic("admin", "pw-a"), basic("repos", "pw-r"));
    use reqwest::Method;
    assert_eq!(call(Method::GET, list, None).await.unwrap().status(), 401);
    assert_eq!(
        call(Method::POST, replay, None).await.unwrap().status(),
        401
    );
    assert_eq!(
        call(Method::GET, list, Some(repos.clone()))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        call(Method::POST, replay, Some(repos))
            .await
            .unwrap()
            .status(),
        403
    );
    let r = call(Method::GET, list, Some(admin.clone())).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["webhooks"][0]["name"], "h");
    assert_eq!(
        call(Method::POST, replay, Some(admin))
            .await
            .unwrap()
            .status(),
        200
    );
}

/// A redirect is a failed attempt, never followed: the receiver is what
/// the configuration names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let rx = Receiver::start().await;
    rx.shared.redirect.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let cfg = file(
        dir.path(),
        "serve.toml",
        &hook("moved", &rx.url("/hook"), "max_attempts = 1"),
    );
    let s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    push_image(&s, "moved/app", "v1", "moved").await;
    wait_for("2 dead letters", 60, || async {
        status(&s, "moved").await["dead_letters"] == 2
    })
    .await;
    let st = status(&s, "moved").await;
    assert!(st["last_error"].as_str().unwrap().contains("302"), "{st}");
    let paths: Vec<String> = rx.got().iter().map(|g| g.path.clone()).collect();
    assert_eq!(paths, ["/hook", "/hook"]);
}

/// SIGTERM while an attempt waits on a slow receiver: serve stops cleanly
/// (the attempt is abandoned, to be sent again after the restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_slow_receiver() {
    let rx = Receiver::start().await;
    rx.shared.delay_ms.store(60_000, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let cfg = file(
        dir.path(),
        "serve.toml",
        &hook("slow", &rx.url("/"), "timeout = \"90s\""),
    );
    let mut s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    push_image(&s, "slow/app", "v1", "slow").await;
    wait_for("an attempt in flight", 60, || async {
        rx.shared.max_in_flight.load(Ordering::SeqCst) >= 1
    })
    .await;
    let stopped = tokio::task::spawn_blocking(move || {
        let ok = s.terminate();
        (ok, s)
    })
    .await
    .unwrap();
    assert!(stopped.0, "serve did not stop cleanly: {}", stopped.1.log());
    rx.shared.delay_ms.store(0, Ordering::SeqCst);
    let mut s = stopped.1;
    s.restart();
    wait_for("both events after the restart", 60, || async {
        first_arrivals(&rx.delivered()).len() >= 2
    })
    .await;
}

/// A change made by a request that carried a W3C `traceparent` reaches the
/// webhook with it as `ce-traceparent` (the CloudEvents distributed
/// tracing extension, in binary mode), so a receiver can join the trace;
/// the events of a request without one carry none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_traceparent_reaches_the_webhook() {
    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = file(dir.path(), "serve.toml", &hook("all", &rx.url("/in"), ""));
    let s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    push_image(&s, "team/t", "v0", "t0").await;
    let untraced = feed(&s).await.len();
    let m = get_manifest(&s, "team/t", "v0").await;
    assert_eq!(m.status(), 200);
    let bytes = m.bytes().await.unwrap();
    // put_manifest, with the caller's trace.
    let r = client()
        .put(s.url("/v2/team/t/manifests/traced"))
        .header("content-type", OCI_MANIFEST)
        .header("traceparent", TP)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let events = feed(&s).await;
    assert!(
        events.len() > untraced,
        "the tag wrote an event: {events:#?}"
    );
    wait_for("every delivery", 60, || async {
        first_arrivals(&rx.delivered()).len() >= events.len()
    })
    .await;
    for g in first_arrivals(&rx.delivered()) {
        let seq = g.seq() as usize;
        if seq <= untraced {
            assert_eq!(g.h("ce-traceparent"), "", "seq {seq}: {:?}", g.headers);
        } else {
            assert_eq!(g.h("ce-traceparent"), TP, "seq {seq}: {:?}", g.headers);
        }
    }
}
