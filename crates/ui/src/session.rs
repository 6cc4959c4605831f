//! Signing in: the session cookie and the form tokens that guard actions.
//!
//! The cookie holds the credential the viewer signed in with, sealed
//! (ChaCha20-Poly1305) under a key every replica derives from the same
//! stored secret, with its expiry. Each page presents that credential to
//! the API exactly as a command-line client would, so a password changed,
//! a user removed or an API key revoked ends the session at the next page,
//! and throttling and key ceilings apply unchanged. The alternative, a
//! cookie naming only the identity, would have needed a second path
//! through authorization that could drift from the first. The cookie is
//! `HttpOnly`, `SameSite=Strict`, scoped to `/ui/`, `Secure` over TLS, and
//! useless without the server's key.

use base64::Engine;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The cookie's name.
pub const COOKIE: &str = "pavilion_ui";
/// Bound to every sealed cookie: a value sealed for another purpose under
/// the same key does not open as a session.
const AAD: &[u8] = b"pavilion-ui-session-v1";
/// Longest credential kept (a workload JWT as the password can be a few
/// KiB; browsers keep cookies up to 4 KiB).
const MAX_CREDENTIAL: usize = 2800;

/// The keys a session needs, from the registry's shared secret.
pub struct Keys {
    seal: LessSafeKey,
    mac: Vec<u8>,
    /// How long a session lasts.
    pub lifetime: Duration,
}

impl Keys {
    /// Keys derived from `secret` (the same bytes on every replica).
    pub fn new(secret: &[u8], lifetime: Duration) -> Keys {
        let seal_key = derive(secret, b"seal");
        let seal = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &seal_key)
                .expect("a 32-byte ChaCha20-Poly1305 key"),
        );
        Keys {
            seal,
            mac: derive(secret, b"form-token").to_vec(),
            lifetime,
        }
    }

    /// The cookie value sealing `authorization` until now + lifetime.
    pub fn seal(&self, authorization: &str) -> Option<String> {
        if authorization.len() > MAX_CREDENTIAL {
            return None;
        }
        let expires = now_secs() + self.lifetime.as_secs();
        let mut data = format!("{expires}\n{authorization}").into_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut data,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    /// The credential a cookie value holds, if it opens and has not
    /// expired.
    pub fn open(&self, cookie: &str) -> Option<String> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cookie)
            .ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(AAD), &mut sealed)
            .ok()?;
        let text = std::str::from_utf8(plain).ok()?;
        let (expires, credential) = text.split_once('\n')?;
        if expires.parse::<u64>().ok()? <= now_secs() {
            return None;
        }
        Some(credential.to_string())
    }

    /// The token a form must carry to act for the holder of `session`
    /// (the cookie's value, or "" for a viewer without one): a page of
    /// another site cannot read it, so it cannot forge the form.
    pub fn form_token(&self, session: &str) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.mac).expect("any key length");
        m.update(session.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// Whether `token` is the form token for `session` (in constant time).
    pub fn form_token_holds(&self, session: &str, token: &str) -> bool {
        let Ok(given) = hex::decode(token) else {
            return false;
        };
        let mut m = Hmac::<Sha256>::new_from_slice(&self.mac).expect("any key length");
        m.update(session.as_bytes());
        m.verify_slice(&given).is_ok()
    }
}

/// A 32-byte key for `purpose` from `secret`.
fn derive(secret: &[u8], purpose: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    m.update(b"pavilion-ui/");
    m.update(purpose);
    m.finalize().into_bytes().into()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The session cookie's value in a `Cookie` header, if there is exactly
/// one (two are refused: which one a proxy read is unknowable).
pub fn cookie_value(headers: &http::HeaderMap) -> Option<String> {
    let mut found = None;
    for v in headers.get_all(http::header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=') {
                if k == COOKIE {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(val.to_string());
                }
            }
        }
    }
    found
}

/// The `Set-Cookie` value that stores `value` (or, for `None`, removes
/// the cookie).
pub fn set_cookie(value: Option<&str>, lifetime: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/ui/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            lifetime.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/ui/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"),
    }
}

/// Whether a state-changing request comes from our own pages: browsers
/// say so in `Sec-Fetch-Site`, older ones only in `Origin`, which must
/// then name the host the request was sent to. A request with neither is
/// not from a browser form and carries no session cookie a forger could
/// ride on, but it is refused too: every action comes from a page.
pub fn same_origin(headers: &http::HeaderMap) -> bool {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return site == "same-origin";
    }
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(b"shared secret", Duration::from_secs(3600))
    }

    #[test]
    fn a_sealed_credential_opens_only_under_the_same_key() {
        let k = keys();
        let c = k.seal("Basic YWxpY2U6cHc=").unwrap();
        assert!(!c.contains("YWxpY2U"), "the credential is not readable");
        assert_eq!(k.open(&c).as_deref(), Some("Basic YWxpY2U6cHc="));
        let other = Keys::new(b"another secret", Duration::from_secs(3600));
        assert_eq!(other.open(&c), None);
        // One bit changed anywhere: refused.
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&c)
            .unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(k.open(&tampered), None);
        assert_eq!(k.open("not base64!"), None);
        assert_eq!(k.open(""), None);
    }

    #[test]
    fn an_expired_session_does_not_open() {
        let k = Keys::new(b"s", Duration::from_secs(0));
        let c = k.seal("Basic eDp5").unwrap();
        assert_eq!(k.open(&c), None);
    }

    #[test]
    fn form_tokens_are_bound_to_the_session() {
        let k = keys();
        let t = k.form_token("cookie-a");
        assert!(k.form_token_holds("cookie-a", &t));
        assert!(!k.form_token_holds("cookie-b", &t));
        assert!(!k.form_token_holds("cookie-a", "zz"));
        assert!(!k.form_token_holds("cookie-a", ""));
    }

    #[test]
    fn cookies_are_read_once() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; pavilion_ui=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_value(&h).as_deref(), Some("xyz"));
        h.append(http::header::COOKIE, "pavilion_ui=other".parse().unwrap());
        assert_eq!(cookie_value(&h), None, "two session cookies: neither");
    }

    #[test]
    fn only_same_origin_requests_act() {
        let mut h = http::HeaderMap::new();
        assert!(!same_origin(&h));
        h.insert("host", "reg.local:5000".parse().unwrap());
        h.insert("origin", "http://reg.local:5000".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_origin(&h));
    }
}
