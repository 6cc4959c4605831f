//! Verification of one signature envelope against one trust policy, in the
//! spec's order (trust-store-trust-policy.md, "Signature Verification"):
//! integrity, authenticity, expiry, authentic timestamp, revocation. Each
//! validation is enforced, logged or skipped as the policy's level (and its
//! overrides) says; the first enforced failure ends the verification.
//!
//! What this implementation cannot check is reported as such, never as
//! passed: revocation (OCSP/CRL) is not fetched, so a chain that carries
//! revocation information (the signing chain, or the TSA chain of a
//! timestamp) is "not checked" (a failure where it is enforced); a chain
//! without any is "not revokable", as notation treats it.

use crate::envelope::{Envelope, Payload, SigningScheme};
use crate::x509::{parse_chain, validate_chain, Cert, Purpose};
use time::OffsetDateTime;

use crate::trust_policy::TrustPolicy;
pub use crate::trust_policy::{Action, Validation, VerifyTimestamp};

fn action_name<S: serde::Serializer>(a: &Action, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name())
}

fn validation_name<S: serde::Serializer>(v: &Validation, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.name())
}

/// Result of one validation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "camelCase")]
pub enum Outcome {
    /// It holds.
    Passed(String),
    /// It does not hold.
    Failed(String),
    /// This implementation could not check it (counts as a failure).
    NotChecked(String),
    /// The policy skips it.
    Skipped,
}

impl Outcome {
    fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_) | Outcome::NotChecked(_))
    }
}

/// One line of a verification report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// Which validation.
    #[serde(serialize_with = "validation_name")]
    pub validation: Validation,
    /// What the policy does with it.
    #[serde(serialize_with = "action_name")]
    pub action: Action,
    /// What happened.
    pub outcome: Outcome,
}

/// A trust policy statement with the certificates of its trust stores.
#[derive(Debug, Clone)]
pub struct Requirements {
    /// The statement that applies (actions, identities, timestamp rule).
    pub policy: TrustPolicy,
    /// Certificates of its `ca` stores (DER).
    pub ca: Vec<Vec<u8>>,
    /// Certificates of its `signingAuthority` stores (DER).
    pub signing_authority: Vec<Vec<u8>>,
    /// Certificates of its `tsa` stores (DER).
    pub tsa: Vec<Vec<u8>>,
}

/// The artifact the signature must be about.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// Its digest.
    pub digest: &'a pavilion_oci::Digest,
    /// Its media type.
    pub media_type: &'a str,
    /// Its size.
    pub size: u64,
}

/// The report of one signature's verification.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Validations performed, in order.
    pub steps: Vec<Step>,
    /// True when no enforced validation failed.
    pub verified: bool,
    /// Signing certificate subject, when the envelope decoded.
    pub signer: Option<String>,
    /// The signed payload, when integrity held.
    #[serde(skip)]
    pub payload: Option<Payload>,
}

struct Run {
    steps: Vec<Step>,
}

impl Run {
    /// Records a step; returns false when it ends the verification.
    fn record(&mut self, validation: Validation, action: Action, outcome: Outcome) -> bool {
        let stop = action == Action::Enforce && outcome.is_failure();
        self.steps.push(Step {
            validation,
            action,
            outcome,
        });
        !stop
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    crate::envelope::format_time(t)
}

impl Report {
    /// The report of a signature refused before decoding (an oversized or
    /// unreadable envelope): an integrity failure.
    pub fn refused(why: String) -> Report {
        Report {
            steps: vec![Step {
                validation: Validation::Integrity,
                action: Action::Enforce,
                outcome: Outcome::Failed(why),
            }],
            verified: false,
            signer: None,
            payload: None,
        }
    }
}

/// Verifies one envelope (`media_type`, `bytes`) for the `expected`
/// artifact under `req`, at time `now`.
pub fn verify(
    media_type: &str,
    bytes: &[u8],
    expected: &Expected<'_>,
    req: &Requirements,
    now: OffsetDateTime,
) -> Report {
    let mut run = Run { steps: Vec::new() };
    let done = |run: Run, signer, payload| {
        let verified = !run
            .steps
            .iter()
            .any(|s| s.action == Action::Enforce && s.outcome.is_failure());
        Report {
            steps: run.steps,
            verified,
            signer,
            payload,
        }
    };
    let actions = &req.policy.verification;
    // 1. Integrity (always enforced).
    let integrity = (|| -> Result<(Envelope, Payload, Vec<Cert>), String> {
        let env = Envelope::parse(media_type, bytes).map_err(|e| e.to_string())?;
        let payload = env.verify_integrity().map_err(|e| e.to_string())?;
        if let Some(p) = &env.signed.verification_plugin {
            return Err(format!(
                "the signature requires verification plugin {p:?}, which Pavilion does not run"
            ));
        }
        let t = &payload.target_artifact;
        if &t.digest != expected.digest
            || t.media_type != expected.media_type
            || t.size != expected.size
        {
            return Err(format!(
                "the signature is for {} ({}, {} bytes), not for {} ({}, {} bytes)",
                t.digest, t.media_type, t.size, expected.digest, expected.media_type, expected.size
            ));
        }
        let certs = parse_chain(&env.cert_chain).map_err(|e| e.to_string())?;
        Ok((env, payload, certs))
    })();
    let (env, payload, certs) = match integrity {
        Ok(v) => v,
        Err(why) => {
            run.record(Validation::Integrity, Action::Enforce, Outcome::Failed(why));
            return done(run, None, None);
        }
    };
    let signer = certs.first().map(Cert::subject);
    run.record(
        Validation::Integrity,
        Action::Enforce,
        Outcome::Passed(format!("{} signature verifies", env.signed.alg.jws_name())),
    );
    // 2. Authenticity.
    if actions.authenticity != Action::Skip
        && !run.record(
            Validation::Authenticity,
            actions.authenticity,
            authenticity(&env, &certs, req),
        )
    {
        return done(run, signer, Some(payload));
    }
    // 3. Expiry.
    let expiry = match env.signed.expiry {
        _ if actions.expiry == Action::Skip => Outcome::Skipped,
        Some(t) if now >= t => Outcome::Failed(format!("the signature expired at {}", rfc3339(t))),
        Some(t) => Outcome::Passed(format!("valid until {}", rfc3339(t))),
        None => Outcome::Passed("the signature has no expiry".into()),
    };
    if !run.record(Validation::Expiry, actions.expiry, expiry) {
        return done(run, signer, Some(payload));
    }
    // 4. Authentic timestamp.
    if actions.authentic_timestamp != Action::Skip
        && !run.record(
            Validation::AuthenticTimestamp,
            actions.authentic_timestamp,
            authentic_timestamp(&env, &certs, req, now),
        )
    {
        return done(run, signer, Some(payload));
    }
    // 5. Revocation.
    let revocation = if actions.revocation == Action::Skip {
        Outcome::Skipped
    } else if certs.iter().any(Cert::has_revocation_info) {
        Outcome::NotChecked(
            "the chain names OCSP/CRL services, and Pavilion does not check revocation yet".into(),
        )
    } else {
        Outcome::Passed("no certificate of the chain is revocable (no OCSP or CRL)".into())
    };
    run.record(Validation::Revocation, actions.revocation, revocation);
    done(run, signer, Some(payload))
}

fn authenticity(env: &Envelope, certs: &[Cert], req: &Requirements) -> Outcome {
    if let Err(e) = validate_chain(certs, Purpose::CodeSigning, None) {
        return Outcome::Failed(e.to_string());
    }
    let (anchors, store) = match env.signed.signing_scheme {
        SigningScheme::X509 => (&req.ca, "ca"),
        SigningScheme::SigningAuthority => (&req.signing_authority, "signingAuthority"),
    };
    let trusted = certs.iter().find(|c| anchors.iter().any(|a| a == c.der()));
    let Some(anchor) = trusted else {
        return Outcome::Failed(format!(
            "no certificate of the chain is in the policy's {store} trust stores"
        ));
    };
    let leaf = &certs[0];
    if req.policy.trusts_subject(&leaf.subject_attributes()) {
        Outcome::Passed(format!(
            "{} is trusted via {}",
            leaf.subject(),
            anchor.subject()
        ))
    } else {
        Outcome::Failed(format!(
            "signer {} is not among the policy's trusted identities",
            leaf.subject()
        ))
    }
}

/// Verifies the RFC 3161 countersignature against the `tsa` stores and
/// checks that its whole time range lies within the signing chain's
/// validity. The TSA chain's revocation is not fetched: when that chain
/// names OCSP/CRL services and revocation is not skipped, the result is
/// "not checked" (notation, offline, fails there too).
fn timestamp_outcome(token: &[u8], env: &Envelope, certs: &[Cert], req: &Requirements) -> Outcome {
    let ts = match crate::timestamp::verify_token(token, &env.signature, &req.tsa) {
        Ok(ts) => ts,
        Err(e) => return Outcome::Failed(format!("timestamp countersignature: {e}")),
    };
    let (lower, upper) = (ts.lower(), ts.upper());
    if let Some(c) = certs
        .iter()
        .find(|c| c.not_before() > lower || upper > c.not_after())
    {
        return Outcome::Failed(format!(
            "timestamp {} (±{} s) lies outside the validity of {} ({} to {})",
            rfc3339(ts.gen_time),
            ts.accuracy.whole_seconds(),
            c.subject(),
            rfc3339(c.not_before()),
            rfc3339(c.not_after())
        ));
    }
    let at = format!(
        "signed at {} by a trusted TSA, within the chain's validity",
        rfc3339(ts.gen_time)
    );
    if req.policy.verification.revocation != Action::Skip
        && ts.tsa_chain.iter().any(Cert::has_revocation_info)
    {
        return Outcome::NotChecked(format!(
            "{at}; but the TSA chain's revocation (OCSP/CRL) was not checked"
        ));
    }
    Outcome::Passed(at)
}

fn authentic_timestamp(
    env: &Envelope,
    certs: &[Cert],
    req: &Requirements,
    now: OffsetDateTime,
) -> Outcome {
    let chain_valid_at = |t: OffsetDateTime| certs.iter().all(|c| c.valid_at(t));
    match env.signed.signing_scheme {
        SigningScheme::SigningAuthority => match env.signed.authentic_signing_time {
            Some(t) if chain_valid_at(t) => Outcome::Passed(format!(
                "authentic signing time {} lies within the chain's validity",
                rfc3339(t)
            )),
            Some(t) => Outcome::Failed(format!(
                "authentic signing time {} lies outside the chain's validity",
                rfc3339(t)
            )),
            None => Outcome::Failed("no authentic signing time".into()),
        },
        SigningScheme::X509 => {
            let expired = !chain_valid_at(now);
            let wants_tst = req.policy.timestamp_verification_configured()
                && (req.policy.verify_timestamp == VerifyTimestamp::Always || expired);
            if wants_tst {
                let Some(token) = &env.timestamp else {
                    return Outcome::Failed(
                        "the policy requires a timestamp countersignature and there is none".into(),
                    );
                };
                return timestamp_outcome(token, env, certs, req);
            }
            if expired {
                let c = certs.iter().find(|c| !c.valid_at(now));
                Outcome::Failed(match c {
                    Some(c) => format!(
                        "certificate {} is not valid now (valid {} to {})",
                        c.subject(),
                        rfc3339(c.not_before()),
                        rfc3339(c.not_after())
                    ),
                    None => "the chain is not valid now".into(),
                })
            } else {
                Outcome::Passed("the signing chain is valid now".into())
            }
        }
    }
}
