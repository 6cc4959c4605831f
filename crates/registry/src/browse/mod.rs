//! Read-only JSON for a repository browser (the web UI), which reads all
//! its data through the registry's own HTTP APIs with the viewer's
//! credentials, so the guard decides every call as for the `/v2` read it
//! stands for (`access::target`):
//!
//! - `GET /pavilion/v1/repositories?q=&n=&last=`: repositories whose name
//!   contains `q`, with counts: all of them for a holder of the catalog
//!   grant, else those the caller may pull;
//! - `GET /pavilion/v1/repositories/<name>/tags?n=&last=`: its tags with
//!   what each names (pull, as `tags/list`);
//! - `GET /pavilion/v1/signatures/<name>/manifests/<reference>`: the Notary
//!   signatures stored for a manifest, judged under the server's trust
//!   policy ([`signatures`]; pull);
//! - `GET /pavilion/v1/access/<name>`: what the caller may do there
//!   (any caller; nothing recorded).
//!
//! Handlers parse and answer; the queries are the store's
//! (`pavilion_store::browse`).

pub mod signatures;

use crate::error::{ApiError, ApiResult};
use crate::policy_hook::NOTARY_SIGNATURE;
use crate::query::query_pairs;
use crate::routes::{repo, segments};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use pavilion_oci::percent::encode;
use pavilion_oci::ErrorCode;
use pavilion_store::browse::{MAX_BROWSE_PAGE, MAX_SEARCH_BYTES};
use serde_json::json;
use std::sync::Arc;

/// Rows a page holds when the client gives no `n`.
const DEFAULT_PAGE: i64 = 100;
/// Longest `last` accepted, in bytes (names are at most 255, tags 128).
const MAX_LAST_BYTES: usize = 512;

/// A browsing endpoint, with its path parameters (raw: names are
/// validated by the handler, or by the guard to judge the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Browse {
    /// `/pavilion/v1/repositories`
    Repositories,
    /// `/pavilion/v1/repositories/<name>/tags`
    Tags(String),
    /// `/pavilion/v1/signatures/<name>/manifests/<reference>`
    Signatures(String, String),
    /// `/pavilion/v1/access/<name>`
    Access(String),
}

impl Browse {
    /// Recognises a path; `None` when it is not one of these endpoints.
    /// Names contain slashes, so they are read from the end, and segments
    /// are decoded after the split, as the `/v2` routes are.
    pub fn parse(path: &str) -> Option<Browse> {
        if path == "/pavilion/v1/repositories" {
            return Some(Browse::Repositories);
        }
        if let Some(rest) = path.strip_prefix("/pavilion/v1/repositories/") {
            let segs = segments(rest)?;
            let (last, name) = segs.split_last()?;
            return (last == "tags" && !name.is_empty()).then(|| Browse::Tags(name.join("/")));
        }
        if let Some(rest) = path.strip_prefix("/pavilion/v1/signatures/") {
            let segs = segments(rest)?;
            let n = segs.len();
            return (n >= 3 && segs[n - 2] == "manifests")
                .then(|| Browse::Signatures(segs[..n - 2].join("/"), segs[n - 1].clone()));
        }
        let rest = path.strip_prefix("/pavilion/v1/access/")?;
        Some(Browse::Access(segments(rest)?.join("/")))
    }

    /// The route template metrics count it under (never the repository).
    pub fn template(&self) -> &'static str {
        match self {
            Browse::Repositories => "/pavilion/v1/repositories",
            Browse::Tags(_) => "/pavilion/v1/repositories/{name}/tags",
            Browse::Signatures(..) => "/pavilion/v1/signatures/{name}/manifests/{reference}",
            Browse::Access(_) => "/pavilion/v1/access/{name}",
        }
    }
}

/// 400 with a one-line detail, in the registry's error shape.
fn bad(detail: String) -> ApiError {
    ApiError::new(ErrorCode::Unsupported, detail).with_status(StatusCode::BAD_REQUEST)
}

/// At most 40 characters of what a client sent, to quote in an error.
fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

/// 404 for a path under a browsing prefix that is no endpoint.
fn no_endpoint(path: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NameUnknown,
        format!("no API endpoint at {path:?}"),
    )
}

/// `n` and `last` of a page; any other parameter is refused (a typo
/// would otherwise silently list something else).
struct Page {
    n: i64,
    last: Option<String>,
}

impl Page {
    fn new() -> Page {
        Page {
            n: DEFAULT_PAGE,
            last: None,
        }
    }

    /// Takes parameter `k` = `v`. `n` above the bound is lowered to it, as
    /// the `/v2` listings do; zero, negative or not a number is refused.
    fn take(&mut self, k: &str, v: &str) -> ApiResult<()> {
        match k {
            "n" => match v.parse::<i64>() {
                Ok(n) if n > 0 => self.n = n.min(MAX_BROWSE_PAGE),
                _ => return Err(bad(format!("n={:?} is not a positive integer", cut(v)))),
            },
            "last" if v.len() > MAX_LAST_BYTES => {
                return Err(bad(format!(
                    "last is {} bytes: at most {MAX_LAST_BYTES}",
                    v.len()
                )))
            }
            "last" if v.chars().any(char::is_control) => {
                return Err(bad(format!(
                    "last={:?} contains a control character",
                    cut(v)
                )))
            }
            "last" => self.last = Some(v.to_string()),
            _ => return Err(bad(format!("unknown query parameter {:?}", cut(k)))),
        }
        Ok(())
    }

    /// The page's rows and whether more follow (`rows` was asked for `n + 1`).
    fn split<T>(&self, mut rows: Vec<T>) -> (Vec<T>, bool) {
        let more = rows.len() as i64 > self.n;
        rows.truncate(self.n as usize);
        (rows, more)
    }
}

/// The JSON answer, or the error's.
fn respond(result: ApiResult<serde_json::Value>) -> Response {
    match result {
        Ok(v) => ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /pavilion/v1/repositories?q=&n=&last=`.
pub async fn repositories(State(state): State<Arc<AppState>>, req: Request) -> Response {
    // Only the query and the caller are needed; a request body is not
    // Sync, so it must not be borrowed across the awaits below.
    let pairs = query_pairs(req.uri().query());
    let caller = req.extensions().get::<crate::access::Caller>().cloned();
    drop(req);
    respond(
        async {
            let mut q = String::new();
            let mut page = Page::new();
            for (k, v) in &pairs {
                match k.as_str() {
                    "q" if v.len() > MAX_SEARCH_BYTES => {
                        return Err(bad(format!(
                            "q is {} bytes: at most {MAX_SEARCH_BYTES}",
                            v.len()
                        )))
                    }
                    "q" => q = v.clone(),
                    _ => page.take(k, v)?,
                }
            }
            // Without the catalog grant, only what the caller may pull.
            let only_pullable = state
                .access
                .as_ref()
                .filter(|a| !crate::access::probe::catalog(a, caller.as_ref()));
            let (rows, more) = match only_pullable {
                None => {
                    let rows = state
                        .meta
                        .search_repositories(&q, page.last.as_deref(), page.n + 1)
                        .await?;
                    let (rows, more) = page.split(rows);
                    let last = rows.last().filter(|_| more).map(|r| r.name.clone());
                    (rows, last)
                }
                Some(access) => pullable(&state, access.clone(), caller.clone(), &q, &page).await?,
            };
            let next = more.map(|last| {
                let search = if q.is_empty() {
                    String::new()
                } else {
                    format!("q={}&", encode(&q))
                };
                format!(
                    "/pavilion/v1/repositories?{search}n={}&last={}",
                    page.n,
                    encode(&last)
                )
            });
            let list: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "name": r.name,
                        "tags": r.tags,
                        "manifests": r.manifests,
                        "updatedAt": r.updated_at,
                    })
                })
                .collect();
            Ok(json!({ "repositories": list, "next": next }))
        }
        .await,
    )
}

/// Most repositories looked at for one page of a caller without the
/// catalog grant: a page may then hold fewer than `n` and still link on.
const MAX_SCAN: i64 = 5_000;

/// A page of the repositories `caller` may pull, and where the next page
/// starts (`None`: no more). Rows are read in pages and judged one by one
/// with the guard's own grants and rules (`access::probe`, nothing
/// recorded), at most [`MAX_SCAN`] a request.
async fn pullable(
    state: &AppState,
    access: Arc<crate::access::Access>,
    caller: Option<crate::access::Caller>,
    q: &str,
    page: &Page,
) -> ApiResult<(Vec<pavilion_store::browse::RepoSummary>, Option<String>)> {
    let mut out = Vec::new();
    let mut last = page.last.clone();
    let mut scanned = 0i64;
    loop {
        let batch = state
            .meta
            .search_repositories(q, last.as_deref(), page.n + 1)
            .await?;
        let end = batch.len() as i64 <= page.n;
        scanned += batch.len() as i64;
        last = batch.last().map(|r| r.name.clone()).or(last);
        // The rules are evaluated off the async workers (a page may judge
        // thousands of names).
        let (a, c) = (access.clone(), caller.clone());
        let judged = tokio::task::spawn_blocking(move || {
            batch
                .into_iter()
                .filter(|r| crate::access::probe::permissions(&a, c.as_ref(), &r.name).pull)
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        for r in judged {
            if out.len() as i64 == page.n {
                // One more exists: the page is full and links on.
                let shown = out
                    .last()
                    .map(|r: &pavilion_store::browse::RepoSummary| r.name.clone());
                return Ok((out, shown));
            }
            out.push(r);
        }
        if end {
            return Ok((out, None));
        }
        if scanned >= MAX_SCAN {
            return Ok((out, last));
        }
    }
}

/// `GET /pavilion/v1/repositories/<name>/tags?n=&last=`: 404
/// `NAME_UNKNOWN` for a repository that never existed.
pub async fn tags(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let pairs = query_pairs(req.uri().query());
    drop(req);
    respond(
        async {
            let Some(Browse::Tags(name)) = Browse::parse(&path) else {
                return Err(no_endpoint(&path));
            };
            let name = repo(&name)?;
            let mut page = Page::new();
            for (k, v) in &pairs {
                page.take(k, v)?;
            }
            crate::listing::known_repo(&state, &name).await?;
            let rows = state
                .meta
                .tag_summaries(
                    name.as_str(),
                    page.last.as_deref(),
                    page.n + 1,
                    NOTARY_SIGNATURE,
                )
                .await?;
            let (rows, more) = page.split(rows);
            let next = rows.last().filter(|_| more).map(|t| {
                format!(
                    "/pavilion/v1/repositories/{name}/tags?n={}&last={}",
                    page.n,
                    encode(&t.tag)
                )
            });
            let list: Vec<_> = rows
                .iter()
                .map(|t| {
                    json!({
                        "tag": t.tag,
                        "digest": t.digest,
                        "mediaType": t.media_type,
                        "artifactType": t.artifact_type,
                        "size": t.size,
                        "totalSize": t.total_size,
                        "pushedAt": t.pushed_at,
                        "signatures": t.signatures,
                    })
                })
                .collect();
            Ok(json!({ "name": name.as_str(), "tags": list, "next": next }))
        }
        .await,
    )
}

/// `GET /pavilion/v1/access/<name>`: what the caller may do on `<name>`,
/// asked of the guard's own grants and rules without recording anything
/// (`access::probe`). All true when the server has no authentication. The
/// repository is never looked up: the answer is the same whether it
/// exists or not.
pub async fn access(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let caller = req.extensions().get::<crate::access::Caller>().cloned();
    drop(req);
    respond((|| {
        let Some(Browse::Access(name)) = Browse::parse(&path) else {
            return Err(no_endpoint(&path));
        };
        let name = repo(&name)?;
        let may = match &state.access {
            Some(a) => crate::access::probe::permissions(a, caller.as_ref(), name.as_str()),
            None => crate::access::probe::Permissions::all(),
        };
        Ok(json!({
            "repository": name.as_str(),
            "pull": may.pull,
            "push": may.push,
            "delete": may.delete,
        }))
    })())
}

#[cfg(test)]
mod tests {
    use super::Browse::{self, *};

    #[test]
    fn paths_are_read_from_the_end() {
        let p = |s: &str| Browse::parse(s);
        assert_eq!(p("/pavilion/v1/repositories"), Some(Repositories));
        assert_eq!(
            p("/pavilion/v1/repositories/a/tags/tags"),
            Some(Tags("a/tags".into()))
        );
        assert_eq!(p("/pavilion/v1/repositories/a"), None);
        assert_eq!(p("/pavilion/v1/repositories/tags"), None);
        assert_eq!(
            p("/pavilion/v1/signatures/a/b/manifests/sha256%3Aab"),
            Some(Signatures("a/b".into(), "sha256:ab".into()))
        );
        assert_eq!(p("/pavilion/v1/signatures/manifests/x"), None);
        assert_eq!(
            p("/pavilion/v1/access/team/m"),
            Some(Access("team/m".into()))
        );
        // An escaped '/' stays in its segment (and the name is refused).
        assert_eq!(p("/pavilion/v1/access/a%2Fb"), Some(Access("a%2Fb".into())));
        assert_eq!(p("/pavilion/v1/access/%zz"), None);
        assert_eq!(p("/pavilion/v1/other"), None);
    }
}
