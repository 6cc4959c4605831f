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
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

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
// Documents, as written on disk
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Verification levels
// ---------------------------------------------------------------------------

/// The predefined verification levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Every validation enforced.
    Strict,
    /// Integrity and authenticity enforced; the rest logged.
    Permissive,
    /// Integrity enforced; the rest logged.
    Audit,
    /// No verification at all.
    Skip,
}

impl Level {
    /// Every level.
    pub const ALL: [Level; 4] = [Level::Strict, Level::Permissive, Level::Audit, Level::Skip];

    /// The name used in policies.
    pub fn name(self) -> &'static str {
        match self {
            Level::Strict => "strict",
            Level::Permissive => "permissive",
            Level::Audit => "audit",
            Level::Skip => "skip",
        }
    }

    /// The level with this exact name (case-sensitive, as notation).
    pub fn from_name(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == s)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The validations of signature verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validation {
    /// The artifact and the signature are unaltered.
    Integrity,
    /// The signer is trusted (trust store and trusted identities).
    Authenticity,
    /// The signature was made while the certificates were valid.
    AuthenticTimestamp,
    /// The signature's expiry time has not passed.
    Expiry,
    /// No certificate of the chain is revoked.
    Revocation,
}

impl Validation {
    /// Every validation, in the specification's table order.
    pub const ALL: [Validation; 5] = [
        Validation::Integrity,
        Validation::Authenticity,
        Validation::AuthenticTimestamp,
        Validation::Expiry,
        Validation::Revocation,
    ];

    /// The name used in `override` maps.
    pub fn name(self) -> &'static str {
        match self {
            Validation::Integrity => "integrity",
            Validation::Authenticity => "authenticity",
            Validation::AuthenticTimestamp => "authenticTimestamp",
            Validation::Expiry => "expiry",
            Validation::Revocation => "revocation",
        }
    }

    /// The validation with this exact name.
    pub fn from_name(s: &str) -> Option<Validation> {
        Validation::ALL.into_iter().find(|v| v.name() == s)
    }

    /// The actions an `override` may set for this validation: integrity is
    /// never overridable (without it nothing else means anything); only
    /// revocation may be skipped (it may need the network, and offline
    /// verification is a legitimate need); the others may be enforced or
    /// logged.
    pub fn overridable_to(self) -> &'static [Action] {
        match self {
            Validation::Integrity => &[],
            Validation::Revocation => &[Action::Enforce, Action::Log, Action::Skip],
            _ => &[Action::Enforce, Action::Log],
        }
    }
}

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happens to a validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A failure fails the verification.
    Enforce,
    /// A failure is logged and verification continues.
    Log,
    /// The validation is not performed.
    Skip,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 3] = [Action::Enforce, Action::Log, Action::Skip];

    /// The name used in `override` maps.
    pub fn name(self) -> &'static str {
        match self {
            Action::Enforce => "enforce",
            Action::Log => "log",
            Action::Skip => "skip",
        }
    }

    /// The action with this exact name.
    pub fn from_name(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The effective action of every validation for one statement: its level's
/// preset (the specification's table) with the statement's overrides
/// applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerificationLevel {
    /// The level the statement names.
    pub level: Level,
    /// Integrity: enforced, except at `skip`.
    pub integrity: Action,
    /// Authenticity.
    pub authenticity: Action,
    /// Authentic timestamp.
    pub authentic_timestamp: Action,
    /// Expiry.
    pub expiry: Action,
    /// Revocation.
    pub revocation: Action,
}

impl VerificationLevel {
    /// The specification's table for a level, without overrides.
    pub fn preset(level: Level) -> Self {
        use Action::{Enforce as E, Log as L, Skip as S};
        let (i, a, t, x, r) = match level {
            Level::Strict => (E, E, E, E, E),
            Level::Permissive => (E, E, L, L, L),
            Level::Audit => (E, L, L, L, L),
            Level::Skip => (S, S, S, S, S),
        };
        VerificationLevel {
            level,
            integrity: i,
            authenticity: a,
            authentic_timestamp: t,
            expiry: x,
            revocation: r,
        }
    }

    /// Resolves a `signatureVerification` level name and `override` map.
    /// The error is the reason, without the statement's name.
    pub fn resolve(level: &str, overrides: &BTreeMap<String, String>) -> Result<Self, String> {
        if level.is_empty() {
            return Err(
                "signatureVerification.level is missing (strict, permissive, audit or skip)"
                    .to_string(),
            );
        }
        let base = Level::from_name(level).ok_or_else(|| {
            format!("unknown verification level {level:?} (strict, permissive, audit or skip)")
        })?;
        let mut out = VerificationLevel::preset(base);
        if overrides.is_empty() {
            return Ok(out);
        }
        if base == Level::Skip {
            return Err("the skip level cannot be customized with override".to_string());
        }
        for (key, value) in overrides {
            let v = Validation::from_name(key).ok_or_else(|| {
                format!(
                    "override names unknown validation {key:?} (authenticity, authenticTimestamp, expiry or revocation)"
                )
            })?;
            let a = Action::from_name(value).ok_or_else(|| {
                format!("override sets {key} to unknown action {value:?} (enforce, log or skip)")
            })?;
            let allowed = v.overridable_to();
            if allowed.is_empty() {
                return Err(format!("{key} cannot be overridden"));
            }
            if !allowed.contains(&a) {
                let names: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
                return Err(format!(
                    "override cannot set {key} to {value} (allowed: {})",
                    names.join(", ")
                ));
            }
            *out.action_mut(v) = a;
        }
        Ok(out)
    }

    /// The action for one validation.
    pub fn action(&self, v: Validation) -> Action {
        match v {
            Validation::Integrity => self.integrity,
            Validation::Authenticity => self.authenticity,
            Validation::AuthenticTimestamp => self.authentic_timestamp,
            Validation::Expiry => self.expiry,
            Validation::Revocation => self.revocation,
        }
    }

    fn action_mut(&mut self, v: Validation) -> &mut Action {
        match v {
            Validation::Integrity => &mut self.integrity,
            Validation::Authenticity => &mut self.authenticity,
            Validation::AuthenticTimestamp => &mut self.authentic_timestamp,
            Validation::Expiry => &mut self.expiry,
            Validation::Revocation => &mut self.revocation,
        }
    }

    /// Whether overrides changed anything from the level's preset.
    pub fn is_custom(&self) -> bool {
        *self != VerificationLevel::preset(self.level)
    }
}

/// When the timestamp countersignature is verified (when a `tsa` store is
/// configured at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VerifyTimestamp {
    /// Always (the default).
    #[default]
    Always,
    /// Only when some certificate of the signing chain has expired.
    AfterCertExpiry,
}

impl VerifyTimestamp {
    /// Parses the policy value. Absent or empty means `always`: notation
    /// cannot tell an empty string from an absent member, so it accepts
    /// both, and so does this.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.unwrap_or("") {
            "" | "always" => Ok(VerifyTimestamp::Always),
            "afterCertExpiry" => Ok(VerifyTimestamp::AfterCertExpiry),
            other => Err(format!(
                "verifyTimestamp must be \"always\" or \"afterCertExpiry\", not {other:?}"
            )),
        }
    }

    /// The policy value.
    pub fn name(self) -> &'static str {
        match self {
            VerifyTimestamp::Always => "always",
            VerifyTimestamp::AfterCertExpiry => "afterCertExpiry",
        }
    }
}

// ---------------------------------------------------------------------------
// Distinguished names and trusted identities
// ---------------------------------------------------------------------------

/// Why a distinguished name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    /// Nothing but spaces.
    #[error("the distinguished name is empty")]
    Empty,
    /// An RDN without `type=value` (e.g. `,,`, a trailing `,`, `CN`).
    #[error("incomplete attribute at byte {at}: expected type=value")]
    Incomplete {
        /// Byte offset in the DN.
        at: usize,
    },
    /// The attribute type is neither a keyword nor a dotted OID.
    #[error("invalid attribute type {0:?}")]
    InvalidType(String),
    /// An attribute with an empty value.
    #[error("attribute {0} has an empty value")]
    EmptyValue(String),
    /// A `#`-prefixed (hex BER) value, which notation does not support.
    #[error("attribute {0} has a #-encoded (BER) value, which is not supported")]
    HexValue(String),
    /// A `\` not followed by a special character or two hex digits.
    #[error("invalid escape at byte {at}")]
    BadEscape {
        /// Byte offset in the DN.
        at: usize,
    },
    /// Hex escapes that do not form UTF-8.
    #[error("attribute {0} value is not valid UTF-8 once unescaped")]
    NotUtf8(String),
    /// `A=x+B=y`: multi-valued RDNs are not supported (by notation either).
    #[error("multi-valued RDN ({0}+...) is not supported")]
    MultiValued(String),
    /// The same attribute type twice.
    #[error("attribute {0} appears more than once")]
    Duplicate(String),
    /// A trusted identity without C, ST (or S) or O.
    #[error("mandatory attribute {0} is missing (C, ST or S, and O are required)")]
    MissingMandatory(&'static str),
}

/// A distinguished name: (type, value) attribute pairs, one per RDN, in
/// written order. Types are normalized so that spellings of one attribute
/// compare equal: keywords upper-cased (RFC 4514 keywords are
/// case-insensitive), `S` read as `ST` (the specification allows both),
/// well-known OIDs replaced by their keyword. Values are unescaped and
/// compared exactly, as notation compares them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DistinguishedName {
    attributes: Vec<(String, String)>,
}

/// Keywords for the OIDs of the attributes certificate subjects commonly
/// carry (RFC 4514 section 3 and Go's `pkix.Name`).
const OID_KEYWORDS: [(&str, &str); 11] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.17", "POSTALCODE"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// The canonical form of an attribute type name (see
/// [`DistinguishedName`]); `None` if it is neither a keyword nor an OID.
pub fn normalize_attribute_type(ty: &str) -> Option<String> {
    let ty = ty.trim();
    let first = ty.bytes().next()?;
    if first.is_ascii_alphabetic() {
        if !ty.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return None;
        }
        let up = ty.to_ascii_uppercase();
        return Some(if up == "S" { "ST".to_string() } else { up });
    }
    // numericoid: number 1*("." number), number without leading zeros.
    let parts: Vec<&str> = ty.split('.').collect();
    let numeric = parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        });
    if !numeric {
        return None;
    }
    Some(
        OID_KEYWORDS
            .iter()
            .find(|(oid, _)| *oid == ty)
            .map_or_else(|| ty.to_string(), |(_, k)| k.to_string()),
    )
}

impl DistinguishedName {
    /// Parses an RFC 4514 string representation, with the leniencies
    /// notation has (it parses with go-ldap): spaces around types and values
    /// are ignored unless escaped, `;` separates RDNs like `,`, and `"`,
    /// `<`, `>` are accepted unescaped. Escapes are `\` followed by one of
    /// `` "#+,;<=>\`` or a space, or by two hex digits (one UTF-8 byte).
    ///
    /// Refused: multi-valued RDNs (`+`), a type given twice (`S` and `ST`
    /// are the same type), empty values, `#`-encoded values (notation
    /// refuses them), and anything malformed.
    pub fn parse(s: &str) -> Result<Self, DnError> {
        let b = s.as_bytes();
        if b.iter().all(|c| *c == b' ') {
            return Err(DnError::Empty);
        }
        let mut attributes: Vec<(String, String)> = Vec::new();
        let mut i = 0;
        loop {
            // Type: up to '='.
            let type_start = i;
            while i < b.len() && b[i] != b'=' {
                if matches!(b[i], b',' | b';' | b'+') {
                    return Err(DnError::Incomplete { at: type_start });
                }
                i += 1;
            }
            if i >= b.len() {
                return Err(DnError::Incomplete { at: type_start });
            }
            let raw_type = s[type_start..i].trim_matches(' ');
            if raw_type.is_empty() {
                return Err(DnError::Incomplete { at: type_start });
            }
            let ty = normalize_attribute_type(raw_type)
                .ok_or_else(|| DnError::InvalidType(raw_type.to_string()))?;
            i += 1; // '='

            // Value: up to an unescaped ',', ';' or '+'.
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i < b.len() && b[i] == b'#' {
                return Err(DnError::HexValue(ty));
            }
            let mut value: Vec<u8> = Vec::new();
            let mut trailing_spaces = 0usize;
            let mut separator = None;
            while i < b.len() {
                let c = b[i];
                match c {
                    b'\\' => {
                        let next = *b.get(i + 1).ok_or(DnError::BadEscape { at: i })?;
                        if matches!(
                            next,
                            b' ' | b'"' | b'#' | b'+' | b',' | b';' | b'<' | b'=' | b'>' | b'\\'
                        ) {
                            value.push(next);
                            i += 2;
                        } else {
                            let hex = s.get(i + 1..i + 3).ok_or(DnError::BadEscape { at: i })?;
                            let byte = u8::from_str_radix(hex, 16)
                                .ok()
                                .filter(|_| hex.bytes().all(|h| h.is_ascii_hexdigit()))
                                .ok_or(DnError::BadEscape { at: i })?;
                            value.push(byte);
                            i += 3;
                        }
                        trailing_spaces = 0;
                    }
                    b',' | b';' | b'+' => {
                        separator = Some(c);
                        i += 1;
                        break;
                    }
                    b' ' => {
                        value.push(c);
                        trailing_spaces += 1;
                        i += 1;
                    }
                    _ => {
                        value.push(c);
                        trailing_spaces = 0;
                        i += 1;
                    }
                }
            }
            value.truncate(value.len() - trailing_spaces);
            if value.is_empty() {
                return Err(DnError::EmptyValue(ty));
            }
            let value = String::from_utf8(value).map_err(|_| DnError::NotUtf8(ty.clone()))?;
            if separator == Some(b'+') {
                return Err(DnError::MultiValued(ty));
            }
            if attributes.iter().any(|(t, _)| *t == ty) {
                return Err(DnError::Duplicate(ty));
            }
            attributes.push((ty, value));
            match separator {
                None => break,
                Some(_) if i >= b.len() || b[i..].iter().all(|c| *c == b' ') => {
                    // A trailing separator leaves an empty RDN.
                    return Err(DnError::Incomplete { at: i });
                }
                Some(_) => {}
            }
        }
        Ok(DistinguishedName { attributes })
    }

    /// Parses the DN of an `x509.subject:` trusted identity: a valid DN
    /// that has C, ST (or S) and O, the specification's minimum (a subject
    /// that pins less than country, state and organization would trust too
    /// broad a set of certificates from a public CA).
    pub fn parse_identity(s: &str) -> Result<Self, DnError> {
        let dn = DistinguishedName::parse(s)?;
        for m in ["C", "ST", "O"] {
            if dn.get(m).is_none() {
                return Err(DnError::MissingMandatory(m));
            }
        }
        Ok(dn)
    }

    /// Builds a DN from (type, value) pairs such as a certificate's subject
    /// attributes, normalizing the types. `None` if a type is invalid or
    /// repeated, or a value is empty.
    pub fn from_attributes(attrs: &[(String, String)]) -> Option<Self> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (t, v) in attrs {
            let t = normalize_attribute_type(t)?;
            if v.is_empty() || out.iter().any(|(o, _)| *o == t) {
                return None;
            }
            out.push((t, v.clone()));
        }
        Some(DistinguishedName { attributes: out })
    }

    /// The (normalized type, value) pairs, in written order.
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }

    /// The value of an attribute (type normalized first).
    pub fn get(&self, ty: &str) -> Option<&str> {
        let ty = normalize_attribute_type(ty)?;
        self.attributes
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, v)| v.as_str())
    }

    /// Whether every attribute of `self` is in `other` with the same value:
    /// how a trusted identity matches a certificate subject.
    pub fn is_subset_of(&self, other: &DistinguishedName) -> bool {
        self.attributes
            .iter()
            .all(|(t, v)| other.attributes.iter().any(|(ot, ov)| ot == t && ov == v))
    }

    /// Whether some certificate subject could match both DNs: they agree on
    /// every attribute type they both have. This is the specification's
    /// definition of overlapping identities ("there exists a certificate
    /// for which multiple DNs evaluate true"); it covers the subset case
    /// that notation checks, and also two identities that pin different
    /// optional attributes under the same C, ST and O.
    pub fn overlaps(&self, other: &DistinguishedName) -> bool {
        self.attributes.iter().all(|(t, v)| {
            other
                .attributes
                .iter()
                .find(|(ot, _)| ot == t)
                .is_none_or(|(_, ov)| ov == v)
        })
    }
}

impl fmt::Display for DistinguishedName {
    /// RFC 4514 form, `, `-separated, escaping what needs escaping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (t, v)) in self.attributes.iter().enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{t}=")?;
            let last = v.chars().count().saturating_sub(1);
            for (k, c) in v.chars().enumerate() {
                match c {
                    ' ' if k == 0 || k == last => f.write_str("\\ ")?,
                    '#' if k == 0 => f.write_str("\\#")?,
                    '"' | '+' | ',' | ';' | '<' | '>' | '\\' => write!(f, "\\{c}")?,
                    c if c.is_control() => {
                        let mut buf = [0u8; 4];
                        for byte in c.encode_utf8(&mut buf).bytes() {
                            write!(f, "\\{byte:02x}")?;
                        }
                    }
                    c => write!(f, "{c}")?,
                }
            }
        }
        Ok(())
    }
}

/// One entry of `trustedIdentities`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrustedIdentity {
    /// `*`: any signer whose chain leads to a certificate of the policy's
    /// `ca`/`signingAuthority` stores.
    Any,
    /// `x509.subject: <DN>`: signers whose leaf certificate subject contains
    /// all these attributes.
    X509Subject(DistinguishedName),
}

impl TrustedIdentity {
    /// Parses an entry. Only `*` and `x509.subject:` are accepted: notation
    /// accepts other `prefix:value` entries at load time but ignores them
    /// when verifying (they are meant for plugins), so a policy relying on
    /// one could never authenticate a signer here. Refusing it says so when
    /// the policy is loaded rather than at every verification.
    pub fn parse(entry: &str) -> Result<Self, String> {
        if entry.is_empty() {
            return Err("empty trusted identity".to_string());
        }
        if entry == WILDCARD {
            return Ok(TrustedIdentity::Any);
        }
        let (prefix, value) = entry.split_once(':').ok_or_else(|| {
            format!("missing separator: the format is \"{X509_SUBJECT}: <DN>\" or \"*\"")
        })?;
        if prefix != X509_SUBJECT {
            return Err(format!(
                "unsupported identity type {prefix:?} (only {X509_SUBJECT:?} and \"*\")"
            ));
        }
        if value.trim_matches(' ').is_empty() {
            return Err("x509.subject without a distinguished name".to_string());
        }
        DistinguishedName::parse_identity(value)
            .map(TrustedIdentity::X509Subject)
            .map_err(|e| format!("invalid distinguished name: {e}"))
    }
}

impl fmt::Display for TrustedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustedIdentity::Any => f.write_str(WILDCARD),
            TrustedIdentity::X509Subject(dn) => write!(f, "{X509_SUBJECT}: {dn}"),
        }
    }
}

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

/// The parts shared by OCI and blob statements, validated.
fn validate_core(
    name: &str,
    sv: &SignatureVerification,
    trust_stores: &[String],
    trusted_identities: &[String],
) -> Result<
    (
        VerificationLevel,
        VerifyTimestamp,
        Vec<StoreRef>,
        Vec<TrustedIdentity>,
    ),
    PolicyError,
> {
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
        return Ok((verification, verify_timestamp, Vec::new(), Vec::new()));
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
    Ok((verification, verify_timestamp, stores, identities))
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
            let (verification, verify_timestamp, trust_stores, trusted_identities) = validate_core(
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
                if let Some(first) = global.replace(&st.name) {
                    return Err(PolicyError::MultipleGlobalPolicies {
                        first: first.to_string(),
                        second: st.name.clone(),
                    });
                }
                if verification.level == Level::Skip {
                    return Err(PolicyError::GlobalSkip {
                        policy: st.name.clone(),
                    });
                }
            }
            policies.push(TrustPolicy {
                name: st.name.clone(),
                registry_scopes: st.registry_scopes.clone(),
                global: is_global,
                verification,
                verify_timestamp,
                trust_stores,
                trusted_identities,
            });
        }
        Ok(OciPolicies { document, policies })
    }

    /// Parses and validates a JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, PolicyError> {
        let doc: OciDocument =
            serde_json::from_slice(bytes).map_err(|e| PolicyError::Malformed {
                origin: "document".to_string(),
                why: e.to_string(),
            })?;
        OciPolicies::from_document(doc)
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
            let (verification, verify_timestamp, trust_stores, trusted_identities) = validate_core(
                &st.name,
                &st.signature_verification,
                &st.trust_stores,
                &st.trusted_identities,
            )?;
            if st.global_policy {
                if let Some(first) = global.replace(&st.name) {
                    return Err(PolicyError::MultipleGlobalPolicies {
                        first: first.to_string(),
                        second: st.name.clone(),
                    });
                }
                if verification.level == Level::Skip {
                    return Err(PolicyError::GlobalSkip {
                        policy: st.name.clone(),
                    });
                }
            }
            policies.push(TrustPolicy {
                name: st.name.clone(),
                registry_scopes: Vec::new(),
                global: st.global_policy,
                verification,
                verify_timestamp,
                trust_stores,
                trusted_identities,
            });
        }
        Ok(BlobPolicies { document, policies })
    }

    /// Parses and validates a JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, PolicyError> {
        let doc: BlobDocument =
            serde_json::from_slice(bytes).map_err(|e| PolicyError::Malformed {
                origin: "document".to_string(),
                why: e.to_string(),
            })?;
        BlobPolicies::from_document(doc)
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

fn parse_file<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, PolicyError> {
    let bytes = read_policy_file(path)?;
    serde_json::from_slice(&bytes).map_err(|e| PolicyError::Malformed {
        origin: path.display().to_string(),
        why: e.to_string(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(t, v)| (t.to_string(), v.to_string()))
            .collect()
    }

    fn dn(s: &str) -> Vec<(String, String)> {
        DistinguishedName::parse(s).unwrap().attributes().to_vec()
    }

    #[test]
    fn level_table_is_the_specifications() {
        use Action::*;
        let rows = [
            (Level::Strict, [Enforce, Enforce, Enforce, Enforce, Enforce]),
            (Level::Permissive, [Enforce, Enforce, Log, Log, Log]),
            (Level::Audit, [Enforce, Log, Log, Log, Log]),
            (Level::Skip, [Skip, Skip, Skip, Skip, Skip]),
        ];
        for (level, actions) in rows {
            let l = VerificationLevel::resolve(level.name(), &BTreeMap::new()).unwrap();
            assert_eq!(l.level, level);
            assert!(!l.is_custom());
            for (v, a) in Validation::ALL.into_iter().zip(actions) {
                assert_eq!(l.action(v), a, "{level} {v}");
            }
        }
    }

    fn ov(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_apply_within_their_rules() {
        let l =
            VerificationLevel::resolve("strict", &ov(&[("expiry", "log"), ("revocation", "skip")]))
                .unwrap();
        assert_eq!(l.expiry, Action::Log);
        assert_eq!(l.revocation, Action::Skip);
        assert_eq!(l.authenticity, Action::Enforce);
        assert!(l.is_custom());
        let l = VerificationLevel::resolve(
            "audit",
            &ov(&[
                ("authenticity", "enforce"),
                ("authenticTimestamp", "enforce"),
            ]),
        )
        .unwrap();
        assert_eq!(l.authenticity, Action::Enforce);
        assert_eq!(l.authentic_timestamp, Action::Enforce);
        assert_eq!(l.expiry, Action::Log);
        // Setting an action to the preset's is allowed and not custom.
        let l = VerificationLevel::resolve("permissive", &ov(&[("expiry", "log")])).unwrap();
        assert!(!l.is_custom());

        for (level, o, needle) in [
            (
                "strict",
                ov(&[("integrity", "log")]),
                "integrity cannot be overridden",
            ),
            (
                "strict",
                ov(&[("integrity", "enforce")]),
                "integrity cannot be overridden",
            ),
            (
                "strict",
                ov(&[("authenticity", "skip")]),
                "cannot set authenticity to skip",
            ),
            (
                "strict",
                ov(&[("authenticTimestamp", "skip")]),
                "cannot set authenticTimestamp",
            ),
            (
                "strict",
                ov(&[("expiry", "skip")]),
                "cannot set expiry to skip",
            ),
            (
                "skip",
                ov(&[("authenticity", "log")]),
                "skip level cannot be customized",
            ),
            ("strict", ov(&[("Expiry", "log")]), "unknown validation"),
            ("strict", ov(&[("expiry", "Log")]), "unknown action"),
            ("strict", ov(&[("expiry", "logged")]), "unknown action"),
            ("Strict", ov(&[]), "unknown verification level"),
            ("", ov(&[]), "level is missing"),
            ("custom", ov(&[]), "unknown verification level"),
        ] {
            let e = VerificationLevel::resolve(level, &o).unwrap_err();
            assert!(e.contains(needle), "{level} {o:?}: {e}");
        }
    }

    #[test]
    fn verify_timestamp_values() {
        assert_eq!(VerifyTimestamp::parse(None), Ok(VerifyTimestamp::Always));
        assert_eq!(
            VerifyTimestamp::parse(Some("")),
            Ok(VerifyTimestamp::Always)
        );
        assert_eq!(
            VerifyTimestamp::parse(Some("always")),
            Ok(VerifyTimestamp::Always)
        );
        assert_eq!(
            VerifyTimestamp::parse(Some("afterCertExpiry")),
            Ok(VerifyTimestamp::AfterCertExpiry)
        );
        for bad in ["Always", "never", "aftercertexpiry", "after"] {
            assert!(VerifyTimestamp::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn dn_parsing_follows_rfc4514_and_notations_leniencies() {
        assert_eq!(
            dn("C=US, ST=WA, L=Seattle, O=acme-rockets.io, OU=Finance, CN=SecureBuilder"),
            attrs(&[
                ("C", "US"),
                ("ST", "WA"),
                ("L", "Seattle"),
                ("O", "acme-rockets.io"),
                ("OU", "Finance"),
                ("CN", "SecureBuilder")
            ])
        );
        // Leading space (the e2e vectors write "x509.subject: CN=..."),
        // spaces around '=' and separators.
        assert_eq!(
            dn(" CN = e2e ,O=Notary"),
            attrs(&[("CN", "e2e"), ("O", "Notary")])
        );
        // Escapes: special characters, hex, escaped leading/trailing space.
        assert_eq!(
            dn(r#"O=My "special" Org \, \; \\ others"#),
            attrs(&[("O", r#"My "special" Org , ; \ others"#)])
        );
        assert_eq!(dn(r"O=a\2Cb"), attrs(&[("O", "a,b")]));
        assert_eq!(dn(r"O=\ x\ "), attrs(&[("O", " x ")]));
        assert_eq!(dn(r"O=caf\C3\A9"), attrs(&[("O", "café")]));
        assert_eq!(dn(r"O=\#1"), attrs(&[("O", "#1")]));
        assert_eq!(dn("O=  My.  Org"), attrs(&[("O", "My.  Org")]));
        assert_eq!(dn("O=a=b"), attrs(&[("O", "a=b")]));
        // ';' separates like ','.
        assert_eq!(dn("C=US;O=x"), attrs(&[("C", "US"), ("O", "x")]));
        // Types: case-insensitive, S = ST, OIDs mapped.
        assert_eq!(
            dn("c=US,s=WA,o=x,2.5.4.3=name,1.2.3.4=v"),
            attrs(&[
                ("C", "US"),
                ("ST", "WA"),
                ("O", "x"),
                ("CN", "name"),
                ("1.2.3.4", "v")
            ])
        );

        for (bad, want) in [
            ("", DnError::Empty),
            ("   ", DnError::Empty),
            (",,,", DnError::Incomplete { at: 0 }),
            ("CN", DnError::Incomplete { at: 0 }),
            ("C=US,", DnError::Incomplete { at: 5 }),
            ("C=US,,O=x", DnError::Incomplete { at: 5 }),
            ("=US", DnError::Incomplete { at: 0 }),
            ("C=US,ST", DnError::Incomplete { at: 5 }),
            ("C=US,C=IN", DnError::Duplicate("C".into())),
            ("ST=WA,S=WA", DnError::Duplicate("ST".into())),
            ("C=US+ST=WA,O=MyOrg", DnError::MultiValued("C".into())),
            ("C=", DnError::EmptyValue("C".into())),
            ("C=  ,O=x", DnError::EmptyValue("C".into())),
            ("C=#0402", DnError::HexValue("C".into())),
            ("1C=US", DnError::InvalidType("1C".into())),
            ("C_x=US", DnError::InvalidType("C_x".into())),
            ("1.02=US", DnError::InvalidType("1.02".into())),
            (r"C=U\S", DnError::BadEscape { at: 3 }),
            (r"C=US\", DnError::BadEscape { at: 4 }),
            (r"C=\zz", DnError::BadEscape { at: 2 }),
            (r"C=\FF", DnError::NotUtf8("C".into())),
        ] {
            assert_eq!(DistinguishedName::parse(bad), Err(want), "{bad:?}");
        }
    }

    #[test]
    fn identity_dns_need_country_state_and_organization() {
        assert!(DistinguishedName::parse_identity("C=US,ST=WA,O=x").is_ok());
        assert!(DistinguishedName::parse_identity("C=US,S=WA,O=x").is_ok());
        assert_eq!(
            DistinguishedName::parse_identity("CN=e2e,L=Seattle,ST=WA,C=US"),
            Err(DnError::MissingMandatory("O"))
        );
        assert_eq!(
            DistinguishedName::parse_identity("CN=e2e,O=Notary,L=Seattle,C=US"),
            Err(DnError::MissingMandatory("ST"))
        );
        assert_eq!(
            DistinguishedName::parse_identity("CN=e2e,O=Notary,L=Seattle,ST=WA"),
            Err(DnError::MissingMandatory("C"))
        );
    }

    #[test]
    fn dn_display_round_trips() {
        for s in [
            r#"C=US, ST=WA, O=My "special" Org \, \; \\ others"#,
            r"C=US, ST=\ padded\ , O=\#hash",
            "C=US, ST=WA, O=café",
        ] {
            let d = DistinguishedName::parse(s).unwrap();
            let again = DistinguishedName::parse(&d.to_string()).unwrap();
            assert_eq!(d, again, "{s} -> {d}");
        }
    }

    #[test]
    fn trusted_identity_entries() {
        assert_eq!(TrustedIdentity::parse("*"), Ok(TrustedIdentity::Any));
        let i = TrustedIdentity::parse("x509.subject: C=US, ST=WA, O=acme").unwrap();
        assert_eq!(i.to_string(), "x509.subject: C=US, ST=WA, O=acme");
        for (bad, needle) in [
            ("", "empty"),
            ("x509.subject", "missing separator"),
            (
                "x509.subject CN=e2e,O=Notary,L=Seattle,ST=WA,C=US",
                "missing separator",
            ),
            ("x509.subject:", "without a distinguished name"),
            ("x509.subject:   ", "without a distinguished name"),
            ("unknown:my-identity", "unsupported identity type"),
            ("X509.subject:C=US,ST=WA,O=x", "unsupported identity type"),
            ("x509.subject:,,,", "invalid distinguished name"),
            ("x509.subject:C=US,ST=WA", "mandatory attribute O"),
            ("**", "missing separator"),
        ] {
            let e = TrustedIdentity::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn subset_and_overlap() {
        let a = DistinguishedName::parse("C=US,ST=WA,O=wabbit-network.io,OU=org1").unwrap();
        let b = DistinguishedName::parse("C=US,ST=WA,O=wabbit-network.io").unwrap();
        let c = DistinguishedName::parse("C=US,ST=WA,O=wabbit-network.io,CN=x").unwrap();
        let d = DistinguishedName::parse("C=US,ST=WA,O=wabbit-network.io,OU=org2").unwrap();
        let e = DistinguishedName::parse("C=AU,ST=Some-State,O=Internet Widgits Pty Ltd").unwrap();
        assert!(b.is_subset_of(&a));
        assert!(!a.is_subset_of(&b));
        // The specification's example: overlapping because b ⊂ a.
        assert!(a.overlaps(&b) && b.overlaps(&a));
        // Disjoint optional attributes: a certificate with OU=org1 and CN=x
        // matches both.
        assert!(a.overlaps(&c) && c.overlaps(&a));
        // Conflicting values: no certificate matches both.
        assert!(!a.overlaps(&d) && !d.overlaps(&a));
        assert!(!a.overlaps(&e));
        assert!(a.overlaps(&a));
    }

    #[test]
    fn registry_scopes_are_fully_qualified_repositories() {
        for ok in [
            "example.com/rep",
            "example.com:8080/rep/rep2",
            "example.com/rep/subrep/subsub",
            "10.10.10.10:8080/rep/rep2",
            "domain/rep",
            "domain:1234/rep",
            "localhost:5001/test-repo",
            "registry.acme-rockets.io/software/net-monitor",
            "docker.io/library/registry",
            "r.io/a.b/c_d/e__f/g---h",
            "Example.COM/rep",
        ] {
            assert_eq!(validate_registry_scope(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "1:1",
            "a,b",
            "abcd",
            "1111",
            "1,2",
            "example.com/rep:tag",
            "example.com/rep/subrep/sub:latest",
            "example.com",
            "rep/rep2:latest",
            "repository",
            "10.10.10.10",
            "10.10.10.10:8080/rep/rep2:latest",
            "localhost:5001\\test-repo",
            "example.com/*",
            "*/",
            "example*/",
            "ex*test",
            "example.com/Rep",
            "example.com/rep/",
            "example.com//rep",
            "example.com/-rep",
            "example.com/a..b",
            "example.com/a._b",
            "example.com/a___b",
            "https://example.com/rep",
            "example.com:/rep",
            "example.com:80a/rep",
            "-example.com/rep",
            "example.com/rep@sha256:abc",
        ] {
            assert!(validate_registry_scope(bad).is_err(), "{bad:?}");
        }
    }

    fn oci(json: serde_json::Value) -> Result<OciPolicies, PolicyError> {
        OciPolicies::from_json(json.to_string().as_bytes())
    }

    fn statement(name: &str, scopes: &[&str]) -> serde_json::Value {
        serde_json::json!({
            "name": name,
            "registryScopes": scopes,
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:acme-rockets"],
            "trustedIdentities": ["*"]
        })
    }

    #[test]
    fn selection_prefers_exact_scope_then_wildcard() {
        let p = oci(serde_json::json!({
            "version": "1.0",
            "trustPolicies": [
                statement("global", &["*"]),
                statement("net", &["registry.acme-rockets.io/software/net-monitor", "registry.acme-rockets.io/software/net-logger"]),
                {"name": "unsigned", "registryScopes": ["registry.wabbit-networks.io/software/unsigned/net-utils"],
                 "signatureVerification": {"level": "skip"}}
            ]
        }))
        .unwrap();
        assert_eq!(
            p.select("registry.acme-rockets.io/software/net-monitor")
                .unwrap()
                .name,
            "net"
        );
        assert_eq!(
            p.select("registry.acme-rockets.io/software/net-logger")
                .unwrap()
                .name,
            "net"
        );
        assert_eq!(
            p.select("registry.acme-rockets.io/software/net-monitor@sha256:0123")
                .unwrap()
                .name,
            "net"
        );
        let skip = p
            .select("registry.wabbit-networks.io/software/unsigned/net-utils")
            .unwrap();
        assert!(skip.is_skip());
        assert_eq!(
            p.select("registry.acme-rockets.io/software/other")
                .unwrap()
                .name,
            "global"
        );
        // No prefix matching: a parent or a child repository is another scope.
        assert_eq!(
            p.select("registry.acme-rockets.io/software").unwrap().name,
            "global"
        );
        assert_eq!(
            p.select("registry.acme-rockets.io/software/net-monitor/sub")
                .unwrap()
                .name,
            "global"
        );
        for bad in [
            "registry.acme-rockets.io/software/net-monitor:v1",
            "net-monitor",
            "",
        ] {
            assert!(
                matches!(
                    p.select(bad),
                    Err(PolicyError::InvalidArtifactReference { .. })
                ),
                "{bad}"
            );
        }

        let p = oci(serde_json::json!({
            "version": "1.0",
            "trustPolicies": [statement("only", &["r.io/a"])]
        }))
        .unwrap();
        assert_eq!(
            p.select("r.io/b"),
            Err(PolicyError::NoApplicablePolicy {
                reference: "r.io/b".into()
            })
        );
        assert!(p.global().is_none());
    }

    #[test]
    fn identity_matching_is_attribute_subset() {
        let p = oci(serde_json::json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": "p", "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:s"],
                "trustedIdentities": [
                    "x509.subject: CN=e2e,O=Notary,L=Seattle,ST=WA,C=US",
                    "x509.subject: O=Internet Widgits Pty Ltd,S=Some-State,C=AU"
                ]
            }]
        }))
        .unwrap();
        let pol = &p.policies[0];
        let e2e = attrs(&[
            ("C", "US"),
            ("ST", "WA"),
            ("L", "Seattle"),
            ("O", "Notary"),
            ("CN", "e2e"),
        ]);
        assert!(identity_trusted(pol, &e2e));
        assert!(pol.trusts_subject(&e2e));
        // More attributes in the certificate are fine.
        let more = [e2e.clone(), attrs(&[("OU", "x")])].concat();
        assert!(identity_trusted(pol, &more));
        // The second identity, with the certificate spelling ST and an OID.
        let au = attrs(&[
            ("2.5.4.6", "AU"),
            ("ST", "Some-State"),
            ("O", "Internet Widgits Pty Ltd"),
        ]);
        assert!(identity_trusted(pol, &au));
        // A value differs (case included), or an attribute is missing.
        assert!(!identity_trusted(
            pol,
            &attrs(&[
                ("C", "US"),
                ("ST", "WA"),
                ("L", "Seattle"),
                ("O", "notary"),
                ("CN", "e2e")
            ])
        ));
        assert!(!identity_trusted(
            pol,
            &attrs(&[("C", "US"), ("ST", "WA"), ("O", "Notary"), ("CN", "e2e")])
        ));
        assert!(!identity_trusted(
            pol,
            &attrs(&[
                ("C", "USB"),
                ("ST", "WA"),
                ("L", "Seattle"),
                ("O", "Notary"),
                ("CN", "e2e")
            ])
        ));
        // A repeated attribute type makes the subject ambiguous.
        let twice = [e2e.clone(), attrs(&[("CN", "other")])].concat();
        assert!(!identity_trusted(pol, &twice));
        assert!(!identity_trusted(pol, &[]));

        let any =
            oci(serde_json::json!({"version": "1.0", "trustPolicies": [statement("a", &["*"])]}))
                .unwrap();
        assert!(identity_trusted(&any.policies[0], &[]));
        assert!(identity_trusted(&any.policies[0], &twice));
    }
}
