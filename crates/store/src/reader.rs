//! Reading blobs out of the file store: from the page cache when the
//! kernel holds the bytes, from the device with direct I/O when it does not.
//!
//! Measured on this project's machine (1 GiB file, 4 MiB reads, `dd`): a
//! cached file reads at 10-11 GB/s through the page cache; an uncached one
//! reads at 1.0-1.3 GB/s with `O_DIRECT` but only 0.6 GB/s through the page
//! cache (the kernel fills new cache pages as it goes). Uploads are written
//! with direct I/O (see `direct`), so a freshly pushed blob is not cached.
//! Hence, per chunk:
//!
//! 1. when every page of the chunk is cached (`pavilion_dio::page_cache`,
//!    which asks without reading), read it through the page cache;
//! 2. otherwise read the device directly (aligned), leaving the page cache
//!    to whatever is hot;
//! 3. except for a blob read in full before, within [`HOT_WINDOW`], and
//!    small enough to stay cached ([`ReadPolicy`]): its misses are read
//!    through the page cache, so that the next pulls of a model that many
//!    machines fetch come from memory.
//!
//! Chunks are lent out of a pool of aligned buffers shared by every blob
//! GET of the store: a fresh 4 MiB buffer per chunk is zeroed and faulted in,
//! which cost the server 7.6% of its CPU during model pulls (many ranged
//! GETs, each of which used to start with an empty pool of its own).

use bytes::Bytes;
use pavilion_dio::{AlignedBuf, ALIGN};
use pavilion_oci::Digest;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes asked of the device per read; also the largest chunk sent out.
pub const READ_BUF: usize = 4 << 20;
/// Buffers kept for reuse across all reads of a store: at most 32 MiB of
/// idle memory.
const POOL_MAX: usize = 8;
/// How long a blob read in full counts as hot.
pub const HOT_WINDOW: Duration = Duration::from_secs(600);
/// Blobs whose reads are remembered, at most.
const HOT_MAX: usize = 4096;

/// Read buffers shared by the readers of one store.
#[derive(Clone, Default)]
pub struct Pool(Arc<Mutex<Vec<AlignedBuf>>>);

impl Pool {
    fn take(&self) -> AlignedBuf {
        let spare = self.0.lock().ok().and_then(|mut p| p.pop());
        spare.unwrap_or_else(|| AlignedBuf::new(READ_BUF))
    }

    fn give(&self, buf: AlignedBuf) {
        if let Ok(mut pool) = self.0.lock() {
            if pool.len() < POOL_MAX {
                pool.push(buf);
            }
        }
    }
}

/// A read buffer lent out as the storage of a `Bytes` chunk, so chunks go to
/// the socket without a copy; it returns to the pool when the chunk is dropped.
struct Lent {
    buf: Option<AlignedBuf>,
    range: std::ops::Range<usize>,
    pool: Pool,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        self.buf
            .as_ref()
            .map_or(&[], |b| b.range(self.range.clone()))
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.pool.give(buf);
        }
    }
}

/// Decides, per blob read, whether its cache misses fill the page cache.
#[derive(Clone)]
pub struct ReadPolicy {
    /// Bytes served per blob, since when.
    served: Arc<Mutex<HashMap<Digest, (u64, Instant)>>>,
    /// Largest blob worth caching: a quarter of the machine's memory.
    cacheable: u64,
}

impl Default for ReadPolicy {
    fn default() -> Self {
        let memory = match (mem_total(), cgroup_limit()) {
            (Some(m), Some(c)) => Some(m.min(c)),
            (m, c) => m.or(c),
        };
        ReadPolicy {
            served: Arc::default(),
            cacheable: memory.map_or(0, |m| m / 4),
        }
    }
}

impl ReadPolicy {
    /// Whether the misses of a read of blob `digest` (of `size` bytes)
    /// should go through the page cache: bytes of it were delivered, within
    /// [`HOT_WINDOW`] of the last such read, at least as many as it holds,
    /// and it fits. A hot blob stays hot while it is read.
    pub fn hot(&self, digest: &Digest, size: u64) -> bool {
        let Ok(mut served) = self.served.lock() else {
            return false;
        };
        let now = Instant::now();
        match served.get_mut(digest) {
            Some((bytes, since)) if now.duration_since(*since) < HOT_WINDOW => {
                let hot = *bytes >= size && size <= self.cacheable;
                if hot {
                    *since = now;
                }
                hot
            }
            _ => false,
        }
    }

    /// Counts `len` bytes of blob `digest` delivered to a client (counted
    /// once sent, so a request abandoned at once counts for nothing).
    pub fn delivered(&self, digest: &Digest, len: u64) {
        let Ok(mut served) = self.served.lock() else {
            return;
        };
        let now = Instant::now();
        if served.len() >= HOT_MAX && !served.contains_key(digest) {
            served.retain(|_, (_, since)| now.duration_since(*since) < HOT_WINDOW);
            if served.len() >= HOT_MAX {
                served.clear(); // bounded: forget rather than grow
            }
        }
        let entry = served.entry(digest.clone()).or_insert((0, now));
        if now.duration_since(entry.1) >= HOT_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(len);
    }
}

/// `MemTotal` of /proc/meminfo in bytes.
fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory limit of this process's cgroup (v2), when one is set: in a
/// container the page cache counts against it, not against the host's RAM.
fn cgroup_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
    text.trim().parse().ok()
}

/// Reads `[start, end)` of a blob file in chunks.
pub struct RangeReader {
    buffered: File,
    /// The same file opened with `O_DIRECT`, for cache misses; `None` when
    /// the filesystem refuses it or misses should fill the page cache.
    direct: Option<File>,
    /// Whether the kernel says what it caches (false once it cannot).
    ask_cache: bool,
    pool: Pool,
    /// Next byte of the range to deliver.
    pos: u64,
    /// Bytes of the range still to deliver.
    left: u64,
    /// Bytes delivered from the page cache so far.
    from_cache: u64,
}

impl RangeReader {
    /// Opens `path` to read `start..end`; `fill_cache` reads misses through
    /// the page cache instead of directly.
    pub fn open(
        path: &Path,
        start: u64,
        end: u64,
        fill_cache: bool,
        pool: Pool,
    ) -> io::Result<Self> {
        let buffered = File::open(path)?;
        let direct = if fill_cache {
            None
        } else {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .ok()
        };
        if direct.is_some() {
            // Reads of cached pages must not start readahead of the
            // uncached ones after them (pages a filling read marked for
            // it): misses go to the device directly, not into the cache.
            let _ = rustix::fs::fadvise(&buffered, 0, None, rustix::fs::Advice::Random);
        }
        Ok(RangeReader {
            buffered,
            direct,
            ask_cache: true,
            pool,
            pos: start,
            left: end.saturating_sub(start),
            from_cache: 0,
        })
    }

    /// The next chunk of the range, or `None` when it is complete.
    pub fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut buf = self.pool.take();
        let want = (READ_BUF as u64).min(self.left) as usize;
        let got = match self.cached(&mut buf, want) {
            0 => self.read_device(&mut buf, want),
            n => {
                self.from_cache += n as u64;
                Ok(0..n)
            }
        };
        let range = match got {
            Ok(r) => r,
            Err(e) => {
                self.pool.give(buf);
                return Err(e);
            }
        };
        self.pos += range.len() as u64;
        self.left -= range.len() as u64;
        Ok(Some(Bytes::from_owner(Lent {
            buf: Some(buf),
            range,
            pool: self.pool.clone(),
        })))
    }

    /// Bytes delivered from the page cache alone so far.
    pub fn from_cache(&self) -> u64 {
        self.from_cache
    }

    /// Bytes read into `buf[..want]` through the page cache when it holds
    /// all of them (0 when it does not, or the kernel cannot tell).
    fn cached(&mut self, buf: &mut AlignedBuf, want: usize) -> usize {
        if !self.ask_cache {
            return 0;
        }
        match pavilion_dio::page_cache::fully_cached(&self.buffered, self.pos, want as u64) {
            Some(true) => {}
            Some(false) => return 0,
            None => {
                self.ask_cache = false;
                return 0;
            }
        }
        loop {
            match self
                .buffered
                .read_at(&mut buf.slice_mut()[..want], self.pos)
            {
                Ok(n) => return n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The device path below reports the error if it persists.
                Err(_) => return 0,
            }
        }
    }

    /// Reads what follows from the device: directly from the aligned
    /// offset at or before `pos` when possible, else through the page
    /// cache. Returns where the range's bytes lie in `buf`.
    fn read_device(
        &mut self,
        buf: &mut AlignedBuf,
        want: usize,
    ) -> io::Result<std::ops::Range<usize>> {
        let eof = || io::Error::new(io::ErrorKind::UnexpectedEof, "blob shorter than expected");
        if let Some(direct) = &self.direct {
            let aligned = self.pos / ALIGN as u64 * ALIGN as u64;
            let skip = (self.pos - aligned) as usize;
            let want = want.min(READ_BUF - skip);
            let len = (skip + want).div_ceil(ALIGN) * ALIGN;
            loop {
                match direct.read_at(&mut buf.slice_mut()[..len], aligned) {
                    Ok(n) if n > skip => return Ok(skip..skip + (n - skip).min(want)),
                    Ok(_) => return Err(eof()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "direct read failed; using buffered reads");
                        self.direct = None;
                        break;
                    }
                }
            }
        }
        loop {
            match self
                .buffered
                .read_at(&mut buf.slice_mut()[..want], self.pos)
            {
                Ok(0) => return Err(eof()),
                Ok(n) => return Ok(0..n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of `s..e` and how many came from the page cache.
    fn read_counted(path: &Path, s: u64, e: u64, fill_cache: bool) -> io::Result<(Vec<u8>, u64)> {
        let mut r = RangeReader::open(path, s, e, fill_cache, Pool::default())?;
        let mut got = Vec::new();
        // Bounded: a range of the test file has at most a few chunks.
        for _ in 0..64 {
            match r.next_chunk()? {
                Some(c) => {
                    assert!(c.len() <= READ_BUF);
                    got.extend_from_slice(&c);
                }
                None => return Ok((got, r.from_cache())),
            }
        }
        panic!("range {s}..{e} never ended");
    }

    fn read_range(path: &Path, s: u64, e: u64, fill_cache: bool) -> io::Result<Vec<u8>> {
        read_counted(path, s, e, fill_cache).map(|r| r.0)
    }

    /// Whether this kernel says what it caches (Linux 6.5 and later).
    fn cache_visible(path: &Path) -> bool {
        let f = File::open(path).unwrap();
        pavilion_dio::page_cache::fully_cached(&f, 0, 1).is_some()
    }

    #[test]
    fn cached_bytes_come_from_the_cache_and_only_hot_reads_fill_it() {
        use rustix::fs::{fadvise, Advice};
        // /var/tmp is on a disk where /tmp may be tmpfs (no direct I/O).
        let dir = tempfile::tempdir_in("/var/tmp")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..(READ_BUF * 2 + 333)).map(|i| (i % 241) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let len = data.len() as u64;
        if !cache_visible(&path) {
            eprintln!("cachestat unsupported here: nothing to check");
            return;
        }
        let (got, cached) = read_counted(&path, 0, len, false).unwrap();
        assert_eq!(
            (got == data, cached),
            (true, len),
            "a just-written file is cached"
        );

        let file = File::open(&path).unwrap();
        file.sync_all().unwrap(); // only clean pages can be evicted
        fadvise(&file, 0, None, Advice::DontNeed).unwrap();
        let (got, cached) = read_counted(&path, 0, len, false).unwrap();
        assert!(got == data);
        assert!(
            cached < len / 2,
            "an evicted file came from the cache ({cached} bytes)"
        );
        let (_, cached) = read_counted(&path, 0, len, false).unwrap();
        assert!(
            cached < len / 2,
            "direct reads filled the cache ({cached} bytes)"
        );

        let (got, _) = read_counted(&path, 0, len, true).unwrap();
        assert!(got == data);
        let (got, cached) = read_counted(&path, 7, len, false).unwrap();
        assert_eq!(
            (got == data[7..], cached),
            (true, len - 7),
            "a hot read filled the cache"
        );
    }

    #[test]
    fn ranges_read_back_exactly_cached_or_not() {
        use rustix::fs::{fadvise, Advice};
        // /var/tmp is on a disk where /tmp may be tmpfs (no direct I/O).
        let dir = tempfile::tempdir_in("/var/tmp")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..(READ_BUF * 2 + 5000))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        file.sync_all().unwrap(); // only clean pages can be evicted
        let visible = cache_visible(&path);
        let len = data.len() as u64;
        for fill_cache in [false, true] {
            for (s, e) in [
                (0, len),
                (1, 2),
                (4095, 4097),
                (5000, len),
                (len - 1, len),
                (7, 7),
                (READ_BUF as u64 - 3, READ_BUF as u64 + 9),
            ] {
                // Evicted first, so that the device path (direct and
                // unaligned, or filling the cache) is what is read.
                fadvise(&file, 0, None, Advice::DontNeed).unwrap();
                let (got, cached) = read_counted(&path, s, e, fill_cache).unwrap();
                assert_eq!(got, &data[s as usize..e as usize], "range {s}..{e}");
                if visible && !fill_cache && e > s {
                    assert_eq!(cached, 0, "range {s}..{e} came from the cache");
                }
            }
        }
        let short = read_range(&path, 0, len + 10, false).unwrap_err();
        assert_eq!(short.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_blob_is_hot_once_delivered_in_full_and_only_while_it_fits() {
        let p = ReadPolicy {
            served: Arc::default(),
            cacheable: 1000,
        };
        let d = Digest::sha256(b"x");
        assert!(!p.hot(&d, 100), "never read: not hot");
        p.delivered(&d, 60);
        assert!(!p.hot(&d, 100), "part of it delivered: not hot yet");
        p.delivered(&d, 40);
        assert!(p.hot(&d, 100), "delivered in full before: hot");
        let big = Digest::sha256(b"y");
        p.delivered(&big, 5000);
        assert!(!p.hot(&big, 5000), "too big to stay cached");
    }

    #[test]
    fn remembered_blobs_are_bounded() {
        let p = ReadPolicy::default();
        for i in 0..(HOT_MAX + 10) {
            p.delivered(&Digest::sha256(&i.to_le_bytes()), 1);
        }
        assert!(p.served.lock().unwrap().len() <= HOT_MAX);
    }
}
