//! Pavilion's registry: the OCI Distribution Specification v1.1 over HTTP.
//!
//! One dispatcher ([`routes`]) maps `/v2/...` paths to handlers grouped by
//! resource ([`blobs`], [`uploads`], [`manifests`], [`listing`]); every error
//! becomes an OCI error body in exactly one place ([`error`]). Policies plug
//! in through [`Gate`] ([`policy_hook`]); the registry gathers their facts
//! ([`facts`]) and enforces their answers ([`gate`]).
//!
//! Serving on the embedded default (files and SQLite under a directory):
//!
//! ```
//! use pavilion_registry::{serve, Extensions, ServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = tempfile::tempdir()?;
//! let cfg = ServerConfig::new("127.0.0.1:0".parse()?, data.path().to_path_buf());
//! // Stops at once here; `pavilion serve` passes its signal handler.
//! let shutdown = async {};
//! serve(cfg, Extensions::default(), shutdown, |addr| {
//!     assert!(addr.ip().is_loopback());
//! })
//! .await?;
//! # Ok(()) }
//! ```

pub mod access;
pub mod authz_hook;
pub mod authz_record;
pub mod blobs;
pub mod body;
pub mod browse;
pub mod caller;
pub mod caps;
pub mod decisions;
pub mod error;
pub mod facts;
pub mod feed;
pub mod gate;
pub mod health;
pub mod lifecycle;
pub mod listing;
pub mod manifests;
pub mod metrics;
pub mod policy_hook;
pub mod policy_report;
pub mod query;
pub mod quota;
pub mod resolve;
pub mod routes;
pub mod server;
pub mod signature_hook;
pub mod state;
pub mod tls;
pub mod transfers;
pub mod ui_mount;
pub mod uploads;
pub mod usage;

pub use authz_hook::{Action, Artifact, Authorizer, AuthzDecision, AuthzInput};
pub use policy_hook::{Gate, GateDecision, GateError, GateFacts, StoredSignature};
pub use server::{serve, Extensions, ServeError, ServerConfig};
pub use signature_hook::{SignatureDetail, SignatureInspector, SignatureReport, StepDetail};
pub use state::AppState;
