//! Talks to any OCI registry (Pavilion, CNCF Distribution, cloud registries).
//!
//! - [`Client`]: HTTP with Docker's conventions: plain HTTP for loopback
//!   registries that do not speak TLS, private CAs and client
//!   certificates from `certs.d` ([`tls`]), credentials from docker's `config.json`, and the Basic /
//!   Bearer token challenge dance on 401.
//! - [`Client::push_blob_file`]: a file is read once and hashed while it is
//!   sent; an interrupted upload resumes from the registry's reported offset.
//! - [`Client::pull_blob_file`]: parallel byte ranges written in place into
//!   `FILE.partial`, verified, then renamed.
//!
//! Fetching a manifest and one of its blobs (plain HTTP is for loopback
//! registries; credentials come from docker's `config.json`):
//!
//! ```no_run
//! use pavilion_client::{Client, ClientOptions};
//! use pavilion_oci::{ImageRef, ManifestInfo};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(ClientOptions {
//!     plain_http: true,
//!     ..Default::default()
//! })?;
//! let r: ImageRef = "127.0.0.1:5000/team/llama:v1".parse()?;
//! let m = client.get_manifest(&r).await?;
//! let info = ManifestInfo::parse(&m.bytes, Some(&m.media_type))?;
//! if let Some(first) = info.blobs.first() {
//!     // Eight ranged requests at a time; nothing appears unless it verifies.
//!     client
//!         .pull_blob_file(&r, &first.digest, first.size, "blob.bin".as_ref(), 8)
//!         .await?;
//! }
//! # Ok(()) }
//! ```

pub mod auth;
mod blob;
pub mod blob_cache;
mod blocking;
mod client;
pub mod copy;
pub mod digest_cache;
mod error;
pub mod events;
pub mod layout;
mod listing;
mod manifest;
mod pull;
mod push;
pub mod queries;
mod sse;
pub mod tls;
pub mod trace;
pub mod transfers;
pub mod upload_journal;
pub mod watch_state;

pub use blob::ByteStream;
pub use client::{Client, ClientOptions, HostAllowList, ProgressFn};
pub use error::{ClientError, ErrorKind};
pub use listing::referrers_tag;
pub use manifest::Manifest;
