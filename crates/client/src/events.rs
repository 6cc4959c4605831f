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

/// Largest webhook list or replay answer read (a few KiB per webhook).
const MAX_WEBHOOK_DOCUMENT_BYTES: u64 = 4 << 20;

/// What a webhook replay asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Deliver every dead letter again, in sequence order.
    Dead,
    /// Move the cursor to this sequence number: the events after it are
    /// delivered again.
    From(i64),
}

impl Client {
    /// The registry's webhooks: cursor, lag, dead letters, last error and
    /// lease holder of each (`GET /pavilion/v1/webhooks`). Needs
    /// `registry:catalog:*`.
    pub async fn webhooks(&self, registry: &str) -> Result<serde_json::Value, ClientError> {
        let url = self.registry_url(registry, "/pavilion/v1/webhooks");
        let resp = self
            .send_to(registry, "registry:catalog:*", |c| c.get(&url))
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(ClientError::Protocol(format!(
                "{registry} has no webhooks to list (GET /pavilion/v1/webhooks answered 404: not a Pavilion registry, or an older one)"
            )));
        }
        json_of(check(resp).await?, registry, "webhook list").await
    }

    /// Asks the registry to deliver `webhook`'s dead letters again, or to
    /// move its cursor back (`POST /pavilion/v1/webhooks/{name}/replay`).
    /// Needs the registry-wide grant.
    pub async fn replay_webhook(
        &self,
        registry: &str,
        webhook: &str,
        what: Replay,
    ) -> Result<serde_json::Value, ClientError> {
        let query = match what {
            Replay::Dead => "dead=true".to_string(),
            Replay::From(seq) => format!("from={seq}"),
        };
        let url = self.registry_url(
            registry,
            &format!("/pavilion/v1/webhooks/{}/replay?{query}", escape(webhook)),
        );
        let resp = self
            .send_to(registry, "registry:catalog:*", |c| c.post(&url))
            .await?;
        json_of(check(resp).await?, registry, "replay answer").await
    }
}

async fn json_of(
    resp: reqwest::Response,
    registry: &str,
    what: &str,
) -> Result<serde_json::Value, ClientError> {
    let body = crate::error::read_capped(resp, MAX_WEBHOOK_DOCUMENT_BYTES, || {
        format!("the {what} from {registry}")
    })
    .await?;
    serde_json::from_slice(&body).map_err(|e| {
        ClientError::Protocol(format!(
            "{registry} answered a {what} that does not parse: {e}"
        ))
    })
}
