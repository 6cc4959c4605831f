//! Scopes as the Docker registry token specification writes them
//! (`repository:team/model:pull,push`, `registry:catalog:*`), and grants:
//! the same grammar with a glob for the repository name
//! (`repository:team/*:pull`), which API keys and the configuration hold.
//!
//! A scope asks for access; a grant gives it. Tokens carry the granted
//! part of the scopes that were asked for ("trimmed", as the specification
//! says), never more.

use globset::{GlobBuilder, GlobMatcher};
use std::fmt;

/// Longest scope string accepted (a repository name is at most 255 bytes
/// as Distribution limits it; room for the type and actions).
const MAX_SCOPE: usize = 512;

/// A set of repository actions (a bitset: cheap to copy and intersect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions(0);
    /// Read manifests, blobs, tags, referrers.
    pub const PULL: Actions = Actions(1);
    /// Upload blobs, put manifests and tags.
    pub const PUSH: Actions = Actions(2);
    /// Delete manifests, tags and blobs.
    pub const DELETE: Actions = Actions(4);
    /// Every action (`*`).
    pub const ALL: Actions = Actions(7);

    /// The action called `name` (`pull`, `push`, `delete`, `*`).
    pub fn parse_one(name: &str) -> Option<Actions> {
        match name {
            "pull" => Some(Actions::PULL),
            "push" => Some(Actions::PUSH),
            "delete" => Some(Actions::DELETE),
            "*" => Some(Actions::ALL),
            _ => None,
        }
    }

    /// Both sets.
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// What both sets hold.
    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    /// Whether every action of `other` is in this set.
    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions' names, in the order pull, push, delete.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Actions::PULL, "pull"),
            (Actions::PUSH, "push"),
            (Actions::DELETE, "delete"),
        ]
        .into_iter()
        .filter(|(a, _)| self.contains(*a))
        .map(|(_, n)| n)
        .collect()
    }
}

/// What a scope is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A repository (or, in a grant, a glob over repository names).
    Repository(String),
    /// The catalog (`registry:catalog:*`).
    Catalog,
}

/// One `type:name:actions` scope. The actions of a catalog scope are
/// [`Actions::ALL`] (the specification writes `*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// What it is about.
    pub resource: Resource,
    /// The actions asked for or given.
    pub actions: Actions,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            Resource::Catalog => write!(f, "registry:catalog:*"),
            Resource::Repository(name) => {
                write!(f, "repository:{name}:{}", self.actions.names().join(","))
            }
        }
    }
}

impl Scope {
    /// Parses one scope. The name sits between the first and the last `:`
    /// (a name may hold a `host:port` prefix). Unknown actions are an error
    /// rather than dropped: a grant that says more than it can give is a
    /// typo to report.
    pub fn parse(s: &str) -> Result<Scope, String> {
        if s.len() > MAX_SCOPE {
            return Err(format!("scope longer than {MAX_SCOPE} bytes"));
        }
        let bad = || format!("scope {s:?} is not type:name:actions");
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad());
        }
        // `repository(plugin)`: the class is ignored, as registries do.
        let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
        match kind {
            "registry" => {
                if name != "catalog" || actions != "*" {
                    return Err(format!(
                        "scope {s:?}: the only registry scope is registry:catalog:*"
                    ));
                }
                Ok(Scope {
                    resource: Resource::Catalog,
                    actions: Actions::ALL,
                })
            }
            "repository" => {
                let mut set = Actions::NONE;
                for a in actions.split(',') {
                    set = set.union(Actions::parse_one(a.trim()).ok_or_else(|| {
                        format!("scope {s:?}: unknown action {a:?} (pull, push, delete or *)")
                    })?);
                }
                Ok(Scope {
                    resource: Resource::Repository(name.to_string()),
                    actions: set,
                })
            }
            other => Err(format!(
                "scope {s:?}: unknown resource type {other:?} (repository or registry)"
            )),
        }
    }

    /// Parses a space-separated list (OAuth2's `scope` parameter), or one
    /// scope per repeated query parameter.
    pub fn parse_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Vec<Scope>, String> {
        let mut out = Vec::new();
        for item in items {
            for s in item.split(' ').filter(|s| !s.is_empty()) {
                out.push(Scope::parse(s)?);
            }
        }
        Ok(out)
    }
}

/// A scope whose repository name is a glob: `*` within one path
/// component, `**` across them (as `--anonymous-pull` reads them).
#[derive(Debug, Clone)]
pub struct Grant {
    text: String,
    resource: GrantResource,
    actions: Actions,
}

#[derive(Debug, Clone)]
enum GrantResource {
    Repositories(GlobMatcher),
    Catalog,
}

impl Grant {
    /// Parses a grant (`repository:team/*:pull,push`, `registry:catalog:*`).
    pub fn parse(s: &str) -> Result<Grant, String> {
        let scope = Scope::parse(s)?;
        let resource = match &scope.resource {
            Resource::Catalog => GrantResource::Catalog,
            Resource::Repository(glob) => GrantResource::Repositories(
                GlobBuilder::new(glob)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| format!("scope {s:?}: {e}"))?
                    .compile_matcher(),
            ),
        };
        Ok(Grant {
            text: scope.to_string(),
            resource,
            actions: scope.actions,
        })
    }

    /// The grant as written back (normalised actions).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a subject holds: the union of its grants.
#[derive(Debug, Clone, Default)]
pub struct Grants(Vec<Grant>);

impl Grants {
    /// No access at all.
    pub fn none() -> Grants {
        Grants(Vec::new())
    }

    /// Parses each grant; the first that does not parse is the error.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Grants, String> {
        items
            .iter()
            .map(|s| Grant::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Grants)
    }

    /// Grants exactly `scopes` (concrete names, as a token carries them:
    /// any glob character in a name is matched literally).
    pub fn from_scopes(scopes: &[Scope]) -> Grants {
        Grants(
            scopes
                .iter()
                .filter_map(|s| {
                    let escaped = match &s.resource {
                        Resource::Catalog => return Grant::parse("registry:catalog:*").ok(),
                        Resource::Repository(n) => globset::escape(n),
                    };
                    let actions = s.actions.names().join(",");
                    if actions.is_empty() {
                        return None;
                    }
                    Grant::parse(&format!("repository:{escaped}:{actions}")).ok()
                })
                .collect(),
        )
    }

    /// Pull on the repositories matching `globs` (`anonymous_pull`): `*`
    /// within one path component (`public/*` is `public/a`, not
    /// `public/a/b`), `**` across them. An empty or invalid glob is an
    /// error naming it: a server should not start with a rule it cannot
    /// read.
    pub fn anonymous_pull<S: AsRef<str>>(globs: &[S]) -> Result<Grants, String> {
        let mut out = Vec::with_capacity(globs.len());
        for g in globs {
            let g = g.as_ref();
            if g.trim().is_empty() {
                return Err("anonymous_pull: an empty glob".into());
            }
            out.push(
                Grant::parse(&format!("repository:{g}:pull"))
                    .map_err(|e| format!("anonymous_pull glob {g:?}: {e}"))?,
            );
        }
        Ok(Grants(out))
    }

    /// Adds the grants of `other`.
    pub fn extend(&mut self, other: &Grants) {
        self.0.extend(other.0.iter().cloned());
    }

    /// The grants, as written.
    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.0.iter()
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The actions granted on `resource` (a concrete repository name).
    pub fn actions_on(&self, resource: &Resource) -> Actions {
        let mut out = Actions::NONE;
        for g in &self.0 {
            let hit = match (&g.resource, resource) {
                (GrantResource::Catalog, Resource::Catalog) => true,
                (GrantResource::Repositories(m), Resource::Repository(name)) => m.is_match(name),
                _ => false,
            };
            if hit {
                out = out.union(g.actions);
            }
        }
        out
    }

    /// `asked`, trimmed to what these grants give; scopes left with no
    /// action are dropped (the token specification's "trimmed" scope).
    pub fn trim(&self, asked: &[Scope]) -> Vec<Scope> {
        asked
            .iter()
            .filter_map(|s| {
                let actions = s.actions.intersect(self.actions_on(&s.resource));
                (!actions.is_empty()).then(|| Scope {
                    resource: s.resource.clone(),
                    actions,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(n: &str) -> Resource {
        Resource::Repository(n.into())
    }

    #[test]
    fn scopes_parse_as_the_specification_writes_them() {
        let s = Scope::parse("repository:team/model:pull,push").unwrap();
        assert_eq!(s.resource, repo("team/model"));
        assert_eq!(s.actions, Actions::PULL.union(Actions::PUSH));
        assert_eq!(s.to_string(), "repository:team/model:pull,push");
        // A name with a host and port keeps its colon.
        let s = Scope::parse("repository:localhost:5000/m:pull").unwrap();
        assert_eq!(s.resource, repo("localhost:5000/m"));
        assert_eq!(
            Scope::parse("repository(plugin):m:*").unwrap().actions,
            Actions::ALL
        );
        assert_eq!(
            Scope::parse("registry:catalog:*").unwrap().resource,
            Resource::Catalog
        );
        let list = Scope::parse_list(["repository:a:pull repository:b:push", ""]).unwrap();
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn malformed_scopes_are_errors_that_name_them() {
        for bad in [
            "",
            "repository",
            "repository:m",
            "repository::pull",
            "repository:m:fly",
            "repository:m:pull,",
            "registry:catalog:pull",
            "registry:other:*",
            "bucket:m:pull",
            "repository:a b:pull",
        ] {
            let e = Scope::parse(bad).unwrap_err();
            assert!(e.contains("scope"), "{bad:?}: {e}");
        }
        assert!(Scope::parse(&format!("repository:{}:pull", "a".repeat(600))).is_err());
    }

    #[test]
    fn anonymous_pull_stars_stay_in_one_component() {
        let a = Grants::anonymous_pull(&["public/*", "models/**"]).unwrap();
        let pull = |n: &str| a.actions_on(&repo(n)) == Actions::PULL;
        assert!(pull("public/a"));
        assert!(!pull("public/a/b"));
        assert!(!pull("public"));
        assert!(!pull("publicx/a"));
        assert!(pull("models/x/y/z"));
        assert!(!pull("team/a"));
        assert!(Grants::anonymous_pull(&["["])
            .unwrap_err()
            .contains("anonymous_pull glob"));
        assert!(Grants::anonymous_pull(&[" "]).is_err());
    }

    #[test]
    fn grants_match_globs_and_trim_what_is_asked() {
        let g =
            Grants::parse(&["repository:team/*:pull,push", "repository:public/**:pull"]).unwrap();
        assert_eq!(
            g.actions_on(&repo("team/m")),
            Actions::PULL.union(Actions::PUSH)
        );
        assert_eq!(g.actions_on(&repo("team/a/b")), Actions::NONE);
        assert_eq!(g.actions_on(&repo("public/a/b")), Actions::PULL);
        assert_eq!(g.actions_on(&Resource::Catalog), Actions::NONE);
        let asked = Scope::parse_list([
            "repository:team/m:pull,push,delete repository:public/x:push registry:catalog:*",
        ])
        .unwrap();
        let trimmed = g.trim(&asked);
        assert_eq!(trimmed.len(), 1);
        assert_eq!(trimmed[0].to_string(), "repository:team/m:pull,push");
        assert!(Grants::none().trim(&asked).is_empty());
        assert!(Grants::parse(&["repository:[:pull"]).is_err());
        let exact = Grants::from_scopes(
            &Scope::parse_list(["repository:a/b:pull registry:catalog:*"]).unwrap(),
        );
        assert_eq!(exact.actions_on(&repo("a/b")), Actions::PULL);
        assert!(exact.actions_on(&repo("a/bc")).is_empty());
        assert_eq!(exact.actions_on(&Resource::Catalog), Actions::ALL);
        let all = Grants::parse(&["repository:**:*", "registry:catalog:*"]).unwrap();
        assert_eq!(all.actions_on(&repo("x/y/z")), Actions::ALL);
        assert_eq!(all.actions_on(&Resource::Catalog), Actions::ALL);
    }
}
