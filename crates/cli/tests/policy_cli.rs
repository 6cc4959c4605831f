//! `pavilion policy eval` and `pavilion policy test` as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

fn pavilion(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

const POLICY: &str = r#"
package pavilion.push
import rego.v1

deny contains msg if {
    input.config.format == "pickle"
    msg := sprintf("%s: pickle weights are not allowed", [input.repository])
}

warn contains "no license" if not input.config.licenses

test_pickle_denied if {
    count(deny) == 1 with input as {"repository": "r", "config": {"format": "pickle"}}
}
"#;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn eval_allows_denies_and_warns_with_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "push.rego", POLICY);
    let dir = d.path().to_str().unwrap();
    let ok = pavilion(
        &[
            "policy", "eval", "--policy", dir, "--input", "-", "--output", "json",
        ],
        Some(r#"{"repository": "a/b", "config": {"format": "safetensors"}}"#),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["allowed"], true);
    assert_eq!(v["warn"], serde_json::json!(["no license"]));
    let input = d.path().join("input.json");
    std::fs::write(
        &input,
        r#"{"repository": "a/b", "config": {"format": "pickle", "licenses": ["MIT"]}}"#,
    )
    .unwrap();
    let denied = pavilion(
        &[
            "policy",
            "eval",
            "--policy",
            dir,
            "--input",
            input.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(denied.status.code(), Some(4));
    let out = String::from_utf8_lossy(&denied.stdout);
    assert!(
        out.contains("denied") && out.contains("a/b: pickle weights are not allowed"),
        "{out}"
    );
    // Another decision point has no rules here: allowed.
    let pull = pavilion(
        &[
            "policy",
            "eval",
            "--policy",
            dir,
            "--input",
            input.to_str().unwrap(),
            "--point",
            "pull",
        ],
        None,
    );
    assert!(pull.status.success());
}

#[test]
fn syntax_errors_and_bad_inputs_are_usage_errors_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "broken.rego",
        "package pavilion.push\ndeny contains x if {\n",
    );
    let out = pavilion(
        &[
            "policy",
            "eval",
            "--policy",
            d.path().to_str().unwrap(),
            "--input",
            "-",
        ],
        Some("{}"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.rego"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let good = tempfile::tempdir().unwrap();
    write(good.path(), "push.rego", POLICY);
    let out = pavilion(
        &[
            "policy",
            "eval",
            "--policy",
            good.path().to_str().unwrap(),
            "--input",
            "-",
        ],
        Some("not json"),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn policy_test_runs_test_rules_and_fails_on_a_failing_one() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "push.rego", POLICY);
    let ok = pavilion(&["policy", "test", d.path().to_str().unwrap()], None);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("PASS data.pavilion.push.test_pickle_denied")
    );
    write(
        d.path(),
        "more.rego",
        "package pavilion.push_tests\nimport rego.v1\ntest_wrong if {\n  count(data.pavilion.push.deny) == 1 with input as {\"config\": {}}\n}\n",
    );
    let bad = pavilion(&["policy", "test", d.path().to_str().unwrap()], None);
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(
        out.contains("FAIL data.pavilion.push_tests.test_wrong"),
        "{out}"
    );
    assert!(out.contains("1 passed, 1 failed"), "{out}");
}
