//! Garbage collection on a schedule inside `serve` (`[gc] enabled`). The
//! collector itself is `pavilion_store::gc`; every replica may run the
//! schedule, since one lock in the shared database lets one run at a time
//! and the others skip their turn.

use crate::state::AppState;
use pavilion_store::gc::{self, GcError};
use std::sync::Arc;
use std::time::Duration;

/// When and how serve collects.
#[derive(Debug, Clone)]
pub struct GcSchedule {
    /// Time between runs (the first runs one interval after start).
    pub interval: Duration,
    /// What each run does.
    pub options: gc::Options,
}

/// Runs the collector every `interval` until shutdown.
pub(crate) async fn scheduled_gc(state: Arc<AppState>, schedule: GcSchedule) {
    let every = schedule.interval.max(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = state.shutdown.cancelled() => return,
        }
        match gc::run(&state.meta, state.blobs.as_ref(), &schedule.options).await {
            Ok(r) => tracing::info!(
                manifests = r.manifests.len(),
                tags = r.tags.len(),
                links = r.links,
                blobs = r.blobs.len(),
                bytes = r.bytes,
                skipped = r.skipped,
                duration_ms = r.duration_ms,
                error = r.error.as_deref().unwrap_or(""),
                "garbage collection finished"
            ),
            Err(GcError::Busy(_)) => {
                tracing::info!("garbage collection skipped: another run holds the lock")
            }
            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
        }
    }
}
