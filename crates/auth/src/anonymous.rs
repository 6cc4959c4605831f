//! Repositories anyone may pull from without credentials, by glob, when
//! the registry otherwise requires authentication.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Globs over repository names whose content may be read anonymously. `*`
/// stays within one path component (`public/*` is `public/a`, not
/// `public/a/b`); `**` crosses them.
#[derive(Debug)]
pub struct AnonymousPull(GlobSet);

impl AnonymousPull {
    /// Compiles `globs`; a glob that does not compile, or an empty one, is
    /// an error naming it (a server should not start with a rule it cannot
    /// read).
    pub fn new(globs: &[String]) -> Result<Self, String> {
        let mut set = GlobSetBuilder::new();
        for g in globs {
            if g.trim().is_empty() {
                return Err("anonymous_pull: an empty glob".into());
            }
            let glob = GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("anonymous_pull glob {g:?}: {e}"))?;
            set.add(glob);
        }
        set.build()
            .map(AnonymousPull)
            .map_err(|e| format!("anonymous_pull: {e}"))
    }

    /// Whether `repository` (a validated name) may be read anonymously.
    pub fn allows(&self, repository: &str) -> bool {
        self.0.is_match(repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_stays_in_one_component() {
        let a = AnonymousPull::new(&["public/*".into(), "models/**".into()]).unwrap();
        assert!(a.allows("public/a"));
        assert!(!a.allows("public/a/b"));
        assert!(!a.allows("public"));
        assert!(!a.allows("publicx/a"));
        assert!(a.allows("models/x/y/z"));
        assert!(!a.allows("team/a"));
        assert!(AnonymousPull::new(&["[".into()]).is_err());
        assert!(AnonymousPull::new(&[" ".into()]).is_err());
    }
}
