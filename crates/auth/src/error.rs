//! Why a request is not authenticated.

/// Why no identity could be established. The message never says whether a
/// user exists.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials were given.
    #[error("authentication required")]
    Missing,
    /// The `Authorization` header could not be read.
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    /// The credentials were read and are not valid.
    #[error("invalid user name or password")]
    Invalid,
    /// The credential store could not be read: nobody is let in.
    #[error("credentials cannot be checked: {0}")]
    Unavailable(String),
}
