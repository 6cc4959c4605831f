//! Test harness: a real `pavilion serve` process on a loopback port, over
//! SQLite or a fresh PostgreSQL database, plus small HTTP helpers.
#![allow(dead_code)]

pub mod model;
pub mod notation;
pub mod run;

pub use model::{files_of, make_model};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Which metadata engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// Blobs in Ceph's radosgw (S3), metadata in PostgreSQL.
    S3,
    /// Blobs in Azurite (Azure Blob Storage), metadata in PostgreSQL.
    Azure,
}

/// The `--storage` URL of a fresh prefix for `backend`, or None when its
/// server is missing (and peers are not required).
fn object_storage(backend: Backend) -> Option<Option<String>> {
    let prefix = uuid_hex();
    match backend {
        Backend::Sqlite | Backend::Postgres => Some(None),
        Backend::S3 => {
            let endpoint = std::env::var("PAVILION_TEST_S3_ENDPOINT").ok();
            require_peer("radosgw (PAVILION_TEST_S3_ENDPOINT)", endpoint.is_some())?;
            Some(Some(format!(
                "s3://pavilion-test/{prefix}?endpoint={}&region=default&allow_http=true&part_size=5242880",
                endpoint?
            )))
        }
        Backend::Azure => {
            let present = std::env::var_os("AZURITE_BLOB_STORAGE_URL").is_some();
            require_peer("Azurite (AZURITE_BLOB_STORAGE_URL)", present)?;
            // Small parts, so tests of a few MiB cross part boundaries.
            Some(Some(format!(
                "az://pavilion-test/{prefix}?use_emulator=true&part_size=5242880"
            )))
        }
    }
}

/// True when the test command asked for every peer to be present.
pub fn peers_required() -> bool {
    std::env::var_os("PAVILION_TEST_REQUIRE_PEERS").is_some_and(|v| v == "1")
}

/// Skips (returns None) or fails when a peer is missing, depending on
/// `PAVILION_TEST_REQUIRE_PEERS`.
pub fn require_peer(what: &str, available: bool) -> Option<()> {
    if available {
        return Some(());
    }
    assert!(
        !peers_required(),
        "{what} is required (PAVILION_TEST_REQUIRE_PEERS=1) but missing"
    );
    eprintln!("SKIPPED: {what} not available; run scripts/test to install peers");
    None
}

/// A fresh, empty PostgreSQL database on the test cluster, or None.
pub fn fresh_postgres_db() -> Option<String> {
    let base = std::env::var("PAVILION_TEST_POSTGRES_URL").ok();
    require_peer("PostgreSQL (PAVILION_TEST_POSTGRES_URL)", base.is_some())?;
    let base = base?;
    let name = format!("pavilion_test_{}", uuid_hex());
    let out = Command::new("psql")
        .args([
            &base,
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "CREATE DATABASE failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    Some(format!("{prefix}/{name}"))
}

/// A name unique across the tests of this process (a counter) and across
/// processes (the pid), with the time for runs that reuse a cluster. Time and
/// pid alone collided when two tests started in the same clock tick.
fn uuid_hex() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{t:x}_{:x}_{n}", std::process::id())
}

/// Writes a command's standard input. A command may exit before it reads
/// it (a usage error found first): the broken pipe that leaves is the
/// command's choice, not a failure of the test's harness.
pub fn feed(stdin: &mut impl std::io::Write, input: &[u8]) {
    match stdin.write_all(input) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("writing the command's standard input: {e}"),
    }
}

/// The lines `child` writes on stderr, read on a thread of their own (so a
/// test can wait for one with a deadline).
pub fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running registry.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    /// http, or https when started with --tls-cert.
    pub scheme: String,
    pub data: PathBuf,
    pub database_url: Option<String>,
    pub extra_args: Vec<String>,
    /// Whether dropping this server drops its database (replicas share the
    /// first one's).
    owns_database: bool,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on `backend`; None when that backend is unavailable
    /// and peers are not required.
    pub fn start(backend: Backend) -> Option<Server> {
        Self::start_with(backend, &[])
    }

    /// Starts a server with extra `serve` arguments.
    pub fn start_with(backend: Backend, extra: &[&str]) -> Option<Server> {
        let storage = object_storage(backend)?;
        let database_url = match backend {
            Backend::Sqlite => None,
            _ => Some(fresh_postgres_db()?),
        };
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if let Some(url) = storage {
            extra.extend(["--storage".to_string(), url]);
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = Server {
            child: None,
            addr: String::new(),
            scheme: "http".into(),
            data: tmp.path().join("data"),
            database_url,
            extra_args: extra,
            owns_database: true,
            _tmp: Some(tmp),
        };
        s.spawn("127.0.0.1:0");
        Some(s)
    }

    /// Another replica of this server: same storage, same database, its
    /// own process, port and data directory.
    pub fn replica(&self) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = Server {
            child: None,
            addr: String::new(),
            scheme: "http".into(),
            data: tmp.path().join("data"),
            database_url: self.database_url.clone(),
            extra_args: self.extra_args.clone(),
            owns_database: false,
            _tmp: Some(tmp),
        };
        s.spawn("127.0.0.1:0");
        s
    }

    fn spawn(&mut self, addr: &str) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pavilion"));
        cmd.args(["serve", "--addr", addr, "--data"])
            .arg(&self.data)
            .args(&self.extra_args)
            .env_remove("PAVILION_CONFIG")
            .env("PAVILION_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(u) = &self.database_url {
            cmd.args(["--database-url", u]);
        }
        let mut child = cmd.spawn().expect("spawn pavilion");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.strip_prefix("pavilion listening on ") {
                        let url = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(url);
                        sent = true;
                        continue;
                    }
                }
                eprintln!("[server] {line}");
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server did not report its address");
        let (scheme, addr) = url.split_once("://").expect("scheme://addr");
        self.scheme = scheme.to_string();
        self.addr = addr.to_string();
        self.child = Some(child);
    }

    /// Base URL, e.g. `http://127.0.0.1:1234`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// Sends SIGKILL and waits.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for exit; returns the exit status success.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Starts the server again on the same data (and the same port).
    pub fn restart(&mut self) {
        self.kill9();
        let addr = self.addr.clone();
        // The port was just freed; retry briefly in case it lingers.
        self.spawn(&addr);
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        // Leave the shared test cluster as we found it.
        if !self.owns_database {
            return;
        }
        if let (Some(url), Ok(base)) = (
            &self.database_url,
            std::env::var("PAVILION_TEST_POSTGRES_URL"),
        ) {
            if let Some((_, name)) = url.rsplit_once('/') {
                let _ = Command::new("psql")
                    .args([
                        &base,
                        "-qc",
                        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    ])
                    .output();
            }
        }
    }
}

/// Runs `body` against every storage backend as four tests: local files
/// with SQLite and with PostgreSQL, radosgw (S3) and Azurite (Azure Blob)
/// with PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident => $body:expr;)*) => {
        $crate::backend_tests!(sqlite, Sqlite, $($name => $body;)*);
        $crate::backend_tests!(postgres, Postgres, $($name => $body;)*);
        $crate::backend_tests!(s3, S3, $($name => $body;)*);
        $crate::backend_tests!(azure, Azure, $($name => $body;)*);
    };
}

/// One module `$module` of tests that each run `body` on a server over `$backend`.
#[macro_export]
macro_rules! backend_tests {
    ($module:ident, $backend:ident, $($name:ident => $body:expr;)*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   if let Some(s) = $crate::common::Server::start($crate::common::Backend::$backend) { ($body)(s).await }
               } )*
        }
    };
}

/// sha256 digest string of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

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

/// sha512 digest string of `data`.
pub fn sha512(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

/// Deterministic pseudo-random bytes: xorshift32 seeded from `seed` and `salt`, bytes `shift` bits down.
pub fn xorshift_bytes(len: usize, seed: u32, salt: u32, shift: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(salt);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> shift) as u8
        })
        .collect()
}

/// Deterministic bytes with a short period: byte `i` is `i * 31 + seed` (wrapping).
pub fn stepped_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The base64 alphabet (standard, not URL-safe).
pub const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (Go's `base64.StdEncoding.EncodeToString`).
pub fn base64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64_ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
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

/// CNCF Distribution from Debian on a loopback port, or None when absent.
pub struct Distribution {
    child: std::process::Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Distribution {
    pub fn start() -> Option<Distribution> {
        Self::start_with_htpasswd(None)
    }

    /// Starts Distribution; with `htpasswd` (a file of bcrypt lines from
    /// `htpasswd -Bbn`), every request needs HTTP Basic credentials.
    pub fn start_with_htpasswd(htpasswd: Option<&Path>) -> Option<Distribution> {
        let bin = std::env::var("PAVILION_TEST_DISTRIBUTION").ok();
        require_peer(
            "CNCF Distribution (PAVILION_TEST_DISTRIBUTION)",
            bin.is_some(),
        )?;
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{}",
                dir.path().join("data").display(),
                htpasswd.map_or(String::new(), |p| format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    p.display()
                ))
            ),
        )
        .unwrap();
        let child = std::process::Command::new(bin?)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start docker-registry");
        // Owned by the guard at once, so every path below kills and reaps it.
        let guard = Distribution {
            child,
            addr,
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&guard.addr).is_ok() {
                return Some(guard);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not start on {}", guard.addr);
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What [`http_proxy`] does with one request.
pub enum ProxyAction {
    /// Pass it on and return the answer.
    Forward,
    /// Answer this status and body without passing it on.
    Refuse(u16, &'static str),
    /// Pass it on, then answer this status and body instead of the answer
    /// (the request took effect, its answer was lost).
    ForwardThenFail(u16, &'static str),
}

/// Decides, from method and path with query, what happens to a request.
pub type ProxyHook = std::sync::Arc<dyn Fn(&reqwest::Method, &str) -> ProxyAction + Send + Sync>;

/// A loopback HTTP proxy in front of `upstream` (`http://host:port`) that
/// asks `hook` about every request. Requests keep their Host header, so
/// signed requests (S3) still verify upstream. Bodies are buffered: for
/// test-sized transfers.
pub async fn http_proxy(upstream: String, hook: ProxyHook) -> String {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::Response;

    fn answer(status: u16, body: &'static str) -> Response {
        Response::builder()
            .status(status)
            .body(Body::from(body))
            .unwrap()
    }

    async fn forward(
        State((upstream, http, hook)): State<(String, reqwest::Client, ProxyHook)>,
        req: Request,
    ) -> Response {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let action = hook(&parts.method, path);
        if let ProxyAction::Refuse(status, text) = action {
            return answer(status, text);
        }
        let mut out = http
            .request(parts.method.clone(), format!("{upstream}{path}"))
            .body(body);
        for (k, v) in &parts.headers {
            out = out.header(k, v);
        }
        let Ok(r) = out.send().await else {
            return answer(502, "");
        };
        if let ProxyAction::ForwardThenFail(status, text) = action {
            return answer(status, text);
        }
        let mut resp = Response::builder().status(r.status().as_u16());
        for (k, v) in r.headers() {
            if k != "transfer-encoding" && k != "connection" {
                resp = resp.header(k, v);
            }
        }
        resp.body(Body::from(r.bytes().await.unwrap_or_default()))
            .unwrap()
    }

    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((upstream, http, hook));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
