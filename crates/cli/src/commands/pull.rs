//! `pavilion pull REF -o DIR`: every file of a model (or ORAS-style
//! artifact) fetched as parallel byte ranges straight to its final place,
//! verified before it gets its name. Paths are all checked before any byte
//! is written.

use super::transfer::{progress_bar, runtime, Output, RemoteArgs};
use crate::exit::{UsageError, VerificationError};
use anyhow::{bail, Context, Result};
use clap::Args;
use pavilion_client::blob_cache::BlobCache;
use pavilion_client::digest_cache::{default_cache_dir, DigestCache};
use pavilion_enforce::verification::{verify_remote, verify_remote_manifest};
use pavilion_enforce::{ArtifactVerification, TrustConfig};
use pavilion_model::media;
use pavilion_model::{extract_tar, layer_path};
use pavilion_oci::{ImageRef, ManifestInfo};
use pavilion_policy::input::{self, Verification};
use pavilion_policy::{Point, Policy};
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
    /// Only files whose path matches this glob (`*`, `?`), repeatable.
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

/// `*` matches any run of characters (including `/`), `?` any one.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Where a pulled file's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Downloaded from the registry.
    Pulled,
    /// Placed from the local content cache.
    Cached,
    /// The destination already held these exact bytes.
    Present,
}

impl How {
    fn as_str(self) -> &'static str {
        match self {
            How::Pulled => "registry",
            How::Cached => "cache",
            How::Present => "present",
        }
    }
}

/// Brings one layer to `dest`: nothing to do when the file there is known
/// to hold the digest, a link from the content cache when it has the blob,
/// else a verified download that is then added to the cache.
async fn fetch_file(
    client: &pavilion_client::Client,
    r: &ImageRef,
    layer: &pavilion_oci::Descriptor,
    dest: &std::path::Path,
    parallel: usize,
    blobs: Option<&BlobCache>,
    digests: &mut DigestCache,
) -> Result<How> {
    if let Ok(meta) = std::fs::symlink_metadata(dest) {
        if meta.is_file() && digests.get(dest, &meta).as_ref() == Some(&layer.digest) {
            return Ok(How::Present);
        }
    }
    if let Some(cache) = blobs {
        if cache
            .place(&layer.digest, layer.size, dest, digests)
            .is_some()
        {
            return Ok(How::Cached);
        }
    }
    client
        .pull_blob_file(r, &layer.digest, layer.size, dest, parallel)
        .await?;
    match blobs {
        Some(cache) => cache.adopt(&layer.digest, dest, digests),
        None => {
            if let Ok(meta) = std::fs::metadata(dest) {
                digests.put(dest, &meta, layer.digest.clone());
            }
        }
    }
    Ok(How::Pulled)
}

/// The `pull` (or `push`, for `policy eval --ref`) input document of a
/// remote artifact: the manifest, its config when small JSON, and the
/// verification (the one `--verify` made, else made now; a failure to
/// verify is recorded in it, for the rules to judge).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn artifact_document(
    point: Point,
    client: &pavilion_client::Client,
    r: &ImageRef,
    asked: &str,
    manifest: &pavilion_client::Manifest,
    info: &ManifestInfo,
    verified: Option<&ArtifactVerification>,
    trust: &TrustConfig,
) -> serde_json::Value {
    let config = match info.blobs.first() {
        Some(c) if c.size <= 1 << 20 && c.media_type.ends_with("json") => client
            .blob_bytes(r, &c.digest, 1 << 20)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok()),
        _ => None,
    };
    let signature = match verified {
        Some(v) => v.to_input(),
        None => match verify_remote_manifest(
            client,
            r,
            &manifest.digest,
            &manifest.media_type,
            manifest.bytes.len() as u64,
            trust,
        )
        .await
        {
            Ok(v) => v.to_input(),
            Err(e) => Verification {
                error: Some(format!("{:#}", anyhow::Error::from(e))),
                ..Default::default()
            },
        },
    };
    let digest = manifest.digest.to_string();
    let artifact = input::Artifact {
        repository: r.repository.as_str(),
        digest: &digest,
        media_type: &manifest.media_type,
        manifest: serde_json::from_slice(&manifest.bytes).unwrap_or(serde_json::Value::Null),
        config,
    };
    match point {
        Point::Push => {
            let tags: Vec<String> = r.tag.iter().map(|t| t.to_string()).collect();
            input::push(&artifact, &tags, None, &signature)
        }
        _ => input::pull(asked, &artifact, Some(&signature)),
    }
}

/// Runs `pavilion pull`.
pub fn run(args: PullArgs) -> Result<()> {
    let r: ImageRef = args
        .reference
        .parse()
        .with_context(|| format!("invalid reference {:?}", args.reference))?;
    let bar = progress_bar(0, args.remote.output);
    let client = args.remote.client_with_progress(&bar)?;
    let parallel = usize::from(args.remote.concurrency);
    runtime()?.block_on(async move {
        let mut r = r;
        let asked = r.to_string();
        let trust = TrustConfig { trust_policy: args.trust_policy.clone(), trust_store: args.trust_store.clone() };
        // Loaded first: a broken policy fails before any network traffic.
        let policy = match &args.policy {
            Some(d) => Some(Policy::load(d).map_err(|e| UsageError(e.to_string()))?),
            None => None,
        };
        let mut verified = None;
        if args.verify {
            // Verify the manifest digest, then pull exactly that digest, so a
            // tag moved in between cannot slip other content in.
            let v = verify_remote(&client, &r, &trust).await?;
            if !v.verified() {
                return Err(VerificationError(format!(
                    "{}: no signature passes the trust policy {:?}; nothing was written",
                    v.reference, v.policy
                ))
                .into());
            }
            r = ImageRef { digest: Some(v.digest.clone()), ..r };
            eprintln!("verified {} (trust policy {:?})", v.reference, v.policy);
            verified = Some(v);
        }
        let manifest = client.get_manifest(&r).await.with_context(|| format!("fetching the manifest of {r}"))?;
        let info = ManifestInfo::parse(&manifest.bytes, Some(&manifest.media_type))
            .with_context(|| format!("{r} does not have a usable manifest"))?;
        if !info.manifests.is_empty() || info.blobs.is_empty() {
            bail!("{r} is an index or has no files; pull one of its manifests");
        }
        if let Some(mut policy) = policy {
            let doc = artifact_document(Point::Pull, &client, &r, &asked, &manifest, &info, verified.as_ref(), &trust).await;
            let decision = policy.decide(Point::Pull, &doc).map_err(|e| UsageError(e.to_string()))?;
            for w in &decision.warn {
                eprintln!("policy warning: {w}");
            }
            if !decision.allowed() {
                return Err(VerificationError(format!(
                    "{asked}: denied by policy {}: {}; nothing was written",
                    args.policy.as_deref().unwrap_or(std::path::Path::new("")).display(),
                    decision.deny.join("; ")
                ))
                .into());
            }
        }
        std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
        // One spelling of every path, so the digest cache recognises files
        // whichever relative or absolute name the directory was given by.
        let dir = std::fs::canonicalize(&args.dir).with_context(|| format!("resolving {}", args.dir.display()))?;
        // Decide every destination before writing anything.
        let mut plan = Vec::new();
        for layer in &info.blobs[1..] {
            let Some(rel) = media::layer_filepath(layer) else {
                continue; // not a file (e.g. an ORAS layer without a name)
            };
            let model_layer = media::normalize(&layer.media_type).starts_with("application/vnd.cncf.model.");
            let tar = media::is_tar_layer(&layer.media_type);
            if model_layer && !tar && !media::is_raw_layer(&layer.media_type) {
                bail!("{rel}: layer type {} (compressed tar) is not supported yet", layer.media_type);
            }
            if layer.annotations.as_ref().is_some_and(|a| a.contains_key("io.deis.oras.content.unpack")) {
                bail!("{rel}: packed directories (ORAS unpack layers) are not supported yet");
            }
            // Checked even for tar layers, whose entries are checked again.
            let dest = layer_path(&dir, rel)?;
            if !args.include.is_empty() && !args.include.iter().any(|g| glob_match(g, rel)) {
                continue;
            }
            let dest = if tar {
                dir.join(format!(".pavilion-layer-{}.tar", layer.digest.hex()))
            } else {
                dest
            };
            plan.push((rel.to_string(), dest, layer.clone(), tar));
        }
        if plan.is_empty() && args.include.is_empty() {
            bail!("{r} is not a model or file artifact: none of its layers names a file");
        }
        bar.set_length(plan.iter().map(|(_, _, l, _)| l.size).sum());
        let cache_dir = if args.no_cache { None } else { args.cache_dir.clone().or_else(default_cache_dir) };
        let mut digests = cache_dir.as_deref().map_or_else(DigestCache::in_memory, DigestCache::open);
        let blobs = cache_dir.as_deref().map(BlobCache::new);
        let mut pulled = Vec::new();
        for (rel, dest, layer, tar) in plan {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            let how = fetch_file(&client, &r, &layer, &dest, parallel, blobs.as_ref(), &mut digests)
                .await
                .with_context(|| format!("pulling {rel}"))?;
            if how != How::Pulled {
                bar.inc(layer.size);
            }
            if tar {
                let (archive, root) = (dest.clone(), dir.clone());
                let files = tokio::task::spawn_blocking(move || extract_tar(&archive, &root))
                    .await?
                    .with_context(|| format!("extracting {rel} ({})", layer.media_type))?;
                let _ = std::fs::remove_file(&dest);
                for f in files {
                    pulled.push((f.path, f.size, how));
                }
                continue;
            }
            pulled.push((rel, layer.size, how));
        }
        bar.finish_and_clear();
        if let Err(e) = digests.save() {
            eprintln!("warning: could not save the digest cache: {e}");
        }
        let count = |h: How| pulled.iter().filter(|p| p.2 == h).count();
        match args.remote.output {
            Output::Text => {
                for (rel, size, _) in &pulled {
                    println!("{rel}\t{size}");
                }
                eprintln!(
                    "pulled {}/{}@{} ({} files: {} downloaded, {} from the local cache, {} already in place) into {}",
                    r.registry,
                    r.repository,
                    manifest.digest,
                    pulled.len(),
                    count(How::Pulled),
                    count(How::Cached),
                    count(How::Present),
                    args.dir.display()
                );
            }
            Output::Json => println!(
                "{}",
                serde_json::json!({
                    "reference": r.to_string(),
                    "digest": manifest.digest.to_string(),
                    "files": pulled.iter().map(|(p, s, h)| serde_json::json!({"path": p, "size": s, "source": h.as_str()})).collect::<Vec<_>>(),
                })
            ),
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("*.safetensors", "model-1.safetensors"));
        assert!(glob_match("*", "a/b"));
        assert!(glob_match("sub/?.py", "sub/a.py"));
        assert!(!glob_match("*.json", "model.safetensors"));
        assert!(!glob_match("a?", "a"));
    }
}
