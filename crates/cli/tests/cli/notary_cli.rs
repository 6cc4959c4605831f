//! `pavilion cert generate`, `sign`, `signatures` and `verify` end to end
//! against a real Pavilion and CNCF Distribution, and notation's own signed
//! artifacts (its e2e OCI layouts) verified after `pavilion copy -r`.

use crate::common::notation::User;
use crate::common::*;
use std::path::{Path, PathBuf};

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// Pushes a small model and returns its reference.
fn push_model(n: &User, registry: &str, repo: &str) -> String {
    let weights = xorshift_bytes(64 << 10, 3, 1, 5);
    let dir = n.model(
        &format!("model-{}", repo.replace('/', "-")),
        &[("weights.gguf", &weights), ("README.md", repo.as_bytes())],
    );
    let reference = format!("{registry}/{repo}:v1");
    n.stdout(&["push", &reference, dir.to_str().unwrap()]);
    reference
}

fn sign_verify_round_trip(registry: &str) {
    let n = User::without_keys();
    let out = n.stdout(&["cert", "generate", "alice"]);
    assert!(out.contains("ca:alice"), "{out}");
    assert!(n.notation().join("trustpolicy.oci.json").exists());
    let reference = push_model(&n, registry, "signed/model");
    let (key, cert) = (n.key("alice"), n.cert("alice"));

    // Unsigned: verification fails with exit 4.
    let err = n.fails(4, &["verify", &reference]);
    assert!(err.contains("no signature passes"), "{err}");

    let jws = n.stdout(&["sign", &reference, "--key", &key, "--cert", &cert]);
    let cose = n.stdout(&[
        "sign",
        &reference,
        "--key",
        &key,
        "--cert",
        &cert,
        "--signature-format",
        "cose",
    ]);
    assert_ne!(jws.trim(), cose.trim());
    let list = json(&n.stdout(&["signatures", &reference, "--output", "json"]));
    let sigs = list["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2, "{list}");
    let formats: Vec<&str> = sigs.iter().map(|s| s["format"].as_str().unwrap()).collect();
    assert!(formats.contains(&"application/jose+json") && formats.contains(&"application/cose"));
    assert!(sigs.iter().all(|s| s["algorithm"] == "ES256"));
    assert!(sigs
        .iter()
        .all(|s| s["signer"].as_str().unwrap().contains("CN=alice")));

    let report = json(&n.stdout(&["verify", &reference, "--output", "json"]));
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["signatures"].as_array().unwrap().len(), 2);
    for s in report["signatures"].as_array().unwrap() {
        assert_eq!(s["verified"], true, "{s}");
        let names: Vec<&str> = s["validations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["validation"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "integrity",
                "authenticity",
                "expiry",
                "authenticTimestamp",
                "revocation"
            ]
        );
    }

    // Another signer, not in the trust store: its artifact does not verify.
    n.stdout(&["cert", "generate", "mallory"]); // keeps alice's policy
    let other = push_model(&n, registry, "signed/other");
    n.stdout(&[
        "sign",
        &other,
        "--key",
        &n.key("mallory"),
        "--cert",
        &n.cert("mallory"),
    ]);
    let report = json(&String::from_utf8_lossy(
        &n.run(&["verify", &other, "--output", "json"]).stdout,
    ));
    assert_eq!(report["verified"], false, "{report}");
    let steps = report["signatures"][0]["validations"].as_array().unwrap();
    assert_eq!(steps[1]["validation"], "authenticity");
    assert_eq!(steps[1]["outcome"]["result"], "failed", "{report}");
    n.fails(4, &["verify", &other]);

    // pull --verify: files land only for a verified artifact.
    let good_dir = n.home().join("pulled-good");
    n.stdout(&[
        "pull",
        &reference,
        "-o",
        good_dir.to_str().unwrap(),
        "--verify",
    ]);
    assert!(good_dir.join("weights.gguf").exists());
    let bad_dir = n.home().join("pulled-bad");
    let err = n.fails(
        4,
        &["pull", &other, "-o", bad_dir.to_str().unwrap(), "--verify"],
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert!(
        !bad_dir.exists(),
        "files were written for an unverified artifact"
    );

    // An expired signature fails under strict.
    let short = push_model(&n, registry, "signed/short");
    n.stdout(&[
        "sign", &short, "--key", &key, "--cert", &cert, "--expiry", "1s",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let report = json(&String::from_utf8_lossy(
        &n.run(&["verify", &short, "--output", "json"]).stdout,
    ));
    let steps = report["signatures"][0]["validations"].as_array().unwrap();
    assert_eq!(steps[2]["validation"], "expiry");
    assert_eq!(steps[2]["outcome"]["result"], "failed", "{report}");
    n.fails(4, &["verify", &short]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_and_verify_on_pavilion() {
    let s = Server::start(Backend::Sqlite).unwrap();
    sign_verify_round_trip(&s.addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_and_verify_on_distribution_through_the_referrers_tag() {
    let Some(d) = Distribution::start() else {
        return;
    };
    sign_verify_round_trip(&d.addr);
}

fn e2e() -> PathBuf {
    pavilion_notary::test_vectors::dir().join("notation/test/e2e/testdata")
}

/// A trust store holding notation's e2e certificates, and a policy file.
fn e2e_trust(dir: &Path, level: &str) -> (String, String) {
    let store = dir.join("store/x509/ca/e2e");
    std::fs::create_dir_all(&store).unwrap();
    for c in ["e2e.crt", "expired_e2e.crt"] {
        std::fs::copy(e2e().join("config/localkeys").join(c), store.join(c)).unwrap();
    }
    // The self-signed leaf of the timestamped e2e signature (testcert7).
    std::fs::copy(
        pavilion_notary::test_vectors::dir().join("derived/selfsigned-1717fa9d18f7.pem"),
        store.join("testcert7.pem"),
    )
    .unwrap();
    let policy = dir.join(format!("policy-{level}.json"));
    std::fs::write(
        &policy,
        serde_json::json!({"version": "1.0", "trustPolicies": [{
            "name": "e2e", "registryScopes": ["*"],
            "signatureVerification": {"level": level},
            "trustStores": ["ca:e2e"], "trustedIdentities": ["*"]}]})
        .to_string(),
    )
    .unwrap();
    (
        policy.display().to_string(),
        dir.join("store").display().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notation_signatures_copied_into_pavilion_verify_as_notation_says() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let n = User::without_keys();
    let tmp = tempfile::tempdir().unwrap();
    let (strict, store) = e2e_trust(tmp.path(), "strict");
    let (permissive, _) = e2e_trust(tmp.path(), "permissive");
    for (layout, strict_ok, permissive_ok) in [
        ("e2e-valid-signature", true, true),
        ("e2e-valid-multiple-signatures", true, true),
        ("e2e-expired-signature", false, true),
        ("e2e-with-expired-cert", false, true),
        ("e2e-invalid-signature", false, false),
        // Expired signature and leaf, Microsoft TSA token (root not here):
        // strict fails (expiry); permissive logs it and passes.
        ("e2e-with-timestamped-signature", false, true),
    ] {
        // Copy the layout (read-only vectors) and push it with its referrers.
        let src = e2e().join("registry/oci_layout").join(layout);
        let copy = tmp.path().join(layout);
        std::fs::create_dir_all(copy.join("blobs/sha256")).unwrap();
        for f in ["oci-layout", "index.json"] {
            std::fs::copy(src.join(f), copy.join(f)).unwrap();
        }
        for e in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), copy.join("blobs/sha256").join(e.file_name())).unwrap();
        }
        let reference = format!("{}/e2e/{layout}:v1", s.addr);
        n.stdout(&[
            "copy",
            "-r",
            &format!("oci:{}:v1", copy.display()),
            &reference,
        ]);
        for (policy, expected) in [(&strict, strict_ok), (&permissive, permissive_ok)] {
            let out = n.run(&[
                "verify",
                &reference,
                "--trust-policy",
                policy,
                "--trust-store",
                &store,
                "--output",
                "json",
            ]);
            let report = json(&String::from_utf8_lossy(&out.stdout));
            assert_eq!(
                report["verified"], expected,
                "{layout} with {policy}: {report}"
            );
            // Every signature is reported, even one whose layer is no
            // envelope at all: it fails integrity, as notation says.
            let first = &report["signatures"][0]["validations"][0];
            assert_eq!(first["validation"], "integrity", "{layout}: {report}");
            if layout == "e2e-invalid-signature" {
                assert_eq!(first["outcome"]["result"], "failed", "{report}");
            }
            assert_eq!(
                out.status.code(),
                Some(if expected { 0 } else { 4 }),
                "{layout}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_policies_and_references_get_clear_errors() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let n = User::without_keys();
    n.stdout(&["cert", "generate", "alice"]);
    n.stdout(&["cert", "generate", "bob"]);
    let reference = push_model(&n, &s.addr, "bad/model");
    // A key that does not belong to the certificate: usage error, nothing pushed.
    let err = n.fails(
        2,
        &[
            "sign",
            &reference,
            "--key",
            &n.key("bob"),
            "--cert",
            &n.cert("alice"),
        ],
    );
    assert!(err.contains("does not belong"), "{err}");
    let list = json(&n.stdout(&["signatures", &reference, "--output", "json"]));
    assert!(list["signatures"].as_array().unwrap().is_empty(), "{list}");
    // Files that are not keys or certificates.
    let junk = n.home().join("junk.pem");
    std::fs::write(&junk, "not a pem").unwrap();
    let junk = junk.display().to_string();
    n.fails(
        2,
        &[
            "sign",
            &reference,
            "--key",
            &junk,
            "--cert",
            &n.cert("alice"),
        ],
    );
    n.fails(
        2,
        &[
            "sign",
            &reference,
            "--key",
            &n.key("alice"),
            "--cert",
            &junk,
        ],
    );
    n.fails(
        2,
        &[
            "sign",
            &reference,
            "--key",
            &n.key("alice"),
            "--cert",
            &n.cert("alice"),
            "--expiry",
            "soon",
        ],
    );
    // A broken trust policy: a one-line error naming the file, exit 4.
    let bad_policy = n.home().join("policy.json");
    std::fs::write(
        &bad_policy,
        r#"{"version":"1.0","trustPolicies":[{"name":"x"}]}"#,
    )
    .unwrap();
    n.stdout(&[
        "sign",
        &reference,
        "--key",
        &n.key("alice"),
        "--cert",
        &n.cert("alice"),
    ]);
    let err = n.fails(
        4,
        &[
            "verify",
            &reference,
            "--trust-policy",
            bad_policy.to_str().unwrap(),
        ],
    );
    assert!(err.contains("policy.json"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // An oversized envelope is reported as an integrity failure, not fetched.
    let repo = "bad/model";
    let subject = json(&n.stdout(&["manifest", "get", &reference, "--descriptor"]));
    let big = push_blob(&s, repo, &vec![b'x'; (4 << 20) + 1]).await;
    let config = push_blob(&s, repo, b"{}").await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/jose+json", "digest": big, "size": (4 << 20) + 1}],
        "subject": subject,
    })
    .to_string();
    let r = put_manifest(
        &s,
        repo,
        &sha256(manifest.as_bytes()),
        Some("application/vnd.oci.image.manifest.v1+json"),
        manifest.as_bytes(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let out = n.run(&["verify", &reference, "--output", "json"]);
    let report = json(&String::from_utf8_lossy(&out.stdout));
    let refused = report["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["validations"][0]["outcome"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("over the"))
        })
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(refused["verified"], false);
    // The artifact still verifies through its good signature.
    assert_eq!(report["verified"], true, "{report}");

    // Unknown artifacts: not found.
    n.fails(3, &["verify", &format!("{}/bad/none:v1", s.addr)]);
    n.fails(
        3,
        &[
            "sign",
            &format!("{}/bad/none:v1", s.addr),
            "--key",
            &n.key("alice"),
            "--cert",
            &n.cert("alice"),
        ],
    );
    n.fails(2, &["cert", "generate", "../escape"]);
}

#[test]
fn cert_generate_never_writes_through_what_is_already_there() {
    use std::os::unix::fs::{symlink, PermissionsExt as _};
    let n = User::without_keys();
    let keys = n.notation().join("localkeys");
    std::fs::create_dir_all(&keys).unwrap();
    // A symlink planted at the key path, pointing at someone's file.
    let victim = n.home().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    symlink(&victim, keys.join("alice.key")).unwrap();
    let err = n.fails(1, &["cert", "generate", "alice"]);
    assert!(err.contains("alice.key") && err.contains("exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(keys.join("alice.key").is_symlink());
    assert!(!keys.join("alice.crt").exists(), "nothing else written");
    // An existing world-readable file at the key path: refused (as notation
    // does), so a private key never lands in a file others can read.
    let old = keys.join("bob.key");
    std::fs::write(&old, "old key").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = n.fails(1, &["cert", "generate", "bob"]);
    assert!(err.contains("bob.key") && err.contains("exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "old key");
    // A dangling symlink planted at the trust policy's path: the policy is
    // not written through it.
    let outside = n.home().join("outside-policy.json");
    symlink(&outside, n.notation().join("trustpolicy.oci.json")).unwrap();
    let out = n.stdout(&["cert", "generate", "carol"]);
    assert!(out.contains("trust policy: unchanged"), "{out}");
    assert!(!outside.exists());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keys.join("carol.key")), 0o600);
    assert_eq!(mode(&keys.join("carol.crt")), 0o644);
}
