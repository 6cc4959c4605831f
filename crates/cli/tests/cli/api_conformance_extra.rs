//! Beyond the conformance suite: what the distribution-spec allows and
//! Pavilion does (non-distributable layers, `?tag=` on manifest PUT,
//! automatic cross-repository mounts), and the server's limits under abuse
//! (a full disk, `%2F` in names, caps on sessions, connections and headers,
//! idle connections).

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ND_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
const ND_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
const ND_ZSTD: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
const DOCKER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `errors[0]` object of an error response.
async fn first_error(r: reqwest::Response) -> serde_json::Value {
    let v: serde_json::Value = r.json().await.expect("error body is JSON");
    v["errors"][0].clone()
}

/// A manifest of `media_type` with a pushed config and `layers` given as
/// raw JSON descriptors.
fn manifest_with_layers(media_type: &str, config: &(String, usize), layers: &[String]) -> Vec<u8> {
    let config_type = if media_type == DOCKER_MANIFEST {
        "application/vnd.docker.container.image.v1+json"
    } else {
        "application/vnd.oci.image.config.v1+json"
    };
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"{config_type}","digest":"{}","size":{}}},"layers":[{}]}}"#,
        config.0,
        config.1,
        layers.join(",")
    )
    .into_bytes()
}

/// A layer descriptor (never pushed) with optional `urls` JSON.
fn foreign_layer(media_type: &str, seed: &str, urls: Option<&str>) -> String {
    let d = sha256(seed.as_bytes());
    let urls = urls.map_or(String::new(), |u| format!(r#","urls":{u}"#));
    format!(r#"{{"mediaType":"{media_type}","digest":"{d}","size":123456{urls}}}"#)
}

both_backends! {
    non_distributable_layers_with_urls_are_accepted_without_their_blobs => |s: Server| async move {
        let repo = "extra/nondist";
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let cd = (push_blob(&s, repo, config).await, config.len());
        let layer = b"an ordinary layer".to_vec();
        let ld = push_blob(&s, repo, &layer).await;
        let ordinary = format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{}}}"#, layer.len());
        let url = r#"["https://store.example.com/blobs/x"]"#;
        // The HEAD suite's image: gzip and plain non-distributable layers, then a normal one.
        let accepted = [
            (OCI_MANIFEST, vec![foreign_layer(ND_GZIP, "g", Some(url)), foreign_layer(ND_TAR, "t", Some(url)), ordinary.clone()]),
            (OCI_MANIFEST, vec![foreign_layer(ND_ZSTD, "z", Some(url))]),
            (DOCKER_MANIFEST, vec![foreign_layer(DOCKER_FOREIGN, "f", Some(url)), ordinary.clone()]),
        ];
        for (i, (mt, layers)) in accepted.iter().enumerate() {
            let m = manifest_with_layers(mt, &cd, layers);
            let tag = format!("nd{i}");
            let r = put_manifest(&s, repo, &tag, Some(mt), &m).await;
            assert_eq!(r.status(), 201, "{tag}: {}", r.text().await.unwrap());
            let r = get_manifest(&s, repo, &tag).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.bytes().await.unwrap().to_vec(), m, "{tag}: stored byte for byte");
        }
        // The registry never claims to hold the external bytes.
        assert_eq!(head_blob(&s, repo, &sha256(b"g")).await.status(), 404);
        // The existence check is skipped only for a non-distributable type
        // that carries urls: each of these still needs its blob.
        let refused = [
            ("no urls", foreign_layer(ND_GZIP, "g", None)),
            ("empty urls", foreign_layer(ND_GZIP, "g", Some("[]"))),
            ("ordinary type with urls", foreign_layer("application/vnd.oci.image.layer.v1.tar+gzip", "g", Some(url))),
        ];
        for (what, layer) in refused {
            let m = manifest_with_layers(OCI_MANIFEST, &cd, &[layer]);
            let r = put_manifest(&s, repo, "refused", Some(OCI_MANIFEST), &m).await;
            assert_eq!(r.status(), 400, "{what}");
            assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN", "{what}");
        }
        // The config is never exempt, whatever it claims.
        let missing_config = (sha256(b"config never pushed"), 19);
        let m = manifest_with_layers(OCI_MANIFEST, &missing_config, &[foreign_layer(ND_GZIP, "g", Some(url))]);
        let r = put_manifest(&s, repo, "refused", Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
        assert_eq!(get_manifest(&s, repo, "refused").await.status(), 404);
    };

    manifest_put_by_digest_with_tag_params_sets_every_tag_and_answers_oci_tag => |s: Server| async move {
        let repo = "extra/tagparam";
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let cd = push_blob(&s, repo, config).await;
        let m = image_manifest((&cd, config.len()), &[], "");
        for digest in [sha256(&m), sha512(&m)] {
            let alg = &digest[..6];
            let tags = ["1.2.3", "1.2", "1", "latest"].map(|t| format!("{alg}-{t}"));
            let query: Vec<String> = tags.iter().map(|t| format!("tag={t}")).collect();
            let r = put_manifest(&s, repo, &format!("{digest}?{}", query.join("&")), Some(OCI_MANIFEST), &m).await;
            assert_eq!(r.status(), 201, "{alg}");
            assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(digest.as_str()));
            let announced: Vec<String> = r
                .headers()
                .get_all("oci-tag")
                .iter()
                .flat_map(|v| v.to_str().unwrap().split(',').map(|t| t.trim().to_string()).collect::<Vec<_>>())
                .collect();
            for t in &tags {
                assert!(announced.contains(t), "{alg}: OCI-Tag must list {t}: {announced:?}");
                let r = get_manifest(&s, repo, t).await;
                assert_eq!(r.status(), 200, "{t}");
                assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(digest.as_str()), "{t}");
            }
        }
        let r = client().get(s.url(&format!("/v2/{repo}/tags/list"))).send().await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["tags"].as_array().unwrap().len(), 8);
        // A tag repeated in one request is set (and announced) once.
        let r = put_manifest(&s, repo, &format!("{}?tag=twice&tag=twice", sha256(&m)), Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers().get_all("oci-tag").iter().count(), 1);
        // Far too many tags in one request: 414 and nothing set.
        let many: Vec<String> = (0..1001).map(|i| format!("tag=many{i}")).collect();
        let r = put_manifest(&s, repo, &format!("{}?{}", sha256(&m), many.join("&")), Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 414);
        assert_eq!(error_code(r).await, "TAG_INVALID");
        assert_eq!(get_manifest(&s, repo, "many0").await.status(), 404);
    };

    mount_without_from_finds_the_blob_in_any_repository => |s: Server| async move {
        let data = b"mounted without naming the source".to_vec();
        let d = push_blob(&s, "extra/automount-src", &data).await;
        let r = client()
            .post(s.url(&format!("/v2/extra/automount-dst/blobs/uploads/?mount={d}")))
            .header("Content-Length", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(hdr(&r, "location"), Some(format!("/v2/extra/automount-dst/blobs/{d}")));
        assert_eq!(hdr(&r, "docker-content-digest").as_deref(), Some(d.as_str()));
        let got = get_blob(&s, "extra/automount-dst", &d, None).await;
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().to_vec(), data);
        // sha512 blobs mount the same way.
        let data512 = b"a sha512 blob".to_vec();
        let d512 = sha512(&data512);
        assert_eq!(push_blob_as(&s, "extra/automount-src", &d512, &data512).await.status(), 201);
        let r = client()
            .post(s.url(&format!("/v2/extra/automount-512/blobs/uploads/?mount={d512}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(get_blob(&s, "extra/automount-512", &d512, None).await.status(), 200);
        // A blob no repository holds any more (deleted everywhere) is not
        // mounted: the answer is an ordinary upload session.
        let gone = push_blob(&s, "extra/automount-gone", b"deleted everywhere").await;
        let r = client().delete(s.url(&format!("/v2/extra/automount-gone/blobs/{gone}"))).send().await.unwrap();
        assert_eq!(r.status(), 202);
        for digest in [gone.clone(), sha256(b"never pushed")] {
            let r = client()
                .post(s.url(&format!("/v2/extra/automount-none/blobs/uploads/?mount={digest}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "{digest}");
            assert!(hdr(&r, "location").unwrap().starts_with("/v2/extra/automount-none/blobs/uploads/"));
        }
        assert_blob_absent(&s, "extra/automount-none", &gone).await;
    };

    percent_encoded_slash_in_a_repository_name_is_name_invalid => |s: Server| async move {
        let digest = push_image(&s, "extra/inner", "v1", "pct").await;
        let cases = [
            ("GET", "/v2/extra%2Finner/manifests/v1".to_string()),
            ("HEAD", "/v2/extra%2finner/manifests/v1".to_string()),
            ("GET", format!("/v2/extra%2Finner/manifests/{digest}")),
            ("GET", "/v2/extra%2Finner/tags/list".to_string()),
            ("GET", format!("/v2/extra%2Finner/referrers/{digest}")),
            ("POST", "/v2/extra%2Fnew/blobs/uploads/".to_string()),
            ("DELETE", "/v2/extra%2Finner/manifests/v1".to_string()),
        ];
        for (m, path) in cases {
            let r = client()
                .request(reqwest::Method::from_bytes(m.as_bytes()).unwrap(), s.url(&path))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{m} {path}");
            if m != "HEAD" {
                let e = first_error(r).await;
                assert_eq!(e["code"], "NAME_INVALID", "{m} {path}");
                assert!(e["detail"].as_str().unwrap().contains("%2F"), "{m} {path}: {e}");
            }
        }
        // Nothing changed: the tag is still there and no repository was made.
        assert_eq!(get_manifest(&s, "extra/inner", "v1").await.status(), 200);
        let r = client().get(s.url("/v2/_catalog")).send().await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["repositories"], serde_json::json!(["extra/inner"]));
    };
}

/// Opens an upload session; returns the response.
async fn post_session(s: &Server, repo: &str) -> reqwest::Response {
    client()
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_upload_sessions_are_capped_with_toomanyrequests() {
    // Counted in the metadata database: both engines.
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(s) = Server::start_with(backend, &["--max-upload-sessions", "3"]) {
            session_cap(s).await;
        }
    }
}

async fn session_cap(s: Server) {
    let src = push_blob(&s, "cap/src", b"mountable").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let r = post_session(&s, "cap/a").await;
        assert_eq!(r.status(), 202);
        open.push(hdr(&r, "location").unwrap());
    }
    let r = post_session(&s, "cap/b").await;
    assert_eq!(r.status(), 429);
    let e = first_error(r).await;
    assert_eq!(e["code"], "TOOMANYREQUESTS");
    assert!(e["detail"].as_str().unwrap().contains("3"), "{e}");
    // A monolithic upload needs a session too.
    let r = push_blob_as(&s, "cap/b", &sha256(b"x"), b"x").await;
    assert_eq!(r.status(), 429);
    assert_eq!(error_code(r).await, "TOOMANYREQUESTS");
    // A mount that succeeds opens no session, so it still works at the cap.
    let r = client()
        .post(s.url(&format!(
            "/v2/cap/b/blobs/uploads/?mount={src}&from=cap/src"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Sessions already open keep working; finishing one frees a place.
    let data = b"finished".to_vec();
    let r = client()
        .put(s.url(&format!("{}?digest={}", open[0], sha256(&data))))
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(post_session(&s, "cap/b").await.status(), 202);
    assert_eq!(post_session(&s, "cap/b").await.status(), 429);
    let r = client().delete(s.url(&open[1])).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(post_session(&s, "cap/c").await.status(), 202);
}

/// Reads one HTTP/1.1 response (head and a Content-Length body) from `sock`.
async fn read_response(sock: &mut tokio::net::TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, head.to_string(), body[..len].to_string());
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(60), sock.read(&mut chunk))
            .await
            .expect("the server answers")
            .unwrap();
        assert!(
            n > 0,
            "connection closed before a full response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A keep-alive connection that has completed one `GET /v2/`.
async fn busy_connection(s: &Server) -> tokio::net::TcpStream {
    let mut c = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let req = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr);
    c.write_all(req.as_bytes()).await.unwrap();
    let (status, _, _) = read_response(&mut c).await;
    assert_eq!(status, 200);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_get_toomanyrequests() {
    let s = Server::start_with(Backend::Sqlite, &["--max-connections", "2"]).unwrap();
    let first = busy_connection(&s).await;
    let _second = busy_connection(&s).await;
    let mut third = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let req = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr);
    third.write_all(req.as_bytes()).await.unwrap();
    let (status, head, body) = read_response(&mut third).await;
    assert_eq!(status, 429, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errors"][0]["code"], "TOOMANYREQUESTS");
    assert!(
        v["errors"][0]["detail"].as_str().unwrap().contains("2"),
        "{body}"
    );
    // Closing a connection frees its place (noticed asynchronously by the server).
    drop(first);
    let mut freed = false;
    for _ in 0..200 {
        let r = client().get(s.url("/v2/")).send().await.unwrap();
        if r.status() == 200 {
            freed = true;
            break;
        }
        assert_eq!(r.status(), 429);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "a closed connection must free its place");
}

/// Whether a fresh HTTP/1.1 connection is served (200) again, asked until it
/// is (bounded): while every place is held, new connections get 429.
async fn served_again(s: &Server) -> bool {
    for _ in 0..300 {
        let mut c = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
        let req = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.addr
        );
        c.write_all(req.as_bytes()).await.unwrap();
        let (status, head, _) = read_response(&mut c).await;
        if status == 200 {
            return true;
        }
        assert_eq!(status, 429, "{head}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Reads from `sock` until the server closes it (bounded); returns all it sent.
async fn read_until_closed(sock: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..1000 {
        match tokio::time::timeout(Duration::from_secs(60), sock.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("the server kept an idle connection open"),
        }
    }
    panic!("the server kept sending on an idle connection");
}

/// An h2c connection (prior knowledge) that has sent `GET /v2/` on stream 1
/// and read the start of the answer; returns it and what it read.
async fn h2c_connection(s: &Server) -> (tokio::net::TcpStream, Vec<u8>) {
    let mut c = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // An empty SETTINGS frame.
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    // HEADERS, END_STREAM | END_HEADERS, stream 1: :method GET, :scheme
    // http (static table 2 and 6), :path /v2/ (literal, name index 4).
    let block = [&[0x82u8, 0x86, 0x04, 4][..], b"/v2/"].concat();
    out.extend_from_slice(&[0, 0, block.len() as u8, 1, 5, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    c.write_all(&out).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    // Frames until a HEADERS frame (type 1) on stream 1.
    for _ in 0..100 {
        let n = tokio::time::timeout(Duration::from_secs(60), c.read(&mut chunk))
            .await
            .expect("the server answers")
            .unwrap();
        assert!(n > 0, "h2c connection closed: {got:?}");
        got.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while got.len() >= at + 9 {
            let len = u32::from_be_bytes([0, got[at], got[at + 1], got[at + 2]]) as usize;
            if got[at + 3] == 1 && got[at + 5..at + 9] == [0, 0, 0, 1] {
                return (c, got[at + 9..].to_vec());
            }
            at += 9 + len;
        }
    }
    panic!("no answer on the h2c connection: {got:?}");
}

/// Idle connections cannot hold the connection places: HTTP/1.1 keep-alive
/// connections, connections that never send a byte, h2c connections (raw,
/// and a real HTTP/2 client that answers pings) are closed after
/// `idle_timeout_secs` without a request, and new connections are served
/// again. Each idle connection is the server's first, so it holds the only
/// place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_free_their_places() {
    let flags = ["--max-connections", "1", "--idle-timeout-secs", "1"];
    // HTTP/1.1 keep-alive after one request.
    let s = Server::start_with(Backend::Sqlite, &flags).unwrap();
    let mut c = busy_connection(&s).await;
    read_until_closed(&mut c).await;
    assert!(
        served_again(&s).await,
        "an idle HTTP/1.1 connection must be closed"
    );
    drop(s);
    // A connection that never sends a byte.
    let s = Server::start_with(Backend::Sqlite, &flags).unwrap();
    let mut c = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    assert_eq!(read_until_closed(&mut c).await, b"");
    assert!(served_again(&s).await, "a silent connection must be closed");
    drop(s);
    // h2c, raw: one request answered 200 (HPACK static index 8), then silence.
    let s = Server::start_with(Backend::Sqlite, &flags).unwrap();
    let (mut c, block) = h2c_connection(&s).await;
    assert_eq!(block.first(), Some(&0x88), "h2c GET /v2/ must be 200");
    read_until_closed(&mut c).await;
    assert!(
        served_again(&s).await,
        "an idle h2c connection must be closed"
    );
    drop(s);
    // A real HTTP/2 client, which answers the server's pings, kept open
    // in its pool.
    let s = Server::start_with(Backend::Sqlite, &flags).unwrap();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert!(
        served_again(&s).await,
        "an idle HTTP/2 connection must be closed"
    );
    drop(h2);
}

/// One request with a `X-Filler` header of `n` bytes, on a fresh connection.
async fn request_with_header(s: &Server, n: usize) -> (u16, String, String) {
    let mut c = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let req = format!(
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\nX-Filler: {}\r\nConnection: close\r\n\r\n",
        s.addr,
        "a".repeat(n)
    );
    c.write_all(req.as_bytes()).await.unwrap();
    read_response(&mut c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_over_the_cap_are_431() {
    let s = Server::start_with(Backend::Sqlite, &["--max-header-bytes", "16384"]).unwrap();
    assert_eq!(request_with_header(&s, 8 << 10).await.0, 200);
    let (status, _, body) = request_with_header(&s, 20 << 10).await;
    assert_eq!(status, 431, "{body}");
    // One line naming the limit (the spec has no error code for this).
    assert!(
        body.contains("16384-byte limit (max_header_bytes)"),
        "{body}"
    );
    assert_eq!(body.lines().count(), 1, "{body}");
    drop(s);
    // The default cap is 64 KiB: 100 KiB of headers are refused.
    let s = Server::start(Backend::Sqlite).unwrap();
    assert_eq!(request_with_header(&s, 32 << 10).await.0, 200);
    assert_eq!(request_with_header(&s, 100 << 10).await.0, 431);
}

/// A `pavilion serve` whose data directory is a tmpfs of `size` in its own
/// user and mount namespaces: a tiny disk that really fills up.
struct TinyDiskServer {
    child: Child,
    addr: String,
    _tmp: tempfile::TempDir,
}

impl TinyDiskServer {
    fn start(size: &str) -> TinyDiskServer {
        let tmp = tempfile::tempdir().unwrap();
        let script = format!(
            "mount -t tmpfs -o size={size} tmpfs {d} && exec {bin} serve --addr 127.0.0.1:0 --data {d}/data",
            d = tmp.path().display(),
            bin = env!("CARGO_BIN_EXE_pavilion"),
        );
        // unshare and sh both exec, so the child's pid is the server's.
        let mut child = Command::new("unshare")
            .args(["-rm", "sh", "-c", &script])
            .env_remove("PAVILION_CONFIG")
            .env("PAVILION_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("pavilion listening on http://") {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                } else {
                    eprintln!("[server] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server did not report its address");
        TinyDiskServer {
            child,
            addr,
            _tmp: tmp,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TinyDiskServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts `r` is the storage-full answer: 507, a code and message saying so.
async fn assert_storage_full(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), 507, "{what}");
    let e = first_error(r).await;
    assert_eq!(e["code"], "STORAGE_FULL", "{what}: {e}");
    assert!(
        e["message"].as_str().unwrap().contains("full"),
        "{what}: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_storage_full_and_recovers() {
    if require_peer("unshare -rm with tmpfs mounts", can_unshare_mount()).is_none() {
        return;
    }
    let s = TinyDiskServer::start("8m");
    let http = client();
    let config = br#"{"os":"linux"}"#;
    let r = http
        .post(s.url(&format!(
            "/v2/full/repo/blobs/uploads/?digest={}",
            sha256(config)
        )))
        .body(config.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let m = image_manifest((&sha256(config), config.len()), &[], "");
    let big = xorshift_bytes(16 << 20, 5, 1, 11);
    let d = sha256(&big);
    // A monolithic upload larger than the disk.
    let r = http
        .post(s.url(&format!("/v2/full/repo/blobs/uploads/?digest={d}")))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_storage_full(r, "monolithic POST").await;
    // A chunk larger than the disk: refused, the session keeps its offset.
    let r = http
        .post(s.url("/v2/full/repo/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let filler = hdr(&r, "location").unwrap();
    let r = http
        .patch(s.url(&filler))
        .header("Content-Range", format!("0-{}", big.len() - 1))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_storage_full(r, "PATCH").await;
    let r = http.get(s.url(&filler)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(hdr(&r, "range").as_deref(), Some("0-0"));
    // Fill the disk to the last page with ever smaller chunks.
    let mut offset = 0usize;
    for size in [1 << 20, 64 << 10, 4 << 10] {
        for _ in 0..(16 << 20) / size {
            let r = http
                .patch(s.url(&filler))
                .header("Content-Range", format!("{offset}-{}", offset + size - 1))
                .body(vec![7u8; size])
                .send()
                .await
                .unwrap();
            if r.status() == 507 {
                break;
            }
            assert_eq!(r.status(), 202, "filling at {offset}");
            offset += size;
        }
    }
    assert!(offset > 4 << 20, "the disk took only {offset} bytes");
    // Now even a small manifest does not fit (its config was pushed first).
    let r = http
        .put(s.url("/v2/full/repo/manifests/v1"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_storage_full(r, "manifest PUT").await;
    // Cancelling the filler frees the disk; everything works again.
    let r = http.delete(s.url(&filler)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .put(s.url("/v2/full/repo/manifests/v1"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}
