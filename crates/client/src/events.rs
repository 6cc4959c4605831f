//! A Pavilion registry's change feed as Server-Sent Events
//! (`GET /pavilion/v1/events`, `Accept: text/event-stream`): each event a
//! CloudEvents JSON document with the sequence number it was sent under,
//! so a reader that stops can resume after the last one it handled.

use crate::client::{check, Client};
use crate::error::ClientError;
use crate::sse::SseReader;

/// One event from the stream.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// The global sequence number (the SSE `id`).
    pub seq: i64,
    /// The CloudEvent.
    pub event: serde_json::Value,
}

/// An open stream of the feed.
pub struct EventStream {
    sse: SseReader,
    registry: String,
}

/// What the stream asks the registry for.
#[derive(Debug, Clone, Default)]
pub struct FeedQuery {
    /// Only events after this sequence number (sent as `Last-Event-ID`).
    pub after: Option<i64>,
    /// Only events of repositories this glob matches.
    pub repository: Option<String>,
    /// Only these types.
    pub types: Vec<String>,
}

impl Client {
    /// Opens the change feed of `registry` as a stream. Needs
    /// `registry:catalog:*` under authentication.
    pub async fn event_stream(
        &self,
        registry: &str,
        q: &FeedQuery,
    ) -> Result<EventStream, ClientError> {
        let mut url = self.registry_url(registry, "/pavilion/v1/events");
        let mut params: Vec<String> = Vec::new();
        if let Some(r) = &q.repository {
            params.push(format!("repository={}", escape(r)));
        }
        if !q.types.is_empty() {
            params.push(format!("type={}", escape(&q.types.join(","))));
        }
        if !params.is_empty() {
            url = format!("{url}?{}", params.join("&"));
        }
        let resp = self
            .send_to(registry, "registry:catalog:*", |c| {
                let mut r = c.get(&url).header("accept", "text/event-stream");
                if let Some(a) = q.after {
                    r = r.header("last-event-id", a.to_string());
                }
                r
            })
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(ClientError::Protocol(format!(
                "{registry} has no change feed (GET /pavilion/v1/events answered 404: not a Pavilion registry, or an older one)"
            )));
        }
        let resp = check(resp).await?;
        Ok(EventStream {
            sse: SseReader::new(resp, registry),
            registry: registry.to_string(),
        })
    }
}

fn escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl EventStream {
    /// The next event; `None` when the registry ended the stream.
    pub async fn next(&mut self) -> Result<Option<FeedEvent>, ClientError> {
        let Some(m) = self.sse.next().await? else {
            return Ok(None);
        };
        let event = serde_json::from_str(&m.data).map_err(|e| {
            ClientError::Protocol(format!(
                "{} sent an event that does not parse: {e}",
                self.registry
            ))
        })?;
        let seq = m.id.and_then(|id| id.parse().ok()).ok_or_else(|| {
            ClientError::Protocol(format!("{} sent an event without an id", self.registry))
        })?;
        Ok(Some(FeedEvent { seq, event }))
    }
}
