//! The registry's push gate: `pavilion serve --policy DIR` turns every
//! manifest PUT into a `push` input document (with the verification of the
//! Notary signatures already stored for the manifest, so a rule can guard
//! tags such as `prod` behind a valid signature) and asks the Rego rules.

use crate::policies::PolicySet;
use crate::verification::{verify_local, FoundSignature, TrustConfig};
use pavilion_notary::signature_manifest::SignatureManifest;
use pavilion_notary::verify::Expected;
use pavilion_oci::Descriptor;
use pavilion_policy::input::{self, Artifact, Verification};
use pavilion_policy::Point;
use pavilion_registry::{GateDecision, PushFacts, PushGate, StoredSignature};
use std::sync::Arc;

/// Rego rules plus, optionally, the trust policy signatures are checked against.
pub struct PushPolicy {
    policies: Arc<PolicySet>,
    trust: Option<TrustConfig>,
}

impl PushPolicy {
    /// A gate over `policies`; without `trust`, `input.signature.verified`
    /// is always false and says why.
    pub fn new(policies: Arc<PolicySet>, trust: Option<TrustConfig>) -> Self {
        PushPolicy { policies, trust }
    }

    fn signature(&self, f: &PushFacts) -> Verification {
        let Some(trust) = &self.trust else {
            return Verification {
                error: Some("no trust policy configured (serve --trust-policy)".into()),
                ..Default::default()
            };
        };
        let found: Vec<FoundSignature> = f.signatures.iter().filter_map(found).collect();
        // The scope a client signing this repository used: the host it
        // addressed, then the repository.
        let host = f.host.as_deref().unwrap_or("localhost");
        let scope = format!("{host}/{}", f.repository);
        let expected = Expected {
            digest: &f.digest,
            media_type: &f.media_type,
            size: f.manifest.len() as u64,
        };
        match verify_local(trust, &scope, &expected, &found) {
            Ok(v) => v.to_input(),
            Err(e) => Verification {
                error: Some(e.to_string()),
                ..Default::default()
            },
        }
    }
}

/// A stored signature in the form verification takes; `None` when its
/// manifest is not a Notary signature manifest after all.
fn found(s: &StoredSignature) -> Option<FoundSignature> {
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

impl PushGate for PushPolicy {
    /// Without a trust policy nothing is verified: the registry need not
    /// read the stored signatures.
    fn uses_signatures(&self) -> bool {
        self.trust.is_some()
    }

    fn decide_push(&self, f: &PushFacts) -> Result<GateDecision, String> {
        let manifest = serde_json::from_slice(&f.manifest).unwrap_or(serde_json::Value::Null);
        let config = f
            .config
            .as_ref()
            .and_then(|c| serde_json::from_slice(c).ok());
        let digest = f.digest.to_string();
        let artifact = Artifact {
            repository: &f.repository,
            digest: &digest,
            media_type: &f.media_type,
            manifest,
            config,
        };
        let signature = self.signature(f);
        let doc = input::push(&artifact, &f.tags, f.identity.as_deref(), &signature);
        let d = self
            .policies
            .decide(Point::Push, &doc)
            .map_err(|e| e.to_string())?;
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
