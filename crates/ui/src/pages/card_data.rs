//! Reading a version for its pages: the manifest, its files, and the few
//! bytes of them a card shows (README, license, safetensors headers), each
//! through the distribution API with a `Range` and a bound.

use crate::api::{ApiFailure, Viewer};
use crate::view;
use crate::Ui;
use http::{header, HeaderValue};
use pavilion_model::inspect::{safetensors_header, TensorInfo};
use pavilion_model::media;
use pavilion_oci::{Descriptor, ManifestInfo};

/// Largest manifest read (the registry's own limit is smaller).
const MAX_MANIFEST: usize = 4 << 20;
/// Largest config read.
const MAX_CONFIG: usize = 1 << 20;
/// Largest safetensors header read for the card (real ones are far
/// smaller; the format allows 100 MiB).
pub const MAX_TENSOR_HEADER: u64 = 8 << 20;
/// Most safetensors files whose header is read for one card.
pub const MAX_TENSOR_FILES: usize = 16;

/// A manifest as read.
pub struct Manifest {
    /// Its digest (from the registry's `Docker-Content-Digest`).
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// It, parsed.
    pub info: ManifestInfo,
}

/// Reads `name`'s manifest `reference`.
pub async fn manifest(
    ui: &Ui,
    viewer: &Viewer,
    name: &str,
    reference: &str,
) -> Result<Manifest, ApiFailure> {
    let path = format!(
        "/v2/{}/manifests/{}",
        view::path_part(name),
        view::path_part(reference)
    );
    let accept = HeaderValue::from_str(&pavilion_oci::media_type::MANIFEST_TYPES.join(", "))
        .expect("media types are header-safe");
    let a = ui
        .api
        .get(viewer, &path, &[(header::ACCEPT, accept)], MAX_MANIFEST)
        .await?;
    let ct = a
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let info = ManifestInfo::parse(&a.body, ct).map_err(|e| ApiFailure {
        status: http::StatusCode::BAD_GATEWAY,
        code: None,
        message: format!("the stored manifest does not parse: {e}"),
    })?;
    let digest = a
        .headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok(Manifest {
        digest,
        size: a.body.len() as u64,
        info,
    })
}

/// Bytes `start..start+len` of blob `digest` of `name` (fewer at its end).
pub async fn blob_range(
    ui: &Ui,
    viewer: &Viewer,
    name: &str,
    digest: &str,
    start: u64,
    len: u64,
) -> Result<bytes::Bytes, ApiFailure> {
    let path = format!("/v2/{}/blobs/{digest}", view::path_part(name));
    let range = HeaderValue::from_str(&format!("bytes={start}-{}", start + len.max(1) - 1))
        .expect("a range is header-safe");
    let a = ui
        .api
        .get(viewer, &path, &[(header::RANGE, range)], len as usize)
        .await?;
    Ok(a.body)
}

/// The config document, when it is small JSON.
pub async fn config(
    ui: &Ui,
    viewer: &Viewer,
    name: &str,
    d: &Descriptor,
) -> Option<serde_json::Value> {
    if d.size as usize > MAX_CONFIG || d.size == 0 {
        return None;
    }
    let b = blob_range(ui, viewer, name, &d.digest.to_string(), 0, d.size)
        .await
        .ok()?;
    serde_json::from_slice(&b).ok()
}

/// A file (a layer) of a version.
pub struct File {
    /// Its path (the ModelPack or ORAS annotation), or `layer N`.
    pub path: String,
    /// Whether it has a path of its own.
    pub named: bool,
    /// The layer's media type.
    pub media_type: String,
    /// The layer's digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// Whether the layer is a tar holding the file (modctl's layout).
    pub tar: bool,
}

/// The layers of an image manifest as files, by path.
pub fn files(info: &ManifestInfo) -> Vec<File> {
    let mut out: Vec<File> = info
        .blobs
        .iter()
        .skip(1)
        .enumerate()
        .map(|(i, l)| {
            let path = media::layer_filepath(l).map(str::to_string);
            File {
                named: path.is_some(),
                path: path.unwrap_or_else(|| format!("layer {}", i + 1)),
                media_type: l.media_type.clone(),
                digest: l.digest.to_string(),
                size: l.size,
                tar: media::is_tar_layer(&l.media_type),
            }
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The file whose name (the last path component, case-insensitively)
/// starts with one of `prefixes`, the one nearest the root first.
pub fn find<'a>(files: &'a [File], prefixes: &[&str]) -> Option<&'a File> {
    files
        .iter()
        .filter(|f| f.named)
        .filter(|f| {
            let base = f.path.rsplit('/').next().unwrap_or("").to_ascii_lowercase();
            prefixes.iter().any(|p| base.starts_with(p))
        })
        .min_by_key(|f| (f.path.matches('/').count(), f.path.len()))
}

/// The first `max` bytes of `file`'s content (inside its tar if it is
/// one), and whether there was more.
pub async fn head(
    ui: &Ui,
    viewer: &Viewer,
    name: &str,
    file: &File,
    max: u64,
) -> Result<(bytes::Bytes, bool), ApiFailure> {
    let start = data_start(ui, viewer, name, file).await?;
    let size = file.size.saturating_sub(start);
    let want = size.min(max);
    let b = blob_range(ui, viewer, name, &file.digest, start, want).await?;
    Ok((b, size > max))
}

/// Where `file`'s own bytes start in its layer.
async fn data_start(ui: &Ui, viewer: &Viewer, name: &str, file: &File) -> Result<u64, ApiFailure> {
    if !file.tar {
        return Ok(0);
    }
    let first = blob_range(ui, viewer, name, &file.digest, 0, 8192.min(file.size)).await?;
    crate::safetensors::tar_data_offset(&first).ok_or_else(|| ApiFailure {
        status: http::StatusCode::BAD_GATEWAY,
        code: None,
        message: format!("{}: the layer's tar header does not show a file", file.path),
    })
}

/// The safetensors headers of the version's files, and a line for each
/// file that could not be read.
pub async fn tensors(
    ui: &Ui,
    viewer: &Viewer,
    name: &str,
    files: &[File],
) -> (Vec<Vec<TensorInfo>>, Vec<String>) {
    let mut headers = Vec::new();
    let mut notes = Vec::new();
    let weights: Vec<&File> = files
        .iter()
        .filter(|f| f.path.to_ascii_lowercase().ends_with(".safetensors"))
        .collect();
    if weights.len() > MAX_TENSOR_FILES {
        notes.push(format!(
            "{} safetensors files; the first {MAX_TENSOR_FILES} are summarised",
            weights.len()
        ));
    }
    for f in weights.into_iter().take(MAX_TENSOR_FILES) {
        match tensor_header(ui, viewer, name, f).await {
            Ok(t) => headers.push(t),
            Err(why) => notes.push(format!("{}: {why}", view::clip(&f.path, 120))),
        }
    }
    (headers, notes)
}

async fn tensor_header(
    ui: &Ui,
    viewer: &Viewer,
    name: &str,
    f: &File,
) -> Result<Vec<TensorInfo>, String> {
    let start = data_start(ui, viewer, name, f)
        .await
        .map_err(|e| e.message)?;
    let len = blob_range(ui, viewer, name, &f.digest, start, 8)
        .await
        .map_err(|e| e.message)?;
    let len: [u8; 8] = len[..]
        .try_into()
        .map_err(|_| "shorter than a safetensors header".to_string())?;
    let len = u64::from_le_bytes(len);
    if len > MAX_TENSOR_HEADER {
        return Err(format!(
            "a header of {} is larger than the {} the card reads",
            view::bytes(len),
            view::bytes(MAX_TENSOR_HEADER)
        ));
    }
    let header = blob_range(ui, viewer, name, &f.digest, start + 8, len)
        .await
        .map_err(|e| e.message)?;
    safetensors_header(&header)
}
