//! Crash and shutdown safety: after `kill -9` mid-upload or mid-manifest-PUT
//! a restarted server serves exactly what was committed, and interrupted
//! uploads resume from their reported offset; SIGTERM shuts down cleanly.

use crate::common::*;
use std::time::Duration;

async fn upload_offset(s: &Server, location: &str) -> u64 {
    let r = client().get(s.url(location)).send().await.unwrap();
    assert_eq!(r.status(), 204, "upload session must survive");
    let range = r.headers()["range"].to_str().unwrap().to_string();
    let end: u64 = range.trim_start_matches("0-").parse().unwrap();
    // "0-0" is ambiguous between 0 and 1 byte; sessions here always hold more.
    end + 1
}

/// Waits until the server has written at least `want` bytes of a session.
async fn wait_offset(s: &Server, location: &str, want: u64) -> u64 {
    for _ in 0..200 {
        let at = upload_offset(s, location).await;
        if at >= want {
            return at;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server never received {want} bytes");
}

both_backends! {
    kill9_mid_upload_resumes_from_reported_offset => |mut s: Server| async move {
        let blob = stepped_bytes(24 << 20, 1);
        let first = 1usize << 20;
        let sent = first + (12 << 20);
        let loc = open_session(&s, "crash/upload").await;
        assert_eq!(patch_chunk(&s, &loc, 0, &blob[..first]).await.status(), 202);
        // Second chunk: declared whole, only part sent, then the server dies.
        // Received bytes reach the file in batches, so wait until some did.
        let chunk = &blob[first..];
        let hdrs = format!("Content-Range: {first}-{}\r\nContent-Type: application/octet-stream\r\n", blob.len() - 1);
        let _conn = half_request(&s, "PATCH", &loc, &hdrs, chunk.len(), &blob[first..sent]).await;
        wait_offset(&s, &loc, first as u64 + 1).await;
        s.restart();
        let at = upload_offset(&s, &loc).await;
        assert!(at > first as u64 && at <= sent as u64, "offset {at} must lie within what was sent");
        assert_eq!(patch_chunk(&s, &loc, at as usize, &blob[at as usize..]).await.status(), 202);
        let d = sha256(&blob);
        let r = client().put(s.url(&format!("{loc}?digest={d}"))).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let got = client().get(s.url(&format!("/v2/crash/upload/blobs/{d}"))).send().await.unwrap().bytes().await.unwrap();
        assert!(got[..] == blob[..], "resumed blob differs");
    };

    kill9_mid_manifest_put_keeps_committed_state => |mut s: Server| async move {
        let committed = push_image(&s, "crash/manifest", "stable", "one").await;
        let before = client().get(s.url("/v2/crash/manifest/manifests/stable")).send().await.unwrap().bytes().await.unwrap();
        // A new manifest for the same tag, cut off half-way, then kill -9.
        let config = push_blob(&s, "crash/manifest", b"{\"new\":true}").await;
        let body = image_manifest((&config, 12), &[], "");
        let _conn = half_request(&s, "PUT", "/v2/crash/manifest/manifests/stable",
            &format!("Content-Type: {OCI_MANIFEST}\r\n"), body.len(), &body[..body.len() / 2]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.restart();
        let r = client().get(s.url("/v2/crash/manifest/manifests/stable")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["docker-content-digest"], committed.as_str());
        assert_eq!(r.bytes().await.unwrap(), before);
        let r = client().get(s.url(&format!("/v2/crash/manifest/manifests/{}", sha256(&body)))).send().await.unwrap();
        assert_eq!(r.status(), 404, "the cut-off manifest was never committed");
        let r = client().get(s.url("/v2/crash/manifest/tags/list")).send().await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["tags"], serde_json::json!(["stable"]));
    };

    kill9_under_manifest_load_serves_every_acknowledged_push => |mut s: Server| async move {
        // Bounded load: 4 writers, at most 40 pushes each; the kill lands mid-stream.
        let config = push_blob(&s, "crash/load", b"{}").await;
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
        let mut tasks = Vec::new();
        for w in 0..4 {
            let url = s.url("");
            let config = config.clone();
            let acked = acked.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..40 {
                    let extra = format!(r#","annotations":{{"n":"{w}-{i}"}}"#);
                    let body = image_manifest((&config, 2), &[], &extra);
                    let tag = format!("w{w}-{i}");
                    let r = client().put(format!("{url}/v2/crash/load/manifests/{tag}"))
                        .header("Content-Type", OCI_MANIFEST)
                        .body(body.clone()).send().await;
                    match r {
                        Ok(r) if r.status() == 201 => acked.lock().unwrap().push((tag, sha256(&body))),
                        _ => return,
                    }
                }
            }));
        }
        // The kill lands once some pushes were acknowledged (on a loaded
        // machine Azurite can take longer than a fixed pause), at most 10 s.
        for _ in 0..200 {
            if acked.lock().unwrap().len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.kill9();
        for t in tasks {
            let _ = t.await;
        }
        s.restart();
        let acked = acked.lock().unwrap().clone();
        assert!(!acked.is_empty(), "some pushes must have been acknowledged before the kill");
        for (tag, digest) in &acked {
            let r = client().get(s.url(&format!("/v2/crash/load/manifests/{tag}"))).send().await.unwrap();
            assert_eq!(r.status(), 200, "acknowledged tag {tag} lost");
            assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
        }
    };

    sigterm_shuts_down_and_leaves_uploads_resumable => |mut s: Server| async move {
        let blob = stepped_bytes(2 << 20, 9);
        let loc = open_session(&s, "crash/term").await;
        let hdrs = "Content-Type: application/octet-stream\r\n";
        let _conn = half_request(&s, "PATCH", &loc, hdrs, blob.len(), &blob[..500_000]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The hanging PATCH keeps the connection busy: the server must still
        // exit once its grace period (10 s by default) is over, writing out
        // every byte the PATCH delivered.
        assert!(s.terminate(), "server must exit 0 on SIGTERM");
        s.restart();
        let at = upload_offset(&s, &loc).await;
        assert_eq!(at, 500_000);
        assert_eq!(patch_chunk(&s, &loc, at as usize, &blob[at as usize..]).await.status(), 202);
        let d = sha256(&blob);
        let r = client().put(s.url(&format!("{loc}?digest={d}"))).send().await.unwrap();
        assert_eq!(r.status(), 201);
    };
}
