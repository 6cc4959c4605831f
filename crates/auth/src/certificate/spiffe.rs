//! SPIFFE IDs (SPIFFE-ID specification §2): `spiffe://<trust domain>` and
//! an optional path, checked strictly so that one workload has one
//! spelling — policies compare them as strings.

/// Longest SPIFFE ID accepted (the specification's limit for URI SANs).
const MAX_ID: usize = 2048;
/// Longest trust domain (a DNS name's limit, as the specification says).
const MAX_TRUST_DOMAIN: usize = 255;
const SCHEME: &str = "spiffe://";

/// Whether a URI claims to be a SPIFFE ID (its scheme, in any case): such
/// a URI must then be a valid one, never silently passed over.
pub(crate) fn claims_spiffe(uri: &str) -> bool {
    uri.get(..SCHEME.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
}

/// Why `id` is not a valid SPIFFE ID, if it is not.
pub(crate) fn check(id: &str) -> Result<(), &'static str> {
    if id.len() > MAX_ID {
        return Err("longer than 2048 bytes");
    }
    let rest = id
        .strip_prefix(SCHEME)
        .ok_or("the scheme is not spiffe:// (lowercase)")?;
    let (domain, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if domain.is_empty() {
        return Err("empty trust domain");
    }
    if domain.len() > MAX_TRUST_DOMAIN {
        return Err("trust domain longer than 255 bytes");
    }
    // Lowercase letters, digits, '.', '-', '_': this also leaves out a
    // port (':'), user info ('@'), a query ('?') and a fragment ('#').
    let domain_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b);
    if !domain.bytes().all(domain_ok) {
        return Err("the trust domain holds a character other than a-z, 0-9, '.', '-', '_'");
    }
    if path.is_empty() {
        return Ok(());
    }
    let segment_ok = |b: u8| b.is_ascii_alphanumeric() || b".-_".contains(&b);
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err("empty path segment");
        }
        if segment == "." || segment == ".." {
            return Err("path segment '.' or '..'");
        }
        if !segment.bytes().all(segment_ok) {
            return Err("a path segment holds a character other than A-Z, a-z, 0-9, '.', '-', '_'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_pass() {
        for id in [
            "spiffe://example.org",
            "spiffe://example.org/workload",
            "spiffe://cluster.local/ns/build/sa/pusher",
            "spiffe://trust_domain-1.example/A.b-c_D/..x/.y",
        ] {
            assert_eq!(check(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn invalid_ids_fail() {
        let long = format!("spiffe://example.org/{}", "a".repeat(2048));
        let long_domain = format!("spiffe://{}", "a".repeat(256));
        for id in [
            "",
            "spiffe:/example.org",
            "SPIFFE://example.org/w",
            "https://example.org/w",
            "spiffe://",
            "spiffe:///path",
            "spiffe://Example.org/w",
            "spiffe://example.org:8443/w",
            "spiffe://user@example.org/w",
            "spiffe://example.org/",
            "spiffe://example.org//w",
            "spiffe://example.org/a/../b",
            "spiffe://example.org/./b",
            "spiffe://example.org/w?x=1",
            "spiffe://example.org/w#frag",
            "spiffe://example.org/w%20x",
            "spiffe://example.org/wé",
            "spiffe://exa mple.org",
            &long,
            &long_domain,
        ] {
            assert!(check(id).is_err(), "{id}");
        }
    }

    #[test]
    fn the_scheme_is_recognised_in_any_case() {
        assert!(claims_spiffe("spiffe://x"));
        assert!(claims_spiffe("SPIFFE://x"));
        assert!(!claims_spiffe("https://x"));
        assert!(!claims_spiffe("spiff"));
        assert!(!claims_spiffe("é"));
    }
}
