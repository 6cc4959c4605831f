//! What a row of `pavilion watch` names: the artifact in fields
//! `repository` and `digest` (or `tag`), for the `{ref}`, `{repo}`,
//! `{digest}`, `{tag}` and `{registry}` placeholders of `--exec` and for
//! `--pull`.
//!
//! Row values are chosen by whoever pushes, and `--exec` runs through
//! `sh -c`: a placeholder is replaced only by a value that parses under
//! the OCI grammar of its kind (a repository name, a digest, a tag),
//! whose characters (`a-z A-Z 0-9 . _ - / : + =`) the shell reads as
//! plain text, never by an arbitrary field; any other field is reached
//! through the environment. A row whose values do not parse gets no
//! reaction, and says why.

use pavilion_client::queries::Row;
use pavilion_oci::{Digest, RepoName, Tag};

/// The placeholders `--exec` replaces.
pub const PLACEHOLDERS: [&str; 5] = ["{ref}", "{repo}", "{digest}", "{tag}", "{registry}"];

/// The artifact a row names.
#[derive(Debug)]
pub struct Named {
    /// The repository.
    pub repo: RepoName,
    /// The digest, when the row has one.
    pub digest: Option<Digest>,
    /// The tag, when the row has one.
    pub tag: Option<Tag>,
}

fn field<'a>(row: &'a Row, name: &str) -> Result<Option<&'a str>, String> {
    match row.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("the row's {name} is not a string")),
    }
}

impl Named {
    /// The artifact `row` names; an error says which field is missing or
    /// does not parse.
    pub fn of(row: &Row) -> Result<Named, String> {
        let repo = field(row, "repository")?
            .ok_or("the row has no repository field (RETURN ... AS repository)")?;
        let repo = RepoName::new(repo)
            .map_err(|e| format!("the row's repository is not a repository name: {e}"))?;
        let digest = field(row, "digest")?
            .map(|d| {
                d.parse::<Digest>()
                    .map_err(|e| format!("the row's digest is not a digest: {e}"))
            })
            .transpose()?;
        let tag = field(row, "tag")?
            .map(|t| Tag::new(t).map_err(|e| format!("the row's tag is not a tag: {e}")))
            .transpose()?;
        if digest.is_none() && tag.is_none() {
            return Err("the row has neither a digest nor a tag field".into());
        }
        Ok(Named { repo, digest, tag })
    }

    /// `registry/repository@digest`, else `registry/repository:tag`.
    pub fn reference(&self, registry: &str) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{registry}/{}@{d}", self.repo),
            (None, Some(t)) => format!("{registry}/{}:{t}", self.repo),
            (None, None) => format!("{registry}/{}", self.repo),
        }
    }
}

/// Whether `registry` holds only characters the shell reads as text (it
/// comes from the command line, yet lands in a `sh -c` string).
fn plain(registry: &str) -> bool {
    registry
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// `cmd` with its placeholders replaced for `row`; unchanged when it has
/// none (a command like `awk '{print}'` keeps its braces).
pub fn expand(cmd: &str, row: &Row, registry: &str) -> Result<String, String> {
    if !PLACEHOLDERS.iter().any(|p| cmd.contains(p)) {
        return Ok(cmd.to_string());
    }
    if !plain(registry) {
        return Err(format!(
            "the registry {registry:?} cannot be put in a command"
        ));
    }
    let n = Named::of(row)?;
    let mut out = cmd.replace("{ref}", &n.reference(registry));
    out = out.replace("{repo}", n.repo.as_str());
    out = out.replace("{registry}", registry);
    if out.contains("{digest}") {
        let d = n.digest.as_ref().ok_or("{digest}: the row has no digest")?;
        out = out.replace("{digest}", &d.to_string());
    }
    if out.contains("{tag}") {
        let t = n.tag.as_ref().ok_or("{tag}: the row has no tag")?;
        out = out.replace("{tag}", t.as_str());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: serde_json::Value) -> Row {
        Row(v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn placeholders_take_parsed_names_only() {
        let r = row(json!({"repository": "team/llm", "digest": D, "tag": "prod-1"}));
        assert_eq!(
            expand(
                "pavilion pull {ref} -o /models/{repo} # {tag}",
                &r,
                "127.0.0.1:5000"
            )
            .unwrap(),
            format!("pavilion pull 127.0.0.1:5000/team/llm@{D} -o /models/team/llm # prod-1")
        );
        let by_tag = row(json!({"repository": "team/llm", "tag": "v1"}));
        assert_eq!(expand("{ref}", &by_tag, "r:1").unwrap(), "r:1/team/llm:v1");
        assert!(expand("{digest}", &by_tag, "r:1").is_err());
        // Attacker-chosen values never reach the shell.
        for bad in [
            json!({"repository": "team/$(rm -rf ~)", "digest": D}),
            json!({"repository": "team/a", "digest": "sha256:`id`"}),
            json!({"repository": "team/a", "tag": "v1;id"}),
            json!({"repository": "../../etc", "tag": "v1"}),
            json!({"digest": D}),
            json!({"repository": 7, "digest": D}),
        ] {
            assert!(
                expand("x {ref}", &row(bad.clone()), "r:1").is_err(),
                "{bad}"
            );
        }
        // No placeholder: the command is left alone, whatever the row.
        let odd = row(json!({"x": "$(id)"}));
        assert_eq!(
            expand("awk '{print}'", &odd, "r:1").unwrap(),
            "awk '{print}'"
        );
        assert!(expand("{ref}", &r, "r;id").is_err());
    }
}
