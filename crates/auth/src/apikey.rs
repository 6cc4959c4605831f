//! Robot / API keys: `pvk_<id>_<secret>`, made by `pavilion token create`
//! and kept in the metadata database (so every replica knows them). This
//! module only makes, reads and checks keys; storing them is the store's
//! business.
//!
//! - `pvk_` marks the password as a key, so the server can tell it from an
//!   htpasswd password without looking anything up;
//! - `<id>` (12 characters of lowercase base32, 60 random bits) names the
//!   key's row: the server finds the one stored hash to compare with,
//!   instead of trying every key;
//! - `<secret>` is 32 random bytes in base64url without padding.
//!
//! Only the SHA-256 of the secret is stored. A slow password hash (bcrypt,
//! argon2) exists to make guessing a low-entropy password from its hash
//! expensive; a 256-bit random secret cannot be guessed whatever the hash
//! costs, so a fast hash loses nothing, and it keeps a CI job's hundreds of
//! requests from paying tens of milliseconds of bcrypt each.

use crate::error::AuthError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

/// What every key starts with.
pub const PREFIX: &str = "pvk_";
/// Characters in a key's id.
pub const ID_LEN: usize = 12;
/// Random bytes in a key's secret.
const SECRET_BYTES: usize = 32;
/// Characters of the secret's base64url form (32 bytes, no padding).
const SECRET_LEN: usize = 43;
/// Characters in a whole key: prefix, id, `_`, secret.
pub const KEY_LEN: usize = PREFIX.len() + ID_LEN + 1 + SECRET_LEN;
/// The id's alphabet: RFC 4648 base32, lower case (no 0, 1, 8, 9, so an id
/// read aloud or copied by hand has fewer look-alikes).
const ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A freshly made key.
#[derive(Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The id the key is stored and listed under.
    pub id: String,
    /// The whole key (`pvk_<id>_<secret>`), shown to its owner once and
    /// never stored.
    pub key: String,
    /// Hex SHA-256 of the secret: what is stored.
    pub hash: String,
}

// By hand, so that a key logged by mistake (`{:?}`) does not leak.
impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("hash", &self.hash)
            .finish()
    }
}

/// Makes a key from the operating system's random source. Fails only when
/// that source cannot be read (then no key is better than a guessable one).
pub fn generate() -> Result<NewKey, AuthError> {
    let mut raw = [0u8; ID_LEN + SECRET_BYTES];
    getrandom::fill(&mut raw)
        .map_err(|e| AuthError::Unavailable(format!("no random source: {e}")))?;
    let (id_bytes, secret_bytes) = raw.split_at(ID_LEN);
    // 256 is a multiple of 32: the low five bits of a random byte are
    // uniform, so every id character is too.
    let id: String = id_bytes
        .iter()
        .map(|b| char::from(ID_ALPHABET[usize::from(b & 31)]))
        .collect();
    let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
    let hash = hash_secret(&secret);
    let key = format!("{PREFIX}{id}_{secret}");
    Ok(NewKey { id, key, hash })
}

/// Hex SHA-256 of a key's secret (its base64url text, as [`parse`] returns
/// it), as stored.
pub fn hash_secret(secret: &str) -> String {
    hex_lower(&Sha256::digest(secret.as_bytes()))
}

/// Whether a password is meant as an API key (starts with `pvk_`); the
/// server then checks it as one and never as an htpasswd password.
pub fn looks_like_key(password: &str) -> bool {
    password.starts_with(PREFIX)
}

/// Splits a presented key into its id and secret, checking its exact
/// shape: the prefix, 12 id characters of the alphabet, `_`, and 43
/// characters of canonical base64url (so one secret has one spelling).
/// Anything longer is refused before it is looked at.
pub fn parse(presented: &str) -> Result<(&str, &str), AuthError> {
    let rest = presented
        .strip_prefix(PREFIX)
        .ok_or(AuthError::Malformed("API key does not start with pvk_"))?;
    if presented.len() != KEY_LEN {
        return Err(AuthError::Malformed("API key has the wrong length"));
    }
    // The length is right and the prefix ASCII, so byte offsets below are
    // character boundaries only if the text is ASCII: check it first.
    if !rest.is_ascii() {
        return Err(AuthError::Malformed("API key is not ASCII"));
    }
    let (id, rest) = rest.split_at(ID_LEN);
    if !id.bytes().all(|b| ID_ALPHABET.contains(&b)) {
        return Err(AuthError::Malformed(
            "API key id is not 12 lowercase base32 characters",
        ));
    }
    let secret = rest
        .strip_prefix('_')
        .ok_or(AuthError::Malformed("API key has no _ after its id"))?;
    // The decoder refuses stray trailing bits: a non-canonical spelling of
    // the same bytes is not a key.
    match URL_SAFE_NO_PAD.decode(secret) {
        Ok(bytes) if bytes.len() == SECRET_BYTES => Ok((id, secret)),
        _ => Err(AuthError::Malformed("API key secret is not base64url")),
    }
}

/// Whether `secret` hashes to `stored_hash_hex`. The digests are compared
/// in constant time (every byte, no early exit), so the time taken says
/// nothing about how many leading bytes matched. A stored hash that is not
/// 64 hex digits matches nothing.
pub fn verify(secret: &str, stored_hash_hex: &str) -> bool {
    let Some(stored) = unhex32(stored_hash_hex) else {
        return false;
    };
    let actual: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    constant_time_eq(&actual, &stored)
}

/// Equality of two digests that reads every byte whatever differs.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    // Keeps the optimiser from turning the loop into an early-exit compare.
    std::hint::black_box(diff) == 0
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// 64 hex digits (either case) as 32 bytes.
fn unhex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> NewKey {
        generate().unwrap()
    }

    #[test]
    fn a_generated_key_parses_and_verifies_against_its_hash() {
        let k = key();
        assert_eq!(k.key.len(), KEY_LEN);
        assert!(k.key.starts_with("pvk_") && looks_like_key(&k.key));
        assert_eq!(k.id.len(), ID_LEN);
        assert!(k.id.bytes().all(|b| ID_ALPHABET.contains(&b)));
        assert_eq!(k.hash.len(), 64);
        let (id, secret) = parse(&k.key).unwrap();
        assert_eq!(id, k.id);
        assert_eq!(secret.len(), SECRET_LEN);
        assert_eq!(hash_secret(secret), k.hash);
        assert!(verify(secret, &k.hash));
        assert!(verify(secret, &k.hash.to_uppercase()));
        // The secret is not in the hash, nor in the Debug output.
        assert!(!k.hash.contains(secret));
        assert!(!format!("{k:?}").contains(secret));
    }

    #[test]
    fn keys_differ_each_time() {
        let (a, b) = (key(), key());
        assert_ne!(a.id, b.id);
        assert_ne!(a.key, b.key);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn another_keys_secret_or_a_changed_one_does_not_verify() {
        let (a, b) = (key(), key());
        let (_, sa) = parse(&a.key).unwrap();
        let (_, sb) = parse(&b.key).unwrap();
        assert!(!verify(sb, &a.hash));
        assert!(!verify(sa, &b.hash));
        // One character of the secret changed.
        let mut changed = sa.as_bytes().to_vec();
        changed[0] = if changed[0] == b'A' { b'B' } else { b'A' };
        assert!(!verify(std::str::from_utf8(&changed).unwrap(), &a.hash));
        // A hash that differs only in its last byte.
        let mut h = a.hash.clone();
        let last = if h.ends_with('0') { "1" } else { "0" };
        h.replace_range(63.., last);
        assert!(!verify(sa, &h));
    }

    #[test]
    fn a_stored_hash_that_is_not_64_hex_digits_matches_nothing() {
        let k = key();
        let (_, s) = parse(&k.key).unwrap();
        for bad in [
            "",
            &k.hash[..62],
            &format!("{}00", k.hash),
            &format!("{}zz", &k.hash[..62]),
            &"é".repeat(32),
        ] {
            assert!(!verify(s, bad), "{bad:?}");
        }
        // The empty secret's hash does not match an empty stored hash either.
        assert!(!verify("", ""));
    }

    #[test]
    fn constant_time_eq_compares_every_byte() {
        let a = [7u8; 32];
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!constant_time_eq(&a, &b), "{i}");
        }
        assert!(constant_time_eq(&a, &a));
    }

    #[test]
    fn every_bad_shape_is_refused_with_its_reason() {
        let k = key();
        let (id, secret) = parse(&k.key).unwrap();
        let reason = |s: &str| match parse(s) {
            Err(AuthError::Malformed(why)) => why,
            other => panic!("{s:?}: {other:?}"),
        };
        // Not a key at all, or another prefix.
        assert!(reason("").contains("pvk_"));
        assert!(reason("hunter2").contains("pvk_"));
        assert!(reason(&k.key.replacen("pvk_", "PVK_", 1)).contains("pvk_"));
        assert!(reason(&k.key.replacen("pvk_", "pvk-", 1)).contains("pvk_"));
        // Too short, too long, one character extra or missing.
        assert!(reason("pvk_").contains("length"));
        assert!(reason(&format!("{}A", k.key)).contains("length"));
        assert!(reason(&k.key[..KEY_LEN - 1]).contains("length"));
        assert!(reason(&format!("pvk_{}", "a".repeat(1 << 20))).contains("length"));
        // Ids with characters outside the alphabet (upper case, 0, 1, 8,
        // 9, punctuation).
        for c in ["A", "0", "1", "8", "9", "-", "_"] {
            let bad = format!("pvk_{c}{}_{secret}", &id[1..]);
            assert!(reason(&bad).contains("id"), "{bad}");
        }
        // Shifted: a 13-character id leaves no `_` where one must be.
        let bad = format!("pvk_{id}a{secret}");
        assert!(reason(&bad).contains("no _"), "{bad}");
        // The secret: a character outside base64url, standard base64's
        // `+` and `/`, padding, a non-canonical last character.
        for c in ["+", "/", "=", "!", " "] {
            let bad = format!("pvk_{id}_{c}{}", &secret[1..]);
            assert!(reason(&bad).contains("base64url"), "{bad}");
        }
        // 43 characters carry 258 bits: the last one's two low bits must be
        // zero. Flip one of them.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = secret.as_bytes()[SECRET_LEN - 1];
        let idx = alphabet.iter().position(|&c| c == last).unwrap();
        let flipped = char::from(alphabet[idx ^ 1]);
        let bad = format!("pvk_{id}_{}{flipped}", &secret[..SECRET_LEN - 1]);
        assert!(reason(&bad).contains("base64url"), "{bad}");
        // Non-ASCII of the right byte length is refused, not sliced.
        let bad = format!(
            "pvk_{}é{}",
            &id[..ID_LEN - 1],
            &k.key[PREFIX.len() + ID_LEN + 1..]
        );
        assert_eq!(bad.len(), KEY_LEN);
        assert!(reason(&bad).contains("ASCII"), "{bad}");
        assert!(!looks_like_key("pvk"));
        assert!(!looks_like_key("Pvk_x"));
    }
}
