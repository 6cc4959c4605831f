//! Blob uploads: `POST`, `PATCH`, `PUT`, `GET` and `DELETE` on
//! `/v2/<name>/blobs/uploads/...`, plus cross-repository mounts.

use crate::blobs::blob_digest;
use crate::body::{self, header_str};
use crate::error::{upload_range, ApiError, ApiResult};
use crate::query::{query_get, query_pairs};
use crate::state::AppState;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use pavilion_oci::{Digest, ErrorCode, RepoName};
use pavilion_store::StoreError;
use tracing::Instrument;

fn upload_location(name: &RepoName, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn blob_location(name: &RepoName, d: &Digest) -> String {
    format!("/v2/{name}/blobs/{d}")
}

/// 201 for a blob now present in `name`.
fn created(name: &RepoName, d: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, blob_location(name, d)),
            (
                header::HeaderName::from_static("docker-content-digest"),
                d.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response()
}

/// 202/204 describing a session holding `len` bytes.
fn session_response(
    state: &AppState,
    status: StatusCode,
    name: &RepoName,
    id: &str,
    len: u64,
) -> Response {
    let mut r = (
        status,
        [
            (header::LOCATION, upload_location(name, id)),
            (header::RANGE, upload_range(len)),
            (
                header::HeaderName::from_static("docker-upload-uuid"),
                id.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response();
    if state.limits.chunk_min_length > 0 {
        r.headers_mut().insert(
            header::HeaderName::from_static("oci-chunk-min-length"),
            state.limits.chunk_min_length.into(),
        );
    }
    r
}

async fn new_session(state: &AppState, name: &RepoName) -> ApiResult<String> {
    // Every session is a database row and a file (or objects) that stay
    // until finished, cancelled or expired: without a cap, POSTs alone fill
    // the metadata and the inodes. Concurrent POSTs may overshoot by the
    // few that check at the same moment; the bound still holds. The
    // per-repository cap keeps a flood into one repository from taking
    // every place (sessions that receive nothing also expire early, see
    // `server::expire_uploads`).
    let cap = state.limits.max_upload_sessions;
    let repo_cap = state.limits.max_upload_sessions_per_repository;
    let (open, in_repo) = state.meta.count_uploads(name.as_str()).await?;
    if open >= cap {
        return Err(ApiError::new(
            ErrorCode::TooManyRequests,
            format!("{cap} upload sessions are open, the most this registry allows (max_upload_sessions): finish or cancel one, or retry later"),
        ));
    }
    if in_repo >= repo_cap {
        return Err(ApiError::new(
            ErrorCode::TooManyRequests,
            format!("{repo_cap} upload sessions are open in {name}, the most one repository may have (max_upload_sessions_per_repository): finish or cancel one, or retry later"),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    state.meta.create_upload(&id, name.as_str()).await?;
    if let Err(e) = state.blobs.upload_create(&id).await {
        let _ = state.meta.delete_upload(&id).await;
        return Err(e.into());
    }
    Ok(id)
}

/// Ends a session in both stores, ignoring what is already gone.
async fn end_session(state: &AppState, id: &str) {
    if let Err(e) = state.blobs.upload_abort(id).await {
        tracing::warn!(upload = id, error = %e, "could not remove upload bytes");
    }
    if let Err(e) = state.meta.delete_upload(id).await {
        tracing::warn!(upload = id, error = %e, "could not remove upload record");
    }
}

/// Checks that `id` is a live session of repository `name`.
async fn session(state: &AppState, name: &RepoName, id: &str) -> ApiResult<()> {
    let unknown = || {
        ApiError::new(
            ErrorCode::BlobUploadUnknown,
            format!("no upload session {id:?} in {name}"),
        )
    };
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(unknown());
    }
    match state.meta.upload_repo(id).await? {
        Some(r) if r == name.as_str() => Ok(()),
        _ => Err(unknown()),
    }
}

/// A `Content-Range` of an upload chunk: `<start>-<end>`, inclusive. The
/// `bytes ` / `bytes=` prefixes and a `/<total>` suffix some clients send are
/// tolerated.
fn parse_content_range(v: &str) -> Result<(u64, u64), ApiError> {
    let bad = || {
        ApiError::new(
            ErrorCode::BlobUploadInvalid,
            format!("malformed Content-Range {v:?}: expected <start>-<end>"),
        )
    };
    let s = v.trim();
    let s = s
        .strip_prefix("bytes=")
        .or_else(|| s.strip_prefix("bytes "))
        .unwrap_or(s);
    let s = s.split_once('/').map_or(s, |(r, _)| r);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok((a, b))
}

fn content_length(req: &Request) -> ApiResult<Option<u64>> {
    match header_str(req.headers(), header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            ApiError::new(
                ErrorCode::SizeInvalid,
                format!("malformed Content-Length {v:?}"),
            )
        }),
    }
}

/// Appends the request body to session `id` of `name`, honouring
/// `Content-Range`. Returns the session's new length.
async fn append(state: &AppState, name: &RepoName, id: &str, req: Request) -> ApiResult<u64> {
    let cl = content_length(&req)?;
    let range = header_str(req.headers(), header::CONTENT_RANGE)
        .map(parse_content_range)
        .transpose()?;
    let (offset, declared) = match range {
        Some((start, end)) => {
            // parse_content_range guarantees end >= start; only u64::MAX can overflow.
            let n = (end - start).checked_add(1).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::BlobUploadInvalid,
                    "Content-Range end out of range",
                )
            })?;
            if let Some(cl) = cl.filter(|&cl| cl != n) {
                return Err(ApiError::new(
                    ErrorCode::SizeInvalid,
                    format!("Content-Range covers {n} bytes but Content-Length is {cl}"),
                ));
            }
            (start, Some(n))
        }
        None => {
            let len = state
                .blobs
                .upload_len(id)
                .await?
                .ok_or_else(|| StoreError::UploadNotFound(id.to_string()))?;
            (len, cl)
        }
    };
    // Refused before a byte is read: the session keeps what it had.
    crate::quota::check_append(state, name, id, declared).await?;
    // A request that declares no bytes is no activity: a session that only
    // ever sees those still counts as empty and expires early. Any other
    // body counts from its start, so a long first chunk still streaming in
    // is never expired as empty.
    let carries_bytes = declared != Some(0);
    if carries_bytes {
        state.meta.touch_upload(id).await?;
    }
    let stream = body::stream(req, state.limits.body_idle_timeout, state.shutdown.clone());
    let uploading = carries_bytes.then(|| state.metrics.uploading());
    let appended = state
        .blobs
        .upload_append(id, offset, declared, stream)
        .await;
    drop(uploading);
    // Any bytes kept (even from a body cut short) count as activity.
    if carries_bytes {
        state.meta.touch_upload(id).await?;
    }
    Ok(appended?)
}

/// Verifies and links the session's bytes as `digest`; ends the session.
async fn finish(state: &AppState, name: &RepoName, id: &str, digest: &Digest) -> ApiResult {
    // Claimed before the commit, which keeps an existing copy of the same
    // digest instead of this session's: from here garbage collection
    // leaves that copy alone (or, deleting it right now, makes this
    // request fail with the session intact, so a retry succeeds).
    let len = state
        .blobs
        .upload_len(id)
        .await?
        .ok_or_else(|| StoreError::UploadNotFound(id.to_string()))?;
    crate::quota::check_finish(state, name, digest, len).await?;
    state.meta.claim_blob(digest, len, false).await?;
    // Traced: on object storage this is where the parts are assembled.
    let commit =
        tracing::info_span!(target: "pavilion::otel", "store.commit", pavilion.bytes = len);
    let size = match state
        .blobs
        .upload_commit(id, digest)
        .instrument(commit)
        .await
    {
        Ok(size) => size,
        Err(e) => {
            // On a mismatch the store has already discarded the bytes.
            if matches!(e, StoreError::DigestMismatch { .. }) {
                let _ = state.meta.delete_upload(id).await;
            }
            // The claim made a row for bytes that never came: gone now,
            // or wrong digests sent in a loop would grow the table until
            // garbage collection's grace period ran out.
            let _ = state.meta.release_claim(digest).await;
            return Err(e.into());
        }
    };
    state.meta.link_blob(name.as_str(), digest, size).await?;
    state.meta.delete_upload(id).await?;
    Ok(created(name, digest))
}

/// `POST /v2/<name>/blobs/uploads/`: opens a session, uploads a whole blob
/// (`?digest=`), or mounts one from another repository (`?mount=&from=`, or
/// `?mount=` alone: from any repository holding it).
pub async fn start(state: &AppState, name: &RepoName, req: Request) -> ApiResult {
    let q = query_pairs(req.uri().query());
    if let Some(mount) = query_get(&q, "mount") {
        if let Some(digest) = mountable(state, mount, query_get(&q, "from")).await? {
            crate::quota::check_mount(state, name, &digest).await?;
            // Claimed and linked in one step; a blob garbage collection
            // took meanwhile is uploaded instead.
            if state
                .meta
                .mount_blob(name.as_str(), &digest)
                .await?
                .is_some()
            {
                return Ok(created(name, &digest));
            }
        }
        // Cannot mount (unknown blob, no or invalid source): the spec asks
        // for an ordinary upload session instead.
        let id = new_session(state, name).await?;
        return Ok(session_response(state, StatusCode::ACCEPTED, name, &id, 0));
    }
    if let Some(d) = query_get(&q, "digest") {
        let digest = blob_digest(d)?;
        let id = new_session(state, name).await?;
        let result = async {
            append(state, name, &id, req).await?;
            finish(state, name, &id, &digest).await
        }
        .await;
        if result.is_err() {
            end_session(state, &id).await;
        }
        return result;
    }
    let id = new_session(state, name).await?;
    Ok(session_response(state, StatusCode::ACCEPTED, name, &id, 0))
}

/// The digest to mount, if `mount` names a blob whose bytes are present and
/// that repository `from` holds; without `from` (the spec's automatic
/// cross-mount), that any repository holds. A `from` that is given but does
/// not hold it mounts nothing: the client asked for that source.
///
/// Mounting links a blob the client never uploaded, so the source must be
/// one the client may read. Every repository is readable by every client
/// today (the registry has no identities); once it has them, the sources
/// here must be filtered by the caller's read access.
async fn mountable(state: &AppState, mount: &str, from: Option<&str>) -> ApiResult<Option<Digest>> {
    let Ok(digest) = mount.parse::<Digest>() else {
        return Ok(None);
    };
    let held = match from {
        Some(from) => match RepoName::new(from) {
            Ok(from) => state
                .meta
                .blob_in_repo(from.as_str(), &digest)
                .await?
                .is_some(),
            Err(_) => false,
        },
        None => !state.meta.repos_with_blob(&digest, 1).await?.is_empty(),
    };
    if !held || state.blobs.stat(&digest).await?.is_none() {
        return Ok(None);
    }
    Ok(Some(digest))
}

/// `GET` of a session: how many bytes it holds.
pub async fn status(state: &AppState, name: &RepoName, id: &str) -> ApiResult {
    session(state, name, id).await?;
    let len = state
        .blobs
        .upload_settled_len(id)
        .await?
        .ok_or_else(|| StoreError::UploadNotFound(id.to_string()))?;
    Ok(session_response(
        state,
        StatusCode::NO_CONTENT,
        name,
        id,
        len,
    ))
}

/// `PATCH`: appends a chunk (with `Content-Range`) or a stream (without).
pub async fn patch(state: &AppState, name: &RepoName, id: &str, req: Request) -> ApiResult {
    session(state, name, id).await?;
    let len = append(state, name, id, req)
        .await
        .map_err(|e| with_location(e, name, id))?;
    Ok(session_response(state, StatusCode::ACCEPTED, name, id, len))
}

/// A 416 tells the client where to resume: add the session's Location.
fn with_location(e: ApiError, name: &RepoName, id: &str) -> ApiError {
    if e.status == Some(StatusCode::RANGE_NOT_SATISFIABLE) {
        e.with_header(header::LOCATION, upload_location(name, id))
    } else {
        e
    }
}

/// `PUT ?digest=`: the optional last chunk, then verification and commit.
pub async fn put(state: &AppState, name: &RepoName, id: &str, req: Request) -> ApiResult {
    session(state, name, id).await?;
    let q = query_pairs(req.uri().query());
    let digest = match query_get(&q, "digest") {
        Some(d) => blob_digest(d)?,
        None => {
            return Err(ApiError::new(
                ErrorCode::DigestInvalid,
                "PUT to an upload session needs the blob's ?digest=",
            ))
        }
    };
    let has_body = content_length(&req)? != Some(0);
    if has_body {
        append(state, name, id, req)
            .await
            .map_err(|e| with_location(e, name, id))?;
    }
    finish(state, name, id, &digest).await
}

/// `DELETE`: cancels a session.
pub async fn cancel(state: &AppState, name: &RepoName, id: &str) -> ApiResult {
    session(state, name, id).await?;
    end_session(state, id).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-21").unwrap(), (0, 21));
        assert_eq!(parse_content_range("bytes 5-9/100").unwrap(), (5, 9));
        assert_eq!(parse_content_range("bytes=5-9").unwrap(), (5, 9));
        for bad in ["", "5", "9-5", "a-b", "-5", "5-"] {
            assert!(parse_content_range(bad).is_err(), "{bad}");
        }
    }
}
