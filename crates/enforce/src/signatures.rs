//! The registry's signature report (`GET /pavilion/v1/signatures/...`):
//! each stored Notary signature decoded (envelope format, certificate
//! chain, signing time, expiry, scheme) and judged under the server's
//! trust policy with `pavilion_verify::verify_local` on the registry's
//! names, the very call the push and pull gates make
//! ([`crate::gate::PushPolicy`]), so the report and the gates cannot
//! disagree. Decoding is done even without a trust policy: what a
//! signature claims is shown, only its verdict is then absent.

use crate::gate::{found, scopes};
use pavilion_notary::envelope::{format_time, Envelope};
use pavilion_notary::verify::{Expected, Outcome, Report};
use pavilion_notary::x509::Cert;
use pavilion_oci::Descriptor;
use pavilion_registry::signature_hook::{
    SignatureDetail, SignatureInspector, SignatureReport, StepDetail,
};
use pavilion_registry::StoredSignature;
use pavilion_verify::{failures, verify_local, FoundSignature, TrustConfig};
use std::sync::{Arc, OnceLock};

/// Decodes and judges stored signatures for the registry.
pub struct SignatureReview {
    trust: Option<TrustConfig>,
    /// The names the registry is known by: the trust policy scopes, shared
    /// with the gate (set once the listener is bound when defaulted).
    names: Arc<OnceLock<Vec<String>>>,
}

impl SignatureReview {
    /// Judged under `trust` (`None`: decoded only) for the scopes of
    /// `names`.
    pub fn new(trust: Option<TrustConfig>, names: Arc<OnceLock<Vec<String>>>) -> Self {
        SignatureReview { trust, names }
    }
}

impl SignatureInspector for SignatureReview {
    fn inspect(
        &self,
        repository: &str,
        subject: &Descriptor,
        signatures: &[StoredSignature],
    ) -> SignatureReport {
        let found: Vec<Option<FoundSignature>> = signatures.iter().map(found).collect();
        let mut details: Vec<SignatureDetail> = signatures
            .iter()
            .zip(&found)
            .map(|(s, f)| decoded(s, f.as_ref()))
            .collect();
        let Some(trust) = &self.trust else {
            return SignatureReport {
                signatures: details,
                ..Default::default()
            };
        };
        let usable: Vec<FoundSignature> = found.into_iter().flatten().collect();
        let expected = Expected {
            digest: &subject.digest,
            media_type: &subject.media_type,
            size: subject.size,
        };
        let mut report = SignatureReport {
            configured: true,
            ..Default::default()
        };
        match verify_local(trust, &scopes(&self.names, repository), &expected, &usable) {
            Ok(v) => {
                report.trust_policy = Some(v.policy.clone());
                report.verified = Some(v.verified());
                for d in &mut details {
                    match v.reports.iter().find(|(g, _)| g.to_string() == d.digest) {
                        Some((_, r)) => judged(d, r),
                        // Left out of verification: its manifest is not a
                        // Notary signature manifest after all.
                        None if !v.skipped => {
                            d.verified = Some(false);
                            d.failures =
                                vec!["integrity: not a Notary signature manifest".to_string()];
                        }
                        None => {}
                    }
                }
            }
            // No statement for this repository, an unreadable trust store:
            // nothing passes, as at the gates.
            Err(e) => {
                report.verified = Some(false);
                report.error = Some(e.to_string());
            }
        }
        report.signatures = details;
        report
    }
}

/// What a signature claims, read from its manifest and envelope without
/// judging it (an envelope that does not decode leaves the fields empty;
/// verification then says why).
fn decoded(s: &StoredSignature, f: Option<&FoundSignature>) -> SignatureDetail {
    let mut d = SignatureDetail {
        digest: s.digest.to_string(),
        ..Default::default()
    };
    let Some(f) = f else {
        return d;
    };
    let media_type = &f.parsed.envelope.media_type;
    d.media_type = Some(media_type.clone());
    if f.refused.is_some() {
        return d;
    }
    let Ok(env) = Envelope::parse(media_type, &f.envelope) else {
        return d;
    };
    d.chain = env
        .cert_chain
        .iter()
        .filter_map(|der| Cert::from_der(der).ok())
        .map(|c| c.subject())
        .collect();
    d.signer = d.chain.first().cloned();
    let signed = &env.signed;
    d.signing_time = signed
        .signing_time
        .or(signed.authentic_signing_time)
        .map(format_time);
    d.expiry = signed.expiry.map(format_time);
    d.signing_scheme = Some(signed.signing_scheme.as_str().to_string());
    d
}

/// Adds the verification's verdict and steps.
fn judged(d: &mut SignatureDetail, r: &Report) {
    d.verified = Some(r.verified);
    d.failures = failures(r);
    if d.signer.is_none() {
        d.signer = r.signer.clone();
    }
    d.steps = r
        .steps
        .iter()
        .map(|s| {
            let (outcome, detail) = match &s.outcome {
                Outcome::Passed(t) => ("passed", Some(t.clone())),
                Outcome::Failed(t) => ("failed", Some(t.clone())),
                Outcome::NotChecked(t) => ("notChecked", Some(t.clone())),
                Outcome::Skipped => ("skipped", None),
            };
            StepDetail {
                validation: s.validation.name().to_string(),
                action: s.action.name().to_string(),
                outcome: outcome.to_string(),
                detail,
            }
        })
        .collect();
}
