//! RFC 3161 timestamp countersignatures: notation's GlobalSign-stamped
//! envelopes against the GlobalSign root, the Microsoft-stamped ones (whose
//! root no repository carries), malformed and corrupted tokens, and tokens
//! of a small TSA made here to reach every rule.

use der::{Decode, Encode};
use pavilion_notary::envelope::Envelope;
use pavilion_notary::signer::PrivateKey;
use pavilion_notary::timestamp::{verify_token, Timestamp, TimestampError};
use pavilion_notary::x509::{Cert, ChainError};
use sha2::{Digest as _, Sha256, Sha384};
use std::path::PathBuf;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn vectors() -> PathBuf {
    pavilion_notary::test_vectors::dir()
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(vectors().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const SIG_ENV: &str = "notation-go/verifier/testdata/timestamp/sigEnv";
const GLOBALSIGN_ROOT: &str =
    "notation-go/verifier/testdata/truststore/x509/tsa/test-timestamp/globalsignRoot.cer";

fn globalsign_root() -> Vec<Vec<u8>> {
    vec![read(GLOBALSIGN_ROOT)]
}

/// (token, signature) of an envelope file.
fn envelope(rel: &str) -> (Vec<u8>, Vec<u8>) {
    let bytes = read(rel);
    let media_type = if bytes.first() == Some(&b'{') {
        "application/jose+json"
    } else {
        "application/cose"
    };
    let env = Envelope::parse(media_type, &bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let token = env
        .timestamp
        .unwrap_or_else(|| panic!("{rel} has no timestamp"));
    (token, env.signature)
}

fn globalsign_token() -> (Vec<u8>, Vec<u8>) {
    envelope(&format!("{SIG_ENV}/jwsExpiredWithTimestamp.sig"))
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("pattern {needle:02x?} not found"))
}

// ---------------------------------------------------------------------------
// notation's vectors

#[test]
fn globalsign_tokens_verify_against_the_globalsign_root() {
    let root = globalsign_root();
    let cases = [
        ("jwsWithTimestamp.sig", datetime!(2024-06-18 06:29:37 UTC)),
        ("coseWithTimestamp.sig", datetime!(2024-06-18 06:27:16 UTC)),
        (
            "jwsExpiredWithTimestamp.sig",
            datetime!(2024-06-18 07:21:42 UTC),
        ),
        (
            "coseExpiredWithTimestamp.sig",
            datetime!(2024-06-18 07:21:12 UTC),
        ),
        (
            "timestampAfterNotAfter.sig",
            datetime!(2024-06-19 09:35:58 UTC),
        ),
        (
            "timestampBeforeNotBefore.sig",
            datetime!(2024-06-19 09:30:14 UTC),
        ),
    ];
    for (file, gen_time) in cases {
        let (token, signature) = envelope(&format!("{SIG_ENV}/{file}"));
        let ts = verify_token(&token, &signature, &root).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(ts.gen_time, gen_time, "{file}");
        assert_eq!(ts.accuracy, Duration::seconds(1), "{file}");
        assert_eq!(ts.lower(), gen_time - Duration::seconds(1));
        assert_eq!(ts.upper(), gen_time + Duration::seconds(1));
        let chain = &ts.tsa_chain;
        assert!(
            chain[0].subject().contains("Globalsign TSA for Advanced"),
            "{file}"
        );
        assert_eq!(chain.last().unwrap().der(), root[0].as_slice(), "{file}");
        assert!(chain.len() >= 2);
    }
}

#[test]
fn expired_signing_leaf_lies_within_the_timestamp_range() {
    // jwsExpiredWithTimestamp: leaf CN=testTSA valid 07:20:31..07:30:31Z,
    // stamped 07:21:42Z +-1s: valid only through the timestamp.
    let bytes = read(&format!("{SIG_ENV}/jwsExpiredWithTimestamp.sig"));
    let env = Envelope::parse("application/jose+json", &bytes).unwrap();
    let leaf = Cert::from_der(&env.cert_chain[0]).unwrap();
    let ts = verify_token(
        env.timestamp.as_ref().unwrap(),
        &env.signature,
        &globalsign_root(),
    )
    .unwrap();
    assert!(leaf.not_before() <= ts.lower() && ts.upper() <= leaf.not_after());
    assert!(!leaf.valid_at(OffsetDateTime::now_utc()));
}

#[test]
fn bare_token_stamps_its_message() {
    let token = read("notation-go/verifier/testdata/timestamp/countersignature/TimeStampToken.p7s");
    let ts = verify_token(&token, b"notation", &globalsign_root()).unwrap();
    assert_eq!(ts.gen_time, datetime!(2021-09-17 14:09:10 UTC));
    assert_eq!(ts.accuracy, Duration::seconds(1));
    let err = verify_token(&token, b"notary", &globalsign_root()).unwrap_err();
    assert!(matches!(err, TimestampError::WrongImprint(_)), "{err}");
}

#[test]
fn a_token_does_not_countersign_another_signature() {
    let (token, mut signature) = globalsign_token();
    signature[10] ^= 1;
    let err = verify_token(&token, &signature, &globalsign_root()).unwrap_err();
    assert!(matches!(err, TimestampError::WrongImprint(_)), "{err}");
    assert!(err.to_string().contains("not for this signature"), "{err}");
    // Another envelope's signature.
    let (_, other) = envelope(&format!("{SIG_ENV}/coseWithTimestamp.sig"));
    let err = verify_token(&token, &other, &globalsign_root()).unwrap_err();
    assert!(matches!(err, TimestampError::WrongImprint(_)), "{err}");
}

#[test]
fn globalsign_token_needs_the_globalsign_root() {
    let (token, signature) = globalsign_token();
    let err = verify_token(&token, &signature, &[]).unwrap_err();
    assert!(matches!(err, TimestampError::Untrusted(_)), "{err}");
    assert!(
        err.to_string()
            .contains("chain does not reach a trusted TSA root"),
        "{err}"
    );
    let unrelated = read("notation/test/e2e/testdata/config/localkeys/e2e.crt");
    let unrelated =
        pavilion_notary::certgen::pem_certificates(&String::from_utf8_lossy(&unrelated)).unwrap();
    let err = verify_token(&token, &signature, &unrelated).unwrap_err();
    assert!(matches!(err, TimestampError::Untrusted(_)), "{err}");
}

const MICROSOFT_STAMPED: [&str; 3] = [
    "notation/test/e2e/testdata/signatures/blob.jws.sig",
    "notation/test/e2e/testdata/signatures/blob.cose.sig",
    "notation/test/e2e/testdata/registry/oci_layout/e2e-with-timestamped-signature/blobs/sha256/603ff134e97a79cd7a15560b76137c2c4a10451daab11327a7c6f86dac250fee",
];

#[test]
fn microsoft_tokens_fail_for_want_of_their_root() {
    for file in MICROSOFT_STAMPED {
        let (token, signature) = envelope(file);
        let err = verify_token(&token, &signature, &globalsign_root()).unwrap_err();
        // The token itself verifies (imprint, attributes, RSA PKCS#1 v1.5
        // signature over attributes the TSA did not sort): only trust fails.
        assert!(matches!(err, TimestampError::Untrusted(_)), "{file}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("chain does not reach a trusted TSA root"),
            "{msg}"
        );
        assert!(msg.contains("Microsoft"), "{msg}");
    }
}

#[test]
fn microsoft_token_anchored_at_its_intermediate_is_not_a_rooted_chain() {
    // Trusting the intermediate CA stops the chain there; the Notary rules
    // then want a self-signed root at the end, as notation does.
    let mut intermediates = Vec::new();
    for entry in std::fs::read_dir(vectors().join("derived")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tsa-chain-in-token-")
        {
            let text = std::fs::read_to_string(&path).unwrap();
            for der in pavilion_notary::certgen::pem_certificates(&text).unwrap() {
                let c = Cert::from_der(&der).unwrap();
                if c.subject()
                    .contains("Microsoft Public RSA Timestamping CA 2020")
                {
                    intermediates.push(der);
                }
            }
        }
    }
    assert!(!intermediates.is_empty());
    let (token, signature) = envelope(MICROSOFT_STAMPED[0]);
    let err = verify_token(&token, &signature, &intermediates).unwrap_err();
    assert!(
        matches!(err, TimestampError::Chain(ChainError::Rule { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("self-signed root"), "{err}");
}

// ---------------------------------------------------------------------------
// Malformed and corrupted tokens

#[test]
fn malformed_tokens_are_refused_without_panic() {
    let (token, signature) = globalsign_token();
    let root = globalsign_root();
    let malformed = |t: &[u8]| {
        let err = verify_token(t, &signature, &root).unwrap_err();
        assert!(matches!(err, TimestampError::Malformed(_)), "{err}");
        assert!(!err.to_string().contains('\n'));
    };
    malformed(&[]);
    malformed(&[0x30]);
    malformed(&[0x30, 0x80, 0, 0]);
    malformed(b"not a token at all");
    // Pseudo-random bytes.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for len in [1usize, 7, 64, 1000, 6000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(verify_token(&bytes, &signature, &root).is_err());
        let mut seq = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
        seq.extend(&bytes);
        assert!(verify_token(&seq, &signature, &root).is_err());
    }
    // Every truncation, and trailing data.
    for n in 0..token.len() {
        malformed(&token[..n]);
    }
    let mut long = token.clone();
    long.push(0);
    malformed(&long);
}

#[test]
fn wrong_content_types_are_refused() {
    let (token, signature) = globalsign_token();
    let root = globalsign_root();
    // ContentInfo: id-data instead of id-signedData.
    let signed_data = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
    ];
    let mut t = token.clone();
    let at = find(&t, &signed_data);
    t[at + 10] = 0x01;
    let err = verify_token(&t, &signature, &root).unwrap_err();
    assert!(err.to_string().contains("is not SignedData"), "{err}");
    // eContentType: id-data instead of id-ct-TSTInfo (the first occurrence
    // is the encapsulated one; the content-type attribute comes later).
    let tst_info = [
        0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04,
    ];
    let mut t = token.clone();
    let at = find(&t, &tst_info);
    t[at + 12] = 0x01;
    let err = verify_token(&t, &signature, &root).unwrap_err();
    assert!(matches!(err, TimestampError::Malformed(_)), "{err}");
    assert!(err.to_string().contains("not id-ct-TSTInfo"), "{err}");
    // The content-type attribute (second occurrence) altered.
    let mut t = token.clone();
    let first = find(&t, &tst_info);
    let at = first + 1 + find(&t[first + 1..], &tst_info);
    t[at + 12] = 0x05;
    let err = verify_token(&t, &signature, &root).unwrap_err();
    assert!(matches!(err, TimestampError::Integrity(_)), "{err}");
    assert!(err.to_string().contains("content-type"), "{err}");
}

#[test]
fn corrupted_signed_attributes_and_signature_are_refused() {
    let (token, signature) = globalsign_token();
    let root = globalsign_root();
    // messageDigest attribute value: OID 1.2.840.113549.1.9.4, SET, OCTET STRING.
    let md_oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
    let mut t = token.clone();
    let at = find(&t, &md_oid);
    // OID, then 31 22 04 20 <32 bytes>.
    t[at + md_oid.len() + 4 + 5] ^= 0x40;
    let err = verify_token(&t, &signature, &root).unwrap_err();
    assert!(matches!(err, TimestampError::Integrity(_)), "{err}");
    assert!(err.to_string().contains("message-digest"), "{err}");

    // signing-certificate-v2's certHash.
    let scv2_oid = [
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x02, 0x2f,
    ];
    let mut t = token.clone();
    let at = find(&t, &scv2_oid);
    let hash_at = at + find(&t[at..], &[0x04, 0x20]) + 2;
    t[hash_at + 3] ^= 0x01;
    let err = verify_token(&t, &signature, &root).unwrap_err();
    assert!(
        matches!(err, TimestampError::SigningCertificate(_)),
        "{err}"
    );

    // The signing-certificate-v2 attribute renamed into an unknown one.
    let mut t = token.clone();
    let at = find(&t, &scv2_oid);
    t[at + 10] = 0x7f;
    let err = verify_token(&t, &signature, &root).unwrap_err();
    assert!(err.to_string().contains("signing-certificate-v2"), "{err}");

    // A byte of the TSTInfo (its serial number): message digest mismatch.
    let mut t = token.clone();
    let at = find(&t, &[0x02, 0x14]); // the TSTInfo serial, 20 bytes
    t[at + 5] ^= 0x01;
    let err = verify_token(&t, &signature, &root).unwrap_err();
    assert!(matches!(err, TimestampError::Integrity(_)), "{err}");

    // The TSA's signature (the last 384 bytes of the token).
    let mut t = token.clone();
    let n = t.len();
    t[n - 100] ^= 0x01;
    let err = verify_token(&t, &signature, &root).unwrap_err();
    assert!(matches!(err, TimestampError::Integrity(_)), "{err}");
    assert!(err.to_string().contains("TSA signature"), "{err}");
}

#[test]
fn flipped_bytes_never_panic() {
    let (token, signature) = globalsign_token();
    let root = globalsign_root();
    // The token carries a copy of the trusted root: the chain uses the
    // trust store's, so that copy may change unnoticed. Nothing else may.
    let copy = find(&token, &root[0]);
    let copy = copy..copy + root[0].len();
    // Nor does anybody read SignedData.digestAlgorithms (a hint for
    // one-pass processing): the SignerInfo names its own.
    let set = find(&token, &[0x02, 0x01, 0x03, 0x31]) + 3; // after version 3
    let unread = set + 2..set + 2 + usize::from(token[set + 1]);
    // A sample of positions (RSA verification is slow in debug builds).
    let mut accepted = Vec::new();
    for i in (0..token.len()).step_by(5) {
        for bit in [0x01u8, 0x80] {
            let mut t = token.clone();
            t[i] ^= bit;
            if verify_token(&t, &signature, &root).is_ok()
                && !copy.contains(&i)
                && !unread.contains(&i)
            {
                accepted.push((i, bit));
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "corrupted tokens accepted: {accepted:?}"
    );
}

// ---------------------------------------------------------------------------
// A TSA made here

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn set(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

fn oid(s: &str) -> Vec<u8> {
    tlv(
        0x06,
        const_oid::ObjectIdentifier::new(s).unwrap().as_bytes(),
    )
}

fn int(v: u64) -> Vec<u8> {
    let mut b: Vec<u8> = v
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    if b.first().is_none_or(|f| f & 0x80 != 0) {
        b.insert(0, 0);
    }
    tlv(0x02, &b)
}

fn octets(b: &[u8]) -> Vec<u8> {
    tlv(0x04, b)
}

const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const SHA384: &str = "2.16.840.1.101.3.4.2.2";
const SHA1: &str = "1.3.14.3.2.26";
const TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const BASELINE: &str = "0.4.0.2023.1.1";
const OTHER_POLICY: &str = "1.3.6.1.4.1.4146.2.3";

fn dn(cn: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CountryName, "US");
    dn.push(rcgen::DnType::OrganizationName, "Pavilion TSA Test");
    dn.push(rcgen::DnType::CommonName, cn);
    dn
}

struct Tsa {
    root: Vec<u8>,
    leaf: Vec<u8>,
    key: PrivateKey,
    other_key: PrivateKey,
}

struct TsaOptions {
    critical_eku: bool,
    leaf_not_before: OffsetDateTime,
    leaf_not_after: OffsetDateTime,
}

impl Default for TsaOptions {
    fn default() -> Self {
        TsaOptions {
            critical_eku: true,
            leaf_not_before: datetime!(2020-01-01 00:00 UTC),
            leaf_not_after: datetime!(2040-01-01 00:00 UTC),
        }
    }
}

fn tsa(o: TsaOptions) -> Tsa {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root_key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut root = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    root.distinguished_name = dn("Pavilion Test TSA Root");
    root.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    root.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    root.not_before = datetime!(2019-01-01 00:00 UTC);
    root.not_after = datetime!(2045-01-01 00:00 UTC);
    let root_cert = root.self_signed(&root_key).unwrap();

    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name = dn("Pavilion Test TSA");
    leaf.is_ca = rcgen::IsCa::ExplicitNoCa;
    leaf.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    if o.critical_eku {
        let eku = seq(&[oid("1.3.6.1.5.5.7.3.8")]);
        let mut ext = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 37], eku);
        ext.set_criticality(true);
        leaf.custom_extensions = vec![ext];
    } else {
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::TimeStamping];
    }
    leaf.not_before = o.leaf_not_before;
    leaf.not_after = o.leaf_not_after;
    let leaf_cert = leaf.signed_by(&key, &root_cert, &root_key).unwrap();
    let other = rcgen::KeyPair::generate_for(alg).unwrap();
    Tsa {
        root: root_cert.der().to_vec(),
        leaf: leaf_cert.der().to_vec(),
        key: PrivateKey::from_pem(&key.serialize_pem()).unwrap(),
        other_key: PrivateKey::from_pem(&other.serialize_pem()).unwrap(),
    }
}

/// What the made-up token looks like.
struct Opts {
    policy: &'static str,
    gen_time: &'static str,
    accuracy: Option<Vec<u8>>,
    imprint_alg: &'static str,
    /// Overrides the imprint computed from the signature.
    imprint: Option<Vec<u8>>,
    content_type_attr: &'static str,
    with_scv2: bool,
    /// Hash named by signing-certificate-v2 (default: the leaf's).
    scv2_hash: Option<Vec<u8>>,
    sid_by_key_id: bool,
    reverse_attrs: bool,
    include_root: bool,
    include_leaf: bool,
    two_signers: bool,
    sign_with_other_key: bool,
    /// Changes the TSTInfo after the message digest was computed.
    tamper_tst_info: bool,
    signing_time: Option<&'static str>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            policy: BASELINE,
            gen_time: "20240618072142Z",
            accuracy: None,
            imprint_alg: SHA256,
            imprint: None,
            content_type_attr: TST_INFO,
            with_scv2: true,
            scv2_hash: None,
            sid_by_key_id: false,
            reverse_attrs: false,
            include_root: true,
            include_leaf: true,
            two_signers: false,
            sign_with_other_key: false,
            tamper_tst_info: false,
            signing_time: None,
        }
    }
}

const SIGNATURE: &[u8] = b"the envelope's signature bytes";

fn token(tsa: &Tsa, o: &Opts) -> Vec<u8> {
    let imprint = o.imprint.clone().unwrap_or_else(|| match o.imprint_alg {
        SHA384 => Sha384::digest(SIGNATURE).to_vec(),
        _ => Sha256::digest(SIGNATURE).to_vec(),
    });
    let mut tst_parts = vec![
        int(1),
        oid(o.policy),
        seq(&[seq(&[oid(o.imprint_alg)]), octets(&imprint)]),
        int(0x1234_5678),
        tlv(0x18, o.gen_time.as_bytes()),
    ];
    if let Some(a) = &o.accuracy {
        tst_parts.push(a.clone());
    }
    tst_parts.push(int(42)); // nonce
    let tst = seq(&tst_parts);
    let digest = Sha256::digest(&tst).to_vec();
    let tst = if o.tamper_tst_info {
        let mut t = tst.clone();
        let n = t.len();
        t[n - 1] ^= 1; // the nonce
        t
    } else {
        tst
    };

    let leaf = x509_cert::Certificate::from_der(&tsa.leaf).unwrap();
    let mut attrs = vec![
        seq(&[
            oid("1.2.840.113549.1.9.3"),
            set(&[oid(o.content_type_attr)]),
        ]),
        seq(&[oid("1.2.840.113549.1.9.4"), set(&[octets(&digest)])]),
    ];
    if let Some(t) = o.signing_time {
        attrs.push(seq(&[
            oid("1.2.840.113549.1.9.5"),
            set(&[tlv(0x17, t.as_bytes())]),
        ]));
    }
    if o.with_scv2 {
        let h = o
            .scv2_hash
            .clone()
            .unwrap_or_else(|| Sha256::digest(&tsa.leaf).to_vec());
        let issuer_serial = seq(&[
            seq(&[tlv(0xa4, &leaf.tbs_certificate.issuer.to_der().unwrap())]),
            leaf.tbs_certificate.serial_number.to_der().unwrap(),
        ]);
        let ess_cert_id = seq(&[octets(&h), issuer_serial]);
        attrs.push(seq(&[
            oid("1.2.840.113549.1.9.16.2.47"),
            set(&[seq(&[seq(&[ess_cert_id])])]),
        ]));
    }
    if o.reverse_attrs {
        attrs.reverse();
    }
    let attrs = attrs.concat();
    let key = if o.sign_with_other_key {
        &tsa.other_key
    } else {
        &tsa.key
    };
    let raw = key.sign(&tlv(0x31, &attrs)).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&raw)
        .unwrap()
        .to_der()
        .as_bytes()
        .to_vec();

    let (version, sid) = if o.sid_by_key_id {
        let ski = leaf
            .tbs_certificate
            .extensions
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.extn_id.to_string() == "2.5.29.14")
            .unwrap();
        let ski = der::asn1::OctetString::from_der(ski.extn_value.as_bytes()).unwrap();
        (int(3), tlv(0x80, ski.as_bytes()))
    } else {
        (
            int(1),
            seq(&[
                leaf.tbs_certificate.issuer.to_der().unwrap(),
                leaf.tbs_certificate.serial_number.to_der().unwrap(),
            ]),
        )
    };
    let signer_info = seq(&[
        version,
        sid,
        seq(&[oid(SHA256)]),
        tlv(0xa0, &attrs),
        seq(&[oid("1.2.840.10045.4.3.2")]),
        octets(&sig),
    ]);
    let mut certs = Vec::new();
    if o.include_leaf {
        certs.push(tsa.leaf.clone());
    }
    if o.include_root {
        certs.push(tsa.root.clone());
    }
    let mut signers = vec![signer_info.clone()];
    if o.two_signers {
        signers.push(signer_info);
    }
    let signed_data = seq(&[
        int(3),
        set(&[seq(&[oid(SHA256)])]),
        seq(&[oid(TST_INFO), tlv(0xa0, &octets(&tst))]),
        tlv(0xa0, &certs.concat()),
        set(&signers),
    ]);
    seq(&[oid("1.2.840.113549.1.7.2"), tlv(0xa0, &signed_data)])
}

fn check(tsa: &Tsa, o: &Opts) -> Result<Timestamp, TimestampError> {
    verify_token(&token(tsa, o), SIGNATURE, std::slice::from_ref(&tsa.root))
}

#[test]
fn made_up_tsa_accuracy_rules() {
    let t = tsa(TsaOptions::default());
    // No accuracy under the baseline policy: one second.
    let ts = check(&t, &Opts::default()).unwrap();
    assert_eq!(ts.gen_time, datetime!(2024-06-18 07:21:42 UTC));
    assert_eq!(ts.accuracy, Duration::seconds(1));
    assert_eq!(ts.tsa_chain.len(), 2);
    assert_eq!(ts.tsa_chain[0].der(), t.leaf.as_slice());
    assert_eq!(ts.tsa_chain[1].der(), t.root.as_slice());
    // Another policy: zero.
    let o = Opts {
        policy: OTHER_POLICY,
        ..Opts::default()
    };
    let ts = check(&t, &o).unwrap();
    assert_eq!(ts.accuracy, Duration::ZERO);
    assert_eq!(ts.lower(), ts.upper());
    // Explicit: seconds, millis [0], micros [1].
    let o = Opts {
        policy: OTHER_POLICY,
        accuracy: Some(seq(&[int(2), tlv(0x80, &[5]), tlv(0x81, &[7])])),
        ..Opts::default()
    };
    let ts = check(&t, &o).unwrap();
    assert_eq!(
        ts.accuracy,
        Duration::seconds(2) + Duration::milliseconds(5) + Duration::microseconds(7)
    );
    assert_eq!(ts.upper() - ts.lower(), ts.accuracy * 2);
    // Explicit under the baseline policy wins.
    let o = Opts {
        accuracy: Some(seq(&[tlv(0x80, &[0x01, 0xf4])])),
        ..Opts::default()
    };
    assert_eq!(check(&t, &o).unwrap().accuracy, Duration::milliseconds(500));
    // Out of range millis.
    let o = Opts {
        accuracy: Some(seq(&[tlv(0x80, &[0x03, 0xe8])])),
        ..Opts::default()
    };
    assert!(matches!(
        check(&t, &o).unwrap_err(),
        TimestampError::Malformed(_)
    ));
}

#[test]
fn made_up_tsa_gen_time_forms() {
    let t = tsa(TsaOptions::default());
    let o = Opts {
        gen_time: "20241231080530.25Z",
        ..Opts::default()
    };
    let ts = check(&t, &o).unwrap();
    assert_eq!(ts.gen_time, datetime!(2024-12-31 08:05:30.25 UTC));
    for bad in ["20241231080530", "20241231080530+0100", "2024123108Z"] {
        let o = Opts {
            gen_time: bad,
            ..Opts::default()
        };
        let err = check(&t, &o).unwrap_err();
        assert!(matches!(err, TimestampError::Malformed(_)), "{bad}: {err}");
    }
}

#[test]
fn made_up_tsa_imprint_algorithms() {
    let t = tsa(TsaOptions::default());
    let o = Opts {
        imprint_alg: SHA384,
        ..Opts::default()
    };
    check(&t, &o).unwrap();
    // A SHA-384 algorithm with a SHA-256 value.
    let o = Opts {
        imprint_alg: SHA384,
        imprint: Some(Sha256::digest(SIGNATURE).to_vec()),
        ..Opts::default()
    };
    assert!(matches!(
        check(&t, &o).unwrap_err(),
        TimestampError::WrongImprint(_)
    ));
    let o = Opts {
        imprint_alg: SHA1,
        imprint: Some(vec![0; 20]),
        ..Opts::default()
    };
    let err = check(&t, &o).unwrap_err();
    assert!(matches!(err, TimestampError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("SHA-1"), "{err}");
}

#[test]
fn made_up_tsa_signer_identification() {
    let t = tsa(TsaOptions::default());
    // By subject key identifier.
    let o = Opts {
        sid_by_key_id: true,
        ..Opts::default()
    };
    check(&t, &o).unwrap();
    // Attributes in another order than DER's: the bytes as signed count.
    let o = Opts {
        reverse_attrs: true,
        signing_time: Some("240618072142Z"),
        ..Opts::default()
    };
    check(&t, &o).unwrap();
    // The root is not in the token: the trust store supplies it.
    let o = Opts {
        include_root: false,
        ..Opts::default()
    };
    let ts = check(&t, &o).unwrap();
    assert_eq!(ts.tsa_chain.len(), 2);
    // No signer certificate in the token.
    let o = Opts {
        include_leaf: false,
        ..Opts::default()
    };
    let err = check(&t, &o).unwrap_err();
    assert!(
        matches!(err, TimestampError::SigningCertificate(_)),
        "{err}"
    );
    // signing-certificate-v2 missing, or naming another certificate.
    let o = Opts {
        with_scv2: false,
        ..Opts::default()
    };
    let err = check(&t, &o).unwrap_err();
    assert!(
        matches!(err, TimestampError::SigningCertificate(_)),
        "{err}"
    );
    assert!(err.to_string().contains("missing"), "{err}");
    let o = Opts {
        scv2_hash: Some(Sha256::digest(&t.root).to_vec()),
        ..Opts::default()
    };
    let err = check(&t, &o).unwrap_err();
    assert!(
        matches!(err, TimestampError::SigningCertificate(_)),
        "{err}"
    );
    // Two signers.
    let o = Opts {
        two_signers: true,
        ..Opts::default()
    };
    let err = check(&t, &o).unwrap_err();
    assert!(matches!(err, TimestampError::Unsupported(_)), "{err}");
}

#[test]
fn made_up_tsa_integrity() {
    let t = tsa(TsaOptions::default());
    let o = Opts {
        sign_with_other_key: true,
        ..Opts::default()
    };
    let err = check(&t, &o).unwrap_err();
    assert!(matches!(err, TimestampError::Integrity(_)), "{err}");
    let o = Opts {
        tamper_tst_info: true,
        ..Opts::default()
    };
    let err = check(&t, &o).unwrap_err();
    assert!(err.to_string().contains("message-digest"), "{err}");
    let o = Opts {
        content_type_attr: "1.2.840.113549.1.7.1",
        ..Opts::default()
    };
    let err = check(&t, &o).unwrap_err();
    assert!(err.to_string().contains("content-type"), "{err}");
    // A signing time outside the TSA chain's validity.
    let o = Opts {
        signing_time: Some("100101000000Z"),
        ..Opts::default()
    };
    let err = check(&t, &o).unwrap_err();
    assert!(err.to_string().contains("signing time"), "{err}");
}

#[test]
fn made_up_tsa_certificate_rules() {
    // The leaf's extended key usage must be critical.
    let t = tsa(TsaOptions {
        critical_eku: false,
        ..TsaOptions::default()
    });
    let err = check(&t, &Opts::default()).unwrap_err();
    assert!(
        matches!(err, TimestampError::Chain(ChainError::Rule { .. })),
        "{err}"
    );
    // The chain must be valid at genTime.
    let t = tsa(TsaOptions {
        leaf_not_before: datetime!(2020-01-01 00:00 UTC),
        leaf_not_after: datetime!(2021-01-01 00:00 UTC),
        ..TsaOptions::default()
    });
    let err = check(&t, &Opts::default()).unwrap_err();
    assert!(
        matches!(err, TimestampError::Chain(ChainError::Expired { .. })),
        "{err}"
    );
    let o = Opts {
        gen_time: "20200618072142Z",
        ..Opts::default()
    };
    check(&t, &o).unwrap();
    // Another TSA's root does not do.
    let other = tsa(TsaOptions::default());
    let err = verify_token(
        &token(&t, &Opts::default()),
        SIGNATURE,
        std::slice::from_ref(&other.root),
    )
    .unwrap_err();
    assert!(matches!(err, TimestampError::Untrusted(_)), "{err}");
}
