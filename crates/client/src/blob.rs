//! Single blobs as streams or small byte buffers: what `blob get|put|delete`
//! and registry-to-registry copies need (large files use `pull`/`push`).

use crate::client::{check, scope, Client};
use crate::error::ClientError;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use pavilion_oci::{Digest, ImageRef};
use reqwest::header;

/// A stream of blob bytes.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, ClientError>> + Send>>;

impl Client {
    /// Streams blob `digest`, verifying it: the stream ends with an error if
    /// the bytes do not hash to the digest, so a consumer never commits them.
    pub async fn blob_stream(
        &self,
        r: &ImageRef,
        digest: &Digest,
    ) -> Result<ByteStream, ClientError> {
        let url = self.url(r, &format!("/v2/{}/blobs/{digest}", r.repository));
        let resp = check(self.send(r, &scope(r, false), |c| c.get(&url)).await?).await?;
        let progress = self.opts.progress.clone();
        let expected = digest.clone();
        let body = resp.bytes_stream();
        let state = (
            body,
            Some(expected.algorithm().hasher()),
            expected,
            progress,
        );
        Ok(Box::pin(futures::stream::unfold(
            state,
            |(mut body, hasher, expected, progress)| async move {
                let mut hasher = hasher?;
                match body.next().await {
                    Some(Ok(chunk)) => {
                        hasher.update(&chunk);
                        if let Some(p) = &progress {
                            (p.0)(chunk.len() as u64);
                        }
                        Some((Ok(chunk), (body, Some(hasher), expected, progress)))
                    }
                    Some(Err(e)) => Some((Err(e.into()), (body, None, expected, progress))),
                    None => {
                        let actual = hasher.finish();
                        if actual == expected {
                            None
                        } else {
                            let err = ClientError::DigestMismatch {
                                path: format!("blob {expected}"),
                                expected: expected.to_string(),
                                actual: actual.to_string(),
                            };
                            Some((Err(err), (body, None, expected, progress)))
                        }
                    }
                }
            },
        )))
    }

    /// Fetches a small blob (a config, a signature) into memory, verified;
    /// refuses blobs over `limit` bytes.
    pub async fn blob_bytes(
        &self,
        r: &ImageRef,
        digest: &Digest,
        limit: u64,
    ) -> Result<Bytes, ClientError> {
        let mut stream = self.blob_stream(r, digest).await?;
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(ClientError::Protocol(format!(
                    "blob {digest} is larger than {limit} bytes"
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Deletes a blob from `r`'s repository.
    pub async fn delete_blob(&self, r: &ImageRef, digest: &Digest) -> Result<(), ClientError> {
        let url = self.url(r, &format!("/v2/{}/blobs/{digest}", r.repository));
        check(self.send(r, &scope(r, true), |c| c.delete(&url)).await?).await?;
        Ok(())
    }

    /// Uploads a stream of `size` bytes known to hash to `digest` (a blob
    /// copied from another registry): one session, one streamed `PUT`.
    pub async fn push_blob_stream(
        &self,
        r: &ImageRef,
        digest: &Digest,
        size: u64,
        stream: ByteStream,
    ) -> Result<(), ClientError> {
        let location = self.start_upload(r).await?;
        let url = self.url(
            r,
            &crate::push::with_query(&location, "digest", &digest.to_string()),
        );
        // The session's token is cached by now, so the body goes out once.
        let body = std::sync::Mutex::new(Some(stream));
        let resp = self
            .send(r, &scope(r, true), |c| {
                let mut req = c
                    .put(&url)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_LENGTH, size.to_string());
                if let Some(s) = body.lock().ok().and_then(|mut b| b.take()) {
                    req = req.body(reqwest::Body::wrap_stream(s));
                }
                req
            })
            .await?;
        check(resp).await?;
        Ok(())
    }
}
