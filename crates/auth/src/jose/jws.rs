//! A set of public keys, and the verification of compact JWS tokens
//! against it (RFC 7515 §5.2, restricted to what tokens need).

use super::alg::Alg;
use super::jwk::{Jwk, PublicKey};
use super::{unb64, JoseError, SigningKey, MAX_TOKEN};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Largest JWKS document read: real ones hold a handful of keys in a few
/// KiB.
const MAX_JWKS: usize = 1 << 20;
/// Most keys one document may hold (issuers rotate through two or three).
const MAX_KEYS: usize = 100;

/// Public keys by `kid`, which tokens are verified against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: BTreeMap<String, Jwk>,
}

impl KeySet {
    /// An empty set (verifies nothing).
    pub fn new() -> KeySet {
        KeySet::default()
    }

    /// Adds the public half of `key`, under its thumbprint, for ES256.
    pub fn insert_signing(&mut self, key: &SigningKey) {
        let jwk = key.jwk();
        self.keys.insert(jwk.kid.clone(), jwk);
    }

    /// Reads a JWKS document (`{"keys": [...]}`): EC P-256 and P-384 and
    /// RSA (2048 bits or more) signature keys. Keys for other uses or of
    /// other types are skipped; a set left with no key, a key we would use
    /// but cannot read, or two keys with one `kid` is an error.
    pub fn from_jwks(text: &str) -> Result<KeySet, JoseError> {
        if text.len() > MAX_JWKS {
            return Err(JoseError::Key("JWKS document larger than 1 MiB".into()));
        }
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| JoseError::Key(format!("JWKS document is not JSON ({e})")))?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JoseError::Key("JWKS document has no \"keys\" array".into()))?;
        if entries.len() > MAX_KEYS {
            return Err(JoseError::Key(format!(
                "JWKS document holds more than {MAX_KEYS} keys"
            )));
        }
        let mut set = KeySet::new();
        for entry in entries {
            if let Some(jwk) = Jwk::from_json(entry)? {
                if set.keys.contains_key(&jwk.kid) {
                    return Err(JoseError::Key(
                        "JWKS document has two keys with one kid".into(),
                    ));
                }
                set.keys.insert(jwk.kid.clone(), jwk);
            }
        }
        if set.is_empty() {
            return Err(JoseError::Key(
                "JWKS document holds no signature key of a supported type".into(),
            ));
        }
        Ok(set)
    }

    /// A set of the one PEM public key (SubjectPublicKeyInfo of a P-256,
    /// P-384 or RSA key, or PKCS#1 RSA), under its thumbprint.
    pub fn from_public_pem(pem: &str) -> Result<KeySet, JoseError> {
        let key = PublicKey::from_pem(pem)?;
        let kid = key.thumbprint();
        let mut set = KeySet::new();
        set.keys.insert(
            kid.clone(),
            Jwk {
                key,
                kid,
                alg: None,
            },
        );
        Ok(set)
    }

    /// The set as a JWKS document, for `/.well-known/jwks.json`.
    pub fn to_jwks(&self) -> Value {
        let keys: Vec<Value> = self.keys.values().map(Jwk::to_json).collect();
        serde_json::json!({ "keys": keys })
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The claims of `token` once its signature verifies with a key of
    /// this set. Nothing else is checked here (expiry, issuer, audience:
    /// see [`super::check_claims`]).
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, JoseError> {
        if token.len() > MAX_TOKEN {
            return Err(JoseError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header64), Some(payload64), Some(sig64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoseError::Malformed("not three dot-separated parts"));
        };
        let header = json_object(
            header64,
            "header is not base64url",
            "header is not a JSON object",
        )?;
        let alg = match header.get("alg") {
            Some(Value::String(a)) => Alg::parse(a)?,
            _ => return Err(JoseError::Malformed("header has no string \"alg\"")),
        };
        if header.contains_key("crit") {
            return Err(JoseError::Critical);
        }
        let jwk = self.key_for(header.get("kid"))?;
        if alg.family() != jwk.key.family() {
            return Err(JoseError::UnknownKey(
                "the token's algorithm does not fit the key's type",
            ));
        }
        if jwk.alg.is_some_and(|a| a != alg) {
            return Err(JoseError::UnknownKey(
                "the key is published for another algorithm",
            ));
        }
        let sig = unb64(sig64).ok_or(JoseError::Malformed("signature is not base64url"))?;
        // The signing input is the two encoded parts as sent (RFC 7515
        // §5.2 step 8), not a re-encoding of what was decoded.
        let input = token
            .get(..header64.len() + 1 + payload64.len())
            .ok_or(JoseError::Malformed("not three dot-separated parts"))?;
        check_signature(alg, &jwk.key, input.as_bytes(), &sig)?;
        json_object(
            payload64,
            "payload is not base64url",
            "payload is not a JSON object",
        )
    }

    /// The key a header's `kid` names; without a `kid`, the set's only
    /// key (a set of several cannot guess).
    fn key_for(&self, kid: Option<&Value>) -> Result<&Jwk, JoseError> {
        match kid {
            Some(Value::String(kid)) => self
                .keys
                .get(kid)
                .ok_or(JoseError::UnknownKey("no key has the token's kid")),
            Some(_) => Err(JoseError::Malformed("header \"kid\" is not a string")),
            None if self.keys.len() == 1 => self
                .keys
                .values()
                .next()
                .ok_or(JoseError::UnknownKey("the key set is empty")),
            None => Err(JoseError::UnknownKey(
                "the token has no kid and the set holds more than one key",
            )),
        }
    }
}

/// The claims of a token whose signature has NOT been checked: only for
/// choosing which issuer's keys to verify it with, never for a decision.
pub(crate) fn unverified_claims(token: &str) -> Result<Map<String, Value>, JoseError> {
    if token.len() > MAX_TOKEN {
        return Err(JoseError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload64), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed("not three dot-separated parts"));
    };
    json_object(
        payload64,
        "payload is not base64url",
        "payload is not a JSON object",
    )
}

/// A base64url part decoded and parsed as a JSON object. serde_json
/// refuses nesting deeper than 128 levels, so a deeply nested part is an
/// error rather than a stack overflow.
fn json_object(
    part: &str,
    not_base64: &'static str,
    not_object: &'static str,
) -> Result<Map<String, Value>, JoseError> {
    let bytes = unb64(part).ok_or(JoseError::Malformed(not_base64))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JoseError::Malformed(not_object)),
    }
}

/// Verifies `sig` over `input` with `key` for `alg`, whose family the
/// caller has matched to the key's.
fn check_signature(alg: Alg, key: &PublicKey, input: &[u8], sig: &[u8]) -> Result<(), JoseError> {
    use rsa::signature::Verifier as _;
    let bad = |_| JoseError::BadSignature;
    match (alg, key) {
        (Alg::Es256, PublicKey::P256(k)) => {
            // JWS carries r || s of 32 bytes each (RFC 7518 §3.4).
            let sig = p256::ecdsa::Signature::from_slice(sig).map_err(bad)?;
            k.verify(input, &sig).map_err(bad)
        }
        (Alg::Es384, PublicKey::P384(k)) => {
            let sig = p384::ecdsa::Signature::from_slice(sig).map_err(bad)?;
            k.verify(input, &sig).map_err(bad)
        }
        (Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256, PublicKey::Rsa(k)) => {
            use rsa::traits::PublicKeyParts as _;
            // The signature is exactly as long as the modulus (RFC 8017
            // §8.2.2 step 1); anything else is refused before any math.
            if sig.len() != k.size() {
                return Err(JoseError::BadSignature);
            }
            let pkcs1 = || rsa::pkcs1v15::Signature::try_from(sig).map_err(bad);
            match alg {
                Alg::Rs256 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.clone())
                    .verify(input, &pkcs1()?)
                    .map_err(bad),
                Alg::Rs384 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(k.clone())
                    .verify(input, &pkcs1()?)
                    .map_err(bad),
                Alg::Rs512 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(k.clone())
                    .verify(input, &pkcs1()?)
                    .map_err(bad),
                _ => {
                    let sig = rsa::pss::Signature::try_from(sig).map_err(bad)?;
                    rsa::pss::VerifyingKey::<sha2::Sha256>::new(k.clone())
                        .verify(input, &sig)
                        .map_err(bad)
                }
            }
        }
        _ => Err(JoseError::UnknownKey(
            "the token's algorithm does not fit the key's type",
        )),
    }
}
