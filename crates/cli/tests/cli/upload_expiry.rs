//! Abandoned upload sessions expire (`--upload-ttl-secs`); active ones stay;
//! on object storage the expired session's multipart upload is aborted.
//! A flood of empty sessions cannot block pushes for long: sessions that
//! received no bytes expire sooner (`--upload-empty-ttl-secs`), and one
//! repository cannot take every place (`--max-upload-sessions-per-repository`).

use crate::common::*;
use std::time::Duration;

async fn expiry(backend: Backend) {
    let Some(s) = Server::start_with(backend, &["--upload-ttl-secs", "2"]) else {
        return;
    };
    let open = |repo: &'static str| {
        let url = s.url(&format!("/v2/{repo}/blobs/uploads/"));
        async move {
            let r = client().post(url).send().await.unwrap();
            r.headers()["location"].to_str().unwrap().to_string()
        }
    };
    let idle = open("expiry/idle").await;
    let active = open("expiry/active").await;
    // Keep one session busy with a small chunk every 500 ms for 5 s.
    let mut offset = 0u64;
    for _ in 0..10 {
        let r = client()
            .patch(s.url(&active))
            .header("Content-Range", format!("{offset}-{}", offset + 9))
            .body(vec![7u8; 10])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        offset += 10;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let r = client().get(s.url(&idle)).send().await.unwrap();
    assert_eq!(r.status(), 404, "an idle session must expire");
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    let r = client().get(s.url(&active)).send().await.unwrap();
    assert_eq!(r.status(), 204, "a session receiving data must stay");
    assert_eq!(r.headers()["range"], "0-99");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upload_sessions_expire_sqlite() {
    expiry(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upload_sessions_expire_postgres() {
    expiry(Backend::Postgres).await;
}

async fn post_session(s: &Server, repo: &str) -> reqwest::Response {
    let url = s.url(&format!("/v2/{repo}/blobs/uploads/"));
    client().post(url).send().await.unwrap()
}

/// The attack: POSTs alone, up to the cap, block every push; with a short
/// TTL for empty sessions the places come back, and a session that received
/// bytes is kept.
async fn empty_session_flood(backend: Backend) {
    let Some(s) = Server::start_with(backend, FLOOD_FLAGS) else {
        return;
    };
    let kept = open_session(&s, "flood/kept").await;
    assert_eq!(patch_chunk(&s, &kept, 0, &[7u8; 10]).await.status(), 202);
    for _ in 0..5 {
        assert_eq!(post_session(&s, "flood/attacker").await.status(), 202);
    }
    let r = post_session(&s, "flood/victim").await;
    assert_eq!(r.status(), 429);
    assert_eq!(error_code(r).await, "TOOMANYREQUESTS");
    let mut reopened = false;
    for _ in 0..300 {
        let r = post_session(&s, "flood/victim").await;
        if r.status() == 202 {
            reopened = true;
            break;
        }
        assert_eq!(r.status(), 429);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened, "empty sessions must expire and free their places");
    let r = client().get(s.url(&kept)).send().await.unwrap();
    assert_eq!(r.status(), 204, "a session that received bytes must stay");
    assert_eq!(r.headers()["range"], "0-9");
}

const FLOOD_FLAGS: &[&str] = &["--max-upload-sessions", "6", "--upload-empty-ttl-secs", "1"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_session_flood_expires_sqlite() {
    empty_session_flood(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_session_flood_expires_postgres() {
    empty_session_flood(Backend::Postgres).await;
}

/// A flood into one repository stops at its own cap; other repositories
/// keep their places (without it the flood takes all 6).
async fn per_repository_cap(backend: Backend) {
    let flags = [
        "--max-upload-sessions",
        "6",
        "--max-upload-sessions-per-repository",
        "3",
    ];
    let Some(s) = Server::start_with(backend, &flags) else {
        return;
    };
    for _ in 0..3 {
        assert_eq!(post_session(&s, "flood/attacker").await.status(), 202);
    }
    for _ in 0..3 {
        let r = post_session(&s, "flood/attacker").await;
        assert_eq!(r.status(), 429, "one repository must not take every place");
    }
    let r = post_session(&s, "flood/attacker").await;
    assert_eq!(r.status(), 429);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "TOOMANYREQUESTS");
    let detail = v["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("3 upload sessions are open in flood/attacker")
            && detail.contains("max_upload_sessions_per_repository"),
        "{detail}"
    );
    for repo in ["flood/victim", "other/repo"] {
        let loc = open_session(&s, repo).await;
        let data = b"still pushable".to_vec();
        let r = client()
            .put(s.url(&format!("{loc}?digest={}", sha256(&data))))
            .body(data)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_repository_session_cap_sqlite() {
    per_repository_cap(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_repository_session_cap_postgres() {
    per_repository_cap(Backend::Postgres).await;
}

/// The multipart uploads open under `prefix` in radosgw's test bucket, as
/// the S3 API lists them (`GET /bucket?uploads`, signed by curl).
fn s3_multipart_uploads(prefix: &str) -> usize {
    let endpoint = std::env::var("PAVILION_TEST_S3_ENDPOINT").unwrap();
    let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "--aws-sigv4",
            "aws:amz:default:s3",
            "-u",
            &format!("{key}:{secret}"),
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            // Sorted query, `=` on every key: what SigV4 signs.
            &format!("{endpoint}/pavilion-test?prefix={prefix}%2F&uploads="),
        ])
        .output()
        .expect("run curl");
    assert!(out.status.success(), "listing multipart uploads failed");
    String::from_utf8_lossy(&out.stdout)
        .matches("<Upload>")
        .count()
}

/// On object storage an expired session's multipart upload is aborted,
/// so its parts stop costing storage (issue 17, item 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_aborts_its_multipart_upload_s3() {
    let Some(s) = Server::start_with(Backend::S3, &["--upload-ttl-secs", "2"]) else {
        return;
    };
    let storage = s
        .extra_args
        .iter()
        .find(|a| a.starts_with("s3://"))
        .unwrap();
    let prefix = storage["s3://pavilion-test/".len()..]
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let r = post_session(&s, "expiry/multipart").await;
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    // One part (5 MiB parts on the test store) and a little more.
    let chunk = vec![3u8; (5 << 20) + 100];
    let r = client()
        .patch(s.url(&loc))
        .header("Content-Range", format!("0-{}", chunk.len() - 1))
        .body(chunk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(s3_multipart_uploads(&prefix), 1, "a part was sent");
    let mut left = 1;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        left = s3_multipart_uploads(&prefix);
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "the expired session's multipart upload is aborted");
    let r = client().get(s.url(&loc)).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
