//! The registry's application in process, without a server: routing, the
//! name check, error bodies and the policy gate's doors, against the real
//! stores (files and SQLite in a temporary directory). What needs sockets,
//! peers or a process (TLS, connection caps, shutdown, other clients) is
//! tested end to end in crates/cli/tests/cli/.

use axum::body::Body;
use axum::Router;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use pavilion_oci::error_body::{Code, ErrorBody, PolicyDenial};
use pavilion_oci::{Digest, ErrorCode};
use pavilion_registry::server::{app, open_state};
use pavilion_registry::{Gate, GateDecision, GateError, GateFacts, ServerConfig};
use pavilion_store::DecisionQuery;
use std::sync::Arc;
use tower::ServiceExt;

struct Registry {
    app: Router,
    state: Arc<pavilion_registry::AppState>,
    _dir: tempfile::TempDir,
}

async fn registry(gate: Option<Arc<dyn Gate>>) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"));
    let mut state = open_state(&cfg).await.unwrap();
    state.gate = gate;
    let state = Arc::new(state);
    Registry {
        app: app(state.clone(), None, None),
        state,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// The first error of the body, read with the type clients read it with.
    fn error(&self) -> pavilion_oci::error_body::ErrorEntry {
        let body: ErrorBody = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not an OCI error body ({e}): {:?}", self.text()));
        body.errors.into_iter().next().expect("at least one error")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(
    r: &Registry,
    method: Method,
    path: &str,
    body: Vec<u8>,
    ctype: Option<&str>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = ctype {
        req = req.header(header::CONTENT_TYPE, t);
    }
    let resp = r
        .app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Pushes an empty JSON config and returns a manifest that names it.
async fn manifest(r: &Registry, repo: &str) -> (Vec<u8>, String) {
    let config = b"{}".to_vec();
    let cd = Digest::sha256(&config);
    let a = send(
        r,
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={cd}"),
        config.clone(),
        Some("application/octet-stream"),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": IMAGE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": []
    })
    .to_string()
    .into_bytes();
    let d = Digest::sha256(&m).to_string();
    (m, d)
}

#[tokio::test]
async fn a_method_an_endpoint_lacks_is_405_with_allow_before_the_name_is_judged() {
    let r = registry(None).await;
    // The name is invalid too: the method is judged first, as before names
    // were validated by the dispatcher.
    let a = send(&r, Method::DELETE, "/v2/Bad%2FName/tags/list", vec![], None).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers[header::ALLOW], "GET");
    assert_eq!(a.error().code, Code::Known(ErrorCode::Unsupported));
}

#[tokio::test]
async fn every_endpoint_refuses_an_invalid_name_with_name_invalid() {
    let r = registry(None).await;
    let digest = Digest::sha256(b"x");
    let cases = [
        (Method::GET, "/v2/UPPER/tags/list".to_string()),
        (Method::GET, format!("/v2/UPPER/referrers/{digest}")),
        (Method::GET, "/v2/UPPER/manifests/latest".to_string()),
        (Method::HEAD, "/v2/UPPER/manifests/latest".to_string()),
        (Method::PUT, "/v2/UPPER/manifests/latest".to_string()),
        (Method::DELETE, "/v2/UPPER/manifests/latest".to_string()),
        (Method::GET, format!("/v2/UPPER/blobs/{digest}")),
        (Method::DELETE, format!("/v2/UPPER/blobs/{digest}")),
        (Method::POST, "/v2/UPPER/blobs/uploads/".to_string()),
        (Method::GET, "/v2/UPPER/blobs/uploads/some-id".to_string()),
        (Method::PATCH, "/v2/UPPER/blobs/uploads/some-id".to_string()),
        (Method::PUT, "/v2/UPPER/blobs/uploads/some-id".to_string()),
        (
            Method::DELETE,
            "/v2/UPPER/blobs/uploads/some-id".to_string(),
        ),
        (Method::GET, "/v2/a%2Fb/manifests/latest".to_string()),
    ];
    for (method, path) in cases {
        let head = method == Method::HEAD;
        let a = send(&r, method.clone(), &path, vec![], None).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{method} {path}");
        if !head {
            assert_eq!(
                a.error().code,
                Code::Known(ErrorCode::NameInvalid),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn unknown_things_answer_their_spec_codes_in_the_shared_body_type() {
    let r = registry(None).await;
    let digest = Digest::sha256(b"nothing");
    let cases = [
        (
            "/v2/a/manifests/latest".to_string(),
            ErrorCode::ManifestUnknown,
        ),
        (format!("/v2/a/blobs/{digest}"), ErrorCode::BlobUnknown),
        (
            "/v2/a/blobs/uploads/not-a-session".to_string(),
            ErrorCode::BlobUploadUnknown,
        ),
        ("/v2/a/nothing/here".to_string(), ErrorCode::NameUnknown),
    ];
    for (path, code) in cases {
        let a = send(&r, Method::GET, &path, vec![], None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        let e = a.error();
        assert_eq!(e.code, Code::Known(code), "{path}");
        assert!(!e.message.is_empty(), "{path}");
        assert!(e.policy_denial().is_none());
    }
}

/// A gate that refuses every push (or fails to decide) and allows pulls.
struct Refuse {
    fail: bool,
}

impl Gate for Refuse {
    fn decide_push(&self, facts: &GateFacts) -> Result<GateDecision, GateError> {
        if self.fail {
            return Err(GateError::Evaluation("rego exploded".into()));
        }
        Ok(GateDecision {
            deny: vec![format!("no pushes to {}", facts.repository)],
            warn: vec![],
            detail: serde_json::Value::Null,
        })
    }

    fn uses_signatures(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn a_policy_refusal_is_a_typed_denial_recorded_and_nothing_is_stored() {
    let r = registry(Some(Arc::new(Refuse { fail: false }))).await;
    let (m, digest) = manifest(&r, "team/model").await;
    let a = send(
        &r,
        Method::PUT,
        "/v2/team/model/manifests/v1",
        m,
        Some(IMAGE),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    let e = a.error();
    assert_eq!(e.code, Code::Known(ErrorCode::Denied));
    assert_eq!(
        e.policy_denial(),
        Some(PolicyDenial::new(vec!["no pushes to team/model".into()]))
    );
    // docker and skopeo show only the message: the reason is there too.
    assert!(
        e.message.contains("no pushes to team/model"),
        "{}",
        e.message
    );
    // Nothing stored: neither the tag nor the digest.
    for reference in ["v1", digest.as_str()] {
        let a = send(
            &r,
            Method::GET,
            &format!("/v2/team/model/manifests/{reference}"),
            vec![],
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{reference}");
    }
    // The decision is in the log, refused, with the rule's message.
    let log = r
        .state
        .meta
        .decisions(&DecisionQuery {
            n: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].point, "push");
    assert!(!log[0].allowed);
    assert_eq!(log[0].deny, vec!["no pushes to team/model".to_string()]);
    assert_eq!(log[0].subject, format!("team/model@{digest}"));
}

#[tokio::test]
async fn a_gate_that_cannot_decide_refuses_and_says_why() {
    let r = registry(Some(Arc::new(Refuse { fail: true }))).await;
    let (m, _) = manifest(&r, "a").await;
    let a = send(&r, Method::PUT, "/v2/a/manifests/v1", m, Some(IMAGE)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    let denial = a.error().policy_denial().expect("a policy denial");
    assert_eq!(
        denial.deny,
        vec!["policy evaluation failed: rego exploded".to_string()]
    );
    let a = send(&r, Method::GET, "/v2/a/manifests/v1", vec![], None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_gate_the_same_push_is_stored() {
    let r = registry(None).await;
    let (m, digest) = manifest(&r, "a").await;
    let a = send(
        &r,
        Method::PUT,
        "/v2/a/manifests/v1",
        m.clone(),
        Some(IMAGE),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(a.headers["docker-content-digest"], digest.as_str());
    let a = send(&r, Method::GET, "/v2/a/manifests/v1", vec![], None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, m);
}

#[test]
fn warning_headers_never_carry_quotes_or_control_characters() {
    let h = pavilion_registry::gate::warning_headers(&["say \"hi\"\nthen\tgo".to_string()]);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0], "299 - \"say 'hi''then'go\"");
}
