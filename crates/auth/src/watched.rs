//! A file the server reads at start and follows while it runs (the
//! htpasswd file, a workload issuer's key file): looked at again at most
//! once per `recheck` and re-read when its inode, size or modification
//! time changed, so a change takes effect without a restart. A version
//! that cannot be read or parsed is kept as an error, and callers refuse
//! what depends on it until the file is fixed (fail closed).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What identifies a version of the file: inode, size, modification time.
type Stamp = (u64, u64, i64, i64);

struct Loaded<T> {
    stamp: Option<Stamp>,
    value: Result<Arc<T>, String>,
    checked: Instant,
}

/// A followed file and what its last version parsed to.
pub(crate) struct Watched<T> {
    path: PathBuf,
    recheck: Duration,
    max: u64,
    /// What the file holds, for log lines ("htpasswd file").
    what: &'static str,
    parse: fn(&str) -> Result<T, String>,
    loaded: Mutex<Loaded<T>>,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(path)?;
    Ok((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// Reads at most `max` bytes of `path` and parses them; errors name it.
fn load<T>(path: &Path, max: u64, parse: fn(&str) -> Result<T, String>) -> Result<T, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > max {
        let limit = if max & ((1 << 20) - 1) == 0 {
            format!("{} MiB", max >> 20)
        } else {
            format!("{max} bytes")
        };
        return Err(format!("{}: larger than {limit}", path.display()));
    }
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl<T> Watched<T> {
    /// Reads `path` now: a file that cannot be used is an error at start.
    pub(crate) fn open(
        path: &Path,
        recheck: Duration,
        max: u64,
        what: &'static str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Watched<T>, String> {
        let stamp = stamp(path).ok();
        let value = load(path, max, parse)?;
        Ok(Watched {
            path: path.to_path_buf(),
            recheck,
            max,
            what,
            parse,
            loaded: Mutex::new(Loaded {
                stamp,
                value: Ok(Arc::new(value)),
                checked: Instant::now(),
            }),
        })
    }

    /// The file's content as it is now (re-read when it changed; may
    /// block on the file system).
    pub(crate) fn current(&self) -> Result<Arc<T>, String> {
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| "a lock was poisoned".to_string())?;
        if loaded.checked.elapsed() >= self.recheck {
            loaded.checked = Instant::now();
            let now = stamp(&self.path).ok();
            if now != loaded.stamp {
                loaded.stamp = now;
                loaded.value = load(&self.path, self.max, self.parse).map(Arc::new);
                match &loaded.value {
                    Ok(_) => tracing::info!(path = %self.path.display(), "{} re-read", self.what),
                    Err(e) => tracing::error!(
                        error = %e,
                        "{} unusable: what it allows is refused until it is fixed",
                        self.what
                    ),
                }
            }
        }
        loaded.value.clone()
    }

    /// The content as last read, when the file is not due for a look
    /// (which would block); `None` otherwise or when it was unusable.
    pub(crate) fn if_fresh(&self) -> Option<Arc<T>> {
        let loaded = self.loaded.lock().ok()?;
        if loaded.checked.elapsed() >= self.recheck {
            return None;
        }
        loaded.value.as_ref().ok().cloned()
    }
}
