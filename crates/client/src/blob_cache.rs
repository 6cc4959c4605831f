//! The local content cache shared between pulls: verified blobs kept under
//! `<cache>/blobs/<alg>/<hex>` and placed at a pull's destination by reflink
//! (copy-on-write filesystems) or hardlink, so re-pulling an unchanged model
//! transfers nothing and costs no disk space.
//!
//! A hardlinked file shares its bytes with the cache, so an edit made in
//! place to a pulled file would change the cached copy. Every cache entry
//! is therefore recorded in the digest cache with its inode, size and
//! modification time; an entry whose file no longer matches that record is
//! dropped instead of being used.

use crate::digest_cache::DigestCache;
use pavilion_oci::Digest;
use std::path::{Path, PathBuf};

/// How a cached blob reached its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Copy-on-write clone: independent file, shared extents.
    Reflink,
    /// Hard link to the cached file.
    Hardlink,
}

/// A directory of verified blobs.
pub struct BlobCache {
    root: PathBuf,
}

fn sibling_tmp(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_os_string();
    s.push(".cache-link");
    PathBuf::from(s)
}

/// Whether `path` is the file `meta` describes (same device and inode).
fn same_file(meta: &std::fs::Metadata, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
}

/// Clones `src` to a new file `dst` sharing its extents (btrfs, XFS, ...).
fn reflink(src: &Path, dst: &Path) -> std::io::Result<()> {
    let from = std::fs::File::open(src)?;
    let to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)?;
    match rustix::fs::ioctl_ficlone(&to, &from) {
        Ok(()) => Ok(()),
        Err(e) => {
            drop(to);
            let _ = std::fs::remove_file(dst);
            Err(e.into())
        }
    }
}

impl BlobCache {
    /// The cache under `dir` (created on first use).
    pub fn new(dir: &Path) -> Self {
        BlobCache {
            root: dir.join("blobs"),
        }
    }

    fn path(&self, d: &Digest) -> PathBuf {
        self.root.join(d.algorithm().as_str()).join(d.hex())
    }

    /// Places cached blob `d` of `size` bytes at `dest` if the cache holds
    /// it unchanged; `None` on a miss (including an entry found altered,
    /// which is removed).
    pub fn place(
        &self,
        d: &Digest,
        size: u64,
        dest: &Path,
        digests: &mut DigestCache,
    ) -> Option<Placed> {
        let cached = self.path(d);
        let meta = std::fs::metadata(&cached).ok()?;
        if meta.len() != size || digests.get(&cached, &meta).as_ref() != Some(d) {
            tracing::warn!(path = %cached.display(), "cached blob changed since it was verified; dropping it");
            let _ = std::fs::remove_file(&cached);
            return None;
        }
        if same_file(&meta, dest) {
            // Already this very file (a hardlink made by an earlier pull,
            // perhaps named by another path): renaming onto it would do
            // nothing and leave the temporary link behind.
            if let Ok(m) = std::fs::metadata(dest) {
                digests.put(dest, &m, d.clone());
            }
            return Some(Placed::Hardlink);
        }
        let tmp = sibling_tmp(dest);
        let _ = std::fs::remove_file(&tmp);
        let how = if reflink(&cached, &tmp).is_ok() {
            Placed::Reflink
        } else if std::fs::hard_link(&cached, &tmp).is_ok() {
            Placed::Hardlink
        } else {
            return None;
        };
        if std::fs::rename(&tmp, dest).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return None;
        }
        if let Ok(m) = std::fs::metadata(dest) {
            digests.put(dest, &m, d.clone());
        }
        Some(how)
    }

    /// Adds the verified file at `path` (just pulled) to the cache by
    /// hardlink, so it costs no space; a file on another filesystem is not
    /// cached. Records both names in the digest cache.
    pub fn adopt(&self, d: &Digest, path: &Path, digests: &mut DigestCache) {
        let cached = self.path(d);
        if let Some(dir) = cached.parent() {
            if std::fs::create_dir_all(dir).is_err() {
                return;
            }
        }
        if !cached.exists() {
            let tmp = sibling_tmp(&cached);
            let _ = std::fs::remove_file(&tmp);
            let linked = reflink(path, &tmp).is_ok() || std::fs::hard_link(path, &tmp).is_ok();
            if !linked || std::fs::rename(&tmp, &cached).is_err() {
                let _ = std::fs::remove_file(&tmp);
                tracing::debug!(path = %path.display(), "not cached (another filesystem?)");
                return;
            }
        }
        for p in [&cached, &path.to_path_buf()] {
            if let Ok(m) = std::fs::metadata(p) {
                digests.put(p, &m, d.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_adopted_blobs_and_drops_altered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(&dir.path().join("cache"));
        let mut digests = DigestCache::in_memory();
        let first = dir.path().join("a.bin");
        std::fs::write(&first, b"weights").unwrap();
        let d = Digest::sha256(b"weights");
        assert_eq!(
            cache.place(&d, 7, &dir.path().join("b.bin"), &mut digests),
            None
        );
        cache.adopt(&d, &first, &mut digests);
        let second = dir.path().join("b.bin");
        assert!(cache.place(&d, 7, &second, &mut digests).is_some());
        assert_eq!(std::fs::read(&second).unwrap(), b"weights");
        // An edit in place through a hardlink alters the cached bytes too:
        // the cache must notice and refuse to hand them out again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&second, b"WEIGHTS").unwrap();
        let third = dir.path().join("c.bin");
        let placed = cache.place(&d, 7, &third, &mut digests);
        if placed.is_some() {
            // Only possible when the filesystem reflinked (independent copy).
            assert_eq!(std::fs::read(&third).unwrap(), b"weights");
        } else {
            assert!(!third.exists());
        }
    }
}
