//! RFC 3161 timestamp countersignatures (the envelope's unsigned
//! `io.cncf.notary.timestampSignature`), verified as the Notary Project's
//! "Validate Authentic Timestamp" step asks (trust-store-trust-policy.md)
//! and as notation does it (tspclient-go):
//!
//! - the token is a CMS `SignedData` (RFC 5652) encapsulating an
//!   `id-ct-TSTInfo`, with exactly one `SignerInfo`;
//! - `TSTInfo.messageImprint` is the hash of the envelope's signature bytes,
//!   with the imprint's own algorithm (SHA-256, SHA-384 or SHA-512);
//! - the signed attributes carry `content-type` = `id-ct-TSTInfo`,
//!   `message-digest` = hash of the encapsulated TSTInfo bytes, and
//!   `signing-certificate-v2` (RFC 5035 / RFC 5816) naming the signer
//!   certificate by hash; the signature covers their DER `SET`;
//! - the signer certificate, found among the token's certificates by its
//!   issuer and serial number (or subject key identifier), leads through
//!   them to a certificate of the `tsa` trust store, and that chain meets the
//!   timestamping certificate rules at `genTime`;
//! - the accuracy is `TSTInfo.accuracy`, else one second under the baseline
//!   time-stamp policy of RFC 3628, else zero.
//!
//! The parser is a small DER reader of its own: the exact bytes of the
//! signed attributes are what the signature covers, and real TSAs write
//! `genTime` with fractions of a second, which strict DER time types refuse.
//! BER (indefinite lengths) is not accepted. Revocation of the TSA chain is
//! not checked here.

use crate::crypto::PublicKey;
use crate::x509::{validate_chain, Cert, ChainError, Purpose};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use time::{Duration, OffsetDateTime};

/// Why a timestamp token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not a well-formed RFC 3161 TimeStampToken.
    #[error("malformed timestamp token: {0}")]
    Malformed(String),
    /// Well-formed, but uses what the Notary Project does not allow.
    #[error("unsupported timestamp token: {0}")]
    Unsupported(String),
    /// `TSTInfo.messageImprint` is not the hash of the signature.
    #[error("the timestamp is not for this signature: {0}")]
    WrongImprint(String),
    /// The TSA's signature or its signed attributes do not verify.
    #[error("timestamp token integrity: {0}")]
    Integrity(String),
    /// The signer certificate is missing, or not the one the signed
    /// attributes name.
    #[error("timestamp signing certificate: {0}")]
    SigningCertificate(String),
    /// The TSA chain does not end at a certificate of the trust store.
    #[error("the TSA certificate chain does not reach a trusted TSA root: {0}")]
    Untrusted(String),
    /// The TSA chain breaks the certificate rules, or is not valid at the
    /// timestamp's time.
    #[error("invalid TSA certificate chain: {0}")]
    Chain(ChainError),
}

type Result<T> = std::result::Result<T, TimestampError>;

fn malformed(why: impl Into<String>) -> TimestampError {
    TimestampError::Malformed(why.into())
}

/// A verified timestamp.
#[derive(Debug, Clone)]
pub struct Timestamp {
    /// `TSTInfo.genTime`.
    pub gen_time: OffsetDateTime,
    /// The accuracy the spec assigns (see the module documentation).
    pub accuracy: Duration,
    /// The TSA chain: the signer certificate first, then the certificates
    /// that issued it, ending at the trusted one (which may come from the
    /// trust store when the token does not carry it).
    pub tsa_chain: Vec<Cert>,
}

impl Timestamp {
    /// Earliest time the timestamp may stand for (`genTime - accuracy`).
    pub fn lower(&self) -> OffsetDateTime {
        self.gen_time
            .checked_sub(self.accuracy)
            .unwrap_or_else(|| time::PrimitiveDateTime::MIN.assume_utc())
    }

    /// Latest time the timestamp may stand for (`genTime + accuracy`).
    pub fn upper(&self) -> OffsetDateTime {
        self.gen_time
            .checked_add(self.accuracy)
            .unwrap_or_else(|| time::PrimitiveDateTime::MAX.assume_utc())
    }
}

// ---------------------------------------------------------------------------
// Object identifiers.

const OID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const OID_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const OID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const OID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const OID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const OID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
/// The baseline time-stamp policy of RFC 3628 (ETSI TS 102 023).
const OID_BASELINE_TSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");

fn is_oid(value: &[u8], oid: &ObjectIdentifier) -> bool {
    value == oid.as_bytes()
}

fn oid_name(value: &[u8]) -> String {
    ObjectIdentifier::from_bytes(value)
        .map(|o| o.to_string())
        .unwrap_or_else(|_| "<invalid OID>".into())
}

// ---------------------------------------------------------------------------
// A minimal DER reader (definite lengths, low tag numbers).

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const CTX0_CONS: u8 = 0xa0;
const CTX1_CONS: u8 = 0xa1;
const CTX4_CONS: u8 = 0xa4;
const CTX0_PRIM: u8 = 0x80;
const CTX1_PRIM: u8 = 0x81;

/// One encoded value.
#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    /// The contents.
    value: &'a [u8],
    /// The whole encoding, tag and length included.
    raw: &'a [u8],
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn next(&mut self, what: &str) -> Result<Tlv<'a>> {
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

    fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>> {
        let t = self.next(what)?;
        if t.tag != tag {
            return Err(malformed(format!(
                "{what}: expected tag 0x{tag:02x}, found 0x{:02x}",
                t.tag
            )));
        }
        Ok(t)
    }

    fn optional(&mut self, tag: u8, what: &str) -> Result<Option<Tlv<'a>>> {
        if self.peek_tag() == Some(tag) {
            self.next(what).map(Some)
        } else {
            Ok(None)
        }
    }

    fn finish(&self, what: &str) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed(format!("{what}: unexpected trailing data")))
        }
    }
}

/// Reads the contents of `tlv` as a reader.
fn inner<'a>(tlv: &Tlv<'a>) -> Reader<'a> {
    Reader::new(tlv.value)
}

/// A non-negative INTEGER that fits an `i64`.
fn small_uint(t: &Tlv<'_>, what: &str) -> Result<i64> {
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
fn integer_digits(v: &[u8]) -> &[u8] {
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
fn generalized_time(v: &[u8], what: &str) -> Result<OffsetDateTime> {
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
fn utc_time(v: &[u8], what: &str) -> Result<OffsetDateTime> {
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

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

// ---------------------------------------------------------------------------
// Hashes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The hash of an AlgorithmIdentifier (parameters absent or NULL).
    fn from_algorithm(alg: &Tlv<'_>, what: &str) -> Result<Hash> {
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

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha384 => Sha384::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }

    /// `sha*WithRSAEncryption`.
    fn rsa_pkcs1_oid(self) -> ObjectIdentifier {
        match self {
            Hash::Sha256 => ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11"),
            Hash::Sha384 => ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12"),
            Hash::Sha512 => ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13"),
        }
    }

    /// `ecdsa-with-SHA*`.
    fn ecdsa_oid(self) -> ObjectIdentifier {
        match self {
            Hash::Sha256 => ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
            Hash::Sha384 => ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3"),
            Hash::Sha512 => ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4"),
        }
    }
}

// ---------------------------------------------------------------------------
// The token's parts.

/// `TSTInfo`, the fields that matter here.
struct TstInfo {
    policy: Vec<u8>,
    imprint_hash: Hash,
    imprint: Vec<u8>,
    gen_time: OffsetDateTime,
    /// (seconds, millis, micros), when present.
    accuracy: Option<(i64, i64, i64)>,
}

fn parse_tst_info(bytes: &[u8]) -> Result<TstInfo> {
    let mut outer = Reader::new(bytes);
    let seq = outer.expect(SEQUENCE, "TSTInfo")?;
    outer.finish("TSTInfo")?;
    let mut r = inner(&seq);
    let version = small_uint(&r.expect(INTEGER, "TSTInfo version")?, "TSTInfo version")?;
    if version != 1 {
        return Err(malformed(format!("TSTInfo version is {version}, not 1")));
    }
    let policy = r.expect(OID, "TSTInfo policy")?.value.to_vec();
    let imprint = r.expect(SEQUENCE, "TSTInfo messageImprint")?;
    let mut ir = inner(&imprint);
    let alg = ir.expect(SEQUENCE, "messageImprint hashAlgorithm")?;
    let hashed = ir.expect(OCTET_STRING, "messageImprint hashedMessage")?;
    ir.finish("messageImprint")?;
    let imprint_hash = Hash::from_algorithm(&alg, "messageImprint")?;
    r.expect(INTEGER, "TSTInfo serialNumber")?;
    let gen_time = r.expect(GENERALIZED_TIME, "TSTInfo genTime")?;
    let gen_time = generalized_time(gen_time.value, "TSTInfo genTime")?;
    let accuracy = match r.optional(SEQUENCE, "TSTInfo accuracy")? {
        None => None,
        Some(acc) => {
            let mut ar = inner(&acc);
            let seconds = match ar.optional(INTEGER, "accuracy seconds")? {
                Some(t) => small_uint(&t, "accuracy seconds")?,
                None => 0,
            };
            let millis = match ar.optional(CTX0_PRIM, "accuracy millis")? {
                Some(t) => small_uint(&t, "accuracy millis")?,
                None => 0,
            };
            let micros = match ar.optional(CTX1_PRIM, "accuracy micros")? {
                Some(t) => small_uint(&t, "accuracy micros")?,
                None => 0,
            };
            ar.finish("TSTInfo accuracy")?;
            if millis > 999 || micros > 999 {
                return Err(malformed(
                    "TSTInfo accuracy: millis and micros must be at most 999",
                ));
            }
            Some((seconds, millis, micros))
        }
    };
    // ordering, nonce, tsa, extensions: well-formed, otherwise unused.
    while !r.is_empty() {
        r.next("TSTInfo")?;
    }
    Ok(TstInfo {
        policy,
        imprint_hash,
        imprint: hashed.value.to_vec(),
        gen_time,
        accuracy,
    })
}

impl TstInfo {
    fn accuracy(&self) -> Duration {
        let explicit = self
            .accuracy
            .map(|(s, ms, us)| {
                Duration::seconds(s) + Duration::milliseconds(ms) + Duration::microseconds(us)
            })
            .unwrap_or(Duration::ZERO);
        // As notation: an absent (or zero) accuracy under the baseline
        // policy is one second.
        if explicit.is_zero() && is_oid(&self.policy, &OID_BASELINE_TSP) {
            Duration::seconds(1)
        } else {
            explicit
        }
    }
}

/// How the SignerInfo names its certificate.
enum SignerId<'a> {
    IssuerSerial { issuer: &'a [u8], serial: &'a [u8] },
    KeyId(&'a [u8]),
}

struct SignerInfo<'a> {
    sid: SignerId<'a>,
    digest: Hash,
    /// The `[0] IMPLICIT` signed attributes, whole.
    signed_attrs: Tlv<'a>,
    signature_algorithm: Tlv<'a>,
    signature: &'a [u8],
}

struct Token<'a> {
    tst_info: &'a [u8],
    certificates: Vec<Cert>,
    signer: SignerInfo<'a>,
}

fn parse_token(der: &[u8]) -> Result<Token<'_>> {
    let mut top = Reader::new(der);
    let ci = top.expect(SEQUENCE, "ContentInfo")?;
    top.finish("ContentInfo")?;
    let mut r = inner(&ci);
    let ct = r.expect(OID, "ContentInfo contentType")?;
    if !is_oid(ct.value, &OID_SIGNED_DATA) {
        return Err(malformed(format!(
            "content type {} is not SignedData",
            oid_name(ct.value)
        )));
    }
    let content = r.expect(CTX0_CONS, "ContentInfo content")?;
    r.finish("ContentInfo")?;
    let mut cr = inner(&content);
    let sd = cr.expect(SEQUENCE, "SignedData")?;
    cr.finish("ContentInfo content")?;

    let mut r = inner(&sd);
    let version = small_uint(
        &r.expect(INTEGER, "SignedData version")?,
        "SignedData version",
    )?;
    // RFC 5652 5.1: 3 (or more) for any content but id-data; 1 from older
    // PKCS #7 writers.
    if !matches!(version, 1 | 3 | 4 | 5) {
        return Err(malformed(format!("SignedData version {version}")));
    }
    r.expect(SET, "SignedData digestAlgorithms")?;
    let eci = r.expect(SEQUENCE, "encapContentInfo")?;
    let mut er = inner(&eci);
    let ect = er.expect(OID, "eContentType")?;
    if !is_oid(ect.value, &OID_TST_INFO) {
        return Err(malformed(format!(
            "encapsulated content type {} is not id-ct-TSTInfo",
            oid_name(ect.value)
        )));
    }
    let econtent = er
        .optional(CTX0_CONS, "eContent")?
        .ok_or_else(|| malformed("the TSTInfo is not encapsulated"))?;
    er.finish("encapContentInfo")?;
    let mut ocr = inner(&econtent);
    let tst_info = ocr.expect(OCTET_STRING, "eContent")?.value;
    ocr.finish("eContent")?;

    let mut certificates = Vec::new();
    if let Some(set) = r.optional(CTX0_CONS, "certificates")? {
        let mut sr = inner(&set);
        while !sr.is_empty() {
            let c = sr.next("certificates")?;
            // Other CertificateChoices (attribute certificates...) are not
            // X.509 certificates and are left aside.
            if c.tag == SEQUENCE {
                let cert = Cert::from_der(c.raw).map_err(|e| {
                    malformed(format!(
                        "certificate {} of the token does not parse: {e}",
                        certificates.len()
                    ))
                })?;
                certificates.push(cert);
            }
        }
    }
    r.optional(CTX1_CONS, "crls")?;
    let infos = r.expect(SET, "signerInfos")?;
    r.finish("SignedData")?;

    let mut ir = inner(&infos);
    let mut signers = Vec::new();
    while !ir.is_empty() {
        signers.push(ir.expect(SEQUENCE, "SignerInfo")?);
    }
    let [si] = signers.as_slice() else {
        return Err(TimestampError::Unsupported(format!(
            "the token has {} SignerInfos, exactly one is required",
            signers.len()
        )));
    };
    let signer = parse_signer_info(si)?;
    Ok(Token {
        tst_info,
        certificates,
        signer,
    })
}

fn parse_signer_info<'a>(si: &Tlv<'a>) -> Result<SignerInfo<'a>> {
    let mut r = inner(si);
    let version = small_uint(
        &r.expect(INTEGER, "SignerInfo version")?,
        "SignerInfo version",
    )?;
    let sid = r.next("SignerInfo sid")?;
    // RFC 5652 5.3: version 1 with issuerAndSerialNumber, 3 with
    // subjectKeyIdentifier.
    match (version, sid.tag) {
        (1, SEQUENCE) | (3, CTX0_PRIM) => {}
        _ => {
            return Err(malformed(format!(
                "SignerInfo version {version} does not go with its sid"
            )))
        }
    }
    let sid = match sid.tag {
        SEQUENCE => {
            let mut sr = inner(&sid);
            let issuer = sr.expect(SEQUENCE, "sid issuer")?.raw;
            let serial = sr.expect(INTEGER, "sid serialNumber")?.value;
            sr.finish("sid")?;
            SignerId::IssuerSerial { issuer, serial }
        }
        CTX0_PRIM => SignerId::KeyId(sid.value),
        t => {
            return Err(malformed(format!(
                "SignerInfo sid: unknown choice 0x{t:02x}"
            )))
        }
    };
    let digest_alg = r.expect(SEQUENCE, "SignerInfo digestAlgorithm")?;
    let digest = Hash::from_algorithm(&digest_alg, "SignerInfo digestAlgorithm")?;
    let signed_attrs = r
        .optional(CTX0_CONS, "signedAttrs")?
        .ok_or_else(|| malformed("the SignerInfo has no signed attributes"))?;
    let signature_algorithm = r.expect(SEQUENCE, "SignerInfo signatureAlgorithm")?;
    let signature = r.expect(OCTET_STRING, "SignerInfo signature")?.value;
    r.optional(CTX1_CONS, "unsignedAttrs")?;
    r.finish("SignerInfo")?;
    Ok(SignerInfo {
        sid,
        digest,
        signed_attrs,
        signature_algorithm,
        signature,
    })
}

/// The signed attributes as (type OID, the single value).
fn signed_attributes<'a>(attrs: &Tlv<'a>) -> Result<Vec<(&'a [u8], Tlv<'a>)>> {
    let mut out: Vec<(&[u8], Tlv<'a>)> = Vec::new();
    let mut r = inner(attrs);
    while !r.is_empty() {
        let a = r.expect(SEQUENCE, "signed attribute")?;
        let mut ar = inner(&a);
        let ty = ar.expect(OID, "signed attribute type")?.value;
        let values = ar.expect(SET, "signed attribute values")?;
        ar.finish("signed attribute")?;
        if out.iter().any(|(t, _)| *t == ty) {
            return Err(TimestampError::Integrity(format!(
                "signed attribute {} appears twice",
                oid_name(ty)
            )));
        }
        let mut vr = inner(&values);
        let value = vr.next("signed attribute value")?;
        if !vr.is_empty() {
            return Err(TimestampError::Integrity(format!(
                "signed attribute {} has several values",
                oid_name(ty)
            )));
        }
        out.push((ty, value));
    }
    Ok(out)
}

fn attribute<'a, 'b>(
    attrs: &'b [(&'a [u8], Tlv<'a>)],
    oid: &ObjectIdentifier,
) -> Option<&'b Tlv<'a>> {
    attrs.iter().find(|(t, _)| is_oid(t, oid)).map(|(_, v)| v)
}

// ---------------------------------------------------------------------------
// Certificates.

fn parsed(c: &Cert) -> Result<x509_cert::Certificate> {
    x509_cert::Certificate::from_der(c.der())
        .map_err(|e| malformed(format!("certificate {}: {e}", c.subject())))
}

fn serial_of(c: &x509_cert::Certificate) -> &[u8] {
    integer_digits(c.tbs_certificate.serial_number.as_bytes())
}

fn subject_key_id(c: &x509_cert::Certificate) -> Option<Vec<u8>> {
    let ext = c
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == OID_SUBJECT_KEY_ID)?;
    x509_cert::ext::pkix::SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes())
        .ok()
        .map(|k| k.0.as_bytes().to_vec())
}

/// The token certificate the SignerInfo names.
fn find_signer<'c>(certs: &'c [Cert], sid: &SignerId<'_>) -> Result<&'c Cert> {
    for c in certs {
        let p = parsed(c)?;
        let hit = match sid {
            SignerId::IssuerSerial { issuer, serial } => {
                x509_cert::name::Name::from_der(issuer).is_ok_and(|n| n == p.tbs_certificate.issuer)
                    && integer_digits(serial) == serial_of(&p)
            }
            SignerId::KeyId(id) => subject_key_id(&p).is_some_and(|k| k == *id),
        };
        if hit {
            return Ok(c);
        }
    }
    Err(TimestampError::SigningCertificate(
        "the signer certificate is not among the token's certificates".into(),
    ))
}

/// Checks the `signing-certificate-v2` attribute (RFC 5035) against the
/// signer certificate: its first ESSCertIDv2 must carry the certificate's
/// hash and, when present, its issuer and serial number.
fn check_signing_certificate_v2(value: &Tlv<'_>, signer: &Cert) -> Result<()> {
    let bad =
        |why: &str| TimestampError::SigningCertificate(format!("signing-certificate-v2 {why}"));
    if value.tag != SEQUENCE {
        return Err(bad("is not a SEQUENCE"));
    }
    let mut r = inner(value);
    let certs = r.expect(SEQUENCE, "signing-certificate-v2 certs")?;
    let mut cr = inner(&certs);
    if cr.is_empty() {
        return Err(bad("names no certificate"));
    }
    let first = cr.expect(SEQUENCE, "ESSCertIDv2")?;
    let mut er = inner(&first);
    let hash = match er.optional(SEQUENCE, "ESSCertIDv2 hashAlgorithm")? {
        Some(alg) => Hash::from_algorithm(&alg, "signing-certificate-v2")?,
        None => Hash::Sha256,
    };
    let cert_hash = er.expect(OCTET_STRING, "ESSCertIDv2 certHash")?.value;
    if hash.digest(signer.der()) != cert_hash {
        return Err(bad(&format!(
            "does not match the signer certificate {} ({} hash)",
            signer.subject(),
            hash.name()
        )));
    }
    if let Some(is) = er.optional(SEQUENCE, "ESSCertIDv2 issuerSerial")? {
        let p = parsed(signer)?;
        let mut ir = inner(&is);
        let names = ir.expect(SEQUENCE, "issuerSerial issuer")?;
        let serial = ir.expect(INTEGER, "issuerSerial serialNumber")?.value;
        let mut nr = inner(&names);
        let mut issuer_matches = false;
        while !nr.is_empty() {
            let gn = nr.next("issuerSerial GeneralName")?;
            if gn.tag == CTX4_CONS {
                issuer_matches |= x509_cert::name::Name::from_der(gn.value)
                    .is_ok_and(|n| n == p.tbs_certificate.issuer);
            }
        }
        if !issuer_matches || integer_digits(serial) != serial_of(&p) {
            return Err(bad(
                "issuerSerial does not name the signer certificate's issuer and serial number",
            ));
        }
    }
    er.finish("ESSCertIDv2")?;
    Ok(())
}

/// The signature algorithm for `PublicKey::verify_x509`: CMS allows the bare
/// key algorithm (`rsaEncryption`, `id-ecPublicKey`) with the hash given by
/// the digest algorithm.
fn signature_algorithm(si: &SignerInfo<'_>) -> Result<spki::AlgorithmIdentifierOwned> {
    let alg = spki::AlgorithmIdentifierOwned::from_der(si.signature_algorithm.raw)
        .map_err(|e| malformed(format!("SignerInfo signatureAlgorithm: {e}")))?;
    // Only RSASSA-PSS has parameters that matter; others have none or NULL.
    let plain = alg
        .parameters
        .as_ref()
        .is_none_or(|p| p.to_der().is_ok_and(|d| d == [NULL, 0]));
    if !plain && alg.oid != OID_RSA_PSS && alg.oid != OID_EC_PUBLIC_KEY {
        return Err(malformed(
            "SignerInfo signatureAlgorithm: unexpected parameters",
        ));
    }
    let oid = if alg.oid == OID_RSA_ENCRYPTION {
        si.digest.rsa_pkcs1_oid()
    } else if alg.oid == OID_EC_PUBLIC_KEY {
        si.digest.ecdsa_oid()
    } else {
        return Ok(alg);
    };
    Ok(spki::AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    })
}

/// Whether `issuer`'s key signed `child` (else why not).
fn signed_by(child: &x509_cert::Certificate, issuer: &Cert) -> std::result::Result<(), String> {
    let key = issuer.public_key().map_err(|e| e.to_string())?;
    let tbs = child.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    key.verify_x509(
        &child.signature_algorithm,
        &tbs,
        child.signature.raw_bytes(),
    )
    .map_err(|e| e.to_string())
}

/// Longest chain looked for (leaf included).
const MAX_CHAIN: usize = 10;
/// Most certificates tried while looking for a chain.
const MAX_TRIES: usize = 200;

/// Looks for a chain from a signer certificate through the token's
/// certificates (and the trust store's) to a certificate byte-equal to a
/// trust store certificate, trying every issuer of the right name whose key
/// signed the certificate (those of the trust store first): tokens carry
/// cross-certificates and other roots beside the path that is trusted.
struct ChainSearch<'a> {
    pool: &'a [Cert],
    roots: &'a [Vec<u8>],
    tries: usize,
    /// Why the first path tried ended.
    dead_end: Option<String>,
}

impl ChainSearch<'_> {
    fn trusted(&self, c: &Cert) -> bool {
        self.roots.iter().any(|r| r.as_slice() == c.der())
    }

    fn dead_end(&mut self, why: String) {
        self.dead_end.get_or_insert(why);
    }

    /// Extends `chain` to a trusted certificate; false when it cannot.
    fn extend(&mut self, chain: &mut Vec<Cert>) -> Result<bool> {
        let Some(current) = chain.last() else {
            return Ok(false);
        };
        if self.trusted(current) {
            return Ok(true);
        }
        let cur = parsed(current)?;
        if cur.tbs_certificate.issuer == cur.tbs_certificate.subject {
            self.dead_end(format!(
                "it ends at {}, which is not in the TSA trust store",
                current.subject()
            ));
            return Ok(false);
        }
        if chain.len() >= MAX_CHAIN {
            self.dead_end(format!("no trusted root within {MAX_CHAIN} certificates"));
            return Ok(false);
        }
        // Issuers of that name whose key signed it, those of the trust
        // store first.
        let mut candidates: Vec<&Cert> = Vec::new();
        let mut refused: Option<String> = None;
        for c in self.pool {
            if chain.iter().any(|k| k.der() == c.der())
                || candidates.iter().any(|k| k.der() == c.der())
                || parsed(c)?.tbs_certificate.subject != cur.tbs_certificate.issuer
            {
                continue;
            }
            match signed_by(&cur, c) {
                Ok(()) => candidates.push(c),
                Err(why) => {
                    refused.get_or_insert(why);
                }
            }
        }
        if candidates.is_empty() {
            self.dead_end(match refused {
                Some(why) => format!(
                    "no certificate named {} signed {}: {why}",
                    current.issuer(),
                    current.subject()
                ),
                None => format!(
                    "neither the token nor the TSA trust store has the issuer of {} ({})",
                    current.subject(),
                    current.issuer()
                ),
            });
            return Ok(false);
        }
        candidates.sort_by_key(|c| !self.trusted(c));
        for c in candidates {
            self.tries += 1;
            if self.tries > MAX_TRIES {
                self.dead_end("too many candidate certificates".into());
                return Ok(false);
            }
            chain.push(c.clone());
            if self.extend(chain)? {
                return Ok(true);
            }
            chain.pop();
        }
        Ok(false)
    }
}

/// The chain from `signer` through `pool` to a certificate byte-equal to one
/// of `roots`.
fn build_chain(signer: &Cert, pool: &[Cert], roots: &[Vec<u8>]) -> Result<Vec<Cert>> {
    let mut search = ChainSearch {
        pool,
        roots,
        tries: 0,
        dead_end: None,
    };
    let mut chain = vec![signer.clone()];
    if search.extend(&mut chain)? {
        Ok(chain)
    } else {
        Err(TimestampError::Untrusted(
            search
                .dead_end
                .unwrap_or_else(|| "no chain to a trusted root".into()),
        ))
    }
}

// ---------------------------------------------------------------------------

/// Parses and verifies an RFC 3161 TimeStampToken (DER) countersigning
/// `signature` (the envelope's signature bytes), with `tsa_roots` (DER
/// certificates of the policy's `tsa` trust stores) as trust anchors.
///
/// Never panics on malformed input. The TSA chain's revocation status is
/// not checked.
pub fn verify_token(
    token_der: &[u8],
    signature: &[u8],
    tsa_roots: &[Vec<u8>],
) -> std::result::Result<Timestamp, TimestampError> {
    let token = parse_token(token_der)?;
    let info = parse_tst_info(token.tst_info)?;

    // The timestamp is about this signature.
    if info.imprint_hash.digest(signature) != info.imprint {
        return Err(TimestampError::WrongImprint(format!(
            "TSTInfo.messageImprint is not the {} hash of the signature",
            info.imprint_hash.name()
        )));
    }

    // Signed attributes.
    let si = &token.signer;
    let attrs = signed_attributes(&si.signed_attrs)?;
    match attribute(&attrs, &OID_CONTENT_TYPE) {
        Some(v) if v.tag == OID && is_oid(v.value, &OID_TST_INFO) => {}
        Some(v) => {
            return Err(TimestampError::Integrity(format!(
                "the content-type attribute is {}, not id-ct-TSTInfo",
                oid_name(v.value)
            )))
        }
        None => {
            return Err(TimestampError::Integrity(
                "the content-type signed attribute is missing".into(),
            ))
        }
    }
    match attribute(&attrs, &OID_MESSAGE_DIGEST) {
        Some(v) if v.tag == OCTET_STRING && v.value == si.digest.digest(token.tst_info) => {}
        Some(_) => {
            return Err(TimestampError::Integrity(format!(
                "the message-digest attribute is not the {} hash of the TSTInfo",
                si.digest.name()
            )))
        }
        None => {
            return Err(TimestampError::Integrity(
                "the message-digest signed attribute is missing".into(),
            ))
        }
    }

    // The signer certificate, as the signed attributes name it.
    let signer = find_signer(&token.certificates, &si.sid)?;
    let Some(scv2) = attribute(&attrs, &OID_SIGNING_CERTIFICATE_V2) else {
        return Err(TimestampError::SigningCertificate(
            "the signing-certificate-v2 signed attribute is missing".into(),
        ));
    };
    check_signing_certificate_v2(scv2, signer)?;

    // The TSA's signature over the DER SET OF its signed attributes (the
    // [0] IMPLICIT tag read as SET, the bytes as the TSA wrote them).
    let mut signed_input = si.signed_attrs.raw.to_vec();
    signed_input[0] = SET;
    let alg = signature_algorithm(si)?;
    let key: PublicKey = signer
        .public_key()
        .map_err(|e| TimestampError::SigningCertificate(e.to_string()))?;
    key.verify_x509(&alg, &signed_input, si.signature)
        .map_err(|e| TimestampError::Integrity(format!("the TSA signature: {e}")))?;

    // Trust: the chain to a TSA root, valid at genTime under the rules for
    // timestamping certificates.
    let mut pool = token.certificates.clone();
    pool.extend(tsa_roots.iter().filter_map(|d| Cert::from_der(d).ok()));
    let tsa_chain = build_chain(signer, &pool, tsa_roots)?;
    validate_chain(&tsa_chain, Purpose::Timestamping, Some(info.gen_time))
        .map_err(TimestampError::Chain)?;

    // A signing-time attribute, if any, lies within the chain's validity.
    if let Some(v) = attribute(&attrs, &OID_SIGNING_TIME) {
        let t = match v.tag {
            UTC_TIME => utc_time(v.value, "signing-time")?,
            GENERALIZED_TIME => generalized_time(v.value, "signing-time")?,
            _ => return Err(malformed("signing-time: not a time")),
        };
        if let Some(c) = tsa_chain.iter().find(|c| !c.valid_at(t)) {
            return Err(TimestampError::Integrity(format!(
                "signing time {} is outside the validity of {}",
                rfc3339(t),
                c.subject()
            )));
        }
    }

    Ok(Timestamp {
        gen_time: info.gen_time,
        accuracy: info.accuracy(),
        tsa_chain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = generalized_time(b"20241231080530.009Z", "t").unwrap();
        assert_eq!(t.unix_timestamp(), 1735632330);
        assert_eq!(t.millisecond(), 9);
        assert!(generalized_time(b"20241231080530", "t").is_err());
        assert!(generalized_time(b"20241231080530.Z", "t").is_err());
        assert!(generalized_time(b"20241331080530Z", "t").is_err());
        assert!(generalized_time(b"2024123108053aZ", "t").is_err());
        let u = utc_time(b"240618072142Z", "u").unwrap();
        assert_eq!(rfc3339(u), "2024-06-18T07:21:42Z");
        assert_eq!(utc_time(b"990101000000Z", "u").unwrap().year(), 1999);
    }

    #[test]
    fn reader_refuses_bad_lengths() {
        for bad in [
            &[0x30, 0x80, 0x00, 0x00][..],
            &[0x30, 0x85, 1, 1, 1, 1, 1][..],
            &[0x30, 0x05, 0x01][..],
            &[0x1f, 0x01, 0x00][..],
            &[0x30][..],
        ] {
            assert!(Reader::new(bad).next("x").is_err());
        }
        let mut r = Reader::new(&[0x02, 0x81, 0x01, 0x05]);
        let t = r.next("x").unwrap();
        assert_eq!((t.tag, t.value, t.raw.len()), (0x02, &[5u8][..], 4));
        assert!(r.is_empty());
    }

    #[test]
    fn integers() {
        let t = |v: &'static [u8]| Tlv {
            tag: INTEGER,
            value: v,
            raw: v,
        };
        assert_eq!(small_uint(&t(&[0x00, 0xff]), "i").unwrap(), 255);
        assert!(small_uint(&t(&[0xff]), "i").is_err());
        assert!(small_uint(&t(&[]), "i").is_err());
        assert!(small_uint(&t(&[1, 2, 3, 4, 5, 6, 7, 8]), "i").is_err());
        assert_eq!(integer_digits(&[0, 0, 1]), &[1]);
        assert_eq!(integer_digits(&[0]), &[0]);
    }
}
