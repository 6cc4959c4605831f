//! The blob store abstraction.

use crate::error::StoreError;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use pavilion_oci::Digest;

/// A stream of body bytes, from a client or from storage.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// An inclusive-exclusive byte range `[start, end)` of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Content-addressed storage of blobs plus resumable upload sessions.
///
/// Contract (checked by the `conformance` module, feature `testing`):
/// - a blob becomes visible only whole and only after its digest was verified;
/// - committing the same digest twice (even concurrently) succeeds and keeps
///   one copy;
/// - an upload session keeps every byte it acknowledged across disconnects and
///   restarts, so a client can resume from [`BlobStore::upload_len`];
/// - memory use does not grow with blob size.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size of a stored blob, or `None`.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError>;

    /// Streams a blob, or a range of it (the range must lie within the blob).
    async fn read(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StoreError>;

    /// Reads a small blob (a manifest) whole.
    async fn read_all(&self, digest: &Digest) -> Result<Bytes, StoreError>;

    /// Stores a small blob given whole, after checking its digest.
    async fn put(&self, digest: &Digest, data: Bytes) -> Result<(), StoreError>;

    /// Removes a blob's bytes; `false` if it was not there.
    async fn delete(&self, digest: &Digest) -> Result<bool, StoreError>;

    /// Opens a new, empty upload session under `id`.
    async fn upload_create(&self, id: &str) -> Result<(), StoreError>;

    /// Bytes received so far by a session, or `None` if it does not exist.
    async fn upload_len(&self, id: &str) -> Result<Option<u64>, StoreError>;

    /// Bytes a session holds once an append still in progress on it has
    /// finished (waiting a bounded time), which is what an upload status
    /// must report: a client that lost its connection asks where to resume
    /// while the server may still be writing out what that connection sent.
    async fn upload_settled_len(&self, id: &str) -> Result<Option<u64>, StoreError> {
        self.upload_len(id).await
    }

    /// Appends `body` at `offset`, which must equal the session's length.
    ///
    /// With `declared = Some(n)`, the body must be exactly `n` bytes; a longer
    /// or shorter *complete* body is rolled back. A body that fails mid-way
    /// (client gone) keeps the bytes that arrived, so the upload can resume.
    /// Returns the new length.
    async fn upload_append(
        &self,
        id: &str,
        offset: u64,
        declared: Option<u64>,
        body: ByteStream,
    ) -> Result<u64, StoreError>;

    /// Verifies the session's bytes against `digest` and makes them the blob
    /// `digest`. On mismatch the session is discarded. Returns the blob size.
    async fn upload_commit(&self, id: &str, digest: &Digest) -> Result<u64, StoreError>;

    /// Discards a session; `false` if it did not exist.
    async fn upload_abort(&self, id: &str) -> Result<bool, StoreError>;

    /// A URL the blob's bytes can be fetched from directly, valid for
    /// `ttl`, when the store can sign one (object storage); `None` otherwise.
    async fn presigned_get(
        &self,
        _digest: &Digest,
        _ttl: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
}

/// Upload ids become file and object names: only the characters of a UUID
/// are accepted, so no id can name anything outside the upload area.
pub(crate) fn check_id(id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(StoreError::UploadNotFound(id.to_string()));
    }
    Ok(())
}

/// Refuses bytes that do not hash to `digest` (a blob given whole).
pub(crate) fn check_digest(digest: &Digest, data: &[u8]) -> Result<(), StoreError> {
    let actual = Digest::compute(digest.algorithm(), data);
    if &actual != digest {
        return Err(StoreError::DigestMismatch {
            expected: digest.clone(),
            actual,
        });
    }
    Ok(())
}
