//! Blob download: byte ranges fetched in parallel and written at their
//! offsets into `FILE.partial`, verified, then renamed into place. Finished
//! pieces are recorded beside the partial file, so an interrupted pull
//! fetches only what is missing.

use crate::client::{check, scope, Client};
use crate::error::ClientError;
use futures::StreamExt;
use pavilion_oci::{Digest, ImageRef};
use reqwest::{header, StatusCode};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Size of one ranged request.
const PIECE: u64 = 32 << 20;

/// What `FILE.partial.json` records about an unfinished pull.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct Progress {
    digest: String,
    size: u64,
    piece: u64,
    done: Vec<u64>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn io_join(e: tokio::task::JoinError) -> ClientError {
    ClientError::Io(std::io::Error::other(e))
}

fn hash_file(path: &Path, digest: &Digest) -> std::io::Result<Digest> {
    let mut f = File::open(path)?;
    let mut h = digest.algorithm().hasher();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

impl Client {
    /// Downloads blob `digest` of `size` bytes to `dest` with up to
    /// `parallel` ranged requests at a time. Nothing appears at `dest`
    /// unless the bytes match the digest.
    pub async fn pull_blob_file(
        &self,
        r: &ImageRef,
        digest: &Digest,
        size: u64,
        dest: &Path,
        parallel: usize,
    ) -> Result<(), ClientError> {
        let partial = with_suffix(dest, ".partial");
        let record = with_suffix(dest, ".partial.json");
        let previous: Option<Progress> = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|p: &Progress| {
                p.digest == digest.to_string() && p.size == size && p.piece == PIECE
            });
        let resumable =
            previous.is_some() && std::fs::metadata(&partial).is_ok_and(|m| m.len() == size);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(!resumable)
            .open(&partial)?;
        file.set_len(size)?;
        let file = Arc::new(file);
        let done: Vec<u64> = if resumable {
            previous.map(|p| p.done).unwrap_or_default()
        } else {
            Vec::new()
        };
        let progress = Arc::new(Mutex::new(Progress {
            digest: digest.to_string(),
            size,
            piece: PIECE,
            done: done.clone(),
        }));
        let pieces: Vec<u64> = (0..size.div_ceil(PIECE))
            .filter(|i| !done.contains(i))
            .collect();
        let url = self.url(r, &format!("/v2/{}/blobs/{digest}", r.repository));
        let results: Vec<Result<(), ClientError>> = futures::stream::iter(pieces)
            .map(|i| {
                let (file, url, progress, record) =
                    (file.clone(), url.clone(), progress.clone(), record.clone());
                async move {
                    let start = i * PIECE;
                    let end = (start + PIECE).min(size) - 1;
                    self.fetch_range(r, &url, start, end, &file).await?;
                    let snapshot = {
                        let mut p = progress
                            .lock()
                            .map_err(|_| ClientError::Protocol("progress lock poisoned".into()))?;
                        p.done.push(i);
                        serde_json::to_vec(&*p).unwrap_or_default()
                    };
                    std::fs::write(&record, snapshot)?;
                    Ok(())
                }
            })
            .buffer_unordered(parallel.max(1))
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        let (p, d) = (partial.clone(), digest.clone());
        let actual = tokio::task::spawn_blocking(move || hash_file(&p, &d))
            .await
            .map_err(io_join)??;
        if &actual != digest {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(&record);
            return Err(ClientError::DigestMismatch {
                path: dest.display().to_string(),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        file.sync_all()?;
        std::fs::rename(&partial, dest)?;
        let _ = std::fs::remove_file(&record);
        Ok(())
    }

    /// GETs bytes `start..=end` and writes them at their offsets.
    async fn fetch_range(
        &self,
        r: &ImageRef,
        url: &str,
        start: u64,
        end: u64,
        file: &Arc<File>,
    ) -> Result<(), ClientError> {
        let range = format!("bytes={start}-{end}");
        let resp = self
            .send(r, &scope(r, false), |c| {
                c.get(url).header(header::RANGE, &range)
            })
            .await?;
        let resp = check(resp).await?;
        if resp.status() != StatusCode::PARTIAL_CONTENT
            && (start != 0 || resp.content_length() != Some(end + 1))
        {
            return Err(ClientError::Protocol(format!(
                "registry ignored Range {range} (status {})",
                resp.status()
            )));
        }
        let mut pos = start;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if pos + chunk.len() as u64 > end + 1 {
                return Err(ClientError::Protocol(format!(
                    "registry sent more than {range}"
                )));
            }
            let (f, at) = (file.clone(), pos);
            pos += chunk.len() as u64;
            tokio::task::spawn_blocking(move || f.write_all_at(&chunk, at))
                .await
                .map_err(io_join)??;
        }
        if pos != end + 1 {
            return Err(ClientError::Protocol(format!(
                "range {range} ended after {} bytes",
                pos - start
            )));
        }
        Ok(())
    }
}
