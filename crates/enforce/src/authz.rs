//! The registry's authorization rules: package `pavilion.authz` of the
//! policy directory (or the default policy, which gives exactly what is
//! granted), asked about every request and every scope of a token.
//!
//! Answers are remembered for a few seconds under the whole input
//! document, so the many requests of one pull are decided once per
//! distinct question, and a changed grant or rule takes effect within
//! that time.

use crate::cache::TtlCache;
use crate::policies::PolicySet;
use pavilion_policy::Point;
use pavilion_registry::{Action, Authorizer, AuthzDecision, AuthzInput};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// How long an answer is reused for the same input.
const REMEMBER: Duration = Duration::from_secs(5);

/// Rego rules deciding registry requests.
pub struct RegoAuthorizer {
    policies: Arc<PolicySet>,
    answers: TtlCache<String, (bool, Vec<String>)>,
}

impl RegoAuthorizer {
    /// Rules from `policies`, which must hold a `pavilion.authz` package
    /// (load them with the default, see [`PolicySet::load_with_defaults`]).
    pub fn new(policies: Arc<PolicySet>) -> RegoAuthorizer {
        RegoAuthorizer {
            policies,
            answers: TtlCache::new(REMEMBER),
        }
    }
}

/// The input document (version 1) for `i`.
pub fn input_document(i: &AuthzInput<'_>) -> Value {
    let granted: Vec<&str> = if i.action == Action::Catalog {
        if i.granted.is_empty() {
            vec![]
        } else {
            vec!["catalog"]
        }
    } else {
        let mut g = i.granted.names();
        // Tags and signatures are pushes: whoever may push may tag and
        // sign, unless a rule says otherwise.
        if i.granted.contains(pavilion_auth::Actions::PUSH) {
            g.extend(["tag", "sign"]);
        }
        g
    };
    json!({
        "version": pavilion_policy::input::INPUT_VERSION,
        "point": "authz",
        "identity": i.identity.map(|id| json!({
            "subject": id.subject,
            "groups": id.groups,
            "method": id.method.as_str(),
            "spiffe_id": id.spiffe_id,
            "bearer": i.bearer,
        })),
        "action": i.action.as_str(),
        "repository": i.repository,
        "tag": i.tag,
        "digest": i.digest,
        "request": {"method": i.method, "route": i.route},
        "artifact": i.artifact.map(|a| json!({
            "mediaType": a.media_type,
            "artifactType": a.artifact_type,
            "signed": a.signed,
        })),
        "granted": granted,
    })
}

impl Authorizer for RegoAuthorizer {
    fn decide(&self, input: &AuthzInput<'_>) -> Result<AuthzDecision, String> {
        let doc = input_document(input);
        let key = doc.to_string();
        if let Some((allowed, deny)) = self.answers.get(&key) {
            return Ok(AuthzDecision {
                allowed,
                deny,
                fresh: false,
            });
        }
        let d = self
            .policies
            .decide(Point::Authz, &doc)
            .map_err(|e| e.to_string())?;
        let allowed = d.allowed();
        self.answers.put(key, (allowed, d.deny.clone()));
        Ok(AuthzDecision {
            allowed,
            deny: d.deny,
            fresh: true,
        })
    }
}
