//! Retention rules: which tags and untagged manifests a repository keeps
//! beyond what plain reachability keeps (issue 17, item 3).
//!
//! A rule applies to the repositories its glob matches; the first rule in
//! the configuration that matches a repository is the one that applies
//! (order is the operator's, never the request's). Without a rule, tags
//! are kept for ever and untagged manifests go once they are older than
//! the grace period.

use globset::{GlobBuilder, GlobMatcher};
use std::time::Duration;

/// Artifact types of signatures: a manifest with a referrer of one of
/// these is signed (`protect_signed`).
pub const SIGNATURE_TYPES: &[&str] = &[
    "application/vnd.cncf.notary.signature",
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
];

/// A compiled glob with its text.
#[derive(Debug, Clone)]
pub struct Glob {
    text: String,
    matcher: GlobMatcher,
}

impl Glob {
    /// `*` within one path segment, `**` across them, `?` one character
    /// (as `[auth.grants]` globs).
    pub fn new(text: &str) -> Result<Glob, String> {
        if text.is_empty() {
            return Err("an empty glob".into());
        }
        let matcher = GlobBuilder::new(text)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("glob {text:?}: {e}"))?
            .compile_matcher();
        Ok(Glob {
            text: text.to_string(),
            matcher,
        })
    }

    /// Whether `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.matcher.is_match(s)
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The repositories it applies to.
    pub repositories: Glob,
    /// Keep only the newest this many of the tags matching `tags` (by the
    /// time they were last set); older ones are removed. `None`: all.
    pub keep_last: Option<usize>,
    /// Which tags `keep_last` counts and may remove (empty: every tag).
    pub tags: Vec<Glob>,
    /// Tags never removed, whatever `keep_last` says.
    pub protect_tags: Vec<Glob>,
    /// A signed manifest is never removed (nor its tags).
    pub protect_signed: bool,
    /// Untagged manifests nothing reaches go once untagged for this long
    /// (at least the grace period); `None`: never.
    pub untagged_after: Option<Duration>,
}

impl Rule {
    /// A rule for `repositories` that changes nothing (the defaults).
    pub fn new(repositories: Glob) -> Rule {
        Rule {
            repositories,
            keep_last: None,
            tags: Vec::new(),
            protect_tags: Vec::new(),
            protect_signed: false,
            untagged_after: Some(Duration::ZERO),
        }
    }

    /// Whether `keep_last` counts tag `t`.
    pub fn counts(&self, t: &str) -> bool {
        self.tags.is_empty() || self.tags.iter().any(|g| g.is_match(t))
    }

    /// Whether tag `t` is protected by name.
    pub fn protects_tag(&self, t: &str) -> bool {
        self.protect_tags.iter().any(|g| g.is_match(t))
    }
}

/// The rules, in order.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// First match wins.
    pub rules: Vec<Rule>,
}

impl Retention {
    /// The rule for `repo`, if any.
    pub fn rule_for(&self, repo: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.repositories.is_match(repo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_within_a_path_segment_and_the_first_rule_wins() {
        let star = Glob::new("team/*").unwrap();
        assert!(star.is_match("team/a"));
        assert!(!star.is_match("team/a/b"));
        assert!(Glob::new("team/**").unwrap().is_match("team/a/b"));
        assert!(Glob::new("").is_err());
        assert!(Glob::new("team/[").is_err());
        let mut first = Rule::new(Glob::new("team/*").unwrap());
        first.keep_last = Some(1);
        let r = Retention {
            rules: vec![first, Rule::new(Glob::new("**").unwrap())],
        };
        assert_eq!(r.rule_for("team/a").unwrap().keep_last, Some(1));
        assert_eq!(r.rule_for("other").unwrap().keep_last, None);
        let mut counted = Rule::new(Glob::new("x").unwrap());
        assert!(counted.counts("anything"));
        counted.tags = vec![Glob::new("v*").unwrap()];
        assert!(counted.counts("v1") && !counted.counts("latest"));
    }
}
