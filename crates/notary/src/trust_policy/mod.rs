//! notation's trust policy documents (trust-store-trust-policy.md, "Trust
//! Policy"): which signers are trusted for which artifacts, and how strictly
//! each validation is enforced.
//!
//! Two documents, both version `1.0`, both in notation's configuration
//! directory ([`crate::truststore::notation_config_dir`]):
//!
//! - the OCI policy, `trustpolicy.oci.json`, or the legacy name
//!   `trustpolicy.json` when the former does not exist (notation reads them
//!   in that order; same format) — statements select artifacts by
//!   `registryScopes`;
//! - the blob policy, `trustpolicy.blob.json` — statements are selected by
//!   name, or the one marked `globalPolicy`.
//!
//! Loading validates the whole document, so that a policy which is
//! ambiguous or says something impossible is refused before any signature
//! is looked at, with a one-line reason naming the statement (the rules are
//! listed on [`OciPolicies::from_document`] and
//! [`BlobPolicies::from_document`]). The validated form ([`TrustPolicy`])
//! carries the resolved [`VerificationLevel`], the parsed trust store
//! references and the parsed trusted identities, so verification code never
//! re-interprets strings.
//!
//! Where notation (notation-go `verifier/trustpolicy`) and the specification
//! differ, the choice made is noted where it is made: in short, this module
//! is at least as strict as notation and follows the specification's
//! constraints where notation does not enforce them.

use crate::truststore::{notation_config_dir, StoreRef, StoreRefError, StoreType};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

mod dn;
mod documents;
mod error;
mod levels;
#[cfg(test)]
mod tests;

pub use dn::{normalize_attribute_type, DistinguishedName, DnError, TrustedIdentity};
pub use documents::{
    BlobDocument, BlobStatement, OciDocument, OciStatement, SignatureVerification,
};
pub use error::PolicyError;
pub use levels::{Action, Level, Validation, VerificationLevel, VerifyTimestamp};

/// The only trust policy document version there is.
pub const SUPPORTED_VERSION: &str = "1.0";
/// File name of the OCI trust policy in notation's configuration directory.
pub const OCI_POLICY_FILE: &str = "trustpolicy.oci.json";
/// Earlier file name of the OCI trust policy, still read by notation when
/// [`OCI_POLICY_FILE`] does not exist.
pub const LEGACY_OCI_POLICY_FILE: &str = "trustpolicy.json";
/// File name of the blob trust policy.
pub const BLOB_POLICY_FILE: &str = "trustpolicy.blob.json";
/// The wildcard: as a registry scope, every repository; as a trusted
/// identity, every signer whose chain leads to a trusted certificate.
pub const WILDCARD: &str = "*";
/// Prefix of trusted identities given as X.509 subject attributes.
pub const X509_SUBJECT: &str = "x509.subject";

// ---------------------------------------------------------------------------
// Validated policies
// ---------------------------------------------------------------------------

/// A validated trust policy statement (OCI or blob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    /// Statement name.
    pub name: String,
    /// OCI: the registry scopes as written (`["*"]` for the global
    /// statement). Blob: empty.
    pub registry_scopes: Vec<String>,
    /// OCI: the scope is `*`. Blob: `globalPolicy` is true. The statement
    /// used when nothing more specific applies.
    pub global: bool,
    /// Effective action of each validation.
    pub verification: VerificationLevel,
    /// When to verify timestamp countersignatures.
    pub verify_timestamp: VerifyTimestamp,
    /// Trust stores, in written order (empty at `skip`).
    pub trust_stores: Vec<StoreRef>,
    /// Trusted identities (empty at `skip`; otherwise `[Any]` or only
    /// subjects).
    pub trusted_identities: Vec<TrustedIdentity>,
}

impl TrustPolicy {
    /// Whether the statement skips verification altogether.
    pub fn is_skip(&self) -> bool {
        self.verification.level == Level::Skip
    }

    /// The statement's trust stores of one type.
    pub fn stores_of(&self, kind: StoreType) -> impl Iterator<Item = &StoreRef> + '_ {
        self.trust_stores.iter().filter(move |s| s.kind == kind)
    }

    /// Whether timestamp countersignatures can be verified at all: a `tsa`
    /// store is configured (the specification's switch) and the authentic
    /// timestamp validation is not skipped.
    pub fn timestamp_verification_configured(&self) -> bool {
        self.verification.authentic_timestamp != Action::Skip
            && self.stores_of(StoreType::Tsa).next().is_some()
    }

    /// Whether a signer whose leaf certificate subject has these
    /// attributes is a trusted identity of this statement; see
    /// [`identity_trusted`].
    pub fn trusts_subject(&self, leaf_subject: &[(String, String)]) -> bool {
        identity_trusted(self, leaf_subject)
    }
}

/// Whether a leaf certificate subject, given as its (type, value)
/// attributes (short type names such as `C`, `ST`, `L`, `O`, `OU`, `CN`,
/// or dotted OIDs; values unescaped), matches one of the policy's trusted
/// identities:
///
/// - `*` matches every subject;
/// - an `x509.subject` identity matches when each of its attributes is in
///   the subject with exactly the same value (the subject may have more);
/// - a subject that repeats an attribute type never matches a subject
///   identity: which of its values the identity is about would be
///   ambiguous, and notation refuses such subjects as well.
///
/// A statement without identities (a `skip` statement) trusts no one;
/// callers handle `skip` before asking.
pub fn identity_trusted(policy: &TrustPolicy, leaf_subject: &[(String, String)]) -> bool {
    if policy.trusted_identities.contains(&TrustedIdentity::Any) {
        return true;
    }
    let Some(subject) = DistinguishedName::from_attributes(leaf_subject) else {
        return false;
    };
    policy.trusted_identities.iter().any(|i| match i {
        TrustedIdentity::Any => true,
        TrustedIdentity::X509Subject(dn) => dn.is_subset_of(&subject),
    })
}

/// Validates a registry scope other than `*`: a fully qualified repository
/// `registry[:port]/path`, without scheme, tag or digest, in the syntax of
/// the distribution reference grammar (as notation checks it). The
/// registry part need not contain a dot, so local scopes such as
/// `local/my-layout` are accepted, but it is never inferred: `library/x`
/// is the registry `library`, not Docker Hub. The error is the reason.
pub fn validate_registry_scope(scope: &str) -> Result<(), String> {
    if scope.contains('*') {
        return Err(
            "wildcards are only allowed as the whole scope \"*\"; a scope names one repository"
                .to_string(),
        );
    }
    let (domain, repository) = scope.split_once('/').ok_or_else(|| {
        "not a fully qualified repository (registry/repository, e.g. example.com/my/repo)"
            .to_string()
    })?;
    if !valid_domain(domain) {
        return Err(format!(
            "{domain:?} is not a registry host[:port] (scheme and credentials are not allowed)"
        ));
    }
    if !valid_repository(repository) {
        return Err(format!(
            "{repository:?} is not a repository path (lowercase components separated by /, no tag or digest)"
        ));
    }
    Ok(())
}

/// `host[:port]`: dot-separated labels of letters, digits and inner
/// hyphens; the port all digits.
fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// Repository path: `/`-separated components, each lowercase alphanumeric
/// runs joined by `.`, `_`, `__` or one or more `-`.
fn valid_repository(repository: &str) -> bool {
    repository.split('/').all(|component| {
        let b = component.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            // A separator run, followed by an alphanumeric (the last byte
            // is alphanumeric, checked above).
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return false;
            }
        }
        true
    })
}

/// The parts shared by OCI and blob statements, validated: the statement
/// without registry scopes and not global (the callers set those).
fn validate_core(
    name: &str,
    sv: &SignatureVerification,
    trust_stores: &[String],
    trusted_identities: &[String],
) -> Result<TrustPolicy, PolicyError> {
    let statement =
        |verification, verify_timestamp, trust_stores, trusted_identities| TrustPolicy {
            name: name.to_string(),
            registry_scopes: Vec::new(),
            global: false,
            verification,
            verify_timestamp,
            trust_stores,
            trusted_identities,
        };
    let policy = || name.to_string();
    let verification = VerificationLevel::resolve(&sv.level, &sv.override_).map_err(|why| {
        PolicyError::InvalidVerification {
            policy: policy(),
            why,
        }
    })?;
    let verify_timestamp =
        VerifyTimestamp::parse(sv.verify_timestamp.as_deref()).map_err(|why| {
            PolicyError::InvalidVerification {
                policy: policy(),
                why,
            }
        })?;
    if verification.level == Level::Skip {
        if !trust_stores.is_empty() || !trusted_identities.is_empty() {
            return Err(PolicyError::SkipWithTrust { policy: policy() });
        }
        return Ok(statement(
            verification,
            verify_timestamp,
            Vec::new(),
            Vec::new(),
        ));
    }
    match (trust_stores.is_empty(), trusted_identities.is_empty()) {
        (true, true) => {
            return Err(PolicyError::MissingTrust {
                policy: policy(),
                missing: "trust stores and no trusted identities",
            })
        }
        (true, false) => {
            return Err(PolicyError::MissingTrust {
                policy: policy(),
                missing: "trust stores",
            })
        }
        (false, true) => {
            return Err(PolicyError::MissingTrust {
                policy: policy(),
                missing: "trusted identities",
            })
        }
        (false, false) => {}
    }
    // Repeated references are kept (notation accepts them); they name the
    // same certificates.
    let stores = trust_stores
        .iter()
        .map(|s| {
            s.parse::<StoreRef>()
                .map_err(|error| PolicyError::InvalidTrustStore {
                    policy: policy(),
                    error,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;

    if trusted_identities.len() > 1 && trusted_identities.iter().any(|i| i == WILDCARD) {
        return Err(PolicyError::WildcardIdentityNotAlone { policy: policy() });
    }
    let identities = trusted_identities
        .iter()
        .map(|i| {
            TrustedIdentity::parse(i).map_err(|why| PolicyError::InvalidTrustedIdentity {
                policy: policy(),
                identity: i.clone(),
                why,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (a, ia) in identities.iter().enumerate() {
        for (b, ib) in identities.iter().enumerate().skip(a + 1) {
            if let (TrustedIdentity::X509Subject(x), TrustedIdentity::X509Subject(y)) = (ia, ib) {
                if x.overlaps(y) {
                    return Err(PolicyError::OverlappingIdentities {
                        policy: policy(),
                        first: trusted_identities[a].clone(),
                        second: trusted_identities[b].clone(),
                    });
                }
            }
        }
    }
    Ok(statement(
        verification,
        verify_timestamp,
        stores,
        identities,
    ))
}

/// Version, statement count and names, common to both documents.
fn validate_header<'a>(
    version: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), PolicyError> {
    if version.is_empty() {
        return Err(PolicyError::MissingVersion);
    }
    if version != SUPPORTED_VERSION {
        return Err(PolicyError::UnsupportedVersion {
            version: version.to_string(),
        });
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, name) in names.enumerate() {
        // A name of spaces only names nothing a user could type back.
        if name.trim().is_empty() {
            return Err(PolicyError::MissingName { index: i + 1 });
        }
        if seen.contains(&name) {
            return Err(PolicyError::DuplicateName {
                policy: name.to_string(),
            });
        }
        seen.push(name);
    }
    if seen.is_empty() {
        return Err(PolicyError::NoStatements);
    }
    Ok(())
}

/// Records the statement `name` (validated as `policy`) as the document's
/// global statement: refused when another statement already is (`global`
/// holds its name), or when it is `skip`. Common to both documents.
fn claim_global<'a>(
    global: &mut Option<&'a str>,
    name: &'a str,
    policy: &TrustPolicy,
) -> Result<(), PolicyError> {
    if let Some(first) = global.replace(name) {
        return Err(PolicyError::MultipleGlobalPolicies {
            first: first.to_string(),
            second: name.to_string(),
        });
    }
    if policy.verification.level == Level::Skip {
        return Err(PolicyError::GlobalSkip {
            policy: name.to_string(),
        });
    }
    Ok(())
}

/// A validated OCI trust policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciPolicies {
    /// The document as written.
    pub document: OciDocument,
    /// Its statements, validated, in document order.
    pub policies: Vec<TrustPolicy>,
}

impl OciPolicies {
    /// Validates a document. Rules (the specification's, plus notation's
    /// where it is more precise):
    ///
    /// - `version` is `1.0`; there is at least one statement; every
    ///   statement has a name, and names are unique;
    /// - `signatureVerification.level` is `strict`, `permissive`, `audit` or
    ///   `skip`; `override` keys are `authenticity`, `authenticTimestamp`,
    ///   `expiry` (to `enforce` or `log`) or `revocation` (to `enforce`,
    ///   `log` or `skip`) — never `integrity` — and `skip` cannot be
    ///   overridden; `verifyTimestamp` is `always` or `afterCertExpiry`;
    /// - a `skip` statement has no trust stores and no identities; any
    ///   other has both;
    /// - trust stores are `ca:`, `signingAuthority:` or `tsa:` followed by
    ///   a valid store name;
    /// - trusted identities are `*` alone, or `x509.subject:` DNs with C,
    ///   ST (or S) and O, no two of them overlapping;
    /// - `registryScopes` is non-empty, either `["*"]` or fully qualified
    ///   repositories ([`validate_registry_scope`]); no scope appears twice
    ///   in the document, so at most one statement is global;
    /// - the global (`*`) statement is not `skip`. The specification says
    ///   so ("skip cannot be used with a global scope"); notation does not
    ///   enforce it, but a global skip would turn verification off for every
    ///   repository nobody thought of, which is what a trust policy exists
    ///   to prevent.
    pub fn from_document(document: OciDocument) -> Result<Self, PolicyError> {
        validate_header(
            &document.version,
            document.trust_policies.iter().map(|s| s.name.as_str()),
        )?;
        let mut policies = Vec::with_capacity(document.trust_policies.len());
        let mut scopes: BTreeMap<&str, &str> = BTreeMap::new();
        let mut global: Option<&str> = None;
        for st in &document.trust_policies {
            let mut policy = validate_core(
                &st.name,
                &st.signature_verification,
                &st.trust_stores,
                &st.trusted_identities,
            )?;
            if st.registry_scopes.is_empty() {
                return Err(PolicyError::NoRegistryScopes {
                    policy: st.name.clone(),
                });
            }
            let is_global = st.registry_scopes.iter().any(|s| s == WILDCARD);
            if is_global && st.registry_scopes.len() > 1 {
                return Err(PolicyError::WildcardScopeNotAlone {
                    policy: st.name.clone(),
                });
            }
            for scope in &st.registry_scopes {
                if scope != WILDCARD {
                    validate_registry_scope(scope).map_err(|why| {
                        PolicyError::InvalidRegistryScope {
                            policy: st.name.clone(),
                            scope: scope.clone(),
                            why,
                        }
                    })?;
                    if let Some(first) = scopes.insert(scope, &st.name) {
                        return Err(PolicyError::RepeatedRegistryScope {
                            scope: scope.clone(),
                            first: first.to_string(),
                            second: st.name.clone(),
                        });
                    }
                }
            }
            if is_global {
                claim_global(&mut global, &st.name, &policy)?;
            }
            policy.registry_scopes = st.registry_scopes.clone();
            policy.global = is_global;
            policies.push(policy);
        }
        Ok(OciPolicies { document, policies })
    }

    /// Parses and validates a JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, PolicyError> {
        OciPolicies::from_document(parse_json(bytes, &"document")?)
    }

    /// The statement that applies to an artifact in `repository_ref`
    /// (`registry/repository`; a trailing `@digest` is ignored, a tag is
    /// refused): the statement whose scopes name the repository exactly,
    /// else the `*` statement, else an error (an artifact no statement
    /// covers is untrusted). Scopes are compared as written: no reference
    /// expansion (`docker.io/library/...` is not `library/...`).
    pub fn select(&self, repository_ref: &str) -> Result<&TrustPolicy, PolicyError> {
        let repo = match repository_ref.rsplit_once('@') {
            Some((r, digest)) if digest.contains(':') => r,
            _ => repository_ref,
        };
        validate_registry_scope(repo).map_err(|why| PolicyError::InvalidArtifactReference {
            reference: repository_ref.to_string(),
            why,
        })?;
        self.policies
            .iter()
            .find(|p| !p.global && p.registry_scopes.iter().any(|s| s == repo))
            .or_else(|| self.global())
            .ok_or_else(|| PolicyError::NoApplicablePolicy {
                reference: repo.to_string(),
            })
    }

    /// The `*` statement, if any.
    pub fn global(&self) -> Option<&TrustPolicy> {
        self.policies.iter().find(|p| p.global)
    }
}

/// A validated blob trust policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobPolicies {
    /// The document as written.
    pub document: BlobDocument,
    /// Its statements, validated, in document order.
    pub policies: Vec<TrustPolicy>,
}

impl BlobPolicies {
    /// Validates a document: the rules of [`OciPolicies::from_document`]
    /// that do not concern registry scopes, plus at most one statement with
    /// `globalPolicy: true`, which may not be `skip` (the specification's
    /// blob constraints; notation-go's check of the latter never fires, so
    /// notation accepts such a document).
    pub fn from_document(document: BlobDocument) -> Result<Self, PolicyError> {
        validate_header(
            &document.version,
            document.trust_policies.iter().map(|s| s.name.as_str()),
        )?;
        let mut policies = Vec::with_capacity(document.trust_policies.len());
        let mut global: Option<&str> = None;
        for st in &document.trust_policies {
            let mut policy = validate_core(
                &st.name,
                &st.signature_verification,
                &st.trust_stores,
                &st.trusted_identities,
            )?;
            if st.global_policy {
                claim_global(&mut global, &st.name, &policy)?;
            }
            policy.global = st.global_policy;
            policies.push(policy);
        }
        Ok(BlobPolicies { document, policies })
    }

    /// Parses and validates a JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, PolicyError> {
        BlobPolicies::from_document(parse_json(bytes, &"document")?)
    }

    /// The statement for a blob: the one named `name` exactly, or with no
    /// name the global statement; an error otherwise (the blob is then
    /// untrusted). A name never falls back to the global statement: a
    /// mistyped name must not silently select a different policy.
    pub fn select(&self, name: Option<&str>) -> Result<&TrustPolicy, PolicyError> {
        match name {
            Some(n) => self.policies.iter().find(|p| p.name == n).ok_or_else(|| {
                PolicyError::NoPolicyNamed {
                    name: n.to_string(),
                }
            }),
            None => self.global().ok_or(PolicyError::NoGlobalPolicy),
        }
    }

    /// The `globalPolicy` statement, if any.
    pub fn global(&self) -> Option<&TrustPolicy> {
        self.policies.iter().find(|p| p.global)
    }
}

/// Reads a policy file: a regular file, not a symbolic link (notation's
/// rule: a link would let whoever controls its target set the policy).
fn read_policy_file(path: &Path) -> Result<Vec<u8>, PolicyError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| PolicyError::Read {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    if !meta.file_type().is_file() {
        return Err(PolicyError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    std::fs::read(path).map_err(|e| PolicyError::Read {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// Parses a document as written; `origin` (the file, or "document") names
/// it in the error.
fn parse_json<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    origin: &dyn fmt::Display,
) -> Result<T, PolicyError> {
    serde_json::from_slice(bytes).map_err(|e| PolicyError::Malformed {
        origin: origin.to_string(),
        why: e.to_string(),
    })
}

fn parse_file<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, PolicyError> {
    let bytes = read_policy_file(path)?;
    parse_json(&bytes, &path.display())
}

fn in_file(path: &Path) -> impl FnOnce(PolicyError) -> PolicyError + '_ {
    move |e| PolicyError::InFile {
        path: path.to_path_buf(),
        error: Box::new(e),
    }
}

/// Loads and validates an OCI trust policy file (`trustpolicy.oci.json` or
/// `trustpolicy.json`; see [`default_oci_policy_path`]).
pub fn load_oci(path: impl AsRef<Path>) -> Result<OciPolicies, PolicyError> {
    let path = path.as_ref();
    OciPolicies::from_document(parse_file(path)?).map_err(in_file(path))
}

/// Loads and validates a blob trust policy file (`trustpolicy.blob.json`).
pub fn load_blob(path: impl AsRef<Path>) -> Result<BlobPolicies, PolicyError> {
    let path = path.as_ref();
    BlobPolicies::from_document(parse_file(path)?).map_err(in_file(path))
}

/// The OCI policy file notation would read in `config_dir`:
/// `trustpolicy.oci.json` unless it does not exist, then
/// `trustpolicy.json` if that exists. When neither exists the result is
/// the `trustpolicy.oci.json` path (the one to create), so loading it
/// reports a missing file under the current name. Only a missing file
/// falls back: if `trustpolicy.oci.json` exists but is unusable (a link,
/// unreadable), that is reported rather than silently using an older file.
pub fn oci_policy_path_in(config_dir: &Path) -> PathBuf {
    let current = config_dir.join(OCI_POLICY_FILE);
    match std::fs::symlink_metadata(&current) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let legacy = config_dir.join(LEGACY_OCI_POLICY_FILE);
            if std::fs::symlink_metadata(&legacy).is_ok() {
                legacy
            } else {
                current
            }
        }
        _ => current,
    }
}

/// notation's OCI trust policy file ([`oci_policy_path_in`] notation's
/// configuration directory).
pub fn default_oci_policy_path() -> Option<PathBuf> {
    notation_config_dir().map(|d| oci_policy_path_in(&d))
}

/// notation's blob trust policy file.
pub fn default_blob_policy_path() -> Option<PathBuf> {
    notation_config_dir().map(|d| d.join(BLOB_POLICY_FILE))
}
