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

mod asn1;
mod chain;
#[cfg(test)]
mod tests;
mod token;

use crate::crypto::PublicKey;
use crate::x509::{validate_chain, Cert, ChainError, Purpose};
use asn1::{
    generalized_time, is_oid, oid_name, rfc3339, utc_time, GENERALIZED_TIME, OCTET_STRING, OID,
    OID_CONTENT_TYPE, OID_MESSAGE_DIGEST, OID_SIGNING_CERTIFICATE_V2, OID_SIGNING_TIME,
    OID_TST_INFO, SET, UTC_TIME,
};
use chain::{build_chain, check_signing_certificate_v2, find_signer, signature_algorithm};
use time::{Duration, OffsetDateTime};
use token::{attribute, parse_token, parse_tst_info, signed_attributes};

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
