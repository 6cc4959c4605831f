//! The SSE form of a subscription: `event: result` (the rows), then one
//! `event: diff` per page of events (or time passing) that changed the
//! result, each with `id:` the last event applied. The next page is read
//! only when the client has taken the previous diff (hyper polls the body
//! as the socket drains), so a slow reader holds one diff, never a queue.
//! An evaluation that fails sends `event: error` and ends the stream.

use super::api::{heavy, Subscription};
use super::engine::Diff;
use super::model;
use crate::state::AppState;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use pavilion_store::EventQuery;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// How long an idle subscription waits before asking the database again.
const POLL: Duration = Duration::from_millis(250);
/// Events read per page.
const PAGE: i64 = 500;

struct Cursor {
    state: Arc<AppState>,
    sub: Subscription,
    first: bool,
    done: bool,
    /// Changes after each commit of this replica that wrote events.
    written: tokio::sync::watch::Receiver<u64>,
    _permit: OwnedSemaphorePermit,
}

enum Next {
    Diff(Diff),
    Failed(String),
}

fn now_ms() -> u64 {
    u64::try_from(pavilion_store::now_millis()).unwrap_or(0)
}

impl Cursor {
    async fn next(&mut self) -> Option<Next> {
        loop {
            if self.state.feed.stop.is_cancelled() {
                return None;
            }
            let q = EventQuery {
                after: self.sub.seq,
                limit: PAGE,
                types: Vec::new(),
            };
            let rows = match self.state.meta.events_after(&q).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "query stream: could not read the feed");
                    return None;
                }
            };
            // Sequence numbers have no gaps: a first event past the next
            // number means retention pruned what this subscription had not
            // applied yet, and its result can no longer be kept exact.
            if rows.first().is_some_and(|e| e.seq != self.sub.seq + 1) {
                return Some(Next::Failed(format!(
                    "the change feed no longer holds the events after {} (retention pruned them): subscribe again",
                    self.sub.seq
                )));
            }
            let (state, sub) = (&self.state, &mut self.sub);
            let applied = heavy(async {
                for e in &rows {
                    model::apply_event(state, &mut sub.graph, e).await?;
                    sub.seq = e.seq;
                }
                sub.graph.run_due(now_ms()).await
            })
            .await;
            if let Err(e) = applied {
                return Some(Next::Failed(e.to_string()));
            }
            let diff = self.sub.graph.take_diff();
            if !diff.is_empty() {
                return Some(Next::Diff(diff));
            }
            if rows.is_empty() {
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    _ = self.written.changed() => {}
                    () = self.state.feed.stop.cancelled() => return None,
                }
            }
        }
    }
}

fn diff_doc(seq: i64, d: Diff) -> Value {
    let updated: Vec<Value> = d
        .updated
        .into_iter()
        .map(|(before, after)| json!({ "before": before, "after": after }))
        .collect();
    json!({ "seq": seq, "added": d.added, "updated": updated, "removed": d.removed })
}

/// The stream of `sub`, holding `permit` until it ends.
pub fn sse(state: Arc<AppState>, sub: Subscription, permit: OwnedSemaphorePermit) -> Response {
    let cursor = Cursor {
        written: state.meta.events_written(),
        state,
        sub,
        first: true,
        done: false,
        _permit: permit,
    };
    let events = futures::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        if c.first {
            c.first = false;
            let doc = json!({ "seq": c.sub.seq, "rows": c.sub.graph.rows() });
            let item = SseEvent::default()
                .event("result")
                .id(c.sub.seq.to_string())
                .data(doc.to_string());
            return Some((Ok::<_, Infallible>(item), c));
        }
        let item = match c.next().await? {
            Next::Diff(d) => SseEvent::default()
                .event("diff")
                .id(c.sub.seq.to_string())
                .data(diff_doc(c.sub.seq, d).to_string()),
            Next::Failed(message) => {
                c.done = true;
                SseEvent::default()
                    .event("error")
                    .data(json!({ "message": message }).to_string())
            }
        };
        Some((Ok(item), c))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
