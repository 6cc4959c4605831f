//! A newcomer's first hour, each stumble as the user meets it, through the
//! real binary (and the real test command): the test vectors come with the
//! clone; the test command names what is missing before installing
//! anything; `cert generate` never replaces a key without `--force`; a
//! taken port is named with the way out; `--output json` covers errors and
//! every command, one document per line; `--output` is not `-o`; artifacts
//! that are not models are listed and get a hint on pull; logs written to a
//! pipe carry no colour codes.

use crate::common::notation::User;
use crate::common::run::*;
use crate::common::*;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The one JSON object a command printed on stderr.
fn error_json(stderr: &str) -> Value {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected on stderr: {stderr}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn the_notary_vectors_come_with_the_clone() {
    let dir = pavilion_notary::test_vectors::dir();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let repo = repo.canonicalize().unwrap();
    assert!(
        dir.canonicalize().unwrap().starts_with(&repo),
        "{} is outside the repository {}",
        dir.display(),
        repo.display()
    );
    let source = std::fs::read_to_string(dir.join("SOURCE.md")).unwrap();
    for (name, commit) in [
        ("notation-go", "a48f22835cb593d4a8ab6032f141a64de01e278d"),
        ("notation", "2a558558ae29505a54c67621ae5aef3f1764367a"),
        (
            "notation-core-go",
            "ef8789627fc3c764e1563a2999b33381e7992963",
        ),
    ] {
        let url = format!("https://github.com/notaryproject/{name} ");
        assert!(source.contains(&url), "SOURCE.md names {url}");
        assert!(source.contains(commit), "SOURCE.md names {name}'s commit");
        assert!(dir.join(name).is_dir(), "{name}/ is vendored");
    }
    assert!(source.contains("Apache License, Version 2.0"));
    let license = std::fs::read_to_string(dir.join("notation/LICENSE")).unwrap();
    assert!(license.trim_start().starts_with("Apache License"));
}

/// The README's examples call `pavilion` by name: it says how to install
/// that binary (from the crate that builds it), and its examples write
/// where a normal user can (relative paths or /tmp, never /models).
#[test]
fn the_readme_installs_pavilion_and_writes_where_a_user_can() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.contains("cargo install"))
        .expect("an install line");
    let path = line
        .split("--path ")
        .nth(1)
        .and_then(|rest| rest.split(['`', ' ']).next())
        .unwrap_or_else(|| panic!("no --path in {line}"));
    let manifest = std::fs::read_to_string(root.join(path).join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("[[bin]]\nname = \"pavilion\""),
        "{path} builds the pavilion binary"
    );
    for (n, l) in readme.lines().enumerate() {
        for word in l.split_whitespace() {
            let target = word.strip_prefix("oci:").unwrap_or(word);
            let writes = l.contains(" -o ") || word.starts_with("oci:");
            if writes && target.starts_with('/') && !target.starts_with("/tmp") {
                panic!("README.md:{}: {l}: writes to {target}", n + 1);
            }
        }
    }
}

#[test]
fn the_test_command_says_what_is_missing_before_installing_anything() {
    // A cargo without rustfmt and clippy, as a fresh rustup minimal profile
    // has; everything else is the real one.
    let bin = tempfile::tempdir().unwrap();
    let real = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let fake = bin.path().join("cargo");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$1\" in fmt|clippy) echo \"error: no such command: $1\" >&2; exit 101;; esac\nexec '{real}' \"$@\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.path().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let target = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test");
    let mut child = Command::new("bash")
        .arg(&script)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", target.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a run that went on to install or build is killed and fails.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("scripts/test went on past its preconditions");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("rustup component add rustfmt"), "{err}");
    assert!(err.contains("rustup component add clippy"), "{err}");
    assert!(err.contains("==> preconditions"), "{err}");
    assert!(
        !err.contains("==> packages"),
        "stopped before any install: {err}"
    );
    assert!(!err.contains('\x1b'), "no colour codes in a log: {err}");
}

#[test]
fn cert_generate_twice_refuses_and_force_replaces() {
    let u = User::new(); // generated alice
    let keys = u.notation().join("localkeys");
    let files = [
        keys.join("alice.key"),
        keys.join("alice.crt"),
        u.notation().join("truststore/x509/ca/alice/alice-ca.crt"),
    ];
    let read = || {
        files
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect::<Vec<_>>()
    };
    let before = read();
    let err = u.fails(1, &["cert", "generate", "alice"]);
    for f in ["alice.key", "alice.crt", "alice-ca.crt", "--force"] {
        assert!(err.contains(f), "names {f}: {err}");
    }
    assert_eq!(read(), before, "nothing replaced");

    let out = u.ok(&["cert", "generate", "alice", "--force"]);
    let after = read();
    for (i, (a, b)) in before.iter().zip(&after).enumerate() {
        assert_ne!(a, b, "{} replaced", files[i].display());
    }
    assert!(out.contains("already trusts ca:alice"), "{out}");
    assert!(!out.contains("add \"ca:alice\""), "{out}");
    assert!(out.contains("no longer verify"), "{out}");

    // JSON: one line, naming what was written and whether the policy
    // (alice's, which does not name bob) trusts it.
    let raw = u.run(&["cert", "generate", "bob", "--output", "json"]);
    assert!(raw.status.success());
    let stdout = String::from_utf8(raw.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["trustStore"], "ca:bob");
    assert!(v["key"].as_str().unwrap().ends_with("bob.key"));
    assert_eq!(v["trustPolicy"]["written"], false);
    assert_eq!(v["trustPolicy"]["trusts"], false);
}

#[test]
fn serve_on_a_taken_port_names_the_address_and_the_way_out() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let run = pv(&[
        "serve",
        "--addr",
        &addr,
        "--data",
        data.path().to_str().unwrap(),
    ]);
    let err = run.fails(1);
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains(&addr), "{line}");
    assert!(line.contains("already in use"), "{line}");
    assert!(line.contains("--addr"), "{line}");
    assert_eq!(
        err.matches("in use").count(),
        1,
        "the cause said once: {err}"
    );
}

#[test]
fn output_json_reports_errors_as_one_json_object() {
    let unreachable = format!("127.0.0.1:{}/team/x", closed_port());
    let v = error_json(pv(&["tags", &unreachable, "--output", "json"]).fails(5));
    assert_eq!(v["error"]["exit"], 5);
    assert_eq!(v["error"]["code"], "network");
    assert!(!v["error"]["message"].as_str().unwrap().is_empty());

    // Found by the argument parser, before any command runs.
    let v = error_json(pv(&["tags", "--no-such-flag", "--output", "json"]).fails(2));
    assert_eq!(v["error"]["code"], "usage");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--no-such-flag"));
    // Found by the command.
    let v = error_json(pv(&["tags", "127.0.0.1:1/Bad Name!", "--output=json"]).fails(2));
    assert_eq!(v["error"]["code"], "usage");

    // Without --output json: one plain line.
    let plain = pv(&["tags", &unreachable]);
    assert!(plain.fails(5).starts_with("error: "), "{}", plain.stderr);
    // Help is not an error, even with --output json.
    let help = pv(&["tags", "--help", "--output", "json"]);
    assert!(help.ok().contains("Usage"), "{}", help.text());
}

#[test]
fn output_is_the_format_and_o_the_directory() {
    let run = pv(&["pull", "127.0.0.1:5000/team/x:v1", "--output", "./models/x"]);
    let err = run.fails(2);
    assert!(err.contains("text or json"), "{err}");
    assert!(err.contains("pull -o DIR"), "{err}");
}

#[test]
fn login_and_logout_answer_in_json() {
    let Some(s) = Server::start(Backend::Sqlite) else {
        return;
    };
    let config = tempfile::tempdir().unwrap();
    let cli = Cli::with_config(config.path());
    let one_line = |r: &Run| {
        let out = r.ok();
        assert_eq!(out.lines().count(), 1, "{out}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let v = one_line(&cli.run(&[
        "login", &s.addr, "-u", "ci", "-p", "secret", "--output", "json",
    ]));
    assert_eq!(v["registry"], s.addr.as_str());
    assert_eq!(v["loggedIn"], true);
    let saved = std::fs::read_to_string(config.path().join("config.json")).unwrap();
    assert!(saved.contains(&s.addr), "{saved}");
    let v = one_line(&cli.run(&["logout", &s.addr, "--output", "json"]));
    assert_eq!(v["loggedIn"], false);
    let saved = std::fs::read_to_string(config.path().join("config.json")).unwrap();
    assert!(!saved.contains(&s.addr), "{saved}");
}

#[test]
fn artifacts_that_are_not_models_are_listed_and_pull_says_what_gets_them() {
    let Some(s) = Server::start(Backend::Sqlite) else {
        return;
    };
    // A Helm chart as helm pushes it: a config and one layer, no title.
    let chart = xorshift_bytes(3000, 7, 1, 3);
    let helm = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let layer = rt.block_on(async {
        let config = push_blob(&s, "charts/web", b"{}").await;
        let layer = push_blob(&s, "charts/web", &chart).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                       "digest": config, "size": 2},
            "layers": [{"mediaType": helm, "digest": layer, "size": chart.len()}],
        });
        let r = put_manifest(
            &s,
            "charts/web",
            "0.1.0",
            Some("application/vnd.oci.image.manifest.v1+json"),
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .await;
        assert_eq!(r.status(), 201);
        layer
    });
    let reference = format!("{}/charts/web:0.1.0", s.addr);

    let text = pv(&["ls", &reference]).ok();
    assert_eq!(
        text.trim_end(),
        format!("{}\t-\t{helm}\t{layer}", chart.len()),
        "every layer listed"
    );
    let out = pv(&["ls", &reference, "--output", "json"]).ok();
    assert_eq!(out.lines().count(), 1, "one document per line: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"][0]["path"], Value::Null);
    assert_eq!(v["files"][0]["digest"], layer.as_str());

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("chart");
    let err = pv(&["pull", &reference, "-o", dest.to_str().unwrap()])
        .fails(2)
        .to_string();
    assert!(err.contains(helm), "{err}");
    assert!(err.contains("pavilion blob get"), "{err}");
    assert!(err.contains("pavilion copy"), "{err}");
    let written = std::fs::read_dir(&dest).map_or(0, |d| d.count());
    assert_eq!(written, 0, "nothing written");
    // The hint is right: blob get fetches the chart.
    let file = dir.path().join("chart.tgz");
    pv(&[
        "blob",
        "get",
        &format!("{}/charts/web@{layer}", s.addr),
        "-o",
        file.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(std::fs::read(&file).unwrap(), chart);
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("PAVILION_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("PAVILION_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stderr_lines(&mut child);
    // Up to the tracing line that follows the address line.
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(l) => {
                let done = l.contains("INFO") && l.contains("listening");
                lines.push(l);
                if done {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = lines.join("\n");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("INFO") && l.contains("listening")),
        "the server logged its start: {all}"
    );
    assert!(!all.contains('\x1b'), "no ANSI codes: {all:?}");
}
