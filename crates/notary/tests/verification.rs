//! The verification workflow on notation's own signed vectors, with trust
//! stores made of their real anchors, at each level of the trust policy.

use pavilion_notary::trust_policy::OciPolicies;
use pavilion_notary::verify::{
    verify, Action, Expected, Outcome, Report, Requirements, Validation,
};
use pavilion_oci::Digest;
use std::path::PathBuf;
use time::OffsetDateTime;

fn vectors() -> PathBuf {
    pavilion_notary::test_vectors::dir()
}

/// DER certificates of a PEM (or DER) file.
fn certs(rel: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let bytes = std::fs::read(vectors().join(rel)).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("-----BEGIN") {
        return vec![bytes];
    }
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE") {
            cur = Some(String::new());
        } else if line.starts_with("-----END CERTIFICATE") {
            let b = cur.take().unwrap();
            out.push(base64::engine::general_purpose::STANDARD.decode(b).unwrap());
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line.trim());
        }
    }
    out
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A trust policy statement for every repository at `level` (with
/// `overrides`), trusting `identities`, with `ca` and `sa` as the
/// certificates of its `ca:test` and `signingAuthority:test` stores.
fn policy(
    level: &str,
    overrides: serde_json::Value,
    identities: &[&str],
    ca: Vec<Vec<u8>>,
    sa: Vec<Vec<u8>>,
) -> Requirements {
    let stores = ["ca:test", "signingAuthority:test"];
    requirements(level, overrides, identities, &stores, (ca, sa, Vec::new()))
}

/// DER certificates of one trust store.
type Store = Vec<Vec<u8>>;

/// The statement for `registry.example/any/repo` of a one-statement
/// document, with the given (ca, signingAuthority, tsa) certificates.
fn requirements(
    level: &str,
    overrides: serde_json::Value,
    identities: &[&str],
    stores: &[&str],
    (ca, signing_authority, tsa): (Store, Store, Store),
) -> Requirements {
    let doc = serde_json::json!({
        "version": "1.0",
        "trustPolicies": [{
            "name": "test",
            "registryScopes": ["*"],
            "signatureVerification": {"level": level, "override": overrides},
            "trustStores": stores,
            "trustedIdentities": identities,
        }],
    });
    let policies = OciPolicies::from_json(doc.to_string().as_bytes()).unwrap();
    Requirements {
        policy: policies
            .select("registry.example/any/repo")
            .unwrap()
            .clone(),
        ca,
        signing_authority,
        tsa,
    }
}

fn strict(ca: Vec<Vec<u8>>, sa: Vec<Vec<u8>>) -> Requirements {
    policy("strict", serde_json::json!({}), &["*"], ca, sa)
}

fn permissive(ca: Vec<Vec<u8>>, sa: Vec<Vec<u8>>) -> Requirements {
    policy("permissive", serde_json::json!({}), &["*"], ca, sa)
}

const MOCK_TARGET: &str = "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn run(file: &str, digest: &str, media_type: &str, size: u64, req: &Requirements) -> Report {
    let bytes = std::fs::read(vectors().join(file)).unwrap();
    let digest: Digest = digest.parse().unwrap();
    verify(
        "application/jose+json",
        &bytes,
        &Expected {
            digest: &digest,
            media_type,
            size,
        },
        req,
        now(),
    )
}

fn mock(file: &str, req: &Requirements) -> Report {
    run(
        &format!("notation-go/internal/mock/testdata/{file}"),
        MOCK_TARGET,
        DOCKER_MANIFEST,
        528,
        req,
    )
}

fn failed_at(r: &Report) -> Option<Validation> {
    r.steps
        .iter()
        .find(|s| {
            s.action == Action::Enforce
                && matches!(s.outcome, Outcome::Failed(_) | Outcome::NotChecked(_))
        })
        .map(|s| s.validation)
}

const TEST_ROOT: &str =
    "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/NotationTestRoot.pem";

#[test]
fn valid_signatures_pass_strict_with_their_anchor() {
    let a = run(
        "notation-go/internal/testdata/jws_signature.sig",
        "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0",
        "application/vnd.oci.image.manifest.v1+json",
        481,
        &strict(certs("derived/selfsigned-9f5f5aecee24.pem"), vec![]),
    );
    assert!(a.verified, "{a:#?}");
    assert_eq!(a.steps.len(), 5, "{a:#?}");
    let b = mock("ca_valid_sig_env.json", &strict(certs(TEST_ROOT), vec![]));
    assert!(b.verified, "{b:#?}");
    let sa = mock("sa_valid_sig_env.json", &strict(vec![], certs(TEST_ROOT)));
    assert!(sa.verified, "{sa:#?}");
}

#[test]
fn authenticity_needs_the_right_store_and_identity() {
    // A signingAuthority signature is not trusted through a ca store.
    let r = mock("sa_valid_sig_env.json", &strict(certs(TEST_ROOT), vec![]));
    assert_eq!(failed_at(&r), Some(Validation::Authenticity), "{r:#?}");
    // An unrelated anchor.
    let r = mock(
        "ca_valid_sig_env.json",
        &strict(certs("derived/selfsigned-9f5f5aecee24.pem"), vec![]),
    );
    assert_eq!(failed_at(&r), Some(Validation::Authenticity));
    // Trusted identities: the subject's C, ST and O must match.
    let with = |identity: &str, level: &str| {
        policy(
            level,
            serde_json::json!({}),
            &[identity],
            certs(TEST_ROOT),
            vec![],
        )
    };
    let good = "x509.subject: C=US, ST=WA, O=Notary";
    let other = "x509.subject: C=US, ST=WA, O=Other";
    assert!(mock("ca_valid_sig_env.json", &with(good, "strict")).verified);
    let r = mock("ca_valid_sig_env.json", &with(other, "strict"));
    assert_eq!(failed_at(&r), Some(Validation::Authenticity));
    // At audit level authenticity is only logged.
    assert!(mock("ca_valid_sig_env.json", &with(other, "audit")).verified);
    // An override can relax one validation of a level.
    let relaxed = policy(
        "strict",
        serde_json::json!({"authenticity": "log"}),
        &[other],
        certs(TEST_ROOT),
        vec![],
    );
    assert!(mock("ca_valid_sig_env.json", &relaxed).verified);
}

#[test]
fn expiry_and_timestamp_are_enforced_by_strict_and_logged_by_permissive() {
    let req = strict(certs(TEST_ROOT), vec![]);
    let r = mock("ca_expired_sig_env.json", &req);
    assert_eq!(failed_at(&r), Some(Validation::Expiry), "{r:#?}");
    assert!(
        mock(
            "ca_expired_sig_env.json",
            &permissive(certs(TEST_ROOT), vec![])
        )
        .verified
    );
    // strict with expiry overridden to log passes too.
    let relaxed = policy(
        "strict",
        serde_json::json!({"expiry": "log"}),
        &["*"],
        certs(TEST_ROOT),
        vec![],
    );
    assert!(mock("ca_expired_sig_env.json", &relaxed).verified);
    // Self-signed certificate valid only 2023-01-11..12, no timestamp.
    let meta = strict(certs("derived/selfsigned-074394bc2532.pem"), vec![]);
    let r = run(
        "notation-go/internal/mock/testdata/sig_env_with_metadata.json",
        "sha256:5a07385af4e6b6af81b0ebfd435aedccdfa3507f0609c658209e1aba57159b2b",
        DOCKER_MANIFEST,
        942,
        &meta,
    );
    assert_eq!(
        failed_at(&r),
        Some(Validation::AuthenticTimestamp),
        "{r:#?}"
    );
    let r = run(
        "notation-go/internal/mock/testdata/sig_env_with_metadata.json",
        "sha256:5a07385af4e6b6af81b0ebfd435aedccdfa3507f0609c658209e1aba57159b2b",
        DOCKER_MANIFEST,
        942,
        &permissive(certs("derived/selfsigned-074394bc2532.pem"), vec![]),
    );
    assert!(r.verified, "{r:#?}");
}

#[test]
fn integrity_failures_are_enforced_at_every_level() {
    let req = permissive(certs(TEST_ROOT), vec![]);
    for (file, why) in [
        ("ca_invalid_sig_env.json", "signature"),
        ("ca_plugin_sig_env.json", "unknown critical header"),
        ("ca_compatible_pluginver_sig_env_1.0.0.json", "plugin"),
    ] {
        let r = mock(file, &req);
        assert!(!r.verified, "{file}");
        assert_eq!(failed_at(&r), Some(Validation::Integrity), "{file}");
        let Outcome::Failed(detail) = &r.steps[0].outcome else {
            panic!("{file}: {r:#?}")
        };
        assert!(detail.contains(why), "{file}: {detail}");
    }
    // A valid signature for another artifact.
    let r = run(
        "notation-go/internal/mock/testdata/ca_valid_sig_env.json",
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        DOCKER_MANIFEST,
        528,
        &req,
    );
    assert_eq!(failed_at(&r), Some(Validation::Integrity));
}

const TS_TARGET: &str = "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda";
const GLOBALSIGN_ROOT: &str =
    "notation-go/verifier/testdata/truststore/x509/tsa/test-timestamp/globalsignRoot.cer";

/// A policy with a `tsa` store holding GlobalSign's root.
fn with_tsa(level: &str, overrides: serde_json::Value, ca: Vec<Vec<u8>>) -> Requirements {
    let stores = ["ca:test", "tsa:test"];
    let tsa = certs(GLOBALSIGN_ROOT);
    requirements(level, overrides, &["*"], &stores, (ca, Vec::new(), tsa))
}

fn timestamped(file: &str, media_type: &str, req: &Requirements) -> Report {
    let bytes = std::fs::read(
        vectors()
            .join("notation-go/verifier/testdata/timestamp/sigEnv")
            .join(file),
    )
    .unwrap();
    let digest: Digest = TS_TARGET.parse().unwrap();
    verify(
        media_type,
        &bytes,
        &Expected {
            digest: &digest,
            media_type: DOCKER_MANIFEST,
            size: 528,
        },
        req,
        now(),
    )
}

fn step(r: &Report, v: Validation) -> &Outcome {
    &r.steps.iter().find(|s| s.validation == v).unwrap().outcome
}

#[test]
fn timestamps_make_signatures_outlive_their_certificates() {
    let jws = "application/jose+json";
    let cose = "application/cose";
    let expired_leaf = certs("derived/selfsigned-6381e2ac01a6.pem");
    // The leaf was valid for 10 minutes in 2024; the GlobalSign timestamp
    // proves the signature was made then. With the TSA chain's revocation
    // skipped, strict passes.
    let no_revocation = with_tsa(
        "strict",
        serde_json::json!({"revocation": "skip"}),
        expired_leaf.clone(),
    );
    for (file, mt) in [
        ("jwsExpiredWithTimestamp.sig", jws),
        ("coseExpiredWithTimestamp.sig", cose),
    ] {
        let r = timestamped(file, mt, &no_revocation);
        assert!(r.verified, "{file}: {r:#?}");
        assert!(
            matches!(step(&r, Validation::AuthenticTimestamp), Outcome::Passed(d) if d.contains("2024-06-18")),
            "{r:#?}"
        );
    }
    // Under plain strict, the TSA chain names OCSP/CRL services that are
    // not checked: reported as such, and the signature fails (as notation
    // fails offline); permissive only logs it.
    let strict_tsa = with_tsa("strict", serde_json::json!({}), expired_leaf.clone());
    let r = timestamped("jwsExpiredWithTimestamp.sig", jws, &strict_tsa);
    assert!(!r.verified);
    assert!(
        matches!(
            step(&r, Validation::AuthenticTimestamp),
            Outcome::NotChecked(_)
        ),
        "{r:#?}"
    );
    assert!(
        timestamped(
            "jwsExpiredWithTimestamp.sig",
            jws,
            &with_tsa("permissive", serde_json::json!({}), expired_leaf.clone())
        )
        .verified
    );
    // Without a tsa store the expired leaf fails strict.
    let r = timestamped(
        "jwsExpiredWithTimestamp.sig",
        jws,
        &strict(expired_leaf, vec![]),
    );
    assert!(
        matches!(step(&r, Validation::AuthenticTimestamp), Outcome::Failed(_)),
        "{r:#?}"
    );
    // A timestamp outside the leaf's validity fails, even with revocation skipped.
    for (file, mt, anchor) in [
        ("timestampAfterNotAfter.sig", cose, None),
        ("timestampBeforeNotBefore.sig", jws, Some("notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/TestTimestampNotYetValid.crt")),
    ] {
        let env = pavilion_notary::envelope::Envelope::parse(mt, &std::fs::read(vectors().join("notation-go/verifier/testdata/timestamp/sigEnv").join(file)).unwrap()).unwrap();
        let anchor = match anchor {
            Some(a) => certs(a),
            None => vec![env.cert_chain[0].clone()],
        };
        let r = timestamped(file, mt, &with_tsa("strict", serde_json::json!({"revocation": "skip"}), anchor));
        assert!(!r.verified, "{file}");
        assert!(matches!(step(&r, Validation::AuthenticTimestamp), Outcome::Failed(_)), "{file}: {r:#?}");
    }
    // No token while the policy requires one (verifyTimestamp: always).
    let plain = certs(
        "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/TestTimestamp.crt",
    );
    let r = timestamped(
        "withoutTimestamp.sig",
        jws,
        &with_tsa(
            "strict",
            serde_json::json!({"revocation": "skip"}),
            plain.clone(),
        ),
    );
    assert!(
        matches!(step(&r, Validation::AuthenticTimestamp), Outcome::Failed(d) if d.contains("none")),
        "{r:#?}"
    );
    // A current leaf with a good timestamp passes.
    let r = timestamped(
        "jwsWithTimestamp.sig",
        jws,
        &with_tsa("strict", serde_json::json!({"revocation": "skip"}), plain),
    );
    assert!(r.verified, "{r:#?}");
}

/// The rest of the README's stated outcomes, one line each.
#[test]
fn every_remaining_vector_outcome_matches_the_readme() {
    let root = certs(TEST_ROOT);
    // B: signing-authority expired: strict fails at expiry, permissive passes.
    let sa_strict = strict(vec![], root.clone());
    let r = mock("sa_expired_sig_env.json", &sa_strict);
    assert_eq!(failed_at(&r), Some(Validation::Expiry), "{r:#?}");
    assert!(mock("sa_expired_sig_env.json", &permissive(vec![], root.clone())).verified);
    // B: broken signatures and plugin requirements fail integrity.
    for file in ["sa_invalid_sig_env.json", "sa_plugin_sig_env.json"] {
        let r = mock(file, &permissive(vec![], root.clone()));
        assert_eq!(failed_at(&r), Some(Validation::Integrity), "{file}: {r:#?}");
    }
    let wabbit = certs(
        "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/wabbit-networks.io.crt",
    );
    for file in [
        "ca_compatible_pluginver_sig_env_1.0.0.json",
        "ca_incompatible_pluginver_sig_env_1.0.1.json",
    ] {
        let bytes = std::fs::read(
            vectors()
                .join("notation-go/internal/mock/testdata")
                .join(file),
        )
        .unwrap();
        let env =
            pavilion_notary::envelope::Envelope::parse("application/jose+json", &bytes).unwrap();
        let target = env.verify_integrity().unwrap().target_artifact;
        let r = verify(
            "application/jose+json",
            &bytes,
            &Expected {
                digest: &target.digest,
                media_type: &target.media_type,
                size: target.size,
            },
            &permissive(wabbit.clone(), vec![]),
            now(),
        );
        assert_eq!(failed_at(&r), Some(Validation::Integrity), "{file}");
        let why = format!("{:?}", r.steps[0].outcome);
        assert!(why.contains("plugin"), "{file}: {why}");
    }
    // A: the COSE twin of jws_signature.sig passes strict.
    let bytes =
        std::fs::read(vectors().join("notation-go/internal/testdata/cose_signature.sig")).unwrap();
    let digest: Digest = "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0"
        .parse()
        .unwrap();
    let r = verify(
        "application/cose",
        &bytes,
        &Expected {
            digest: &digest,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            size: 481,
        },
        &strict(certs("derived/selfsigned-9f5f5aecee24.pem"), vec![]),
        now(),
    );
    assert!(r.verified, "{r:#?}");
    // C: the COSE timestamped signature with a current leaf passes.
    let plain = certs(
        "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/TestTimestamp.crt",
    );
    let r = timestamped(
        "coseWithTimestamp.sig",
        "application/cose",
        &with_tsa("strict", serde_json::json!({"revocation": "skip"}), plain),
    );
    assert!(r.verified, "{r:#?}");
}
