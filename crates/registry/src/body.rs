//! Request-body and query helpers shared by the handlers.

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

/// Query parameters in order, percent-decoded (`+` is a space).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode(&spaced).unwrap_or(spaced)
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result is
/// not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// First value of query parameter `key`.
pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A header as a string, if present and visible ASCII.
pub fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Percent-encodes a query value (for `Link` headers).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
