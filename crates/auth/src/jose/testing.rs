//! Test helpers: RSA keys and tokens signed with them (the crate itself
//! only signs ES256), and hand-made tokens with any header.

use super::b64;
use rsa::traits::PublicKeyParts as _;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// A 2048-bit RSA key made once per test run (key generation is the slow
/// part; dependencies are built optimised).
pub(crate) fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap())
}

/// A second, different 2048-bit RSA key.
pub(crate) fn other_rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap())
}

/// The public JWK of an RSA key, with `kid` and optionally `alg`.
pub(crate) fn rsa_jwk(key: &rsa::RsaPrivateKey, kid: &str, alg: Option<&str>) -> Value {
    let mut jwk = json!({
        "kty": "RSA",
        "use": "sig",
        "kid": kid,
        "n": b64(&key.n().to_bytes_be()),
        "e": b64(&key.e().to_bytes_be()),
    });
    if let Some(alg) = alg {
        jwk["alg"] = json!(alg);
    }
    jwk
}

/// A compact JWS with `header` and `claims`, signed with `key` by the
/// algorithm the header names (RS256, RS384, RS512 or PS256).
pub(crate) fn sign_rsa(key: &rsa::RsaPrivateKey, header: &Value, claims: &Value) -> String {
    use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _};
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let msg = input.as_bytes();
    let k = key.clone();
    let sig = match header["alg"].as_str().unwrap() {
        "RS256" => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k)
            .sign(msg)
            .to_vec(),
        "RS384" => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(k)
            .sign(msg)
            .to_vec(),
        "RS512" => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(k)
            .sign(msg)
            .to_vec(),
        "PS256" => rsa::pss::BlindedSigningKey::<sha2::Sha256>::new(k)
            .sign_with_rng(&mut rand_core::OsRng, msg)
            .to_vec(),
        other => panic!("sign_rsa does not do {other}"),
    };
    format!("{input}.{}", b64(&sig))
}

/// A token of any header and claims with the given signature bytes.
pub(crate) fn forge(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(sig)
    )
}

/// HMAC-SHA256 (RFC 2104), for forging the HS256 tokens of the
/// algorithm-confusion attack; the crate itself never computes one.
pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha2::{Digest as _, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| block.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}
