//! `GET /pavilion/v1/usage[?repository=][&last=][&n=]`: bytes per
//! repository (blobs linked to it and its manifests), what the store keeps
//! and what deduplication saves, the numbers `pavilion du` prints, and for
//! a repository quotas cover, where it stands against the tightest one.
//! Under authentication it needs `registry:catalog:*` (it names
//! repositories).

use crate::error::{ApiError, ApiResult};
use crate::query::query_pairs;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header;
use pavilion_oci::{ErrorCode, RepoName};
use pavilion_store::usage::{RepoUsage, MAX_USAGE_PAGE};
use std::sync::Arc;

/// Repositories listed when `n` is not given.
const DEFAULT_PAGE: i64 = 100;

/// A repository's row: its usage, and its tightest quota if any.
#[derive(serde::Serialize)]
pub struct Row<'a> {
    /// What it holds.
    #[serde(flatten)]
    pub usage: &'a RepoUsage,
    /// Where it stands against its tightest quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<crate::quota::QuotaStatus>,
}

/// The rows of `repos` with their quotas.
pub async fn rows<'a>(
    meta: &pavilion_store::MetaStore,
    quotas: &[crate::quota::Quota],
    repos: &'a [RepoUsage],
) -> Result<Vec<Row<'a>>, pavilion_store::StoreError> {
    let statuses = crate::quota::statuses(meta, quotas, repos).await?;
    Ok(repos
        .iter()
        .zip(statuses)
        .map(|(usage, quota)| Row { usage, quota })
        .collect())
}

/// The handler.
pub async fn usage(State(state): State<Arc<AppState>>, req: Request) -> Response {
    // Only the query is needed; a request body is not Sync.
    let pairs = query_pairs(req.uri().query());
    drop(req);
    let result: ApiResult = async {
        let bad = |k: &str, v: &str| {
            ApiError::new(
                ErrorCode::Unsupported,
                format!("query parameter {k}={v:?} is not valid"),
            )
            .with_status(http::StatusCode::BAD_REQUEST)
        };
        let (mut only, mut last, mut n) = (None, None, DEFAULT_PAGE);
        for (k, v) in pairs {
            match k.as_str() {
                "repository" => only = Some(RepoName::new(&v)?.as_str().to_string()),
                "last" => last = Some(v),
                "n" => match v.parse::<i64>() {
                    Ok(x) if x > 0 => n = x.min(MAX_USAGE_PAGE),
                    _ => return Err(bad(&k, &v)),
                },
                _ => return Err(bad(&k, &v)),
            }
        }
        let repositories = state
            .meta
            .repo_usage(only.as_deref(), last.as_deref(), n)
            .await?;
        let totals = state.meta.usage_totals().await?;
        let rows = rows(&state.meta, &state.quotas, &repositories).await?;
        // The last garbage collection, as recorded (its counts; a dry run
        // of the whole plan would cost too much per request).
        let last_gc = state
            .meta
            .gc_last_run()
            .await?
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok());
        let body = serde_json::json!({
            "repositories": rows,
            "totals": totals,
            "last_gc": last_gc,
        });
        Ok((
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
