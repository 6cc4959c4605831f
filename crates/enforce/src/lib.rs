//! Pavilion's decision points joined up. The policy crate knows Rego, the
//! notary crate knows signatures, the client knows registries, the registry
//! knows its store; this crate puts them together at each door:
//!
//! - [`verification`]: an artifact's Notary signatures, fetched from a
//!   registry or already stored, judged under the trust policy (cached);
//! - [`gate`]: the registry's push gate (`serve --policy`);
//! - [`admission`]: Kubernetes admission reviews and Gatekeeper's external
//!   data provider;
//! - [`policies`]: one loaded policy directory shared by concurrent requests.

pub mod admission;
pub mod gate;
pub mod policies;
pub mod verification;

pub use admission::caller::CallerAuth;
pub use admission::outbound::AllowedRegistries;
pub use admission::{Admission, AdmissionConfig};
pub use gate::PushPolicy;
pub use policies::PolicySet;
pub use verification::{ArtifactVerification, TrustConfig, VerifyError};
