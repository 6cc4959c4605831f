//! Bad input on every endpoint: unknown paths, wrong methods, invalid
//! repository names, malformed and truncated HTTP requests. Every test also
//! checks that nothing stored changed.

use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The error codes of the distribution-spec (plus the Docker-compatible ones
/// the brief allows for tags and pagination).
const SPEC_CODES: [&str; 14] = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

/// What came back on a raw connection.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    head: String,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {:?}", self.body));
        v["errors"][0]["code"]
            .as_str()
            .expect("errors[0].code")
            .to_string()
    }
}

/// Sends raw bytes on a fresh connection. With `half_close`, shuts down the
/// write side afterwards. Returns the response, if the server sent one.
async fn raw_exchange(addr: &str, request: &[u8], half_close: bool) -> Option<RawResponse> {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = sock.write_all(request).await;
    if half_close {
        let _ = sock.shutdown().await;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut buf)).await;
    if buf.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    Some(RawResponse {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// A complete, bodiless raw request with `Connection: close`.
async fn raw_request(s: &Server, method: &str, path: &str) -> RawResponse {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        s.addr
    );
    raw_exchange(&s.addr, req.as_bytes(), false)
        .await
        .unwrap_or_else(|| panic!("no response to {method} {path}"))
}

/// Headers announcing `content_length` bytes, then `sent`, then a half-close.
async fn truncated(
    s: &Server,
    method: &str,
    path: &str,
    extra: &str,
    content_length: usize,
    sent: &[u8],
) -> Option<RawResponse> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra}Content-Length: {content_length}\r\n\r\n",
        s.addr
    )
    .into_bytes();
    req.extend_from_slice(sent);
    raw_exchange(&s.addr, &req, true).await
}

async fn catalog(s: &Server) -> Vec<String> {
    let r = client().get(s.url("/v2/_catalog")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    v["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

async fn session_range(s: &Server, loc: &str) -> Option<String> {
    let r = client().get(s.url(loc)).send().await.unwrap();
    assert_eq!(r.status(), 204, "session {loc}");
    hdr(&r, "range")
}

/// Polls until the session reports `range` (a dropped request finishes
/// asynchronously), then asserts it.
async fn wait_session_range(s: &Server, loc: &str, range: &str) {
    for _ in 0..400 {
        if session_range(s, loc).await.as_deref() == Some(range) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(session_range(s, loc).await.as_deref(), Some(range));
}

/// Every endpoint with repository `name`, as (method, path, query-body).
fn endpoints(name: &str, digest: &str) -> Vec<(reqwest::Method, String)> {
    use reqwest::Method;
    let id = "3f2b6c1e-0000-4000-8000-000000000000";
    vec![
        (Method::GET, format!("/v2/{name}/tags/list")),
        (Method::GET, format!("/v2/{name}/manifests/latest")),
        (Method::HEAD, format!("/v2/{name}/manifests/latest")),
        (Method::PUT, format!("/v2/{name}/manifests/latest")),
        (Method::DELETE, format!("/v2/{name}/manifests/latest")),
        (Method::GET, format!("/v2/{name}/manifests/{digest}")),
        (Method::GET, format!("/v2/{name}/blobs/{digest}")),
        (Method::HEAD, format!("/v2/{name}/blobs/{digest}")),
        (Method::DELETE, format!("/v2/{name}/blobs/{digest}")),
        (Method::POST, format!("/v2/{name}/blobs/uploads/")),
        (
            Method::POST,
            format!("/v2/{name}/blobs/uploads/?digest={digest}"),
        ),
        (
            Method::POST,
            format!("/v2/{name}/blobs/uploads/?mount={digest}&from=bad/src"),
        ),
        (Method::GET, format!("/v2/{name}/blobs/uploads/{id}")),
        (Method::PATCH, format!("/v2/{name}/blobs/uploads/{id}")),
        (
            Method::PUT,
            format!("/v2/{name}/blobs/uploads/{id}?digest={digest}"),
        ),
        (Method::DELETE, format!("/v2/{name}/blobs/uploads/{id}")),
        (Method::GET, format!("/v2/{name}/referrers/{digest}")),
    ]
}

both_backends! {
    unknown_path_is_404_with_a_json_error_body => |s: Server| async move {
        for path in ["/v2/a", "/other", "/", "/v2/a/b/unknown", "/v2/x/blobs", "/v2/x/tags", "/v2/bad%zz/tags/list", "/v3/"] {
            let r = client().get(s.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 404, "{path}");
            assert_eq!(hdr(&r, "content-type").as_deref(), Some("application/json"), "{path}");
            let v: serde_json::Value = r.json().await.unwrap();
            let code = v["errors"][0]["code"].as_str().unwrap_or_else(|| panic!("{path}: {v}"));
            assert!(SPEC_CODES.contains(&code), "{path}: code {code} is not a spec code");
        }
        assert!(catalog(&s).await.is_empty());
    };

    wrong_method_is_405_unsupported_and_changes_nothing => |s: Server| async move {
        let d = push_blob(&s, "bad/method", b"method test").await;
        let id = "3f2b6c1e-0000-4000-8000-000000000000";
        use reqwest::Method;
        let cases = vec![
            (Method::POST, "/v2/".to_string()),
            (Method::PUT, "/v2/".to_string()),
            (Method::DELETE, "/v2/".to_string()),
            (Method::POST, "/v2/_catalog".to_string()),
            (Method::DELETE, "/v2/_catalog".to_string()),
            (Method::PUT, "/v2/bad/method/tags/list".to_string()),
            (Method::DELETE, "/v2/bad/method/tags/list".to_string()),
            (Method::POST, "/v2/bad/method/manifests/latest".to_string()),
            (Method::PATCH, "/v2/bad/method/manifests/latest".to_string()),
            (Method::PUT, format!("/v2/bad/method/blobs/{d}")),
            (Method::POST, format!("/v2/bad/method/blobs/{d}")),
            (Method::PATCH, format!("/v2/bad/method/blobs/{d}")),
            (Method::GET, "/v2/bad/method/blobs/uploads/".to_string()),
            (Method::PUT, "/v2/bad/method/blobs/uploads/".to_string()),
            (Method::DELETE, "/v2/bad/method/blobs/uploads/".to_string()),
            (Method::POST, format!("/v2/bad/method/blobs/uploads/{id}")),
            (Method::HEAD, format!("/v2/bad/method/blobs/uploads/{id}")),
            (Method::PUT, format!("/v2/bad/method/referrers/{d}")),
            (Method::DELETE, format!("/v2/bad/method/referrers/{d}")),
            (Method::OPTIONS, "/v2/bad/method/manifests/latest".to_string()),
        ];
        for (m, path) in cases {
            let head = m == Method::HEAD;
            let r = client().request(m.clone(), s.url(&path)).body(b"payload".to_vec()).send().await.unwrap();
            assert_eq!(r.status(), 405, "{m} {path}");
            if !head {
                assert_eq!(error_code(r).await, "UNSUPPORTED", "{m} {path}");
            }
        }
        // Nothing was created or removed.
        assert_eq!(catalog(&s).await, ["bad/method"]);
        assert_eq!(head_blob(&s, "bad/method", &d).await.status(), 200);
        assert_eq!(get_manifest(&s, "bad/method", "latest").await.status(), 404);
    };

    wrong_method_405_lists_the_allowed_methods_in_allow => |s: Server| async move {
        // RFC 9110 15.5.6: a 405 MUST carry Allow with the supported methods.
        let d = sha256(b"x");
        use reqwest::Method;
        let cases = vec![
            (Method::POST, "/v2/".to_string(), vec!["GET", "HEAD"]),
            (Method::POST, "/v2/r/manifests/latest".to_string(), vec!["DELETE", "GET", "HEAD", "PUT"]),
            (Method::PUT, format!("/v2/r/blobs/{d}"), vec!["DELETE", "GET", "HEAD"]),
            (Method::GET, "/v2/r/blobs/uploads/".to_string(), vec!["POST"]),
            (Method::DELETE, "/v2/r/tags/list".to_string(), vec!["GET"]),
        ];
        for (m, path, allowed) in cases {
            let r = client().request(m.clone(), s.url(&path)).send().await.unwrap();
            assert_eq!(r.status(), 405, "{m} {path}");
            let allow = hdr(&r, "allow").unwrap_or_else(|| panic!("{m} {path}: 405 without an Allow header"));
            let mut got: Vec<String> = allow.split(',').map(|x| x.trim().to_uppercase()).filter(|x| !x.is_empty()).collect();
            got.sort();
            assert_eq!(got, allowed, "{m} {path}: Allow {allow:?}");
        }
    };

    invalid_repository_names_are_400_name_invalid_on_every_endpoint => |s: Server| async move {
        let d = push_blob(&s, "bad/names-src", b"source").await;
        let long = "a".repeat(256);
        let long_nested = format!("{}/{}", "a".repeat(128), "b".repeat(127));
        let names = [
            "Upper/repo", "UPPER", "a//b", "a..b", "a.-b", "-a", "a-", "a___b", "a/", long.as_str(), long_nested.as_str(), "a%20b", "a:b", "a@b",
        ];
        for name in names {
            for (m, path) in endpoints(name, &d) {
                let head = m == reqwest::Method::HEAD;
                let r = client()
                    .request(m.clone(), s.url(&path))
                    .header("Content-Type", OCI_MANIFEST)
                    .body(b"{}".to_vec())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 400, "{m} {path}");
                if !head {
                    assert_eq!(error_code(r).await, "NAME_INVALID", "{m} {path}");
                }
            }
        }
        // Nothing got created under any of those names.
        assert_eq!(catalog(&s).await, ["bad/names-src"]);
    };

    repository_name_of_255_characters_is_valid_and_256_is_not => |s: Server| async move {
        let ok = format!("{}/{}", "a".repeat(127), "b".repeat(127));
        assert_eq!(ok.len(), 255);
        let r = client().get(s.url(&format!("/v2/{ok}/tags/list"))).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "NAME_UNKNOWN");
        let d = push_blob(&s, &ok, b"long name").await;
        assert_eq!(head_blob(&s, &ok, &d).await.status(), 200);
        let bad = format!("{ok}c");
        let r = client().get(s.url(&format!("/v2/{bad}/blobs/{d}"))).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "NAME_INVALID");
        assert_eq!(catalog(&s).await, [ok]);
    };

    dot_segments_in_repository_names_are_400_name_invalid => |s: Server| async move {
        // Sent raw: an HTTP client library would normalise the dot segments away.
        let d = sha256(b"dots");
        let cases = [
            ("GET", "/v2/../tags/list".to_string()),
            ("GET", "/v2/a/../b/tags/list".to_string()),
            ("GET", "/v2/./a/tags/list".to_string()),
            ("GET", "/v2/a/./tags/list".to_string()),
            ("GET", "/v2/%2e%2e/tags/list".to_string()),
            ("GET", "/v2/a/%2E%2E/b/manifests/latest".to_string()),
            ("GET", format!("/v2/../blobs/{d}")),
            ("POST", "/v2/../blobs/uploads/".to_string()),
            ("POST", "/v2/a/../../blobs/uploads/".to_string()),
            ("PUT", "/v2/a/../manifests/latest".to_string()),
            ("DELETE", format!("/v2/../blobs/{d}")),
            ("GET", format!("/v2/../referrers/{d}")),
        ];
        for (m, path) in cases {
            let r = raw_request(&s, m, &path).await;
            assert_eq!(r.status, 400, "{m} {path}: {r:?}");
            assert_eq!(r.header("content-type").as_deref(), Some("application/json"), "{m} {path}");
            assert_eq!(r.code(), "NAME_INVALID", "{m} {path}");
        }
        assert!(catalog(&s).await.is_empty());
    };

    mount_with_invalid_from_or_mount_falls_back_to_a_202_upload_session => |s: Server| async move {
        // distribution-spec: a registry unable to mount SHOULD answer 202 and open a session.
        let d = push_blob(&s, "bad/mount-src", b"mount me").await;
        for q in [format!("mount={d}&from=Bad/Name"), format!("mount={d}&from=a//b"), "mount=sha256:abc&from=bad/mount-src".to_string(), format!("mount={d}&from=")] {
            let r = client()
                .post(s.url(&format!("/v2/bad/mount-dst/blobs/uploads/?{q}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "?{q}");
            let loc = hdr(&r, "location").unwrap_or_default();
            assert!(loc.starts_with("/v2/bad/mount-dst/blobs/uploads/"), "?{q}: Location {loc}");
        }
        assert_eq!(head_blob(&s, "bad/mount-dst", &d).await.status(), 404);
    };

    truncated_monolithic_post_with_half_close_stores_nothing => |s: Server| async move {
        let data = stepped_bytes(10_000, 1);
        let full = sha256(&data);
        let prefix = sha256(&data[..4000]);
        // Digest of the whole blob, body cut short.
        let r = truncated(&s, "POST", &format!("/v2/bad/trunc-post/blobs/uploads/?digest={full}"), "", data.len(), &data[..4000]).await;
        if let Some(r) = &r {
            assert!(r.status >= 400, "truncated POST answered {r:?}");
        }
        // Digest of exactly the bytes that arrived: still not a complete request.
        let r = truncated(&s, "POST", &format!("/v2/bad/trunc-post/blobs/uploads/?digest={prefix}"), "", data.len(), &data[..4000]).await;
        if let Some(r) = &r {
            assert!(r.status >= 400, "truncated POST answered {r:?}");
        }
        // Give the server the chance to finish (a later request on the same store).
        push_blob(&s, "bad/trunc-other", b"later").await;
        assert_eq!(head_blob(&s, "bad/trunc-post", &full).await.status(), 404);
        assert_eq!(head_blob(&s, "bad/trunc-post", &prefix).await.status(), 404);
        assert_eq!(catalog(&s).await, ["bad/trunc-other"]);
    };

    truncated_final_put_with_half_close_does_not_commit_and_upload_resumes => |s: Server| async move {
        let data = stepped_bytes(10_000, 2);
        let full = sha256(&data);
        let prefix = sha256(&data[..6000]);
        let loc = open_session(&s, "bad/trunc-put").await;
        assert_eq!(
            send_range(&s, reqwest::Method::PATCH, &loc, "0-1999", data[..2000].to_vec()).await.status(),
            202
        );
        // The closing PUT announces the rest but delivers only part of it, and
        // the digest names exactly what arrived: it must still not commit.
        let r = truncated(&s, "PUT", &format!("{loc}?digest={prefix}"), "Content-Range: 2000-9999\r\n", 8000, &data[2000..6000]).await;
        if let Some(r) = &r {
            assert!(r.status >= 400, "truncated PUT answered {r:?}");
        }
        wait_session_range(&s, &loc, "0-5999").await;
        assert_eq!(head_blob(&s, "bad/trunc-put", &prefix).await.status(), 404);
        assert_eq!(head_blob(&s, "bad/trunc-put", &full).await.status(), 404);
        // Resume with the rest.
        let r = send_range(&s, reqwest::Method::PUT, &format!("{loc}?digest={full}"), "6000-9999", data[6000..].to_vec()).await;
        assert_eq!(r.status(), 201);
        assert_eq!(head_blob(&s, "bad/trunc-put", &full).await.status(), 200);
        assert_eq!(head_blob(&s, "bad/trunc-put", &prefix).await.status(), 404);
    };

    truncated_manifest_put_with_half_close_stores_nothing => |s: Server| async move {
        let config = br#"{"os":"linux"}"#;
        let cd = push_blob(&s, "bad/trunc-manifest", config).await;
        let m = image_manifest((&cd, config.len()), &[], "");
        // The bytes that arrive are a complete, valid manifest; the request is not.
        let mut padded = m.clone();
        padded.extend_from_slice(&[b' '; 500]);
        let r = truncated(&s, "PUT", "/v2/bad/trunc-manifest/manifests/t", &format!("Content-Type: {OCI_MANIFEST}\r\n"), padded.len(), &m).await;
        if let Some(r) = &r {
            assert!(r.status >= 400, "truncated manifest PUT answered {r:?}");
        }
        let dm = sha256(&m);
        let r = truncated(&s, "PUT", &format!("/v2/bad/trunc-manifest/manifests/{dm}"), &format!("Content-Type: {OCI_MANIFEST}\r\n"), padded.len(), &m).await;
        if let Some(r) = &r {
            assert!(r.status >= 400, "truncated manifest PUT answered {r:?}");
        }
        push_blob(&s, "bad/trunc-other", b"later").await;
        assert_eq!(get_manifest(&s, "bad/trunc-manifest", "t").await.status(), 404);
        assert_eq!(get_manifest(&s, "bad/trunc-manifest", &dm).await.status(), 404);
        assert_eq!(get_manifest(&s, "bad/trunc-manifest", &sha256(&padded)).await.status(), 404);
        let r = client().get(s.url("/v2/bad/trunc-manifest/tags/list")).send().await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["tags"], serde_json::json!([]));
    };

    malformed_content_length_is_400_and_session_unchanged => |s: Server| async move {
        let loc = open_session(&s, "bad/content-length").await;
        assert_eq!(
            send_range(&s, reqwest::Method::PATCH, &loc, "0-4", b"01234".to_vec()).await.status(),
            202
        );
        for cl in ["abc", "-5", "5, 6", "0x10"] {
            let req = format!(
                "PATCH {loc} HTTP/1.1\r\nHost: {}\r\nContent-Length: {cl}\r\nConnection: close\r\n\r\n56789",
                s.addr
            );
            let r = raw_exchange(&s.addr, req.as_bytes(), false).await;
            let status = r.as_ref().map(|r| r.status);
            assert_eq!(status, Some(400), "Content-Length {cl:?}: {r:?}");
            assert_eq!(session_range(&s, &loc).await.as_deref(), Some("0-4"), "Content-Length {cl:?}");
        }
        // Two different Content-Length headers.
        let req = format!(
            "PATCH {loc} HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\n567890",
            s.addr
        );
        let r = raw_exchange(&s.addr, req.as_bytes(), false).await;
        assert_eq!(r.as_ref().map(|r| r.status), Some(400), "{r:?}");
        assert_eq!(session_range(&s, &loc).await.as_deref(), Some("0-4"));
    };

    invalid_tag_query_parameter_on_manifest_put_is_400_tag_invalid => |s: Server| async move {
        let config = br#"{"os":"linux"}"#;
        let cd = push_blob(&s, "bad/tagparam", config).await;
        let m = image_manifest((&cd, config.len()), &[], "");
        let dm = sha256(&m);
        let r = put_manifest(&s, "bad/tagparam", &format!("{dm}?tag=-bad"), Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "TAG_INVALID");
        assert_eq!(get_manifest(&s, "bad/tagparam", &dm).await.status(), 404);
    };

    out_of_order_large_chunk_416_reaches_the_client_before_its_body_is_read => |s: Server| async move {
        // The server answers before reading the body; the client must still
        // get that answer rather than a reset connection.
        let big = stepped_bytes(8 * 1024 * 1024, 3);
        let loc = open_session(&s, "bad/early416").await;
        let r = client()
            .patch(s.url(&loc))
            .header("Content-Range", format!("100-{}", 100 + big.len() - 1))
            .body(big.clone())
            .send()
            .await;
        let status = status_or_error(&r);
        assert_eq!(status, Ok(416), "out-of-order 8 MiB chunk");
        assert_eq!(session_range(&s, &loc).await.as_deref(), Some("0-0"));
        assert_eq!(head_blob(&s, "bad/early416", &sha256(&big)).await.status(), 404);
    };

    unsupported_digest_400_on_large_post_reaches_the_client_before_its_body_is_read => |s: Server| async move {
        let big = stepped_bytes(8 * 1024 * 1024, 4);
        let r = client()
            .post(s.url("/v2/bad/early400/blobs/uploads/?digest=md5:d41d8cd98f00b204e9800998ecf8427e"))
            .body(big.clone())
            .send()
            .await;
        let status = status_or_error(&r);
        assert_eq!(status, Ok(400), "8 MiB POST with an unsupported digest");
        assert_eq!(head_blob(&s, "bad/early400", &sha256(&big)).await.status(), 404);
        assert!(catalog(&s).await.is_empty());
    };

    unknown_session_404_on_large_patch_reaches_the_client_before_its_body_is_read => |s: Server| async move {
        let big = stepped_bytes(8 * 1024 * 1024, 5);
        let r = client()
            .patch(s.url("/v2/bad/early404/blobs/uploads/3f2b6c1e-0000-4000-8000-000000000000"))
            .body(big.clone())
            .send()
            .await;
        let status = status_or_error(&r);
        assert_eq!(status, Ok(404), "8 MiB PATCH to an unknown session");
        assert!(catalog(&s).await.is_empty());
    };
}
