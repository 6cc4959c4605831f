//! HTTP helpers for the registry API: a client, blob, manifest and upload
//! requests, error bodies, and raw requests that stop half way.

use std::time::Duration;

use super::data::sha256;
use super::server::Server;

/// A reqwest client with no proxy and generous timeouts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// Monolithic upload (POST `?digest=`) of `data` under an explicit digest string.
pub async fn push_blob_as(s: &Server, repo: &str, digest: &str, data: &[u8]) -> reqwest::Response {
    client()
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

/// Uploads `data` as a blob of `repo` (monolithic POST) and returns its digest.
pub async fn push_blob(s: &Server, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let r = push_blob_as(s, repo, &d, data).await;
    assert_eq!(r.status(), 201, "push blob: {}", r.text().await.unwrap());
    d
}

/// An OCI image manifest with `config` and `layers` (digest, size, media type).
pub fn image_manifest(config: (&str, usize), layers: &[(&str, usize)], extra: &str) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{n}}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]{extra}}}"#,
        config.0,
        config.1,
        layers.join(",")
    )
    .into_bytes()
}

/// Pushes config + one layer + manifest under `tag`; returns the manifest digest.
pub async fn push_image(s: &Server, repo: &str, tag: &str, seed: &str) -> String {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let layer = format!("layer bytes for {seed}");
    let cd = push_blob(s, repo, config.as_bytes()).await;
    let ld = push_blob(s, repo, layer.as_bytes()).await;
    let m = image_manifest((&cd, config.len()), &[(&ld, layer.len())], "");
    let r = put_manifest(s, repo, tag, Some(OCI_MANIFEST), &m).await;
    assert_eq!(
        r.status(),
        201,
        "push manifest: {}",
        r.text().await.unwrap()
    );
    sha256(&m)
}

/// The `errors[0].code` of an error response body.
pub async fn error_code(r: reqwest::Response) -> String {
    let v: serde_json::Value = r.json().await.expect("error body is JSON");
    v["errors"][0]["code"]
        .as_str()
        .expect("errors[0].code")
        .to_string()
}

/// The status, `errors[0].code` and `errors[0].detail` (as text) of an
/// error response.
pub async fn error_parts(r: reqwest::Response) -> (u16, String, String) {
    let (status, v) = error_body(r).await;
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    // A structured detail (a policy denial's) carries its prose in `message`.
    let detail = match &v["detail"] {
        serde_json::Value::String(s) => s.clone(),
        _ => text("message"),
    };
    (status, text("code"), detail)
}

/// The status and the first error object of an error response.
pub async fn error_body(r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.expect("error body is JSON");
    (status, v["errors"][0].clone())
}

/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Media type of the OCI empty JSON descriptor (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A response header as a string (None when absent; panics when not visible ASCII).
pub fn hdr(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().expect("visible ASCII header").to_string())
}

/// A request body sent with chunked transfer encoding (no Content-Length).
pub fn streamed(parts: Vec<Vec<u8>>) -> reqwest::Body {
    let items: Vec<Result<bytes::Bytes, std::io::Error>> = parts
        .into_iter()
        .map(|p| Ok(bytes::Bytes::from(p)))
        .collect();
    reqwest::Body::wrap_stream(futures::stream::iter(items))
}

/// A body-less `method` request to `path`.
pub async fn request(s: &Server, method: reqwest::Method, path: &str) -> reqwest::Response {
    client().request(method, s.url(path)).send().await.unwrap()
}

/// HEAD of blob `digest` in `repo`.
pub async fn head_blob(s: &Server, repo: &str, digest: &str) -> reqwest::Response {
    request(
        s,
        reqwest::Method::HEAD,
        &format!("/v2/{repo}/blobs/{digest}"),
    )
    .await
}

/// GET of blob `digest` in `repo`, with an optional `Range` header.
pub async fn get_blob(
    s: &Server,
    repo: &str,
    digest: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut rq = client().get(s.url(&format!("/v2/{repo}/blobs/{digest}")));
    if let Some(r) = range {
        rq = rq.header("Range", r);
    }
    rq.send().await.unwrap()
}

/// Asserts HEAD and GET of a blob both answer 404, GET with BLOB_UNKNOWN.
pub async fn assert_blob_absent(s: &Server, repo: &str, digest: &str) {
    let r = head_blob(s, repo, digest).await;
    assert_eq!(
        r.status(),
        404,
        "HEAD {repo} {digest}: blob should be absent"
    );
    let r = get_blob(s, repo, digest, None).await;
    assert_eq!(
        r.status(),
        404,
        "GET {repo} {digest}: blob should be absent"
    );
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
}

/// PUT of manifest `reference` in `repo` with an optional Content-Type.
pub async fn put_manifest(
    s: &Server,
    repo: &str,
    reference: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> reqwest::Response {
    let mut rq = client().put(s.url(&format!("/v2/{repo}/manifests/{reference}")));
    if let Some(ct) = content_type {
        rq = rq.header("Content-Type", ct);
    }
    rq.body(body.to_vec()).send().await.unwrap()
}

/// The JSON body of a GET of `path` (asserting 200).
pub async fn get_json(s: &Server, path: &str) -> serde_json::Value {
    let r = client().get(s.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

/// GET of manifest `reference` in `repo`.
pub async fn get_manifest(s: &Server, repo: &str, reference: &str) -> reqwest::Response {
    request(
        s,
        reqwest::Method::GET,
        &format!("/v2/{repo}/manifests/{reference}"),
    )
    .await
}

/// HEAD of manifest `reference` in `repo`.
pub async fn head_manifest(s: &Server, repo: &str, reference: &str) -> reqwest::Response {
    request(
        s,
        reqwest::Method::HEAD,
        &format!("/v2/{repo}/manifests/{reference}"),
    )
    .await
}

/// Opens an upload session (POST, asserts 202); returns its Location.
pub async fn open_session(s: &Server, repo: &str) -> String {
    let r = client()
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.headers()["location"].to_str().unwrap().to_string()
}

/// The offset an upload session has reached, asked of `s` (GET on its
/// Location; asserts the session is there).
pub async fn session_offset(s: &Server, loc: &str) -> u64 {
    let r = client().get(s.url(loc)).send().await.unwrap();
    assert_eq!(r.status(), 204, "the upload session must be there");
    let range = hdr(&r, "range").unwrap();
    range.trim_start_matches("0-").parse::<u64>().unwrap() + 1
}

/// Closes upload `loc` on `commit_on` with `blob`'s digest (asserts 201)
/// and checks that `read_from` serves exactly `blob`.
pub async fn commit_and_compare(
    commit_on: &Server,
    read_from: &Server,
    repo: &str,
    loc: &str,
    blob: &[u8],
) {
    let d = sha256(blob);
    let r = client()
        .put(commit_on.url(&format!("{loc}?digest={d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let got = get_blob(read_from, repo, &d, None)
        .await
        .bytes()
        .await
        .unwrap();
    assert!(got[..] == blob[..], "the stored blob is the bytes sent");
}

/// PATCH of a chunk (octet-stream) with Content-Range `start-end`.
pub async fn patch_chunk(s: &Server, loc: &str, start: usize, data: &[u8]) -> reqwest::Response {
    let end = start + data.len() - 1;
    client()
        .patch(s.url(loc))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("{start}-{end}"))
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

/// A request to `url` (a path) with only `Content-Range: range` and `body` set.
pub async fn send_range(
    s: &Server,
    method: reqwest::Method,
    url: &str,
    range: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    client()
        .request(method, s.url(url))
        .header("Content-Range", range)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Raw request announcing `total` body bytes but sending only `part`; the connection is left hanging.
pub async fn half_request(
    s: &Server,
    method: &str,
    path: &str,
    headers: &str,
    total: usize,
    part: &[u8],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut c = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {total}\r\n{headers}\r\n",
        s.addr
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(part).await.unwrap();
    c.flush().await.unwrap();
    c
}

/// The status of a sent request, or its transport error as text (an early answer must not arrive as a reset).
pub fn status_or_error(r: &reqwest::Result<reqwest::Response>) -> Result<u16, String> {
    r.as_ref()
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}
