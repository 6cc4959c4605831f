//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use pavilion_oci::{Digest, ErrorCode, RepoName};
use pavilion_store::ByteRange;

/// What a `Range: bytes=...` header asks for, resolved against a size.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: serve everything.
    Whole,
    /// One satisfiable range.
    Part(ByteRange),
    /// A range that cannot be served (416).
    Unsatisfiable,
}

/// Parses a single `bytes=` range (RFC 9110). Multiple ranges and other
/// units are ignored, which the RFC allows, and answered with the whole blob.
pub fn parse_range(value: Option<&str>, size: u64) -> RangeRequest {
    let Some(v) = value else {
        return RangeRequest::Whole;
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    let range = match (a.is_empty(), b.is_empty()) {
        (false, true) => num(a).map(|s| (s, size)),
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if e >= s => Some((s, e.saturating_add(1).min(size))),
            _ => None,
        },
        (true, false) => num(b)
            .filter(|&n| n > 0)
            .map(|n| (size.saturating_sub(n), size)),
        (true, true) => None,
    };
    match range {
        Some((s, e)) if s < size && s < e => RangeRequest::Part(ByteRange { start: s, end: e }),
        _ => RangeRequest::Unsatisfiable,
    }
}

/// Size of `digest` as served from `name`: a blob linked to the repository
/// or one of its manifests (Distribution serves manifests as blobs too). A
/// manifest fetched this way passes the same pull rules as through
/// `/manifests/`: the blob route must not be a way around them.
async fn size_in_repo(
    state: &AppState,
    name: &RepoName,
    digest: &Digest,
    identity: Option<&str>,
) -> ApiResult<u64> {
    if let Some(size) = state.meta.blob_in_repo(name.as_str(), digest).await? {
        return Ok(size);
    }
    if let Some(m) = state.meta.manifest_by_digest(name.as_str(), digest).await? {
        if state.gate.as_ref().is_some_and(|g| g.decides_pulls()) {
            let body = match state.cached_manifest(digest) {
                Some(b) => b,
                None => state.blobs.read_all(digest).await?,
            };
            let reference = digest.to_string();
            crate::gate::check_pull(
                state,
                name,
                &reference,
                digest,
                &m.media_type,
                &body,
                identity,
            )
            .await?;
        }
        return Ok(m.size);
    }
    Err(ApiError::new(
        ErrorCode::BlobUnknown,
        format!("blob {digest} is not in repository {name}"),
    ))
}

/// Parses the `<digest>` of a blob URL.
pub fn blob_digest(s: &str) -> ApiResult<Digest> {
    Ok(s.parse::<Digest>()?)
}

/// `GET` or `HEAD` of a blob, with `Range` support.
pub async fn get(
    state: &AppState,
    name: &RepoName,
    digest: &str,
    req: Request,
    head: bool,
) -> ApiResult {
    let digest = blob_digest(digest)?;
    let identity = crate::caller::caller(&req);
    let size = size_in_repo(state, name, &digest, identity.as_deref()).await?;
    // The bytes bypass the registry: the client fetches them (with its
    // Range header) from the storage service. HEAD never needs the bytes,
    // and the web UI's in-process reads cannot follow a redirect.
    let in_process = req
        .extensions()
        .get::<crate::ui_mount::InProcess>()
        .is_some();
    if let (false, false, Some(ttl)) = (head, in_process, state.limits.redirect_blobs) {
        if let Some(url) = state.blobs.presigned_get(&digest, ttl).await? {
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(header::LOCATION, url)
                .header("Docker-Content-Digest", digest.to_string())
                .header(header::CONTENT_LENGTH, 0)
                .body(Body::empty())
                .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()));
        }
    }
    let range_header = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let range = parse_range(range_header, size);
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{digest}\""));
    let (status, part) = match range {
        RangeRequest::Whole => (StatusCode::OK, None),
        RangeRequest::Part(r) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", r.start, r.end - 1, size),
            );
            (StatusCode::PARTIAL_CONTENT, Some(r))
        }
        RangeRequest::Unsatisfiable => {
            let mut r = (
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!(
                    "range {:?} not satisfiable for a blob of {size} bytes\n",
                    range_header.unwrap_or("")
                ),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let len = part.map_or(size, |r| r.end - r.start);
    builder = builder.status(status).header(header::CONTENT_LENGTH, len);
    let body = if head {
        Body::empty()
    } else {
        Body::from_stream(state.blobs.read(&digest, part).await?)
    };
    builder
        .body(body)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

/// `DELETE` of a blob: unlinks it from the repository. The bytes stay until
/// garbage collection, so a concurrent push of the same digest elsewhere can
/// never lose them.
pub async fn delete(state: &AppState, name: &RepoName, digest: &str) -> ApiResult {
    let digest = blob_digest(digest)?;
    if !state.meta.unlink_blob(name.as_str(), &digest).await? {
        return Err(ApiError::new(
            ErrorCode::BlobUnknown,
            format!("blob {digest} is not in repository {name}"),
        ));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(s: u64, e: u64) -> RangeRequest {
        RangeRequest::Part(ByteRange { start: s, end: e })
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=0-0"), 10), part(0, 1));
        assert_eq!(parse_range(Some("bytes=2-"), 10), part(2, 10));
        assert_eq!(parse_range(Some("bytes=-3"), 10), part(7, 10));
        assert_eq!(parse_range(Some("bytes=-30"), 10), part(0, 10));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), part(5, 10));
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=5-1"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=x-1"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=-0"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), RangeRequest::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeRequest::Whole);
        assert_eq!(
            parse_range(Some("bytes=0-"), 0),
            RangeRequest::Unsatisfiable
        );
    }
}
