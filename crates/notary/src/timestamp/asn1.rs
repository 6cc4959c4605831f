//! The minimal DER reader the token is read with (definite lengths, low tag
//! numbers), and the object identifiers, times and hashes it uses.

use super::{malformed, Result, TimestampError};
use const_oid::ObjectIdentifier;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use time::OffsetDateTime;

// ---------------------------------------------------------------------------
// Object identifiers.

pub(super) const OID_SIGNED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
pub(super) const OID_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
pub(super) const OID_CONTENT_TYPE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
pub(super) const OID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
pub(super) const OID_SIGNING_TIME: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
pub(super) const OID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
pub(super) const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(super) const OID_RSA_PSS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
pub(super) const OID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub(super) const OID_SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
/// The baseline time-stamp policy of RFC 3628 (ETSI TS 102 023).
pub(super) const OID_BASELINE_TSP: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");

pub(super) fn is_oid(value: &[u8], oid: &ObjectIdentifier) -> bool {
    value == oid.as_bytes()
}

pub(super) fn oid_name(value: &[u8]) -> String {
    ObjectIdentifier::from_bytes(value)
        .map(|o| o.to_string())
        .unwrap_or_else(|_| "<invalid OID>".into())
}

// ---------------------------------------------------------------------------
// A minimal DER reader (definite lengths, low tag numbers).

pub(super) const SEQUENCE: u8 = 0x30;
pub(super) const SET: u8 = 0x31;
pub(super) const INTEGER: u8 = 0x02;
pub(super) const OCTET_STRING: u8 = 0x04;
pub(super) const NULL: u8 = 0x05;
pub(super) const OID: u8 = 0x06;
pub(super) const UTC_TIME: u8 = 0x17;
pub(super) const GENERALIZED_TIME: u8 = 0x18;
pub(super) const CTX0_CONS: u8 = 0xa0;
pub(super) const CTX1_CONS: u8 = 0xa1;
pub(super) const CTX4_CONS: u8 = 0xa4;
pub(super) const CTX0_PRIM: u8 = 0x80;
pub(super) const CTX1_PRIM: u8 = 0x81;

/// One encoded value.
#[derive(Clone, Copy)]
pub(super) struct Tlv<'a> {
    pub(super) tag: u8,
    /// The contents.
    pub(super) value: &'a [u8],
    /// The whole encoding, tag and length included.
    pub(super) raw: &'a [u8],
}

pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    pub(super) fn next(&mut self, what: &str) -> Result<Tlv<'a>> {
        let bytes = self.rest;
        let (&tag, after) = bytes
            .split_first()
            .ok_or_else(|| malformed(format!("{what}: unexpected end of data")))?;
        if tag & 0x1f == 0x1f {
            return Err(malformed(format!("{what}: high tag numbers are not used")));
        }
        let (&first, mut after) = after
            .split_first()
            .ok_or_else(|| malformed(format!("{what}: truncated length")))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else if first == 0x80 {
            return Err(malformed(format!(
                "{what}: indefinite length (BER) is not DER"
            )));
        } else {
            let n = usize::from(first & 0x7f);
            if n > 4 || after.len() < n {
                return Err(malformed(format!("{what}: bad length")));
            }
            let (len_bytes, tail) = after.split_at(n);
            after = tail;
            len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        if after.len() < len {
            return Err(malformed(format!("{what}: truncated")));
        }
        let header = bytes.len() - after.len();
        let raw = &bytes[..header + len];
        let value = &after[..len];
        self.rest = &after[len..];
        Ok(Tlv { tag, value, raw })
    }

    pub(super) fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>> {
        let t = self.next(what)?;
        if t.tag != tag {
            return Err(malformed(format!(
                "{what}: expected tag 0x{tag:02x}, found 0x{:02x}",
                t.tag
            )));
        }
        Ok(t)
    }

    pub(super) fn optional(&mut self, tag: u8, what: &str) -> Result<Option<Tlv<'a>>> {
        if self.peek_tag() == Some(tag) {
            self.next(what).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(super) fn finish(&self, what: &str) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed(format!("{what}: unexpected trailing data")))
        }
    }
}

/// Reads the contents of `tlv` as a reader.
pub(super) fn inner<'a>(tlv: &Tlv<'a>) -> Reader<'a> {
    Reader::new(tlv.value)
}

/// A non-negative INTEGER that fits an `i64`.
pub(super) fn small_uint(t: &Tlv<'_>, what: &str) -> Result<i64> {
    let v = t.value;
    if v.is_empty() {
        return Err(malformed(format!("{what}: empty INTEGER")));
    }
    if v[0] & 0x80 != 0 {
        return Err(malformed(format!("{what}: negative")));
    }
    let digits: &[u8] = match v.iter().position(|b| *b != 0) {
        Some(i) => &v[i..],
        None => &[],
    };
    if digits.len() > 7 {
        return Err(malformed(format!("{what}: out of range")));
    }
    Ok(digits
        .iter()
        .fold(0i64, |acc, b| (acc << 8) | i64::from(*b)))
}

/// INTEGER contents without redundant leading zero bytes (for comparing
/// serial numbers however they were padded).
pub(super) fn integer_digits(v: &[u8]) -> &[u8] {
    let mut v = v;
    while v.len() > 1 && v[0] == 0 {
        v = &v[1..];
    }
    v
}

// ---------------------------------------------------------------------------
// Times.

fn digits(s: &[u8], what: &str) -> Result<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(malformed(format!("{what}: not a time")));
    }
    Ok(s.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
}

fn civil(
    year: i32,
    month: u32,
    day: u32,
    hms: [u32; 3],
    nanos: u32,
    what: &str,
) -> Result<OffsetDateTime> {
    let bad = |_| malformed(format!("{what}: not a valid date and time"));
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(|| malformed(format!("{what}: month {month}")))?;
    let date = time::Date::from_calendar_date(year, month, day as u8).map_err(bad)?;
    let t =
        time::Time::from_hms_nano(hms[0] as u8, hms[1] as u8, hms[2] as u8, nanos).map_err(bad)?;
    Ok(time::PrimitiveDateTime::new(date, t).assume_utc())
}

/// `YYYYMMDDHHMMSS[.f*]Z` (RFC 3161 2.4.2: UTC, fraction without trailing
/// zeros, which is not insisted upon).
pub(super) fn generalized_time(v: &[u8], what: &str) -> Result<OffsetDateTime> {
    let Some(body) = v.strip_suffix(b"Z") else {
        return Err(malformed(format!(
            "{what}: GeneralizedTime must be in UTC (Z)"
        )));
    };
    if body.len() < 14 {
        return Err(malformed(format!("{what}: GeneralizedTime too short")));
    }
    let (main, frac) = body.split_at(14);
    let nanos = match frac {
        [] => 0,
        [b'.', f @ ..] if !f.is_empty() && f.len() <= 9 => {
            digits(f, what)? * 10u32.pow(9 - f.len() as u32)
        }
        _ => return Err(malformed(format!("{what}: bad fraction of a second"))),
    };
    let n = |r: std::ops::Range<usize>| digits(&main[r], what);
    civil(
        n(0..4)? as i32,
        n(4..6)?,
        n(6..8)?,
        [n(8..10)?, n(10..12)?, n(12..14)?],
        nanos,
        what,
    )
}

/// `YYMMDDHHMMSSZ` (RFC 5280 4.1.2.5.1 years).
pub(super) fn utc_time(v: &[u8], what: &str) -> Result<OffsetDateTime> {
    let body = v
        .strip_suffix(b"Z")
        .filter(|b| b.len() == 12)
        .ok_or_else(|| malformed(format!("{what}: bad UTCTime")))?;
    let n = |r: std::ops::Range<usize>| digits(&body[r], what);
    let yy = n(0..2)? as i32;
    let year = if yy < 50 { 2000 + yy } else { 1900 + yy };
    civil(
        year,
        n(2..4)?,
        n(4..6)?,
        [n(6..8)?, n(8..10)?, n(10..12)?],
        0,
        what,
    )
}

pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

// ---------------------------------------------------------------------------
// Hashes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The hash of an AlgorithmIdentifier (parameters absent or NULL).
    pub(super) fn from_algorithm(alg: &Tlv<'_>, what: &str) -> Result<Hash> {
        let mut r = inner(alg);
        let oid = r.expect(OID, what)?;
        if let Some(params) = r.optional(NULL, what)? {
            if !params.value.is_empty() {
                return Err(malformed(format!("{what}: bad NULL parameters")));
            }
        }
        r.finish(what)?;
        Hash::from_oid(oid.value, what)
    }

    fn from_oid(oid: &[u8], what: &str) -> Result<Hash> {
        if is_oid(oid, &OID_SHA256) {
            Ok(Hash::Sha256)
        } else if is_oid(oid, &OID_SHA384) {
            Ok(Hash::Sha384)
        } else if is_oid(oid, &OID_SHA512) {
            Ok(Hash::Sha512)
        } else if is_oid(oid, &OID_SHA1) {
            Err(TimestampError::Unsupported(format!(
                "{what}: SHA-1 is not allowed"
            )))
        } else {
            Err(TimestampError::Unsupported(format!(
                "{what}: hash algorithm {} (SHA-256, SHA-384 and SHA-512 are allowed)",
                oid_name(oid)
            )))
        }
    }

    pub(super) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha384 => Sha384::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }

    /// `sha*WithRSAEncryption`.
    pub(super) fn rsa_pkcs1_oid(self) -> ObjectIdentifier {
        match self {
            Hash::Sha256 => ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11"),
            Hash::Sha384 => ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12"),
            Hash::Sha512 => ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13"),
        }
    }

    /// `ecdsa-with-SHA*`.
    pub(super) fn ecdsa_oid(self) -> ObjectIdentifier {
        match self {
            Hash::Sha256 => ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
            Hash::Sha384 => ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3"),
            Hash::Sha512 => ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4"),
        }
    }
}
