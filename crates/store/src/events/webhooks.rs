//! Webhook delivery state (migration 0009): each webhook's cursor (the
//! last sequence number handled), its lease (which replica delivers it)
//! and its dead letters (events given up on), bounded per webhook.
//!
//! Every change a deliverer makes is fenced by its lease: the statement
//! names the holder, so a replica whose lease expired and was taken over
//! changes nothing (it learns so from the rows affected and stops). That
//! keeps one writer per cursor without holding a database lock or a
//! connection for the life of a lease.

use crate::error::StoreError;
use crate::meta::MetaStore;
use crate::now_millis;
use sqlx::Row;

/// Most dead letters kept per webhook: the oldest go beyond it (counted in
/// [`WebhookState::dead_dropped`]), so a receiver that is down for a long
/// time cannot grow the table without bound.
pub const MAX_DEAD_LETTERS: i64 = 10_000;

/// Where a webhook stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookState {
    /// The last sequence number handled (delivered or dead-lettered).
    pub delivered: i64,
    /// The replica delivering it, while its lease lasts.
    pub holder: Option<String>,
    /// Unix ms at which the lease ends.
    pub lease_until: i64,
    /// The last failed attempt's reason.
    pub last_error: Option<String>,
    /// Unix ms of that failure.
    pub last_error_at: Option<i64>,
    /// Dead letters kept.
    pub dead: i64,
    /// Dead letters dropped to keep to [`MAX_DEAD_LETTERS`].
    pub dead_dropped: i64,
}

/// An event a webhook gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event's global sequence number.
    pub seq: i64,
    /// Attempts made, over every try.
    pub attempts: i64,
    /// The last attempt's reason.
    pub error: String,
    /// Unix ms it was given up on.
    pub at: i64,
    /// Whether a replay asked for it again.
    pub queued: bool,
}

/// Longest error kept: receivers' answers are not ours to store whole.
const MAX_ERROR_CHARS: usize = 512;

fn cut(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

impl MetaStore {
    /// Creates `name`'s cursor at the current end of the feed, unless it
    /// exists: a webhook added to the configuration starts with the events
    /// written after it was added, not with the whole retained feed.
    pub async fn webhook_register(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_cursors (name, delivered) \
             SELECT $1, last FROM event_counters WHERE scope = '' \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes or renews `name`'s lease for `holder` until `until` (Unix
    /// ms): granted when free, expired, or already `holder`'s.
    pub async fn webhook_lease(
        &self,
        name: &str,
        holder: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE webhook_cursors SET holder = $2, lease_until = $3 \
             WHERE name = $1 AND (holder IS NULL OR holder = $2 OR lease_until < $4)",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives `name`'s lease up (at shutdown), so another replica need not
    /// wait for it to expire.
    pub async fn webhook_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_cursors SET holder = NULL, lease_until = 0 \
             WHERE name = $1 AND holder = $2",
        )
        .bind(name)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `name`'s state, `None` before it was registered.
    pub async fn webhook_state(&self, name: &str) -> Result<Option<WebhookState>, StoreError> {
        let row = sqlx::query(
            "SELECT delivered, holder, lease_until, last_error, last_error_at, dead_dropped, \
             (SELECT COUNT(*) FROM webhook_dead_letters d WHERE d.name = c.name) AS dead \
             FROM webhook_cursors c WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(WebhookState {
            delivered: r.try_get("delivered")?,
            holder: r.try_get("holder")?,
            lease_until: r.try_get("lease_until")?,
            last_error: r.try_get("last_error")?,
            last_error_at: r.try_get("last_error_at")?,
            dead: r.try_get("dead")?,
            dead_dropped: r.try_get("dead_dropped")?,
        }))
    }

    /// Moves `name`'s cursor from `from` to `to` if `holder` still holds
    /// the lease and the cursor is still at `from`; false otherwise
    /// (another replica took over, or a replay moved the cursor).
    pub async fn webhook_advance(
        &self,
        name: &str,
        holder: &str,
        from: i64,
        to: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE webhook_cursors SET delivered = $4 \
             WHERE name = $1 AND holder = $2 AND delivered = $3",
        )
        .bind(name)
        .bind(holder)
        .bind(from)
        .bind(to)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a failed attempt's reason (for `GET /pavilion/v1/webhooks`).
    pub async fn webhook_failed(
        &self,
        name: &str,
        holder: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_cursors SET last_error = $3, last_error_at = $4 \
             WHERE name = $1 AND holder = $2",
        )
        .bind(name)
        .bind(holder)
        .bind(cut(error))
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up on event `seq` after `attempts`: keeps it as a dead letter
    /// and, with `advance_from` (where the cursor is), moves the cursor to
    /// it, in one transaction (so a crash cannot lose the letter, nor send
    /// the event again as a fresh one). Drops the oldest letters beyond
    /// [`MAX_DEAD_LETTERS`]. False when `holder` no longer holds the lease
    /// or the cursor moved (nothing changed).
    pub async fn webhook_bury(
        &self,
        name: &str,
        holder: &str,
        seq: i64,
        attempts: i64,
        error: &str,
        advance_from: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.webhook_bury_within(
            name,
            holder,
            seq,
            attempts,
            error,
            advance_from,
            MAX_DEAD_LETTERS,
        )
        .await
    }

    /// [`MetaStore::webhook_bury`] keeping at most `bound` letters (the
    /// tests' way to reach the bound without writing 10,000).
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub async fn webhook_bury_within(
        &self,
        name: &str,
        holder: &str,
        seq: i64,
        attempts: i64,
        error: &str,
        advance_from: Option<i64>,
        bound: i64,
    ) -> Result<bool, StoreError> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        // Fences everything after it, and takes the cursor row's lock first.
        let held = match advance_from {
            Some(from) => sqlx::query(
                "UPDATE webhook_cursors SET last_error = $3, last_error_at = $4, delivered = $6 \
                     WHERE name = $1 AND holder = $2 AND delivered = $5",
            )
            .bind(name)
            .bind(holder)
            .bind(cut(error))
            .bind(now)
            .bind(from)
            .bind(seq)
            .execute(&mut *tx)
            .await?,
            None => {
                sqlx::query(
                    "UPDATE webhook_cursors SET last_error = $3, last_error_at = $4 \
                     WHERE name = $1 AND holder = $2",
                )
                .bind(name)
                .bind(holder)
                .bind(cut(error))
                .bind(now)
                .execute(&mut *tx)
                .await?
            }
        };
        if held.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_dead_letters (name, seq, attempts, error, at, queued) \
             VALUES ($1, $2, $3, $4, $5, 0) \
             ON CONFLICT (name, seq) DO UPDATE SET \
             attempts = webhook_dead_letters.attempts + $3, error = $4, at = $5, queued = 0",
        )
        .bind(name)
        .bind(seq)
        .bind(attempts)
        .bind(cut(error))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let count: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM webhook_dead_letters WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
        if count > bound {
            let extra = count - bound;
            sqlx::query(
                "DELETE FROM webhook_dead_letters WHERE name = $1 AND seq IN \
                 (SELECT seq FROM webhook_dead_letters WHERE name = $1 ORDER BY seq LIMIT $2)",
            )
            .bind(name)
            .bind(extra)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE webhook_cursors SET dead_dropped = dead_dropped + $2 WHERE name = $1",
            )
            .bind(name)
            .bind(extra)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// `name`'s dead letters in sequence order from after `after`, at most
    /// `limit`; only those a replay queued when `queued`.
    pub async fn webhook_dead_letters(
        &self,
        name: &str,
        after: i64,
        limit: i64,
        queued: bool,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let sql = if queued {
            "SELECT seq, attempts, error, at, queued FROM webhook_dead_letters \
             WHERE name = $1 AND seq > $2 AND queued = 1 ORDER BY seq LIMIT $3"
        } else {
            "SELECT seq, attempts, error, at, queued FROM webhook_dead_letters \
             WHERE name = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        };
        let rows = sqlx::query(sql)
            .bind(name)
            .bind(after)
            .bind(limit.clamp(0, 1000))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    seq: r.try_get("seq")?,
                    attempts: r.try_get("attempts")?,
                    error: r.try_get("error")?,
                    at: r.try_get("at")?,
                    queued: r.try_get::<i64, _>("queued")? == 1,
                })
            })
            .collect()
    }

    /// Removes a dead letter that was delivered on replay (or whose event
    /// retention pruned), if `holder` still holds the lease.
    pub async fn webhook_resolve(
        &self,
        name: &str,
        holder: &str,
        seq: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "DELETE FROM webhook_dead_letters WHERE name = $1 AND seq = $2 AND EXISTS \
             (SELECT 1 FROM webhook_cursors c WHERE c.name = $1 AND c.holder = $3)",
        )
        .bind(name)
        .bind(seq)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Queues every dead letter of `name` for delivery again; how many.
    pub async fn webhook_requeue(&self, name: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("UPDATE webhook_dead_letters SET queued = 1 WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Moves `name`'s cursor to `seq` (a replay): the events after it are
    /// delivered again. Whoever holds the lease carries on from there.
    pub async fn webhook_rewind(&self, name: &str, seq: i64) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE webhook_cursors SET delivered = $2 WHERE name = $1")
            .bind(name)
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}
