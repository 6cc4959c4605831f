//! Manifests: fetched and pushed as raw bytes with their media type.

use crate::client::{check, scope, Client};
use crate::error::{read_capped, ClientError, MAX_MANIFEST_BYTES};
use bytes::Bytes;
use pavilion_oci::{media_type, Descriptor, Digest, ImageRef, ManifestInfo};
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
    /// Fetches the manifest `r` names, checking its digest when pinned;
    /// refuses one over 4 MiB (the registry's default manifest limit).
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
        let bytes =
            read_capped(resp, MAX_MANIFEST_BYTES, || format!("the manifest of {r}")).await?;
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
    /// A manifest with a `subject` that the registry did not index (no
    /// `OCI-Subject` in the answer) is added to the subject's fallback tag
    /// index, as the distribution-spec asks of clients.
    pub async fn put_manifest(
        &self,
        r: &ImageRef,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, ClientError> {
        let (digest, acknowledged) = self
            .put_manifest_inner(r, media_type, bytes.clone())
            .await?;
        if acknowledged {
            return Ok(digest);
        }
        let Ok(info) = ManifestInfo::parse(&bytes, Some(media_type)) else {
            return Ok(digest);
        };
        if let Some(subject) = &info.subject {
            let me = Descriptor {
                media_type: info.media_type.clone(),
                digest: digest.clone(),
                size: bytes.len() as u64,
                artifact_type: info.artifact_type.clone(),
                annotations: info.annotations.clone(),
            };
            self.add_fallback_referrer(r, &subject.digest, me).await?;
        }
        Ok(digest)
    }

    /// Pushes manifest bytes with no referrers bookkeeping.
    pub(crate) async fn put_manifest_plain(
        &self,
        r: &ImageRef,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, ClientError> {
        Ok(self.put_manifest_inner(r, media_type, bytes).await?.0)
    }

    /// Deletes the manifest `r` names (by digest, or the tag's target on
    /// registries that accept it).
    pub async fn delete_manifest(&self, r: &ImageRef) -> Result<(), ClientError> {
        let url = self.url(
            r,
            &format!("/v2/{}/manifests/{}", r.repository, r.reference()),
        );
        check(self.send(r, &scope(r, true), |c| c.delete(&url)).await?).await?;
        Ok(())
    }

    /// The digest, media type and size of the manifest `r` names, from a HEAD
    /// (no body is transferred); `None` when the registry has no such manifest.
    pub async fn head_manifest(
        &self,
        r: &ImageRef,
    ) -> Result<Option<(Digest, String, u64)>, ClientError> {
        let url = self.url(
            r,
            &format!("/v2/{}/manifests/{}", r.repository, r.reference()),
        );
        let accept = media_type::MANIFEST_TYPES.join(", ");
        let resp = self
            .send(r, &scope(r, false), |c| {
                c.head(&url).header(header::ACCEPT, &accept)
            })
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check(resp).await?;
        let h = |k: &str| {
            resp.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let digest = match (h("docker-content-digest"), &r.digest) {
            (Some(d), _) => d
                .parse::<Digest>()
                .map_err(|e| ClientError::Protocol(format!("bad Docker-Content-Digest: {e}")))?,
            (None, Some(d)) => d.clone(),
            // Without the header only the body can tell.
            (None, None) => {
                return Ok(Some(self.get_manifest(r).await.map(|m| {
                    let len = m.bytes.len() as u64;
                    (m.digest, m.media_type, len)
                })?))
            }
        };
        let size = h("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Some((digest, h("content-type").unwrap_or_default(), size)))
    }

    async fn put_manifest_inner(
        &self,
        r: &ImageRef,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(Digest, bool), ClientError> {
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
        let resp = check(resp).await?;
        // Registry warnings (`Warning: 299 - "text"`, e.g. policy warnings)
        // are for the user: show them.
        for w in resp.headers().get_all(header::WARNING) {
            if let Ok(text) = w.to_str() {
                let text = text
                    .strip_prefix("299 - ")
                    .unwrap_or(text)
                    .trim_matches('"');
                tracing::warn!("{}: {text}", r.registry);
            }
        }
        Ok((digest, resp.headers().contains_key("oci-subject")))
    }
}
