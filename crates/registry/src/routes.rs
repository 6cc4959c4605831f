//! Parsing `/v2/...` paths. Repository names contain slashes, so routes are
//! recognised from the end of the path rather than with a router pattern.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::{blobs, listing, manifests, uploads};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{header, HeaderValue, Method, StatusCode};
use pavilion_oci::percent::decode as percent_decode;
use pavilion_oci::{ErrorCode, RepoName};
use std::sync::Arc;
use std::time::Duration;

/// An endpoint of the distribution API, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(String),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(String, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(String, String),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(String),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(String, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(String, String),
}

impl Route {
    /// Recognises a request path; `None` if it is not an API path.
    pub fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/v2")?;
        if rest.is_empty() || rest == "/" {
            return Some(Route::Base);
        }
        let rest = rest.strip_prefix('/')?;
        // Every request is parsed: a path without escapes (nearly all) is
        // split in place rather than copied segment by segment.
        let owned;
        let segs: Vec<&str> = if rest.contains('%') {
            owned = segments(rest)?;
            owned.iter().map(String::as_str).collect()
        } else {
            rest.split('/').collect()
        };
        if segs == ["_catalog"] {
            return Some(Route::Catalog);
        }
        let n = segs.len();
        let name = |upto: usize| segs[..upto].join("/");
        if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
            return Some(Route::Tags(name(n - 2)));
        }
        if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
            return Some(Route::UploadStart(name(n - 2)));
        }
        if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
            if segs[n - 1].is_empty() {
                return Some(Route::UploadStart(name(n - 3)));
            }
            return Some(Route::Upload(name(n - 3), segs[n - 1].to_string()));
        }
        if n >= 3 {
            let last = segs[n - 1].to_string();
            match segs[n - 2] {
                "manifests" => return Some(Route::Manifest(name(n - 2), last)),
                "blobs" => return Some(Route::Blob(name(n - 2), last)),
                "referrers" => return Some(Route::Referrers(name(n - 2), last)),
                _ => {}
            }
        }
        None
    }
}

/// The segments of `path` (after a route's prefix, without the leading
/// `/`), split first and then each percent-decoded: an escaped `/` (`%2F`)
/// must not become a path separator. It stays escaped inside its segment,
/// so [`repo`] refuses a name holding one instead of serving another
/// repository. `None` when a segment is not valid percent-encoding.
pub fn segments(path: &str) -> Option<Vec<String>> {
    path.split('/')
        .map(|seg| Some(percent_decode(seg)?.replace('/', "%2F")))
        .collect()
}

/// Validates the `<name>` of a route.
pub fn repo(name: &str) -> ApiResult<RepoName> {
    if name.contains("%2F") {
        return Err(ApiError::new(
            ErrorCode::NameInvalid,
            format!("repository name {name:?} contains an escaped '/' (%2F): separate its components with a plain '/'"),
        ));
    }
    Ok(RepoName::new(name)?)
}

impl Route {
    /// Methods this endpoint answers, for the `Allow` header of a 405.
    pub fn allowed(&self) -> &'static str {
        match self {
            Route::Base => "GET, HEAD",
            Route::Catalog | Route::Tags(_) | Route::Referrers(..) => "GET",
            Route::Manifest(..) => "GET, HEAD, PUT, DELETE",
            Route::Blob(..) => "GET, HEAD, DELETE",
            Route::UploadStart(_) => "POST",
            Route::Upload(..) => "GET, PATCH, PUT, DELETE",
        }
    }

    /// Whether this endpoint answers `method` (the list in [`Route::allowed`]:
    /// one table for both the dispatch and the `Allow` header).
    pub fn allows(&self, method: &Method) -> bool {
        self.allowed().split(", ").any(|m| m == method.as_str())
    }
}

fn not_allowed(method: &Method, route: &Route) -> ApiError {
    ApiError::new(
        ErrorCode::Unsupported,
        format!("method {method} is not allowed on this endpoint"),
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
    .with_header(header::ALLOW, route.allowed().to_string())
}

/// Most a request body is read and discarded after its handler answered
/// without consuming it, so that the connection stays usable.
const DRAIN_LIMIT: u64 = 64 << 20;
/// Longest wait for the rest of such a body.
const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// The single entry point for every request.
///
/// The body is shared between the handler and this function: a handler that
/// answers early (416 for an out-of-order chunk, 404 for an unknown session)
/// leaves body bytes unread, and closing a connection with unread bytes makes
/// TCP reset it, which can destroy the answer itself. So the remainder is
/// drained here, up to a limit; past it the connection is closed explicitly.
pub async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let shared = Arc::new(tokio::sync::Mutex::new(body.into_data_stream()));
    let reader = shared.clone();
    let stream = futures::stream::unfold(reader, |reader| async move {
        let item = reader.lock().await.next().await;
        item.map(|i| (i, reader))
    });
    let req = Request::from_parts(parts, Body::from_stream(stream));
    let origin = crate::feed::origin(&req);
    let resp = crate::feed::with_origin(origin, route(&state, req)).await;
    let mut body = shared.lock().await;
    drain_before(&mut *body, resp).await
}

/// `resp`, once what is left of a request `body` is read and dropped (up to
/// 64 MiB, each piece within a short idle limit); past that, or on a stall,
/// the response closes the connection explicitly. For every handler that
/// may answer before reading the whole body: the registry's dispatcher and
/// the routes mounted beside it.
pub async fn drain_before<S, E>(body: &mut S, mut resp: Response) -> Response
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
{
    let mut drained = 0u64;
    let clean = loop {
        match tokio::time::timeout(DRAIN_IDLE, body.next()).await {
            Ok(None) => break true,
            Ok(Some(Ok(chunk))) => {
                drained += chunk.len() as u64;
                if drained > DRAIN_LIMIT {
                    break false;
                }
            }
            Ok(Some(Err(_))) | Err(_) => break false,
        }
    };
    if !clean {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

async fn route(state: &AppState, req: Request) -> Response {
    let parsed = match req.extensions().get::<crate::metrics::layer::Parsed>() {
        Some(p) => p.0.as_ref().clone(),
        None => Route::parse(req.uri().path()),
    };
    let route = match parsed {
        Some(r) => r,
        None => {
            return ApiError::new(
                ErrorCode::NameUnknown,
                format!("no API endpoint at {}", req.uri().path()),
            )
            .into_response()
        }
    };
    let method = req.method().clone();
    handle(state, route, &method, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Answers `route`: a method the endpoint does not have is 405 (before the
/// name is looked at); then the repository name is validated once, here,
/// and handlers receive it typed.
///
/// Each handler's future is boxed: inline, this function's future was as
/// large as the largest of them (a manifest PUT's, with the policy gate
/// and signature checks: 11.6 KB for the dispatcher's), and it is moved
/// several times through the middleware on every request, a cached
/// manifest GET's included (callgrind: ~13,000 instructions of memcpy per
/// request). One small allocation is cheaper.
async fn handle(state: &AppState, route: Route, method: &Method, req: Request) -> ApiResult {
    if !route.allows(method) {
        return Err(not_allowed(method, &route));
    }
    let get = method == Method::GET;
    match route {
        Route::Base => Ok(base()),
        Route::Catalog => Box::pin(listing::catalog(state, req)).await,
        Route::Tags(n) => Box::pin(listing::tags(state, &repo(&n)?, req)).await,
        Route::Referrers(n, d) => Box::pin(listing::referrers(state, &repo(&n)?, &d, req)).await,
        Route::Manifest(n, r) => {
            let n = repo(&n)?;
            match *method {
                Method::PUT => Box::pin(manifests::put(state, &n, &r, req)).await,
                Method::DELETE => {
                    let origin = crate::feed::origin(&req);
                    Box::pin(manifests::delete(state, &n, &r, &origin)).await
                }
                _ => {
                    let identity = crate::caller::caller(&req);
                    // The web UI's views are authorized like any read (the
                    // guard ran) but are not pulls: the pull rules decide
                    // what may be consumed, and a page explaining why a
                    // pull is denied must be able to show the artifact.
                    let view = req
                        .extensions()
                        .get::<crate::ui_mount::InProcess>()
                        .is_some();
                    Box::pin(manifests::get(
                        state,
                        &n,
                        &r,
                        !get,
                        identity.as_deref(),
                        view,
                    ))
                    .await
                }
            }
        }
        Route::Blob(n, d) => {
            let n = repo(&n)?;
            match *method {
                Method::DELETE => Box::pin(blobs::delete(state, &n, &d)).await,
                _ => Box::pin(blobs::get(state, &n, &d, req, !get)).await,
            }
        }
        Route::UploadStart(n) => Box::pin(uploads::start(state, &repo(&n)?, req)).await,
        Route::Upload(n, id) => {
            let n = repo(&n)?;
            match *method {
                Method::GET => Box::pin(uploads::status(state, &n, &id)).await,
                Method::PATCH => Box::pin(uploads::patch(state, &n, &id, req)).await,
                Method::PUT => Box::pin(uploads::put(state, &n, &id, req)).await,
                _ => Box::pin(uploads::cancel(state, &n, &id)).await,
            }
        }
    }
}

/// `GET /v2/`: Docker-era clients look for the API version header here.
fn base() -> Response {
    let mut r = Response::new(Body::from("{}"));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::Route::{self, *};

    fn p(s: &str) -> Option<Route> {
        Route::parse(s)
    }

    #[test]
    fn parses_routes() {
        assert_eq!(p("/v2/"), Some(Base));
        assert_eq!(p("/v2"), Some(Base));
        assert_eq!(p("/v2/_catalog"), Some(Catalog));
        assert_eq!(p("/v2/a/b/tags/list"), Some(Tags("a/b".into())));
        assert_eq!(
            p("/v2/a/manifests/latest"),
            Some(Manifest("a".into(), "latest".into()))
        );
        assert_eq!(p("/v2/a/blobs/uploads/"), Some(UploadStart("a".into())));
        assert_eq!(p("/v2/a/blobs/uploads"), Some(UploadStart("a".into())));
        assert_eq!(
            p("/v2/a/blobs/uploads/xyz"),
            Some(Upload("a".into(), "xyz".into()))
        );
        assert_eq!(
            p("/v2/a/blobs/sha256%3Aab"),
            Some(Blob("a".into(), "sha256:ab".into()))
        );
        assert_eq!(
            p("/v2/blobs/blobs/x"),
            Some(Blob("blobs".into(), "x".into()))
        );
        assert_eq!(
            p("/v2/a/referrers/sha256:1"),
            Some(Referrers("a".into(), "sha256:1".into()))
        );
        assert_eq!(p("/v2/a"), None);
        assert_eq!(p("/other"), None);
        assert_eq!(p("/v2/a/%zz/manifests/x"), None);
        // An escaped '/' never separates components: it stays in the name
        // (and `repo` refuses it), or in the reference.
        assert_eq!(
            p("/v2/a%2Fb/manifests/x"),
            Some(Manifest("a%2Fb".into(), "x".into()))
        );
        assert_eq!(p("/v2/a%2fb/tags/list"), Some(Tags("a%2Fb".into())));
        assert_eq!(p("/v2/a/manifests%2Fx"), None);
        assert!(super::repo("a%2Fb").is_err());
    }
}
