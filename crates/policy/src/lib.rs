//! Policy as code: a directory of Rego files (and optional JSON data)
//! evaluated with Microsoft's regorus into a decision at one of Pavilion's
//! decision points.
//!
//! Convention: the rules for a decision point live in package
//! `pavilion.<point>` (`pavilion.push`, `pavilion.pull`,
//! `pavilion.admission`, `pavilion.authz`); `deny` and `warn` are sets
//! whose elements are messages (strings, or objects with a `msg` field, as
//! Gatekeeper writes them). An empty `deny` set means allowed, except at
//! `authz`, which also needs `allow` to be true (deny wins over allow;
//! nothing allowed is denied). Rules named `test_*` in any package are
//! tests (`pavilion policy test`, as `opa test` runs them).
//!
//! Data: every `*.json` file of the directory is merged into `data`
//! (objects at the top level).

pub mod input;
pub mod kubernetes;

use std::path::{Path, PathBuf};

/// Why a policy could not be loaded or evaluated. Messages are one line and
/// name the file (and line, where regorus says it) concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The directory or a file could not be read.
    #[error("{path}: {why}")]
    Read {
        /// The file or directory.
        path: String,
        /// The OS error.
        why: String,
    },
    /// A Rego file does not parse or compile.
    #[error("{0}")]
    Rego(String),
    /// A data file is not a JSON object.
    #[error("{path}: {why}")]
    Data {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Evaluation failed (a runtime error in a rule).
    #[error("evaluation of {rule}: {why}")]
    Eval {
        /// The rule evaluated.
        rule: String,
        /// regorus's message.
        why: String,
    },
    /// The directory holds no Rego file.
    #[error("{0}: no .rego files")]
    Empty(String),
}

/// A decision point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// A manifest push.
    Push,
    /// A pull.
    Pull,
    /// A Kubernetes admission review.
    Admission,
    /// A request to the registry by an authenticated (or anonymous)
    /// caller, and each scope of a token asked for.
    Authz,
}

/// The authorization policy used when the policy directory has no
/// `pavilion.authz` package: a caller may do exactly what its grants give
/// (an API key's or token's scopes, the configuration's grants for users).
pub const DEFAULT_AUTHZ: &str = include_str!("authz_default.rego");

impl Point {
    /// The point's name (and package suffix).
    pub fn name(self) -> &'static str {
        match self {
            Point::Push => "push",
            Point::Pull => "pull",
            Point::Admission => "admission",
            Point::Authz => "authz",
        }
    }

    /// Parses a point name.
    pub fn parse(s: &str) -> Option<Point> {
        [Point::Push, Point::Pull, Point::Admission, Point::Authz]
            .into_iter()
            .find(|p| p.name() == s)
    }
}

/// The outcome of evaluating a policy for one input.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// Why the request is refused (empty: allowed).
    pub deny: Vec<String>,
    /// Warnings that do not refuse.
    pub warn: Vec<String>,
    /// At `authz` only: whether an `allow` rule held (undefined is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<bool>,
}

impl Decision {
    /// Whether the request is allowed: no `deny` message and, at `authz`,
    /// `allow` true.
    pub fn allowed(&self) -> bool {
        self.deny.is_empty() && self.allow != Some(false)
    }
}

/// The result of one `test_*` rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TestResult {
    /// `data.<package>.<rule>`.
    pub name: String,
    /// Whether the rule held.
    pub passed: bool,
    /// The evaluation error, if any.
    pub error: Option<String>,
}

/// A loaded policy directory.
#[derive(Clone)]
pub struct Policy {
    engine: regorus::Engine,
    /// `(package, rule)` of every `test_*` rule, in file order.
    tests: Vec<(String, String)>,
}

fn read(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|e| PolicyError::Read {
        path: path.display().to_string(),
        why: e.to_string(),
    })
}

/// The files of `dir` (recursively, sorted) with extension `ext`.
fn files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, PolicyError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| PolicyError::Read {
            path: d.display().to_string(),
            why: e.to_string(),
        })?;
        for e in entries.flatten() {
            // Hidden entries are skipped: a Kubernetes ConfigMap volume holds
            // every file twice more under `..data` and `..<timestamp>`.
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The package and `test_*` rule names of a Rego source, read from the
/// text (rule heads start a line).
fn test_rules(source: &str) -> Vec<(String, String)> {
    let mut package = String::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in source.lines() {
        let line = line.trim_start();
        if let Some(p) = line.strip_prefix("package ") {
            package = p.trim().to_string();
        } else if line.starts_with("test_") {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !out.iter().any(|(pk, n)| *pk == package && *n == name) {
                out.push((package.clone(), name));
            }
        }
    }
    out
}

/// Messages of a `deny`/`warn` value: a set or array of strings or of
/// objects with `msg`.
fn messages(v: &serde_json::Value) -> Vec<String> {
    let items = match v {
        serde_json::Value::Array(a) => a.clone(),
        serde_json::Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    let mut out: Vec<String> = items
        .iter()
        .map(|i| match i {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => match o.get("msg") {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => i.to_string(),
            },
            other => other.to_string(),
        })
        .collect();
    out.sort();
    out
}

impl Policy {
    /// Loads every `.rego` file and `.json` data file under `dir`.
    pub fn load(dir: &Path) -> Result<Policy, PolicyError> {
        Policy::load_with_defaults(Some(dir), &[])
    }

    /// Loads `dir` (if any), then each `(point, source)` default whose
    /// package `dir` does not declare: the defaults fill in decision points
    /// the directory leaves out, and never mix with its own rules.
    pub fn load_with_defaults(
        dir: Option<&Path>,
        defaults: &[(Point, &str)],
    ) -> Result<Policy, PolicyError> {
        let mut engine = regorus::Engine::new();
        // A builtin that fails (bad argument types, ...) is an error to
        // report, not a silently undefined rule.
        engine.set_strict_builtin_errors(true);
        let mut tests = Vec::new();
        if let Some(dir) = dir {
            Policy::add_dir(&mut engine, &mut tests, dir)?;
        }
        let mut policy = Policy { engine, tests };
        for (point, source) in defaults {
            if !policy.has_point(*point) {
                policy
                    .engine
                    .add_policy(
                        format!("(default {} policy)", point.name()),
                        source.to_string(),
                    )
                    .map_err(|e| PolicyError::Rego(one_line(&e.to_string())))?;
            }
        }
        Ok(policy)
    }

    fn add_dir(
        engine: &mut regorus::Engine,
        tests: &mut Vec<(String, String)>,
        dir: &Path,
    ) -> Result<(), PolicyError> {
        let rego = files(dir, "rego")?;
        if rego.is_empty() {
            return Err(PolicyError::Empty(dir.display().to_string()));
        }
        for p in &rego {
            let source = read(p)?;
            tests.extend(test_rules(&source));
            engine
                .add_policy(p.display().to_string(), source)
                .map_err(|e| PolicyError::Rego(one_line(&e.to_string())))?;
        }
        for p in files(dir, "json")? {
            let text = read(&p)?;
            let value = regorus::Value::from_json_str(&text).map_err(|e| PolicyError::Data {
                path: p.display().to_string(),
                why: one_line(&e.to_string()),
            })?;
            if value.as_object().is_err() {
                return Err(PolicyError::Data {
                    path: p.display().to_string(),
                    why: "data files must hold a JSON object".into(),
                });
            }
            engine.add_data(value).map_err(|e| PolicyError::Data {
                path: p.display().to_string(),
                why: one_line(&e.to_string()),
            })?;
        }
        Ok(())
    }

    fn eval(&mut self, rule: &str) -> Result<serde_json::Value, PolicyError> {
        let err = |why: String| PolicyError::Eval {
            rule: rule.to_string(),
            why: one_line(&why),
        };
        // A query (not eval_rule): a package without the rule is simply
        // undefined, not an error.
        let results = self
            .engine
            .eval_query(rule.to_string(), false)
            .map_err(|e| err(e.to_string()))?;
        let Some(v) = results
            .result
            .into_iter()
            .next()
            .and_then(|r| r.expressions.into_iter().next())
            .map(|e| e.value)
        else {
            return Ok(serde_json::Value::Null);
        };
        let text = v.to_json_str().map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    }

    /// Whether a loaded file declares package `pavilion.<point>` (its rules
    /// decide that point; without one every input is allowed).
    pub fn has_point(&self, point: Point) -> bool {
        let package = format!("data.pavilion.{}", point.name());
        self.engine
            .get_packages()
            .is_ok_and(|p| p.contains(&package))
    }

    /// The decision at `point` for `input`.
    pub fn decide(
        &mut self,
        point: Point,
        input: &serde_json::Value,
    ) -> Result<Decision, PolicyError> {
        let input =
            regorus::Value::from_json_str(&input.to_string()).map_err(|e| PolicyError::Eval {
                rule: "input".into(),
                why: one_line(&e.to_string()),
            })?;
        self.engine.set_input(input);
        let package = format!("data.pavilion.{}", point.name());
        let allow = match point {
            Point::Authz => {
                Some(self.eval(&format!("{package}.allow"))? == serde_json::Value::Bool(true))
            }
            _ => None,
        };
        Ok(Decision {
            deny: messages(&self.eval(&format!("{package}.deny"))?),
            warn: messages(&self.eval(&format!("{package}.warn"))?),
            allow,
        })
    }

    /// Runs every `test_*` rule (with no input, as `opa test` does).
    pub fn run_tests(&mut self) -> Vec<TestResult> {
        let tests = self.tests.clone();
        tests
            .into_iter()
            .map(|(package, rule)| {
                let name = format!("data.{package}.{rule}");
                match self.eval(&name) {
                    Ok(v) => TestResult {
                        passed: v == serde_json::Value::Bool(true),
                        name,
                        error: None,
                    },
                    Err(e) => TestResult {
                        passed: false,
                        name,
                        error: Some(e.to_string()),
                    },
                }
            })
            .collect()
    }
}

/// regorus messages span lines (a source excerpt); keep them one line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    const PUSH: &str = r#"
package pavilion.push
import rego.v1

deny contains msg if {
    input.config.format == "pickle"
    msg := sprintf("%s: pickle weights are not allowed", [input.repository])
}

deny contains {"msg": "license required"} if not input.config.licenses

warn contains "no version" if not input.config.version

max_params := data.limits.max_params

deny contains msg if {
    input.config.paramCount > max_params
    msg := sprintf("too many parameters: %d > %d", [input.config.paramCount, max_params])
}

test_pickle_denied if {
    count(deny) > 0 with input as {"repository": "r", "config": {"format": "pickle", "licenses": ["MIT"]}}
}

test_safetensors_allowed if {
    count(deny) == 0 with input as {"repository": "r", "config": {"format": "safetensors", "licenses": ["MIT"], "version": "1"}}
}

test_wrong_expectation if {
    count(deny) == 0 with input as {"repository": "r", "config": {"format": "pickle"}}
}
"#;

    #[test]
    fn allows_denies_and_warns() {
        let d = dir(&[
            ("push.rego", PUSH),
            ("data/limits.json", r#"{"limits": {"max_params": 1000}}"#),
        ]);
        let mut p = Policy::load(d.path()).unwrap();
        let ok = p
            .decide(
                Point::Push,
                &serde_json::json!({"repository": "a/b", "config": {"format": "safetensors", "licenses": ["MIT"], "version": "1", "paramCount": 10}}),
            )
            .unwrap();
        assert!(ok.allowed(), "{ok:?}");
        assert!(ok.warn.is_empty());
        let bad = p
            .decide(
                Point::Push,
                &serde_json::json!({"repository": "a/b", "config": {"format": "pickle", "paramCount": 5000}}),
            )
            .unwrap();
        assert_eq!(
            bad.deny,
            vec![
                "a/b: pickle weights are not allowed".to_string(),
                "license required".to_string(),
                "too many parameters: 5000 > 1000".to_string(),
            ]
        );
        assert_eq!(bad.warn, vec!["no version".to_string()]);
        // No rules for a point: allowed.
        assert!(p
            .decide(Point::Pull, &serde_json::json!({}))
            .unwrap()
            .allowed());
    }

    #[test]
    fn hidden_entries_are_skipped_as_in_a_configmap_volume() {
        let d = dir(&[
            ("..2026_11_24/push.rego", PUSH),
            ("..data/push.rego", PUSH),
            (".hidden.rego", "not rego at all"),
            ("push.rego", PUSH),
            ("limits.json", r#"{"limits": {"max_params": 1}}"#),
        ]);
        // The hidden file does not parse: loading succeeds only if skipped.
        let mut p = Policy::load(d.path()).unwrap();
        assert_eq!(p.run_tests().len(), 3);
    }

    #[test]
    fn tests_run_like_opa_test() {
        let d = dir(&[
            ("push.rego", PUSH),
            ("limits.json", r#"{"limits": {"max_params": 1}}"#),
        ]);
        let mut p = Policy::load(d.path()).unwrap();
        let results = p.run_tests();
        let by_name = |n: &str| results.iter().find(|r| r.name.ends_with(n)).unwrap().passed;
        assert_eq!(results.len(), 3, "{results:?}");
        assert!(by_name("test_pickle_denied"));
        assert!(by_name("test_safetensors_allowed"));
        assert!(!by_name("test_wrong_expectation"));
    }

    #[test]
    fn errors_name_the_file_and_stay_on_one_line() {
        let d = dir(&[(
            "bad.rego",
            "package pavilion.push\n\ndeny contains x if {\n  x := \n}\n",
        )]);
        let e = Policy::load(d.path()).err().unwrap().to_string();
        assert!(e.contains("bad.rego"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let d = dir(&[("ok.rego", "package pavilion.push\n"), ("d.json", "[1]")]);
        let e = Policy::load(d.path()).err().unwrap().to_string();
        assert!(e.contains("d.json") && e.contains("object"), "{e}");
        let d = dir(&[
            ("ok.rego", "package pavilion.push\n"),
            ("d.json", "{not json"),
        ]);
        assert!(Policy::load(d.path())
            .err()
            .unwrap()
            .to_string()
            .contains("d.json"));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            Policy::load(empty.path()),
            Err(PolicyError::Empty(_))
        ));
        // A runtime error (a builtin given a bad argument) names the rule
        // and the file.
        let d = dir(&[(
            "rt.rego",
            "package pavilion.push\nimport rego.v1\ndeny contains msg if {\n  x := to_number(input.text)\n  msg := sprintf(\"%v\", [x])\n}\n",
        )]);
        let mut p = Policy::load(d.path()).unwrap();
        match p.decide(Point::Push, &serde_json::json!({"text": "not a number"})) {
            Err(PolicyError::Eval { rule, why }) => {
                assert!(rule.contains("deny"), "{rule}");
                assert!(why.contains("rt.rego"), "{why}");
                assert!(!why.contains('\n'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn authz_needs_an_allow_and_deny_wins() {
        let doc = |action: &str, granted: &[&str]| {
            serde_json::json!({"version": 1, "action": action, "granted": granted,
                "repository": "prod/m", "identity": {"subject": "ci", "groups": []}})
        };
        // No directory: the default policy grants exactly what is granted.
        let mut p = Policy::load_with_defaults(None, &[(Point::Authz, DEFAULT_AUTHZ)]).unwrap();
        assert!(p
            .decide(Point::Authz, &doc("pull", &["pull"]))
            .unwrap()
            .allowed());
        let d = p.decide(Point::Authz, &doc("push", &["pull"])).unwrap();
        assert!(!d.allowed() && d.deny.is_empty() && d.allow == Some(false));
        // A directory with its own package replaces the default: deny wins
        // over allow, and without an allow nothing passes.
        let d = dir(&[(
            "authz.rego",
            "package pavilion.authz\nimport rego.v1\nallow if input.action in input.granted\n\
             deny contains \"no pushes to prod/ by keys\" if { input.action == \"push\"; startswith(input.repository, \"prod/\") }\n",
        )]);
        let mut p =
            Policy::load_with_defaults(Some(d.path()), &[(Point::Authz, DEFAULT_AUTHZ)]).unwrap();
        let denied = p
            .decide(Point::Authz, &doc("push", &["pull", "push"]))
            .unwrap();
        assert_eq!(denied.deny, vec!["no pushes to prod/ by keys".to_string()]);
        assert_eq!(denied.allow, Some(true));
        assert!(!denied.allowed());
        assert!(p
            .decide(Point::Authz, &doc("pull", &["pull"]))
            .unwrap()
            .allowed());
        let d = dir(&[("push.rego", "package pavilion.push\n")]);
        let mut p =
            Policy::load_with_defaults(Some(d.path()), &[(Point::Authz, DEFAULT_AUTHZ)]).unwrap();
        assert!(p.has_point(Point::Authz));
        assert!(p
            .decide(Point::Authz, &doc("pull", &["pull"]))
            .unwrap()
            .allowed());
        assert!(!p
            .decide(Point::Authz, &doc("delete", &["pull"]))
            .unwrap()
            .allowed());
        // Other points are unchanged: no rules, allowed.
        assert!(p
            .decide(Point::Pull, &serde_json::json!({}))
            .unwrap()
            .allowed());
    }
}
