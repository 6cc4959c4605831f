//! Trust policy documents from notation's own test suites.
//!
//! 1. Every trust policy JSON in testdata/notary-vectors (the documents
//!    notation's e2e suite verifies with) must load, and say what it says.
//! 2. The e2e suite's other policy documents (notation repository,
//!    test/e2e/testdata/config/trustpolicies/, read at the commits listed
//!    in E2E_DOCUMENTS; content reproduced compactly, same JSON values),
//!    each with the outcome notation's e2e tests expect (test/e2e/suite/
//!    trustpolicy/*.go): loads, or is refused for the reason notation
//!    gives. Documents notation only refuses at verification time (a
//!    missing store, a subject that does not match) are loaded here and
//!    the later step is checked instead.
//! 3. Loading from files: symbolic links, directories, missing files, the
//!    trustpolicy.oci.json / trustpolicy.json fallback, errors naming the
//!    file.

use pavilion_notary::trust_policy::{
    identity_trusted, load_blob, load_oci, oci_policy_path_in, Action, BlobPolicies, Level,
    OciPolicies, PolicyError, TrustedIdentity, Validation, VerificationLevel, VerifyTimestamp,
    LEGACY_OCI_POLICY_FILE, OCI_POLICY_FILE,
};
use pavilion_notary::truststore::{StoreRefError, StoreType, TrustStore, TrustStoreError};
use std::path::{Path, PathBuf};

fn vectors() -> PathBuf {
    pavilion_notary::test_vectors::dir()
}

fn e2e_policies() -> PathBuf {
    vectors().join("notation/test/e2e/testdata/config/trustpolicies")
}

/// Subject attributes of a certificate file (PEM, one certificate) as
/// (dotted OID, value): the OIDs exercise the type normalization, since
/// policies use short names.
fn subject_of(pem_path: &Path) -> Vec<(String, String)> {
    use base64::Engine as _;
    use der::Decode;
    let text =
        std::fs::read_to_string(pem_path).unwrap_or_else(|e| panic!("{}: {e}", pem_path.display()));
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let mut out = Vec::new();
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            out.push((
                atv.oid.to_string(),
                String::from_utf8(atv.value.value().to_vec()).unwrap(),
            ));
        }
    }
    out
}

fn e2e_subject() -> Vec<(String, String)> {
    subject_of(&vectors().join("notation/test/e2e/testdata/config/localkeys/e2e.crt"))
}

fn expired_e2e_subject() -> Vec<(String, String)> {
    subject_of(&vectors().join("notation/test/e2e/testdata/config/localkeys/expired_e2e.crt"))
}

fn actions(l: &VerificationLevel) -> [Action; 5] {
    Validation::ALL.map(|v| l.action(v))
}

use Action::{Enforce as E, Log as L};

#[test]
fn every_vector_policy_loads_and_says_what_it_says() {
    let mut seen = Vec::new();
    for dir in [
        e2e_policies(),
        vectors().join("notation/test/e2e/testdata/blob/trustpolicies"),
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for path in files {
            let file = path.file_name().unwrap().to_str().unwrap().to_string();
            if file.ends_with(".blob.json") {
                let p = load_blob(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(p.policies.len(), 3, "{file}");
                assert_eq!(p.select(None).unwrap().name, "test-blob-global-statement");
                let named = p.select(Some("test-blob-statement")).unwrap();
                assert!(!named.global);
                assert_eq!(actions(&named.verification), [E, E, E, E, E]);
                let ts = p.select(Some("test-blob-with-timestamping")).unwrap();
                assert!(ts.timestamp_verification_configured());
                assert_eq!(ts.verify_timestamp, VerifyTimestamp::Always);
                assert_eq!(
                    p.select(Some("test-blob")),
                    Err(PolicyError::NoPolicyNamed {
                        name: "test-blob".into()
                    })
                );
                seen.push(file);
                continue;
            }
            let p = load_oci(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(p.policies.len(), 1, "{file}");
            let pol = &p.policies[0];
            assert_eq!(pol.name, "e2e");
            assert!(pol.global, "{file}");
            assert_eq!(p.select("localhost:5000/e2e").unwrap().name, "e2e");
            assert_eq!(
                pol.stores_of(StoreType::Ca)
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
                ["e2e"]
            );
            match file.as_str() {
                "trustpolicy.json" => {
                    assert_eq!(actions(&pol.verification), [E, E, E, E, E]);
                    assert_eq!(pol.trusted_identities, [TrustedIdentity::Any]);
                    assert!(!pol.timestamp_verification_configured());
                }
                "override_strict_trustpolicy.json" => {
                    // The override_strict e2e tests: expiry, authentic
                    // timestamp and authenticity failures only logged.
                    assert_eq!(pol.verification.level, Level::Strict);
                    assert_eq!(actions(&pol.verification), [E, L, L, L, L]);
                    assert!(pol.verification.is_custom());
                }
                "timestamp_trustpolicy.json" => {
                    assert_eq!(pol.verify_timestamp, VerifyTimestamp::Always);
                    assert_eq!(
                        pol.stores_of(StoreType::Tsa)
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>(),
                        ["tsa:e2e"]
                    );
                    assert!(pol.timestamp_verification_configured());
                }
                "multiple_trusted_identity_trustpolicy.json" => {
                    assert_eq!(pol.trusted_identities.len(), 2);
                    // Signed with e2e.crt and with expired_e2e.crt's
                    // subject: both trusted (the e2e test verifies both).
                    assert!(identity_trusted(pol, &e2e_subject()));
                    assert!(identity_trusted(pol, &expired_e2e_subject()));
                    let mut other = e2e_subject();
                    other.retain(|(t, _)| t != "2.5.4.10");
                    assert!(!identity_trusted(pol, &other));
                }
                other => panic!("unclassified vector policy {other}: add what it must say"),
            }
            seen.push(file);
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "multiple_trusted_identity_trustpolicy.json",
            "override_strict_trustpolicy.json",
            "timestamp_trustpolicy.json",
            "trustpolicy.blob.json",
            "trustpolicy.json",
        ]
    );
}

/// What a document must do.
enum Expect {
    /// Loads.
    Valid,
    /// Refused; the check returns whether the error is the right one.
    Refused(fn(&PolicyError) -> bool),
}

/// notation's e2e trust policy documents: (file, notation commit read,
/// content); the expected outcome is [`expectation`].
const E2E_DOCUMENTS: &[(&str, &str, &str)] = &[
    ("audit_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"audit"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("empty_registry_scope_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":[],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("empty_trusted_identity_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":[""]}]}"#),
    ("generate_test_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"sKey","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:sKey"],"trustedIdentities":["*"]}]}"#),
    ("invalid_format_trustpolicy.json", "8f78b50d",
     "{\n\t\"version\": \"1.0\",\n\t\"trustPolicies\": [\n\t    {\n\t\t\"name\": \"e2e\",\n\t\t\"registryScopes\": [ \"*\" ]\n\t    }}\n\t]\n}"),
    ("invalid_registry_scope_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["localhost:5000/invalid-test-repo"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("invalid_trust_store_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:invalid_store"],"trustedIdentities":["*"]}]}"#),
    ("invalid_trusted_identity_trustpolicy.json", "6b302be3",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["x509.subject: CN=e2e,O=Notary,L=Seattle,ST=WA,C=USB"]}]}"#),
    ("malformed_registry_scope_trustpolicy.json", "16e47b40",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["localhost:5001\\test-repo"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("malformed_trust_store_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:"],"trustedIdentities":["*"]}]}"#),
    ("malformed_trusted_identity_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["x509.subject CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"]}]}"#),
    ("missing_country_trusted_identity_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["x509.subject: CN=e2e,O=Notary,L=Seattle,ST=WA"]}]}"#),
    ("missing_organization_trusted_identity_trustpolicy.json", "25818071",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["x509.subject: CN=e2e,L=Seattle,ST=WA,C=US"]}]}"#),
    ("missing_state_trusted_identity_trustpolicy.json", "8e3d62e9",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["x509.subject: CN=e2e,O=Notary,L=Seattle,C=US"]}]}"#),
    ("multi_statements_with_multi_wildcard_registry_scope_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]},{"name":"e2e2","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("multi_statements_with_the_same_name_trustpolicy.json", "16e47b40",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["localhost:5001/test-repo10"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]},{"name":"e2e","registryScopes":["localhost:5001/test-repo11"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("multi_statements_with_the_same_registry_scope_trustpolicy.json", "f0c34bbd",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["localhost:5001/test-repo8"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]},{"name":"e2e2","registryScopes":["localhost:5001/test-repo8"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("multi_statements_with_wildcard_registry_scope_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["localhost:5000/test-repo9"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]},{"name":"e2e2","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("multiple_registry_scope_trustpolicy.json", "16e47b40",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["localhost:5001/test-repo3","localhost:5001/test-repo2"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("multiple_trust_store_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e","ca:e2e-new"],"trustedIdentities":["*"]}]}"#),
    ("overlapped_registry_scope_trustpolicy.json", "16e47b40",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["localhost:5001/test-repo6","localhost:5001/test-repo6"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("overlapped_trust_store_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e","ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("override_audit_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"audit","override":{"revocation":"enforce","expiry":"enforce","authenticTimestamp":"enforce","authenticity":"enforce"}},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("override_integrity_for_permissive_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"permissive","override":{"integrity":"enforce","revocation":"enforce","expiry":"enforce","authenticTimestamp":"enforce","authenticity":"log"}},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("override_permissive_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"permissive","override":{"revocation":"enforce","expiry":"enforce","authenticTimestamp":"enforce","authenticity":"log"}},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("permissive_trustpolicy.json", "6b302be3",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"permissive"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("quickstart_trustpolicy.json", "1d55ef6a",
     r#"{"version":"1.0","trustPolicies":[{"name":"wabbit-networks-images","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:wabbit-networks.io"],"trustedIdentities":["*"]}]}"#),
    ("registry_scope_trustpolicy.json", "16e47b40",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["localhost:5001/test-repo"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("skip_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"skip"}}]}"#),
    ("timestamp_after_cert_expiry_trustpolicy.json", "a034721a",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict","verifyTimestamp":"afterCertExpiry"},"trustStores":["ca:e2e","tsa:e2e"],"trustedIdentities":["*"]}]}"#),
    ("timestamp_skip_revocation_trustpolicy.json", "7ef3850f",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict","verifyTimestamp":"always","skipTimestampRevocationCheck":true},"trustStores":["ca:e2e","tsa:e2e"],"trustedIdentities":["*"]}]}"#),
    ("unset_trust_store_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":[],"trustedIdentities":["*"]}]}"#),
    ("unset_trusted_identity_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":[]}]}"#),
    ("valid_trusted_identity_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["x509.subject: CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"]}]}"#),
    ("wildcard_plus_other_registry_scope_trustpolicy.json", "16e47b40",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*","localhost:5001/test-repo7"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*"]}]}"#),
    ("wildcard_plus_other_trusted_identity_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["*","x509.subject: CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"]}]}"#),
    ("wildcard_trust_store_trustpolicy.json", "d41e602e",
     r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["*"],"trustedIdentities":["*"]}]}"#),
];

fn expectation(file: &str) -> Expect {
    use PolicyError as P;
    fn why_contains(e: &PolicyError, needle: &str) -> bool {
        match e {
            P::InvalidTrustedIdentity { why, .. }
            | P::InvalidVerification { why, .. }
            | P::InvalidRegistryScope { why, .. } => why.contains(needle),
            _ => false,
        }
    }
    match file {
        "empty_registry_scope_trustpolicy.json" => Expect::Refused(|e| {
            *e == P::NoRegistryScopes {
                policy: "e2e".into(),
            }
        }),
        "empty_trusted_identity_trustpolicy.json" => Expect::Refused(|e| {
            matches!(e, P::InvalidTrustedIdentity { policy, identity, .. } if policy == "e2e" && identity.is_empty())
                && why_contains(e, "empty")
        }),
        "invalid_format_trustpolicy.json" => Expect::Refused(|e| matches!(e, P::Malformed { .. })),
        "malformed_registry_scope_trustpolicy.json" => Expect::Refused(
            |e| matches!(e, P::InvalidRegistryScope { policy, scope, .. } if policy == "e2e" && scope == "localhost:5001\\test-repo"),
        ),
        "malformed_trust_store_trustpolicy.json" => Expect::Refused(
            |e| matches!(e, P::InvalidTrustStore { policy, error: StoreRefError::InvalidName { name, .. } } if policy == "e2e" && name.is_empty()),
        ),
        "wildcard_trust_store_trustpolicy.json" => Expect::Refused(
            |e| matches!(e, P::InvalidTrustStore { error: StoreRefError::MissingSeparator { value }, .. } if value == "*"),
        ),
        "malformed_trusted_identity_trustpolicy.json" => Expect::Refused(|e| {
            matches!(e, P::InvalidTrustedIdentity { identity, .. } if identity.starts_with("x509.subject CN=e2e"))
                && why_contains(e, "missing separator")
        }),
        "missing_country_trusted_identity_trustpolicy.json" => {
            Expect::Refused(|e| why_contains(e, "mandatory attribute C is missing"))
        }
        "missing_organization_trusted_identity_trustpolicy.json" => {
            Expect::Refused(|e| why_contains(e, "mandatory attribute O is missing"))
        }
        "missing_state_trusted_identity_trustpolicy.json" => {
            Expect::Refused(|e| why_contains(e, "mandatory attribute ST is missing"))
        }
        "multi_statements_with_multi_wildcard_registry_scope_trustpolicy.json" => {
            Expect::Refused(|e| {
                *e == P::MultipleGlobalPolicies {
                    first: "e2e".into(),
                    second: "e2e2".into(),
                }
            })
        }
        "multi_statements_with_the_same_name_trustpolicy.json" => Expect::Refused(|e| {
            *e == P::DuplicateName {
                policy: "e2e".into(),
            }
        }),
        "multi_statements_with_the_same_registry_scope_trustpolicy.json" => Expect::Refused(|e| {
            *e == P::RepeatedRegistryScope {
                scope: "localhost:5001/test-repo8".into(),
                first: "e2e".into(),
                second: "e2e2".into(),
            }
        }),
        "overlapped_registry_scope_trustpolicy.json" => Expect::Refused(|e| {
            *e == P::RepeatedRegistryScope {
                scope: "localhost:5001/test-repo6".into(),
                first: "e2e".into(),
                second: "e2e".into(),
            }
        }),
        "override_integrity_for_permissive_trustpolicy.json" => {
            Expect::Refused(|e| why_contains(e, "integrity cannot be overridden"))
        }
        // Divergence from notation, on purpose: notation's e2e suite uses
        // this document to skip verification everywhere; the specification
        // says skip cannot be used with the global scope.
        "skip_trustpolicy.json" => Expect::Refused(|e| {
            *e == P::GlobalSkip {
                policy: "e2e".into(),
            }
        }),
        "unset_trust_store_trustpolicy.json" => Expect::Refused(|e| {
            *e == P::MissingTrust {
                policy: "e2e".into(),
                missing: "trust stores",
            }
        }),
        "unset_trusted_identity_trustpolicy.json" => Expect::Refused(|e| {
            *e == P::MissingTrust {
                policy: "e2e".into(),
                missing: "trusted identities",
            }
        }),
        "wildcard_plus_other_registry_scope_trustpolicy.json" => Expect::Refused(|e| {
            *e == P::WildcardScopeNotAlone {
                policy: "e2e".into(),
            }
        }),
        "wildcard_plus_other_trusted_identity_trustpolicy.json" => Expect::Refused(|e| {
            *e == P::WildcardIdentityNotAlone {
                policy: "e2e".into(),
            }
        }),
        _ => Expect::Valid,
    }
}

#[test]
fn notation_e2e_documents_load_or_are_refused_for_notations_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut valid, mut refused) = (0, 0);
    for (file, _commit, json) in E2E_DOCUMENTS {
        // Through a file, as notation reads them.
        let path = tmp.path().join(file);
        std::fs::write(&path, json).unwrap();
        let got = load_oci(&path);
        match expectation(file) {
            Expect::Valid => {
                let p = got.unwrap_or_else(|e| panic!("{file}: refused: {e}"));
                check_valid(file, &p);
                valid += 1;
            }
            Expect::Refused(right) => {
                let e = got.err().unwrap_or_else(|| panic!("{file}: accepted"));
                assert!(right(e.cause()), "{file}: wrong reason: {e}");
                // One line, naming the file (or for JSON errors, the file
                // as origin) and, for statement errors, the statement.
                let msg = e.to_string();
                assert!(!msg.contains('\n'), "{file}: {msg}");
                assert!(msg.contains(file), "{file}: {msg}");
                if !matches!(e.cause(), PolicyError::Malformed { .. }) {
                    assert!(msg.contains("\"e2e\""), "{file}: {msg}");
                }
                refused += 1;
            }
        }
    }
    assert_eq!((valid, refused), (17, 20));
}

/// What the e2e suite does with the documents notation accepts.
fn check_valid(file: &str, p: &OciPolicies) {
    let e2e = &p.policies[0];
    match file {
        "audit_trustpolicy.json" => assert_eq!(actions(&e2e.verification), [E, L, L, L, L]),
        "permissive_trustpolicy.json" => assert_eq!(actions(&e2e.verification), [E, E, L, L, L]),
        "override_audit_trustpolicy.json" => {
            assert_eq!(e2e.verification.level, Level::Audit);
            assert_eq!(actions(&e2e.verification), [E, E, E, E, E]);
        }
        "override_permissive_trustpolicy.json" => {
            assert_eq!(actions(&e2e.verification), [E, L, E, E, E]);
        }
        "invalid_registry_scope_trustpolicy.json" => {
            // notation: "has no applicable trust policy" for test-repo.
            assert_eq!(
                p.select("localhost:5000/test-repo"),
                Err(PolicyError::NoApplicablePolicy {
                    reference: "localhost:5000/test-repo".into()
                })
            );
            assert_eq!(
                p.select("localhost:5000/invalid-test-repo").unwrap().name,
                "e2e"
            );
        }
        "invalid_trust_store_trustpolicy.json" => {
            // notation: authenticity fails, ".../truststore/x509/ca/invalid_store" does not exist.
            let tmp = tempfile::tempdir().unwrap();
            let store = TrustStore::new(tmp.path());
            let r = e2e.stores_of(StoreType::Ca).next().unwrap();
            match store.certificates(r) {
                Err(TrustStoreError::Missing { path, .. }) => {
                    assert!(path.ends_with("x509/ca/invalid_store"))
                }
                other => panic!("{other:?}"),
            }
        }
        "invalid_trusted_identity_trustpolicy.json" => {
            // notation: the signing certificate does not match.
            assert!(!identity_trusted(e2e, &e2e_subject()));
        }
        "valid_trusted_identity_trustpolicy.json" => {
            assert!(identity_trusted(e2e, &e2e_subject()));
            assert!(!identity_trusted(e2e, &expired_e2e_subject()));
        }
        "multi_statements_with_wildcard_registry_scope_trustpolicy.json" => {
            assert_eq!(p.select("localhost:5000/test-repo9").unwrap().name, "e2e");
            assert_eq!(p.select("localhost:5000/test-repo").unwrap().name, "e2e2");
        }
        "multiple_registry_scope_trustpolicy.json" => {
            assert_eq!(p.select("localhost:5001/test-repo2").unwrap().name, "e2e");
            assert_eq!(p.select("localhost:5001/test-repo3").unwrap().name, "e2e");
            assert!(p.select("localhost:5001/test-repo4").is_err());
        }
        "registry_scope_trustpolicy.json" => {
            assert_eq!(p.select("localhost:5001/test-repo").unwrap().name, "e2e");
            assert!(p.select("localhost:5001/test-repo2").is_err());
        }
        "multiple_trust_store_trustpolicy.json" => {
            let names: Vec<String> = e2e.trust_stores.iter().map(|s| s.to_string()).collect();
            assert_eq!(names, ["ca:e2e", "ca:e2e-new"]);
        }
        "overlapped_trust_store_trustpolicy.json" => {
            // Accepted, as notation does: both name the same store.
            assert_eq!(e2e.trust_stores.len(), 2);
            assert_eq!(e2e.trust_stores[0], e2e.trust_stores[1]);
        }
        "timestamp_after_cert_expiry_trustpolicy.json" => {
            assert_eq!(e2e.verify_timestamp, VerifyTimestamp::AfterCertExpiry);
            assert!(e2e.timestamp_verification_configured());
        }
        "timestamp_skip_revocation_trustpolicy.json" => {
            // The unknown member is ignored; nothing is relaxed.
            assert_eq!(actions(&e2e.verification), [E, E, E, E, E]);
            assert!(e2e.timestamp_verification_configured());
        }
        "quickstart_trustpolicy.json" => {
            assert_eq!(e2e.trust_stores[0].to_string(), "ca:wabbit-networks.io");
        }
        "generate_test_trustpolicy.json" => assert_eq!(e2e.name, "sKey"),
        other => panic!("{other}: no check"),
    }
}

#[test]
fn e2e_blob_policy_with_skip_statement_loads() {
    // notation test/e2e/testdata/config/trustpolicies/blob_trust_policy.json
    // (8fcee643): a named skip statement is fine; only a global one is not.
    let json = r#"{"version":"1.0","trustPolicies":[
        {"name":"wabbit-networks-policy","signatureVerification":{"level":"strict"},"trustStores":["ca:wabbit-networks"],"trustedIdentities":["x509.subject: C=US, ST=WA, L=Seattle, O=wabbit-networks.io, OU=Security Tools"]},
        {"name":"skip-verification-policy","signatureVerification":{"level":"skip"}},
        {"name":"global-verification-policy","globalPolicy":true,"signatureVerification":{"level":"audit"},"trustStores":["ca:acme-rockets"],"trustedIdentities":["*"]}]}"#;
    let p = BlobPolicies::from_json(json.as_bytes()).unwrap();
    assert!(p
        .select(Some("skip-verification-policy"))
        .unwrap()
        .is_skip());
    assert_eq!(p.select(None).unwrap().name, "global-verification-policy");
    let w = p.select(Some("wabbit-networks-policy")).unwrap();
    let subject = |ou: &str| {
        vec![
            ("C".to_string(), "US".to_string()),
            ("ST".to_string(), "WA".to_string()),
            ("L".to_string(), "Seattle".to_string()),
            ("O".to_string(), "wabbit-networks.io".to_string()),
            ("OU".to_string(), ou.to_string()),
            ("CN".to_string(), "builder".to_string()),
        ]
    };
    assert!(identity_trusted(w, &subject("Security Tools")));
    assert!(!identity_trusted(w, &subject("Finance")));

    // The same document with the skip statement global is refused.
    let global_skip = json.replace(r#""globalPolicy":true,"#, "").replace(
        r#"{"name":"skip-verification-policy","#,
        r#"{"name":"skip-verification-policy","globalPolicy":true,"#,
    );
    assert_eq!(
        BlobPolicies::from_json(global_skip.as_bytes()),
        Err(PolicyError::GlobalSkip {
            policy: "skip-verification-policy".into()
        })
    );
}

#[test]
fn specification_examples_load() {
    // The OCI example with four statements (trust-store-trust-policy.md).
    let oci = r#"{"version":"1.0","trustPolicies":[
        {"name":"wabbit-networks-images","registryScopes":["registry.acme-rockets.io/software/net-monitor","registry.acme-rockets.io/software/net-logger"],
         "signatureVerification":{"level":"strict"},"trustStores":["ca:wabbit-networks"],
         "trustedIdentities":["x509.subject: C=US, ST=WA, L=Seattle, O=wabbit-networks.io, OU=Security Tools"]},
        {"name":"unsigned-image","registryScopes":["registry.wabbit-networks.io/software/unsigned/net-utils"],"signatureVerification":{"level":"skip"}},
        {"name":"use-expired-image","registryScopes":["registry.acme-rockets.io/software/legacy/metrics"],
         "signatureVerification":{"level":"strict","override":{"expiry":"log","revocation":"skip"}},"trustStores":["ca:acme-rockets"],"trustedIdentities":["*"]},
        {"name":"global-policy-for-all-other-images","registryScopes":["*"],"signatureVerification":{"level":"audit"},
         "trustStores":["ca:acme-rockets","ca:acme-rockets-ca2"],
         "trustedIdentities":["x509.subject: C=US, ST=WA, L=Seattle, O=acme-rockets.io, OU=Finance, CN=SecureBuilder"]}]}"#;
    let p = OciPolicies::from_json(oci.as_bytes()).unwrap();
    let legacy = p
        .select("registry.acme-rockets.io/software/legacy/metrics")
        .unwrap();
    assert_eq!(actions(&legacy.verification), [E, E, E, L, Action::Skip]);
    assert!(p
        .select("registry.wabbit-networks.io/software/unsigned/net-utils")
        .unwrap()
        .is_skip());
    assert_eq!(
        p.select("docker.io/library/alpine").unwrap().name,
        "global-policy-for-all-other-images"
    );
    // The validated form keeps the document for writing back.
    let round: OciPolicies =
        OciPolicies::from_json(serde_json::to_vec(&p.document).unwrap().as_slice()).unwrap();
    assert_eq!(round, p);

    // The blob example.
    let blob = r#"{"version":"1.0","trustPolicies":[
        {"name":"wabbit-networks-blobs","signatureVerification":{"level":"strict"},"trustStores":["ca:wabbit-networks"],
         "trustedIdentities":["x509.subject: C=US, ST=WA, L=Seattle, O=wabbit-networks.io, OU=Security Tools"]},
        {"name":"use-expired-blobs","signatureVerification":{"level":"strict","override":{"expiry":"log","revocation":"skip"}},"trustStores":["ca:acme-rockets"],"trustedIdentities":["*"]},
        {"name":"global-policy-for-all-blobs","signatureVerification":{"level":"audit"},"globalPolicy":true,
         "trustStores":["ca:acme-rockets","ca:acme-rockets-ca2"],
         "trustedIdentities":["x509.subject: C=US, ST=WA, L=Seattle, O=acme-rockets.io, OU=Finance, CN=SecureBuilder"]}]}"#;
    let b = BlobPolicies::from_json(blob.as_bytes()).unwrap();
    assert_eq!(b.select(None).unwrap().name, "global-policy-for-all-blobs");
    let round =
        BlobPolicies::from_json(serde_json::to_vec(&b.document).unwrap().as_slice()).unwrap();
    assert_eq!(round, b);
}

/// A minimal valid OCI document with one statement, edited by `f`.
fn doc_with(f: impl FnOnce(&mut serde_json::Value)) -> Result<OciPolicies, PolicyError> {
    let mut v = serde_json::json!({
        "version": "1.0",
        "trustPolicies": [{
            "name": "p",
            "registryScopes": ["r.io/a"],
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:s"],
            "trustedIdentities": ["*"]
        }]
    });
    f(&mut v);
    OciPolicies::from_json(v.to_string().as_bytes())
}

#[test]
fn document_rules() {
    use serde_json::json;
    use PolicyError as P;
    assert!(doc_with(|_| {}).is_ok());
    assert_eq!(
        doc_with(|v| v["version"] = json!("")),
        Err(P::MissingVersion)
    );
    assert_eq!(
        doc_with(|v| {
            v.as_object_mut().unwrap().remove("version");
        }),
        Err(P::MissingVersion)
    );
    assert_eq!(
        doc_with(|v| v["version"] = json!("2.0")),
        Err(P::UnsupportedVersion {
            version: "2.0".into()
        })
    );
    assert_eq!(
        doc_with(|v| v["trustPolicies"] = json!([])),
        Err(P::NoStatements)
    );
    assert_eq!(
        doc_with(|v| v["trustPolicies"] = json!(null)),
        Err(P::NoStatements)
    );
    assert_eq!(
        doc_with(|v| v["trustPolicies"][0]["name"] = json!("")),
        Err(P::MissingName { index: 1 })
    );
    assert_eq!(
        doc_with(|v| v["trustPolicies"][0]["name"] = json!("  ")),
        Err(P::MissingName { index: 1 })
    );
    assert!(matches!(
        doc_with(|v| v["trustPolicies"][0]["name"] = json!(7)),
        Err(P::Malformed { .. })
    ));
    assert!(matches!(
        doc_with(|v| *v = json!("x")),
        Err(P::Malformed { .. })
    ));

    // Levels, overrides, verifyTimestamp.
    let sv = |v: &mut serde_json::Value, s: serde_json::Value| {
        v["trustPolicies"][0]["signatureVerification"] = s
    };
    for (s, needle) in [
        (json!({}), "level is missing"),
        (json!({"level": "lenient"}), "unknown verification level"),
        (
            json!({"level": "strict", "override": {"integrity": "log"}}),
            "integrity cannot",
        ),
        (
            json!({"level": "strict", "override": {"expiry": "skip"}}),
            "cannot set expiry to skip",
        ),
        (
            json!({"level": "strict", "verifyTimestamp": "sometimes"}),
            "verifyTimestamp",
        ),
    ] {
        match doc_with(|v| sv(v, s.clone())) {
            Err(P::InvalidVerification { policy, why }) => {
                assert_eq!(policy, "p");
                assert!(why.contains(needle), "{s}: {why}");
            }
            other => panic!("{s}: {other:?}"),
        }
    }
    assert!(matches!(
        doc_with(|v| {
            v["trustPolicies"][0]["signatureVerification"] =
                json!({"level": "skip", "override": {"revocation": "skip"}});
            v["trustPolicies"][0]["trustStores"] = json!([]);
            v["trustPolicies"][0]["trustedIdentities"] = json!([]);
        }),
        Err(P::InvalidVerification { .. })
    ));
    let p = doc_with(|v| {
        sv(
            v,
            json!({"level": "permissive", "verifyTimestamp": "afterCertExpiry"}),
        )
    })
    .unwrap();
    assert_eq!(
        p.policies[0].verify_timestamp,
        VerifyTimestamp::AfterCertExpiry
    );

    // skip: no trust material; null members read as absent.
    let skip = |stores: serde_json::Value, ids: serde_json::Value| {
        doc_with(|v| {
            sv(v, json!({"level": "skip"}));
            v["trustPolicies"][0]["trustStores"] = stores;
            v["trustPolicies"][0]["trustedIdentities"] = ids;
        })
    };
    let ok = skip(json!(null), json!(null)).unwrap();
    assert!(ok.policies[0].is_skip());
    assert!(ok.policies[0].trust_stores.is_empty());
    assert!(!identity_trusted(&ok.policies[0], &e2e_subject()));
    assert!(skip(json!([]), json!([])).is_ok());
    assert_eq!(
        skip(json!(["ca:s"]), json!([])),
        Err(P::SkipWithTrust { policy: "p".into() })
    );
    assert_eq!(
        skip(json!([]), json!(["*"])),
        Err(P::SkipWithTrust { policy: "p".into() })
    );
    assert_eq!(
        doc_with(|v| {
            v["trustPolicies"][0]["trustStores"] = json!([]);
            v["trustPolicies"][0]["trustedIdentities"] = json!([]);
        }),
        Err(P::MissingTrust {
            policy: "p".into(),
            missing: "trust stores and no trusted identities"
        })
    );

    // Trust stores.
    for (store, want) in [
        ("tsa:t", true),
        ("signingAuthority:sa", true),
        ("ca:a.b_c-d", true),
        ("CA:s", false),
        ("ca:../s", false),
        ("x509:s", false),
        ("ca", false),
    ] {
        let r = doc_with(|v| v["trustPolicies"][0]["trustStores"] = json!(["ca:s", store]));
        assert_eq!(r.is_ok(), want, "{store}: {r:?}");
        if !want {
            assert!(matches!(r, Err(P::InvalidTrustStore { .. })), "{store}");
        }
    }

    // Trusted identities: overlap per the specification's definition.
    let ids =
        |list: serde_json::Value| doc_with(|v| v["trustPolicies"][0]["trustedIdentities"] = list);
    assert!(ids(json!([
        "x509.subject: C=US, ST=WA, O=wabbit-network.io, OU=org1",
        "x509.subject: C=US, ST=WA, O=wabbit-network.io, OU=org2"
    ]))
    .is_ok());
    for list in [
        json!([
            "x509.subject: C=US, ST=WA, O=wabbit-network.io, OU=org1",
            "x509.subject:  C=US, ST=WA, O=wabbit-network.io"
        ]),
        json!([
            "x509.subject: C=US,ST=WA,O=x",
            "x509.subject: O=x,S=WA,C=US"
        ]),
        json!([
            "x509.subject: C=US,ST=WA,O=x,OU=a",
            "x509.subject: C=US,ST=WA,O=x,CN=b"
        ]),
    ] {
        match ids(list.clone()) {
            Err(P::OverlappingIdentities {
                policy,
                first,
                second,
            }) => {
                assert_eq!(policy, "p");
                assert_eq!(json!([first, second]), list);
            }
            other => panic!("{list}: {other:?}"),
        }
    }
    assert!(matches!(
        ids(json!(["unknown:my-trusted-identity"])),
        Err(P::InvalidTrustedIdentity { .. })
    ));
    assert!(matches!(
        ids(json!(["x509.subject:C=US+ST=WA,O=MyOrg"])),
        Err(P::InvalidTrustedIdentity { why, .. }) if why.contains("multi-valued")
    ));
    // "=#" inside a value is an ordinary '=' then '#' (notation refuses
    // any "=#" substring; only a #-encoded value is refused here).
    assert!(ids(json!(["x509.subject:C=US,ST=WA,O=x=#04"])).is_ok());
    assert!(matches!(
        ids(json!(["x509.subject:C=US,ST=WA,O=#04"])),
        Err(P::InvalidTrustedIdentity { why, .. }) if why.contains("#-encoded")
    ));

    // Scopes and globals across statements.
    let two = |a: serde_json::Value, b: serde_json::Value| {
        doc_with(|v| {
            let mut second = v["trustPolicies"][0].clone();
            second["name"] = json!("q");
            second["registryScopes"] = b;
            v["trustPolicies"][0]["registryScopes"] = a;
            v["trustPolicies"].as_array_mut().unwrap().push(second);
        })
    };
    assert!(two(json!(["r.io/a"]), json!(["r.io/b", "r.io/c"])).is_ok());
    assert!(two(json!(["*"]), json!(["r.io/b"])).is_ok());
    assert_eq!(
        two(json!(["r.io/a", "r.io/x"]), json!(["r.io/x"])),
        Err(P::RepeatedRegistryScope {
            scope: "r.io/x".into(),
            first: "p".into(),
            second: "q".into()
        })
    );
    assert_eq!(
        two(json!(["*"]), json!(["*"])),
        Err(P::MultipleGlobalPolicies {
            first: "p".into(),
            second: "q".into()
        })
    );
    assert!(matches!(
        two(json!(["r.io/a"]), json!(["r.io/*"])),
        Err(P::InvalidRegistryScope { policy, .. }) if policy == "q"
    ));
    assert_eq!(
        doc_with(|v| v["trustPolicies"][0]["registryScopes"] = json!(null)),
        Err(P::NoRegistryScopes { policy: "p".into() })
    );
}

#[test]
fn blob_document_rules() {
    use serde_json::json;
    let blob = |statements: serde_json::Value| {
        BlobPolicies::from_json(
            json!({"version": "1.0", "trustPolicies": statements})
                .to_string()
                .as_bytes(),
        )
    };
    let st = |name: &str, global: bool| {
        json!({"name": name, "globalPolicy": global, "signatureVerification": {"level": "strict"},
               "trustStores": ["ca:s"], "trustedIdentities": ["*"]})
    };
    let ok = blob(json!([st("a", false), st("b", true)])).unwrap();
    assert_eq!(ok.select(None).unwrap().name, "b");
    assert_eq!(ok.select(Some("a")).unwrap().name, "a");
    // A name never falls back to the global statement.
    assert!(matches!(
        ok.select(Some("c")),
        Err(PolicyError::NoPolicyNamed { .. })
    ));
    assert!(ok.policies.iter().all(|p| p.registry_scopes.is_empty()));

    let none = blob(json!([st("a", false)])).unwrap();
    assert_eq!(none.select(None), Err(PolicyError::NoGlobalPolicy));
    assert_eq!(
        blob(json!([st("a", true), st("b", true)])),
        Err(PolicyError::MultipleGlobalPolicies {
            first: "a".into(),
            second: "b".into()
        })
    );
    assert_eq!(
        blob(json!([st("a", false), st("a", true)])),
        Err(PolicyError::DuplicateName { policy: "a".into() })
    );
    // registryScopes mean nothing in a blob document and are ignored.
    let mut with_scopes = st("a", false);
    with_scopes["registryScopes"] = json!(["*"]);
    assert!(blob(json!([with_scopes])).is_ok());
}

#[test]
fn policy_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let body = std::fs::read(e2e_policies().join("trustpolicy.json")).unwrap();

    // Missing file.
    let missing = dir.join("nope.json");
    assert!(matches!(load_oci(&missing), Err(PolicyError::Read { path, .. }) if path == missing));
    // A directory.
    assert!(matches!(
        load_oci(dir),
        Err(PolicyError::NotRegularFile { .. })
    ));

    // Default path: trustpolicy.oci.json first, else trustpolicy.json,
    // else the trustpolicy.oci.json path.
    assert_eq!(oci_policy_path_in(dir), dir.join(OCI_POLICY_FILE));
    std::fs::write(dir.join(LEGACY_OCI_POLICY_FILE), &body).unwrap();
    assert_eq!(oci_policy_path_in(dir), dir.join(LEGACY_OCI_POLICY_FILE));
    assert!(load_oci(oci_policy_path_in(dir)).is_ok());
    std::fs::write(dir.join(OCI_POLICY_FILE), b"{}").unwrap();
    assert_eq!(oci_policy_path_in(dir), dir.join(OCI_POLICY_FILE));
    // The current file is used even when broken: no silent fallback.
    match load_oci(oci_policy_path_in(dir)) {
        Err(e @ PolicyError::InFile { .. }) => {
            assert_eq!(*e.cause(), PolicyError::MissingVersion);
            assert!(e.to_string().contains(OCI_POLICY_FILE), "{e}");
        }
        other => panic!("{other:?}"),
    }

    // Symbolic links are refused.
    #[cfg(unix)]
    {
        let link = dir.join("link.json");
        std::os::unix::fs::symlink(dir.join(LEGACY_OCI_POLICY_FILE), &link).unwrap();
        assert_eq!(
            load_oci(&link),
            Err(PolicyError::NotRegularFile { path: link.clone() })
        );
        let sub = dir.join("cfg");
        std::fs::create_dir(&sub).unwrap();
        std::os::unix::fs::symlink(dir.join(LEGACY_OCI_POLICY_FILE), sub.join(OCI_POLICY_FILE))
            .unwrap();
        std::fs::write(sub.join(LEGACY_OCI_POLICY_FILE), &body).unwrap();
        // A linked trustpolicy.oci.json is not skipped in favour of the
        // legacy file: it is chosen, and refused.
        assert_eq!(oci_policy_path_in(&sub), sub.join(OCI_POLICY_FILE));
        assert!(matches!(
            load_oci(oci_policy_path_in(&sub)),
            Err(PolicyError::NotRegularFile { .. })
        ));
    }

    // Malformed JSON names the file.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, b"{\"version\": ").unwrap();
    match load_blob(&bad) {
        Err(PolicyError::Malformed { origin, .. }) => assert!(origin.ends_with("bad.json")),
        other => panic!("{other:?}"),
    }
}
