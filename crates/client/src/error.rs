//! The client's error type, and the bounded reads of what a registry
//! answers (a hostile registry must not make the client hold unbounded
//! bodies: manifests, list pages, error bodies).

use bytes::Bytes;
use futures::StreamExt;
use pavilion_oci::error_body::{first_error, Code};
use pavilion_oci::ErrorCode;

/// The most manifest bytes the client reads: the registry's own default
/// `max_manifest_bytes` (4 MiB), so anything Pavilion accepts can be read.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The most bytes of one page of a tag, repository or referrers list (4 MiB:
/// tens of thousands of names or descriptors per page).
pub const MAX_PAGE_BYTES: u64 = 4 << 20;
/// The most bytes of all the pages of one listing together (64 MiB).
pub const MAX_LIST_BYTES: u64 = 64 << 20;
/// The most bytes of an error body read for its message.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// Errors talking to a registry or handling local files.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Transport failure (connection refused, TLS, reset...).
    #[error("{}", transport_message(.0))]
    Http(reqwest::Error),
    /// TLS certificates: the registry's did not verify, or it refused
    /// ours. Not temporary: trying again will not change the trust.
    #[error("{0}")]
    Tls(String),
    /// The registry answered with an error.
    #[error("registry answered {status} {code}: {message}")]
    Registry {
        /// HTTP status.
        status: u16,
        /// OCI error code (or `HTTP` when the body had none).
        code: Code,
        /// Message and detail from the error body.
        message: String,
        /// The registry says its policy refused the request: a `DENIED`
        /// error whose `detail` is a `pavilion_oci::error_body::PolicyDenial`
        /// (`"reason": "policy"`; Pavilion's documented denial, see
        /// docs/POLICY.md).
        denied_by_policy: bool,
    },
    /// Authentication failed or no usable challenge was offered.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The bytes received do not hash to the expected digest.
    #[error("digest mismatch for {path}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Local file concerned.
        path: String,
        /// Digest from the manifest.
        expected: String,
        /// Digest of the bytes.
        actual: String,
    },
    /// The registry broke the protocol (missing Location, bad Range...).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Local I/O.
    #[error("{0}")]
    Io(std::io::Error),
    /// The thing asked for does not exist (outside a registry answer).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request itself is wrong (a bad reference, an ambiguous layout).
    #[error("{0}")]
    Usage(String),
    /// The registry sent more than the client reads for this kind of answer.
    #[error("{what} is larger than the client's limit of {limit} bytes; refused")]
    TooLarge {
        /// What was being read (`the manifest of REF`, `a tag list page`...).
        what: String,
        /// The limit, in bytes.
        limit: u64,
    },
}

/// Reads `resp`'s body up to `limit` bytes: `Ok(None)` when it is longer
/// (declared or sent), so no more than `limit` bytes are ever held.
pub(crate) async fn body_up_to(
    resp: reqwest::Response,
    limit: u64,
) -> Result<Option<Bytes>, ClientError> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let mut body = resp.bytes_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

/// Reads `resp`'s body, refusing one over `limit` bytes as [`ClientError::TooLarge`].
pub(crate) async fn read_capped(
    resp: reqwest::Response,
    limit: u64,
    what: impl FnOnce() -> String,
) -> Result<Bytes, ClientError> {
    body_up_to(resp, limit)
        .await?
        .ok_or_else(|| ClientError::TooLarge {
            what: what(),
            limit,
        })
}

/// Not `#[from]`: the io error is the message, and a source would make
/// error chains print it twice.
impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

impl ClientError {
    /// An I/O error that names the file it concerns.
    pub fn io_at(path: &std::path::Path, e: std::io::Error) -> Self {
        if pavilion_dio::refused(&e).is_some() {
            // Already names the link; kept whole so it is classified.
            return ClientError::Io(e);
        }
        ClientError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        match (crate::tls::tls_failure(&e), e.url()) {
            (Some(f), Some(url)) => ClientError::tls(f, url),
            _ => ClientError::Http(e),
        }
    }
}

impl ClientError {
    /// The error for a TLS certificate failure talking to `url`, saying
    /// where the missing trust or certificate goes.
    pub(crate) fn tls(f: crate::tls::TlsFailure, url: &reqwest::Url) -> Self {
        use crate::tls::TlsFailure;
        // certs.d names a registry as references write it: the URL's
        // authority (host, and port when one is written).
        let (at, host) = (
            format!("{}://{}", url.scheme(), url.authority()),
            url.authority(),
        );
        ClientError::Tls(match f {
            TlsFailure::ServerNotTrusted(why) => format!(
                "cannot verify the TLS certificate of {at} ({why}): trust its CA (a CA file: \
                 pavilion's --ca-file; SSL_CERT_FILE; or certs.d/{host}/ca.crt)"
            ),
            TlsFailure::ClientRefused(why) => format!(
                "{at} refused the TLS client certificate, or wanted one ({why}): give one its CA \
                 signed, as certs.d/{host}/client.cert and client.key"
            ),
        })
    }
}

/// One line for a transport failure: the URL and the innermost cause
/// (reqwest repeats the URL at every level of its source chain).
fn transport_message(e: &reqwest::Error) -> String {
    let mut innermost = None;
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        innermost = Some(c.to_string());
        cause = c.source();
    }
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else {
        innermost.unwrap_or_else(|| e.to_string())
    };
    match e.url() {
        Some(u) => format!(
            "cannot reach {}://{}: {what} ({} {})",
            u.scheme(),
            u.authority(),
            kind_of(e),
            u.path()
        ),
        None => format!("cannot reach registry: {what}"),
    }
}

fn kind_of(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "connecting for"
    } else if e.is_body() || e.is_decode() {
        "reading"
    } else {
        "requesting"
    }
}

/// Whether a transport error is really a malformed JSON body (reqwest
/// reports a body cut short as a decode error too, which is the network's).
fn is_json_error(e: &reqwest::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<serde_json::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// What kind of failure an error is, for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user asked for something malformed.
    Usage,
    /// The reference, blob or repository does not exist.
    NotFound,
    /// Bytes or signatures did not verify.
    Verification,
    /// The registry could not be reached or broke the connection.
    Network,
    /// Credentials missing or refused.
    Auth,
    /// Anything else (local I/O, registry refusals).
    Other,
}

impl ClientError {
    /// Whether trying again may succeed: the network failed, or the
    /// registry (or a balancer in front of it) said it is unavailable for
    /// now (502, 503, 504, 429), e.g. a replica that lost its storage.
    pub fn is_temporary(&self) -> bool {
        match self {
            ClientError::Registry { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            e => e.kind() == ErrorKind::Network,
        }
    }

    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Http(e) if e.is_builder() || is_json_error(e) => ErrorKind::Other,
            ClientError::Http(_) => ErrorKind::Network,
            ClientError::Registry { status: 404, .. } => ErrorKind::NotFound,
            // Pavilion's policy refusals (`serve --policy`) are 403 DENIED
            // like an authorisation failure; their typed detail tells them
            // apart (never the message's wording), and new credentials
            // would not help.
            ClientError::Registry {
                status: 403,
                code: Code::Known(ErrorCode::Denied),
                denied_by_policy: true,
                ..
            } => ErrorKind::Verification,
            ClientError::Registry {
                status: 401 | 403, ..
            } => ErrorKind::Auth,
            // The spec's "unknown" codes, MANIFEST_BLOB_UNKNOWN (a 400: a
            // manifest naming what the registry lacks) among them, and
            // other registries' own codes named the same way.
            ClientError::Registry { code, .. } if code.as_str().ends_with("_UNKNOWN") => {
                ErrorKind::NotFound
            }
            ClientError::Registry { .. } => ErrorKind::Other,
            ClientError::Auth(_) => ErrorKind::Auth,
            // Who the registry is, or who we are, could not be proven:
            // fixed by configuration, like credentials.
            ClientError::Tls(_) => ErrorKind::Auth,
            ClientError::DigestMismatch { .. } => ErrorKind::Verification,
            ClientError::Protocol(_) => ErrorKind::Network,
            // A symlink where a file is written: an unsafe path, like one
            // in an artifact.
            ClientError::Io(e) if pavilion_dio::refused(e).is_some() => ErrorKind::Verification,
            ClientError::Io(_) => ErrorKind::Other,
            ClientError::NotFound(_) => ErrorKind::NotFound,
            ClientError::Usage(_) => ErrorKind::Usage,
            // Like a digest mismatch: the answer fails a check the client
            // makes of what it is given, and retrying will not change it.
            ClientError::TooLarge { .. } => ErrorKind::Verification,
        }
    }

    /// Builds a `Registry` error from a non-success response.
    pub async fn from_response(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        // Only the first line or the first error is shown: a bounded read,
        // whose overflow leaves the message empty rather than the client
        // holding whatever the registry sends.
        let text = match body_up_to(resp, MAX_ERROR_BODY).await {
            Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        };
        let parsed = first_error(text.as_bytes()).map(|e| {
            let policy = e.policy_denial().is_some();
            let detail = e.detail.as_ref().map(|d| match d {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            // A registry may put the whole reason in both (Pavilion's
            // policy denials do, for clients that show only the
            // message, and type it in the detail).
            let message = match detail {
                Some(d) if d != e.message && !policy => format!("{}: {d}", e.message),
                _ => e.message,
            };
            (e.code, message, policy)
        });
        let (code, message, denied_by_policy) = parsed.unwrap_or_else(|| {
            // No error body (the answer to a HEAD has none): at least the
            // status's name, rather than nothing after the colon.
            let line = text.lines().next().unwrap_or("").trim();
            let message = if line.is_empty() {
                reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("no error body")
                    .to_string()
            } else {
                line.to_string()
            };
            (Code::Other("HTTP".to_string()), message, false)
        });
        ClientError::Registry {
            status,
            code,
            message,
            denied_by_policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(status: u16, code: Code, denied_by_policy: bool) -> ClientError {
        ClientError::Registry {
            status,
            code,
            message: String::new(),
            denied_by_policy,
        }
    }

    #[test]
    fn every_unknown_code_is_not_found_whatever_its_status() {
        // A manifest naming a blob the registry lacks: 400, yet "not found".
        let e = registry(400, ErrorCode::ManifestBlobUnknown.into(), false);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = registry(400, Code::Other("LAYER_UNKNOWN".into()), false);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = registry(400, ErrorCode::ManifestInvalid.into(), false);
        assert_eq!(e.kind(), ErrorKind::Other);
    }

    #[test]
    fn only_a_typed_policy_denial_is_a_failed_check() {
        let e = registry(403, ErrorCode::Denied.into(), true);
        assert_eq!(e.kind(), ErrorKind::Verification);
        let e = registry(403, ErrorCode::Denied.into(), false);
        assert_eq!(e.kind(), ErrorKind::Auth);
    }
}
