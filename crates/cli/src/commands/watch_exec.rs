//! The reactions of `pavilion watch`: `--exec`, a command run through
//! `sh -c` for one row, the row handed over in the environment and in
//! the placeholders of [`super::watch_ref`] (only values that parse as
//! OCI names, which the shell reads as text: rows hold what pushers chose,
//! and any other value is never put into the command string); and
//! `--pull DIR`, the built-in one, which pulls the artifact a row names
//! into `DIR/<repository>` with the same library `pavilion pull` uses.

use super::watch_ref::{expand, Named};
use pavilion_client::digest_cache::default_cache_dir;
use pavilion_client::queries::Row;
use pavilion_client::watch_state::{Change, Reaction};
use pavilion_client::Client;
use pavilion_oci::ImageRef;
use pavilion_transfer::{Pull, Quiet};
use std::path::PathBuf;
use std::process::Stdio;

/// The prefix of the per-field variables; inherited ones are removed so
/// that a field missing from a row is never filled from the environment.
const FIELD_PREFIX: &str = "PAVILION_ROW_";

/// The reactions to run.
#[derive(Debug, Clone, Default)]
pub struct Reactions {
    /// For rows added or updated.
    pub exec: Option<String>,
    /// For rows removed.
    pub exec_removed: Option<String>,
    /// Pull each row added or updated into `<pull>/<repository>`.
    pub pull: Option<PathBuf>,
    /// The registry watched (`{registry}`, and where `--pull` pulls from).
    pub registry: String,
}

impl Reactions {
    /// The command for a change, if one was given.
    fn command(&self, change: Change) -> Option<&str> {
        match change {
            Change::Added | Change::Updated => self.exec.as_deref(),
            Change::Removed => self.exec_removed.as_deref(),
        }
    }

    /// Runs the reactions to `r` (the pull first, then the command) and
    /// waits for them; whether they succeeded (a change with nothing to do
    /// succeeds). A failure is reported on stderr.
    pub async fn run(&self, client: &Client, r: &Reaction) -> bool {
        if r.change != Change::Removed && self.pull.is_some() && !self.pull(client, &r.row).await {
            return false;
        }
        let Some(cmd) = self.command(r.change) else {
            return true;
        };
        let what = format!(
            "the reaction to {} row {}",
            r.change.as_str(),
            short(&r.row)
        );
        let cmd = match expand(cmd, &r.row, &self.registry) {
            Ok(cmd) => cmd,
            Err(e) => {
                eprintln!("{what} was not run: {e}");
                return false;
            }
        };
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(&cmd).stdin(Stdio::null());
        // The watch's stdout carries its own lines (often JSON for a
        // program); what reactions print goes to stderr, as hooks' does.
        c.stdout(std::io::stderr());
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with(FIELD_PREFIX)) {
                c.env_remove(k);
            }
        }
        for (k, v) in environment(r.change, &r.row) {
            c.env(k, v);
        }
        match c.status().await {
            Ok(s) if s.success() => true,
            Ok(s) => {
                eprintln!("{what} failed ({s}); it runs again at the next reconnect or restart");
                false
            }
            Err(e) => {
                eprintln!("{what} could not start (sh: {e}); it runs again at the next reconnect or restart");
                false
            }
        }
    }
}

impl Reactions {
    /// `--pull`: the artifact `row` names, into `DIR/<repository>`.
    async fn pull(&self, client: &Client, row: &Row) -> bool {
        let Some(dir) = &self.pull else {
            return true;
        };
        let fail = |why: String| {
            eprintln!(
                "pulling for row {} failed: {why}; it runs again at the next reconnect or restart",
                short(row)
            );
            false
        };
        let named = match Named::of(row) {
            Ok(n) => n,
            Err(e) => return fail(e),
        };
        let reference = named.reference(&self.registry);
        let r: ImageRef = match reference.parse() {
            Ok(r) => r,
            Err(e) => return fail(format!("{reference}: {e}")),
        };
        // A repository name has no `..` component and no leading `/`.
        let to = dir.join(named.repo.as_str());
        let pull = Pull::new(client, r).cache_dir(default_cache_dir());
        match pull.run(&to, &Quiet).await {
            Ok(report) => {
                eprintln!(
                    "pulled {reference} ({} files) into {}",
                    report.files.len(),
                    to.display()
                );
                true
            }
            Err(e) => fail(format!("{reference}: {e:#}")),
        }
    }
}

/// The row on one line for messages, cut at 200 characters.
fn short(row: &Row) -> String {
    let s = super::query::printable(&row.to_json());
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// The variables a reaction sees: `PAVILION_CHANGE`, `PAVILION_ROW` (the
/// row as JSON) and `PAVILION_ROW_<NAME>` for each top-level scalar field
/// (strings as they are, numbers and booleans as JSON writes them, null
/// as empty). A value holding NUL cannot be in an environment; that field
/// is left to `PAVILION_ROW`.
pub fn environment(change: Change, row: &Row) -> Vec<(String, String)> {
    let mut env = vec![
        ("PAVILION_CHANGE".to_string(), change.as_str().to_string()),
        ("PAVILION_ROW".to_string(), row.to_json()),
    ];
    for (name, value) in &row.0 {
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            serde_json::Value::Bool(_) | serde_json::Value::Number(_) => value.to_string(),
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => continue,
        };
        if value.contains('\0') {
            continue;
        }
        env.push((format!("{FIELD_PREFIX}{}", var_name(name)), value));
    }
    env
}

/// A field name as a variable name: upper-cased, anything but ASCII
/// letters and digits as `_`.
fn var_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_become_variables_and_nothing_else_does() {
        let row = Row(vec![
            ("repository".into(), json!("team/app; rm -rf ~")),
            ("tag-name".into(), json!("v1")),
            ("size".into(), json!(12)),
            ("signed".into(), json!(true)),
            ("note".into(), json!(null)),
            ("labels".into(), json!({"a": 1})),
            ("bad".into(), json!("a\u{0}b")),
        ]);
        let env = environment(Change::Updated, &row);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PAVILION_CHANGE"), Some("updated"));
        assert_eq!(get("PAVILION_ROW"), Some(row.to_json().as_str()));
        assert_eq!(get("PAVILION_ROW_REPOSITORY"), Some("team/app; rm -rf ~"));
        assert_eq!(get("PAVILION_ROW_TAG_NAME"), Some("v1"));
        assert_eq!(get("PAVILION_ROW_SIZE"), Some("12"));
        assert_eq!(get("PAVILION_ROW_SIGNED"), Some("true"));
        assert_eq!(get("PAVILION_ROW_NOTE"), Some(""));
        assert_eq!(get("PAVILION_ROW_LABELS"), None);
        assert_eq!(get("PAVILION_ROW_BAD"), None);
    }

    #[tokio::test]
    async fn a_row_value_is_data_to_the_shell_never_code() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let planted = dir.path().join("planted");
        let row = Row(vec![(
            "tag".into(),
            json!(format!("$(touch {})", planted.display())),
        )]);
        let reactions = Reactions {
            exec: Some(format!(
                "printf '%s' \"$PAVILION_ROW_TAG\" > '{}'",
                out.display()
            )),
            ..Reactions::default()
        };
        let client = pavilion_client::Client::new(Default::default()).unwrap();
        let r = Reaction {
            change: Change::Added,
            key: row.key(),
            row: row.clone(),
        };
        assert!(reactions.run(&client, &r).await);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            format!("$(touch {})", planted.display())
        );
        assert!(!planted.exists());
        let failing = Reactions {
            exec: Some("exit 3".into()),
            ..Reactions::default()
        };
        assert!(!failing.run(&client, &r).await);
        let removed = Reaction {
            change: Change::Removed,
            ..r
        };
        assert!(
            failing.run(&client, &removed).await,
            "no command: nothing to do"
        );
    }
}
