//! JWS JSON serialization, flattened (signature-envelope-jws.md): the
//! Notary Project's default envelope.
//!
//! `{"payload": b64url, "protected": b64url(JSON), "header": {"x5c": [...],
//! "io.cncf.notary.timestampSignature": b64, "io.cncf.notary.signingAgent":
//! "..."}, "signature": b64url}`; the signature covers
//! `ASCII(protected "." payload)`, both as the base64url text on the wire.

use crate::crypto::Alg;
use crate::envelope::{
    format_time, headers, parse_time, Envelope, EnvelopeError, Format, SignedAttributes,
    SigningScheme,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{Map, Value};

fn bad(why: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Malformed {
        format: "JWS",
        why: why.into(),
    }
}

fn b64url(field: &str, s: &str) -> Result<Vec<u8>, EnvelopeError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| bad(format!("{field} is not base64url: {e}")))
}

/// Protected header names defined by JWS or the Notary Project.
const RESERVED: [&str; 3] = ["alg", "cty", "crit"];

/// Decodes a JWS envelope.
pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let v: Map<String, Value> =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a JSON object: {e}")))?;
    let text = |k: &str| -> Result<&str, EnvelopeError> {
        v.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("missing string field {k:?}")))
    };
    let (protected_b64, payload_b64, sig_b64) =
        (text("protected")?, text("payload")?, text("signature")?);
    let protected_raw = b64url("protected", protected_b64)?;
    let protected: Map<String, Value> = serde_json::from_slice(&protected_raw)
        .map_err(|e| bad(format!("protected header is not a JSON object: {e}")))?;
    let signed = signed_attributes(&protected)?;
    let header = match v.get("header") {
        Some(Value::Object(h)) => h.clone(),
        None => Map::new(),
        Some(_) => return Err(bad("header is not an object")),
    };
    let cert_chain = match header.get("x5c") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|c| {
                c.as_str()
                    .ok_or_else(|| bad("x5c entries must be strings"))
                    .and_then(|s| {
                        STANDARD
                            .decode(s)
                            .map_err(|e| bad(format!("x5c entry is not base64: {e}")))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("x5c is not an array")),
        None => Vec::new(),
    };
    let timestamp = match header.get(headers::TIMESTAMP_SIGNATURE) {
        Some(Value::String(s)) => Some(
            STANDARD
                .decode(s)
                .map_err(|e| bad(format!("timestamp signature is not base64: {e}")))?,
        ),
        Some(_) => return Err(bad("timestamp signature is not a string")),
        None => None,
    };
    let signing_agent = header
        .get(headers::SIGNING_AGENT)
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Envelope {
        format: Format::Jws,
        signed,
        cert_chain,
        timestamp,
        signing_agent,
        payload: b64url("payload", payload_b64)?,
        signing_input: format!("{protected_b64}.{payload_b64}").into_bytes(),
        signature: b64url("signature", sig_b64)?,
    })
}

fn signed_attributes(p: &Map<String, Value>) -> Result<SignedAttributes, EnvelopeError> {
    let string = |k: &str| -> Result<Option<&str>, EnvelopeError> {
        match p.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(EnvelopeError::Header(format!("{k} must be a string"))),
        }
    };
    let time = |k: &str| -> Result<Option<time::OffsetDateTime>, EnvelopeError> {
        string(k)?.map(|s| parse_time(k, s)).transpose()
    };
    let alg_name = string("alg")?.ok_or_else(|| EnvelopeError::Header("missing alg".into()))?;
    let alg = Alg::from_jws_name(alg_name)
        .ok_or_else(|| EnvelopeError::Header(format!("unsupported alg {alg_name:?}")))?;
    let scheme_name = string(headers::SIGNING_SCHEME)?
        .ok_or_else(|| EnvelopeError::Header(format!("missing {}", headers::SIGNING_SCHEME)))?;
    let signing_scheme = SigningScheme::parse(scheme_name)
        .ok_or_else(|| EnvelopeError::Header(format!("unknown signing scheme {scheme_name:?}")))?;
    let critical = match p.get("crit") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|c| {
                c.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| EnvelopeError::Header("crit entries must be strings".into()))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(EnvelopeError::Header(
                "crit must be a non-empty array".into(),
            ))
        }
        None => Vec::new(),
    };
    let notary_keys = [
        headers::SIGNING_SCHEME,
        headers::SIGNING_TIME,
        headers::AUTHENTIC_SIGNING_TIME,
        headers::EXPIRY,
        headers::VERIFICATION_PLUGIN,
        headers::VERIFICATION_PLUGIN_MIN_VERSION,
    ];
    let extended = p
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()) && !notary_keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(SignedAttributes {
        alg,
        content_type: string("cty")?.unwrap_or_default().to_string(),
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

/// The protected header JSON for `s`.
pub fn protected_header(s: &SignedAttributes) -> Value {
    let mut p = Map::new();
    p.insert("alg".into(), s.alg.jws_name().into());
    p.insert("cty".into(), s.content_type.clone().into());
    p.insert(
        "crit".into(),
        Value::Array(s.critical.iter().cloned().map(Value::from).collect()),
    );
    p.insert(
        headers::SIGNING_SCHEME.into(),
        s.signing_scheme.as_str().into(),
    );
    if let Some(t) = s.signing_time {
        p.insert(headers::SIGNING_TIME.into(), format_time(t).into());
    }
    if let Some(t) = s.authentic_signing_time {
        p.insert(
            headers::AUTHENTIC_SIGNING_TIME.into(),
            format_time(t).into(),
        );
    }
    if let Some(t) = s.expiry {
        p.insert(headers::EXPIRY.into(), format_time(t).into());
    }
    for (k, v) in &s.extended {
        p.insert(k.clone(), v.clone());
    }
    Value::Object(p)
}

/// Builds a JWS envelope: `sign` receives the signing input and returns the
/// signature (`r || s` for ECDSA).
pub fn build(
    signed: &SignedAttributes,
    payload: &[u8],
    cert_chain: &[Vec<u8>],
    signing_agent: Option<&str>,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, crate::crypto::CryptoError>,
) -> Result<Vec<u8>, EnvelopeError> {
    let protected = serde_json::to_vec(&protected_header(signed))
        .map_err(|e| bad(format!("encoding the protected header: {e}")))?;
    let protected_b64 = URL_SAFE_NO_PAD.encode(protected);
    let payload_b64 = URL_SAFE_NO_PAD.encode(payload);
    let signature = sign(format!("{protected_b64}.{payload_b64}").as_bytes())?;
    let mut header = Map::new();
    header.insert(
        "x5c".into(),
        Value::Array(
            cert_chain
                .iter()
                .map(|c| STANDARD.encode(c).into())
                .collect(),
        ),
    );
    if let Some(a) = signing_agent {
        header.insert(headers::SIGNING_AGENT.into(), a.into());
    }
    let env = serde_json::json!({
        "payload": payload_b64,
        "protected": protected_b64,
        "header": header,
        "signature": URL_SAFE_NO_PAD.encode(signature),
    });
    serde_json::to_vec(&env).map_err(|e| bad(format!("encoding: {e}")))
}
