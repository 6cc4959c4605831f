//! The client's error type.

/// Errors talking to a registry or handling local files.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Transport failure (connection refused, TLS, reset...).
    #[error("cannot reach registry: {0}")]
    Http(#[from] reqwest::Error),
    /// The registry answered with an error.
    #[error("registry answered {status} {code}: {message}")]
    Registry {
        /// HTTP status.
        status: u16,
        /// OCI error code (or `HTTP` when the body had none).
        code: String,
        /// Message and detail from the error body.
        message: String,
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
    Io(#[from] std::io::Error),
}

impl ClientError {
    /// Builds a `Registry` error from a non-success response.
    pub async fn from_response(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let parsed: Option<(String, String)> = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let e = v.get("errors")?.get(0)?;
                let code = e.get("code")?.as_str()?.to_string();
                let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
                let detail = e.get("detail").map(|d| match d {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                Some((
                    code,
                    detail.map_or(msg.to_string(), |d| format!("{msg}: {d}")),
                ))
            });
        let (code, message) = parsed.unwrap_or_else(|| {
            (
                "HTTP".to_string(),
                text.lines().next().unwrap_or("").to_string(),
            )
        });
        ClientError::Registry {
            status,
            code,
            message,
        }
    }
}
