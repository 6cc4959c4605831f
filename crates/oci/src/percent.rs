//! Percent-encoding (RFC 3986 `%XX`), once for every crate: the registry's
//! paths and queries and the storage URL's options.

/// Decodes `%XX` escapes; `None` if an escape is malformed (two hex digits,
/// nothing else: not `%+1`) or the result is not UTF-8. For what a request
/// says, where a malformed escape is refused rather than guessed at.
pub fn decode(s: &str) -> Option<String> {
    String::from_utf8(decode_bytes(s, true)?).ok()
}

/// Decodes the well-formed `%XX` escapes and keeps anything else as it is
/// (bytes that are not UTF-8 become U+FFFD). For configuration strings a
/// person typed.
pub fn decode_lenient(s: &str) -> String {
    let bytes = decode_bytes(s, false).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Percent-encodes everything but unreserved characters and `/` (a query
/// value in a `Link` header, a path kept readable).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The decoding both forms share: `strict` refuses a malformed escape,
/// otherwise it is kept literally.
fn decode_bytes(s: &str, strict: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let pair = b
                .get(i + 1)
                .and_then(|&h| hex(h))
                .zip(b.get(i + 2).and_then(|&l| hex(l)));
            match pair {
                Some((h, l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                None if strict => return None,
                None => {}
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_lenient() {
        assert_eq!(decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(decode("%e2%9c%93").as_deref(), Some("\u{2713}"));
        for bad in ["%", "%4", "%zz", "%+1", "%-1", "%ff"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(decode_lenient("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(decode_lenient("%+1"), "%+1");
        assert_eq!(encode("a b/c?"), "a%20b/c%3F");
        assert_eq!(decode(&encode("x y:z")).as_deref(), Some("x y:z"));
    }
}
