//! Pavilion's registry: the OCI Distribution Specification v1.1 over HTTP.
//!
//! One dispatcher ([`routes`]) maps `/v2/...` paths to handlers grouped by
//! resource ([`blobs`], [`uploads`], [`manifests`], [`listing`]); every error
//! becomes an OCI error body in exactly one place ([`error`]).

pub mod blobs;
pub mod body;
pub mod caps;
pub mod decisions;
pub mod error;
pub mod facts;
pub mod gate;
pub mod listing;
pub mod manifests;
pub mod policy_hook;
pub mod policy_report;
pub mod query;
pub mod resolve;
pub mod routes;
pub mod server;
pub mod state;
pub mod tls;
pub mod uploads;

pub use policy_hook::{Gate, GateDecision, GateError, GateFacts, StoredSignature};
pub use server::{serve, Extensions, ServeError, ServerConfig};
pub use state::AppState;
