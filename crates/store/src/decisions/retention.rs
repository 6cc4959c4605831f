//! Retention of the decision log: by count, age and total size.
//!
//! Count is enforced on every insert with one range delete on the id
//! (primary key) index: ids only grow, so "older than the newest minus the
//! limit" is a prefix of the index. Age and size need more than a key
//! range, so they run every [`PRUNE_EVERY_ROWS`] decisions or when the
//! bytes written since the last run reach a sixteenth of the size limit,
//! and on the server's timer (age applies while nobody writes): the size
//! sum reads only the narrow `(id, size)` index, never the table.

use crate::error::StoreError;
use crate::meta::MetaStore;
use sqlx::Row;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

/// Decisions written between age and size checks (per process).
pub const PRUNE_EVERY_ROWS: u64 = 64;
/// Rows read per step when finding how many of the oldest to remove.
const SIZE_STEP: i64 = 1000;
/// Steps per prune (a limit cut far down at start finishes over the next
/// prunes rather than in one long one).
const SIZE_STEPS: usize = 1000;

/// How much of the decision log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionRetention {
    /// Most decisions kept (at least 1).
    pub max_count: u64,
    /// Decisions older than this are removed (`None`: any age).
    pub max_age: Option<Duration>,
    /// Most bytes kept, as [`Decision`](super::Decision)s' texts plus 64
    /// bytes each (`None`: no size limit; count still bounds it).
    pub max_bytes: Option<u64>,
}

impl Default for DecisionRetention {
    /// 100 000 decisions, 30 days, 256 MiB.
    fn default() -> Self {
        DecisionRetention {
            max_count: 100_000,
            max_age: Some(Duration::from_secs(30 * 24 * 3600)),
            max_bytes: Some(256 << 20),
        }
    }
}

/// Retention settings and the per-process counters that schedule pruning.
#[derive(Debug, Default)]
pub(crate) struct LogState {
    retention: RwLock<DecisionRetention>,
    rows_since: AtomicU64,
    bytes_since: AtomicU64,
    /// One prune at a time per process; others skip rather than queue.
    pruning: tokio::sync::Mutex<()>,
}

impl LogState {
    fn retention(&self) -> DecisionRetention {
        self.retention.read().map(|r| *r).unwrap_or_default()
    }

    /// Counts a written row; true when age and size are due a check.
    fn due(&self, size: i64) -> bool {
        let r = self.retention();
        let rows = self.rows_since.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = self
            .bytes_since
            .fetch_add(size.max(0) as u64, Ordering::Relaxed)
            + size.max(0) as u64;
        let byte_trigger = r.max_bytes.map_or(u64::MAX, |b| (b / 16).max(1));
        rows >= PRUNE_EVERY_ROWS || bytes >= byte_trigger
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl MetaStore {
    /// Sets how much of the decision log is kept (default:
    /// [`DecisionRetention::default`]); a count of 0 is taken as 1.
    pub fn set_decision_retention(&self, r: DecisionRetention) {
        if let Ok(mut cur) = self.decision_log.retention.write() {
            *cur = DecisionRetention {
                max_count: r.max_count.max(1),
                ..r
            };
        }
    }

    /// The retention in force.
    pub fn decision_retention(&self) -> DecisionRetention {
        self.decision_log.retention()
    }

    /// After inserting decision `id` of `size` bytes: the count limit now,
    /// age and size when due.
    pub(super) async fn after_insert(&self, id: i64, size: i64) -> Result<(), StoreError> {
        let r = self.decision_log.retention();
        let max = i64::try_from(r.max_count).unwrap_or(i64::MAX);
        if id > max {
            sqlx::query("DELETE FROM decisions WHERE id <= $1")
                .bind(id - max)
                .execute(&self.pool)
                .await?;
        }
        if self.decision_log.due(size) {
            self.prune_decisions_at(crate::now_millis()).await?;
        }
        Ok(())
    }

    /// Bytes the decision log holds, as retention by size counts them.
    pub async fn decision_log_bytes(&self) -> Result<i64, StoreError> {
        // CAST: PostgreSQL's SUM of BIGINT is NUMERIC, which Any cannot read.
        Ok(
            sqlx::query("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS total FROM decisions")
                .fetch_one(&self.pool)
                .await?
                .try_get("total")?,
        )
    }

    /// Applies every retention limit as of now; returns the decisions removed.
    pub async fn prune_decisions(&self) -> Result<u64, StoreError> {
        self.prune_decisions_at(crate::now_millis()).await
    }

    /// Applies every retention limit as if the time were `now` (Unix ms);
    /// returns the decisions removed (0 when another prune is running).
    pub async fn prune_decisions_at(&self, now: i64) -> Result<u64, StoreError> {
        let Ok(_guard) = self.decision_log.pruning.try_lock() else {
            return Ok(0);
        };
        self.decision_log.rows_since.store(0, Ordering::Relaxed);
        self.decision_log.bytes_since.store(0, Ordering::Relaxed);
        let r = self.decision_log.retention();
        let mut removed = 0;
        let newest: Option<i64> = sqlx::query("SELECT MAX(id) AS id FROM decisions")
            .fetch_one(&self.pool)
            .await?
            .try_get("id")?;
        let max = i64::try_from(r.max_count).unwrap_or(i64::MAX);
        if let Some(newest) = newest.filter(|n| *n > max) {
            removed += self.delete_through(newest - max).await?;
        }
        if let Some(age) = r.max_age {
            removed += sqlx::query("DELETE FROM decisions WHERE at < $1")
                .bind(now.saturating_sub(millis(age)))
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        if let Some(limit) = r.max_bytes {
            removed += self
                .prune_size(i64::try_from(limit).unwrap_or(i64::MAX))
                .await?;
        }
        Ok(removed)
    }

    async fn delete_through(&self, id: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM decisions WHERE id <= $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Removes the oldest decisions until the total size is within `limit`.
    async fn prune_size(&self, limit: i64) -> Result<u64, StoreError> {
        let excess = self.decision_log_bytes().await? - limit;
        if excess <= 0 {
            return Ok(0);
        }
        let (mut freed, mut after, mut cutoff) = (0i64, i64::MIN, None);
        'steps: for _ in 0..SIZE_STEPS {
            let rows =
                sqlx::query("SELECT id, size FROM decisions WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after)
                    .bind(SIZE_STEP)
                    .fetch_all(&self.pool)
                    .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let id: i64 = row.try_get("id")?;
                freed += row.try_get::<i64, _>("size")?;
                after = id;
                cutoff = Some(id);
                if freed >= excess {
                    break 'steps;
                }
            }
        }
        match cutoff {
            Some(id) => self.delete_through(id).await,
            None => Ok(0),
        }
    }
}
