//! The error codes of the OCI distribution-spec, with their HTTP statuses.

/// An error code from the distribution-spec's error code table (plus the
/// Docker-era `RANGE_INVALID`/`BLOB_UPLOAD_INVALID` that clients still expect).
/// It serialises as, and deserialises from, the code string of an error body
/// (`"MANIFEST_UNKNOWN"`); a string outside the table does not deserialise
/// (see [`crate::error_body::Code`] for reading any registry's codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// blob unknown to registry
    BlobUnknown,
    /// blob upload invalid
    BlobUploadInvalid,
    /// blob upload unknown to registry
    BlobUploadUnknown,
    /// provided digest did not match uploaded content
    DigestInvalid,
    /// blob unknown to registry (referenced by a manifest)
    ManifestBlobUnknown,
    /// manifest invalid
    ManifestInvalid,
    /// manifest unknown
    ManifestUnknown,
    /// invalid repository name
    NameInvalid,
    /// repository name not known to registry
    NameUnknown,
    /// provided length did not match content length
    SizeInvalid,
    /// authentication required
    Unauthorized,
    /// requested access to the resource is denied
    Denied,
    /// the operation is unsupported
    Unsupported,
    /// too many requests
    TooManyRequests,
    /// invalid tag (Docker-compatible code)
    TagInvalid,
    /// pagination parameters invalid (Docker-compatible code)
    PaginationNumberInvalid,
    /// a server-side failure that is not the client's fault
    Internal,
    /// the registry's storage (disk, quota, database) is full: a server
    /// condition (507), not the client's fault, so outside the spec's 4xx table
    StorageFull,
}

impl ErrorCode {
    /// Every code, in the order of the table above.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::BlobUnknown,
        ErrorCode::BlobUploadInvalid,
        ErrorCode::BlobUploadUnknown,
        ErrorCode::DigestInvalid,
        ErrorCode::ManifestBlobUnknown,
        ErrorCode::ManifestInvalid,
        ErrorCode::ManifestUnknown,
        ErrorCode::NameInvalid,
        ErrorCode::NameUnknown,
        ErrorCode::SizeInvalid,
        ErrorCode::Unauthorized,
        ErrorCode::Denied,
        ErrorCode::Unsupported,
        ErrorCode::TooManyRequests,
        ErrorCode::TagInvalid,
        ErrorCode::PaginationNumberInvalid,
        ErrorCode::Internal,
        ErrorCode::StorageFull,
    ];

    /// The code a code string names (`"DENIED"` -> `Denied`); `None` for a
    /// string outside the table.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The code string as sent in the JSON error body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::TagInvalid => "TAG_INVALID",
            ErrorCode::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            ErrorCode::Internal => "UNKNOWN",
            ErrorCode::StorageFull => "STORAGE_FULL",
        }
    }

    /// The HTTP status the spec pairs with this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => 404,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid
            | ErrorCode::TagInvalid
            | ErrorCode::PaginationNumberInvalid => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported => 415,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Internal => 500,
            ErrorCode::StorageFull => 507,
        }
    }

    /// A short human message for the code.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "blob unknown to registry",
            ErrorCode::BlobUploadInvalid => "blob upload invalid",
            ErrorCode::BlobUploadUnknown => "blob upload unknown to registry",
            ErrorCode::DigestInvalid => "provided digest did not match uploaded content",
            ErrorCode::ManifestBlobUnknown => {
                "manifest references a manifest or blob unknown to registry"
            }
            ErrorCode::ManifestInvalid => "manifest invalid",
            ErrorCode::ManifestUnknown => "manifest unknown to registry",
            ErrorCode::NameInvalid => "invalid repository name",
            ErrorCode::NameUnknown => "repository name not known to registry",
            ErrorCode::SizeInvalid => "provided length did not match content length",
            ErrorCode::Unauthorized => "authentication required",
            ErrorCode::Denied => "requested access to the resource is denied",
            ErrorCode::Unsupported => "the operation is unsupported",
            ErrorCode::TooManyRequests => "too many requests",
            ErrorCode::TagInvalid => "invalid tag",
            ErrorCode::PaginationNumberInvalid => "invalid pagination parameter",
            ErrorCode::Internal => "internal server error",
            ErrorCode::StorageFull => "the registry's storage is full",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code string outside the distribution-spec's table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an OCI error code")]
pub struct UnknownErrorCode(pub String);

impl std::str::FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::from_code(s).ok_or_else(|| UnknownErrorCode(s.to_string()))
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_code_reads_back_from_its_string() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(c.as_str()), Some(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), c);
        }
        let names: std::collections::BTreeSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names.len(),
            ErrorCode::ALL.len(),
            "code strings are distinct"
        );
    }

    #[test]
    fn a_string_outside_the_table_is_refused() {
        assert_eq!(ErrorCode::from_code("denied"), None);
        let e = serde_json::from_str::<ErrorCode>("\"NOT_A_CODE\"").unwrap_err();
        assert!(e.to_string().contains("NOT_A_CODE"), "{e}");
        assert!("".parse::<ErrorCode>().is_err());
    }
}
