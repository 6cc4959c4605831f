//! Every signature envelope in the Notary Project's own test suites
//! (testdata/notary-vectors, listed with their decoded facts in
//! derived/envelopes-summary.json): each must decode to exactly the facts
//! recorded there, verify (except the ones made with a broken signature),
//! and carry a chain that passes the certificate rules.

use pavilion_notary::envelope::{Envelope, EnvelopeError, Format};
use pavilion_notary::x509::{validate_chain, Purpose};
use std::path::PathBuf;

fn vectors() -> PathBuf {
    pavilion_notary::test_vectors::dir()
}

fn summary() -> Vec<serde_json::Value> {
    let p = vectors().join("derived/envelopes-summary.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// Envelopes made with a deliberately wrong signature.
fn invalid_signature(file: &str) -> bool {
    file.contains("_invalid_sig_env")
}

/// Envelopes whose `crit` names a header no verifier without that plugin
/// knows ("SomeKey").
fn unknown_critical(file: &str) -> bool {
    file.ends_with("ca_plugin_sig_env.json") || file.ends_with("sa_plugin_sig_env.json")
}

#[test]
fn every_vector_decodes_to_its_recorded_facts_and_verifies() {
    let mut checked = 0;
    for v in summary() {
        let file = v["file"].as_str().unwrap();
        if v.get("note").is_some() {
            continue; // structure-only vectors without certificates
        }
        let bytes = std::fs::read(vectors().join(file)).unwrap();
        let media_type = match v["fmt"].as_str().unwrap() {
            "JWS" => "application/jose+json",
            _ => "application/cose",
        };
        let env = Envelope::parse(media_type, &bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            env.format,
            if media_type == "application/cose" {
                Format::Cose
            } else {
                Format::Jws
            }
        );
        let alg = match &v["alg"] {
            serde_json::Value::String(s) => s.clone(),
            n => pavilion_notary::crypto::Alg::from_cose_id(n.as_i64().unwrap())
                .unwrap()
                .jws_name()
                .to_string(),
        };
        assert_eq!(env.signed.alg.jws_name(), alg, "{file}");
        assert_eq!(env.signed.signing_scheme.as_str(), v["scheme"], "{file}");
        let crit: Vec<String> = serde_json::from_value(v["crit"].clone()).unwrap();
        assert_eq!(env.signed.critical, crit, "{file}");
        let chain: Vec<String> = v["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sha256"].as_str().unwrap().to_string())
            .collect();
        let certs = env.certificates().unwrap_or_else(|e| panic!("{file}: {e}"));
        let got: Vec<String> = certs.iter().map(|c| c.sha256_hex()).collect();
        assert_eq!(got, chain, "{file}");
        assert_eq!(env.timestamp.is_some(), !v["timestamp"].is_null(), "{file}");
        match env.verify_integrity() {
            Ok(payload) => {
                assert!(
                    !invalid_signature(file) && !unknown_critical(file),
                    "{file} verified"
                );
                let t = &v["target"];
                assert_eq!(
                    payload.target_artifact.digest.to_string(),
                    t["digest"],
                    "{file}"
                );
                assert_eq!(payload.target_artifact.media_type, t["mediaType"], "{file}");
                assert_eq!(
                    payload.target_artifact.size,
                    t["size"].as_u64().unwrap(),
                    "{file}"
                );
            }
            Err(EnvelopeError::Signature(_)) if invalid_signature(file) => {}
            Err(EnvelopeError::Header(h)) if unknown_critical(file) => {
                assert!(h.contains("unknown critical header"), "{file}: {h}");
            }
            Err(e) => panic!("{file}: {e}"),
        }
        // Structure and signatures of the chain, without time (as notation
        // checks it at this step).
        validate_chain(&certs, Purpose::CodeSigning, None)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} vectors checked");
}

#[test]
fn a_tampered_payload_or_header_fails_integrity() {
    let p = vectors().join("notation-go/internal/testdata/jws_signature.sig");
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    // Payload swapped for another descriptor: the signature no longer covers it.
    let mut v = original.clone();
    use base64::Engine as _;
    let other = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        br#"{"targetArtifact":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","mediaType":"application/vnd.oci.image.manifest.v1+json","size":481}}"#,
    );
    v["payload"] = other.into();
    let env = Envelope::parse("application/jose+json", v.to_string().as_bytes()).unwrap();
    assert!(matches!(
        env.verify_integrity(),
        Err(EnvelopeError::Signature(_))
    ));
    // Malformed envelopes get a one-line error, never a panic.
    for bad in [
        &b"not json"[..],
        br#"{"payload":"e30","protected":"!!","signature":"AA"}"#,
        br#"{"payload":"e30","signature":"AA"}"#,
        br#"[]"#,
    ] {
        let e = Envelope::parse("application/jose+json", bad).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
    }
    assert!(Envelope::parse("text/plain", b"{}").is_err());
}
