//! Who a request comes from. The registry asks [`Authenticator::authenticate`]
//! with the request's `Authorization` header and gets an [`Identity`] or an
//! [`AuthError`] that says why not (never which of user or password was
//! wrong). Everything here is synchronous and may be slow on purpose
//! (bcrypt): callers run it on a blocking thread.
//!
//! What it holds: Basic credentials checked against an htpasswd file
//! (bcrypt, as Distribution and Zot read it, re-read when it changes); API
//! keys ([`apikey`]); workload JWTs from configured issuers ([`workload`],
//! on [`jose`]); identities from TLS client certificates ([`certificate`]);
//! the Docker token specification's scopes and the bearer tokens `/token`
//! issues ([`scope`], [`token`]); what the configuration grants to whom
//! ([`grant_table`]); and the throttle on failed logins ([`throttle`]).
//! No HTTP types and no database: the registry brings the requests and
//! the stored keys.

pub mod apikey;
pub mod basic;
pub mod certificate;
pub mod error;
pub mod grant_table;
pub mod htpasswd;
pub mod identity;
pub mod jose;
pub mod scope;
pub mod throttle;
pub mod token;
mod verified;
mod watched;
pub mod workload;

pub use certificate::{identity_from_certificate, identity_from_forwarded, TrustedProxies};
pub use error::AuthError;
pub use grant_table::GrantTable;
pub use htpasswd::HtpasswdFile;
pub use identity::{Identity, Method};
pub use jose::{JoseError, KeySet, SigningKey};
pub use scope::{Actions, Grant, Grants, Resource, Scope};
pub use throttle::Throttle;
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

    /// A fingerprint of the credential stored for `subject` now, which
    /// changes when the password changes or the user is removed (`None`:
    /// no such user, or it cannot be read). A refresh token carries it, so
    /// either revokes the tokens issued before. May block (file reads).
    fn stamp(&self, _subject: &str) -> Option<String> {
        None
    }
}
