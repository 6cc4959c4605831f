//! The bearer-token flow, as large registries run it: every request without a
//! token gets a 401 whose `WWW-Authenticate: Bearer` challenge names a token
//! service and the scope needed; the client fetches a token there (with the
//! docker config's Basic credentials) and retries. A small gateway in front of
//! a real Pavilion plays the registry's auth front end.

use crate::common::run::Cli;
use crate::common::*;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

const USER: &str = "robot";
const PASSWORD: &str = "s3cret";

#[derive(Clone)]
struct Gateway {
    upstream: String,
    me: String,
    /// Scopes the token service issued tokens for.
    issued: Arc<Mutex<Vec<String>>>,
}

/// The scope a request needs: pull for reads, pull,push for writes.
fn needed_scope(method: &axum::http::Method, path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    let cut = ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()?;
    let action = if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        "pull"
    } else {
        "pull,push"
    };
    Some(format!("repository:{}:{action}", &rest[..cut]))
}

/// A token is the scope it grants, prefixed: enough for a test fixture.
fn token_for(scope: &str) -> String {
    format!("tok:{scope}")
}

fn grants(token: &str, needed: &str) -> bool {
    let Some(scope) = token.strip_prefix("tok:") else {
        return false;
    };
    let (Some((repo_t, actions_t)), Some((repo_n, actions_n))) =
        (scope.rsplit_once(':'), needed.rsplit_once(':'))
    else {
        return false;
    };
    repo_t == repo_n
        && actions_n
            .split(',')
            .all(|a| actions_t.split(',').any(|b| a == b))
}

async fn token(State(g): State<Gateway>, headers: HeaderMap, req: Request) -> Response {
    let expected = format!("Basic {}", base64(format!("{USER}:{PASSWORD}").as_bytes()));
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !authorized {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .body(Body::from("bad credentials"))
            .unwrap();
    }
    let query = req.uri().query().unwrap_or("");
    let scope = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("scope="))
        .map(|s| {
            s.replace("%3A", ":")
                .replace("%2C", ",")
                .replace("%2F", "/")
        })
        .unwrap_or_default();
    g.issued.lock().unwrap().push(scope.clone());
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::json!({ "token": token_for(&scope) }).to_string(),
        ))
        .unwrap()
}

async fn registry(State(g): State<Gateway>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let needed = needed_scope(req.method(), &path);
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let ok = match (&needed, &presented) {
        (Some(n), Some(t)) => grants(t, n),
        (None, Some(t)) => t.starts_with("tok:"),
        (_, None) => false,
    };
    if !ok {
        let mut challenge = format!("Bearer realm=\"http://{}/token\",service=\"gateway\"", g.me);
        if let Some(n) = &needed {
            challenge.push_str(&format!(",scope=\"{n}\""));
        }
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", challenge)
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            ))
            .unwrap();
    }
    // Forward to Pavilion, streaming both bodies.
    let (parts, body) = req.into_parts();
    let url = format!(
        "http://{}{}",
        g.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut fwd = client().request(parts.method.clone(), url);
    for (k, v) in parts.headers.iter() {
        if k != "host" && k != "authorization" {
            fwd = fwd.header(k, v);
        }
    }
    let up = fwd
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await
        .unwrap();
    let mut resp = Response::builder().status(up.status().as_u16());
    for (k, v) in up.headers() {
        resp = resp.header(k.as_str(), v.as_bytes());
    }
    resp.body(Body::from_stream(up.bytes_stream())).unwrap()
}

async fn start_gateway(upstream: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let me = listener.local_addr().unwrap().to_string();
    let issued = Arc::new(Mutex::new(Vec::new()));
    let g = Gateway {
        upstream: upstream.to_string(),
        me: me.clone(),
        issued: issued.clone(),
    };
    let app = axum::Router::new()
        .route("/token", axum::routing::get(token))
        .fallback(registry)
        .with_state(g);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (me, issued)
}

fn pavilion(config: &Path, args: &[&str]) -> Output {
    Cli::with_config(config).output(args, None)
}

fn write_config(dir: &Path, host: &str, password: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let auth = base64(format!("{USER}:{password}").as_bytes());
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({ "auths": { host: { "auth": auth } } }).to_string(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_fetched_for_each_scope_and_reused() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let (gw, issued) = start_gateway(&s.addr).await;
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("weights.gguf"), xorshift_bytes(3 << 20, 9, 1, 7)).unwrap();
    std::fs::write(model.join("README.md"), b"# bearer\n").unwrap();

    // Wrong password: the token service refuses, exit 6, nothing pushed.
    let bad = tmp.path().join("bad");
    write_config(&bad, &gw, "wrong");
    let reference = format!("{gw}/secure/model:v1");
    let cache = tmp.path().join("cache");
    let out = pavilion(
        &bad,
        &[
            "push",
            &reference,
            model.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(issued.lock().unwrap().is_empty());

    // Right credentials: push, pull, tags and copy all go through tokens.
    let good = tmp.path().join("good");
    write_config(&good, &gw, PASSWORD);
    let out = pavilion(
        &good,
        &[
            "push",
            &reference,
            model.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pulled = tmp.path().join("pulled");
    let out = pavilion(
        &good,
        &[
            "pull",
            &reference,
            "-o",
            pulled.to_str().unwrap(),
            "--no-cache",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(pulled.join("weights.gguf")).unwrap(),
        std::fs::read(model.join("weights.gguf")).unwrap()
    );
    let out = pavilion(&good, &["tags", &format!("{gw}/secure/model")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v1");
    let out = pavilion(
        &good,
        &["copy", &reference, &format!("{gw}/secure/copy:v1")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let issued = issued.lock().unwrap().clone();
    assert!(
        issued.contains(&"repository:secure/model:pull,push".to_string()),
        "{issued:?}"
    );
    assert!(
        issued.contains(&"repository:secure/model:pull".to_string()),
        "{issued:?}"
    );
    assert!(
        issued.contains(&"repository:secure/copy:pull,push".to_string()),
        "{issued:?}"
    );
    // A token is reused for its scope within one command, not fetched per
    // request: the push moved several blobs and a manifest.
    let pushes = issued
        .iter()
        .filter(|s| s.as_str() == "repository:secure/model:pull,push")
        .count();
    assert!(
        pushes <= 2,
        "{pushes} tokens for one push scope: {issued:?}"
    );
}
