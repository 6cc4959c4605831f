//! Push: a model directory as a ModelPack artifact, or plain files as an
//! ORAS-style artifact. Each file is read once (hashed while it is
//! uploaded); a file whose digest is remembered and that the registry
//! already holds is not read at all, and one the registry can mount from
//! another repository is linked instead of sent.
//!
//! A machine with no remembered digests (a fresh CI runner) learns from
//! the registry first: the manifest behind the tag (and behind the same
//! tag in `--from`) names each file and its size. A file of that name
//! and size is hashed before anything is sent, and only when its digest
//! is not already in the registry is it read again and uploaded; a file
//! with no such counterpart is read once, as on a first push.

use crate::error::{bail, Context, Result, TransferError};
use crate::progress::{Event, Progress};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use pavilion_client::digest_cache::DigestCache;
use pavilion_client::Client;
use pavilion_model::media::ANNOTATION_TITLE;
use pavilion_model::{pack_directory, ModelInfo};
use pavilion_oci::{media_type, Digest, ImageRef, RepoName};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a push sends.
#[derive(Debug, Clone)]
pub enum Content {
    /// A model directory, packed as CNCF ModelPack (one layer per file).
    Model {
        /// The directory.
        dir: PathBuf,
        /// Descriptor and config fields; an unset name is the directory's.
        info: ModelInfo,
    },
    /// Plain files, ORAS-style, under an artifact type.
    Files {
        /// The artifact type (a media type).
        artifact_type: String,
        /// The files, each a layer titled by its file name.
        paths: Vec<PathBuf>,
    },
}

/// A push, set up with its builder methods and carried out by [`Push::run`].
///
/// ```no_run
/// # async fn f(client: pavilion_client::Client) -> anyhow::Result<()> {
/// use pavilion_transfer::{Content, Push, Quiet};
/// let reference = "127.0.0.1:5000/team/llama:v1".parse()?;
/// let content = Content::Model { dir: "./llama".into(), info: Default::default() };
/// let report = Push::new(&client, reference, content).concurrency(8).run(&Quiet).await?;
/// println!("{}", report.digest);
/// # Ok(()) }
/// ```
pub struct Push<'a> {
    client: &'a Client,
    reference: ImageRef,
    content: Content,
    from: Option<String>,
    digests: DigestCache,
    concurrency: usize,
}

/// How a file reached the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Read, hashed and uploaded.
    Uploaded,
    /// Already there (known digest, answered by HEAD).
    Present,
    /// Linked from another repository without a transfer.
    Mounted,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// Where it went.
    pub reference: ImageRef,
    /// The manifest's digest.
    pub digest: Digest,
    /// Every file, in manifest order, with its size and how it got there.
    pub files: Vec<(PathBuf, u64, Sent)>,
}

impl PushReport {
    /// The bytes of all files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }

    /// How many files got there `how`.
    pub fn count(&self, how: Sent) -> usize {
        self.files.iter().filter(|f| f.2 == how).count()
    }
}

/// One file to upload: path, media type, annotations.
struct Upload {
    path: PathBuf,
    media_type: String,
    size: u64,
    annotations: std::collections::BTreeMap<String, String>,
}

/// Where and how to send the files.
struct Target<'a> {
    client: &'a Client,
    r: &'a ImageRef,
    from: Option<&'a str>,
    cache: &'a Mutex<DigestCache>,
    /// Sizes of the files the registry already has under this name, by
    /// title: fetched once, at the first file whose digest is not
    /// remembered (a push that remembers every file asks nothing more).
    previous: tokio::sync::OnceCell<HashMap<String, u64>>,
    progress: &'a dyn Progress,
}

impl<'a> Push<'a> {
    /// A push of `content` to `reference` through `client` (whose
    /// `ProgressFn`, if any, counts the bytes uploaded).
    pub fn new(client: &'a Client, reference: ImageRef, content: Content) -> Self {
        Push {
            client,
            reference,
            content,
            from: None,
            digests: DigestCache::in_memory(),
            concurrency: 4,
        }
    }

    /// Mounts blobs the registry holds in repository `repo` instead of
    /// uploading them.
    pub fn mount_from(mut self, repo: Option<String>) -> Self {
        self.from = repo;
        self
    }

    /// Remembers file digests here (and saves it at the end), so unchanged
    /// files are not read again.
    pub fn digests(mut self, cache: DigestCache) -> Self {
        self.digests = cache;
        self
    }

    /// Files sent at a time (at least one).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Uploads every file, then the config and the manifest.
    pub async fn run(self, progress: &dyn Progress) -> Result<PushReport> {
        if let Some(from) = &self.from {
            RepoName::new(from).with_context(|| format!("--from {from:?}"))?;
        }
        let cache = Mutex::new(self.digests);
        let target = Target {
            client: self.client,
            r: &self.reference,
            from: self.from.as_deref(),
            cache: &cache,
            previous: tokio::sync::OnceCell::new(),
            progress,
        };
        let (manifest, files, sent) = match &self.content {
            Content::Files {
                artifact_type,
                paths,
            } => push_files(&target, artifact_type, paths, self.concurrency).await?,
            Content::Model { dir, info } => {
                push_model(&target, dir, info.clone(), self.concurrency).await?
            }
        };
        let digest = self
            .client
            .put_manifest(
                &self.reference,
                media_type::OCI_MANIFEST,
                Bytes::from(manifest),
            )
            .await
            .context("pushing the manifest")?;
        let saved = match cache.into_inner() {
            Ok(c) => c.save().map_err(|e| e.to_string()),
            Err(_) => Err("a cache lock was poisoned".to_string()),
        };
        if let Err(e) = saved {
            progress.event(&Event::CacheNotSaved(e));
        }
        Ok(PushReport {
            reference: self.reference,
            digest,
            files: files
                .into_iter()
                .zip(sent)
                .map(|(f, s)| (f.path, f.size, s))
                .collect(),
        })
    }
}

/// The files of the manifests the registry holds under `r`'s tag and,
/// with `from`, under the same tag in that repository: each layer's title
/// with its size. Only a hint of which files to hash before sending (the
/// digests that go into the manifest are always computed here), so a tag
/// that does not exist, an index, or any failure to fetch or read one
/// gives no hints and the push goes on as a first push.
async fn previous_layers(
    client: &Client,
    r: &ImageRef,
    from: Option<&str>,
) -> HashMap<String, u64> {
    let mut found = HashMap::new();
    if r.digest.is_some() || r.tag.is_none() {
        return found;
    }
    let mut refs = vec![r.clone()];
    if let Some(repo) = from.and_then(|f| RepoName::new(f).ok()) {
        refs.push(ImageRef {
            repository: repo,
            ..r.clone()
        });
    }
    for at in refs {
        let layers = match client.get_manifest(&at).await {
            Ok(m) => serde_json::from_slice::<LayersOnly>(&m.bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match layers {
            Ok(doc) => {
                for l in doc.layers {
                    if let Some(title) = l.annotations.get(ANNOTATION_TITLE) {
                        found.entry(title.clone()).or_insert(l.size);
                    }
                }
            }
            Err(e) => {
                tracing::debug!(reference = %at, error = %e, "no hints from the manifest behind the tag")
            }
        }
    }
    found
}

/// The part of an image manifest [`previous_layers`] reads.
#[derive(serde::Deserialize)]
struct LayersOnly {
    #[serde(default)]
    layers: Vec<LayerHint>,
}

#[derive(serde::Deserialize)]
struct LayerHint {
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// The digest of `f` when the registry may already hold it: remembered
/// from an earlier push, or computed now because the manifest behind the
/// tag has a file of the same name and size. `None`: upload it.
async fn known_digest(
    t: &Target<'_>,
    f: &Upload,
    meta: &std::fs::Metadata,
) -> Result<Option<Digest>> {
    if let Some(d) = t.cache.lock().ok().and_then(|c| c.get(&f.path, meta)) {
        return Ok(Some(d));
    }
    let previous = t
        .previous
        .get_or_init(|| previous_layers(t.client, t.r, t.from))
        .await;
    let title = f.annotations.get(ANNOTATION_TITLE);
    let Some(size) = title.and_then(|n| previous.get(n)) else {
        return Ok(None);
    };
    if *size != meta.len() {
        return Ok(None);
    }
    let d = pavilion_client::digest_cache::digest_of_file(&f.path)
        .await
        .with_context(|| format!("hashing {}", f.path.display()))?;
    let after =
        std::fs::metadata(&f.path).with_context(|| format!("reading {}", f.path.display()))?;
    if after.len() != meta.len() || after.modified().ok() != meta.modified().ok() {
        bail!("{} changed while it was being hashed", f.path.display());
    }
    if let Ok(mut c) = t.cache.lock() {
        c.put(&f.path, &after, d.clone());
    }
    Ok(Some(d))
}

async fn upload_one(t: &Target<'_>, f: &Upload) -> Result<(Digest, Sent)> {
    let meta =
        std::fs::metadata(&f.path).with_context(|| format!("reading {}", f.path.display()))?;
    // The manifest gives the size planned from the directory: a file that
    // changed since must not be paired with another size's digest.
    if meta.len() != f.size {
        bail!("{} changed while it was being pushed", f.path.display());
    }
    let known = known_digest(t, f, &meta).await?;
    if let Some(d) = known {
        if t.client.blob_exists(t.r, &d).await? == Some(meta.len()) {
            t.progress.skipped(meta.len());
            return Ok((d, Sent::Present));
        }
        if let Some(from) = t.from {
            if t.client.mount_blob(t.r, &d, from).await? {
                t.progress.skipped(meta.len());
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
    t.progress.length(files.iter().map(|f| f.size).sum());
    let done: Vec<(Digest, Sent)> = futures::stream::iter(files.iter())
        .map(|f| upload_one(t, f))
        .buffered(concurrency)
        .try_collect()
        .await?;
    Ok(done.into_iter().unzip())
}

async fn push_model(
    t: &Target<'_>,
    dir: &Path,
    mut info: ModelInfo,
    concurrency: usize,
) -> Result<(Vec<u8>, Vec<Upload>, Vec<Sent>)> {
    if !dir.is_dir() {
        bail!(
            "{} is not a directory (use --artifact-type to push files)",
            dir.display()
        );
    }
    if info.name.is_none() {
        info.name = std::fs::canonicalize(dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    }
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
            .ok_or_else(|| {
                TransferError::Refused(format!("{}: file names must be UTF-8", p.display()))
            })?;
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
