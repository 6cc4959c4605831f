//! Certificates and chains under the Notary Project's rules
//! (signature-specification.md, "Certificate Requirements"):
//!
//! - a chain runs from the signing (leaf) certificate to a self-signed root,
//!   each certificate signed by the next; a single self-signed certificate
//!   is allowed and is then held to the leaf rules;
//! - CA certificates: basicConstraints critical with cA=true (pathLen
//!   honoured), keyUsage critical with keyCertSign;
//! - leaf: keyUsage critical with digitalSignature; for code signing the
//!   extended key usage, if present, may contain codeSigning but none of
//!   anyExtendedKeyUsage, serverAuth, clientAuth, emailProtection,
//!   timeStamping; a timestamping leaf must have a critical EKU of exactly
//!   timeStamping;
//! - RSA keys of at least 2048 bits, EC keys of at least 256, no SHA-1.

use crate::crypto::{CryptoError, PublicKey};
use der::{Decode, Encode};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::Certificate;

/// Why a certificate or a chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Not a DER X.509 certificate.
    #[error("certificate {index} does not parse: {why}")]
    Parse {
        /// Position in the chain.
        index: usize,
        /// Parser message.
        why: String,
    },
    /// The chain is empty.
    #[error("the certificate chain is empty")]
    Empty,
    /// A rule of the specification is broken.
    #[error("certificate {index} ({subject}): {why}")]
    Rule {
        /// Position in the chain.
        index: usize,
        /// Its subject.
        subject: String,
        /// The rule.
        why: String,
    },
    /// Outside its validity period at the time checked.
    #[error(
        "certificate {index} ({subject}) is not valid at {at}: valid {not_before} to {not_after}"
    )]
    Expired {
        /// Position in the chain.
        index: usize,
        /// Its subject.
        subject: String,
        /// Time checked.
        at: String,
        /// Validity start.
        not_before: String,
        /// Validity end.
        not_after: String,
    },
}

/// What a chain's leaf is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Signing artifacts.
    CodeSigning,
    /// RFC 3161 timestamping.
    Timestamping,
}

/// A parsed certificate with its DER bytes.
#[derive(Debug, Clone)]
pub struct Cert {
    der: Vec<u8>,
    cert: Certificate,
}

const EKU_ANY: &str = "2.5.29.37.0";
const EKU_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
const EKU_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
const EKU_EMAIL: &str = "1.3.6.1.5.5.7.3.4";
const EKU_TIMESTAMPING: &str = "1.3.6.1.5.5.7.3.8";
const EXT_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const EXT_KEY_USAGE: &str = "2.5.29.15";
const EXT_EKU: &str = "2.5.29.37";
const EXT_CRL_DP: &str = "2.5.29.31";
const EXT_AIA: &str = "1.3.6.1.5.5.7.1.1";
const OCSP_METHOD: &str = "1.3.6.1.5.5.7.48.1";

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn to_time(t: &x509_cert::time::Time) -> OffsetDateTime {
    let secs = t.to_unix_duration().as_secs() as i64;
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl Cert {
    /// Parses DER bytes.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let cert = Certificate::from_der(der).map_err(|e| e.to_string())?;
        Ok(Cert {
            der: der.to_vec(),
            cert,
        })
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 of the DER bytes, lowercase hex (notation's thumbprint form).
    pub fn sha256_hex(&self) -> String {
        Sha256::digest(&self.der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Subject as an RFC 4514 string.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// Issuer as an RFC 4514 string.
    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate.issuer.to_string()
    }

    /// Subject attributes as (short type name, value) pairs, in order
    /// (what trusted identities are matched against).
    pub fn subject_attributes(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for rdn in self.cert.tbs_certificate.subject.0.iter() {
            for atv in rdn.0.iter() {
                let s = atv.to_string();
                if let Some((k, v)) = s.split_once('=') {
                    out.push((k.to_string(), unescape_dn_value(v)));
                }
            }
        }
        out
    }

    /// Start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        to_time(&self.cert.tbs_certificate.validity.not_before)
    }

    /// End of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        to_time(&self.cert.tbs_certificate.validity.not_after)
    }

    /// The certificate's public key.
    pub fn public_key(&self) -> Result<PublicKey, CryptoError> {
        PublicKey::from_spki(&self.cert.tbs_certificate.subject_public_key_info)
    }

    /// Whether `at` lies within the validity period.
    pub fn valid_at(&self, at: OffsetDateTime) -> bool {
        self.not_before() <= at && at <= self.not_after()
    }

    fn extension<T: for<'a> Decode<'a>>(&self, oid: &str) -> Option<(bool, Result<T, String>)> {
        let exts = self.cert.tbs_certificate.extensions.as_ref()?;
        let e = exts.iter().find(|e| e.extn_id.to_string() == oid)?;
        Some((
            e.critical,
            T::from_der(e.extn_value.as_bytes()).map_err(|e| e.to_string()),
        ))
    }

    /// Whether `signer` signed this certificate.
    fn signed_by(&self, signer: &Cert) -> Result<(), String> {
        let key = signer.public_key().map_err(|e| e.to_string())?;
        let tbs = self
            .cert
            .tbs_certificate
            .to_der()
            .map_err(|e| e.to_string())?;
        key.verify_x509(
            &self.cert.signature_algorithm,
            &tbs,
            self.cert.signature.raw_bytes(),
        )
        .map_err(|e| e.to_string())
    }

    /// Whether the certificate names revocation services (CRL distribution
    /// points or an OCSP responder in authority information access).
    pub fn has_revocation_info(&self) -> bool {
        let Some(exts) = self.cert.tbs_certificate.extensions.as_ref() else {
            return false;
        };
        exts.iter().any(|e| {
            let id = e.extn_id.to_string();
            id == EXT_CRL_DP
                || (id == EXT_AIA
                    && x509_cert::ext::pkix::AuthorityInfoAccessSyntax::from_der(
                        e.extn_value.as_bytes(),
                    )
                    .is_ok_and(|aia| {
                        aia.0
                            .iter()
                            .any(|d| d.access_method.to_string() == OCSP_METHOD)
                    }))
        })
    }

    fn self_issued(&self) -> bool {
        self.cert.tbs_certificate.subject == self.cert.tbs_certificate.issuer
    }
}

/// Undoes RFC 4514 backslash escapes in an attribute value.
fn unescape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses every DER certificate of a chain.
pub fn parse_chain(ders: &[Vec<u8>]) -> Result<Vec<Cert>, ChainError> {
    ders.iter()
        .enumerate()
        .map(|(index, d)| Cert::from_der(d).map_err(|why| ChainError::Parse { index, why }))
        .collect()
}

/// Checks a chain's structure and signatures under the spec's rules, and,
/// with `at`, that every certificate is valid at that time.
pub fn validate_chain(
    chain: &[Cert],
    purpose: Purpose,
    at: Option<OffsetDateTime>,
) -> Result<(), ChainError> {
    if chain.is_empty() {
        return Err(ChainError::Empty);
    }
    let rule = |index: usize, why: String| ChainError::Rule {
        index,
        subject: chain[index].subject(),
        why,
    };
    check_leaf(&chain[0], purpose).map_err(|w| rule(0, w))?;
    for (i, c) in chain.iter().enumerate() {
        check_key(c).map_err(|w| rule(i, w))?;
        if i > 0 {
            check_ca(c, i - 1).map_err(|w| rule(i, w))?;
        }
        match chain.get(i + 1) {
            Some(issuer) => {
                if c.issuer() != issuer.subject() {
                    return Err(rule(
                        i,
                        format!("is issued by {}, not by the next certificate", c.issuer()),
                    ));
                }
                c.signed_by(issuer)
                    .map_err(|w| rule(i, format!("signature by the next certificate: {w}")))?;
            }
            None => {
                // The chain must end at a root: self-issued and self-signed.
                if !c.self_issued() {
                    return Err(rule(
                        i,
                        "the chain does not end at a self-signed root".into(),
                    ));
                }
                c.signed_by(c)
                    .map_err(|w| rule(i, format!("self-signature: {w}")))?;
            }
        }
        if let Some(t) = at {
            if !c.valid_at(t) {
                return Err(ChainError::Expired {
                    index: i,
                    subject: c.subject(),
                    at: rfc3339(t),
                    not_before: rfc3339(c.not_before()),
                    not_after: rfc3339(c.not_after()),
                });
            }
        }
    }
    Ok(())
}

fn check_key(c: &Cert) -> Result<(), String> {
    let key = c.public_key().map_err(|e| e.to_string())?;
    let min = match key {
        PublicKey::Rsa(_) => 2048,
        _ => 256,
    };
    if key.bits() < min {
        return Err(format!("{} is below the minimum key size", key.describe()));
    }
    Ok(())
}

/// CA rules for a certificate that signed the one at `child`.
fn check_ca(c: &Cert, child: usize) -> Result<(), String> {
    match c.extension::<BasicConstraints>(EXT_BASIC_CONSTRAINTS) {
        Some((true, Ok(bc))) if bc.ca => {
            // pathLenConstraint bounds the CA certificates between this one
            // and the leaf; the one it signed is at `child`, so there are
            // `child` of them (the leaf itself is at 0).
            if let Some(max) = bc.path_len_constraint {
                if child as u64 > u64::from(max) {
                    return Err(format!(
                        "pathLenConstraint {max} exceeded by {child} intermediate certificates"
                    ));
                }
            }
        }
        Some((false, _)) => return Err("basicConstraints must be critical for a CA".into()),
        Some((_, Err(e))) => return Err(format!("basicConstraints: {e}")),
        _ => return Err("is not a CA (basicConstraints cA=true required)".into()),
    }
    match c.extension::<KeyUsage>(EXT_KEY_USAGE) {
        Some((true, Ok(ku))) if ku.0.contains(KeyUsages::KeyCertSign) => Ok(()),
        Some((false, _)) => Err("keyUsage must be critical".into()),
        Some((_, Err(e))) => Err(format!("keyUsage: {e}")),
        _ => Err("a CA needs keyUsage keyCertSign".into()),
    }
}

fn check_leaf(c: &Cert, purpose: Purpose) -> Result<(), String> {
    if let Some((_, Ok(bc))) = c.extension::<BasicConstraints>(EXT_BASIC_CONSTRAINTS) {
        if bc.ca && !c.self_issued() {
            return Err("a signing certificate must not be a CA".into());
        }
    }
    match c.extension::<KeyUsage>(EXT_KEY_USAGE) {
        Some((true, Ok(ku))) if ku.0.contains(KeyUsages::DigitalSignature) => {}
        Some((false, _)) => return Err("keyUsage must be critical".into()),
        Some((_, Err(e))) => return Err(format!("keyUsage: {e}")),
        _ => return Err("keyUsage digitalSignature is required".into()),
    }
    let eku = c.extension::<ExtendedKeyUsage>(EXT_EKU);
    match purpose {
        Purpose::CodeSigning => {
            if let Some((_, parsed)) = eku {
                let eku = parsed.map_err(|e| format!("extendedKeyUsage: {e}"))?;
                for oid in eku.0.iter().map(|o| o.to_string()) {
                    let bad = match oid.as_str() {
                        EKU_ANY => Some("anyExtendedKeyUsage"),
                        EKU_SERVER_AUTH => Some("serverAuth"),
                        EKU_CLIENT_AUTH => Some("clientAuth"),
                        EKU_EMAIL => Some("emailProtection"),
                        EKU_TIMESTAMPING => Some("timeStamping"),
                        _ => None,
                    };
                    if let Some(name) = bad {
                        return Err(format!(
                            "extendedKeyUsage {name} is not allowed for signing"
                        ));
                    }
                }
            }
        }
        Purpose::Timestamping => match eku {
            Some((true, Ok(eku)))
                if eku.0.len() == 1 && eku.0[0].to_string() == EKU_TIMESTAMPING => {}
            _ => return Err(
                "a timestamping certificate needs a critical extendedKeyUsage of timeStamping only"
                    .into(),
            ),
        },
    }
    Ok(())
}
