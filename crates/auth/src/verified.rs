//! Credentials bcrypt already accepted, remembered for a short while.
//!
//! bcrypt is slow on purpose (tens of milliseconds at the usual costs),
//! and a model pull makes hundreds of requests with the same Basic header:
//! checking each one would cost more than moving the bytes. A successful
//! check is remembered for [`TTL`] under a SHA-256 of user, stored hash
//! and password (never the password itself); a changed password in the
//! file changes the stored hash and so misses. Failures are never
//! remembered, so a wrong password always pays the full bcrypt cost.

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an accepted credential is taken without bcrypt.
pub const TTL: Duration = Duration::from_secs(60);
/// Credentials remembered at most (beyond that, the expired go, then all).
const MAX: usize = 1024;

/// Accepted credentials and when each stops counting.
#[derive(Default)]
pub(crate) struct Verified(Mutex<HashMap<[u8; 32], Instant>>);

fn key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [user, hash, password] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

impl Verified {
    /// Whether this exact credential was accepted less than [`TTL`] ago.
    pub(crate) fn contains(&self, user: &str, hash: &str, password: &str) -> bool {
        let now = Instant::now();
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(&key(user, hash, password)).copied())
            .is_some_and(|until| now < until)
    }

    /// Remembers an accepted credential.
    pub(crate) fn insert(&self, user: &str, hash: &str, password: &str) {
        let Ok(mut m) = self.0.lock() else { return };
        let now = Instant::now();
        if m.len() >= MAX {
            m.retain(|_, until| now < *until);
            if m.len() >= MAX {
                m.clear(); // bounded: forget rather than grow
            }
        }
        m.insert(key(user, hash, password), now + TTL);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_exactly_what_was_accepted_and_stays_bounded() {
        let v = Verified::default();
        v.insert("ci", "$2y$h", "pw");
        assert!(v.contains("ci", "$2y$h", "pw"));
        assert!(!v.contains("ci", "$2y$h", "pw2"));
        assert!(
            !v.contains("ci", "$2y$other", "pw"),
            "a changed hash misses"
        );
        assert!(
            !v.contains("c", "i$2y$h", "pw"),
            "parts cannot slide into each other"
        );
        for i in 0..(MAX + 5) {
            v.insert(&i.to_string(), "h", "p");
        }
        assert!(v.len() <= MAX);
    }
}
