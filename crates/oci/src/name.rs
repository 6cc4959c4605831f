//! Repository names, tags and references, checked against the
//! distribution-spec grammar when constructed.

use crate::digest::{Digest, DigestError};
use std::fmt;

/// Longest repository name accepted. The spec lets registries cap names; 255
/// also keeps every name a valid single path on any filesystem.
pub const MAX_NAME_LEN: usize = 255;

/// Why a name or tag was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The repository name breaks the spec's grammar.
    #[error("invalid repository name {0:?}: {1}")]
    Name(String, &'static str),
    /// The tag breaks the spec's grammar.
    #[error("invalid tag {0:?}: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    Tag(String),
}

/// A repository name such as `library/ubuntu`.
///
/// Grammar: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
///
/// ```
/// use pavilion_oci::RepoName;
/// assert!(RepoName::new("models/llama-3.1_8b").is_ok());
/// assert!(RepoName::new("../etc").is_err());
/// assert!(RepoName::new("Upper").is_err());
/// assert!(RepoName::new("a//b").is_err());
/// assert!(RepoName::new("a___b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Validates `s` as a repository name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let bad = |why| NameError::Name(s.to_string(), why);
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(bad("longer than 255 characters"));
        }
        for component in s.split('/') {
            check_component(component).map_err(bad)?;
        }
        Ok(RepoName(s.to_string()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: alphanumeric runs joined by `.`, `_`, `__` or `-+`.
fn check_component(c: &str) -> Result<(), &'static str> {
    let b = c.as_bytes();
    if b.is_empty() {
        return Err("empty path component");
    }
    if !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return Err("components must start and end with [a-z0-9]");
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "."
            || sep == "_"
            || sep == "__"
            || (!sep.is_empty() && sep.bytes().all(|x| x == b'-'));
        if !ok {
            return Err("only [a-z0-9] joined by '.', '_', '__' or '-' are allowed");
        }
    }
    Ok(())
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A tag such as `v1.0`.
///
/// ```
/// use pavilion_oci::Tag;
/// assert!(Tag::new("v1.0_rc-2").is_ok());
/// assert!(Tag::new(".hidden").is_err());
/// assert!(Tag::new(&"a".repeat(129)).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Validates `s` as a tag.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_');
        let rest_ok = b
            .iter()
            .skip(1)
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-');
        if !first_ok || !rest_ok || b.len() > 128 {
            return Err(NameError::Tag(s.to_string()));
        }
        Ok(Tag(s.to_string()))
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The `<reference>` of a manifest URL: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// By tag.
    Tag(Tag),
    /// By digest.
    Digest(Digest),
}

/// Why a reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Looked like a digest (has ':') but is not a valid one.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Not a valid tag.
    #[error(transparent)]
    Tag(#[from] NameError),
}

impl Reference {
    /// Parses a path reference: anything with `:` is a digest, else a tag.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(Tag::new(s)?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "a/b",
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "0",
            "library/ubuntu",
            "x/y/z-1.2",
        ] {
            assert!(RepoName::new(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "", "A", "a/", "/a", "a//b", "a..b", "a.-b", "-a", "a-", "a___b", "a/../b", "..", ".",
            "a b", "a\\b", &long,
        ] {
            assert!(RepoName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        assert!(Tag::new(&"a".repeat(128)).is_ok());
        for bad in ["", "-a", ".a", "a/b", "a:b", "a b"] {
            assert!(Tag::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references() {
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        assert!(matches!(
            Reference::parse("sha256:abc"),
            Err(ReferenceError::Digest(_))
        ));
    }
}
