//! Who made a request, as the handlers pass it on to the gate: a leaf that
//! every handler may use (the dispatcher in `routes` put it there).

use axum::extract::Request;

/// The authenticated subject of `req` (`routes::require_auth` put it in
/// the request's extensions), for the gate's `input.identity`; `None`
/// when the server does not authenticate.
pub fn caller(req: &Request) -> Option<String> {
    req.extensions()
        .get::<pavilion_auth::Identity>()
        .map(|i| i.subject.clone())
}
