//! The metrics of issue 18 beyond HTTP: blob store requests, bytes and
//! retries by backend, metadata query times and the connection pool,
//! policy decisions, authentication attempts and tokens, uploads in
//! progress and stalled sessions, scheduled garbage collection, and the
//! opt-in, capped per-repository series. Each read from a real `pavilion
//! serve` with the official Prometheus parser, as exact movements.

use crate::common::notation::{policy_dir, User};
use crate::common::*;
use crate::observability::{
    auth_server_with_metrics_listener, metrics_listener, parse, scrape, value, Samples,
};
use std::time::{Duration, Instant};

/// The difference of one sample between two scrapes.
fn delta(before: &Samples, after: &Samples, name: &str, l: &[(&str, &str)]) -> f64 {
    value(after, name, l) - value(before, name, l)
}

/// Whether any sample of a family is present.
fn present(samples: &Samples, prefix: &str) -> bool {
    samples.iter().any(|(n, _, _)| n.starts_with(prefix))
}

/// A serve config file in `dir` with `text`.
fn config(dir: &std::path::Path, text: &str) -> String {
    let p = dir.join("serve.toml");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

async fn scrape_url(url: &str) -> String {
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// A blob pushed whole (one POST with `?digest=`), then read back whole,
/// and an image manifest over it: the store's requests and bytes move by
/// exactly what those requests need.
async fn store_figures_follow_a_push(backend: Backend, label: &str) {
    let Some(s) = Server::start(backend) else {
        return;
    };
    client().get(s.url("/v2/")).send().await.unwrap();
    let Some(before) = parse(&scrape(&s).await) else {
        return;
    };
    let blob = xorshift_bytes(300_000, 7, 1, 3);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let bd = push_blob(&s, "metx/app", &blob).await;
    let cd = push_blob(&s, "metx/app", &config).await;
    let r = get_blob(&s, "metx/app", &bd, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), blob.len());
    let m = image_manifest((&cd, config.len()), &[(&bd, blob.len())], "");
    let r = put_manifest(&s, "metx/app", "v1", Some(OCI_MANIFEST), &m).await;
    assert_eq!(r.status(), 201);
    let after = parse(&scrape(&s).await).unwrap();
    let d = |name: &str, l: &[(&str, &str)]| delta(&before, &after, name, l);
    let op = |o: &'static str| [("backend", label), ("operation", o)];
    let count = "pavilion_store_request_duration_seconds_count";
    let written = d(
        "pavilion_store_bytes_total",
        &[("backend", label), ("direction", "write")],
    );
    let read = d(
        "pavilion_store_bytes_total",
        &[("backend", label), ("direction", "read")],
    );
    if label == "fs" {
        // Two sessions opened and committed, the manifest put whole
        // (after a look for an existing copy), the blob opened once.
        assert_eq!(d(count, &op("create")), 2.0);
        assert_eq!(d(count, &op("complete")), 2.0);
        assert_eq!(d(count, &op("put")), 1.0);
        assert_eq!(d(count, &op("get")), 1.0);
        assert!(d(count, &op("write")) >= 2.0);
        // Files hold exactly the bytes sent, and the download read them once.
        assert_eq!(written, (blob.len() + config.len() + m.len()) as f64);
        assert_eq!(read, blob.len() as f64);
    } else {
        // Object storage writes session state and entries besides the
        // bytes: at least the bytes, and one GET of the blob's data.
        assert!(written >= (blob.len() + config.len() + m.len()) as f64);
        assert!(read >= blob.len() as f64, "{read}");
        assert!(d(count, &op("put")) >= 3.0);
        assert!(d(count, &op("get")) >= 1.0);
    }
    // The histogram's +Inf bucket counts every request.
    let inf = [("backend", label), ("operation", "put"), ("le", "+Inf")];
    assert_eq!(
        d("pavilion_store_request_duration_seconds_bucket", &inf),
        d(count, &op("put"))
    );
    // Metadata: one manifest transaction; each blob claimed then linked,
    // and the manifest's own bytes claimed before they are stored.
    let q = "pavilion_db_query_duration_seconds_count";
    assert_eq!(d(q, &[("operation", "manifest_put")]), 1.0);
    assert_eq!(d(q, &[("operation", "blob_link")]), 5.0);
    // The pool: the engine's limit, and no more open than that.
    let max = value(&after, "pavilion_db_pool_max_connections", &[]);
    assert_eq!(
        max,
        if backend == Backend::Sqlite {
            8.0
        } else {
            16.0
        }
    );
    let idle = value(&after, "pavilion_db_pool_connections", &[("state", "idle")]);
    let busy = value(
        &after,
        "pavilion_db_pool_connections",
        &[("state", "in_use")],
    );
    assert!(idle + busy >= 1.0 && idle + busy <= max, "{idle} {busy}");
    // Files need no retry. radosgw 16 refuses an If-Match that matches:
    // the first session state saved with one is saved again without it,
    // and never asked conditionally again by this process.
    let retries = [("backend", label), ("operation", "put")];
    assert_eq!(
        value(&after, "pavilion_store_retries_total", &retries),
        if label == "s3" { 1.0 } else { 0.0 }
    );
    // No label names what was pushed.
    let text = scrape(&s).await;
    assert!(!text.contains("metx/app") && !text.contains(&bd));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_requests_and_bytes_move_exactly_for_a_push_on_files() {
    store_figures_follow_a_push(Backend::Sqlite, "fs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_requests_and_bytes_move_for_a_push_on_radosgw_and_postgres() {
    store_figures_follow_a_push(Backend::S3, "s3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_requests_and_bytes_move_for_a_push_on_azurite_and_postgres() {
    store_figures_follow_a_push(Backend::Azure, "azure").await;
}

const PUSH_RULES: &str = r#"
package pavilion.push
import rego.v1

deny contains msg if {
    some t in input.tags
    t == "refused"
    msg := "tag refused is not allowed"
}

# A runtime error: to_number of a non-number.
deny contains msg if {
    n := to_number(input.annotations["example.count"])
    n > 10
    msg := "too many"
}

deny contains msg if {
    some t in input.tags
    t == "prod"
    not input.signature.verified
    msg := "tag prod needs a valid signature"
}
"#;

const ADMISSION_TOKEN: &str = "metrics-test-admission-token";

const POD_REVIEW: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
"request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},
"resource":{"group":"","version":"v1","resource":"pods"},"name":"p","namespace":"ml",
"operation":"CREATE","userInfo":{"username":"system:anonymous"},
"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"ml"},
"spec":{"containers":[]}},"dryRun":false}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_policy_decisions_count_one_allow_and_one_deny() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("push.rego"), PUSH_RULES).unwrap();
    let dir = rules.path().to_str().unwrap();
    let s = Server::start_with(
        Backend::Sqlite,
        &["--policy", dir, "--admission-token", ADMISSION_TOKEN],
    )
    .unwrap();
    client().get(s.url("/v2/")).send().await.unwrap();
    let Some(before) = parse(&scrape(&s).await) else {
        return;
    };
    // A Pod without images, and no admission rules: allowed.
    let r = client()
        .post(s.url("/admission"))
        .header("content-type", "application/json")
        .bearer_auth(ADMISSION_TOKEN)
        .body(POD_REVIEW)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let review: serde_json::Value = r.json().await.unwrap();
    assert_eq!(review["response"]["allowed"], true, "{review}");
    push_image(&s, "pol/app", "kept", "one").await;
    let config = br#"{"architecture":"amd64","os":"linux","seed":"two"}"#.to_vec();
    let cd = push_blob(&s, "pol/app", &config).await;
    let m = image_manifest((&cd, config.len()), &[], "");
    let r = put_manifest(&s, "pol/app", "refused", Some(OCI_MANIFEST), &m).await;
    assert_eq!(r.status(), 403);
    let mid = parse(&scrape(&s).await).unwrap();
    // Rules that fail to evaluate refuse, counted apart.
    let counted = image_manifest(
        (&cd, config.len()),
        &[],
        r#","annotations":{"example.count":"many"}"#,
    );
    let r = put_manifest(&s, "pol/app", "counted", Some(OCI_MANIFEST), &counted).await;
    assert_eq!(r.status(), 403);
    let after = parse(&scrape(&s).await).unwrap();
    assert_eq!(
        delta(
            &mid,
            &after,
            "pavilion_policy_decisions_total",
            &[("point", "push"), ("result", "error")]
        ),
        1.0
    );
    let after = mid;
    let d = |point: &str, result: &str| {
        delta(
            &before,
            &after,
            "pavilion_policy_decisions_total",
            &[("point", point), ("result", result)],
        )
    };
    assert_eq!(d("push", "allow"), 1.0);
    assert_eq!(d("admission", "allow"), 1.0);
    assert_eq!(d("admission", "deny") + d("admission", "error"), 0.0);
    assert_eq!(d("push", "deny"), 1.0);
    assert_eq!(d("push", "error"), 0.0);
    // No pull rules: pulls are not decided; no trust policy: nothing is
    // verified; no authentication: no authorization decisions.
    assert_eq!(
        value(
            &after,
            "pavilion_policy_decisions_total",
            &[("point", "pull")]
        ),
        0.0
    );
    assert_eq!(
        value(&after, "pavilion_signature_verifications_total", &[]),
        0.0
    );
    assert_eq!(
        value(
            &after,
            "pavilion_policy_decisions_total",
            &[("point", "authz")]
        ),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_attempts_and_tokens_are_counted_by_method_and_result() {
    use crate::common::auth::basic;
    let tmp = tempfile::tempdir().unwrap();
    let Some(s) = auth_server_with_metrics_listener(tmp.path()) else {
        return;
    };
    // Scraped on the metrics listener: the scrapes authenticate nothing.
    let url = format!("http://{}/metrics", metrics_listener(|| s.log()).await);
    let Some(before) = parse(&scrape_url(&url).await) else {
        return;
    };
    let get = |path: &str, who: Option<String>| {
        let mut r = client().get(s.url(path));
        if let Some(w) = who {
            r = r.header("authorization", w);
        }
        r.send()
    };
    for _ in 0..3 {
        let r = get("/v2/", Some(basic("admin", "pw-a"))).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        let r = get("/v2/", Some(basic("dev", "wrong"))).await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = get("/v2/", None).await.unwrap();
    assert_eq!(r.status(), 401);
    // dev may push to dev/*, not elsewhere: one authz allow, one deny.
    let r = get("/v2/dev/app/tags/list", Some(basic("dev", "pw-d")))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = get("/v2/other/app/tags/list", Some(basic("dev", "pw-d")))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A token, then a request with it.
    let r = get(
        "/token?scope=repository:dev/app:pull",
        Some(basic("dev", "pw-d")),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    let r = get("/v2/dev/app/tags/list", Some(format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Past the free failures, a user from one address is slowed down.
    let mut throttled = 0;
    for _ in 0..8 {
        let r = get("/v2/", Some(basic("admin", "nope"))).await.unwrap();
        if r.status() == 429 {
            throttled += 1;
        }
    }
    assert!(throttled > 0, "no attempt was throttled");
    let after = parse(&scrape_url(&url).await).unwrap();
    let d = |method: &str, result: &str| {
        delta(
            &before,
            &after,
            "pavilion_auth_attempts_total",
            &[("method", method), ("result", result)],
        )
    };
    // admin thrice, dev twice on tags and once at /token.
    assert_eq!(d("basic", "ok"), 6.0);
    assert_eq!(d("basic", "denied"), 2.0 + (8 - throttled) as f64);
    assert_eq!(d("basic", "throttled"), throttled as f64);
    assert_eq!(d("anonymous", "ok"), 1.0);
    assert_eq!(d("bearer", "ok"), 1.0);
    assert_eq!(d("basic", "error"), 0.0);
    let tokens = delta(
        &before,
        &after,
        "pavilion_tokens_issued_total",
        &[("kind", "access")],
    );
    assert_eq!(tokens, 1.0);
    let authz = |result: &str| {
        delta(
            &before,
            &after,
            "pavilion_policy_decisions_total",
            &[("point", "authz"), ("result", result)],
        )
    };
    assert!(authz("deny") >= 1.0);
    assert!(authz("allow") >= 1.0);
}

/// Pushes one small blob into `repo`.
async fn touch(s: &Server, repo: &str) {
    let r = push_blob_as(s, repo, &sha256(b"same bytes"), b"same bytes").await;
    assert_eq!(r.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_series_are_off_by_default() {
    let s = Server::start(Backend::Sqlite).unwrap();
    touch(&s, "quiet/one").await;
    let text = scrape(&s).await;
    assert!(!text.contains("pavilion_repository_"), "{text}");
    assert!(!text.contains("quiet/one"));
    assert!(parse(&text).is_some() || !peers_required());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_series_when_enabled_stop_at_the_limit_and_share_other() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        "[metrics]\nrepository_labels = true\nrepository_label_limit = 2\n",
    );
    let s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    // A refused request takes no place.
    let r = get_manifest(&s, "typo/nothing", "v1").await;
    assert_eq!(r.status(), 404);
    for repo in ["lab/a", "lab/b", "lab/c", "lab/d"] {
        touch(&s, repo).await;
    }
    touch(&s, "lab/a").await;
    let Some(m) = parse(&scrape(&s).await) else {
        return;
    };
    let req = |repo: &str, method: &str| {
        value(
            &m,
            "pavilion_repository_requests_total",
            &[("repository", repo), ("method", method)],
        )
    };
    assert_eq!(req("lab/a", "POST"), 2.0);
    assert_eq!(req("lab/b", "POST"), 1.0);
    assert_eq!(req("_other", "POST"), 2.0);
    assert_eq!(req("_other", "GET"), 1.0);
    let repos: std::collections::BTreeSet<&str> = m
        .iter()
        .filter(|(n, _, _)| n == "pavilion_repository_requests_total")
        .map(|(_, l, _)| l["repository"].as_str())
        .collect();
    assert_eq!(
        repos.into_iter().collect::<Vec<_>>(),
        ["_other", "lab/a", "lab/b"]
    );
    let bytes_in = value(
        &m,
        "pavilion_repository_body_bytes_total",
        &[("repository", "lab/a"), ("direction", "in")],
    );
    assert_eq!(bytes_in, 2.0 * b"same bytes".len() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_in_progress_and_stalled_sessions() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let loc = open_session(&s, "up/app").await;
    let stalled = open_session(&s, "up/app").await;
    // A body that stays open until the test sends the rest.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let url = s.url(&loc);
    let patch = tokio::spawn(async move {
        client()
            .patch(url)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap()
            .status()
    });
    tx.send(Ok(vec![1u8; 1000])).await.unwrap();
    // The stalled session last saw activity an hour ago.
    let id = stalled.trim_end_matches('/').rsplit('/').next().unwrap();
    let hour_ago = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 3_600_000) as i64;
    let db = s.data_dir().join("meta.db");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(format!(
            "PRAGMA busy_timeout=5000; UPDATE uploads SET created_at = {hour_ago} - 1, updated_at = {hour_ago} WHERE id = '{id}';"
        ))
        .output();
    let Ok(out) = out else {
        let _ = require_peer("sqlite3", false);
        return;
    };
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let Some(mut m) = parse(&scrape(&s).await) else {
        return;
    };
    while value(&m, "pavilion_uploads_in_progress", &[]) != 1.0 {
        assert!(Instant::now() < deadline, "the upload never showed");
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = parse(&scrape(&s).await).unwrap();
    }
    // First scrape of the database figures: nothing cached yet.
    let sessions =
        |m: &Samples, state: &str| value(m, "pavilion_upload_sessions", &[("state", state)]);
    assert_eq!(sessions(&m, "active"), 1.0);
    assert_eq!(sessions(&m, "stalled"), 1.0);
    tx.send(Ok(vec![2u8; 500])).await.unwrap();
    drop(tx);
    assert_eq!(patch.await.unwrap(), 202);
    let m = parse(&scrape(&s).await).unwrap();
    assert_eq!(value(&m, "pavilion_uploads_in_progress", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_collection_counts_its_runs_and_what_it_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        "[gc]\nenabled = true\ninterval = \"1s\"\ngrace = \"0\"\n",
    );
    let s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    let config_blob = br#"{"architecture":"amd64","os":"linux","seed":"gc"}"#.to_vec();
    let layer = xorshift_bytes(20_000, 3, 5, 7);
    let cd = push_blob(&s, "gc/app", &config_blob).await;
    let ld = push_blob(&s, "gc/app", &layer).await;
    let m = image_manifest((&cd, config_blob.len()), &[(&ld, layer.len())], "");
    let r = put_manifest(&s, "gc/app", "v1", Some(OCI_MANIFEST), &m).await;
    assert_eq!(r.status(), 201);
    let md = sha256(&m);
    let r = request(
        &s,
        reqwest::Method::DELETE,
        &format!("/v2/gc/app/manifests/{md}"),
    )
    .await;
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let freed = (config_blob.len() + layer.len() + m.len()) as f64;
    loop {
        let Some(now) = parse(&scrape(&s).await) else {
            return;
        };
        // The client deleted the manifest; the collection deletes its
        // bytes, a blob like the config's and the layer's, and the
        // repository's links to those two.
        let blobs = value(&now, "pavilion_gc_deleted_total", &[("kind", "blobs")]);
        if blobs >= 3.0 {
            assert_eq!(blobs, 3.0);
            assert_eq!(
                value(&now, "pavilion_gc_deleted_total", &[("kind", "manifests")]),
                0.0
            );
            assert_eq!(
                value(&now, "pavilion_gc_deleted_total", &[("kind", "links")]),
                2.0
            );
            assert_eq!(value(&now, "pavilion_gc_freed_bytes_total", &[]), freed);
            let ok = value(&now, "pavilion_gc_runs_total", &[("result", "ok")]);
            assert!(ok >= 1.0);
            assert_eq!(
                value(&now, "pavilion_gc_run_duration_seconds_count", &[]),
                ok + value(&now, "pavilion_gc_runs_total", &[("result", "partial")])
                    + value(&now, "pavilion_gc_runs_total", &[("result", "failed")])
            );
            // The files went through the store's delete.
            let deletes = value(
                &now,
                "pavilion_store_request_duration_seconds_count",
                &[("backend", "fs"), ("operation", "delete")],
            );
            assert!(deletes >= 3.0, "{deletes}");
            assert!(present(&now, "pavilion_gc_run_duration_seconds_bucket"));
            break;
        }
        assert!(Instant::now() < deadline, "the schedule never collected");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_verifications_count_none_and_verified() {
    let user = User::new();
    let rules = policy_dir(&[("push.rego", PUSH_RULES)]);
    let s = user.gated_server(Backend::Sqlite, rules.path()).unwrap();
    client().get(s.url("/v2/")).send().await.unwrap();
    let Some(start) = parse(&scrape(&s).await) else {
        return;
    };
    let sig = |m: &Samples, result: &str| {
        value(
            m,
            "pavilion_signature_verifications_total",
            &[("result", result)],
        )
    };
    // Unsigned: nothing to verify.
    let digest = push_image(&s, "sig/app", "v1", "signed").await;
    let unsigned = parse(&scrape(&s).await).unwrap();
    assert_eq!(sig(&unsigned, "none") - sig(&start, "none"), 1.0);
    assert_eq!(sig(&unsigned, "verified"), 0.0);
    // Signed by a certificate the trust store holds, then tagged prod:
    // the push gate verifies that signature.
    user.sign(&format!("{}/sig/app:v1", s.addr));
    let signed = parse(&scrape(&s).await).unwrap();
    let body = get_manifest(&s, "sig/app", &digest)
        .await
        .bytes()
        .await
        .unwrap();
    let r = put_manifest(&s, "sig/app", "prod", Some(OCI_MANIFEST), &body).await;
    assert_eq!(r.status(), 201);
    let tagged = parse(&scrape(&s).await).unwrap();
    assert_eq!(sig(&tagged, "verified") - sig(&signed, "verified"), 1.0);
    assert_eq!(sig(&tagged, "none"), sig(&signed, "none"));
    assert_eq!(sig(&tagged, "failed") + sig(&tagged, "error"), 0.0);
    // An unsigned manifest cannot be prod: one more none, one deny.
    let other = push_image(&s, "sig/app", "v2", "unsigned").await;
    let body = get_manifest(&s, "sig/app", &other)
        .await
        .bytes()
        .await
        .unwrap();
    let before = parse(&scrape(&s).await).unwrap();
    let r = put_manifest(&s, "sig/app", "prod", Some(OCI_MANIFEST), &body).await;
    assert_eq!(r.status(), 403);
    let after = parse(&scrape(&s).await).unwrap();
    assert_eq!(sig(&after, "none") - sig(&before, "none"), 1.0);
    assert_eq!(
        delta(
            &before,
            &after,
            "pavilion_policy_decisions_total",
            &[("point", "push"), ("result", "deny")]
        ),
        1.0
    );
}
