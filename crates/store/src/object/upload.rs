//! Object storage's side of an append (the path both backends share is
//! `crate::append`): the body gathered into parts, each sent while the
//! next fills, the session saved after every part; what is left at the end
//! becomes one more part, or a tail object when too small for one.

use super::multipart::SendingPart;
use super::session::SessionState;
use super::{backend_err, part_len, ObjectBlobStore, MAX_PARTS, MIN_PART};
use crate::append::{Batch, Sink, States};
use crate::error::StoreError;
use crate::resumable_sha256::ResumableSha256;
use bytes::BytesMut;
use object_store::UpdateVersion;

/// An append to one session, under its lock.
pub(super) struct PartSink<'a> {
    store: &'a ObjectBlobStore,
    id: &'a str,
    /// The session as it will be saved; its hash is the one saved before
    /// the append until a part is recorded.
    state: SessionState,
    /// The version of the saved state, for a conditional save.
    version: Option<UpdateVersion>,
    /// Bytes waiting for a part, the saved tail first. Each buffer fills
    /// to exactly one part, never past it, so it is allocated once and
    /// reused for the part after next (fresh 64 MiB buffers cost more in
    /// page faults and zeroing than hashing them).
    buf: BytesMut,
    /// Bytes of the saved tail in the first part (hashed before).
    tail_len: u64,
    /// The tail object the saved state points at, until it is replaced.
    old_tail: Option<String>,
    /// The part on its way to the store.
    sending: Option<SendingPart>,
}

impl<'a> PartSink<'a> {
    /// Starts an append to session `id`, saved as `state` (`version`), of a
    /// body of `declared` bytes if known; reads back the saved tail.
    pub(super) async fn open(
        store: &'a ObjectBlobStore,
        id: &'a str,
        state: SessionState,
        version: UpdateVersion,
        declared: Option<u64>,
    ) -> Result<Self, StoreError> {
        let mut buf = store.read_tail(&state).await?;
        // A small chunk gets a buffer its size, not a whole part.
        let first = store.part_len(state.parts.len());
        let expected = declared.map_or(first, |d| buf.len().saturating_add(d as usize));
        buf.reserve(expected.min(first).saturating_sub(buf.len()));
        Ok(PartSink {
            store,
            id,
            tail_len: buf.len() as u64,
            old_tail: state.tail.clone(),
            state,
            version: Some(version),
            buf,
            sending: None,
        })
    }

    /// The session's hash before the append (it covers the saved tail).
    pub(super) fn hash_before(&self) -> ResumableSha256 {
        self.state.sha256.clone()
    }

    /// Where each part this append fills ends, counted from the start of
    /// the body: the hash's state there is what is saved with the part.
    pub(super) fn part_ends(&self) -> impl Iterator<Item = u64> + Send + 'static {
        let (size, tail) = (self.store.part_size, self.tail_len);
        let mut end = 0u64;
        // Bounded: the part after the last S3 allows is refused anyway.
        (self.state.parts.len()..MAX_PARTS).map(move |i| {
            end = end.saturating_add(part_len(size, i) as u64);
            end.saturating_sub(tail)
        })
    }

    /// The buffer holds a whole part: the previous one is waited for and
    /// saved, then this one is sent.
    async fn cut_part(&mut self, states: &mut States<ResumableSha256>) -> Result<(), StoreError> {
        let part = std::mem::take(&mut self.buf).freeze();
        if let Some(previous) = self.sending.take() {
            self.buf = ObjectBlobStore::record_part(&mut self.state, previous)
                .await?
                .unwrap_or_default();
            // Saved after every part: a long body cut off (or a replica
            // killed) loses at most the parts in flight. The hash saved is
            // the one at the end of the recorded parts, exactly.
            self.state.sha256 = states.next().await?;
            self.state.tail = None;
            self.state.tail_len = 0;
            self.state.len = self.state.parts.iter().map(|(_, n)| n).sum();
            self.version = self
                .store
                .save(self.id, &self.state, self.version.take())
                .await?;
            if let Some(t) = self.old_tail.take() {
                let _ = self.store.store.delete(&self.store.path(&t)).await;
            }
        }
        self.buf
            .reserve(self.store.part_len(self.state.parts.len() + 1));
        self.sending = Some(
            self.store
                .send_part(self.id, &mut self.state, 0, part)
                .await?,
        );
        Ok(())
    }
}

impl Sink<ResumableSha256> for PartSink<'_> {
    async fn accept(
        &mut self,
        batch: Batch,
        states: &mut States<ResumableSha256>,
    ) -> Result<(), StoreError> {
        for piece in batch.iter() {
            let mut rest = &piece[..];
            while !rest.is_empty() {
                let queued = usize::from(self.sending.is_some());
                let len = self.store.part_len(self.state.parts.len() + queued);
                let room = len.saturating_sub(self.buf.len());
                let (now, later) = rest.split_at(room.min(rest.len()));
                self.buf.extend_from_slice(now);
                rest = later;
                if self.buf.len() < len {
                    break;
                }
                self.cut_part(states).await?;
            }
        }
        Ok(())
    }

    async fn settle(&mut self) -> Result<(), StoreError> {
        // A part still arriving at the store later could overwrite the same
        // part number sent by the session's next request.
        match self.sending.take() {
            Some(part) => ObjectBlobStore::record_part(&mut self.state, part)
                .await
                .map(drop),
            None => Ok(()),
        }
    }

    async fn keep(mut self, hash: Option<ResumableSha256>) -> Result<u64, StoreError> {
        let (store, id) = (self.store, self.id);
        if let Some(h) = hash {
            self.state.sha256 = h;
        }
        // What arrived is kept, complete or not: as a part when big enough,
        // else in a new tail object.
        let mut state = self.state;
        let mut buf = self.buf;
        if buf.len() >= MIN_PART {
            let part = buf.split().freeze();
            store.put_part(id, &mut state, part).await?;
        }
        state.seq += 1;
        state.tail_len = buf.len() as u64;
        state.tail = if buf.is_empty() {
            None
        } else {
            let rel = format!("uploads/{id}/tail-{}", state.seq);
            store
                .store
                .put(&store.path(&rel), buf.freeze().into())
                .await
                .map_err(backend_err)?;
            Some(rel)
        };
        state.len = state.parts.iter().map(|(_, n)| n).sum::<u64>() + state.tail_len;
        store.save(id, &state, self.version).await?;
        if let Some(old) = self.old_tail.filter(|t| Some(t) != state.tail.as_ref()) {
            let _ = store.store.delete(&store.path(&old)).await;
        }
        Ok(state.len)
    }

    async fn roll_back(self) -> Result<(), StoreError> {
        // Nothing is saved. Parts saved on the way stay (the session's
        // length reports them); parts sent since are replaced by the next
        // ones with the same numbers.
        Ok(())
    }
}
