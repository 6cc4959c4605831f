//! Blob download: byte ranges fetched in parallel and written at their
//! offsets into `FILE.partial`, hashed in order from memory as they arrive,
//! verified, then renamed into place. Finished pieces are recorded beside
//! the partial file, so an interrupted pull fetches only what is missing.
//!
//! Every name is created, opened and renamed relative to a directory handle
//! without following a symlink ([`pavilion_dio::Dir`]): a symlink planted
//! at `FILE.partial`, `FILE.partial.json` or `FILE` is refused. A failed
//! pull removes its partial file and record, except after a network
//! failure once some pieces are recorded (a rerun resumes from them).
//!
//! Bytes are gathered into aligned 4 MiB buffers. Each buffer is written
//! with direct I/O (no page-cache copy, which costs more CPU than hashing on
//! the machines measured) and handed to one hasher thread, which hashes the
//! buffers in file order and returns them to a pool. Pieces that arrive
//! ahead of the hashing point wait in memory, so a piece is only started
//! within a window of the hashing point: memory stays bounded at
//! `(parallel + 1)` pieces whatever the blob size. The file is never read
//! back, except the pieces a previous run left (resume).

use crate::blocking;
use crate::client::{check, scope, Client};
use crate::error::ClientError;
use futures::{StreamExt, TryStreamExt};
use pavilion_dio::dir::{same_file, with_suffix};
use pavilion_dio::{write_at, AlignedBuf, Dir};
use pavilion_oci::{Algorithm, Digest, ImageRef};
use reqwest::{header, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
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

/// A progress record larger than this is not ours: it is ignored.
const RECORD_LIMIT: u64 = 1 << 20;

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
    file: File,
    alg: Algorithm,
    size: u64,
    parts: mpsc::Receiver<(u64, Part)>,
    hashed: tokio::sync::watch::Sender<u64>,
    pool: Pool,
) -> std::io::Result<Option<Digest>> {
    let mut h = alg.hasher();
    let mut waiting: BTreeMap<u64, Part> = BTreeMap::new();
    let mut pos = 0u64;
    while pos < size {
        match waiting.remove(&pos) {
            Some(Part::Memory(buf, len)) => {
                h.update(buf.slice(len));
                pos += len as u64;
                pool.give(buf);
            }
            Some(Part::OnDisk(len)) => {
                let f = &file;
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
    /// The record and its open file, written together under the lock (on
    /// a blocking thread).
    progress: Arc<Mutex<(Progress, File)>>,
}

/// Replaces the record's contents with `p`.
fn write_record(f: &File, p: &Progress) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(p).map_err(std::io::Error::other)?;
    f.write_all_at(&bytes, 0)?;
    f.set_len(bytes.len() as u64)
}

/// What a pull created beside its destination, removed if it fails.
/// Where a download goes: the file `name` of `dir`, through `partial`
/// and its progress `record`, all opened relative to `dir`.
#[derive(Clone, Copy)]
struct Names<'a> {
    dir: &'a Dir,
    name: &'a OsStr,
    partial: &'a OsString,
    record: &'a OsString,
}

struct Leftovers<'a> {
    dir: &'a Dir,
    partial: Option<&'a OsStr>,
    record: Option<&'a OsStr>,
    /// Some pieces are recorded: worth keeping after a temporary failure.
    resumable: bool,
}

impl Leftovers<'_> {
    fn clean(&self, e: &ClientError) {
        if self.resumable && e.is_temporary() {
            return;
        }
        for name in [self.partial, self.record].into_iter().flatten() {
            let _ = self.dir.remove_file(name);
        }
    }
}

/// The progress a previous run recorded for this blob, if it matches.
/// A symlink at the record's name is refused.
fn previous_progress(
    dir: &Dir,
    record: &OsStr,
    digest: &Digest,
    size: u64,
) -> Result<Option<Progress>, ClientError> {
    let f = match dir.open_file(record, false) {
        Ok(f) => f,
        Err(e) if pavilion_dio::refused(&e).is_some() => return Err(ClientError::Io(e)),
        Err(_) => return Ok(None),
    };
    let mut bytes = Vec::new();
    if f.take(RECORD_LIMIT).read_to_end(&mut bytes).is_err() {
        return Ok(None);
    }
    // Pieces must exist and be listed once: the record is only a file on
    // disk, and a stray index would point past the end of the blob.
    let pieces = size.div_ceil(PIECE);
    Ok(serde_json::from_slice::<Progress>(&bytes).ok().filter(|p| {
        let distinct: std::collections::BTreeSet<&u64> = p.done.iter().collect();
        p.digest == digest.to_string()
            && p.size == size
            && p.piece == PIECE
            && distinct.len() == p.done.len()
            && p.done.iter().all(|&i| i < pieces)
    }))
}

/// Refuses a declared size no file here could hold, before creating one:
/// a manifest may claim any size.
fn check_room(dir: &Dir, name: &OsStr, size: u64) -> Result<(), ClientError> {
    let dest = dir.join(name);
    let full = |why: String| {
        ClientError::Io(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("{}: {why} (No space left on device)", dest.display()),
        ))
    };
    if i64::try_from(size).is_err() {
        return Err(full(format!(
            "the manifest declares {size} bytes, more than any file can hold"
        )));
    }
    match dir.available() {
        Some(free) if size > free => Err(full(format!(
            "the manifest declares {size} bytes, but only {free} bytes are free on its filesystem"
        ))),
        _ => Ok(()),
    }
}

impl Client {
    /// Downloads blob `digest` of `size` bytes to `dest` with up to
    /// `parallel` ranged requests at a time. Nothing appears at `dest`
    /// unless the bytes match the digest. `dest`'s directory is the
    /// caller's; nothing in it is followed (see [`Client::pull_blob_into`]).
    pub async fn pull_blob_file(
        &self,
        r: &ImageRef,
        digest: &Digest,
        size: u64,
        dest: &Path,
        parallel: usize,
    ) -> Result<(), ClientError> {
        let Some(name) = dest.file_name() else {
            return Err(ClientError::Usage(format!(
                "{} does not name a file",
                dest.display()
            )));
        };
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = Dir::open(parent).map_err(ClientError::Io)?;
        self.pull_blob_into(r, digest, size, &dir, name, parallel)
            .await
    }

    /// Downloads blob `digest` of `size` bytes to file `name` of `dir`,
    /// through `name.partial` and the record `name.partial.json`, all
    /// opened relative to `dir` without following a symlink (one at any of
    /// the three names is refused). On failure both are removed, except
    /// after a temporary (network) failure with pieces recorded, which a
    /// rerun resumes.
    pub async fn pull_blob_into(
        &self,
        r: &ImageRef,
        digest: &Digest,
        size: u64,
        dir: &Dir,
        name: &OsStr,
        parallel: usize,
    ) -> Result<(), ClientError> {
        let partial = with_suffix(name, ".partial");
        let record = with_suffix(name, ".partial.json");
        let mut left = Leftovers {
            dir,
            partial: None,
            record: None,
            resumable: false,
        };
        let result = self
            .pull_blob_inner(
                r,
                digest,
                size,
                Names {
                    dir,
                    name,
                    partial: &partial,
                    record: &record,
                },
                parallel,
                &mut left,
            )
            .await;
        if let Err(e) = &result {
            left.clean(e);
        }
        result
    }

    async fn pull_blob_inner<'a>(
        &self,
        r: &ImageRef,
        digest: &Digest,
        size: u64,
        names: Names<'a>,
        parallel: usize,
        left: &mut Leftovers<'a>,
    ) -> Result<(), ClientError> {
        let Names {
            dir,
            name,
            partial,
            record,
        } = names;
        let parallel = parallel.max(1);
        let io = |e: std::io::Error| ClientError::io_at(&dir.join(partial), e);
        if dir
            .metadata(name)
            .map_err(ClientError::Io)?
            .is_some_and(|m| m.file_type().is_symlink())
        {
            return Err(ClientError::Io(std::io::Error::other(
                pavilion_dio::SymlinkRefused {
                    path: dir.join(name),
                },
            )));
        }
        let previous = previous_progress(dir, record, digest, size)?;
        let on_disk = dir.metadata(partial).map_err(ClientError::Io)?;
        if on_disk.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
            return Err(ClientError::Io(std::io::Error::other(
                pavilion_dio::SymlinkRefused {
                    path: dir.join(partial),
                },
            )));
        }
        let resumable =
            previous.is_some() && on_disk.is_some_and(|m| m.is_file() && m.len() == size);
        let buffered = if resumable {
            let f = dir.open_file(partial, true).map_err(io)?;
            left.partial = Some(partial.as_os_str());
            f
        } else {
            check_room(dir, name, size)?;
            let f = dir.create_replacing(partial).map_err(io)?;
            left.partial = Some(partial.as_os_str());
            f.set_len(size).map_err(io)?;
            f
        };
        let direct = dir.open_direct(partial).filter(|d| {
            // The same file, or not used at all: the name could have been
            // swapped between the two opens.
            matches!((d.metadata(), buffered.metadata()), (Ok(a), Ok(b)) if same_file(&a, &b))
        });
        let reader = buffered.try_clone().map_err(io)?;
        let target = Arc::new(Target {
            direct,
            buffered,
            direct_ok: AtomicBool::new(true),
        });
        let done: Vec<u64> = if resumable {
            previous.map(|p| p.done).unwrap_or_default()
        } else {
            Vec::new()
        };
        let progress = Progress {
            digest: digest.to_string(),
            size,
            piece: PIECE,
            done: done.clone(),
        };
        let record_file = dir
            .create_replacing(record)
            .map_err(|e| ClientError::io_at(&dir.join(record), e))?;
        left.record = Some(record.as_os_str());
        write_record(&record_file, &progress)
            .map_err(|e| ClientError::io_at(&dir.join(record), e))?;
        left.resumable = !done.is_empty();
        let pool = Pool::default();
        let (parts_tx, parts_rx) = mpsc::channel::<(u64, Part)>();
        for &i in &done {
            let start = i * PIECE;
            let _ = parts_tx.send((start, Part::OnDisk((start + PIECE).min(size) - start)));
        }
        let (hashed_tx, hashed_rx) = tokio::sync::watch::channel(0u64);
        let (alg, hp) = (digest.algorithm(), pool.clone());
        let hasher =
            blocking::spawn(move || ordered_hash(reader, alg, size, parts_rx, hashed_tx, hp));
        let shared = Shared {
            r,
            url: self.url(r, &format!("/v2/{}/blobs/{digest}", r.repository)),
            size,
            target: target.clone(),
            pool,
            parts: parts_tx,
            hashed: hashed_rx,
            window: (parallel as u64 + 1) * PIECE,
            progress: Arc::new(Mutex::new((progress, record_file))),
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
        left.resumable = shared.progress.lock().is_ok_and(|p| !p.0.done.is_empty());
        drop(shared);
        let hashed = hasher.await?;
        fetched?;
        let actual = hashed?.ok_or_else(|| {
            ClientError::Protocol("download ended before every piece arrived".into())
        })?;
        if &actual != digest {
            left.resumable = false;
            return Err(ClientError::DigestMismatch {
                path: dir.join(name).display().to_string(),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        // Flushing gigabytes can take seconds: not on an async worker.
        let flushed = target.clone();
        blocking::spawn(move || flushed.buffered.sync_all())
            .await?
            .map_err(io)?;
        dir.rename(partial, dir, name).map_err(ClientError::Io)?;
        left.partial = None;
        let _ = dir.remove_file(record);
        left.record = None;
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
        let record = s.progress.clone();
        // A small write, but a file write all the same: not on an async
        // worker. Under the lock, so records never interleave.
        blocking::spawn(move || {
            let mut p = record
                .lock()
                .map_err(|_| ClientError::Protocol("progress lock poisoned".into()))?;
            let (progress, file) = &mut *p;
            progress.done.push(i);
            write_record(file, progress).map_err(ClientError::Io)
        })
        .await?
    }

    /// Writes the filled part of the buffer and hands it to the hasher.
    async fn flush(&self, s: &Shared<'_>, fill: &mut Fill) -> Result<(), ClientError> {
        if fill.len == 0 {
            return Ok(());
        }
        let full = std::mem::replace(&mut fill.buf, s.pool.take());
        let (len, at, target) = (fill.len, fill.at, s.target.clone());
        let full =
            blocking::spawn(move || target.write(full.slice(len), at).map(|()| full)).await??;
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
