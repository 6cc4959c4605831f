//! A thin hook through which the stores report what they do (requests to
//! the blob backend and their time, our own retries, bytes moved, metadata
//! query times) to whoever installed an observer: the registry counts them
//! for Prometheus. The store crate only measures; it knows nothing of how
//! figures are kept or shown, and without an observer the hook costs a
//! clock read and a branch.
//!
//! Every label an observer receives is a `&'static str` chosen here, never
//! a key, digest or repository, so observers cannot grow without bound.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Which way bytes went between Pavilion and a blob backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Read from the backend.
    Read,
    /// Written to the backend.
    Write,
}

impl Direction {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }
}

/// Receives what the stores measure. Called on the request path (async
/// workers and blocking threads): implementations must be quick and must
/// not block.
pub trait StoreObserver: Send + Sync + 'static {
    /// One request to the blob `backend` (`fs`, `s3`, `azure`, `gcs`) for
    /// `operation` took `seconds` (failed requests included).
    fn store_request(&self, backend: &'static str, operation: &'static str, seconds: f64);
    /// Pavilion itself retried `operation` (the backend client's own
    /// retries, inside `object_store`, are not visible here).
    fn store_retry(&self, backend: &'static str, operation: &'static str);
    /// `bytes` moved between Pavilion and the backend.
    fn store_bytes(&self, backend: &'static str, direction: Direction, bytes: u64);
    /// One metadata operation (a fixed name per `MetaStore` method family)
    /// took `seconds`.
    fn db_query(&self, operation: &'static str, seconds: f64);
}

/// A blob store's side of the hook: its backend's name and the observer,
/// if one was installed. Cheap to clone (an `Arc`).
#[derive(Clone, Default)]
pub(crate) struct Probe {
    observer: Option<Arc<dyn StoreObserver>>,
    backend: &'static str,
}

impl Probe {
    /// Reports to `observer` as `backend`.
    pub(crate) fn new(observer: Arc<dyn StoreObserver>, backend: &'static str) -> Probe {
        Probe {
            observer: Some(observer),
            backend,
        }
    }

    /// Times `operation` until the returned guard is dropped (so a
    /// request that fails or is cancelled is timed too).
    pub(crate) fn time(&self, operation: &'static str) -> Timer<'_> {
        Timer {
            probe: self
                .observer
                .as_deref()
                .map(|o| (o, self.backend, operation)),
            started: Instant::now(),
        }
    }

    /// Counts one retry of `operation`.
    pub(crate) fn retry(&self, operation: &'static str) {
        if let Some(o) = &self.observer {
            o.store_retry(self.backend, operation);
        }
    }

    /// Counts bytes moved.
    pub(crate) fn bytes(&self, direction: Direction, n: u64) {
        if let (Some(o), true) = (&self.observer, n > 0) {
            o.store_bytes(self.backend, direction, n);
        }
    }
}

/// Reports the time since it was made when dropped.
pub(crate) struct Timer<'a> {
    probe: Option<(&'a dyn StoreObserver, &'static str, &'static str)>,
    started: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        if let Some((o, backend, op)) = self.probe {
            o.store_request(backend, op, self.started.elapsed().as_secs_f64());
        }
    }
}

/// The metadata store's side: set once, shared by every clone of the
/// `MetaStore` (the pool is cloned into background tasks before the
/// registry installs its observer).
pub(crate) type MetaProbe = Arc<OnceLock<Arc<dyn StoreObserver>>>;

/// Times a metadata operation until dropped.
pub(crate) struct QueryTimer<'a> {
    observer: Option<&'a dyn StoreObserver>,
    operation: &'static str,
    started: Instant,
}

impl<'a> QueryTimer<'a> {
    pub(crate) fn new(probe: &'a MetaProbe, operation: &'static str) -> QueryTimer<'a> {
        QueryTimer {
            observer: probe.get().map(|o| o.as_ref()),
            operation,
            started: Instant::now(),
        }
    }
}

impl Drop for QueryTimer<'_> {
    fn drop(&mut self) {
        if let Some(o) = self.observer {
            o.db_query(self.operation, self.started.elapsed().as_secs_f64());
        }
    }
}
