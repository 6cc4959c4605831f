//! Signatures verified per second, in process: for RSA-3072 (PS384) and
//! P-256 (ES256) keys, in JWS and COSE, the full integrity check (decode,
//! header rules, signature) plus the certificate chain rules, as
//! `pavilion verify` runs them per signature. Used by `bench/notary`.
//!
//!   cargo run --release -p pavilion-notary --example throughput [SECONDS]

use pavilion_notary::envelope::{Envelope, Format, TargetArtifact};
use pavilion_notary::signer::{sign, PrivateKey, SignRequest};
use pavilion_notary::x509::{parse_chain, validate_chain, Purpose};
use std::time::{Duration, Instant};

/// An RSA-3072 key and a self-signed code-signing certificate for it.
fn rsa_3072() -> (PrivateKey, Vec<Vec<u8>>) {
    use rsa::pkcs8::EncodePrivateKey;
    let mut rng = rsa::rand_core::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, 3072).expect("RSA key");
    let pem = key
        .to_pkcs8_pem(Default::default())
        .expect("PKCS#8")
        .to_string();
    let kp =
        rcgen::KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA384).expect("key pair");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CountryName, "US");
    dn.push(rcgen::DnType::StateOrProvinceName, "WA");
    dn.push(rcgen::DnType::OrganizationName, "Bench");
    dn.push(rcgen::DnType::CommonName, "rsa-3072");
    params.distinguished_name = dn;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    let cert = params.self_signed(&kp).expect("certificate");
    (
        PrivateKey::from_pem(&pem).expect("key"),
        vec![cert.der().to_vec()],
    )
}

/// A P-256 key and its chain (test CA + leaf).
fn p256() -> (PrivateKey, Vec<Vec<u8>>) {
    let pki = pavilion_notary::certgen::generate("p256", 30).expect("pki");
    (
        PrivateKey::from_pem(&pki.key_pem).expect("key"),
        pavilion_notary::certgen::pem_certificates(&pki.chain_pem).expect("chain"),
    )
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let target = TargetArtifact {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: pavilion_oci::Digest::sha256(b"bench"),
        size: 1234,
        artifact_type: None,
        annotations: None,
    };
    println!("| key | format | signatures verified per second | signed per second |");
    println!("|---|---|---:|---:|");
    for (name, (key, chain)) in [("RSA-3072 (PS384)", rsa_3072()), ("P-256 (ES256)", p256())] {
        for format in [Format::Jws, Format::Cose] {
            let req = SignRequest {
                target: target.clone(),
                format,
                expiry: None,
                signing_time: time::OffsetDateTime::now_utc(),
                signing_agent: "bench",
            };
            let env = sign(&req, &key, &chain).expect("sign");
            let per_second = |work: &dyn Fn()| {
                let (start, mut n) = (Instant::now(), 0u64);
                while start.elapsed() < Duration::from_secs_f64(secs) {
                    work();
                    n += 1;
                }
                n as f64 / start.elapsed().as_secs_f64()
            };
            let verified = per_second(&|| {
                let e = Envelope::parse(format.media_type(), &env).expect("parse");
                e.verify_integrity().expect("integrity");
                let certs = parse_chain(&e.cert_chain).expect("chain");
                validate_chain(&certs, Purpose::CodeSigning, None).expect("rules");
            });
            let signed = per_second(&|| {
                sign(&req, &key, &chain).expect("sign");
            });
            println!("| {name} | {format:?} | {verified:.0} | {signed:.0} |");
        }
    }
}
