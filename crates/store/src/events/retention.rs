//! Retention of the change feed: by age and by count, pruned in batches
//! by the server's timer so that no single statement holds the table for
//! long (a limit lowered at start is worked off a batch at a time).

use crate::error::StoreError;
use crate::meta::MetaStore;
use std::sync::RwLock;
use std::time::Duration;

/// Rows deleted per statement.
pub const PRUNE_BATCH: i64 = 10_000;
/// Statements per prune; the rest waits for the next run.
const PRUNE_BATCHES: usize = 100;

/// How much of the feed is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRetention {
    /// Most events kept (at least 1).
    pub max_events: u64,
    /// Events older than this are removed.
    pub max_age: Duration,
}

impl Default for EventRetention {
    /// 1 000 000 events, 30 days.
    fn default() -> Self {
        EventRetention {
            max_events: 1_000_000,
            max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The retention in force, and the signal of this process's commits
/// that wrote events (shared by a store's clones).
#[derive(Debug)]
pub(crate) struct EventsState {
    retention: RwLock<EventRetention>,
    /// Bumped after each commit that wrote events ([`super::written`]).
    pub(crate) written: tokio::sync::watch::Sender<u64>,
}

impl Default for EventsState {
    fn default() -> Self {
        EventsState {
            retention: RwLock::default(),
            written: tokio::sync::watch::channel(0).0,
        }
    }
}

impl MetaStore {
    /// Sets how much of the feed is kept; a count of 0 is taken as 1.
    pub fn set_event_retention(&self, r: EventRetention) {
        if let Ok(mut cur) = self.events.retention.write() {
            *cur = EventRetention {
                max_events: r.max_events.max(1),
                ..r
            };
        }
    }

    /// The retention in force.
    pub fn event_retention(&self) -> EventRetention {
        self.events.retention.read().map(|r| *r).unwrap_or_default()
    }

    /// Removes events beyond the count or older than the age limit, in
    /// batches; how many went.
    pub async fn prune_events(&self) -> Result<u64, StoreError> {
        self.prune_events_at(crate::now_millis()).await
    }

    /// [`MetaStore::prune_events`] as if the time were `now` (Unix ms).
    pub async fn prune_events_at(&self, now: i64) -> Result<u64, StoreError> {
        let r = self.event_retention();
        let max = i64::try_from(r.max_events).unwrap_or(i64::MAX);
        let age = i64::try_from(r.max_age.as_millis()).unwrap_or(i64::MAX);
        let last = self.last_event_seq().await?;
        // Sequence numbers have no gaps, so the newest `max` are a suffix.
        let keep_from = last.saturating_sub(max);
        let cutoff = now.saturating_sub(age);
        // Two statements, each answered from an index (the key, `at`),
        // rather than one OR that may read the whole table to find nothing.
        let by_count = "DELETE FROM events WHERE seq IN \
                        (SELECT seq FROM events WHERE seq <= $1 ORDER BY seq LIMIT $2)";
        let by_age = "DELETE FROM events WHERE seq IN \
                      (SELECT seq FROM events WHERE at < $1 ORDER BY at LIMIT $2)";
        let mut removed = 0;
        for (sql, bound) in [(by_count, keep_from), (by_age, cutoff)] {
            for _ in 0..PRUNE_BATCHES {
                let r = sqlx::query(sql)
                    .bind(bound)
                    .bind(PRUNE_BATCH)
                    .execute(&self.pool)
                    .await?;
                removed += r.rows_affected();
                if r.rows_affected() < PRUNE_BATCH as u64 {
                    break;
                }
            }
        }
        Ok(removed)
    }
}
