//! JOSE for tokens: compact JWS (RFC 7515) signed with ES256 by
//! [`SigningKey`], verified by a [`KeySet`] of public keys from a JWKS
//! document (RFC 7517) or a PEM file, and the registered claims a caller
//! checks afterwards ([`check_claims`]).
//!
//! Only what tokens need: no JWE, no HMAC (a shared secret would have to
//! live on every verifier), no `alg: none`, no keys named by the token
//! itself (`jwk`, `jku`, `x5u`, `x5c` headers are ignored: the verifier's
//! own set decides which keys count).

mod alg;
mod claims;
mod jwk;
mod jws;
mod signing;

pub use claims::{check_claims, Expect};
pub(crate) use jws::unverified_claims;
pub use jws::KeySet;
pub use signing::SigningKey;

use base64::Engine as _;

/// Why a token, a key or a key set was refused. Messages are one line and
/// never repeat the token (it is a credential) nor strings taken from it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoseError {
    /// Longer than [`MAX_TOKEN`].
    #[error("token longer than 16 KiB")]
    TooLarge,
    /// Not three base64url parts, or a part not JSON where JSON belongs.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm this verifier does not accept.
    #[error("token algorithm refused: {0}")]
    Algorithm(&'static str),
    /// The header has a `crit` parameter (extensions we do not implement).
    #[error("token has critical header parameters (crit), which are not supported")]
    Critical,
    /// No key of the set fits the token's `kid`.
    #[error("no key for the token: {0}")]
    UnknownKey(&'static str),
    /// The signature does not verify with the chosen key.
    #[error("token signature does not verify")]
    BadSignature,
    /// A registered claim is missing, of the wrong type, or says no.
    #[error("token claims refused: {0}")]
    Claims(&'static str),
    /// A key, a PEM or a JWKS document could not be used.
    #[error("unusable key: {0}")]
    Key(String),
}

/// Longest token verified: tokens of real issuers are a few KiB at most
/// (Kubernetes' are ~1 KiB), so anything longer is refused before any
/// decoding.
pub const MAX_TOKEN: usize = 16 << 10;

/// base64url without padding, the only encoding JWS allows (RFC 7515 §2).
fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; padding, the standard alphabet,
/// whitespace and non-canonical trailing bits are all refused, so one
/// token has one spelling.
fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
