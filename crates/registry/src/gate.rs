//! Policy enforcement at the registry's doors: the hook a manifest PUT
//! passes through before anything is stored, the one a manifest GET or
//! HEAD passes through before anything is served, and the decisions they
//! record (served by [`crate::decisions`]). What the gate is told is
//! gathered in [`crate::facts`]; [`crate::policy_report`] asks the same
//! question of a stored manifest after the fact.

use crate::error::{ApiError, ApiResult};
use crate::facts::{gather, Subject};
use crate::metrics::Verdict;
use crate::policy_hook::{Gate, GateDecision, GateError, GateFacts};
use crate::state::AppState;
use bytes::Bytes;
use pavilion_oci::error_body::PolicyDenial;
use pavilion_oci::{Digest, ErrorCode, ManifestInfo, RepoName};
use pavilion_store::NewDecision;
use std::sync::Arc;

/// The gate's decision; facts that could not be gathered, or a policy that
/// fails to evaluate, refuse. `pull` names the reference of a pull (else
/// the decision is a push's). It runs on a blocking thread: Rego
/// evaluation, signature checks and reading the trust policy files are CPU
/// and disk work that must not stall the async workers (with pull rules,
/// every manifest GET comes here).
pub(crate) async fn decide(
    gate: Arc<dyn Gate>,
    facts: Result<GateFacts, GateError>,
    pull: Option<String>,
) -> GateDecision {
    refuse_errors(ask(gate, facts, pull).await)
}

/// The gate's answer, or why it could not give one, under a
/// `policy.evaluate` span (exported when traces are on).
async fn ask(
    gate: Arc<dyn Gate>,
    facts: Result<GateFacts, GateError>,
    pull: Option<String>,
) -> Result<GateDecision, GateError> {
    let span = tracing::info_span!(
        target: "pavilion::otel",
        "policy.evaluate",
        pavilion.policy.point = if pull.is_some() { "pull" } else { "push" },
        pavilion.policy.allowed = tracing::field::Empty,
    );
    let asked = match facts {
        Err(e) => Err(e),
        Ok(facts) => {
            // Entered on the blocking thread, so that what the gate does
            // there (signature verification) is traced under it.
            let inside = span.clone();
            tokio::task::spawn_blocking(move || {
                let _entered = inside.enter();
                match &pull {
                    Some(reference) => gate.decide_pull(&facts, reference),
                    None => gate.decide_push(&facts),
                }
            })
            .await
            .unwrap_or_else(|e| Err(GateError::Aborted(e.to_string())))
        }
    };
    let allowed = matches!(&asked, Ok(d) if d.deny.is_empty());
    span.record("pavilion.policy.allowed", allowed);
    asked
}

/// A gate that cannot answer refuses (policies fail closed).
fn refuse_errors(asked: Result<GateDecision, GateError>) -> GateDecision {
    asked.unwrap_or_else(|e| GateDecision {
        deny: vec![e.to_string()],
        ..Default::default()
    })
}

/// Asks the gate at a door (`push`, `pull`) and counts the decision and,
/// when the gate verifies signatures, the verification it made.
async fn decide_counted(
    state: &AppState,
    point: &'static str,
    gate: Arc<dyn Gate>,
    facts: Result<GateFacts, GateError>,
    pull: Option<String>,
) -> GateDecision {
    let m = &state.metrics;
    // Whether any signature was there to verify, known before the facts
    // move to the gate's thread.
    let signed = facts.as_ref().ok().map(|f| {
        !f.signatures.is_empty() || f.signatures_unchecked.count > 0 || f.signatures_unchecked.more
    });
    let verifies = gate.uses_signatures();
    let asked = ask(gate, facts, pull).await;
    let verdict = match &asked {
        Ok(d) if d.deny.is_empty() => Verdict::Allow,
        Ok(_) => Verdict::Deny,
        Err(_) => Verdict::Error,
    };
    m.policy_decision(point, verdict);
    if verifies {
        let result = match (&asked, signed) {
            (Err(_), _) | (_, None) => "error",
            (Ok(_), Some(false)) => "none",
            (Ok(d), Some(true)) if d.detail["signature"]["verified"] == true => "verified",
            (Ok(_), Some(true)) => "failed",
        };
        m.signature_verification(result);
    }
    refuse_errors(asked)
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
    actor: Option<&str>,
) {
    if !decision.detail.is_null() {
        detail["facts"] = decision.detail.clone();
    }
    let subject = format!("{repo}@{digest}");
    let origin = crate::feed::current();
    if let Err(e) = state
        .meta
        .record_decision(&NewDecision {
            point,
            repository: Some(repo.as_str()),
            subject: &subject,
            allowed: decision.deny.is_empty(),
            deny: &decision.deny,
            warn: &decision.warn,
            detail: &detail,
            actor,
            traceparent: origin.traceparent.as_deref(),
        })
        .await
    {
        tracing::error!(error = %e, "could not record a policy decision");
    }
}

/// A denial: the rules' messages in `message` for clients that show only
/// that (docker, skopeo), and a typed `detail` for clients that act on it
/// (`pavilion` exits 4, not 6) without reading prose. (Serialising a list
/// of strings cannot fail; were it to, the answer is still a refusal.)
fn denied(decision: &GateDecision) -> ApiError {
    ApiError::new(
        ErrorCode::Denied,
        format!("denied by policy: {}", decision.deny.join("; ")),
    )
    .detail_as_message()
    .with_detail(
        serde_json::to_value(PolicyDenial::new(decision.deny.clone()))
            .unwrap_or(serde_json::Value::Null),
    )
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
    let decision = decide_counted(state, "push", gate, facts, None).await;
    let detail = serde_json::json!({ "digest": digest.to_string(), "tags": tags });
    record(
        state,
        "push",
        repo,
        digest,
        &decision,
        detail,
        subject.identity,
    )
    .await;
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
#[allow(clippy::too_many_arguments)]
pub async fn check_pull(
    state: &AppState,
    repo: &RepoName,
    reference: &str,
    digest: &Digest,
    media_type: &str,
    body: &Bytes,
    identity: Option<&str>,
) -> ApiResult<Vec<String>> {
    let Some(gate) = state.gate.clone().filter(|g| g.decides_pulls()) else {
        return Ok(Vec::new());
    };
    let decision = match ManifestInfo::parse(body, Some(media_type)) {
        Err(e) => {
            let e = GateError::Facts(format!("stored manifest {digest}: {e}"));
            decide_counted(state, "pull", gate, Err(e), None).await
        }
        Ok(info) => {
            let subject = Subject {
                repo,
                tags: &[],
                digest,
                info: &info,
                body,
                identity,
            };
            let facts = gather(state, &gate, &subject).await?;
            let pinned = match pavilion_oci::Reference::parse(reference) {
                Ok(pavilion_oci::Reference::Digest(_)) => format!("{repo}@{reference}"),
                _ => format!("{repo}:{reference}"),
            };
            decide_counted(state, "pull", gate, facts, Some(pinned)).await
        }
    };
    if decision.deny.is_empty() {
        return Ok(decision.warn);
    }
    let detail = serde_json::json!({ "digest": digest.to_string(), "reference": reference });
    record(state, "pull", repo, digest, &decision, detail, identity).await;
    tracing::info!(%repo, %digest, deny = ?decision.deny, "pull denied by policy");
    Err(denied(&decision))
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
