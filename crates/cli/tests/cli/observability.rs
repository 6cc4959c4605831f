//! Observability (issue 18, first piece): `/metrics` read by the official
//! Prometheus client's text parser (Python `prometheus_client`), counters
//! and histograms moving exactly as the test's requests do, label values
//! bounded whatever repositories are pushed, `/healthz`, and `/readyz`
//! turning unready when PostgreSQL or the object store goes away and
//! ready again when it is back; the access log line per request.

use crate::common::*;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// One sample: metric name, labels, value.
pub(crate) type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

/// Parses an exposition with `prometheus_client.parser` (the venv the test
/// command made, as `PAVILION_TEST_ORAS_PYTHON` names it).
pub(crate) fn parse(text: &str) -> Option<Samples> {
    let python = std::env::var("PAVILION_TEST_ORAS_PYTHON").ok();
    require_peer(
        "Python with prometheus_client (PAVILION_TEST_ORAS_PYTHON)",
        python.is_some(),
    )?;
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new(python?)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// A server with authentication (`admin` holds the catalog grant, `dev`
/// only `dev/*`: common::auth) and a metrics listener on a free port; None
/// without an htpasswd tool.
pub(crate) fn auth_server_with_metrics_listener(dir: &std::path::Path) -> Option<Server> {
    let cfg = crate::common::auth::admin_and_dev_config(dir, "metrics_addr = \"127.0.0.1:0\"\n")?;
    Server::start_with(
        Backend::Sqlite,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--log",
            "warn,pavilion_registry::server=info",
        ],
    )
}

/// The metrics listener's address, from the server's log.
pub(crate) async fn metrics_listener(log: impl Fn() -> String) -> String {
    for _ in 0..100 {
        let found = log()
            .lines()
            .find(|l| l.contains("metrics listener"))
            .and_then(|l| l.split("addr=").nth(1))
            .map(|a| a.split_whitespace().next().unwrap_or("").to_string());
        if let Some(a) = found {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the metrics listener's address is not logged: {}", log());
}

pub(crate) async fn scrape(s: &Server) -> String {
    let r = client().get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    r.text().await.unwrap()
}

/// The value of the sample `name` whose labels include `want` (0 if none).
pub(crate) fn value(samples: &Samples, name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

const BASE: &[(&str, &str)] = &[("route", "/v2/"), ("method", "GET"), ("status", "200")];
const BLOB_404: &[(&str, &str)] = &[
    ("route", "/v2/{name}/blobs/{digest}"),
    ("method", "GET"),
    ("status", "404"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histograms_move_exactly_as_requests_do() {
    let s = Server::start_with(Backend::Sqlite, &["--log", "warn,pavilion::access=info"]).unwrap();
    // Something the registry served before, so every family is present.
    client().get(s.url("/v2/")).send().await.unwrap();
    let Some(before) = parse(&scrape(&s).await) else {
        return;
    };
    for _ in 0..7 {
        let r = client().get(s.url("/v2/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let missing = format!("sha256:{}", "0".repeat(64));
    for _ in 0..3 {
        let r = client()
            .get(s.url(&format!("/v2/obs/app/blobs/{missing}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let blob = vec![5u8; 300_000];
    let digest = sha256(&blob);
    let r = client()
        .post(s.url(&format!("/v2/obs/app/blobs/uploads/?digest={digest}")))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client()
        .get(s.url(&format!("/v2/obs/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), blob.len());
    let after = parse(&scrape(&s).await).unwrap();
    let delta = |name: &str, l: &[(&str, &str)]| value(&after, name, l) - value(&before, name, l);
    assert_eq!(delta("pavilion_http_requests_total", BASE), 7.0);
    assert_eq!(delta("pavilion_http_requests_total", BLOB_404), 3.0);
    let base_hist = &[("route", "/v2/"), ("method", "GET")];
    assert_eq!(
        delta("pavilion_http_request_duration_seconds_count", base_hist),
        7.0
    );
    let inf: Vec<(&str, &str)> = [base_hist.as_slice(), &[("le", "+Inf")]].concat();
    assert_eq!(
        delta("pavilion_http_request_duration_seconds_bucket", &inf),
        7.0
    );
    // Buckets never decrease with le.
    let mut buckets: Vec<(f64, f64)> = after
        .iter()
        .filter(|(n, l, _)| {
            n == "pavilion_http_request_duration_seconds_bucket"
                && l.get("route").map(String::as_str) == Some("/v2/")
                && l.get("method").map(String::as_str) == Some("GET")
        })
        .map(|(_, l, v)| (l["le"].parse::<f64>().unwrap_or(f64::INFINITY), *v))
        .collect();
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert!(delta("pavilion_http_body_bytes_total", &[("direction", "in")]) >= blob.len() as f64);
    assert!(delta("pavilion_http_body_bytes_total", &[("direction", "out")]) >= blob.len() as f64);
    assert_eq!(
        delta(
            "pavilion_blob_transfer_duration_seconds_count",
            &[("direction", "download")]
        ),
        1.0
    );
    // Database figures are read at most every few seconds.
    let mut stored = 0.0;
    for _ in 0..40 {
        stored = value(
            &parse(&scrape(&s).await).unwrap(),
            "pavilion_storage_stored_bytes",
            &[],
        );
        if stored >= blob.len() as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(stored >= blob.len() as f64, "stored bytes {stored}");
    // No request is in flight but the scrape itself.
    let in_flight: f64 = after
        .iter()
        .filter(|(n, l, _)| {
            n == "pavilion_http_requests_in_flight"
                && l.get("route").map(String::as_str) != Some("/metrics")
        })
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(in_flight, 0.0);
    // One access log line per request, with its request id.
    let r = client()
        .get(s.url("/v2/"))
        .header("x-request-id", "obs-test-42")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "obs-test-42");
    let mut logged = String::new();
    for _ in 0..50 {
        logged = s.log();
        if logged.contains("obs-test-42") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = logged
        .lines()
        .find(|l| l.contains("obs-test-42"))
        .unwrap_or_else(|| panic!("no access log line: {logged}"));
    for part in [
        "route=\"/v2/\"",
        "status=200",
        "4bf92f3577b34da6a3ce929d0e0e4736",
    ] {
        assert!(line.contains(part), "{part} missing in {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_repositories_add_no_label_values() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let blob = b"tiny".to_vec();
    let digest = sha256(&blob);
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let each = |i: usize| {
        let (blob, digest, s) = (blob.clone(), digest.clone(), &s);
        async move {
            let repo = format!("card/r{i}");
            let r = client()
                .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
                .body(blob)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let r = client()
                .head(s.url(&format!("/v2/{repo}/blobs/{digest}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let r = client()
                .get(s.url(&format!("/v2/{repo}/manifests/none")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404);
        }
    };
    // One repository, then a thousand more with the same requests.
    each(0).await;
    // A scrape counts itself in the next one: two, so both see /metrics.
    let _ = scrape(&s).await;
    let first = scrape(&s).await;
    for i in 1..=1000 {
        each(i).await;
    }
    let end = scrape(&s).await;
    assert!(
        !end.contains("card/r"),
        "a repository name became a label value"
    );
    assert!(
        !end.contains(digest.as_str()),
        "a digest became a label value"
    );
    assert_eq!(
        series(&first),
        series(&end),
        "series grew with repositories"
    );
    assert!(parse(&end).is_some() || !peers_required());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_the_store() {
    let (Some(pg), Ok(s3)) = (
        fresh_postgres_db(),
        std::env::var("PAVILION_TEST_S3_ENDPOINT").map_err(|_| {
            require_peer("radosgw (PAVILION_TEST_S3_ENDPOINT)", false);
        }),
    ) else {
        return;
    };
    // Both reached through proxies the test can switch off.
    let (db_proxy, db_url) = postgres_behind_switch(&pg).await;
    let store_proxy = switch_proxy(s3.trim_start_matches("http://").to_string()).await;
    let storage = format!(
        "s3://pavilion-test/readyz-{}?endpoint=http://{}&region=default&allow_http=true&max_retries=0",
        std::process::id(),
        store_proxy.addr
    );
    let s = Server::start_with(
        Backend::Sqlite,
        &["--database-url", &db_url, "--storage", &storage],
    )
    .unwrap();
    let ready = |s: &Server| {
        let url = s.url("/readyz");
        async move {
            let r = client().get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    let health = client().get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(ready(&s).await.0, 200);
    for (proxy, what) in [
        (&db_proxy, "metadata database"),
        (&store_proxy, "blob store"),
    ] {
        proxy.up.store(false, Ordering::SeqCst);
        let mut got = (0, String::new());
        for _ in 0..40 {
            got = ready(&s).await;
            if got.0 == 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(got.0, 503, "{what} away: {}", got.1);
        assert!(got.1.contains(what), "{}", got.1);
        // The process itself is still healthy.
        let health = client().get(s.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        proxy.up.store(true, Ordering::SeqCst);
        for _ in 0..60 {
            got = ready(&s).await;
            if got.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(got.0, 200, "{what} back: {}", got.1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_catalog_grant_except_on_the_metrics_listener() {
    use crate::common::auth::basic;
    let tmp = tempfile::tempdir().unwrap();
    let Some(s) = auth_server_with_metrics_listener(tmp.path()) else {
        return;
    };
    let get = |url: String, who: Option<String>| {
        let mut r = client().get(url);
        if let Some(w) = who {
            r = r.header("authorization", w);
        }
        r.send()
    };
    let metrics = s.url("/metrics");
    assert_eq!(get(metrics.clone(), None).await.unwrap().status(), 401);
    let dev = get(metrics.clone(), Some(basic("dev", "pw-d")))
        .await
        .unwrap();
    assert_eq!(dev.status(), 403);
    let admin = get(metrics, Some(basic("admin", "pw-a"))).await.unwrap();
    assert_eq!(admin.status(), 200);
    // Probes need nothing.
    assert_eq!(get(s.url("/healthz"), None).await.unwrap().status(), 200);
    assert_eq!(get(s.url("/readyz"), None).await.unwrap().status(), 200);
    // The metrics listener: its address from the log line.
    let addr = metrics_listener(|| s.log()).await;
    let open = get(format!("http://{addr}/metrics"), None).await.unwrap();
    assert_eq!(open.status(), 200);
    assert!(open
        .text()
        .await
        .unwrap()
        .contains("pavilion_http_requests_total"));
    assert_eq!(
        get(format!("http://{addr}/readyz"), None)
            .await
            .unwrap()
            .status(),
        200
    );
    // Nothing else is served there.
    let api = get(format!("http://{addr}/v2/_catalog"), None)
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_access_fields_at_the_top() {
    let s = Server::start_with(
        Backend::Sqlite,
        &[
            "--log-format",
            "json",
            "--log",
            "warn,pavilion::access=info",
        ],
    )
    .unwrap();
    let r = client()
        .get(s.url("/v2/json/logs/tags/list"))
        .header("x-request-id", "json-log-1")
        .header("authorization", "Basic c2VjcmV0OnB3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let mut line = None;
    for _ in 0..50 {
        line = s
            .log()
            .lines()
            .find(|l| l.contains("json-log-1"))
            .map(str::to_string);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = line.expect("the access line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(v["target"], "pavilion::access");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["request_id"], "json-log-1");
    assert_eq!(v["route"], "/v2/{name}/tags/list");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["status"], 404);
    assert!(v["timestamp"].is_string(), "{v}");
    assert!(!line.contains("c2VjcmV0OnB3"), "no credentials: {line}");
    for l in s.log().lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(l).is_ok(),
            "every line is JSON: {l}"
        );
    }
}

#[test]
fn a_bad_log_format_or_a_metrics_address_in_use_stops_serve_with_one_line() {
    use crate::common::run::pv;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let r = pv(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--data",
        d,
        "--log-format",
        "xml",
    ]);
    assert!(r.fails(2).contains("not text or json"), "{}", r.stderr);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let r = pv(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--data",
        d,
        "--metrics-addr",
        &port,
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains(&port), "{}", r.stderr);
    assert!(
        !r.stderr.contains("pavilion listening on"),
        "refused before reporting ready: {}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_turned_off() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("pavilion.toml");
    std::fs::write(&cfg, "[metrics]\nenabled = false\n").unwrap();
    let s = Server::start_with(Backend::Sqlite, &["--config", cfg.to_str().unwrap()]).unwrap();
    assert_eq!(
        client().get(s.url("/v2/")).send().await.unwrap().status(),
        200
    );
    let r = client().get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("metrics are off"));
    // The rest of observability stays: health and live transfers.
    assert_eq!(
        client()
            .get(s.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let t = client()
        .get(s.url("/pavilion/v1/transfers"))
        .send()
        .await
        .unwrap();
    assert_eq!(t.status(), 200);
}
