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

mod cbor;
mod header_map;
#[cfg(test)]
mod tests;

use crate::crypto::{Alg, CryptoError};
use crate::envelope::{
    format_time, headers, Envelope, EnvelopeError, Format, SignedAttributes, SigningScheme,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cbor::{
    encode_value, head, major, push_bytes, push_head, sig_structure, single_item, skip, SIMPLE_NULL,
};
use ciborium::value::Value;
use header_map::{int_str, HeaderMap, Label};
use std::collections::BTreeMap;
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
