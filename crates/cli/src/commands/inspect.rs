//! `pavilion ls REF` (the files of a model or artifact) and `pavilion
//! inspect REF` (its manifest summary and model configuration).

use crate::exit::{CmdResult, Context, ExitStatus, Failure, UsageError};
use crate::output::{print_json, Output};
use crate::remote::{parse_ref, runtime, ConnArgs};
use clap::Args;
use pavilion_model::media;
use pavilion_oci::{Descriptor, ManifestInfo};

/// Configs are read into memory up to this size.
const CONFIG_LIMIT: u64 = 4 << 20;

/// Arguments of `pavilion ls` and `pavilion inspect`.
#[derive(Args, Debug)]
pub struct RefArgs {
    /// REPO:TAG or REPO@DIGEST.
    pub reference: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn fetch(
    args: &RefArgs,
) -> CmdResult<(
    pavilion_client::Manifest,
    ManifestInfo,
    Option<serde_json::Value>,
)> {
    let r = parse_ref(&args.reference)?;
    let client = args.conn.client()?;
    runtime()?.block_on(async {
        let m = client
            .get_manifest(&r)
            .await
            .with_context(|| format!("fetching {r}"))?;
        let info = ManifestInfo::parse(&m.bytes, Some(&m.media_type))
            .map_err(|e| Failure::other(anyhow::anyhow!("{r}: {e}")))?;
        let config = match info.blobs.first() {
            Some(c)
                if info.manifests.is_empty()
                    && c.size <= CONFIG_LIMIT
                    && c.media_type.ends_with("json") =>
            {
                let bytes = client
                    .blob_bytes(&r, &c.digest, CONFIG_LIMIT)
                    .await
                    .with_context(|| format!("fetching the config of {r}"))?;
                serde_json::from_slice(&bytes).ok()
            }
            _ => None,
        };
        Ok((m, info, config))
    })
}

/// Runs `pavilion ls`.
pub fn run_ls(args: RefArgs) -> CmdResult {
    let (_, info, _) = fetch(&args)?;
    if !info.manifests.is_empty() {
        return Err(UsageError(format!(
            "{} is an index; list one of its manifests",
            args.reference
        ))
        .into());
    }
    // Every layer of any artifact: a Helm chart or an SBOM has layers but
    // no file paths, and an empty listing would look like an empty artifact.
    let layers: &[Descriptor] = info.blobs.get(1..).unwrap_or(&[]);
    match args.conn.output.format {
        Output::Text => {
            for l in layers {
                // A file path or title names it; else "-" (the media
                // type, in the next column, says what it is).
                let name = media::layer_filepath(l).unwrap_or("-");
                println!(
                    "{}\t{name}\t{}\t{}",
                    l.size,
                    media::normalize(&l.media_type),
                    l.digest
                );
            }
        }
        Output::Json => print_json(&serde_json::json!({
            "files": layers.iter().map(|l| serde_json::json!({
                "path": media::layer_filepath(l),
                "size": l.size,
                "mediaType": l.media_type,
                "digest": l.digest.to_string(),
            })).collect::<Vec<_>>(),
        })),
    }
    Ok(ExitStatus::Success)
}

/// Runs `pavilion inspect`.
pub fn run_inspect(args: RefArgs) -> CmdResult {
    let (m, info, config) = fetch(&args)?;
    let layers: &[Descriptor] = info.blobs.get(1..).unwrap_or(&[]);
    let total: u64 = layers.iter().map(|l| l.size).sum();
    let summary = serde_json::json!({
        "digest": m.digest.to_string(),
        "mediaType": info.media_type,
        "artifactType": info.artifact_type,
        "size": total,
        "layers": layers.len(),
        "manifests": info.manifests.len(),
        "subject": info.subject.as_ref().map(|s| s.digest.to_string()),
        "annotations": info.annotations,
        "config": config,
    });
    match args.conn.output.format {
        Output::Json => print_json(&summary),
        Output::Text => {
            println!("Digest:        {}", m.digest);
            println!("Media type:    {}", info.media_type);
            if let Some(t) = &info.artifact_type {
                println!("Artifact type: {t}");
            }
            if !info.manifests.is_empty() {
                println!("Manifests:     {}", info.manifests.len());
            } else {
                println!("Files:         {} ({total} bytes)", layers.len());
            }
            if let Some(s) = &info.subject {
                println!("Subject:       {}", s.digest);
            }
            if let Some(c) = &config {
                let d = c.get("descriptor");
                let cf = c.get("config");
                let field = |v: Option<&serde_json::Value>, k: &str| {
                    v.and_then(|v| v.get(k)).map(|x| match x {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                };
                for (label, v) in [
                    ("Name", field(d, "name")),
                    ("Version", field(d, "version")),
                    ("Family", field(d, "family")),
                    ("Licenses", field(d, "licenses")),
                    ("Architecture", field(cf, "architecture")),
                    ("Format", field(cf, "format")),
                    ("Parameters", field(cf, "paramSize")),
                    ("Precision", field(cf, "precision")),
                    ("Quantization", field(cf, "quantization")),
                ] {
                    if let Some(v) = v {
                        println!("{:<15}{v}", format!("{label}:"));
                    }
                }
            }
        }
    }
    Ok(ExitStatus::Success)
}
