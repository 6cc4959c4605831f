//! OCI image layout directories (image-spec `image-layout.md`): the
//! `oci:PATH:TAG` end of `pavilion copy`, readable by skopeo and ORAS.
//!
//! `oci-layout` marks the directory, blobs live under `blobs/<alg>/<hex>`,
//! and `index.json` lists the manifests reachable by tag (the
//! `org.opencontainers.image.ref.name` annotation) plus untagged ones such as
//! referrers, which is how ORAS keeps signatures in a layout.
//!
//! Writes go through directory handles ([`pavilion_dio::Dir`]): below the
//! layout's root no symlink is followed (a symlinked `blobs/` is refused),
//! and files are created with `O_EXCL` under unique temporary names, then
//! renamed into place.

use crate::error::ClientError;
use pavilion_dio::dir::with_suffix;
use pavilion_dio::Dir;
use pavilion_oci::{media_type, Descriptor, Digest, ManifestInfo};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Annotation naming a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A reference into a layout: `oci:PATH`, `oci:PATH:TAG` or `oci:PATH@DIGEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The layout directory.
    pub path: PathBuf,
    /// Tag (`ref.name`), if given.
    pub tag: Option<String>,
    /// Digest, if given.
    pub digest: Option<Digest>,
}

impl LayoutRef {
    /// Parses what follows `oci:`. A `:` starts the tag only when no `/`
    /// follows it, so `oci:/tmp/a:b/c` is a path.
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        let bad =
            |why: String| ClientError::Usage(format!("invalid layout reference oci:{s}: {why}"));
        let (path, tag, digest) = if let Some((p, d)) = s.rsplit_once('@') {
            let d = d.parse::<Digest>().map_err(|e| bad(e.to_string()))?;
            (p, None, Some(d))
        } else {
            match s.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') => {
                    pavilion_oci::Tag::new(t).map_err(|e| bad(e.to_string()))?;
                    (p, Some(t.to_string()), None)
                }
                _ => (s, None, None),
            }
        };
        if path.is_empty() {
            return Err(bad("empty path".into()));
        }
        Ok(LayoutRef {
            path: PathBuf::from(path),
            tag,
            digest,
        })
    }
}

impl std::fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci:{}", self.path.display())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// An OCI image layout on disk.
#[derive(Debug)]
pub struct OciLayout {
    root: PathBuf,
    /// The root, opened once: every write is relative to it.
    dir: Dir,
    /// Serialises read-modify-write of `index.json` within this process.
    index_lock: Mutex<()>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::Io(std::io::Error::other(format!("{}: {e}", path.display())))
}

/// A temporary name beside `name`, unique to this process and call, so
/// concurrent writers of the same blob never share one (and, created with
/// `O_EXCL`, nothing planted there is used).
pub(crate) fn unique_tmp(name: &OsStr) -> OsString {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    with_suffix(name, &format!(".{}-{n}.tmp", std::process::id()))
}

/// Writes `bytes` to `name` in `dir` through a new temporary file and a
/// rename (which replaces, never follows, whatever is at `name`).
fn write_atomic(dir: &Dir, name: &str, bytes: &[u8]) -> Result<(), ClientError> {
    let name = OsStr::new(name);
    let tmp = unique_tmp(name);
    let write = || -> std::io::Result<()> {
        let mut f = dir.create_new(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        dir.rename(&tmp, dir, name)
    };
    write().map_err(|e| {
        let _ = dir.remove_file(&tmp);
        ClientError::io_at(&dir.join(name), e)
    })
}

impl OciLayout {
    /// Opens an existing layout (its `oci-layout` file must say 1.0.0).
    pub fn open(root: &Path) -> Result<Self, ClientError> {
        let marker = root.join("oci-layout");
        let text = std::fs::read_to_string(&marker)
            .map_err(|e| io_err(&marker, format!("not an OCI layout ({e})")))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| io_err(&marker, format!("not JSON: {e}")))?;
        if v.get("imageLayoutVersion").and_then(|s| s.as_str()) != Some("1.0.0") {
            return Err(io_err(&marker, "imageLayoutVersion is not 1.0.0"));
        }
        Ok(OciLayout {
            root: root.to_path_buf(),
            dir: Dir::open(root).map_err(ClientError::Io)?,
            index_lock: Mutex::new(()),
        })
    }

    /// Opens a layout, creating an empty one if the directory has none.
    pub fn open_or_create(root: &Path) -> Result<Self, ClientError> {
        if root.join("oci-layout").exists() {
            return Self::open(root);
        }
        std::fs::create_dir_all(root).map_err(|e| io_err(root, e))?;
        let dir = Dir::open(root).map_err(ClientError::Io)?;
        dir.subdir(Path::new("blobs"), Some(&mut Vec::new()))
            .map_err(ClientError::Io)?;
        write_atomic(&dir, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        if dir
            .metadata(OsStr::new("index.json"))
            .map_err(ClientError::Io)?
            .is_none()
        {
            let empty = Index {
                schema_version: 2,
                media_type: Some(media_type::OCI_INDEX.to_string()),
                ..Default::default()
            };
            let bytes = serde_json::to_vec(&empty).map_err(|e| io_err(root, e))?;
            write_atomic(&dir, "index.json", &bytes)?;
        }
        Self::open(root)
    }

    /// Where blob `d` lives.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    /// Whether the layout holds blob `d` with `size` bytes.
    pub fn has_blob(&self, d: &Digest, size: u64) -> bool {
        std::fs::symlink_metadata(self.blob_path(d)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Reads a whole blob (manifests, configs), checking its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, ClientError> {
        let p = self.blob_path(d);
        let bytes = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
        let actual = Digest::compute(d.algorithm(), &bytes);
        if &actual != d {
            return Err(ClientError::DigestMismatch {
                path: p.display().to_string(),
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Stores bytes as a blob (after checking they hash to `d`).
    pub fn write_blob(&self, d: &Digest, bytes: &[u8]) -> Result<(), ClientError> {
        let actual = Digest::compute(d.algorithm(), bytes);
        if &actual != d {
            return Err(ClientError::DigestMismatch {
                path: format!("blob {d}"),
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        let (dir, _) = self.blob_target(d)?;
        write_atomic(&dir, d.hex(), bytes)
    }

    /// The directory of blob `d` (made if missing, walked without following
    /// a symlink below the root) and the blob's file name in it, for writers
    /// that fill the file themselves, such as a parallel download.
    pub fn blob_target(&self, d: &Digest) -> Result<(Dir, OsString), ClientError> {
        let rel = Path::new("blobs").join(d.algorithm().as_str());
        let dir = self
            .dir
            .subdir(&rel, Some(&mut Vec::new()))
            .map_err(ClientError::Io)?;
        Ok((dir, OsString::from(d.hex())))
    }

    fn read_index(&self) -> Result<Index, ClientError> {
        let p = self.root.join("index.json");
        let bytes = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
        serde_json::from_slice(&bytes).map_err(|e| io_err(&p, format!("not an image index: {e}")))
    }

    /// The manifests listed in `index.json`.
    pub fn manifests(&self) -> Result<Vec<Descriptor>, ClientError> {
        Ok(self.read_index()?.manifests)
    }

    /// The descriptor `r` names: its digest, its tag, or the only manifest.
    pub fn resolve(&self, r: &LayoutRef) -> Result<Descriptor, ClientError> {
        let list = self.manifests()?;
        let found = if let Some(d) = &r.digest {
            list.into_iter().find(|m| &m.digest == d).or_else(|| {
                // A child manifest is a blob but not an index entry.
                let bytes = self.read_blob(d).ok()?;
                let info = ManifestInfo::parse(&bytes, None).ok()?;
                Some(Descriptor {
                    media_type: info.media_type,
                    digest: d.clone(),
                    size: bytes.len() as u64,
                    artifact_type: info.artifact_type,
                    annotations: None,
                })
            })
        } else if let Some(t) = &r.tag {
            list.into_iter().find(|m| tag_of(m) == Some(t.as_str()))
        } else {
            let mut named = list.into_iter().filter(|m| tag_of(m).is_some());
            match (named.next(), named.next()) {
                (Some(only), None) => Some(only),
                (Some(_), Some(_)) => {
                    return Err(ClientError::Usage(format!(
                        "{r} holds several tagged manifests; name one (oci:PATH:TAG)"
                    )))
                }
                _ => None,
            }
        };
        found.ok_or_else(|| ClientError::NotFound(format!("{r}: no such manifest")))
    }

    /// Lists `desc` in `index.json`, under `tag` if given (taking the tag
    /// from any other entry), or untagged.
    pub fn add_manifest(&self, desc: &Descriptor, tag: Option<&str>) -> Result<(), ClientError> {
        let _guard = self
            .index_lock
            .lock()
            .map_err(|_| io_err(&self.root, "lock poisoned"))?;
        let mut index = self.read_index()?;
        let mut entry = desc.clone();
        let mut ann = entry.annotations.take().unwrap_or_default();
        ann.remove(REF_NAME);
        if let Some(t) = tag {
            ann.insert(REF_NAME.to_string(), t.to_string());
            index.manifests.retain(|m| tag_of(m) != Some(t));
        } else if index.manifests.iter().any(|m| m.digest == desc.digest) {
            return Ok(());
        }
        entry.annotations = (!ann.is_empty()).then_some(ann);
        index.manifests.push(entry);
        index.schema_version = 2;
        let bytes = serde_json::to_vec(&index).map_err(|e| io_err(&self.root, e))?;
        write_atomic(&self.dir, "index.json", &bytes)
    }

    /// Manifests whose `subject` is `subject`: those listed in `index.json`,
    /// and those of the `sha256-<hex>` tag's index (the referrers tag schema,
    /// which notation and ORAS also use in layouts).
    pub fn referrers(&self, subject: &Digest) -> Result<Vec<Descriptor>, ClientError> {
        let mut out: Vec<Descriptor> = Vec::new();
        let mut candidates = self.manifests()?;
        let tag = crate::listing::referrers_tag(subject);
        if let Some(fallback) = candidates.iter().find(|m| tag_of(m) == Some(tag.as_str())) {
            if let Ok(bytes) = self.read_blob(&fallback.digest) {
                if let Ok(info) = ManifestInfo::parse(&bytes, Some(&fallback.media_type)) {
                    candidates.extend(info.manifests);
                }
            }
        }
        for m in candidates {
            if out.iter().any(|o| o.digest == m.digest) {
                continue;
            }
            let Ok(bytes) = self.read_blob(&m.digest) else {
                continue;
            };
            let Ok(info) = ManifestInfo::parse(&bytes, Some(&m.media_type)) else {
                continue;
            };
            if info.subject.as_ref().is_some_and(|s| &s.digest == subject) {
                out.push(Descriptor {
                    media_type: info.media_type,
                    digest: m.digest,
                    size: m.size,
                    artifact_type: info.artifact_type,
                    annotations: info.annotations,
                });
            }
        }
        Ok(out)
    }
}

fn tag_of(d: &Descriptor) -> Option<&str> {
    d.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_layout_references() {
        let r = LayoutRef::parse("/tmp/x:v1").unwrap();
        assert_eq!(
            (r.path, r.tag),
            (PathBuf::from("/tmp/x"), Some("v1".into()))
        );
        let r = LayoutRef::parse("dir/a:b/c").unwrap();
        assert_eq!((r.path, r.tag), (PathBuf::from("dir/a:b/c"), None));
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = LayoutRef::parse(&format!("lay@{d}")).unwrap();
        assert_eq!(r.digest.unwrap().to_string(), d);
        assert!(LayoutRef::parse("x:bad tag").is_err());
        assert!(LayoutRef::parse(":v1").is_err());
    }

    #[test]
    fn tags_move_and_blobs_verify() {
        let dir = tempfile::tempdir().unwrap();
        let l = OciLayout::open_or_create(dir.path()).unwrap();
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let d = Digest::sha256(body);
        l.write_blob(&d, body).unwrap();
        assert!(l.write_blob(&d, b"other").is_err());
        let desc = Descriptor {
            media_type: media_type::OCI_INDEX.into(),
            digest: d.clone(),
            size: body.len() as u64,
            artifact_type: None,
            annotations: None,
        };
        l.add_manifest(&desc, Some("v1")).unwrap();
        l.add_manifest(&desc, Some("v2")).unwrap();
        l.add_manifest(&desc, Some("v1")).unwrap();
        assert_eq!(l.manifests().unwrap().len(), 2);
        let r = LayoutRef::parse(&format!("{}:v2", dir.path().display())).unwrap();
        assert_eq!(l.resolve(&r).unwrap().digest, d);
        let none = LayoutRef::parse(&format!("{}:v3", dir.path().display())).unwrap();
        assert!(matches!(l.resolve(&none), Err(ClientError::NotFound(_))));
        assert!(OciLayout::open(&dir.path().join("missing")).is_err());
    }
}
