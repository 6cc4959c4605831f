//! Pavilion's decision points joined up. The policy crate knows Rego, the
//! notary crate knows signatures, the client knows registries, the registry
//! knows its store; this crate puts them together at each door:
//!
//! - signature verification comes from `pavilion-verify` (client side,
//!   shared with the CLI); [`cache`] remembers admission's results;
//! - [`gate`]: the registry's push gate (`serve --policy`);
//! - [`admission`]: Kubernetes admission reviews and Gatekeeper's external
//!   data provider;
//! - [`authz`]: who may do what in the registry (package `pavilion.authz`);
//! - [`policies`]: one loaded policy directory shared by concurrent requests;
//! - [`signatures`]: the registry's report of a manifest's stored
//!   signatures, judged as the gate judges them.

pub mod admission;
pub mod authz;
pub mod cache;
pub mod gate;
pub mod policies;
pub mod signatures;

pub use admission::caller::CallerAuth;
pub use admission::outbound::AllowedRegistries;
pub use admission::{Admission, AdmissionConfig};
pub use authz::RegoAuthorizer;
pub use gate::PushPolicy;
pub use pavilion_verify::{ArtifactVerification, TrustConfig, VerifyError};
pub use policies::PolicySet;
pub use signatures::SignatureReview;
