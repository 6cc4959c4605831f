//! The W3C `traceparent` a command sends on every request, so a
//! registry's access log and traces tie one push or pull's hundreds of
//! requests together (Pavilion logs the trace id on each line and, with
//! traces on, makes its spans children of it).

/// The `traceparent` of this command: the environment's `TRACEPARENT`
/// when it holds a valid one (a CI job or `otel-cli` around the command
/// names the trace it belongs to, sampled or not as it says), else a new
/// trace with random ids, not sampled: it ties the registry's log lines
/// together without making a registry record spans it would not have.
pub fn command_traceparent() -> String {
    std::env::var("TRACEPARENT")
        .ok()
        .filter(|v| valid(v))
        .unwrap_or_else(new_traceparent)
}

/// A new `traceparent`: version 00, a random trace id and parent id,
/// not sampled (flags 00).
pub fn new_traceparent() -> String {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = uuid::Uuid::new_v4().simple().to_string();
    format!("00-{trace}-{}-00", &span[..16])
}

/// Whether `v` is a version-00 `traceparent` with non-zero ids, in
/// lowercase hex as the W3C Trace Context requires.
pub fn valid(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [ver, trace, parent, flags]
        if *ver == "00" && hex(trace, 32) && nonzero(trace) && hex(parent, 16) && nonzero(parent) && hex(flags, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ones_are_valid_and_differ() {
        let (a, b) = (new_traceparent(), new_traceparent());
        assert!(valid(&a), "{a}");
        assert_ne!(a, b);
        assert!(a.ends_with("-00"), "not sampled: {a}");
    }

    #[test]
    fn only_well_formed_ones_are_taken() {
        assert!(valid(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01\r\n",
        ] {
            assert!(!valid(bad), "{bad:?}");
        }
    }
}
