//! What the configuration grants to whom (`[auth.grants]`, `[auth.groups]`):
//! subjects and groups mapped to grants, and groups for users whose
//! credentials carry none (htpasswd users).
//!
//! Credentials that carry their own scopes (API keys, tokens) are not
//! looked up here: their scopes are a ceiling no configuration widens.

use crate::identity::{Identity, Method};
use crate::scope::Grants;
use std::collections::{BTreeMap, HashMap};

/// Prefix of a grant key naming a group rather than a subject.
pub const GROUP_PREFIX: &str = "group:";
/// Most groups one subject is given by the configuration.
const MAX_GROUPS: usize = 64;

/// Grants by subject and by group.
#[derive(Debug, Clone, Default)]
pub struct GrantTable {
    subjects: HashMap<String, Grants>,
    groups: HashMap<String, Grants>,
    members: HashMap<String, Vec<String>>,
    /// Whether `[auth.grants]` was written at all. Without it, htpasswd
    /// users may do everything (as with Distribution's htpasswd), and
    /// every other kind of identity nothing.
    configured: bool,
}

/// Whether an identity holds everything when no grants are configured.
fn all_by_default(id: &Identity) -> bool {
    id.method == Method::Htpasswd
}

impl GrantTable {
    /// Reads `grants` (key: a subject, or `group:NAME`; value: grants as
    /// `repository:GLOB:ACTIONS` or `registry:catalog:*`) and `groups`
    /// (group name -> its member subjects). `grants` `None`: the section is
    /// absent (see [`GrantTable::for_identity`]).
    pub fn new(
        grants: Option<&BTreeMap<String, Vec<String>>>,
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Result<GrantTable, String> {
        let mut table = GrantTable {
            configured: grants.is_some(),
            ..GrantTable::default()
        };
        for (key, list) in grants.into_iter().flatten() {
            let parsed = Grants::parse(list).map_err(|e| format!("auth.grants.{key:?}: {e}"))?;
            match key.strip_prefix(GROUP_PREFIX) {
                Some("") => return Err("auth.grants: \"group:\" without a group name".into()),
                Some(g) => table.groups.insert(g.to_string(), parsed),
                None if key.is_empty() => return Err("auth.grants: an empty subject".into()),
                None => table.subjects.insert(key.clone(), parsed),
            };
        }
        for (group, members) in groups {
            if group.is_empty() {
                return Err("auth.groups: an empty group name".into());
            }
            for m in members {
                let of = table.members.entry(m.clone()).or_default();
                if of.len() >= MAX_GROUPS {
                    return Err(format!(
                        "auth.groups: {m:?} is in more than {MAX_GROUPS} groups"
                    ));
                }
                of.push(group.clone());
            }
        }
        Ok(table)
    }

    /// Groups the configuration puts `subject` in.
    pub fn groups_of(&self, subject: &str) -> &[String] {
        self.members.get(subject).map_or(&[], Vec::as_slice)
    }

    /// What `id` may do: the grants of its subject and of each of its
    /// groups. Without `[auth.grants]`, an htpasswd user holds everything
    /// and any other identity nothing (a workload or certificate identity
    /// is only as trusted as the configuration says).
    pub fn for_identity(&self, id: &Identity) -> Grants {
        if !self.configured {
            return match id.method {
                Method::Htpasswd => {
                    Grants::parse(&["repository:**:*", "registry:catalog:*"]).unwrap_or_default()
                }
                _ => Grants::none(),
            };
        }
        let mut out = Grants::none();
        if let Some(g) = self.subjects.get(&id.subject) {
            out.extend(g);
        }
        for group in id.groups.iter().chain(self.groups_of(&id.subject)) {
            if let Some(g) = self.groups.get(group) {
                out.extend(g);
            }
        }
        out
    }
}

impl GrantTable {
    /// The actions `id` holds on `resource`: the same as
    /// `for_identity(id).actions_on(resource)` without building the list
    /// (asked on every request).
    pub fn actions_on(
        &self,
        id: &Identity,
        resource: &crate::scope::Resource,
    ) -> crate::scope::Actions {
        if !self.configured {
            return if all_by_default(id) {
                crate::scope::Actions::ALL
            } else {
                crate::scope::Actions::NONE
            };
        }
        let mut out = self
            .subjects
            .get(&id.subject)
            .map_or(crate::scope::Actions::NONE, |g| g.actions_on(resource));
        for group in id.groups.iter().chain(self.groups_of(&id.subject)) {
            if let Some(g) = self.groups.get(group) {
                out = out.union(g.actions_on(resource));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{Actions, Resource};

    fn repo(n: &str) -> Resource {
        Resource::Repository(n.into())
    }

    #[test]
    fn subjects_and_groups_add_up() {
        let mut grants = BTreeMap::new();
        grants.insert(
            "alice".to_string(),
            vec!["repository:team/*:pull".to_string()],
        );
        grants.insert(
            "group:ml".to_string(),
            vec!["repository:team/*:push".to_string()],
        );
        grants.insert(
            "k8s:system:serviceaccount:ml:trainer".to_string(),
            vec!["repository:models/**:pull".to_string()],
        );
        let mut groups = BTreeMap::new();
        groups.insert("ml".to_string(), vec!["alice".to_string()]);
        let t = GrantTable::new(Some(&grants), &groups).unwrap();
        let alice = Identity::new("alice", Method::Htpasswd);
        assert_eq!(
            t.actions_on(&alice, &repo("team/m")),
            Actions::PULL.union(Actions::PUSH)
        );
        assert_eq!(
            t.for_identity(&alice).actions_on(&repo("team/m")),
            Actions::PULL.union(Actions::PUSH)
        );
        assert!(t
            .for_identity(&alice)
            .actions_on(&repo("other/m"))
            .is_empty());
        let bob = Identity::new("bob", Method::Htpasswd);
        assert!(t.for_identity(&bob).is_empty());
        // Groups a credential carries count too.
        let mut w = Identity::new("k8s:system:serviceaccount:ml:trainer", Method::Workload);
        w.groups = vec!["ml".into()];
        let g = t.for_identity(&w);
        assert_eq!(g.actions_on(&repo("models/a/b")), Actions::PULL);
        assert_eq!(g.actions_on(&repo("team/x")), Actions::PUSH);
    }

    #[test]
    fn without_grants_only_htpasswd_users_hold_everything() {
        let t = GrantTable::new(None, &BTreeMap::new()).unwrap();
        let u = Identity::new("u", Method::Htpasswd);
        assert_eq!(t.for_identity(&u).actions_on(&repo("a/b/c")), Actions::ALL);
        assert!(!t.for_identity(&u).actions_on(&Resource::Catalog).is_empty());
        for m in [Method::Workload, Method::Certificate, Method::ApiKey] {
            assert!(t.for_identity(&Identity::new("u", m)).is_empty());
        }
    }

    #[test]
    fn bad_grants_name_their_key() {
        let mut grants = BTreeMap::new();
        grants.insert("alice".to_string(), vec!["repository:x:fly".to_string()]);
        let e = GrantTable::new(Some(&grants), &BTreeMap::new()).unwrap_err();
        assert!(e.contains("alice") && e.contains("fly"), "{e}");
        let mut grants = BTreeMap::new();
        grants.insert("group:".to_string(), vec![]);
        assert!(GrantTable::new(Some(&grants), &BTreeMap::new()).is_err());
    }
}
