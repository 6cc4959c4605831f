//! Results remembered for a while (admission's resolutions and
//! verifications), bounded whatever the traffic.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Results remembered for a while, keyed by what they depend on. A TTL of
/// zero remembers nothing. Entries past their time are dropped when the map
/// grows past its bound, so memory stays bounded whatever the traffic.
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

/// Most entries a cache keeps before sweeping expired ones (and, if still
/// full, starting over).
const CACHE_BOUND: usize = 10_000;

impl<K: std::hash::Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    /// A cache keeping entries for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value for `k`, if still fresh.
    pub fn get(&self, k: &K) -> Option<V> {
        let map = self.entries.lock().ok()?;
        let (at, v) = map.get(k)?;
        (at.elapsed() < self.ttl).then(|| v.clone())
    }

    /// Remembers `v` for `k`.
    pub fn put(&self, k: K, v: V) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= CACHE_BOUND {
                let ttl = self.ttl;
                map.retain(|_, (at, _)| at.elapsed() < ttl);
                if map.len() >= CACHE_BOUND {
                    map.clear();
                }
            }
            map.insert(k, (Instant::now(), v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_cache_expires_and_zero_keeps_nothing() {
        let c: TtlCache<u32, u32> = TtlCache::new(Duration::from_millis(50));
        c.put(1, 10);
        assert_eq!(c.get(&1), Some(10));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(c.get(&1), None);
        let z: TtlCache<u32, u32> = TtlCache::new(Duration::ZERO);
        z.put(1, 10);
        assert_eq!(z.get(&1), None);
    }

    #[test]
    fn ttl_cache_stays_bounded() {
        let c: TtlCache<usize, usize> = TtlCache::new(Duration::from_secs(60));
        for i in 0..(CACHE_BOUND + 5) {
            c.put(i, i);
        }
        assert!(c.entries.lock().unwrap().len() <= CACHE_BOUND);
        assert_eq!(c.get(&(CACHE_BOUND + 4)), Some(CACHE_BOUND + 4));
    }
}
