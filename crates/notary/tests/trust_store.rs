//! Trust store directories: notation-go's own test stores
//! (verifier/testdata/truststore in testdata/notary-vectors), the
//! certificates of the other vectors placed in stores, and generated
//! certificates for the cases the vectors do not cover.
//!
//! Which vector stores hold only valid anchors:
//! - x509/ca/valid-trust-store: 5 PEM files, all valid (2 CA roots, 3
//!   self-signed signing certificates) — loads;
//! - x509/ca/trust-store-with-leaf-certs/non-ca.crt: a leaf issued by a CA
//!   that is not in the file — refused (notation refuses it too);
//! - x509/tsa/test-timestamp/globalsignRoot.cer: GlobalSign Root R6 in DER
//!   — loads.

use pavilion_notary::truststore::{StoreRef, StoreType, TrustStore, TrustStoreError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn vectors() -> PathBuf {
    pavilion_notary::test_vectors::dir()
}

fn notation_go_store() -> TrustStore {
    TrustStore::new(vectors().join("notation-go/verifier/testdata/truststore"))
}

fn r(s: &str) -> StoreRef {
    s.parse().unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A fresh store root with `files` copied into `<type>/<name>/`.
fn store_with(tmp: &Path, reference: &str, files: &[(&str, Vec<u8>)]) -> (TrustStore, StoreRef) {
    let ts = TrustStore::new(tmp);
    let sr = r(reference);
    let dir = ts.store_dir(&sr);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    (ts, sr)
}

fn read(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn valid_trust_store_file(name: &str) -> Vec<u8> {
    read(
        vectors()
            .join("notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store")
            .join(name),
    )
}

#[test]
fn notation_go_valid_trust_store_loads_every_certificate_byte_for_byte() {
    let certs = notation_go_store()
        .certificates(&r("ca:valid-trust-store"))
        .unwrap();
    // SHA-256 of each certificate's DER (openssl x509 -outform der), in
    // file name order.
    let want = [
        "cbb522d7b7f127ad6a0113865bdf1cd4102e7d0759af635a7cf4720dc963c53b", // GlobalSignRootCA.crt
        "86df80412a63eb55b5c7a4ad6a8c396ce3188c167c6226da1b5bbbee8443d644", // NotationTestRoot.pem
        "01937612e3e24e6496b325fb899fdb3b7045350ab2d91141c6310a917d5cebe2", // TestTimestamp.crt
        "6572ece2675f0a36116c03d0dbc14922a12418630bbe41b26f9c95ebf016cd01", // TestTimestampNotYetValid.crt
        "455fca44ab8d1e5d87ccaf3736b53d2667d651452c70f2feab7ba8047c052669", // wabbit-networks.io.crt
    ];
    let got: Vec<String> = certs.iter().map(|c| sha256_hex(c)).collect();
    assert_eq!(got, want);
}

#[test]
fn notation_go_tsa_store_loads_its_der_root() {
    let certs = notation_go_store()
        .certificates(&r("tsa:test-timestamp"))
        .unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(
        sha256_hex(&certs[0]),
        "2cabeafe37d06ca22aba7391c0033d25982952c453647349763a3ab5ad6ccf69"
    );
    // The file is DER: the bytes are the file's.
    assert_eq!(
        certs[0],
        read(vectors().join(
            "notation-go/verifier/testdata/truststore/x509/tsa/test-timestamp/globalsignRoot.cer"
        ))
    );
}

#[test]
fn notation_go_store_with_a_leaf_is_refused_naming_the_file() {
    match notation_go_store().load(&r("ca:trust-store-with-leaf-certs")) {
        Err(TrustStoreError::NotAnchor {
            path,
            index,
            subject,
            why,
            ..
        }) => {
            assert!(path.ends_with("non-ca.crt"));
            assert_eq!(index, 1);
            assert!(subject.contains("CN=wabbit-networks.io"), "{subject}");
            assert!(why.contains("neither a CA certificate"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let msg = notation_go_store()
        .load(&r("ca:trust-store-with-leaf-certs"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("non-ca.crt") && msg.contains("ca:trust-store-with-leaf-certs"),
        "{msg}"
    );
}

#[test]
fn notation_go_stores_that_do_not_exist() {
    for s in [
        "signingAuthority:valid-trust-store",
        "tsa:valid-trust-store",
        "ca:test-timestamp",
        "ca:missing",
    ] {
        assert!(
            matches!(
                notation_go_store().load(&r(s)),
                Err(TrustStoreError::Missing { .. })
            ),
            "{s}"
        );
    }
}

#[test]
fn every_self_signed_vector_anchor_is_accepted_in_ca_and_signing_authority_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let derived = vectors().join("derived");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&derived)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("selfsigned-")
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                read(p),
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 13, "{}", files.len());
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    for reference in ["ca:selfsigned", "signingAuthority:selfsigned"] {
        let (ts, sr) = store_with(tmp.path(), reference, &refs);
        let certs = ts.certificates(&sr).unwrap();
        assert_eq!(certs.len(), files.len());
        // The file names carry the first 12 hex digits of the SHA-256.
        for ((name, _), der) in files.iter().zip(&certs) {
            let prefix = &name["selfsigned-".len()..name.len() - ".pem".len()];
            assert!(sha256_hex(der).starts_with(prefix), "{name}");
        }
    }
    // In a tsa store they are refused: self-signed, but not CAs.
    let (ts, sr) = store_with(tmp.path(), "tsa:selfsigned", &refs[..1]);
    assert!(matches!(
        ts.load(&sr),
        Err(TrustStoreError::NotAnchor { why, .. }) if why.contains("not a CA")
    ));
}

#[test]
fn tsa_stores_hold_only_root_cas() {
    let tmp = tempfile::tempdir().unwrap();
    // Roots from the vectors: accepted.
    let (ts, sr) = store_with(
        tmp.path(),
        "tsa:roots",
        &[
            ("r6.cer", read(vectors().join("notation-go/verifier/testdata/truststore/x509/tsa/test-timestamp/globalsignRoot.cer"))),
            ("r3.crt", valid_trust_store_file("GlobalSignRootCA.crt")),
            ("notation.pem", valid_trust_store_file("NotationTestRoot.pem")),
        ],
    );
    assert_eq!(ts.certificates(&sr).unwrap().len(), 3);

    // A self-signed signing certificate (not a CA): refused.
    let (ts, sr) = store_with(
        tmp.path(),
        "tsa:leaf",
        &[(
            "wabbit.crt",
            valid_trust_store_file("wabbit-networks.io.crt"),
        )],
    );
    assert!(matches!(
        ts.load(&sr),
        Err(TrustStoreError::NotAnchor { why, .. }) if why.contains("not a CA")
    ));

    // The GlobalSign timestamping chain from a token: its first
    // certificate is the TSA's leaf, refused in tsa and in ca stores.
    let chain = read(vectors().join("derived/tsa-chain-in-token-12b400daee43.pem"));
    for reference in ["tsa:chain", "ca:chain"] {
        let (ts, sr) = store_with(tmp.path(), reference, &[("chain.pem", chain.clone())]);
        match ts.load(&sr) {
            Err(TrustStoreError::NotAnchor { index, subject, .. }) => {
                assert_eq!(index, 1, "{reference}");
                assert!(subject.contains("Globalsign TSA for Advanced"), "{subject}");
            }
            other => panic!("{reference}: {other:?}"),
        }
    }

    // An intermediate CA (issued by another CA): fine in a ca store (it is
    // a CA certificate, as notation accepts), refused in a tsa store.
    let (root, intermediate) = ca_and_intermediate();
    let (ts, sr) = store_with(tmp.path(), "ca:inter", &[("i.der", intermediate.clone())]);
    assert_eq!(ts.certificates(&sr).unwrap(), vec![intermediate.clone()]);
    let (ts, sr) = store_with(tmp.path(), "tsa:inter", &[("i.der", intermediate)]);
    assert!(matches!(
        ts.load(&sr),
        Err(TrustStoreError::NotAnchor { why, .. }) if why.contains("issued by")
    ));
    let (ts, sr) = store_with(tmp.path(), "tsa:genroot", &[("root.der", root)]);
    assert!(ts.load(&sr).is_ok());

    // A root CA whose key usage does not allow certificate signing.
    let (ts, sr) = store_with(tmp.path(), "tsa:noku", &[("x.der", ca_without_cert_sign())]);
    assert!(matches!(
        ts.load(&sr),
        Err(TrustStoreError::NotAnchor { why, .. }) if why.contains("key usage")
    ));
}

/// A generated root CA and an intermediate CA it issued (DER).
fn ca_and_intermediate() -> (Vec<u8>, Vec<u8>) {
    let root_key = rcgen::KeyPair::generate().unwrap();
    let mut root = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    root.distinguished_name
        .push(rcgen::DnType::CommonName, "test root");
    root.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    root.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let root_cert = root.self_signed(&root_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut inter = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    inter
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test intermediate");
    inter.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    inter.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let inter_cert = inter.signed_by(&key, &root_cert, &root_key).unwrap();
    (root_cert.der().to_vec(), inter_cert.der().to_vec())
}

fn ca_without_cert_sign() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "odd root");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    p.self_signed(&key).unwrap().der().to_vec()
}

/// A self-signed certificate without basicConstraints (a signing
/// certificate used as its own anchor).
fn self_signed_leaf() -> Vec<u8> {
    rcgen::generate_simple_self_signed(vec!["leaf.example".to_string()])
        .unwrap()
        .cert
        .der()
        .to_vec()
}

#[test]
fn a_self_signed_leaf_must_really_be_self_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let good = self_signed_leaf();
    let (ts, sr) = store_with(tmp.path(), "ca:good", &[("leaf.der", good.clone())]);
    assert_eq!(ts.certificates(&sr).unwrap(), vec![good.clone()]);

    // Same certificate with a corrupted signature: it parses, but is no
    // longer self-signed, and is not a CA.
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    let (ts, sr) = store_with(tmp.path(), "ca:bad", &[("leaf.der", bad)]);
    assert!(matches!(
        ts.load(&sr),
        Err(TrustStoreError::NotAnchor { why, .. }) if why.contains("self-signed")
    ));
}

#[test]
fn every_file_is_read_whatever_its_name_and_format() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let leaf = self_signed_leaf();
    let (root, _) = ca_and_intermediate();
    let pem = |der: &[u8]| {
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    };
    let (ts, sr) = store_with(
        tmp.path(),
        "ca:mixed",
        &[
            // Two PEM certificates in one file, no extension.
            (
                "bundle",
                format!("{}{}", pem(&root), pem(&leaf)).into_bytes(),
            ),
            // DER with an unusual extension.
            ("anchor.bin", root.clone()),
            // Two DER certificates concatenated.
            ("pair.der", [leaf.clone(), root.clone()].concat()),
        ],
    );
    let certs = ts.certificates(&sr).unwrap();
    // Files in name order: anchor.bin, bundle, pair.der.
    assert_eq!(
        certs,
        vec![
            root.clone(),
            root.clone(),
            leaf.clone(),
            leaf.clone(),
            root.clone()
        ]
    );
}

#[test]
fn broken_stores_are_refused_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let leaf = self_signed_leaf();

    // Missing.
    let ts = TrustStore::new(tmp.path());
    match ts.load(&r("ca:none")) {
        Err(e @ TrustStoreError::Missing { .. }) => {
            assert!(e.to_string().contains("ca:none"), "{e}");
        }
        other => panic!("{other:?}"),
    }

    // Empty.
    let (ts, sr) = store_with(tmp.path(), "ca:empty", &[]);
    assert!(matches!(ts.load(&sr), Err(TrustStoreError::Empty { .. })));

    // Only a subdirectory: its certificates are ignored, so the store is
    // empty; next to a certificate, the subdirectory is reported.
    let (ts, sr) = store_with(tmp.path(), "ca:sub", &[]);
    let sub = ts.store_dir(&sr).join("sub-dir");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("cert-3.der"), &leaf).unwrap();
    assert!(matches!(ts.load(&sr), Err(TrustStoreError::Empty { .. })));
    std::fs::write(ts.store_dir(&sr).join("cert1.der"), &leaf).unwrap();
    let contents = ts.load(&sr).unwrap();
    assert_eq!(contents.certificates, vec![leaf.clone()]);
    assert_eq!(contents.ignored, vec![sub]);

    // A file that holds no certificate, next to good ones.
    let (ts, sr) = store_with(
        tmp.path(),
        "ca:junk",
        &[
            ("a.der", leaf.clone()),
            ("notes.txt", b"remember the milk".to_vec()),
        ],
    );
    match ts.load(&sr) {
        Err(e @ TrustStoreError::NoCertificate { .. }) => {
            assert!(e.to_string().contains("notes.txt"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let (ts, sr) = store_with(tmp.path(), "ca:emptyfile", &[("zero.pem", Vec::new())]);
    assert!(matches!(
        ts.load(&sr),
        Err(TrustStoreError::NoCertificate { .. })
    ));
    let (ts, sr) = store_with(
        tmp.path(),
        "ca:keyonly",
        &[(
            "k.pem",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
        )],
    );
    assert!(matches!(
        ts.load(&sr),
        Err(TrustStoreError::NoCertificate { .. })
    ));

    // A CERTIFICATE block that is not a certificate.
    let (ts, sr) = store_with(
        tmp.path(),
        "ca:garbled",
        &[(
            "g.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
        )],
    );
    match ts.load(&sr) {
        Err(e @ TrustStoreError::BadCertificate { .. }) => {
            assert!(e.to_string().contains("g.pem"), "{e}");
        }
        other => panic!("{other:?}"),
    }

    // The store path is a file.
    let ts = TrustStore::new(tmp.path());
    let f = ts.store_dir(&r("ca:afile"));
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(&f, &leaf).unwrap();
    assert!(matches!(
        ts.load(&r("ca:afile")),
        Err(TrustStoreError::NotRegular {
            expected: "directory",
            ..
        })
    ));

    // A hand-built reference with a name escaping the store directory.
    let escape = StoreRef {
        kind: StoreType::Ca,
        name: "../ca/empty".to_string(),
    };
    assert!(matches!(
        ts.load(&escape),
        Err(TrustStoreError::InvalidName { .. })
    ));
}

#[cfg(unix)]
#[test]
fn symbolic_links_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let leaf = self_signed_leaf();
    let (ts, sr) = store_with(tmp.path(), "ca:real", &[("a.der", leaf.clone())]);
    assert!(ts.load(&sr).is_ok());

    // A linked certificate file.
    let (ts2, sr2) = store_with(tmp.path(), "ca:linkedfile", &[]);
    std::os::unix::fs::symlink(
        ts.store_dir(&sr).join("a.der"),
        ts2.store_dir(&sr2).join("a.der"),
    )
    .unwrap();
    match ts2.load(&sr2) {
        Err(TrustStoreError::Symlink { path, .. }) => assert!(path.ends_with("a.der")),
        other => panic!("{other:?}"),
    }

    // A linked store directory.
    let ts3 = TrustStore::new(tmp.path());
    std::os::unix::fs::symlink(ts.store_dir(&sr), ts3.store_dir(&r("ca:linkeddir"))).unwrap();
    match ts3.load(&r("ca:linkeddir")) {
        Err(TrustStoreError::Symlink { path, .. }) => assert!(path.ends_with("linkeddir")),
        other => panic!("{other:?}"),
    }

    // A dangling link is refused the same way, not reported missing.
    std::os::unix::fs::symlink(tmp.path().join("nowhere"), ts3.store_dir(&r("ca:dangling")))
        .unwrap();
    assert!(matches!(
        ts3.load(&r("ca:dangling")),
        Err(TrustStoreError::Symlink { .. })
    ));
}
