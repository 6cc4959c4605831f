//! `pavilion copy SRC DST`: between registries and OCI layout directories
//! (`oci:PATH[:TAG]`), with `--recursive` carrying referrers along.

use crate::exit::{CmdResult, Context, ExitStatus, UsageError};
use crate::output::{json_progress, print_json, progress_bar, Output};
use crate::remote::{runtime, RemoteArgs};
use clap::Args;
use pavilion_client::copy::{copy, CopyOptions, Endpoint};

/// Arguments of `pavilion copy`.
#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Source: a registry reference, or oci:PATH[:TAG|@DIGEST].
    pub source: String,
    /// Destination: a registry reference, or oci:PATH[:TAG].
    pub destination: String,
    /// Also copy referrers (signatures, SBOMs, ...) and theirs.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

fn endpoint(s: &str) -> CmdResult<Endpoint> {
    s.parse::<Endpoint>()
        .map_err(|e| UsageError(e.to_string()).into())
}

/// Runs `pavilion copy`.
pub fn run(args: CopyArgs) -> CmdResult {
    let src = endpoint(&args.source)?;
    let dst = endpoint(&args.destination)?;
    let bar = progress_bar(0, args.remote.output.format);
    let _progress = json_progress(&bar, args.remote.output.format, "copy", dst.to_string());
    let client = args.remote.client_with_progress(&bar)?;
    let opts = CopyOptions {
        recursive: args.recursive,
        concurrency: args.remote.concurrency(),
    };
    let report = runtime()?
        .block_on(copy(&client, &src, &dst, opts))
        .with_context(|| format!("copying {src} to {dst}"))?;
    bar.finish_and_clear();
    match args.remote.output.format {
        Output::Text => {
            println!("{}", report.digest);
            eprintln!(
                "copied {src} to {dst}: {} manifests, {} blobs ({} bytes) sent, {} already there, {} mounted{}",
                report.manifests,
                report.blobs_copied,
                report.bytes,
                report.blobs_skipped,
                report.blobs_mounted,
                if args.recursive {
                    format!(", {} referrers", report.referrers)
                } else {
                    String::new()
                }
            );
        }
        Output::Json => print_json(&serde_json::to_value(&report)?),
    }
    Ok(ExitStatus::Success)
}
