//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use crate::body::header_str;
use crate::error::{ApiError, ApiResult};
use crate::gate::{check_pull, check_push, warning_headers};
use crate::query::query_pairs;
use crate::resolve::{resolve, unknown};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{header, StatusCode};
use pavilion_oci::{Algorithm, Digest, ErrorCode, ManifestInfo, Reference, RepoName, Tag};
use pavilion_store::{ManifestRecord, NewManifest};

/// `GET` or `HEAD` of a manifest, byte-for-byte as pushed, once the pull
/// rules (when the policy has any) allow it; a `view` (the web UI reading
/// in-process) is not a pull and is not put to them.
pub async fn get(
    state: &AppState,
    name: &RepoName,
    reference: &str,
    head: bool,
    identity: Option<&str>,
    view: bool,
) -> ApiResult {
    let rec = resolve(state, name, reference).await?;
    let gated = !view && state.gate.as_ref().is_some_and(|g| g.decides_pulls());
    let bytes = if head && !gated {
        None
    } else {
        Some(match state.cached_manifest(&rec.digest) {
            Some(b) => b,
            None => {
                let b = state.blobs.read_all(&rec.digest).await?;
                state.cache_manifest(&rec.digest, b.clone());
                b
            }
        })
    };
    let warnings = match &bytes {
        Some(b) if gated => {
            check_pull(
                state,
                name,
                reference,
                &rec.digest,
                &rec.media_type,
                b,
                identity,
            )
            .await?
        }
        _ => Vec::new(),
    };
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, &rec.media_type)
        .header(header::CONTENT_LENGTH, rec.size)
        .header("Docker-Content-Digest", rec.digest.to_string())
        .header(header::ETAG, format!("\"{}\"", rec.digest));
    for w in warning_headers(&warnings) {
        builder = builder.header(header::WARNING, w);
    }
    let body = match bytes {
        Some(b) if !head => Body::from(b),
        _ => Body::empty(),
    };
    builder
        .body(body)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

/// Reads a manifest body, refusing more than `limit` bytes.
async fn read_limited(req: Request, limit: usize) -> ApiResult<Bytes> {
    let too_big = || {
        ApiError::new(
            ErrorCode::SizeInvalid,
            format!("manifest larger than the {limit}-byte limit"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    if let Some(cl) =
        header_str(req.headers(), header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())
    {
        if cl > limit as u64 {
            return Err(too_big());
        }
    }
    let mut body = req.into_body().into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorCode::ManifestInvalid,
                format!("manifest body interrupted: {e}"),
            )
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_big());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Most distinct `?tag=` parameters one manifest PUT may carry: the spec
/// asks for at least 10 and allows 414 beyond a registry's limit.
pub const MAX_TAGS_PER_PUT: usize = 100;

/// The `?tag=` parameters of a manifest PUT, validated, without repeats.
fn tag_params(query: Option<&str>) -> ApiResult<Vec<Tag>> {
    let mut tags: Vec<Tag> = Vec::new();
    for (k, v) in query_pairs(query) {
        if k != "tag" {
            continue;
        }
        let t = Tag::new(&v)?;
        if !tags.contains(&t) {
            tags.push(t);
        }
        if tags.len() > MAX_TAGS_PER_PUT {
            return Err(ApiError::new(
                ErrorCode::TagInvalid,
                format!("more than {MAX_TAGS_PER_PUT} tags in one manifest PUT"),
            )
            .with_status(StatusCode::URI_TOO_LONG));
        }
    }
    Ok(tags)
}

/// `PUT` of a manifest by tag or digest (plus any `?tag=` parameters, each
/// answered with an `OCI-Tag` header once set).
pub async fn put(state: &AppState, name: &RepoName, reference: &str, req: Request) -> ApiResult {
    let reference = Reference::parse(reference)?;
    let mut tags = tag_params(req.uri().query())?;
    let content_type = header_str(req.headers(), header::CONTENT_TYPE).map(str::to_string);
    let identity = crate::caller::caller(&req);
    let caller = req.extensions().get::<crate::access::Caller>().cloned();
    let origin = crate::feed::origin(&req);
    let body = read_limited(req, state.limits.max_manifest_bytes).await?;
    let digest = match &reference {
        Reference::Digest(d) => {
            let actual = Digest::compute(d.algorithm(), &body);
            if &actual != d {
                return Err(ApiError::new(
                    ErrorCode::DigestInvalid,
                    format!("manifest body has digest {actual}, not {d}"),
                ));
            }
            actual
        }
        Reference::Tag(t) => {
            tags.retain(|x| x != t);
            tags.insert(0, t.clone());
            Digest::compute(Algorithm::Sha256, &body)
        }
    };
    let info = ManifestInfo::parse(&body, content_type.as_deref())
        .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
    check_references(state, name, &info).await?;
    let tag_names: Vec<String> = tags.iter().map(|t| t.as_str().to_string()).collect();
    crate::access::authorize_put(state, caller.as_ref(), name, &digest, &tag_names, &info).await?;
    crate::quota::check_manifest(state, name, &digest, body.len() as u64).await?;
    // Decided before anything is written: a denied push leaves no trace.
    let subject = crate::facts::Subject {
        repo: name,
        tags: &tag_names,
        digest: &digest,
        info: &info,
        body: &body,
        identity: identity.as_deref(),
    };
    let warnings = check_push(state, &subject).await?;

    // Claimed before they are written (or found already there), so that
    // garbage collection cannot take the bytes in between.
    state
        .meta
        .claim_blob(&digest, body.len() as u64, true)
        .await?;
    state.blobs.put(&digest, body.clone()).await?;
    let record = ManifestRecord {
        digest: digest.clone(),
        media_type: info.media_type.clone(),
        size: body.len() as u64,
        artifact_type: info.artifact_type.clone(),
        annotations: info
            .annotations
            .as_ref()
            .map(|a| serde_json::to_string(a).unwrap_or_default()),
    };
    let subject = info.subject.as_ref().map(|s| s.digest.clone());
    let tag_refs: Vec<&str> = tag_names.iter().map(String::as_str).collect();
    let held: Vec<Digest> = info
        .blobs
        .iter()
        .enumerate()
        .filter(|(i, _)| !info.external.get(*i).copied().unwrap_or(false))
        .map(|(_, d)| d.digest.clone())
        .collect();
    let children: Vec<Digest> = info.manifests.iter().map(|d| d.digest.clone()).collect();
    state
        .meta
        .put_manifest_as(
            &NewManifest {
                repo: name.as_str(),
                record,
                subject: subject.clone(),
                tags: &tag_refs,
                blobs: &held,
                manifests: &children,
            },
            &origin,
        )
        .await?;
    state.cache_manifest(&digest, body.clone());
    if let Some(gate) = &state.gate {
        crate::facts::record_verdict(state, gate, name, &digest, &info, &body).await;
    }

    let mut resp = (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response();
    if let Some(s) = subject {
        if let Ok(v) = s.to_string().parse() {
            resp.headers_mut().insert("oci-subject", v);
        }
    }
    for t in &tag_names {
        if let Ok(v) = t.parse() {
            resp.headers_mut().append("oci-tag", v);
        }
    }
    for w in warning_headers(&warnings) {
        resp.headers_mut().append(header::WARNING, w);
    }
    Ok(resp)
}

/// Every blob (config, layers) and, for an index, every manifest a manifest
/// points at must already be in the repository, with the size it claims.
/// The `subject` is exempt: referrers may arrive before their subject.
/// Non-distributable layers that carry `urls` are exempt too (the spec lets
/// a registry accept them): their bytes live at those URLs, never here.
async fn check_references(state: &AppState, name: &RepoName, info: &ManifestInfo) -> ApiResult<()> {
    for (i, d) in info.blobs.iter().enumerate() {
        let external = info.external.get(i).copied().unwrap_or(false);
        match state.meta.blob_in_repo(name.as_str(), &d.digest).await? {
            None if external => {}
            None => {
                return Err(ApiError::new(
                    ErrorCode::ManifestBlobUnknown,
                    format!(
                        "blob {} ({}) is not in repository {name}",
                        d.digest, d.media_type
                    ),
                ))
            }
            Some(size) if size != d.size => {
                return Err(ApiError::new(
                    ErrorCode::ManifestInvalid,
                    format!(
                        "descriptor of {} says {} bytes but the blob has {size}",
                        d.digest, d.size
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    for d in &info.manifests {
        match state
            .meta
            .manifest_by_digest(name.as_str(), &d.digest)
            .await?
        {
            None => {
                return Err(ApiError::new(
                    ErrorCode::ManifestBlobUnknown,
                    format!("manifest {} is not in repository {name}", d.digest),
                ))
            }
            Some(m) if m.size != d.size => {
                return Err(ApiError::new(
                    ErrorCode::ManifestInvalid,
                    format!(
                        "descriptor of {} says {} bytes but the manifest has {}",
                        d.digest, d.size, m.size
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `DELETE` by digest removes the manifest and its tags; by tag, the tag only.
/// The change writes its events on behalf of `origin`.
pub async fn delete(
    state: &AppState,
    name: &RepoName,
    reference: &str,
    origin: &pavilion_store::Origin,
) -> ApiResult {
    let meta = &state.meta;
    let deleted = match Reference::parse(reference) {
        Ok(Reference::Digest(d)) => meta.delete_manifest_as(name.as_str(), &d, origin).await?,
        Ok(Reference::Tag(t)) => {
            meta.delete_tag_as(name.as_str(), t.as_str(), origin)
                .await?
        }
        Err(_) => false,
    };
    if !deleted {
        return Err(unknown(name, reference));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
