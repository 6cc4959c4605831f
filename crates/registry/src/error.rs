//! The one place where failures become HTTP responses with OCI error bodies.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use pavilion_oci::error_body::{ErrorBody, ErrorEntry};
use pavilion_oci::{DigestError, ErrorCode, NameError, ReferenceError};
use pavilion_store::StoreError;

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    /// The OCI error code.
    pub code: ErrorCode,
    /// What exactly went wrong, for the `detail` field.
    pub detail: String,
    /// Overrides the code's usual status (416 for an out-of-order chunk...).
    pub status: Option<StatusCode>,
    /// Extra response headers (`Range` and `Location` on a 416...).
    pub headers: Vec<(header::HeaderName, String)>,
    /// Replaces the code's usual `message`: clients such as docker and
    /// skopeo show only the message, so a policy denial puts its reason there.
    pub message: Option<String>,
    /// A structured `detail` in place of the text one (a policy denial's
    /// `{"reason": "policy", "deny": [...]}`).
    pub detail_json: Option<serde_json::Value>,
}

/// Handler result.
pub type ApiResult<T = Response> = Result<T, ApiError>;

impl ApiError {
    /// An error with `code` and a detail message.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            status: None,
            headers: Vec::new(),
            message: None,
            detail_json: None,
        }
    }

    /// The same error with a structured `detail`.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail_json = Some(detail);
        self
    }

    /// The same error with the detail as its `message` too.
    pub fn detail_as_message(mut self) -> Self {
        self.message = Some(self.detail.clone());
        self
    }

    /// The same error with another HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// The same error with an extra header.
    pub fn with_header(mut self, name: header::HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        match e {
            NameError::Name(..) => ApiError::new(ErrorCode::NameInvalid, e.to_string()),
            NameError::Tag(..) => ApiError::new(ErrorCode::TagInvalid, e.to_string()),
        }
    }
}

impl From<DigestError> for ApiError {
    fn from(e: DigestError) -> Self {
        ApiError::new(ErrorCode::DigestInvalid, e.to_string())
    }
}

impl From<ReferenceError> for ApiError {
    fn from(e: ReferenceError) -> Self {
        match e {
            ReferenceError::Digest(d) => d.into(),
            ReferenceError::Tag(t) => t.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let detail = e.to_string();
        match e {
            StoreError::BlobNotFound(_) => ApiError::new(ErrorCode::BlobUnknown, detail),
            StoreError::UploadNotFound(_) => ApiError::new(ErrorCode::BlobUploadUnknown, detail),
            StoreError::OffsetMismatch { expected, .. } => {
                ApiError::new(ErrorCode::BlobUploadInvalid, detail)
                    .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .with_header(header::RANGE, upload_range(expected))
            }
            StoreError::LengthMismatch { .. } => ApiError::new(ErrorCode::SizeInvalid, detail),
            StoreError::DigestMismatch { .. } => ApiError::new(ErrorCode::DigestInvalid, detail),
            StoreError::RangeNotSatisfiable { .. } => ApiError::new(ErrorCode::SizeInvalid, detail)
                .with_status(StatusCode::RANGE_NOT_SATISFIABLE),
            StoreError::Body(_) => ApiError::new(ErrorCode::BlobUploadInvalid, detail),
            // The object store is unreachable or failing: a temporary
            // condition clients may retry, not a fault of the request.
            StoreError::Backend(_) => {
                tracing::error!(error = %detail, "object store failure");
                ApiError::new(ErrorCode::Internal, detail)
                    .with_status(StatusCode::SERVICE_UNAVAILABLE)
            }
            // Out of space: the operator must act; say so instead of a bare 500.
            // Nothing half-written stays visible (uploads roll the chunk back).
            // The collector is deleting these bytes this instant (or was
            // killed doing so and the next run finishes): temporary.
            StoreError::Collecting(_) => ApiError::new(ErrorCode::Internal, detail)
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .with_header(header::RETRY_AFTER, "1".to_string()),
            StoreError::NotInRepo(_) => ApiError::new(ErrorCode::ManifestBlobUnknown, detail),
            StoreError::Full(_) => {
                tracing::error!(error = %detail, "storage full");
                ApiError::new(ErrorCode::StorageFull, detail)
            }
            // The metadata database is restarting or out of reach: also
            // temporary, and nothing was changed by the failed request.
            StoreError::Db(_) if e.is_database_unavailable() => {
                tracing::error!(error = %detail, "metadata database unavailable");
                ApiError::new(ErrorCode::Internal, format!("metadata {detail}"))
                    .with_status(StatusCode::SERVICE_UNAVAILABLE)
            }
            StoreError::Io(_)
            | StoreError::Db(_)
            | StoreError::Migrate(_)
            | StoreError::Corrupt(_) => {
                tracing::error!(error = %detail, "storage failure");
                ApiError::new(ErrorCode::Internal, detail)
            }
        }
    }
}

/// The `Range` value of an upload holding `len` bytes: `0-<last byte>`.
/// With no bytes yet, `0-0` as CNCF Distribution answers (the spec is silent).
pub fn upload_range(len: u64) -> String {
    format!("0-{}", len.saturating_sub(1))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::BAD_REQUEST)
        });
        let body = ErrorBody {
            errors: vec![ErrorEntry {
                code: self.code.into(),
                message: self
                    .message
                    .unwrap_or_else(|| self.code.message().to_string()),
                detail: Some(
                    self.detail_json
                        .unwrap_or(serde_json::Value::String(self.detail)),
                ),
            }],
        };
        // Serialising these plain strings and values cannot fail; were it
        // to, the status and code headers still tell the client what happened.
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut resp = Response::new(Body::from(text));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        resp
    }
}
