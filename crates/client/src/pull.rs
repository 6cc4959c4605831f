//! Blob download: byte ranges fetched in parallel and written at their
//! offsets into `FILE.partial`, hashed in order as the written prefix grows,
//! verified, then renamed into place. Finished
//! pieces are recorded beside the partial file, so an interrupted pull
//! fetches only what is missing.

use crate::client::{check, scope, Client};
use crate::error::{ClientError, ErrorKind};
use bytes::BytesMut;
use futures::StreamExt;
use pavilion_oci::{Algorithm, Digest, ImageRef};
use reqwest::{header, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes gathered from the network before one positioned write.
const WRITE_BATCH: usize = 4 << 20;
/// Size of one ranged request.
const PIECE: u64 = 32 << 20;
/// Tries of one range before the pull gives up (and can be resumed).
const RANGE_ATTEMPTS: u32 = 5;
/// First wait before retrying a range; doubled each time.
const RETRY_BASE: std::time::Duration = std::time::Duration::from_millis(200);

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

/// Hashes the partial file piece by piece in order, as soon as each piece
/// (and every one before it) has been written, so verification overlaps the
/// download and the bytes are read back while still in the page cache.
/// `None` when the sender went away before every piece arrived.
fn trailing_hash(
    path: &Path,
    alg: Algorithm,
    size: u64,
    done: std::sync::mpsc::Receiver<u64>,
) -> std::io::Result<Option<Digest>> {
    let f = File::open(path)?;
    let mut h = alg.hasher();
    let mut ready = BTreeSet::new();
    let mut buf = vec![0u8; 4 << 20];
    for next in 0..size.div_ceil(PIECE) {
        while !ready.contains(&next) {
            match done.recv() {
                Ok(i) => ready.insert(i),
                Err(_) => return Ok(None),
            };
        }
        let end = ((next + 1) * PIECE).min(size);
        let mut pos = next * PIECE;
        while pos < end {
            let want = (buf.len() as u64).min(end - pos) as usize;
            f.read_exact_at(&mut buf[..want], pos)?;
            h.update(&buf[..want]);
            pos += want as u64;
        }
    }
    Ok(Some(h.finish()))
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
        let (done_tx, done_rx) = std::sync::mpsc::channel::<u64>();
        for &i in &done {
            let _ = done_tx.send(i);
        }
        let (p, alg) = (partial.clone(), digest.algorithm());
        let hasher = tokio::task::spawn_blocking(move || trailing_hash(&p, alg, size, done_rx));
        let url = self.url(r, &format!("/v2/{}/blobs/{digest}", r.repository));
        let results: Vec<Result<(), ClientError>> = futures::stream::iter(pieces)
            .map(|i| {
                let (file, url, progress, record, done_tx) = (
                    file.clone(),
                    url.clone(),
                    progress.clone(),
                    record.clone(),
                    done_tx.clone(),
                );
                async move {
                    let start = i * PIECE;
                    let end = (start + PIECE).min(size) - 1;
                    self.fetch_range_retrying(r, &url, start, end, &file)
                        .await?;
                    let snapshot = {
                        let mut p = progress
                            .lock()
                            .map_err(|_| ClientError::Protocol("progress lock poisoned".into()))?;
                        p.done.push(i);
                        serde_json::to_vec(&*p).unwrap_or_default()
                    };
                    std::fs::write(&record, snapshot)?;
                    let _ = done_tx.send(i);
                    Ok(())
                }
            })
            .buffer_unordered(parallel.max(1))
            .collect()
            .await;
        drop(done_tx);
        let hashed = hasher.await.map_err(io_join)?;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        let actual = hashed?.ok_or_else(|| {
            ClientError::Protocol("download ended before every piece arrived".into())
        })?;
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

    /// [`Client::fetch_range`], retried with exponential backoff when the
    /// connection fails or drops mid-body (the piece is fetched again whole).
    async fn fetch_range_retrying(
        &self,
        r: &ImageRef,
        url: &str,
        start: u64,
        end: u64,
        file: &Arc<File>,
    ) -> Result<(), ClientError> {
        let (mut delay, mut attempt) = (RETRY_BASE, 0);
        loop {
            attempt += 1;
            match self.fetch_range(r, url, start, end, file).await {
                Err(e) if attempt < RANGE_ATTEMPTS && e.kind() == ErrorKind::Network => {
                    tracing::warn!(error = %e, attempt, start, "range failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
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
        // Network reads are small; gather them so each blocking write (and
        // thread hand-off) carries a few MiB.
        let mut pending = BytesMut::new();
        let mut pending_at = start;
        let mut body = resp.bytes_stream();
        loop {
            let next = body.next().await.transpose()?;
            if let Some(chunk) = &next {
                if pos + chunk.len() as u64 > end + 1 {
                    return Err(ClientError::Protocol(format!(
                        "registry sent more than {range}"
                    )));
                }
                pos += chunk.len() as u64;
                self.progress(chunk.len() as u64);
                pending.extend_from_slice(chunk);
            }
            if !pending.is_empty() && (next.is_none() || pending.len() >= WRITE_BATCH) {
                let (f, at, data) = (file.clone(), pending_at, pending.split().freeze());
                pending_at += data.len() as u64;
                tokio::task::spawn_blocking(move || f.write_all_at(&data, at))
                    .await
                    .map_err(io_join)??;
            }
            if next.is_none() {
                break;
            }
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
