//! Direct I/O for blob files: appending uploads (reading them out is
//! `reader`'s).
//!
//! Measured on this project's machines: writing through the page cache costs
//! more CPU per byte than SHA-256 itself (the kernel copies every byte into
//! freshly allocated cache pages), and that CPU is exactly what the hasher
//! thread needs. `O_DIRECT` writes from an aligned buffer let the device DMA
//! the bytes instead; one cheap user-space copy into the buffer replaces the
//! page-cache copy. Where direct I/O is unavailable (tmpfs, some filesystems)
//! or the append does not start on an aligned offset, ordinary writes are used.

use pavilion_dio::{AlignedBuf, ALIGN};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Bytes gathered before each direct write.
const DIRECT_BUF: usize = 8 << 20;

/// Appends to an upload file starting at a known offset.
pub struct UploadWriter {
    buffered: File,
    direct: Option<(File, AlignedBuf)>,
    /// File offset where the bytes held in the direct buffer begin.
    pos: u64,
    /// Bytes held in the direct buffer.
    filled: usize,
}

impl UploadWriter {
    /// Opens `path` for writing at `offset` (its current length).
    pub fn open(path: &Path, offset: u64) -> io::Result<Self> {
        let buffered = OpenOptions::new().write(true).open(path)?;
        let direct = if offset.is_multiple_of(ALIGN as u64) {
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .ok()
                .map(|f| (f, AlignedBuf::new(DIRECT_BUF)))
        } else {
            None
        };
        Ok(UploadWriter {
            buffered,
            direct,
            pos: offset,
            filled: 0,
        })
    }

    /// Appends `data`.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        let Some((file, buf)) = self.direct.as_mut() else {
            self.buffered.write_all_at(data, self.pos)?;
            self.pos += data.len() as u64;
            return Ok(());
        };
        while !data.is_empty() {
            let space = &mut buf.slice_mut()[self.filled..];
            let n = space.len().min(data.len());
            space[..n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == DIRECT_BUF {
                if let Err(e) = file.write_all_at(buf.slice(DIRECT_BUF), self.pos) {
                    self.fall_back(e)?;
                    return self.write(data);
                }
                self.pos += DIRECT_BUF as u64;
                self.filled = 0;
            }
        }
        Ok(())
    }

    /// A direct write failed (e.g. the filesystem refuses O_DIRECT writes):
    /// continue with ordinary writes from the same position.
    fn fall_back(&mut self, e: io::Error) -> io::Result<()> {
        tracing::debug!(error = %e, "direct write failed; using buffered writes");
        if let Some((_, buf)) = self.direct.take() {
            let held = buf.slice(self.filled).to_vec();
            self.buffered.write_all_at(&held, self.pos)?;
            self.pos += held.len() as u64;
            self.filled = 0;
        }
        Ok(())
    }

    /// Writes out whatever is still buffered; returns the new file length.
    pub fn finish(mut self) -> io::Result<u64> {
        if let Some((file, buf)) = self.direct.as_ref() {
            let aligned = self.filled / ALIGN * ALIGN;
            let mut done = 0;
            if aligned > 0 && file.write_all_at(buf.slice(aligned), self.pos).is_ok() {
                done = aligned;
            }
            // The unaligned tail (and anything a failed direct write left)
            // goes through the page cache.
            let rest = buf.slice(self.filled)[done..].to_vec();
            self.buffered.write_all_at(&rest, self.pos + done as u64)?;
            self.pos += self.filled as u64;
            self.filled = 0;
        }
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(offset_prefix: usize, pieces: &[usize]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let prefix: Vec<u8> = (0..offset_prefix).map(|i| (i % 7) as u8).collect();
        std::fs::write(&path, &prefix).unwrap();
        let mut w = UploadWriter::open(&path, prefix.len() as u64).unwrap();
        let mut expect = prefix.clone();
        for (k, &n) in pieces.iter().enumerate() {
            let piece: Vec<u8> = (0..n).map(|i| (i * 13 + k) as u8).collect();
            w.write(&piece).unwrap();
            expect.extend_from_slice(&piece);
        }
        assert_eq!(w.finish().unwrap(), expect.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }

    #[test]
    fn aligned_and_unaligned_appends_keep_every_byte() {
        check(0, &[1, 4095, 4096, DIRECT_BUF, 3 * DIRECT_BUF / 2 + 17, 5]);
        check(4096, &[DIRECT_BUF + 1]);
        check(22, &[DIRECT_BUF * 2, 9]);
        check(0, &[]);
    }
}
