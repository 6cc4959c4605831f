//! Pull: every file of a model (or ORAS-style artifact) fetched as
//! parallel byte ranges straight to its final place, verified before it
//! gets its name. The signatures (`verify`) and the pull rules (`policy`)
//! are decided before any file is written; every path is checked before
//! any byte is written, and no path may be named twice. A failed pull
//! removes the files and directories it created (see [`crate::place`]).

use crate::document::{artifact_document, judge_pull, with_tar_files, Remote};
use crate::error::{bail, Context, Result};
use crate::place::{place_all, Fetch, ListedTar, Made, Planned, Source};
use crate::progress::{Event, Progress};
use crate::{UsageError, VerificationError};
use globset::{Glob, GlobSet, GlobSetBuilder};
use pavilion_client::blob_cache::BlobCache;
use pavilion_client::digest_cache::DigestCache;
use pavilion_client::Client;
use pavilion_dio::Dir;
use pavilion_model::{layer_path, media, PathSet};
use pavilion_oci::{Digest, ImageRef, ManifestInfo};
use pavilion_policy::{Point, Policy};
use pavilion_verify::{verify_remote, ArtifactVerification, TrustConfig};
use std::path::{Path, PathBuf};

/// A pull, set up with its builder methods and carried out by [`Pull::run`].
///
/// ```no_run
/// # async fn f(client: pavilion_client::Client) -> anyhow::Result<()> {
/// use pavilion_transfer::{Pull, Quiet};
/// let reference = "127.0.0.1:5000/team/llama:v1".parse()?;
/// let report = Pull::new(&client, reference)
///     .include(vec!["*.safetensors".into()])
///     .verify(true)
///     .run("./models/llama".as_ref(), &Quiet)
///     .await?;
/// println!("{} files", report.files.len());
/// # Ok(()) }
/// ```
pub struct Pull<'a> {
    client: &'a Client,
    reference: ImageRef,
    include: Vec<String>,
    cache_dir: Option<PathBuf>,
    verify: bool,
    trust: TrustConfig,
    policy: Option<PathBuf>,
    concurrency: usize,
}

/// One file a pull placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledFile {
    /// Its path below the output directory.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// Where its bytes came from.
    pub source: Source,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// What was pulled (pinned to the verified digest with `verify`).
    pub reference: ImageRef,
    /// The manifest's digest.
    pub digest: Digest,
    /// Every file placed, in manifest order.
    pub files: Vec<PulledFile>,
    /// The signature verification, when `verify` asked for one.
    pub verified: Option<ArtifactVerification>,
}

impl PullReport {
    /// How many files came from `source`.
    pub fn count(&self, source: Source) -> usize {
        self.files.iter().filter(|f| f.source == source).count()
    }
}

impl<'a> Pull<'a> {
    /// A pull of `reference` through `client` (whose `ProgressFn`, if any,
    /// counts the bytes downloaded).
    pub fn new(client: &'a Client, reference: ImageRef) -> Self {
        Pull {
            client,
            reference,
            include: Vec::new(),
            cache_dir: None,
            verify: false,
            trust: TrustConfig::default(),
            policy: None,
            concurrency: 4,
        }
    }

    /// Only files whose path matches one of these globs (`*` also matches
    /// `/`); none means every file.
    pub fn include(mut self, globs: Vec<String>) -> Self {
        self.include = globs;
        self
    }

    /// The local content cache shared between pulls (files are placed from
    /// it by reflink or hardlink); none neither uses nor fills one.
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Verify the artifact's Notary signatures first; nothing is written
    /// unless one passes.
    pub fn verify(mut self, yes: bool) -> Self {
        self.verify = yes;
        self
    }

    /// The trust policy and store for `verify` and the policy input
    /// (notation's by default).
    pub fn trust(mut self, trust: TrustConfig) -> Self {
        self.trust = trust;
        self
    }

    /// Rego policies (package `pavilion.pull`) decided before any file is
    /// written.
    pub fn policy(mut self, dir: Option<PathBuf>) -> Self {
        self.policy = dir;
        self
    }

    /// Parallel byte ranges per file (at least one).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Pulls into `dir` (created if missing).
    pub async fn run(self, dir: &Path, progress: &dyn Progress) -> Result<PullReport> {
        let Pull {
            client,
            reference: mut r,
            include,
            cache_dir,
            verify,
            trust,
            policy: policy_dir,
            concurrency: parallel,
        } = self;
        let include = globs(&include)?;
        let asked = r.to_string();
        // Loaded first: a broken policy fails before any network traffic.
        let policy = match &policy_dir {
            Some(d) => Some(Policy::load(d).map_err(|e| UsageError(e.to_string()))?),
            None => None,
        };
        let mut verified = None;
        if verify {
            // Verify the manifest digest, then pull exactly that digest, so a
            // tag moved in between cannot slip other content in.
            let v = verify_remote(client, &r, &trust).await?;
            if !v.verified() {
                return Err(VerificationError(format!(
                    "{}: no signature passes the trust policy {:?}; nothing was written",
                    v.reference, v.policy
                ))
                .into());
            }
            r = ImageRef {
                digest: Some(v.digest.clone()),
                ..r
            };
            progress.event(&Event::Verified {
                reference: v.reference.clone(),
                policy: v.policy.clone(),
            });
            verified = Some(v);
        }
        let manifest = client
            .get_manifest(&r)
            .await
            .with_context(|| format!("fetching the manifest of {r}"))?;
        // An unusable manifest is a refused artifact, like one that fails
        // any other check.
        let info = ManifestInfo::parse(&manifest.bytes, Some(&manifest.media_type))
            .map_err(|e| VerificationError(format!("{r} does not have a usable manifest: {e}")))?;
        if !info.manifests.is_empty() || info.blobs.is_empty() {
            bail!("{r} is an index or has no files; pull one of its manifests");
        }
        let policy_dir = policy_dir.unwrap_or_default();
        let mut warned = Vec::new();
        // The rules' verdict on the artifact and the document they judged,
        // kept for the second decision once tar layers are listed.
        let mut judged = None;
        if let Some(mut policy) = policy {
            let remote = Remote {
                client,
                reference: &r,
                asked: &asked,
                manifest: &manifest,
                info: &info,
            };
            let doc = artifact_document(Point::Pull, &remote, verified.as_ref(), &trust)
                .await
                .map_err(|e| {
                    VerificationError(format!(
                        "{asked}: cannot build the policy input: {e}; nothing was written"
                    ))
                })?;
            judge_pull(
                &mut policy,
                &policy_dir,
                &asked,
                &doc,
                &mut warned,
                progress,
            )?;
            judged = Some((policy, doc));
        }
        // Tar layers hide files from the first decision: their entries are
        // judged once listed, before any of them (or any other file) lands.
        let mut judge = |listed: &[ListedTar]| match judged.as_mut() {
            Some((policy, doc)) => judge_pull(
                policy,
                &policy_dir,
                &asked,
                &with_tar_files(doc, listed),
                &mut warned,
                progress,
            ),
            None => Ok(()),
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // One spelling of every path, so the digest cache recognises files
        // whichever relative or absolute name the directory was given by.
        let canonical =
            std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        // The directory the caller named; below it, nothing is followed.
        let root = Dir::open(&canonical)?;
        let (plan, mut paths) = plan(&r, &info, &canonical, include.as_ref())?;
        // Saturating: sizes come from the manifest and may be absurd.
        progress.length(
            plan.iter()
                .fold(0u64, |sum, p| sum.saturating_add(p.layer.size)),
        );
        let mut digests = cache_dir
            .as_deref()
            .map_or_else(DigestCache::in_memory, DigestCache::open);
        let blobs = cache_dir.as_deref().map(BlobCache::new);
        let mut made = Made::default();
        let from = Fetch {
            client,
            reference: &r,
            parallel,
            blobs: blobs.as_ref(),
            progress,
        };
        let placed = place_all(
            &from,
            &root,
            plan,
            &mut paths,
            &mut digests,
            &mut made,
            &mut judge,
        )
        .await;
        for a in &made.archives {
            let _ = root.remove_file(a);
        }
        if placed.is_err() {
            made.undo(&root);
        }
        let files = placed?
            .into_iter()
            .map(|(path, size, source, _)| PulledFile { path, size, source })
            .collect();
        if let Err(e) = digests.save() {
            progress.event(&Event::CacheNotSaved(e.to_string()));
        }
        Ok(PullReport {
            reference: r,
            digest: manifest.digest,
            files,
            verified,
        })
    }
}

/// The include globs as one matcher (none when there are none); a glob
/// that does not parse is a usage error.
fn globs(include: &[String]) -> Result<Option<GlobSet>> {
    if include.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for g in include {
        set.add(Glob::new(g).map_err(|e| UsageError(format!("--include {g:?}: {e}")))?);
    }
    Ok(Some(set.build().map_err(|e| UsageError(e.to_string()))?))
}

/// Decides every destination before anything is written: the layers to
/// place (those `include` matches) and every path the artifact names. A
/// path named by two layers is refused (the later would replace the
/// earlier), and so is an artifact whose layers name no file at all.
fn plan(
    r: &ImageRef,
    info: &ManifestInfo,
    dir: &Path,
    include: Option<&GlobSet>,
) -> Result<(Vec<Planned>, PathSet)> {
    let mut paths = PathSet::default();
    let mut plan = Vec::new();
    for (index, layer) in info.blobs[1..].iter().enumerate() {
        let Some(rel) = media::layer_filepath(layer) else {
            continue; // not a file (e.g. an ORAS layer without a name)
        };
        let model_layer =
            media::normalize(&layer.media_type).starts_with("application/vnd.cncf.model.");
        let tar = media::is_tar_layer(&layer.media_type);
        if model_layer && !tar && !media::is_raw_layer(&layer.media_type) {
            bail!(
                "{rel}: layer type {} (compressed tar) is not supported yet",
                layer.media_type
            );
        }
        if layer
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("io.deis.oras.content.unpack"))
        {
            bail!("{rel}: packed directories (ORAS unpack layers) are not supported yet");
        }
        // Checked even for tar layers, whose entries are checked again.
        layer_path(dir, rel)?;
        if !tar {
            paths.add_file(rel)?; // a tar layer's entries are added once listed
        }
        if include.is_some_and(|set| !set.is_match(rel)) {
            continue;
        }
        plan.push(Planned {
            rel: rel.to_string(),
            layer: layer.clone(),
            tar,
            index,
        });
    }
    if plan.is_empty() && include.is_none() {
        // A Helm chart, an SBOM, an image: their layers name no file.
        // Say which commands do fetch them.
        let kind = info
            .artifact_type
            .as_deref()
            .unwrap_or(&info.blobs[0].media_type);
        let mut types: Vec<&str> = info.blobs[1..]
            .iter()
            .map(|l| l.media_type.as_str())
            .collect();
        types.dedup();
        let repo = format!("{}/{}", r.registry, r.repository);
        return Err(UsageError(format!(
            "{r} is not a model or file artifact: it is {kind}, and none of its layers ({}) names \
             a file. Get a layer with `pavilion blob get {repo}@DIGEST -o FILE` (`pavilion ls {r}` \
             lists their digests), or the whole artifact with `pavilion copy {r} oci:DIR:TAG`",
            types.join(", ")
        ))
        .into());
    }
    Ok((plan, paths))
}

#[cfg(test)]
mod tests {
    use super::globs;

    /// The include globs keep the old hand-written matcher's meaning: `*`
    /// runs across `/`, `?` is one character.
    #[test]
    fn include_globs() {
        let m = |g: &str, p: &str| globs(&[g.to_string()]).unwrap().unwrap().is_match(p);
        assert!(m("*.safetensors", "model-1.safetensors"));
        assert!(m("*", "a/b"));
        assert!(m("*.safetensors", "sub/model.safetensors"));
        assert!(m("sub/?.py", "sub/a.py"));
        assert!(!m("*.json", "model.safetensors"));
        assert!(!m("a?", "a"));
        assert!(
            globs(&["[".to_string()]).is_err(),
            "a broken glob is refused"
        );
        assert!(globs(&[]).unwrap().is_none());
    }
}
