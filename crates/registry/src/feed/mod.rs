//! The change feed's read side: `GET /pavilion/v1/events`, as pages of
//! CloudEvents or as a Server-Sent Events stream (`Accept:
//! text/event-stream`, resumed with `Last-Event-ID`). Events are written
//! by the store in the transaction of each change
//! (`pavilion_store::events`); this module only reads them.
//!
//! Under authentication the feed needs the catalog grant
//! (`registry:catalog:*`), as the usage and transfer lists do: events name
//! repositories, and filtering each event by what the caller may pull
//! would make a page's cost depend on the grant table.

pub mod api;
pub mod cloudevent;
pub mod params;
pub mod queries;
mod stream;
pub mod webhooks;

use axum::extract::Request;
use pavilion_store::Origin;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Most SSE streams open at once on one replica.
pub const MAX_STREAMS: usize = 64;

/// The feed's shared state: the stream bound and the signal that ends
/// every stream when the server starts shutting down.
pub struct Feed {
    /// `source` of every event is `/pavilion/<name>`.
    pub name: String,
    streams: Arc<Semaphore>,
    /// Cancelled when the server stops accepting requests: open streams
    /// end so that shutdown does not wait out its grace period on them.
    pub stop: CancellationToken,
    /// Continuous queries' subscriptions (`/pavilion/v1/queries`).
    pub queries: queries::Queries,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new("registry", MAX_STREAMS, queries::Queries::default())
    }
}

impl Feed {
    /// A feed named `name` allowing `streams` open streams, and continuous
    /// queries within `queries`.
    pub fn new(name: &str, streams: usize, queries: queries::Queries) -> Self {
        Feed {
            name: name.to_string(),
            streams: Arc::new(Semaphore::new(streams)),
            stop: CancellationToken::new(),
            queries,
        }
    }

    /// A place for one more stream, if any is left.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }
}

tokio::task_local! {
    /// The origin of the request being handled, for events written deep
    /// in a handler (a quota refusal, a policy decision) whose callers do
    /// not carry the request; set by the dispatcher for each request.
    static ORIGIN: Origin;
}

/// Runs `f` with `origin` as the request's origin ([`current`]).
pub async fn with_origin<F: std::future::Future>(origin: Origin, f: F) -> F::Output {
    ORIGIN.scope(origin, f).await
}

/// The origin of the request being handled, if any (none outside a
/// request: a collection run, the admission webhook).
pub fn current() -> Origin {
    ORIGIN.try_with(Origin::clone).unwrap_or_default()
}

/// Who made `req` and its trace, for the events its change writes. Only a
/// valid `traceparent` is kept.
pub fn origin(req: &Request) -> Origin {
    let traceparent = crate::metrics::trace::traceparent(req)
        .and_then(|_| {
            req.headers()
                .get(&crate::metrics::trace::TRACEPARENT)?
                .to_str()
                .ok()
        })
        .map(str::to_string);
    Origin {
        actor: crate::caller::caller(req),
        traceparent,
    }
}
