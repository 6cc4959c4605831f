//! Helpers for the authentication tests (issue 16): a `pavilion serve`
//! whose whole log is kept (to prove no secret reaches it), config files
//! with an `[auth]` table, htpasswd lines, Basic headers, JWTs read and
//! signed, the token endpoint and the decision log.

use super::backend::require_peer;
use super::data::base64;
use super::process::{have, tool};
use base64::Engine as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A bcrypt htpasswd line for `user`:`pass`, made by Apache's `htpasswd`
/// at the lowest cost (the tests log in many times); `None` (skipped)
/// when the tool is missing.
pub fn htpasswd_line(user: &str, pass: &str) -> Option<String> {
    require_peer("htpasswd (apache2-utils)", have("htpasswd"))?;
    Some(
        tool(Command::new("htpasswd").args(["-Bbn", "-C", "4", user, pass]))
            .trim()
            .to_string(),
    )
}

/// An htpasswd file in `dir` with `users` (name, password).
pub fn htpasswd_file(dir: &Path, users: &[(&str, &str)]) -> Option<PathBuf> {
    let mut text = String::new();
    for (u, p) in users {
        text.push_str(&htpasswd_line(u, p)?);
        text.push('\n');
    }
    let path = dir.join("htpasswd");
    std::fs::write(&path, text).unwrap();
    Some(path)
}

/// `Basic base64(user:pass)`.
/// A serve config file in `dir` with `top` (top-level keys) and an
/// htpasswd file where `admin` (password `pw-a`) holds the catalog grant
/// and `dev` (`pw-d`) only `dev/*`; None when no htpasswd tool is there.
pub fn admin_and_dev_config(dir: &Path, top: &str) -> Option<PathBuf> {
    let file = htpasswd_file(dir, &[("admin", "pw-a"), ("dev", "pw-d")])?;
    let cfg = dir.join("pavilion.toml");
    std::fs::write(
        &cfg,
        format!(
            "{top}[auth]\nhtpasswd = {:?}\n[auth.grants]\nadmin = [\"registry:catalog:*\"]\ndev = [\"repository:dev/*:pull,push\"]\n",
            file.to_str().unwrap()
        ),
    )
    .unwrap();
    Some(cfg)
}

pub fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Seconds since 1970.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The payload of a JWT, decoded without verification (the test checks
/// the signature separately, with the JWKS).
pub fn jwt_payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// The header of a JWT.
pub fn jwt_header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The `access` claim of a token as (name, actions) pairs.
pub fn access_of(token: &str) -> Vec<(String, Vec<String>)> {
    jwt_payload(token)["access"]
        .as_array()
        .expect("access is an array")
        .iter()
        .map(|a| {
            let actions = a["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            (a["name"].as_str().unwrap().to_string(), actions)
        })
        .collect()
}

/// Claims of an access token as this registry issues them, for a test
/// that signs its own (with the server's configured key, or another).
pub fn token_claims(
    service: &str,
    sub: &str,
    access: Value,
    iat: u64,
    nbf: u64,
    exp: u64,
) -> Value {
    json!({
        "iss": "pavilion",
        "sub": sub,
        "aud": service,
        "iat": iat,
        "nbf": nbf,
        "exp": exp,
        "jti": format!("test-{iat}-{exp}"),
        "access": access,
        "pavilion": {"method": "htpasswd", "groups": [], "spiffe_id": null},
    })
}

/// A `pavilion serve` process whose standard error (the log, at debug
/// level) is kept in a file, so a test can search all of it afterwards.
pub struct Served {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// http or https.
    pub scheme: String,
    /// The data directory.
    pub data: PathBuf,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Served {
    /// Starts `pavilion serve --addr 127.0.0.1:0 --data DATA --log debug
    /// ARGS` (`data`: a fresh directory when `None`) and waits until it
    /// listens; panics with the log when it exits first.
    pub fn start(data: Option<&Path>, args: &[&str]) -> Served {
        Self::try_start(data, args).unwrap_or_else(|log| panic!("serve did not start:\n{log}"))
    }

    /// As [`Served::start`]; `Err(log)` when the server exits before it
    /// listens.
    pub fn try_start(data: Option<&Path>, args: &[&str]) -> Result<Served, String> {
        let tmp = tempfile::tempdir().unwrap();
        let data = data.map_or_else(|| tmp.path().join("data"), Path::to_path_buf);
        let log = tmp.path().join("serve.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pavilion"))
            .args(["serve", "--addr", "127.0.0.1:0", "--log", "debug", "--data"])
            .arg(&data)
            .args(args)
            .env_remove("PAVILION_CONFIG")
            .env_remove("PAVILION_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn pavilion serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text
                .lines()
                .find_map(|l| l.strip_prefix("pavilion listening on "))
            {
                let url = line.split_whitespace().next().unwrap_or("");
                let (scheme, addr) = url.split_once("://").expect("scheme://addr");
                return Ok(Served {
                    child: Some(child),
                    addr: addr.to_string(),
                    scheme: scheme.to_string(),
                    data,
                    log,
                    _tmp: tmp,
                });
            }
            if child.try_wait().unwrap().is_some() {
                return Err(text);
            }
            assert!(Instant::now() < deadline, "serve did not listen: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `scheme://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `--data DIR`, for `pavilion token` against this server's database.
    pub fn data_flag(&self) -> [String; 2] {
        ["--data".into(), self.data.display().to_string()]
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A reqwest client with no proxy.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `GET base/token?service=..&scope=..` with `authorization`; the status
/// and the JSON body (`Null` when it is not JSON).
pub async fn get_token(
    base: &str,
    service: Option<&str>,
    scopes: &[&str],
    authorization: Option<&str>,
) -> (u16, Value) {
    let mut q: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = service {
        q.push(("service", s));
    }
    for s in scopes {
        q.push(("scope", s));
    }
    let mut rq = http().get(format!("{base}/token")).query(&q);
    if let Some(a) = authorization {
        rq = rq.header("authorization", a);
    }
    let r = rq.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `POST base/token` with a form.
pub async fn post_token(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .post(format!("{base}/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A token from `GET /token` that must be issued (asserts 200).
pub async fn token_for(base: &str, scopes: &[&str], authorization: &str) -> String {
    let (st, v) = get_token(base, None, scopes, Some(authorization)).await;
    assert_eq!(st, 200, "GET /token: {v}");
    v["token"].as_str().unwrap().to_string()
}

/// A request with `authorization`; its status, `errors[0].code`, detail or
/// message, and `WWW-Authenticate`.
pub async fn call(
    method: reqwest::Method,
    url: &str,
    authorization: Option<&str>,
) -> (u16, String, String, String) {
    let mut rq = http().request(method.clone(), url);
    if let Some(a) = authorization {
        rq = rq.header("authorization", a);
    }
    let r = rq.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = if method == reqwest::Method::HEAD {
        Value::Null
    } else {
        r.json().await.unwrap_or(Value::Null)
    };
    let e = &body["errors"][0];
    let detail = match &e["detail"] {
        Value::String(s) => s.clone(),
        _ => e["message"].as_str().unwrap_or_default().to_string(),
    };
    (
        status,
        e["code"].as_str().unwrap_or_default().to_string(),
        detail,
        challenge,
    )
}

/// The authorization decisions in the log (newest first), read with
/// `authorization` (asserts 200).
pub async fn authz_decisions(base: &str, authorization: &str) -> Vec<Value> {
    let r = http()
        .get(format!("{base}/pavilion/v1/decisions?point=authz&n=200"))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "decision log: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["decisions"].as_array().unwrap().clone()
}

/// `pavilion token create --name NAME --scope S... --expires E --data DIR`:
/// the key.
pub fn create_key(data: &Path, name: &str, scopes: &[&str], expires: &str) -> String {
    let mut args = vec!["token", "create", "--name", name, "--expires", expires];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    let d = data.display().to_string();
    args.extend(["--data", d.as_str()]);
    super::run::pv(&args).ok().trim().to_string()
}

/// Pushes a one-layer image as `repo:tag` to `base` with `authorization`
/// through `c`: the status of the manifest PUT (201), or of the first
/// blob upload that was refused.
pub async fn push_with(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    authorization: Option<&str>,
) -> u16 {
    push_with_body(c, base, repo, tag, authorization).await.0
}

/// [`push_with`], with the body of the last answer.
pub async fn push_with_body(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    authorization: Option<&str>,
) -> (u16, String) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","tag":"{repo}:{tag}"}}"#);
    let layer = format!("layer of {repo}:{tag}");
    for blob in [config.as_bytes(), layer.as_bytes()] {
        let d = super::data::sha256(blob);
        let mut rq = c
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(blob.to_vec());
        if let Some(a) = authorization {
            rq = rq.header("authorization", a);
        }
        let r = rq.send().await.unwrap();
        let st = r.status().as_u16();
        if st != 201 {
            return (st, r.text().await.unwrap_or_default());
        }
    }
    let m = super::http::image_manifest(
        (&super::data::sha256(config.as_bytes()), config.len()),
        &[(&super::data::sha256(layer.as_bytes()), layer.len())],
        "",
    );
    let mut rq = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", super::http::OCI_MANIFEST)
        .body(m);
    if let Some(a) = authorization {
        rq = rq.header("authorization", a);
    }
    let r = rq.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// The status of `GET base/v2/repo/manifests/reference` through `c`.
pub async fn pull_status(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
    authorization: Option<&str>,
) -> u16 {
    let mut rq = c
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("accept", super::http::OCI_MANIFEST);
    if let Some(a) = authorization {
        rq = rq.header("authorization", a);
    }
    rq.send().await.unwrap().status().as_u16()
}

/// The service named by a Bearer challenge.
pub fn challenge_param(challenge: &str, key: &str) -> Option<String> {
    let start = challenge.find(&format!("{key}=\""))? + key.len() + 2;
    let rest = &challenge[start..];
    Some(rest[..rest.find('"')?].to_string())
}
