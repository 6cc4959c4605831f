//! A loaded policy directory shared by concurrent requests. A regorus
//! engine evaluates one input at a time, so there is one engine per
//! available core; a request takes a free one (or waits for its turn on
//! one), and evaluations never serialise behind a single lock.

use pavilion_policy::{Decision, Point, Policy, PolicyError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Engines loaded from one directory.
pub struct PolicySet {
    dir: PathBuf,
    engines: Vec<Mutex<Policy>>,
    next: AtomicUsize,
}

impl PolicySet {
    /// Loads `dir` once and clones the engine for each core.
    pub fn load(dir: &Path) -> Result<PolicySet, PolicyError> {
        PolicySet::load_with_defaults(Some(dir), &[])
    }

    /// Loads `dir` (if any) plus the default rules of each point it has no
    /// package for (see `Policy::load_with_defaults`).
    pub fn load_with_defaults(
        dir: Option<&Path>,
        defaults: &[(Point, &str)],
    ) -> Result<PolicySet, PolicyError> {
        let first = Policy::load_with_defaults(dir, defaults)?;
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 16));
        let engines = (0..n).map(|_| Mutex::new(first.clone())).collect();
        Ok(PolicySet {
            dir: dir.map(Path::to_path_buf).unwrap_or_default(),
            engines,
            next: AtomicUsize::new(0),
        })
    }

    /// The directory the rules came from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the rules have a package for `point` (`pavilion.<point>`).
    pub fn has_point(&self, point: Point) -> bool {
        self.engines
            .first()
            .is_some_and(|e| e.lock().is_ok_and(|p| p.has_point(point)))
    }

    /// The decision at `point` for `input`.
    pub fn decide(&self, point: Point, input: &serde_json::Value) -> Result<Decision, PolicyError> {
        for e in &self.engines {
            if let Ok(mut p) = e.try_lock() {
                return p.decide(point, input);
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.engines.len();
        // A poisoned engine only means another evaluation panicked; its
        // state is replaced by the next set_input, so it is still usable.
        let mut p = self.engines[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        p.decide(point, input)
    }
}
