//! Answers common to every page: security headers, error pages, redirects.

use crate::api::{ApiFailure, Viewer};
use crate::chrome::Chrome;
use crate::{Page, Ui, UiState};
use askama::Template;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

/// The Content-Security-Policy of every UI answer: our own script and
/// styles only, no inline script or style, nothing framed, forms posting
/// only to us. A README or annotation that slipped past escaping still
/// could not run.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every UI answer.
pub async fn security_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Pages hold what only this viewer may see: never cached. Static
    // assets set their own.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    status: u16,
    message: String,
}

/// An error page saying what went wrong in one line.
pub fn error(ui: &Ui, viewer: &Viewer, status: StatusCode, message: &str) -> Page {
    let page = ErrorPage {
        c: Chrome::new(ui, viewer, "Error", ""),
        status: status.as_u16(),
        message: crate::view::clip(message, 300),
    };
    html(status, page.render())
}

/// The page for a failed API call: a viewer who must sign in is sent to
/// the sign-in page (and back after); the rest get one line.
pub fn failure(ui: &Ui, viewer: &Viewer, f: &ApiFailure) -> Page {
    if f.status == StatusCode::UNAUTHORIZED && ui.auth && !viewer.signed_in() {
        let back = viewer
            .parts()
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/ui/");
        return redirect(&format!(
            "/ui/login?next={}",
            crate::view::query_value(back)
        ));
    }
    let message = match (f.status.as_u16(), f.code.as_deref()) {
        (401, _) => format!("sign-in required: {}", f.message),
        (403, _) => format!("not allowed: {}", f.message),
        (503, _) | (502, _) => format!("registry store unavailable: {}", f.message),
        (_, Some("NAME_UNKNOWN")) => format!("unknown repository: {}", f.message),
        (_, Some("MANIFEST_UNKNOWN")) => format!("unknown version: {}", f.message),
        _ => f.message.clone(),
    };
    let status = if f.status.is_client_error() || f.status.is_server_error() {
        f.status
    } else {
        StatusCode::BAD_GATEWAY
    };
    error(ui, viewer, status, &message)
}

/// A rendered template as an HTML answer (a template error is a 500 with
/// one line: it is our bug, not the viewer's).
pub fn html(status: StatusCode, rendered: askama::Result<String>) -> Page {
    match rendered {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a UI template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// A 303 to `to` (a path of ours).
pub fn redirect(to: &str) -> Page {
    let to = HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/ui/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// `/ui` without the slash.
pub async fn to_root() -> Page {
    redirect("/ui/")
}

/// An address under `/ui/` that is no page.
pub async fn not_found(axum::extract::State(ui): UiState, req: Request) -> Page {
    let path = crate::view::clip(req.uri().path(), 120);
    let viewer = crate::viewer(&ui, req);
    error(
        &ui,
        &viewer,
        StatusCode::NOT_FOUND,
        &format!("no page at {path}"),
    )
}
