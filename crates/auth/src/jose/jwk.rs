//! Public keys as JWKs (RFC 7517/7518): reading them from a JWKS entry or
//! a PEM SubjectPublicKeyInfo, writing them back, and their RFC 7638
//! thumbprint (the `kid` of keys that come without one).

use super::alg::{Alg, Family};
use super::{b64, unb64, JoseError};
use rsa::traits::PublicKeyParts as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Shortest RSA modulus accepted (NIST SP 800-131A; RFC 7518 §3.3).
const MIN_RSA_BITS: usize = 2048;
/// Longest `kid` kept: real ones are thumbprints or short names.
const MAX_KID: usize = 256;
/// Largest PEM read: a 4096-bit RSA public key is under 1 KiB.
const MAX_PEM: usize = 64 << 10;

/// A public key a token can be verified with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

/// A key of a set: the key, the name tokens use for it, and the one
/// algorithm it is restricted to when its JWK says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Jwk {
    pub key: PublicKey,
    pub kid: String,
    pub alg: Option<Alg>,
}

impl PublicKey {
    pub(crate) fn family(&self) -> Family {
        match self {
            PublicKey::P256(_) => Family::P256,
            PublicKey::P384(_) => Family::P384,
            PublicKey::Rsa(_) => Family::Rsa,
        }
    }

    /// The JWK members that identify the key (RFC 7638 §3.2), in the
    /// lexicographic order a thumbprint hashes them in.
    fn members(&self) -> Vec<(&'static str, String)> {
        match self {
            PublicKey::P256(k) => ec_members("P-256", k.to_encoded_point(false).as_bytes(), 32),
            PublicKey::P384(k) => ec_members("P-384", k.to_encoded_point(false).as_bytes(), 48),
            PublicKey::Rsa(k) => vec![
                ("e", b64(&k.e().to_bytes_be())),
                ("kty", "RSA".into()),
                ("n", b64(&k.n().to_bytes_be())),
            ],
        }
    }

    /// RFC 7638 thumbprint: SHA-256 of the required members as compact
    /// JSON with sorted keys, base64url. The values are base64url or fixed
    /// names, so no JSON escaping is needed.
    pub(crate) fn thumbprint(&self) -> String {
        let body: Vec<String> = self
            .members()
            .iter()
            .map(|(k, v)| format!("\"{k}\":\"{v}\""))
            .collect();
        b64(&Sha256::digest(format!("{{{}}}", body.join(","))))
    }

    /// Reads a PEM public key: SubjectPublicKeyInfo ("PUBLIC KEY") of a
    /// P-256, P-384 or RSA key, or PKCS#1 ("RSA PUBLIC KEY").
    pub(crate) fn from_pem(pem: &str) -> Result<PublicKey, JoseError> {
        use p256::pkcs8::DecodePublicKey as _;
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        if pem.len() > MAX_PEM {
            return Err(JoseError::Key("PEM larger than 64 KiB".into()));
        }
        let pem = pem.trim();
        let key = if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            PublicKey::P256(k)
        } else if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            PublicKey::P384(k)
        } else if let Ok(k) = rsa::RsaPublicKey::from_public_key_pem(pem) {
            PublicKey::Rsa(k)
        } else if let Ok(k) = rsa::RsaPublicKey::from_pkcs1_pem(pem) {
            PublicKey::Rsa(k)
        } else {
            return Err(JoseError::Key(
                "not a PEM public key of P-256, P-384 or RSA".into(),
            ));
        };
        check_rsa_size(&key)?;
        Ok(key)
    }
}

/// The members of an EC key from its uncompressed SEC1 point
/// (`04 || x || y`, coordinates of `len` bytes).
fn ec_members(crv: &'static str, point: &[u8], len: usize) -> Vec<(&'static str, String)> {
    let x = point.get(1..1 + len).unwrap_or_default();
    let y = point.get(1 + len..1 + 2 * len).unwrap_or_default();
    vec![
        ("crv", crv.into()),
        ("kty", "EC".into()),
        ("x", b64(x)),
        ("y", b64(y)),
    ]
}

fn check_rsa_size(key: &PublicKey) -> Result<(), JoseError> {
    match key {
        PublicKey::Rsa(k) if k.n().bits() < MIN_RSA_BITS => Err(JoseError::Key(format!(
            "RSA key of {} bits; at least {MIN_RSA_BITS} are required",
            k.n().bits()
        ))),
        _ => Ok(()),
    }
}

impl Jwk {
    /// The JWK of a set's document: the key's members, `kid`, `use` and
    /// the algorithm when the key is restricted to one.
    pub(crate) fn to_json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        for (k, v) in self.key.members() {
            obj.insert(k.into(), Value::String(v));
        }
        obj.insert("kid".into(), json!(self.kid));
        obj.insert("use".into(), json!("sig"));
        if let Some(alg) = self.alg {
            obj.insert("alg".into(), json!(alg.as_str()));
        }
        Value::Object(obj)
    }

    /// One entry of a JWKS document. `Ok(None)`: a key that is not for
    /// verifying signatures with an algorithm we accept (`use` other than
    /// `sig`, `key_ops` without `verify`, an unknown `kty`, curve or
    /// `alg`), which a set skips. A key we would use but cannot read is an
    /// error: a set that silently lost a key would refuse its tokens for
    /// reasons nobody could see.
    pub(crate) fn from_json(entry: &Value) -> Result<Option<Jwk>, JoseError> {
        let obj = entry
            .as_object()
            .ok_or_else(|| JoseError::Key("a JWKS entry is not a JSON object".into()))?;
        match obj.get("use") {
            None => {}
            Some(Value::String(u)) if u == "sig" => {}
            Some(Value::String(_)) => return Ok(None),
            Some(_) => return Err(JoseError::Key("a JWK's \"use\" is not a string".into())),
        }
        if let Some(ops) = obj.get("key_ops") {
            let ops = ops
                .as_array()
                .ok_or_else(|| JoseError::Key("a JWK's \"key_ops\" is not an array".into()))?;
            if !ops.iter().any(|o| o == "verify") {
                return Ok(None);
            }
        }
        let alg = match obj.get("alg") {
            None => None,
            Some(Value::String(a)) => match Alg::parse(a) {
                Ok(a) => Some(a),
                Err(_) => return Ok(None),
            },
            Some(_) => return Err(JoseError::Key("a JWK's \"alg\" is not a string".into())),
        };
        let key = match field(obj, "kty")? {
            "EC" => match field(obj, "crv")? {
                "P-256" => PublicKey::P256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point(obj, 32)?)
                        .map_err(|_| JoseError::Key("a P-256 JWK is not on the curve".into()))?,
                ),
                "P-384" => PublicKey::P384(
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(&point(obj, 48)?)
                        .map_err(|_| JoseError::Key("a P-384 JWK is not on the curve".into()))?,
                ),
                _ => return Ok(None),
            },
            "RSA" => {
                let n = rsa::BigUint::from_bytes_be(&coordinate(obj, "n")?);
                let e = rsa::BigUint::from_bytes_be(&coordinate(obj, "e")?);
                let key = PublicKey::Rsa(rsa::RsaPublicKey::new(n, e).map_err(|e| {
                    JoseError::Key(format!("an RSA JWK is not a usable key ({e})"))
                })?);
                check_rsa_size(&key)?;
                key
            }
            _ => return Ok(None),
        };
        if alg.is_some_and(|a| a.family() != key.family()) {
            return Err(JoseError::Key(
                "a JWK's \"alg\" does not fit its key type".into(),
            ));
        }
        let kid = match obj.get("kid") {
            None => key.thumbprint(),
            Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_KID => k.clone(),
            Some(_) => {
                return Err(JoseError::Key(
                    "a JWK's \"kid\" is not a string of 1 to 256 bytes".into(),
                ))
            }
        };
        Ok(Some(Jwk { key, kid, alg }))
    }
}

fn field<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, JoseError> {
    obj.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| JoseError::Key(format!("a JWK has no string \"{name}\"")))
}

fn coordinate(obj: &serde_json::Map<String, Value>, name: &str) -> Result<Vec<u8>, JoseError> {
    let bytes = unb64(field(obj, name)?)
        .ok_or_else(|| JoseError::Key(format!("a JWK's \"{name}\" is not base64url")))?;
    if bytes.is_empty() {
        return Err(JoseError::Key(format!("a JWK's \"{name}\" is empty")));
    }
    Ok(bytes)
}

/// The uncompressed SEC1 point of an EC JWK, whose coordinates must have
/// the curve's full length (RFC 7518 §6.2.1.2).
fn point(obj: &serde_json::Map<String, Value>, len: usize) -> Result<Vec<u8>, JoseError> {
    let x = coordinate(obj, "x")?;
    let y = coordinate(obj, "y")?;
    if x.len() != len || y.len() != len {
        return Err(JoseError::Key(format!(
            "an EC JWK's coordinates are not {len} bytes"
        )));
    }
    Ok([&[4u8][..], &x, &y].concat())
}
