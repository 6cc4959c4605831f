//! `GET /pavilion/v1/webhooks`: each configured webhook's cursor, lag,
//! dead letters, last error and lease holder; `POST
//! /pavilion/v1/webhooks/{name}/replay?dead=true|?from=SEQ`: deliver dead
//! letters again, or move the cursor back.
//!
//! Authorization is decided before these run (`access::target`): the list
//! needs what the feed needs (`registry:catalog:*`), since it shows
//! sequence numbers and errors about the same events; a replay is judged
//! as `delete` on the registry, see there for why.

use crate::error::{ApiError, ApiResult};
use crate::feed::cloudevent::rfc3339;
use crate::feed::params::bad;
use crate::query::query_pairs;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::response::IntoResponse;
use http::{header, StatusCode};
use pavilion_oci::ErrorCode;
use serde_json::{json, Value};
use std::sync::Arc;

/// Dead letters listed per webhook (the oldest; the count is complete).
const LISTED_DEAD: i64 = 20;

fn json_response(v: &Value) -> axum::response::Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// The list.
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult {
    let end = state.meta.last_event_seq().await?;
    let mut out = Vec::new();
    for h in &state.webhooks.hooks {
        let st = state.meta.webhook_state(&h.name).await?;
        let dead = state
            .meta
            .webhook_dead_letters(&h.name, 0, LISTED_DEAD, false)
            .await?;
        let dead: Vec<Value> = dead
            .iter()
            .map(|d| {
                json!({"seq": d.seq, "attempts": d.attempts, "error": d.error,
                       "at": rfc3339(d.at), "queued": d.queued})
            })
            .collect();
        let now = pavilion_store::now_millis();
        let mut doc = json!({
            "name": h.name,
            "url": h.shown_url(),
            "cursor": Value::Null,
            "lag": Value::Null,
            "dead_letters": 0,
            "dead_dropped": 0,
            "dead": dead,
            "last_error": Value::Null,
            "last_error_at": Value::Null,
            "lease_holder": Value::Null,
            "lease_expires_at": Value::Null,
        });
        if let Some(st) = st {
            doc["cursor"] = json!(st.delivered);
            doc["lag"] = json!(end.saturating_sub(st.delivered).max(0));
            doc["dead_letters"] = json!(st.dead);
            doc["dead_dropped"] = json!(st.dead_dropped);
            doc["last_error"] = json!(st.last_error);
            doc["last_error_at"] = json!(st.last_error_at.map(rfc3339));
            // An expired lease is held by no one.
            if st.lease_until > now {
                doc["lease_holder"] = json!(st.holder);
                doc["lease_expires_at"] = json!(rfc3339(st.lease_until));
            }
        }
        out.push(doc);
    }
    Ok(json_response(&json!({ "webhooks": out, "last_seq": end })))
}

/// What a replay asks for.
#[derive(Debug, PartialEq, Eq)]
enum Replay {
    Dead,
    From(i64),
}

fn parse(query: Option<&str>) -> Result<Replay, ApiError> {
    let mut asked = None;
    for (k, v) in query_pairs(query) {
        let this = match k.as_str() {
            "dead" if v == "true" => Replay::Dead,
            "dead" => return Err(bad(format!("dead {v:?}: only dead=true is meaningful"))),
            "from" => match v.trim().parse::<i64>() {
                Ok(n) if n >= 0 => Replay::From(n),
                _ => {
                    return Err(bad(format!(
                        "from {v:?} is not a sequence number (a whole number, 0 or more)"
                    )))
                }
            },
            _ => return Err(bad(format!("query parameter {k:?} is not known"))),
        };
        if asked.is_some() {
            return Err(bad("give one of dead=true or from=SEQ, once".into()));
        }
        asked = Some(this);
    }
    asked.ok_or_else(|| bad("give dead=true (dead letters) or from=SEQ (move the cursor)".into()))
}

/// The replay.
pub async fn replay(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let asked = parse(query.as_deref())?;
    if state.webhooks.get(&name).is_none() {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!("no webhook is named {name:?} in this registry's configuration"),
        )
        .detail_as_message()
        .with_status(StatusCode::NOT_FOUND));
    }
    let doc = match asked {
        Replay::Dead => {
            let n = state.meta.webhook_requeue(&name).await?;
            json!({"webhook": name, "requeued": n})
        }
        Replay::From(seq) => {
            let end = state.meta.last_event_seq().await?;
            if seq > end {
                return Err(bad(format!(
                    "from {seq} is beyond the end of the feed ({end})"
                )));
            }
            if !state.meta.webhook_rewind(&name, seq).await? {
                // Registered at start; recreate it at the end, then move it.
                state.meta.webhook_register(&name).await?;
                state.meta.webhook_rewind(&name, seq).await?;
            }
            json!({"webhook": name, "cursor": seq})
        }
    };
    Ok(json_response(&doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_dead_or_from() {
        assert_eq!(parse(Some("dead=true")).unwrap(), Replay::Dead);
        assert_eq!(parse(Some("from=0")).unwrap(), Replay::From(0));
        for q in [
            None,
            Some("dead=1"),
            Some("from=-1"),
            Some("from=x"),
            Some("dead=true&from=1"),
            Some("x=1"),
        ] {
            assert!(parse(q).is_err(), "{q:?}");
        }
    }
}
