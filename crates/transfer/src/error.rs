//! The two kinds of refusal a transfer reports beside the client's own
//! errors, and [`error_kind`], which tells a caller (the CLI, for its exit
//! codes) what kind of failure a transfer's error is.

use pavilion_client::{ClientError, ErrorKind};
use pavilion_model::{PathError, UntarError};
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

/// What kind of failure an error of [`crate::Push::run`] or
/// [`crate::Pull::run`] is. Their errors carry context as they rise, so the
/// first cause of a kind this crate produces decides: its refusals, an
/// unsafe path or tar entry (a failed check), then the verifier's and the
/// client's own kinds; anything else (local I/O) is `Other`. The one place
/// that knows what a transfer puts in its chains reads them, so a caller
/// needs no list of this crate's dependencies' error types.
pub fn error_kind(e: &anyhow::Error) -> ErrorKind {
    for cause in e.chain() {
        if cause.is::<UsageError>() {
            return ErrorKind::Usage;
        }
        if cause.is::<VerificationError>() || cause.is::<PathError>() {
            return ErrorKind::Verification;
        }
        // An I/O failure or a bad path inside it says more further down.
        if let Some(UntarError::Unsupported(..) | UntarError::Name(_)) =
            cause.downcast_ref::<UntarError>()
        {
            return ErrorKind::Verification;
        }
        if let Some(v) = cause.downcast_ref::<VerifyError>() {
            return v.kind();
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return c.kind();
        }
    }
    ErrorKind::Other
}
