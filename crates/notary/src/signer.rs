//! Producing signatures: a private key (PEM: PKCS#8, PKCS#1 RSA or SEC1
//! EC, as notation and openssl write them) and its certificate chain sign
//! a target artifact's descriptor into a JWS or COSE envelope.

use crate::crypto::{Alg, CryptoError, PublicKey};
use crate::envelope::{
    headers, EnvelopeError, Format, Payload, SignedAttributes, SigningScheme, TargetArtifact,
    PAYLOAD_CONTENT_TYPE,
};
use crate::x509::{validate_chain, Cert, Purpose};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// A signing key.
pub enum PrivateKey {
    /// RSA.
    Rsa(Box<rsa::RsaPrivateKey>),
    /// ECDSA P-256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::SigningKey),
    /// ECDSA P-521.
    P521(p521::ecdsa::SigningKey),
}

/// p521's signing key is built from the scalar bytes.
fn p521_signing(k: &p521::SecretKey) -> Result<PrivateKey, CryptoError> {
    p521::ecdsa::SigningKey::from_bytes(&k.to_bytes())
        .map(PrivateKey::P521)
        .map_err(|e| CryptoError::PrivateKey(e.to_string()))
}

impl PrivateKey {
    /// Reads a PEM private key.
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let bad = |why: &str| CryptoError::PrivateKey(why.to_string());
        if pem.contains("BEGIN RSA PRIVATE KEY") {
            return rsa::RsaPrivateKey::from_pkcs1_pem(pem)
                .map(|k| PrivateKey::Rsa(Box::new(k)))
                .map_err(|e| bad(&e.to_string()));
        }
        if pem.contains("BEGIN EC PRIVATE KEY") {
            if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
                return Ok(PrivateKey::P256(k.into()));
            }
            if let Ok(k) = p384::SecretKey::from_sec1_pem(pem) {
                return Ok(PrivateKey::P384(k.into()));
            }
            if let Ok(k) = p521::SecretKey::from_sec1_pem(pem) {
                return p521_signing(&k);
            }
            return Err(bad("EC key on an unsupported curve"));
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::Rsa(Box::new(k)));
        }
        if let Ok(k) = p256::SecretKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::P256(k.into()));
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::P384(k.into()));
        }
        if let Ok(k) = p521::SecretKey::from_pkcs8_pem(pem) {
            return p521_signing(&k);
        }
        Err(bad(
            "not a PEM RSA or EC (P-256/384/521) private key in PKCS#8, PKCS#1 or SEC1 form",
        ))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::P384(k) => PublicKey::P384(*k.verifying_key()),
            PrivateKey::P521(k) => PublicKey::P521(p521::ecdsa::VerifyingKey::from(k)),
        }
    }

    /// Signs `msg` with the key's algorithm (`r || s` for ECDSA).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use ecdsa::signature::Signer;
        let alg = self.public_key().alg()?;
        Ok(match self {
            PrivateKey::Rsa(k) => {
                let mut rng = rsa::rand_core::OsRng;
                let res = match alg {
                    Alg::Ps384 => {
                        k.sign_with_rng(&mut rng, rsa::Pss::new::<Sha384>(), &Sha384::digest(msg))
                    }
                    Alg::Ps512 => {
                        k.sign_with_rng(&mut rng, rsa::Pss::new::<Sha512>(), &Sha512::digest(msg))
                    }
                    _ => k.sign_with_rng(&mut rng, rsa::Pss::new::<Sha256>(), &Sha256::digest(msg)),
                };
                res.map_err(|e| CryptoError::PrivateKey(e.to_string()))?
            }
            PrivateKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_bytes().to_vec()
            }
            PrivateKey::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign(msg);
                s.to_bytes().to_vec()
            }
            PrivateKey::P521(k) => {
                let s: p521::ecdsa::Signature = k.sign(msg);
                s.to_bytes().to_vec()
            }
        })
    }
}

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key or chain is unusable.
    #[error("{0}")]
    Key(String),
    /// Building the envelope failed.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// What to sign and how.
pub struct SignRequest<'a> {
    /// The artifact's descriptor.
    pub target: TargetArtifact,
    /// Envelope format.
    pub format: Format,
    /// Optional expiry.
    pub expiry: Option<OffsetDateTime>,
    /// Signing time (now, normally).
    pub signing_time: OffsetDateTime,
    /// Signing agent string.
    pub signing_agent: &'a str,
}

/// Signs a target artifact with `key` and its `chain` (leaf first, ending
/// at the root). The chain must satisfy the spec's certificate rules and
/// its leaf must hold the key's public half.
pub fn sign(
    req: &SignRequest<'_>,
    key: &PrivateKey,
    chain: &[Vec<u8>],
) -> Result<Vec<u8>, SignError> {
    let certs = crate::x509::parse_chain(chain).map_err(|e| SignError::Key(e.to_string()))?;
    let leaf: &Cert = certs
        .first()
        .ok_or_else(|| SignError::Key("the certificate chain is empty".into()))?;
    validate_chain(&certs, Purpose::CodeSigning, Some(req.signing_time))
        .map_err(|e| SignError::Key(e.to_string()))?;
    let cert_key = leaf
        .public_key()
        .map_err(|e| SignError::Key(e.to_string()))?;
    let alg = key
        .public_key()
        .alg()
        .map_err(|e| SignError::Key(e.to_string()))?;
    // The key must be the leaf's: sign a probe and check it with the leaf.
    let probe = b"pavilion key check";
    let sig = key.sign(probe).map_err(|e| SignError::Key(e.to_string()))?;
    cert_key.verify(alg, probe, &sig).map_err(|_| {
        SignError::Key("the private key does not belong to the signing certificate".into())
    })?;
    let mut critical = vec![headers::SIGNING_SCHEME.to_string()];
    if req.expiry.is_some() {
        critical.push(headers::EXPIRY.to_string());
    }
    let signed = SignedAttributes {
        alg,
        content_type: PAYLOAD_CONTENT_TYPE.to_string(),
        signing_scheme: SigningScheme::X509,
        signing_time: Some(req.signing_time),
        authentic_signing_time: None,
        expiry: req.expiry,
        critical,
        verification_plugin: None,
        verification_plugin_min_version: None,
        extended: BTreeMap::new(),
    };
    let payload = serde_json::to_vec(&Payload {
        target_artifact: req.target.clone(),
    })
    .map_err(|e| SignError::Key(e.to_string()))?;
    let sign_fn = |input: &[u8]| key.sign(input);
    let env = match req.format {
        Format::Jws => {
            crate::jws::build(&signed, &payload, chain, Some(req.signing_agent), sign_fn)?
        }
        Format::Cose => {
            crate::cose::build(&signed, &payload, chain, Some(req.signing_agent), sign_fn)?
        }
    };
    Ok(env)
}
