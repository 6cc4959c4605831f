//! The server's shared state: one value, no globals.

use bytes::Bytes;
use pavilion_oci::Digest;
use pavilion_store::{BlobStore, MetaStore};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Limits and tunables the handlers need.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: usize,
    /// Advertised `OCI-Chunk-Min-Length` (0 = not advertised).
    pub chunk_min_length: u64,
    /// Longest wait for the next piece of a request body.
    pub body_idle_timeout: Duration,
    /// Largest page of tags, repositories or referrers.
    pub max_page: i64,
    /// Answer blob GETs with a 307 to a presigned storage URL valid this
    /// long, when the store can sign one.
    pub redirect_blobs: Option<Duration>,
    /// Most upload sessions open at once, across replicas.
    pub max_upload_sessions: u64,
    /// Most upload sessions open at once in one repository, across replicas.
    pub max_upload_sessions_per_repository: u64,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
}

/// Everything a handler may touch.
pub struct AppState {
    /// Blob bytes and upload sessions.
    pub blobs: Arc<dyn BlobStore>,
    /// Metadata.
    pub meta: MetaStore,
    /// Limits.
    pub limits: Limits,
    /// Fired when the server starts shutting down: request bodies end early
    /// so uploads write out what they received.
    pub shutdown: CancellationToken,
    /// Decides manifest pushes and pulls, when a policy is configured.
    pub gate: Option<Arc<dyn crate::policy_hook::Gate>>,
    /// Decodes and judges stored Notary signatures for
    /// `/pavilion/v1/signatures/...` (`pavilion serve` always installs one;
    /// without, that report lists digests only).
    pub signatures: Option<Arc<dyn crate::signature_hook::SignatureInspector>>,
    /// Who may do what, when authentication is configured (`None`: open,
    /// the loopback quickstart).
    pub access: Option<Arc<crate::access::Access>>,
    /// Storage quotas; every one covering a repository must hold.
    pub quotas: Vec<crate::quota::Quota>,
    /// What `/metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Whether requests are counted for `/metrics` (`[metrics] enabled`).
    pub metrics_enabled: bool,
    /// Which requests' traces are recorded, when traces are on.
    pub trace_sampler: crate::metrics::trace::TraceSampler,
    /// The change feed's readers (`/pavilion/v1/events`).
    pub feed: Arc<crate::feed::Feed>,
    /// Webhooks this replica delivers (`[[events.webhook]]`).
    pub webhooks: Arc<crate::feed::webhooks::Webhooks>,
    /// Blob transfers in flight (`/pavilion/v1/transfers`).
    pub transfers: Arc<crate::transfers::Transfers>,
    /// Manifest bytes by digest. Content-addressed bytes never change, so a
    /// cached entry is always right; the database still decides visibility.
    manifest_cache: RwLock<ManifestCache>,
}

#[derive(Default)]
struct ManifestCache {
    entries: HashMap<Digest, Bytes>,
    bytes: usize,
}

/// Total manifest bytes kept in memory before the cache starts over.
const MANIFEST_CACHE_BYTES: usize = 64 << 20;

impl AppState {
    /// Assembles the state.
    pub fn new(blobs: Arc<dyn BlobStore>, meta: MetaStore, limits: Limits) -> Self {
        AppState {
            blobs,
            meta,
            limits,
            shutdown: CancellationToken::new(),
            gate: None,
            signatures: None,
            access: None,
            quotas: Vec::new(),
            metrics: Arc::default(),
            transfers: Arc::default(),
            feed: Arc::default(),
            webhooks: Arc::default(),
            trace_sampler: Default::default(),
            metrics_enabled: true,
            manifest_cache: RwLock::new(ManifestCache::default()),
        }
    }

    /// Cached manifest bytes, if present.
    pub fn cached_manifest(&self, d: &Digest) -> Option<Bytes> {
        self.manifest_cache.read().ok()?.entries.get(d).cloned()
    }

    /// Remembers manifest bytes.
    pub fn cache_manifest(&self, d: &Digest, data: Bytes) {
        if let Ok(mut c) = self.manifest_cache.write() {
            if c.bytes + data.len() > MANIFEST_CACHE_BYTES {
                c.entries.clear();
                c.bytes = 0;
            }
            c.bytes += data.len();
            c.entries.insert(d.clone(), data);
        }
    }
}
