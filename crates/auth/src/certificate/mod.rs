//! Identities from TLS client certificates: the SPIFFE ID of an X509-SVID,
//! or else the certificate's subject. The certificate must already have
//! been verified against the trusted CAs by the TLS layer (or by the proxy
//! that forwards it in `x-forwarded-client-cert`); nothing here checks a
//! chain or a signature.

mod proxies;
mod spiffe;
mod xfcc;

pub use proxies::TrustedProxies;
pub use xfcc::identity_from_forwarded;

use crate::{AuthError, Identity, Method};
use der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use der::{Decode as _, Tag, Tagged as _};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::name::RdnSequence;
use x509_cert::Certificate;

/// Largest certificate read: real client certificates are 1-2 KiB.
const MAX_CERTIFICATE: usize = 64 << 10;
/// Longest subject name taken from a certificate.
const MAX_SUBJECT: usize = 1024;

/// The identity a verified client certificate (DER) names.
///
/// With a `spiffe://` URI SAN, the certificate is an X509-SVID: it must
/// have exactly one URI SAN, a valid SPIFFE ID, which becomes both the
/// subject and the SPIFFE ID. Otherwise the subject is the certificate's
/// common name when it has exactly one, else its whole subject as an RFC
/// 4514 string.
pub fn identity_from_certificate(der: &[u8]) -> Result<Identity, AuthError> {
    if der.len() > MAX_CERTIFICATE {
        return Err(refuse("larger than 64 KiB"));
    }
    let cert = Certificate::from_der(der).map_err(|_| refuse("not a DER X.509 certificate"))?;
    identity_of(&cert)
}

fn identity_of(cert: &Certificate) -> Result<Identity, AuthError> {
    let tbs = &cert.tbs_certificate;
    let san: Option<(bool, SubjectAltName)> = tbs
        .get()
        .map_err(|_| refuse("unreadable or repeated subjectAltName extension"))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|(_, san)| san.0.iter())
        .filter_map(|name| match name {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str()),
            _ => None,
        })
        .collect();
    if uris.iter().any(|u| spiffe::claims_spiffe(u)) {
        // X509-SVID §4.1: exactly one URI SAN, the SPIFFE ID.
        let [id] = uris[..] else {
            return Err(refuse("an X509-SVID with more than one URI SAN"));
        };
        return spiffe_identity(id);
    }
    subject_identity(&tbs.subject)
}

/// The identity of a SPIFFE ID, once it is found valid.
fn spiffe_identity(id: &str) -> Result<Identity, AuthError> {
    spiffe::check(id).map_err(refuse)?;
    Ok(Identity {
        spiffe_id: Some(id.to_string()),
        ..Identity::new(id, Method::Certificate)
    })
}

/// The identity of a subject name: its one common name, or else the whole
/// name as RFC 4514 text.
fn subject_identity(subject: &RdnSequence) -> Result<Identity, AuthError> {
    let cns: Vec<_> = subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == const_oid::db::rfc4519::CN)
        .collect();
    let name = match cns[..] {
        [cn] => directory_string(&cn.value).ok_or(refuse("the common name is not a string"))?,
        _ => subject.to_string(),
    };
    if name.is_empty() || name.len() > MAX_SUBJECT || name.chars().any(char::is_control) {
        return Err(refuse(
            "the subject is empty, longer than 1024 bytes or has control characters",
        ));
    }
    Ok(Identity::new(name, Method::Certificate))
}

/// The text of a DirectoryString attribute value, in the string types
/// certificates use for names.
fn directory_string(value: &der::Any) -> Option<String> {
    let text = match value.tag() {
        Tag::Utf8String => Utf8StringRef::try_from(value).ok()?.as_str().to_string(),
        Tag::PrintableString => PrintableStringRef::try_from(value)
            .ok()?
            .as_str()
            .to_string(),
        Tag::Ia5String => Ia5StringRef::try_from(value).ok()?.as_str().to_string(),
        Tag::TeletexString => TeletexStringRef::try_from(value).ok()?.as_str().to_string(),
        _ => return None,
    };
    Some(text)
}

/// Logs why a certificate gives no identity (the caller learns only that
/// it does not).
fn refuse(why: &'static str) -> AuthError {
    tracing::debug!(reason = why, "client certificate refused");
    AuthError::Invalid
}

#[cfg(test)]
mod tests;
