//! Answers remembered for a short while under a SHA-256 of the credential
//! (never the credential itself), bounded whatever the traffic: verified
//! bearer tokens (an ECDSA check per request would cost more than serving
//! a manifest) and API keys read from the database (one query per request
//! otherwise; a revocation takes effect within the TTL on every replica).

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept at most (beyond that, the expired go, then all).
const MAX: usize = 4096;

/// Values by credential, each until its own deadline.
pub struct Memo<V> {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (Instant, V)>>,
}

fn key(credential: &str) -> [u8; 32] {
    Sha256::digest(credential.as_bytes()).into()
}

impl<V: Clone> Memo<V> {
    /// Remembers values for at most `ttl`.
    pub fn new(ttl: Duration) -> Memo<V> {
        Memo {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value remembered for `credential`, if still valid.
    pub fn get(&self, credential: &str) -> Option<V> {
        let now = Instant::now();
        let m = self.entries.lock().ok()?;
        m.get(&key(credential))
            .filter(|(until, _)| now < *until)
            .map(|(_, v)| v.clone())
    }

    /// Remembers `v` for `credential` for the TTL, or less when `valid_for`
    /// (the credential's own remaining life) is shorter.
    pub fn put(&self, credential: &str, v: V, valid_for: Option<Duration>) {
        let Ok(mut m) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        if m.len() >= MAX {
            m.retain(|_, (until, _)| now < *until);
            if m.len() >= MAX {
                m.clear();
            }
        }
        let life = valid_for.map_or(self.ttl, |d| d.min(self.ttl));
        m.insert(key(credential), (now + life, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_the_earlier_deadline_and_stays_bounded() {
        let m: Memo<u32> = Memo::new(Duration::from_secs(60));
        m.put("a", 1, None);
        m.put("b", 2, Some(Duration::ZERO));
        assert_eq!(m.get("a"), Some(1));
        assert_eq!(m.get("b"), None);
        assert_eq!(m.get("c"), None);
        for i in 0..(MAX + 10) {
            m.put(&i.to_string(), 0, None);
        }
        assert!(m.entries.lock().unwrap().len() <= MAX);
    }
}
