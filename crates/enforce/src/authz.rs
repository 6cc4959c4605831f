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

/// Everything the input document is made of, as one string: the cache
/// key, built without the document itself (asked on every request, where
/// building and printing the JSON would cost more than the lookup).
/// Strings a client chose are written escaped (`{:?}`), so no value can
/// forge a separator and pass for another question.
fn cache_key(i: &AuthzInput<'_>) -> String {
    use std::fmt::Write as _;
    const SEP: char = '\u{1f}';
    let mut k = String::with_capacity(160);
    if let Some(id) = i.identity {
        let _ = write!(
            k,
            "{:?}{SEP}{}{SEP}{:?}{SEP}{:?}",
            id.subject,
            id.method.as_str(),
            id.spiffe_id,
            id.groups
        );
    }
    let _ = write!(
        k,
        "{SEP}{}{SEP}{}{SEP}{}{SEP}{:?}{SEP}{:?}{SEP}{:?}{SEP}{}{SEP}{:?}{SEP}{}",
        i.identity.is_some(),
        i.bearer,
        i.action.as_str(),
        i.repository,
        i.tag,
        i.digest,
        i.method,
        i.granted,
        i.route,
    );
    if let Some(a) = i.artifact {
        let _ = write!(
            k,
            "{SEP}{:?}{SEP}{:?}{SEP}{}",
            a.media_type, a.artifact_type, a.signed
        );
    }
    k
}

impl Authorizer for RegoAuthorizer {
    fn decide(&self, input: &AuthzInput<'_>) -> Result<AuthzDecision, String> {
        let key = cache_key(input);
        if let Some((allowed, deny)) = self.answers.get(&key) {
            return Ok(AuthzDecision {
                allowed,
                deny,
                fresh: false,
            });
        }
        let doc = input_document(input);
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

#[cfg(test)]
mod tests {
    use super::*;
    use pavilion_auth::{Actions, Identity, Method};

    fn input<'a>(
        id: Option<&'a Identity>,
        repo: Option<&'a str>,
        digest: Option<&'a str>,
    ) -> AuthzInput<'a> {
        AuthzInput {
            identity: id,
            bearer: false,
            action: Action::Pull,
            repository: repo,
            tag: None,
            digest,
            method: "GET",
            route: "blob",
            granted: Actions::PULL,
            artifact: None,
        }
    }

    #[test]
    fn cache_keys_tell_every_field_apart_and_cannot_be_forged() {
        let alice = Identity::new("alice", Method::Htpasswd);
        let keys = [
            cache_key(&input(None, Some("a"), None)),
            cache_key(&input(Some(&alice), Some("a"), None)),
            cache_key(&input(Some(&alice), Some("a"), Some(""))),
            cache_key(&input(Some(&alice), Some("a"), Some("sha256:1"))),
            cache_key(&input(Some(&alice), Some("b"), Some("sha256:1"))),
            cache_key(&input(Some(&alice), None, Some("sha256:1"))),
            // A value carrying the separator and the next fields' text.
            cache_key(&input(
                Some(&alice),
                Some("a"),
                Some("x\u{1f}GET\u{1f}PULL\u{1f}blob"),
            )),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            cache_key(&input(Some(&alice), Some("a"), Some("d"))),
            cache_key(&input(Some(&alice), Some("a"), Some("d")))
        );
        // The document holds what the key does.
        let doc = input_document(&input(Some(&alice), Some("a"), Some("d")));
        assert_eq!(doc["identity"]["subject"], "alice");
        assert_eq!(doc["granted"], serde_json::json!(["pull"]));
        assert_eq!(doc["point"], "authz");
    }
}
