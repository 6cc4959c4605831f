//! Multipart uploads: parts sent in the background, recorded in the
//! session, assembled into the data object at commit, which is where the
//! digest is checked and the blob's entry created.

use super::session::SessionState;
use super::{backend_err, ObjectBlobStore, MAX_PARTS};
use crate::append::Hashing;
use crate::error::StoreError;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::multipart::PartId;
use pavilion_oci::{Algorithm, Digest};
use std::sync::Arc;
use tracing::Instrument;

/// A part on its way to the store.
pub(super) struct SendingPart {
    task: tokio::task::JoinHandle<object_store::Result<PartId>>,
    /// The part's bytes, kept to reuse their buffer once sent.
    data: Bytes,
}

impl ObjectBlobStore {
    /// Sends `data` as the next part of the session's multipart upload.
    pub(super) async fn put_part(
        &self,
        id: &str,
        state: &mut SessionState,
        data: Bytes,
    ) -> Result<(), StoreError> {
        let sending = self.send_part(id, state, 0, data).await?;
        Self::record_part(state, sending).await.map(drop)
    }

    /// Starts sending `data` as part number `parts.len() + queued` in the
    /// background (creating the multipart upload first if needed).
    pub(super) async fn send_part(
        &self,
        id: &str,
        state: &mut SessionState,
        queued: usize,
        data: Bytes,
    ) -> Result<SendingPart, StoreError> {
        let idx = state.parts.len() + queued;
        if idx >= MAX_PARTS {
            return Err(StoreError::Backend(format!(
                "upload {id} reached {MAX_PARTS} parts; raise the part size"
            )));
        }
        let path = self.path(&Self::data_path(id));
        let mp = match &state.multipart {
            Some(m) => m.clone(),
            None => {
                let m = self
                    .store
                    .create_multipart(&path)
                    .await
                    .map_err(backend_err)?;
                state.multipart = Some(m.clone());
                m
            }
        };
        let store = self.store.clone();
        let payload = data.clone();
        // The spawned task is traced under the request that sent the part.
        let span = tracing::info_span!(
            target: "pavilion::otel",
            "store.put_part",
            pavilion.part = idx,
            pavilion.bytes = data.len(),
        );
        let task = tokio::spawn(
            async move { store.put_part(&path, &mp, idx, payload.into()).await }.instrument(span),
        );
        Ok(SendingPart { task, data })
    }

    /// Waits for a part being sent and adds it to the session's parts;
    /// returns its buffer, emptied, when nothing else holds it.
    pub(super) async fn record_part(
        state: &mut SessionState,
        sending: SendingPart,
    ) -> Result<Option<BytesMut>, StoreError> {
        let part = sending
            .task
            .await
            .map_err(|e| StoreError::Backend(format!("part upload task: {e}")))?
            .map_err(backend_err)?;
        state
            .parts
            .push((part.content_id, sending.data.len() as u64));
        Ok(sending.data.try_into_mut().ok().map(|mut b| {
            b.clear();
            b
        }))
    }

    /// Writes the session's bytes into `data/<id>` and returns its size.
    pub(super) async fn assemble(
        &self,
        id: &str,
        state: &mut SessionState,
    ) -> Result<u64, StoreError> {
        let tail = self.read_tail(state).await?.freeze();
        let path = self.path(&Self::data_path(id));
        if state.parts.is_empty() {
            // Small blob: one PUT, no multipart (S3 refuses zero parts).
            if let Some(m) = state.multipart.take() {
                let _ = self.store.abort_multipart(&path, &m).await;
            }
            self.store
                .put(&path, tail.into())
                .await
                .map_err(backend_err)?;
        } else {
            if !tail.is_empty() {
                self.put_part(id, state, tail).await?;
            }
            let mp = state.multipart.clone().unwrap_or_default();
            let parts = state
                .parts
                .iter()
                .map(|(c, _)| PartId {
                    content_id: c.clone(),
                })
                .collect();
            self.store
                .complete_multipart(&path, &mp, parts)
                .await
                .map_err(backend_err)?;
        }
        Ok(state.len)
    }

    /// Commit, under the session's lock.
    pub(super) async fn commit_locked(&self, id: &str, digest: &Digest) -> Result<u64, StoreError> {
        let (mut state, _) = self
            .load(id)
            .await?
            .ok_or_else(|| StoreError::UploadNotFound(id.to_string()))?;
        if digest.algorithm() == Algorithm::Sha256 {
            let actual = state.sha256.finish();
            if &actual != digest {
                self.discard(id, &state).await;
                return Err(StoreError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
        }
        let size = match self.assemble(id, &mut state).await {
            Ok(s) => s,
            // The store failed or is out of reach: the session stays as it
            // was saved, so the client can send its PUT again.
            Err(e @ StoreError::Backend(_)) => return Err(e),
            Err(e) => {
                self.discard(id, &state).await;
                return Err(e);
            }
        };
        let data = Self::data_path(id);
        if digest.algorithm() != Algorithm::Sha256 {
            let actual = self.hash_object(&data, digest.algorithm()).await?;
            if &actual != digest {
                let _ = self.store.delete(&self.path(&data)).await;
                state.multipart = None;
                self.discard(id, &state).await;
                return Err(StoreError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
        }
        if !self.create_entry(digest, &data, size).await? {
            // The same content was committed by another session first.
            let _ = self.store.delete(&self.path(&data)).await;
        }
        state.multipart = None;
        self.discard(id, &state).await;
        Ok(size)
    }

    /// Hashes a stored data object (SHA-512 uploads, whose state is not
    /// kept incrementally: they are rare and only re-read once).
    pub(super) async fn hash_object(
        &self,
        rel: &str,
        alg: Algorithm,
    ) -> Result<Digest, StoreError> {
        // Hashed on a blocking thread, as an append's body is.
        let (hashing, _) = Hashing::start(alg.hasher(), std::iter::empty());
        let mut s = self
            .store
            .get(&self.path(rel))
            .await
            .map_err(backend_err)?
            .into_stream();
        while let Some(c) = s.next().await {
            hashing.feed(&Arc::new(vec![c.map_err(backend_err)?])).await;
        }
        Ok(hashing.finish().await?.finish())
    }
}
