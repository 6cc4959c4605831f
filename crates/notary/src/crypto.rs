//! The signature algorithms the Notary Project allows, and the keys that go
//! with them: RSASSA-PSS with SHA-256/384/512 (salt length = hash length)
//! for RSA 2048/3072/4096, ECDSA P-256/P-384/P-521 with SHA-256/384/512.
//! The algorithm must match the signing key: an RSA 3072 key signs PS384
//! and nothing else.

use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

/// Why a key or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The key is not one the Notary Project allows.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// The envelope names an algorithm the key does not use.
    #[error("signature algorithm {alg} does not match the signing key ({key})")]
    AlgorithmMismatch {
        /// Algorithm in the envelope.
        alg: &'static str,
        /// What the key is.
        key: String,
    },
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A private key could not be read or used.
    #[error("private key: {0}")]
    PrivateKey(String),
}

/// A signature algorithm of the Notary Project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// ECDSA on P-521 with SHA-512.
    Es512,
}

impl Alg {
    /// Every algorithm, for lookups.
    pub const ALL: [Alg; 6] = [
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::Es256,
        Alg::Es384,
        Alg::Es512,
    ];

    /// JWS `alg` name.
    pub fn jws_name(self) -> &'static str {
        match self {
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Es512 => "ES512",
        }
    }

    /// COSE algorithm identifier (RFC 8152 / 8230).
    pub fn cose_id(self) -> i64 {
        match self {
            Alg::Ps256 => -37,
            Alg::Ps384 => -38,
            Alg::Ps512 => -39,
            Alg::Es256 => -7,
            Alg::Es384 => -35,
            Alg::Es512 => -36,
        }
    }

    /// The algorithm named `name` in a JWS header.
    pub fn from_jws_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.jws_name() == name)
    }

    /// The algorithm with COSE identifier `id`.
    pub fn from_cose_id(id: i64) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.cose_id() == id)
    }
}

/// A public key that can verify Notary signatures.
#[derive(Clone)]
pub enum PublicKey {
    /// RSA.
    Rsa(rsa::RsaPublicKey),
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// ECDSA P-521.
    P521(p521::ecdsa::VerifyingKey),
}

/// `id-ecPublicKey` curves, by their OIDs.
const SECP256R1: &str = "1.2.840.10045.3.1.7";
const SECP384R1: &str = "1.3.132.0.34";
const SECP521R1: &str = "1.3.132.0.35";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl PublicKey {
    /// Reads a `SubjectPublicKeyInfo`.
    pub fn from_spki(spki: &spki::SubjectPublicKeyInfoOwned) -> Result<Self, CryptoError> {
        use der::Encode;
        let alg = spki.algorithm.oid.to_string();
        match alg.as_str() {
            RSA_ENCRYPTION => {
                let der = spki
                    .to_der()
                    .map_err(|e| CryptoError::UnsupportedKey(e.to_string()))?;
                let key = rsa::RsaPublicKey::from_public_key_der(&der)
                    .map_err(|e| CryptoError::UnsupportedKey(format!("RSA key: {e}")))?;
                Ok(PublicKey::Rsa(key))
            }
            EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                let point = spki.subject_public_key.raw_bytes();
                let bad = |e: ecdsa::Error| CryptoError::UnsupportedKey(format!("EC key: {e}"));
                match curve.as_str() {
                    SECP256R1 => Ok(PublicKey::P256(
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?,
                    )),
                    SECP384R1 => Ok(PublicKey::P384(
                        p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?,
                    )),
                    SECP521R1 => Ok(PublicKey::P521(
                        p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?,
                    )),
                    other => Err(CryptoError::UnsupportedKey(format!(
                        "EC curve {other} (P-256, P-384 and P-521 are allowed)"
                    ))),
                }
            }
            other => Err(CryptoError::UnsupportedKey(format!(
                "key algorithm {other} (RSA and EC are allowed)"
            ))),
        }
    }

    /// A short description (`RSA 3072`, `EC P-256`).
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa(k) => format!("RSA {}", k.size() * 8),
            PublicKey::P256(_) => "EC P-256".into(),
            PublicKey::P384(_) => "EC P-384".into(),
            PublicKey::P521(_) => "EC P-521".into(),
        }
    }

    /// Key size in bits (for the spec's minimums).
    pub fn bits(&self) -> usize {
        match self {
            PublicKey::Rsa(k) => k.size() * 8,
            PublicKey::P256(_) => 256,
            PublicKey::P384(_) => 384,
            PublicKey::P521(_) => 521,
        }
    }

    /// The one algorithm this key signs with.
    pub fn alg(&self) -> Result<Alg, CryptoError> {
        match self {
            PublicKey::Rsa(k) => match k.size() * 8 {
                2048 => Ok(Alg::Ps256),
                3072 => Ok(Alg::Ps384),
                4096 => Ok(Alg::Ps512),
                n => Err(CryptoError::UnsupportedKey(format!(
                    "RSA {n} (2048, 3072 and 4096 are allowed)"
                ))),
            },
            PublicKey::P256(_) => Ok(Alg::Es256),
            PublicKey::P384(_) => Ok(Alg::Es384),
            PublicKey::P521(_) => Ok(Alg::Es512),
        }
    }

    /// Verifies a JWS/COSE signature (`r || s` for ECDSA) over `msg`,
    /// after checking that `alg` is the key's algorithm.
    pub fn verify(&self, alg: Alg, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let own = self.alg()?;
        if own != alg {
            return Err(CryptoError::AlgorithmMismatch {
                alg: alg.jws_name(),
                key: self.describe(),
            });
        }
        use ecdsa::signature::Verifier;
        let ok = match self {
            PublicKey::Rsa(k) => {
                let (scheme, hashed) = pss_for(alg, msg);
                k.verify(scheme, &hashed, sig).is_ok()
            }
            PublicKey::P256(k) => {
                p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            PublicKey::P384(k) => {
                p384::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            PublicKey::P521(k) => {
                p521::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
        };
        ok.then_some(()).ok_or(CryptoError::BadSignature)
    }

    /// Verifies an X.509 certificate signature (`sig_alg` is the
    /// certificate's signatureAlgorithm; ECDSA signatures are DER there).
    pub fn verify_x509(
        &self,
        sig_alg: &spki::AlgorithmIdentifierOwned,
        tbs: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        use ecdsa::signature::hazmat::PrehashVerifier;
        let oid = sig_alg.oid.to_string();
        let hashed = |h: &str| -> Option<Vec<u8>> {
            Some(match h {
                "256" => Sha256::digest(tbs).to_vec(),
                "384" => Sha384::digest(tbs).to_vec(),
                "512" => Sha512::digest(tbs).to_vec(),
                _ => return None,
            })
        };
        let ok = match (self, oid.as_str()) {
            (PublicKey::Rsa(k), "1.2.840.113549.1.1.11") => k
                .verify(
                    rsa::Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(tbs),
                    sig,
                )
                .is_ok(),
            (PublicKey::Rsa(k), "1.2.840.113549.1.1.12") => k
                .verify(
                    rsa::Pkcs1v15Sign::new::<Sha384>(),
                    &Sha384::digest(tbs),
                    sig,
                )
                .is_ok(),
            (PublicKey::Rsa(k), "1.2.840.113549.1.1.13") => k
                .verify(
                    rsa::Pkcs1v15Sign::new::<Sha512>(),
                    &Sha512::digest(tbs),
                    sig,
                )
                .is_ok(),
            (PublicKey::Rsa(k), "1.2.840.113549.1.1.10") => {
                // RSASSA-PSS: the hash is in the parameters; try each allowed
                // one (the salt length is checked by the scheme).
                [Alg::Ps256, Alg::Ps384, Alg::Ps512].into_iter().any(|a| {
                    let (scheme, h) = pss_for(a, tbs);
                    k.verify(scheme, &h, sig).is_ok()
                })
            }
            (PublicKey::P256(k), o) if o.starts_with("1.2.840.10045.4.3.") => {
                let h = hashed(ecdsa_hash(o)).unwrap_or_default();
                p256::ecdsa::Signature::from_der(sig)
                    .is_ok_and(|s| k.verify_prehash(&h, &s).is_ok())
            }
            (PublicKey::P384(k), o) if o.starts_with("1.2.840.10045.4.3.") => {
                let h = hashed(ecdsa_hash(o)).unwrap_or_default();
                p384::ecdsa::Signature::from_der(sig)
                    .is_ok_and(|s| k.verify_prehash(&h, &s).is_ok())
            }
            (PublicKey::P521(k), o) if o.starts_with("1.2.840.10045.4.3.") => {
                let h = hashed(ecdsa_hash(o)).unwrap_or_default();
                p521::ecdsa::Signature::from_der(sig)
                    .is_ok_and(|s| k.verify_prehash(&h, &s).is_ok())
            }
            (_, "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1") => {
                return Err(CryptoError::UnsupportedKey(
                    "SHA-1 certificate signatures are not allowed".into(),
                ))
            }
            (k, o) => {
                return Err(CryptoError::UnsupportedKey(format!(
                    "certificate signature algorithm {o} with a {} key",
                    k.describe()
                )))
            }
        };
        ok.then_some(()).ok_or(CryptoError::BadSignature)
    }
}

/// SHA size of an `ecdsa-with-SHA*` OID.
fn ecdsa_hash(oid: &str) -> &'static str {
    match oid.rsplit('.').next() {
        Some("2") => "256",
        Some("3") => "384",
        Some("4") => "512",
        _ => "",
    }
}

/// The PSS scheme (salt length = hash length) and the hash of `msg`.
fn pss_for(alg: Alg, msg: &[u8]) -> (rsa::Pss, Vec<u8>) {
    match alg {
        Alg::Ps384 | Alg::Es384 => (rsa::Pss::new::<Sha384>(), Sha384::digest(msg).to_vec()),
        Alg::Ps512 | Alg::Es512 => (rsa::Pss::new::<Sha512>(), Sha512::digest(msg).to_vec()),
        Alg::Ps256 | Alg::Es256 => (rsa::Pss::new::<Sha256>(), Sha256::digest(msg).to_vec()),
    }
}
