//! A throwaway PKI for TLS tests: a CA that signs a server certificate for
//! 127.0.0.1 and client certificates, and a second CA the server does not
//! trust, so a test can show a stranger's certificate refused.

use std::path::{Path, PathBuf};

/// The files and PEM texts a TLS test needs.
pub struct Pki {
    /// The trusted CA's certificate (PEM file).
    pub ca: PathBuf,
    /// Its PEM text.
    pub ca_pem: String,
    /// The server's chain (its certificate, then the CA's) and key.
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
    /// (certificate, key) PEM texts of a client certificate from the CA.
    pub client: (String, String),
    /// The same from a CA the server does not trust.
    pub stranger: (String, String),
}

fn ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    (p.self_signed(&key).unwrap(), key)
}

/// Writes the PKI under `dir`; client certificates carry the common name
/// `cn` and, when given, the URI SAN `uri` (a SPIFFE ID).
pub fn pki(dir: &Path, cn: &str, uri: Option<&str>) -> Pki {
    let (ca_cert, ca_key) = ca("pavilion test CA");
    let (other_cert, other_key) = ca("someone else's CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let client = |issuer: &rcgen::Certificate, issuer_key: &rcgen::KeyPair| {
        let k = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if let Some(u) = uri {
            p.subject_alt_names = vec![rcgen::SanType::URI(u.try_into().unwrap())];
        }
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let c = p.signed_by(&k, issuer, issuer_key).unwrap();
        (c.pem(), k.serialize_pem())
    };
    let w = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: w("ca.pem", ca_cert.pem()),
        ca_pem: ca_cert.pem(),
        server_crt: w("tls.crt", server.pem() + &ca_cert.pem()),
        server_key: w("tls.key", key.serialize_pem()),
        client: client(&ca_cert, &ca_key),
        stranger: client(&other_cert, &other_key),
    }
}
