//! The registry's own HTTP API, called in-process with the viewer's
//! credentials.
//!
//! Every piece of data a page shows comes through here: the `/v2`
//! distribution API and `/pavilion/v1`, through the same router, guard and
//! handlers a remote client meets. So the guard authenticates and
//! authorizes each call as the viewer (the page shows only what they may
//! see), nothing is read around the rules, and the UI holds no state of its
//! own: any replica serves any page.

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tower::ServiceExt;

/// Copies what the connection proved (peer address, TLS client
/// certificate, a trusted proxy's forwarded certificate header) from the
/// viewer's request onto an in-process one. The registry supplies it: only
/// it knows those types, and copying everything would also copy what the
/// outer request's own route parsing left behind.
pub type Carry = Arc<dyn Fn(&http::request::Parts, &mut Request<Body>) + Send + Sync>;

/// The API router and how to carry a viewer onto it.
#[derive(Clone)]
pub struct Api {
    router: Router,
    carry: Carry,
}

/// Who is looking: their request's connection facts and the credential
/// the pages present for them (their own `Authorization` header, else the
/// one their session holds).
pub struct Viewer {
    parts: http::request::Parts,
    authorization: Option<HeaderValue>,
    /// Whether the credential came from a UI session (a sign-out link is
    /// shown) rather than the browser's own header.
    pub session: bool,
    /// The user name shown in the header, when known.
    pub name: Option<String>,
}

impl Viewer {
    /// A viewer from the parts of their request and the credential to use.
    pub fn new(
        parts: http::request::Parts,
        authorization: Option<HeaderValue>,
        session: bool,
    ) -> Viewer {
        let name = authorization.as_ref().and_then(basic_user);
        Viewer {
            parts,
            authorization,
            session,
            name,
        }
    }

    /// The viewer's request parts.
    pub fn parts(&self) -> &http::request::Parts {
        &self.parts
    }

    /// Whether any credential is presented.
    pub fn signed_in(&self) -> bool {
        self.authorization.is_some()
    }
}

/// The user of a Basic credential (for display only).
fn basic_user(v: &HeaderValue) -> Option<String> {
    use base64::Engine;
    let s = v.to_str().ok()?.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    let text = String::from_utf8(raw).ok()?;
    Some(text.split_once(':')?.0.to_string())
}

/// Why a call did not give what the page needs.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    /// The status the API answered (or 502 when its body was unusable).
    pub status: StatusCode,
    /// Its error code (`NAME_UNKNOWN`...), when it sent one.
    pub code: Option<String>,
    /// Its message, or what went wrong reading the answer.
    pub message: String,
}

impl ApiFailure {
    fn unusable(what: &str, why: impl std::fmt::Display) -> ApiFailure {
        ApiFailure {
            status: StatusCode::BAD_GATEWAY,
            code: None,
            message: format!("{what}: {why}"),
        }
    }
}

/// The answer of a call that succeeded.
pub struct Answer {
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its body (at most the limit asked for).
    pub body: Bytes,
}

impl Api {
    /// The API `router` (already bound to its state), carrying viewers
    /// with `carry`.
    pub fn new(router: Router, carry: Carry) -> Api {
        Api { router, carry }
    }

    /// Sends one request as `viewer` and answers the raw response.
    pub async fn send(
        &self,
        viewer: &Viewer,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, HeaderValue)],
    ) -> Response<Body> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("a request built from a path and method");
        (self.carry)(&viewer.parts, &mut req);
        if let Some(a) = &viewer.authorization {
            req.headers_mut().insert(header::AUTHORIZATION, a.clone());
        }
        for (k, v) in headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// GETs `path` and reads at most `limit` bytes of a successful answer;
    /// a failed one becomes an [`ApiFailure`] with the API's own message.
    pub async fn get(
        &self,
        viewer: &Viewer,
        path: &str,
        headers: &[(header::HeaderName, HeaderValue)],
        limit: usize,
    ) -> Result<Answer, ApiFailure> {
        let resp = self.send(viewer, Method::GET, path, headers).await;
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        // One byte past the limit tells an answer that is too large; an
        // error's message is short.
        let cap = if status.is_success() {
            limit.saturating_add(1)
        } else {
            64 << 10
        };
        let body = read_limited(body, cap).await;
        if !status.is_success() {
            return Err(failure(status, body.as_deref().unwrap_or_default()));
        }
        let body = body.map_err(|why| ApiFailure::unusable(path, why))?;
        if body.len() > limit {
            return Err(ApiFailure::unusable(
                path,
                format!("answer larger than {limit} bytes"),
            ));
        }
        Ok(Answer {
            headers: parts.headers,
            body,
        })
    }

    /// GETs `path` and parses the JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        viewer: &Viewer,
        path: &str,
        limit: usize,
    ) -> Result<T, ApiFailure> {
        let a = self.get(viewer, path, &[], limit).await?;
        serde_json::from_slice(&a.body).map_err(|e| ApiFailure::unusable(path, e))
    }
}

/// Reads at most `limit` bytes; more is an error (the rest is not read).
async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, String> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                out.extend_from_slice(&data[..limit - out.len()]);
                return Ok(out.freeze());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// The failure an error answer describes (the distribution spec's
/// `{"errors":[{"code","message"}]}`).
pub(crate) fn failure(status: StatusCode, body: &[u8]) -> ApiFailure {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
        detail: Option<serde_json::Value>,
    }
    let first = serde_json::from_slice::<Errors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next());
    // The detail says what exactly (which repository, which database);
    // the message is the code's generic sentence.
    let (code, message) = match first {
        Some(i) => {
            let detail = match i.detail {
                Some(serde_json::Value::String(d)) if !d.is_empty() => Some(d),
                _ => None,
            };
            (i.code, detail.or(i.message).unwrap_or_default())
        }
        None => (None, String::new()),
    };
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        message
    };
    ApiFailure {
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_the_api_message() {
        let f = failure(
            StatusCode::NOT_FOUND,
            br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository x not known"}]}"#,
        );
        assert_eq!(f.code.as_deref(), Some("NAME_UNKNOWN"));
        assert_eq!(f.message, "repository x not known");
        let f = failure(StatusCode::SERVICE_UNAVAILABLE, b"<html>");
        assert_eq!(f.message, "Service Unavailable");
    }

    #[test]
    fn basic_user_is_read_for_display() {
        let v = HeaderValue::from_static("Basic YWxpY2U6czNjcmV0");
        assert_eq!(basic_user(&v).as_deref(), Some("alice"));
        assert_eq!(basic_user(&HeaderValue::from_static("Bearer x")), None);
    }
}
