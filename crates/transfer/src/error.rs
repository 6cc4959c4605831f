//! The two kinds of refusal a transfer reports beside the client's own
//! errors, so that a caller can tell them apart (the CLI maps them to exit
//! codes 2 and 4) by looking down the chain of causes.

/// A request that cannot be carried out as written (a bad glob, an
/// artifact that is not a model, a policy directory that does not load).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// An artifact that fails a safety, integrity, signature or policy check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VerificationError(pub String);
