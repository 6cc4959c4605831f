//! `login` and `logout`, inline and through a docker credential helper.

use super::support::*;
use crate::common::run::*;
use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// CNCF Distribution asking every request for `user`:`pass` (a bcrypt
/// htpasswd file in `dir`), or None when htpasswd or Distribution is missing.
fn distribution_with_login(dir: &Path, user: &str, pass: &str) -> Option<Distribution> {
    require_peer("htpasswd (apache2-utils)", have("htpasswd"))?;
    let line = tool(Command::new("htpasswd").args(["-Bbn", user, pass]));
    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, line.trim()).unwrap();
    Distribution::start_with_htpasswd(Some(&htpasswd))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_logout_against_distribution_with_htpasswd() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(dist) = distribution_with_login(tmp.path(), "alice", "s3cret pw") else {
        return;
    };
    let d = &dist.addr;
    let config_dir = tmp.path().join("docker");
    let cli = Cli::with_config(&config_dir);
    let config = config_dir.join("config.json");

    // Anonymous access is refused as an authentication failure.
    cli.run(&["tags", &format!("{d}/auth/tiny")]).fails(6);

    // Other settings in config.json survive every change.
    std::fs::create_dir_all(&config_dir).unwrap();
    let before = r#"{"auths":{"other.example:5000":{"auth":"dTpw"}},"psFormat":"table"}"#;
    std::fs::write(&config, before).unwrap();
    let err = cli
        .run(&["login", d, "-u", "alice", "-p", "wrong"])
        .fails(6)
        .to_string();
    assert!(!err.contains("wrong"), "the password is not echoed: {err}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        before,
        "a failed login writes nothing"
    );
    cli.run(&["login", d, "-u", "bob", "-p", "s3cret pw"])
        .fails(6);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);

    // The right password, from standard input.
    let r = cli.run_stdin(
        &["login", d, "-u", "alice", "--password-stdin"],
        Some(b"s3cret pw\n"),
    );
    r.ok();
    assert!(r.stderr.contains("Login Succeeded"), "{}", r.stderr);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(v["psFormat"], "table");
    assert_eq!(v["auths"]["other.example:5000"]["auth"], "dTpw");
    assert_eq!(
        v["auths"][d.as_str()]["auth"],
        base64(b"alice:s3cret pw").as_str()
    );

    // Push, pull, tags, copy with the saved credential.
    let (model, digest) = push_tiny_model(&cli, &format!("{d}/auth/tiny:v1"), tmp.path());
    assert_eq!(tags_of(&cli, &format!("{d}/auth/tiny")), ["v1"]);
    let v = cli.run(&["repos", d, "--output", "json"]).json();
    assert_eq!(v["repositories"], serde_json::json!(["auth/tiny"]));
    let out = tmp.path().join("pulled");
    cli.run(&[
        "pull",
        &format!("{d}/auth/tiny:v1"),
        "-o",
        s(&out),
        "--no-cache",
    ])
    .ok();
    assert_eq!(files_of(&out), files_of(&model));
    let layout = tmp.path().join("layout");
    let v = cli
        .run(&[
            "copy",
            &format!("{d}/auth/tiny:v1"),
            &format!("oci:{}:v1", layout.display()),
            "--output",
            "json",
        ])
        .json();
    assert_eq!(v["digest"], digest.as_str());
    // Without the config, the same pull is refused.
    pv(&["manifest", "get", &format!("{d}/auth/tiny:v1")]).fails(6);

    // Logout removes only this registry's entry; then access fails again.
    cli.run(&["logout", d]).ok();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert!(v["auths"].get(d.as_str()).is_none(), "{v:#}");
    assert_eq!(v["auths"]["other.example:5000"]["auth"], "dTpw");
    assert_eq!(v["psFormat"], "table");
    cli.run(&["tags", &format!("{d}/auth/tiny")]).fails(6);
    cli.run(&[
        "pull",
        &format!("{d}/auth/tiny:v1"),
        "-o",
        s(&out),
        "--no-cache",
    ])
    .fails(6);
}

/// A docker credential helper keeping one credential in a file next to it,
/// logging each call.
const HELPER: &str = r#"#!/bin/sh
here=$(dirname "$0")
input=$(cat)
echo "$1 $(printf '%s' "$input" | head -c 200 | tr -d '\n' | sed 's/"Secret":"[^"]*"/"Secret":"*"/')" >> "$here/calls.log"
case "$1" in
  store) printf '%s' "$input" > "$here/store.json" ;;
  get)
    if [ -f "$here/store.json" ] && grep -q "\"ServerURL\":\"$input\"" "$here/store.json"; then
      cat "$here/store.json"
    else
      echo "credentials not found in native keychain"
      exit 1
    fi ;;
  erase) rm -f "$here/store.json" ;;
  *) exit 1 ;;
esac
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_helper_stores_and_serves_the_login() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(dist) = distribution_with_login(tmp.path(), "carol", "hunter2") else {
        return;
    };
    let d = &dist.addr;
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-pvtest");
    std::fs::write(&helper, HELPER).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config_dir = tmp.path().join("docker");
    std::fs::create_dir_all(&config_dir).unwrap();
    let config = config_dir.join("config.json");
    std::fs::write(&config, r#"{"credsStore":"pvtest"}"#).unwrap();
    let cli = Cli {
        docker_config: Some(config_dir.clone()),
        path_prefix: Some(bin.clone()),
        cwd: None,
    };

    // Nothing stored yet: the helper says "not found", which is no credential.
    cli.run(&["tags", &format!("{d}/helper/img")]).fails(6);
    cli.run(&["login", d, "-u", "carol", "-p", "nope"]).fails(6);
    assert!(
        !bin.join("store.json").exists(),
        "a failed login stores nothing"
    );

    cli.run(&["login", d, "-u", "carol", "-p", "hunter2"]).ok();
    let stored: Value = serde_json::from_slice(
        &std::fs::read(bin.join("store.json")).expect("helper store called"),
    )
    .unwrap();
    assert_eq!(stored["ServerURL"], d.as_str());
    assert_eq!(stored["Username"], "carol");
    assert_eq!(stored["Secret"], "hunter2");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        !text.contains("hunter2"),
        "the secret stays in the helper: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["credsStore"], "pvtest");

    // Commands get the credential from the helper.
    let srv = Server::start(Backend::Sqlite).unwrap();
    push_small_image(&srv, "src/img", "v1", b"helper layer").await;
    cli.run(&[
        "copy",
        &format!("{}/src/img:v1", srv.addr),
        &format!("{d}/helper/img:v1"),
    ])
    .ok();
    assert_eq!(tags_of(&cli, &format!("{d}/helper/img")), ["v1"]);
    let log = std::fs::read_to_string(bin.join("calls.log")).unwrap();
    assert!(
        log.lines().any(|l| l == format!("get {d}")),
        "the helper was asked for {d}: {log}"
    );

    // Logout erases through the helper; then access fails again.
    cli.run(&["logout", d]).ok();
    assert!(!bin.join("store.json").exists(), "erase was called");
    let log = std::fs::read_to_string(bin.join("calls.log")).unwrap();
    assert!(log.lines().any(|l| l == format!("erase {d}")), "{log}");
    cli.run(&["tags", &format!("{d}/helper/img")]).fails(6);

    // credHelpers (per host) takes precedence over an inline entry.
    cli.run(&["login", d, "-u", "carol", "-p", "hunter2"]).ok();
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"{d}":{{"auth":"{}"}}}},"credHelpers":{{"{d}":"pvtest"}}}}"#,
            base64(b"carol:wrong")
        ),
    )
    .unwrap();
    assert_eq!(tags_of(&cli, &format!("{d}/helper/img")), ["v1"]);
}
