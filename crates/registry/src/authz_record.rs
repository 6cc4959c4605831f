//! Authorization decisions in the decision log, beside the push, pull and
//! admission decisions (point `authz`): every denial, every decision the
//! rules made afresh (answers the authorizer remembered are not written
//! again), and in audit mode what would have been denied.

use crate::authz_hook::AuthzInput;
use crate::state::AppState;
use pavilion_store::NewDecision;

/// Writes one decision; a failure to write is logged, never turned into an
/// answer (the decision itself stands).
pub async fn record(
    state: &AppState,
    input: &AuthzInput<'_>,
    allowed: bool,
    deny: &[String],
    audit: bool,
) {
    let who = input
        .identity
        .map_or_else(|| "anonymous".to_string(), |i| i.subject.clone());
    let mut what = input.repository.unwrap_or("registry").to_string();
    if let Some(t) = input.tag {
        what = format!("{what}:{t}");
    } else if let Some(d) = input.digest {
        what = format!("{what}@{d}");
    }
    let subject = format!("{who} {} {what}", input.action.as_str());
    let detail = serde_json::json!({
        "identity": input.identity.map(|i| serde_json::json!({
            "subject": i.subject,
            "groups": i.groups,
            "method": i.method.as_str(),
            "spiffe_id": i.spiffe_id,
        })),
        "bearer": input.bearer,
        "action": input.action.as_str(),
        "method": input.method,
        "route": input.route,
        "granted": input.granted.names(),
        // In audit mode a denial is recorded and not enforced.
        "enforced": !audit,
    });
    let d = NewDecision {
        point: "authz",
        repository: input.repository,
        subject: &subject,
        allowed,
        deny,
        warn: &[],
        detail: &detail,
        actor: input.identity.map(|i| i.subject.as_str()),
        traceparent: None,
    };
    if let Err(e) = state.meta.record_decision(&d).await {
        tracing::warn!(error = %e, "could not record an authorization decision");
    }
}
