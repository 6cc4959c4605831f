//! The admission and Gatekeeper endpoints under attack (issue 12, items 4,
//! 6 and 7): no lookups to registries the configuration does not allow, no
//! review hung by a registry that never answers, malformed objects denied
//! naming the field, callers authenticated, request sizes bounded.

use crate::common::*;
use serde_json::{json, Value};
use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "s3cret-admission-token";

/// Flags every webhook of these tests gets: the bearer token callers send.
const AUTH: &[&str] = &["--admission-token", TOKEN];

/// A TCP listener on loopback that counts the connections it accepts.
/// `hold`: keep every connection open without a byte of answer (a registry
/// that never answers); otherwise read a little and close it.
fn listener(hold: bool) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        // Bounded: no test makes more than a few connections.
        for _ in 0..64 {
            let Ok((mut s, _)) = l.accept() else { return };
            count.fetch_add(1, Ordering::SeqCst);
            if hold {
                held.push(s);
            } else {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.read(&mut [0u8; 1024]);
            }
        }
    });
    (addr, seen)
}

/// A webhook (plain HTTP, SQLite) with the test token and `extra` flags.
fn hook(extra: &[&str]) -> Option<Server> {
    let args: Vec<&str> = AUTH.iter().chain(extra).copied().collect();
    Server::start_with(Backend::Sqlite, &args)
}

/// The test's own bound on any answer: generous, only there so that a hung
/// review fails the test instead of hanging it.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap()
}

fn review_of(request: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// A Pod CREATE review whose containers are `containers`.
fn pod_review(uid: &str, containers: Value) -> Value {
    review_of(json!({
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "ml", "operation": "CREATE",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"containers": containers}}
    }))
}

/// POSTs `body` to `path` with `token` (if any); status and JSON body
/// (null when the body is not JSON), or the transport error.
async fn post_as(
    s: &Server,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<(u16, Value), String> {
    let mut req = http()
        .post(s.url(path))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(body).unwrap());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.map_err(|e| format!("{e:?}"))?;
    let status = r.status().as_u16();
    let bytes = r.bytes().await.map_err(|e| format!("{e:?}"))?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn post(s: &Server, path: &str, body: &Value) -> (u16, Value) {
    post_as(s, path, Some(TOKEN), body)
        .await
        .unwrap_or_else(|e| panic!("POST {path} got no answer within the test's bound: {e}"))
}

/// The denial message of an AdmissionReview response (panics if allowed).
fn denial(v: &Value) -> String {
    assert_eq!(v["response"]["allowed"], false, "expected a denial: {v}");
    v["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn provider_request(keys: &[&str]) -> Value {
    json!({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest",
           "request": {"keys": keys}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_in_registries_not_allowed_are_never_fetched() {
    let (target, seen) = listener(false);
    let Some(s) = hook(&[]) else { return };
    let image = format!("{target}/internal/admin:secret");
    let (st, v) = post(
        &s,
        "/admission",
        &pod_review("u1", json!([{"name": "a", "image": image}])),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let msg = denial(&v);
    assert!(
        msg.contains(&format!("registry {target} is not allowed")),
        "{msg}"
    );
    let (st, v) = post(
        &s,
        "/pavilion/v1/gatekeeper/verify",
        &provider_request(&[&image]),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let item = &v["response"]["items"][0];
    assert_eq!(item["key"], json!(image), "{v}");
    assert!(
        item["error"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("registry {target} is not allowed")),
        "{v}"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the webhook connected to a registry it was not allowed to"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_never_answers_cannot_hang_a_review() {
    let (silent, seen) = listener(true);
    // Not allowed: refused at once, nothing sent.
    let Some(s) = hook(&[]) else { return };
    let image = format!("{silent}/models/llama:v1");
    let (_, v) = post(
        &s,
        "/admission",
        &pod_review("u1", json!([{"name": "a", "image": image}])),
    )
    .await;
    assert!(denial(&v).contains(&format!("registry {silent} is not allowed")));
    assert_eq!(seen.load(Ordering::SeqCst), 0);
    drop(s);

    // Allowed but silent: the deadline answers, naming the registry.
    let Some(s) = hook(&[
        "--admission-registries",
        &silent,
        "--admission-timeout-secs",
        "2",
    ]) else {
        return;
    };
    let (st, v) = post(
        &s,
        "/admission",
        &pod_review("u2", json!([{"name": "a", "image": image}])),
    )
    .await;
    assert_eq!(st, 200);
    let msg = denial(&v);
    assert!(msg.starts_with(&format!("image {image}: ")), "{msg}");
    assert!(
        msg.contains(&format!(
            "no answer from {silent} within the 2 s admission deadline"
        )),
        "{msg}"
    );
    assert!(
        seen.load(Ordering::SeqCst) >= 1,
        "the allowed registry was asked"
    );
    let (st, v) = post(
        &s,
        "/pavilion/v1/gatekeeper/verify",
        &provider_request(&[&image]),
    )
    .await;
    assert_eq!(st, 200);
    let e = v["response"]["items"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(e.contains("admission deadline"), "{v}");
}

/// A loopback HTTP server answering every request with `head` (status line
/// and headers, no body): an allowed registry that sends its callers on.
fn answering(head: String) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        // Bounded: no test makes more than a few requests.
        for _ in 0..64 {
            let Ok((mut s, _)) = l.accept() else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 64 << 10 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = std::io::Write::write_all(
                &mut s,
                format!("{head}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
            );
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_registry_cannot_send_lookups_elsewhere() {
    // The place the registry points at: another loopback port, which
    // counts every connection made to it.
    let (elsewhere, seen) = listener(false);
    let cases = [
        (
            "token realm",
            format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer \
                 realm=\"http://{elsewhere}/token\",service=\"x\""
            ),
        ),
        (
            "redirect",
            format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{elsewhere}/v2/x/y/manifests/1"),
        ),
    ];
    for (what, head) in cases {
        let registry = answering(head);
        let Some(s) = hook(&["--admission-registries", &registry]) else {
            return;
        };
        let image = format!("{registry}/x/y:1");
        let (st, v) = post(
            &s,
            "/admission",
            &pod_review("u", json!([{"name": "a", "image": image}])),
        )
        .await;
        assert_eq!(st, 200, "{what}: {v}");
        let msg = denial(&v);
        assert!(
            msg.contains(&elsewhere) && msg.contains("not allowed"),
            "{what}: {msg}"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 0, "{what}: {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_objects_are_denied_naming_the_field() {
    let Some(s) = hook(&[]) else { return };
    let pod_kind = json!({"group": "", "version": "v1", "kind": "Pod"});
    let with = |kind: Value, object: Value| {
        review_of(
            json!({"uid": "u", "kind": kind, "namespace": "ml", "operation": "CREATE",
                         "object": object}),
        )
    };
    let pod_spec = |spec: Value| json!({"metadata": {"name": "p"}, "spec": spec});
    let cases: Vec<(Value, &str)> = vec![
        (
            pod_review("u", json!([{"name": "a", "image": 12}])),
            "request.object.spec.containers[0].image is a number, expected a string",
        ),
        (
            with(
                json!({"group": "", "version": "v1", "kind": "pod"}),
                pod_spec(json!({"containers": [{"name": "a", "image": "x:1"}]})),
            ),
            "request.kind.kind \"pod\" is not a kind Pavilion reviews",
        ),
        (
            with(
                json!({"group": "serving.kserve.io", "version": "v1beta1", "kind": "InferenceService"}),
                json!({"spec": {"predictor": {"containers": [{"image": "x:1"}]}}}),
            ),
            "request.kind.kind \"InferenceService\" is not a kind Pavilion reviews",
        ),
        (
            with(
                json!({"group": "evil.example", "version": "v1", "kind": "Deployment"}),
                json!({"spec": {"containers": [{"image": "x:1"}]}}),
            ),
            "request.kind.group \"evil.example\" is not the group of Deployment (apps)",
        ),
        (
            review_of(json!({"uid": "u", "operation": "CREATE", "object": {}})),
            "request.kind missing",
        ),
        (
            with(
                pod_kind.clone(),
                pod_spec(json!({"containers": {"name": "a", "image": "x:1"}})),
            ),
            "request.object.spec.containers is an object, expected an array",
        ),
        (
            with(pod_kind.clone(), pod_spec(json!({"containers": ["x:1"]}))),
            "request.object.spec.containers[0] is a string, expected an object",
        ),
        (
            with(
                pod_kind.clone(),
                pod_spec(json!({"containers": [{"name": "a"}]})),
            ),
            "request.object.spec.containers[0].image missing",
        ),
        (
            with(
                pod_kind.clone(),
                pod_spec(
                    json!({"containers": [], "volumes": [{"name": "v", "image": {"reference": ["x:1"]}}]}),
                ),
            ),
            "request.object.spec.volumes[0].image.reference is an array, expected a string",
        ),
        (
            with(pod_kind.clone(), json!({"metadata": {"name": "p"}})),
            "request.object.spec missing",
        ),
        (
            with(pod_kind.clone(), json!("a pod")),
            "request.object is a string, expected an object",
        ),
        (
            review_of(json!({"uid": "u", "kind": pod_kind, "operation": 7})),
            "request.operation is a number, expected a string",
        ),
    ];
    for (body, want) in cases {
        let (st, v) = post(&s, "/admission", &body).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["response"]["uid"], "u", "{v}");
        let msg = denial(&v);
        assert!(msg.contains(want), "want {want:?} in {msg:?}");
    }
    // What is understood still passes: a Pod with no images to look up (an
    // empty template image is legal: a controller fills it in) and a DELETE.
    let (_, v) = post(&s, "/admission", &pod_review("ok", json!([]))).await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
    let deployment = review_of(json!({"uid": "d", "operation": "CREATE",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "object": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": ""}]}}}}}));
    let (_, v) = post(&s, "/admission", &deployment).await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
    let delete =
        review_of(json!({"uid": "x", "operation": "DELETE", "kind": pod_kind, "object": null}));
    let (_, v) = post(&s, "/admission", &delete).await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_must_authenticate() {
    let Some(s) = hook(&[]) else { return };
    let body = pod_review("u", json!([]));
    let gk = provider_request(&[]);
    for path in ["/admission", "/pavilion/v1/gatekeeper/verify"] {
        let doc = if path == "/admission" { &body } else { &gk };
        let (st, v) = post_as(&s, path, None, doc).await.unwrap();
        assert_eq!(st, 401, "{path}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap_or_default()
                .contains("bearer token"),
            "{v}"
        );
        let (st, _) = post_as(&s, path, Some("wrong"), doc).await.unwrap();
        assert_eq!(st, 401, "{path}");
        let (st, _) = post_as(&s, path, Some(TOKEN), doc).await.unwrap();
        assert_eq!(st, 200, "{path}");
    }
    // The token from a file (trailing newline ignored), as a Secret mounts it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let Some(f) = Server::start_with(
        Backend::Sqlite,
        &["--admission-token-file", file.to_str().unwrap()],
    ) else {
        return;
    };
    assert_eq!(
        post_as(&f, "/admission", Some("from-a-file"), &body)
            .await
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        post_as(&f, "/admission", Some(TOKEN), &body)
            .await
            .unwrap()
            .0,
        401
    );

    // No authentication configured: the endpoints refuse everyone.
    let Some(open) = Server::start(Backend::Sqlite) else {
        return;
    };
    for path in ["/admission", "/pavilion/v1/gatekeeper/verify"] {
        let (st, v) = post_as(&open, path, Some(TOKEN), &body).await.unwrap();
        assert_eq!(st, 403, "{path}: {v}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(
            e.contains("admission_token") && e.contains("admission_client_ca"),
            "{e}"
        );
    }
    // The registry API is not affected.
    let r = http().get(open.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // The explicit opt-out (managed control planes): anyone may call, but
    // lookups are still limited to the allowed registries.
    let Some(anyone) = Server::start_with(Backend::Sqlite, &["--admission-unauthenticated"]) else {
        return;
    };
    assert_eq!(
        post_as(&anyone, "/admission", None, &body).await.unwrap().0,
        200
    );
    let (target, seen) = listener(false);
    let image = format!("{target}/internal/admin:secret");
    let (_, v) = post_as(
        &anyone,
        "/admission",
        None,
        &pod_review("u", json!([{"name": "a", "image": image}])),
    )
    .await
    .unwrap();
    assert!(denial(&v).contains(&format!("registry {target} is not allowed")));
    assert_eq!(seen.load(Ordering::SeqCst), 0);
}

/// A CA, a server certificate for 127.0.0.1 and client certificates from
/// that CA and from another one, as PEM files in `dir`.
struct Pki {
    server_crt: String,
    server_key: String,
    ca_file: String,
    ca_pem: String,
    client_pem: String,
    stranger_pem: String,
    /// From the right CA, but named like a kubelet: the cluster CA signs
    /// every node's and user's certificate too.
    kubelet_pem: String,
    /// From the right CA, the name only in a DNS subject alternative name.
    san_pem: String,
}

fn pki(dir: &std::path::Path) -> Pki {
    let ca = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        (cert, key)
    };
    let (ca_cert, ca_key) = ca("pavilion test CA");
    let (other_cert, other_key) = ca("someone else's CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let named =
        |issuer: &rcgen::Certificate, issuer_key: &rcgen::KeyPair, cn: &str, sans: &[&str]| {
            let k = rcgen::KeyPair::generate().unwrap();
            let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
            let mut p = rcgen::CertificateParams::new(sans).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            let c = p.signed_by(&k, issuer, issuer_key).unwrap();
            c.pem() + &k.serialize_pem()
        };
    let client = |issuer: &rcgen::Certificate, issuer_key: &rcgen::KeyPair| {
        named(issuer, issuer_key, "kube-apiserver", &[])
    };
    let w = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    Pki {
        server_crt: w("tls.crt", server.pem() + &ca_cert.pem()),
        server_key: w("tls.key", key.serialize_pem()),
        ca_file: w("ca.crt", ca_cert.pem()),
        ca_pem: ca_cert.pem(),
        client_pem: client(&ca_cert, &ca_key),
        stranger_pem: client(&other_cert, &other_key),
        kubelet_pem: named(&ca_cert, &ca_key, "system:node:worker-1", &[]),
        san_pem: named(&ca_cert, &ca_key, "someone", &["webhook-caller.example"]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_the_configured_ca_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let Some(s) = Server::start_with(
        Backend::Sqlite,
        &[
            "--tls-cert",
            &pki.server_crt,
            "--tls-key",
            &pki.server_key,
            "--admission-client-ca",
            &pki.ca_file,
            "--admission-client-name",
            "kube-apiserver",
            "--admission-client-name",
            "webhook-caller.example",
        ],
    ) else {
        return;
    };
    let https = |identity: Option<&str>| {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .use_rustls_tls()
            .timeout(Duration::from_secs(40))
            .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap());
        if let Some(pem) = identity {
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    };
    let body = serde_json::to_vec(&pod_review("u", json!([]))).unwrap();
    let send = |c: reqwest::Client| {
        let url = s.url("/admission");
        let body = body.clone();
        async move {
            c.post(url)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    };
    assert_eq!(send(https(Some(&pki.client_pem))).await.unwrap(), 200);
    assert_eq!(send(https(None)).await.unwrap(), 401);
    // The cluster CA also signs every kubelet's and user's certificate:
    // the CA alone does not make a caller the API server.
    assert_eq!(send(https(Some(&pki.kubelet_pem))).await.unwrap(), 401);
    // The name may also be a DNS subject alternative name.
    assert_eq!(send(https(Some(&pki.san_pem))).await.unwrap(), 200);
    // A certificate from another CA does not get through the handshake.
    assert!(send(https(Some(&pki.stranger_pem))).await.is_err());
    // Registry clients without a certificate are served as before.
    let r = https(None).get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_sizes_are_bounded() {
    let Some(s) = hook(&[]) else { return };
    // Bodies over the limit: 413, before parsing.
    let big = vec![b' '; 5 << 20];
    let r = http()
        .post(s.url("/admission"))
        .bearer_auth(TOKEN)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // More image uses than a review may carry: denied, naming the limit,
    // with nothing looked up.
    let many: Vec<Value> = (0..300)
        .map(|i| json!({"name": format!("c{i}"), "image": format!("127.0.0.1:9/x/c{i}:1")}))
        .collect();
    let (_, v) = post(&s, "/admission", &pod_review("u", Value::Array(many))).await;
    let msg = denial(&v);
    assert!(
        msg.contains("300 images, more than the 256 a review may name"),
        "{msg}"
    );
    // Gatekeeper: too many keys is a system error.
    let keys: Vec<String> = (0..300).map(|i| format!("127.0.0.1:9/x/k{i}:1")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (st, v) = post(
        &s,
        "/pavilion/v1/gatekeeper/verify",
        &provider_request(&keys),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        v["response"]["systemError"], "300 keys, more than the 256 allowed",
        "{v}"
    );
}
