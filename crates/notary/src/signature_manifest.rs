//! How a signature is stored in a registry (signature-specification.md,
//! "OCI Signatures"): an image manifest with artifactType
//! `application/vnd.cncf.notary.signature`, the empty config, exactly one
//! layer holding the envelope (`application/jose+json` or
//! `application/cose`), the signed manifest as `subject`, and the
//! `io.cncf.notary.x509chain.thumbprint#S256` annotation. The legacy form
//! (no artifactType, config media type `application/vnd.cncf.notary.signature`)
//! that notation wrote before is accepted when reading.

use crate::envelope::Format;
use crate::x509::Cert;
use pavilion_oci::{media_type, Descriptor, Digest, ManifestInfo};
use std::collections::BTreeMap;

/// Artifact type of Notary signature manifests.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// Annotation listing the SHA-256 thumbprints of the chain.
pub const THUMBPRINT_ANNOTATION: &str = "io.cncf.notary.x509chain.thumbprint#S256";
/// The empty JSON config (`{}`).
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// Why a manifest is not a usable signature manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Notary signature manifest: {0}")]
pub struct NotSignature(pub String);

/// A signature manifest, read.
#[derive(Debug, Clone)]
pub struct SignatureManifest {
    /// The envelope layer.
    pub envelope: Descriptor,
    /// Its format; `None` for a media type that is no envelope format,
    /// which verification then reports as an integrity failure (as
    /// notation does) rather than hiding the signature.
    pub format: Option<Format>,
    /// The signed manifest.
    pub subject: Descriptor,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

impl SignatureManifest {
    /// Reads a signature manifest (current or legacy form).
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, NotSignature> {
        let info =
            ManifestInfo::parse(bytes, content_type).map_err(|e| NotSignature(e.to_string()))?;
        if info.media_type != media_type::OCI_MANIFEST {
            return Err(NotSignature(format!("media type {}", info.media_type)));
        }
        let config = info
            .blobs
            .first()
            .ok_or_else(|| NotSignature("no config".into()))?;
        let current = info.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT_TYPE);
        let legacy = config.media_type == SIGNATURE_ARTIFACT_TYPE;
        if !current && !legacy {
            return Err(NotSignature(format!(
                "artifact type {:?}",
                info.artifact_type.unwrap_or_default()
            )));
        }
        let layers = &info.blobs[1..];
        if layers.len() != 1 {
            return Err(NotSignature(format!(
                "{} layers (exactly one envelope expected)",
                layers.len()
            )));
        }
        let envelope = layers[0].clone();
        let format = Format::from_media_type(&envelope.media_type);
        let subject = info
            .subject
            .ok_or_else(|| NotSignature("no subject".into()))?;
        Ok(SignatureManifest {
            envelope,
            format,
            subject,
            annotations: info.annotations.unwrap_or_default(),
        })
    }
}

/// The thumbprint annotation value for a chain: a JSON array of lowercase
/// hex SHA-256 digests of the certificates, leaf first (as notation writes).
pub fn thumbprints(chain: &[Cert]) -> String {
    let list: Vec<String> = chain.iter().map(Cert::sha256_hex).collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}

/// Builds the signature manifest for an envelope; returns its bytes.
pub fn build(
    subject: &Descriptor,
    format: Format,
    envelope: &[u8],
    chain: &[Cert],
    created: &str,
) -> Vec<u8> {
    let subject = Descriptor {
        media_type: subject.media_type.clone(),
        digest: subject.digest.clone(),
        size: subject.size,
        artifact_type: None,
        annotations: None,
    };
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": SIGNATURE_ARTIFACT_TYPE,
        "config": {
            "mediaType": media_type::OCI_EMPTY,
            "digest": Digest::sha256(EMPTY_CONFIG).to_string(),
            "size": EMPTY_CONFIG.len(),
        },
        "layers": [{
            "mediaType": format.media_type(),
            "digest": Digest::sha256(envelope).to_string(),
            "size": envelope.len(),
        }],
        "subject": subject,
        "annotations": {
            THUMBPRINT_ANNOTATION: thumbprints(chain),
            "org.opencontainers.image.created": created,
        },
    });
    serde_json::to_vec(&manifest).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_current_and_legacy_forms_and_refuses_others() {
        let subject = serde_json::json!({
            "mediaType": media_type::OCI_MANIFEST,
            "digest": Digest::sha256(b"x").to_string(), "size": 1});
        let env = Digest::sha256(b"env").to_string();
        let make = |artifact: Option<&str>, config: &str, layers: serde_json::Value| {
            let mut m = serde_json::json!({
                "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
                "config": {"mediaType": config, "digest": Digest::sha256(b"{}").to_string(), "size": 2},
                "layers": layers, "subject": subject});
            if let Some(a) = artifact {
                m["artifactType"] = a.into();
            }
            serde_json::to_vec(&m).unwrap()
        };
        let one =
            serde_json::json!([{"mediaType": "application/jose+json", "digest": env, "size": 3}]);
        let current = make(
            Some(SIGNATURE_ARTIFACT_TYPE),
            media_type::OCI_EMPTY,
            one.clone(),
        );
        assert_eq!(
            SignatureManifest::parse(&current, None).unwrap().format,
            Some(Format::Jws)
        );
        let legacy = make(None, SIGNATURE_ARTIFACT_TYPE, one.clone());
        assert!(SignatureManifest::parse(&legacy, None).is_ok());
        let other = make(Some("application/vnd.example"), media_type::OCI_EMPTY, one);
        assert!(SignatureManifest::parse(&other, None).is_err());
        let two = serde_json::json!([
            {"mediaType": "application/jose+json", "digest": env, "size": 3},
            {"mediaType": "application/cose", "digest": env, "size": 3}]);
        let e = SignatureManifest::parse(
            &make(Some(SIGNATURE_ARTIFACT_TYPE), media_type::OCI_EMPTY, two),
            None,
        );
        assert!(e.unwrap_err().0.contains("exactly one"));
    }
}
