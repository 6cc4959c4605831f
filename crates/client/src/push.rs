//! Blob upload: a file is read once and hashed while it is sent; an
//! interrupted upload resumes from the offset the registry reports.

use crate::blocking;
use crate::client::{check, scope, Client};
use crate::error::ClientError;
use crate::upload_journal::UploadJournal;
use bytes::Bytes;
use pavilion_oci::{Algorithm, Digest, Hasher, ImageRef};
use reqwest::header;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Read size for uploads.
const READ_CHUNK: usize = 4 << 20;
/// Attempts at sending the rest of a file before giving up.
const MAX_ATTEMPTS: usize = 5;

pub(crate) fn with_query(location: &str, key: &str, value: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{key}={value}")
}

fn location_of(resp: &reqwest::Response) -> Result<String, ClientError> {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| ClientError::Protocol("upload response without Location".into()))
}

/// Records (or, with `None`, forgets) the session of `key` in the upload
/// journal: a file write, so on a blocking thread.
async fn journal_set(
    journal: &Arc<UploadJournal>,
    key: &str,
    location: Option<String>,
) -> Result<(), ClientError> {
    let (journal, key) = (journal.clone(), key.to_string());
    Ok(blocking::spawn(move || journal.set(&key, location.as_deref())).await?)
}

/// Chunks a reader keeps for reuse, at most (each [`READ_CHUNK`] bytes).
const SPARE_CHUNKS: usize = 4;

/// Read buffers of an upload, used again once the hasher and the request
/// body have both let go of them: a fresh zeroed 4 MiB buffer per read
/// cost the client about 5% of its CPU in memset and page clearing.
#[derive(Default)]
struct Spare(std::collections::VecDeque<Bytes>);

impl Spare {
    /// Takes the chunks the hasher returned, up to [`SPARE_CHUNKS`].
    fn gather(&mut self, spent: &std::sync::mpsc::Receiver<Bytes>) {
        while self.0.len() < SPARE_CHUNKS {
            match spent.try_recv() {
                Ok(b) => self.0.push_back(b),
                Err(_) => return,
            }
        }
    }

    /// A buffer of `want` bytes: a spare chunk nothing else holds any
    /// more (its old bytes are overwritten by the read), else a new one.
    /// Chunks the request body still holds stay for a later call.
    fn take(&mut self, want: usize) -> bytes::BytesMut {
        for _ in 0..self.0.len() {
            let Some(b) = self.0.pop_front() else { break };
            match b.try_into_mut() {
                Ok(mut m) if m.len() >= want => {
                    m.truncate(want);
                    return m;
                }
                Ok(_) => {}
                Err(b) => self.0.push_back(b),
            }
        }
        bytes::BytesMut::zeroed(want)
    }
}

/// Hashes `path[0..len)` (a resumed upload's prefix, or with `u64::MAX`
/// a whole file).
pub(crate) fn hash_prefix(path: &Path, len: u64) -> std::io::Result<Hasher> {
    let mut f = File::open(path)?.take(len);
    let mut h = Algorithm::Sha256.hasher();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h);
        }
        h.update(&buf[..n]);
    }
}

impl Client {
    /// Size of a blob in the repository, or `None` if the registry lacks it.
    pub async fn blob_exists(
        &self,
        r: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<u64>, ClientError> {
        let url = self.url(r, &format!("/v2/{}/blobs/{digest}", r.repository));
        let resp = self.send(r, &scope(r, false), |c| c.head(&url)).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check(resp).await?;
        // reqwest's content_length() is the body's size hint, 0 for HEAD.
        Ok(resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()))
    }

    /// Links blob `digest` from repository `from` into `r`'s repository
    /// without transferring it; `false` when the registry would not.
    pub async fn mount_blob(
        &self,
        r: &ImageRef,
        digest: &Digest,
        from: &str,
    ) -> Result<bool, ClientError> {
        let url = self.url(
            r,
            &format!(
                "/v2/{}/blobs/uploads/?mount={digest}&from={from}",
                r.repository
            ),
        );
        let resp = self
            .send(r, &scope(r, true), |c| {
                c.post(&url).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        let resp = check(resp).await?;
        if resp.status() == reqwest::StatusCode::CREATED {
            return Ok(true);
        }
        // 202: the registry opened an upload session instead; give it back.
        if let Ok(loc) = location_of(&resp) {
            let url = self.url(r, &loc);
            let _ = self.send(r, &scope(r, true), |c| c.delete(&url)).await;
        }
        Ok(false)
    }

    /// Uploads bytes already in memory (configs, small files); returns the digest.
    pub async fn push_blob_bytes(&self, r: &ImageRef, data: Bytes) -> Result<Digest, ClientError> {
        let digest = Digest::sha256(&data);
        if self.blob_exists(r, &digest).await?.is_some() {
            return Ok(digest);
        }
        let location = self.start_upload(r).await?;
        let url = self.url(r, &with_query(&location, "digest", &digest.to_string()));
        let resp = self
            .send(r, &scope(r, true), |c| {
                c.put(&url)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(data.clone())
            })
            .await?;
        check(resp).await?;
        Ok(digest)
    }

    pub(crate) async fn start_upload(&self, r: &ImageRef) -> Result<String, ClientError> {
        let url = self.url(r, &format!("/v2/{}/blobs/uploads/", r.repository));
        let resp = self
            .send(r, &scope(r, true), |c| {
                c.post(&url).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        let resp = check(resp).await?;
        location_of(&resp)
    }

    /// Uploads a file, reading it once: each chunk goes to the socket and to
    /// a hasher thread; the digest is given at the final `PUT`. A failed
    /// transfer asks the registry how much it kept and sends the rest.
    /// Returns the digest and size.
    pub async fn push_blob_file(
        &self,
        r: &ImageRef,
        path: &Path,
    ) -> Result<(Digest, u64), ClientError> {
        self.push_blob_file_checked(r, path, None).await
    }

    /// [`Client::push_blob_file`] for a file that should hash to `expected`
    /// (a blob of an OCI layout): on a mismatch the upload is cancelled and
    /// nothing is committed.
    pub async fn push_blob_file_as(
        &self,
        r: &ImageRef,
        path: &Path,
        expected: &Digest,
    ) -> Result<(Digest, u64), ClientError> {
        self.push_blob_file_checked(r, path, Some(expected)).await
    }

    async fn push_blob_file_checked(
        &self,
        r: &ImageRef,
        path: &Path,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), ClientError> {
        let meta = std::fs::metadata(path).map_err(|e| ClientError::io_at(path, e))?;
        let size = meta.len();
        let journal = self.opts.upload_journal.as_ref();
        let key = UploadJournal::key(r, path, &meta);
        // A session a killed run left open continues where the registry
        // says it stopped.
        let (mut location, mut offset, mut hasher) = match journal.and_then(|j| j.get(&key)) {
            Some(previous) => self.resume_point(r, path, &previous, size).await?,
            None => (self.start_upload(r).await?, 0, Algorithm::Sha256.hasher()),
        };
        if let Some(j) = journal {
            journal_set(j, &key, Some(self.url(r, &location))).await?;
        }
        let mut attempt = 0;
        while offset < size {
            attempt += 1;
            match self
                .send_rest(r, &location, path, offset, size, hasher.clone())
                .await
            {
                Ok((next, h)) => {
                    location = next;
                    hasher = h;
                    offset = size;
                }
                // A refusal (403: a storage quota, a denied push) is the
                // same on every attempt; anything else may have been a
                // broken connection worth resuming.
                Err(e)
                    if attempt < MAX_ATTEMPTS
                        && !matches!(e, ClientError::Registry { status: 403, .. }) =>
                {
                    tracing::warn!(error = %e, attempt, "upload interrupted; asking the registry where to resume");
                    (location, offset, hasher) =
                        self.resume_point(r, path, &location, size).await?;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(j) = journal {
            journal_set(j, &key, None).await?;
        }
        let digest = hasher.finish();
        if let Some(e) = expected.filter(|e| **e != digest) {
            let url = self.url(r, &location);
            let _ = self.send(r, &scope(r, true), |c| c.delete(&url)).await;
            return Err(ClientError::DigestMismatch {
                path: path.display().to_string(),
                expected: e.to_string(),
                actual: digest.to_string(),
            });
        }
        let url = self.url(r, &with_query(&location, "digest", &digest.to_string()));
        let resp = self
            .send(r, &scope(r, true), |c| {
                c.put(&url).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        check(resp).await?;
        Ok((digest, size))
    }

    /// Where to continue session `location`: its new Location, the offset
    /// the registry reports and the hash of that prefix of the file (read
    /// again locally); a fresh session when the registry holds nothing
    /// usable or cannot say.
    async fn resume_point(
        &self,
        r: &ImageRef,
        path: &Path,
        location: &str,
        size: u64,
    ) -> Result<(String, u64, Hasher), ClientError> {
        let (location, offset) = match self.upload_status(r, location).await.ok().flatten() {
            Some((loc, kept)) if kept <= size => (loc, kept),
            _ => (self.start_upload(r).await?, 0),
        };
        let p = path.to_path_buf();
        let hasher = blocking::spawn(move || hash_prefix(&p, offset)).await??;
        Ok((location, offset, hasher))
    }

    /// Bytes the registry holds for an upload session, and its new Location;
    /// `None` when the session is gone or the answer cannot tell (no `Range`,
    /// or `0-0`, which means either 0 or 1 byte).
    async fn upload_status(
        &self,
        r: &ImageRef,
        location: &str,
    ) -> Result<Option<(String, u64)>, ClientError> {
        let url = self.url(r, location);
        let resp = self.send(r, &scope(r, true), |c| c.get(&url)).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check(resp).await?;
        let loc = location_of(&resp).unwrap_or_else(|_| location.to_string());
        let end = resp
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().trim_start_matches("bytes=").split_once('-'))
            .and_then(|(_, end)| end.parse::<u64>().ok());
        Ok(end.filter(|&e| e > 0).map(|e| (loc, e + 1)))
    }

    /// One PATCH carrying `path[offset..size)`, hashed as it is read.
    async fn send_rest(
        &self,
        r: &ImageRef,
        location: &str,
        path: &Path,
        offset: u64,
        size: u64,
        hasher: Hasher,
    ) -> Result<(String, Hasher), ClientError> {
        let (body_tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let (hash_tx, mut hash_rx) = mpsc::channel::<Bytes>(4);
        // Chunks the hasher is done with, back to the reader for reuse.
        let (spent_tx, spent_rx) = std::sync::mpsc::sync_channel::<Bytes>(SPARE_CHUNKS);
        let file = File::open(path)?;
        let reader = blocking::spawn(move || {
            let mut spare = Spare::default();
            let mut pos = offset;
            while pos < size {
                let want = READ_CHUNK.min((size - pos) as usize);
                spare.gather(&spent_rx);
                let mut buf = spare.take(want);
                let res = file.read_exact_at(&mut buf, pos);
                let chunk = match res {
                    Ok(()) => buf.freeze(),
                    Err(e) => {
                        let _ = body_tx.blocking_send(Err(e));
                        return;
                    }
                };
                pos += want as u64;
                if hash_tx.blocking_send(chunk.clone()).is_err()
                    || body_tx.blocking_send(Ok(chunk)).is_err()
                {
                    return;
                }
            }
        });
        let hash_task = blocking::spawn(move || {
            let mut h = hasher;
            while let Some(c) = hash_rx.blocking_recv() {
                h.update(&c);
                // Full: the reader has enough; this one is simply freed.
                let _ = spent_tx.try_send(c);
            }
            h
        });
        let body_rx = std::sync::Mutex::new(Some(body_rx));
        let url = self.url(r, location);
        let resp = self
            .send(r, &scope(r, true), |c| {
                let mut req = c
                    .patch(&url)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_LENGTH, (size - offset).to_string())
                    .header(header::CONTENT_RANGE, format!("{offset}-{}", size - 1));
                // The body can be sent only once; a retry after an auth
                // challenge sends nothing and fails on the length check.
                if let Some(rx) = body_rx.lock().ok().and_then(|mut b| b.take()) {
                    let progress = self.opts.progress.clone();
                    let stream = futures::stream::unfold(rx, move |mut rx| {
                        let progress = progress.clone();
                        async move {
                            let item = rx.recv().await?;
                            if let (Ok(chunk), Some(p)) = (&item, &progress) {
                                (p.0)(chunk.len() as u64);
                            }
                            Some((item, rx))
                        }
                    });
                    req = req.body(reqwest::Body::wrap_stream(stream));
                }
                req
            })
            .await;
        let _ = reader.await;
        let hasher = hash_task.await?;
        let resp = check(resp?).await?;
        Ok((location_of(&resp)?, hasher))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_buffer_is_reused_only_when_nothing_else_holds_it() {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(SPARE_CHUNKS);
        let mut spare = Spare::default();
        let first = spare.take(8).freeze();
        let ptr = first.as_ptr();
        // The request body still holds a copy of the handle: not reused.
        let held = first.clone();
        tx.send(first).unwrap();
        spare.gather(&rx);
        let fresh = spare.take(8);
        assert_ne!(fresh.as_ptr(), ptr);
        assert_eq!(&fresh[..], &[0u8; 8]);
        // Once the body lets go, the same memory comes back, cut to size.
        drop(held);
        let reused = spare.take(5);
        assert_eq!(reused.as_ptr(), ptr);
        assert_eq!(reused.len(), 5);
        // Never more than SPARE_CHUNKS kept.
        for _ in 0..SPARE_CHUNKS + 3 {
            let _ = tx.try_send(Bytes::from(vec![1u8; 4]));
        }
        spare.gather(&rx);
        assert!(spare.0.len() <= SPARE_CHUNKS);
    }
}
