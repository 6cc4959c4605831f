//! The interface between the registry and an authorization policy: what it
//! is asked about a request ([`AuthzInput`]), what it answers
//! ([`AuthzDecision`]) and the [`Authorizer`] trait, which `pavilion serve`
//! implements with Rego rules (package `pavilion.authz`, in
//! `pavilion-enforce`). A leaf, like `policy_hook`.

use pavilion_auth::{Actions, Identity};

/// What a request (or one action of a token scope) wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read tags, manifests, blobs, referrers.
    Pull,
    /// Upload blobs, put manifests (and so tags).
    Push,
    /// Delete manifests, tags, blobs.
    Delete,
    /// List repositories, read the decision log and policy reports.
    Catalog,
    /// Set a tag (a manifest PUT by tag or with `?tag=`), asked once the
    /// manifest is read, beside the `push` of the request.
    Tag,
    /// Push a Notary signature (a manifest whose subject is set and whose
    /// artifact type is a signature's), asked once it is read.
    Sign,
}

impl Action {
    /// The name policies see.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Catalog => "catalog",
            Action::Tag => "tag",
            Action::Sign => "sign",
        }
    }

    /// The scope action a token must hold for it (the catalog: any).
    pub fn scope_actions(self) -> Actions {
        match self {
            Action::Pull => Actions::PULL,
            Action::Push => Actions::PUSH,
            Action::Delete => Actions::DELETE,
            Action::Catalog => Actions::ALL,
            // Tags and signatures are pushed: a token's push covers them.
            Action::Tag | Action::Sign => Actions::PUSH,
        }
    }
}

/// One authorization question. Version 1 of the input document is built
/// from it (see docs/POLICY.md).
#[derive(Debug, Clone)]
pub struct AuthzInput<'a> {
    /// The caller; `None`: no credentials.
    pub identity: Option<&'a Identity>,
    /// Whether the caller came with a bearer token.
    pub bearer: bool,
    /// What it wants to do.
    pub action: Action,
    /// On which repository (`None` for the catalog).
    pub repository: Option<&'a str>,
    /// The tag a manifest request names.
    pub tag: Option<&'a str>,
    /// The digest a request names.
    pub digest: Option<&'a str>,
    /// The HTTP method, or `TOKEN` when a token scope is decided.
    pub method: &'a str,
    /// Which endpoint: `manifest`, `blob`, `tags`, `referrers`, `upload`,
    /// `catalog`, `decisions`, `policy`, `token`.
    pub route: &'a str,
    /// What the caller's grants give on this repository (for the catalog:
    /// all or nothing).
    pub granted: Actions,
    /// For `tag` and `sign`: the manifest as read.
    pub artifact: Option<&'a Artifact>,
}

/// What a manifest PUT carries, known once its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Its media type.
    pub media_type: String,
    /// Its artifact type (or its config's media type), if any.
    pub artifact_type: Option<String>,
    /// Whether a Notary signature for it is stored in the repository (not
    /// verified here: the push and pull gates verify).
    pub signed: bool,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzDecision {
    /// Whether the action may go ahead.
    pub allowed: bool,
    /// The deny rules' messages.
    pub deny: Vec<String>,
    /// Whether the rules were evaluated for this question (not answered
    /// from a cache): only those are written to the decision log.
    pub fresh: bool,
}

/// Decides requests.
pub trait Authorizer: Send + Sync {
    /// The decision for `input`; an error (the rules could not be
    /// evaluated) refuses the request.
    fn decide(&self, input: &AuthzInput<'_>) -> Result<AuthzDecision, String>;
}
