//! What a request asks to do, read from its method and path alone (before
//! any handler runs): the action, the repository, and the tag or digest it
//! names. Paths that are not the registry's are left to the router (404).

use crate::authz_hook::Action;
use crate::routes::{repo, Route};
use http::Method;
use pavilion_auth::{Actions, Resource, Scope};

/// An action on a repository or on the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What is asked.
    pub action: Action,
    /// The repository (validated name); `None` for registry-wide actions.
    pub repository: Option<String>,
    /// The tag a manifest request names.
    pub tag: Option<String>,
    /// The digest a request names.
    pub digest: Option<String>,
    /// The endpoint, as policies see it.
    pub route: &'static str,
    /// For `tag` and `sign`: the manifest as read.
    pub artifact: Option<crate::authz_hook::Artifact>,
}

/// How a request is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// `GET /v2/`: any authenticated caller (clients learn there whether
    /// and how to log in).
    Base,
    /// An action that needs authorization.
    Act(Target),
    /// A question about the caller's own rights
    /// (`/pavilion/v1/access/<name>`): answered for every caller, one
    /// without credentials included, which learns only what its anonymous
    /// grants allow (what it could learn by trying). Credentials that are
    /// sent must still hold.
    Own,
    /// Not a valid registry request (unknown path, invalid name, method
    /// the endpoint lacks): authenticated callers get the router's own
    /// error, others the challenge.
    Other,
}

fn reference(r: &str) -> (Option<String>, Option<String>) {
    if r.contains(':') {
        (None, Some(r.to_string()))
    } else {
        (Some(r.to_string()), None)
    }
}

impl Target {
    fn on(action: Action, name: String, route: &'static str) -> Target {
        Target {
            action,
            repository: Some(name),
            tag: None,
            digest: None,
            route,
            artifact: None,
        }
    }

    pub(crate) fn registry(route: &'static str) -> Target {
        Target {
            action: Action::Catalog,
            repository: None,
            tag: None,
            digest: None,
            route,
            artifact: None,
        }
    }

    /// The resource a token scope names for this target.
    pub fn resource(&self) -> Resource {
        match &self.repository {
            Some(n) => Resource::Repository(n.clone()),
            None => Resource::Catalog,
        }
    }

    /// The scope a client should ask a token for, as Distribution asks it
    /// (a push also needs pull: clients check what exists first).
    pub fn scope(&self) -> Scope {
        let actions = match self.action {
            Action::Push => Actions::PULL.union(Actions::PUSH),
            a => a.scope_actions(),
        };
        Scope {
            resource: self.resource(),
            actions,
        }
    }
}

/// Judges a request by its method and path.
#[cfg(test)]
pub fn judge(method: &Method, path: &str) -> Judged {
    judge_parsed(method, path, Route::parse(path))
}

/// Judges a request by its method, its path and that path as the
/// dispatcher parses it (parsed once per request, by the outermost layer).
pub fn judge_parsed(method: &Method, path: &str, parsed: Option<Route>) -> Judged {
    if let Some(j) = webhooks(method, path) {
        return j;
    }
    if let Some(j) = browse(method, path) {
        return j;
    }
    if path == "/pavilion/v1/decisions"
        || path == "/pavilion/v1/usage"
        || path == "/pavilion/v1/transfers"
        || path == "/pavilion/v1/events"
        || path == "/pavilion/v1/queries"
        || path == "/metrics"
        || path.starts_with("/pavilion/v1/policy/")
    {
        // HEAD is decided as GET: the router answers it with the GET
        // handler, whose status alone can tell (the policy report's 200 or
        // 404 says whether a manifest exists).
        return if method == Method::GET || method == Method::HEAD {
            let route = if path.starts_with("/pavilion/v1/policy/") {
                "policy"
            } else if path == "/pavilion/v1/usage" {
                "usage"
            } else if path == "/pavilion/v1/transfers" {
                "transfers"
            } else if path == "/pavilion/v1/events" || path == "/pavilion/v1/queries" {
                "events"
            } else if path == "/metrics" {
                "metrics"
            } else {
                "decisions"
            };
            Judged::Act(Target::registry(route))
        } else {
            Judged::Other
        };
    }
    let Some(route) = parsed else {
        return Judged::Other;
    };
    if !route.allows(method) {
        return Judged::Other;
    }
    let read = method == Method::GET || method == Method::HEAD;
    let valid = |n: &str| repo(n).is_ok();
    match route {
        Route::Base => Judged::Base,
        Route::Catalog => Judged::Act(Target::registry("catalog")),
        Route::Tags(n) if valid(&n) => Judged::Act(Target::on(Action::Pull, n, "tags")),
        Route::Referrers(n, d) if valid(&n) => Judged::Act(Target {
            digest: Some(d),
            ..Target::on(Action::Pull, n, "referrers")
        }),
        Route::Manifest(n, r) if valid(&n) => {
            let action = match *method {
                Method::PUT => Action::Push,
                Method::DELETE => Action::Delete,
                _ => Action::Pull,
            };
            let (tag, digest) = reference(&r);
            Judged::Act(Target {
                tag,
                digest,
                ..Target::on(action, n, "manifest")
            })
        }
        Route::Blob(n, d) if valid(&n) => Judged::Act(Target {
            digest: Some(d),
            ..Target::on(if read { Action::Pull } else { Action::Delete }, n, "blob")
        }),
        Route::UploadStart(n) | Route::Upload(n, _) if valid(&n) => {
            Judged::Act(Target::on(Action::Push, n, "upload"))
        }
        _ => Judged::Other,
    }
}

/// The browsing routes (`crate::browse`), each judged as the `/v2` read
/// it stands for, with the same action, repository and route name, so
/// grants and rules written for one hold for the other: the repository
/// search as `/v2/_catalog` (the registry-wide catalog grant, which the
/// catalog needs; it lists every repository, as the catalog does), a
/// repository's tags as its `tags/list`, a manifest's signatures as a GET
/// of that manifest (by tag or digest). A name that is not valid is not an
/// action (the handler refuses it once the caller is known).
fn browse(method: &Method, path: &str) -> Option<Judged> {
    use crate::browse::Browse;
    let b = Browse::parse(path)?;
    // HEAD too: the router answers it with the GET handler (body dropped),
    // and its status alone would tell whether a repository exists.
    if method != Method::GET && method != Method::HEAD {
        return Some(Judged::Other);
    }
    let valid = |n: &str| repo(n).is_ok();
    Some(match b {
        // Any authenticated caller: the handler lists everything to a
        // holder of the catalog grant and, to anyone else, only the
        // repositories they may pull (`browse::repositories`).
        Browse::Repositories => Judged::Other,
        Browse::Tags(n) if valid(&n) => Judged::Act(Target::on(Action::Pull, n, "tags")),
        Browse::Signatures(n, r) if valid(&n) => {
            let (tag, digest) = reference(&r);
            Judged::Act(Target {
                tag,
                digest,
                ..Target::on(Action::Pull, n, "manifest")
            })
        }
        Browse::Access(n) if valid(&n) => Judged::Own,
        _ => Judged::Other,
    })
}

/// The webhook routes. The list needs what the change feed needs (the
/// catalog grant): it shows the same events' sequence numbers and the
/// receivers' errors. A replay changes state and makes the registry send
/// requests again, so it asks for the most Pavilion's grants can say:
/// `delete` on the registry itself, which only the registry-wide grant
/// (`registry:catalog:*`, what an administrator holds; a token or API key
/// must carry it) gives, and which policies see as action `delete`, route
/// `webhook-replay`, no repository, so a `pavilion.authz` rule can narrow
/// it further (to a group of operators, say) without touching the feed.
/// No repository-level grant reaches it, however wide its glob.
fn webhooks(method: &Method, path: &str) -> Option<Judged> {
    let rest = path.strip_prefix("/pavilion/v1/webhooks")?;
    let registry = |action, route| {
        Judged::Act(Target {
            action,
            ..Target::registry(route)
        })
    };
    match (rest, method) {
        // HEAD as GET: the router answers it with the GET handler.
        ("", &Method::GET) | ("", &Method::HEAD) => Some(registry(Action::Catalog, "webhooks")),
        ("", _) => Some(Judged::Other),
        (r, m) => {
            let name = r.strip_prefix('/')?.strip_suffix("/replay")?;
            if name.is_empty() || name.contains('/') {
                return Some(Judged::Other);
            }
            Some(if m == Method::POST {
                registry(Action::Delete, "webhook-replay")
            } else {
                Judged::Other
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(m: Method, p: &str) -> Target {
        match judge(&m, p) {
            Judged::Act(t) => t,
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn webhook_routes_need_the_registry_grant() {
        let list = act(Method::GET, "/pavilion/v1/webhooks");
        assert_eq!((list.action, list.route), (Action::Catalog, "webhooks"));
        let r = act(Method::POST, "/pavilion/v1/webhooks/ci/replay");
        assert_eq!((r.action, r.route), (Action::Delete, "webhook-replay"));
        assert_eq!(r.repository, None);
        assert_eq!(r.scope().to_string(), "registry:catalog:*");
        assert_eq!(
            judge(&Method::GET, "/pavilion/v1/webhooks/ci/replay"),
            Judged::Other
        );
        assert_eq!(judge(&Method::POST, "/pavilion/v1/webhooks"), Judged::Other);
        assert_eq!(act(Method::HEAD, "/pavilion/v1/webhooks"), list);
    }

    #[test]
    fn browsing_is_judged_as_the_read_it_stands_for() {
        // The search is let through to any authenticated caller; its
        // handler filters by what each may pull.
        assert_eq!(
            judge(&Method::GET, "/pavilion/v1/repositories"),
            Judged::Other
        );
        let t = act(Method::GET, "/pavilion/v1/repositories/team/m/tags");
        assert_eq!(t, act(Method::GET, "/v2/team/m/tags/list"));
        assert_eq!(
            t,
            act(Method::HEAD, "/pavilion/v1/repositories/team/m/tags")
        );
        let s = act(Method::GET, "/pavilion/v1/signatures/team/m/manifests/v1");
        assert_eq!(s, act(Method::GET, "/v2/team/m/manifests/v1"));
        let d = act(
            Method::GET,
            "/pavilion/v1/signatures/team/m/manifests/sha256:ab",
        );
        assert_eq!(
            (d.action, d.digest.as_deref(), d.tag),
            (Action::Pull, Some("sha256:ab"), None)
        );
        assert_eq!(
            judge(&Method::GET, "/pavilion/v1/access/team/m"),
            Judged::Own
        );
        for (m, p) in [
            (Method::GET, "/pavilion/v1/access/UPPER"),
            (Method::GET, "/pavilion/v1/access/a%2Fb"),
            (Method::GET, "/pavilion/v1/repositories/UPPER/tags"),
            (Method::GET, "/pavilion/v1/repositories/m"),
            (Method::POST, "/pavilion/v1/repositories"),
            (Method::DELETE, "/pavilion/v1/signatures/m/manifests/v1"),
        ] {
            assert_eq!(judge(&m, p), Judged::Other, "{m} {p}");
        }
    }

    #[test]
    fn requests_map_to_actions() {
        assert_eq!(judge(&Method::GET, "/v2/"), Judged::Base);
        let t = act(Method::PUT, "/v2/team/m/manifests/v1");
        assert_eq!(
            (t.action, t.repository.as_deref(), t.tag.as_deref()),
            (Action::Push, Some("team/m"), Some("v1"))
        );
        assert_eq!(t.scope().to_string(), "repository:team/m:pull,push");
        let t = act(Method::HEAD, "/v2/m/manifests/sha256:ab");
        assert_eq!(
            (t.action, t.digest.as_deref()),
            (Action::Pull, Some("sha256:ab"))
        );
        assert_eq!(
            act(Method::DELETE, "/v2/m/blobs/sha256:ab").action,
            Action::Delete
        );
        assert_eq!(
            act(Method::GET, "/v2/m/blobs/sha256:ab").action,
            Action::Pull
        );
        assert_eq!(
            act(Method::POST, "/v2/m/blobs/uploads/").action,
            Action::Push
        );
        assert_eq!(
            act(Method::PATCH, "/v2/m/blobs/uploads/x").action,
            Action::Push
        );
        assert_eq!(
            act(Method::GET, "/v2/m/blobs/uploads/x").action,
            Action::Push
        );
        let c = act(Method::GET, "/v2/_catalog");
        assert_eq!(
            (c.action, c.scope().to_string()),
            (Action::Catalog, "registry:catalog:*".into())
        );
        assert_eq!(
            act(Method::GET, "/pavilion/v1/decisions").action,
            Action::Catalog
        );
        assert_eq!(act(Method::GET, "/pavilion/v1/usage").route, "usage");
        let e = act(Method::GET, "/pavilion/v1/events");
        assert_eq!((e.action, e.route), (Action::Catalog, "events"));
        // Not actions: invalid names, methods an endpoint lacks, other paths.
        assert_eq!(judge(&Method::GET, "/v2/a%2Fb/tags/list"), Judged::Other);
        assert_eq!(judge(&Method::GET, "/v2/UPPER/tags/list"), Judged::Other);
        assert_eq!(judge(&Method::POST, "/v2/m/manifests/x"), Judged::Other);
        assert_eq!(judge(&Method::GET, "/elsewhere"), Judged::Other);
        assert_eq!(
            judge(&Method::DELETE, "/pavilion/v1/decisions"),
            Judged::Other
        );
    }
}
