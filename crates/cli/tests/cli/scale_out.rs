//! Several stateless replicas on one object store (radosgw or Azurite) and
//! one PostgreSQL database: an upload spread over replicas, a replica
//! killed mid-upload, concurrent tag pushes, presigned redirects, and the
//! clear refusals at start (SQLite shared between replicas, wrong
//! credentials, a missing bucket). The store and the database failing
//! under a running registry: faults.rs.

use crate::common::*;
use std::process::Command;
use std::time::Duration;

async fn replicas_share_one_registry(backend: Backend) {
    let Some(r1) = Server::start(backend) else {
        return;
    };
    let mut r2 = r1.replica();
    let r3 = r1.replica();

    // One upload, a chunk on each replica, committed on the third.
    let blob = stepped_bytes(14 << 20, 7);
    let d = sha256(&blob);
    let loc = open_session(&r1, "scale/one").await;
    assert_eq!(
        patch_chunk(&r1, &loc, 0, &blob[..6 << 20]).await.status(),
        202
    );
    assert_eq!(session_offset(&r2, &loc).await, 6 << 20);
    assert_eq!(
        patch_chunk(&r2, &loc, 6 << 20, &blob[6 << 20..11 << 20])
            .await
            .status(),
        202
    );
    let r = client()
        .put(r3.url(&format!("{loc}?digest={d}")))
        .header("Content-Type", "application/octet-stream")
        .body(blob[11 << 20..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    for s in [&r1, &r2, &r3] {
        let got = get_blob(s, "scale/one", &d, None)
            .await
            .bytes()
            .await
            .unwrap();
        assert!(got[..] == blob[..], "every replica serves the blob");
    }

    // A replica killed mid-chunk: the client carries on through another
    // from the offset that one reports.
    let blob = stepped_bytes(20 << 20, 9);
    let loc = open_session(&r2, "scale/two").await;
    let hdrs = format!(
        "Content-Range: 0-{}\r\nContent-Type: application/octet-stream\r\n",
        blob.len() - 1
    );
    let _conn = half_request(&r2, "PATCH", &loc, &hdrs, blob.len(), &blob[..12 << 20]).await;
    // Parts (5 MiB here) are saved as they fill: wait for the first.
    let mut at = 0;
    for _ in 0..300 {
        at = session_offset(&r3, &loc).await;
        if at >= 5 << 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(at >= 5 << 20, "no part saved: offset {at}");
    r2.kill9();
    let at = session_offset(&r3, &loc).await;
    assert!(at > 0 && at <= 12 << 20, "offset {at}");
    assert_eq!(
        patch_chunk(&r3, &loc, at as usize, &blob[at as usize..])
            .await
            .status(),
        202
    );
    commit_and_compare(&r1, &r3, "scale/two", &loc, &blob).await;

    // Concurrent pushes of one tag from two replicas: every replica then
    // gives the same answer, one of the two manifests.
    let config = push_blob(&r1, "scale/tag", b"{}").await;
    for round in 0..10 {
        let a = image_manifest(
            (&config, 2),
            &[],
            &format!(r#","annotations":{{"r":"a{round}"}}"#),
        );
        let b = image_manifest(
            (&config, 2),
            &[],
            &format!(r#","annotations":{{"r":"b{round}"}}"#),
        );
        let (ra, rb) = tokio::join!(
            put_manifest(&r1, "scale/tag", "latest", Some(OCI_MANIFEST), &a),
            put_manifest(&r3, "scale/tag", "latest", Some(OCI_MANIFEST), &b),
        );
        assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (201, 201));
        let mut seen = Vec::new();
        for s in [&r1, &r3] {
            let r = get_manifest(s, "scale/tag", "latest").await;
            seen.push(hdr(&r, "docker-content-digest").unwrap());
        }
        assert_eq!(seen[0], seen[1], "round {round}: replicas disagree");
        assert!(seen[0] == sha256(&a) || seen[0] == sha256(&b));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_s3_and_postgres() {
    replicas_share_one_registry(Backend::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_azure_and_postgres() {
    replicas_share_one_registry(Backend::Azure).await;
}

async fn redirects(backend: Backend) {
    let Some(s) = Server::start_with(backend, &["--redirect-blobs"]) else {
        return;
    };
    let blob = stepped_bytes(3 << 20, 3);
    let d = push_blob(&s, "scale/redirect", &blob).await;
    let no_follow = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = s.url(&format!("/v2/scale/redirect/blobs/{d}"));
    let r = no_follow.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 307);
    let location = hdr(&r, "location").unwrap();
    assert!(!location.contains(&s.addr), "{location}");
    // HEAD is answered by the registry itself.
    let r = no_follow.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "content-length").unwrap(), blob.len().to_string());
    // Followed, with a range, the bytes come from the storage service.
    let r = client()
        .get(&url)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(r.bytes().await.unwrap()[..] == blob[1000..2000]);
    let whole = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(whole[..] == blob[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_gets_redirect_to_presigned_urls() {
    redirects(Backend::S3).await;
    redirects(Backend::Azure).await;
}

/// Runs `pavilion serve` expecting it to refuse to start; returns stderr.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pavilion"));
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .args(args)
        .env_remove("PAVILION_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Bounded: object_store retries a refused connection for a while.
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "serve must refuse: {err}");
    err
}

#[test]
fn bad_storage_settings_stop_the_start_with_the_reason() {
    let Some(endpoint) = std::env::var("PAVILION_TEST_S3_ENDPOINT").ok() else {
        assert!(!peers_required(), "PAVILION_TEST_S3_ENDPOINT missing");
        return;
    };
    let prefix = format!("{}", std::process::id());
    let s3 = |bucket: &str| {
        format!("s3://{bucket}/{prefix}?endpoint={endpoint}&region=default&allow_http=true")
    };
    let err = refused(&["--storage", &s3("no-such-bucket")], &[]);
    assert!(err.contains("storage s3://no-such-bucket/"), "{err}");
    assert!(err.contains("NoSuchBucket"), "{err}");
    let err = refused(
        &["--storage", &s3("pavilion-test")],
        &[("AWS_SECRET_ACCESS_KEY", "wrong")],
    );
    assert!(err.contains("storage s3://pavilion-test/"), "{err}");
    assert!(
        err.contains("SignatureDoesNotMatch") || err.contains("403"),
        "{err}"
    );
    let err = refused(&["--storage", "s3://b?bogus=1"], &[]);
    assert!(err.contains("unknown option \"bogus\""), "{err}");
    let err = refused(&["--storage", "ftp://b"], &[]);
    assert!(
        err.contains("expected file://, s3://, az:// or gs://"),
        "{err}"
    );

    // Two SQLite databases on one bucket prefix: the second is refused.
    let first = tempfile::tempdir().unwrap();
    let url = s3("pavilion-test");
    let mut one = Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(first.path())
        .args(["--storage", &url])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first to claim the prefix (it says it listens).
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(one.stderr.take().unwrap()).lines();
    assert!(lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .any(|l| l.contains("listening on")));
    let err = refused(&["--storage", &url], &[]);
    let _ = one.kill();
    let _ = one.wait();
    assert!(
        err.contains("replicas sharing object storage must share one PostgreSQL database"),
        "{err}"
    );
}
