//! Mounting the web UI (`pavilion-ui`) at `/ui/`: the in-process API it
//! reads through, what of the viewer's connection it carries, and the
//! secret its sessions are sealed under.

use crate::state::AppState;
use axum::body::Body;
use axum::Router;
use hmac::{Hmac, Mac};
use pavilion_store::{MetaStore, StoreError};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// Marks a request the UI makes in-process (set only by [`carry`]: no
/// network request can carry an extension). Blob reads then answer the
/// bytes rather than a redirect to object storage.
#[derive(Debug, Clone, Copy)]
pub struct InProcess;

/// How the UI is mounted.
pub struct UiSetup {
    /// The secret of [`secret`].
    pub secret: Vec<u8>,
    /// How long a sign-in lasts.
    pub session: Duration,
    /// Whether the registry is served over TLS.
    pub tls: bool,
}

/// The UI's routes, reading through `api` (the guarded API router).
pub fn router(state: &Arc<AppState>, api: Router, setup: UiSetup) -> Router {
    let carry = carry(state);
    pavilion_ui::router(pavilion_ui::UiConfig {
        api: pavilion_ui::api::Api::new(api, carry),
        secret: setup.secret,
        auth: state.access.is_some(),
        session_lifetime: setup.session,
        tls: setup.tls,
    })
}

/// Copies what the viewer's connection proved onto an in-process request:
/// the peer address (throttling, trusted proxies), the TLS client
/// certificate, a trusted proxy's forwarded certificate header. Not the
/// rest of the extensions: the outer request's parsed route (of `/ui/...`)
/// must not stand in for the inner one's.
fn carry(state: &Arc<AppState>) -> pavilion_ui::api::Carry {
    let forwarded = state.access.as_ref().map(|a| a.forwarded_header().clone());
    Arc::new(move |parts, req: &mut http::Request<Body>| {
        let ext = req.extensions_mut();
        ext.insert(InProcess);
        if let Some(p) = parts.extensions.get::<crate::access::Peer>() {
            ext.insert(*p);
        }
        if let Some(c) = parts.extensions.get::<crate::tls::ClientCertificate>() {
            ext.insert(c.clone());
        }
        if let Some(h) = &forwarded {
            if let Some(v) = parts.headers.get(h) {
                req.headers_mut().insert(h.clone(), v.clone());
            }
        }
        // The viewer's host, for the pull commands a card shows.
        if let Some(v) = parts.headers.get(http::header::HOST) {
            req.headers_mut().insert(http::header::HOST, v.clone());
        }
    })
}

/// The UI's secret, the same on every replica: derived from the oldest
/// token signing key in the metadata database (made now, as the token
/// issuer would make it, when there is none yet).
pub async fn secret(meta: &MetaStore) -> Result<Vec<u8>, StoreError> {
    let stored = crate::access::signing_keys(meta).await?;
    let (_, pem, _) = stored
        .first()
        .ok_or_else(|| StoreError::Backend("no signing key stored".into()))?;
    let mut m = Hmac::<Sha256>::new_from_slice(pem.as_bytes()).expect("any key length");
    m.update(b"pavilion-ui-secret-v1");
    Ok(m.finalize().into_bytes().to_vec())
}
