//! Abandoned upload sessions expire (`--upload-ttl-secs`); active ones stay.

mod common;
use common::*;
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
