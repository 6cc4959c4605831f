//! Policy enforcement at the registry's doors: the hook a manifest PUT
//! passes through before anything is stored, the one a manifest GET or
//! HEAD passes through before anything is served, and the decisions they
//! record (served by [`crate::decisions`]). What the gate is told is
//! gathered in [`crate::facts`].

use crate::error::{ApiError, ApiResult};
use crate::facts::{gather, Gate, GateDecision, GateFacts, Subject};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header;
use pavilion_oci::{Digest, ErrorCode, ManifestInfo, RepoName};
use std::sync::Arc;

/// The gate's decision; facts that could not be gathered, or a policy that
/// fails to evaluate, refuse. `pull` names the reference of a pull (else
/// the decision is a push's). It runs on a blocking thread: Rego
/// evaluation, signature checks and reading the trust policy files are CPU
/// and disk work that must not stall the async workers (with pull rules,
/// every manifest GET comes here).
async fn decide(
    gate: Arc<dyn Gate>,
    facts: Result<GateFacts, String>,
    pull: Option<String>,
) -> GateDecision {
    let refused = |why: String| GateDecision {
        deny: vec![why],
        ..Default::default()
    };
    let facts = match facts {
        Ok(f) => f,
        Err(e) => return refused(format!("cannot build the policy input: {e}")),
    };
    let asked = tokio::task::spawn_blocking(move || match &pull {
        Some(reference) => gate.decide_pull(&facts, reference),
        None => gate.decide_push(&facts),
    })
    .await;
    match asked {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => refused(format!("policy evaluation failed: {e}")),
        Err(e) => refused(format!("policy evaluation failed: {e}")),
    }
}

/// Records a decision; a log that cannot be written is the operator's
/// problem, not the client's: the decision still stands.
async fn record(
    state: &AppState,
    point: &str,
    repo: &RepoName,
    digest: &Digest,
    decision: &GateDecision,
    mut detail: serde_json::Value,
) {
    if !decision.detail.is_null() {
        detail["facts"] = decision.detail.clone();
    }
    let subject = format!("{repo}@{digest}");
    if let Err(e) = state
        .meta
        .record_decision(
            point,
            Some(repo.as_str()),
            &subject,
            decision.deny.is_empty(),
            &decision.deny,
            &decision.warn,
            &detail,
        )
        .await
    {
        tracing::error!(error = %e, "could not record a policy decision");
    }
}

/// A denial: the rules' messages in `message` for clients that show only
/// that (docker, skopeo), and a typed `detail` for clients that act on it
/// (`pavilion` exits 4, not 6) without reading prose.
fn denied(decision: &GateDecision) -> ApiError {
    ApiError::new(
        ErrorCode::Denied,
        format!("denied by policy: {}", decision.deny.join("; ")),
    )
    .detail_as_message()
    .with_detail(serde_json::json!({"reason": "policy", "deny": decision.deny}))
}

/// Passes a manifest PUT through the gate, when there is one, and records
/// the decision. `Ok(warnings)` lets it through; a denial is 403 `DENIED`
/// with the rules' messages in the detail.
pub async fn check_push(state: &AppState, subject: &Subject<'_>) -> ApiResult<Vec<String>> {
    let Some(gate) = state.gate.clone() else {
        return Ok(Vec::new());
    };
    let Subject {
        repo, tags, digest, ..
    } = *subject;
    let facts = gather(state, &gate, subject).await?;
    let decision = decide(gate, facts, None).await;
    let detail = serde_json::json!({ "digest": digest.to_string(), "tags": tags });
    record(state, "push", repo, digest, &decision, detail).await;
    if decision.deny.is_empty() {
        Ok(decision.warn)
    } else {
        tracing::info!(%repo, %digest, deny = ?decision.deny, "push denied by policy");
        Err(denied(&decision))
    }
}

/// Passes a manifest GET or HEAD through the gate's pull rules, when it
/// has any: the same `pavilion.pull` rules `pavilion pull --policy` applies
/// on the client, so docker, containerd, oras or curl cannot fetch what
/// they refuse. Denials are recorded (allowed pulls are not: they are the
/// bulk of all traffic). `Ok(warnings)` lets it through.
pub async fn check_pull(
    state: &AppState,
    repo: &RepoName,
    reference: &str,
    digest: &Digest,
    media_type: &str,
    body: &Bytes,
) -> ApiResult<Vec<String>> {
    let Some(gate) = state.gate.clone().filter(|g| g.decides_pulls()) else {
        return Ok(Vec::new());
    };
    let decision = match ManifestInfo::parse(body, Some(media_type)) {
        Err(e) => decide(gate, Err(format!("stored manifest {digest}: {e}")), None).await,
        Ok(info) => {
            let subject = Subject {
                repo,
                tags: &[],
                digest,
                info: &info,
                body,
            };
            let facts = gather(state, &gate, &subject).await?;
            let pinned = match pavilion_oci::Reference::parse(reference) {
                Ok(pavilion_oci::Reference::Digest(_)) => format!("{repo}@{reference}"),
                _ => format!("{repo}:{reference}"),
            };
            decide(gate, facts, Some(pinned)).await
        }
    };
    if decision.deny.is_empty() {
        return Ok(decision.warn);
    }
    let detail = serde_json::json!({ "digest": digest.to_string(), "reference": reference });
    record(state, "pull", repo, digest, &decision, detail).await;
    tracing::info!(%repo, %digest, deny = ?decision.deny, "pull denied by policy");
    Err(denied(&decision))
}

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
    drop(req);
    let result: ApiResult = async {
        let Some(gate) = state.gate.clone() else {
            return Err(ApiError::new(
                ErrorCode::Unsupported,
                "no push policy is configured (serve --policy)",
            )
            .with_status(http::StatusCode::NOT_FOUND));
        };
        let Some(crate::routes::Route::Manifest(name, reference)) =
            crate::routes::Route::parse(&format!("/v2{raw}"))
        else {
            return Err(ApiError::new(
                ErrorCode::NameInvalid,
                "expected /pavilion/v1/policy/<name>/manifests/<reference>",
            )
            .with_status(http::StatusCode::NOT_FOUND));
        };
        let reference = reference.as_str();
        let repo = crate::routes::repo(&name)?;
        let rec = crate::manifests::resolve(&state, &repo, reference).await?;
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

/// `Warning` header values for policy warnings (`299 - "text"`, as the
/// distribution spec describes registry warnings).
pub fn warning_headers(warnings: &[String]) -> Vec<http::HeaderValue> {
    warnings
        .iter()
        .filter_map(|w| {
            let clean: String = w
                .chars()
                .map(|c| if c == '"' || c.is_control() { '\'' } else { c })
                .collect();
            http::HeaderValue::from_str(&format!("299 - \"{clean}\"")).ok()
        })
        .collect()
}
