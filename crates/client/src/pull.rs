//! Blob download: byte ranges fetched in parallel and written at their
//! offsets into `FILE.partial`, hashed in order from memory as they arrive,
//! verified, then renamed into place. Finished pieces are recorded beside
//! the partial file, so an interrupted pull fetches only what is missing.
//!
//! Bytes are gathered into aligned 4 MiB buffers. Each buffer is written
//! with direct I/O (no page-cache copy, which costs more CPU than hashing on
//! the machines measured) and handed to one hasher thread, which hashes the
//! buffers in file order and returns them to a pool. Pieces that arrive
//! ahead of the hashing point wait in memory, so a piece is only started
//! within a window of the hashing point: memory stays bounded at
//! `(parallel + 1)` pieces whatever the blob size. The file is never read
//! back, except the pieces a previous run left (resume).

use crate::client::{check, scope, Client};
use crate::error::ClientError;
use futures::{StreamExt, TryStreamExt};
use pavilion_dio::{open_direct, write_at, AlignedBuf};
use pavilion_oci::{Algorithm, Digest, ImageRef};
use reqwest::{header, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// Bytes per buffer: one positioned write, one hand-off to the hasher.
const CHUNK: usize = 4 << 20;
/// Size of one ranged request (a multiple of `CHUNK`).
const PIECE: u64 = 16 << 20;
/// Tries of one range before the pull gives up (and can be resumed).
const RANGE_ATTEMPTS: u32 = 5;
/// First wait before retrying a range; doubled each time.
const RETRY_BASE: std::time::Duration = std::time::Duration::from_millis(200);

/// What `FILE.partial.json` records about an unfinished pull.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct Progress {
    digest: String,
    size: u64,
    piece: u64,
    done: Vec<u64>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn io_join(e: tokio::task::JoinError) -> ClientError {
    ClientError::Io(std::io::Error::other(e))
}

/// Buffers returned by the hasher for the downloaders to fill again.
#[derive(Clone, Default)]
struct Pool(Arc<Mutex<Vec<AlignedBuf>>>);

impl Pool {
    fn take(&self) -> AlignedBuf {
        self.0
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| AlignedBuf::new(CHUNK))
    }

    fn give(&self, buf: AlignedBuf) {
        if let Ok(mut p) = self.0.lock() {
            p.push(buf);
        }
    }
}

/// Bytes for the hasher, keyed by their file offset.
enum Part {
    /// Downloaded bytes still in memory: the first `len` of the buffer.
    Memory(AlignedBuf, usize),
    /// Bytes a previous run wrote (a finished piece): read from the file.
    OnDisk(u64),
}

/// The partial file, opened for direct and for ordinary writes.
struct Target {
    buffered: File,
    direct: Option<File>,
    direct_ok: AtomicBool,
}

impl Target {
    fn write(&self, data: &[u8], offset: u64) -> std::io::Result<()> {
        let direct = self
            .direct
            .as_ref()
            .filter(|_| self.direct_ok.load(Ordering::Relaxed));
        let used = write_at(direct, &self.buffered, data, offset)?;
        if direct.is_some() && !used && pavilion_dio::aligned(offset, data.len()) {
            // The filesystem refused an aligned direct write: stop trying.
            self.direct_ok.store(false, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Hashes parts in file order as they arrive; reports the hashed length
/// through `hashed` (which the downloaders use as their window). `None`
/// when the senders went away before every byte arrived.
fn ordered_hash(
    path: &Path,
    alg: Algorithm,
    size: u64,
    parts: mpsc::Receiver<(u64, Part)>,
    hashed: tokio::sync::watch::Sender<u64>,
    pool: Pool,
) -> std::io::Result<Option<Digest>> {
    let mut h = alg.hasher();
    let mut waiting: BTreeMap<u64, Part> = BTreeMap::new();
    let mut pos = 0u64;
    let mut file: Option<File> = None;
    while pos < size {
        match waiting.remove(&pos) {
            Some(Part::Memory(buf, len)) => {
                h.update(buf.slice(len));
                pos += len as u64;
                pool.give(buf);
            }
            Some(Part::OnDisk(len)) => {
                let f = match &file {
                    Some(f) => f,
                    None => file.insert(File::open(path)?),
                };
                let mut buf = pool.take();
                let end = pos + len;
                while pos < end {
                    let want = (CHUNK as u64).min(end - pos) as usize;
                    f.read_exact_at(&mut buf.slice_mut()[..want], pos)?;
                    h.update(buf.slice(want));
                    pos += want as u64;
                }
                pool.give(buf);
            }
            None => match parts.recv() {
                Ok((offset, part)) => {
                    waiting.insert(offset, part);
                    continue;
                }
                Err(_) => return Ok(None),
            },
        }
        hashed.send_replace(pos);
    }
    Ok(Some(h.finish()))
}

/// Everything the piece downloaders share.
struct Shared<'a> {
    r: &'a ImageRef,
    url: String,
    size: u64,
    target: Arc<Target>,
    pool: Pool,
    parts: mpsc::Sender<(u64, Part)>,
    hashed: tokio::sync::watch::Receiver<u64>,
    window: u64,
    progress: Mutex<Progress>,
    record: PathBuf,
}

impl Client {
    /// Downloads blob `digest` of `size` bytes to `dest` with up to
    /// `parallel` ranged requests at a time. Nothing appears at `dest`
    /// unless the bytes match the digest.
    pub async fn pull_blob_file(
        &self,
        r: &ImageRef,
        digest: &Digest,
        size: u64,
        dest: &Path,
        parallel: usize,
    ) -> Result<(), ClientError> {
        let parallel = parallel.max(1);
        let partial = with_suffix(dest, ".partial");
        let record = with_suffix(dest, ".partial.json");
        let previous: Option<Progress> = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|p: &Progress| {
                p.digest == digest.to_string() && p.size == size && p.piece == PIECE
            });
        let resumable =
            previous.is_some() && std::fs::metadata(&partial).is_ok_and(|m| m.len() == size);
        let buffered = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(!resumable)
            .open(&partial)
            .map_err(|e| ClientError::io_at(&partial, e))?;
        buffered
            .set_len(size)
            .map_err(|e| ClientError::io_at(&partial, e))?;
        let target = Arc::new(Target {
            direct: open_direct(&partial, OpenOptions::new().write(true)),
            buffered,
            direct_ok: AtomicBool::new(true),
        });
        let done: Vec<u64> = if resumable {
            previous.map(|p| p.done).unwrap_or_default()
        } else {
            Vec::new()
        };
        let pool = Pool::default();
        let (parts_tx, parts_rx) = mpsc::channel::<(u64, Part)>();
        for &i in &done {
            let start = i * PIECE;
            let _ = parts_tx.send((start, Part::OnDisk((start + PIECE).min(size) - start)));
        }
        let (hashed_tx, hashed_rx) = tokio::sync::watch::channel(0u64);
        let (p, alg, hp) = (partial.clone(), digest.algorithm(), pool.clone());
        let hasher = tokio::task::spawn_blocking(move || {
            ordered_hash(&p, alg, size, parts_rx, hashed_tx, hp)
        });
        let shared = Shared {
            r,
            url: self.url(r, &format!("/v2/{}/blobs/{digest}", r.repository)),
            size,
            target: target.clone(),
            pool,
            parts: parts_tx,
            hashed: hashed_rx,
            window: (parallel as u64 + 1) * PIECE,
            progress: Mutex::new(Progress {
                digest: digest.to_string(),
                size,
                piece: PIECE,
                done: done.clone(),
            }),
            record: record.clone(),
        };
        let pieces: Vec<u64> = (0..size.div_ceil(PIECE))
            .filter(|i| !done.contains(i))
            .collect();
        // The first failure drops the other downloads (try_collect stops).
        let fetched: Result<Vec<()>, ClientError> = futures::stream::iter(pieces)
            .map(|i| self.fetch_piece(&shared, i))
            .buffer_unordered(parallel)
            .try_collect()
            .await;
        drop(shared);
        let hashed = hasher.await.map_err(io_join)?;
        fetched?;
        let actual = hashed?.ok_or_else(|| {
            ClientError::Protocol("download ended before every piece arrived".into())
        })?;
        if &actual != digest {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(&record);
            return Err(ClientError::DigestMismatch {
                path: dest.display().to_string(),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        target
            .buffered
            .sync_all()
            .map_err(|e| ClientError::io_at(&partial, e))?;
        std::fs::rename(&partial, dest).map_err(|e| ClientError::io_at(dest, e))?;
        let _ = std::fs::remove_file(&record);
        Ok(())
    }

    /// Downloads piece `i`, retrying with exponential backoff from where it
    /// stopped when the connection fails or drops mid-body, or the registry
    /// answers that it is unavailable for now.
    async fn fetch_piece(&self, s: &Shared<'_>, i: u64) -> Result<(), ClientError> {
        let start = i * PIECE;
        let end = (start + PIECE).min(s.size); // exclusive
                                               // Stay within the window ahead of the hashing point (bounded memory).
        let mut hashed = s.hashed.clone();
        hashed
            .wait_for(|&h| start < h + s.window)
            .await
            .map_err(|_| ClientError::Protocol("the hasher stopped".into()))?;
        let mut fill = Fill {
            buf: s.pool.take(),
            at: start,
            len: 0,
        };
        let (mut delay, mut attempt) = (RETRY_BASE, 0);
        loop {
            attempt += 1;
            match self.fetch_range(s, &mut fill, end).await {
                Err(e) if attempt < RANGE_ATTEMPTS && e.is_temporary() => {
                    tracing::warn!(error = %e, attempt, start, "range failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    s.pool.give(fill.buf);
                    return Err(e);
                }
                Ok(()) => break,
            }
        }
        self.flush(s, &mut fill).await?;
        s.pool.give(fill.buf);
        let snapshot = {
            let mut p = s
                .progress
                .lock()
                .map_err(|_| ClientError::Protocol("progress lock poisoned".into()))?;
            p.done.push(i);
            serde_json::to_vec(&*p).unwrap_or_default()
        };
        std::fs::write(&s.record, snapshot).map_err(|e| ClientError::io_at(&s.record, e))?;
        Ok(())
    }

    /// Writes the filled part of the buffer and hands it to the hasher.
    async fn flush(&self, s: &Shared<'_>, fill: &mut Fill) -> Result<(), ClientError> {
        if fill.len == 0 {
            return Ok(());
        }
        let full = std::mem::replace(&mut fill.buf, s.pool.take());
        let (len, at, target) = (fill.len, fill.at, s.target.clone());
        let full =
            tokio::task::spawn_blocking(move || target.write(full.slice(len), at).map(|()| full))
                .await
                .map_err(io_join)??;
        // A closed channel means the hasher failed; its error is reported.
        let _ = s.parts.send((at, Part::Memory(full, len)));
        fill.at += len as u64;
        fill.len = 0;
        Ok(())
    }

    /// GETs bytes from `fill`'s position to `end` (exclusive) into buffers,
    /// flushing each one as it fills. On error, `fill` says where to resume.
    async fn fetch_range(
        &self,
        s: &Shared<'_>,
        fill: &mut Fill,
        end: u64,
    ) -> Result<(), ClientError> {
        let from = fill.at + fill.len as u64;
        if from >= end {
            return Ok(());
        }
        let range = format!("bytes={from}-{}", end - 1);
        let resp = self
            .send(s.r, &scope(s.r, false), |c| {
                c.get(&s.url).header(header::RANGE, &range)
            })
            .await?;
        let resp = check(resp).await?;
        if resp.status() != StatusCode::PARTIAL_CONTENT
            && (from != 0 || resp.content_length() != Some(end))
        {
            return Err(ClientError::Protocol(format!(
                "registry ignored Range {range} (status {})",
                resp.status()
            )));
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let mut chunk = &chunk?[..];
            if fill.at + (fill.len + chunk.len()) as u64 > end {
                return Err(ClientError::Protocol(format!(
                    "registry sent more than {range}"
                )));
            }
            self.progress(chunk.len() as u64);
            while !chunk.is_empty() {
                let space = &mut fill.buf.slice_mut()[fill.len..CHUNK];
                let n = space.len().min(chunk.len());
                space[..n].copy_from_slice(&chunk[..n]);
                fill.len += n;
                chunk = &chunk[n..];
                if fill.len == CHUNK {
                    self.flush(s, fill).await?;
                }
            }
        }
        let got = fill.at + fill.len as u64;
        if got != end {
            return Err(ClientError::Protocol(format!(
                "range {range} ended after {} bytes",
                got - from
            )));
        }
        Ok(())
    }
}

/// A buffer being filled with the bytes that start at file offset `at`.
struct Fill {
    buf: AlignedBuf,
    at: u64,
    len: usize,
}
