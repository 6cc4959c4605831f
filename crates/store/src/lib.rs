//! Where Pavilion's bytes and facts live.
//!
//! - [`BlobStore`]: content-addressed bytes and resumable upload sessions,
//!   behind a small async trait so that object storage can be added without
//!   touching the HTTP layer; [`FsBlobStore`] is the embedded default.
//! - [`MetaStore`]: repositories, tags, manifests, referrers, blob links and
//!   upload sessions in SQL (SQLite embedded, PostgreSQL at scale), and the
//!   bounded, pruned decision log ([`decisions`]), and the API keys and
//!   token signing keys every replica shares ([`api_keys`]), and the
//!   change feed's outbox, written in the transaction of each change
//!   ([`events`]), and what a repository browser lists ([`browse`]).
//! - [`StoreObserver`]: the hook through which both stores report request
//!   times, retries, bytes and query times (the registry's metrics).
//! - `conformance` (feature `testing`): the tests every `BlobStore`
//!   backend must pass, kept out of release builds.
//!
//! An upload as the registry makes one (a session, appends at the
//! session's length, a commit that checks the digest):
//!
//! ```
//! use bytes::Bytes;
//! use pavilion_oci::Digest;
//! use pavilion_store::{BlobStore, ByteStream, FsBlobStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = FsBlobStore::open(dir.path())?;
//! let data = Bytes::from_static(b"weights");
//! let digest = Digest::sha256(&data);
//! // Session ids are hex and dashes (the registry uses UUIDs).
//! let id = "0b5e55ed-0001";
//! store.upload_create(id).await?;
//! let body: ByteStream = Box::pin(futures::stream::iter([Ok(data.clone())]));
//! let len = store.upload_append(id, 0, Some(7), body).await?;
//! assert_eq!(len, 7);
//! assert_eq!(store.upload_commit(id, &digest).await?, 7);
//! assert_eq!(store.read_all(&digest).await?, data);
//! # Ok(()) }
//! ```

pub mod api_keys;
mod append;
pub mod blob;
mod blocking;
pub mod browse;
pub mod claims;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod decisions;
pub mod direct;
pub mod error;
pub mod events;
pub mod fs;
pub mod gc;
pub mod meta;
pub mod object;
pub mod object_url;
pub mod observe;
pub mod reader;
pub mod resumable_sha256;
pub mod usage;

pub use api_keys::{ApiKey, ApiKeyError, KeyState, NewApiKey};
pub use blob::{BlobStore, ByteRange, ByteStream};
pub use browse::{RepoSummary, TagSummary};
pub use decisions::{Decision, DecisionQuery, DecisionRetention, NewDecision};
pub use error::StoreError;
pub use events::{Event, EventQuery, EventRetention, NewEvent, Origin};
pub use fs::FsBlobStore;
pub use meta::{BriefReferrers, ManifestRecord, MetaStore, NewManifest, PoolFigures};
pub use object::ObjectBlobStore;
pub use observe::{Direction, StoreObserver};

/// Milliseconds since the Unix epoch, for timestamps in metadata.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
