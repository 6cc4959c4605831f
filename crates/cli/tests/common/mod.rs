//! Test harness: a real `pavilion serve` process on a loopback port, over
//! SQLite or a fresh PostgreSQL database, plus small HTTP helpers.
#![allow(dead_code)]

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

fn uuid_hex() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", t, std::process::id())
}

/// A running registry.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    pub data: PathBuf,
    pub database_url: Option<String>,
    pub extra_args: Vec<String>,
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
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_postgres_db()?),
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = Server {
            child: None,
            addr: String::new(),
            data: tmp.path().join("data"),
            database_url,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            _tmp: Some(tmp),
        };
        s.spawn("127.0.0.1:0");
        Some(s)
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
                    if let Some(rest) = line.strip_prefix("pavilion listening on http://") {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(addr);
                        sent = true;
                        continue;
                    }
                }
                eprintln!("[server] {line}");
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server did not report its address");
        self.addr = addr;
        self.child = Some(child);
    }

    /// Base URL, e.g. `http://127.0.0.1:1234`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
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

/// Runs `body` against both metadata backends as two tests.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident => $body:expr;)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   if let Some(s) = $crate::common::Server::start($crate::common::Backend::Sqlite) { ($body)(s).await }
               } )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   if let Some(s) = $crate::common::Server::start($crate::common::Backend::Postgres) { ($body)(s).await }
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

/// Uploads `data` as a blob of `repo` (monolithic POST) and returns its digest.
pub async fn push_blob(s: &Server, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let r = client()
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
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
    let r = client()
        .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send()
        .await
        .unwrap();
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
