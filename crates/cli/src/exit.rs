//! Exit codes, so scripts can tell failures apart:
//!
//! | code | status | meaning |
//! |---|---|---|
//! | 0 | success | success |
//! | 1 | failure | any other failure (local I/O, a refusal by the registry) |
//! | 2 | usage | usage error (bad flags, malformed reference) |
//! | 3 | not_found | not found (reference, blob, repository, layout entry) |
//! | 4 | verification | verification failed (digest mismatch, unsafe path in an artifact) |
//! | 5 | network | network failure (unreachable, dropped connection, protocol breach) |
//! | 6 | auth | authentication failed |
//!
//! Every command returns a [`CmdResult`]: its [`ExitStatus`], or a
//! [`Failure`] that carries its status from where the error was made (each
//! typed error a command meets converts with the status of its kind), so
//! `main` only prints and exits. [`Context`] adds a message on the way up
//! and keeps the status.

use pavilion_client::{ClientError, ErrorKind};
use std::fmt::Display;

/// A request that cannot be carried out as written, and an artifact that
/// fails a safety or integrity check: the transfer library's types, so a
/// refusal made there or here is classified alike.
pub use pavilion_transfer::{UsageError, VerificationError};

/// How a command ended, as its exit code says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It did what was asked (0).
    Success,
    /// Any other failure: local I/O, a refusal by the registry (1).
    Failure,
    /// Bad flags, a malformed reference or input (2).
    Usage,
    /// The reference, blob, repository or layout entry does not exist (3).
    NotFound,
    /// A digest, signature, path or policy check failed (4).
    Verification,
    /// Unreachable, a dropped connection, a protocol breach (5).
    Network,
    /// Credentials missing or refused (6).
    Auth,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::NotFound => 3,
            ExitStatus::Verification => 4,
            ExitStatus::Network => 5,
            ExitStatus::Auth => 6,
        }
    }

    /// The name `--output json` reports an error's exit code by.
    pub fn name(self) -> &'static str {
        match self {
            ExitStatus::Success => "success",
            ExitStatus::Failure => "failure",
            ExitStatus::Usage => "usage",
            ExitStatus::NotFound => "not_found",
            ExitStatus::Verification => "verification",
            ExitStatus::Network => "network",
            ExitStatus::Auth => "auth",
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.code())
    }
}

impl From<ErrorKind> for ExitStatus {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::Usage => ExitStatus::Usage,
            ErrorKind::NotFound => ExitStatus::NotFound,
            ErrorKind::Verification => ExitStatus::Verification,
            ErrorKind::Network => ExitStatus::Network,
            ErrorKind::Auth => ExitStatus::Auth,
            ErrorKind::Other => ExitStatus::Failure,
        }
    }
}

/// A command's error: what `main` prints (`{:#}` of `error`, its context
/// chain) and the status it exits with.
#[derive(Debug)]
pub struct Failure {
    /// How the command ended.
    pub status: ExitStatus,
    /// What went wrong, with the context added on the way up.
    pub error: anyhow::Error,
}

/// What a command returns: its status, or why it failed.
pub type CmdResult<T = ExitStatus> = Result<T, Failure>;

impl Failure {
    /// An error with the status it was classified as where it was made.
    pub fn new(status: ExitStatus, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            status,
            error: error.into(),
        }
    }

    /// An error of no particular kind (local I/O, a refusal): exit 1.
    pub fn other(error: impl Into<anyhow::Error>) -> Self {
        Failure::new(ExitStatus::Failure, error)
    }

    /// The same failure with `context` in front of its message.
    pub fn context<C: Display + Send + Sync + 'static>(self, context: C) -> Self {
        Failure {
            status: self.status,
            error: self.error.context(context),
        }
    }
}

/// A typed error converts with the status of its kind.
macro_rules! failure_from {
    ($($t:ty => $status:expr),* $(,)?) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                let status: fn(&$t) -> ExitStatus = $status;
                Failure::new(status(&e), e)
            }
        }
    )*};
}

failure_from! {
    ClientError => |e| e.kind().into(),
    pavilion_client::queries::QueryError => |e| e.kind().into(),
    pavilion_verify::VerifyError => |e| e.kind().into(),
    pavilion_transfer::TransferError => |e| e.kind().into(),
    UsageError => |_| ExitStatus::Usage,
    pavilion_oci::ImageRefError => |_| ExitStatus::Usage,
    VerificationError => |_| ExitStatus::Verification,
    std::io::Error => |_| ExitStatus::Failure,
    serde_json::Error => |_| ExitStatus::Failure,
    pavilion_oci::ManifestError => |_| ExitStatus::Failure,
    pavilion_policy::PolicyError => |_| ExitStatus::Failure,
}

/// `anyhow::Context` for a command's errors: the message goes in front,
/// the status stays what the error was classified as.
pub trait Context<T> {
    /// Puts `context` in front of the error's message.
    fn context<C: Display + Send + Sync + 'static>(self, context: C) -> CmdResult<T>;

    /// Puts the message `f` makes in front of the error's message; `f` runs
    /// only on an error.
    fn with_context<C: Display + Send + Sync + 'static, F: FnOnce() -> C>(
        self,
        f: F,
    ) -> CmdResult<T>;
}

impl<T, E: Into<Failure>> Context<T> for Result<T, E> {
    fn context<C: Display + Send + Sync + 'static>(self, context: C) -> CmdResult<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: Display + Send + Sync + 'static, F: FnOnce() -> C>(
        self,
        f: F,
    ) -> CmdResult<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

/// A value that is missing is a failure of no particular kind, named by
/// the context.
impl<T> Context<T> for Option<T> {
    fn context<C: Display + Send + Sync + 'static>(self, context: C) -> CmdResult<T> {
        self.ok_or_else(|| Failure::other(anyhow::Error::msg(context.to_string())))
    }

    fn with_context<C: Display + Send + Sync + 'static, F: FnOnce() -> C>(
        self,
        f: F,
    ) -> CmdResult<T> {
        self.ok_or_else(|| Failure::other(anyhow::Error::msg(f().to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_the_documented_ones() {
        let all = [
            (ExitStatus::Success, 0, "success"),
            (ExitStatus::Failure, 1, "failure"),
            (ExitStatus::Usage, 2, "usage"),
            (ExitStatus::NotFound, 3, "not_found"),
            (ExitStatus::Verification, 4, "verification"),
            (ExitStatus::Network, 5, "network"),
            (ExitStatus::Auth, 6, "auth"),
        ];
        for (s, code, name) in all {
            assert_eq!((s.code(), s.name()), (code, name));
        }
    }

    #[test]
    fn context_keeps_the_status_and_reads_as_anyhow_would() {
        let failed = || -> Result<(), ClientError> { Err(ClientError::NotFound("blob x".into())) };
        let f = failed().with_context(|| "fetching y").unwrap_err();
        assert_eq!(f.status, ExitStatus::NotFound);
        // What the commands printed when they returned anyhow's errors.
        let plain = anyhow::Context::with_context(failed(), || "fetching y").unwrap_err();
        assert_eq!(format!("{:#}", f.error), format!("{plain:#}"));
        let f = Err::<(), _>(f).context("outer").unwrap_err();
        assert_eq!(f.status, ExitStatus::NotFound);
        assert!(format!("{:#}", f.error).starts_with("outer: fetching y: "));
    }

    #[test]
    fn a_transfer_error_is_classified_by_the_transfer_library() {
        use pavilion_transfer::TransferError;
        let e = TransferError::Context {
            context: "pulling".into(),
            source: Box::new(UsageError("bad glob".into()).into()),
        };
        let f = Failure::from(e);
        assert_eq!(f.status, ExitStatus::Usage);
        assert_eq!(format!("{:#}", f.error), "pulling: bad glob");
        let f = Failure::from(TransferError::Refused("disk full".into()));
        assert_eq!(f.status, ExitStatus::Failure);
    }
}
