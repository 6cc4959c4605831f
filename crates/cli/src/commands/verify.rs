//! `pavilion verify REF`: the artifact's Notary signatures checked against
//! notation's trust policy and trust store (by default notation's own files),
//! a result per validation, and exit code 4 when verification fails.

use crate::exit::{CmdResult, ExitStatus, VerificationError};
use crate::output::{print_json, Output};
use crate::remote::{parse_ref, runtime, ConnArgs};
use clap::Args;
use pavilion_notary::verify::Outcome;
use pavilion_verify::verify_remote;
use pavilion_verify::TrustConfig;
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

fn outcome_text(o: &Outcome) -> (&'static str, String) {
    match o {
        Outcome::Passed(d) => ("passed", d.clone()),
        Outcome::Failed(d) => ("FAILED", d.clone()),
        Outcome::NotChecked(d) => ("not checked", d.clone()),
        Outcome::Skipped => ("skipped", String::new()),
    }
}

/// Runs `pavilion verify`.
pub fn run(args: VerifyArgs) -> CmdResult {
    let r = parse_ref(&args.reference)?;
    let client = args.conn.client()?;
    let trust = TrustConfig {
        trust_policy: args.trust_policy,
        trust_store: args.trust_store,
    };
    let v = runtime()?.block_on(verify_remote(&client, &r, &trust))?;
    match args.conn.output.format {
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
        Ok(ExitStatus::Success)
    } else {
        Err(VerificationError(format!(
            "{}: no signature passes the trust policy {:?}",
            v.reference, v.policy
        ))
        .into())
    }
}
