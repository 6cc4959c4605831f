//! An upload session's state (`uploads/<id>/state`): saved after every
//! part so any replica can take the next chunk, read back with the tail of
//! bytes too few for a part, and removed with everything else of the
//! session.

use super::{backend_err, is_not_found, unsupported, ObjectBlobStore};
use crate::blob::check_id;
use crate::error::StoreError;
use crate::resumable_sha256::ResumableSha256;
use bytes::BytesMut;
use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};
use std::sync::atomic::Ordering;

/// A session's persisted state.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct SessionState {
    /// Bytes received and kept (parts + tail).
    pub(super) len: u64,
    /// SHA-256 of those bytes so far.
    pub(super) sha256: ResumableSha256,
    /// The multipart upload of `data/<id>`, once the first part is sent.
    pub(super) multipart: Option<String>,
    /// Content ids of the parts, in order, and their sizes.
    pub(super) parts: Vec<(String, u64)>,
    /// The tail object, when bytes wait for the next part.
    pub(super) tail: Option<String>,
    /// Bytes in the tail object.
    pub(super) tail_len: u64,
    /// Counter for tail object names (a new name per write, so a failed
    /// write never damages the tail the saved state points at).
    pub(super) seq: u64,
}

impl ObjectBlobStore {
    pub(super) async fn lock_session(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(id.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    pub(super) fn forget_session(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub(super) async fn load(
        &self,
        id: &str,
    ) -> Result<Option<(SessionState, UpdateVersion)>, StoreError> {
        check_id(id)?;
        let got = match self.store.get(&self.path(&Self::state_path(id))).await {
            Ok(g) => g,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(backend_err(e)),
        };
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let bytes = got.bytes().await.map_err(backend_err)?;
        let state = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("upload session {id}: {e}")))?;
        Ok(Some((state, version)))
    }

    /// Saves a session's state; with `since`, only if nobody saved it in
    /// between (a concurrent chunk for the same session loses).
    pub(super) async fn save(
        &self,
        id: &str,
        state: &SessionState,
        since: Option<UpdateVersion>,
    ) -> Result<Option<UpdateVersion>, StoreError> {
        let body: PutPayload = serde_json::to_vec(state)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .into();
        let path = self.path(&Self::state_path(id));
        if let Some(v) = since.filter(|_| !self.no_conditional_update.load(Ordering::Relaxed)) {
            let opts = PutOptions {
                mode: PutMode::Update(v.clone()),
                ..Default::default()
            };
            match self.store.put_opts(&path, body.clone(), opts).await {
                Ok(r) => {
                    return Ok(Some(UpdateVersion {
                        e_tag: r.e_tag,
                        version: r.version,
                    }))
                }
                Err(object_store::Error::Precondition { .. }) => {
                    let now = self.load(id).await?;
                    let unchanged = now
                        .as_ref()
                        .is_some_and(|(_, cur)| cur.e_tag.is_some() && cur.e_tag == v.e_tag);
                    if !unchanged {
                        return Err(StoreError::OffsetMismatch {
                            expected: now.map_or(0, |(s, _)| s.len),
                            got: state.len,
                        });
                    }
                    // Refused although nobody wrote in between: the store's
                    // If-Match is broken. Writes go unconditional from now on.
                    tracing::warn!("object store refuses matching If-Match; saving upload state unconditionally");
                    self.no_conditional_update.store(true, Ordering::Relaxed);
                }
                Err(e) if unsupported(&e) => {
                    self.no_conditional_update.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(backend_err(e)),
            }
            // The same save again, unconditionally.
            self.probe.retry("put");
        }
        let r = self.store.put(&path, body).await.map_err(backend_err)?;
        Ok(Some(UpdateVersion {
            e_tag: r.e_tag,
            version: r.version,
        }))
    }

    pub(super) async fn read_tail(&self, state: &SessionState) -> Result<BytesMut, StoreError> {
        let mut buf = BytesMut::new();
        if let Some(t) = &state.tail {
            let got = self
                .store
                .get(&self.path(t))
                .await
                .map_err(backend_err)?
                .bytes()
                .await
                .map_err(backend_err)?;
            if got.len() as u64 != state.tail_len {
                return Err(StoreError::Corrupt(format!(
                    "upload tail {t} has {} bytes, the session says {}",
                    got.len(),
                    state.tail_len
                )));
            }
            buf.extend_from_slice(&got);
        }
        Ok(buf)
    }

    /// Removes a session's objects (state, tail, multipart upload).
    pub(super) async fn discard(&self, id: &str, state: &SessionState) {
        if let Some(m) = &state.multipart {
            let _ = self
                .store
                .abort_multipart(&self.path(&Self::data_path(id)), m)
                .await;
        }
        if let Some(t) = &state.tail {
            let _ = self.store.delete(&self.path(t)).await;
        }
        let _ = self.store.delete(&self.path(&Self::state_path(id))).await;
    }
}
