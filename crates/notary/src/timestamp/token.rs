//! The token's parts: the CMS `SignedData` around the `TSTInfo`, its one
//! `SignerInfo` and that signer's signed attributes.

use super::asn1::{
    generalized_time, inner, is_oid, oid_name, small_uint, Hash, Reader, Tlv, CTX0_CONS, CTX0_PRIM,
    CTX1_CONS, CTX1_PRIM, GENERALIZED_TIME, INTEGER, OCTET_STRING, OID, OID_BASELINE_TSP,
    OID_SIGNED_DATA, OID_TST_INFO, SEQUENCE, SET,
};
use super::{malformed, Result, TimestampError};
use crate::x509::Cert;
use const_oid::ObjectIdentifier;
use time::{Duration, OffsetDateTime};

/// `TSTInfo`, the fields that matter here.
pub(super) struct TstInfo {
    policy: Vec<u8>,
    pub(super) imprint_hash: Hash,
    pub(super) imprint: Vec<u8>,
    pub(super) gen_time: OffsetDateTime,
    /// (seconds, millis, micros), when present.
    accuracy: Option<(i64, i64, i64)>,
}

pub(super) fn parse_tst_info(bytes: &[u8]) -> Result<TstInfo> {
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
    pub(super) fn accuracy(&self) -> Duration {
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
pub(super) enum SignerId<'a> {
    IssuerSerial { issuer: &'a [u8], serial: &'a [u8] },
    KeyId(&'a [u8]),
}

pub(super) struct SignerInfo<'a> {
    pub(super) sid: SignerId<'a>,
    pub(super) digest: Hash,
    /// The `[0] IMPLICIT` signed attributes, whole.
    pub(super) signed_attrs: Tlv<'a>,
    pub(super) signature_algorithm: Tlv<'a>,
    pub(super) signature: &'a [u8],
}

pub(super) struct Token<'a> {
    pub(super) tst_info: &'a [u8],
    pub(super) certificates: Vec<Cert>,
    pub(super) signer: SignerInfo<'a>,
}

pub(super) fn parse_token(der: &[u8]) -> Result<Token<'_>> {
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
pub(super) fn signed_attributes<'a>(attrs: &Tlv<'a>) -> Result<Vec<(&'a [u8], Tlv<'a>)>> {
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

pub(super) fn attribute<'a, 'b>(
    attrs: &'b [(&'a [u8], Tlv<'a>)],
    oid: &ObjectIdentifier,
) -> Option<&'b Tlv<'a>> {
    attrs.iter().find(|(t, _)| is_oid(t, oid)).map(|(_, v)| v)
}
