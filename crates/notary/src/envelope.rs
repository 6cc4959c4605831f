//! What both envelope formats carry, and the integrity check they share.
//!
//! A JWS or COSE envelope is decoded into [`Envelope`]: the signed
//! attributes, the unsigned ones (certificate chain, timestamp, signing
//! agent), the payload, the exact bytes the signature covers and the
//! signature. [`Envelope::verify_integrity`] then applies the spec's rules
//! in one place: the content type, the `crit` list (every critical header
//! known, every header that must be critical listed), the signing scheme's
//! time attribute, the algorithm matching the leaf key, the signature, and
//! the payload's shape.

use crate::crypto::{Alg, CryptoError};
use crate::x509::Cert;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Media type of the payload.
pub const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
/// JWS envelope media type (the signature manifest's layer).
pub const JWS_MEDIA_TYPE: &str = "application/jose+json";
/// COSE envelope media type.
pub const COSE_MEDIA_TYPE: &str = "application/cose";

/// Header names (JWS) and text labels (COSE) of the Notary Project.
pub mod headers {
    /// Signing scheme (`notary.x509` or `notary.x509.signingAuthority`).
    pub const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
    /// Self-asserted signing time (`notary.x509`).
    pub const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
    /// Authentic signing time (`notary.x509.signingAuthority`).
    pub const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
    /// Signature expiry.
    pub const EXPIRY: &str = "io.cncf.notary.expiry";
    /// Plugin required to verify.
    pub const VERIFICATION_PLUGIN: &str = "io.cncf.notary.verificationPlugin";
    /// Minimum version of that plugin.
    pub const VERIFICATION_PLUGIN_MIN_VERSION: &str = "io.cncf.notary.verificationPluginMinVersion";
    /// RFC 3161 countersignature (unprotected).
    pub const TIMESTAMP_SIGNATURE: &str = "io.cncf.notary.timestampSignature";
    /// Signing agent (unprotected).
    pub const SIGNING_AGENT: &str = "io.cncf.notary.signingAgent";
}

/// Envelope format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JWS JSON serialization, flattened.
    Jws,
    /// COSE_Sign1.
    Cose,
}

impl Format {
    /// The media type of this format's envelope.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Jws => JWS_MEDIA_TYPE,
            Format::Cose => COSE_MEDIA_TYPE,
        }
    }

    /// The format of a layer media type.
    pub fn from_media_type(m: &str) -> Option<Format> {
        match m {
            JWS_MEDIA_TYPE => Some(Format::Jws),
            COSE_MEDIA_TYPE => Some(Format::Cose),
            _ => None,
        }
    }
}

/// The signing scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    /// `notary.x509`: signing time asserted by the signer.
    X509,
    /// `notary.x509.signingAuthority`: authentic signing time.
    SigningAuthority,
}

impl SigningScheme {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningScheme::X509 => "notary.x509",
            SigningScheme::SigningAuthority => "notary.x509.signingAuthority",
        }
    }

    /// Parses a header value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "notary.x509" => Some(SigningScheme::X509),
            "notary.x509.signingAuthority" => Some(SigningScheme::SigningAuthority),
            _ => None,
        }
    }
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not decodable as the format says.
    #[error("malformed {format} envelope: {why}")]
    Malformed {
        /// `JWS` or `COSE`.
        format: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A header breaks the specification.
    #[error("{0}")]
    Header(String),
    /// The signature does not verify, or the key is unusable.
    #[error("signature: {0}")]
    Signature(#[from] CryptoError),
    /// The payload is not a Notary payload.
    #[error("payload: {0}")]
    Payload(String),
}

/// The signed (protected) attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedAttributes {
    /// Signature algorithm.
    pub alg: Alg,
    /// Payload content type.
    pub content_type: String,
    /// Signing scheme.
    pub signing_scheme: SigningScheme,
    /// `io.cncf.notary.signingTime`.
    pub signing_time: Option<OffsetDateTime>,
    /// `io.cncf.notary.authenticSigningTime`.
    pub authentic_signing_time: Option<OffsetDateTime>,
    /// `io.cncf.notary.expiry`.
    pub expiry: Option<OffsetDateTime>,
    /// The `crit` list.
    pub critical: Vec<String>,
    /// `io.cncf.notary.verificationPlugin`.
    pub verification_plugin: Option<String>,
    /// `io.cncf.notary.verificationPluginMinVersion`.
    pub verification_plugin_min_version: Option<String>,
    /// Other protected headers (extended attributes), as JSON values.
    pub extended: BTreeMap<String, serde_json::Value>,
}

/// A decoded envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Format it was decoded from.
    pub format: Format,
    /// Signed attributes.
    pub signed: SignedAttributes,
    /// DER certificates, leaf first.
    pub cert_chain: Vec<Vec<u8>>,
    /// RFC 3161 TimeStampToken (DER), if any.
    pub timestamp: Option<Vec<u8>>,
    /// Signing agent, if any.
    pub signing_agent: Option<String>,
    /// Payload bytes as signed.
    pub payload: Vec<u8>,
    /// The bytes the signature covers.
    pub signing_input: Vec<u8>,
    /// Signature bytes (`r || s` for ECDSA).
    pub signature: Vec<u8>,
}

/// The artifact a signature is about: an OCI descriptor (media type,
/// digest and size required; artifact type and annotations optional).
pub type TargetArtifact = pavilion_oci::Descriptor;

/// The Notary payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// The signed artifact's descriptor.
    pub target_artifact: TargetArtifact,
}

/// Headers this implementation understands, which may therefore be critical.
const KNOWN_CRITICAL: [&str; 5] = [
    headers::SIGNING_SCHEME,
    headers::AUTHENTIC_SIGNING_TIME,
    headers::EXPIRY,
    headers::VERIFICATION_PLUGIN,
    headers::VERIFICATION_PLUGIN_MIN_VERSION,
];

impl Envelope {
    /// Decodes an envelope of layer media type `media_type`.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        match Format::from_media_type(media_type) {
            Some(Format::Jws) => crate::jws::parse(bytes),
            Some(Format::Cose) => crate::cose::parse(bytes),
            None => Err(EnvelopeError::Header(format!(
                "unsupported signature envelope type {media_type:?}"
            ))),
        }
    }

    /// The certificate chain, parsed.
    pub fn certificates(&self) -> Result<Vec<Cert>, crate::x509::ChainError> {
        crate::x509::parse_chain(&self.cert_chain)
    }

    /// The spec's integrity checks; returns the payload.
    pub fn verify_integrity(&self) -> Result<Payload, EnvelopeError> {
        let s = &self.signed;
        if s.content_type != PAYLOAD_CONTENT_TYPE {
            return Err(EnvelopeError::Header(format!(
                "content type {:?} is not {PAYLOAD_CONTENT_TYPE}",
                s.content_type
            )));
        }
        for c in &s.critical {
            if !KNOWN_CRITICAL.contains(&c.as_str()) {
                return Err(EnvelopeError::Header(format!(
                    "unknown critical header {c:?}"
                )));
            }
        }
        let must_be_critical = [
            (headers::SIGNING_SCHEME, true),
            (headers::EXPIRY, s.expiry.is_some()),
            (
                headers::AUTHENTIC_SIGNING_TIME,
                s.authentic_signing_time.is_some(),
            ),
            (
                headers::VERIFICATION_PLUGIN,
                s.verification_plugin.is_some(),
            ),
            (
                headers::VERIFICATION_PLUGIN_MIN_VERSION,
                s.verification_plugin_min_version.is_some(),
            ),
        ];
        for (h, present) in must_be_critical {
            if present && !s.critical.iter().any(|c| c == h) {
                return Err(EnvelopeError::Header(format!(
                    "header {h} must be listed in crit"
                )));
            }
        }
        match s.signing_scheme {
            SigningScheme::X509 if s.signing_time.is_none() => {
                return Err(EnvelopeError::Header(format!(
                    "signing scheme notary.x509 requires {}",
                    headers::SIGNING_TIME
                )))
            }
            SigningScheme::SigningAuthority if s.authentic_signing_time.is_none() => {
                return Err(EnvelopeError::Header(format!(
                    "signing scheme notary.x509.signingAuthority requires {}",
                    headers::AUTHENTIC_SIGNING_TIME
                )))
            }
            _ => {}
        }
        let leaf_der = self
            .cert_chain
            .first()
            .ok_or_else(|| EnvelopeError::Header("no certificate chain (x5c)".into()))?;
        let leaf = Cert::from_der(leaf_der)
            .map_err(|e| EnvelopeError::Header(format!("signing certificate: {e}")))?;
        let key = leaf.public_key()?;
        key.verify(s.alg, &self.signing_input, &self.signature)?;
        let payload: Payload = serde_json::from_slice(&self.payload)
            .map_err(|e| EnvelopeError::Payload(format!("not a Notary payload: {e}")))?;
        Ok(payload)
    }
}

/// Parses an RFC 3339 time (offsets allowed, as notation writes them).
pub fn parse_time(header: &str, s: &str) -> Result<OffsetDateTime, EnvelopeError> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| EnvelopeError::Header(format!("{header}: {s:?} is not an RFC 3339 time: {e}")))
}

/// Formats a time as RFC 3339 (UTC, seconds).
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
