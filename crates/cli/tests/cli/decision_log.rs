//! The decision log cannot be used to fill the disk or the server's memory:
//! each stored decision is a bounded summary, retention removes the oldest
//! (by count, age and total size) and a page of the listing is bounded in
//! rows and bytes. End to end against `pavilion serve --policy` with the
//! admission endpoint, on SQLite and PostgreSQL.

use crate::common::*;
use pavilion_store::decisions::{
    MAX_DECISION_BYTES, MAX_DECISION_PAGE, MAX_MESSAGES, MAX_MESSAGE_BYTES,
};
use serde_json::{json, Value};

/// An admission rule that echoes what the caller sent: a deny and a warn
/// message per annotation, with its value, as a careless (or curious) rule
/// would.
const ECHO_RULES: &str = r#"
package pavilion.admission
import rego.v1

deny contains msg if {
    some k, v in input.request.object.metadata.annotations
    msg := sprintf("annotation %s is %s", [k, v])
}

warn contains msg if {
    some k, v in input.request.object.metadata.annotations
    msg := sprintf("note %s: %s", [k, v])
}
"#;

/// The bearer token the admission endpoint is configured with.
const TOKEN: &str = "decision-log-test-token";

/// A server with the echo rules, admission enabled, and `extra` flags.
fn start(backend: Backend, extra: &[&str]) -> Option<(Server, tempfile::TempDir)> {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("admission.rego"), ECHO_RULES).unwrap();
    let dir = rules.path().to_str().unwrap().to_string();
    let mut args = vec!["--policy", &dir, "--admission-token", TOKEN];
    args.extend_from_slice(extra);
    let s = Server::start_with(backend, &args)?;
    Some((s, rules))
}

/// An AdmissionReview for a Pod without images, with `annotations` of
/// `value_len` bytes each, and a uid and name of `id_len` bytes.
fn review(uid_prefix: &str, id_len: usize, annotations: usize, value_len: usize) -> Vec<u8> {
    let uid = format!("{uid_prefix}{}", "u".repeat(id_len));
    let name = format!("pod-{}", "n".repeat(id_len));
    let notes: serde_json::Map<String, Value> = (0..annotations)
        .map(|i| (format!("note{i}"), json!("v".repeat(value_len))))
        .collect();
    let object = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml", "annotations": notes},
        "spec": {"containers": []}});
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": name,
            "namespace": "ml",
            "operation": "CREATE",
            "userInfo": {"username": "system:anonymous"},
            "object": object,
            "dryRun": false
        }
    }))
    .unwrap()
}

async fn admit(s: &Server, body: Vec<u8>) -> Value {
    let r = client()
        .post(s.url("/admission"))
        .header("Content-Type", "application/json")
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The raw body of a decisions page.
async fn page(s: &Server, query: &str) -> (Vec<u8>, Option<String>) {
    let r = client()
        .get(s.url(&format!("/pavilion/v1/decisions{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let link = hdr(&r, "link");
    (r.bytes().await.unwrap().to_vec(), link)
}

fn decisions_of(body: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["decisions"].as_array().unwrap().clone()
}

/// Bytes the decision log occupies in the database.
fn log_bytes(s: &Server) -> u64 {
    match &s.database_url {
        None => ["meta.db", "meta.db-wal"]
            .iter()
            .map(|f| std::fs::metadata(s.data_dir().join(f)).map_or(0, |m| m.len()))
            .sum(),
        Some(url) => {
            let out = std::process::Command::new("psql")
                .args([
                    url.as_str(),
                    "-tAc",
                    "SELECT pg_total_relation_size('decisions')",
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        }
    }
}

/// The attack of the review: large AdmissionReviews, each stored in full,
/// grew the database by their size and made one page of the listing as
/// large as everything posted. Now each is a bounded summary.
async fn huge_reviews_are_stored_as_bounded_summaries(backend: Backend) {
    let Some((s, _rules)) = start(backend, &[]) else {
        return;
    };
    // Warm up: the schema and the first pages exist before measuring.
    admit(&s, review("warm-", 10, 1, 10)).await;
    let before = log_bytes(&s);
    const REVIEWS: usize = 5;
    let mut posted = 0;
    for i in 0..REVIEWS {
        // About 3 MB: 40 annotations of 64 KiB (each echoed in a deny and a
        // warn message), a uid and a name of 128 KiB.
        let body = review(&format!("r{i}-"), 128 << 10, 40, 64 << 10);
        posted += body.len();
        let v = admit(&s, body).await;
        assert_eq!(v["response"]["allowed"], false);
    }
    let grown = log_bytes(&s).saturating_sub(before);
    let (body, _) = page(&s, "?n=1000").await;
    eprintln!(
        "posted {posted} bytes in {REVIEWS} reviews; the log grew by {grown} bytes; one page is {} bytes",
        body.len()
    );
    let list = decisions_of(&body);
    assert_eq!(list.len(), REVIEWS + 1);
    for d in &list[..REVIEWS] {
        let text = serde_json::to_string(d).unwrap();
        assert!(
            text.len() <= MAX_DECISION_BYTES,
            "a stored decision is {} bytes (bound {MAX_DECISION_BYTES})",
            text.len()
        );
        // Still a useful summary: what, and why (cut), and that it was cut.
        assert_eq!(d["point"], "admission");
        assert_eq!(d["allowed"], false);
        let subject = d["subject"].as_str().unwrap();
        assert!(subject.starts_with("Pod ml/pod-nnn"), "{subject:.40}");
        assert!(
            subject.ends_with("bytes)"),
            "{}",
            &subject[subject.len() - 40..]
        );
        for list in [&d["deny"], &d["warn"]] {
            let list = list.as_array().unwrap();
            assert_eq!(list.len(), MAX_MESSAGES);
            assert!(list
                .last()
                .unwrap()
                .as_str()
                .unwrap()
                .contains("more messages"));
            for m in list {
                let m = serde_json::to_string(m).unwrap();
                assert!(m.len() <= MAX_MESSAGE_BYTES, "{}", m.len());
            }
        }
        assert!(d["deny"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().starts_with("annotation note")));
        assert!(d["detail"]["truncated"].is_string(), "{}", d["detail"]);
        assert_eq!(d["detail"]["operation"], "CREATE");
    }
    // Everything together, with slack for the database's own pages.
    let bound = (REVIEWS * MAX_DECISION_BYTES + (2 << 20)) as u64;
    assert!(
        grown <= bound,
        "{REVIEWS} reviews grew the log by {grown} bytes (bound {bound})"
    );
    assert!(body.len() <= (REVIEWS + 1) * MAX_DECISION_BYTES);
}

/// A page is at most MAX_DECISION_PAGE rows and 4 MiB, whatever `n` asks
/// for; the rest is reached through the `Link` header.
async fn a_page_is_bounded_in_rows_and_bytes(backend: Backend) {
    let Some((s, _rules)) = start(backend, &[]) else {
        return;
    };
    // 160 decisions of about 31 KiB (16 deny and 16 warn messages of 1 KiB):
    // more than 4 MiB together, fewer than the row limit.
    const REVIEWS: usize = 160;
    for i in 0..REVIEWS {
        admit(&s, review(&format!("p{i}-"), 8, 20, 1100)).await;
    }
    let (body, link) = page(&s, "?n=1000").await;
    let first = decisions_of(&body);
    assert!(body.len() <= 4 << 20, "{}", body.len());
    assert!(first.len() < REVIEWS, "{}", first.len());
    assert!(first.len() as i64 <= MAX_DECISION_PAGE);
    let link = link.expect("a cut page links to the rest");
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .unwrap()
        .0
        .to_string();
    let last_id = first.last().unwrap()["id"].as_i64().unwrap();
    assert_eq!(
        next,
        format!("/pavilion/v1/decisions?n={MAX_DECISION_PAGE}&before={last_id}")
    );
    let r = client().get(s.url(&next)).send().await.unwrap();
    let rest = decisions_of(&r.bytes().await.unwrap());
    assert_eq!(first.len() + rest.len(), REVIEWS);
    assert!(rest[0]["id"].as_i64().unwrap() < last_id);
    // Rows: more decisions than a page holds, small ones.
    for i in 0..MAX_DECISION_PAGE {
        admit(&s, review(&format!("q{i}-"), 1, 0, 0)).await;
    }
    let (body, link) = page(&s, "?n=100000").await;
    assert_eq!(decisions_of(&body).len() as i64, MAX_DECISION_PAGE);
    assert!(link.is_some());
}

fn uids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|d| {
            let uid = d["detail"]["uid"].as_str().unwrap();
            uid.trim_end_matches('u').to_string()
        })
        .collect()
}

/// `--decision-retention-count`: only the newest decisions stay.
async fn retention_by_count_keeps_the_newest(backend: Backend) {
    let Some((s, _rules)) = start(backend, &["--decision-retention-count", "3"]) else {
        return;
    };
    for i in 0..7 {
        admit(&s, review(&format!("c{i}-"), 1, 1, 10)).await;
    }
    let (body, _) = page(&s, "").await;
    assert_eq!(uids(&decisions_of(&body)), ["c6-", "c5-", "c4-"]);
}

/// `decision_retention_bytes` (here from the TOML file): the log stays
/// within the size given (plus what is written between two checks, a
/// sixteenth of it, and one decision).
async fn retention_by_size_keeps_the_newest(backend: Backend) {
    let limit: usize = 200_000;
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("pavilion.toml");
    std::fs::write(
        &file,
        format!("decision_retention_bytes = {limit}\ndecision_retention_days = 0\n"),
    )
    .unwrap();
    let Some((s, _rules)) = start(backend, &["--config", file.to_str().unwrap()]) else {
        return;
    };
    const REVIEWS: usize = 20;
    for i in 0..REVIEWS {
        admit(&s, review(&format!("b{i}-"), 1, 20, 1100)).await;
    }
    let (body, _) = page(&s, "?n=200").await;
    let list = decisions_of(&body);
    assert!(
        body.len() <= limit + limit / 16 + MAX_DECISION_BYTES,
        "{} bytes kept",
        body.len()
    );
    assert!(list.len() < REVIEWS && list.len() >= 3, "{}", list.len());
    let expected: Vec<String> = (REVIEWS - list.len()..REVIEWS)
        .rev()
        .map(|i| format!("b{i}-"))
        .collect();
    assert_eq!(uids(&list), expected);
}

/// Retention settings are checked at start: a count of 0 would keep
/// nothing and is refused, naming the key.
#[test]
fn a_zero_retention_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args(["--decision-retention-count", "0"])
        .env_remove("PAVILION_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("decision_retention_count"), "{err}");
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Backend::Postgres).await } )*
        }
    };
}

on_both!(
    huge_reviews_are_stored_as_bounded_summaries,
    a_page_is_bounded_in_rows_and_bytes,
    retention_by_count_keeps_the_newest,
    retention_by_size_keeps_the_newest,
);
