//! Strict JSON for documents an enforcement decision rests on (manifests,
//! indexes, configs): one parse into a [`Value`], refusing what parsers
//! disagree on or give up on.
//!
//! Why not plain `serde_json::from_slice`: serde_json stops at 128 levels of
//! nesting when building a `Value` but skips unknown fields of a typed struct
//! without that limit, so the same bytes were valid for indexing and
//! invalid for the policy input (which then saw `null`). And a duplicate key
//! is silently "last one wins" in serde_json but "first one wins" elsewhere:
//! two readers of one manifest could see different layers. Both are refused
//! here, with messages that say why.

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Deepest nesting of arrays and objects accepted in a manifest, index or
/// config. Real documents nest four or five levels; serde_json itself gives
/// up at 128, so everything accepted here also parses everywhere else.
pub const MAX_DEPTH: usize = 64;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    #[error("JSON nests deeper than the {MAX_DEPTH}-level limit")]
    TooDeep,
    /// Not JSON, trailing bytes, or a key given twice in one object.
    #[error("{0}")]
    Syntax(String),
}

/// How deep `bytes` nests, counting `[` and `{` outside strings, stopping
/// as soon as `limit` is passed. A byte scan, so the depth check cannot
/// itself be made to recurse.
fn depth_exceeds(bytes: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses `bytes` as one JSON value: at most [`MAX_DEPTH`] levels, no key
/// twice in an object, nothing after the value.
///
/// ```
/// use pavilion_oci::json::{parse_strict, JsonError};
/// assert!(parse_strict(br#"{"a":[1,{"b":null}]}"#).is_ok());
/// assert!(matches!(parse_strict(br#"{"a":1,"a":2}"#), Err(JsonError::Syntax(_))));
/// let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
/// assert_eq!(parse_strict(deep.as_bytes()), Err(JsonError::TooDeep));
/// assert!(parse_strict(b"{} {}").is_err());
/// ```
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JsonError> {
    if depth_exceeds(bytes, MAX_DEPTH) {
        return Err(JsonError::TooDeep);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict
        .deserialize(&mut de)
        .map_err(|e| JsonError::Syntax(e.to_string()))?;
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(value)
}

/// Largest config blob a policy input carries (model configs are a few
/// KiB); the same at every door.
pub const POLICY_CONFIG_LIMIT: u64 = 1 << 20;

/// The config a policy input needs, from a manifest's config descriptor:
/// `Ok(None)` when it is not JSON (nothing to parse), `Ok(Some(d))` when it
/// must be fetched and parsed with [`policy_config`], and an error when it
/// is JSON too large to carry (a denial, never a `null` in the input).
pub fn wanted_config(d: &crate::Descriptor) -> Result<Option<&crate::Descriptor>, String> {
    let media_type = d.media_type.split(';').next().unwrap_or("").trim();
    if !media_type.to_ascii_lowercase().ends_with("json") {
        return Ok(None);
    }
    if d.size > POLICY_CONFIG_LIMIT {
        return Err(format!(
            "config {} is {} bytes, over the {POLICY_CONFIG_LIMIT}-byte limit for policy input",
            d.digest, d.size
        ));
    }
    Ok(Some(d))
}

/// A fetched config, parsed strictly for a policy input.
pub fn policy_config(d: &crate::Descriptor, bytes: &[u8]) -> Result<Value, String> {
    parse_strict(bytes).map_err(|e| {
        format!(
            "config {} ({}) is not valid JSON: {e}",
            d.digest, d.media_type
        )
    })
}

/// Builds a `Value`, refusing duplicate keys. (Depth is checked before.)
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(A::Error::custom(format!("duplicate key {k:?}")));
            }
            let v = map.next_value_seed(Strict)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_only_outside_strings() {
        let s = format!(r#"{{"k":"{}"}}"#, "[{".repeat(100));
        assert!(parse_strict(s.as_bytes()).is_ok());
        let escaped = format!(r#"{{"k":"\"{}"}}"#, "[".repeat(100));
        assert!(parse_strict(escaped.as_bytes()).is_ok());
    }

    #[test]
    fn the_limit_itself_is_accepted() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_strict(ok.as_bytes()).is_ok());
        // An unknown field nested past the limit: what serde_json's typed
        // parse skipped and its Value parse refused.
        let field = format!(
            r#"{{"schemaVersion":2,"x":{}1{}}}"#,
            "[".repeat(130),
            "]".repeat(130)
        );
        assert_eq!(parse_strict(field.as_bytes()), Err(JsonError::TooDeep));
    }

    #[test]
    fn duplicates_nested_are_refused_and_named() {
        let e = parse_strict(br#"{"a":{"b":1,"b":2}}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key \"b\""), "{e}");
    }
}
