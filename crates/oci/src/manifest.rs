//! Reading just enough of a manifest to validate and index it.
//!
//! Manifests are stored and served byte-for-byte; this module never
//! re-serialises them. It extracts the media type, the descriptors a manifest
//! points at (which must exist), its `subject` and its artifact type.

use crate::digest::Digest;
use crate::media_type::{self, MANIFEST_TYPES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A content descriptor (image-spec descriptor.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Artifact type, for manifests that carry one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Why a manifest was rejected (`MANIFEST_INVALID` unless stated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    /// Media type missing or not a manifest type this registry stores.
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    /// The body's `mediaType` disagrees with the request's Content-Type.
    #[error("manifest mediaType {body:?} does not match Content-Type {header:?}")]
    MediaTypeMismatch {
        /// `mediaType` in the body.
        body: String,
        /// Content-Type header.
        header: String,
    },
    /// Nested deeper than [`crate::json::MAX_DEPTH`] levels.
    #[error(
        "manifest nests deeper than the {} levels allowed",
        crate::json::MAX_DEPTH
    )]
    TooDeep,
    /// A structural rule of the image-spec is broken.
    #[error("{0}")]
    Invalid(String),
}

/// What the registry needs to know about a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// Effective media type (body field, else Content-Type).
    pub media_type: String,
    /// `artifactType`, or for an image manifest without one, `config.mediaType`
    /// (the value the referrers API reports).
    pub artifact_type: Option<String>,
    /// Blobs referenced: config then layers (image manifests only).
    pub blobs: Vec<Descriptor>,
    /// For each entry of `blobs`: whether it is a non-distributable layer
    /// that carries `urls` (its bytes are fetched from there), which a
    /// registry may accept without holding. Never true for the config.
    pub external: Vec<bool>,
    /// Manifests referenced (indexes only).
    pub manifests: Vec<Descriptor>,
    /// The `subject` descriptor, if any.
    pub subject: Option<Descriptor>,
    /// Manifest annotations (reported by the referrers API).
    pub annotations: Option<BTreeMap<String, String>>,
    /// The whole document, parsed once (strictly: see [`crate::json`]);
    /// policy inputs are built from it, never from a second parse.
    pub document: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<RawLayer>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// A layer descriptor with the `urls` the registry looks at (and only for
/// non-distributable layers); `Descriptor` stays without it.
#[derive(Deserialize)]
struct RawLayer {
    #[serde(flatten)]
    descriptor: Descriptor,
    #[serde(default)]
    urls: Option<Vec<String>>,
}

impl RawLayer {
    fn is_external(&self) -> bool {
        media_type::is_non_distributable(&self.descriptor.media_type)
            && self.urls.as_ref().is_some_and(|u| !u.is_empty())
    }
}

/// Strips parameters (`; charset=...`) from a Content-Type value.
fn bare_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

impl ManifestInfo {
    /// Parses and validates `body`, given the request's Content-Type.
    ///
    /// ```
    /// use pavilion_oci::ManifestInfo;
    /// assert!(ManifestInfo::parse(b"not json", Some("application/vnd.oci.image.manifest.v1+json")).is_err());
    /// assert!(ManifestInfo::parse(br#"{"schemaVersion":2}"#, Some("text/plain")).is_err());
    /// ```
    pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Self, ManifestError> {
        let document = crate::json::parse_strict(body).map_err(|e| match e {
            crate::json::JsonError::TooDeep => ManifestError::TooDeep,
            crate::json::JsonError::Syntax(s) => ManifestError::Json(s),
        })?;
        let raw =
            RawManifest::deserialize(&document).map_err(|e| ManifestError::Json(e.to_string()))?;
        let header = content_type.map(bare_type).filter(|s| !s.is_empty());
        let media_type = match (&raw.media_type, header) {
            (Some(body), Some(header)) if body != header => {
                return Err(ManifestError::MediaTypeMismatch {
                    body: body.clone(),
                    header: header.to_string(),
                })
            }
            (Some(body), _) => body.clone(),
            (None, Some(header)) => header.to_string(),
            (None, None) => return Err(ManifestError::MediaType(String::new())),
        };
        if !MANIFEST_TYPES.contains(&media_type.as_str()) {
            return Err(ManifestError::MediaType(media_type));
        }
        if raw.schema_version != Some(serde_json::Value::from(2)) {
            return Err(ManifestError::Invalid("schemaVersion must be 2".into()));
        }
        let mut info = ManifestInfo {
            media_type: media_type.clone(),
            artifact_type: raw.artifact_type,
            blobs: Vec::new(),
            external: Vec::new(),
            manifests: Vec::new(),
            subject: raw.subject,
            annotations: raw.annotations,
            document: serde_json::Value::Null,
        };
        if media_type::is_index(&media_type) {
            if raw.config.is_some() || raw.layers.is_some() {
                return Err(ManifestError::Invalid(
                    "an index has no config or layers".into(),
                ));
            }
            info.manifests = raw
                .manifests
                .ok_or_else(|| ManifestError::Invalid("index without a manifests array".into()))?;
        } else {
            if raw.manifests.is_some() {
                return Err(ManifestError::Invalid(
                    "an image manifest has no manifests array".into(),
                ));
            }
            let config = raw
                .config
                .ok_or_else(|| ManifestError::Invalid("image manifest without config".into()))?;
            let layers = raw.layers.ok_or_else(|| {
                ManifestError::Invalid("image manifest without a layers array".into())
            })?;
            if info.artifact_type.is_none() {
                info.artifact_type = Some(config.media_type.clone());
            }
            info.blobs.push(config);
            info.external.push(false);
            for l in layers {
                info.external.push(l.is_external());
                info.blobs.push(l.descriptor);
            }
        }
        if let Some(t) = info
            .artifact_type
            .as_deref()
            .filter(|t| !media_type::is_valid(t))
        {
            return Err(ManifestError::Invalid(format!(
                "artifactType (or config mediaType) {t:?} is not a media type"
            )));
        }
        info.document = document;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn image_manifest() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"application/vnd.example.config","digest":"{D}","size":0}},
            "layers":[{{"mediaType":"application/octet-stream","digest":"{D}","size":0}}],
            "subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","size":2}}}}"#
        );
        let m = ManifestInfo::parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.example.config")
        );
        assert!(m.subject.is_some());
    }

    #[test]
    fn mismatch_and_bad_digests() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"a/b","digest":"{D}","size":0}},"layers":[]}}"#
        );
        assert!(matches!(
            ManifestInfo::parse(
                body.as_bytes(),
                Some("application/vnd.oci.image.index.v1+json")
            ),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        let bad = body.replace(D, "sha256:zz");
        assert!(matches!(
            ManifestInfo::parse(bad.as_bytes(), None),
            Err(ManifestError::Json(_))
        ));
        let neg = body.replace("\"size\":0", "\"size\":-1");
        assert!(ManifestInfo::parse(neg.as_bytes(), None).is_err());
    }

    #[test]
    fn artifact_type_must_be_a_media_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"bad\u0000type",
            "config":{{"mediaType":"a/b","digest":"{D}","size":0}},"layers":[]}}"#
        );
        assert!(matches!(
            ManifestInfo::parse(body.as_bytes(), None),
            Err(ManifestError::Invalid(_))
        ));
        let cfg = body
            .replace(r#""artifactType":"bad\u0000type","#, "")
            .replace("a/b", "not a type");
        assert!(matches!(
            ManifestInfo::parse(cfg.as_bytes(), None),
            Err(ManifestError::Invalid(_))
        ));
    }

    #[test]
    fn deep_unknown_fields_and_duplicate_keys_are_refused() {
        // The review's attack: an unknown field nested past serde_json's
        // Value limit was indexed while the policy input saw `null`.
        let deep = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"a/b","digest":"{D}","size":0}},"layers":[],"x":{}0{}}}"#,
            "[".repeat(130),
            "]".repeat(130)
        );
        let e = ManifestInfo::parse(deep.as_bytes(), None).unwrap_err();
        assert_eq!(e, ManifestError::TooDeep);
        assert!(e.to_string().contains("64 levels"), "{e}");
        let dup = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"a/b","digest":"{D}","size":0}},"layers":[],"layers":[]}}"#
        );
        assert!(matches!(
            ManifestInfo::parse(dup.as_bytes(), None),
            Err(ManifestError::Json(m)) if m.contains("duplicate key")
        ));
        // What is accepted is the document the policy sees.
        let ok = dup.replacen(r#","layers":[]"#, "", 1);
        let m = ManifestInfo::parse(ok.as_bytes(), None).unwrap();
        assert_eq!(m.document["config"]["mediaType"], "a/b");
    }

    #[test]
    fn external_layers_are_non_distributable_with_urls() {
        let nd = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"{nd}","digest":"{D}","size":0,"urls":["https://x"]}},
            "layers":[{{"mediaType":"{nd}","digest":"{D}","size":0,"urls":["https://x"]}},
            {{"mediaType":"{nd}","digest":"{D}","size":0,"urls":[]}},
            {{"mediaType":"{nd}","digest":"{D}","size":0}},
            {{"mediaType":"application/octet-stream","digest":"{D}","size":0,"urls":["https://x"]}}]}}"#
        );
        let m = ManifestInfo::parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.external, [false, true, false, false, false]);
        assert_eq!(m.blobs.len(), 5);
        let bad = body.replacen(r#""urls":["https://x"]"#, r#""urls":"https://x""#, 2);
        assert!(ManifestInfo::parse(bad.as_bytes(), None).is_err());
    }

    #[test]
    fn index_needs_manifests() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#;
        assert!(ManifestInfo::parse(body, None).is_err());
        let ok = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert!(ManifestInfo::parse(ok, None).unwrap().manifests.is_empty());
    }
}
