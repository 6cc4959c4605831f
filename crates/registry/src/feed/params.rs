//! The query of `GET /pavilion/v1/events`, checked before anything is
//! read: each bad parameter is a 400 with one line naming it.

use crate::error::ApiError;
use crate::query::query_pairs;
use http::{HeaderMap, StatusCode};
use pavilion_oci::ErrorCode;
use pavilion_store::events::{MAX_EVENT_PAGE, TYPES};
use pavilion_store::gc::retention::Glob;

/// Events per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;
/// Longest repository glob: a repository name is at most 255 characters,
/// and a glob is compiled into a matcher whose cost grows with it.
const MAX_GLOB_CHARS: usize = 512;

/// What a reader asked for.
#[derive(Debug, Clone)]
pub struct Params {
    /// Events after this sequence number.
    pub after: i64,
    /// Most rows read per page.
    pub limit: i64,
    /// Only events of repositories this glob matches.
    pub repository: Option<Glob>,
    /// Only these types (empty: all).
    pub types: Vec<String>,
}

/// A 400 with `message`.
pub fn bad(message: String) -> ApiError {
    ApiError::new(ErrorCode::Unsupported, message)
        .detail_as_message()
        .with_status(StatusCode::BAD_REQUEST)
}

fn seq(what: &str, v: &str) -> Result<i64, ApiError> {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(bad(format!(
            "{what} {v:?} is not a sequence number (a whole number, 0 or more)"
        ))),
    }
}

/// Parses `query` and the `Last-Event-ID` header (which, when present,
/// is where an SSE reader resumes and overrides `after`).
pub fn parse(query: Option<&str>, headers: &HeaderMap) -> Result<Params, ApiError> {
    let mut p = Params {
        after: 0,
        limit: DEFAULT_LIMIT,
        repository: None,
        types: Vec::new(),
    };
    for (k, v) in query_pairs(query) {
        match k.as_str() {
            "after" => p.after = seq("after", &v)?,
            "limit" => {
                p.limit = match v.parse::<i64>() {
                    Ok(n) if (1..=MAX_EVENT_PAGE).contains(&n) => n,
                    _ => {
                        return Err(bad(format!(
                            "limit {v:?} is not a number from 1 to {MAX_EVENT_PAGE}"
                        )))
                    }
                }
            }
            "repository" => {
                if v.chars().count() > MAX_GLOB_CHARS {
                    return Err(bad(format!(
                        "repository: a glob of more than {MAX_GLOB_CHARS} characters"
                    )));
                }
                let glob = Glob::new(&v).map_err(|e| bad(format!("repository: {e}")))?;
                p.repository = Some(glob);
            }
            "type" => {
                for t in v.split(',') {
                    if !TYPES.contains(&t) {
                        return Err(bad(format!(
                            "type {t:?} is not an event type (one of {})",
                            TYPES.join(", ")
                        )));
                    }
                    // Known types only, each once: the list stays short.
                    if !p.types.iter().any(|x| x == t) {
                        p.types.push(t.to_string());
                    }
                }
            }
            _ => return Err(bad(format!("query parameter {k:?} is not known"))),
        }
    }
    if let Some(v) = headers.get("last-event-id") {
        let v = v
            .to_str()
            .map_err(|_| bad("Last-Event-ID is not text".into()))?;
        p.after = seq("Last-Event-ID", v)?;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(q: &str) -> String {
        parse(Some(q), &HeaderMap::new()).unwrap_err().detail
    }

    #[test]
    fn bad_input_is_named() {
        assert!(msg("after=x").contains("after \"x\""));
        assert!(msg("after=-1").contains("after"));
        assert!(msg("limit=0").contains("limit"));
        assert!(msg("limit=1001").contains("limit"));
        assert!(msg("type=dev.pavilion.nope").contains("dev.pavilion.nope"));
        assert!(msg("repository=a[").contains("repository"));
        assert!(msg("color=red").contains("color"));
        assert!(msg(&format!("repository={}", "a".repeat(513))).contains("512"));
    }

    #[test]
    fn last_event_id_overrides_after() {
        let mut h = HeaderMap::new();
        h.insert("last-event-id", "42".parse().unwrap());
        let p = parse(Some("after=3&type=dev.pavilion.artifact.pushed"), &h).unwrap();
        assert_eq!(p.after, 42);
        assert_eq!(p.types, ["dev.pavilion.artifact.pushed"]);
    }
}
