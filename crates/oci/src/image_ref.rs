//! Full image references as users type them: `[registry/]repository[:tag][@digest]`,
//! with Docker's rules for the default registry.

use crate::digest::Digest;
use crate::name::{NameError, RepoName, Tag};
use std::fmt;
use std::str::FromStr;

/// Registry assumed when a reference names none, as Docker does.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// Why an image reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    /// Empty, or a part is missing around a separator.
    #[error("invalid reference {0:?}: {1}")]
    Syntax(String, &'static str),
    /// The repository or tag breaks the grammar.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The digest is malformed or of an unsupported algorithm.
    #[error(transparent)]
    Digest(#[from] crate::DigestError),
}

/// A parsed image reference such as `127.0.0.1:5000/models/llama:v1`.
///
/// ```
/// use pavilion_oci::ImageRef;
/// let r: ImageRef = "localhost:5000/team/model:v1".parse().unwrap();
/// assert_eq!((r.registry.as_str(), r.repository.as_str()), ("localhost:5000", "team/model"));
/// let d: ImageRef = "ubuntu".parse().unwrap();
/// assert_eq!(d.to_string(), "docker.io/library/ubuntu:latest");
/// assert!("Host:5000/UPPER".parse::<ImageRef>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository within the registry.
    pub repository: RepoName,
    /// Tag, if given (or `latest` when neither tag nor digest was).
    pub tag: Option<Tag>,
    /// Digest, if given.
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// The manifest reference to request: the digest if pinned, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        }
    }

    /// True for registries that are this machine, where Docker also uses
    /// plain HTTP without being asked.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// True for a registry host (with optional port) on this machine.
pub fn is_loopback_host(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    matches!(host, "localhost" | "[::1]") || host.starts_with("127.")
}

fn looks_like_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.starts_with('[')
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| ImageRefError::Syntax(s.to_string(), why);
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // A ':' after the last '/' separates the tag (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(Tag::new(&rest[at + 1..])?))
            }
            None => (rest, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if looks_like_registry(first) => {
                (first.to_string(), path.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        if registry.is_empty() || path.is_empty() {
            return Err(bad("missing registry or repository"));
        }
        let path = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (tag, &digest) {
            (None, None) => Some(Tag::new("latest")?),
            (t, _) => t,
        };
        Ok(ImageRef {
            registry,
            repository: RepoName::new(&path)?,
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses() {
        let r: ImageRef = "127.0.0.1:5000/a/b:v1".parse().unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository.as_str(), "a/b");
        assert_eq!(r.reference(), "v1");
        assert!(r.is_loopback());
        let r: ImageRef = format!("localhost:5000/m@{D}").parse().unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.reference(), D);
        let r: ImageRef = format!("ghcr.io/o/m:t@{D}").parse().unwrap();
        assert_eq!(r.to_string(), format!("ghcr.io/o/m:t@{D}"));
        assert!(!r.is_loopback());
        let r: ImageRef = "team/model".parse().unwrap();
        assert_eq!(r.to_string(), "docker.io/team/model:latest");
        let r: ImageRef = "localhost/m".parse().unwrap();
        assert_eq!(r.registry, "localhost");
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "host:5000/",
            "a:b:c",
            "a/B",
            "x@sha256:abc",
            "h.io/r:",
            "h.io/r:-bad",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }
}
