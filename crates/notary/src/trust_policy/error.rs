//! Why a trust policy document was refused or no statement applies.

use super::*;

/// Why a policy document was refused or no statement applies. Messages are
/// one line and name the statement concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read trust policy {}: {why}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's message.
        why: String,
    },
    /// The file is a symbolic link or not a file.
    #[error("trust policy {} is not a regular file (symbolic links are not allowed)", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
    },
    /// Not JSON, or not shaped like a trust policy document.
    #[error("malformed trust policy {origin}: {why}")]
    Malformed {
        /// Where it came from (a path, or "document").
        origin: String,
        /// The parser's message.
        why: String,
    },
    /// A validation error in a file.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// The error.
        error: Box<PolicyError>,
    },
    /// `version` is absent or empty.
    #[error("trust policy document has no version (it must be \"1.0\")")]
    MissingVersion,
    /// `version` is not `1.0`.
    #[error("trust policy document version {version:?} is not supported (only \"1.0\")")]
    UnsupportedVersion {
        /// The version found.
        version: String,
    },
    /// `trustPolicies` is absent or empty.
    #[error("trust policy document has no trust policy statements")]
    NoStatements,
    /// A statement without a name.
    #[error("trust policy statement #{index} has no name (every statement needs one)")]
    MissingName {
        /// Position of the statement (from 1).
        index: usize,
    },
    /// Two statements with one name.
    #[error(
        "trust policy statement name {policy:?} is used more than once (names must be unique)"
    )]
    DuplicateName {
        /// The name.
        policy: String,
    },
    /// `registryScopes` is absent or empty.
    #[error(
        "trust policy statement {policy:?} has no registry scopes (give repositories or \"*\")"
    )]
    NoRegistryScopes {
        /// The statement.
        policy: String,
    },
    /// `*` next to other scopes.
    #[error("trust policy statement {policy:?} uses the wildcard scope \"*\" together with other scopes (\"*\" must be alone)")]
    WildcardScopeNotAlone {
        /// The statement.
        policy: String,
    },
    /// A scope that is not a fully qualified repository.
    #[error("trust policy statement {policy:?} has invalid registry scope {scope:?}: {why}")]
    InvalidRegistryScope {
        /// The statement.
        policy: String,
        /// The scope.
        scope: String,
        /// What is wrong.
        why: String,
    },
    /// One scope in two statements (or twice in one).
    #[error("registry scope {scope:?} appears in trust policy statements {first:?} and {second:?} (a scope may be used once)")]
    RepeatedRegistryScope {
        /// The scope.
        scope: String,
        /// The first statement using it.
        first: String,
        /// The next one (may be the same statement).
        second: String,
    },
    /// Two global statements (`*` scope, or `globalPolicy: true`).
    #[error("trust policy statements {first:?} and {second:?} are both global (only one statement may be)")]
    MultipleGlobalPolicies {
        /// The first.
        first: String,
        /// The second.
        second: String,
    },
    /// A global statement at level `skip`.
    #[error("trust policy statement {policy:?} is global and cannot use the skip level (that would skip verification of everything not matched by another statement)")]
    GlobalSkip {
        /// The statement.
        policy: String,
    },
    /// Level missing or unknown, or overrides invalid.
    #[error("trust policy statement {policy:?} has invalid signatureVerification: {why}")]
    InvalidVerification {
        /// The statement.
        policy: String,
        /// What is wrong.
        why: String,
    },
    /// A `skip` statement with trust stores or identities.
    #[error("trust policy statement {policy:?} skips verification but has trust stores or trusted identities (remove them, or choose another level)")]
    SkipWithTrust {
        /// The statement.
        policy: String,
    },
    /// A verifying statement without trust stores or identities.
    #[error("trust policy statement {policy:?} has no {missing} (both trust stores and trusted identities are required unless the level is skip)")]
    MissingTrust {
        /// The statement.
        policy: String,
        /// What is missing.
        missing: &'static str,
    },
    /// A trust store reference that is malformed.
    #[error("trust policy statement {policy:?}: {error}")]
    InvalidTrustStore {
        /// The statement.
        policy: String,
        /// What is wrong.
        error: StoreRefError,
    },
    /// `*` next to other identities.
    #[error("trust policy statement {policy:?} uses the wildcard identity \"*\" together with other identities (\"*\" must be alone)")]
    WildcardIdentityNotAlone {
        /// The statement.
        policy: String,
    },
    /// A trusted identity that does not parse or lacks mandatory
    /// attributes.
    #[error("trust policy statement {policy:?} has invalid trusted identity {identity:?}: {why}")]
    InvalidTrustedIdentity {
        /// The statement.
        policy: String,
        /// The identity as written.
        identity: String,
        /// What is wrong.
        why: String,
    },
    /// Two identities some certificate could match both of.
    #[error("trust policy statement {policy:?} has overlapping trusted identities {first:?} and {second:?} (a certificate could match both)")]
    OverlappingIdentities {
        /// The statement.
        policy: String,
        /// One identity as written.
        first: String,
        /// The other.
        second: String,
    },
    /// The artifact reference given to [`OciPolicies::select`] is not a
    /// fully qualified repository.
    #[error("artifact reference {reference:?} is not registry/repository: {why}")]
    InvalidArtifactReference {
        /// The reference.
        reference: String,
        /// What is wrong.
        why: String,
    },
    /// No statement's scope covers the repository and there is no `*`.
    #[error("no trust policy statement applies to {reference:?} (no registry scope matches and there is no \"*\" statement)")]
    NoApplicablePolicy {
        /// The repository.
        reference: String,
    },
    /// No blob statement has this name.
    #[error("no blob trust policy statement is named {name:?}")]
    NoPolicyNamed {
        /// The name.
        name: String,
    },
    /// No blob statement is global and no name was given.
    #[error(
        "no blob trust policy statement is marked globalPolicy, and no statement name was given"
    )]
    NoGlobalPolicy,
}

impl PolicyError {
    /// The error without its file context.
    pub fn cause(&self) -> &PolicyError {
        match self {
            PolicyError::InFile { error, .. } => error.cause(),
            e => e,
        }
    }
}
