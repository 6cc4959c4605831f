//! `pavilion manifest get|put|delete`: manifests as raw bytes.

use crate::exit::{CmdResult, Context, ExitStatus, UsageError};
use crate::output::{print_json, Output};
use crate::remote::{parse_ref, runtime, ConnArgs};
use clap::{Args, Subcommand};
use pavilion_oci::ManifestInfo;
use std::io::{Read, Write};

/// Manifest operations.
#[derive(Subcommand, Debug)]
pub enum ManifestCommand {
    /// Print a manifest exactly as the registry serves it.
    Get(GetArgs),
    /// Push a manifest from a file (or - for standard input).
    Put(PutArgs),
    /// Delete a manifest (by digest, or the manifest a tag points at).
    Delete(DeleteArgs),
}

/// Arguments of `manifest get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// REPO:TAG or REPO@DIGEST.
    pub reference: String,
    /// Print the descriptor (media type, digest, size) instead of the body.
    #[arg(long)]
    pub descriptor: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `manifest put`.
#[derive(Args, Debug)]
pub struct PutArgs {
    /// Where to push: REPO:TAG or REPO@DIGEST.
    pub reference: String,
    /// The manifest file, or - for standard input.
    #[arg(default_value = "-")]
    pub file: String,
    /// Media type (default: the body's mediaType).
    #[arg(long)]
    pub media_type: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `manifest delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// REPO@DIGEST (or REPO:TAG, resolved first).
    pub reference: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Reads a file, or standard input for `-`.
pub fn read_input(file: &str) -> CmdResult<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("reading {file}"))
    }
}

/// Runs a manifest subcommand.
pub fn run(cmd: ManifestCommand) -> CmdResult {
    match cmd {
        ManifestCommand::Get(a) => get(a),
        ManifestCommand::Put(a) => put(a),
        ManifestCommand::Delete(a) => delete(a),
    }
}

fn get(args: GetArgs) -> CmdResult {
    let r = parse_ref(&args.reference)?;
    let client = args.conn.client()?;
    let m = runtime()?
        .block_on(client.get_manifest(&r))
        .with_context(|| format!("fetching {r}"))?;
    if args.descriptor {
        print_json(&serde_json::json!({
            "mediaType": m.media_type,
            "digest": m.digest.to_string(),
            "size": m.bytes.len(),
        }));
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(&m.bytes)?;
        if std::io::IsTerminal::is_terminal(&out) {
            writeln!(out)?;
        }
    }
    Ok(ExitStatus::Success)
}

fn put(args: PutArgs) -> CmdResult {
    let r = parse_ref(&args.reference)?;
    let bytes = read_input(&args.file)?;
    // Check locally first: a broken manifest is the user's mistake, and the
    // registry's answer would say less.
    let info = ManifestInfo::parse(&bytes, args.media_type.as_deref())
        .map_err(|e| UsageError(format!("{}: {e}", args.file)))?;
    let client = args.conn.client()?;
    let digest = runtime()?
        .block_on(client.put_manifest(&r, &info.media_type, bytes.into()))
        .with_context(|| format!("pushing the manifest to {r}"))?;
    match args.conn.output.format {
        Output::Text => println!("{digest}"),
        Output::Json => print_json(&serde_json::json!({
            "reference": r.to_string(),
            "digest": digest.to_string(),
            "mediaType": info.media_type,
        })),
    }
    Ok(ExitStatus::Success)
}

fn delete(args: DeleteArgs) -> CmdResult {
    let mut r = parse_ref(&args.reference)?;
    let client = args.conn.client()?;
    runtime()?
        .block_on(async {
            if r.digest.is_none() {
                let (d, _, _) = client
                    .head_manifest(&r)
                    .await?
                    .ok_or_else(|| pavilion_client::ClientError::NotFound(r.to_string()))?;
                r = pavilion_oci::ImageRef {
                    tag: None,
                    digest: Some(d),
                    ..r.clone()
                };
            }
            client.delete_manifest(&r).await
        })
        .with_context(|| format!("deleting {}", args.reference))?;
    match args.conn.output.format {
        Output::Text => println!("deleted {r}"),
        Output::Json => print_json(&serde_json::json!({ "deleted": r.to_string() })),
    }
    Ok(ExitStatus::Success)
}
