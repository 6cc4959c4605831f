//! Manifests: fetched and pushed as raw bytes with their media type.

use crate::client::{check, scope, Client};
use crate::error::ClientError;
use bytes::Bytes;
use pavilion_oci::{media_type, Digest, ImageRef};
use reqwest::header;

/// A manifest as the registry holds it.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Media type from `Content-Type`.
    pub media_type: String,
    /// Digest of the bytes.
    pub digest: Digest,
    /// The bytes, exactly as served.
    pub bytes: Bytes,
}

impl Client {
    /// Fetches the manifest `r` names, checking its digest when pinned.
    pub async fn get_manifest(&self, r: &ImageRef) -> Result<Manifest, ClientError> {
        let url = self.url(
            r,
            &format!("/v2/{}/manifests/{}", r.repository, r.reference()),
        );
        let accept = media_type::MANIFEST_TYPES.join(", ");
        let resp = self
            .send(r, &scope(r, false), |c| {
                c.get(&url).header(header::ACCEPT, &accept)
            })
            .await?;
        let resp = check(resp).await?;
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = resp.bytes().await?;
        let digest = match &r.digest {
            Some(d) => {
                let actual = Digest::compute(d.algorithm(), &bytes);
                if &actual != d {
                    return Err(ClientError::DigestMismatch {
                        path: r.to_string(),
                        expected: d.to_string(),
                        actual: actual.to_string(),
                    });
                }
                actual
            }
            None => Digest::sha256(&bytes),
        };
        Ok(Manifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Pushes manifest bytes under `r`'s tag (or digest); returns the digest.
    pub async fn put_manifest(
        &self,
        r: &ImageRef,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, ClientError> {
        let digest = Digest::sha256(&bytes);
        let url = self.url(
            r,
            &format!("/v2/{}/manifests/{}", r.repository, r.reference()),
        );
        let resp = self
            .send(r, &scope(r, true), |c| {
                c.put(&url)
                    .header(header::CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        check(resp).await?;
        Ok(digest)
    }
}
