//! The embedded default blob store: content-addressed files on a local disk.
//!
//! Layout under the root:
//! - `blobs/<alg>/<first two hex>/<hex>`: committed blobs, immutable;
//! - `uploads/<id>`: the bytes of an upload session, appended in order;
//! - `tmp/`: small blobs being written before their atomic rename.
//!
//! An upload's body goes through the upload path both backends share
//! (`crate::append`): written by one blocking thread while another hashes
//! it, so network, disk and SHA-256 overlap. The running hash is kept in memory
//! between chunks; after a restart it is rebuilt from the file at commit.

use crate::append::{self, Batch, Sink, States, PIPE_DEPTH};
use crate::blob::{BlobStore, ByteRange, ByteStream};
use crate::blocking::{self, Blocking};
use crate::direct::UploadWriter;
use crate::error::StoreError;
use crate::observe::{Direction, Probe, StoreObserver};
use crate::reader::{Pool, RangeReader, ReadPolicy};
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
    /// Read buffers shared by every blob read.
    pool: Pool,
    /// Which blobs are read often enough to keep in the page cache.
    policy: ReadPolicy,
    /// Where request times and bytes are reported (the registry's metrics).
    probe: Probe,
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
        // Leftovers of small-blob writes cut off by a crash are never
        // referenced. Only old ones go: another process may be using this
        // directory right now (`pavilion gc` opens it beside a running
        // `serve`), and removing a write it has in flight failed that
        // write (a manifest PUT answered 500).
        if let Ok(entries) = fs::read_dir(root.join("tmp")) {
            for e in entries.flatten() {
                let stale = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > TMP_STALE);
                if stale {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(FsBlobStore {
            root,
            sessions: Mutex::new(HashMap::new()),
            pool: Pool::default(),
            policy: ReadPolicy::default(),
            probe: Probe::default(),
        })
    }

    /// The same store, reporting its file operations to `observer` (as
    /// backend `fs`).
    pub fn with_observer(mut self, observer: Arc<dyn StoreObserver>) -> Self {
        self.probe = Probe::new(observer, "fs");
        self
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

/// Age past which a file in `tmp/` is a leftover: a small-blob write
/// takes far less.
const TMP_STALE: std::time::Duration = std::time::Duration::from_secs(3600);

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
    // A commit's one read of the upload: direct, nothing to keep cached.
    let mut reader = RangeReader::open(path, 0, len, false, Pool::default())?;
    let mut h = alg.hasher();
    while let Some(chunk) = reader.next_chunk()? {
        h.update(&chunk);
    }
    Ok(h.finish())
}

/// The filesystem's side of an append (`append::append`): batches written at
/// the end of the upload file by a blocking thread, the session's hash
/// replaced when they are kept, the file cut back when they are not.
struct FileSink {
    /// The session, locked for the whole append.
    session: OwnedMutexGuard<Session>,
    path: PathBuf,
    /// Where this append began.
    offset: u64,
    tx: Option<mpsc::Sender<Batch>>,
    /// The writer thread; it returns how many bytes it wrote.
    writer: Option<Blocking<io::Result<u64>>>,
    written: u64,
}

impl Sink<Hasher> for FileSink {
    async fn accept(&mut self, batch: Batch, _: &mut States<Hasher>) -> Result<(), StoreError> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        if tx.send(batch).await.is_ok() {
            return Ok(());
        }
        // The writer stopped on an error, which is the append's.
        self.settle().await?;
        Err(StoreError::Io(io::Error::other(
            "the upload writer stopped",
        )))
    }

    async fn settle(&mut self) -> Result<(), StoreError> {
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            self.written = writer.await??;
        }
        Ok(())
    }

    async fn keep(mut self, hash: Option<Hasher>) -> Result<u64, StoreError> {
        // The writer and the hasher saw the same pieces, so the kept state
        // matches the file even when the client went away.
        self.session.hasher = hash;
        Ok(self.offset + self.written)
    }

    async fn roll_back(self) -> Result<(), StoreError> {
        // Truncating a large file can take a while: a blocking thread. The
        // session's hash was never touched, so it still matches.
        let (path, offset) = (self.path, self.offset);
        blocking::spawn(move || OpenOptions::new().write(true).open(path)?.set_len(offset))
            .await??;
        Ok(())
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let _t = self.probe.time("head");
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
        // Timed to the open: reading on is the client's pace.
        let _t = self.probe.time("get");
        let path = self.blob_path(digest);
        let missing = digest.clone();
        let meta_path = path.clone();
        let size = blocking::spawn(move || std::fs::metadata(&meta_path).map(|m| m.len()))
            .await?
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => StoreError::BlobNotFound(missing),
                _ => e.into(),
            })?;
        let r = range.unwrap_or(ByteRange {
            start: 0,
            end: size,
        });
        if r.start > r.end || r.end > size {
            return Err(StoreError::RangeNotSatisfiable { size });
        }
        let fill_cache = self.policy.hot(digest, size);
        let (pool, policy, served) = (self.pool.clone(), self.policy.clone(), digest.clone());
        let probe = self.probe.clone();
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(2);
        // Not awaited: the reader runs on as long as the stream is read,
        // and delivers its own errors down the channel.
        let _reader = blocking::spawn(move || {
            let mut reader = match RangeReader::open(&path, r.start, r.end, fill_cache, pool) {
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
                let len = item.as_ref().map_or(0, |c| c.len() as u64);
                if tx.blocking_send(item).is_err() || failed {
                    return; // client went away, or the error is delivered
                }
                policy.delivered(&served, len);
                // Counted here rather than by wrapping the stream: no
                // extra allocation per download.
                probe.bytes(Direction::Read, len);
            }
        });
        Ok(tokio_util_stream(rx))
    }

    async fn read_all(&self, digest: &Digest) -> Result<Bytes, StoreError> {
        let _t = self.probe.time("get");
        match tokio::fs::read(self.blob_path(digest)).await {
            Ok(v) => {
                self.probe.bytes(Direction::Read, v.len() as u64);
                Ok(Bytes::from(v))
            }
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
        let _t = self.probe.time("put");
        self.probe.bytes(Direction::Write, data.len() as u64);
        blocking::spawn(move || {
            let res = File::create(&tmp)
                .and_then(|mut f| f.write_all(&data))
                .and_then(|()| install(&tmp, &dst));
            if res.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            res
        })
        .await??;
        Ok(())
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, StoreError> {
        let _t = self.probe.time("delete");
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn upload_create(&self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        let _t = self.probe.time("create");
        let path = self.upload_path(id);
        blocking::spawn(move || {
            File::create(&path)?;
            sync_dir(path.parent().unwrap_or(Path::new(".")))
        })
        .await??;
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
        body: ByteStream,
    ) -> Result<u64, StoreError> {
        let (session, len) = self.lock_session(id).await?;
        if offset != len {
            return Err(StoreError::OffsetMismatch {
                expected: len,
                got: offset,
            });
        }
        let path = self.upload_path(id);
        let open = path.clone();
        let mut file = blocking::spawn(move || UploadWriter::open(&open, offset)).await??;
        let (tx, mut rx) = mpsc::channel::<Batch>(PIPE_DEPTH);
        let probe = self.probe.clone();
        let writer = blocking::spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                // One batch (about a MiB) is one write request: the disk's
                // time, not the client's.
                let _t = probe.time("write");
                let mut n = 0;
                for chunk in batch.iter() {
                    file.write(chunk)?;
                    n += chunk.len() as u64;
                }
                probe.bytes(Direction::Write, n);
            }
            Ok::<u64, io::Error>(file.finish()? - offset)
        });
        let hash = session.hasher.clone();
        let sink = FileSink {
            session,
            path,
            offset,
            tx: Some(tx),
            writer: Some(writer),
            written: 0,
        };
        // The file's bytes are never saved partway: no marks.
        append::append(body, declared, hash, std::iter::empty(), sink).await
    }

    async fn upload_commit(&self, id: &str, digest: &Digest) -> Result<u64, StoreError> {
        let (s, len) = self.lock_session(id).await?;
        let _t = self.probe.time("complete");
        let path = self.upload_path(id);
        let actual = match (&s.hasher, digest.algorithm()) {
            (Some(h), Algorithm::Sha256) => h.clone().finish(),
            _ => {
                let p = path.clone();
                let alg = digest.algorithm();
                blocking::spawn(move || hash_file(&p, alg)).await??
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
        blocking::spawn(move || install(&path, &dst)).await??;
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
        let _t = self.probe.time("abort");
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
