//! Who may call the admission endpoints.
//!
//! A review makes the server do work (lookups, verification, Rego) and
//! writes the decision log, so callers prove who they are: the API server
//! (or Gatekeeper) presents either a client certificate verified against
//! `serve --admission-client-ca`, or `Authorization: Bearer <token>` with
//! the token of `serve --admission-token[-file]`. With neither configured
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
    /// Whether a verified client certificate is accepted.
    client_certificate: bool,
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
    /// Accepts `token` (if any) as a bearer token and, when
    /// `client_certificate`, a verified client certificate.
    pub fn new(token: Option<&str>, client_certificate: bool) -> Self {
        CallerAuth {
            token: token.map(|t| Digest::sha256(t.as_bytes())),
            client_certificate,
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
        self.anyone || self.token.is_some() || self.client_certificate
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
        if self.client_certificate && parts.extensions.get::<ClientCertificate>().is_some() {
            return Ok(());
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
        let mut ways = Vec::new();
        if self.client_certificate {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(auth: Option<&str>, cert: bool) -> http::request::Parts {
        let mut b = http::Request::builder().uri("/admission");
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        let (mut p, ()) = b.body(()).unwrap().into_parts();
        if cert {
            p.extensions
                .insert(ClientCertificate(Vec::<u8>::new().into()));
        }
        p
    }

    #[test]
    fn nothing_configured_refuses_everyone() {
        let a = CallerAuth::default();
        assert!(matches!(
            a.check(&parts(Some("Bearer x"), true)),
            Err(Refusal::NotConfigured(_))
        ));
        assert_eq!(
            CallerAuth::unauthenticated().check(&parts(None, false)),
            Ok(())
        );
    }

    #[test]
    fn bearer_token() {
        let a = CallerAuth::new(Some("tok"), false);
        assert_eq!(a.check(&parts(Some("Bearer tok"), false)), Ok(()));
        assert_eq!(a.check(&parts(Some("bearer  tok "), false)), Ok(()));
        for bad in [
            None,
            Some("Bearer tok2"),
            Some("Basic tok"),
            Some("tok"),
            Some("Bearer"),
        ] {
            let e = a.check(&parts(bad, false)).unwrap_err();
            assert!(
                matches!(&e, Refusal::Unauthenticated(m) if m.contains("bearer token")),
                "{bad:?}: {e:?}"
            );
        }
        // A certificate is not enough when only tokens are accepted.
        assert!(a.check(&parts(None, true)).is_err());
    }

    #[test]
    fn client_certificate_or_token() {
        let a = CallerAuth::new(None, true);
        assert_eq!(a.check(&parts(None, true)), Ok(()));
        assert!(a.check(&parts(Some("Bearer x"), false)).is_err());
        let both = CallerAuth::new(Some("tok"), true);
        assert_eq!(both.check(&parts(None, true)), Ok(()));
        assert_eq!(both.check(&parts(Some("Bearer tok"), false)), Ok(()));
        assert!(both.check(&parts(None, false)).is_err());
    }
}
