//! `pavilion cert generate`: a throwaway PKI so that a new user can sign
//! and verify within a minute — a test CA and a code-signing certificate it
//! issued, both ECDSA P-256, shaped to pass the spec's certificate rules.
//! Not for production keys.

use time::{Duration, OffsetDateTime};

/// A generated CA and signing certificate.
pub struct TestPki {
    /// The CA certificate (PEM): what goes into a `ca` trust store.
    pub ca_pem: String,
    /// The signing certificate followed by the CA (PEM): the chain to sign with.
    pub chain_pem: String,
    /// The signing key (PKCS#8 PEM).
    pub key_pem: String,
}

fn dn(common_name: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CountryName, "US");
    dn.push(rcgen::DnType::StateOrProvinceName, "WA");
    dn.push(rcgen::DnType::LocalityName, "Seattle");
    dn.push(rcgen::DnType::OrganizationName, "Pavilion Test");
    dn.push(rcgen::DnType::CommonName, common_name);
    dn
}

/// Generates a CA named `name CA` and a signing certificate named `name`,
/// valid from now for `days` days.
pub fn generate(name: &str, days: i64) -> Result<TestPki, String> {
    let err = |e: rcgen::Error| e.to_string();
    let now = OffsetDateTime::now_utc();
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;

    let ca_key = rcgen::KeyPair::generate_for(alg).map_err(err)?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name = dn(&format!("{name} CA"));
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca.not_before = now - Duration::minutes(5);
    ca.not_after = now + Duration::days(days);
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

    let key = rcgen::KeyPair::generate_for(alg).map_err(err)?;
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    leaf.distinguished_name = dn(name);
    leaf.is_ca = rcgen::IsCa::ExplicitNoCa;
    leaf.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    leaf.not_before = now - Duration::minutes(5);
    leaf.not_after = now + Duration::days(days);
    let leaf_cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(err)?;

    Ok(TestPki {
        ca_pem: ca_cert.pem(),
        chain_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        key_pem: key.serialize_pem(),
    })
}

/// The DER certificates of a PEM text (every CERTIFICATE block; see
/// [`crate::pem::certificates`]).
pub fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    crate::pem::certificates(text.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::{parse_chain, validate_chain, Purpose};

    #[test]
    fn generated_chain_passes_the_certificate_rules_and_signs() {
        let pki = generate("pavilion-test", 30).unwrap();
        let chain = pem_certificates(&pki.chain_pem).unwrap();
        assert_eq!(chain.len(), 2);
        let certs = parse_chain(&chain).unwrap();
        validate_chain(
            &certs,
            Purpose::CodeSigning,
            Some(OffsetDateTime::now_utc()),
        )
        .unwrap();
        assert!(certs[0].subject().contains("CN=pavilion-test"));
        let key = crate::signer::PrivateKey::from_pem(&pki.key_pem).unwrap();
        let sig = key.sign(b"msg").unwrap();
        let alg = key.public_key().alg().unwrap();
        certs[0]
            .public_key()
            .unwrap()
            .verify(alg, b"msg", &sig)
            .unwrap();
        assert!(
            pem_certificates("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").is_err()
        );
    }
}
