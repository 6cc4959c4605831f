//! The decision log: every policy decision (push, pull, admission) with its
//! time, subject, result and messages, kept in the metadata database so every
//! replica sees the same log.
//!
//! What is stored is a bounded summary ([`bounds`]) and the log is pruned by
//! count, age and size ([`retention`]): the log is written on behalf of
//! whoever reaches a door (an admission caller, a pusher, a puller) with
//! texts they choose, so neither one decision nor all of them may grow
//! without limit, whatever the caller of `record_decision` passes.

mod bounds;
mod retention;

pub use bounds::{
    fit, fit_detail, fit_messages, MAX_DECISION_BYTES, MAX_DETAIL_BYTES, MAX_MESSAGES,
    MAX_MESSAGE_BYTES, MAX_POINT_BYTES, MAX_REPOSITORY_BYTES, MAX_SUBJECT_BYTES, ROW_OVERHEAD,
};
pub(crate) use retention::LogState;
pub use retention::{DecisionRetention, PRUNE_EVERY_ROWS};

use crate::error::StoreError;
use crate::meta::MetaStore;
use crate::now_millis;
use bounds::Summary;
use sqlx::Row;

/// Most decisions one query returns, whatever it asks for: with each at
/// most [`MAX_DECISION_BYTES`], a page holds at most 12.5 MiB.
pub const MAX_DECISION_PAGE: i64 = 200;

/// One recorded decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decision {
    /// Increasing identifier (pagination cursor).
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// push, pull or admission.
    pub point: String,
    /// The repository concerned, when there is one.
    pub repository: Option<String>,
    /// What was decided about (`repo@digest`, `Pod ns/name`...).
    pub subject: String,
    /// Whether it was allowed.
    pub allowed: bool,
    /// Deny messages.
    pub deny: Vec<String>,
    /// Warning messages.
    pub warn: Vec<String>,
    /// Point-specific facts (tags, images, digests).
    pub detail: serde_json::Value,
}

/// Which decisions to list: newest first, before `before` (an id), at most
/// `n`.
#[derive(Debug, Clone, Default)]
pub struct DecisionQuery {
    /// Only this point.
    pub point: Option<String>,
    /// Only this repository.
    pub repository: Option<String>,
    /// Only this exact subject (`repo@sha256:...`, `alice pull team/m:v1`).
    pub subject: Option<String>,
    /// Only ids below this one.
    pub before: Option<i64>,
    /// At most this many (and at most [`MAX_DECISION_PAGE`]).
    pub n: i64,
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// A decision to record, as the code that made it holds it.
#[derive(Debug, Clone, Copy)]
pub struct NewDecision<'a> {
    /// Where it was made: `push`, `pull`, `admission`.
    pub point: &'a str,
    /// The repository concerned, when there is one.
    pub repository: Option<&'a str>,
    /// What was decided about (`repo@digest`, a pod...).
    pub subject: &'a str,
    /// Whether it was allowed.
    pub allowed: bool,
    /// The rules' reasons for refusing.
    pub deny: &'a [String],
    /// The rules' warnings.
    pub warn: &'a [String],
    /// Facts kept with it (verification results...).
    pub detail: &'a serde_json::Value,
    /// Who asked (for the change feed's event).
    pub actor: Option<&'a str>,
    /// The request's `traceparent` (for the change feed's event).
    pub traceparent: Option<&'a str>,
}

impl MetaStore {
    /// Appends a decision, cut down to its bounded summary (see
    /// [`MAX_DECISION_BYTES`]), then applies retention; `at` and `id` are
    /// assigned here.
    pub async fn record_decision(&self, d: &NewDecision<'_>) -> Result<(), StoreError> {
        let _t = self.time("decision_write");
        let s = Summary::new(d.point, d.repository, d.subject, d.deny, d.warn, d.detail);
        let allowed = d.allowed;
        let size = s.size();
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO decisions (at, point, repository, subject, allowed, deny, warn, detail, size) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(now_millis())
        .bind(&s.point)
        .bind(s.repository.as_deref())
        .bind(&s.subject)
        .bind(i64::from(allowed))
        .bind(&s.deny)
        .bind(&s.warn)
        .bind(&s.detail)
        .bind(size)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        // The feed carries the decision's outcome and where to read the
        // rest (its messages and detail stay in the bounded log).
        let event = crate::events::NewEvent {
            kind: crate::events::POLICY_DECIDED,
            repository: s.repository.as_deref(),
            subject: Some(s.subject.clone()),
            data: serde_json::json!({
                "decision": id,
                "point": s.point,
                "repository": s.repository,
                "subject": s.subject,
                "allowed": allowed,
                "denials": d.deny.len(),
                "warnings": d.warn.len(),
            }),
        };
        let origin = crate::events::Origin {
            actor: d.actor.map(str::to_string),
            traceparent: d.traceparent.map(str::to_string),
        };
        crate::events::append(&mut tx, &origin, &[event]).await?;
        self.commit_events(tx).await?;
        // The decision is recorded; a failed prune is retried by the next.
        if let Err(e) = self.after_insert(id, size).await {
            tracing::warn!(error = %e, "could not prune the decision log");
        }
        Ok(())
    }

    /// Decisions matching `q`, newest first. A subject is asked as its
    /// own condition (not `($n = '' OR ...)`, which neither engine plans
    /// with an index), so the `(subject, id)` index answers it.
    pub async fn decisions(&self, q: &DecisionQuery) -> Result<Vec<Decision>, StoreError> {
        let by_subject = if q.subject.is_some() {
            " AND subject = $5"
        } else {
            ""
        };
        let sql = format!(
            "SELECT id, at, point, repository, subject, allowed, deny, warn, detail FROM decisions \
             WHERE ($1 = '' OR point = $1) AND ($2 = '' OR repository = $2) AND id < $3{by_subject} \
             ORDER BY id DESC LIMIT $4"
        );
        let mut query = sqlx::query(&sql)
            .bind(q.point.as_deref().unwrap_or(""))
            .bind(q.repository.as_deref().unwrap_or(""))
            .bind(q.before.unwrap_or(i64::MAX))
            .bind(q.n.clamp(0, MAX_DECISION_PAGE));
        if let Some(s) = &q.subject {
            query = query.bind(s.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Decision {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    point: r.try_get("point")?,
                    repository: r.try_get("repository")?,
                    subject: r.try_get("subject")?,
                    allowed: r.try_get::<i64, _>("allowed")? != 0,
                    deny: json_list(&r.try_get::<String, _>("deny")?),
                    warn: json_list(&r.try_get::<String, _>("warn")?),
                    detail: serde_json::from_str(&r.try_get::<String, _>("detail")?)
                        .unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}
