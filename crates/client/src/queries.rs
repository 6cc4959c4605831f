//! A Pavilion registry's continuous queries (`GET /pavilion/v1/queries`):
//! a Cypher query's current result set, and a stream of its changes (the
//! result, then each diff) as Server-Sent Events. Rows are JSON objects
//! named by the query's `RETURN` aliases, kept in the order the registry
//! sent their fields so tables show the columns as the query wrote them.

use crate::client::{check, Client};
use crate::error::{read_capped, ClientError, ErrorKind};
use crate::sse::SseReader;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The most bytes of a current result read with [`current`] (the same
/// bound the stream applies to one message).
pub const MAX_RESULT_BYTES: u64 = crate::sse::MAX_LINE_BYTES as u64;

/// One row of a result: its fields in the order the registry sent them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(pub Vec<(String, serde_json::Value)>);

impl Row {
    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The field names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// The row as one line of JSON, fields in the registry's order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The row as canonical JSON: keys sorted, no whitespace (what
    /// [`Row::key`] hashes, so a row is recognised whatever order its
    /// fields arrive in).
    pub fn canonical(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self.0.iter().cloned().collect();
        serde_json::Value::Object(map).to_string()
    }

    /// `sha256:<hex>` of [`Row::canonical`]: the row's identity for
    /// remembering what was done about it.
    pub fn key(&self) -> String {
        pavilion_oci::Digest::sha256(self.canonical().as_bytes()).to_string()
    }
}

impl Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a row (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Row, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, serde_json::Value>()? {
                    fields.push((k, v));
                }
                Ok(Row(fields))
            }
        }
        d.deserialize_map(RowVisitor)
    }
}

/// A query's whole result as of a feed sequence number.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct QueryResult {
    /// The change feed's sequence number the result is as of.
    pub seq: i64,
    /// The rows.
    pub rows: Vec<Row>,
}

/// A row that changed in place.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RowUpdate {
    /// What the row was.
    pub before: Row,
    /// What it is now.
    pub after: Row,
}

/// How a result changed at a feed sequence number.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct QueryDiff {
    /// The change feed's sequence number of the change.
    pub seq: i64,
    /// Rows that entered the result.
    #[serde(default)]
    pub added: Vec<Row>,
    /// Rows that changed.
    #[serde(default)]
    pub updated: Vec<RowUpdate>,
    /// Rows that left the result.
    #[serde(default)]
    pub removed: Vec<Row>,
}

/// What a [`QueryStream`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryEvent {
    /// The whole result: always first, once per stream.
    Result(QueryResult),
    /// A change of the result.
    Diff(QueryDiff),
}

/// An open stream of a query's changes.
pub struct QueryStream {
    sse: SseReader,
    registry: String,
}

/// Why a stream could not be opened or went on: besides [`ClientError`],
/// the registry's own word that evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Talking to the registry failed, or it refused the query.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The registry is busy (too many subscriptions) or unavailable for
    /// now, and may have said for how long.
    #[error("{error}")]
    Busy {
        /// What it answered.
        error: ClientError,
        /// Its `Retry-After`, in seconds.
        retry_after: Option<Duration>,
    },
    /// The registry could not evaluate the query any more and ended the
    /// stream (`event: error`).
    #[error("{registry} stopped evaluating the query: {message}")]
    Evaluation {
        /// The registry.
        registry: String,
        /// Its message.
        message: String,
    },
}

impl QueryError {
    /// Whether opening the stream again later may succeed: the network, a
    /// registry busy or going away, or an evaluation that failed on the
    /// registry's side. A refused query or credentials will not change.
    pub fn is_temporary(&self) -> bool {
        match self {
            QueryError::Client(e) => e.is_temporary(),
            QueryError::Busy { .. } | QueryError::Evaluation { .. } => true,
        }
    }

    /// How long the registry asked to wait (`Retry-After` of a 503 or
    /// 429), when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            QueryError::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Classifies the error, for exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            QueryError::Client(e) | QueryError::Busy { error: e, .. } => e.kind(),
            QueryError::Evaluation { .. } => ErrorKind::Other,
        }
    }
}

/// `GET /pavilion/v1/queries?query=...` with `accept`, under the catalog
/// grant; a 400 (the query does not parse or cannot run) becomes a
/// [`ClientError::Usage`] carrying the registry's one-line message, and a
/// 404 says the registry has no continuous queries.
async fn open(
    client: &Client,
    registry: &str,
    query: &str,
    accept: &'static str,
) -> Result<reqwest::Response, QueryError> {
    let url = format!(
        "{}?query={}",
        client.registry_url(registry, "/pavilion/v1/queries"),
        pavilion_oci::percent::encode(query)
    );
    let resp = client
        .send_to(registry, "registry:catalog:*", |c| {
            c.get(&url).header("accept", accept)
        })
        .await?;
    match resp.status().as_u16() {
        404 => Err(ClientError::NotFound(format!(
            "{registry} has no continuous queries (GET /pavilion/v1/queries answered 404: not a Pavilion registry, or an older one)"
        ))
        .into()),
        400 => match ClientError::from_response(resp).await {
            ClientError::Registry { message, .. } => Err(ClientError::Usage(format!(
                "the query was refused: {}",
                one_line(&message)
            ))
            .into()),
            e => Err(e.into()),
        },
        429 | 503 => {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Err(QueryError::Busy {
                error: ClientError::from_response(resp).await,
                retry_after,
            })
        }
        _ => Ok(check(resp).await?),
    }
}

/// The query's current result on `registry`. Needs `registry:catalog:*`
/// under authentication.
pub async fn current(
    client: &Client,
    registry: &str,
    query: &str,
) -> Result<QueryResult, QueryError> {
    let resp = open(client, registry, query, "application/json").await?;
    let body = read_capped(resp, MAX_RESULT_BYTES, || {
        format!("the result of the query on {registry}")
    })
    .await?;
    serde_json::from_slice(&body).map_err(|e| {
        ClientError::Protocol(format!("{registry} sent a result that does not parse: {e}")).into()
    })
}

/// Opens the query's stream of changes on `registry`: its result, then
/// each diff. Needs `registry:catalog:*` under authentication.
pub async fn watch(
    client: &Client,
    registry: &str,
    query: &str,
) -> Result<QueryStream, QueryError> {
    let resp = open(client, registry, query, "text/event-stream").await?;
    Ok(QueryStream {
        sse: SseReader::new(resp, registry),
        registry: registry.to_string(),
    })
}

impl QueryStream {
    /// The next result or diff; `None` when the registry ended the stream
    /// (it shuts down). Messages of kinds not known here are skipped, so
    /// a newer registry may add some.
    pub async fn next(&mut self) -> Result<Option<QueryEvent>, QueryError> {
        while let Some(m) = self.sse.next().await? {
            let parsed = match m.event.as_str() {
                "result" => serde_json::from_str(&m.data).map(QueryEvent::Result),
                "diff" => serde_json::from_str(&m.data).map(QueryEvent::Diff),
                "error" => {
                    let v: serde_json::Value = serde_json::from_str(&m.data).unwrap_or_default();
                    let message = v["message"].as_str().unwrap_or(&m.data);
                    return Err(QueryError::Evaluation {
                        registry: self.registry.clone(),
                        message: one_line(message),
                    });
                }
                _ => continue,
            };
            return parsed.map(Some).map_err(|e| {
                ClientError::Protocol(format!(
                    "{} sent a query {} that does not parse: {e}",
                    self.registry, m.event
                ))
                .into()
            });
        }
        Ok(None)
    }
}

/// `s` on one line, control characters shown as `?`: the registry's
/// messages are printed on terminals and must not drive them.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
#[path = "queries_tests.rs"]
mod tests;
