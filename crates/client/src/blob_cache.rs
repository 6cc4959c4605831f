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
use pavilion_dio::dir::{same_file, with_suffix};
use pavilion_dio::Dir;
use pavilion_oci::Digest;
use std::ffi::{OsStr, OsString};
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

/// A temporary name beside `name`, unique to this process and call and
/// created with `O_EXCL`, so nothing planted there is ever used.
fn tmp_name(name: &OsStr) -> OsString {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    with_suffix(name, &format!(".{}-{n}.cache-link", std::process::id()))
}

/// Clones `src` in `from` to the new file `dst` in `to`, sharing its
/// extents (btrfs, XFS, ...); neither name is followed if a symlink.
fn reflink(from: &Dir, src: &OsStr, to: &Dir, dst: &OsStr) -> std::io::Result<()> {
    let source = from.open_file(src, false)?;
    let target = to.create_new(dst)?;
    match rustix::fs::ioctl_ficlone(&target, &source) {
        Ok(()) => Ok(()),
        Err(e) => {
            drop(target);
            let _ = to.remove_file(dst);
            Err(e.into())
        }
    }
}

/// Links `src` in `from` to a temporary name in `to` (reflink, else
/// hardlink), then renames it over `dst`; `None` when neither works.
fn link_into(from: &Dir, src: &OsStr, to: &Dir, dst: &OsStr) -> Option<Placed> {
    let tmp = tmp_name(dst);
    let how = if reflink(from, src, to, &tmp).is_ok() {
        Placed::Reflink
    } else if from.hard_link(src, to, &tmp).is_ok() {
        Placed::Hardlink
    } else {
        return None;
    };
    if to.rename(&tmp, to, dst).is_err() {
        let _ = to.remove_file(&tmp);
        return None;
    }
    Some(how)
}

impl BlobCache {
    /// The cache under `dir` (created on first use).
    pub fn new(dir: &Path) -> Self {
        BlobCache {
            root: dir.join("blobs"),
        }
    }

    /// The directory of `d`'s algorithm, walked without following links
    /// below the cache root (made when `create`).
    fn dir(&self, d: &Digest, create: bool) -> std::io::Result<Dir> {
        let mut made = Vec::new();
        if create {
            std::fs::create_dir_all(&self.root)?;
        }
        Dir::open(&self.root)?.subdir(
            Path::new(d.algorithm().as_str()),
            create.then_some(&mut made),
        )
    }

    /// Places cached blob `d` of `size` bytes as `name` in `dir` if the
    /// cache holds it unchanged; `None` on a miss (including an entry found
    /// altered, which is removed). Nothing planted at `name` is followed.
    pub fn place(
        &self,
        d: &Digest,
        size: u64,
        dir: &Dir,
        name: &OsStr,
        digests: &mut DigestCache,
    ) -> Option<Placed> {
        let cache = self.dir(d, false).ok()?;
        let hex = OsStr::new(d.hex());
        let meta = cache.metadata(hex).ok()??;
        if !meta.is_file()
            || meta.len() != size
            || digests.get(&cache.join(hex), &meta).as_ref() != Some(d)
        {
            tracing::warn!(path = %cache.join(hex).display(), "cached blob changed since it was verified; dropping it");
            let _ = cache.remove_file(hex);
            return None;
        }
        if let Some(m) = dir.metadata(name).ok().flatten() {
            if m.is_file() && same_file(&meta, &m) {
                // Already this very file (a hardlink made by an earlier
                // pull, perhaps named by another path).
                digests.put(&dir.join(name), &m, d.clone());
                return Some(Placed::Hardlink);
            }
        }
        let how = link_into(&cache, hex, dir, name)?;
        if let Some(m) = dir.metadata(name).ok().flatten() {
            digests.put(&dir.join(name), &m, d.clone());
        }
        Some(how)
    }

    /// Adds the verified file `name` in `dir` (just pulled) to the cache by
    /// reflink or hardlink, so it costs no space; a file on another
    /// filesystem is not cached. Records both names in the digest cache.
    pub fn adopt(&self, d: &Digest, dir: &Dir, name: &OsStr, digests: &mut DigestCache) {
        let Ok(cache) = self.dir(d, true) else {
            return;
        };
        let hex = OsStr::new(d.hex());
        if cache.metadata(hex).ok().flatten().is_none()
            && link_into(dir, name, &cache, hex).is_none()
        {
            tracing::debug!(path = %dir.join(name).display(), "not cached (another filesystem?)");
            return;
        }
        for (at, n) in [(&cache, hex), (dir, name)] {
            if let Some(m) = at.metadata(n).ok().flatten() {
                digests.put(&at.join(n), &m, d.clone());
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
        let out = Dir::open(dir.path()).unwrap();
        let name = |n: &'static str| OsStr::new(n);
        std::fs::write(dir.path().join("a.bin"), b"weights").unwrap();
        let d = Digest::sha256(b"weights");
        assert_eq!(cache.place(&d, 7, &out, name("b.bin"), &mut digests), None);
        cache.adopt(&d, &out, name("a.bin"), &mut digests);
        assert!(cache
            .place(&d, 7, &out, name("b.bin"), &mut digests)
            .is_some());
        assert_eq!(std::fs::read(dir.path().join("b.bin")).unwrap(), b"weights");
        // An edit in place through a hardlink alters the cached bytes too:
        // the cache must notice and refuse to hand them out again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("b.bin"), b"WEIGHTS").unwrap();
        let third = dir.path().join("c.bin");
        let placed = cache.place(&d, 7, &out, name("c.bin"), &mut digests);
        if placed.is_some() {
            // Only possible when the filesystem reflinked (independent copy).
            assert_eq!(std::fs::read(&third).unwrap(), b"weights");
        } else {
            assert!(!third.exists());
        }
    }
}
