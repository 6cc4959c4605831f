//! `pavilion pull REF -o DIR`: every file of a model (or ORAS-style
//! artifact) fetched as parallel byte ranges straight to its final place,
//! verified before it gets its name. Paths are all checked before any byte
//! is written, and no path may be named twice. Every file is written
//! relative to a handle on its directory without following a symlink
//! below the output directory (`pavilion_dio::Dir`); a failed pull removes
//! the temporary archives and the directories it made (files already
//! verified and placed stay: a rerun finds them).

use super::transfer::{print_json, progress_bar, runtime, Output, RemoteArgs};
use crate::exit::{UsageError, VerificationError};
use anyhow::{bail, Context, Result};
use clap::Args;
use pavilion_client::blob_cache::BlobCache;
use pavilion_client::digest_cache::{default_cache_dir, DigestCache};
use pavilion_dio::Dir;
use pavilion_model::media;
use pavilion_model::{extract_tar, layer_path, list_tar, PathError, PathSet, TarEntry};
use pavilion_oci::{ImageRef, ManifestInfo};
use pavilion_policy::input::{self, Verification};
use pavilion_policy::{Point, Policy};
use pavilion_verify::{verify_remote, verify_remote_manifest};
use pavilion_verify::{ArtifactVerification, TrustConfig};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

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

/// Brings one layer to `name` in `dir`: nothing to do when the file there
/// is known to hold the digest, a link from the content cache when it has
/// the blob, else a verified download that is then added to the cache. A
/// symlink at `name` is refused.
#[allow(clippy::too_many_arguments)]
async fn fetch_file(
    client: &pavilion_client::Client,
    r: &ImageRef,
    layer: &pavilion_oci::Descriptor,
    dir: &Dir,
    name: &OsStr,
    parallel: usize,
    blobs: Option<&BlobCache>,
    digests: &mut DigestCache,
) -> Result<How> {
    match dir.metadata(name)? {
        Some(meta) if meta.file_type().is_symlink() => {
            let refused = pavilion_dio::SymlinkRefused {
                path: dir.join(name),
            };
            return Err(pavilion_client::ClientError::Io(std::io::Error::other(refused)).into());
        }
        Some(meta)
            if meta.is_file()
                && digests.get(&dir.join(name), &meta).as_ref() == Some(&layer.digest) =>
        {
            return Ok(How::Present);
        }
        _ => {}
    }
    if let Some(cache) = blobs {
        if cache
            .place(&layer.digest, layer.size, dir, name, digests)
            .is_some()
        {
            return Ok(How::Cached);
        }
    }
    client
        .pull_blob_into(r, &layer.digest, layer.size, dir, name, parallel)
        .await?;
    match blobs {
        Some(cache) => cache.adopt(&layer.digest, dir, name, digests),
        None => {
            if let Some(meta) = dir.metadata(name)? {
                digests.put(&dir.join(name), &meta, layer.digest.clone());
            }
        }
    }
    Ok(How::Pulled)
}

/// A refused symlink as the unsafe-path error of layer path `rel` (exit 4).
fn unsafe_io(rel: &str, e: std::io::Error) -> anyhow::Error {
    match pavilion_dio::refused(&e) {
        Some(r) => PathError::ThroughSymlink(rel.to_string(), r.path.display().to_string()).into(),
        None => e.into(),
    }
}

/// One layer to place: its file path, descriptor, whether it is a tar, and
/// its position in the manifest (the order files are reported in).
struct Planned {
    rel: String,
    layer: pavilion_oci::Descriptor,
    tar: bool,
    index: usize,
}

/// What a pull made that must not outlive it: temporary archives always go;
/// if the pull fails, the files it created (not those that were there
/// before, even if it rewrote them) and
/// the directories it created (when still empty) go too, so a failed pull
/// never leaves part of an artifact looking like a whole one. A file
/// interrupted mid-transfer keeps its partial file and record, so a rerun
/// resumes it; placed files come back from the content cache.
#[derive(Default)]
struct Made {
    archives: Vec<OsString>,
    dirs: Vec<PathBuf>,
    files: Vec<String>,
}

/// Whether `rel` names something already under `root` (without following
/// symlinks).
fn exists(root: &Dir, rel: &str) -> bool {
    let rel = Path::new(rel);
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return false;
    };
    root.subdir(parent, None)
        .is_ok_and(|d| d.metadata(name).ok().flatten().is_some())
}

impl Made {
    /// Removes the files this pull placed, then the directories it created.
    fn undo(&self, root: &Dir) {
        for rel in &self.files {
            let rel = Path::new(rel);
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                continue;
            };
            if let Ok(dir) = root.subdir(parent, None) {
                let _ = dir.remove_file(name);
            }
        }
        root.remove_created_dirs(&self.dirs);
    }
}

/// A file placed: path, size, where its bytes came from, manifest position.
type Placed = (String, u64, How, usize);

/// A tar layer listed before extraction: the layer and its entries.
struct ListedTar {
    rel: String,
    layer: pavilion_oci::Descriptor,
    entries: Vec<TarEntry>,
}

/// What judges the tar layers' entries once all are listed and before
/// anything else is written (the pull rules, when `--policy` is given).
type Judge<'a> = &'a mut dyn FnMut(&[ListedTar]) -> Result<()>;

/// Places every planned layer under `root`. Tar layers come first: fetched
/// to temporary archives and listed, so an entry that collides with another
/// layer's path is refused, and `judge` sees every entry, before any file
/// is written.
#[allow(clippy::too_many_arguments)]
async fn place_all(
    client: &pavilion_client::Client,
    r: &ImageRef,
    root: &Dir,
    plan: Vec<Planned>,
    paths: &mut PathSet,
    parallel: usize,
    (blobs, digests): (Option<&BlobCache>, &mut DigestCache),
    bar: &indicatif::ProgressBar,
    made: &mut Made,
    judge: Judge<'_>,
) -> Result<Vec<Placed>> {
    let (tars, raws): (Vec<Planned>, Vec<Planned>) = plan.into_iter().partition(|p| p.tar);
    let mut archives = Vec::new();
    let mut listings = Vec::new();
    for p in tars {
        let name = OsString::from(format!(".pavilion-layer-{}.tar", p.layer.digest.hex()));
        let how = fetch_file(client, r, &p.layer, root, &name, parallel, blobs, digests)
            .await
            .with_context(|| format!("pulling {}", p.rel))?;
        made.archives.push(name.clone());
        if how != How::Pulled {
            bar.inc(p.layer.size);
        }
        let file = root.open_file(&name, false)?;
        let (listed, at) = (file.try_clone()?, root.path().to_path_buf());
        let entries = tokio::task::spawn_blocking(move || list_tar(&listed, &at))
            .await?
            .with_context(|| format!("checking {} ({})", p.rel, p.layer.media_type))?;
        for e in &entries {
            if e.dir {
                paths.add_dir(&e.path)
            } else {
                paths.add_file(&e.path)
            }
            .with_context(|| format!("checking {} ({})", p.rel, p.layer.media_type))?;
        }
        listings.push(ListedTar {
            rel: p.rel.clone(),
            layer: p.layer.clone(),
            entries,
        });
        archives.push((p, file, how));
    }
    if !listings.is_empty() {
        judge(&listings)?;
    }
    let mut pulled = Vec::new();
    for p in raws {
        let rel = Path::new(&p.rel);
        let (parent, Some(name)) = (rel.parent().unwrap_or(Path::new("")), rel.file_name()) else {
            return Err(PathError::NotRelative(p.rel.clone()).into());
        };
        let dir = root
            .subdir(parent, Some(&mut made.dirs))
            .map_err(|e| unsafe_io(&p.rel, e))?;
        let existed = dir.metadata(name).ok().flatten().is_some();
        let how = fetch_file(client, r, &p.layer, &dir, name, parallel, blobs, digests)
            .await
            .with_context(|| format!("pulling {}", p.rel))?;
        if how != How::Pulled {
            bar.inc(p.layer.size);
        }
        if !existed {
            made.files.push(p.rel.clone());
        }
        pulled.push((p.rel, p.layer.size, how, p.index));
    }
    for (p, file, how) in archives {
        let new: Vec<String> = listings
            .iter()
            .filter(|l| l.rel == p.rel)
            .flat_map(|l| l.entries.iter().filter(|e| !e.dir))
            .filter(|e| !exists(root, &e.path))
            .map(|e| e.path.clone())
            .collect();
        let at = root.try_clone()?;
        let files = tokio::task::spawn_blocking(move || extract_tar(&file, &at))
            .await?
            .with_context(|| format!("extracting {} ({})", p.rel, p.layer.media_type))?;
        made.files.extend(new);
        pulled.extend(files.into_iter().map(|f| (f.path, f.size, how, p.index)));
    }
    pulled.sort_by_key(|f| f.3);
    Ok(pulled)
}

/// The `pull` (or `push`, for `policy eval --ref`) input document of a
/// remote artifact: the manifest as parsed when it was validated, its
/// config when JSON, and the verification (the one `--verify` made, else
/// made now; a failure to verify is recorded in it, for the rules to
/// judge). A JSON config that cannot be fetched or parsed is an error: the
/// rules must never see `null` where the artifact has a config.
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
) -> Result<serde_json::Value, String> {
    let config = match info.blobs.first().map(pavilion_oci::json::wanted_config) {
        Some(Ok(Some(c))) => {
            let bytes = client
                .blob_bytes(r, &c.digest, pavilion_oci::json::POLICY_CONFIG_LIMIT)
                .await
                .map_err(|e| format!("config {} cannot be fetched: {e}", c.digest))?;
            Some(pavilion_oci::json::policy_config(c, &bytes)?)
        }
        Some(Err(e)) => return Err(e),
        Some(Ok(None)) | None => None,
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
        manifest: info.document.clone(),
        config,
    };
    Ok(match point {
        Point::Push => {
            let tags: Vec<String> = r.tag.iter().map(|t| t.to_string()).collect();
            input::push(&artifact, &tags, None, &signature)
        }
        _ => input::pull(asked, &artifact, Some(&signature)),
    })
}

/// Decides the pull rules on `doc`: prints the warnings not yet printed
/// (`warned`), and refuses (exit 4) when a rule denies.
fn judge_pull(
    policy: &mut Policy,
    dir: &Path,
    asked: &str,
    doc: &serde_json::Value,
    warned: &mut Vec<String>,
) -> Result<()> {
    let decision = policy
        .decide(Point::Pull, doc)
        .map_err(|e| UsageError(e.to_string()))?;
    for w in &decision.warn {
        if !warned.contains(w) {
            eprintln!("policy warning: {w}");
            warned.push(w.clone());
        }
    }
    if !decision.allowed() {
        return Err(VerificationError(format!(
            "{asked}: denied by policy {}: {}; nothing was written",
            dir.display(),
            decision.deny.join("; ")
        ))
        .into());
    }
    Ok(())
}

/// The `pull` document `doc` with the regular files of every listed tar
/// layer added to `files` (the second decision of `pull --policy`).
fn with_tar_files(doc: &serde_json::Value, listed: &[ListedTar]) -> serde_json::Value {
    let mut doc = doc.clone();
    for t in listed {
        let files: Vec<(String, u64)> = t
            .entries
            .iter()
            .filter(|e| !e.dir)
            .map(|e| (e.path.clone(), e.size))
            .collect();
        input::add_tar_files(
            &mut doc,
            &t.rel,
            &t.layer.media_type,
            &t.layer.digest.to_string(),
            &files,
        );
    }
    doc
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
        // An unusable manifest is a refused artifact (exit 4), like one
        // that fails any other check.
        let info = ManifestInfo::parse(&manifest.bytes, Some(&manifest.media_type))
            .map_err(|e| VerificationError(format!("{r} does not have a usable manifest: {e}")))?;
        if !info.manifests.is_empty() || info.blobs.is_empty() {
            bail!("{r} is an index or has no files; pull one of its manifests");
        }
        let policy_dir = args.policy.clone().unwrap_or_default();
        let mut warned = Vec::new();
        // The rules' verdict on the artifact and the document they judged,
        // kept for the second decision once tar layers are listed.
        let mut judged = None;
        if let Some(mut policy) = policy {
            let doc = artifact_document(Point::Pull, &client, &r, &asked, &manifest, &info, verified.as_ref(), &trust)
                .await
                .map_err(|e| VerificationError(format!("{asked}: cannot build the policy input: {e}; nothing was written")))?;
            judge_pull(&mut policy, &policy_dir, &asked, &doc, &mut warned)?;
            judged = Some((policy, doc));
        }
        // Tar layers hide files from the first decision: their entries are
        // judged once listed, before any of them (or any other file) lands.
        let mut judge = |listed: &[ListedTar]| match judged.as_mut() {
            Some((policy, doc)) => judge_pull(policy, &policy_dir, &asked, &with_tar_files(doc, listed), &mut warned),
            None => Ok(()),
        };
        std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
        // One spelling of every path, so the digest cache recognises files
        // whichever relative or absolute name the directory was given by.
        let dir = std::fs::canonicalize(&args.dir).with_context(|| format!("resolving {}", args.dir.display()))?;
        // The directory the user named; below it, nothing is followed.
        let root = Dir::open(&dir)?;
        // Decide every destination before writing anything; a path named
        // by two layers is refused (the later would replace the earlier).
        let mut paths = PathSet::default();
        let mut plan = Vec::new();
        for (index, layer) in info.blobs[1..].iter().enumerate() {
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
            layer_path(&dir, rel)?;
            if !tar {
                paths.add_file(rel)?; // a tar layer's entries are added once listed
            }
            if !args.include.is_empty() && !args.include.iter().any(|g| glob_match(g, rel)) {
                continue;
            }
            plan.push(Planned { rel: rel.to_string(), layer: layer.clone(), tar, index });
        }
        if plan.is_empty() && args.include.is_empty() {
            // A Helm chart, an SBOM, an image: their layers name no file.
            // Say which commands do fetch them.
            let kind = info.artifact_type.as_deref().unwrap_or(&info.blobs[0].media_type);
            let mut types: Vec<&str> = info.blobs[1..].iter().map(|l| l.media_type.as_str()).collect();
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
        // Saturating: sizes come from the manifest and may be absurd.
        bar.set_length(plan.iter().fold(0u64, |sum, p| sum.saturating_add(p.layer.size)));
        let cache_dir = if args.no_cache { None } else { args.cache_dir.clone().or_else(default_cache_dir) };
        let mut digests = cache_dir.as_deref().map_or_else(DigestCache::in_memory, DigestCache::open);
        let blobs = cache_dir.as_deref().map(BlobCache::new);
        let mut made = Made::default();
        let placed =
            place_all(&client, &r, &root, plan, &mut paths, parallel, (blobs.as_ref(), &mut digests), &bar, &mut made, &mut judge).await;
        for a in &made.archives {
            let _ = root.remove_file(a);
        }
        if placed.is_err() {
            made.undo(&root);
        }
        let pulled: Vec<(String, u64, How)> = placed?.into_iter().map(|(p, s, h, _)| (p, s, h)).collect();
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
            Output::Json => print_json(
                &serde_json::json!({
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

    /// The client names a layer's file by the same annotations, in the same
    /// order, as the policy input shows it to the rules (two copies of one
    /// list: neither crate may depend on the other).
    #[test]
    fn the_client_and_the_rules_name_files_alike() {
        use pavilion_model::media;
        use pavilion_policy::input;
        assert_eq!(media::FILE_PATH_ANNOTATIONS, input::FILE_PATH_ANNOTATIONS);
        let keys = media::FILE_PATH_ANNOTATIONS;
        for n in 0..(1 << keys.len()) {
            let annotations: std::collections::BTreeMap<String, String> = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| n & (1 << i) != 0)
                .map(|(i, k)| (k.to_string(), format!("file{i}")))
                .collect();
            let layer = serde_json::json!({"mediaType": "application/octet-stream",
                "digest": format!("sha256:{}", "a".repeat(64)), "size": 1, "annotations": annotations});
            let descriptor: pavilion_oci::Descriptor =
                serde_json::from_value(layer.clone()).unwrap();
            assert_eq!(
                media::layer_filepath(&descriptor),
                input::layer_file_path(&layer),
                "{annotations:?}"
            );
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.safetensors", "model-1.safetensors"));
        assert!(glob_match("*", "a/b"));
        assert!(glob_match("sub/?.py", "sub/a.py"));
        assert!(!glob_match("*.json", "model.safetensors"));
        assert!(!glob_match("a?", "a"));
    }
}
