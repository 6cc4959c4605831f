//! `GET /pavilion/v1/decisions`: the decision log the gate writes, served
//! newest first in bounded pages.

use crate::error::{ApiError, ApiResult};
use crate::query::query_pairs;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header;
use pavilion_oci::ErrorCode;
use pavilion_store::DecisionQuery;
use std::sync::Arc;

/// Largest page of decisions, in rows (each at most
/// `pavilion_store::decisions::MAX_DECISION_BYTES`).
const DECISION_PAGE: i64 = pavilion_store::decisions::MAX_DECISION_PAGE;
/// Largest page of decisions, in bytes of its body: a page stops before
/// the row that would cross it (it always holds one) and links onward.
const DECISION_PAGE_BYTES: usize = 4 << 20;
/// Longest `subject` filter accepted, in bytes.
const MAX_SUBJECT_QUERY: usize = pavilion_store::decisions::MAX_SUBJECT_BYTES;

/// `GET /pavilion/v1/decisions[?point=][&repository=][&subject=][&n=][&before=]`: the
/// decision log, newest first, at most 200 rows and 4 MiB a page. A full
/// page links to the next one.
pub async fn list_decisions(State(state): State<Arc<AppState>>, req: Request) -> Response {
    // Only the query is needed; a request body is not Sync, so it must not
    // be borrowed across the await below.
    let pairs = query_pairs(req.uri().query());
    drop(req);
    let result: ApiResult = async {
        let mut q = DecisionQuery {
            n: 100,
            ..Default::default()
        };
        let bad = |k: &str, v: &str| {
            ApiError::new(
                ErrorCode::Unsupported,
                format!("query parameter {k}={v:?} is not valid"),
            )
            .with_status(http::StatusCode::BAD_REQUEST)
        };
        for (k, v) in pairs {
            match k.as_str() {
                "point" if ["push", "pull", "admission", "authz"].contains(&v.as_str()) => {
                    q.point = Some(v)
                }
                "repository" => q.repository = Some(v),
                // Exact (`repo@sha256:...`): the latest decisions about one
                // digest. Stored subjects are at most about 1 KiB, so a
                // longer one could match nothing and is refused instead.
                "subject" if !v.is_empty() && v.len() <= MAX_SUBJECT_QUERY => q.subject = Some(v),
                "n" => match v.parse::<i64>() {
                    Ok(n) if n > 0 => q.n = n.min(DECISION_PAGE),
                    _ => return Err(bad(&k, &v)),
                },
                "before" => q.before = Some(v.parse().map_err(|_| bad(&k, &v))?),
                _ => return Err(bad(&k, &v)),
            }
        }
        let list = state.meta.decisions(&q).await?;
        let mut body = String::from("{\"decisions\":[");
        let mut last = None;
        let mut shown = 0;
        for d in &list {
            let Ok(text) = serde_json::to_string(d) else {
                continue;
            };
            if last.is_some() && body.len() + text.len() + 3 > DECISION_PAGE_BYTES {
                break;
            }
            if last.is_some() {
                body.push(',');
            }
            body.push_str(&text);
            last = Some(d);
            shown += 1;
        }
        body.push_str("]}");
        let mut resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        if list.len() as i64 == q.n || shown < list.len() {
            if let Some(last) = last {
                let mut next = format!("/pavilion/v1/decisions?n={}&before={}", q.n, last.id);
                if let Some(p) = &q.point {
                    next.push_str(&format!("&point={p}"));
                }
                if let Some(r) = &q.repository {
                    next.push_str(&format!("&repository={}", pavilion_oci::percent::encode(r)));
                }
                if let Some(s) = &q.subject {
                    next.push_str(&format!("&subject={}", pavilion_oci::percent::encode(s)));
                }
                if let Ok(v) = format!("<{next}>; rel=\"next\"").parse() {
                    resp.headers_mut().insert(header::LINK, v);
                }
            }
        }
        Ok(resp)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
