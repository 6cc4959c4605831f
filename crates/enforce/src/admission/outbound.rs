//! Which registries the admission endpoints may contact.
//!
//! An image reference in a review names a host; looking it up means an
//! HTTP request from the server, with whatever credentials the server holds
//! for that host. Left open, anyone who can send a review could make the
//! server reach internal addresses (`127.0.0.1:5199/internal/admin:secret`).
//! So lookups go only to registries the configuration lists, by default
//! this registry's own names; an image anywhere else is denied unlooked-at.

use std::sync::{Arc, OnceLock};

/// The registries lookups may go to.
#[derive(Debug, Clone)]
pub struct AllowedRegistries {
    /// Configured (`serve --admission-registries`); empty: `own_names`.
    listed: Vec<String>,
    /// This registry's names, known once the server listens (the bound
    /// address when none are configured).
    own_names: Arc<OnceLock<Vec<String>>>,
}

impl AllowedRegistries {
    /// `listed` registries (`host` or `host:port`, as references write
    /// them), else this registry's own names.
    pub fn new(listed: Vec<String>, own_names: Arc<OnceLock<Vec<String>>>) -> Self {
        AllowedRegistries { listed, own_names }
    }

    /// The registries in force.
    pub fn list(&self) -> &[String] {
        if self.listed.is_empty() {
            self.own_names.get().map_or(&[], Vec::as_slice)
        } else {
            &self.listed
        }
    }

    /// Whether `registry` (an image reference's host\[:port\]) may be
    /// contacted: an exact match, host names compared without case. No
    /// wildcards and no default ports: `r.example` and `r.example:443` are
    /// different entries, as they are different strings in references.
    pub fn allows(&self, registry: &str) -> bool {
        self.list().iter().any(|r| r.eq_ignore_ascii_case(registry))
    }

    /// The denial for an image in `registry`.
    pub fn refusal(&self, registry: &str) -> String {
        let list = self.list();
        let allowed = if list.is_empty() {
            "none".to_string()
        } else {
            list.join(", ")
        };
        format!(
            "registry {registry} is not allowed for admission lookups \
             (allowed: {allowed}; serve --admission-registries)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_registries_win_over_own_names() {
        let own = Arc::new(OnceLock::new());
        let a = AllowedRegistries::new(Vec::new(), own.clone());
        assert!(!a.allows("127.0.0.1:5000"));
        assert!(a.refusal("x:1").contains("(allowed: none;"));
        own.set(vec!["Registry.Local:5000".to_string()]).unwrap();
        assert!(a.allows("registry.local:5000"));
        assert!(!a.allows("registry.local"));
        assert!(!a.allows("registry.local:5001"));
        let b = AllowedRegistries::new(vec!["ghcr.io".into(), "docker.io".into()], own);
        assert!(b.allows("docker.io") && b.allows("ghcr.io"));
        assert!(!b.allows("registry.local:5000"));
        assert_eq!(
            b.refusal("127.0.0.1:5199"),
            "registry 127.0.0.1:5199 is not allowed for admission lookups \
             (allowed: ghcr.io, docker.io; serve --admission-registries)"
        );
    }
}
