//! The embedded default blob store: content-addressed files on a local disk.
//!
//! Layout under the root:
//! - `blobs/<alg>/<first two hex>/<hex>`: committed blobs, immutable;
//! - `uploads/<id>`: the bytes of an upload session, appended in order;
//! - `tmp/`: small blobs being written before their atomic rename.
//!
//! An upload's body is written by one blocking thread while another hashes it,
//! so network, disk and SHA-256 overlap. The running hash is kept in memory
//! between chunks; after a restart it is rebuilt from the file at commit.

use crate::blob::{BlobStore, ByteRange, ByteStream};
use crate::direct::{RangeReader, UploadWriter};
use crate::error::StoreError;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use pavilion_oci::{Algorithm, Digest, Hasher};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, OwnedMutexGuard};

/// Chunks in flight between the network task and each worker thread; bounds
/// memory per upload to a few MiB whatever the blob size.
const PIPE_DEPTH: usize = 8;
/// Body pieces are handed to the writer and hasher threads in batches of
/// about this many bytes: far fewer thread wake-ups than one per network read,
/// and no copying (a batch holds the pieces hyper received).
const BATCH_BYTES: usize = 1 << 20;

/// Pieces of a request body shared by the writer and the hasher.
type Batch = Arc<Vec<Bytes>>;

/// What is known about a live upload session between requests.
struct Session {
    /// SHA-256 state over exactly the bytes in the file, when trustworthy.
    /// `None` after a restart or a failed write: commit then re-reads the file.
    hasher: Option<Hasher>,
}

/// Filesystem [`BlobStore`].
pub struct FsBlobStore {
    root: PathBuf,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
}

fn blocking_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io(io::Error::other(e))
}

use crate::blob::{check_digest, check_id};

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for sub in ["blobs", "uploads", "tmp"] {
            fs::create_dir_all(root.join(sub))?;
        }
        // Leftovers of small-blob writes cut off by a crash are never referenced.
        if let Ok(entries) = fs::read_dir(root.join("tmp")) {
            for e in entries.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(FsBlobStore {
            root,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    fn upload_path(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    fn session(&self, id: &str, file_len: u64) -> Arc<tokio::sync::Mutex<Session>> {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string())
            .or_insert_with(|| {
                // An empty file hashes trivially; a non-empty one we did not see
                // being written (restart) must be re-read at commit.
                let hasher = (file_len == 0).then(|| Algorithm::Sha256.hasher());
                Arc::new(tokio::sync::Mutex::new(Session { hasher }))
            })
            .clone()
    }

    /// Locks session `id` (one request at a time touches a session; the next
    /// waits its turn) and returns the guard with the file's length as seen
    /// under the lock.
    async fn lock_session(&self, id: &str) -> Result<(OwnedMutexGuard<Session>, u64), StoreError> {
        let gone = || StoreError::UploadNotFound(id.to_string());
        let len = self.upload_len(id).await?.ok_or_else(gone)?;
        let guard = self.session(id, len).lock_owned().await;
        let len = self.upload_len(id).await?.ok_or_else(gone)?;
        Ok((guard, len))
    }

    fn forget(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// How long an upload status waits for an append in progress to finish.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Moves a verified file into place: fsync, rename, fsync the directory.
fn install(src: &Path, dst: &Path) -> io::Result<()> {
    File::open(src)?.sync_all()?;
    let dir = dst.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    // rename() replaces atomically: two uploads of one digest both succeed
    // and leave a single copy with identical bytes.
    fs::rename(src, dst)?;
    sync_dir(dir)
}

fn hash_file(path: &Path, alg: Algorithm) -> io::Result<Digest> {
    let len = fs::metadata(path)?.len();
    let mut reader = RangeReader::open(path, 0, len)?;
    let mut h = alg.hasher();
    while let Some(chunk) = reader.next_chunk()? {
        h.update(&chunk);
    }
    Ok(h.finish())
}

/// Result of pumping a body into an upload file.
struct Pumped {
    received: u64,
    too_long: bool,
    body_error: Option<String>,
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StoreError> {
        let path = self.blob_path(digest);
        let digest = digest.clone();
        let meta_path = path.clone();
        let size = tokio::task::spawn_blocking(move || {
            Ok::<_, io::Error>(std::fs::metadata(&meta_path)?.len())
        })
        .await
        .map_err(blocking_err)?
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobNotFound(digest),
            _ => e.into(),
        })?;
        let r = range.unwrap_or(ByteRange {
            start: 0,
            end: size,
        });
        if r.start > r.end || r.end > size {
            return Err(StoreError::RangeNotSatisfiable { size });
        }
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(2);
        tokio::task::spawn_blocking(move || {
            let mut reader = match RangeReader::open(&path, r.start, r.end) {
                Ok(reader) => reader,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            loop {
                let item = match reader.next_chunk() {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) => return,
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    return; // client went away, or the error is delivered
                }
            }
        });
        Ok(tokio_util_stream(rx))
    }

    async fn read_all(&self, digest: &Digest) -> Result<Bytes, StoreError> {
        match tokio::fs::read(self.blob_path(digest)).await {
            Ok(v) => Ok(Bytes::from(v)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn put(&self, digest: &Digest, data: Bytes) -> Result<(), StoreError> {
        check_digest(digest, &data)?;
        if self.stat(digest).await?.is_some() {
            return Ok(());
        }
        let tmp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let dst = self.blob_path(digest);
        tokio::task::spawn_blocking(move || {
            let res = File::create(&tmp)
                .and_then(|mut f| f.write_all(&data))
                .and_then(|()| install(&tmp, &dst));
            if res.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            res
        })
        .await
        .map_err(blocking_err)??;
        Ok(())
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, StoreError> {
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn upload_create(&self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        let path = self.upload_path(id);
        tokio::task::spawn_blocking(move || {
            File::create(&path)?;
            sync_dir(path.parent().unwrap_or(Path::new(".")))
        })
        .await
        .map_err(blocking_err)??;
        self.session(id, 0);
        Ok(())
    }

    async fn upload_len(&self, id: &str) -> Result<Option<u64>, StoreError> {
        check_id(id)?;
        match tokio::fs::metadata(self.upload_path(id)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn upload_settled_len(&self, id: &str) -> Result<Option<u64>, StoreError> {
        check_id(id)?;
        match tokio::time::timeout(SETTLE_WAIT, self.lock_session(id)).await {
            Ok(Ok((_guard, len))) => Ok(Some(len)),
            Ok(Err(StoreError::UploadNotFound(_))) => Ok(None),
            Ok(Err(e)) => Err(e),
            // A writer that stays busy (a live, slow client): report what is
            // on disk now; a PATCH at a stale offset gets 416 and asks again.
            Err(_) => self.upload_len(id).await,
        }
    }

    async fn upload_append(
        &self,
        id: &str,
        offset: u64,
        declared: Option<u64>,
        mut body: ByteStream,
    ) -> Result<u64, StoreError> {
        let (mut s, len) = self.lock_session(id).await?;
        if offset != len {
            return Err(StoreError::OffsetMismatch {
                expected: len,
                got: offset,
            });
        }
        let path = self.upload_path(id);
        let mut file = tokio::task::spawn_blocking(move || UploadWriter::open(&path, offset))
            .await
            .map_err(blocking_err)??;

        let (wtx, mut wrx) = mpsc::channel::<Batch>(PIPE_DEPTH);
        let writer = tokio::task::spawn_blocking(move || {
            while let Some(batch) = wrx.blocking_recv() {
                for chunk in batch.iter() {
                    file.write(chunk)?;
                }
            }
            Ok::<u64, io::Error>(file.finish()? - offset)
        });
        let before = s.hasher.clone();
        let (htx, hasher) = match before.clone() {
            Some(mut h) => {
                let (htx, mut hrx) = mpsc::channel::<Batch>(PIPE_DEPTH);
                let task = tokio::task::spawn_blocking(move || {
                    while let Some(batch) = hrx.blocking_recv() {
                        for chunk in batch.iter() {
                            h.update(chunk);
                        }
                    }
                    h
                });
                (Some(htx), Some(task))
            }
            None => (None, None),
        };

        let mut p = Pumped {
            received: 0,
            too_long: false,
            body_error: None,
        };
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut writer_gone = false;
        loop {
            let item = body.next().await;
            let mut last = true;
            match item {
                None => {}
                Some(Err(e)) => p.body_error = Some(e.to_string()),
                Some(Ok(mut chunk)) => {
                    if let Some(d) = declared {
                        if p.received + chunk.len() as u64 > d {
                            // Keep only the declared bytes so the rollback below is exact.
                            p.too_long = true;
                            chunk.truncate((d - p.received) as usize);
                        }
                    }
                    p.received += chunk.len() as u64;
                    pending_bytes += chunk.len();
                    if !chunk.is_empty() {
                        pending.push(chunk);
                    }
                    last = p.too_long;
                }
            }
            if (last || pending_bytes >= BATCH_BYTES) && !pending.is_empty() {
                let batch: Batch = Arc::new(std::mem::take(&mut pending));
                pending_bytes = 0;
                if let Some(htx) = &htx {
                    let _ = htx.send(batch.clone()).await;
                }
                if wtx.send(batch).await.is_err() {
                    writer_gone = true; // its error is reported below
                }
            }
            if last || writer_gone {
                break;
            }
        }
        drop(wtx);
        drop(htx);
        let written = writer.await.map_err(blocking_err)?;
        let hashed = match hasher {
            Some(t) => Some(t.await.map_err(blocking_err)?),
            None => None,
        };

        let short = declared.is_some_and(|d| p.received < d) && p.body_error.is_none();
        // The file cut back to where this append began, on a blocking
        // thread (truncating a large file can take a while), and the
        // session's hasher left as it was before the append.
        let path = self.upload_path(id);
        let truncate = move || {
            tokio::task::spawn_blocking(move || {
                OpenOptions::new().write(true).open(path)?.set_len(offset)
            })
        };
        match written {
            Err(e) => {
                truncate().await.map_err(blocking_err)??;
                s.hasher = before;
                Err(e.into())
            }
            Ok(_) if p.too_long || short => {
                truncate().await.map_err(blocking_err)??;
                s.hasher = before;
                Err(StoreError::LengthMismatch {
                    declared: declared.unwrap_or(0),
                    got: p.received + u64::from(p.too_long),
                })
            }
            Ok(w) => {
                // The writer and the hasher saw the same chunks, so the kept
                // state matches the file even when the client went away.
                s.hasher = hashed;
                match p.body_error {
                    Some(e) => Err(StoreError::Body(e)),
                    None => Ok(offset + w),
                }
            }
        }
    }

    async fn upload_commit(&self, id: &str, digest: &Digest) -> Result<u64, StoreError> {
        let (s, len) = self.lock_session(id).await?;
        let path = self.upload_path(id);
        let actual = match (&s.hasher, digest.algorithm()) {
            (Some(h), Algorithm::Sha256) => h.clone().finish(),
            _ => {
                let p = path.clone();
                let alg = digest.algorithm();
                tokio::task::spawn_blocking(move || hash_file(&p, alg))
                    .await
                    .map_err(blocking_err)??
            }
        };
        if &actual != digest {
            drop(s);
            self.upload_abort(id).await?;
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let dst = self.blob_path(digest);
        tokio::task::spawn_blocking(move || install(&path, &dst))
            .await
            .map_err(blocking_err)??;
        drop(s);
        self.forget(id);
        Ok(len)
    }

    async fn upload_abort(&self, id: &str) -> Result<bool, StoreError> {
        check_id(id)?;
        let session = {
            let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            map.get(id).cloned()
        };
        // Wait for a running append to finish before removing its file.
        let _guard = match &session {
            Some(s) => Some(s.lock().await),
            None => None,
        };
        let existed = match tokio::fs::remove_file(self.upload_path(id)).await {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        drop(_guard);
        self.forget(id);
        Ok(existed)
    }
}

fn tokio_util_stream(rx: mpsc::Receiver<io::Result<Bytes>>) -> ByteStream {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}
