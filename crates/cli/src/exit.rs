//! Exit codes, so scripts can tell failures apart:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure (local I/O, a refusal by the registry) |
//! | 2 | usage error (bad flags, malformed reference) |
//! | 3 | not found (reference, blob, repository, layout entry) |
//! | 4 | verification failed (digest mismatch, unsafe path in an artifact) |
//! | 5 | network failure (unreachable, dropped connection, protocol breach) |
//! | 6 | authentication failed |

use pavilion_client::{ClientError, ErrorKind};

/// A request that cannot be carried out as written, and an artifact that
/// fails a safety or integrity check: the transfer library's types, so a
/// refusal made there or here is classified alike.
pub use pavilion_transfer::{UsageError, VerificationError};

/// The name of an exit code, as `--output json` reports errors.
pub fn name(code: u8) -> &'static str {
    match code {
        0 => "success",
        2 => "usage",
        3 => "not_found",
        4 => "verification",
        5 => "network",
        6 => "auth",
        _ => "failure",
    }
}

/// The exit code for an error, from the first classifiable cause.
pub fn code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<UsageError>() || cause.is::<pavilion_oci::ImageRefError>() {
            return 2;
        }
        if cause.is::<VerificationError>() || cause.is::<pavilion_model::PathError>() {
            return 4;
        }
        if let Some(
            pavilion_model::UntarError::Unsupported(..) | pavilion_model::UntarError::Name(_),
        ) = cause.downcast_ref::<pavilion_model::UntarError>()
        {
            return 4;
        }
        if let Some(pavilion_verify::VerifyError::TrustPolicy(_)) =
            cause.downcast_ref::<pavilion_verify::VerifyError>()
        {
            return 4;
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return match c.kind() {
                ErrorKind::Usage => 2,
                ErrorKind::NotFound => 3,
                ErrorKind::Verification => 4,
                ErrorKind::Network => 5,
                ErrorKind::Auth => 6,
                ErrorKind::Other => 1,
            };
        }
    }
    1
}
