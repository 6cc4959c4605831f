//! Placing a pull's files: each layer brought to its path under the output
//! directory (already there, linked from the content cache, or downloaded
//! and verified), tar layers listed and judged before anything is written,
//! and what a failed pull made taken away again. Every file is written
//! relative to a handle on its directory, without following a symlink
//! below the output directory (`pavilion_dio::Dir`).

use crate::error::{Context, Result, TransferError};
use crate::progress::Progress;
use pavilion_client::blob_cache::BlobCache;
use pavilion_client::digest_cache::DigestCache;
use pavilion_dio::Dir;
use pavilion_model::{extract_tar, list_tar, PathError, PathSet, TarEntry};
use pavilion_oci::ImageRef;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Where a pulled file's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Downloaded from the registry.
    Pulled,
    /// Placed from the local content cache.
    Cached,
    /// The destination already held these exact bytes.
    Present,
}

impl Source {
    /// `registry`, `cache` or `present`, as reports name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Pulled => "registry",
            Source::Cached => "cache",
            Source::Present => "present",
        }
    }
}

/// Where a pull's layers come from and how: what every file's fetch shares.
#[derive(Clone, Copy)]
pub(crate) struct Fetch<'a> {
    /// The registry client.
    pub(crate) client: &'a pavilion_client::Client,
    /// The artifact (its repository holds the blobs).
    pub(crate) reference: &'a ImageRef,
    /// Parallel byte ranges per file.
    pub(crate) parallel: usize,
    /// The local content cache, if used.
    pub(crate) blobs: Option<&'a BlobCache>,
    /// Told of bytes that needed no download.
    pub(crate) progress: &'a dyn Progress,
}

/// Brings one layer to `name` in `dir`: nothing to do when the file there
/// is known to hold the digest, a link from the content cache when it has
/// the blob, else a verified download that is then added to the cache. A
/// symlink at `name` is refused.
async fn fetch_file(
    from: &Fetch<'_>,
    layer: &pavilion_oci::Descriptor,
    dir: &Dir,
    name: &OsStr,
    digests: &mut DigestCache,
) -> Result<Source> {
    let Fetch {
        client,
        reference: r,
        parallel,
        blobs,
        ..
    } = *from;
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
            return Ok(Source::Present);
        }
        _ => {}
    }
    if let Some(cache) = blobs {
        if cache
            .place(&layer.digest, layer.size, dir, name, digests)
            .is_some()
        {
            return Ok(Source::Cached);
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
    Ok(Source::Pulled)
}

/// A refused symlink as the unsafe-path error of layer path `rel` (a
/// `PathError`, which callers treat as a failed check).
fn unsafe_io(rel: &str, e: std::io::Error) -> TransferError {
    match pavilion_dio::refused(&e) {
        Some(r) => PathError::ThroughSymlink(rel.to_string(), r.path.display().to_string()).into(),
        None => e.into(),
    }
}

/// One layer to place: its file path, descriptor, whether it is a tar, and
/// its position in the manifest (the order files are reported in).
pub(crate) struct Planned {
    pub(crate) rel: String,
    pub(crate) layer: pavilion_oci::Descriptor,
    pub(crate) tar: bool,
    pub(crate) index: usize,
}

/// What a pull made that must not outlive it: temporary archives always go;
/// if the pull fails, the files it created (not those that were there
/// before, even if it rewrote them) and
/// the directories it created (when still empty) go too, so a failed pull
/// never leaves part of an artifact looking like a whole one. A file
/// interrupted mid-transfer keeps its partial file and record, so a rerun
/// resumes it; placed files come back from the content cache.
#[derive(Default)]
pub(crate) struct Made {
    pub(crate) archives: Vec<OsString>,
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
    pub(crate) fn undo(&self, root: &Dir) {
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
pub(crate) type Placed = (String, u64, Source, usize);

/// A tar layer listed before extraction: the layer and its entries.
pub(crate) struct ListedTar {
    pub(crate) rel: String,
    pub(crate) layer: pavilion_oci::Descriptor,
    pub(crate) entries: Vec<TarEntry>,
}

/// What judges the tar layers' entries once all are listed and before
/// anything else is written (the pull rules, when `--policy` is given).
pub(crate) type Judge<'a> = &'a mut dyn FnMut(&[ListedTar]) -> Result<()>;

/// Places every planned layer under `root`. Tar layers come first: fetched
/// to temporary archives and listed, so an entry that collides with another
/// layer's path is refused, and `judge` sees every entry, before any file
/// is written.
pub(crate) async fn place_all(
    from: &Fetch<'_>,
    root: &Dir,
    plan: Vec<Planned>,
    paths: &mut PathSet,
    digests: &mut DigestCache,
    made: &mut Made,
    judge: Judge<'_>,
) -> Result<Vec<Placed>> {
    let progress = from.progress;
    let (tars, raws): (Vec<Planned>, Vec<Planned>) = plan.into_iter().partition(|p| p.tar);
    let mut archives = Vec::new();
    let mut listings = Vec::new();
    for p in tars {
        let name = OsString::from(format!(".pavilion-layer-{}.tar", p.layer.digest.hex()));
        let how = fetch_file(from, &p.layer, root, &name, digests)
            .await
            .with_context(|| format!("pulling {}", p.rel))?;
        made.archives.push(name.clone());
        if how != Source::Pulled {
            progress.skipped(p.layer.size);
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
        let how = fetch_file(from, &p.layer, &dir, name, digests)
            .await
            .with_context(|| format!("pulling {}", p.rel))?;
        if how != Source::Pulled {
            progress.skipped(p.layer.size);
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
