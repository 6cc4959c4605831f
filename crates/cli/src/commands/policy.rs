//! `pavilion policy eval` and `pavilion policy test`: Rego policies
//! evaluated locally (regorus), as `opa eval` / `opa test` would.

use crate::exit::{CmdResult, Context, ExitStatus, Failure, UsageError, VerificationError};
use crate::output::{print_json, Output, OutputArgs};
use clap::{Args, Subcommand};
use pavilion_policy::{Point, Policy};
use std::path::PathBuf;

/// Policy operations.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print the decision (deny and warn messages) for an input document;
    /// exit 4 when it denies.
    Eval(EvalArgs),
    /// Run the `test_*` rules of a policy directory, as `opa test` does.
    Test(TestArgs),
}

/// Arguments of `policy eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Directory of .rego files (and .json data).
    #[arg(long, value_name = "DIR")]
    pub policy: PathBuf,
    /// Input document (JSON file, or - for standard input).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "reference",
        conflicts_with = "reference"
    )]
    pub input: Option<String>,
    /// Build the input document from this artifact in its registry
    /// (points push and pull), with its signature verification.
    #[arg(long = "ref", value_name = "REF")]
    pub reference: Option<String>,
    /// Trust policy for the verification in --ref documents [default: notation's].
    #[arg(long, value_name = "FILE", requires = "reference")]
    pub trust_policy: Option<PathBuf>,
    /// Trust store for --ref documents [default: notation's].
    #[arg(long, value_name = "DIR", requires = "reference")]
    pub trust_store: Option<PathBuf>,
    /// Print the input document too (json output).
    #[arg(long)]
    pub show_input: bool,
    /// Use plain HTTP for --ref (automatic for localhost and 127.0.0.1).
    #[arg(long)]
    pub plain_http: bool,
    /// Skip TLS certificate verification for --ref.
    #[arg(long)]
    pub insecure: bool,
    #[command(flatten)]
    pub tls: crate::remote::TlsArgs,
    /// Decision point: rules of package pavilion.<point>.
    #[arg(long, default_value = "push", value_parser = ["push", "pull", "admission", "authz"])]
    pub point: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `policy test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Directory of .rego files (and .json data).
    pub dir: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs a policy subcommand.
pub fn run(cmd: PolicyCommand) -> CmdResult {
    match cmd {
        PolicyCommand::Eval(a) => eval(a),
        PolicyCommand::Test(a) => test(a),
    }
}

/// The rules of `dir`, with the default authorization policy where the
/// directory has none (as `serve` evaluates them).
fn load(dir: &std::path::Path) -> CmdResult<Policy> {
    Policy::load_with_defaults(Some(dir), &[(Point::Authz, pavilion_policy::DEFAULT_AUTHZ)])
        .map_err(|e| UsageError(e.to_string()).into())
}

fn eval(args: EvalArgs) -> CmdResult {
    let point = Point::parse(&args.point)
        .ok_or_else(|| UsageError(format!("unknown point {}", args.point)))?;
    let mut policy = load(&args.policy)?;
    let input: serde_json::Value = match (&args.input, &args.reference) {
        (Some(file), _) => {
            let text = super::manifest::read_input(file)?;
            serde_json::from_slice(&text)
                .map_err(|e| UsageError(format!("{file}: not JSON: {e}")))?
        }
        (None, Some(reference)) => remote_document(point, reference, &args)?,
        (None, None) => return Err(UsageError("give --input or --ref".into()).into()),
    };
    let decision = policy
        .decide(point, &input)
        .with_context(|| format!("evaluating {}", args.policy.display()))?;
    match args.output.format {
        Output::Json => {
            let mut out = serde_json::json!({
                "point": point.name(),
                "allowed": decision.allowed(),
                "deny": decision.deny,
                "warn": decision.warn,
            });
            if args.show_input {
                out["input"] = input.clone();
            }
            print_json(&out)
        }
        Output::Text => {
            println!(
                "{}",
                if decision.allowed() {
                    "allowed"
                } else {
                    "denied"
                }
            );
            for d in &decision.deny {
                println!("  deny: {d}");
            }
            for w in &decision.warn {
                println!("  warn: {w}");
            }
        }
    }
    if decision.allowed() {
        Ok(ExitStatus::Success)
    } else {
        Err(VerificationError(format!(
            "denied by {}: {}",
            args.policy.display(),
            decision.deny.join("; ")
        ))
        .into())
    }
}

/// The input document of a registry artifact at `point`.
fn remote_document(point: Point, reference: &str, args: &EvalArgs) -> CmdResult<serde_json::Value> {
    if point == Point::Admission {
        return Err(UsageError(
            "--ref builds push and pull documents; an admission document comes from an AdmissionReview (--input)".into(),
        )
        .into());
    }
    if point == Point::Authz {
        return Err(UsageError(
            "--ref builds push and pull documents; an authz document comes with --input (docs/POLICY.md)".into(),
        )
        .into());
    }
    let r = crate::remote::parse_ref(reference)?;
    let client = crate::remote::make_client(args.plain_http, args.insecure, &args.tls, None, None)?;
    let trust = pavilion_verify::TrustConfig {
        trust_policy: args.trust_policy.clone(),
        trust_store: args.trust_store.clone(),
    };
    crate::remote::runtime()?.block_on(async {
        let manifest = client
            .get_manifest(&r)
            .await
            .with_context(|| format!("fetching {r}"))?;
        let info = pavilion_oci::ManifestInfo::parse(&manifest.bytes, Some(&manifest.media_type))
            .with_context(|| format!("{r} does not have a usable manifest"))?;
        let remote = pavilion_transfer::Remote {
            client: &client,
            reference: &r,
            asked: reference,
            manifest: &manifest,
            info: &info,
        };
        pavilion_transfer::artifact_document(point, &remote, None, &trust)
            .await
            .map_err(|e| {
                VerificationError(format!("{r}: cannot build the policy input: {e}")).into()
            })
    })
}

fn test(args: TestArgs) -> CmdResult {
    let mut policy = load(&args.dir)?;
    let results = policy.run_tests();
    let failed = results.iter().filter(|r| !r.passed).count();
    match args.output.format {
        Output::Json => print_json(&serde_json::json!({ "tests": results, "failed": failed })),
        Output::Text => {
            for r in &results {
                let status = if r.passed { "PASS" } else { "FAIL" };
                match &r.error {
                    Some(e) => println!("{status} {} ({e})", r.name),
                    None => println!("{status} {}", r.name),
                }
            }
            println!("{} passed, {failed} failed", results.len() - failed);
        }
    }
    if failed > 0 {
        // An error, not a bare status: its message says how many failed.
        return Err(Failure::other(anyhow::anyhow!(
            "{failed} of {} policy tests failed",
            results.len()
        )));
    }
    Ok(ExitStatus::Success)
}
