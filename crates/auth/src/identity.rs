//! An authenticated caller, as policies and logs see it.

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A user name and password from an htpasswd file (HTTP Basic).
    Htpasswd,
}

impl Method {
    /// The name policies and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Htpasswd => "htpasswd",
        }
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
}
