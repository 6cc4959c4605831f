//! `pavilion push REF PATH...`: a model directory as a ModelPack artifact,
//! or plain files as an ORAS-style artifact with `--artifact-type`.

use super::transfer::{print_json, progress_bar, runtime, Output, RemoteArgs};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use pavilion_client::digest_cache::{default_cache_dir, DigestCache};
use pavilion_client::upload_journal::UploadJournal;
use pavilion_client::Client;
use pavilion_model::media::ANNOTATION_TITLE;
use pavilion_model::{pack_directory, ModelInfo};
use pavilion_oci::{media_type, Digest, ImageRef, RepoName};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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

/// One file to upload: path, media type, annotations.
struct Upload {
    path: PathBuf,
    media_type: String,
    size: u64,
    annotations: std::collections::BTreeMap<String, String>,
}

/// How a file reached the registry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Read, hashed and uploaded.
    Uploaded,
    /// Already there (known digest, answered by HEAD).
    Present,
    /// Linked from `--from` without a transfer.
    Mounted,
}

/// Where and how to send the files.
struct Target<'a> {
    client: &'a Client,
    r: &'a ImageRef,
    from: Option<&'a str>,
    cache: &'a Mutex<DigestCache>,
    bar: &'a indicatif::ProgressBar,
}

async fn upload_one(t: &Target<'_>, f: &Upload) -> Result<(Digest, Sent)> {
    let meta =
        std::fs::metadata(&f.path).with_context(|| format!("reading {}", f.path.display()))?;
    let known = t.cache.lock().ok().and_then(|c| c.get(&f.path, &meta));
    if let Some(d) = known {
        if t.client.blob_exists(t.r, &d).await? == Some(meta.len()) {
            t.bar.inc(meta.len());
            return Ok((d, Sent::Present));
        }
        if let Some(from) = t.from {
            if t.client.mount_blob(t.r, &d, from).await? {
                t.bar.inc(meta.len());
                return Ok((d, Sent::Mounted));
            }
        }
    }
    let (d, size) = t
        .client
        .push_blob_file(t.r, &f.path)
        .await
        .with_context(|| format!("uploading {}", f.path.display()))?;
    let after = std::fs::metadata(&f.path)?;
    if size != f.size || after.len() != size || after.modified().ok() != meta.modified().ok() {
        bail!("{} changed while it was being pushed", f.path.display());
    }
    if let Ok(mut c) = t.cache.lock() {
        c.put(&f.path, &after, d.clone());
    }
    Ok((d, Sent::Uploaded))
}

/// Sends files `concurrency` at a time, each read at most once; returns
/// their digests in the input order and how each one got there.
async fn upload_all(
    t: &Target<'_>,
    files: &[Upload],
    concurrency: usize,
) -> Result<(Vec<Digest>, Vec<Sent>)> {
    t.bar.set_length(files.iter().map(|f| f.size).sum());
    let done: Vec<(Digest, Sent)> = futures::stream::iter(files.iter())
        .map(|f| upload_one(t, f))
        .buffered(concurrency)
        .try_collect()
        .await?;
    Ok(done.into_iter().unzip())
}

/// Runs `pavilion push`.
pub fn run(args: PushArgs) -> Result<()> {
    let r: ImageRef = args
        .reference
        .parse()
        .with_context(|| format!("invalid reference {:?}", args.reference))?;
    if let Some(from) = &args.from {
        RepoName::new(from).with_context(|| format!("--from {from:?}"))?;
    }
    let output = args.remote.output;
    let bar = progress_bar(0, output);
    let cache_dir = args.cache_dir.clone().or_else(default_cache_dir);
    let journal = cache_dir
        .as_deref()
        .map(|d| Arc::new(UploadJournal::open(d)));
    let client = args.remote.client_with(&bar, journal)?;
    let concurrency = usize::from(args.remote.concurrency);
    let cache = Mutex::new(
        cache_dir
            .as_deref()
            .map_or_else(DigestCache::in_memory, DigestCache::open),
    );
    runtime()?.block_on(async {
        let target = Target {
            client: &client,
            r: &r,
            from: args.from.as_deref(),
            cache: &cache,
            bar: &bar,
        };
        let (manifest, files, sent) = match &args.artifact_type {
            Some(t) => push_files(&target, t, &args.paths, concurrency).await?,
            None => push_model(&target, &args, concurrency).await?,
        };
        let digest = client
            .put_manifest(&r, media_type::OCI_MANIFEST, Bytes::from(manifest))
            .await
            .context("pushing the manifest")?;
        bar.finish_and_clear();
        if let Err(e) = cache.lock().map_err(|_| anyhow::anyhow!("cache lock"))?.save() {
            eprintln!("warning: could not save the digest cache: {e}");
        }
        let total: u64 = files.iter().map(|f| f.size).sum();
        let count = |k: Sent| sent.iter().filter(|s| **s == k).count();
        let (uploaded, present, mounted) = (count(Sent::Uploaded), count(Sent::Present), count(Sent::Mounted));
        match output {
            Output::Text => println!(
                "pushed {r}@{digest} ({} files, {total} bytes: {uploaded} uploaded, {present} already present, {mounted} mounted)",
                files.len()
            ),
            Output::Json => print_json(
                &serde_json::json!({
                    "reference": r.to_string(),
                    "digest": digest.to_string(),
                    "files": files.iter().map(|f| f.path.display().to_string()).collect::<Vec<_>>(),
                    "bytes": total,
                    "uploaded": uploaded,
                    "present": present,
                    "mounted": mounted,
                })
            ),
        }
        Ok(())
    })
}

async fn push_model(
    t: &Target<'_>,
    args: &PushArgs,
    concurrency: usize,
) -> Result<(Vec<u8>, Vec<Upload>, Vec<Sent>)> {
    let [dir] = args.paths.as_slice() else {
        bail!("a model push takes one directory (use --artifact-type to push files)");
    };
    if !dir.is_dir() {
        bail!(
            "{} is not a directory (use --artifact-type to push files)",
            dir.display()
        );
    }
    let default_name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let info = ModelInfo {
        name: args.name.clone().or(default_name),
        version: args.version.clone(),
        family: args.family.clone(),
        licenses: args.licenses.clone(),
        architecture: args.architecture.clone(),
        format: args.format.clone(),
        param_size: args.param_size.clone(),
        precision: args.precision.clone(),
        quantization: args.quantization.clone(),
    };
    let plan = pack_directory(dir, info)?;
    let files: Vec<Upload> = plan
        .layers
        .iter()
        .map(|l| Upload {
            path: l.path.clone(),
            media_type: l.media_type.clone(),
            size: l.size,
            annotations: l.annotations.clone(),
        })
        .collect();
    let (digests, sent) = upload_all(t, &files, concurrency).await?;
    let config = plan.config_json(&digests);
    t.client
        .push_blob_bytes(t.r, Bytes::from(config.clone()))
        .await
        .context("pushing the model config")?;
    Ok((plan.manifest_json(&config, &digests), files, sent))
}

async fn push_files(
    t: &Target<'_>,
    artifact_type: &str,
    paths: &[PathBuf],
    concurrency: usize,
) -> Result<(Vec<u8>, Vec<Upload>, Vec<Sent>)> {
    if !media_type::is_valid(artifact_type) {
        bail!("--artifact-type {artifact_type:?} is not a media type (type/subtype)");
    }
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?;
        if !meta.is_file() {
            bail!("{} is not a file", p.display());
        }
        let title = Path::new(p)
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: file names must be UTF-8", p.display()))?;
        if files.iter().any(|f: &Upload| {
            f.annotations.get(ANNOTATION_TITLE).map(String::as_str) == Some(title)
        }) {
            bail!("two files are named {title}");
        }
        files.push(Upload {
            path: p.clone(),
            // What `oras push` writes for a file given without a media type.
            media_type: "application/vnd.oci.image.layer.v1.tar".to_string(),
            size: meta.len(),
            annotations: [(ANNOTATION_TITLE.to_string(), title.to_string())].into(),
        });
    }
    let (digests, sent) = upload_all(t, &files, concurrency).await?;
    let empty = t
        .client
        .push_blob_bytes(t.r, Bytes::from_static(b"{}"))
        .await
        .context("pushing the empty config")?;
    let layers: Vec<_> = files
        .iter()
        .zip(&digests)
        .map(|(f, d)| serde_json::json!({"mediaType": f.media_type, "digest": d, "size": f.size, "annotations": f.annotations}))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": media_type::OCI_EMPTY, "digest": empty, "size": 2, "data": "e30="},
        "layers": layers,
    });
    Ok((manifest.to_string().into_bytes(), files, sent))
}
