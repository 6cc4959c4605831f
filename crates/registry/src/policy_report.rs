//! `GET /pavilion/v1/policy/<name>/manifests/<reference>`: what the push
//! rules say now about a stored manifest.

use crate::error::{ApiError, ApiResult};
use crate::facts::{gather, Subject};
use crate::gate::decide;
use crate::resolve::resolve;
use crate::routes::{repo, Route};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header;
use pavilion_oci::{ErrorCode, ManifestInfo};
use std::sync::Arc;

/// `GET /pavilion/v1/policy/<name>/manifests/<reference>`: the push rules
/// evaluated now for a stored manifest (for a tag, as if that tag were set
/// again), so a tag guard's verdict can be queried after the fact: a
/// signature that expired or a certificate removed from the trust store
/// shows here. Nothing is recorded or changed.
pub async fn policy_report(State(state): State<Arc<AppState>>, req: Request) -> Response {
    // The raw path, split before decoding as the registry's own routes are:
    // an escaped `/` must not name another repository.
    let raw = req
        .uri()
        .path()
        .strip_prefix("/pavilion/v1/policy")
        .unwrap_or_default()
        .to_string();
    // Evaluated as the caller would be, were they pushing it.
    let identity = crate::caller::caller(&req);
    drop(req);
    let result: ApiResult = async {
        let Some(gate) = state.gate.clone() else {
            return Err(ApiError::new(
                ErrorCode::Unsupported,
                "no push policy is configured (serve --policy)",
            )
            .with_status(http::StatusCode::NOT_FOUND));
        };
        let Some(Route::Manifest(name, reference)) = Route::parse(&format!("/v2{raw}")) else {
            return Err(ApiError::new(
                ErrorCode::NameInvalid,
                "expected /pavilion/v1/policy/<name>/manifests/<reference>",
            )
            .with_status(http::StatusCode::NOT_FOUND));
        };
        let reference = reference.as_str();
        let repo = repo(&name)?;
        let rec = resolve(&state, &repo, reference).await?;
        let body = state.blobs.read_all(&rec.digest).await?;
        let info = ManifestInfo::parse(&body, Some(&rec.media_type))
            .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
        let tags: Vec<String> = match pavilion_oci::Reference::parse(reference) {
            Ok(pavilion_oci::Reference::Tag(t)) => vec![t.as_str().to_string()],
            _ => Vec::new(),
        };
        let subject = Subject {
            repo: &repo,
            tags: &tags,
            digest: &rec.digest,
            info: &info,
            body: &body,
            identity: identity.as_deref(),
        };
        let facts = gather(&state, &gate, &subject).await?;
        let d = decide(gate, facts, None).await;
        let report = serde_json::json!({
            "repository": repo.as_str(),
            "reference": reference,
            "digest": rec.digest.to_string(),
            "allowed": d.deny.is_empty(),
            "deny": d.deny,
            "warn": d.warn,
            "detail": d.detail,
        });
        Ok((
            [(header::CONTENT_TYPE, "application/json")],
            report.to_string(),
        )
            .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
