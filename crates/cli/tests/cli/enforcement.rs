//! Policies enforced at every door, end to end against real processes:
//! `serve --policy` at push (denials leave no trace, tag guards that need a
//! valid Notary signature, warnings, the decision log), `pull --policy`,
//! `policy eval --ref`, and over HTTPS the Kubernetes admission webhook and
//! the Gatekeeper external data provider.

use crate::common::notation::{policy_dir, User};
use crate::common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const PUSH_RULES: &str = r#"
package pavilion.push
import rego.v1

# No pickle files in models.
deny contains msg if {
    some f in input.model.files
    endswith(f.path, ".pkl")
    msg := sprintf("%s: pickle file %s is not allowed", [input.repository, f.path])
}

# Tags prod* only on manifests with a valid signature.
deny contains msg if {
    some t in input.tags
    startswith(t, "prod")
    not input.signature.verified
    msg := sprintf("tag %s needs a valid signature", [t])
}

deny contains "forbidden artifact type" if input.artifactType == "application/vnd.example.forbidden"

# A runtime error: to_number of a non-number.
deny contains msg if {
    n := to_number(input.annotations["example.count"])
    n > 10
    msg := "too many"
}

warn contains "model has no license" if {
    input.model != null
    count(input.model.licenses) == 0
}
"#;

async fn decisions(s: &Server, query: &str) -> Vec<Value> {
    decisions_via(&client(), s, query).await
}

async fn decisions_via(http: &reqwest::Client, s: &Server, query: &str) -> Vec<Value> {
    let r = http
        .get(s.url(&format!("/pavilion/v1/decisions{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["decisions"].as_array().unwrap().clone()
}

async fn push_enforcement(backend: Backend) {
    let user = User::new();
    let rules = policy_dir(&[("push.rego", PUSH_RULES)]);
    let Some(s) = user.gated_server(backend, rules.path()) else {
        return;
    };
    let reg = s.addr.clone();

    // Allowed, with a warning shown by the client.
    let good = user.model(
        "good",
        &[("weights.safetensors", b"weights"), ("README.md", b"hi")],
    );
    let reference = format!("{reg}/team/model:v1");
    let out = user.ok(&["push", &reference, good.to_str().unwrap()]);
    assert!(out.contains("model has no license"), "{out}");

    // Denied: a pickle file. Nothing stored: no tag, no manifest.
    let bad = user.model("bad", &[("weights.pkl", b"pickle"), ("README.md", b"x")]);
    let err = user.fails(
        4,
        &["push", &format!("{reg}/team/bad:v1"), bad.to_str().unwrap()],
    );
    assert!(
        err.contains("team/bad: pickle file weights.pkl is not allowed"),
        "{err}"
    );
    // (The blobs were uploaded before the manifest, so the repository may
    // exist; its tag list is empty.)
    let tags = client()
        .get(s.url("/v2/team/bad/tags/list"))
        .send()
        .await
        .unwrap();
    if tags.status() == 200 {
        let v: Value = tags.json().await.unwrap();
        assert!(v["tags"].as_array().is_none_or(Vec::is_empty), "{v}");
    } else {
        assert_eq!(tags.status(), 404);
    }
    assert_eq!(get_manifest(&s, "team/bad", "v1").await.status(), 404);

    // Denied over the raw API: 403 DENIED with the rule's message, and a
    // denied referrer leaves the subject's referrers unchanged.
    let subject = push_image(&s, "team/app", "v1", "app").await;
    let cfg = push_blob(&s, "team/app", b"{}").await;
    let forbidden = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example.forbidden","config":{{"mediaType":"{OCI_EMPTY}","digest":"{cfg}","size":2}},"layers":[{{"mediaType":"{OCI_EMPTY}","digest":"{cfg}","size":2}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":1}}}}"#
    );
    let fd = sha256(forbidden.as_bytes());
    let r = put_manifest(
        &s,
        "team/app",
        &fd,
        Some(OCI_MANIFEST),
        forbidden.as_bytes(),
    )
    .await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert_eq!(
        body["errors"][0]["message"],
        "denied by policy: forbidden artifact type"
    );
    assert_eq!(
        body["errors"][0]["detail"],
        serde_json::json!({"reason": "policy", "deny": ["forbidden artifact type"]})
    );
    assert_eq!(get_manifest(&s, "team/app", &fd).await.status(), 404);
    let refs: Value = client()
        .get(s.url(&format!("/v2/team/app/referrers/{subject}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refs["manifests"], json!([]), "{refs}");

    // A rule that fails at run time refuses (nothing stored) and says why.
    let counted = image_manifest((&cfg, 2), &[], r#","annotations":{"example.count":"many"}"#);
    let r = put_manifest(&s, "team/app", "counted", Some(OCI_MANIFEST), &counted).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    let detail = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        detail.contains("policy evaluation failed") && detail.contains("push.rego"),
        "{detail}"
    );
    assert_eq!(body["errors"][0]["detail"]["reason"], "policy");
    assert_eq!(get_manifest(&s, "team/app", "counted").await.status(), 404);

    // Tag guard: prod needs a valid signature.
    let err = user.fails(4, &["tag", &reference, "prod"]);
    assert!(err.contains("tag prod needs a valid signature"), "{err}");
    assert_eq!(get_manifest(&s, "team/model", "prod").await.status(), 404);
    user.sign(&reference);
    user.ok(&["tag", &reference, "prod"]);
    assert_eq!(get_manifest(&s, "team/model", "prod").await.status(), 200);

    // The decision log, newest first, filtered and paged.
    let all = decisions(&s, "?repository=team/model").await;
    let results: Vec<(bool, Vec<Value>)> = all
        .iter()
        .map(|d| {
            (
                d["allowed"].as_bool().unwrap(),
                d["detail"]["tags"].as_array().unwrap().clone(),
            )
        })
        .collect();
    // push v1 (allowed), tag prod (denied), signature (allowed), tag prod (allowed).
    assert_eq!(
        results,
        vec![
            (true, vec![json!("prod")]),
            (true, vec![]),
            (false, vec![json!("prod")]),
            (true, vec![json!("v1")]),
        ],
        "{all:?}"
    );
    assert_eq!(all[0]["detail"]["facts"]["signature"]["verified"], true);
    assert_eq!(all[2]["deny"], json!(["tag prod needs a valid signature"]));
    assert_eq!(all[3]["warn"], json!(["model has no license"]));
    assert_eq!(all[0]["point"], "push");
    assert!(all[0]["subject"]
        .as_str()
        .unwrap()
        .starts_with("team/model@sha256:"));
    let page = client()
        .get(s.url("/pavilion/v1/decisions?repository=team/model&n=3"))
        .send()
        .await
        .unwrap();
    let link = hdr(&page, "link").expect("a full page links to the next");
    let next: Value = client()
        .get(s.url(link.trim_start_matches('<').split('>').next().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(next["decisions"][0]["id"], all[3]["id"]);
    let denied = decisions(&s, "?point=push").await;
    assert!(denied
        .iter()
        .any(|d| d["repository"] == "team/bad" && d["allowed"] == false));
    // A tag guard's verdict can be queried later; nothing is recorded.
    let report = |path: String| {
        let url = s.url(&format!("/pavilion/v1/policy/{path}"));
        async move {
            let r = client().get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (st, v) = report("team/model/manifests/prod".into()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["allowed"], true);
    assert_eq!(v["detail"]["signature"]["verified"], true);
    assert_eq!(v["digest"], all[0]["detail"]["digest"]);
    let (st, v) = report("team/app/manifests/v1".into()).await;
    assert_eq!((st, v["allowed"].clone()), (200, json!(true)));
    assert_eq!(v["detail"]["signature"]["verified"], false);
    let (st, v) = report("team/model/manifests/nope".into()).await;
    assert_eq!(st, 404);
    assert_eq!(v["errors"][0]["code"], "MANIFEST_UNKNOWN");
    assert_eq!(
        decisions(&s, "?repository=team/model").await.len(),
        all.len()
    );
    for bad_query in ["?n=0", "?n=x", "?point=nope", "?before=x", "?other=1"] {
        let r = client()
            .get(s.url(&format!("/pavilion/v1/decisions{bad_query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad_query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_policy_on_sqlite() {
    push_enforcement(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_policy_on_postgres() {
    push_enforcement(Backend::Postgres).await;
}

const PULL_RULES: &str = r#"
package pavilion.pull
import rego.v1

deny contains msg if {
    not input.signature.verified
    msg := sprintf("%s is not signed by a trusted signer", [input.reference])
}

warn contains msg if {
    input.model != null
    count(input.model.licenses) == 0
    msg := sprintf("%s has no license", [input.repository])
}
"#;

#[test]
fn pull_policy_decides_before_any_file_is_written() {
    let user = User::new();
    let Some(s) = Server::start(Backend::Sqlite) else {
        return;
    };
    let rules = policy_dir(&[("pull.rego", PULL_RULES)]);
    let model = user.model(
        "m",
        &[("weights.gguf", b"gguf weights"), ("README.md", b"r")],
    );
    let reference = format!("{}/pulled/model:v1", s.addr);
    user.ok(&["push", &reference, model.to_str().unwrap()]);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("m");
    let (tp, ts) = (user.trust_policy(), user.trust_store());
    let pull = |dest: &Path| {
        vec![
            "pull".to_string(),
            reference.clone(),
            "-o".into(),
            dest.display().to_string(),
            "--policy".into(),
            rules.path().display().to_string(),
            "--trust-policy".into(),
            tp.clone(),
            "--trust-store".into(),
            ts.clone(),
        ]
    };
    let args = pull(&dest);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = user.fails(4, &args);
    assert!(
        err.contains("is not signed by a trusted signer") && err.contains("nothing was written"),
        "{err}"
    );
    assert!(!dest.exists(), "no directory may be created when denied");

    user.sign(&reference);
    let out_text = user.ok(&args);
    assert!(
        out_text.contains("policy warning: pulled/model has no license"),
        "{out_text}"
    );
    assert_eq!(
        std::fs::read(dest.join("weights.gguf")).unwrap(),
        b"gguf weights"
    );

    // policy eval --ref builds the same documents from the registry.
    let v = user.json(&[
        "policy",
        "eval",
        "--policy",
        rules.path().to_str().unwrap(),
        "--point",
        "pull",
        "--ref",
        &reference,
        "--trust-policy",
        &tp,
        "--trust-store",
        &ts,
        "--output",
        "json",
        "--show-input",
    ]);
    assert_eq!(v["allowed"], true);
    assert_eq!(v["input"]["version"], "pavilion.dev/policy-input/v1");
    assert_eq!(v["input"]["signature"]["verified"], true);
    assert_eq!(v["input"]["model"]["name"], "m", "{}", v["input"]);
    let files: Vec<&str> = v["input"]["model"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.contains(&"weights.gguf") && files.contains(&"README.md"));
    let push_rules = policy_dir(&[("push.rego", PUSH_RULES)]);
    let v = user.json(&[
        "policy",
        "eval",
        "--policy",
        push_rules.path().to_str().unwrap(),
        "--point",
        "push",
        "--ref",
        &reference,
        "--trust-policy",
        &tp,
        "--trust-store",
        &ts,
        "--output",
        "json",
    ]);
    assert_eq!(v["warn"], json!(["model has no license"]));
    let err = user.fails(
        2,
        &[
            "policy",
            "eval",
            "--policy",
            push_rules.path().to_str().unwrap(),
            "--point",
            "admission",
            "--ref",
            &reference,
        ],
    );
    assert!(err.contains("AdmissionReview"), "{err}");
}

/// A CA and a server certificate for 127.0.0.1, as PEM files in `dir`.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "pavilion test TLS CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&c, cert.pem() + &ca_cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, ca_cert.pem())
}

fn https_client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

const ADMISSION_RULES: &str = r#"
package pavilion.admission
import rego.v1

deny contains msg if {
    some img in input.images
    contains(img.reference, "/forbidden/")
    msg := sprintf("%s: repository forbidden/ may not run in %s", [img.reference, input.namespace])
}

warn contains msg if {
    some img in input.images
    img.source == "imageVolume"
    img.model != null
    msg := sprintf("model %s mounted (%v bytes)", [img.reference, img.model.size])
}
"#;

/// An AdmissionReview as the API server sends it.
fn review(uid: &str, kind: &str, group: &str, object: Value, dry_run: bool) -> Value {
    let resource = format!("{}s", kind.to_lowercase());
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "requestKind": {"group": group, "version": "v1", "kind": kind},
            "requestResource": {"group": group, "version": "v1", "resource": resource},
            "name": object["metadata"]["name"],
            "namespace": "ml",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ml:deployer", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

fn pod(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ml"}, "spec": spec})
}

fn allowed(uid: &str) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "response": {"uid": uid, "allowed": true}})
}

fn denied(uid: &str, message: &str) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "response": {"uid": uid, "allowed": false,
                        "status": {"status": "Failure", "code": 403, "reason": "Forbidden", "message": message}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_reviews_and_gatekeeper_provider_over_https() {
    let user = User::new();
    // The images live in an ordinary registry; the webhook runs in another
    // Pavilion, over HTTPS.
    let Some(images) = Server::start(Backend::Sqlite) else {
        return;
    };
    let reg = images.addr.clone();
    let app = user.model(
        "app",
        &[("weights.safetensors", b"w1"), ("README.md", b"a")],
    );
    let signed = format!("{reg}/signed/app:v1");
    let unsigned = format!("{reg}/unsigned/app:v1");
    let forbidden = format!("{reg}/forbidden/app:v1");
    let unknown = format!("{reg}/nothing/here:v1");
    for r in [&signed, &unsigned, &forbidden] {
        user.ok(&["push", r, app.to_str().unwrap()]);
    }
    user.sign(&signed);
    user.sign(&forbidden);
    let digest_of = |r: &str| {
        let v = user.json(&["inspect", r, "--output", "json"]);
        v["digest"].as_str().unwrap().to_string()
    };
    let unsigned_digest = digest_of(&unsigned);

    let tls = tempfile::tempdir().unwrap();
    let (crt, key, ca) = tls_files(tls.path());
    let rules = policy_dir(&[("admission.rego", ADMISSION_RULES)]);
    let (tp, ts) = (user.trust_policy(), user.trust_store());
    let Some(hook) = Server::start_with(
        Backend::Sqlite,
        &[
            "--tls-cert",
            crt.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--policy",
            rules.path().to_str().unwrap(),
            "--trust-policy",
            &tp,
            "--trust-store",
            &ts,
            // Lookups only in the images' registry; callers send a token
            // (admission_hardening.rs tests both).
            "--admission-registries",
            &reg,
            "--admission-token",
            "hook-token",
        ],
    ) else {
        return;
    };
    assert_eq!(hook.scheme, "https");
    let http = https_client(&ca);
    let post = |path: &'static str, body: Vec<u8>| {
        let http = http.clone();
        let url = hook.url(path);
        async move {
            let r = http
                .post(url)
                .bearer_auth("hook-token")
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let admit = |v: Value| post("/admission", serde_json::to_vec(&v).unwrap());

    // The registry API is served over HTTPS too.
    let base = http.get(hook.url("/v2/")).send().await.unwrap();
    assert_eq!(base.status(), 200);

    // A Pod with a signed image.
    let (st, resp) = admit(review(
        "u1",
        "Pod",
        "",
        pod(
            "ok",
            json!({"containers": [{"name": "a", "image": signed}]}),
        ),
        false,
    ))
    .await;
    assert_eq!((st, resp), (200, allowed("u1")));

    // An unsigned one.
    let (st, resp) = admit(review(
        "u2",
        "Pod",
        "",
        pod(
            "nosig",
            json!({"containers": [{"name": "a", "image": unsigned}]}),
        ),
        false,
    ))
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        resp,
        denied("u2", &format!("image {unsigned} ({unsigned_digest}): no signature (trust policy \"alice-default\")"))
    );

    // Signed, but denied by a rule.
    let (_, resp) = admit(review(
        "u3",
        "Pod",
        "",
        pod(
            "rule",
            json!({"containers": [{"name": "a", "image": forbidden}]}),
        ),
        false,
    ))
    .await;
    assert_eq!(
        resp,
        denied(
            "u3",
            &format!("{forbidden}: repository forbidden/ may not run in ml")
        )
    );

    // A Deployment: its Pod template, init containers included.
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ml"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"initContainers": [{"name": "init", "image": unsigned}], "containers": [{"name": "web", "image": signed}]}}}});
    let (_, resp) = admit(review("u4", "Deployment", "apps", deployment, false)).await;
    assert_eq!(
        resp,
        denied("u4", &format!("image {unsigned} ({unsigned_digest}): no signature (trust policy \"alice-default\")"))
    );

    // A model mounted as an image volume: allowed with the rule's warning.
    let (_, resp) = admit(review("u5", "Pod", "", pod("vol", json!({
        "containers": [{"name": "a", "image": signed, "volumeMounts": [{"name": "model", "mountPath": "/models"}]}],
        "volumes": [{"name": "model", "image": {"reference": signed, "pullPolicy": "IfNotPresent"}}]})), false)).await;
    let mut expected = allowed("u5");
    expected["response"]["warnings"] = json!([format!("model {signed} mounted (3 bytes)")]);
    assert_eq!(resp, expected);

    // An unknown image is denied, naming it.
    let (_, resp) = admit(review(
        "u6",
        "Pod",
        "",
        pod(
            "unknown",
            json!({"containers": [{"name": "a", "image": unknown}]}),
        ),
        false,
    ))
    .await;
    let msg = resp["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(resp["response"]["allowed"], false);
    assert!(
        msg.starts_with(&format!("image {unknown}: cannot resolve")),
        "{msg}"
    );

    // dryRun: the same answer, nothing recorded.
    let before = decisions_via(&http, &hook, "").await.len();
    let (_, resp) = admit(review(
        "u7",
        "Pod",
        "",
        pod(
            "dry",
            json!({"containers": [{"name": "a", "image": unsigned}]}),
        ),
        true,
    ))
    .await;
    assert_eq!(resp["response"]["allowed"], false);
    let after = decisions_via(&http, &hook, "").await.len();
    assert_eq!(before, after, "a dry run must not be recorded");
    assert_eq!(before, 6, "every other review is recorded");

    // Malformed reviews: 400 with a one-line reason.
    for (body, why) in [
        (b"not json".to_vec(), "not JSON"),
        (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}"#.to_vec(), "v1"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#.to_vec(), "uid"),
    ] {
        let (st, v) = post("/admission", body).await;
        assert_eq!(st, 400);
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(why) && !e.contains('\n'), "{e}");
    }

    // Gatekeeper's external data provider, several keys at once.
    let req = json!({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest",
                     "request": {"keys": [signed, unsigned, unknown]}});
    let (st, v) = post(
        "/pavilion/v1/gatekeeper/verify",
        serde_json::to_vec(&req).unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["kind"], "ProviderResponse");
    let items = v["response"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["key"], json!(signed));
    assert_eq!(items[0]["value"]["isSuccess"], true);
    assert!(items[0].get("error").is_none_or(Value::is_null), "{v}");
    assert_eq!(items[1]["value"]["isSuccess"], false);
    assert!(items[1]["value"]["verifierReports"][0]["message"]
        .as_str()
        .unwrap()
        .contains("no signature"));
    assert!(
        items[2]["error"]
            .as_str()
            .unwrap()
            .contains("cannot resolve"),
        "{v}"
    );
    let (st, _) = post("/pavilion/v1/gatekeeper/verify", b"{}".to_vec()).await;
    assert_eq!(st, 400);
}

#[test]
fn serve_refuses_broken_policies_and_tls_files_clearly() {
    let rules = policy_dir(&[(
        "bad.rego",
        "package pavilion.push\n\ndeny contains x if {\n  x := \n}\n",
    )]);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pavilion"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(rules.path().join("data"))
            .args(args)
            .env_remove("PAVILION_CONFIG")
            .output()
            .unwrap()
    };
    let out = run(&["--policy", rules.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.rego"), "{err}");
    let not_pem = rules.path().join("bad.rego");
    let out = run(&[
        "--tls-cert",
        not_pem.to_str().unwrap(),
        "--tls-key",
        not_pem.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("bad.rego") && err.contains("certificate"),
        "{err}"
    );
    let out = run(&["--tls-cert", not_pem.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "--tls-cert needs --tls-key");
}

/// The `*.rego` block scalars of a ConfigMap manifest (`  name.rego: |`,
/// then lines indented by four spaces).
fn configmap_rego(yaml: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in yaml.lines() {
        if let Some(name) = line
            .strip_prefix("  ")
            .and_then(|l| l.strip_suffix(": |"))
            .filter(|n| n.ends_with(".rego"))
        {
            out.extend(current.take());
            current = Some((name.to_string(), String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            if line.is_empty() || line.starts_with("    ") {
                text.push_str(line.get(4..).unwrap_or(""));
                text.push('\n');
            } else {
                out.extend(current.take());
            }
        }
    }
    out.extend(current);
    out
}

#[test]
fn the_kubernetes_example_policy_passes_its_own_tests() {
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes/policy-configmap.yaml"),
    )
    .unwrap();
    let files = configmap_rego(&yaml);
    assert_eq!(files.len(), 2, "{files:?}");
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(["policy", "test"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("5 passed, 0 failed"), "{text}");
}
