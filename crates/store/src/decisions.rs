//! The decision log: every policy decision (push, pull, admission) with its
//! time, subject, result and messages, kept in the metadata database so every
//! replica sees the same log.

use crate::error::StoreError;
use crate::meta::MetaStore;
use crate::now_millis;
use sqlx::Row;

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

/// Which decisions to list: newest first, before `before` (an id), at most `n`.
#[derive(Debug, Clone, Default)]
pub struct DecisionQuery {
    /// Only this point.
    pub point: Option<String>,
    /// Only this repository.
    pub repository: Option<String>,
    /// Only ids below this one.
    pub before: Option<i64>,
    /// At most this many.
    pub n: i64,
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl MetaStore {
    /// Appends a decision; `at`, `id` are assigned here.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_decision(
        &self,
        point: &str,
        repository: Option<&str>,
        subject: &str,
        allowed: bool,
        deny: &[String],
        warn: &[String],
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO decisions (at, point, repository, subject, allowed, deny, warn, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(now_millis())
        .bind(point)
        .bind(repository)
        .bind(subject)
        .bind(i64::from(allowed))
        .bind(serde_json::to_string(deny).unwrap_or_default())
        .bind(serde_json::to_string(warn).unwrap_or_default())
        .bind(detail.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Decisions matching `q`, newest first.
    pub async fn decisions(&self, q: &DecisionQuery) -> Result<Vec<Decision>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, point, repository, subject, allowed, deny, warn, detail FROM decisions \
             WHERE ($1 = '' OR point = $1) AND ($2 = '' OR repository = $2) AND id < $3 \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(q.point.as_deref().unwrap_or(""))
        .bind(q.repository.as_deref().unwrap_or(""))
        .bind(q.before.unwrap_or(i64::MAX))
        .bind(q.n)
        .fetch_all(&self.pool)
        .await?;
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
