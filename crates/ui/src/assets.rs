//! The stylesheet and the script, compiled into the binary.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};

const CSS: &str = include_str!("../static/app.css");
const JS: &str = include_str!("../static/app.js");

/// `GET /ui/static/<file>`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            // An hour: a new binary's assets reach browsers soon enough,
            // and nothing private is in them.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
