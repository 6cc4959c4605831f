//! What a caller may do on a repository, asked of the guard's own grants
//! and rules without acting on the answer (`GET /pavilion/v1/access/<name>`,
//! which a web page uses to show or hide its pull, push and delete
//! controls).
//!
//! A dry run: nothing is written to the decision log and nothing is counted
//! in the metrics, so a page that asks on every view neither floods the log
//! nor reads as a stream of denials. Each action is asked as the manifest
//! request it stands for (route `manifest`: `GET`, `PUT`, `DELETE`) with no
//! tag or digest, a question no request asks: the answers the authorizer
//! remembers for a few seconds are therefore never the ones a real request
//! finds, which would then go unrecorded as "not decided afresh".

use super::target::Target;
use super::{question, Access, Caller};
use crate::authz_hook::Action;

/// What the caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// Read tags, manifests, blobs.
    pub pull: bool,
    /// Push manifests and blobs.
    pub push: bool,
    /// Delete manifests, tags and blobs.
    pub delete: bool,
}

impl Permissions {
    /// Everything (a server without authentication).
    pub fn all() -> Permissions {
        Permissions {
            pull: true,
            push: true,
            delete: true,
        }
    }
}

/// What `caller` (`None`: no credentials, the anonymous grants) may do on
/// `repository`, as the guard would decide it: the credential's ceiling or
/// the configured grants, then the rules; in audit mode an authenticated
/// caller is let through whatever the rules say, as the guard lets it.
pub fn permissions(access: &Access, caller: Option<&Caller>, repository: &str) -> Permissions {
    let may = |action, method| would(access, caller, action, method, repository);
    Permissions {
        pull: may(Action::Pull, "GET"),
        push: may(Action::Push, "PUT"),
        delete: may(Action::Delete, "DELETE"),
    }
}

/// Whether `caller` may list every repository (the `/v2/_catalog` grant
/// and rules), asked the same way.
pub fn catalog(access: &Access, caller: Option<&Caller>) -> bool {
    decide(access, caller, &Target::registry("catalog"), "GET")
}

fn would(
    access: &Access,
    caller: Option<&Caller>,
    action: Action,
    method: &str,
    repository: &str,
) -> bool {
    let target = Target {
        action,
        repository: Some(repository.to_string()),
        tag: None,
        digest: None,
        route: "manifest",
        artifact: None,
    };
    decide(access, caller, &target, method)
}

fn decide(access: &Access, caller: Option<&Caller>, target: &Target, method: &str) -> bool {
    let granted = access.granted(caller, &target.resource());
    // Rules that fail to evaluate refuse at the door: here too.
    let allowed = access
        .authorizer
        .decide(&question(caller, target, method, granted))
        .is_ok_and(|d| d.allowed);
    allowed || (access.audit && caller.is_some())
}
