//! The change feed's outbox: events written in the same transaction as the
//! change they describe ([`append`]), read back in sequence order
//! ([`MetaStore::events_after`]) and pruned by age and count
//! ([`retention`]); webhooks' cursors, leases and dead letters live in
//! [`webhooks`].
//!
//! Why a counter row and not an autoincrement: on PostgreSQL, two
//! transactions can take sequence values 7 and 8 and commit 8 first; a
//! reader paging with `after=7` would then see 8, move its cursor past 7,
//! and never see 7 when it commits. Allocating from one counter row makes
//! every writer wait on that row's lock, held until commit, so numbers are
//! handed out in commit order and a reader that sees N has already been
//! able to see everything below N. SQLite has one writer at a time anyway.

pub mod graph;
mod retention;
pub mod webhooks;

pub use graph::{GraphDecision, GraphManifest, GraphSnapshot, GraphTag};
pub(crate) use retention::EventsState;
pub use retention::{EventRetention, PRUNE_BATCH};

use crate::error::StoreError;
use crate::meta::MetaStore;
use crate::now_millis;
use sqlx::{Any, Row, Transaction};

/// `dev.pavilion.artifact.pushed`: a manifest was PUT.
pub const PUSHED: &str = "dev.pavilion.artifact.pushed";
/// `dev.pavilion.artifact.tagged`: a tag was set or moved.
pub const TAGGED: &str = "dev.pavilion.artifact.tagged";
/// `dev.pavilion.artifact.untagged`: a tag was removed.
pub const UNTAGGED: &str = "dev.pavilion.artifact.untagged";
/// `dev.pavilion.artifact.deleted`: a manifest was deleted.
pub const DELETED: &str = "dev.pavilion.artifact.deleted";
/// `dev.pavilion.artifact.signed`: a signature referrer arrived.
pub const SIGNED: &str = "dev.pavilion.artifact.signed";
/// `dev.pavilion.gc.completed`: a garbage collection run finished.
pub const GC_COMPLETED: &str = "dev.pavilion.gc.completed";
/// `dev.pavilion.quota.refused`: a write was refused by a quota.
pub const QUOTA_REFUSED: &str = "dev.pavilion.quota.refused";
/// `dev.pavilion.policy.decided`: a policy or authorization decision.
pub const POLICY_DECIDED: &str = "dev.pavilion.policy.decided";

/// Every event type, for validating a reader's filter.
pub const TYPES: [&str; 8] = [
    PUSHED,
    TAGGED,
    UNTAGGED,
    DELETED,
    SIGNED,
    GC_COMPLETED,
    QUOTA_REFUSED,
    POLICY_DECIDED,
];

/// Artifact types of signatures whose arrival is `signed` (the ones
/// retention counts as signatures).
pub use crate::gc::retention::SIGNATURE_TYPES as SIGNATURE_ARTIFACT_TYPES;

/// Longest actor or traceparent kept: both come from the request.
const MAX_ORIGIN_CHARS: usize = 256;
/// Most events one read returns, whatever is asked.
pub const MAX_EVENT_PAGE: i64 = 1000;

/// Who caused a change and the trace it was part of, as the request
/// carried them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The caller's identity, when authenticated.
    pub actor: Option<String>,
    /// The request's W3C `traceparent`, when it had one.
    pub traceparent: Option<String>,
}

fn cut(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|s| s.chars().take(MAX_ORIGIN_CHARS).collect())
}

/// An event about to be written.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// One of [`TYPES`].
    pub kind: &'static str,
    /// The repository it concerns (gives it a per-repository sequence).
    pub repository: Option<&'a str>,
    /// `repo@digest` or `repo:tag`.
    pub subject: Option<String>,
    /// Type-specific facts, built by the server (bounded by what it puts).
    pub data: serde_json::Value,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Global sequence number.
    pub seq: i64,
    /// Stable identifier (a UUID made when written).
    pub id: String,
    /// The repository it concerns.
    pub repository: Option<String>,
    /// Its place in the repository's own sequence.
    pub repo_seq: Option<i64>,
    /// One of [`TYPES`].
    pub kind: String,
    /// `repo@digest` or `repo:tag`.
    pub subject: Option<String>,
    /// Unix milliseconds of the change.
    pub at: i64,
    /// Who caused it.
    pub actor: Option<String>,
    /// The trace it was part of.
    pub traceparent: Option<String>,
    /// Type-specific facts.
    pub data: serde_json::Value,
}

/// Takes the next `n` numbers of `scope` ('' global, `repo:<name>`); the
/// last of them.
///
/// The global counter must be taken before any repository's in a
/// transaction: one lock order, so writers never wait on each other in a
/// cycle.
async fn take(tx: &mut Transaction<'_, Any>, scope: &str, n: i64) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO event_counters (scope, last) VALUES ($1, $2) \
         ON CONFLICT (scope) DO UPDATE SET last = event_counters.last + $2 RETURNING last",
    )
    .bind(scope)
    .bind(n)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("last")?)
}

/// Events per INSERT statement (10 parameters each, under SQLite's limit
/// of 32,766 and PostgreSQL's of 65,535).
const INSERT_BATCH: usize = 500;

/// Writes `events` in `tx`, the transaction of the change they describe.
/// Call it last in the transaction: the global counter's lock is then
/// held only for the time left until commit. Each counter is bumped once
/// for all the events (a manifest PUT's `pushed` and `tagged` take three
/// statements, not six), which keeps that time short.
pub(crate) async fn append(
    tx: &mut Transaction<'_, Any>,
    origin: &Origin,
    events: &[NewEvent<'_>],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let at = now_millis();
    let actor = cut(&origin.actor);
    let traceparent = cut(&origin.traceparent);
    let n = events.len() as i64;
    let first = take(tx, "", n).await? - n + 1;
    // Each repository's numbers, in the events' order.
    let mut repos: Vec<(&str, i64)> = Vec::new();
    for e in events {
        if let Some(r) = e.repository {
            match repos.iter_mut().find(|(name, _)| *name == r) {
                Some((_, k)) => *k += 1,
                None => repos.push((r, 1)),
            }
        }
    }
    let mut next_of = std::collections::HashMap::new();
    for (r, k) in &repos {
        let last = take(tx, &format!("repo:{r}"), *k).await?;
        next_of.insert(*r, last - k + 1);
    }
    let mut rows = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let repo_seq = e.repository.and_then(|r| {
            let next = next_of.get_mut(r)?;
            *next += 1;
            Some(*next - 1)
        });
        rows.push((first + i as i64, repo_seq, e));
    }
    for chunk in rows.chunks(INSERT_BATCH) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p: Vec<String> = (1..=10).map(|j| format!("${}", i * 10 + j)).collect();
                format!("({})", p.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO events (seq, id, repository, repo_seq, type, subject, at, actor, traceparent, data) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (seq, repo_seq, e) in chunk {
            q = q
                .bind(*seq)
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(e.repository)
                .bind(*repo_seq)
                .bind(e.kind)
                .bind(e.subject.as_deref())
                .bind(at)
                .bind(actor.as_deref())
                .bind(traceparent.as_deref())
                .bind(e.data.to_string());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl MetaStore {
    /// Commits `tx`, which wrote events, and wakes this process's readers
    /// of the feed ([`MetaStore::events_written`]).
    pub(crate) async fn commit_events(&self, tx: Transaction<'_, Any>) -> Result<(), StoreError> {
        tx.commit().await?;
        self.events.written.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// A signal that changes after each commit of this process that wrote
    /// events: readers wait on it beside their poll timer, so a change made
    /// through this replica reaches them at once (other replicas' changes
    /// still wait for the timer).
    pub fn events_written(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.written.subscribe()
    }
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events after this sequence number.
    pub after: i64,
    /// At most this many rows are read (at most [`MAX_EVENT_PAGE`]).
    pub limit: i64,
    /// Only these types (empty: all).
    pub types: Vec<String>,
}

impl MetaStore {
    /// Events after `q.after` in sequence order, of `q.types` when given,
    /// at most `q.limit`. Filters the caller applies on top (a repository
    /// glob) page by the last sequence number read, not the last returned.
    pub async fn events_after(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let _t = self.time("events_read");
        let mut sql = String::from(
            "SELECT seq, id, repository, repo_seq, type, subject, at, actor, traceparent, data \
             FROM events WHERE seq > $1",
        );
        // Types are checked against TYPES by the caller; bound, not spliced.
        if !q.types.is_empty() {
            let marks: Vec<String> = (0..q.types.len()).map(|i| format!("${}", i + 3)).collect();
            sql.push_str(&format!(" AND type IN ({})", marks.join(", ")));
        }
        sql.push_str(" ORDER BY seq LIMIT $2");
        let mut query = sqlx::query(&sql)
            .bind(q.after)
            .bind(q.limit.clamp(0, MAX_EVENT_PAGE));
        for t in &q.types {
            query = query.bind(t);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Event {
                    seq: r.try_get("seq")?,
                    id: r.try_get("id")?,
                    repository: r.try_get("repository")?,
                    repo_seq: r.try_get("repo_seq")?,
                    kind: r.try_get("type")?,
                    subject: r.try_get("subject")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    traceparent: r.try_get("traceparent")?,
                    data: serde_json::from_str(&r.try_get::<String, _>("data")?)
                        .unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }

    /// The last sequence number handed out (0 before any event).
    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT last FROM event_counters WHERE scope = ''")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("last")).transpose()?.unwrap_or(0))
    }

    /// Writes events that stand alone (a quota refusal changes nothing
    /// else), in their own transaction.
    pub async fn record_events(
        &self,
        origin: &Origin,
        events: &[NewEvent<'_>],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        append(&mut tx, origin, events).await?;
        self.commit_events(tx).await?;
        Ok(())
    }
}
