//! Direct I/O (`O_DIRECT`) helpers used on both sides of a transfer.
//!
//! Measured on this project's machines: writing through the page cache costs
//! more CPU per byte than SHA-256 itself (the kernel copies every byte into
//! freshly allocated cache pages). `O_DIRECT` lets the device DMA from an
//! aligned user buffer instead. Direct I/O needs offsets, lengths and memory
//! aligned to [`ALIGN`]; callers fall back to ordinary I/O where it is
//! refused (tmpfs, some filesystems) or where a piece is unaligned.

pub mod blocking;
pub mod dir;
pub mod page_cache;

pub use dir::{refused, Dir, SymlinkRefused};

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Alignment required for direct I/O offsets, lengths and memory.
pub const ALIGN: usize = 4096;

/// A buffer whose usable part starts on an [`ALIGN`] boundary, obtained
/// without unsafe code by over-allocating and skipping to the first aligned
/// byte.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` usable bytes.
    pub fn new(len: usize) -> Self {
        let raw = vec![0u8; len + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        AlignedBuf { raw, start }
    }

    /// Usable length.
    pub fn capacity(&self) -> usize {
        self.raw.len() - ALIGN
    }

    /// The first `len` usable bytes.
    pub fn slice(&self, len: usize) -> &[u8] {
        &self.raw[self.start..self.start + len]
    }

    /// Usable bytes `range` (relative to the aligned start).
    pub fn range(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.raw[self.start + range.start..self.start + range.end]
    }

    /// All usable bytes, for filling.
    pub fn slice_mut(&mut self) -> &mut [u8] {
        let end = self.start + self.capacity();
        &mut self.raw[self.start..end]
    }
}

/// Opens `path` with `O_DIRECT` added to `opts`; `None` where the
/// filesystem refuses it.
pub fn open_direct(path: &Path, opts: &OpenOptions) -> Option<File> {
    let mut o = opts.clone();
    o.custom_flags(libc::O_DIRECT);
    o.open(path).ok()
}

/// Whether a direct write of `len` bytes at `offset` meets the alignment rules.
pub fn aligned(offset: u64, len: usize) -> bool {
    offset.is_multiple_of(ALIGN as u64) && len.is_multiple_of(ALIGN)
}

/// Writes `data` at `offset` through `direct` when possible, else through
/// `buffered`; returns whether the direct path was used (`false` after a
/// refused direct write tells the caller to stop trying).
pub fn write_at(
    direct: Option<&File>,
    buffered: &File,
    data: &[u8],
    offset: u64,
) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    if let Some(f) = direct.filter(|_| aligned(offset, data.len())) {
        if f.write_all_at(data, offset).is_ok() {
            return Ok(true);
        }
    }
    buffered.write_all_at(data, offset)?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_writes_land() {
        let b = AlignedBuf::new(3 * ALIGN);
        assert_eq!(b.slice(1).as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.capacity(), 3 * ALIGN);
        let dir = std::env::temp_dir().join(format!("pavilion-dio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let buffered = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&p)
            .unwrap();
        let direct = open_direct(&p, OpenOptions::new().write(true));
        let mut buf = AlignedBuf::new(ALIGN);
        buf.slice_mut().fill(7);
        write_at(direct.as_ref(), &buffered, buf.slice(ALIGN), 0).unwrap();
        write_at(
            direct.as_ref(),
            &buffered,
            &buf.slice(ALIGN)[..5],
            ALIGN as u64,
        )
        .unwrap();
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len(), ALIGN + 5);
        assert!(got.iter().all(|&b| b == 7));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
