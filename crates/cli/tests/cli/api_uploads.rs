//! Blob uploads: `POST`/`PATCH`/`PUT`/`GET`/`DELETE` on
//! `/v2/<name>/blobs/uploads/...`, monolithic and chunked, cross-repository
//! mounts, interrupted uploads and every kind of bad upload input.

use crate::common::*;
use reqwest::Method;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Deterministic pseudo-random bytes.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    xorshift_bytes(len, seed, 99, 7)
}

/// Opens a session on `repo`; checks the 202 headers and returns its Location.
async fn start_upload(s: &Server, repo: &str) -> String {
    let r = client()
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "POST upload: {:?}", hdr(&r, "location"));
    let loc = hdr(&r, "location").expect("Location on 202");
    let uuid = hdr(&r, "docker-upload-uuid").expect("Docker-Upload-UUID on 202");
    assert_eq!(loc, format!("/v2/{repo}/blobs/uploads/{uuid}"));
    loc
}

/// GET of a session's status.
async fn upload_status(s: &Server, loc: &str) -> reqwest::Response {
    client().get(s.url(loc)).send().await.unwrap()
}

/// Asserts the session answers 204 with `Range: 0-<last>` and its Location.
async fn assert_session_range(s: &Server, loc: &str, range: &str) {
    let r = upload_status(s, loc).await;
    assert_eq!(r.status(), 204, "status of {loc}");
    assert_eq!(hdr(&r, "range").as_deref(), Some(range), "Range of {loc}");
    assert_eq!(hdr(&r, "location").as_deref(), Some(loc));
    let uuid = loc.rsplit('/').next().unwrap();
    assert_eq!(hdr(&r, "docker-upload-uuid").as_deref(), Some(uuid));
}

/// Asserts the session is gone: GET 404 BLOB_UPLOAD_UNKNOWN.
async fn assert_session_gone(s: &Server, loc: &str) {
    let r = upload_status(s, loc).await;
    assert_eq!(r.status(), 404, "status of {loc}");
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
}

/// PUT `?digest=` closing a session, with an optional final body.
async fn put_close(s: &Server, loc: &str, digest: &str, body: &[u8]) -> reqwest::Response {
    client()
        .put(s.url(&format!("{loc}?digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// GET of a blob that must exist; returns its bytes.
async fn blob_bytes(s: &Server, repo: &str, digest: &str) -> Vec<u8> {
    let r = get_blob(s, repo, digest, None).await;
    assert_eq!(r.status(), 200, "GET blob {repo} {digest}");
    assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(digest));
    r.bytes().await.unwrap().to_vec()
}

/// Asserts `r` is the 201 of blob `d` in `repo` (Location, digest) and `repo` serves exactly `data`.
async fn assert_blob_created(s: &Server, r: &reqwest::Response, repo: &str, d: &str, data: &[u8]) {
    assert_eq!(r.status(), 201);
    assert_eq!(hdr(r, "location"), Some(format!("/v2/{repo}/blobs/{d}")));
    assert_eq!(hdr(r, "docker-content-digest").as_deref(), Some(d));
    assert_eq!(blob_bytes(s, repo, d).await, data);
}

/// Polls a session until it reports `range` (the server finishes handling a
/// dropped connection asynchronously); then asserts it.
async fn wait_session_range(s: &Server, loc: &str, range: &str) {
    for _ in 0..400 {
        let r = upload_status(s, loc).await;
        if r.status() == 204 && hdr(&r, "range").as_deref() == Some(range) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_session_range(s, loc, range).await;
}

both_backends! {
    monolithic_post_with_digest_is_201_with_blob_location_and_digest => |s: Server| async move {
        let data = pattern(3000, 1);
        let d = sha256(&data);
        let r = push_blob_as(&s, "up/mono", &d, &data).await;
        assert_blob_created(&s, &r, "up/mono", &d, &data).await;
        // Pushing the same blob again is fine.
        assert_eq!(push_blob(&s, "up/mono", &data).await, d);
    };

    monolithic_post_with_streamed_body_without_content_length_is_201 => |s: Server| async move {
        let data = pattern(200_000, 2);
        let d = sha256(&data);
        let r = client()
            .post(s.url(&format!("/v2/up/mono-stream/blobs/uploads/?digest={d}")))
            .header("Content-Type", "application/octet-stream")
            .body(streamed(vec![data[..1000].to_vec(), data[1000..].to_vec()]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(blob_bytes(&s, "up/mono-stream", &d).await, data);
    };

    post_then_put_with_whole_body_is_201 => |s: Server| async move {
        let data = pattern(4096, 3);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/postput").await;
        let r = put_close(&s, &loc, &d, &data).await;
        assert_blob_created(&s, &r, "up/postput", &d, &data).await;
        // The session is closed.
        assert_session_gone(&s, &loc).await;
    };

    chunked_post_patch_patch_put_reports_exact_ranges => |s: Server| async move {
        let data = pattern(2500, 4);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/chunked").await;
        let uuid = loc.rsplit('/').next().unwrap().to_string();

        let r = patch_chunk(&s, &loc, 0, &data[..1000]).await;
        assert_eq!(r.status(), 202);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-999"));
        assert_eq!(hdr(&r, "docker-upload-uuid").as_deref(), Some(uuid.as_str()));
        let loc = hdr(&r, "location").unwrap();
        assert_eq!(loc, format!("/v2/up/chunked/blobs/uploads/{uuid}"));
        assert_session_range(&s, &loc, "0-999").await;

        let r = patch_chunk(&s, &loc, 1000, &data[1000..2000]).await;
        assert_eq!(r.status(), 202);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-1999"));
        assert_eq!(hdr(&r, "docker-upload-uuid").as_deref(), Some(uuid.as_str()));
        let loc = hdr(&r, "location").unwrap();
        assert_session_range(&s, &loc, "0-1999").await;

        // The last chunk travels with the closing PUT, with its Content-Range.
        let r = client()
            .put(s.url(&format!("{loc}?digest={d}")))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "2000-2499")
            .body(data[2000..].to_vec())
            .send()
            .await
            .unwrap();
        assert_blob_created(&s, &r, "up/chunked", &d, &data).await;
        assert_session_gone(&s, &loc).await;
    };

    chunked_upload_closed_by_empty_put_after_last_patch => |s: Server| async move {
        let data = pattern(3000, 5);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/emptyput").await;
        let r = patch_chunk(&s, &loc, 0, &data[..1500]).await;
        assert_eq!(r.status(), 202);
        let r = patch_chunk(&s, &loc, 1500, &data[1500..]).await;
        assert_eq!(r.status(), 202);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-2999"));
        let r = put_close(&s, &loc, &d, b"").await;
        assert_eq!(r.status(), 201);
        assert_eq!(blob_bytes(&s, "up/emptyput", &d).await, data);
    };

    upload_status_get_is_204_with_location_range_and_uuid => |s: Server| async move {
        let loc = start_upload(&s, "up/status").await;
        let r = upload_status(&s, &loc).await;
        assert_eq!(r.status(), 204);
        assert_eq!(hdr(&r, "location").as_deref(), Some(loc.as_str()));
        assert!(hdr(&r, "range").is_some(), "Range on an empty session");
        let r = patch_chunk(&s, &loc, 0, &[7u8; 10]).await;
        assert_eq!(r.status(), 202);
        assert_session_range(&s, &loc, "0-9").await;
        // Status does not change anything.
        assert_session_range(&s, &loc, "0-9").await;
    };

    out_of_order_chunk_is_416_and_session_survives_and_continues => |s: Server| async move {
        let data = pattern(300, 6);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/order").await;

        // A first chunk that does not start at 0.
        let r = patch_chunk(&s, &loc, 5, &data[5..50]).await;
        assert_eq!(r.status(), 416);
        assert_eq!(hdr(&r, "location").as_deref(), Some(loc.as_str()));
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");

        let r = patch_chunk(&s, &loc, 0, &data[..100]).await;
        assert_eq!(r.status(), 202);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-99"));

        // A gap.
        let r = patch_chunk(&s, &loc, 200, &data[200..300]).await;
        assert_eq!(r.status(), 416);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-99"));
        assert_eq!(hdr(&r, "location").as_deref(), Some(loc.as_str()));
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");
        assert_session_range(&s, &loc, "0-99").await;

        // An overlap.
        let r = patch_chunk(&s, &loc, 50, &data[50..150]).await;
        assert_eq!(r.status(), 416);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-99"));
        assert_session_range(&s, &loc, "0-99").await;

        // A replay of the first chunk.
        let r = patch_chunk(&s, &loc, 0, &data[..100]).await;
        assert_eq!(r.status(), 416);
        assert_session_range(&s, &loc, "0-99").await;

        // The closing PUT with an out-of-order final chunk: 416 too.
        let r = send_range(&s, Method::PUT, &format!("{loc}?digest={d}"), "150-299", data[150..].to_vec()).await;
        assert_eq!(r.status(), 416);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-99"));
        assert_blob_absent(&s, "up/order", &d).await;
        assert_session_range(&s, &loc, "0-99").await;

        // The session continues from where it was.
        let r = patch_chunk(&s, &loc, 100, &data[100..200]).await;
        assert_eq!(r.status(), 202);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-199"));
        let r = send_range(&s, Method::PUT, &format!("{loc}?digest={d}"), "200-299", data[200..].to_vec()).await;
        assert_eq!(r.status(), 201);
        assert_eq!(blob_bytes(&s, "up/order", &d).await, data);
    };

    patch_without_content_range_streams_and_appends => |s: Server| async move {
        let data = pattern(50_000, 7);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/stream").await;
        // With Content-Length, without Content-Range.
        let r = client()
            .patch(s.url(&loc))
            .header("Content-Type", "application/octet-stream")
            .body(data[..10_000].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-9999"));
        // Chunked transfer encoding: neither Content-Length nor Content-Range.
        let r = client()
            .patch(s.url(&loc))
            .header("Content-Type", "application/octet-stream")
            .body(streamed(vec![data[10_000..20_000].to_vec(), data[20_000..40_000].to_vec()]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-39999"));
        assert_session_range(&s, &loc, "0-39999").await;
        // The rest with the closing PUT, streamed.
        let r = client()
            .put(s.url(&format!("{loc}?digest={d}")))
            .body(streamed(vec![data[40_000..].to_vec()]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(blob_bytes(&s, "up/stream", &d).await, data);
    };

    delete_upload_is_204_then_session_is_404_blob_upload_unknown => |s: Server| async move {
        let data = pattern(100, 8);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/cancel").await;
        assert_eq!(patch_chunk(&s, &loc, 0, &data[..50]).await.status(), 202);
        let r = client().delete(s.url(&loc)).send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert_session_gone(&s, &loc).await;
        // Every other verb on it is 404 too, and nothing gets stored.
        let r = patch_chunk(&s, &loc, 50, &data[50..]).await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
        let r = put_close(&s, &loc, &d, &data).await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
        let r = client().delete(s.url(&loc)).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
        assert_blob_absent(&s, "up/cancel", &d).await;
    };

    unknown_upload_id_is_404_blob_upload_unknown_on_every_verb => |s: Server| async move {
        let d = sha256(b"x");
        for id in ["3f2b6c1e-0000-4000-8000-000000000000", "not-a-uuid", "0"] {
            let loc = format!("/v2/up/unknown/blobs/uploads/{id}");
            let r = upload_status(&s, &loc).await;
            assert_eq!(r.status(), 404, "GET {id}");
            assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN", "GET {id}");
            let r = patch_chunk(&s, &loc, 0, b"x").await;
            assert_eq!(r.status(), 404, "PATCH {id}");
            assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN", "PATCH {id}");
            let r = put_close(&s, &loc, &d, b"x").await;
            assert_eq!(r.status(), 404, "PUT {id}");
            assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN", "PUT {id}");
            let r = client().delete(s.url(&loc)).send().await.unwrap();
            assert_eq!(r.status(), 404, "DELETE {id}");
            assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN", "DELETE {id}");
        }
        assert_blob_absent(&s, "up/unknown", &d).await;
    };

    upload_id_of_another_repository_is_404_and_session_unharmed => |s: Server| async move {
        let data = pattern(64, 9);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/owner").await;
        assert_eq!(patch_chunk(&s, &loc, 0, &data[..32]).await.status(), 202);
        let id = loc.rsplit('/').next().unwrap();
        let foreign = format!("/v2/up/thief/blobs/uploads/{id}");
        let r = upload_status(&s, &foreign).await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
        let r = patch_chunk(&s, &foreign, 32, &data[32..]).await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
        let r = put_close(&s, &foreign, &d, &data[32..]).await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
        let r = client().delete(s.url(&foreign)).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
        assert_blob_absent(&s, "up/thief", &d).await;
        // The owner's session is intact and completes.
        assert_session_range(&s, &loc, "0-31").await;
        let r = put_close(&s, &loc, &d, &data[32..]).await;
        assert_eq!(r.status(), 201);
        assert_eq!(blob_bytes(&s, "up/owner", &d).await, data);
        assert_blob_absent(&s, "up/thief", &d).await;
    };

    digest_mismatch_at_put_is_400_digest_invalid_and_blob_absent_under_both_digests => |s: Server| async move {
        let data = pattern(1000, 10);
        let actual = sha256(&data);
        let claimed = sha256(b"something else entirely");

        // Chunked, then a PUT with the wrong digest.
        let loc = start_upload(&s, "up/mismatch").await;
        assert_eq!(patch_chunk(&s, &loc, 0, &data).await.status(), 202);
        let r = put_close(&s, &loc, &claimed, b"").await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        assert_blob_absent(&s, "up/mismatch", &claimed).await;
        assert_blob_absent(&s, "up/mismatch", &actual).await;

        // POST then PUT with the body.
        let loc = start_upload(&s, "up/mismatch").await;
        let r = put_close(&s, &loc, &claimed, &data).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        assert_blob_absent(&s, "up/mismatch", &claimed).await;
        assert_blob_absent(&s, "up/mismatch", &actual).await;

        // Single POST.
        let r = client()
            .post(s.url(&format!("/v2/up/mismatch/blobs/uploads/?digest={claimed}")))
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        assert_blob_absent(&s, "up/mismatch", &claimed).await;
        assert_blob_absent(&s, "up/mismatch", &actual).await;

        // A correct upload afterwards works.
        assert_eq!(push_blob(&s, "up/mismatch", &data).await, actual);
        assert_blob_absent(&s, "up/mismatch", &claimed).await;
    };

    put_without_digest_is_400_digest_invalid_and_session_keeps_its_bytes => |s: Server| async move {
        let data = pattern(40, 11);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/nodigest").await;
        assert_eq!(patch_chunk(&s, &loc, 0, &data[..20]).await.status(), 202);
        for url in [loc.clone(), format!("{loc}?digest="), format!("{loc}?other=1")] {
            let r = client().put(s.url(&url)).body(Vec::new()).send().await.unwrap();
            assert_eq!(r.status(), 400, "PUT {url}");
            assert_eq!(error_code(r).await, "DIGEST_INVALID", "PUT {url}");
            assert_session_range(&s, &loc, "0-19").await;
        }
        // Even with a body: the bytes are not appended.
        let r = send_range(&s, Method::PUT, &loc, "20-39", data[20..].to_vec()).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        assert_session_range(&s, &loc, "0-19").await;
        assert_blob_absent(&s, "up/nodigest", &d).await;
        let r = put_close(&s, &loc, &d, &data[20..]).await;
        assert_eq!(r.status(), 201);
        assert_eq!(blob_bytes(&s, "up/nodigest", &d).await, data);
    };

    content_range_length_not_matching_body_is_400_size_invalid_and_offset_unchanged => |s: Server| async move {
        let data = pattern(30, 12);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/sizeinvalid").await;
        assert_eq!(patch_chunk(&s, &loc, 0, &data[..10]).await.status(), 202);

        // Content-Range says 10 bytes, Content-Length says 5.
        let r = send_range(&s, Method::PATCH, &loc, "10-19", data[10..15].to_vec()).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "SIZE_INVALID");
        assert_session_range(&s, &loc, "0-9").await;

        // Content-Range says 10 bytes, Content-Length says 20.
        let r = send_range(&s, Method::PATCH, &loc, "10-19", data[10..30].to_vec()).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "SIZE_INVALID");
        assert_session_range(&s, &loc, "0-9").await;

        // No Content-Length (chunked): the body turns out longer than the range.
        let r = send_range(&s, Method::PATCH, &loc, "10-19", streamed(vec![data[10..18].to_vec(), data[18..30].to_vec()])).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "SIZE_INVALID");
        assert_session_range(&s, &loc, "0-9").await;

        // No Content-Length (chunked): the body turns out shorter than the range.
        let r = send_range(&s, Method::PATCH, &loc, "10-19", streamed(vec![data[10..13].to_vec(), data[13..15].to_vec()])).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "SIZE_INVALID");
        assert_session_range(&s, &loc, "0-9").await;

        // Same on the closing PUT: nothing appended, nothing committed.
        let r = send_range(&s, Method::PUT, &format!("{loc}?digest={d}"), "10-29", data[10..20].to_vec()).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "SIZE_INVALID");
        assert_blob_absent(&s, "up/sizeinvalid", &d).await;
        assert_session_range(&s, &loc, "0-9").await;

        // The session still completes correctly.
        let r = patch_chunk(&s, &loc, 10, &data[10..20]).await;
        assert_eq!(r.status(), 202);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-19"));
        let r = put_close(&s, &loc, &d, &data[20..]).await;
        assert_eq!(r.status(), 201);
        assert_eq!(blob_bytes(&s, "up/sizeinvalid", &d).await, data);
    };

    malformed_content_range_is_400_blob_upload_invalid_and_offset_unchanged => |s: Server| async move {
        let loc = start_upload(&s, "up/badrange").await;
        assert_eq!(patch_chunk(&s, &loc, 0, b"0123456789").await.status(), 202);
        for bad in ["abc", "10", "19-10", "-5", "10-", "a-b", "10-x", "1 0-19", "10--19"] {
            let r = send_range(&s, Method::PATCH, &loc, bad, b"abcdefghij".to_vec()).await;
            assert_eq!(r.status(), 400, "Content-Range {bad:?}");
            assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID", "Content-Range {bad:?}");
            assert_session_range(&s, &loc, "0-9").await;
        }
        let r = patch_chunk(&s, &loc, 10, b"abcdefghij").await;
        assert_eq!(r.status(), 202);
        assert_eq!(hdr(&r, "range").as_deref(), Some("0-19"));
    };

    unsupported_and_malformed_digests_are_400_digest_invalid_and_store_nothing => |s: Server| async move {
        let data = b"digest checks".to_vec();
        let good = sha256(&data);
        let hex = &good["sha256:".len()..];
        let bads = vec![
            "md5:d41d8cd98f00b204e9800998ecf8427e".to_string(),
            format!("sha1:{}", &hex[..40]),
            "sha256:abc".to_string(),
            format!("sha256:{}", hex.to_uppercase()),
            format!("sha256:{}0", hex),
            format!("SHA256:{hex}"),
            hex.to_string(),
            "sha256:".to_string(),
            format!("sha256:{}", "g".repeat(64)),
            format!("sha512:{hex}"),
        ];
        let loc = start_upload(&s, "up/baddigest").await;
        assert_eq!(patch_chunk(&s, &loc, 0, &data[..5]).await.status(), 202);
        for bad in &bads {
            let r = client()
                .post(s.url(&format!("/v2/up/baddigest/blobs/uploads/?digest={bad}")))
                .body(data.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "POST ?digest={bad}");
            assert_eq!(error_code(r).await, "DIGEST_INVALID", "POST ?digest={bad}");

            let r = put_close(&s, &loc, bad, &data[5..]).await;
            assert_eq!(r.status(), 400, "PUT ?digest={bad}");
            assert_eq!(error_code(r).await, "DIGEST_INVALID", "PUT ?digest={bad}");
            // The session neither grew nor ended.
            assert_session_range(&s, &loc, "0-4").await;
        }
        assert_blob_absent(&s, "up/baddigest", &good).await;
        let r = put_close(&s, &loc, &good, &data[5..]).await;
        assert_eq!(r.status(), 201);
        assert_eq!(blob_bytes(&s, "up/baddigest", &good).await, data);
    };

    cross_repository_mount_is_201_with_target_location_and_blob_readable => |s: Server| async move {
        let data = pattern(777, 13);
        let d = push_blob(&s, "up/mount-src", &data).await;
        let r = client()
            .post(s.url(&format!("/v2/up/mount-dst/blobs/uploads/?mount={d}&from=up/mount-src")))
            .header("Content-Length", "0")
            .send()
            .await
            .unwrap();
        assert_blob_created(&s, &r, "up/mount-dst", &d, &data).await;
        let r = head_blob(&s, "up/mount-dst", &d).await;
        assert_eq!(r.status(), 200);
        assert_eq!(hdr(&r, "content-length"), Some(data.len().to_string()));
        // The source keeps it; deleting from the target does not affect it.
        let r = client().delete(s.url(&format!("/v2/up/mount-dst/blobs/{d}"))).send().await.unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(blob_bytes(&s, "up/mount-src", &d).await, data);
        assert_blob_absent(&s, "up/mount-dst", &d).await;
    };

    mount_of_unknown_blob_or_from_a_repository_without_it_is_202_with_upload_location => |s: Server| async move {
        let data = pattern(100, 14);
        let known = push_blob(&s, "up/mnt-src", &data).await;
        let unknown = sha256(b"not anywhere");
        // (Without `from`, a blob some repository holds is mounted: see
        // api_conformance_extra.rs.)
        let urls = [
            format!("/v2/up/mnt-dst/blobs/uploads/?mount={unknown}&from=up/mnt-src"),
            format!("/v2/up/mnt-dst/blobs/uploads/?mount={known}&from=up/never-existed"),
            format!("/v2/up/mnt-dst/blobs/uploads/?mount={unknown}"),
        ];
        for url in &urls {
            let r = client().post(s.url(url)).header("Content-Length", "0").send().await.unwrap();
            assert_eq!(r.status(), 202, "{url}");
            let loc = hdr(&r, "location").unwrap();
            let uuid = hdr(&r, "docker-upload-uuid").unwrap();
            assert_eq!(loc, format!("/v2/up/mnt-dst/blobs/uploads/{uuid}"), "{url}");
            assert_session_range(&s, &loc, "0-0").await;
        }
        assert_blob_absent(&s, "up/mnt-dst", &known).await;
        assert_blob_absent(&s, "up/mnt-dst", &unknown).await;
        // The fallback session is a real one: upload through it.
        let r = client()
            .post(s.url(&urls[1]))
            .header("Content-Length", "0")
            .send()
            .await
            .unwrap();
        let loc = hdr(&r, "location").unwrap();
        let r = put_close(&s, &loc, &known, &data).await;
        assert_eq!(r.status(), 201);
        assert_eq!(blob_bytes(&s, "up/mnt-dst", &known).await, data);
    };

    mount_of_blob_deleted_from_source_is_202_not_201 => |s: Server| async move {
        let d = push_blob(&s, "up/mnt-gone-src", b"soon unlinked").await;
        let r = client().delete(s.url(&format!("/v2/up/mnt-gone-src/blobs/{d}"))).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let r = client()
            .post(s.url(&format!("/v2/up/mnt-gone-dst/blobs/uploads/?mount={d}&from=up/mnt-gone-src")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_blob_absent(&s, "up/mnt-gone-dst", &d).await;
    };

    client_disconnect_mid_patch_keeps_received_bytes_and_upload_resumes => |s: Server| async move {
        let total = 256 * 1024;
        let data = pattern(total, 15);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/disconnect").await;
        // A first, complete chunk so the hash state is non-trivial.
        let first = 1000;
        assert_eq!(patch_chunk(&s, &loc, 0, &data[..first]).await.status(), 202);

        // PATCH announcing the rest, then half of it, then the socket is dropped.
        let rest = total - first;
        let half = rest / 2;
        let headers = format!("Content-Type: application/octet-stream\r\nContent-Range: {first}-{}\r\n", total - 1);
        drop(half_request(&s, "PATCH", &loc, &headers, rest, &data[first..first + half]).await);

        let have = first + half;
        wait_session_range(&s, &loc, &format!("0-{}", have - 1)).await;
        assert_blob_absent(&s, "up/disconnect", &d).await;

        // Resume from the reported offset and complete.
        let r = patch_chunk(&s, &loc, have, &data[have..have + 1000]).await;
        assert_eq!(r.status(), 202);
        assert_eq!(hdr(&r, "range"), Some(format!("0-{}", have + 1000 - 1)));
        let range = format!("{}-{}", have + 1000, total - 1);
        let r = send_range(&s, Method::PUT, &format!("{loc}?digest={d}"), &range, data[have + 1000..].to_vec()).await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        assert_eq!(blob_bytes(&s, "up/disconnect", &d).await, data);
    };

    client_disconnect_mid_first_patch_keeps_received_bytes_and_upload_resumes => |s: Server| async move {
        let total = 100_000;
        let data = pattern(total, 16);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/disconnect0").await;
        let half = total / 2;
        let headers = "Content-Type: application/octet-stream\r\n";
        drop(half_request(&s, "PATCH", &loc, headers, total, &data[..half]).await);

        wait_session_range(&s, &loc, &format!("0-{}", half - 1)).await;
        let r = put_close(&s, &loc, &d, &data[half..]).await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        assert_eq!(blob_bytes(&s, "up/disconnect0", &d).await, data);
    };

    truncated_patch_with_half_close_keeps_received_bytes => |s: Server| async move {
        let total = 20_000;
        let data = pattern(total, 17);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/halfclose").await;
        let half = total / 2;
        let headers = format!("Content-Range: 0-{}\r\n", total - 1);
        let mut sock = half_request(&s, "PATCH", &loc, &headers, total, &data[..half]).await;
        sock.shutdown().await.unwrap();
        // Whatever the server answers (if anything), it is not a success.
        let mut resp = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut resp)).await;
        let text = String::from_utf8_lossy(&resp);
        assert!(!text.starts_with("HTTP/1.1 2"), "truncated PATCH answered {text}");

        wait_session_range(&s, &loc, &format!("0-{}", half - 1)).await;
        assert_blob_absent(&s, "up/halfclose", &d).await;
        let r = patch_chunk(&s, &loc, half, &data[half..]).await;
        assert_eq!(r.status(), 202);
        let r = put_close(&s, &loc, &d, b"").await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        assert_eq!(blob_bytes(&s, "up/halfclose", &d).await, data);
    };

    two_concurrent_uploads_of_the_same_digest_both_201 => |s: Server| async move {
        let data = pattern(300_000, 18);
        let d = sha256(&data);
        let chunked = async {
            let loc = start_upload(&s, "up/concurrent").await;
            let r = patch_chunk(&s, &loc, 0, &data[..150_000]).await;
            assert_eq!(r.status(), 202);
            put_close(&s, &loc, &d, &data[150_000..]).await.status()
        };
        let mono = async {
            client()
                .post(s.url(&format!("/v2/up/concurrent/blobs/uploads/?digest={d}")))
                .body(data.clone())
                .send()
                .await
                .unwrap()
                .status()
        };
        let other_repo = async {
            client()
                .post(s.url(&format!("/v2/up/concurrent-b/blobs/uploads/?digest={d}")))
                .body(data.clone())
                .send()
                .await
                .unwrap()
                .status()
        };
        let (a, b, c) = tokio::join!(chunked, mono, other_repo);
        assert_eq!(a, 201);
        assert_eq!(b, 201);
        assert_eq!(c, 201);
        assert_eq!(blob_bytes(&s, "up/concurrent", &d).await, data);
        assert_eq!(blob_bytes(&s, "up/concurrent-b", &d).await, data);

        // Many at once, same digest, same repository.
        let small = pattern(5000, 19);
        let ds = sha256(&small);
        let futs: Vec<_> = (0..8)
            .map(|_| {
                let url = s.url(&format!("/v2/up/concurrent/blobs/uploads/?digest={ds}"));
                let body = small.clone();
                async move { client().post(url).body(body).send().await.unwrap().status() }
            })
            .collect();
        for st in futures::future::join_all(futs).await {
            assert_eq!(st, 201);
        }
        assert_eq!(blob_bytes(&s, "up/concurrent", &ds).await, small);
    };

    concurrent_identical_chunks_append_once_and_the_other_gets_416 => |s: Server| async move {
        let data = pattern(400_000, 22);
        let d = sha256(&data);
        let loc = start_upload(&s, "up/race").await;
        let (a, b) = tokio::join!(
            patch_chunk(&s, &loc, 0, &data[..200_000]),
            patch_chunk(&s, &loc, 0, &data[..200_000])
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [202, 416]);
        assert_session_range(&s, &loc, "0-199999").await;
        let r = put_close(&s, &loc, &d, &data[200_000..]).await;
        assert_eq!(r.status(), 201);
        assert_eq!(blob_bytes(&s, "up/race", &d).await, data);
    };

    upload_sessions_are_independent => |s: Server| async move {
        let a = pattern(100, 20);
        let b = pattern(100, 21);
        let la = start_upload(&s, "up/indep").await;
        let lb = start_upload(&s, "up/indep").await;
        assert_ne!(la, lb);
        assert_eq!(patch_chunk(&s, &la, 0, &a[..60]).await.status(), 202);
        assert_eq!(patch_chunk(&s, &lb, 0, &b[..10]).await.status(), 202);
        assert_session_range(&s, &la, "0-59").await;
        assert_session_range(&s, &lb, "0-9").await;
        assert_eq!(client().delete(s.url(&la)).send().await.unwrap().status(), 204);
        assert_session_range(&s, &lb, "0-9").await;
        let r = put_close(&s, &lb, &sha256(&b), &b[10..]).await;
        assert_eq!(r.status(), 201);
    };
}
