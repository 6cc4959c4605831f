//! Which stored manifest a reference names: shared by the manifest
//! handlers and the policy report.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use pavilion_oci::{ErrorCode, Reference, RepoName};
use pavilion_store::ManifestRecord;

/// `MANIFEST_UNKNOWN` for `reference` in `name`.
pub fn unknown(name: &RepoName, reference: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ManifestUnknown,
        format!("manifest {reference:?} not found in {name}"),
    )
}

/// The manifest a tag or digest names in `name`, or `MANIFEST_UNKNOWN`.
pub async fn resolve(
    state: &AppState,
    name: &RepoName,
    reference: &str,
) -> ApiResult<ManifestRecord> {
    // A reference that is not even well formed names nothing: 404, as the
    // conformance suite expects for GET/HEAD/DELETE.
    let found = match Reference::parse(reference) {
        Ok(Reference::Tag(t)) => {
            state
                .meta
                .manifest_by_tag(name.as_str(), t.as_str())
                .await?
        }
        Ok(Reference::Digest(d)) => state.meta.manifest_by_digest(name.as_str(), &d).await?,
        Err(_) => None,
    };
    found.ok_or_else(|| unknown(name, reference))
}
