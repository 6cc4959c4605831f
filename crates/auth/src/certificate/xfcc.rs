//! Envoy's `x-forwarded-client-cert` (XFCC), as Envoy and Istio send it:
//! elements separated by `,`, one per proxy hop, each `key=value` pairs
//! separated by `;`; a value holding `,`, `;` or `=` is double-quoted, with
//! `\"` for a quote inside. Keys (case-insensitive): By, Hash, Cert (the
//! URL-encoded PEM certificate), Chain, Subject, URI, DNS.
//!
//! Only believe this header from a [`super::TrustedProxies`] address: it
//! says what the proxy verified, and anyone else could write it.

use super::{identity_of, refuse, spiffe_identity, subject_identity};
use crate::{AuthError, Identity};
use der::DecodePem as _;
use std::str::FromStr as _;
use x509_cert::name::RdnSequence;
use x509_cert::Certificate;

/// Longest header value read.
const MAX_HEADER: usize = 16 << 10;
/// Most elements (proxy hops) and pairs per element read.
const MAX_ELEMENTS: usize = 32;
const MAX_PAIRS: usize = 32;

/// The identity of the client certificate the nearest proxy verified: the
/// LAST element of the header (each proxy appends the one it saw). Its
/// SPIFFE `URI` when it has one, else its `Cert`, else its `Subject`.
pub fn identity_from_forwarded(header_value: &str) -> Result<Identity, AuthError> {
    if header_value.len() > MAX_HEADER {
        return Err(AuthError::Malformed(
            "x-forwarded-client-cert longer than 16 KiB",
        ));
    }
    let elements = split(header_value, b',')?;
    if elements.len() > MAX_ELEMENTS {
        return Err(AuthError::Malformed(
            "x-forwarded-client-cert has more than 32 elements",
        ));
    }
    let last = elements
        .last()
        .filter(|e| !e.trim().is_empty())
        .ok_or(AuthError::Malformed(
            "x-forwarded-client-cert has an empty element",
        ))?;
    let pairs = pairs(last)?;
    let values = |key: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let uris = values("uri");
    if uris.iter().any(|u| super::spiffe::claims_spiffe(u)) {
        let [id] = uris[..] else {
            return Err(refuse("forwarded certificate with more than one URI"));
        };
        return spiffe_identity(id);
    }
    let certs = values("cert");
    if !certs.is_empty() {
        let [cert] = certs[..] else {
            return Err(refuse("forwarded element with more than one Cert"));
        };
        let pem = percent_decode(cert)?;
        let cert = Certificate::from_pem(pem.as_bytes())
            .map_err(|_| refuse("forwarded Cert is not a PEM certificate"))?;
        return identity_of(&cert);
    }
    match values("subject")[..] {
        [subject] if !subject.is_empty() => {
            let name = RdnSequence::from_str(subject)
                .map_err(|_| refuse("forwarded Subject is not an RFC 4514 name"))?;
            subject_identity(&name)
        }
        [_, _, ..] => Err(refuse("forwarded element with more than one Subject")),
        _ => Err(refuse(
            "forwarded element names no SPIFFE URI, Cert or Subject",
        )),
    }
}

/// Splits `text` at each `sep` outside double quotes (where `\"` is a
/// quote, not the end of one).
fn split(text: &str, sep: u8) -> Result<Vec<&str>, AuthError> {
    let bytes = text.as_bytes();
    let (mut parts, mut start, mut quoted, mut i) = (Vec::new(), 0, false, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b if b == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if quoted {
        return Err(AuthError::Malformed(
            "x-forwarded-client-cert has an unterminated quote",
        ));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// The `key=value` pairs of one element, values unquoted.
fn pairs(element: &str) -> Result<Vec<(String, String)>, AuthError> {
    let raw = split(element, b';')?;
    if raw.len() > MAX_PAIRS {
        return Err(AuthError::Malformed(
            "x-forwarded-client-cert element has more than 32 pairs",
        ));
    }
    raw.into_iter()
        .map(|pair| {
            let (key, value) = pair.split_once('=').ok_or(AuthError::Malformed(
                "x-forwarded-client-cert pair without '='",
            ))?;
            let key = key.trim();
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(AuthError::Malformed(
                    "x-forwarded-client-cert key is not a word",
                ));
            }
            Ok((key.to_string(), unquote(value.trim())?))
        })
        .collect()
}

/// A value without its quotes and with `\"` turned back into `"`. Quotes
/// anywhere but around the whole value are an error.
fn unquote(value: &str) -> Result<String, AuthError> {
    let bad = || AuthError::Malformed("x-forwarded-client-cert value has a stray quote");
    let Some(inner) = value.strip_prefix('"') else {
        return if value.contains('"') {
            Err(bad())
        } else {
            Ok(value.to_string())
        };
    };
    let inner = inner.strip_suffix('"').ok_or_else(bad)?;
    let (mut out, mut chars) = (String::with_capacity(inner.len()), inner.chars());
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('"') => out.push('"'),
                Some(other) => {
                    // Other escapes (a Subject's `\,`) belong to the value.
                    out.push('\\');
                    out.push(other);
                }
                None => return Err(bad()),
            },
            '"' => return Err(bad()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Decodes `%XX` escapes (Envoy URL-encodes the PEM of `Cert` and `Chain`).
fn percent_decode(value: &str) -> Result<String, AuthError> {
    let bad = || AuthError::Malformed("x-forwarded-client-cert has bad percent-encoding");
    let bytes = value.as_bytes();
    let (mut out, mut i) = (Vec::with_capacity(bytes.len()), 0);
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad());
            }
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}
