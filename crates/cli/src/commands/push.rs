//! `pavilion push REF PATH...`: a model directory as a ModelPack artifact,
//! or plain files as an ORAS-style artifact with `--artifact-type`. The
//! transfer is `pavilion_transfer::Push`; this command parses, shows
//! progress and prints what was sent.

use crate::exit::{CmdResult, Context, ExitStatus, Failure};
use crate::output::{json_progress, print_json, progress_bar, BarProgress, Output};
use crate::remote::{runtime, RemoteArgs};
use clap::Args;
use pavilion_client::digest_cache::{default_cache_dir, DigestCache};
use pavilion_client::upload_journal::UploadJournal;
use pavilion_model::ModelInfo;
use pavilion_oci::ImageRef;
use pavilion_transfer::{Content, Push, Sent};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `pavilion push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Where to push, e.g. 127.0.0.1:5000/team/model:v1.
    pub reference: String,
    /// A model directory, or files with --artifact-type.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Push the files as an ORAS-style artifact of this type instead of a model.
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: Option<String>,
    /// Model name (descriptor.name) [default: the directory's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Model version (descriptor.version).
    #[arg(long)]
    pub version: Option<String>,
    /// Model family, e.g. llama3 (descriptor.family).
    #[arg(long)]
    pub family: Option<String>,
    /// SPDX license (descriptor.licenses), repeatable.
    #[arg(long = "license")]
    pub licenses: Vec<String>,
    /// Architecture, e.g. transformer (config.architecture).
    #[arg(long)]
    pub architecture: Option<String>,
    /// Weight format [default: detected].
    #[arg(long)]
    pub format: Option<String>,
    /// Parameter size such as 8b [default: counted from safetensors headers].
    #[arg(long)]
    pub param_size: Option<String>,
    /// Precision such as bf16 [default: the dominant safetensors dtype].
    #[arg(long)]
    pub precision: Option<String>,
    /// Quantization such as Q4_K_M or awq.
    #[arg(long)]
    pub quantization: Option<String>,
    /// Mount blobs the registry holds in this repository instead of uploading them.
    #[arg(long, value_name = "REPO")]
    pub from: Option<String>,
    /// Where known file digests are remembered, so unchanged files are not re-read [default: ~/.cache/pavilion].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Runs `pavilion push`.
pub fn run(args: PushArgs) -> CmdResult {
    let r: ImageRef = args
        .reference
        .parse()
        .with_context(|| format!("invalid reference {:?}", args.reference))?;
    let content = match &args.artifact_type {
        Some(t) => Content::Files {
            artifact_type: t.clone(),
            paths: args.paths.clone(),
        },
        None => {
            let [dir] = args.paths.as_slice() else {
                return Err(Failure::other(anyhow::anyhow!(
                    "a model push takes one directory (use --artifact-type to push files)"
                )));
            };
            Content::Model {
                dir: dir.clone(),
                info: ModelInfo {
                    name: args.name.clone(),
                    version: args.version.clone(),
                    family: args.family.clone(),
                    licenses: args.licenses.clone(),
                    architecture: args.architecture.clone(),
                    format: args.format.clone(),
                    param_size: args.param_size.clone(),
                    precision: args.precision.clone(),
                    quantization: args.quantization.clone(),
                },
            }
        }
    };
    let output = args.remote.output.format;
    let bar = progress_bar(0, output);
    let _progress = json_progress(&bar, output, "upload", r.to_string());
    let cache_dir = args.cache_dir.clone().or_else(default_cache_dir);
    // Open upload sessions are remembered beside the digests, so a push
    // that was killed continues from the registry's offset when re-run.
    let journal = cache_dir
        .as_deref()
        .map(|d| Arc::new(UploadJournal::open(d)));
    let client = args.remote.client_with(&bar, journal)?;
    let digests = cache_dir
        .as_deref()
        .map_or_else(DigestCache::in_memory, DigestCache::open);
    let push = Push::new(&client, r, content)
        .mount_from(args.from.clone())
        .digests(digests)
        .concurrency(args.remote.concurrency());
    let report = runtime()?.block_on(push.run(&BarProgress(bar.clone())))?;
    bar.finish_and_clear();
    let (r, digest, total) = (&report.reference, &report.digest, report.bytes());
    let (uploaded, present, mounted) = (
        report.count(Sent::Uploaded),
        report.count(Sent::Present),
        report.count(Sent::Mounted),
    );
    match output {
        Output::Text => println!(
            "pushed {r}@{digest} ({} files, {total} bytes: {uploaded} uploaded, {present} already present, {mounted} mounted)",
            report.files.len()
        ),
        Output::Json => print_json(&serde_json::json!({
            "reference": r.to_string(),
            "digest": digest.to_string(),
            "files": report.files.iter().map(|f| f.0.display().to_string()).collect::<Vec<_>>(),
            "bytes": total,
            "uploaded": uploaded,
            "present": present,
            "mounted": mounted,
        })),
    }
    Ok(ExitStatus::Success)
}
