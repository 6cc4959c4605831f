//! The registry's gate under attack, end to end against real processes:
//! each test is an attack from the outside review (issue 12), first seen
//! working against the old code, and the behaviour that now stops it.
//!
//! - a `Host` header choosing a looser trust policy statement;
//! - a manifest nested too deep for the policy input to see its layers;
//! - junk signatures crowding a valid one out of the push gate;
//! - docker-style clients (skopeo, oras-py, curl) pulling what the pull
//!   rules refuse, because only Pavilion's own client applied them.

use crate::common::notation::{policy_dir, User};
use crate::common::*;
use serde_json::{json, Value};
use std::process::Command;

const NOTARY_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
const THUMBPRINTS: &str = "io.cncf.notary.x509chain.thumbprint#S256";
const MODEL_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
const MODEL_WEIGHT: &str = "application/vnd.cncf.model.weight.v1.raw";

const PROD_NEEDS_SIGNATURE: &str = r#"
package pavilion.push
import rego.v1

deny contains msg if {
    some t in input.tags
    t == "prod"
    not input.signature.verified
    msg := sprintf("tag %s needs a valid signature", [t])
}

deny contains msg if {
    some f in input.model.files
    endswith(f.path, ".pkl")
    msg := sprintf("pickle file %s is not allowed", [f.path])
}
"#;

/// `serve` arguments for a policy directory and a trust policy and store.
fn policy_args<'a>(rules: &'a tempfile::TempDir, tp: &'a str, ts: &'a str) -> Vec<&'a str> {
    let dir = rules.path().to_str().unwrap();
    vec!["--policy", dir, "--trust-policy", tp, "--trust-store", ts]
}

fn write_json(dir: &std::path::Path, name: &str, v: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p.display().to_string()
}

async fn put_with_host(
    s: &Server,
    repo: &str,
    reference: &str,
    body: &[u8],
    host: Option<&str>,
) -> reqwest::Response {
    let mut rq = client()
        .put(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("Content-Type", OCI_MANIFEST);
    if let Some(h) = host {
        rq = rq.header(reqwest::header::HOST, h);
    }
    rq.body(body.to_vec()).send().await.unwrap()
}

async fn manifest_bytes(s: &Server, repo: &str, reference: &str) -> Vec<u8> {
    let r = get_manifest(s, repo, reference).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

/// Attack: the push gate took the trust policy scope from `Host`, so a
/// client naming a host whose statement is `skip` tagged an unsigned
/// manifest `prod`. The statement now comes from `serve --name` (default:
/// the bound address), and with several names every one must pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_cannot_choose_the_trust_statement() {
    let user = User::new();
    let rules = policy_dir(&[("push.rego", PROD_NEEDS_SIGNATURE)]);
    let trust = tempfile::tempdir().unwrap();
    let tp = write_json(
        trust.path(),
        "trustpolicy.oci.json",
        &json!({"version": "1.0", "trustPolicies": [
            {"name": "mirror-skip",
             "registryScopes": ["mirror.local:5000/team/m", "evil.example/team/m"],
             "signatureVerification": {"level": "skip"}},
            {"name": "strict", "registryScopes": ["*"],
             "signatureVerification": {"level": "strict"},
             "trustStores": ["ca:alice"], "trustedIdentities": ["*"]}
        ]}),
    );
    let ts = user.trust_store();
    let start = |names: &[&str]| {
        let mut args = policy_args(&rules, &tp, &ts);
        for n in names {
            args.extend(["--name", n]);
        }
        Server::start_with(Backend::Sqlite, &args)
    };

    let Some(s) = start(&[]) else { return };
    push_image(&s, "team/m", "v1", "host").await;
    let m = manifest_bytes(&s, "team/m", "v1").await;
    for host in [Some("mirror.local:5000"), Some("evil.example"), None] {
        let r = put_with_host(&s, "team/m", "prod", &m, host).await;
        let (status, code, detail) = error_parts(r).await;
        assert_eq!((status, code.as_str()), (403, "DENIED"), "Host {host:?}");
        assert_eq!(detail, "denied by policy: tag prod needs a valid signature");
        assert_eq!(get_manifest(&s, "team/m", "prod").await.status(), 404);
    }
    // The denial is typed: clients act on the detail, never on the prose.
    let (_, e) = error_body(put_with_host(&s, "team/m", "prod", &m, None).await).await;
    assert_eq!(
        e["detail"],
        serde_json::json!({"reason": "policy", "deny": ["tag prod needs a valid signature"]})
    );
    // The decision log records the statement of the registry's own name.
    let log: Value = get_json(&s, "/pavilion/v1/decisions?repository=team/m&n=1").await;
    assert_eq!(
        log["decisions"][0]["detail"]["facts"]["signature"]["trustPolicy"],
        "strict"
    );
    drop(s);

    // Configured names choose the statement: the operator's decision.
    let Some(s) = start(&["mirror.local:5000"]) else {
        return;
    };
    push_image(&s, "team/m", "v1", "host").await;
    let r = put_with_host(&s, "team/m", "prod", &m, Some("anything.example")).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    drop(s);

    // Known by two names: the strictest statement of the two applies.
    let Some(s) = start(&["mirror.local:5000", "registry.example"]) else {
        return;
    };
    push_image(&s, "team/m", "v1", "host").await;
    let r = put_with_host(&s, "team/m", "prod", &m, Some("mirror.local:5000")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(get_manifest(&s, "team/m", "prod").await.status(), 404);
}

/// A ModelPack manifest with one layer named `path`, plus `extra` fields.
async fn model_manifest(s: &Server, repo: &str, path: &str, config: &[u8], extra: &str) -> Vec<u8> {
    let cd = push_blob(s, repo, config).await;
    let ld = push_blob(s, repo, b"not really a pickle").await;
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.cncf.model.manifest.v1+json","config":{{"mediaType":"{MODEL_CONFIG}","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"{MODEL_WEIGHT}","digest":"{ld}","size":19,"annotations":{{"org.cncf.model.filepath":"{path}"}}}}]{extra}}}"#,
        config.len()
    )
    .into_bytes()
}

fn deep_field() -> String {
    format!(r#","x":{}0{}"#, "[".repeat(130), "]".repeat(130))
}

/// Attack: an unknown field nested past 128 levels made the policy input's
/// `manifest` and `model` null (the parse failure was swallowed), so a
/// "no pickle files" rule let the model in. Such manifests are now refused
/// with MANIFEST_INVALID naming the limit, and a config the input cannot
/// hold is a denial, not a null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_too_deep_for_the_policy_is_refused() {
    let rules = policy_dir(&[("push.rego", PROD_NEEDS_SIGNATURE)]);
    let Some(s) = Server::start_with(
        Backend::Sqlite,
        &["--policy", rules.path().to_str().unwrap()],
    ) else {
        return;
    };
    let config = br#"{"descriptor":{"name":"m"},"config":{"format":"pickle"}}"#;
    // The rule works on the plain manifest.
    let plain = model_manifest(&s, "team/deep", "evil.pkl", config, "").await;
    let r = put_manifest(&s, "team/deep", "v1", Some(OCI_MANIFEST), &plain).await;
    assert_eq!(r.status(), 403);
    // With the deep field the manifest is refused before the gate.
    let deep = model_manifest(&s, "team/deep", "evil.pkl", config, &deep_field()).await;
    let r = put_manifest(&s, "team/deep", "v1", Some(OCI_MANIFEST), &deep).await;
    let (status, code, msg) = error_parts(r).await;
    assert_eq!((status, code.as_str()), (400, "MANIFEST_INVALID"));
    assert!(msg.contains("deeper than the 64 levels"), "{msg}");
    assert_eq!(get_manifest(&s, "team/deep", "v1").await.status(), 404);
    // Duplicate keys: two readers could see two different layer lists.
    let dup = String::from_utf8(plain.clone()).unwrap().replacen(
        r#","layers":"#,
        r#","layers":[],"layers":"#,
        1,
    );
    let r = put_manifest(&s, "team/deep", "v1", Some(OCI_MANIFEST), dup.as_bytes()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    // A JSON config the input cannot hold denies instead of reading null.
    let bad_config = model_manifest(&s, "team/deep", "ok.bin", b"{not json", "").await;
    let r = put_manifest(&s, "team/deep", "v2", Some(OCI_MANIFEST), &bad_config).await;
    let (status, code, msg) = error_parts(r).await;
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert!(
        msg.contains("cannot build the policy input") && msg.contains("not valid JSON"),
        "{msg}"
    );
    assert_eq!(get_manifest(&s, "team/deep", "v2").await.status(), 404);
    // Nothing of the refused pushes was recorded as allowed.
    let log: Value = get_json(&s, "/pavilion/v1/decisions?repository=team/deep").await;
    assert!(
        log["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["allowed"] == false),
        "{log}"
    );
}

/// The same attack on the client: `pull --policy` from a registry that
/// stores deep manifests (CNCF Distribution does) let the pickle through.
#[test]
fn pull_policy_refuses_a_manifest_too_deep_to_judge() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let user = User::new();
    let rules = policy_dir(&[(
        "pull.rego",
        r#"package pavilion.pull
import rego.v1
deny contains msg if {
    some f in input.model.files
    endswith(f.path, ".pkl")
    msg := sprintf("pickle file %s is not allowed", [f.path])
}"#,
    )]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = format!("http://{}", dist.addr);
    rt.block_on(async {
        let http = client();
        let mut digests = Vec::new();
        for data in [&br#"{"descriptor":{"name":"m"}}"#[..], b"not really a pickle"] {
            let d = sha256(data);
            let r = http
                .post(format!("{base}/v2/team/deep/blobs/uploads/"))
                .send()
                .await
                .unwrap();
            let loc = r.headers()["location"].to_str().unwrap().to_string();
            let url = if loc.starts_with("http") { loc } else { format!("{base}{loc}") };
            let sep = if url.contains('?') { '&' } else { '?' };
            let r = http
                .put(format!("{url}{sep}digest={d}"))
                .body(data.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            digests.push((d, data.len()));
        }
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{MODEL_CONFIG}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{MODEL_WEIGHT}","digest":"{}","size":{},"annotations":{{"org.cncf.model.filepath":"evil.pkl"}}}}]{}}}"#,
            digests[0].0,
            digests[0].1,
            digests[1].0,
            digests[1].1,
            deep_field()
        );
        let r = http
            .put(format!("{base}/v2/team/deep/manifests/v1"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "Distribution stores it");
    });
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("m");
    let err = user.fails(
        4,
        &[
            "pull",
            &format!("{}/team/deep:v1", dist.addr),
            "-o",
            target.to_str().unwrap(),
            "--policy",
            rules.path().to_str().unwrap(),
        ],
    );
    assert!(err.contains("deeper than the 64 levels"), "{err}");
    assert!(!target.join("evil.pkl").exists());
}

/// A junk signature manifest for `subject` (an envelope that is not one),
/// distinct by `n`, optionally carrying `thumbprints` copied from a real
/// signature (annotations are not signed: anyone can copy them).
fn junk_signature(subject: &Value, envelope: &str, n: usize, thumbprints: Option<&str>) -> Vec<u8> {
    let mut annotations = json!({ "junk": n.to_string() });
    if let Some(t) = thumbprints {
        annotations[THUMBPRINTS] = json!(t);
    }
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": NOTARY_SIGNATURE,
        "config": {"mediaType": OCI_EMPTY, "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/jose+json", "digest": envelope, "size": 4}],
        "subject": subject,
        "annotations": annotations,
    }))
    .unwrap()
}

async fn referrers(s: &Server, repo: &str, digest: &str) -> Vec<Value> {
    let v: Value = get_json(s, &format!("/v2/{repo}/referrers/{digest}")).await;
    v["manifests"].as_array().unwrap().clone()
}

/// Attack: the gate read only the first 32 signature referrers in digest
/// order, so junk signatures with lower digests made a validly signed
/// model fail its `prod` guard. Each signature is now verified once when it
/// is pushed, and decisions read those that passed first (then unjudged
/// ones whose thumbprints name a trusted certificate), up to 100; a
/// decision that stops at the bound says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_signatures_cannot_hide_a_valid_one() {
    let user = User::new();
    let rules = policy_dir(&[("push.rego", PROD_NEEDS_SIGNATURE)]);
    let (tp, ts) = (user.trust_policy(), user.trust_store());
    let Some(s) = Server::start_with(Backend::Sqlite, &policy_args(&rules, &tp, &ts)) else {
        return;
    };
    let reference = format!("{}/team/signed:v1", s.addr);
    let dir = user.model("m", &[("weights.safetensors", b"w")]);
    user.ok(&["push", &reference, dir.to_str().unwrap()]);
    user.sign(&reference);
    let subject_digest = hdr(
        &head_manifest(&s, "team/signed", "v1").await,
        "docker-content-digest",
    )
    .unwrap();
    let sigs = referrers(&s, "team/signed", &subject_digest).await;
    assert_eq!(sigs.len(), 1);
    let valid = sigs[0]["digest"].as_str().unwrap().to_string();
    let thumbprints = sigs[0]["annotations"][THUMBPRINTS]
        .as_str()
        .unwrap()
        .to_string();
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": subject_digest,
        "size": manifest_bytes(&s, "team/signed", "v1").await.len()});
    push_blob(&s, "team/signed", b"{}").await;
    let envelope = push_blob(&s, "team/signed", b"junk").await;
    // 101 junk signatures that sort before the valid one (more than are
    // checked per decision), each copying its thumbprints (annotations are
    // unsigned), then 20 more without. Only the lower ones are pushed;
    // candidates are cheap to hash.
    let (mut lower, mut n) = (0, 0);
    while lower < 101 {
        assert!(n < 5_000_000, "could not make 101 lower digests");
        let m = junk_signature(&subject, &envelope, n, Some(&thumbprints));
        let d = sha256(&m);
        n += 1;
        if d.as_str() >= valid.as_str() {
            continue;
        }
        let r = put_manifest(&s, "team/signed", &d, Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 201);
        lower += 1;
    }
    for k in 0..20 {
        let m = junk_signature(&subject, &envelope, n + k, None);
        let r = put_manifest(&s, "team/signed", &sha256(&m), Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 201);
    }
    // Annotations too long to be a signature's are no hint (and never
    // read in full when signatures are listed for a decision).
    let mut m: Value = serde_json::from_slice(&junk_signature(
        &subject,
        &envelope,
        n + 20,
        Some(&thumbprints),
    ))
    .unwrap();
    m["annotations"]["pad"] = json!("x".repeat(1 << 20));
    let m = serde_json::to_vec(&m).unwrap();
    let r = put_manifest(&s, "team/signed", &sha256(&m), Some(OCI_MANIFEST), &m).await;
    assert_eq!(r.status(), 201);
    user.ok(&["tag", &reference, "prod"]);
    assert_eq!(get_manifest(&s, "team/signed", "prod").await.status(), 200);
    // Re-evaluation of the tag agrees.
    let report: Value = get_json(&s, "/pavilion/v1/policy/team/signed/manifests/prod").await;
    assert_eq!(report["allowed"], true, "{report}");
    // An escaped `/` names no repository here either.
    let r = client()
        .get(s.url("/pavilion/v1/policy/team%2Fsigned/manifests/prod"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "NAME_INVALID");

    // Past the bound: 101 junk signatures that all copy trusted thumbprints,
    // and no valid one. The push is refused and the log says why.
    let other = format!("{}/team/junked:v1", s.addr);
    user.ok(&["push", &other, dir.to_str().unwrap()]);
    push_blob(&s, "team/junked", b"{}").await;
    push_blob(&s, "team/junked", b"junk").await;
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": subject_digest,
        "size": subject["size"]});
    for n in 0..101 {
        let m = junk_signature(&subject, &envelope, n, Some(&thumbprints));
        let r = put_manifest(&s, "team/junked", &sha256(&m), Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 201);
    }
    let err = user.fails(4, &["tag", &other, "prod"]);
    assert!(err.contains("tag prod needs a valid signature"), "{err}");
    let log: Value = get_json(&s, "/pavilion/v1/decisions?repository=team/junked&n=1").await;
    let why = log["decisions"][0]["detail"]["facts"]["signature"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        why.contains("1 more stored signature(s) were not checked"),
        "{log}"
    );
}

const PULL_RULES: &str = r#"
package pavilion.pull
import rego.v1

deny contains msg if {
    some f in input.model.files
    endswith(f.path, ".pkl")
    msg := sprintf("pickle file %s is not allowed", [f.path])
}

deny contains msg if {
    startswith(input.repository, "signed/")
    input.artifactType != "application/vnd.cncf.notary.signature"
    not input.signature.verified
    msg := sprintf("%s is not signed", [input.reference])
}
"#;

/// Attack: the pull rules ran only in `pavilion pull --policy`, so skopeo,
/// oras-py or curl fetched what they refuse. With `serve --policy` the
/// registry decides `pavilion.pull` on every manifest GET and HEAD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_rules_hold_for_every_client() {
    let user = User::new();
    let rules = policy_dir(&[("pull.rego", PULL_RULES)]);
    let (tp, ts) = (user.trust_policy(), user.trust_store());
    // The registry is filled first, then the policy is turned on.
    let Some(mut s) = Server::start(Backend::Sqlite) else {
        return;
    };
    let reg = s.addr.clone();
    let pickle = user.model("p", &[("weights.pkl", b"pickle")]);
    user.ok(&[
        "push",
        &format!("{reg}/team/pkl:v1"),
        pickle.to_str().unwrap(),
    ]);
    push_image(&s, "signed/app", "v1", "signed").await;
    user.sign(&format!("{reg}/signed/app:v1"));
    push_image(&s, "signed/other", "v1", "unsigned").await;
    let pkl_digest = hdr(
        &head_manifest(&s, "team/pkl", "v1").await,
        "docker-content-digest",
    )
    .unwrap();
    let args = policy_args(&rules, &tp, &ts);
    s.extra_args.extend(args.into_iter().map(String::from));
    s.restart();

    // Raw HTTP: GET and HEAD, by tag and by digest.
    for reference in ["v1", pkl_digest.as_str()] {
        let (status, code, detail) =
            error_parts(get_manifest(&s, "team/pkl", reference).await).await;
        assert_eq!((status, code.as_str()), (403, "DENIED"), "{reference}");
        assert_eq!(
            detail,
            "denied by policy: pickle file weights.pkl is not allowed"
        );
        assert_eq!(head_manifest(&s, "team/pkl", reference).await.status(), 403);
    }
    // The blob route serves manifests too: it is held to the same rules.
    let r = client()
        .get(s.url(&format!("/v2/team/pkl/blobs/{pkl_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "DENIED");
    assert_eq!(get_manifest(&s, "signed/other", "v1").await.status(), 403);
    assert_eq!(get_manifest(&s, "signed/app", "v1").await.status(), 200);
    // Denials are logged.
    let log: Value = get_json(&s, "/pavilion/v1/decisions?point=pull&repository=team/pkl").await;
    assert_eq!(log["decisions"][0]["allowed"], false, "{log}");

    // skopeo, as docker and containerd pull.
    if require_peer("skopeo", have("skopeo")).is_some() {
        let out = tempfile::tempdir().unwrap();
        let copy = |src: &str, dst: &str| {
            Command::new("skopeo")
                .args([
                    "copy",
                    "--src-tls-verify=false",
                    &format!("docker://{reg}/{src}"),
                ])
                .arg(format!("oci:{}:{dst}", out.path().join(dst).display()))
                .output()
                .unwrap()
        };
        let denied = copy("signed/other:v1", "other");
        let err = String::from_utf8_lossy(&denied.stderr);
        assert!(!denied.status.success());
        assert!(err.contains("is not signed"), "{err}");
        let ok = copy("signed/app:v1", "app");
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
    }

    // oras-py, as ORAS pulls artifacts.
    let py = std::env::var("PAVILION_TEST_ORAS_PYTHON").ok();
    if require_peer("oras-py (PAVILION_TEST_ORAS_PYTHON)", py.is_some()).is_some() {
        let work = tempfile::tempdir().unwrap();
        let out = Command::new(py.unwrap())
            .current_dir(work.path())
            .args([
                "-c",
                // oras-py retries a refused request five times, sleeping
                // up to 83 s between tries: the test skips the sleeps.
                "import sys, time, oras.client\n\
                 time.sleep = lambda s: None\n\
                 c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)\n\
                 c.pull(target=sys.argv[1] + '/team/pkl:v1', outdir='out')\n",
                &reg,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "oras-py pulled a refused model");
        assert!(!work.path().join("out/weights.pkl").exists());
        // oras-py reports any 401/403 as an authentication it cannot answer.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Cannot respond to request for authentication"),
            "{err}"
        );
    }

    // And Pavilion's own client without --policy.
    let target = tempfile::tempdir().unwrap();
    let err = user.fails(
        4,
        &[
            "pull",
            &format!("{reg}/team/pkl:v1"),
            "-o",
            target.path().to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("pickle file weights.pkl is not allowed"),
        "{err}"
    );
    assert!(!target.path().join("weights.pkl").exists());
}
