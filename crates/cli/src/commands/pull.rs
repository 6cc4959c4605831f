//! `pavilion pull REF -o DIR`: the model's files, verified, into a
//! directory. The transfer is `pavilion_transfer::Pull`; this command
//! parses, shows progress and prints what was placed.

use crate::exit::{CmdResult, Context, ExitStatus};
use crate::output::{json_progress, print_json, progress_bar, Output};
use crate::remote::{runtime, RemoteArgs};
use clap::Args;
use pavilion_client::digest_cache::default_cache_dir;
use pavilion_oci::ImageRef;
use pavilion_transfer::{Pull, Source};
use pavilion_verify::TrustConfig;
use std::path::PathBuf;

/// Arguments of `pavilion pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// What to pull, e.g. 127.0.0.1:5000/team/model:v1.
    pub reference: String,
    /// Output directory (created if missing).
    #[arg(
        short = 'o',
        long = "output-dir",
        value_name = "DIR",
        default_value = "."
    )]
    pub dir: PathBuf,
    /// Only files whose path matches this glob (`*`, `?`, `[a-z]`, `{a,b}`; `*`
    /// also matches `/`), repeatable.
    #[arg(long = "include", value_name = "GLOB")]
    pub include: Vec<String>,
    /// Local content cache shared between pulls (files are placed from it by
    /// reflink or hardlink) [default: ~/.cache/pavilion].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Neither use nor fill the local content cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Verify the artifact's Notary signatures against the trust policy
    /// first; nothing is written unless verification passes.
    #[arg(long)]
    pub verify: bool,
    /// Trust policy for --verify and --policy [default: notation's].
    #[arg(long, value_name = "FILE")]
    pub trust_policy: Option<PathBuf>,
    /// Trust store for --verify and --policy [default: notation's].
    #[arg(long, value_name = "DIR")]
    pub trust_store: Option<PathBuf>,
    /// Rego policies (package pavilion.pull) decided before any file is
    /// written; the input carries the signature verification result.
    #[arg(long, value_name = "DIR")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Runs `pavilion pull`.
pub fn run(args: PullArgs) -> CmdResult {
    let r: ImageRef = args
        .reference
        .parse()
        .with_context(|| format!("invalid reference {:?}", args.reference))?;
    let bar = progress_bar(0, args.remote.output.format);
    let _progress = json_progress(&bar, args.remote.output.format, "download", r.to_string());
    let client = args.remote.client_with_progress(&bar)?;
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(default_cache_dir)
    };
    let pull = Pull::new(&client, r)
        .include(args.include.clone())
        .cache_dir(cache_dir)
        .verify(args.verify)
        .trust(TrustConfig {
            trust_policy: args.trust_policy.clone(),
            trust_store: args.trust_store.clone(),
        })
        .policy(args.policy.clone())
        .concurrency(args.remote.concurrency());
    let shown = crate::output::BarProgress(bar.clone());
    let report = runtime()?.block_on(pull.run(&args.dir, &shown))?;
    bar.finish_and_clear();
    let r = &report.reference;
    match args.remote.output.format {
        Output::Text => {
            for f in &report.files {
                println!("{}\t{}", f.path, f.size);
            }
            eprintln!(
                "pulled {}/{}@{} ({} files: {} downloaded, {} from the local cache, {} already in place) into {}",
                r.registry,
                r.repository,
                report.digest,
                report.files.len(),
                report.count(Source::Pulled),
                report.count(Source::Cached),
                report.count(Source::Present),
                args.dir.display()
            );
        }
        Output::Json => print_json(&serde_json::json!({
            "reference": r.to_string(),
            "digest": report.digest.to_string(),
            "files": report.files.iter().map(|f| serde_json::json!({
                "path": f.path,
                "size": f.size,
                "source": f.source.as_str(),
            })).collect::<Vec<_>>(),
        })),
    }
    Ok(ExitStatus::Success)
}
