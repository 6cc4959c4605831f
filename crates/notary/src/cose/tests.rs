//! Tests of COSE_Sign1 parsing and building: round trips, notation's
//! vectors, and malformed structures and headers.

use super::cbor::decode_value;
use super::*;
use crate::envelope::PAYLOAD_CONTENT_TYPE;
use std::cell::RefCell;
use std::path::PathBuf;

fn vectors() -> PathBuf {
    crate::test_vectors::dir()
}

fn t(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).unwrap()
}

fn attrs(expiry: Option<OffsetDateTime>) -> SignedAttributes {
    let mut critical = vec![headers::SIGNING_SCHEME.to_string()];
    if expiry.is_some() {
        critical.push(headers::EXPIRY.to_string());
    }
    SignedAttributes {
        alg: Alg::Es384,
        content_type: PAYLOAD_CONTENT_TYPE.into(),
        signing_scheme: SigningScheme::X509,
        signing_time: Some(t(1_667_411_812)),
        authentic_signing_time: None,
        expiry,
        critical,
        verification_plugin: None,
        verification_plugin_min_version: None,
        extended: BTreeMap::new(),
    }
}

const PAYLOAD: &[u8] = br#"{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0","size":481}}"#;

/// Builds with a fake signer; returns the envelope and what was signed.
fn build_fake(s: &SignedAttributes, chain: &[Vec<u8>], agent: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let seen = RefCell::new(Vec::new());
    let env = build(s, PAYLOAD, chain, agent, |input| {
        *seen.borrow_mut() = input.to_vec();
        Ok(vec![0xAB; 96])
    })
    .unwrap();
    (env, seen.into_inner())
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn enc(v: &Value) -> Vec<u8> {
    encode_value(v).unwrap()
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// A protected header map with the given extra entries after alg, cty,
/// crit and the signing scheme.
fn protected_with(extra: Vec<(Value, Value)>) -> Value {
    let mut m = vec![
        (int(1), int(-7)),
        (int(2), Value::Array(vec![text(headers::SIGNING_SCHEME)])),
        (int(3), text(PAYLOAD_CONTENT_TYPE)),
        (text(headers::SIGNING_SCHEME), text("notary.x509")),
    ];
    m.extend(extra);
    Value::Map(m)
}

fn signing_time() -> (Value, Value) {
    (
        text(headers::SIGNING_TIME),
        Value::Tag(1, Box::new(int(1_667_411_812))),
    )
}

fn unprotected_default() -> Value {
    Value::Map(vec![(int(33), Value::Bytes(vec![1, 2, 3]))])
}

/// A COSE_Sign1_Tagged envelope from parts.
fn sign1(protected: &Value, unprotected: Value, payload: Value, sig: Value) -> Vec<u8> {
    enc(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(enc(protected)),
            unprotected,
            payload,
            sig,
        ])),
    ))
}

fn good_parts() -> Vec<u8> {
    sign1(
        &protected_with(vec![signing_time()]),
        unprotected_default(),
        Value::Bytes(PAYLOAD.to_vec()),
        Value::Bytes(vec![7; 64]),
    )
}

#[track_caller]
fn malformed(bytes: &[u8], needle: &str) {
    match parse(bytes) {
        Err(EnvelopeError::Malformed { format, why }) => {
            assert_eq!(format, "COSE");
            assert!(why.contains(needle), "{why:?} lacks {needle:?}");
            assert!(!why.contains('\n'));
        }
        other => panic!("expected Malformed({needle}), got {other:?}"),
    }
}

#[track_caller]
fn header(bytes: &[u8], needle: &str) {
    match parse(bytes) {
        Err(EnvelopeError::Header(h)) => {
            assert!(h.contains(needle), "{h:?} lacks {needle:?}");
            assert!(!h.contains('\n'));
        }
        other => panic!("expected Header({needle}), got {other:?}"),
    }
}

#[test]
fn round_trip_one_cert_no_expiry() {
    let s = attrs(None);
    let chain = vec![vec![0x30, 1, 2, 3]];
    let (bytes, signed_input) = build_fake(&s, &chain, Some("pavilion/0.1.0"));
    assert_eq!(&bytes[..2], &[0xd2, 0x84]);
    let env = parse(&bytes).unwrap();
    assert_eq!(env.format, Format::Cose);
    assert_eq!(env.signed, s);
    assert_eq!(env.cert_chain, chain);
    assert_eq!(env.timestamp, None);
    assert_eq!(env.signing_agent.as_deref(), Some("pavilion/0.1.0"));
    assert_eq!(env.payload, PAYLOAD);
    assert_eq!(env.signature, vec![0xAB; 96]);
    assert_eq!(env.signing_input, signed_input);
    // Sig_structure = ["Signature1", protected, h'', payload].
    let Value::Array(sig) = decode_value(&signed_input, "t").unwrap() else {
        panic!()
    };
    assert_eq!(sig[0], text("Signature1"));
    assert_eq!(sig[2], Value::Bytes(vec![]));
    assert_eq!(sig[3], Value::Bytes(PAYLOAD.to_vec()));
    // notation writes x5chain as an array even for one certificate.
    let Value::Tag(18, arr) = decode_value(&bytes, "t").unwrap() else {
        panic!()
    };
    let Value::Array(items) = *arr else { panic!() };
    assert_eq!(sig[1], items[0]);
    assert_eq!(
        items[1],
        Value::Map(vec![
            (int(33), Value::Array(vec![Value::Bytes(chain[0].clone())])),
            (text(headers::SIGNING_AGENT), text("pavilion/0.1.0")),
        ])
    );
    // Deterministic.
    assert_eq!(build_fake(&s, &chain, Some("pavilion/0.1.0")).0, bytes);
}

#[test]
fn round_trip_two_certs_with_expiry_and_extras() {
    let mut s = attrs(Some(t(1_667_415_412)));
    s.signing_scheme = SigningScheme::SigningAuthority;
    s.signing_time = None;
    s.authentic_signing_time = Some(t(1_667_411_800));
    s.critical.insert(1, headers::AUTHENTIC_SIGNING_TIME.into());
    s.verification_plugin = Some("com.example.plugin".into());
    s.verification_plugin_min_version = Some("1.0.0".into());
    s.critical.push(headers::VERIFICATION_PLUGIN.into());
    s.critical.push("signedCritKey1".into());
    s.extended.insert("signedCritKey1".into(), "v".into());
    s.extended.insert(
        "io.example.nested".into(),
        serde_json::json!({"b": [1, -2, 3.5, true, null], "a": "x"}),
    );
    s.extended
        .insert("4".into(), serde_json::json!(18446744073709551615u64));
    let chain = vec![vec![0x30, 1], vec![0x30, 2, 2]];
    let (bytes, input) = build_fake(&s, &chain, None);
    let env = parse(&bytes).unwrap();
    assert_eq!(env.signed, s);
    assert_eq!(env.cert_chain, chain);
    assert_eq!(env.signing_agent, None);
    assert_eq!(env.signing_input, input);
    // "4" is the integer label 4, not text.
    let Value::Tag(18, arr) = decode_value(&bytes, "t").unwrap() else {
        panic!()
    };
    let Value::Array(items) = *arr else { panic!() };
    let Value::Bytes(p) = &items[0] else { panic!() };
    let map = HeaderMap::decode(p, "p").unwrap();
    assert!(map.int(4).is_some());
    // Times are tag 1 epoch seconds.
    assert_eq!(
        map.text(headers::EXPIRY),
        Some(&Value::Tag(1, Box::new(int(1_667_415_412))))
    );
}

#[test]
fn build_refuses_inconsistent_attributes() {
    let mut s = attrs(None);
    s.critical.push("absent".into());
    assert!(matches!(
        build(&s, PAYLOAD, &[], None, |_| Ok(vec![1])),
        Err(EnvelopeError::Header(_))
    ));
    let mut s = attrs(None);
    s.extended
        .insert(headers::SIGNING_SCHEME.into(), "x".into());
    s.extended.insert("1".into(), 1.into());
    assert!(matches!(
        build(&s, PAYLOAD, &[], None, |_| Ok(vec![1])),
        Err(EnvelopeError::Header(_))
    ));
    let s = attrs(None);
    assert!(build(&s, PAYLOAD, &[], None, |_| Ok(vec![])).is_err());
    assert_eq!(
        build(&s, PAYLOAD, &[], None, |_| Err(CryptoError::BadSignature)),
        Err(EnvelopeError::Signature(CryptoError::BadSignature))
    );
}

#[test]
fn matches_notation_core_go_conformance_vector() {
    let p = vectors().join("notation-core-go/signature/cose/testdata/conformance.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    let protected = hex(v["protectedHeaders"]["cborHex"].as_str().unwrap());
    let expected = hex(v["expectedOutput"]["cborHex"].as_str().unwrap());
    let payload = hex(v["payload"].as_str().unwrap());

    let env = parse(&expected).unwrap();
    let s = &env.signed;
    assert_eq!(s.alg, Alg::Ps384);
    assert_eq!(s.signing_scheme, SigningScheme::X509);
    assert_eq!(s.signing_time, Some(t(v["signingTime"].as_i64().unwrap())));
    assert_eq!(s.expiry, Some(t(v["expiry"].as_i64().unwrap())));
    assert_eq!(
        s.critical,
        [headers::SIGNING_SCHEME, headers::EXPIRY, "signedCritKey1"]
    );
    assert_eq!(s.extended["signedKey1"], "signedValue1");
    assert_eq!(s.extended["signedCritKey1"], "signedCritValue1");
    assert_eq!(
        env.signing_agent.as_deref(),
        Some("NotationConformanceTest/1.0.0")
    );
    assert!(env.cert_chain.is_empty());
    assert_eq!(env.payload, payload);

    // Our encoding of the same attributes is byte-identical.
    let seen = RefCell::new(Vec::new());
    let ours = build(s, &payload, &[], None, |input| {
        *seen.borrow_mut() = input.to_vec();
        Ok(env.signature.clone())
    })
    .unwrap();
    let mut item = Vec::new();
    push_bytes(&mut item, &protected);
    assert!(ours[2..].starts_with(&item));
    assert_eq!(seen.into_inner(), env.signing_input);
}

#[test]
fn rebuilding_notation_envelopes_gives_the_same_bytes() {
    // Envelopes without a timestamp token: everything they carry is
    // something `build` writes.
    for file in [
        "notation-go/internal/testdata/cose_signature.sig",
        "notation/test/e2e/testdata/signatures/blob.cose.sig",
        "notation-go/verifier/testdata/timestamp/sigEnv/coseWithTimestamp.sig",
    ] {
        let original = std::fs::read(vectors().join(file)).unwrap();
        let env = parse(&original).unwrap();
        env.verify_integrity()
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let rebuilt = build(
            &env.signed,
            &env.payload,
            &env.cert_chain,
            env.signing_agent.as_deref(),
            |input| {
                assert_eq!(input, env.signing_input);
                Ok(env.signature.clone())
            },
        )
        .unwrap();
        if env.timestamp.is_none() {
            assert_eq!(rebuilt, original, "{file}");
        } else {
            // Same protected header, same signature.
            let again = parse(&rebuilt).unwrap();
            assert_eq!(again.signing_input, env.signing_input, "{file}");
            assert_eq!(again.signed, env.signed, "{file}");
        }
    }
}

#[test]
fn real_signature_round_trip() {
    let pki = crate::certgen::generate("cose-test", 1).unwrap();
    let chain = crate::certgen::pem_certificates(&pki.chain_pem).unwrap();
    use p256::pkcs8::DecodePrivateKey as _;
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&pki.key_pem).unwrap();
    let mut s = attrs(Some(t(4_102_444_800)));
    s.alg = Alg::Es256;
    let sign = |m: &[u8]| {
        use p256::ecdsa::signature::Signer as _;
        let sig: p256::ecdsa::Signature = key.sign(m);
        Ok(sig.to_bytes().to_vec())
    };
    let bytes = build(&s, PAYLOAD, &chain, Some("pavilion"), sign).unwrap();
    let env = Envelope::parse(crate::envelope::COSE_MEDIA_TYPE, &bytes).unwrap();
    assert_eq!(env.cert_chain.len(), 2);
    let payload = env.verify_integrity().unwrap();
    assert_eq!(payload.target_artifact.size, 481);
    // A different payload under the same signature fails.
    let mut tampered = env.clone();
    tampered.payload = PAYLOAD.to_ascii_uppercase();
    tampered.signing_input = sig_structure(
        &{
            let mut i = Vec::new();
            push_bytes(&mut i, &enc(&protected_header(&s).unwrap()));
            i
        },
        &tampered.payload,
    );
    assert!(matches!(
        tampered.verify_integrity(),
        Err(EnvelopeError::Signature(_))
    ));
}

#[test]
fn single_bstr_x5chain_and_ignored_unprotected_labels() {
    let bytes = sign1(
        &protected_with(vec![signing_time()]),
        Value::Map(vec![
            (int(33), Value::Bytes(vec![9, 9])),
            (text("io.cncf.notary.SigningAgent"), text("misspelt")),
            (int(99), Value::Null),
            (text(headers::TIMESTAMP_SIGNATURE), Value::Bytes(vec![0x30])),
        ]),
        Value::Bytes(PAYLOAD.to_vec()),
        Value::Bytes(vec![7; 64]),
    );
    let env = parse(&bytes).unwrap();
    assert_eq!(env.cert_chain, vec![vec![9, 9]]);
    assert_eq!(env.signing_agent, None);
    assert_eq!(env.timestamp, Some(vec![0x30]));
    assert_eq!(env.signed.alg, Alg::Es256);
    assert_eq!(env.signed.signing_time, Some(t(1_667_411_812)));
    assert!(env.signed.extended.is_empty());
    parse(&good_parts()).unwrap();
}

#[test]
fn integer_crit_labels_are_decimal_strings() {
    let p = Value::Map(vec![
        (int(1), int(-37)),
        (
            int(2),
            Value::Array(vec![text(headers::SIGNING_SCHEME), int(-70000)]),
        ),
        (text(headers::SIGNING_SCHEME), text("notary.x509")),
        (int(-70000), Value::Bytes(vec![1, 2])),
        signing_time(),
    ]);
    let bytes = sign1(
        &p,
        unprotected_default(),
        Value::Bytes(PAYLOAD.to_vec()),
        Value::Bytes(vec![1]),
    );
    let env = parse(&bytes).unwrap();
    assert_eq!(env.signed.critical, [headers::SIGNING_SCHEME, "-70000"]);
    assert_eq!(env.signed.extended["-70000"], "AQI=");
    assert_eq!(env.signed.content_type, "");
    // Unknown critical headers are refused later, by the integrity check.
    assert!(matches!(
        env.verify_integrity(),
        Err(EnvelopeError::Header(h)) if h.contains("content type")
    ));
}

#[test]
fn malformed_structure() {
    let good = good_parts();
    malformed(&[], "truncated");
    for n in 1..good.len() {
        assert!(
            matches!(parse(&good[..n]), Err(EnvelopeError::Malformed { .. })),
            "prefix {n}"
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    malformed(&trailing, "trailing");
    // Untagged COSE_Sign1, and COSE_Sign (tag 98).
    malformed(&good[1..], "no CBOR tag 18");
    let mut other_tag = vec![0xd8, 98];
    other_tag.extend_from_slice(&good[1..]);
    malformed(&other_tag, "tag 98");
    malformed(
        &enc(&Value::Tag(18, Box::new(Value::Map(vec![])))),
        "not an array",
    );
    malformed(
        &enc(&Value::Tag(
            18,
            Box::new(Value::Array(vec![Value::Bytes(vec![])])),
        )),
        "1 items",
    );
    // Protected header given as a map instead of a bstr.
    let direct = enc(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            protected_with(vec![signing_time()]),
            unprotected_default(),
            Value::Bytes(PAYLOAD.to_vec()),
            Value::Bytes(vec![1]),
        ])),
    ));
    malformed(&direct, "protected header is not a byte string");
    let not_map = sign1(
        &Value::Array(vec![]),
        unprotected_default(),
        Value::Bytes(vec![]),
        Value::Bytes(vec![1]),
    );
    malformed(&not_map, "protected header is not a map");
    let unprot_array = sign1(
        &protected_with(vec![signing_time()]),
        Value::Array(vec![]),
        Value::Bytes(vec![]),
        Value::Bytes(vec![1]),
    );
    malformed(&unprot_array, "unprotected header is not a map");
    let detached = sign1(
        &protected_with(vec![signing_time()]),
        unprotected_default(),
        Value::Null,
        Value::Bytes(vec![1]),
    );
    malformed(&detached, "detached");
    let empty_sig = sign1(
        &protected_with(vec![signing_time()]),
        unprotected_default(),
        Value::Bytes(vec![]),
        Value::Bytes(vec![]),
    );
    malformed(&empty_sig, "empty signature");
    let text_sig = sign1(
        &protected_with(vec![signing_time()]),
        unprotected_default(),
        Value::Bytes(vec![]),
        text("sig"),
    );
    malformed(&text_sig, "signature is not a byte string");
    // Indefinite-length array (0x9f ... 0xff) in place of the definite one.
    let mut indefinite = vec![0xd2, 0x9f];
    indefinite.extend_from_slice(&good[2..]);
    indefinite.push(0xff);
    malformed(&indefinite, "indefinite");
    // Deep nesting is refused without overflowing the stack.
    let mut deep = vec![0xd2, 0x84, 0x40, 0xa1, 0x01];
    deep.extend(std::iter::repeat_n(0x81, 100_000));
    malformed(&deep, "nested deeper");
    malformed(
        &[
            0xd2, 0x84, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        "truncated",
    );
    malformed(
        &[0xd2, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        "",
    );
    malformed(&[0xd2, 0x84, 0x1c], "invalid CBOR initial byte");
}

#[test]
fn malformed_headers() {
    let dup = sign1(
        &protected_with(vec![signing_time(), (int(1), int(-7))]),
        unprotected_default(),
        Value::Bytes(PAYLOAD.to_vec()),
        Value::Bytes(vec![1]),
    );
    malformed(&dup, "duplicate label 1");
    let dup_unprot = sign1(
        &protected_with(vec![signing_time()]),
        Value::Map(vec![(text("x"), Value::Null), (text("x"), Value::Null)]),
        Value::Bytes(PAYLOAD.to_vec()),
        Value::Bytes(vec![1]),
    );
    malformed(&dup_unprot, "duplicate label \"x\"");
    let bad_label = sign1(
        &protected_with(vec![(Value::Bytes(vec![1]), Value::Null)]),
        unprotected_default(),
        Value::Bytes(PAYLOAD.to_vec()),
        Value::Bytes(vec![1]),
    );
    malformed(&bad_label, "labels must be integers or text strings");
    let bad_chain = sign1(
        &protected_with(vec![signing_time()]),
        Value::Map(vec![(int(33), Value::Array(vec![text("cert")]))]),
        Value::Bytes(PAYLOAD.to_vec()),
        Value::Bytes(vec![1]),
    );
    malformed(&bad_chain, "x5chain entries");
    let crit_unprot = sign1(
        &protected_with(vec![signing_time()]),
        Value::Map(vec![(int(2), Value::Array(vec![int(1)]))]),
        Value::Bytes(PAYLOAD.to_vec()),
        Value::Bytes(vec![1]),
    );
    malformed(&crit_unprot, "crit is not allowed");
}

#[test]
fn header_errors() {
    let with = |p: Value| {
        sign1(
            &p,
            unprotected_default(),
            Value::Bytes(PAYLOAD.to_vec()),
            Value::Bytes(vec![1]),
        )
    };
    let untagged = (text(headers::SIGNING_TIME), int(1_667_411_812));
    header(&with(protected_with(vec![untagged])), "tag 1");
    let rfc3339 = (
        text(headers::EXPIRY),
        Value::Tag(0, Box::new(text("2022-11-02T17:56:52Z"))),
    );
    header(
        &with(protected_with(vec![signing_time(), rfc3339])),
        "not tag 0",
    );
    let tagged_text = (
        text(headers::SIGNING_TIME),
        Value::Tag(1, Box::new(text("x"))),
    );
    header(&with(protected_with(vec![tagged_text])), "epoch number");
    let huge = (
        text(headers::SIGNING_TIME),
        Value::Tag(1, Box::new(int(i64::MAX))),
    );
    header(&with(protected_with(vec![huge])), "out of range");
    let mut p = protected_with(vec![signing_time()]);
    let Value::Map(m) = &mut p else { panic!() };
    m[0].1 = int(-8); // EdDSA
    header(&with(p.clone()), "unsupported alg -8");
    let Value::Map(m) = &mut p else { panic!() };
    m[0].1 = text("PS256");
    header(&with(p.clone()), "unsupported alg \"PS256\"");
    let Value::Map(m) = &mut p else { panic!() };
    m.remove(0);
    header(&with(p), "missing alg");
    header(&with(Value::Map(vec![])), "missing alg");
    let empty_protected = enc(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(vec![]),
            unprotected_default(),
            Value::Bytes(PAYLOAD.to_vec()),
            Value::Bytes(vec![1]),
        ])),
    ));
    header(&empty_protected, "missing alg");
    let mut p = protected_with(vec![signing_time()]);
    let Value::Map(m) = &mut p else { panic!() };
    m[1].1 = Value::Array(vec![]);
    header(&with(p.clone()), "crit must be a non-empty array");
    let Value::Map(m) = &mut p else { panic!() };
    m[1].1 = Value::Array(vec![text(headers::EXPIRY)]);
    header(&with(p.clone()), "not present");
    let Value::Map(m) = &mut p else { panic!() };
    m[1].1 = Value::Array(vec![text(headers::SIGNING_SCHEME)]);
    m[2].1 = int(50);
    header(&with(p.clone()), "content type");
    let Value::Map(m) = &mut p else { panic!() };
    m[2].1 = text(PAYLOAD_CONTENT_TYPE);
    m[3].1 = text("notary.x509.other");
    header(&with(p.clone()), "unknown signing scheme");
    let Value::Map(m) = &mut p else { panic!() };
    m[3].1 = int(1);
    header(&with(p), "must be a text string");
}
