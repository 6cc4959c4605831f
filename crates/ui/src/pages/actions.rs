//! The one action the UI offers: deleting a tag (`POST
//! /ui/r/<name>/-/delete`), sent to the registry as the viewer (so the
//! registry's own grants and rules decide), from a form of our own pages
//! carrying the session's token.

use super::Target;
use crate::form::{self, Form};
use crate::respond;
use crate::view;
use crate::{Page, UiState};
use axum::extract::{Request, State};
use http::{Method, StatusCode};
use pavilion_oci::Reference;

/// The handler.
pub async fn act(State(ui): UiState, req: Request) -> Page {
    let (parts, body) = req.into_parts();
    let rest = parts
        .uri
        .path()
        .strip_prefix("/ui/r/")
        .unwrap_or_default()
        .to_string();
    let viewer = crate::viewer_of(&ui, parts.clone());
    let name = match super::target(&rest) {
        Ok(Target::Action(name, "delete")) => name,
        Ok(_) => {
            return respond::error(
                &ui,
                &viewer,
                StatusCode::METHOD_NOT_ALLOWED,
                "that page takes no form",
            )
        }
        Err(why) => return respond::error(&ui, &viewer, StatusCode::NOT_FOUND, &why),
    };
    let form = match Form::read(body).await {
        Ok(f) => f,
        Err(why) => return respond::error(&ui, &viewer, StatusCode::BAD_REQUEST, &why),
    };
    if let Err(why) = form::may_act(&ui, &parts.headers, &form) {
        return respond::error(&ui, &viewer, StatusCode::FORBIDDEN, why);
    }
    let reference = match form.get("reference").map(Reference::parse) {
        Some(Ok(r)) => r.to_string(),
        _ => {
            return respond::error(
                &ui,
                &viewer,
                StatusCode::BAD_REQUEST,
                "the form names no tag or digest to delete",
            )
        }
    };
    let path = format!(
        "/v2/{}/manifests/{}",
        view::path_part(&name),
        view::path_part(&reference)
    );
    let resp = ui.api.send(&viewer, Method::DELETE, &path, &[]).await;
    if resp.status().is_success() {
        return respond::redirect(&format!("/ui/r/{}", view::path_part(&name)));
    }
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 64 << 10)
        .await
        .unwrap_or_default();
    let f = crate::api::failure(status, &body);
    respond::failure(&ui, &viewer, &f)
}
