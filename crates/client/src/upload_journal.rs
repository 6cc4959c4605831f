//! Remembers open upload sessions across runs, so that a push killed
//! halfway continues, when re-run, from the offset the registry reports
//! instead of sending the file again.
//!
//! An entry is keyed by the registry, the repository and the identity of
//! the file (device, inode, size, modification time, path): a file that
//! changed since is a new upload. Entries are written as soon as a session
//! opens and removed when its blob is committed. The journal only saves
//! work: a lost or stale entry costs a fresh upload, never a wrong blob (the
//! registry checks the digest given at the final `PUT`).

use pavilion_oci::ImageRef;
use std::collections::BTreeMap;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Upload session URLs by registry, repository and file identity.
#[derive(Debug, Default)]
pub struct UploadJournal {
    /// `uploads.json`, or empty for a journal kept only in memory.
    path: PathBuf,
    entries: Mutex<BTreeMap<String, String>>,
}

impl UploadJournal {
    /// The journal in `dir` (an unreadable one starts empty).
    pub fn open(dir: &Path) -> Self {
        let path = dir.join("uploads.json");
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        UploadJournal {
            path,
            entries: Mutex::new(entries),
        }
    }

    /// The key of `path` (described by `meta`) uploaded to `r`'s repository.
    pub fn key(r: &ImageRef, path: &Path, meta: &Metadata) -> String {
        format!(
            "{}/{} {}",
            r.registry,
            r.repository,
            crate::digest_cache::file_identity(path, meta)
        )
    }

    /// The session URL recorded for `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    /// Records (or, with `None`, forgets) the session of `key`.
    pub fn set(&self, key: &str, location: Option<&str>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        match location {
            Some(l) => entries.insert(key.to_string(), l.to_string()),
            None => entries.remove(key),
        };
        if let Err(e) = self.save(&entries) {
            tracing::debug!(error = %e, "could not save the upload journal");
        }
    }

    fn save(&self, entries: &BTreeMap<String, String>) -> std::io::Result<()> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        crate::digest_cache::save_json(&self.path, entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_reopen_and_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.bin");
        std::fs::write(&file, b"weights").unwrap();
        let r: ImageRef = "127.0.0.1:5000/a/b:v1".parse().unwrap();
        let key = UploadJournal::key(&r, &file, &std::fs::metadata(&file).unwrap());
        let j = UploadJournal::open(dir.path());
        j.set(&key, Some("http://127.0.0.1:5000/v2/a/b/blobs/uploads/x"));
        let again = UploadJournal::open(dir.path());
        assert_eq!(
            again.get(&key).as_deref(),
            Some("http://127.0.0.1:5000/v2/a/b/blobs/uploads/x")
        );
        again.set(&key, None);
        assert_eq!(UploadJournal::open(dir.path()).get(&key), None);
        // A changed file is another upload.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&file, b"other weights").unwrap();
        let other = UploadJournal::key(&r, &file, &std::fs::metadata(&file).unwrap());
        assert_ne!(key, other);
    }
}
