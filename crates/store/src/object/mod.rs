//! Blobs in object storage (S3 and compatibles, Azure Blob Storage, Google
//! Cloud Storage) through the `object_store` crate, so that any number of
//! stateless replicas can share one bucket.
//!
//! Layout under the configured prefix:
//!
//! - `data/<upload id>`: a blob's bytes, written once (a multipart upload
//!   or a single PUT) under the name of the session that produced them,
//!   because the digest is known only at the end and S3 cannot rename;
//! - `blobs/<alg>/<hex>`: the blob's entry, a small JSON link to its data
//!   object. Creating it is the commit, with a conditional create
//!   (`If-None-Match: *`), so a blob appears under its digest only whole and
//!   verified, and two commits of the same digest leave one entry;
//! - `uploads/<id>/state`: a session's state — bytes received, the
//!   SHA-256 midstate, the multipart upload and its parts, and the name of
//!   the tail object — so any replica can take the next chunk and a session
//!   survives the restart of every replica;
//! - `uploads/<id>/tail-<n>`: bytes received but too few for a part
//!   (under the 5 MiB minimum of S3 parts); at most that much is read back
//!   when the next chunk arrives.
//!
//! Memory per upload is bounded by two parts: one on its way to the store
//! while the next fills (sending and receiving overlap; with one part,
//! the client stalled for every part's upload). Parts are `part_size` bytes
//! (doubling every 1000 parts, at most 5 GiB) so that the 10,000 parts S3
//! allows reach its 5 TiB object limit; a chunk's remainder of at least
//! 5 MiB becomes a shorter part (parts may differ in size). The SHA-256
//! is computed on a blocking thread as the body arrives (the upload path
//! both backends share, `crate::append`), and copied at each part's end to
//! be saved with it.
//!
//! Here: the store and its `BlobStore` methods; `upload` (an append's
//! bytes into parts), `multipart` (sending parts, and the commit),
//! `session` (a session's saved state) and `entries` (blob entries and the
//! claim on the bucket).
//!
//! Where the store does not support conditional writes (some S3
//! compatibles, e.g. Garage, ignore `If-None-Match`), the entry is created
//! after a check for an existing one and the state saved unconditionally:
//! a concurrent duplicate commit then leaves an unreferenced data object,
//! never a wrong blob.

mod entries;
mod multipart;
mod observed;
mod session;
#[cfg(test)]
mod tests;
mod upload;

use crate::append;
use crate::blob::{check_digest, check_id, BlobStore, ByteRange, ByteStream};
use crate::error::StoreError;
use crate::observe::{Probe, StoreObserver};
use async_trait::async_trait;
use bytes::Bytes;
use entries::Entry;
use futures::StreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore};
use pavilion_oci::Digest;
use session::SessionState;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

/// What an object store backend must offer: objects and multipart uploads
/// whose parts can be added by any process that knows the upload's id.
pub trait Backend: ObjectStore + MultipartStore {}
impl<T: ObjectStore + MultipartStore> Backend for T {}

/// S3's smallest part (all parts but the last).
const MIN_PART: usize = 5 << 20;
/// S3's largest part.
const MAX_PART: u64 = 5 << 30;
/// S3's most parts per upload.
const MAX_PARTS: usize = 10_000;

/// Blobs and upload sessions in an object store.
pub struct ObjectBlobStore {
    store: Arc<dyn Backend>,
    prefix: String,
    part_size: u64,
    /// Entries are immutable once created: safe to remember.
    entries: RwLock<HashMap<Digest, Entry>>,
    /// Set when the store refused a conditional create as unsupported.
    no_conditional: AtomicBool,
    /// Set when conditional updates (`If-Match`) are unsupported or broken
    /// (radosgw 16 answers 412 even when the ETag matches).
    no_conditional_update: AtomicBool,
    /// Signs URLs for direct downloads (`serve --redirect-blobs`).
    signer: Option<Arc<dyn Signer>>,
    /// One lock per session in this process: chunks for one session on one
    /// replica run one after the other (the second then finds the offset
    /// moved: 416), whatever the store's conditional writes are worth.
    sessions: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Where our own retries are reported (requests are timed by the
    /// `observed` wrapper around `store`).
    probe: Probe,
}

/// Size of part number `i` (0-based) for parts of `part_size` bytes:
/// doubled every 1000 parts, so that 10,000 parts reach 5 TiB.
fn part_len(part_size: u64, i: usize) -> usize {
    let grown = part_size.saturating_mul(1u64 << (i / 1000).min(20));
    grown.min(MAX_PART) as usize
}

fn backend_err(e: object_store::Error) -> StoreError {
    StoreError::Backend(one_line(&e.to_string()))
}

/// A blob's data object that is not there reads as the blob missing.
fn data_err(e: object_store::Error, digest: &Digest) -> StoreError {
    if is_not_found(&e) {
        StoreError::BlobNotFound(digest.clone())
    } else {
        backend_err(e)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

fn unsupported(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::NotImplemented | object_store::Error::NotSupported { .. }
    )
}

impl ObjectBlobStore {
    /// A store over `store`, keys under `prefix` (may be empty), parts of
    /// `part_size` bytes (at least 5 MiB).
    pub fn new(store: Arc<dyn Backend>, prefix: &str, part_size: u64) -> Self {
        ObjectBlobStore {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            part_size: part_size.clamp(MIN_PART as u64, MAX_PART),
            entries: RwLock::new(HashMap::new()),
            no_conditional: AtomicBool::new(false),
            no_conditional_update: AtomicBool::new(false),
            signer: None,
            sessions: std::sync::Mutex::new(HashMap::new()),
            probe: Probe::default(),
        }
    }

    /// The same store, reporting every request to the backend, its bytes
    /// and Pavilion's retries to `observer`, as `backend` (`s3`, `azure`,
    /// `gcs`).
    pub fn with_observer(
        mut self,
        observer: Arc<dyn StoreObserver>,
        backend: &'static str,
    ) -> Self {
        self.probe = Probe::new(observer, backend);
        self.store = Arc::new(observed::Observed::new(self.store, self.probe.clone()));
        self
    }

    /// The same store, able to hand out presigned download URLs.
    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    fn path(&self, rel: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn entry_path(d: &Digest) -> String {
        format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
    }

    fn state_path(id: &str) -> String {
        format!("uploads/{id}/state")
    }

    fn data_path(id: &str) -> String {
        format!("data/{id}")
    }

    async fn read_once(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StoreError> {
        let e = self
            .entry(digest)
            .await?
            .ok_or_else(|| StoreError::BlobNotFound(digest.clone()))?;
        if let Some(r) = range {
            if r.start > r.end || r.end > e.size {
                return Err(StoreError::RangeNotSatisfiable { size: e.size });
            }
            if r.start == r.end {
                return Ok(futures::stream::empty().boxed());
            }
        }
        if e.size == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        let opts = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end)),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&self.path(&e.data), opts)
            .await
            .map_err(|err| data_err(err, digest))?;
        Ok(got
            .into_stream()
            .map(|r| r.map_err(|e| std::io::Error::other(one_line(&e.to_string()))))
            .boxed())
    }

    async fn read_all_once(&self, digest: &Digest) -> Result<Bytes, StoreError> {
        let e = self
            .entry(digest)
            .await?
            .ok_or_else(|| StoreError::BlobNotFound(digest.clone()))?;
        self.store
            .get(&self.path(&e.data))
            .await
            .map_err(|err| data_err(err, digest))?
            .bytes()
            .await
            .map_err(backend_err)
    }

    /// Size of part number `i` (0-based).
    fn part_len(&self, i: usize) -> usize {
        part_len(self.part_size, i)
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        Ok(self.entry(digest).await?.map(|e| e.size))
    }

    async fn read(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StoreError> {
        match self.read_once(digest, range).await {
            // The remembered entry may name data garbage collection has
            // since deleted (and a new push replaced): ask once more.
            Err(StoreError::BlobNotFound(_)) => {
                self.forget_entry(digest);
                self.probe.retry("get");
                self.read_once(digest, range).await
            }
            other => other,
        }
    }

    async fn read_all(&self, digest: &Digest) -> Result<Bytes, StoreError> {
        match self.read_all_once(digest).await {
            Err(StoreError::BlobNotFound(_)) => {
                self.forget_entry(digest);
                self.probe.retry("get");
                self.read_all_once(digest).await
            }
            other => other,
        }
    }

    async fn put(&self, digest: &Digest, data: Bytes) -> Result<(), StoreError> {
        check_digest(digest, &data)?;
        if self.fresh_entry(digest).await?.is_some() {
            return Ok(());
        }
        let rel = Self::data_path(&uuid::Uuid::new_v4().to_string());
        let size = data.len() as u64;
        self.store
            .put(&self.path(&rel), data.into())
            .await
            .map_err(backend_err)?;
        if !self.create_entry(digest, &rel, size).await? {
            let _ = self.store.delete(&self.path(&rel)).await;
        }
        Ok(())
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, StoreError> {
        let Some(e) = self.fresh_entry(digest).await? else {
            return Ok(false);
        };
        // The data first, then the entry: a failure in between leaves an
        // entry the next attempt (garbage collection retries doomed
        // blobs) finds and finishes, never data no entry names.
        for key in [e.data.clone(), Self::entry_path(digest)] {
            match self.store.delete(&self.path(&key)).await {
                Ok(()) => {}
                Err(err) if is_not_found(&err) => {}
                Err(err) => return Err(backend_err(err)),
            }
        }
        self.forget_entry(digest);
        Ok(true)
    }

    async fn upload_create(&self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        self.save(id, &SessionState::default(), None).await?;
        Ok(())
    }

    async fn upload_len(&self, id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.load(id).await?.map(|(s, _)| s.len))
    }

    async fn upload_append(
        &self,
        id: &str,
        offset: u64,
        declared: Option<u64>,
        body: ByteStream,
    ) -> Result<u64, StoreError> {
        check_id(id)?;
        let _guard = self.lock_session(id).await;
        let (before, version) = self
            .load(id)
            .await?
            .ok_or_else(|| StoreError::UploadNotFound(id.to_string()))?;
        if offset != before.len {
            return Err(StoreError::OffsetMismatch {
                expected: before.len,
                got: offset,
            });
        }
        let sink = upload::PartSink::open(self, id, before, version, declared).await?;
        let hash = Some(sink.hash_before());
        let marks = sink.part_ends();
        append::append(body, declared, hash, marks, sink).await
    }

    async fn upload_commit(&self, id: &str, digest: &Digest) -> Result<u64, StoreError> {
        check_id(id)?;
        let _guard = self.lock_session(id).await;
        let result = self.commit_locked(id, digest).await;
        self.forget_session(id);
        result
    }

    async fn presigned_get(
        &self,
        digest: &Digest,
        ttl: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        // Fresh: a URL to data garbage collection deleted would fail at
        // the client, past any retry here.
        let Some(e) = self.fresh_entry(digest).await? else {
            return Ok(None);
        };
        let url = signer
            .signed_url(http::Method::GET, &self.path(&e.data), ttl)
            .await
            .map_err(backend_err)?;
        Ok(Some(url.to_string()))
    }

    async fn upload_abort(&self, id: &str) -> Result<bool, StoreError> {
        check_id(id)?;
        let _guard = self.lock_session(id).await;
        self.forget_session(id);
        match self.load(id).await? {
            Some((state, _)) => {
                self.discard(id, &state).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
