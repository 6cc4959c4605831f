//! The trust policy documents as written on disk (serde types, OCI and
//! blob), before validation.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// `null` reads as the default, as Go's `encoding/json` does for slices,
/// maps and strings (notation writes `"trustStores": null` for skip
/// statements in some versions).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `signatureVerification` of a statement, as written.
///
/// Unknown members are ignored, as notation ignores them (newer notation
/// versions may add some): every member that relaxes verification is a
/// known one, so ignoring an unknown member can only make verification
/// stricter than its author meant, never weaker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureVerification {
    /// `strict`, `permissive`, `audit` or `skip`.
    #[serde(default, deserialize_with = "null_default")]
    pub level: String,
    /// Per-validation actions replacing the level's
    /// (`authenticity`/`authenticTimestamp`/`expiry`: `enforce` or `log`;
    /// `revocation`: `enforce`, `log` or `skip`).
    #[serde(
        rename = "override",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub override_: BTreeMap<String, String>,
    /// `always` (the default) or `afterCertExpiry`.
    #[serde(
        rename = "verifyTimestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub verify_timestamp: Option<String>,
}

/// One statement of an OCI trust policy document, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciStatement {
    /// Statement name, unique in the document.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Repositories (`registry/namespace/repository`) the statement applies
    /// to, or `["*"]`.
    #[serde(rename = "registryScopes", default, deserialize_with = "null_default")]
    pub registry_scopes: Vec<String>,
    /// Verification level and overrides.
    #[serde(
        rename = "signatureVerification",
        default,
        deserialize_with = "null_default"
    )]
    pub signature_verification: SignatureVerification,
    /// `<type>:<name>` trust store references.
    #[serde(
        rename = "trustStores",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub trust_stores: Vec<String>,
    /// `*` or `x509.subject: <DN>` entries.
    #[serde(
        rename = "trustedIdentities",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub trusted_identities: Vec<String>,
}

/// An OCI trust policy document (`trustpolicy.oci.json`), as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciDocument {
    /// Must be `1.0`.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// The statements.
    #[serde(rename = "trustPolicies", default, deserialize_with = "null_default")]
    pub trust_policies: Vec<OciStatement>,
}

/// One statement of a blob trust policy document, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStatement {
    /// Statement name, unique in the document; blobs select policies by it.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Verification level and overrides.
    #[serde(
        rename = "signatureVerification",
        default,
        deserialize_with = "null_default"
    )]
    pub signature_verification: SignatureVerification,
    /// `<type>:<name>` trust store references.
    #[serde(
        rename = "trustStores",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub trust_stores: Vec<String>,
    /// `*` or `x509.subject: <DN>` entries.
    #[serde(
        rename = "trustedIdentities",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub trusted_identities: Vec<String>,
    /// The statement used when no name is given.
    #[serde(
        rename = "globalPolicy",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub global_policy: bool,
}

/// A blob trust policy document (`trustpolicy.blob.json`), as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobDocument {
    /// Must be `1.0`.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// The statements.
    #[serde(rename = "trustPolicies", default, deserialize_with = "null_default")]
    pub trust_policies: Vec<BlobStatement>,
}
