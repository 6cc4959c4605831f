//! Listings: `/v2/_catalog`, `/v2/<name>/tags/list` and the referrers API.

use crate::blobs::blob_digest;
use crate::error::{ApiError, ApiResult};
use crate::query::{query_get, query_pairs};
use crate::state::AppState;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use pavilion_oci::percent::encode;
use pavilion_oci::{media_type, ErrorCode, RepoName};

/// Page size when the client gives no `n`.
const DEFAULT_PAGE: i64 = 1000;

/// The `n` and `last` parameters of a paginated listing. Without `n`, pages
/// of `DEFAULT_PAGE` (never more than `max`) with a `Link` to the next.
struct Page {
    n: i64,
    last: Option<String>,
}

fn page(pairs: &[(String, String)], max: i64) -> ApiResult<Page> {
    let n = match query_get(pairs, "n") {
        None => DEFAULT_PAGE.min(max),
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| {
                ApiError::new(
                    ErrorCode::PaginationNumberInvalid,
                    format!("n={v:?} is not a non-negative integer"),
                )
            })?;
            if n < 0 {
                return Err(ApiError::new(
                    ErrorCode::PaginationNumberInvalid,
                    format!("n={n} is negative"),
                ));
            }
            n.min(max)
        }
    };
    let last = query_get(pairs, "last");
    if let Some(l) = last.filter(|l| l.chars().any(char::is_control)) {
        return Err(ApiError::new(
            ErrorCode::PaginationNumberInvalid,
            format!("last={l:?} contains a control character"),
        ));
    }
    Ok(Page {
        n,
        last: last.map(str::to_string),
    })
}

/// Fetches `n + 1` rows to learn whether a next page exists; trims to `n`.
fn split_next<T>(mut rows: Vec<T>, n: i64) -> (Vec<T>, bool) {
    let more = rows.len() as i64 > n;
    rows.truncate(n as usize);
    (rows, more)
}

/// The RFC 8288 `Link` to the page after `last`, when there is one.
fn next_link(path: &str, p: &Page, more: bool, last: Option<&str>, extra: &str) -> Option<String> {
    let last = last.filter(|_| more)?;
    Some(format!(
        "<{path}?n={}&last={}{extra}>; rel=\"next\"",
        p.n,
        encode(last)
    ))
}

fn json_response(
    body: serde_json::Value,
    content_type: &'static str,
    link: Option<String>,
) -> Response {
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        r.headers_mut().insert(header::LINK, l);
    }
    r
}

/// `GET /v2/_catalog?n=&last=`.
pub async fn catalog(state: &AppState, req: Request) -> ApiResult {
    let q = query_pairs(req.uri().query());
    let p = page(&q, state.limits.max_page)?;
    let rows = state.meta.catalog(p.last.as_deref(), p.n + 1).await?;
    let (repos, more) = split_next(rows, p.n);
    let link = next_link(
        "/v2/_catalog",
        &p,
        more,
        repos.last().map(String::as_str),
        "",
    );
    Ok(json_response(
        serde_json::json!({ "repositories": repos }),
        "application/json",
        link,
    ))
}

/// `NAME_UNKNOWN` (404) for a repository that never existed.
pub async fn known_repo(state: &AppState, name: &RepoName) -> ApiResult<()> {
    if !state.meta.repo_exists(name.as_str()).await? {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!("repository {name} not known"),
        ));
    }
    Ok(())
}

/// `GET /v2/<name>/tags/list?n=&last=`: 404 for a repository that never
/// existed, an empty list for one whose tags were all deleted.
pub async fn tags(state: &AppState, name: &RepoName, req: Request) -> ApiResult {
    let q = query_pairs(req.uri().query());
    let p = page(&q, state.limits.max_page)?;
    known_repo(state, name).await?;
    let rows = state
        .meta
        .tags(name.as_str(), p.last.as_deref(), p.n + 1)
        .await?;
    let (tags, more) = split_next(rows, p.n);
    let path = format!("/v2/{name}/tags/list");
    let link = next_link(&path, &p, more, tags.last().map(String::as_str), "");
    Ok(json_response(
        serde_json::json!({ "name": name.as_str(), "tags": tags }),
        "application/json",
        link,
    ))
}

/// `GET /v2/<name>/referrers/<digest>?artifactType=`: always an image index,
/// empty for subjects (or repositories) with no referrers.
pub async fn referrers(state: &AppState, name: &RepoName, digest: &str, req: Request) -> ApiResult {
    let subject = blob_digest(digest)?;
    let q = query_pairs(req.uri().query());
    let p = page(&q, state.limits.max_page)?;
    let artifact_type = query_get(&q, "artifactType").filter(|s| !s.is_empty());
    // Stored artifact types are all valid media types, so a filter that is
    // not one matches nothing (and must not reach the database as is).
    let rows = if artifact_type.is_some_and(|t| !media_type::is_valid(t)) {
        Vec::new()
    } else {
        state
            .meta
            .referrers(
                name.as_str(),
                &subject,
                artifact_type,
                p.last.as_deref(),
                p.n + 1,
            )
            .await?
    };
    let (rows, more) = split_next(rows, p.n);
    let manifests: Vec<_> = rows.iter().map(|r| r.descriptor()).collect();
    let path = format!("/v2/{name}/referrers/{subject}");
    let filter = artifact_type.map_or(String::new(), |t| format!("&artifactType={}", encode(t)));
    let last = rows.last().map(|r| r.digest.to_string());
    let link = next_link(&path, &p, more, last.as_deref(), &filter);
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": manifests,
    });
    let mut r = json_response(body, media_type::OCI_INDEX, link);
    if artifact_type.is_some() {
        r.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(r)
}
