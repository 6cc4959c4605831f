//! Talks to any OCI registry (Pavilion, CNCF Distribution, cloud registries).
//!
//! - [`Client`]: HTTP with Docker's conventions: plain HTTP for loopback
//!   registries, credentials from docker's `config.json`, and the Basic /
//!   Bearer token challenge dance on 401.
//! - [`Client::push_blob_file`]: a file is read once and hashed while it is
//!   sent; an interrupted upload resumes from the registry's reported offset.
//! - [`Client::pull_blob_file`]: parallel byte ranges written in place into
//!   `FILE.partial`, verified, then renamed.

pub mod auth;
mod blob;
pub mod blob_cache;
mod blocking;
mod client;
pub mod copy;
pub mod digest_cache;
mod error;
pub mod layout;
mod listing;
mod manifest;
mod pull;
mod push;
pub mod upload_journal;

pub use blob::ByteStream;
pub use client::{Client, ClientOptions, HostAllowList, ProgressFn};
pub use error::{ClientError, ErrorKind};
pub use listing::referrers_tag;
pub use manifest::Manifest;
