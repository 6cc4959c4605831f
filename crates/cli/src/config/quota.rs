//! `serve`'s storage quotas: the `[[quota]]` entries of the TOML file.
//!
//! ```toml
//! [[quota]]
//! repositories = "team/*"   # each matching repository on its own
//! limit = "10GiB"
//! [[quota]]
//! namespace = "research"    # every research/... repository together
//! limit = "1TiB"
//! ```
//!
//! The entries are read by hand from TOML values rather than derived, so
//! that whatever is wrong in one is a single line naming it (`quota 2:
//! limit "10XB": ...`), which serde's messages for nested tables are not.

use anyhow::Result;
use pavilion_registry::quota::Quota;
use toml::Value;

/// Most `[[quota]]` entries: each is matched against the repository of
/// every push.
pub const MAX_QUOTAS: usize = 1000;

/// Units a limit may carry (compared without case): powers of 1000 and of 1024.
const UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1000),
    ("mb", 1000 * 1000),
    ("gb", 1000 * 1000 * 1000),
    ("tb", 1000 * 1000 * 1000 * 1000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Bytes written as an integer with an optional unit (`1000`, `512MB`,
/// `10 GiB`), or a decimal with a unit (`1.5GiB`, rounded down to a whole
/// byte).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let multiplier = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(unit))
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                format!("unknown unit {unit:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
            })?
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction, well_formed) = match number.split_once('.') {
        Some((w, f)) => (w, f, digits(w) && digits(f)),
        None => (number, "", digits(number)),
    };
    if !well_formed {
        return Err("expected a number of bytes with an optional unit, e.g. 10GiB".into());
    }
    if !fraction.is_empty() && multiplier == 1 {
        return Err("a fraction of a byte: decimals need a unit, e.g. 1.5GiB".into());
    }
    let too_large = || "too large".to_string();
    // Exact arithmetic: whole.fraction * multiplier, in u128 for headroom.
    let scale = 10u128
        .checked_pow(u32::try_from(fraction.len()).map_err(|_| too_large())?)
        .ok_or_else(too_large)?;
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| too_large())?
    };
    let bytes = whole
        .checked_mul(scale)
        .and_then(|n| n.checked_add(fraction))
        .and_then(|n| n.checked_mul(u128::from(multiplier)))
        .map(|n| n / scale)
        .ok_or_else(too_large)?;
    u64::try_from(bytes).map_err(|_| too_large())
}

/// The limit of one entry.
fn limit(v: Option<&Value>) -> Result<u64, String> {
    let bytes = match v {
        None => return Err("needs a limit, e.g. limit = \"10GiB\"".into()),
        Some(Value::String(s)) => parse_size(s).map_err(|e| format!("limit {s:?}: {e}"))?,
        Some(Value::Integer(n)) => {
            u64::try_from(*n).map_err(|_| format!("limit {n}: not a number of bytes"))?
        }
        Some(other) => {
            return Err(format!(
                "limit {other}: expected bytes with an optional unit, e.g. \"10GiB\""
            ))
        }
    };
    if bytes == 0 {
        return Err(format!(
            "limit {}: must be more than 0 bytes",
            v.map(Value::to_string).unwrap_or_default()
        ));
    }
    Ok(bytes)
}

/// One `[[quota]]` entry.
fn entry(v: &Value) -> Result<Quota, String> {
    let Value::Table(t) = v else {
        return Err("expected a table: write the entries as [[quota]]".into());
    };
    if let Some(k) = t
        .keys()
        .find(|k| !["repositories", "namespace", "limit"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown key {k:?} (repositories, namespace or limit)"
        ));
    }
    let limit = limit(t.get("limit"))?;
    let text = |key: &str| match t.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(format!("{key} {other}: expected a string")),
    };
    match (text("repositories")?, text("namespace")?) {
        (Some(glob), None) => {
            Quota::each(glob, limit).map_err(|e| format!("repositories {glob:?}: {e}"))
        }
        (None, Some(ns)) => Quota::namespace(ns, limit).map_err(|e| format!("namespace: {e}")),
        (Some(_), Some(_)) => Err(
            "has both repositories and namespace: one per entry (each repository on its own, or a namespace together)"
                .into(),
        ),
        (None, None) => Err(
            "needs repositories (a glob: each matching repository on its own) or namespace (its repositories together)"
                .into(),
        ),
    }
}

/// The quotas of the file's `quota` key, checked; entries are numbered
/// from 1 in messages.
pub fn quotas(value: Option<Value>) -> Result<Vec<Quota>> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Value::Array(entries) = value else {
        anyhow::bail!("quota: expected [[quota]] entries (an array of tables)");
    };
    anyhow::ensure!(
        entries.len() <= MAX_QUOTAS,
        "quota: {} entries, more than the {MAX_QUOTAS} allowed",
        entries.len()
    );
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| entry(e).map_err(|m| anyhow::anyhow!("quota {}: {m}", i + 1)))
        .collect()
}

/// The quotas of the configuration file `serve` would read (for `pavilion
/// du`, which shows where repositories stand against them).
pub fn quotas_of_file(config: Option<&std::path::Path>) -> Result<Vec<Quota>> {
    quotas(super::read_config(config)?.quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, want) in [
            ("1000", 1000),
            ("1000B", 1000),
            ("10KB", 10_000),
            ("10 kib", 10 << 10),
            ("1.5GiB", 3 << 29),
            ("1.5KB", 1500),
            ("0.1KiB", 102),
            ("1TiB", 1 << 40),
            ("2TB", 2_000_000_000_000),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        for bad in [
            "", "GiB", "10XB", "1.5", "-1", "1e3", "1,000", "1.", ".5KB", "1..5KB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("99999999999999999999TiB").is_err());
        assert!(parse_size("16777216TiB").is_err(), "2^64 bytes");
    }

    fn parsed(text: &str) -> Result<Vec<Quota>> {
        let v: toml::Table = toml::from_str(text).unwrap();
        quotas(v.get("quota").cloned())
    }

    #[test]
    fn entries_are_checked_one_line_each() {
        let ok = parsed(
            "[[quota]]\nrepositories = \"team/*\"\nlimit = \"10GiB\"\n\
             [[quota]]\nnamespace = \"research\"\nlimit = 5\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!((ok[0].limit, ok[1].limit), (10 << 30, 5));
        for (text, want) in [
            (
                "[[quota]]\nrepositories = \"a\"\nlimit = \"1B\"\n[[quota]]\nrepositories = \"b\"\nlimit = \"10XB\"\n",
                "quota 2: limit \"10XB\": unknown unit \"XB\"",
            ),
            ("[[quota]]\nrepositories = \"a\"\nlimit = \"0\"\n", "quota 1: limit \"0\": must be more than 0"),
            ("[[quota]]\nrepositories = \"a\"\nlimit = 0\n", "quota 1: limit 0: must be more than 0"),
            ("[[quota]]\nrepositories = \"a\"\n", "quota 1: needs a limit"),
            ("[[quota]]\nrepositories = \"a\"\nnamespace = \"b\"\nlimit = 1\n", "quota 1: has both"),
            ("[[quota]]\nlimit = 1\n", "quota 1: needs repositories"),
            ("[[quota]]\nrepositories = \"a/[\"\nlimit = 1\n", "quota 1: repositories \"a/[\""),
            ("[[quota]]\nnamespace = \"a/\"\nlimit = 1\n", "quota 1: namespace"),
            ("[[quota]]\nrepository = \"a\"\nlimit = 1\n", "quota 1: unknown key \"repository\""),
            ("[[quota]]\nrepositories = 5\nlimit = 1\n", "quota 1: repositories 5"),
            ("quota = 5\n", "quota: expected [[quota]]"),
            ("quota = [5]\n", "quota 1: expected a table"),
        ] {
            let e = format!("{:#}", parsed(text).unwrap_err());
            assert!(e.starts_with(want), "{text}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let many = "[[quota]]\nrepositories = \"a\"\nlimit = 1\n".repeat(MAX_QUOTAS + 1);
        assert!(format!("{:#}", parsed(&many).unwrap_err()).contains("1001 entries"));
    }
}
