//! The pages. Repository pages live under `/ui/r/<name>`, and a version's
//! pages under `/ui/r/<name>/-/<page>/<reference>`: a `-` is never a
//! component of a repository name, so the split is unambiguous (GitLab
//! uses the same trick).

pub mod actions;
pub mod card;
mod card_data;
pub mod compare;
pub mod live;
pub mod login;
pub mod policy;
pub mod repos;
pub mod storage;
pub mod trust;
pub mod versions;

use crate::api::Viewer;
use crate::respond;
use crate::{Page, Ui, UiState};
use axum::extract::{Request, State};
use http::StatusCode;
use pavilion_oci::{Reference, RepoName};

/// What a `/ui/r/...` path names.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// The repository's versions.
    Versions(String),
    /// A page (`v`, `trust`, `policy`) of one version.
    Version(String, &'static str, String),
    /// Two versions side by side (`?a=&b=`).
    Compare(String),
    /// An action (`delete`), POSTed.
    Action(String, &'static str),
}

/// Parses the path after `/ui/r/`, checking the name and reference with
/// the registry's own grammar (anything else is no page).
pub fn target(rest: &str) -> Result<Target, String> {
    let (name, tail) = match rest.split_once("/-/") {
        Some((n, t)) => (n, Some(t)),
        None => (rest.trim_end_matches('/'), None),
    };
    let name = RepoName::new(name)
        .map_err(|e| format!("not a repository name: {e}"))?
        .as_str()
        .to_string();
    let Some(tail) = tail else {
        return Ok(Target::Versions(name));
    };
    if tail == "compare" {
        return Ok(Target::Compare(name));
    }
    if tail == "delete" {
        return Ok(Target::Action(name, "delete"));
    }
    let (page, reference) = tail
        .split_once('/')
        .ok_or_else(|| format!("no page at {tail}"))?;
    let page = match page {
        "v" => "v",
        "trust" => "trust",
        "policy" => "policy",
        _ => return Err(format!("no page {page:?}")),
    };
    let reference = Reference::parse(reference)
        .map_err(|e| format!("not a tag or digest: {e}"))?
        .to_string();
    Ok(Target::Version(name, page, reference))
}

/// `GET /ui/r/...`: the page the path names.
pub async fn repository(State(ui): UiState, req: Request) -> Page {
    let rest = req
        .uri()
        .path()
        .strip_prefix("/ui/r/")
        .unwrap_or_default()
        .to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let viewer = crate::viewer(&ui, req);
    match target(&rest) {
        Ok(Target::Versions(name)) => versions::page(&ui, &viewer, &name, &query).await,
        Ok(Target::Version(name, "v", r)) => card::page(&ui, &viewer, &name, &r).await,
        Ok(Target::Version(name, "trust", r)) => trust::page(&ui, &viewer, &name, &r).await,
        Ok(Target::Version(name, _, r)) => policy::page(&ui, &viewer, &name, &r).await,
        Ok(Target::Compare(name)) => compare::page(&ui, &viewer, &name, &query).await,
        Ok(Target::Action(..)) => not_here(&ui, &viewer, "that address takes a form (POST)"),
        Err(why) => not_here(&ui, &viewer, &why),
    }
}

fn not_here(ui: &Ui, viewer: &Viewer, why: &str) -> Page {
    respond::error(ui, viewer, StatusCode::NOT_FOUND, why)
}

/// The value of `key` in a query string (percent-decoded), if present.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| pavilion_oci::percent::decode_lenient(&v.replace('+', " ")))
    })
}

/// The head of a version's pages: where it is, its name, its tabs.
pub struct Head {
    /// The repository.
    pub name: String,
    /// Its versions page.
    pub name_href: String,
    /// The tag or digest.
    pub reference: String,
    /// `/ui/r/<name>/-/` (escaped for a path).
    pub base: String,
    /// The reference, escaped for a path.
    pub reference_path: String,
    /// The current tab: `v`, `trust`, `policy`.
    pub current: &'static str,
}

impl Head {
    /// The head of `name`'s version `reference`, on tab `current`.
    pub fn new(name: &str, reference: &str, current: &'static str) -> Head {
        let name_path = crate::view::path_part(name);
        Head {
            name: name.to_string(),
            name_href: format!("/ui/r/{name_path}"),
            reference: reference.to_string(),
            base: format!("/ui/r/{name_path}/-/"),
            reference_path: crate::view::path_part(reference),
            current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            target("team/llama"),
            Ok(Target::Versions("team/llama".into()))
        );
        assert_eq!(
            target("team/llama/"),
            Ok(Target::Versions("team/llama".into()))
        );
        assert_eq!(
            target("team/llama/-/v/v1.0"),
            Ok(Target::Version("team/llama".into(), "v", "v1.0".into()))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            target(&format!("a/-/trust/{d}")),
            Ok(Target::Version("a".into(), "trust", d))
        );
        assert_eq!(target("a/-/compare"), Ok(Target::Compare("a".into())));
        assert_eq!(
            target("a/-/delete"),
            Ok(Target::Action("a".into(), "delete"))
        );
        assert!(target("A<script>").is_err());
        assert!(target("a/-/v/not a tag").is_err());
        assert!(target("a/-/nope/x").is_err());
        assert!(target("a/-/v").is_err());
        assert!(target("").is_err());
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("q=a%2Fb+c&n=1", "q").as_deref(), Some("a/b c"));
        assert_eq!(query_param("q", "q").as_deref(), Some(""));
        assert_eq!(query_param("x=1", "q"), None);
    }
}
