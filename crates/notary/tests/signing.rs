//! Signatures made here with notation's own e2e test key (RSA, PS256),
//! in both envelope formats, verify under a strict policy trusting
//! notation's e2e certificate; a tampered envelope or a foreign key does not.

use pavilion_notary::certgen::pem_certificates;
use pavilion_notary::envelope::{Envelope, Format, TargetArtifact};
use pavilion_notary::signer::{sign, PrivateKey, SignRequest};
use pavilion_notary::trust_policy::OciPolicies;
use pavilion_notary::verify::{verify, Expected, Requirements};

fn e2e(file: &str) -> String {
    let p = pavilion_notary::test_vectors::dir()
        .join("notation/test/e2e/testdata/config/localkeys")
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

#[test]
fn weak_keys_and_broken_chains_are_refused() {
    let now = time::OffsetDateTime::now_utc();
    let target = TargetArtifact {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: pavilion_oci::Digest::sha256(b"x"),
        size: 1,
        artifact_type: None,
        annotations: None,
    };
    let req = |format| SignRequest {
        target: target.clone(),
        format,
        expiry: None,
        signing_time: now,
        signing_agent: "t",
    };
    // RSA 1024 is below the spec's minimum: no algorithm goes with it.
    use rsa::pkcs8::EncodePrivateKey;
    let weak = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let pem = weak.to_pkcs8_pem(Default::default()).unwrap().to_string();
    let key = PrivateKey::from_pem(&pem).unwrap();
    let chain = pem_certificates(&e2e("e2e.crt")).unwrap();
    let err = sign(&req(Format::Jws), &key, &chain).err().unwrap();
    assert!(err.to_string().contains("RSA 1024"), "{err}");
    assert!(key.sign(b"m").is_err(), "a 1024-bit key signs nothing");

    // A chain in the wrong order, or without its root, is refused.
    let pki = pavilion_notary::certgen::generate("c", 1).unwrap();
    let key = PrivateKey::from_pem(&pki.key_pem).unwrap();
    let chain = pem_certificates(&pki.chain_pem).unwrap();
    let reversed = vec![chain[1].clone(), chain[0].clone()];
    assert!(sign(&req(Format::Jws), &key, &reversed).is_err());
    assert!(sign(&req(Format::Cose), &key, &chain[..1]).is_err());
    // An envelope carrying only the leaf fails authenticity when verified,
    // even though its signature is good.
    let signed = pavilion_notary::envelope::SignedAttributes {
        alg: pavilion_notary::crypto::Alg::Es256,
        content_type: pavilion_notary::envelope::PAYLOAD_CONTENT_TYPE.into(),
        signing_scheme: pavilion_notary::envelope::SigningScheme::X509,
        signing_time: Some(now),
        authentic_signing_time: None,
        expiry: None,
        critical: vec!["io.cncf.notary.signingScheme".into()],
        verification_plugin: None,
        verification_plugin_min_version: None,
        extended: Default::default(),
    };
    let payload = serde_json::to_vec(&serde_json::json!({ "targetArtifact": target })).unwrap();
    let env =
        pavilion_notary::jws::build(&signed, &payload, &chain[..1], None, |m| key.sign(m)).unwrap();
    let parsed = Envelope::parse("application/jose+json", &env).unwrap();
    assert!(parsed.verify_integrity().is_ok());
    let report = verify(
        "application/jose+json",
        &env,
        &Expected {
            digest: &target.digest,
            media_type: &target.media_type,
            size: 1,
        },
        &strict(chain.clone()),
        now,
    );
    assert!(!report.verified);
    let why = format!("{:?}", report.steps[1].outcome);
    assert!(why.contains("self-signed root"), "{why}");
}

/// Pavilion's envelopes carry exactly the fields notation's do (compared
/// as parsed fields, per the spec's field list, not bytes).
#[test]
fn envelopes_have_the_fields_notation_writes() {
    let layouts = pavilion_notary::test_vectors::dir()
        .join("notation/test/e2e/testdata/registry/oci_layout/e2e-valid-signature/blobs/sha256");
    let notation_jws: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layouts.join("c9af07e038b2b1a463e648986ad7273157511ffeba0b689f33e5472bae471f50"),
        )
        .unwrap(),
    )
    .unwrap();
    let key = PrivateKey::from_pem(&e2e("e2e.key")).unwrap();
    let chain = pem_certificates(&e2e("e2e.crt")).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let env = sign(
        &SignRequest {
            target: TargetArtifact {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
                    .parse()
                    .unwrap(),
                size: 517,
                artifact_type: None,
                annotations: None,
            },
            format: Format::Jws,
            expiry: None,
            signing_time: now,
            signing_agent: "pavilion/test",
        },
        &key,
        &chain,
    )
    .unwrap();
    let ours: serde_json::Value = serde_json::from_slice(&env).unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&ours), keys(&notation_jws), "top-level members");
    assert_eq!(
        keys(&ours["header"]),
        keys(&notation_jws["header"]),
        "unprotected header"
    );
    use base64::Engine as _;
    let protected = |v: &serde_json::Value| -> serde_json::Value {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v["protected"].as_str().unwrap())
            .unwrap();
        serde_json::from_slice(&b).unwrap()
    };
    let (p_ours, p_theirs) = (protected(&ours), protected(&notation_jws));
    assert_eq!(keys(&p_ours), keys(&p_theirs), "protected header");
    for k in ["alg", "cty", "crit", "io.cncf.notary.signingScheme"] {
        assert_eq!(p_ours[k], p_theirs[k], "{k}");
    }
    let ours_env = Envelope::parse("application/jose+json", &env).unwrap();
    let theirs_env = Envelope::parse(
        "application/jose+json",
        &std::fs::read(
            layouts.join("c9af07e038b2b1a463e648986ad7273157511ffeba0b689f33e5472bae471f50"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        ours_env.verify_integrity().unwrap(),
        theirs_env.verify_integrity().unwrap(),
        "the same payload for the same artifact"
    );
    assert_eq!(ours_env.cert_chain, theirs_env.cert_chain);
}
