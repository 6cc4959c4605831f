//! HTTP Basic credentials (RFC 7617) out of an `Authorization` header.

use crate::AuthError;
use base64::Engine as _;

/// Longest header value read: a user name and password fit easily; a
/// client sending megabytes is refused before decoding anything.
pub const MAX_HEADER: usize = 8192;

/// The user name and password of a `Basic` header value.
pub fn credentials(header: &str) -> Result<(String, String), AuthError> {
    if header.len() > MAX_HEADER {
        return Err(AuthError::Malformed("longer than 8192 bytes"));
    }
    let (scheme, rest) = header
        .split_once(' ')
        .ok_or(AuthError::Malformed("no scheme"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthError::Malformed("not Basic credentials"));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| AuthError::Malformed("not base64"))?;
    let text = String::from_utf8(raw).map_err(|_| AuthError::Malformed("not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or(AuthError::Malformed("no ':' between user and password"))?;
    if user.is_empty() {
        return Err(AuthError::Malformed("empty user name"));
    }
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn reads_user_and_password() {
        let h = format!("Basic {}", b64("ci:pa:ss"));
        assert_eq!(credentials(&h), Ok(("ci".into(), "pa:ss".into())));
        let h = format!("basic {}", b64("a:"));
        assert_eq!(credentials(&h), Ok(("a".into(), String::new())));
    }

    #[test]
    fn refuses_what_is_not_basic_credentials() {
        for (h, why) in [
            ("Basic".to_string(), "no scheme"),
            (format!("Bearer {}", b64("a:b")), "not Basic credentials"),
            ("Basic !!!".to_string(), "not base64"),
            (
                format!("Basic {}", b64("nocolon")),
                "no ':' between user and password",
            ),
            (format!("Basic {}", b64(":pw")), "empty user name"),
            (
                format!("Basic {}", "A".repeat(MAX_HEADER)),
                "longer than 8192 bytes",
            ),
        ] {
            assert_eq!(credentials(&h), Err(AuthError::Malformed(why)), "{h:.40}");
        }
        let bad_utf8 = base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'x']);
        assert_eq!(
            credentials(&format!("Basic {bad_utf8}")),
            Err(AuthError::Malformed("not UTF-8"))
        );
    }
}
