//! `pavilion blob get|put|delete`: single blobs by digest.

use super::manifest::read_input;
use crate::exit::{CmdResult, Context, ExitStatus, Failure, UsageError};
use crate::output::{print_json, progress_bar, Output};
use crate::remote::{parse_ref, runtime, ConnArgs, RemoteArgs};
use clap::{Args, Subcommand};
use futures::StreamExt;
use pavilion_oci::ImageRef;
use std::io::Write;
use std::path::PathBuf;

/// Blob operations.
#[derive(Subcommand, Debug)]
pub enum BlobCommand {
    /// Download a blob, verified (to a file: parallel ranges, resumable).
    Get(GetArgs),
    /// Upload a file (or - for standard input) as a blob; prints its digest.
    Put(PutArgs),
    /// Delete a blob.
    Delete(DeleteArgs),
}

/// Arguments of `blob get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// REPO@DIGEST.
    pub reference: String,
    /// Output file; standard output when absent or `-`.
    #[arg(short = 'o', long = "output-file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Arguments of `blob put`.
#[derive(Args, Debug)]
pub struct PutArgs {
    /// The repository, e.g. 127.0.0.1:5000/team/model.
    pub repository: String,
    /// The file, or - for standard input.
    pub file: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Arguments of `blob delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// REPO@DIGEST.
    pub reference: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn pinned(s: &str) -> CmdResult<(ImageRef, pavilion_oci::Digest)> {
    let r = parse_ref(s)?;
    let d = r
        .digest
        .clone()
        .ok_or_else(|| UsageError(format!("{s}: a blob is named by REPO@DIGEST")))?;
    Ok((r, d))
}

/// Runs a blob subcommand.
pub fn run(cmd: BlobCommand) -> CmdResult {
    match cmd {
        BlobCommand::Get(a) => get(a),
        BlobCommand::Put(a) => put(a),
        BlobCommand::Delete(a) => delete(a),
    }
}

fn get(args: GetArgs) -> CmdResult {
    let (r, d) = pinned(&args.reference)?;
    let to_file = args.file.filter(|f| f.as_os_str() != "-");
    let bar = progress_bar(
        0,
        if to_file.is_some() {
            args.remote.output.format
        } else {
            Output::Json
        },
    );
    let client = args.remote.client_with_progress(&bar)?;
    let parallel = args.remote.concurrency();
    runtime()?
        .block_on(async {
            match &to_file {
                Some(path) => {
                    let size = client.blob_exists(&r, &d).await?.ok_or_else(|| {
                        pavilion_client::ClientError::NotFound(format!("blob {r}"))
                    })?;
                    bar.set_length(size);
                    client.pull_blob_file(&r, &d, size, path, parallel).await?;
                }
                None => {
                    let mut stream = client.blob_stream(&r, &d).await?;
                    let mut out = std::io::stdout().lock();
                    while let Some(chunk) = stream.next().await {
                        out.write_all(&chunk?)?;
                    }
                    out.flush()?;
                }
            }
            Ok::<_, Failure>(())
        })
        .with_context(|| format!("fetching blob {r}"))?;
    bar.finish_and_clear();
    Ok(ExitStatus::Success)
}

fn put(args: PutArgs) -> CmdResult {
    let r = parse_ref(&args.repository)?;
    let bar = progress_bar(0, args.remote.output.format);
    let client = args.remote.client_with_progress(&bar)?;
    let (digest, size) = runtime()?
        .block_on(async {
            if args.file == "-" {
                let bytes = read_input("-")?;
                let size = bytes.len() as u64;
                Ok::<_, Failure>((client.push_blob_bytes(&r, bytes.into()).await?, size))
            } else {
                let path = std::path::Path::new(&args.file);
                bar.set_length(
                    std::fs::metadata(path)
                        .with_context(|| format!("reading {}", args.file))?
                        .len(),
                );
                Ok(client.push_blob_file(&r, path).await?)
            }
        })
        .with_context(|| format!("uploading {} to {}/{}", args.file, r.registry, r.repository))?;
    bar.finish_and_clear();
    match args.remote.output.format {
        Output::Text => println!("{digest}"),
        Output::Json => print_json(&serde_json::json!({
            "digest": digest.to_string(),
            "size": size,
        })),
    }
    Ok(ExitStatus::Success)
}

fn delete(args: DeleteArgs) -> CmdResult {
    let (r, d) = pinned(&args.reference)?;
    let client = args.conn.client()?;
    runtime()?
        .block_on(client.delete_blob(&r, &d))
        .with_context(|| format!("deleting blob {r}"))?;
    match args.conn.output.format {
        Output::Text => println!("deleted {r}"),
        Output::Json => print_json(&serde_json::json!({ "deleted": r.to_string() })),
    }
    Ok(ExitStatus::Success)
}
