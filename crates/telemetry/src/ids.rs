//! Trace and span ids: random when made here, lowercase hex in fields
//! (the W3C `traceparent` form), bytes in OTLP.

/// A new span id: 8 random bytes.
pub fn new_span_id() -> [u8; 8] {
    let b = uuid::Uuid::new_v4().into_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&b[..8]);
    id
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// `N` bytes from `2N` hex digits, not all zero (the W3C invalid id).
pub fn parse<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    out.iter().any(|b| *b != 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex_and_zero_ids_are_refused() {
        let t = uuid::Uuid::new_v4().into_bytes();
        assert_eq!(parse::<16>(&hex(&t)), Some(t));
        let s = new_span_id();
        assert_eq!(parse::<8>(&hex(&s)), Some(s));
        assert_ne!(new_span_id(), new_span_id());
        assert_eq!(parse::<8>("0000000000000000"), None);
        assert_eq!(parse::<8>("00f067aa0ba902b"), None);
        assert_eq!(parse::<8>("00f067aa0ba902bz"), None);
    }
}
