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
//! 5 MiB becomes a shorter part (parts may differ in size).
//!
//! Where the store does not support conditional writes (some S3
//! compatibles, e.g. Garage, ignore `If-None-Match`), the entry is created
//! after a check for an existing one and the state saved unconditionally:
//! a concurrent duplicate commit then leaves an unreferenced data object,
//! never a wrong blob.

use crate::blob::{check_digest, check_id, BlobStore, ByteRange, ByteStream};
use crate::error::StoreError;
use crate::resumable_sha256::ResumableSha256;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    GetOptions, GetRange, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use pavilion_oci::{Algorithm, Digest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// A session's persisted state.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct SessionState {
    /// Bytes received and kept (parts + tail).
    len: u64,
    /// SHA-256 of those bytes so far.
    sha256: ResumableSha256,
    /// The multipart upload of `data/<id>`, once the first part is sent.
    multipart: Option<String>,
    /// Content ids of the parts, in order, and their sizes.
    parts: Vec<(String, u64)>,
    /// The tail object, when bytes wait for the next part.
    tail: Option<String>,
    /// Bytes in the tail object.
    tail_len: u64,
    /// Counter for tail object names (a new name per write, so a failed
    /// write never damages the tail the saved state points at).
    seq: u64,
}

/// A blob's entry.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Entry {
    /// Key of the data object, relative to the prefix.
    data: String,
    /// Its size.
    size: u64,
}

/// A part on its way to the store.
struct SendingPart {
    task: tokio::task::JoinHandle<object_store::Result<PartId>>,
    /// The part's bytes, kept to reuse their buffer once sent.
    data: Bytes,
}

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
}

fn backend_err(e: object_store::Error) -> StoreError {
    StoreError::Backend(one_line(&e.to_string()))
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
        }
    }

    async fn lock_session(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(id.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn forget_session(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
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

    /// Size of part number `i` (0-based).
    fn part_len(&self, i: usize) -> usize {
        let grown = self.part_size.saturating_mul(1u64 << (i / 1000).min(20));
        grown.min(MAX_PART) as usize
    }

    async fn entry(&self, d: &Digest) -> Result<Option<Entry>, StoreError> {
        if let Some(e) = self.entries.read().ok().and_then(|m| m.get(d).cloned()) {
            return Ok(Some(e));
        }
        let got = match self.store.get(&self.path(&Self::entry_path(d))).await {
            Ok(g) => g.bytes().await.map_err(backend_err)?,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(backend_err(e)),
        };
        let entry: Entry = serde_json::from_slice(&got)
            .map_err(|e| StoreError::Corrupt(format!("blob entry {d}: {e}")))?;
        if let Ok(mut m) = self.entries.write() {
            m.insert(d.clone(), entry.clone());
        }
        Ok(Some(entry))
    }

    /// Creates the entry of `d` for `data`; `false` when one already exists.
    async fn create_entry(&self, d: &Digest, data: &str, size: u64) -> Result<bool, StoreError> {
        let body = serde_json::to_vec(&Entry {
            data: data.to_string(),
            size,
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.put_if_absent(&self.path(&Self::entry_path(d)), body)
            .await
    }

    /// Writes `path` only if nothing is there; `false` when something was.
    /// A conditional create (`If-None-Match: *`) where the store has one;
    /// otherwise a check, then the write (two writers can both get through:
    /// callers only write objects whose contents are interchangeable).
    async fn put_if_absent(&self, path: &Path, body: Vec<u8>) -> Result<bool, StoreError> {
        if !self.no_conditional.load(Ordering::Relaxed) {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self.store.put_opts(path, body.clone().into(), opts).await {
                Ok(_) => return Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
                Err(e) if unsupported(&e) => self.without_conditional_create(),
                Err(e) => return Err(backend_err(e)),
            }
        }
        match self.store.head(path).await {
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(backend_err(e)),
        }
        self.store
            .put(path, body.into())
            .await
            .map_err(backend_err)?;
        Ok(true)
    }

    fn without_conditional_create(&self) {
        if !self.no_conditional.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "object store has no conditional create (If-None-Match); committing after a check instead"
            );
        }
    }

    async fn load(&self, id: &str) -> Result<Option<(SessionState, UpdateVersion)>, StoreError> {
        check_id(id)?;
        let got = match self.store.get(&self.path(&Self::state_path(id))).await {
            Ok(g) => g,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(backend_err(e)),
        };
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let bytes = got.bytes().await.map_err(backend_err)?;
        let state = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("upload session {id}: {e}")))?;
        Ok(Some((state, version)))
    }

    /// Saves a session's state; with `since`, only if nobody saved it in
    /// between (a concurrent chunk for the same session loses).
    async fn save(
        &self,
        id: &str,
        state: &SessionState,
        since: Option<UpdateVersion>,
    ) -> Result<Option<UpdateVersion>, StoreError> {
        let body: PutPayload = serde_json::to_vec(state)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .into();
        let path = self.path(&Self::state_path(id));
        if let Some(v) = since.filter(|_| !self.no_conditional_update.load(Ordering::Relaxed)) {
            let opts = PutOptions {
                mode: PutMode::Update(v.clone()),
                ..Default::default()
            };
            match self.store.put_opts(&path, body.clone(), opts).await {
                Ok(r) => {
                    return Ok(Some(UpdateVersion {
                        e_tag: r.e_tag,
                        version: r.version,
                    }))
                }
                Err(object_store::Error::Precondition { .. }) => {
                    let now = self.load(id).await?;
                    let unchanged = now
                        .as_ref()
                        .is_some_and(|(_, cur)| cur.e_tag.is_some() && cur.e_tag == v.e_tag);
                    if !unchanged {
                        return Err(StoreError::OffsetMismatch {
                            expected: now.map_or(0, |(s, _)| s.len),
                            got: state.len,
                        });
                    }
                    // Refused although nobody wrote in between: the store's
                    // If-Match is broken. Writes go unconditional from now on.
                    tracing::warn!("object store refuses matching If-Match; saving upload state unconditionally");
                    self.no_conditional_update.store(true, Ordering::Relaxed);
                }
                Err(e) if unsupported(&e) => {
                    self.no_conditional_update.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(backend_err(e)),
            }
        }
        let r = self.store.put(&path, body).await.map_err(backend_err)?;
        Ok(Some(UpdateVersion {
            e_tag: r.e_tag,
            version: r.version,
        }))
    }

    async fn read_tail(&self, state: &SessionState) -> Result<BytesMut, StoreError> {
        let mut buf = BytesMut::new();
        if let Some(t) = &state.tail {
            let got = self
                .store
                .get(&self.path(t))
                .await
                .map_err(backend_err)?
                .bytes()
                .await
                .map_err(backend_err)?;
            if got.len() as u64 != state.tail_len {
                return Err(StoreError::Corrupt(format!(
                    "upload tail {t} has {} bytes, the session says {}",
                    got.len(),
                    state.tail_len
                )));
            }
            buf.extend_from_slice(&got);
        }
        Ok(buf)
    }

    /// Sends `data` as the next part of the session's multipart upload.
    async fn put_part(
        &self,
        id: &str,
        state: &mut SessionState,
        data: Bytes,
    ) -> Result<(), StoreError> {
        let sending = self.send_part(id, state, 0, data).await?;
        Self::record_part(state, sending).await.map(drop)
    }

    /// Starts sending `data` as part number `parts.len() + queued` in the
    /// background (creating the multipart upload first if needed).
    async fn send_part(
        &self,
        id: &str,
        state: &mut SessionState,
        queued: usize,
        data: Bytes,
    ) -> Result<SendingPart, StoreError> {
        let idx = state.parts.len() + queued;
        if idx >= MAX_PARTS {
            return Err(StoreError::Backend(format!(
                "upload {id} reached {MAX_PARTS} parts; raise the part size"
            )));
        }
        let path = self.path(&Self::data_path(id));
        let mp = match &state.multipart {
            Some(m) => m.clone(),
            None => {
                let m = self
                    .store
                    .create_multipart(&path)
                    .await
                    .map_err(backend_err)?;
                state.multipart = Some(m.clone());
                m
            }
        };
        let store = self.store.clone();
        let payload = data.clone();
        let task =
            tokio::spawn(async move { store.put_part(&path, &mp, idx, payload.into()).await });
        Ok(SendingPart { task, data })
    }

    /// Waits for a part being sent and adds it to the session's parts;
    /// returns its buffer, emptied, when nothing else holds it.
    async fn record_part(
        state: &mut SessionState,
        sending: SendingPart,
    ) -> Result<Option<BytesMut>, StoreError> {
        let part = sending
            .task
            .await
            .map_err(|e| StoreError::Backend(format!("part upload task: {e}")))?
            .map_err(backend_err)?;
        state
            .parts
            .push((part.content_id, sending.data.len() as u64));
        Ok(sending.data.try_into_mut().ok().map(|mut b| {
            b.clear();
            b
        }))
    }

    /// Removes a session's objects (state, tail, multipart upload).
    async fn discard(&self, id: &str, state: &SessionState) {
        if let Some(m) = &state.multipart {
            let _ = self
                .store
                .abort_multipart(&self.path(&Self::data_path(id)), m)
                .await;
        }
        if let Some(t) = &state.tail {
            let _ = self.store.delete(&self.path(t)).await;
        }
        let _ = self.store.delete(&self.path(&Self::state_path(id))).await;
    }

    /// Writes the session's bytes into `data/<id>` and returns its size.
    async fn assemble(&self, id: &str, state: &mut SessionState) -> Result<u64, StoreError> {
        let tail = self.read_tail(state).await?.freeze();
        let path = self.path(&Self::data_path(id));
        if state.parts.is_empty() {
            // Small blob: one PUT, no multipart (S3 refuses zero parts).
            if let Some(m) = state.multipart.take() {
                let _ = self.store.abort_multipart(&path, &m).await;
            }
            self.store
                .put(&path, tail.into())
                .await
                .map_err(backend_err)?;
        } else {
            if !tail.is_empty() {
                self.put_part(id, state, tail).await?;
            }
            let mp = state.multipart.clone().unwrap_or_default();
            let parts = state
                .parts
                .iter()
                .map(|(c, _)| PartId {
                    content_id: c.clone(),
                })
                .collect();
            self.store
                .complete_multipart(&path, &mp, parts)
                .await
                .map_err(backend_err)?;
        }
        Ok(state.len)
    }

    /// Commit, under the session's lock.
    async fn commit_locked(&self, id: &str, digest: &Digest) -> Result<u64, StoreError> {
        let (mut state, _) = self
            .load(id)
            .await?
            .ok_or_else(|| StoreError::UploadNotFound(id.to_string()))?;
        if digest.algorithm() == Algorithm::Sha256 {
            let actual = state.sha256.finish();
            if &actual != digest {
                self.discard(id, &state).await;
                return Err(StoreError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
        }
        let size = match self.assemble(id, &mut state).await {
            Ok(s) => s,
            // The store failed or is out of reach: the session stays as it
            // was saved, so the client can send its PUT again.
            Err(e @ StoreError::Backend(_)) => return Err(e),
            Err(e) => {
                self.discard(id, &state).await;
                return Err(e);
            }
        };
        let data = Self::data_path(id);
        if digest.algorithm() != Algorithm::Sha256 {
            let actual = self.hash_object(&data, digest.algorithm()).await?;
            if &actual != digest {
                let _ = self.store.delete(&self.path(&data)).await;
                state.multipart = None;
                self.discard(id, &state).await;
                return Err(StoreError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
        }
        if !self.create_entry(digest, &data, size).await? {
            // The same content was committed by another session first.
            let _ = self.store.delete(&self.path(&data)).await;
        }
        state.multipart = None;
        self.discard(id, &state).await;
        Ok(size)
    }

    /// Checks the store is reachable and records which metadata database
    /// goes with it (`pavilion.json` under the prefix). Blobs without
    /// their metadata are unreachable, so a store already paired with
    /// another database is refused: replicas sharing a bucket must share
    /// one PostgreSQL database, and two SQLite files never can.
    pub async fn claim(&self, database: &str) -> Result<(), StoreError> {
        self.probe_conditional_create().await?;
        let path = self.path("pavilion.json");
        let body = serde_json::json!({ "database": database })
            .to_string()
            .into_bytes();
        // Replicas starting together on a new bucket race to create the
        // claim; the losers read the winner's.
        if !self.put_if_absent(&path, body.clone()).await? {
            let got = self.store.get(&path).await.map_err(backend_err)?;
            let bytes = got.bytes().await.map_err(backend_err)?;
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("{path}: {e}")))?;
            let theirs = v["database"].as_str().unwrap_or("");
            if theirs != database {
                return Err(StoreError::Backend(format!(
                    "this storage is used with the metadata database {theirs}, not {database}; \
                     replicas sharing object storage must share one PostgreSQL database (--database-url postgres://...)"
                )));
            }
        }
        Ok(())
    }

    /// Asks the store whether it honours `If-None-Match: *`: a second
    /// conditional create of the same object must be refused. A store that
    /// lets it through (Garage does) gets the check-then-write fallback
    /// from here on, before the claim relies on it.
    async fn probe_conditional_create(&self) -> Result<(), StoreError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = self.path(&format!("probe-{}-{nanos:x}", std::process::id()));
        let opts = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        for attempt in 0..2 {
            match self.store.put_opts(&path, "probe".into(), opts()).await {
                Ok(_) if attempt == 1 => self.without_conditional_create(),
                Ok(_) => continue,
                Err(object_store::Error::AlreadyExists { .. }) if attempt == 1 => {}
                Err(e) if unsupported(&e) => self.without_conditional_create(),
                Err(e) => return Err(backend_err(e)),
            }
            break;
        }
        match self.store.delete(&path).await {
            Err(e) if !is_not_found(&e) => Err(backend_err(e)),
            _ => Ok(()),
        }
    }

    /// Hashes a stored data object (SHA-512 uploads, whose state is not
    /// kept incrementally: they are rare and only re-read once).
    async fn hash_object(&self, rel: &str, alg: Algorithm) -> Result<Digest, StoreError> {
        let mut h = alg.hasher();
        let mut s = self
            .store
            .get(&self.path(rel))
            .await
            .map_err(backend_err)?
            .into_stream();
        while let Some(c) = s.next().await {
            h.update(&c.map_err(backend_err)?);
        }
        Ok(h.finish())
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
            .map_err(backend_err)?;
        Ok(got
            .into_stream()
            .map(|r| r.map_err(|e| std::io::Error::other(one_line(&e.to_string()))))
            .boxed())
    }

    async fn read_all(&self, digest: &Digest) -> Result<Bytes, StoreError> {
        let e = self
            .entry(digest)
            .await?
            .ok_or_else(|| StoreError::BlobNotFound(digest.clone()))?;
        self.store
            .get(&self.path(&e.data))
            .await
            .map_err(backend_err)?
            .bytes()
            .await
            .map_err(backend_err)
    }

    async fn put(&self, digest: &Digest, data: Bytes) -> Result<(), StoreError> {
        check_digest(digest, &data)?;
        if self.entry(digest).await?.is_some() {
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
        let Some(e) = self.entry(digest).await? else {
            return Ok(false);
        };
        if let Ok(mut m) = self.entries.write() {
            m.remove(digest);
        }
        match self
            .store
            .delete(&self.path(&Self::entry_path(digest)))
            .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(backend_err(e)),
        }
        let _ = self.store.delete(&self.path(&e.data)).await;
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
        mut body: ByteStream,
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
        let mut version = Some(version);
        let mut state = before.clone();
        // `buf` starts with the saved tail, whose bytes the saved hash
        // already covers; bytes are hashed as they leave `buf` for a part
        // or a tail, so the hash saved always covers exactly `len` bytes.
        let mut buf = self.read_tail(&state).await?;
        let first = self.part_len(state.parts.len());
        let expected = declared.map_or(first, |d| buf.len().saturating_add(d as usize));
        buf.reserve(expected.min(first).saturating_sub(buf.len()));
        let mut prehashed = buf.len();
        let mut old_tail = before.tail.clone();
        let mut received: u64 = 0;
        let mut failed = None;
        // One part is sent while the next fills, so the store and the
        // client both keep moving (memory: two parts). A part is recorded,
        // and the state saved, before the next one is hashed: the saved
        // hash and parts always cover exactly what the store holds.
        let mut sending: Option<SendingPart> = None;
        let receiving = async {
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                };
                received += chunk.len() as u64;
                if let Some(d) = declared.filter(|d| received > *d) {
                    // Not recorded (unless parts were already saved, which
                    // the session's length then reports). Parts sent since
                    // are replaced by the next ones with the same numbers.
                    return Err(StoreError::LengthMismatch {
                        declared: d,
                        got: received,
                    });
                }
                // Each buffer fills to exactly one part, never past it, so
                // it is allocated once and reused for the part after next
                // (fresh 64 MiB buffers cost more in page faults and zeroing
                // than hashing them).
                let mut chunk = chunk;
                while !chunk.is_empty() {
                    let queued = usize::from(sending.is_some());
                    let len = self.part_len(state.parts.len() + queued);
                    let room = len.saturating_sub(buf.len());
                    buf.extend_from_slice(&chunk.split_to(room.min(chunk.len())));
                    if buf.len() < len {
                        break;
                    }
                    let part = std::mem::take(&mut buf).freeze();
                    if let Some(previous) = sending.take() {
                        buf = Self::record_part(&mut state, previous)
                            .await?
                            .unwrap_or_default();
                        // Saved after every part: a long body cut off (or a
                        // replica killed) loses at most the parts in flight.
                        state.tail = None;
                        state.tail_len = 0;
                        state.len = state.parts.iter().map(|(_, n)| n).sum();
                        version = self.save(id, &state, version.take()).await?;
                        if let Some(t) = old_tail.take() {
                            let _ = self.store.delete(&self.path(&t)).await;
                        }
                    }
                    buf.reserve(self.part_len(state.parts.len() + 1));
                    state.sha256.update(&part[prehashed.min(part.len())..]);
                    prehashed = prehashed.saturating_sub(part.len());
                    sending = Some(self.send_part(id, &mut state, 0, part).await?);
                }
            }
            Ok(())
        }
        .await;
        // Whatever happened, the part in flight is waited for: a part
        // still arriving at the store later could overwrite the same part
        // number sent by the session's next request.
        let sent = match sending.take() {
            Some(part) => Self::record_part(&mut state, part).await.map(drop),
            None => Ok(()),
        };
        receiving?;
        sent?;
        if failed.is_none() {
            if let Some(d) = declared.filter(|d| *d != received) {
                return Err(StoreError::LengthMismatch {
                    declared: d,
                    got: received,
                });
            }
        }
        // What arrived is kept, complete or not: as a part when big enough,
        // else in a new tail object.
        state.sha256.update(&buf[prehashed.min(buf.len())..]);
        if buf.len() >= MIN_PART {
            let part = buf.split().freeze();
            self.put_part(id, &mut state, part).await?;
        }
        state.seq += 1;
        state.tail_len = buf.len() as u64;
        state.tail = if buf.is_empty() {
            None
        } else {
            let rel = format!("uploads/{id}/tail-{}", state.seq);
            self.store
                .put(&self.path(&rel), buf.freeze().into())
                .await
                .map_err(backend_err)?;
            Some(rel)
        };
        state.len = state.parts.iter().map(|(_, n)| n).sum::<u64>() + state.tail_len;
        self.save(id, &state, version).await?;
        if let Some(old) = old_tail.filter(|t| Some(t) != state.tail.as_ref()) {
            let _ = self.store.delete(&self.path(&old)).await;
        }
        match failed {
            Some(e) => Err(StoreError::Body(e)),
            None => Ok(state.len),
        }
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
        let Some(e) = self.entry(digest).await? else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(part: u64) -> ObjectBlobStore {
        ObjectBlobStore::new(Arc::new(object_store::memory::InMemory::new()), "p", part)
    }

    #[tokio::test]
    async fn passes_the_conformance_suite_in_memory() {
        crate::conformance::run_all(&mem(5 << 20)).await;
    }

    fn stream_of(chunks: Vec<Vec<u8>>) -> ByteStream {
        futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))).boxed()
    }

    #[tokio::test]
    async fn parts_tails_and_a_second_replica_continue_one_upload() {
        let backend: Arc<dyn Backend> = Arc::new(object_store::memory::InMemory::new());
        let a = ObjectBlobStore::new(backend.clone(), "", 5 << 20);
        let b = ObjectBlobStore::new(backend.clone(), "", 5 << 20);
        let data: Vec<u8> = (0..(13 << 20) + 12345)
            .map(|i: u32| (i % 251) as u8)
            .collect();
        let d = Digest::sha256(&data);
        a.upload_create("0a1b").await.unwrap();
        // 1 MiB: a tail; then 6 MiB (one full part + a tail); then the rest
        // through the other replica, with a body that fails half-way.
        let n = a
            .upload_append(
                "0a1b",
                0,
                Some(1 << 20),
                stream_of(vec![data[..1 << 20].to_vec()]),
            )
            .await
            .unwrap();
        assert_eq!(n, 1 << 20);
        let (s, _) = a.load("0a1b").await.unwrap().unwrap();
        assert!(s.parts.is_empty() && s.tail_len == 1 << 20);
        let n = b
            .upload_append(
                "0a1b",
                n,
                None,
                stream_of(vec![data[1 << 20..7 << 20].to_vec()]),
            )
            .await
            .unwrap();
        assert_eq!(n, 7 << 20);
        let (s, _) = b.load("0a1b").await.unwrap().unwrap();
        assert_eq!(
            s.parts.len(),
            1,
            "6 MiB + 1 MiB of tail = one 5 MiB part + 2 MiB"
        );
        assert_eq!(s.tail_len, 2 << 20);
        let failing: ByteStream = futures::stream::iter(vec![
            Ok(Bytes::copy_from_slice(&data[7 << 20..9 << 20])),
            Err(std::io::Error::other("client gone")),
        ])
        .boxed();
        assert!(matches!(
            a.upload_append("0a1b", n, None, failing).await,
            Err(StoreError::Body(_))
        ));
        assert_eq!(b.upload_len("0a1b").await.unwrap(), Some(9 << 20));
        // A chunk at a stale offset is refused with the session's length.
        assert!(matches!(
            b.upload_append("0a1b", 1, None, stream_of(vec![vec![0]])).await,
            Err(StoreError::OffsetMismatch { expected, .. }) if expected == 9 << 20
        ));
        b.upload_append(
            "0a1b",
            9 << 20,
            None,
            stream_of(vec![data[9 << 20..].to_vec()]),
        )
        .await
        .unwrap();
        assert_eq!(
            a.upload_commit("0a1b", &d).await.unwrap(),
            data.len() as u64
        );
        assert_eq!(b.read_all(&d).await.unwrap(), data);
        // Nothing of the session is left behind.
        let left: Vec<_> = backend
            .list(Some(&Path::from("uploads")))
            .collect::<Vec<_>>()
            .await;
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn part_sizes_reach_five_tib_within_ten_thousand_parts() {
        let s = mem(64 << 20);
        let total: u64 = (0..MAX_PARTS).map(|i| s.part_len(i) as u64).sum();
        assert!(total >= 5 << 40, "{total}");
        assert!((0..MAX_PARTS).all(|i| s.part_len(i) as u64 <= MAX_PART));
        assert_eq!(s.part_len(0), 64 << 20);
    }

    /// An in-memory store that, like Garage, ignores `If-None-Match`: a
    /// conditional create overwrites.
    #[derive(Debug, Default)]
    struct IgnoresIfNoneMatch(object_store::memory::InMemory);

    impl std::fmt::Display for IgnoresIfNoneMatch {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "IgnoresIfNoneMatch")
        }
    }

    type OsResult<T> = object_store::Result<T>;

    #[async_trait]
    impl ObjectStore for IgnoresIfNoneMatch {
        async fn put_opts(
            &self,
            p: &Path,
            data: PutPayload,
            mut opts: PutOptions,
        ) -> OsResult<object_store::PutResult> {
            if matches!(opts.mode, PutMode::Create) {
                opts.mode = PutMode::Overwrite;
            }
            self.0.put_opts(p, data, opts).await
        }
        async fn put_multipart_opts(
            &self,
            p: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> OsResult<Box<dyn object_store::MultipartUpload>> {
            self.0.put_multipart_opts(p, opts).await
        }
        async fn get_opts(
            &self,
            p: &Path,
            opts: object_store::GetOptions,
        ) -> OsResult<object_store::GetResult> {
            self.0.get_opts(p, opts).await
        }
        async fn delete(&self, p: &Path) -> OsResult<()> {
            self.0.delete(p).await
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, OsResult<object_store::ObjectMeta>> {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> OsResult<object_store::ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy(&self, from: &Path, to: &Path) -> OsResult<()> {
            self.0.copy(from, to).await
        }
        async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> OsResult<()> {
            self.0.copy_if_not_exists(from, to).await
        }
    }

    #[async_trait]
    impl MultipartStore for IgnoresIfNoneMatch {
        async fn create_multipart(&self, p: &Path) -> OsResult<object_store::MultipartId> {
            self.0.create_multipart(p).await
        }
        async fn put_part(
            &self,
            p: &Path,
            id: &object_store::MultipartId,
            i: usize,
            data: PutPayload,
        ) -> OsResult<PartId> {
            self.0.put_part(p, id, i, data).await
        }
        async fn complete_multipart(
            &self,
            p: &Path,
            id: &object_store::MultipartId,
            parts: Vec<PartId>,
        ) -> OsResult<object_store::PutResult> {
            self.0.complete_multipart(p, id, parts).await
        }
        async fn abort_multipart(&self, p: &Path, id: &object_store::MultipartId) -> OsResult<()> {
            self.0.abort_multipart(p, id).await
        }
    }

    #[tokio::test]
    async fn a_store_that_ignores_if_none_match_is_found_out_at_claim() {
        let honest = mem(5 << 20);
        honest.claim("postgres://db").await.unwrap();
        assert!(!honest.no_conditional.load(Ordering::Relaxed));

        let backend: Arc<dyn Backend> = Arc::new(IgnoresIfNoneMatch::default());
        let s = ObjectBlobStore::new(backend.clone(), "p", 5 << 20);
        s.claim("postgres://db").await.unwrap();
        assert!(
            s.no_conditional.load(Ordering::Relaxed),
            "the second create got through: commits must check first"
        );
        // The claim is intact and still guards the bucket.
        let other = ObjectBlobStore::new(backend, "p", 5 << 20);
        let e = other.claim("sqlite://elsewhere").await.unwrap_err();
        assert!(e.to_string().contains("postgres://db"), "{e}");
        // A second commit of the same digest finds the first.
        crate::conformance::run_all(&s).await;
        assert!(s
            .create_entry(&Digest::sha256(b"x"), "data/a", 1)
            .await
            .unwrap());
        assert!(!s
            .create_entry(&Digest::sha256(b"x"), "data/b", 1)
            .await
            .unwrap());
    }
}
