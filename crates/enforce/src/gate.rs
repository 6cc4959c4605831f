//! The registry's gate: `pavilion serve --policy DIR` turns every manifest
//! PUT into a `push` input document, and (when the rules have a
//! `pavilion.pull` package) every manifest GET or HEAD into a `pull`
//! document, each with the verification of the Notary signatures stored
//! for the manifest, and asks the Rego rules.
//!
//! The trust policy statement is chosen from the names this registry is
//! known by (configuration, `serve --name`), never from the request: a
//! client cannot pick a looser statement by sending another `Host`. With
//! several names, a signature must pass the statement of every one.

use crate::policies::PolicySet;
use pavilion_notary::signature_manifest::{SignatureManifest, THUMBPRINT_ANNOTATION};
use pavilion_notary::verify::Expected;
use pavilion_oci::Descriptor;
use pavilion_policy::input::{self, Artifact, Verification};
use pavilion_policy::Point;
use pavilion_registry::policy_hook::SIGNATURES_CHECKED;
use pavilion_registry::{Gate, GateDecision, GateError, GateFacts, StoredSignature};
use pavilion_verify::{trusted_thumbprints, verify_local, FoundSignature, TrustConfig};
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

/// Rego rules plus, optionally, the trust policy signatures are checked
/// against under this registry's names.
pub struct PushPolicy {
    policies: Arc<PolicySet>,
    trust: Option<TrustConfig>,
    /// `registry` parts of the trust policy scopes: the names this registry
    /// is known by, from configuration (set once the listener is bound when
    /// they default to its address; unset, nothing verifies).
    names: Arc<OnceLock<Vec<String>>>,
    pulls: bool,
}

impl PushPolicy {
    /// A gate over `policies`; without `trust`, `input.signature.verified`
    /// is always false and says why.
    pub fn new(
        policies: Arc<PolicySet>,
        trust: Option<TrustConfig>,
        names: Arc<OnceLock<Vec<String>>>,
    ) -> Self {
        let pulls = policies.has_point(Point::Pull);
        PushPolicy {
            policies,
            trust,
            names,
            pulls,
        }
    }

    fn scopes(&self, repository: &str) -> Vec<String> {
        scopes(&self.names, repository)
    }

    fn signature(&self, f: &GateFacts) -> Verification {
        let Some(trust) = &self.trust else {
            return Verification {
                error: Some("no trust policy configured (serve --trust-policy)".into()),
                ..Default::default()
            };
        };
        let found: Vec<FoundSignature> = f.signatures.iter().filter_map(found).collect();
        let expected = Expected {
            digest: &f.digest,
            media_type: &f.media_type,
            size: f.manifest.len() as u64,
        };
        let mut v = match verify_local(trust, &self.scopes(&f.repository), &expected, &found) {
            Ok(v) => v.to_input(),
            Err(e) => Verification {
                error: Some(e.to_string()),
                ..Default::default()
            },
        };
        let unchecked = f.signatures_unchecked;
        if !v.verified && (unchecked.count > 0 || unchecked.more) && v.error.is_none() {
            v.error = Some(format!(
                "{} more stored signature(s) were not checked: at most {SIGNATURES_CHECKED} \
                 are checked per decision, those whose certificate thumbprints are in the trust \
                 store first",
                unchecked
            ));
        }
        v
    }

    fn artifact<'a>(&self, f: &'a GateFacts, digest: &'a str) -> Artifact<'a> {
        Artifact {
            repository: &f.repository,
            digest,
            media_type: &f.media_type,
            manifest: f.document.clone(),
            config: f.config.clone(),
        }
    }

    fn decide(
        &self,
        point: Point,
        doc: &serde_json::Value,
        signature: &Verification,
    ) -> Result<GateDecision, GateError> {
        let d = self
            .policies
            .decide(point, doc)
            .map_err(|e| GateError::Evaluation(Box::new(e)))?;
        Ok(GateDecision {
            deny: d.deny,
            warn: d.warn,
            detail: serde_json::json!({
                "signature": {
                    "verified": signature.verified,
                    "trustPolicy": signature.trust_policy,
                    "error": signature.error,
                }
            }),
        })
    }
}

/// The trust policy scopes of `repository`: `<name>/<repository>` for each
/// name the registry is known by (none until they are known).
pub(crate) fn scopes(names: &OnceLock<Vec<String>>, repository: &str) -> Vec<String> {
    names
        .get()
        .into_iter()
        .flatten()
        .map(|n| format!("{n}/{repository}"))
        .collect()
}

/// A stored signature in the form verification takes; `None` when its
/// manifest is not a Notary signature manifest after all (another referrer
/// with the same artifact type: leaving it out can only make the artifact
/// less verified, never more).
pub(crate) fn found(s: &StoredSignature) -> Option<FoundSignature> {
    let parsed = SignatureManifest::parse(&s.manifest, Some(&s.media_type)).ok()?;
    let (envelope, refused) = match &s.envelope {
        Some(e) => (e.to_vec(), None),
        None => (
            Vec::new(),
            Some("the signature envelope is missing or too large".to_string()),
        ),
    };
    Some(FoundSignature {
        manifest: Descriptor {
            media_type: s.media_type.clone(),
            digest: s.digest.clone(),
            size: s.manifest.len() as u64,
            artifact_type: None,
            annotations: None,
        },
        parsed,
        envelope,
        refused,
    })
}

/// Whether a signature manifest's annotations name, in notation's
/// thumbprint annotation, a certificate of `trusted`.
fn names_trusted(annotations: Option<&str>, trusted: &HashSet<String>) -> bool {
    let Some(map) = annotations
        .and_then(|a| serde_json::from_str::<std::collections::BTreeMap<String, String>>(a).ok())
    else {
        return false;
    };
    let Some(list) = map
        .get(THUMBPRINT_ANNOTATION)
        .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
    else {
        return false;
    };
    list.iter()
        .any(|t| trusted.contains(&t.to_ascii_lowercase()))
}

impl Gate for PushPolicy {
    /// Without a trust policy nothing is verified: the registry need not
    /// read the stored signatures.
    fn uses_signatures(&self) -> bool {
        self.trust.is_some()
    }

    fn decides_pulls(&self) -> bool {
        self.pulls
    }

    fn trust_generation(&self) -> Option<String> {
        let trust = self.trust.as_ref()?;
        Some(trust.generation(self.names.get()?))
    }

    /// Passes when it verifies under the statement of every name (as the
    /// decisions require); a statement that skips gives no verdict.
    fn judge_signature(
        &self,
        repository: &str,
        signature: &StoredSignature,
        subject: &Descriptor,
    ) -> Option<bool> {
        let trust = self.trust.as_ref()?;
        let found = found(signature)?;
        let expected = Expected {
            digest: &subject.digest,
            media_type: &subject.media_type,
            size: subject.size,
        };
        match verify_local(trust, &self.scopes(repository), &expected, &[found]) {
            Ok(v) if v.skipped => None,
            Ok(v) => Some(v.verified()),
            Err(_) => None,
        }
    }

    /// Signatures whose thumbprint annotation names a certificate of the
    /// trust stores come first: junk signatures (anyone may push referrers)
    /// cannot crowd out a valid one. The annotation is unsigned, so it only
    /// orders the work; verification still reads the envelope's own chain.
    fn trusted_signatures(&self, repository: &str, annotations: &[Option<&str>]) -> Vec<bool> {
        let trusted = match &self.trust {
            Some(t) => trusted_thumbprints(t, &self.scopes(repository)),
            None => HashSet::new(),
        };
        annotations
            .iter()
            .map(|a| names_trusted(*a, &trusted))
            .collect()
    }

    fn decide_push(&self, f: &GateFacts) -> Result<GateDecision, GateError> {
        let digest = f.digest.to_string();
        let signature = self.signature(f);
        let doc = input::push(
            &self.artifact(f, &digest),
            &f.tags,
            f.identity.as_deref(),
            &signature,
        );
        self.decide(Point::Push, &doc, &signature)
    }

    fn decide_pull(&self, f: &GateFacts, reference: &str) -> Result<GateDecision, GateError> {
        let digest = f.digest.to_string();
        let signature = self.signature(f);
        // As `pavilion pull` would name it: this registry's first name.
        let name = self
            .names
            .get()
            .and_then(|n| n.first())
            .map_or("", String::as_str);
        let doc = input::pull(
            &format!("{name}/{reference}"),
            &self.artifact(f, &digest),
            Some(&signature),
            f.identity.as_deref(),
        );
        self.decide(Point::Pull, &doc, &signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_annotation_orders_only_when_it_names_a_trusted_cert() {
        let trusted: HashSet<String> = ["ab".to_string()].into();
        let ann = |t: &str| serde_json::json!({ THUMBPRINT_ANNOTATION: t }).to_string();
        assert!(names_trusted(Some(&ann(r#"["cd","AB"]"#)), &trusted));
        assert!(!names_trusted(Some(&ann(r#"["cd"]"#)), &trusted));
        assert!(!names_trusted(Some(&ann("not json")), &trusted));
        assert!(!names_trusted(Some("{"), &trusted));
        assert!(!names_trusted(None, &trusted));
    }
}
