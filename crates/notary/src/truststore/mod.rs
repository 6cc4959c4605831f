//! notation's X.509 trust store: named collections of trusted certificates
//! on disk (trust-store-trust-policy.md, "Trust Store").
//!
//! Layout, as notation reads it:
//!
//! ```text
//! <root>/x509/ca/<name>/*                 CA roots (signing scheme notary.x509)
//! <root>/x509/signingAuthority/<name>/*   signing-authority roots (notary.x509.signingAuthority)
//! <root>/x509/tsa/<name>/*                timestamping-authority roots
//! ```
//!
//! A trust policy names stores as `<type>:<name>` ([`StoreRef`]); a store on
//! disk that no policy names confers no trust.
//!
//! The default `<root>` is notation's configuration directory plus
//! `truststore` ([`default_root`]). The specification's example spells the
//! directory `trust-store`, but notation (notation-go `dir.TrustStoreDir`)
//! uses `truststore`, and interoperating with the files notation manages is
//! the point, so that is what is used here.
//!
//! Rules applied when a store is read ([`TrustStore::load`]), following the
//! specification and, where it is more precise, notation-go
//! (`verifier/truststore`):
//!
//! - the named store directory and the certificate files must not be
//!   symbolic links: a link lets whoever controls its target (another user,
//!   a synced folder) decide what is trusted;
//! - every regular file in the directory is read, whatever its name (notation
//!   does not look at extensions; the specification mentions `.pem`, `.crt`,
//!   `.cer` as examples), as one or more PEM `CERTIFICATE` blocks or as DER;
//!   a file without any certificate, or with one that does not parse, is an
//!   error rather than being skipped, so a misconfigured store is noticed
//!   instead of silently trusting less (or something else) than intended;
//! - subdirectories are ignored, as the specification says (notation-go
//!   refuses them instead); they are reported in
//!   [`StoreContents::ignored`] so callers can warn, as the specification
//!   recommends;
//! - a store that is missing or holds no certificate is an error: a policy
//!   that names it cannot have meant "trust nothing";
//! - in `ca` and `signingAuthority` stores each certificate must be a CA
//!   certificate (basicConstraints cA=true) or self-signed (its signature
//!   verifies with its own key), as notation-go requires: anything else is a
//!   leaf or an intermediate pinned by mistake;
//! - in `tsa` stores each certificate must be a root CA: self-issued
//!   (subject equal to issuer), allowed to sign certificates, and carrying a
//!   valid self-signature (notation-go's rule since timestamping support).

mod certs;
#[cfg(test)]
mod tests;

use certs::{check_anchor, read_certificates, FileError};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The kinds of named stores, with the directory names / policy prefixes
/// notation uses for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreType {
    /// `ca`: roots of certificate authorities (signing scheme `notary.x509`).
    Ca,
    /// `signingAuthority`: roots of signing authorities (signing scheme
    /// `notary.x509.signingAuthority`).
    SigningAuthority,
    /// `tsa`: roots of RFC 3161 timestamping authorities.
    Tsa,
}

impl StoreType {
    /// Every store type, in notation's order.
    pub const ALL: [StoreType; 3] = [StoreType::Ca, StoreType::SigningAuthority, StoreType::Tsa];

    /// The prefix used in trust policies and the directory name under
    /// `x509/` (they are the same string in notation).
    pub fn prefix(self) -> &'static str {
        match self {
            StoreType::Ca => "ca",
            StoreType::SigningAuthority => "signingAuthority",
            StoreType::Tsa => "tsa",
        }
    }

    /// The type with this exact prefix (case-sensitive, as in notation: the
    /// prefix is also a directory name, and `CA:` would name another
    /// directory on case-sensitive file systems).
    pub fn from_prefix(s: &str) -> Option<StoreType> {
        StoreType::ALL.into_iter().find(|t| t.prefix() == s)
    }
}

impl fmt::Display for StoreType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

impl FromStr for StoreType {
    type Err = StoreRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreType::from_prefix(s).ok_or_else(|| StoreRefError::UnknownType {
            value: s.to_string(),
            kind: s.to_string(),
        })
    }
}

/// Whether `name` is a valid named-store name: one or more of
/// `[a-zA-Z0-9_.-]`, notation's rule. The name becomes a directory name, so
/// the rule keeps it portable and keeps `/`, `\` and the like (which would
/// reach outside the store directory) out; `.` and `..` are refused too,
/// since they match the pattern but name the type directory or its parent.
pub fn is_valid_store_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A reference to a named store, as written in a trust policy:
/// `ca:acme-rockets`, `signingAuthority:acme-sa`, `tsa:public-tsa`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreRef {
    /// The store's type.
    pub kind: StoreType,
    /// The store's name (its directory name).
    pub name: String,
}

/// Why a `<type>:<name>` store reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreRefError {
    /// No `:` between type and name.
    #[error(
        "malformed trust store reference {value:?}: the format is <type>:<name> (e.g. ca:my-store)"
    )]
    MissingSeparator {
        /// The reference.
        value: String,
    },
    /// The type is not `ca`, `signingAuthority` or `tsa`.
    #[error("trust store reference {value:?} has unsupported type {kind:?} (supported: ca, signingAuthority, tsa)")]
    UnknownType {
        /// The reference.
        value: String,
        /// The type found.
        kind: String,
    },
    /// The name does not follow notation's rule.
    #[error("trust store reference {value:?} has invalid name {name:?}: names are one or more of [a-zA-Z0-9_.-], not . or ..")]
    InvalidName {
        /// The reference.
        value: String,
        /// The name found.
        name: String,
    },
}

impl StoreRef {
    /// A reference to the store `name` of type `kind`, if the name is valid.
    pub fn new(kind: StoreType, name: impl Into<String>) -> Result<Self, StoreRefError> {
        let name = name.into();
        if !is_valid_store_name(&name) {
            return Err(StoreRefError::InvalidName {
                value: format!("{kind}:{name}"),
                name,
            });
        }
        Ok(StoreRef { kind, name })
    }
}

impl FromStr for StoreRef {
    type Err = StoreRefError;

    /// Parses `<type>:<name>`. The split is at the first `:` (as notation
    /// does), so a name containing `:` is refused by the name rule.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = s
            .split_once(':')
            .ok_or_else(|| StoreRefError::MissingSeparator {
                value: s.to_string(),
            })?;
        let kind = StoreType::from_prefix(kind).ok_or_else(|| StoreRefError::UnknownType {
            value: s.to_string(),
            kind: kind.to_string(),
        })?;
        if !is_valid_store_name(name) {
            return Err(StoreRefError::InvalidName {
                value: s.to_string(),
                name: name.to_string(),
            });
        }
        Ok(StoreRef {
            kind,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for StoreRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// notation's user configuration directory (`{NOTATION_CONFIG}`): Go's
/// `os.UserConfigDir()` plus `notation`, which is
///
/// - Linux and other Unix: `$XDG_CONFIG_HOME/notation` when
///   `XDG_CONFIG_HOME` is set (Go refuses a relative one, and so does this),
///   else `$HOME/.config/notation`;
/// - macOS: `$HOME/Library/Application Support/notation`;
/// - Windows: `%AppData%\notation`.
///
/// `None` when the environment does not say (no `HOME`, ...), where notation
/// would fail too. The trust policies and the trust store live here.
pub fn notation_config_dir() -> Option<PathBuf> {
    let base = if cfg!(windows) {
        non_empty_env("AppData").map(PathBuf::from)
    } else if cfg!(target_os = "macos") {
        non_empty_env("HOME").map(|h| PathBuf::from(h).join("Library/Application Support"))
    } else {
        match non_empty_env("XDG_CONFIG_HOME") {
            Some(x) => {
                let p = PathBuf::from(x);
                if !p.is_absolute() {
                    return None;
                }
                Some(p)
            }
            None => non_empty_env("HOME").map(|h| PathBuf::from(h).join(".config")),
        }
    }?;
    Some(base.join("notation"))
}

fn non_empty_env(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// notation's trust store directory: [`notation_config_dir`] plus
/// `truststore` (see the module documentation for the spelling).
pub fn default_root() -> Option<PathBuf> {
    notation_config_dir().map(|c| c.join("truststore"))
}

/// Why a named store could not be read. Every variant names the store and
/// the path concerned, so the message alone says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustStoreError {
    /// The reference's name breaks the naming rule (only possible for a
    /// [`StoreRef`] built field by field; parsing refuses such names).
    #[error("trust store {store}: invalid store name (names are one or more of [a-zA-Z0-9_.-], not . or ..)")]
    InvalidName {
        /// The store.
        store: StoreRef,
    },
    /// The named store's directory does not exist.
    #[error("trust store {store} does not exist: {} not found", path.display())]
    Missing {
        /// The store.
        store: StoreRef,
        /// Its directory.
        path: PathBuf,
    },
    /// The store directory or a certificate file is a symbolic link.
    #[error("trust store {store}: {} is a symbolic link, which trust stores may not contain", path.display())]
    Symlink {
        /// The store.
        store: StoreRef,
        /// The link.
        path: PathBuf,
    },
    /// The store path is not a directory, or an entry in it is neither a
    /// regular file nor a directory (a device, a socket, ...).
    #[error("trust store {store}: {} is not a {expected}", path.display())]
    NotRegular {
        /// The store.
        store: StoreRef,
        /// The path.
        path: PathBuf,
        /// What it should have been ("directory" or "regular file").
        expected: &'static str,
    },
    /// Reading failed.
    #[error("trust store {store}: cannot read {}: {why}", path.display())]
    Io {
        /// The store.
        store: StoreRef,
        /// The path.
        path: PathBuf,
        /// The system's message.
        why: String,
    },
    /// The store holds no certificate file.
    #[error("trust store {store} has no certificates in {}", path.display())]
    Empty {
        /// The store.
        store: StoreRef,
        /// Its directory.
        path: PathBuf,
    },
    /// A file holds no certificate (no PEM CERTIFICATE block, not DER).
    #[error("trust store {store}: {} contains no certificate (every file must hold PEM CERTIFICATE blocks or DER certificates): {why}", path.display())]
    NoCertificate {
        /// The store.
        store: StoreRef,
        /// The file.
        path: PathBuf,
        /// Why nothing was found.
        why: String,
    },
    /// A certificate in a file does not parse.
    #[error("trust store {store}: certificate {index} in {} does not parse: {why}", path.display())]
    BadCertificate {
        /// The store.
        store: StoreRef,
        /// The file.
        path: PathBuf,
        /// Position of the certificate in the file (from 1).
        index: usize,
        /// The parser's message.
        why: String,
    },
    /// A certificate is not acceptable in this kind of store (a leaf or an
    /// intermediate in a `ca`/`signingAuthority` store, a non-root in a
    /// `tsa` store).
    #[error("trust store {store}: certificate {index} ({subject}) in {} is not allowed here: {why}", path.display())]
    NotAnchor {
        /// The store.
        store: StoreRef,
        /// The file.
        path: PathBuf,
        /// Position of the certificate in the file (from 1).
        index: usize,
        /// Its subject.
        subject: String,
        /// The rule broken.
        why: String,
    },
}

/// What a named store holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreContents {
    /// DER bytes of every certificate, files in name order and certificates
    /// in file order. They are the bytes found in the files, not a
    /// re-encoding: notation's authenticity check compares certificates
    /// byte for byte.
    pub certificates: Vec<Vec<u8>>,
    /// Subdirectories found in the store and ignored (the specification
    /// says implementations should warn about them).
    pub ignored: Vec<PathBuf>,
}

/// A trust store rooted at a directory holding `x509/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustStore {
    root: PathBuf,
}

impl TrustStore {
    /// The trust store under `root` (the directory that holds `x509/`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        TrustStore { root: root.into() }
    }

    /// notation's own trust store ([`default_root`]).
    pub fn notation_default() -> Option<Self> {
        default_root().map(TrustStore::new)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a named store: `<root>/x509/<type>/<name>`.
    pub fn store_dir(&self, r: &StoreRef) -> PathBuf {
        self.root.join("x509").join(r.kind.prefix()).join(&r.name)
    }

    /// DER bytes of every certificate of the named store (see
    /// [`TrustStore::load`] for the rules).
    pub fn certificates(&self, r: &StoreRef) -> Result<Vec<Vec<u8>>, TrustStoreError> {
        self.load(r).map(|c| c.certificates)
    }

    /// Reads the named store under the rules of the module documentation.
    pub fn load(&self, r: &StoreRef) -> Result<StoreContents, TrustStoreError> {
        // A StoreRef built by hand (fields are public) may carry a name that
        // would leave the store directory; refuse it here too.
        if !is_valid_store_name(&r.name) {
            return Err(TrustStoreError::InvalidName { store: r.clone() });
        }
        let dir = self.store_dir(r);
        let io = |path: &Path, e: std::io::Error| TrustStoreError::Io {
            store: r.clone(),
            path: path.to_path_buf(),
            why: e.to_string(),
        };
        let meta = match std::fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TrustStoreError::Missing {
                    store: r.clone(),
                    path: dir,
                })
            }
            Err(e) => return Err(io(&dir, e)),
        };
        if meta.file_type().is_symlink() {
            return Err(TrustStoreError::Symlink {
                store: r.clone(),
                path: dir,
            });
        }
        if !meta.is_dir() {
            return Err(TrustStoreError::NotRegular {
                store: r.clone(),
                path: dir,
                expected: "directory",
            });
        }
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let entry = entry.map_err(|e| io(&dir, e))?;
            // DirEntry::file_type does not follow links.
            let ft = entry.file_type().map_err(|e| io(&entry.path(), e))?;
            entries.push((entry.file_name(), entry.path(), ft));
        }
        // Name order, as Go's os.ReadDir: the result does not depend on the
        // order the file system happens to list entries in.
        entries.sort_by(|a, b| a.0.cmp(&b.0));

        let mut out = StoreContents::default();
        for (_, path, ft) in entries {
            if ft.is_symlink() {
                return Err(TrustStoreError::Symlink {
                    store: r.clone(),
                    path,
                });
            }
            if ft.is_dir() {
                out.ignored.push(path);
                continue;
            }
            if !ft.is_file() {
                return Err(TrustStoreError::NotRegular {
                    store: r.clone(),
                    path,
                    expected: "regular file",
                });
            }
            let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
            let ders = read_certificates(&bytes).map_err(|e| match e {
                FileError::NoCertificate(why) => TrustStoreError::NoCertificate {
                    store: r.clone(),
                    path: path.clone(),
                    why,
                },
                FileError::Bad { index, why } => TrustStoreError::BadCertificate {
                    store: r.clone(),
                    path: path.clone(),
                    index,
                    why,
                },
            })?;
            for (i, der) in ders.into_iter().enumerate() {
                check_anchor(r.kind, &der).map_err(|(subject, why)| {
                    TrustStoreError::NotAnchor {
                        store: r.clone(),
                        path: path.clone(),
                        index: i + 1,
                        subject,
                        why,
                    }
                })?;
                out.certificates.push(der);
            }
        }
        if out.certificates.is_empty() {
            return Err(TrustStoreError::Empty {
                store: r.clone(),
                path: dir,
            });
        }
        Ok(out)
    }
}
