//! Signatures made here with notation's own e2e test key (RSA, PS256),
//! in both envelope formats, verify under a strict policy trusting
//! notation's e2e certificate; a tampered envelope or a foreign key does not.

use pavilion_notary::certgen::pem_certificates;
use pavilion_notary::envelope::{Envelope, Format, TargetArtifact};
use pavilion_notary::policy::OciPolicies;
use pavilion_notary::signer::{sign, PrivateKey, SignRequest};
use pavilion_notary::verify::{verify, Expected, Requirements};
use std::path::PathBuf;

fn e2e(file: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/notary-vectors/notation/test/e2e/testdata/config/localkeys")
        .join(file);
    std::fs::read_to_string(p).unwrap()
}

fn strict(anchor: Vec<Vec<u8>>) -> Requirements {
    let doc = r#"{"version":"1.0","trustPolicies":[{"name":"e2e","registryScopes":["*"],
        "signatureVerification":{"level":"strict"},"trustStores":["ca:e2e"],"trustedIdentities":["x509.subject: C=US, ST=WA, O=Notary"]}]}"#;
    let policies = OciPolicies::from_json(doc.as_bytes()).unwrap();
    Requirements {
        policy: policies
            .select("localhost:5000/net-monitor")
            .unwrap()
            .clone(),
        ca: anchor,
        signing_authority: Vec::new(),
        tsa: Vec::new(),
    }
}

#[test]
fn rsa_signatures_in_both_formats_verify_and_tampering_is_caught() {
    let key = PrivateKey::from_pem(&e2e("e2e.key")).unwrap();
    let chain = pem_certificates(&e2e("e2e.crt")).unwrap();
    let digest: pavilion_oci::Digest =
        "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
            .parse()
            .unwrap();
    let target = TargetArtifact {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: digest.clone(),
        size: 517,
        artifact_type: None,
        annotations: None,
    };
    let now = time::OffsetDateTime::now_utc();
    let req = strict(chain.clone());
    for format in [Format::Jws, Format::Cose] {
        let env = sign(
            &SignRequest {
                target: target.clone(),
                format,
                expiry: Some(now + time::Duration::days(1)),
                signing_time: now,
                signing_agent: "pavilion-test",
            },
            &key,
            &chain,
        )
        .unwrap();
        let parsed = Envelope::parse(format.media_type(), &env).unwrap();
        assert_eq!(parsed.signed.alg.jws_name(), "PS256");
        assert_eq!(parsed.verify_integrity().unwrap().target_artifact, target);
        let expected = Expected {
            digest: &digest,
            media_type: &target.media_type,
            size: 517,
        };
        let report = verify(format.media_type(), &env, &expected, &req, now);
        assert!(report.verified, "{format:?}: {report:#?}");
        // One flipped byte anywhere in the signature breaks integrity.
        let mut bad = env.clone();
        let at = bad.len() - 20;
        bad[at] ^= 0x01;
        let report = verify(format.media_type(), &bad, &expected, &req, now);
        assert!(!report.verified, "{format:?}: a tampered envelope verified");
    }
    // A key that is not the certificate's is refused before signing.
    let other =
        PrivateKey::from_pem(&pavilion_notary::certgen::generate("x", 1).unwrap().key_pem).unwrap();
    let err = sign(
        &SignRequest {
            target,
            format: Format::Jws,
            expiry: None,
            signing_time: now,
            signing_agent: "pavilion-test",
        },
        &other,
        &chain,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("does not belong"), "{err}");
}
