//! Real clients through the token flow (issue 16, item 7): skopeo with
//! `--creds` and with `--authfile`, oras-py with its basic and token
//! backends, podman, and Pavilion's own client with a password and with an
//! API key; each pushes and pulls, and each is refused without
//! credentials. The decision log shows which came with a bearer token.

use crate::common::auth::*;
use crate::common::run::Cli;
use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// alice may push and pull team/*; auditor reads the decision log (alice
/// may be slowed down by the wrong passwords a test sends).
fn start(tmp: &Path) -> Option<Served> {
    let users = htpasswd_file(tmp, &[("alice", "a pw"), ("auditor", "au pw")])?;
    let cfg = write(
        tmp,
        "pavilion.toml",
        &format!(
            "[auth]\nhtpasswd = \"{}\"\n[auth.grants]\nalice = [\"repository:team/*:pull,push\"]\nauditor = [\"registry:catalog:*\"]\n",
            users.display()
        ),
    );
    Some(Served::start(None, &["--config", &cfg]))
}

/// Whether `subject` (a prefix, e.g. "alice push team/x") was decided for a
/// request that came with a bearer token.
async fn came_with_a_token(s: &Served, subject: &str) -> bool {
    let log = authz_decisions(&s.url(""), &basic("auditor", "au pw")).await;
    log.iter().any(|d| {
        d["subject"]
            .as_str()
            .is_some_and(|x| x.starts_with(subject))
            && d["detail"]["bearer"] == true
    })
}

fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded without credentials"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pushes_and_pulls_with_creds_and_with_an_authfile() {
    if require_peer("skopeo", have("skopeo")).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(s) = start(tmp.path()) else { return };
    let d = s.addr.clone();
    let c = http();
    assert_eq!(
        push_with(
            &c,
            &s.url(""),
            "team/src",
            "v1",
            Some(&basic("alice", "a pw"))
        )
        .await,
        201
    );
    let layout = tmp.path().join("layout");
    let empty = write(tmp.path(), "empty-auth.json", "{\"auths\":{}}");
    let skopeo = || {
        let mut c = Command::new("skopeo");
        c.env("HOME", tmp.path()).env("XDG_RUNTIME_DIR", tmp.path());
        c
    };

    // --src-creds / --dest-creds.
    tool(
        skopeo()
            .args([
                "copy",
                "--src-tls-verify=false",
                "--src-creds",
                "alice:a pw",
            ])
            .arg(format!("docker://{d}/team/src:v1"))
            .arg(format!("oci:{}:v1", layout.display())),
    );
    tool(
        skopeo()
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "alice:a pw",
            ])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{d}/team/creds:v1")),
    );
    assert!(
        came_with_a_token(&s, "alice push team/creds").await,
        "skopeo used Basic, not a token"
    );

    // --authfile: a containers auth.json with base64 user:pass.
    let auth = write(
        tmp.path(),
        "auth.json",
        &serde_json::json!({"auths": {d.clone(): {"auth": base64(b"alice:a pw")}}}).to_string(),
    );
    tool(
        skopeo()
            .args([
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--authfile",
                &auth,
            ])
            .arg(format!("docker://{d}/team/creds:v1"))
            .arg(format!("docker://{d}/team/authfile:v1")),
    );
    let dir = tmp.path().join("dir");
    tool(
        skopeo()
            .args(["copy", "--src-tls-verify=false", "--authfile", &auth])
            .arg(format!("docker://{d}/team/authfile:v1"))
            .arg(format!("dir:{}", dir.display())),
    );
    assert!(dir.join("manifest.json").is_file());
    let raw = tool(
        skopeo()
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--authfile",
                &auth,
            ])
            .arg(format!("docker://{d}/team/authfile:v1")),
    );
    let r = c
        .get(s.url("/v2/team/src/manifests/v1"))
        .header("authorization", basic("alice", "a pw"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        raw,
        "the copies are byte-identical"
    );

    // Without credentials, or with wrong ones: refused, nothing stored.
    fails(
        skopeo()
            .args(["copy", "--dest-tls-verify=false", "--dest-authfile", &empty])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{d}/team/anon:v1")),
    );
    fails(
        skopeo()
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "alice:wrong",
            ])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{d}/team/wrong:v1")),
    );
    fails(
        skopeo()
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--authfile",
                &empty,
            ])
            .arg(format!("docker://{d}/team/src:v1")),
    );
    for repo in ["team/anon", "team/wrong"] {
        let st = pull_status(&c, &s.url(""), repo, "v1", Some(&basic("alice", "a pw"))).await;
        assert_eq!(st, 404, "{repo} was stored");
    }
}

const ORAS: &str = r#"
import json, os, sys, time
import oras.client
# oras-py retries a refused request five times, sleeping 2 + 3^n s
# between: the refusals are what this test wants, at once.
time.sleep = lambda *_: None
host, workdir, backend, user, password, push = sys.argv[1:7]
os.chdir(workdir)
c = oras.client.OrasClient(hostname=host, insecure=True, auth_backend=backend)
if user:
    c.auth.set_basic_auth(user, password)
target = f"{host}/team/oras:v1"
if push == "push":
    c.push(files=["weights.bin"], target=target)
files = c.pull(target=target, outdir=f"out-{backend}")
print(json.dumps({"files": sorted(os.path.basename(f) for f in files)}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oras_py_pushes_and_pulls_with_basic_auth() {
    let py = std::env::var("PAVILION_TEST_ORAS_PYTHON").ok();
    if require_peer("oras-py (PAVILION_TEST_ORAS_PYTHON)", py.is_some()).is_none() {
        return;
    }
    let py = py.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let Some(s) = start(tmp.path()) else { return };
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("weights.bin"), vec![7u8; 50_000]).unwrap();
    let oras = |backend: &str, user: &str, password: &str, push: &str| {
        let mut c = Command::new(&py);
        c.arg("-c")
            .arg(ORAS)
            .arg(&s.addr)
            .arg(&work)
            .args([backend, user, password, push])
            .env("HOME", tmp.path());
        c
    };
    // The basic backend sends Basic credentials with every request; the
    // token backend answers the Bearer challenge at /token. It only pulls:
    // oras-py (0.2) keeps the first token it got (pull, for the existence
    // check) and asks for a new one only after a 403, never after the
    // specification's 401 insufficient_scope, so it cannot push through
    // any token-flow registry (Distribution answers the same 401).
    for (backend, push) in [("basic", "push"), ("token", "pull")] {
        let out = tool(&mut oras(backend, "alice", "a pw", push));
        let v: Value = serde_json::from_str(out.lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v["files"], serde_json::json!(["weights.bin"]), "{backend}");
        assert_eq!(
            std::fs::read(work.join(format!("out-{backend}/weights.bin"))).unwrap(),
            vec![7u8; 50_000]
        );
        fails(&mut oras(backend, "", "", push));
    }
    assert!(
        came_with_a_token(&s, "alice pull team/oras").await,
        "the token backend did not use a token"
    );
    assert!(!came_with_a_token(&s, "alice push team/oras").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pavilion_client_logs_in_with_a_password_or_a_key_and_uses_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(s) = start(tmp.path()) else { return };
    let d = s.addr.clone();
    let model = tmp.path().join("model");
    make_model(&model);
    let m = model.to_str().unwrap();
    let out = tmp.path().join("out");

    let anyone = Cli::with_config(&tmp.path().join("anyone"));
    anyone
        .run(&["push", &format!("{d}/team/model:v1"), m])
        .fails(6);
    anyone.run(&["tags", &format!("{d}/team/model")]).fails(6);

    let alice = Cli::with_config(&tmp.path().join("alice"));
    alice
        .run(&["login", &d, "-u", "alice", "-p", "wrong"])
        .fails(6);
    alice.run(&["login", &d, "-u", "alice", "-p", "a pw"]).ok();
    alice.run(&["push", &format!("{d}/team/model:v1"), m]).ok();
    alice
        .run(&[
            "pull",
            &format!("{d}/team/model:v1"),
            "-o",
            out.to_str().unwrap(),
            "--no-cache",
        ])
        .ok();
    assert_eq!(files_of(&out), files_of(&model));
    assert!(
        came_with_a_token(&s, "alice push team/model").await,
        "the client did not use a token"
    );
    // Outside alice's grants: the token /token gives carries nothing there,
    // the registry answers 401 insufficient_scope as the specification says
    // (saying no new token would help), and the client reports an
    // authentication failure (exit 6); nothing is stored.
    alice
        .run(&["push", &format!("{d}/other/model:v1"), m])
        .fails(6);
    let st = pull_status(
        &http(),
        &s.url(""),
        "other/model",
        "v1",
        Some(&basic("alice", "a pw")),
    )
    .await;
    assert_eq!(st, 403, "alice may not even look at other/model");

    // An API key as the password.
    let key = create_key(&s.data, "ci", &["repository:team/ci/*:pull,push"], "1d");
    let ci = Cli::with_config(&tmp.path().join("ci"));
    ci.run(&["login", &d, "-u", "ci", "-p", &key]).ok();
    ci.run(&["push", &format!("{d}/team/ci/model:v1"), m]).ok();
    let out2 = tmp.path().join("out2");
    ci.run(&[
        "pull",
        &format!("{d}/team/ci/model:v1"),
        "-o",
        out2.to_str().unwrap(),
        "--no-cache",
    ])
    .ok();
    assert_eq!(files_of(&out2), files_of(&model));
    ci.run(&["push", &format!("{d}/team/model:v2"), m]).fails(6);
    assert!(came_with_a_token(&s, "ci push team/ci/model").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_logs_in_pushes_and_pulls() {
    if require_peer("podman", have("podman")).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(s) = start(tmp.path()) else { return };
    let d = s.addr.clone();
    let c = http();
    // A one-file image made by podman itself from a real tar.
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    std::fs::write(rootfs.join("hello.txt"), b"hello from podman\n").unwrap();
    let tar = tmp.path().join("rootfs.tar");
    tool(
        Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&rootfs)
            .arg("."),
    );
    let root = tmp.path().join("storage");
    let auth = tmp.path().join("auth.json");
    let podman = || {
        let mut c = Command::new("podman");
        c.args(["--storage-driver", "vfs", "--root"])
            .arg(&root)
            .arg("--runroot")
            .arg(tmp.path().join("run"))
            .env("REGISTRY_AUTH_FILE", &auth)
            .env("HOME", tmp.path());
        c
    };
    let image = format!("{d}/team/podman:v1");
    tool(podman().arg("import").arg(&tar).arg(&image));
    fails(podman().args(["push", "--tls-verify=false", &image]));
    fails(podman().args([
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "wrong",
        &d,
    ]));
    tool(podman().args([
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "a pw",
        &d,
    ]));
    tool(podman().args(["push", "--tls-verify=false", &image]));
    assert!(came_with_a_token(&s, "alice push team/podman").await);
    tool(podman().args(["rmi", &image]));
    tool(podman().args(["pull", "--tls-verify=false", &image]));
    assert!(came_with_a_token(&s, "alice pull team/podman").await);
    tool(podman().args(["logout", &d]));
    tool(podman().args(["rmi", &image]));
    fails(podman().args(["pull", "--tls-verify=false", &image]));
    let st = pull_status(&c, &s.url(""), "team/podman", "v1", None).await;
    assert_eq!(st, 401);
}
