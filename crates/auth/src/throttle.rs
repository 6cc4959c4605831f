//! Repeated failed logins for one user from one address are slowed down:
//! after a few free failures each further attempt must wait, twice as long
//! each time (capped), before its credentials are even checked. Keyed by
//! user and address, so an attacker guessing one user's password cannot
//! lock that user out from elsewhere; memory is bounded whatever the
//! number of users and addresses tried.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before attempts are slowed down.
const FREE_FAILURES: u32 = 5;
/// Longest wait imposed between attempts.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// A record is forgotten this long after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Most (user, address) pairs remembered.
const MAX_ENTRIES: usize = 10_000;
/// Longest user name kept in a key (longer ones are cut: the key only
/// needs to tell attempts apart).
const MAX_USER: usize = 128;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

impl Record {
    /// When the next attempt may be checked.
    fn next_allowed(&self) -> Instant {
        if self.failures < FREE_FAILURES {
            return self.last;
        }
        let doublings = (self.failures - FREE_FAILURES).min(16);
        let wait = Duration::from_secs(1u64 << doublings).min(MAX_WAIT);
        self.last + wait
    }
}

/// Failed attempts by (user, address).
#[derive(Debug, Default)]
pub struct Throttle {
    records: Mutex<HashMap<(String, IpAddr), Record>>,
}

fn key(user: &str, addr: IpAddr) -> (String, IpAddr) {
    let mut end = user.len().min(MAX_USER);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    (user[..end].to_string(), addr)
}

impl Throttle {
    /// An empty record.
    pub fn new() -> Throttle {
        Throttle::default()
    }

    /// `Err(wait)` when an attempt by `user` from `addr` must wait that
    /// long more before its credentials are checked.
    pub fn check(&self, user: &str, addr: IpAddr) -> Result<(), Duration> {
        let Ok(map) = self.records.lock() else {
            return Ok(());
        };
        let Some(r) = map.get(&key(user, addr)) else {
            return Ok(());
        };
        let now = Instant::now();
        let next = r.next_allowed();
        if next > now {
            Err(next - now)
        } else {
            Ok(())
        }
    }

    /// Records a failed attempt.
    pub fn failed(&self, user: &str, addr: IpAddr) {
        let Ok(mut map) = self.records.lock() else {
            return;
        };
        let now = Instant::now();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
            if map.len() >= MAX_ENTRIES {
                // Still full of fresh records: forget the oldest half rather
                // than grow (an attacker rotating addresses gains little:
                // each address starts with only the free failures).
                let mut ages: Vec<Instant> = map.values().map(|r| r.last).collect();
                ages.sort();
                let cut = ages[ages.len() / 2];
                map.retain(|_, r| r.last > cut);
            }
        }
        let r = map.entry(key(user, addr)).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.duration_since(r.last) >= FORGET_AFTER {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
    }

    /// Forgets the failures of `user` from `addr` (it proved itself).
    pub fn succeeded(&self, user: &str, addr: IpAddr) {
        if let Ok(mut map) = self.records.lock() {
            map.remove(&key(user, addr));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_beyond_the_free_ones_must_wait_longer_each_time() {
        let t = Throttle::new();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..FREE_FAILURES - 1 {
            t.failed("alice", a);
            assert!(t.check("alice", a).is_ok());
        }
        t.failed("alice", a);
        let first = t.check("alice", a).unwrap_err();
        assert!(first <= Duration::from_secs(1) && first > Duration::ZERO);
        t.failed("alice", a);
        let second = t.check("alice", a).unwrap_err();
        assert!(second > Duration::from_secs(1), "{second:?}");
        // Another address, or another user, is not slowed down.
        assert!(t.check("alice", b).is_ok());
        assert!(t.check("bob", a).is_ok());
        t.succeeded("alice", a);
        assert!(t.check("alice", a).is_ok());
        for _ in 0..100 {
            t.failed("carol", a);
        }
        assert!(t.check("carol", a).unwrap_err() <= MAX_WAIT);
    }

    #[test]
    fn memory_stays_bounded() {
        let t = Throttle::new();
        for i in 0..(MAX_ENTRIES as u32 + 500) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(i));
            t.failed(&"u".repeat(1000), ip);
        }
        assert!(t.len() <= MAX_ENTRIES);
        assert!(t
            .records
            .lock()
            .unwrap()
            .keys()
            .all(|(u, _)| u.len() <= MAX_USER));
    }
}
