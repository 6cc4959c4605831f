//! Notary Project signatures, interoperable with notation and Ratify.
//!
//! - [`envelope`]: the signed content common to both envelope formats
//!   (`jws` flattened JSON, `cose` COSE_Sign1), and their integrity check.
//! - [`trust_policy`] and [`truststore`]: notation's trust policy documents and
//!   trust store directories, in notation's formats and places.
//!
//! Everything here is synchronous and pure Rust (RustCrypto), no OpenSSL.

pub mod certgen;
pub mod cose;
pub mod crypto;
pub mod envelope;
pub mod jws;
pub mod pem;
pub mod signature_manifest;
pub mod signer;
/// Where the vendored interoperability vectors are (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod test_vectors;
pub mod timestamp;
pub mod trust;
pub mod trust_policy;
pub mod truststore;
pub mod verify;
pub mod x509;
