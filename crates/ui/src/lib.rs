//! Pavilion's web UI, served at `/ui/` by `pavilion serve`.
//!
//! Server-rendered HTML from askama templates (escaped by default), one
//! small stylesheet and one small script, all compiled into the binary: no
//! node, no JavaScript build. Pages work without the script; it adds copy
//! buttons and the live page's updates.
//!
//! Every piece of data comes from the registry's own HTTP API, called
//! in-process as the viewer ([`api`]), so the UI shows only what the
//! viewer may see, holds no state of its own and works behind any number
//! of replicas. See docs/ARCHITECTURE.md, "Web UI".

pub mod api;
mod assets;
mod chrome;
mod form;
mod markdown;
mod pages;
mod respond;
mod safetensors;
pub mod session;
mod view;

use api::{Api, Viewer};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::HeaderValue;
use std::sync::Arc;
use std::time::Duration;

/// How the UI is set up.
pub struct UiConfig {
    /// The registry API to read through.
    pub api: Api,
    /// The secret sessions are sealed and form tokens made under (the
    /// same on every replica).
    pub secret: Vec<u8>,
    /// Whether the registry authenticates (the UI then offers sign-in).
    pub auth: bool,
    /// How long a session lasts.
    pub session_lifetime: Duration,
    /// Whether the UI is served over TLS (cookies are then `Secure`).
    pub tls: bool,
}

/// What every handler shares.
pub(crate) struct Ui {
    pub api: Api,
    pub keys: session::Keys,
    pub auth: bool,
    pub tls: bool,
}

/// The UI's routes, all under `/ui`.
pub fn router(cfg: UiConfig) -> Router {
    let ui = Arc::new(Ui {
        api: cfg.api,
        keys: session::Keys::new(&cfg.secret, cfg.session_lifetime),
        auth: cfg.auth,
        tls: cfg.tls,
    });
    Router::new()
        .route("/ui", get(respond::to_root))
        .route("/ui/", get(pages::repos::page))
        .route(
            "/ui/r/{*rest}",
            get(pages::repository).post(pages::actions::act),
        )
        .route("/ui/storage", get(pages::storage::page))
        .route("/ui/live", get(pages::live::page))
        .route("/ui/live/events", get(pages::live::events))
        .route("/ui/live/transfers", get(pages::live::transfers))
        .route(
            "/ui/login",
            get(pages::login::form).post(pages::login::submit),
        )
        .route("/ui/logout", post(pages::login::logout))
        .route("/ui/static/{file}", get(assets::asset))
        .route("/ui/{*rest}", get(respond::not_found))
        .layer(axum::middleware::from_fn(respond::security_headers))
        .with_state(ui)
}

/// The viewer of `req`: their own `Authorization` header if they sent one
/// (a script, or a browser's Basic prompt), else their session's
/// credential, else nobody.
pub(crate) fn viewer(ui: &Ui, req: Request) -> Viewer {
    let (parts, _) = req.into_parts();
    viewer_of(ui, parts)
}

pub(crate) fn viewer_of(ui: &Ui, parts: http::request::Parts) -> Viewer {
    if let Some(a) = parts.headers.get(http::header::AUTHORIZATION).cloned() {
        return Viewer::new(parts, Some(a), false);
    }
    let sealed = session::cookie_value(&parts.headers)
        .and_then(|c| ui.keys.open(&c))
        .and_then(|c| HeaderValue::from_str(&c).ok());
    let session = sealed.is_some();
    Viewer::new(parts, sealed, session)
}

/// The shared state handlers receive.
pub(crate) type UiState = State<Arc<Ui>>;

/// A finished page or a redirect.
pub(crate) type Page = Response;
