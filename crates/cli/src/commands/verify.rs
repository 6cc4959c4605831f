//! `pavilion verify REF`: the artifact's Notary signatures checked against
//! notation's trust policy and trust store (by default notation's own files),
//! a result per validation, and exit code 4 when verification fails.

use super::sign::{find_signatures, FoundSignature};
use super::transfer::{parse_ref, print_json, runtime, ConnArgs, Output};
use crate::exit::VerificationError;
use anyhow::{Context, Result};
use clap::Args;
use pavilion_notary::trust::{load_requirements, Resolved};
use pavilion_notary::verify::{verify, Expected, Outcome, Report};
use pavilion_oci::{Digest, ImageRef};
use std::path::PathBuf;

/// Arguments of `pavilion verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// REPO:TAG or REPO@DIGEST.
    pub reference: String,
    /// Trust policy file [default: notation's trustpolicy.oci.json, else trustpolicy.json].
    #[arg(long, value_name = "FILE")]
    pub trust_policy: Option<PathBuf>,
    /// Trust store directory (holding x509/{ca,signingAuthority,tsa}/NAME/)
    /// [default: notation's].
    #[arg(long, value_name = "DIR")]
    pub trust_store: Option<PathBuf>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// The outcome of verifying an artifact's signatures.
pub struct ArtifactVerification {
    /// The artifact, pinned.
    pub reference: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// The policy that applied.
    pub policy: String,
    /// Each signature's report, with its manifest digest.
    pub reports: Vec<(Digest, Report)>,
    /// Whether the policy skips verification.
    pub skipped: bool,
}

impl ArtifactVerification {
    /// Verified when the policy skips, or one signature passes (notation's rule).
    pub fn verified(&self) -> bool {
        self.skipped || self.reports.iter().any(|(_, r)| r.verified)
    }
}

/// Verifies the signatures of `r` (resolved to a digest) under the policy.
pub async fn verify_artifact(
    client: &pavilion_client::Client,
    r: &ImageRef,
    trust_policy: Option<&std::path::Path>,
    trust_store: Option<&std::path::Path>,
) -> Result<ArtifactVerification> {
    let m = client
        .get_manifest(r)
        .await
        .with_context(|| format!("fetching {r}"))?;
    let pinned = format!("{}/{}@{}", r.registry, r.repository, m.digest);
    let scope = format!("{}/{}", r.registry, r.repository);
    let resolved = load_requirements(trust_policy, trust_store, &scope)
        .map_err(|e| VerificationError(format!("trust policy: {e}")))?;
    let (policy, req) = match resolved {
        Resolved::Skip { policy } => {
            return Ok(ArtifactVerification {
                reference: pinned,
                digest: m.digest,
                policy,
                reports: Vec::new(),
                skipped: true,
            })
        }
        Resolved::Verify {
            policy,
            requirements,
        } => (policy, requirements),
    };
    let found: Vec<FoundSignature> = find_signatures(client, r, &m.digest).await?;
    let now = time::OffsetDateTime::now_utc();
    let size = m.bytes.len() as u64;
    let reports = found
        .iter()
        .map(|f| {
            let expected = Expected {
                digest: &m.digest,
                media_type: &m.media_type,
                size,
            };
            let report = match &f.refused {
                Some(why) => Report::refused(why.clone()),
                None => verify(
                    &f.parsed.envelope.media_type,
                    &f.envelope,
                    &expected,
                    &req,
                    now,
                ),
            };
            (f.manifest.digest.clone(), report)
        })
        .collect();
    Ok(ArtifactVerification {
        reference: pinned,
        digest: m.digest.clone(),
        policy,
        reports,
        skipped: false,
    })
}

fn outcome_text(o: &Outcome) -> (&'static str, String) {
    match o {
        Outcome::Passed(d) => ("passed", d.clone()),
        Outcome::Failed(d) => ("FAILED", d.clone()),
        Outcome::NotChecked(d) => ("not checked", d.clone()),
        Outcome::Skipped => ("skipped", String::new()),
    }
}

/// Runs `pavilion verify`.
pub fn run(args: VerifyArgs) -> Result<()> {
    let r = parse_ref(&args.reference)?;
    let client = args.conn.client()?;
    let v = runtime()?.block_on(verify_artifact(
        &client,
        &r,
        args.trust_policy.as_deref(),
        args.trust_store.as_deref(),
    ))?;
    match args.conn.output {
        Output::Json => print_json(&serde_json::json!({
            "reference": v.reference,
            "policy": v.policy,
            "verified": v.verified(),
            "skipped": v.skipped,
            "signatures": v.reports.iter().map(|(d, rep)| serde_json::json!({
                "digest": d.to_string(),
                "verified": rep.verified,
                "signer": rep.signer,
                "validations": rep.steps,
            })).collect::<Vec<_>>(),
        })),
        Output::Text => {
            println!("{} (trust policy {:?})", v.reference, v.policy);
            if v.skipped {
                println!("  verification skipped by the trust policy");
            }
            if !v.skipped && v.reports.is_empty() {
                println!("  no signatures found");
            }
            for (d, rep) in &v.reports {
                println!(
                    "  signature {d}: {}{}",
                    if rep.verified {
                        "verified"
                    } else {
                        "NOT verified"
                    },
                    rep.signer
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                );
                for s in &rep.steps {
                    let (word, detail) = outcome_text(&s.outcome);
                    println!(
                        "    {:<20} {:<12} {word}{}",
                        format!("{:?}", s.validation),
                        format!("[{:?}]", s.action).to_lowercase(),
                        if detail.is_empty() {
                            String::new()
                        } else {
                            format!(": {detail}")
                        }
                    );
                }
            }
        }
    }
    if v.verified() {
        Ok(())
    } else {
        Err(VerificationError(format!(
            "{}: no signature passes the trust policy {:?}",
            v.reference, v.policy
        ))
        .into())
    }
}
