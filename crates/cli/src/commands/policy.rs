//! `pavilion policy eval` and `pavilion policy test`: Rego policies
//! evaluated locally (regorus), as `opa eval` / `opa test` would.

use super::transfer::{print_json, Output};
use crate::exit::{UsageError, VerificationError};
use anyhow::{Context, Result};
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
    #[arg(long, value_name = "FILE")]
    pub input: String,
    /// Decision point: rules of package pavilion.<point>.
    #[arg(long, default_value = "push", value_parser = ["push", "pull", "admission"])]
    pub point: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `policy test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Directory of .rego files (and .json data).
    pub dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Runs a policy subcommand.
pub fn run(cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Eval(a) => eval(a),
        PolicyCommand::Test(a) => test(a),
    }
}

fn load(dir: &std::path::Path) -> Result<Policy> {
    Policy::load(dir).map_err(|e| UsageError(e.to_string()).into())
}

fn eval(args: EvalArgs) -> Result<()> {
    let point = Point::parse(&args.point)
        .ok_or_else(|| UsageError(format!("unknown point {}", args.point)))?;
    let mut policy = load(&args.policy)?;
    let text = super::manifest::read_input(&args.input)?;
    let input: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| UsageError(format!("{}: not JSON: {e}", args.input)))?;
    let decision = policy
        .decide(point, &input)
        .with_context(|| format!("evaluating {}", args.policy.display()))?;
    match args.output {
        Output::Json => print_json(&serde_json::json!({
            "point": point.name(),
            "allowed": decision.allowed(),
            "deny": decision.deny,
            "warn": decision.warn,
        })),
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
        Ok(())
    } else {
        Err(VerificationError(format!(
            "denied by {}: {}",
            args.policy.display(),
            decision.deny.join("; ")
        ))
        .into())
    }
}

fn test(args: TestArgs) -> Result<()> {
    let mut policy = load(&args.dir)?;
    let results = policy.run_tests();
    let failed = results.iter().filter(|r| !r.passed).count();
    match args.output {
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
        anyhow::bail!("{failed} of {} policy tests failed", results.len());
    }
    Ok(())
}
