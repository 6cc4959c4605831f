//! Counters keyed by label values the code fixes (`&'static str`s), and
//! histograms keyed the same way: a short mutex around a small map, taken
//! for one map operation per event.

use super::histogram::Histogram;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// A map whose keys the code fixes (route templates, methods, statuses,
/// operation names), never a request: hashed with FxHash rather than the
/// standard SipHash, whose resistance to chosen keys these maps do not
/// need and which cost about 1,000 instructions per request (half of
/// what counting a cached manifest GET cost, by callgrind).
pub(crate) type FixedMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

/// Counts by key.
#[derive(Debug)]
pub(crate) struct Counts<K>(Mutex<FixedMap<K, u64>>);

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Counts(Mutex::default())
    }
}

impl<K: Hash + Eq + Copy + Ord> Counts<K> {
    /// Adds `n` to `key`.
    pub(crate) fn add(&self, key: K, n: u64) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(key).or_default() += n;
    }

    /// Every key and its count, in key order (a stable exposition).
    pub(crate) fn sorted(&self) -> Vec<(K, u64)> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(K, u64)> = m.iter().map(|(k, n)| (*k, *n)).collect();
        v.sort();
        v
    }
}

/// Histograms by key, all over the same buckets.
#[derive(Debug)]
pub(crate) struct Histograms<K> {
    bounds: &'static [f64],
    by_key: Mutex<FixedMap<K, Histogram>>,
}

impl<K: Hash + Eq + Copy + Ord> Histograms<K> {
    /// Empty, over `bounds`.
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Histograms {
            bounds,
            by_key: Mutex::default(),
        }
    }

    /// Records `v` under `key`.
    pub(crate) fn observe(&self, key: K, v: f64) {
        let mut m = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key)
            .or_insert_with(|| Histogram::new(self.bounds))
            .observe(v);
    }

    /// Copies, in key order (rendered without holding the lock).
    pub(crate) fn sorted(&self) -> Vec<(K, Histogram)> {
        let m = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(K, Histogram)> = m.iter().map(|(k, h)| (*k, h.clone())).collect();
        v.sort_by_key(|e| e.0);
        v
    }
}
