//! Request bodies and headers as the handlers read them.

use axum::extract::Request;
use futures::StreamExt;
use http::HeaderMap;
use pavilion_store::ByteStream;
use std::io;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The request body as a byte stream that fails if the client sends nothing
/// for `idle`. There is deliberately no limit on the total time: a 500 GiB
/// upload may take hours, but a stalled one must not hold a session forever.
///
/// When `shutdown` fires the stream ends with an error, so the upload keeps
/// (and writes out) every byte received and the client can resume later.
pub fn stream(req: Request, idle: Duration, shutdown: CancellationToken) -> ByteStream {
    let body = req.into_body().into_data_stream();
    futures::stream::unfold(body, move |mut body| {
        let shutdown = shutdown.clone();
        async move {
        let next = tokio::select! {
            () = shutdown.cancelled() => {
                return Some((Err(io::Error::new(io::ErrorKind::Interrupted, "server shutting down")), body));
            }
            next = tokio::time::timeout(idle, body.next()) => next,
        };
        match next {
            Ok(Some(Ok(b))) => Some((Ok(b), body)),
            Ok(Some(Err(e))) => Some((Err(io::Error::other(e)), body)),
            Ok(None) => None,
            Err(_) => Some((
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no body data for {idle:?}"),
                )),
                body,
            )),
        }
        }
    })
    // The stream ends after the first error.
    .scan(false, |failed, item| {
        let out = if *failed { None } else { Some(item) };
        if let Some(Err(_)) = &out {
            *failed = true;
        }
        futures::future::ready(out)
    })
    .boxed()
}

/// A header as a string, if present and visible ASCII.
pub fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}
