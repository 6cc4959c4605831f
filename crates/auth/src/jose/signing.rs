//! The registry's own token signing key: ES256 on P-256 (small keys and
//! signatures, what Distribution's token auth and most OIDC verifiers
//! accept).

use super::jwk::{Jwk, PublicKey};
use super::{alg::Alg, b64, JoseError};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use serde_json::{json, Value};

/// Largest PEM read: a P-256 private key is ~250 bytes.
const MAX_PEM: usize = 64 << 10;

/// A P-256 private key that signs ES256 tokens.
#[derive(Clone)]
pub struct SigningKey {
    // Visible to the module's tests, which sign forged headers with it.
    pub(super) key: p256::ecdsa::SigningKey,
    kid: String,
}

/// Shows the key's id only: the secret must not reach a log.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKey {
    pub(super) fn with(key: p256::ecdsa::SigningKey) -> SigningKey {
        let kid = PublicKey::P256(*key.verifying_key()).thumbprint();
        SigningKey { key, kid }
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> SigningKey {
        SigningKey::with(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    /// Reads a PEM private key: PKCS#8 ("PRIVATE KEY", what `to_pem` and
    /// `openssl genpkey` write) or SEC1 ("EC PRIVATE KEY", what
    /// `openssl ecparam -genkey` writes). Only P-256 keys.
    pub fn from_pem(pem: &str) -> Result<SigningKey, JoseError> {
        if pem.len() > MAX_PEM {
            return Err(JoseError::Key("PEM larger than 64 KiB".into()));
        }
        let pem = pem.trim();
        let secret = p256::SecretKey::from_pkcs8_pem(pem)
            .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
            .map_err(|_| {
                JoseError::Key(
                    "not a PEM P-256 private key (PKCS#8 \"PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\")"
                        .into(),
                )
            })?;
        Ok(SigningKey::with(secret.into()))
    }

    /// The key as PKCS#8 PEM ("PRIVATE KEY").
    pub fn to_pem(&self) -> String {
        // Encoding a valid in-memory P-256 key has no failure case (the
        // DER is of fixed size); this is never reached with outside input.
        self.key
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .expect("a P-256 key encodes as PKCS#8")
            .to_string()
    }

    /// The key's id: the RFC 7638 thumbprint of its public key, so that
    /// any verifier derives the same id from the key alone.
    pub fn kid(&self) -> String {
        self.kid.clone()
    }

    /// The public key as a JWK, for a JWKS document.
    pub fn public_jwk(&self) -> Value {
        self.jwk().to_json()
    }

    pub(crate) fn jwk(&self) -> Jwk {
        Jwk {
            key: PublicKey::P256(*self.key.verifying_key()),
            kid: self.kid.clone(),
            alg: Some(Alg::Es256),
        }
    }

    /// A compact JWS of `claims` with header `{"alg":"ES256","typ":"JWT",
    /// "kid":...}`; the signature is the 64-byte `r || s` JWS uses (RFC
    /// 7518 §3.4), not DER.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }
}
