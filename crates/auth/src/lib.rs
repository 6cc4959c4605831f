//! Who a request comes from. The registry asks [`Authenticator::authenticate`]
//! with the request's `Authorization` header and gets an [`Identity`] or an
//! [`AuthError`] that says why not (never which of user or password was
//! wrong). Everything here is synchronous and may be slow on purpose
//! (bcrypt): callers run it on a blocking thread.
//!
//! Today: Basic credentials checked against an htpasswd file (bcrypt, as
//! Distribution and Zot read it), re-read when the file changes. The
//! pieces issue 16 builds on sit beside it: [`jose`] (ES256 signing keys,
//! key sets from JWKS or PEM, JWS verification, claim checks),
//! [`workload`] (JWTs of configured issuers such as Kubernetes service
//! accounts and CI OIDC, as identities) and [`certificate`] (identities
//! from TLS client certificates — SPIFFE ID or subject — directly or as
//! forwarded by trusted proxies in `x-forwarded-client-cert`).

pub mod anonymous;
pub mod basic;
pub mod certificate;
pub mod error;
pub mod htpasswd;
pub mod identity;
pub mod jose;
mod verified;
pub mod workload;

pub use anonymous::AnonymousPull;
pub use certificate::{identity_from_certificate, identity_from_forwarded, TrustedProxies};
pub use error::AuthError;
pub use htpasswd::HtpasswdFile;
pub use identity::{Identity, Method};
pub use jose::{JoseError, KeySet, SigningKey};
pub use workload::{WorkloadIssuerConfig, WorkloadIssuers};

/// Decides who a request comes from.
pub trait Authenticator: Send + Sync {
    /// The identity the `Authorization` header proves, if any. May block
    /// (file reads, bcrypt): run it on a blocking thread.
    fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, AuthError>;

    /// The identity of credentials accepted a moment ago, answered from
    /// memory without blocking (no file access, no slow hash), so that the
    /// many requests of one pull need no blocking thread; `None`: ask
    /// [`Authenticator::authenticate`].
    fn remembered(&self, _authorization: Option<&str>) -> Option<Identity> {
        None
    }
}
