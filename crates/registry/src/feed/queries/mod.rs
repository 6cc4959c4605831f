//! Continuous queries over the registry's graph: `GET
//! /pavilion/v1/queries?query=CYPHER` answers a query's current result,
//! and, as Server-Sent Events, that result first and then each change to
//! it (rows added, updated, removed), the way Drasi's continuous queries
//! do. The engine is drasi-core, embedded: each subscription holds its own
//! query and in-memory graph, built from a snapshot of the metadata
//! database taken with the feed's position ([`model::bootstrap`]) and kept
//! current from the events after it ([`model::apply_event`]). Every
//! replica can serve any subscription: the graph comes from the shared
//! database and the shared feed, not from this replica's requests.
//!
//! Bounds: [`MAX_SUBSCRIPTIONS`] at once per replica, [`MAX_ELEMENTS`]
//! nodes and relations per graph, [`MAX_QUERY_BYTES`] of query text.

pub mod api;
pub mod engine;
pub mod model;
mod stream;
mod window;

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most subscriptions (answers being built and streams open) at once on
/// one replica: each holds a copy of the graph.
pub const MAX_SUBSCRIPTIONS: usize = 16;
/// Most nodes and relations one subscription's graph may hold.
pub const MAX_ELEMENTS: usize = 2_000_000;
/// Longest query text.
pub const MAX_QUERY_BYTES: usize = 8192;

/// The replica's subscriptions.
pub struct Queries {
    slots: Arc<Semaphore>,
    /// Most elements per graph.
    pub max_elements: usize,
}

impl Default for Queries {
    fn default() -> Self {
        Queries {
            slots: Arc::new(Semaphore::new(MAX_SUBSCRIPTIONS)),
            max_elements: MAX_ELEMENTS,
        }
    }
}

impl Queries {
    /// A place for one more subscription, if any is left.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }
}
