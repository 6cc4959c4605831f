//! `pavilion policy eval` and `pavilion policy test` as a user runs them,
//! and `pavilion pull --policy` judging every file it would write (files
//! named only by title, non-ModelPack artifacts, tar layer entries).

use crate::common::run::Cli;
use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};

fn pavilion(args: &[&str], stdin: Option<&str>) -> Output {
    Cli::default().output(args, Some(stdin.unwrap_or("").as_bytes()))
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

/// Pull rules refusing any `.pkl` file, by the top-level `files` and by
/// the ModelPack summary (a layer that names no file has a null path).
const NO_PICKLES: &str = r#"
package pavilion.pull
import rego.v1

deny contains msg if {
    some f in input.files
    is_string(f.path)
    endswith(f.path, ".pkl")
    msg := sprintf("pickle file %s is not allowed", [f.path])
}

deny contains msg if {
    some f in input.model.files
    is_string(f.path)
    endswith(f.path, ".pkl")
    msg := sprintf("model pickle file %s is not allowed", [f.path])
}
"#;

/// Pushes `layers` (media type, bytes, annotations) under `repo:v1` with a
/// config of `config_type`; returns the reference.
async fn push_artifact(
    s: &Server,
    repo: &str,
    config_type: &str,
    layers: &[(&str, &[u8], serde_json::Value)],
) -> String {
    let config = push_blob(s, repo, b"{}").await;
    let mut descs = Vec::new();
    for (media_type, bytes, annotations) in layers {
        let d = push_blob(s, repo, bytes).await;
        descs.push(serde_json::json!({"mediaType": media_type, "digest": d,
            "size": bytes.len(), "annotations": annotations}));
    }
    let body = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": config, "size": 2}, "layers": descs});
    let r = put_manifest(
        s,
        repo,
        "v1",
        Some(OCI_MANIFEST),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    format!("{}/{repo}:v1", s.addr)
}

/// Pulls `reference` into a fresh directory under `tmp` with the rules of
/// `policy`; the exit code, stderr and what was written.
fn pull_with(
    tmp: &Path,
    policy: &Path,
    name: &str,
    reference: &str,
) -> (Option<i32>, String, Vec<String>) {
    let out = tmp.join(name);
    let res = Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args([
            "pull",
            reference,
            "-o",
            out.to_str().unwrap(),
            "--no-cache",
            "--policy",
        ])
        .arg(policy)
        .env("DOCKER_CONFIG", "/nonexistent-pavilion-test")
        .output()
        .unwrap();
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    written.sort();
    (
        res.status.code(),
        String::from_utf8_lossy(&res.stderr).into_owned(),
        written,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_policy_sees_files_named_only_by_title_and_in_any_artifact() {
    const TITLE: &str = "org.opencontainers.image.title";
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    write(&rules, "pull.rego", NO_PICKLES);
    let pickle: &[u8] = b"not really a pickle";
    let cases = [
        // A ModelPack model whose layer is named only by ORAS's title.
        (
            "title/model",
            "application/vnd.cncf.model.config.v1+json",
            "application/vnd.cncf.model.weight.v1.raw",
        ),
        // Not a ModelPack model at all: `model` is null, the files are not.
        (
            "title/oras",
            "application/vnd.oci.empty.v1+json",
            "application/octet-stream",
        ),
    ];
    let mut problems = Vec::new();
    for (repo, config_type, layer_type) in cases {
        let reference = push_artifact(
            &s,
            repo,
            config_type,
            &[(layer_type, pickle, serde_json::json!({ TITLE: "evil.pkl" }))],
        )
        .await;
        let (code, err, written) = pull_with(
            tmp.path(),
            &rules,
            repo.replace('/', "-").as_str(),
            &reference,
        );
        if code != Some(4)
            || !err.contains("pickle file evil.pkl is not allowed")
            || !written.is_empty()
        {
            problems.push(format!(
                "{repo}: exit {code:?}, wrote {written:?}: {}",
                err.trim()
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_policy_judges_the_entries_of_tar_layers_before_writing() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    write(&rules, "pull.rego", NO_PICKLES);
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("tok")).unwrap();
    std::fs::write(src.join("tok/vocab.json"), b"{}").unwrap();
    std::fs::write(src.join("tok/evil.pkl"), b"not really a pickle").unwrap();
    let tar = Command::new("tar")
        .current_dir(&src)
        .args(["-cf", "-", "tok"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let fine: &[u8] = b"weights";
    let filepath = |p: &str| serde_json::json!({ "org.cncf.model.filepath": p });
    let reference = push_artifact(
        &s,
        "tar/model",
        "application/vnd.cncf.model.config.v1+json",
        &[
            (
                "application/vnd.cncf.model.weight.v1.raw",
                fine,
                filepath("w.bin"),
            ),
            (
                "application/vnd.cncf.model.weight.config.v1.tar",
                &tar.stdout,
                filepath("tok"),
            ),
        ],
    )
    .await;
    let (code, err, written) = pull_with(tmp.path(), &rules, "out", &reference);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("pickle file tok/evil.pkl is not allowed"),
        "{err}"
    );
    assert!(written.is_empty(), "wrote {written:?}: {err}");
    // Each entry carries its size and the layer it comes from.
    write(
        &rules,
        "sizes.rego",
        r#"package pavilion.pull
import rego.v1
deny contains "a 2-byte vocab.json from tok" if {
    some f in input.files
    f.path == "tok/vocab.json"
    f.size == 2
    f.fromTar == "tok"
}
"#,
    );
    let (code, err, written) = pull_with(tmp.path(), &rules, "sized", &reference);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("a 2-byte vocab.json from tok"), "{err}");
    assert!(written.is_empty(), "wrote {written:?}: {err}");
    // Without a pickle, the same artifact is pulled whole.
    std::fs::remove_file(rules.join("sizes.rego")).unwrap();
    std::fs::remove_file(src.join("tok/evil.pkl")).unwrap();
    let clean = Command::new("tar")
        .current_dir(&src)
        .args(["-cf", "-", "tok"])
        .output()
        .unwrap();
    let reference = push_artifact(
        &s,
        "tar/clean",
        "application/vnd.cncf.model.config.v1+json",
        &[
            (
                "application/vnd.cncf.model.weight.v1.raw",
                fine,
                filepath("w.bin"),
            ),
            (
                "application/vnd.cncf.model.weight.config.v1.tar",
                &clean.stdout,
                filepath("tok"),
            ),
        ],
    )
    .await;
    let (code, err, written) = pull_with(tmp.path(), &rules, "clean", &reference);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(written, ["tok", "w.bin"], "{err}");
}
