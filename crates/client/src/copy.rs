//! `copy SRC DST`: a manifest and everything it reaches (child manifests of
//! an index, config, layers), between registries and OCI layout
//! directories, optionally with its referrers (signatures, SBOMs) and
//! theirs. Blobs the destination has are skipped; within one registry they
//! are mounted; large blobs from a registry are fetched as parallel ranges.

use crate::blocking;
use crate::error::ClientError;
use crate::layout::{LayoutRef, OciLayout};
use crate::Client;
use futures::future::BoxFuture;
use futures::StreamExt;
use pavilion_oci::{Descriptor, Digest, ImageRef, ManifestInfo, Tag};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Blobs up to this size are moved through memory.
const SMALL_BLOB: u64 = 4 << 20;
/// Manifests are refused above this size (the registry's own limit).
const MANIFEST_LIMIT: u64 = 4 << 20;

/// One end of a copy.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A registry reference.
    Registry(ImageRef),
    /// An OCI image layout directory (`oci:PATH[:TAG|@DIGEST]`).
    Layout(LayoutRef),
}

impl std::str::FromStr for Endpoint {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, ClientError> {
        match s.strip_prefix("oci:") {
            Some(rest) => Ok(Endpoint::Layout(LayoutRef::parse(rest)?)),
            None => s
                .parse::<ImageRef>()
                .map(Endpoint::Registry)
                .map_err(|e| ClientError::Usage(e.to_string())),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Registry(r) => r.fmt(f),
            Endpoint::Layout(l) => l.fmt(f),
        }
    }
}

/// How to copy.
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    /// Also copy referrers, recursively.
    pub recursive: bool,
    /// Blobs (and byte ranges of one blob) moved at a time.
    pub concurrency: usize,
}

/// What a copy did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyReport {
    /// Digest of the copied root manifest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Manifests written (root, children, referrers).
    pub manifests: u64,
    /// Blobs transferred.
    pub blobs_copied: u64,
    /// Blobs the destination already had.
    pub blobs_skipped: u64,
    /// Blobs linked from another repository of the same registry.
    pub blobs_mounted: u64,
    /// Bytes of blobs transferred.
    pub bytes: u64,
    /// Referrers copied (with `recursive`).
    pub referrers: u64,
}

/// An opened endpoint.
enum Side {
    Registry(ImageRef),
    Layout(OciLayout, LayoutRef),
}

impl Side {
    fn open(e: &Endpoint, create: bool) -> Result<Side, ClientError> {
        Ok(match e {
            Endpoint::Registry(r) => Side::Registry(r.clone()),
            Endpoint::Layout(l) => {
                let layout = if create {
                    OciLayout::open_or_create(&l.path)?
                } else {
                    OciLayout::open(&l.path)?
                };
                Side::Layout(layout, l.clone())
            }
        })
    }
}

/// `r` pinned to a digest.
fn by_digest(r: &ImageRef, d: &Digest) -> ImageRef {
    ImageRef {
        registry: r.registry.clone(),
        repository: r.repository.clone(),
        tag: None,
        digest: Some(d.clone()),
    }
}

struct Copier<'a> {
    client: &'a Client,
    src: Side,
    dst: Side,
    opts: CopyOptions,
    visited: Mutex<HashSet<Digest>>,
    manifests: AtomicU64,
    copied: AtomicU64,
    skipped: AtomicU64,
    mounted: AtomicU64,
    bytes: AtomicU64,
    referrers: AtomicU64,
}

/// Copies `src` to `dst`.
pub async fn copy(
    client: &Client,
    src: &Endpoint,
    dst: &Endpoint,
    opts: CopyOptions,
) -> Result<CopyReport, ClientError> {
    // The source is resolved before the destination is touched, so a
    // failed copy does not leave an empty layout behind.
    let source = Side::open(src, false)?;
    let root = resolve_root(client, &source).await?;
    let c = Copier {
        client,
        src: source,
        dst: Side::open(dst, true)?,
        opts,
        visited: Mutex::new(HashSet::new()),
        manifests: AtomicU64::new(0),
        copied: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        mounted: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        referrers: AtomicU64::new(0),
    };
    let tag = match (&c.dst, src) {
        (Side::Registry(r), _) => r.tag.as_ref().map(Tag::to_string),
        (Side::Layout(_, l), _) if l.tag.is_some() => l.tag.clone(),
        (Side::Layout(..), Endpoint::Registry(r)) => r.tag.as_ref().map(Tag::to_string),
        (Side::Layout(..), Endpoint::Layout(l)) => l.tag.clone(),
    };
    c.copy_tree(root.clone(), tag, true).await?;
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Ok(CopyReport {
        digest: root.digest.to_string(),
        media_type: root.media_type,
        manifests: n(&c.manifests),
        blobs_copied: n(&c.copied),
        blobs_skipped: n(&c.skipped),
        blobs_mounted: n(&c.mounted),
        bytes: n(&c.bytes),
        referrers: n(&c.referrers),
    })
}

/// The descriptor of the manifest the source names.
async fn resolve_root(client: &Client, src: &Side) -> Result<Descriptor, ClientError> {
    match src {
        Side::Registry(r) => {
            let m = client.get_manifest(r).await?;
            let info = parse(&m.bytes, &m.media_type, &r.to_string())?;
            Ok(Descriptor {
                media_type: info.media_type,
                digest: m.digest,
                size: m.bytes.len() as u64,
                artifact_type: info.artifact_type,
                annotations: None,
            })
        }
        Side::Layout(layout, r) => layout.resolve(r),
    }
}

impl Copier<'_> {
    async fn fetch_manifest(&self, desc: &Descriptor) -> Result<Vec<u8>, ClientError> {
        if desc.size > MANIFEST_LIMIT {
            return Err(ClientError::Protocol(format!(
                "manifest {} is {} bytes, over the {MANIFEST_LIMIT} byte limit",
                desc.digest, desc.size
            )));
        }
        match &self.src {
            Side::Registry(r) => Ok(self
                .client
                .get_manifest(&by_digest(r, &desc.digest))
                .await?
                .bytes
                .to_vec()),
            Side::Layout(layout, _) => layout.read_blob(&desc.digest),
        }
    }

    /// Copies the manifest `desc` and everything below it, then (with
    /// `recursive`) its referrers. `root` manifests get `tag`.
    fn copy_tree(
        &self,
        desc: Descriptor,
        tag: Option<String>,
        root: bool,
    ) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            let first = self
                .visited
                .lock()
                .map(|mut v| v.insert(desc.digest.clone()))
                .unwrap_or(true);
            if !first && tag.is_none() {
                return Ok(());
            }
            let bytes = self.fetch_manifest(&desc).await?;
            let info = parse(&bytes, &desc.media_type, &desc.digest.to_string())?;
            for child in &info.manifests {
                self.copy_tree(child.clone(), None, false).await?;
            }
            // A manifest may list a blob twice (repeated empty layers): move
            // each digest once, and never two writers on one temp file.
            let mut blobs = info.blobs.clone();
            let mut seen = HashSet::new();
            blobs.retain(|b| seen.insert(b.digest.clone()));
            let results: Vec<Result<(), ClientError>> = futures::stream::iter(blobs)
                .map(|b| async move { self.copy_blob(&b).await })
                .buffer_unordered(self.opts.concurrency.max(1))
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            self.put_manifest(&desc, &info, bytes, tag.as_deref(), root)
                .await?;
            self.manifests.fetch_add(1, Ordering::Relaxed);
            if self.opts.recursive {
                for r in self.referrers_of(&desc.digest).await? {
                    let fresh = !self
                        .visited
                        .lock()
                        .map(|v| v.contains(&r.digest))
                        .unwrap_or(false);
                    self.copy_tree(r, None, true).await?;
                    if fresh {
                        self.referrers.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(())
        })
    }

    async fn referrers_of(&self, d: &Digest) -> Result<Vec<Descriptor>, ClientError> {
        match &self.src {
            Side::Registry(r) => self.client.referrers(r, d, None).await,
            Side::Layout(layout, _) => layout.referrers(d),
        }
    }

    async fn put_manifest(
        &self,
        desc: &Descriptor,
        info: &ManifestInfo,
        bytes: Vec<u8>,
        tag: Option<&str>,
        listed: bool,
    ) -> Result<(), ClientError> {
        match &self.dst {
            Side::Registry(r) => {
                let target = match tag {
                    Some(t) => ImageRef {
                        registry: r.registry.clone(),
                        repository: r.repository.clone(),
                        tag: Some(Tag::new(t).map_err(|e| ClientError::Usage(e.to_string()))?),
                        digest: None,
                    },
                    None => by_digest(r, &desc.digest),
                };
                self.client
                    .put_manifest(&target, &info.media_type, bytes.into())
                    .await?;
            }
            Side::Layout(layout, _) => {
                layout.write_blob(&desc.digest, &bytes)?;
                if listed {
                    let entry = Descriptor {
                        media_type: info.media_type.clone(),
                        digest: desc.digest.clone(),
                        size: bytes.len() as u64,
                        artifact_type: info.artifact_type.clone(),
                        annotations: None,
                    };
                    layout.add_manifest(&entry, tag)?;
                }
            }
        }
        Ok(())
    }

    async fn copy_blob(&self, b: &Descriptor) -> Result<(), ClientError> {
        let present = match &self.dst {
            Side::Registry(r) => self.client.blob_exists(r, &b.digest).await? == Some(b.size),
            Side::Layout(layout, _) => layout.has_blob(&b.digest, b.size),
        };
        if present {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        match (&self.src, &self.dst) {
            (Side::Registry(s), Side::Registry(d)) => {
                if s.registry == d.registry
                    && s.repository != d.repository
                    && self
                        .client
                        .mount_blob(d, &b.digest, s.repository.as_str())
                        .await?
                {
                    self.mounted.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                let stream = self.client.blob_stream(s, &b.digest).await?;
                self.client
                    .push_blob_stream(d, &b.digest, b.size, stream)
                    .await?;
            }
            (Side::Registry(s), Side::Layout(layout, _)) => {
                if b.size <= SMALL_BLOB {
                    let bytes = self.client.blob_bytes(s, &b.digest, SMALL_BLOB).await?;
                    layout.write_blob(&b.digest, &bytes)?;
                } else {
                    let (dir, name) = layout.blob_target(&b.digest)?;
                    self.client
                        .pull_blob_into(s, &b.digest, b.size, &dir, &name, self.opts.concurrency)
                        .await?;
                }
            }
            (Side::Layout(layout, _), Side::Registry(d)) => {
                let path = layout.blob_path(&b.digest);
                let (actual, _) = self.client.push_blob_file_as(d, &path, &b.digest).await?;
                if actual != b.digest {
                    return Err(ClientError::DigestMismatch {
                        path: path.display().to_string(),
                        expected: b.digest.to_string(),
                        actual: actual.to_string(),
                    });
                }
            }
            (Side::Layout(from, _), Side::Layout(to, _)) => {
                let (src, dst) = (from.blob_path(&b.digest), to.blob_target(&b.digest)?);
                let digest = b.digest.clone();
                blocking::spawn(move || copy_verified(&src, &dst.0, &dst.1, &digest)).await??;
            }
        }
        self.copied.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(b.size, Ordering::Relaxed);
        Ok(())
    }
}

fn parse(bytes: &[u8], media_type: &str, what: &str) -> Result<ManifestInfo, ClientError> {
    ManifestInfo::parse(bytes, Some(media_type).filter(|m| !m.is_empty()))
        .map_err(|e| ClientError::Protocol(format!("{what}: {e}")))
}

/// Copies a file to `name` in `dir`, hashing it on the way; the copy
/// appears only if it matches (through a new temporary file and a rename).
fn copy_verified(
    src: &std::path::Path,
    dir: &pavilion_dio::Dir,
    name: &std::ffi::OsStr,
    digest: &Digest,
) -> Result<(), ClientError> {
    let mut input = std::fs::File::open(src).map_err(|e| ClientError::io_at(src, e))?;
    let tmp = crate::layout::unique_tmp(name);
    let mut out = dir
        .create_new(&tmp)
        .map_err(|e| ClientError::io_at(&dir.join(&tmp), e))?;
    let result = copy_hashed(src, &mut input, dir, &tmp, &mut out, digest);
    if result.is_err() {
        let _ = dir.remove_file(&tmp);
        return result;
    }
    dir.rename(&tmp, dir, name).map_err(ClientError::Io)
}

/// The copy itself: bytes from `input` to `out` (the temporary `tmp`),
/// synced only if they hash to `digest`.
fn copy_hashed(
    src: &std::path::Path,
    input: &mut std::fs::File,
    dir: &pavilion_dio::Dir,
    tmp: &std::ffi::OsStr,
    out: &mut std::fs::File,
    digest: &Digest,
) -> Result<(), ClientError> {
    let tmp = dir.join(tmp);
    let mut h = digest.algorithm().hasher();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| ClientError::io_at(src, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| ClientError::io_at(&tmp, e))?;
    }
    let actual = h.finish();
    if &actual != digest {
        return Err(ClientError::DigestMismatch {
            path: src.display().to_string(),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    out.sync_all().map_err(|e| ClientError::io_at(&tmp, e))
}
