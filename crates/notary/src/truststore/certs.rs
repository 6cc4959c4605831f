//! Reading a trust store file's certificates (PEM or concatenated DER) and
//! the rules a certificate must meet to sit in a store of each type.

use super::StoreType;
use der::{Decode, Reader, SliceReader};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::Certificate;

/// Why a file's content was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FileError {
    NoCertificate(String),
    Bad { index: usize, why: String },
}

/// DER bytes of the certificates in a trust store file: PEM when the file
/// contains a PEM boundary (other block types, such as a key stored beside
/// the certificate, are skipped, as notation does), else one or more
/// concatenated DER certificates. Each certificate is parsed, so that a
/// corrupt one is reported instead of never matching.
pub(super) fn read_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, FileError> {
    let ders = if crate::pem::is_pem(bytes) {
        let ders = crate::pem::certificates(bytes).map_err(|e| FileError::Bad {
            index: e.index,
            why: e.why,
        })?;
        if ders.is_empty() {
            return Err(FileError::NoCertificate(
                "no PEM CERTIFICATE block".to_string(),
            ));
        }
        ders
    } else {
        if bytes.is_empty() {
            return Err(FileError::NoCertificate("the file is empty".to_string()));
        }
        der_certificates(bytes)?
    };
    for (i, der) in ders.iter().enumerate() {
        Certificate::from_der(der).map_err(|e| FileError::Bad {
            index: i + 1,
            why: e.to_string(),
        })?;
    }
    Ok(ders)
}

/// Splits concatenated DER certificates (Go's `x509.ParseCertificates`
/// accepts several in one file, so notation does too).
fn der_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, FileError> {
    let mut out = Vec::new();
    let mut reader =
        SliceReader::new(bytes).map_err(|e| FileError::NoCertificate(e.to_string()))?;
    while !reader.is_finished() {
        let start = usize::try_from(reader.position()).unwrap_or(usize::MAX);
        if let Err(e) = Certificate::decode(&mut reader) {
            let why = format!("not PEM, and not a DER certificate: {e}");
            return Err(if out.is_empty() {
                FileError::NoCertificate(why)
            } else {
                FileError::Bad {
                    index: out.len() + 1,
                    why,
                }
            });
        }
        let end = usize::try_from(reader.position()).unwrap_or(usize::MAX);
        out.push(bytes[start..end].to_vec());
    }
    Ok(out)
}

const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";

/// Whether the certificate may sit in a store of type `kind`. On refusal,
/// returns (subject, reason).
pub(super) fn check_anchor(kind: StoreType, der: &[u8]) -> Result<(), (String, String)> {
    // read_certificates parsed it already.
    let cert = Certificate::from_der(der).map_err(|e| (String::new(), e.to_string()))?;
    let tbs = &cert.tbs_certificate;
    let subject = tbs.subject.to_string();
    let ext = |oid: &str| {
        tbs.extensions
            .as_ref()
            .and_then(|exts| exts.iter().find(|e| e.extn_id.to_string() == oid))
    };
    let basic = match ext(OID_BASIC_CONSTRAINTS) {
        Some(e) => Some(
            BasicConstraints::from_der(e.extn_value.as_bytes()).map_err(|e| {
                (
                    subject.clone(),
                    format!("basicConstraints does not parse: {e}"),
                )
            })?,
        ),
        None => None,
    };
    let is_ca = basic.as_ref().is_some_and(|b| b.ca);
    match kind {
        StoreType::Ca | StoreType::SigningAuthority => {
            if is_ca {
                return Ok(());
            }
            self_signature(&cert).map_err(|why| {
                (
                    subject.clone(),
                    format!("neither a CA certificate (basicConstraints cA=true) nor self-signed ({why})"),
                )
            })
        }
        StoreType::Tsa => {
            // What Go's CheckSignatureFrom(self) asks of a parent (a v3
            // certificate must be a CA; a key usage, if any, must allow
            // certificate signing), then a self-issued name.
            let v1 = tbs.version == x509_cert::Version::V1;
            if !v1 && !is_ca {
                return Err((
                    subject,
                    "a tsa store holds root CA certificates; this one is not a CA (basicConstraints cA=true)"
                        .to_string(),
                ));
            }
            if let Some(e) = ext(OID_KEY_USAGE) {
                let ku = KeyUsage::from_der(e.extn_value.as_bytes())
                    .map_err(|e| (subject.clone(), format!("keyUsage does not parse: {e}")))?;
                if !ku.0.contains(KeyUsages::KeyCertSign) {
                    return Err((
                        subject,
                        "a tsa store holds root CA certificates; this one's key usage does not allow certificate signing"
                            .to_string(),
                    ));
                }
            }
            if tbs.subject != tbs.issuer {
                return Err((
                    subject,
                    format!(
                        "a tsa store holds root CA certificates; this one is issued by {}",
                        tbs.issuer
                    ),
                ));
            }
            self_signature(&cert).map_err(|why| {
                (
                    subject.clone(),
                    format!("a tsa store holds root CA certificates; this one's self-signature does not verify ({why})"),
                )
            })
        }
    }
}

/// Whether the certificate's signature verifies with its own public key.
fn self_signature(cert: &Certificate) -> Result<(), String> {
    use der::Encode;
    let key = crate::crypto::PublicKey::from_spki(&cert.tbs_certificate.subject_public_key_info)
        .map_err(|e| e.to_string())?;
    let tbs = cert.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    key.verify_x509(&cert.signature_algorithm, &tbs, cert.signature.raw_bytes())
        .map_err(|e| e.to_string())
}
