//! COSE_Sign1 envelopes (signature-envelope-cose.md), as notation writes
//! them with go-cose.
//!
//! `18([protected: bstr(map), unprotected: map, payload: bstr, signature:
//! bstr])`. The protected map holds `alg` (label 1), `crit` (2), the
//! content type (3) and the Notary text labels, times as CBOR tag 1 epoch
//! seconds; the unprotected map holds `x5chain` (33), the timestamp token
//! and the signing agent. The signature covers the CBOR encoding of
//! `["Signature1", protected, h'', payload]`, with the protected item
//! exactly as it appears in the envelope.
//!
//! Decoding is strict like go-cose: definite lengths only, no duplicate
//! labels, no trailing bytes, no detached payload. Encoding is
//! deterministic: map keys are sorted shortest-encoding first, then
//! bytewise (go-cose's canonical order).

use crate::crypto::{Alg, CryptoError};
use crate::envelope::{
    format_time, headers, Envelope, EnvelopeError, Format, SignedAttributes, SigningScheme,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ciborium::value::{Integer, Value};
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;

/// CBOR tag of COSE_Sign1_Tagged.
const TAG_SIGN1: u64 = 18;
/// CBOR tag of an epoch-based date/time.
const TAG_EPOCH_TIME: u64 = 1;
/// `alg` label.
const LABEL_ALG: i64 = 1;
/// `crit` label.
const LABEL_CRIT: i64 = 2;
/// `content type` label.
const LABEL_CONTENT_TYPE: i64 = 3;
/// `x5chain` label.
const LABEL_X5CHAIN: i64 = 33;
/// Deepest nesting of arrays, maps and tags accepted.
const MAX_DEPTH: usize = 64;

/// The Notary text labels that [`SignedAttributes`] holds in fields.
const NOTARY_LABELS: [&str; 6] = [
    headers::SIGNING_SCHEME,
    headers::SIGNING_TIME,
    headers::AUTHENTIC_SIGNING_TIME,
    headers::EXPIRY,
    headers::VERIFICATION_PLUGIN,
    headers::VERIFICATION_PLUGIN_MIN_VERSION,
];

fn bad(why: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Malformed {
        format: "COSE",
        why: why.into(),
    }
}

fn header_err(why: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Header(why.into())
}

// ---------------------------------------------------------------------------
// Raw CBOR structure: item heads and spans, checked before ciborium decodes.

/// CBOR major types.
mod major {
    pub const UINT: u8 = 0;
    pub const NINT: u8 = 1;
    pub const BYTES: u8 = 2;
    pub const TEXT: u8 = 3;
    pub const ARRAY: u8 = 4;
    pub const MAP: u8 = 5;
    pub const TAG: u8 = 6;
    pub const SIMPLE: u8 = 7;
}

/// The simple value `null`.
const SIMPLE_NULL: u64 = 22;

/// A decoded item head: major type, argument, and where the content starts.
#[derive(Debug, Clone, Copy)]
struct Head {
    major: u8,
    arg: u64,
    next: usize,
}

/// Reads the head of the item at `pos`. Indefinite lengths (and the break
/// code) are refused, as go-cose refuses them.
fn head(b: &[u8], pos: usize) -> Result<Head, String> {
    let ib = *b.get(pos).ok_or("truncated CBOR (expected another item)")?;
    let (major, info) = (ib >> 5, ib & 0x1f);
    let extra = match info {
        0..=23 => 0,
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 => return Err("indefinite-length CBOR items are not allowed".into()),
        _ => return Err(format!("invalid CBOR initial byte 0x{ib:02x}")),
    };
    let start = pos + 1;
    let end = start
        .checked_add(extra)
        .filter(|&e| e <= b.len())
        .ok_or("truncated CBOR (item head)")?;
    let arg = if extra == 0 {
        u64::from(info)
    } else {
        b[start..end]
            .iter()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
    };
    Ok(Head {
        major,
        arg,
        next: end,
    })
}

/// Checks the item at `pos` is well formed and returns where it ends.
fn skip(b: &[u8], pos: usize, depth: usize) -> Result<usize, String> {
    if depth > MAX_DEPTH {
        return Err(format!("CBOR nested deeper than {MAX_DEPTH} levels"));
    }
    let h = head(b, pos)?;
    match h.major {
        major::UINT | major::NINT | major::SIMPLE => Ok(h.next),
        major::BYTES | major::TEXT => usize::try_from(h.arg)
            .ok()
            .and_then(|n| h.next.checked_add(n))
            .filter(|&e| e <= b.len())
            .ok_or_else(|| "truncated CBOR (string longer than the input)".to_string()),
        major::ARRAY | major::MAP => {
            let per_entry = if h.major == major::MAP { 2 } else { 1 };
            let mut p = h.next;
            // Every item takes at least one byte: a count larger than the
            // input ends in a truncation error before this loop runs long.
            for _ in 0..h.arg {
                for _ in 0..per_entry {
                    p = skip(b, p, depth + 1)?;
                }
            }
            Ok(p)
        }
        _ => skip(b, h.next, depth + 1), // tag: one enclosed item
    }
}

/// `b` is exactly one well-formed item; returns its head.
fn single_item(b: &[u8]) -> Result<Head, String> {
    let end = skip(b, 0, 0)?;
    if end != b.len() {
        return Err(format!("{} trailing bytes", b.len() - end));
    }
    head(b, 0)
}

/// Appends a definite-length item head.
fn push_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    // The casts below are exact: each arm bounds `arg` first.
    match arg {
        0..=23 => out.push(m | arg as u8),
        24..=0xff => out.extend([m | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(arg.to_be_bytes());
        }
    }
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_head(out, major::BYTES, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The CBOR encoding of `Sig_structure = ["Signature1", protected, h'',
/// payload]`, where `protected_item` is the protected header's bstr item
/// as it appears in the envelope (head included).
fn sig_structure(protected_item: &[u8], payload: &[u8]) -> Vec<u8> {
    const CONTEXT: &[u8] = b"Signature1";
    let mut out = Vec::with_capacity(protected_item.len() + payload.len() + 24);
    push_head(&mut out, major::ARRAY, 4);
    push_head(&mut out, major::TEXT, CONTEXT.len() as u64);
    out.extend_from_slice(CONTEXT);
    out.extend_from_slice(protected_item);
    push_bytes(&mut out, &[]); // external_aad
    push_bytes(&mut out, payload);
    out
}

fn decode_value(b: &[u8], what: &str) -> Result<Value, EnvelopeError> {
    ciborium::de::from_reader(b).map_err(|e| bad(format!("{what}: {e}")))
}

fn encode_value(v: &Value) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).map_err(|e| bad(format!("encoding CBOR: {e}")))?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// Header maps.

/// A header label: an integer or a text string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Label {
    Int(i64),
    Text(String),
}

impl Label {
    /// How [`SignedAttributes`] names it: text as is, integers in decimal.
    fn name(&self) -> String {
        match self {
            Label::Int(i) => i.to_string(),
            Label::Text(s) => s.clone(),
        }
    }

    /// The label a name stands for: a decimal integer in canonical form is
    /// an integer label, anything else a text label.
    fn from_name(s: &str) -> Label {
        match s.parse::<i64>() {
            Ok(i) if i.to_string() == s => Label::Int(i),
            _ => Label::Text(s.to_string()),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Label::Int(i) => Value::Integer((*i).into()),
            Label::Text(s) => Value::Text(s.clone()),
        }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::Int(i) => write!(f, "{i}"),
            Label::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// A decoded header map, in wire order, indexed by label.
struct HeaderMap {
    entries: Vec<(Label, Value)>,
    index: HashMap<Label, usize>,
}

impl HeaderMap {
    fn empty() -> HeaderMap {
        HeaderMap {
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Decodes the CBOR map `b` (a single well-formed item); labels must be
    /// integers or text strings and unique.
    fn decode(b: &[u8], what: &str) -> Result<HeaderMap, EnvelopeError> {
        let Value::Map(raw) = decode_value(b, what)? else {
            return Err(bad(format!("{what} is not a map")));
        };
        let mut map = HeaderMap::empty();
        for (k, v) in raw {
            let label = match k {
                Value::Integer(i) => Label::Int(
                    i64::try_from(i)
                        .map_err(|_| bad(format!("{what}: integer label out of range")))?,
                ),
                Value::Text(s) => Label::Text(s),
                _ => {
                    return Err(bad(format!(
                        "{what}: labels must be integers or text strings"
                    )))
                }
            };
            if map.index.contains_key(&label) {
                return Err(bad(format!("{what}: duplicate label {label}")));
            }
            map.index.insert(label.clone(), map.entries.len());
            map.entries.push((label, v));
        }
        Ok(map)
    }

    fn get(&self, label: &Label) -> Option<&Value> {
        self.index.get(label).map(|&i| &self.entries[i].1)
    }

    fn int(&self, label: i64) -> Option<&Value> {
        self.get(&Label::Int(label))
    }

    fn text(&self, label: &str) -> Option<&Value> {
        self.get(&Label::Text(label.to_string()))
    }
}

/// `i` in decimal.
fn int_str(i: Integer) -> String {
    i128::from(i).to_string()
}

// ---------------------------------------------------------------------------
// Parsing.

/// Decodes a COSE_Sign1_Tagged envelope.
pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    // The whole input is one well-formed item: no trailing bytes, no
    // indefinite lengths, bounded nesting.
    single_item(bytes).map_err(bad)?;
    let tag = head(bytes, 0).map_err(bad)?;
    if tag.major != major::TAG {
        return Err(bad("not a COSE_Sign1_Tagged object (no CBOR tag 18)"));
    }
    if tag.arg != TAG_SIGN1 {
        return Err(bad(format!(
            "CBOR tag {} is not COSE_Sign1_Tagged (18)",
            tag.arg
        )));
    }
    let array = head(bytes, tag.next).map_err(bad)?;
    if array.major != major::ARRAY {
        return Err(bad("COSE_Sign1 is not an array"));
    }
    if array.arg != 4 {
        return Err(bad(format!("COSE_Sign1 has {} items, not 4", array.arg)));
    }
    let mut spans = [(0, 0); 4];
    let mut p = array.next;
    for span in &mut spans {
        let end = skip(bytes, p, 2).map_err(bad)?;
        *span = (p, end);
        p = end;
    }
    let item = |i: usize| &bytes[spans[i].0..spans[i].1];
    let string_content = |i: usize, what: &str| -> Result<&[u8], EnvelopeError> {
        let h = head(bytes, spans[i].0).map_err(bad)?;
        if h.major == major::BYTES {
            Ok(&bytes[h.next..spans[i].1])
        } else if h.major == major::SIMPLE && h.arg == SIMPLE_NULL && i == 2 {
            Err(bad("detached (nil) payloads are not supported"))
        } else {
            Err(bad(format!("{what} is not a byte string")))
        }
    };

    let protected_raw = string_content(0, "protected header")?;
    let protected = if protected_raw.is_empty() {
        HeaderMap::empty()
    } else {
        let h = single_item(protected_raw).map_err(|e| bad(format!("protected header: {e}")))?;
        if h.major != major::MAP {
            return Err(bad("protected header is not a map"));
        }
        HeaderMap::decode(protected_raw, "protected header")?
    };
    if head(bytes, spans[1].0).map_err(bad)?.major != major::MAP {
        return Err(bad("unprotected header is not a map"));
    }
    let unprotected = HeaderMap::decode(item(1), "unprotected header")?;
    let payload = string_content(2, "payload")?.to_vec();
    let signature = string_content(3, "signature")?.to_vec();
    if signature.is_empty() {
        return Err(bad("empty signature"));
    }

    let signed = signed_attributes(&protected)?;
    if unprotected.int(LABEL_CRIT).is_some() {
        return Err(bad("crit is not allowed in the unprotected header"));
    }
    // x5chain belongs in the unprotected header; the spec allows it in the
    // protected one too.
    let cert_chain = match unprotected
        .int(LABEL_X5CHAIN)
        .or_else(|| protected.int(LABEL_X5CHAIN))
    {
        Some(Value::Bytes(c)) => vec![c.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|c| match c {
                Value::Bytes(c) => Ok(c.clone()),
                _ => Err(bad("x5chain entries must be byte strings")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(bad(
                "x5chain must be a byte string or an array of byte strings",
            ))
        }
        None => Vec::new(),
    };
    let timestamp = match unprotected.text(headers::TIMESTAMP_SIGNATURE) {
        Some(Value::Bytes(t)) => Some(t.clone()),
        Some(_) => return Err(bad("timestamp signature is not a byte string")),
        None => None,
    };
    let signing_agent = match unprotected.text(headers::SIGNING_AGENT) {
        Some(Value::Text(a)) => Some(a.clone()),
        _ => None,
    };
    Ok(Envelope {
        format: Format::Cose,
        signed,
        cert_chain,
        timestamp,
        signing_agent,
        signing_input: sig_structure(item(0), &payload),
        payload,
        signature,
    })
}

fn signed_attributes(p: &HeaderMap) -> Result<SignedAttributes, EnvelopeError> {
    let string = |k: &str| -> Result<Option<&str>, EnvelopeError> {
        match p.text(k) {
            None => Ok(None),
            Some(Value::Text(s)) => Ok(Some(s)),
            Some(_) => Err(header_err(format!("{k} must be a text string"))),
        }
    };
    let time = |k: &str| -> Result<Option<OffsetDateTime>, EnvelopeError> {
        p.text(k).map(|v| epoch_time(k, v)).transpose()
    };
    let alg = match p.int(LABEL_ALG) {
        None => return Err(header_err("missing alg")),
        Some(Value::Integer(i)) => i64::try_from(*i)
            .ok()
            .and_then(Alg::from_cose_id)
            .ok_or_else(|| header_err(format!("unsupported alg {}", int_str(*i))))?,
        Some(Value::Text(s)) => return Err(header_err(format!("unsupported alg {s:?}"))),
        Some(_) => return Err(header_err("alg must be an integer")),
    };
    let scheme_name = string(headers::SIGNING_SCHEME)?
        .ok_or_else(|| header_err(format!("missing {}", headers::SIGNING_SCHEME)))?;
    let signing_scheme = SigningScheme::parse(scheme_name)
        .ok_or_else(|| header_err(format!("unknown signing scheme {scheme_name:?}")))?;
    let critical = match p.int(LABEL_CRIT) {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|c| {
                let label = match c {
                    Value::Integer(i) => {
                        let name = int_str(*i);
                        i64::try_from(*i).map(Label::Int).map_err(|_| {
                            header_err(format!("critical header {name} is not present"))
                        })?
                    }
                    Value::Text(s) => Label::Text(s.clone()),
                    _ => return Err(header_err("crit entries must be integers or text strings")),
                };
                // go-cose: every critical label must be in the protected map.
                if p.get(&label).is_none() {
                    return Err(header_err(format!(
                        "critical header {label} is not present"
                    )));
                }
                Ok(label.name())
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(header_err("crit must be a non-empty array")),
        None => Vec::new(),
    };
    let content_type = match p.int(LABEL_CONTENT_TYPE) {
        Some(Value::Text(s)) => s.clone(),
        Some(_) => return Err(header_err("content type (label 3) must be a text string")),
        None => String::new(),
    };
    let mut extended = BTreeMap::new();
    for (label, value) in &p.entries {
        let reserved = match label {
            Label::Int(i) => [LABEL_ALG, LABEL_CRIT, LABEL_CONTENT_TYPE, LABEL_X5CHAIN].contains(i),
            Label::Text(s) => NOTARY_LABELS.contains(&s.as_str()),
        };
        if reserved {
            continue;
        }
        let name = label.name();
        let json = to_json(value).map_err(|e| header_err(format!("header {label}: {e}")))?;
        if extended.insert(name, json).is_some() {
            return Err(bad(format!(
                "protected header: labels {label} and {:?} collide",
                label.name()
            )));
        }
    }
    Ok(SignedAttributes {
        alg,
        content_type,
        signing_scheme,
        signing_time: time(headers::SIGNING_TIME)?,
        authentic_signing_time: time(headers::AUTHENTIC_SIGNING_TIME)?,
        expiry: time(headers::EXPIRY)?,
        critical,
        verification_plugin: string(headers::VERIFICATION_PLUGIN)?.map(str::to_string),
        verification_plugin_min_version: string(headers::VERIFICATION_PLUGIN_MIN_VERSION)?
            .map(str::to_string),
        extended,
    })
}

/// A tag 1 epoch time (notation-core-go refuses untagged times).
fn epoch_time(k: &str, v: &Value) -> Result<OffsetDateTime, EnvelopeError> {
    let out_of_range = || header_err(format!("{k}: time out of range"));
    match v {
        Value::Tag(TAG_EPOCH_TIME, inner) => match inner.as_ref() {
            Value::Integer(i) => i64::try_from(*i)
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .ok_or_else(out_of_range),
            Value::Float(f) if f.is_finite() && f.abs() < 1e15 => {
                OffsetDateTime::from_unix_timestamp_nanos((f * 1e9) as i128)
                    .map_err(|_| out_of_range())
            }
            _ => Err(header_err(format!(
                "{k}: tag 1 must enclose an epoch number"
            ))),
        },
        Value::Tag(t, _) => Err(header_err(format!(
            "{k}: only tag 1 (epoch) times are supported, not tag {t}"
        ))),
        _ => Err(header_err(format!(
            "{k}: time must be a CBOR tag 1 epoch time"
        ))),
    }
}

/// A CBOR value as JSON: byte strings become base64, tag 1 times RFC 3339
/// text, other tags their content; integer map keys become decimal text.
fn to_json(v: &Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        Value::Integer(i) => {
            let n = i128::from(*i);
            if let Ok(x) = i64::try_from(n) {
                J::from(x)
            } else if let Ok(x) = u64::try_from(n) {
                J::from(x)
            } else {
                J::from(n.to_string())
            }
        }
        Value::Bytes(b) => J::from(STANDARD.encode(b)),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Text(s) => J::from(s.clone()),
        Value::Bool(b) => J::from(*b),
        Value::Null => J::Null,
        Value::Tag(TAG_EPOCH_TIME, inner) => match epoch_time("time", v) {
            Ok(t) => J::from(format_time(t)),
            Err(_) => to_json(inner)?,
        },
        Value::Tag(_, inner) => to_json(inner)?,
        Value::Array(items) => J::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(entries) => {
            let mut m = serde_json::Map::new();
            for (k, v) in entries {
                let key = match k {
                    Value::Text(s) => s.clone(),
                    Value::Integer(i) => int_str(*i),
                    _ => return Err("map keys must be text or integers".into()),
                };
                if m.insert(key.clone(), to_json(v)?).is_some() {
                    return Err(format!("duplicate map key {key:?}"));
                }
            }
            J::Object(m)
        }
        // `Value` is non-exhaustive.
        _ => return Err("unsupported CBOR value".into()),
    })
}

// ---------------------------------------------------------------------------
// Building.

/// A JSON value as CBOR (maps sorted canonically).
fn from_json(v: &serde_json::Value) -> Result<Value, EnvelopeError> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Integer(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Integer(u.into())
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::Text(s.clone()),
        J::Array(items) => Value::Array(items.iter().map(from_json).collect::<Result<_, _>>()?),
        J::Object(m) => canonical_map(
            m.iter()
                .map(|(k, v)| Ok((Value::Text(k.clone()), from_json(v)?)))
                .collect::<Result<_, EnvelopeError>>()?,
        )?,
    })
}

/// A map with its entries in go-cose's canonical order: keys by encoded
/// length, then bytewise.
fn canonical_map(entries: Vec<(Value, Value)>) -> Result<Value, EnvelopeError> {
    let mut keyed = entries
        .into_iter()
        .map(|(k, v)| Ok((encode_value(&k)?, k, v)))
        .collect::<Result<Vec<_>, EnvelopeError>>()?;
    keyed.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
    Ok(Value::Map(
        keyed.into_iter().map(|(_, k, v)| (k, v)).collect(),
    ))
}

fn epoch(t: OffsetDateTime) -> Value {
    Value::Tag(
        TAG_EPOCH_TIME,
        Box::new(Value::Integer(t.unix_timestamp().into())),
    )
}

/// The protected header map for `s`, as notation-core-go writes it.
fn protected_header(s: &SignedAttributes) -> Result<Value, EnvelopeError> {
    let mut entries: Vec<(Label, Value)> = vec![
        (
            Label::Int(LABEL_ALG),
            Value::Integer(s.alg.cose_id().into()),
        ),
        (
            Label::Int(LABEL_CONTENT_TYPE),
            Value::Text(s.content_type.clone()),
        ),
        (
            Label::Text(headers::SIGNING_SCHEME.into()),
            Value::Text(s.signing_scheme.as_str().into()),
        ),
    ];
    let mut add = |label: &str, v: Option<Value>| {
        if let Some(v) = v {
            entries.push((Label::Text(label.into()), v));
        }
    };
    add(headers::SIGNING_TIME, s.signing_time.map(epoch));
    add(
        headers::AUTHENTIC_SIGNING_TIME,
        s.authentic_signing_time.map(epoch),
    );
    add(headers::EXPIRY, s.expiry.map(epoch));
    add(
        headers::VERIFICATION_PLUGIN,
        s.verification_plugin.clone().map(Value::Text),
    );
    add(
        headers::VERIFICATION_PLUGIN_MIN_VERSION,
        s.verification_plugin_min_version.clone().map(Value::Text),
    );
    for (k, v) in &s.extended {
        let label = Label::from_name(k);
        if label == Label::Int(LABEL_CRIT) || entries.iter().any(|(l, _)| *l == label) {
            return Err(header_err(format!(
                "{k:?} already exists in the protected header"
            )));
        }
        entries.push((label, from_json(v)?));
    }
    // An empty crit is invalid COSE: leave it out.
    if !s.critical.is_empty() {
        let crit = s
            .critical
            .iter()
            .map(|c| {
                let label = Label::from_name(c);
                if entries.iter().any(|(l, _)| *l == label) {
                    Ok(label.to_value())
                } else {
                    Err(header_err(format!(
                        "critical header {label} is not in the protected header"
                    )))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        entries.push((Label::Int(LABEL_CRIT), Value::Array(crit)));
    }
    canonical_map(
        entries
            .into_iter()
            .map(|(l, v)| (l.to_value(), v))
            .collect(),
    )
}

/// Builds a COSE_Sign1_Tagged envelope: `sign` receives the signing input
/// (the encoded Sig_structure) and returns the signature (`r || s` for
/// ECDSA). The chain is written as an array in the unprotected header, as
/// notation does, even for a single certificate.
pub fn build(
    signed: &SignedAttributes,
    payload: &[u8],
    cert_chain: &[Vec<u8>],
    signing_agent: Option<&str>,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, CryptoError>,
) -> Result<Vec<u8>, EnvelopeError> {
    let protected_map = encode_value(&protected_header(signed)?)?;
    let mut protected_item = Vec::with_capacity(protected_map.len() + 3);
    push_bytes(&mut protected_item, &protected_map);
    let signature = sign(&sig_structure(&protected_item, payload))?;
    if signature.is_empty() {
        return Err(bad("the signer returned an empty signature"));
    }
    let mut unprotected = vec![(
        Value::Integer(LABEL_X5CHAIN.into()),
        Value::Array(cert_chain.iter().cloned().map(Value::Bytes).collect()),
    )];
    if let Some(a) = signing_agent {
        unprotected.push((
            Value::Text(headers::SIGNING_AGENT.into()),
            Value::Text(a.into()),
        ));
    }
    let unprotected = encode_value(&canonical_map(unprotected)?)?;

    let mut out = Vec::with_capacity(
        protected_item.len() + unprotected.len() + payload.len() + signature.len() + 16,
    );
    push_head(&mut out, major::TAG, TAG_SIGN1);
    push_head(&mut out, major::ARRAY, 4);
    out.extend_from_slice(&protected_item);
    out.extend_from_slice(&unprotected);
    push_bytes(&mut out, payload);
    push_bytes(&mut out, &signature);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::PAYLOAD_CONTENT_TYPE;
    use std::cell::RefCell;
    use std::path::PathBuf;

    fn vectors() -> PathBuf {
        crate::test_vectors::dir()
    }

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    fn attrs(expiry: Option<OffsetDateTime>) -> SignedAttributes {
        let mut critical = vec![headers::SIGNING_SCHEME.to_string()];
        if expiry.is_some() {
            critical.push(headers::EXPIRY.to_string());
        }
        SignedAttributes {
            alg: Alg::Es384,
            content_type: PAYLOAD_CONTENT_TYPE.into(),
            signing_scheme: SigningScheme::X509,
            signing_time: Some(t(1_667_411_812)),
            authentic_signing_time: None,
            expiry,
            critical,
            verification_plugin: None,
            verification_plugin_min_version: None,
            extended: BTreeMap::new(),
        }
    }

    const PAYLOAD: &[u8] = br#"{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0","size":481}}"#;

    /// Builds with a fake signer; returns the envelope and what was signed.
    fn build_fake(
        s: &SignedAttributes,
        chain: &[Vec<u8>],
        agent: Option<&str>,
    ) -> (Vec<u8>, Vec<u8>) {
        let seen = RefCell::new(Vec::new());
        let env = build(s, PAYLOAD, chain, agent, |input| {
            *seen.borrow_mut() = input.to_vec();
            Ok(vec![0xAB; 96])
        })
        .unwrap();
        (env, seen.into_inner())
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn enc(v: &Value) -> Vec<u8> {
        encode_value(v).unwrap()
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn int(i: i64) -> Value {
        Value::Integer(i.into())
    }

    /// A protected header map with the given extra entries after alg, cty,
    /// crit and the signing scheme.
    fn protected_with(extra: Vec<(Value, Value)>) -> Value {
        let mut m = vec![
            (int(1), int(-7)),
            (int(2), Value::Array(vec![text(headers::SIGNING_SCHEME)])),
            (int(3), text(PAYLOAD_CONTENT_TYPE)),
            (text(headers::SIGNING_SCHEME), text("notary.x509")),
        ];
        m.extend(extra);
        Value::Map(m)
    }

    fn signing_time() -> (Value, Value) {
        (
            text(headers::SIGNING_TIME),
            Value::Tag(1, Box::new(int(1_667_411_812))),
        )
    }

    fn unprotected_default() -> Value {
        Value::Map(vec![(int(33), Value::Bytes(vec![1, 2, 3]))])
    }

    /// A COSE_Sign1_Tagged envelope from parts.
    fn sign1(protected: &Value, unprotected: Value, payload: Value, sig: Value) -> Vec<u8> {
        enc(&Value::Tag(
            18,
            Box::new(Value::Array(vec![
                Value::Bytes(enc(protected)),
                unprotected,
                payload,
                sig,
            ])),
        ))
    }

    fn good_parts() -> Vec<u8> {
        sign1(
            &protected_with(vec![signing_time()]),
            unprotected_default(),
            Value::Bytes(PAYLOAD.to_vec()),
            Value::Bytes(vec![7; 64]),
        )
    }

    #[track_caller]
    fn malformed(bytes: &[u8], needle: &str) {
        match parse(bytes) {
            Err(EnvelopeError::Malformed { format, why }) => {
                assert_eq!(format, "COSE");
                assert!(why.contains(needle), "{why:?} lacks {needle:?}");
                assert!(!why.contains('\n'));
            }
            other => panic!("expected Malformed({needle}), got {other:?}"),
        }
    }

    #[track_caller]
    fn header(bytes: &[u8], needle: &str) {
        match parse(bytes) {
            Err(EnvelopeError::Header(h)) => {
                assert!(h.contains(needle), "{h:?} lacks {needle:?}");
                assert!(!h.contains('\n'));
            }
            other => panic!("expected Header({needle}), got {other:?}"),
        }
    }

    #[test]
    fn round_trip_one_cert_no_expiry() {
        let s = attrs(None);
        let chain = vec![vec![0x30, 1, 2, 3]];
        let (bytes, signed_input) = build_fake(&s, &chain, Some("pavilion/0.1.0"));
        assert_eq!(&bytes[..2], &[0xd2, 0x84]);
        let env = parse(&bytes).unwrap();
        assert_eq!(env.format, Format::Cose);
        assert_eq!(env.signed, s);
        assert_eq!(env.cert_chain, chain);
        assert_eq!(env.timestamp, None);
        assert_eq!(env.signing_agent.as_deref(), Some("pavilion/0.1.0"));
        assert_eq!(env.payload, PAYLOAD);
        assert_eq!(env.signature, vec![0xAB; 96]);
        assert_eq!(env.signing_input, signed_input);
        // Sig_structure = ["Signature1", protected, h'', payload].
        let Value::Array(sig) = decode_value(&signed_input, "t").unwrap() else {
            panic!()
        };
        assert_eq!(sig[0], text("Signature1"));
        assert_eq!(sig[2], Value::Bytes(vec![]));
        assert_eq!(sig[3], Value::Bytes(PAYLOAD.to_vec()));
        // notation writes x5chain as an array even for one certificate.
        let Value::Tag(18, arr) = decode_value(&bytes, "t").unwrap() else {
            panic!()
        };
        let Value::Array(items) = *arr else { panic!() };
        assert_eq!(sig[1], items[0]);
        assert_eq!(
            items[1],
            Value::Map(vec![
                (int(33), Value::Array(vec![Value::Bytes(chain[0].clone())])),
                (text(headers::SIGNING_AGENT), text("pavilion/0.1.0")),
            ])
        );
        // Deterministic.
        assert_eq!(build_fake(&s, &chain, Some("pavilion/0.1.0")).0, bytes);
    }

    #[test]
    fn round_trip_two_certs_with_expiry_and_extras() {
        let mut s = attrs(Some(t(1_667_415_412)));
        s.signing_scheme = SigningScheme::SigningAuthority;
        s.signing_time = None;
        s.authentic_signing_time = Some(t(1_667_411_800));
        s.critical.insert(1, headers::AUTHENTIC_SIGNING_TIME.into());
        s.verification_plugin = Some("com.example.plugin".into());
        s.verification_plugin_min_version = Some("1.0.0".into());
        s.critical.push(headers::VERIFICATION_PLUGIN.into());
        s.critical.push("signedCritKey1".into());
        s.extended.insert("signedCritKey1".into(), "v".into());
        s.extended.insert(
            "io.example.nested".into(),
            serde_json::json!({"b": [1, -2, 3.5, true, null], "a": "x"}),
        );
        s.extended
            .insert("4".into(), serde_json::json!(18446744073709551615u64));
        let chain = vec![vec![0x30, 1], vec![0x30, 2, 2]];
        let (bytes, input) = build_fake(&s, &chain, None);
        let env = parse(&bytes).unwrap();
        assert_eq!(env.signed, s);
        assert_eq!(env.cert_chain, chain);
        assert_eq!(env.signing_agent, None);
        assert_eq!(env.signing_input, input);
        // "4" is the integer label 4, not text.
        let Value::Tag(18, arr) = decode_value(&bytes, "t").unwrap() else {
            panic!()
        };
        let Value::Array(items) = *arr else { panic!() };
        let Value::Bytes(p) = &items[0] else { panic!() };
        let map = HeaderMap::decode(p, "p").unwrap();
        assert!(map.int(4).is_some());
        // Times are tag 1 epoch seconds.
        assert_eq!(
            map.text(headers::EXPIRY),
            Some(&Value::Tag(1, Box::new(int(1_667_415_412))))
        );
    }

    #[test]
    fn build_refuses_inconsistent_attributes() {
        let mut s = attrs(None);
        s.critical.push("absent".into());
        assert!(matches!(
            build(&s, PAYLOAD, &[], None, |_| Ok(vec![1])),
            Err(EnvelopeError::Header(_))
        ));
        let mut s = attrs(None);
        s.extended
            .insert(headers::SIGNING_SCHEME.into(), "x".into());
        s.extended.insert("1".into(), 1.into());
        assert!(matches!(
            build(&s, PAYLOAD, &[], None, |_| Ok(vec![1])),
            Err(EnvelopeError::Header(_))
        ));
        let s = attrs(None);
        assert!(build(&s, PAYLOAD, &[], None, |_| Ok(vec![])).is_err());
        assert_eq!(
            build(&s, PAYLOAD, &[], None, |_| Err(CryptoError::BadSignature)),
            Err(EnvelopeError::Signature(CryptoError::BadSignature))
        );
    }

    #[test]
    fn matches_notation_core_go_conformance_vector() {
        let p = vectors().join("notation-core-go/signature/cose/testdata/conformance.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        let protected = hex(v["protectedHeaders"]["cborHex"].as_str().unwrap());
        let expected = hex(v["expectedOutput"]["cborHex"].as_str().unwrap());
        let payload = hex(v["payload"].as_str().unwrap());

        let env = parse(&expected).unwrap();
        let s = &env.signed;
        assert_eq!(s.alg, Alg::Ps384);
        assert_eq!(s.signing_scheme, SigningScheme::X509);
        assert_eq!(s.signing_time, Some(t(v["signingTime"].as_i64().unwrap())));
        assert_eq!(s.expiry, Some(t(v["expiry"].as_i64().unwrap())));
        assert_eq!(
            s.critical,
            [headers::SIGNING_SCHEME, headers::EXPIRY, "signedCritKey1"]
        );
        assert_eq!(s.extended["signedKey1"], "signedValue1");
        assert_eq!(s.extended["signedCritKey1"], "signedCritValue1");
        assert_eq!(
            env.signing_agent.as_deref(),
            Some("NotationConformanceTest/1.0.0")
        );
        assert!(env.cert_chain.is_empty());
        assert_eq!(env.payload, payload);

        // Our encoding of the same attributes is byte-identical.
        let seen = RefCell::new(Vec::new());
        let ours = build(s, &payload, &[], None, |input| {
            *seen.borrow_mut() = input.to_vec();
            Ok(env.signature.clone())
        })
        .unwrap();
        let mut item = Vec::new();
        push_bytes(&mut item, &protected);
        assert!(ours[2..].starts_with(&item));
        assert_eq!(seen.into_inner(), env.signing_input);
    }

    #[test]
    fn rebuilding_notation_envelopes_gives_the_same_bytes() {
        // Envelopes without a timestamp token: everything they carry is
        // something `build` writes.
        for file in [
            "notation-go/internal/testdata/cose_signature.sig",
            "notation/test/e2e/testdata/signatures/blob.cose.sig",
            "notation-go/verifier/testdata/timestamp/sigEnv/coseWithTimestamp.sig",
        ] {
            let original = std::fs::read(vectors().join(file)).unwrap();
            let env = parse(&original).unwrap();
            env.verify_integrity()
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let rebuilt = build(
                &env.signed,
                &env.payload,
                &env.cert_chain,
                env.signing_agent.as_deref(),
                |input| {
                    assert_eq!(input, env.signing_input);
                    Ok(env.signature.clone())
                },
            )
            .unwrap();
            if env.timestamp.is_none() {
                assert_eq!(rebuilt, original, "{file}");
            } else {
                // Same protected header, same signature.
                let again = parse(&rebuilt).unwrap();
                assert_eq!(again.signing_input, env.signing_input, "{file}");
                assert_eq!(again.signed, env.signed, "{file}");
            }
        }
    }

    #[test]
    fn real_signature_round_trip() {
        let pki = crate::certgen::generate("cose-test", 1).unwrap();
        let chain = crate::certgen::pem_certificates(&pki.chain_pem).unwrap();
        use p256::pkcs8::DecodePrivateKey as _;
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&pki.key_pem).unwrap();
        let mut s = attrs(Some(t(4_102_444_800)));
        s.alg = Alg::Es256;
        let sign = |m: &[u8]| {
            use p256::ecdsa::signature::Signer as _;
            let sig: p256::ecdsa::Signature = key.sign(m);
            Ok(sig.to_bytes().to_vec())
        };
        let bytes = build(&s, PAYLOAD, &chain, Some("pavilion"), sign).unwrap();
        let env = Envelope::parse(crate::envelope::COSE_MEDIA_TYPE, &bytes).unwrap();
        assert_eq!(env.cert_chain.len(), 2);
        let payload = env.verify_integrity().unwrap();
        assert_eq!(payload.target_artifact.size, 481);
        // A different payload under the same signature fails.
        let mut tampered = env.clone();
        tampered.payload = PAYLOAD.to_ascii_uppercase();
        tampered.signing_input = sig_structure(
            &{
                let mut i = Vec::new();
                push_bytes(&mut i, &enc(&protected_header(&s).unwrap()));
                i
            },
            &tampered.payload,
        );
        assert!(matches!(
            tampered.verify_integrity(),
            Err(EnvelopeError::Signature(_))
        ));
    }

    #[test]
    fn single_bstr_x5chain_and_ignored_unprotected_labels() {
        let bytes = sign1(
            &protected_with(vec![signing_time()]),
            Value::Map(vec![
                (int(33), Value::Bytes(vec![9, 9])),
                (text("io.cncf.notary.SigningAgent"), text("misspelt")),
                (int(99), Value::Null),
                (text(headers::TIMESTAMP_SIGNATURE), Value::Bytes(vec![0x30])),
            ]),
            Value::Bytes(PAYLOAD.to_vec()),
            Value::Bytes(vec![7; 64]),
        );
        let env = parse(&bytes).unwrap();
        assert_eq!(env.cert_chain, vec![vec![9, 9]]);
        assert_eq!(env.signing_agent, None);
        assert_eq!(env.timestamp, Some(vec![0x30]));
        assert_eq!(env.signed.alg, Alg::Es256);
        assert_eq!(env.signed.signing_time, Some(t(1_667_411_812)));
        assert!(env.signed.extended.is_empty());
        parse(&good_parts()).unwrap();
    }

    #[test]
    fn integer_crit_labels_are_decimal_strings() {
        let p = Value::Map(vec![
            (int(1), int(-37)),
            (
                int(2),
                Value::Array(vec![text(headers::SIGNING_SCHEME), int(-70000)]),
            ),
            (text(headers::SIGNING_SCHEME), text("notary.x509")),
            (int(-70000), Value::Bytes(vec![1, 2])),
            signing_time(),
        ]);
        let bytes = sign1(
            &p,
            unprotected_default(),
            Value::Bytes(PAYLOAD.to_vec()),
            Value::Bytes(vec![1]),
        );
        let env = parse(&bytes).unwrap();
        assert_eq!(env.signed.critical, [headers::SIGNING_SCHEME, "-70000"]);
        assert_eq!(env.signed.extended["-70000"], "AQI=");
        assert_eq!(env.signed.content_type, "");
        // Unknown critical headers are refused later, by the integrity check.
        assert!(matches!(
            env.verify_integrity(),
            Err(EnvelopeError::Header(h)) if h.contains("content type")
        ));
    }

    #[test]
    fn malformed_structure() {
        let good = good_parts();
        malformed(&[], "truncated");
        for n in 1..good.len() {
            assert!(
                matches!(parse(&good[..n]), Err(EnvelopeError::Malformed { .. })),
                "prefix {n}"
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        malformed(&trailing, "trailing");
        // Untagged COSE_Sign1, and COSE_Sign (tag 98).
        malformed(&good[1..], "no CBOR tag 18");
        let mut other_tag = vec![0xd8, 98];
        other_tag.extend_from_slice(&good[1..]);
        malformed(&other_tag, "tag 98");
        malformed(
            &enc(&Value::Tag(18, Box::new(Value::Map(vec![])))),
            "not an array",
        );
        malformed(
            &enc(&Value::Tag(
                18,
                Box::new(Value::Array(vec![Value::Bytes(vec![])])),
            )),
            "1 items",
        );
        // Protected header given as a map instead of a bstr.
        let direct = enc(&Value::Tag(
            18,
            Box::new(Value::Array(vec![
                protected_with(vec![signing_time()]),
                unprotected_default(),
                Value::Bytes(PAYLOAD.to_vec()),
                Value::Bytes(vec![1]),
            ])),
        ));
        malformed(&direct, "protected header is not a byte string");
        let not_map = sign1(
            &Value::Array(vec![]),
            unprotected_default(),
            Value::Bytes(vec![]),
            Value::Bytes(vec![1]),
        );
        malformed(&not_map, "protected header is not a map");
        let unprot_array = sign1(
            &protected_with(vec![signing_time()]),
            Value::Array(vec![]),
            Value::Bytes(vec![]),
            Value::Bytes(vec![1]),
        );
        malformed(&unprot_array, "unprotected header is not a map");
        let detached = sign1(
            &protected_with(vec![signing_time()]),
            unprotected_default(),
            Value::Null,
            Value::Bytes(vec![1]),
        );
        malformed(&detached, "detached");
        let empty_sig = sign1(
            &protected_with(vec![signing_time()]),
            unprotected_default(),
            Value::Bytes(vec![]),
            Value::Bytes(vec![]),
        );
        malformed(&empty_sig, "empty signature");
        let text_sig = sign1(
            &protected_with(vec![signing_time()]),
            unprotected_default(),
            Value::Bytes(vec![]),
            text("sig"),
        );
        malformed(&text_sig, "signature is not a byte string");
        // Indefinite-length array (0x9f ... 0xff) in place of the definite one.
        let mut indefinite = vec![0xd2, 0x9f];
        indefinite.extend_from_slice(&good[2..]);
        indefinite.push(0xff);
        malformed(&indefinite, "indefinite");
        // Deep nesting is refused without overflowing the stack.
        let mut deep = vec![0xd2, 0x84, 0x40, 0xa1, 0x01];
        deep.extend(std::iter::repeat_n(0x81, 100_000));
        malformed(&deep, "nested deeper");
        malformed(
            &[
                0xd2, 0x84, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            "truncated",
        );
        malformed(
            &[0xd2, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            "",
        );
        malformed(&[0xd2, 0x84, 0x1c], "invalid CBOR initial byte");
    }

    #[test]
    fn malformed_headers() {
        let dup = sign1(
            &protected_with(vec![signing_time(), (int(1), int(-7))]),
            unprotected_default(),
            Value::Bytes(PAYLOAD.to_vec()),
            Value::Bytes(vec![1]),
        );
        malformed(&dup, "duplicate label 1");
        let dup_unprot = sign1(
            &protected_with(vec![signing_time()]),
            Value::Map(vec![(text("x"), Value::Null), (text("x"), Value::Null)]),
            Value::Bytes(PAYLOAD.to_vec()),
            Value::Bytes(vec![1]),
        );
        malformed(&dup_unprot, "duplicate label \"x\"");
        let bad_label = sign1(
            &protected_with(vec![(Value::Bytes(vec![1]), Value::Null)]),
            unprotected_default(),
            Value::Bytes(PAYLOAD.to_vec()),
            Value::Bytes(vec![1]),
        );
        malformed(&bad_label, "labels must be integers or text strings");
        let bad_chain = sign1(
            &protected_with(vec![signing_time()]),
            Value::Map(vec![(int(33), Value::Array(vec![text("cert")]))]),
            Value::Bytes(PAYLOAD.to_vec()),
            Value::Bytes(vec![1]),
        );
        malformed(&bad_chain, "x5chain entries");
        let crit_unprot = sign1(
            &protected_with(vec![signing_time()]),
            Value::Map(vec![(int(2), Value::Array(vec![int(1)]))]),
            Value::Bytes(PAYLOAD.to_vec()),
            Value::Bytes(vec![1]),
        );
        malformed(&crit_unprot, "crit is not allowed");
    }

    #[test]
    fn header_errors() {
        let with = |p: Value| {
            sign1(
                &p,
                unprotected_default(),
                Value::Bytes(PAYLOAD.to_vec()),
                Value::Bytes(vec![1]),
            )
        };
        let untagged = (text(headers::SIGNING_TIME), int(1_667_411_812));
        header(&with(protected_with(vec![untagged])), "tag 1");
        let rfc3339 = (
            text(headers::EXPIRY),
            Value::Tag(0, Box::new(text("2022-11-02T17:56:52Z"))),
        );
        header(
            &with(protected_with(vec![signing_time(), rfc3339])),
            "not tag 0",
        );
        let tagged_text = (
            text(headers::SIGNING_TIME),
            Value::Tag(1, Box::new(text("x"))),
        );
        header(&with(protected_with(vec![tagged_text])), "epoch number");
        let huge = (
            text(headers::SIGNING_TIME),
            Value::Tag(1, Box::new(int(i64::MAX))),
        );
        header(&with(protected_with(vec![huge])), "out of range");
        let mut p = protected_with(vec![signing_time()]);
        let Value::Map(m) = &mut p else { panic!() };
        m[0].1 = int(-8); // EdDSA
        header(&with(p.clone()), "unsupported alg -8");
        let Value::Map(m) = &mut p else { panic!() };
        m[0].1 = text("PS256");
        header(&with(p.clone()), "unsupported alg \"PS256\"");
        let Value::Map(m) = &mut p else { panic!() };
        m.remove(0);
        header(&with(p), "missing alg");
        header(&with(Value::Map(vec![])), "missing alg");
        let empty_protected = enc(&Value::Tag(
            18,
            Box::new(Value::Array(vec![
                Value::Bytes(vec![]),
                unprotected_default(),
                Value::Bytes(PAYLOAD.to_vec()),
                Value::Bytes(vec![1]),
            ])),
        ));
        header(&empty_protected, "missing alg");
        let mut p = protected_with(vec![signing_time()]);
        let Value::Map(m) = &mut p else { panic!() };
        m[1].1 = Value::Array(vec![]);
        header(&with(p.clone()), "crit must be a non-empty array");
        let Value::Map(m) = &mut p else { panic!() };
        m[1].1 = Value::Array(vec![text(headers::EXPIRY)]);
        header(&with(p.clone()), "not present");
        let Value::Map(m) = &mut p else { panic!() };
        m[1].1 = Value::Array(vec![text(headers::SIGNING_SCHEME)]);
        m[2].1 = int(50);
        header(&with(p.clone()), "content type");
        let Value::Map(m) = &mut p else { panic!() };
        m[2].1 = text(PAYLOAD_CONTENT_TYPE);
        m[3].1 = text("notary.x509.other");
        header(&with(p.clone()), "unknown signing scheme");
        let Value::Map(m) = &mut p else { panic!() };
        m[3].1 = int(1);
        header(&with(p), "must be a text string");
    }
}
