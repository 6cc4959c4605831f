//! Garbage collection on a schedule inside `serve` (`[gc] enabled`). The
//! collector itself is `pavilion_store::gc`; every replica may run the
//! schedule, since one lock in the shared database lets one run at a time
//! and the others skip their turn.

use crate::metrics::GcRun;
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
        let started = std::time::Instant::now();
        let run = gc::run(&state.meta, state.blobs.as_ref(), &schedule.options).await;
        state.metrics.gc_run(figures(&run, started.elapsed()));
        match run {
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

/// What a run did, for the metrics. A run that stopped on an error still
/// deleted what its report lists (`partial`; the next run resumes).
fn figures(run: &Result<gc::Report, GcError>, took: Duration) -> GcRun {
    match run {
        Ok(r) => GcRun {
            result: if r.error.is_some() { "partial" } else { "ok" },
            seconds: took.as_secs_f64(),
            blobs: r.blobs.len() as u64,
            manifests: r.manifests.len() as u64,
            tags: r.tags.len() as u64,
            links: r.links,
            bytes: u64::try_from(r.bytes).unwrap_or(0),
        },
        Err(GcError::Busy(_)) => GcRun {
            result: "skipped",
            ..GcRun::default()
        },
        Err(_) => GcRun {
            result: "failed",
            seconds: took.as_secs_f64(),
            ..GcRun::default()
        },
    }
}
