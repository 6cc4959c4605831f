//! What a transfer's failure is: [`TransferError`], typed all the way
//! down, so a caller (the CLI's exit codes, a daemon's retry policy, a web
//! page's message) asks [`TransferError::kind`] instead of reading a chain
//! of causes. Messages read as they did when they were anyhow chains:
//! each [`Context`] adds "what the transfer was doing", the cause follows.

use pavilion_client::{ClientError, ErrorKind};
use pavilion_model::{PackError, PathError, UntarError};
use pavilion_oci::NameError;
use pavilion_verify::VerifyError;

/// A request that cannot be carried out as written (a bad glob, an
/// artifact that is not a model, a policy directory that does not load).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// An artifact that fails a safety, integrity, signature or policy check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VerificationError(pub String);

/// Why a [`crate::Push`] or [`crate::Pull`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The registry or the network said no (the client's own error).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Signatures could not be verified (a registry out of reach, a trust
    /// policy that does not load).
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A request that cannot be carried out as written.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The artifact fails a check.
    #[error(transparent)]
    Verification(#[from] VerificationError),
    /// A path in the artifact is unsafe or named twice.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A tar layer could not be listed or extracted.
    #[error(transparent)]
    Untar(#[from] UntarError),
    /// A model directory could not be packed.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// A repository name given to the transfer (`mount_from`) is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Local I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A blocking task of the transfer stopped before it answered.
    #[error(transparent)]
    Aborted(#[from] tokio::task::JoinError),
    /// Anything else the transfer refuses (a file that changed while it
    /// was pushed, two files with one name).
    #[error("{0}")]
    Refused(String),
    /// What the transfer was doing when `source` happened.
    #[error("{context}")]
    Context {
        /// What it was doing ("pulling model.safetensors").
        context: String,
        /// What went wrong.
        #[source]
        source: Box<TransferError>,
    },
}

/// A transfer's result.
pub type Result<T, E = TransferError> = std::result::Result<T, E>;

impl TransferError {
    /// What kind of failure this is: the transfer's own refusals, an unsafe
    /// path or tar entry (a failed check), the verifier's and the client's
    /// own kinds; local I/O and other refusals are `Other`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TransferError::Client(c) => c.kind(),
            TransferError::Verify(v) => v.kind(),
            TransferError::Usage(_) => ErrorKind::Usage,
            TransferError::Verification(_) | TransferError::Path(_) => ErrorKind::Verification,
            TransferError::Untar(
                UntarError::Unsupported(..) | UntarError::Name(_) | UntarError::Path(_),
            ) => ErrorKind::Verification,
            TransferError::Context { source, .. } => source.kind(),
            TransferError::Untar(UntarError::Io(_))
            | TransferError::Pack(_)
            | TransferError::Name(_)
            | TransferError::Io(_)
            | TransferError::Aborted(_)
            | TransferError::Refused(_) => ErrorKind::Other,
        }
    }
}

/// Adds what the transfer was doing to an error, as anyhow's `Context`
/// does, keeping the error's type (and so its kind).
pub(crate) trait Context<T> {
    /// The error, with `context` in front.
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// The error, with the context `f` makes (only on failure).
    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<TransferError>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| TransferError::Context {
            context: context.into(),
            source: Box::new(e.into()),
        })
    }

    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| TransferError::Context {
            context: f().into(),
            source: Box::new(e.into()),
        })
    }
}

/// Returns a [`TransferError::Refused`] with a formatted message.
macro_rules! bail {
    ($($t:tt)*) => {
        return Err($crate::error::TransferError::Refused(format!($($t)*)))
    };
}
pub(crate) use bail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_reads_as_an_anyhow_chain_and_keeps_the_kind() {
        let e: Result<()> = Err(UsageError("--include \"[\": unclosed".into())).context("planning");
        let e = e.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "planning: --include \"[\": unclosed"
        );
        let io = std::io::Error::other("disk on fire");
        let e = Err::<(), _>(io).context("pulling a.bin").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Other);
        let e = Err::<(), _>(UntarError::Path(PathError::NotRelative("../x".into())))
            .context("extracting")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Verification);
    }
}
