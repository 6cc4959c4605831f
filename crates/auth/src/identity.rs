//! An authenticated caller, as policies and logs see it.

/// How a caller proved who it is. A bearer token from `/token` keeps the
/// method its holder proved itself with when it got the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// A user name and password from an htpasswd file (HTTP Basic).
    Htpasswd,
    /// A robot / API key (`pvk_...`) from the metadata database.
    ApiKey,
    /// A JWT from a configured workload issuer (Kubernetes service
    /// account, CI OIDC), given as the password.
    Workload,
    /// A verified TLS client certificate (SPIFFE ID or subject), directly
    /// or forwarded by a trusted proxy.
    Certificate,
}

impl Method {
    /// The name policies and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Htpasswd => "htpasswd",
            Method::ApiKey => "api_key",
            Method::Workload => "workload",
            Method::Certificate => "certificate",
        }
    }

    /// Parses [`Method::as_str`] (a token's claim).
    pub fn parse(s: &str) -> Option<Method> {
        [
            Method::Htpasswd,
            Method::ApiKey,
            Method::Workload,
            Method::Certificate,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The subject: a user name, a key's name, a token's `sub`.
    pub subject: String,
    /// Groups the subject belongs to (empty for htpasswd users).
    pub groups: Vec<String>,
    /// How it was proved.
    pub method: Method,
    /// The SPIFFE ID of a client certificate (its URI SAN), when there is one.
    pub spiffe_id: Option<String>,
}

impl Identity {
    /// An identity with no groups and no SPIFFE ID.
    pub fn new(subject: impl Into<String>, method: Method) -> Identity {
        Identity {
            subject: subject.into(),
            groups: Vec::new(),
            method,
            spiffe_id: None,
        }
    }
}
