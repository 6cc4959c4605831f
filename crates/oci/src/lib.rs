//! Pure OCI types for Pavilion: digests, repository names, tags, references,
//! media types, manifest inspection and the distribution-spec error codes.
//!
//! Nothing here does I/O; every newtype validates when constructed so that the
//! layers above can never hold an invalid name or digest.

pub mod digest;
pub mod error_body;
pub mod error_code;
pub mod image_ref;
pub mod json;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod percent;
pub mod transfers;

pub use digest::{Algorithm, Digest, DigestError, Hasher};

/// Largest Notary signature envelope Pavilion reads, on the server (the
/// push gate's stored signatures) and in every client verifier alike: a
/// signature must not pass at one door and fail at another.
pub const SIGNATURE_ENVELOPE_LIMIT: u64 = 1 << 20;
pub use error_code::ErrorCode;
pub use image_ref::{ImageRef, ImageRefError};
pub use manifest::{Descriptor, ManifestError, ManifestInfo};
pub use name::{NameError, Reference, ReferenceError, RepoName, Tag};
