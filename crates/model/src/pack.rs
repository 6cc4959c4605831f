//! A model directory as a ModelPack artifact: one raw layer per file, in a
//! fixed order, with annotations that do not depend on who packs or when,
//! so packing the same files twice gives the same digests.

use crate::classify::{classify, is_ignored, FileClass};
use crate::inspect::{self, WeightFormat};
use crate::media::{
    ANNOTATION_FILEPATH, ANNOTATION_FILE_METADATA, ANNOTATION_TITLE, MODEL_CONFIG, MODEL_MANIFEST,
};
use pavilion_oci::{media_type, Descriptor, Digest};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why a directory could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Reading the directory or a file failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A path is not valid UTF-8 (annotations are strings).
    #[error("{0}: file names must be UTF-8")]
    NotUtf8(PathBuf),
    /// Nothing to pack.
    #[error("{0}: no files to pack (hidden files and Modelfile are skipped)")]
    Empty(PathBuf),
    /// A weight file's header is corrupt.
    #[error("{0}")]
    Weight(std::io::Error),
}

/// Descriptive fields of the model (from flags and from the weights).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelInfo {
    /// `descriptor.name`.
    pub name: Option<String>,
    /// `descriptor.version`.
    pub version: Option<String>,
    /// `descriptor.family`.
    pub family: Option<String>,
    /// `descriptor.licenses`.
    pub licenses: Vec<String>,
    /// `config.architecture`.
    pub architecture: Option<String>,
    /// `config.format`, detected when not given.
    pub format: Option<String>,
    /// `config.paramSize`, counted from safetensors headers when not given.
    pub param_size: Option<String>,
    /// `config.precision`, from the dominant safetensors dtype when not given.
    pub precision: Option<String>,
    /// `config.quantization`.
    pub quantization: Option<String>,
}

/// One file to upload as one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    /// The file on disk.
    pub path: PathBuf,
    /// Its path relative to the model root, with `/` separators.
    pub rel: String,
    /// Its class.
    pub class: FileClass,
    /// Layer media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Layer annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Everything needed to build the artifact once the layers are uploaded.
#[derive(Debug, Clone)]
pub struct PackPlan {
    /// Layers in manifest order.
    pub layers: Vec<LayerPlan>,
    /// Model description.
    pub info: ModelInfo,
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<(), PackError> {
    let io = |e| PackError::Io(dir.to_path_buf(), e);
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_str().ok_or_else(|| PackError::NotUtf8(e.path()))?;
        if is_ignored(name) {
            continue;
        }
        let path = e.path();
        // Follow symlinks to files (model hubs' caches are full of them).
        let meta = std::fs::metadata(&path).map_err(|err| PackError::Io(path.clone(), err))?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .ok()
                .and_then(|r| r.to_str())
                .ok_or_else(|| PackError::NotUtf8(path.clone()))?
                .replace('\\', "/");
            out.push((path, rel));
        }
    }
    Ok(())
}

/// Plans the artifact for directory `dir`; `given` fields win over detected ones.
pub fn pack_directory(dir: &Path, given: ModelInfo) -> Result<PackPlan, PackError> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    if files.is_empty() {
        return Err(PackError::Empty(dir.to_path_buf()));
    }
    let mut layers = Vec::new();
    for (path, rel) in files {
        let meta = std::fs::metadata(&path).map_err(|e| PackError::Io(path.clone(), e))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&rel)
            .to_string();
        let class = classify(&name, meta.len());
        // uid, gid and mtime are normalised so the digest does not depend on
        // who packed the files or when they were copied.
        let metadata = serde_json::json!({
            "name": name,
            "mode": meta.permissions().mode() & 0o777,
            "uid": 0,
            "gid": 0,
            "size": meta.len(),
            "mtime": "1970-01-01T00:00:00Z",
            "typeflag": 0,
        });
        let annotations = BTreeMap::from([
            (ANNOTATION_FILEPATH.to_string(), rel.clone()),
            (ANNOTATION_FILE_METADATA.to_string(), metadata.to_string()),
            (ANNOTATION_TITLE.to_string(), rel.clone()),
        ]);
        layers.push(LayerPlan {
            media_type: class.raw_media_type(),
            path,
            rel,
            class,
            size: meta.len(),
            annotations,
        });
    }
    layers.sort_by(|a, b| (a.class, &a.rel).cmp(&(b.class, &b.rel)));
    let info = detect(&layers, given)?;
    Ok(PackPlan { layers, info })
}

/// Fills format, parameter size and precision from the weight files.
fn detect(layers: &[LayerPlan], mut info: ModelInfo) -> Result<ModelInfo, PackError> {
    let mut formats = Vec::new();
    let mut summary = inspect::TensorSummary::default();
    for l in layers.iter().filter(|l| l.class == FileClass::Weight) {
        let f = inspect::detect_format(&l.path).map_err(|e| PackError::Io(l.path.clone(), e))?;
        if f == Some(WeightFormat::Safetensors) {
            let s = inspect::safetensors_summary(&l.path).map_err(PackError::Weight)?;
            summary.parameters += s.parameters;
            for (k, v) in s.bytes_by_dtype {
                *summary.bytes_by_dtype.entry(k).or_default() += v;
            }
        }
        if let Some(f) = f.filter(|f| !formats.contains(f)) {
            formats.push(f);
        }
    }
    if info.format.is_none() {
        info.format = formats.first().map(|f| f.as_str().to_string());
    }
    if info.param_size.is_none() && summary.parameters > 0 {
        info.param_size = Some(inspect::param_size(summary.parameters));
    }
    if info.precision.is_none() {
        info.precision = inspect::precision(&summary);
    }
    Ok(info)
}

fn insert_some(
    map: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    v: &Option<String>,
) {
    if let Some(v) = v {
        map.insert(key.to_string(), v.clone().into());
    }
}

impl PackPlan {
    /// The config document, given each layer's digest (raw layers: the
    /// diffId is the layer digest).
    pub fn config_json(&self, layer_digests: &[Digest]) -> Vec<u8> {
        let i = &self.info;
        let mut descriptor = serde_json::Map::new();
        insert_some(&mut descriptor, "name", &i.name);
        insert_some(&mut descriptor, "version", &i.version);
        insert_some(&mut descriptor, "family", &i.family);
        if !i.licenses.is_empty() {
            descriptor.insert("licenses".into(), i.licenses.clone().into());
        }
        let mut config = serde_json::Map::new();
        insert_some(&mut config, "architecture", &i.architecture);
        insert_some(&mut config, "format", &i.format);
        insert_some(&mut config, "paramSize", &i.param_size);
        insert_some(&mut config, "precision", &i.precision);
        insert_some(&mut config, "quantization", &i.quantization);
        let diff_ids: Vec<String> = layer_digests.iter().map(Digest::to_string).collect();
        serde_json::json!({
            "descriptor": descriptor,
            "modelfs": {"type": "layers", "diffIds": diff_ids},
            "config": config,
        })
        .to_string()
        .into_bytes()
    }

    /// The manifest, given the uploaded config and layer digests.
    pub fn manifest_json(&self, config: &[u8], layer_digests: &[Digest]) -> Vec<u8> {
        let layers: Vec<Descriptor> = self
            .layers
            .iter()
            .zip(layer_digests)
            .map(|(l, d)| Descriptor {
                media_type: l.media_type.clone(),
                digest: d.clone(),
                size: l.size,
                artifact_type: None,
                annotations: Some(l.annotations.clone()),
            })
            .collect();
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "artifactType": MODEL_MANIFEST,
            "config": {"mediaType": MODEL_CONFIG, "digest": Digest::sha256(config), "size": config.len()},
            "layers": layers,
        })
        .to_string()
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_deterministically_in_class_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        std::fs::write(d.join(".git/HEAD"), "x").unwrap();
        std::fs::write(d.join("README.md"), "# m").unwrap();
        std::fs::write(d.join("config.json"), "{}").unwrap();
        std::fs::write(d.join("sub/run.py"), "print()").unwrap();
        std::fs::write(d.join("Modelfile"), "NAME x").unwrap();
        let header = br#"{"w":{"dtype":"F16","shape":[1000,3],"data_offsets":[0,6000]}}"#;
        let mut st = (header.len() as u64).to_le_bytes().to_vec();
        st.extend_from_slice(header);
        st.extend(vec![0u8; 6000]);
        std::fs::write(d.join("model.safetensors"), &st).unwrap();
        let plan = pack_directory(
            d,
            ModelInfo {
                name: Some("m".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let rels: Vec<&str> = plan.layers.iter().map(|l| l.rel.as_str()).collect();
        assert_eq!(
            rels,
            [
                "config.json",
                "model.safetensors",
                "sub/run.py",
                "README.md"
            ]
        );
        assert_eq!(
            plan.layers[1].media_type,
            "application/vnd.cncf.model.weight.v1.raw"
        );
        assert_eq!(plan.info.format.as_deref(), Some("safetensors"));
        assert_eq!(plan.info.param_size.as_deref(), Some("3.0k"));
        assert_eq!(plan.info.precision.as_deref(), Some("fp16"));
        let digests: Vec<Digest> = plan
            .layers
            .iter()
            .map(|l| Digest::sha256(l.rel.as_bytes()))
            .collect();
        let c1 = plan.config_json(&digests);
        let again = pack_directory(
            d,
            ModelInfo {
                name: Some("m".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(again.config_json(&digests), c1);
        assert_eq!(
            again.manifest_json(&c1, &digests),
            plan.manifest_json(&c1, &digests)
        );
        let m =
            pavilion_oci::ManifestInfo::parse(&plan.manifest_json(&c1, &digests), None).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some(MODEL_MANIFEST));
    }

    #[test]
    fn empty_and_corrupt_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            pack_directory(dir.path(), ModelInfo::default()),
            Err(PackError::Empty(_))
        ));
        std::fs::write(
            dir.path().join("w.safetensors"),
            [8u8, 0, 0, 0, 0, 0, 0, 0, b'{', b'x'],
        )
        .unwrap();
        let e = pack_directory(dir.path(), ModelInfo::default()).unwrap_err();
        assert!(e.to_string().contains("not JSON"), "{e}");
    }
}
