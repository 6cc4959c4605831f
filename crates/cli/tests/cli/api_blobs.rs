//! Blob endpoints: `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`, with
//! Range requests, sha512 blobs, empty blobs and repository isolation.

use crate::common::*;

/// Deterministic pseudo-random bytes (no two MiB-aligned windows alike).
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    xorshift_bytes(len, seed, 12345, 11)
}

both_backends! {
    blob_head_and_get_return_200_with_digest_length_and_exact_bytes => |s: Server| async move {
        let data = b"hello blob endpoint".to_vec();
        let d = push_blob(&s, "blobs/basic", &data).await;

        let r = head_blob(&s, "blobs/basic", &d).await;
        assert_eq!(r.status(), 200);
        assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(d.as_str()));
        assert_eq!(hdr(&r, "content-length"), Some(data.len().to_string()));
        assert!(r.bytes().await.unwrap().is_empty(), "HEAD has no body");

        let r = get_blob(&s, "blobs/basic", &d, None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(d.as_str()));
        assert_eq!(hdr(&r, "content-length"), Some(data.len().to_string()));
        assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    };

    blob_get_of_never_pushed_digest_is_404_blob_unknown => |s: Server| async move {
        push_blob(&s, "blobs/unknown", b"something").await;
        let d = sha256(b"never pushed");
        let r = get_blob(&s, "blobs/unknown", &d, None).await;
        assert_eq!(r.status(), 404);
        assert_eq!(hdr(&r, "content-type").as_deref(), Some("application/json"));
        assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
        let r = head_blob(&s, "blobs/unknown", &d).await;
        assert_eq!(r.status(), 404);
    };

    blob_of_another_repository_is_404_blob_unknown => |s: Server| async move {
        let d = push_blob(&s, "blobs/owner", b"private to owner").await;
        // The other repository exists (it has its own blob) but never linked `d`.
        push_blob(&s, "blobs/stranger", b"stranger's own blob").await;
        assert_blob_absent(&s, "blobs/stranger", &d).await;
        // A repository that does not exist at all: same answer.
        assert_blob_absent(&s, "blobs/nobody", &d).await;
        // Still served from its owner.
        assert_eq!(get_blob(&s, "blobs/owner", &d, None).await.status(), 200);
    };

    blob_range_requests_answer_206_with_exact_content_range_and_bytes => |s: Server| async move {
        // ~20 MiB so that ranges cross the store's internal read chunks.
        let size: usize = 20 * 1024 * 1024 + 12345;
        let data = pattern(size, 7);
        let d = push_blob(&s, "blobs/ranges", &data).await;
        let last = size - 1;
        let cases: Vec<(String, usize, usize)> = vec![
            ("bytes=0-0".into(), 0, 0),
            ("bytes=0-99".into(), 0, 99),
            ("bytes=1048570-1048580".into(), 1_048_570, 1_048_580),
            (format!("bytes=5000000-{}", 5_000_000 + 3 * 1024 * 1024), 5_000_000, 5_000_000 + 3 * 1024 * 1024),
            (format!("bytes={}-", size - 1000), size - 1000, last),
            ("bytes=19000000-".into(), 19_000_000, last),
            ("bytes=-1".into(), last, last),
            ("bytes=-4096".into(), size - 4096, last),
            // A last-pos past the end is clipped to the end (RFC 9110 14.1.2).
            (format!("bytes={}-{}", size - 10, size + 1000), size - 10, last),
            // A suffix longer than the blob selects the whole blob.
            (format!("bytes=-{}", size + 5), 0, last),
            ("bytes=0-".into(), 0, last),
        ];
        for (range, a, b) in cases {
            let r = get_blob(&s, "blobs/ranges", &d, Some(&range)).await;
            assert_eq!(r.status(), 206, "{range}");
            assert_eq!(hdr(&r, "content-range"), Some(format!("bytes {a}-{b}/{size}")), "{range}");
            assert_eq!(hdr(&r, "content-length"), Some((b - a + 1).to_string()), "{range}");
            assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(d.as_str()), "{range}");
            let body = r.bytes().await.unwrap();
            assert_eq!(body.len(), b - a + 1, "{range}");
            assert!(body.as_ref() == &data[a..=b], "{range}: body bytes differ");
        }
        // HEAD with a Range answers the same status and headers, no body.
        let r = client()
            .head(s.url(&format!("/v2/blobs/ranges/blobs/{d}")))
            .header("Range", "bytes=10-19")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(hdr(&r, "content-range"), Some(format!("bytes 10-19/{size}")));
        assert_eq!(hdr(&r, "content-length").as_deref(), Some("10"));
        // And the whole blob is still intact.
        let r = get_blob(&s, "blobs/ranges", &d, None).await;
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.unwrap().as_ref() == data.as_slice());
    };

    blob_unsatisfiable_range_is_416_with_star_content_range => |s: Server| async move {
        let data = b"0123456789".to_vec();
        let d = push_blob(&s, "blobs/unsat", &data).await;
        for range in ["bytes=10-", "bytes=10-20", "bytes=100-200", "bytes=-0"] {
            let r = get_blob(&s, "blobs/unsat", &d, Some(range)).await;
            assert_eq!(r.status(), 416, "{range}");
            assert_eq!(hdr(&r, "content-range").as_deref(), Some("bytes */10"), "{range}");
        }
        // The blob is unaffected.
        let r = get_blob(&s, "blobs/unsat", &d, None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    };

    blob_multi_range_request_is_answered_with_the_whole_blob => |s: Server| async move {
        let data = b"abcdefghijklmnop".to_vec();
        let d = push_blob(&s, "blobs/multirange", &data).await;
        let r = get_blob(&s, "blobs/multirange", &d, Some("bytes=0-1,4-5")).await;
        assert_eq!(r.status(), 200);
        assert!(hdr(&r, "content-range").is_none());
        assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    };

    sha512_blob_monolithic_and_chunked_upload_then_fetch_by_sha512_digest => |s: Server| async move {
        let data = pattern(70_000, 3);
        let d = sha512(&data);
        let r = push_blob_as(&s, "blobs/sha512", &d, &data).await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let r = head_blob(&s, "blobs/sha512", &d).await;
        assert_eq!(r.status(), 200);
        assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(d.as_str()));
        assert_eq!(hdr(&r, "content-length"), Some(data.len().to_string()));
        let r = get_blob(&s, "blobs/sha512", &d, None).await;
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.unwrap().as_ref() == data.as_slice());
        let r = get_blob(&s, "blobs/sha512", &d, Some("bytes=100-199")).await;
        assert_eq!(r.status(), 206);
        assert_eq!(hdr(&r, "content-range").as_deref(), Some("bytes 100-199/70000"));
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[100..200]);
        // The sha256 of the same bytes is a different, absent, blob.
        assert_blob_absent(&s, "blobs/sha512", &sha256(&data)).await;

        // Chunked: POST, PATCH, PUT ?digest=sha512:...
        let data2 = pattern(5_000, 4);
        let d2 = sha512(&data2);
        let r = client().post(s.url("/v2/blobs/sha512/blobs/uploads/")).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let loc = hdr(&r, "location").unwrap();
        let r = client()
            .patch(s.url(&loc))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "0-2999")
            .body(data2[..3000].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let loc = hdr(&r, "location").unwrap();
        let r = client()
            .put(s.url(&format!("{loc}?digest={d2}")))
            .header("Content-Type", "application/octet-stream")
            .body(data2[3000..].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(hdr(&r, "location"), Some(format!("/v2/blobs/sha512/blobs/{d2}")));
        assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(d2.as_str()));
        let r = get_blob(&s, "blobs/sha512", &d2, None).await;
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.unwrap().as_ref() == data2.as_slice());
    };

    sha512_upload_with_wrong_content_is_digest_invalid_and_absent => |s: Server| async move {
        let d = sha512(b"expected");
        let r = push_blob_as(&s, "blobs/sha512bad", &d, b"actual").await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        assert_blob_absent(&s, "blobs/sha512bad", &d).await;
        assert_blob_absent(&s, "blobs/sha512bad", &sha512(b"actual")).await;
    };

    empty_blob_uploads_and_serves_zero_bytes => |s: Server| async move {
        let d = sha256(b"");
        assert_eq!(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let r = push_blob_as(&s, "blobs/empty", &d, b"").await;
        assert_eq!(r.status(), 201);
        assert_eq!(hdr(&r, "location"), Some(format!("/v2/blobs/empty/blobs/{d}")));
        let r = head_blob(&s, "blobs/empty", &d).await;
        assert_eq!(r.status(), 200);
        assert_eq!(hdr(&r, "content-length").as_deref(), Some("0"));
        assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(d.as_str()));
        let r = get_blob(&s, "blobs/empty", &d, None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(hdr(&r, "content-length").as_deref(), Some("0"));
        assert!(r.bytes().await.unwrap().is_empty());
        // No byte of an empty blob can be addressed.
        let r = get_blob(&s, "blobs/empty", &d, Some("bytes=0-0")).await;
        assert_eq!(r.status(), 416);
        assert_eq!(hdr(&r, "content-range").as_deref(), Some("bytes */0"));

        // Through a session closed by a zero-length PUT, too.
        let r = client().post(s.url("/v2/blobs/empty2/blobs/uploads/")).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let loc = hdr(&r, "location").unwrap();
        let r = client().put(s.url(&format!("{loc}?digest={d}"))).body(Vec::new()).send().await.unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(head_blob(&s, "blobs/empty2", &d).await.status(), 200);

        // sha512 of nothing.
        let d5 = sha512(b"");
        let r = push_blob_as(&s, "blobs/empty", &d5, b"").await;
        assert_eq!(r.status(), 201);
        let r = get_blob(&s, "blobs/empty", &d5, None).await;
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.unwrap().is_empty());
    };

    blob_delete_is_202_then_get_404_and_second_delete_404 => |s: Server| async move {
        let d = push_blob(&s, "blobs/del", b"to be deleted").await;
        let keep = push_blob(&s, "blobs/del", b"kept").await;
        let r = client().delete(s.url(&format!("/v2/blobs/del/blobs/{d}"))).send().await.unwrap();
        assert_eq!(r.status(), 202);
        assert_blob_absent(&s, "blobs/del", &d).await;
        let r = client().delete(s.url(&format!("/v2/blobs/del/blobs/{d}"))).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
        // The other blob of the repository is untouched.
        let r = get_blob(&s, "blobs/del", &keep, None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"kept");
    };

    blob_delete_of_never_pushed_digest_is_404_blob_unknown => |s: Server| async move {
        push_blob(&s, "blobs/delunknown", b"x").await;
        let d = sha256(b"never");
        let r = client().delete(s.url(&format!("/v2/blobs/delunknown/blobs/{d}"))).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
    };

    blob_delete_in_one_repository_keeps_it_in_another => |s: Server| async move {
        let data = b"shared between two repositories".to_vec();
        let d = push_blob(&s, "blobs/share-a", &data).await;
        assert_eq!(push_blob(&s, "blobs/share-b", &data).await, d);
        let r = client().delete(s.url(&format!("/v2/blobs/share-a/blobs/{d}"))).send().await.unwrap();
        assert_eq!(r.status(), 202);
        assert_blob_absent(&s, "blobs/share-a", &d).await;
        let r = get_blob(&s, "blobs/share-b", &d, None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
        // Pushing it again to the first repository brings it back.
        push_blob(&s, "blobs/share-a", &data).await;
        assert_eq!(get_blob(&s, "blobs/share-a", &d, None).await.status(), 200);
    };

    blob_with_malformed_digest_in_url_is_400_digest_invalid => |s: Server| async move {
        push_blob(&s, "blobs/baddigest", b"x").await;
        let long = format!("sha256:{}", "a".repeat(65));
        let upper = format!("sha256:{}", "A".repeat(64));
        for bad in ["sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "nocolon", long.as_str(), upper.as_str()] {
            let r = get_blob(&s, "blobs/baddigest", bad, None).await;
            assert_eq!(r.status(), 400, "GET {bad}");
            assert_eq!(error_code(r).await, "DIGEST_INVALID", "GET {bad}");
            let r = head_blob(&s, "blobs/baddigest", bad).await;
            assert_eq!(r.status(), 400, "HEAD {bad}");
            let r = client().delete(s.url(&format!("/v2/blobs/baddigest/blobs/{bad}"))).send().await.unwrap();
            assert_eq!(r.status(), 400, "DELETE {bad}");
            assert_eq!(error_code(r).await, "DIGEST_INVALID", "DELETE {bad}");
        }
    };
}
