//! OpenTelemetry traces (issue 18): `serve --otlp-endpoint` exports one
//! server span per request over OTLP/HTTP, continuing the caller's W3C
//! `traceparent`, with child spans for hashing, the store's commit (and
//! object storage parts), policy evaluation and signature verification,
//! decoded here by a receiver built on the OpenTelemetry project's own
//! messages; an unreachable collector neither fails nor stalls requests;
//! a bad endpoint stops serve with one line.

use crate::common::notation::{policy_dir, User};
use crate::common::otlp::{attr_int, attr_str, hex_id, Collector, Received};
use crate::common::run::pv;
use crate::common::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use std::time::{Duration, Instant};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const UPLOAD_PARENT: &str = "00f067aa0ba902b7";
const MANIFEST_PARENT: &str = "b7ad6b7169203331";
const REPO: &str = "traced/model";

const PUSH_RULES: &str = r#"
package pavilion.push
import rego.v1

deny contains "forbidden artifact type" if input.artifactType == "application/vnd.example.forbidden"
"#;

/// `pavilion_trace_spans_total` by result from `/metrics` at `url`, parsed
/// with Prometheus's own parser (`None` without it).
async fn span_totals(
    http: &reqwest::Client,
    url: String,
) -> Option<std::collections::BTreeMap<String, f64>> {
    let text = http.get(url).send().await.unwrap().text().await.unwrap();
    let samples = crate::observability::parse(&text)?;
    Some(
        samples
            .into_iter()
            .filter(|(name, ..)| name == "pavilion_trace_spans_total")
            .map(|(_, labels, v)| (labels["result"].clone(), v))
            .collect(),
    )
}

fn traceparent(parent: &str) -> String {
    format!("00-{TRACE}-{parent}-01")
}

fn request_id(r: &reqwest::Response) -> String {
    hdr(r, "x-request-id").expect("x-request-id")
}

/// The server span of the request that got `id` as its request id.
fn server_span<'a>(spans: &'a [Received], id: &str) -> &'a Received {
    spans
        .iter()
        .find(|r| attr_str(&r.span.attributes, "pavilion.request_id") == Some(id))
        .unwrap_or_else(|| panic!("no span for request {id}: {spans:#?}"))
}

/// The spans named `name` whose parent is `parent`.
fn children<'a>(spans: &'a [Received], parent: &Received, name: &str) -> Vec<&'a Received> {
    spans
        .iter()
        .filter(|r| r.span.name == name && r.span.parent_span_id == parent.span.span_id)
        .collect()
}

/// A request span continuing the caller's trace, with the attributes the
/// HTTP semantic conventions name.
fn assert_server_span(r: &Received, method: &str, route: &str, status: i64, parent: &str) {
    let s = &r.span;
    assert_eq!(s.name, format!("{method} {route}"));
    assert_eq!(s.kind, SpanKind::Server as i32, "{s:?}");
    assert_eq!(hex_id(&s.trace_id), TRACE, "the caller's trace: {s:?}");
    assert_eq!(
        hex_id(&s.parent_span_id),
        parent,
        "the caller's span: {s:?}"
    );
    assert_eq!(s.span_id.len(), 8);
    assert_eq!(s.flags & 0xff, 1, "sampled, as the caller said");
    assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
    let a = &s.attributes;
    assert_eq!(attr_str(a, "http.request.method"), Some(method));
    assert_eq!(attr_str(a, "http.route"), Some(route));
    assert_eq!(attr_int(a, "http.response.status_code"), Some(status));
    assert!(attr_str(a, "url.path").is_some_and(|p| p.starts_with(&format!("/v2/{REPO}/"))));
    assert!(
        a.iter().all(|kv| !kv.key.starts_with("otel.")),
        "steering fields are not attributes: {a:?}"
    );
}

/// Pushes a blob in two PATCH chunks and a manifest under a push policy,
/// every request carrying a `traceparent`, and reads the spans back.
/// `storage`: a `--storage` URL (object storage), else the data directory.
async fn traced_push(storage: Option<String>, chunk: usize) {
    let collector = Collector::start().await;
    let user = User::new();
    let rules = policy_dir(&[("push.rego", PUSH_RULES)]);
    let (tp, ts) = (user.trust_policy(), user.trust_store());
    let mut args = vec![
        "--otlp-endpoint",
        &collector.base,
        "--policy",
        rules.path().to_str().unwrap(),
        "--trust-policy",
        &tp,
        "--trust-store",
        &ts,
        "--log",
        "warn,pavilion::access=info",
    ];
    if let Some(url) = &storage {
        args.extend(["--storage", url]);
    }
    let s = Server::start_with(Backend::Sqlite, &args).unwrap();
    let http = client();
    let tp_upload = traceparent(UPLOAD_PARENT);

    // The layer: POST, two chunks, PUT.
    let layer: Vec<u8> = (0..2 * chunk).map(|i| (i % 251) as u8).collect();
    let digest = sha256(&layer);
    let r = http
        .post(s.url(&format!("/v2/{REPO}/blobs/uploads/")))
        .header("traceparent", &tp_upload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let post_id = request_id(&r);
    let loc = hdr(&r, "location").unwrap();
    let mut patch_ids = Vec::new();
    for (i, part) in layer.chunks(chunk).enumerate() {
        let start = i * chunk;
        let r = http
            .patch(s.url(&loc))
            .header("traceparent", &tp_upload)
            .header("Content-Type", "application/octet-stream")
            .header(
                "Content-Range",
                format!("{start}-{}", start + part.len() - 1),
            )
            .body(part.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        patch_ids.push(request_id(&r));
    }
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = http
        .put(s.url(&format!("{loc}{sep}digest={digest}")))
        .header("traceparent", &tp_upload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let put_id = request_id(&r);

    // The config without a traceparent, then the manifest with one.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = push_blob(&s, REPO, config).await;
    let manifest = image_manifest(
        (&config_digest, config.len()),
        &[(&digest, layer.len())],
        "",
    );
    let r = http
        .put(s.url(&format!("/v2/{REPO}/manifests/v1")))
        .header("traceparent", traceparent(MANIFEST_PARENT))
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let manifest_id = request_id(&r);

    // No traceparent: the server starts a trace of its own.
    let r = http.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let base_id = request_id(&r);

    // Exported within the batch delay (5 s by default).
    let ids = [&post_id, &put_id, &manifest_id, &base_id]
        .into_iter()
        .chain(&patch_ids)
        .cloned()
        .collect::<Vec<_>>();
    let spans = collector
        .wait_for(Duration::from_secs(30), |spans| {
            ids.iter().all(|id| {
                spans
                    .iter()
                    .any(|r| attr_str(&r.span.attributes, "pavilion.request_id") == Some(id))
            }) && spans.iter().any(|r| r.span.name == "signature.verify")
        })
        .await;
    let (content_types, undecodable) = collector.requests();
    assert_eq!(undecodable, 0, "every export decodes");
    assert!(
        content_types.iter().all(|c| c == "application/x-protobuf"),
        "{content_types:?}"
    );

    const UPLOAD: &str = "/v2/{name}/blobs/uploads/{id}";
    let post = server_span(&spans, &post_id);
    assert_server_span(
        post,
        "POST",
        "/v2/{name}/blobs/uploads/",
        202,
        UPLOAD_PARENT,
    );
    let mut hashed = 0;
    for (id, part) in patch_ids.iter().zip(layer.chunks(chunk)) {
        let patch = server_span(&spans, id);
        assert_server_span(patch, "PATCH", UPLOAD, 202, UPLOAD_PARENT);
        // Each chunk's bytes are hashed in a span under its request.
        let hash = children(&spans, patch, "store.hash");
        assert_eq!(hash.len(), 1, "one hashing span per chunk: {spans:#?}");
        assert_eq!(hash[0].span.trace_id, patch.span.trace_id);
        assert_eq!(hash[0].span.kind, SpanKind::Internal as i32);
        assert_eq!(
            attr_int(&hash[0].span.attributes, "pavilion.bytes"),
            Some(part.len() as i64)
        );
        hashed += part.len();
    }
    assert_eq!(hashed, layer.len());
    let put = server_span(&spans, &put_id);
    assert_server_span(put, "PUT", UPLOAD, 201, UPLOAD_PARENT);
    let commit = children(&spans, put, "store.commit");
    assert_eq!(commit.len(), 1, "{spans:#?}");
    assert_eq!(
        attr_int(&commit[0].span.attributes, "pavilion.bytes"),
        Some(layer.len() as i64)
    );

    let m = server_span(&spans, &manifest_id);
    assert_server_span(
        m,
        "PUT",
        "/v2/{name}/manifests/{reference}",
        201,
        MANIFEST_PARENT,
    );
    let policy = children(&spans, m, "policy.evaluate");
    assert_eq!(policy.len(), 1, "{spans:#?}");
    let pa = &policy[0].span.attributes;
    assert_eq!(attr_str(pa, "pavilion.policy.point"), Some("push"));
    assert!(
        matches!(
            pa.iter()
                .find(|kv| kv.key == "pavilion.policy.allowed")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref()),
            Some(Value::BoolValue(true))
        ),
        "{pa:?}"
    );
    let verify = children(&spans, policy[0], "signature.verify");
    assert_eq!(
        verify.len(),
        1,
        "verification runs under the policy: {spans:#?}"
    );
    assert_eq!(verify[0].span.trace_id, m.span.trace_id);
    // Children end before (or as) their parents do.
    assert!(verify[0].span.end_time_unix_nano <= policy[0].span.end_time_unix_nano);
    assert!(policy[0].span.end_time_unix_nano <= m.span.end_time_unix_nano);

    // Object storage: the parts sent are spans of the upload's trace.
    if storage.is_some() {
        let ours: Vec<_> = [&post_id, &put_id]
            .into_iter()
            .chain(&patch_ids)
            .map(|id| server_span(&spans, id).span.span_id.clone())
            .chain(commit.iter().map(|c| c.span.span_id.clone()))
            .collect();
        let parts: Vec<_> = spans
            .iter()
            .filter(|r| r.span.name == "store.put_part")
            .collect();
        assert!(!parts.is_empty(), "{spans:#?}");
        for p in &parts {
            assert_eq!(hex_id(&p.span.trace_id), TRACE);
            assert!(ours.contains(&p.span.parent_span_id), "{p:#?}");
            assert!(attr_int(&p.span.attributes, "pavilion.bytes").is_some_and(|n| n > 0));
        }
    }

    // A request without a traceparent is the root of a new trace.
    let base = server_span(&spans, &base_id);
    assert_eq!(base.span.name, "GET /v2/");
    assert!(base.span.parent_span_id.is_empty(), "{base:?}");
    assert_eq!(base.span.trace_id.len(), 16);
    assert!(base.span.trace_id.iter().any(|b| *b != 0));
    assert_ne!(hex_id(&base.span.trace_id), TRACE);

    // Names are templates: no repository or digest in any of them.
    for r in &spans {
        let n = &r.span.name;
        assert!(
            !n.contains("traced") && !n.contains("sha256") && !n.contains("model"),
            "{n}"
        );
        assert_eq!(
            r.resource
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone()),
            Some(Value::StringValue("pavilion".into()))
        );
    }

    // The access log names the span beside the trace.
    let span_id = hex_id(&m.span.span_id);
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("request_id={manifest_id}")))
        .unwrap_or_else(|| panic!("no access line for {manifest_id}:\n{log}"));
    assert!(line.contains(&format!("trace_id=\"{TRACE}\"")), "{line}");
    assert!(line.contains(&format!("span_id=\"{span_id}\"")), "{line}");

    // /metrics counts what the collector took as exported, nothing lost
    // (read between two looks at the collector that agree: the scrape's
    // own span is exported later).
    let mut last = None;
    for _ in 0..50 {
        let before = collector.spans().len();
        let Some(totals) = span_totals(&http, s.url("/metrics")).await else {
            return;
        };
        if collector.spans().len() == before && totals["exported"] == before as f64 {
            last = Some(totals);
            break;
        }
        last = Some(totals);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let totals = last.unwrap();
    assert_eq!(
        totals["exported"],
        collector.spans().len() as f64,
        "{totals:?}"
    );
    assert_eq!(
        (totals["dropped"], totals["failed"]),
        (0.0, 0.0),
        "{totals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_continue_the_callers_trace_with_their_children() {
    traced_push(None, 300_000).await;
}

/// The same with blobs in S3 (radosgw, 5 MiB parts; metadata in SQLite, as
/// PostgreSQL adds nothing here): the parts sent while the chunks arrive
/// and at the commit are spans too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_storage_parts_are_spans_of_the_upload() {
    let endpoint = std::env::var("PAVILION_TEST_S3_ENDPOINT").ok();
    if require_peer("radosgw (PAVILION_TEST_S3_ENDPOINT)", endpoint.is_some()).is_none() {
        return;
    }
    let url = format!(
        "s3://pavilion-test/{}?endpoint={}&region=default&allow_http=true&part_size=5242880",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
        endpoint.unwrap_or_default()
    );
    traced_push(Some(url), 3 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_neither_fails_nor_stalls_requests() {
    // A port nobody listens on: every export is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let s = Server::start_with(
        Backend::Sqlite,
        &["--otlp-endpoint", &endpoint, "--log", "warn"],
    )
    .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let missing = format!("/v2/{REPO}/blobs/sha256:{}", "0".repeat(64));
    let started = Instant::now();
    let mut served = 0;
    // Requests over 12 s: the exporter tries (every 5 s) and fails at
    // least twice meanwhile.
    while served < 200 || started.elapsed() < Duration::from_secs(12) {
        let batch = (0..8).map(|i| {
            let url = if i % 2 == 0 {
                s.url("/v2/")
            } else {
                s.url(&missing)
            };
            http.get(url)
                .header("traceparent", traceparent(UPLOAD_PARENT))
                .send()
        });
        for r in futures::future::join_all(batch).await {
            let status = r
                .expect("no request fails for the collector's sake")
                .status();
            assert!(status == 200 || status == 404, "{status}");
            served += 1;
        }
        if served >= 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Bounded: requests did not wait for exports (each would take at
    // least a refused connection, and a stalled queue would show here).
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    let r = http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the server stays up");
    let log = s.log();
    let warnings: Vec<_> = log
        .lines()
        .filter(|l| l.contains("traces are being lost"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning a minute at most:\n{log}");
    assert!(warnings[0].contains(&port.to_string()), "{}", warnings[0]);
    assert!(warnings[0].contains("failed_spans="), "{}", warnings[0]);
    // The loss shows on /metrics too.
    if let Some(totals) = span_totals(&http, s.url("/metrics")).await {
        assert!(totals["failed"] > 0.0, "{totals:?}");
        assert_eq!(totals["exported"], 0.0, "{totals:?}");
    }
}

#[test]
fn a_bad_otlp_endpoint_stops_serve_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for (value, says) in [
        ("localhost:4318", "http:// or https://"),
        ("collector", "needs a scheme"),
        ("http://", "empty host"),
    ] {
        let run = pv(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--otlp-endpoint",
            value,
        ]);
        let err = run.fails(2);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains("--otlp-endpoint") && err.contains(says),
            "{err}"
        );
        assert!(!data.exists(), "refused before anything was created");
    }
}

/// A `pavilion serve` started with environment variables (the shared
/// harness passes arguments only), killed when dropped.
struct EnvServer {
    child: std::process::Child,
    addr: String,
    lines: std::sync::mpsc::Receiver<String>,
}

impl EnvServer {
    fn start(data: &std::path::Path, env: &[(&str, &str)]) -> EnvServer {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pavilion"));
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .env_remove("PAVILION_CONFIG")
            .env("PAVILION_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn pavilion");
        let lines = stderr_lines(&mut child);
        let addr = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("server did not report its address");
            if let Some(rest) = line.strip_prefix("pavilion listening on http://") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        EnvServer { child, addr, lines }
    }

    /// The first line containing `text` within `limit`, if any.
    fn wait_line(&self, text: &str, limit: Duration) -> Option<String> {
        let until = Instant::now() + limit;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(text) => return Some(l),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for EnvServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The worse case than a closed port: a collector that accepts the
/// connection and never answers, so each export hangs until its timeout.
/// Configured the OpenTelemetry way (environment, a small queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_costs_requests_nothing() {
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // Held, never read nor answered.
        let mut held = Vec::new();
        for c in hole.incoming() {
            held.push(c);
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut s = EnvServer::start(
        &tmp.path().join("data"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "16"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    // A request that waited for an export would wait 10 s: 5 s fails it.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    for _ in 0..25 {
        let batch = (0..8).map(|_| {
            http.get(format!("http://{}/v2/", s.addr))
                .header("traceparent", traceparent(UPLOAD_PARENT))
                .send()
        });
        for r in futures::future::join_all(batch).await {
            assert_eq!(r.expect("not held up by the exporter").status(), 200);
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // The hung export times out after 10 s; then the warning counts what
    // the full queue dropped meanwhile (200 spans, room for 16).
    let warning = s
        .wait_line("traces are being lost", Duration::from_secs(30))
        .expect("a warning about lost spans");
    let dropped: u64 = warning
        .split("dropped_spans=")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{warning}"));
    assert!(dropped >= 100, "{warning}");
    // /metrics counts the drops (at least as many as the warning saw) and
    // no span as exported.
    if let Some(totals) = span_totals(&http, format!("http://{}/metrics", s.addr)).await {
        assert!(totals["dropped"] >= dropped as f64, "{totals:?} {warning}");
        assert_eq!(totals["exported"], 0.0, "{totals:?}");
    }
    // Shutdown is not held up by the collector either (3 s for the last
    // export, then exit).
    let stopping = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(20),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}

/// `OTEL_TRACES_SAMPLER=parentbased_traceidratio` with ratio 0: the traces
/// this server would start are not recorded, a caller's sampled trace
/// still is, and an unknown sampler stops the start with one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_records_a_callers_sampled_trace_and_none_of_its_own() {
    let collector = Collector::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let s = EnvServer::start(
        &tmp.path().join("data"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.base),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let http = client();
    for _ in 0..20 {
        let r = http
            .get(format!("http://{}/v2/", s.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http
        .get(format!("http://{}/v2/", s.addr))
        .header("traceparent", traceparent(UPLOAD_PARENT))
        .send()
        .await
        .unwrap();
    let id = request_id(&r);
    let seen = |spans: &[Received]| {
        spans
            .iter()
            .any(|r| attr_str(&r.span.attributes, "pavilion.request_id") == Some(id.as_str()))
    };
    assert!(seen(
        &collector.wait_for(Duration::from_secs(10), seen).await
    ));
    // Time for the other twenty to arrive, were they exported.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "only the caller's sampled request");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(tmp.path().join("d2"))
        .args(["--otlp-endpoint", &collector.base])
        .env("OTEL_TRACES_SAMPLER", "sometimes")
        .env_remove("PAVILION_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OTEL_TRACES_SAMPLER"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// The trace ids on the server's access lines in `log`.
fn access_trace_ids(log: &str) -> std::collections::BTreeSet<String> {
    log.lines()
        .filter(|l| l.contains("pavilion::access"))
        .filter_map(|l| l.split("trace_id=").nth(1))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

/// The client sends one W3C traceparent on every request of a command:
/// the `TRACEPARENT` it runs under, else a new trace of its own, so the
/// registry's access lines (and spans) of one push share its trace id.
#[test]
fn a_command_sends_one_trace_on_every_request() {
    let s = crate::common::auth::Served::start(None, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    make_model(&model);
    // The trace ids of the access lines one push (run alone) adds.
    let push = |repo: &str, traceparent: Option<&str>| {
        let before = s.log().len();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pavilion"));
        cmd.args([
            "push",
            &format!("{}/{repo}:v1", s.addr),
            model.to_str().unwrap(),
        ])
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .env_remove("TRACEPARENT");
        if let Some(tp) = traceparent {
            cmd.env("TRACEPARENT", tp);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The access line is written as the answer's body ends.
        std::thread::sleep(std::time::Duration::from_millis(200));
        access_trace_ids(&s.log()[before..])
    };
    let given = "4bf92f3577b34da6a3ce929d0e0e4736";
    let given_ids = push(
        "traced/given",
        Some(&format!("00-{given}-00f067aa0ba902b7-01")),
    );
    assert_eq!(given_ids.into_iter().collect::<Vec<_>>(), [given]);
    let own = push("traced/own", None);
    let again = push("traced/again", None);
    // Not a valid traceparent: ignored, a new trace is made.
    let bad = push("traced/bad", Some("00-NOT-A-TRACE-01"));
    for ids in [&own, &again, &bad] {
        assert_eq!(ids.len(), 1, "one trace per command: {ids:?}");
        let id = ids.iter().next().unwrap();
        assert!(id.len() == 32 && id != given, "{id}");
    }
    assert_ne!(own, again, "each command its own trace");
}

/// Without an OTLP endpoint no request makes a span, whatever the log
/// level: the access line names only a caller's trace and no span of
/// ours. (With the exported spans at INFO, an absent exporter layer once
/// counted as a subscriber wanting everything: at the default level every
/// request made its span and printed an invented trace id.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_no_request_makes_a_span() {
    for level in ["info", "debug"] {
        let s = Server::start_with(Backend::Sqlite, &["--log", level]).unwrap();
        let http = client();
        let plain = request_id(&http.get(s.url("/v2/")).send().await.unwrap());
        let caller = request_id(
            &http
                .get(s.url("/v2/"))
                .header("traceparent", traceparent(UPLOAD_PARENT))
                .send()
                .await
                .unwrap(),
        );
        let line_of = |id: &str| {
            let log = s.log();
            log.lines()
                .find(|l| l.contains("pavilion::access") && l.contains(id))
                .map(str::to_string)
        };
        let mut lines = (None, None);
        for _ in 0..50 {
            lines = (line_of(&plain), line_of(&caller));
            if lines.0.is_some() && lines.1.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (plain, caller) = (lines.0.expect("access line"), lines.1.expect("access line"));
        assert!(plain.contains("trace_id=\"-\""), "{level}: {plain}");
        assert!(
            caller.contains(&format!("trace_id=\"{TRACE}\"")),
            "{level}: {caller}"
        );
        for l in [&plain, &caller] {
            assert!(!l.contains("span_id"), "{level}: no span of ours: {l}");
        }
    }
}
