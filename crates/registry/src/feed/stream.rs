//! The SSE form of the feed. The stream holds at most one page of events
//! and reads the next page from the database only when the connection has
//! taken the last one (hyper polls the body only as the socket drains), so
//! a slow reader costs one page of memory, never a growing queue. An idle
//! stream reads again when this replica commits events, and every 250 ms
//! for other replicas' writes to the same log.

use super::params::Params;
use crate::state::AppState;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use pavilion_store::{Event, EventQuery};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// How long an idle stream waits before asking the database again.
const POLL: Duration = Duration::from_millis(250);

struct Cursor {
    state: Arc<AppState>,
    params: Params,
    page: VecDeque<Event>,
    /// Changes after each commit of this replica that wrote events.
    written: tokio::sync::watch::Receiver<u64>,
    /// Released when the stream ends or the client goes.
    _permit: OwnedSemaphorePermit,
}

impl Cursor {
    /// The next event to send; `None` ends the stream (shutdown, or the
    /// database failing: the client resumes with `Last-Event-ID`).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.state.feed.stop.is_cancelled() {
                return None;
            }
            if let Some(e) = self.page.pop_front() {
                return Some(e);
            }
            let q = EventQuery {
                after: self.params.after,
                limit: self.params.limit,
                types: self.params.types.clone(),
            };
            let rows = match self.state.meta.events_after(&q).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "event stream: could not read the feed");
                    return None;
                }
            };
            let Some(last) = rows.last() else {
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    _ = self.written.changed() => {}
                    () = self.state.feed.stop.cancelled() => return None,
                }
                continue;
            };
            self.params.after = last.seq;
            let glob = self.params.repository.as_ref();
            self.page
                .extend(rows.into_iter().filter(|e| super::api::matches(glob, e)));
        }
    }
}

/// The stream for `params`, holding `permit` until it ends.
pub fn sse(state: Arc<AppState>, params: Params, permit: OwnedSemaphorePermit) -> Response {
    let cursor = Cursor {
        written: state.meta.events_written(),
        state,
        params,
        page: VecDeque::new(),
        _permit: permit,
    };
    let events = futures::stream::unfold(cursor, |mut c| async move {
        let e = c.next().await?;
        let doc = super::cloudevent::render(&e, &c.state.feed.name);
        let item = SseEvent::default()
            .id(e.seq.to_string())
            .data(doc.to_string());
        Some((Ok::<_, Infallible>(item), c))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
