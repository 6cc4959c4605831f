//! Blob entries (`blobs/<alg>/<hex>`, created once, conditionally, as the
//! commit) and the claim that pairs a bucket with one metadata database.

use super::{backend_err, is_not_found, unsupported, ObjectBlobStore};
use crate::error::StoreError;
use object_store::path::Path;
use object_store::{PutMode, PutOptions};
use pavilion_oci::Digest;
use std::sync::atomic::Ordering;

/// A blob's entry.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Entry {
    /// Key of the data object, relative to the prefix.
    pub(super) data: String,
    /// Its size.
    pub(super) size: u64,
}

impl ObjectBlobStore {
    /// The entry of `d`, remembered once read: an entry never changes
    /// while it exists, but garbage collection (from any replica) may
    /// delete it and a later push create another, so callers that act on
    /// its absence or delete it use [`ObjectBlobStore::fresh_entry`], and
    /// readers that find the data gone ask again.
    pub(super) async fn entry(&self, d: &Digest) -> Result<Option<Entry>, StoreError> {
        if let Some(e) = self.entries.read().ok().and_then(|m| m.get(d).cloned()) {
            return Ok(Some(e));
        }
        self.fresh_entry(d).await
    }

    /// Forgets what was remembered of `d`.
    pub(super) fn forget_entry(&self, d: &Digest) {
        if let Ok(mut m) = self.entries.write() {
            m.remove(d);
        }
    }

    /// The entry of `d` as the store has it now.
    pub(super) async fn fresh_entry(&self, d: &Digest) -> Result<Option<Entry>, StoreError> {
        self.forget_entry(d);
        let got = match self.store.get(&self.path(&Self::entry_path(d))).await {
            Ok(g) => g.bytes().await.map_err(backend_err)?,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(backend_err(e)),
        };
        let entry: Entry = serde_json::from_slice(&got)
            .map_err(|e| StoreError::Corrupt(format!("blob entry {d}: {e}")))?;
        if let Ok(mut m) = self.entries.write() {
            m.insert(d.clone(), entry.clone());
        }
        Ok(Some(entry))
    }

    /// Creates the entry of `d` for `data`; `false` when one already exists.
    pub(super) async fn create_entry(
        &self,
        d: &Digest,
        data: &str,
        size: u64,
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_vec(&Entry {
            data: data.to_string(),
            size,
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.put_if_absent(&self.path(&Self::entry_path(d)), body)
            .await
    }

    /// Writes `path` only if nothing is there; `false` when something was.
    /// A conditional create (`If-None-Match: *`) where the store has one;
    /// otherwise a check, then the write (two writers can both get through:
    /// callers only write objects whose contents are interchangeable).
    pub(super) async fn put_if_absent(
        &self,
        path: &Path,
        body: Vec<u8>,
    ) -> Result<bool, StoreError> {
        if !self.no_conditional.load(Ordering::Relaxed) {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self.store.put_opts(path, body.clone().into(), opts).await {
                Ok(_) => return Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
                Err(e) if unsupported(&e) => {
                    // Asked again below, after a check, unconditionally.
                    self.without_conditional_create();
                    self.probe.retry("put");
                }
                Err(e) => return Err(backend_err(e)),
            }
        }
        match self.store.head(path).await {
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(backend_err(e)),
        }
        self.store
            .put(path, body.into())
            .await
            .map_err(backend_err)?;
        Ok(true)
    }

    pub(super) fn without_conditional_create(&self) {
        if !self.no_conditional.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "object store has no conditional create (If-None-Match); committing after a check instead"
            );
        }
    }

    /// Checks the store is reachable and records which metadata database
    /// goes with it (`pavilion.json` under the prefix). Blobs without
    /// their metadata are unreachable, so a store already paired with
    /// another database is refused: replicas sharing a bucket must share
    /// one PostgreSQL database, and two SQLite files never can.
    pub async fn claim(&self, database: &str) -> Result<(), StoreError> {
        self.probe_conditional_create().await?;
        let path = self.path("pavilion.json");
        let body = serde_json::json!({ "database": database })
            .to_string()
            .into_bytes();
        // Replicas starting together on a new bucket race to create the
        // claim; the losers read the winner's.
        if !self.put_if_absent(&path, body.clone()).await? {
            let got = self.store.get(&path).await.map_err(backend_err)?;
            let bytes = got.bytes().await.map_err(backend_err)?;
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("{path}: {e}")))?;
            let theirs = v["database"].as_str().unwrap_or("");
            if theirs != database {
                return Err(StoreError::Backend(format!(
                    "this storage is used with the metadata database {theirs}, not {database}; \
                     replicas sharing object storage must share one PostgreSQL database (--database-url postgres://...)"
                )));
            }
        }
        Ok(())
    }

    /// Asks the store whether it honours `If-None-Match: *`: a second
    /// conditional create of the same object must be refused. A store that
    /// lets it through (Garage does) gets the check-then-write fallback
    /// from here on, before the claim relies on it.
    async fn probe_conditional_create(&self) -> Result<(), StoreError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = self.path(&format!("probe-{}-{nanos:x}", std::process::id()));
        let opts = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        for attempt in 0..2 {
            match self.store.put_opts(&path, "probe".into(), opts()).await {
                Ok(_) if attempt == 1 => self.without_conditional_create(),
                Ok(_) => continue,
                Err(object_store::Error::AlreadyExists { .. }) if attempt == 1 => {}
                Err(e) if unsupported(&e) => self.without_conditional_create(),
                Err(e) => return Err(backend_err(e)),
            }
            break;
        }
        match self.store.delete(&path).await {
            Err(e) if !is_not_found(&e) => Err(backend_err(e)),
            _ => Ok(()),
        }
    }
}
