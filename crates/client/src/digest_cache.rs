//! Remembers the digest of files already hashed, keyed by what identifies
//! an unchanged file (device, inode, size, modification time), so that a
//! re-push can ask the registry for a blob before reading the file at all.

use pavilion_oci::Digest;
use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A JSON file of file identity → digest.
pub struct DigestCache {
    path: PathBuf,
    entries: BTreeMap<String, Digest>,
}

/// The default cache directory: `$XDG_CACHE_HOME/pavilion`, else `~/.cache/pavilion`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("pavilion"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/pavilion"))
}

/// What identifies an unchanged file: device, inode, size, modification
/// time and the path it was seen under.
pub(crate) fn file_identity(path: &Path, meta: &Metadata) -> String {
    format!(
        "{}:{}:{}:{}.{}:{}",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        path.display()
    )
}

impl DigestCache {
    /// Loads the cache in `dir` (an unreadable or corrupt cache starts empty:
    /// it only saves work, it never decides correctness).
    pub fn open(dir: &Path) -> Self {
        let path = dir.join("digests.json");
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        DigestCache { path, entries }
    }

    /// A cache that is never written (no cache directory could be found).
    pub fn in_memory() -> Self {
        DigestCache {
            path: PathBuf::new(),
            entries: BTreeMap::new(),
        }
    }

    /// The digest recorded for this exact file state.
    pub fn get(&self, path: &Path, meta: &Metadata) -> Option<Digest> {
        self.entries.get(&file_identity(path, meta)).cloned()
    }

    /// Records a file's digest.
    pub fn put(&mut self, path: &Path, meta: &Metadata, digest: Digest) {
        self.entries.insert(file_identity(path, meta), digest);
    }

    /// Writes the cache (atomically: temp file, then rename).
    pub fn save(&self) -> std::io::Result<()> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        save_json(&self.path, &self.entries)
    }
}

/// The SHA-256 digest of the whole file at `path`, read on a blocking
/// thread: what a push computes before asking the registry whether it
/// already holds a file.
pub async fn digest_of_file(path: &Path) -> std::io::Result<Digest> {
    let path = path.to_path_buf();
    crate::blocking::spawn(move || crate::push::hash_prefix(&path, u64::MAX).map(|h| h.finish()))
        .await?
}

/// Writes `value` as JSON to `path` through a new temporary file (`O_EXCL`
/// under a unique name: nothing planted there is written through) and a
/// rename, creating the directory if needed (the caches' and journal's
/// format).
pub(crate) fn save_json(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    use std::io::Write as _;
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::other(format!(
            "{}: not a file path",
            path.display()
        )));
    };
    let parent = Some(parent)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let dir = pavilion_dio::Dir::open(parent)?;
    let tmp = crate::layout::unique_tmp(name);
    let write = || -> std::io::Result<()> {
        let mut f = dir.create_new(&tmp)?;
        f.write_all(&serde_json::to_vec(value)?)?;
        dir.rename(&tmp, &dir, name)
    };
    write().inspect_err(|_| {
        let _ = dir.remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("w");
        std::fs::write(&f, b"abc").unwrap();
        let mut c = DigestCache::open(dir.path());
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!(c.get(&f, &m), None);
        c.put(&f, &m, Digest::sha256(b"abc"));
        c.save().unwrap();
        let c = DigestCache::open(dir.path());
        assert_eq!(c.get(&f, &m), Some(Digest::sha256(b"abc")));
        std::fs::write(&f, b"abcd").unwrap();
        assert_eq!(
            c.get(&f, &std::fs::metadata(&f).unwrap()),
            None,
            "a changed file is hashed again"
        );
        std::fs::write(dir.path().join("digests.json"), b"garbage").unwrap();
        assert_eq!(DigestCache::open(dir.path()).get(&f, &m), None);
    }
}
