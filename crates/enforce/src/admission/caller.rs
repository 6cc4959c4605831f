//! Who may call the admission endpoints.
//!
//! A review makes the server do work (lookups, verification, Rego) and
//! writes the decision log, so callers prove who they are: the API server
//! (or Gatekeeper) presents either a client certificate verified against
//! `serve --admission-client-ca` and named (common name or DNS subject
//! alternative name) by `serve --admission-client-name`, or
//! `Authorization: Bearer <token>` with the token of
//! `serve --admission-token[-file]`. The name matters because the CA the
//! API server's certificate comes from is usually the cluster CA, which
//! also signs every kubelet's and user's certificate: the CA alone says
//! "someone in this cluster", not "the API server". With neither configured
//! the endpoints refuse every call (403): an unauthenticated webhook lets
//! any pod in the cluster forge decision log entries and spend the server's
//! time, and there is no safe default identity to assume. Where the API
//! server cannot be told to authenticate (managed control planes), the
//! operator opts out explicitly (`--admission-unauthenticated`) and limits
//! who reaches the port by other means (a NetworkPolicy); lookups stay
//! limited to the allowed registries either way.

use pavilion_oci::Digest;
use pavilion_registry::tls::ClientCertificate;

/// How callers of the admission endpoints are authenticated.
#[derive(Debug, Clone, Default)]
pub struct CallerAuth {
    /// SHA-256 of the bearer token (compared as digests, so the time taken
    /// says nothing useful about the token).
    token: Option<Digest>,
    /// The names (common name or DNS subject alternative name) a verified
    /// client certificate must carry one of; empty: certificates are not
    /// accepted.
    client_names: Vec<String>,
    /// Whether callers without credentials are accepted (an explicit
    /// opt-out).
    anyone: bool,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No way of authenticating is configured: 403.
    NotConfigured(String),
    /// The caller did not authenticate: 401.
    Unauthenticated(String),
}

impl CallerAuth {
    /// Accepts `token` (if any) as a bearer token and a verified client
    /// certificate named by one of `client_names` (none: no certificate).
    pub fn new(token: Option<&str>, client_names: Vec<String>) -> Self {
        CallerAuth {
            token: token.map(|t| Digest::sha256(t.as_bytes())),
            client_names,
            anyone: false,
        }
    }

    /// Accepts every caller, credentials or not.
    pub fn unauthenticated() -> Self {
        CallerAuth {
            anyone: true,
            ..CallerAuth::default()
        }
    }

    /// Whether calls can be accepted at all.
    pub fn configured(&self) -> bool {
        self.anyone || self.token.is_some() || !self.client_names.is_empty()
    }

    /// Whether every caller is accepted.
    pub fn is_open(&self) -> bool {
        self.anyone
    }

    /// Checks a request's credentials.
    pub fn check(&self, parts: &http::request::Parts) -> Result<(), Refusal> {
        if !self.configured() {
            return Err(Refusal::NotConfigured(
                "the admission endpoints are disabled: configure admission_token \
                 (or admission_token_file) or admission_client_ca to say who may call them"
                    .into(),
            ));
        }
        if self.anyone {
            return Ok(());
        }
        // A certificate that verified but names someone else is refused
        // outright (not tried as "no certificate"), saying whose it is.
        let mut wrong_name = None;
        if let (false, Some(cert)) = (
            self.client_names.is_empty(),
            parts.extensions.get::<ClientCertificate>(),
        ) {
            match certificate_names(&cert.0) {
                Ok(names) if names.iter().any(|n| self.names_match(n)) => return Ok(()),
                Ok(names) => wrong_name = Some(names),
                Err(e) => {
                    return Err(Refusal::Unauthenticated(format!(
                        "client certificate unreadable: {e}"
                    )))
                }
            }
        }
        if let Some(want) = &self.token {
            let presented = parts
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.split_once(' ')
                        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                        .map(|(_, t)| t.trim())
                });
            if presented.is_some_and(|t| Digest::sha256(t.as_bytes()) == *want) {
                return Ok(());
            }
        }
        if let Some(names) = wrong_name {
            return Err(Refusal::Unauthenticated(format!(
                "client certificate of {} is not one of admission_client_names ({})",
                if names.is_empty() {
                    "no name".to_string()
                } else {
                    names
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                self.client_names.join(", ")
            )));
        }
        let mut ways = Vec::new();
        if !self.client_names.is_empty() {
            ways.push("a client certificate from admission_client_ca");
        }
        if self.token.is_some() {
            ways.push("the bearer token of admission_token (Authorization: Bearer ...)");
        }
        Err(Refusal::Unauthenticated(format!(
            "authentication required: present {}",
            ways.join(" or ")
        )))
    }

    /// Whether a certificate's name is one of the configured ones: exact
    /// (common names like `system:...` are case-sensitive identities),
    /// DNS names without case.
    fn names_match(&self, name: &CertName) -> bool {
        self.client_names.iter().any(|want| match name {
            CertName::Common(cn) => cn == want,
            CertName::Dns(dns) => dns.eq_ignore_ascii_case(want),
        })
    }
}

/// A name a client certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CertName {
    /// A common name of the subject.
    Common(String),
    /// A DNS subject alternative name.
    Dns(String),
}

impl std::fmt::Display for CertName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertName::Common(n) => write!(f, "CN={n}"),
            CertName::Dns(n) => write!(f, "DNS:{n}"),
        }
    }
}

/// The common names and DNS subject alternative names of a DER
/// certificate (already verified by the TLS layer; parsed here only for
/// its names).
fn certificate_names(der: &[u8]) -> Result<Vec<CertName>, String> {
    use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    use x509_cert::der::{Decode as _, Tag, Tagged as _};
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    const COMMON_NAME: &str = "2.5.4.3";
    const SUBJECT_ALT_NAME: &str = "2.5.29.17";
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
    let tbs = &cert.tbs_certificate;
    let mut names = Vec::new();
    for atv in tbs.subject.0.iter().flat_map(|rdn| rdn.0.iter()) {
        if atv.oid.to_string() != COMMON_NAME {
            continue;
        }
        // Only the string types CAs write; anything else is no name.
        let v = &atv.value;
        let text = match v.tag() {
            Tag::Utf8String => v.decode_as::<Utf8StringRef<'_>>().map(|s| s.to_string()),
            Tag::PrintableString => v
                .decode_as::<PrintableStringRef<'_>>()
                .map(|s| s.to_string()),
            Tag::Ia5String => v.decode_as::<Ia5StringRef<'_>>().map(|s| s.to_string()),
            _ => continue,
        };
        names.push(CertName::Common(
            text.map_err(|e| format!("common name: {e}"))?,
        ));
    }
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id.to_string() != SUBJECT_ALT_NAME {
            continue;
        }
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
            .map_err(|e| format!("subject alternative names: {e}"))?;
        for n in san.0 {
            if let GeneralName::DnsName(d) = n {
                names.push(CertName::Dns(d.to_string()));
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER certificate with common name `cn` and DNS names `dns`.
    fn cert(cn: &str, dns: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let dns: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
        let mut p = rcgen::CertificateParams::new(dns).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn parts(auth: Option<&str>, cert: Option<Vec<u8>>) -> http::request::Parts {
        let mut b = http::Request::builder().uri("/admission");
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        let (mut p, ()) = b.body(()).unwrap().into_parts();
        if let Some(der) = cert {
            p.extensions.insert(ClientCertificate(der.into()));
        }
        p
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nothing_configured_refuses_everyone() {
        let a = CallerAuth::default();
        assert!(matches!(
            a.check(&parts(Some("Bearer x"), Some(cert("kube-apiserver", &[])))),
            Err(Refusal::NotConfigured(_))
        ));
        assert_eq!(
            CallerAuth::unauthenticated().check(&parts(None, None)),
            Ok(())
        );
    }

    #[test]
    fn bearer_token() {
        let a = CallerAuth::new(Some("tok"), Vec::new());
        assert_eq!(a.check(&parts(Some("Bearer tok"), None)), Ok(()));
        assert_eq!(a.check(&parts(Some("bearer  tok "), None)), Ok(()));
        for bad in [
            None,
            Some("Bearer tok2"),
            Some("Basic tok"),
            Some("tok"),
            Some("Bearer"),
        ] {
            let e = a.check(&parts(bad, None)).unwrap_err();
            assert!(
                matches!(&e, Refusal::Unauthenticated(m) if m.contains("bearer token")),
                "{bad:?}: {e:?}"
            );
        }
        // A certificate is not enough when only tokens are accepted.
        assert!(a
            .check(&parts(None, Some(cert("kube-apiserver", &[]))))
            .is_err());
    }

    #[test]
    fn client_certificate_must_carry_a_configured_name() {
        let a = CallerAuth::new(None, names(&["kube-apiserver", "webhook.example"]));
        assert_eq!(
            a.check(&parts(None, Some(cert("kube-apiserver", &[])))),
            Ok(())
        );
        assert_eq!(
            a.check(&parts(None, Some(cert("x", &["Webhook.Example"])))),
            Ok(())
        );
        // Common names are exact; a kubelet's certificate from the same CA
        // is refused, naming whose it is.
        for (cn, dns) in [
            ("Kube-Apiserver", &[][..]),
            ("system:node:w1", &["w1.local"][..]),
        ] {
            let e = a.check(&parts(None, Some(cert(cn, dns)))).unwrap_err();
            assert!(
                matches!(&e, Refusal::Unauthenticated(m)
                    if m.contains(&format!("CN={cn}")) && m.contains("admission_client_names")),
                "{e:?}"
            );
        }
        assert!(a.check(&parts(Some("Bearer x"), None)).is_err());
        assert!(matches!(
            a.check(&parts(None, Some(b"not DER".to_vec()))),
            Err(Refusal::Unauthenticated(m)) if m.contains("unreadable")
        ));
        // Either way of authenticating is enough.
        let both = CallerAuth::new(Some("tok"), names(&["kube-apiserver"]));
        assert_eq!(
            both.check(&parts(None, Some(cert("kube-apiserver", &[])))),
            Ok(())
        );
        assert_eq!(both.check(&parts(Some("Bearer tok"), None)), Ok(()));
        assert_eq!(
            both.check(&parts(Some("Bearer tok"), Some(cert("someone", &[])))),
            Ok(())
        );
        assert!(both.check(&parts(None, None)).is_err());
    }
}
