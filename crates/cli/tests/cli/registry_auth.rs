//! `pavilion serve --htpasswd`: every registry API request needs valid
//! credentials (issue 16), checked against a file made by Apache's
//! `htpasswd -B`, with the pavilion client and skopeo as the clients that
//! answer the challenge; tags and signatures decided once a manifest is
//! read; mounts; refresh tokens revoked by a changed password.

use crate::common::auth::{basic, htpasswd_file, htpasswd_line};
use crate::common::notation::policy_dir;
use crate::common::run::*;
use crate::common::*;
use std::path::Path;
use std::process::Command;

/// Replaces `path` the way editors and `htpasswd` do (a new file renamed
/// over it), then waits out the server's once-a-second look at it.
fn replace_file(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_needs_credentials_and_nothing_changes_without_them() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(file) = htpasswd_file(tmp.path(), &[("alice", "s3cret pw")]) else {
        return;
    };
    let s = Server::start_with(Backend::Sqlite, &["--htpasswd", file.to_str().unwrap()]).unwrap();
    let c = client();
    let digest = sha256(b"hello");
    let endpoints: Vec<(reqwest::Method, String)> = vec![
        (reqwest::Method::GET, "/v2/".into()),
        (reqwest::Method::GET, "/v2/_catalog".into()),
        (reqwest::Method::GET, "/v2/team/m/tags/list".into()),
        (reqwest::Method::GET, "/v2/team/m/manifests/v1".into()),
        (reqwest::Method::PUT, "/v2/team/m/manifests/v1".into()),
        (reqwest::Method::DELETE, "/v2/team/m/manifests/v1".into()),
        (reqwest::Method::HEAD, format!("/v2/team/m/blobs/{digest}")),
        (
            reqwest::Method::POST,
            format!("/v2/team/m/blobs/uploads/?digest={digest}"),
        ),
        (
            reqwest::Method::GET,
            format!("/v2/team/m/referrers/{digest}"),
        ),
    ];
    let wrong = [
        None,
        Some(basic("alice", "wrong")),
        Some(basic("bob", "s3cret pw")),
        Some("Basic !!!".to_string()),
        Some("Bearer abc.def.ghi".to_string()),
        Some(format!("Basic {}", "A".repeat(5000))),
    ];
    // Wrong passwords for one user from one address are slowed down after
    // five: later attempts may be 429 with Retry-After instead of 401.
    let mut failures: std::collections::HashMap<String, usize> = Default::default();
    let mut throttled = 0;
    for (method, path) in &endpoints {
        for auth in &wrong {
            let mut req = c.request(method.clone(), s.url(path)).body("hello");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.unwrap();
            let user_failures = match auth.as_deref() {
                Some(a) if a == basic("alice", "wrong") || a == basic("bob", "s3cret pw") => {
                    let n = failures.entry(a.to_string()).or_default();
                    *n += 1;
                    *n
                }
                _ => 0,
            };
            if r.status() == 429 {
                assert!(
                    user_failures > 5,
                    "{method} {path}: throttled after {user_failures}"
                );
                assert!(hdr(&r, "retry-after").is_some());
                if *method != reqwest::Method::HEAD {
                    let body: serde_json::Value = r.json().await.unwrap();
                    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");
                }
                throttled += 1;
                continue;
            }
            assert_eq!(r.status(), 401, "{method} {path} with {auth:.30?}");
            // The Docker token specification's challenge: where to get a
            // token, for which service, with the scope this request needs.
            let challenge = hdr(&r, "www-authenticate").unwrap_or_default();
            let realm = format!("Bearer realm=\"{}\",service=\"", s.url("/token"));
            assert!(
                challenge.starts_with(&realm),
                "{method} {path}: {challenge}"
            );
            let scope = match (method.as_str(), path.as_str()) {
                ("GET", "/v2/") => None,
                ("GET", "/v2/_catalog") => Some("registry:catalog:*"),
                ("PUT", _) | ("POST", _) => Some("repository:team/m:pull,push"),
                ("DELETE", _) => Some("repository:team/m:delete"),
                _ => Some("repository:team/m:pull"),
            };
            match scope {
                Some(sc) => assert!(
                    challenge.contains(&format!("scope=\"{sc}\"")),
                    "{method} {path}: {challenge}"
                ),
                None => assert!(!challenge.contains("scope="), "{challenge}"),
            }
            if *method != reqwest::Method::HEAD {
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED", "{method} {path}");
                let text = body.to_string();
                assert!(
                    !text.contains("s3cret") && !text.contains("wrong"),
                    "{text}"
                );
            }
        }
    }
    assert!(
        throttled > 0,
        "repeated wrong passwords were never slowed down"
    );
    // The right password from the same address is not locked out for long:
    // the wait is at most a few seconds at these counts.
    std::thread::sleep(std::time::Duration::from_secs(3));
    // Nothing was stored by any of those requests.
    let ok = basic("alice", "s3cret pw");
    let r = c
        .get(s.url(&format!("/v2/team/m/blobs/{digest}")))
        .header("authorization", &ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "an unauthenticated upload stored its blob");
    let r = c
        .get(s.url("/v2/_catalog"))
        .header("authorization", &ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["repositories"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pavilion_client_and_skopeo_log_in_and_a_changed_file_counts_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(file) = htpasswd_file(tmp.path(), &[("alice", "s3cret pw")]) else {
        return;
    };
    let s = Server::start_with(Backend::Sqlite, &["--htpasswd", file.to_str().unwrap()]).unwrap();
    let d = s.addr.clone();
    let cli = Cli::with_config(&tmp.path().join("docker"));
    let model = tmp.path().join("model");
    make_model(&model);
    let reference = format!("{d}/team/model:v1");

    // Without a login: an authentication failure (exit 6), nothing stored.
    cli.run(&["push", &reference, model.to_str().unwrap()])
        .fails(6);
    cli.run(&["login", &d, "-u", "alice", "-p", "wrong"])
        .fails(6);
    cli.run(&["login", &d, "-u", "alice", "-p", "s3cret pw"])
        .ok();
    cli.run(&["push", &reference, model.to_str().unwrap()]).ok();
    let out = tmp.path().join("out");
    cli.run(&[
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "--no-cache",
    ])
    .ok();
    assert_eq!(files_of(&out), files_of(&model));

    // skopeo answers the same challenge with --creds.
    if require_peer("skopeo", have("skopeo")).is_some() {
        let layout = tmp.path().join("layout");
        tool(
            Command::new("skopeo")
                .args([
                    "copy",
                    "--src-tls-verify=false",
                    "--src-creds",
                    "alice:s3cret pw",
                ])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}:v1", layout.display())),
        );
        let refused = Command::new("skopeo")
            .args([
                "copy",
                "--src-tls-verify=false",
                "--src-creds",
                "alice:nope",
            ])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:v2", layout.display()))
            .output()
            .unwrap();
        assert!(
            !refused.status.success(),
            "skopeo with a wrong password got in"
        );
    }

    // The password changes in the file: the old one stops working, the new
    // one works, without a restart.
    replace_file(&file, &htpasswd_line("alice", "n3w pw").unwrap());
    cli.run(&["tags", &format!("{d}/team/model")]).fails(6);
    cli.run(&["login", &d, "-u", "alice", "-p", "n3w pw"]).ok();
    assert!(cli
        .run(&["tags", &format!("{d}/team/model")])
        .ok()
        .contains("v1"));

    // A file the server cannot check lets nobody in (fail closed).
    replace_file(&file, "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n");
    let r = client()
        .get(s.url("/v2/"))
        .header("authorization", basic("alice", "n3w pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    let msg = body["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
        + body["errors"][0]["detail"].as_str().unwrap_or("");
    assert!(msg.contains("cannot be checked"), "{body}");
}

#[test]
fn serve_refuses_what_it_cannot_protect() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Not loopback and no credentials: refused before anything listens.
    let r = pv(&[
        "serve",
        "--addr",
        "0.0.0.0:0",
        "--data",
        data.to_str().unwrap(),
    ]);
    let err = r.fails(1);
    assert!(
        err.contains("refusing to serve 0.0.0.0:0 without authentication")
            && err.contains("--htpasswd"),
        "{err}"
    );
    // A credentials file it cannot check: refused at start, naming the line.
    let file = tmp.path().join("htpasswd");
    std::fs::write(&file, "alice:plaintext\n").unwrap();
    let r = pv(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
        "--htpasswd",
        file.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("line 1: only bcrypt"), "{}", r.stderr);
    let r = pv(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
        "--htpasswd",
        tmp.path().join("missing").to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("htpasswd"), "{}", r.stderr);
}

/// Pushes under `team/` only for alice, pulls of `team/` only for alice:
/// rules that can only pass when the gate knows who asks.
const WHO_RULES: &[(&str, &str)] = &[
    (
        "push.rego",
        r#"
package pavilion.push
import rego.v1

deny contains msg if {
    startswith(input.repository, "team/")
    input.identity.username != "alice"
    msg := sprintf("%s may not push to team/", [input.identity.username])
}
"#,
    ),
    (
        "pull.rego",
        r#"
package pavilion.pull
import rego.v1

deny contains msg if {
    startswith(input.repository, "team/")
    input.identity.username != "alice"
    msg := sprintf("%s may not pull from team/", [input.identity.username])
}
"#,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_see_who_pushes_and_pulls_and_the_decision_log_needs_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(file) = htpasswd_file(tmp.path(), &[("alice", "a pw"), ("bob", "b pw")]) else {
        return;
    };
    let rules = policy_dir(WHO_RULES);
    let s = Server::start_with(
        Backend::Sqlite,
        &[
            "--htpasswd",
            file.to_str().unwrap(),
            "--policy",
            rules.path().to_str().unwrap(),
        ],
    )
    .unwrap();
    let d = s.addr.clone();
    let model = tmp.path().join("model");
    make_model(&model);
    let alice = Cli::with_config(&tmp.path().join("alice"));
    let bob = Cli::with_config(&tmp.path().join("bob"));
    alice.run(&["login", &d, "-u", "alice", "-p", "a pw"]).ok();
    bob.run(&["login", &d, "-u", "bob", "-p", "b pw"]).ok();

    let err = bob
        .run(&["push", &format!("{d}/team/m:v1"), model.to_str().unwrap()])
        .fails(4)
        .to_string();
    assert!(err.contains("bob may not push to team/"), "{err}");
    alice
        .run(&["push", &format!("{d}/team/m:v1"), model.to_str().unwrap()])
        .ok();
    bob.run(&["push", &format!("{d}/bob/m:v1"), model.to_str().unwrap()])
        .ok();
    let err = bob
        .run(&["manifest", "get", &format!("{d}/team/m:v1")])
        .fails(4)
        .to_string();
    assert!(err.contains("bob may not pull from team/"), "{err}");
    alice
        .run(&["manifest", "get", &format!("{d}/team/m:v1")])
        .ok();

    // The decision log and the policy report are the registry's too.
    let c = client();
    for path in [
        "/pavilion/v1/decisions",
        "/pavilion/v1/policy/team/m/manifests/v1",
    ] {
        let r = c.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
        let r = c
            .get(s.url(path))
            .header("authorization", basic("bob", "wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong password");
    }
    let r = c
        .get(s.url("/pavilion/v1/decisions?point=push"))
        .header("authorization", basic("alice", "a pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let denied = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["repository"] == "team/m" && d["allowed"] == false);
    assert!(denied, "bob's denied push is in the log: {v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_pull_is_reads_of_matching_repositories_only() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(file) = htpasswd_file(tmp.path(), &[("alice", "a pw")]) else {
        return;
    };
    let s = Server::start_with(
        Backend::Sqlite,
        &[
            "--htpasswd",
            file.to_str().unwrap(),
            "--anonymous-pull",
            "public/*",
        ],
    )
    .unwrap();
    let d = s.addr.clone();
    let model = tmp.path().join("model");
    make_model(&model);
    let alice = Cli::with_config(&tmp.path().join("alice"));
    alice.run(&["login", &d, "-u", "alice", "-p", "a pw"]).ok();
    for repo in ["public/m", "private/m", "public/deeper/m"] {
        alice
            .run(&["push", &format!("{d}/{repo}:v1"), model.to_str().unwrap()])
            .ok();
    }

    // Anyone: reads of public/* work, with every client command.
    let anyone = Cli::with_config(&tmp.path().join("anyone"));
    let out = tmp.path().join("out");
    anyone
        .run(&[
            "pull",
            &format!("{d}/public/m:v1"),
            "-o",
            out.to_str().unwrap(),
            "--no-cache",
        ])
        .ok();
    assert_eq!(files_of(&out), files_of(&model));
    assert!(anyone
        .run(&["tags", &format!("{d}/public/m")])
        .ok()
        .contains("v1"));
    // Not writes, not other repositories, not deeper names, not the catalog.
    anyone
        .run(&["push", &format!("{d}/public/m:v2"), model.to_str().unwrap()])
        .fails(6);
    anyone.run(&["tags", &format!("{d}/private/m")]).fails(6);
    anyone
        .run(&["tags", &format!("{d}/public/deeper/m")])
        .fails(6);
    let c = client();
    for (method, path) in [
        (reqwest::Method::GET, "/v2/_catalog".to_string()),
        (reqwest::Method::GET, "/v2/".to_string()),
        (reqwest::Method::GET, "/v2/public%2Fm/tags/list".to_string()),
        (
            reqwest::Method::DELETE,
            "/v2/public/m/manifests/v1".to_string(),
        ),
        (
            reqwest::Method::POST,
            "/v2/public/m/blobs/uploads/".to_string(),
        ),
        (reqwest::Method::GET, "/pavilion/v1/decisions".to_string()),
    ] {
        let r = c
            .request(method.clone(), s.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} without credentials");
    }
    // Credentials that are given are checked, public or not.
    let r = c
        .get(s.url("/v2/public/m/tags/list"))
        .header("authorization", basic("alice", "wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a wrong password is not anonymous");
    // The manifest is still there: nothing anonymous changed anything.
    assert!(alice
        .run(&["tags", &format!("{d}/public/m")])
        .ok()
        .contains("v1"));
}

/// Uploads `data` to `repo` in one request as `who`.
async fn put_blob(s: &Server, who: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let r = client()
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
        .header("authorization", who)
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "blob upload as {who:.20}");
    digest
}

async fn put_manifest(
    s: &Server,
    who: &str,
    repo: &str,
    reference: &str,
    body: &str,
) -> reqwest::Response {
    client()
        .put(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("authorization", who)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_signatures_are_decided_once_the_manifest_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(file) = htpasswd_file(tmp.path(), &[("alice", "pw-a"), ("bob", "pw-b")]) else {
        return;
    };
    // prod-* tags only on artifacts with a stored signature; only alice signs.
    let policy = tmp.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    std::fs::write(
        policy.join("authz.rego"),
        r#"package pavilion.authz
import rego.v1
allow if input.action in input.granted
deny contains msg if {
    input.action == "tag"
    startswith(input.tag, "prod-")
    not input.artifact.signed
    msg := sprintf("%s:%s is not signed", [input.repository, input.tag])
}
deny contains "only alice signs" if {
    input.action == "sign"
    input.identity.subject != "alice"
}
"#,
    )
    .unwrap();
    let s = Server::start_with(
        Backend::Sqlite,
        &[
            "--htpasswd",
            file.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
    )
    .unwrap();
    let (alice, bob) = (basic("alice", "pw-a"), basic("bob", "pw-b"));
    let config = put_blob(&s, &alice, "team/m", b"{}").await;
    let layer = put_blob(&s, &alice, "team/m", b"weights").await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{layer}","size":7}}]}}"#
    );
    let m_digest = sha256(manifest.as_bytes());
    assert_eq!(
        put_manifest(&s, &alice, "team/m", &m_digest, &manifest)
            .await
            .status(),
        201
    );
    assert_eq!(
        put_manifest(&s, &alice, "team/m", "dev-1", &manifest)
            .await
            .status(),
        201
    );
    // Unsigned: the prod tag is refused, naming the rule; nothing is set.
    let r = put_manifest(&s, &alice, "team/m", "prod-1", &manifest).await;
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert!(
        body.to_string().contains("team/m:prod-1 is not signed"),
        "{body}"
    );
    let r = client()
        .get(s.url("/v2/team/m/tags/list"))
        .header("authorization", &alice)
        .send()
        .await
        .unwrap();
    let tags: serde_json::Value = r.json().await.unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["dev-1"]));
    // A signature (the envelope's bytes do not matter to authorization).
    let envelope = put_blob(&s, &alice, "team/m", b"not really a JWS").await;
    let signature = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.cncf.notary.signature","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/jose+json","digest":"{envelope}","size":16}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{m_digest}","size":{}}}}}"#,
        manifest.len()
    );
    let s_digest = sha256(signature.as_bytes());
    let r = put_manifest(&s, &bob, "team/m", &s_digest, &signature).await;
    assert_eq!(r.status(), 403, "bob may push but not sign");
    assert!(r.text().await.unwrap().contains("only alice signs"));
    assert_eq!(
        put_manifest(&s, &alice, "team/m", &s_digest, &signature)
            .await
            .status(),
        201
    );
    // Signed now: the prod tag is set.
    assert_eq!(
        put_manifest(&s, &alice, "team/m", "prod-1", &manifest)
            .await
            .status(),
        201
    );
    // Both refusals are in the decision log, with the action.
    let r = client()
        .get(s.url("/pavilion/v1/decisions?point=authz"))
        .header("authorization", &alice)
        .send()
        .await
        .unwrap();
    let log: serde_json::Value = r.json().await.unwrap();
    let denied: Vec<String> = log["decisions"]
        .as_array()
        .unwrap_or_else(|| panic!("{log}"))
        .iter()
        .filter(|d| d["allowed"] == false)
        .map(|d| format!("{} {}", d["detail"]["action"], d["subject"]))
        .collect();
    assert!(
        denied
            .iter()
            .any(|d| d.contains("\"tag\"") && d.contains("alice tag team/m:prod-1")),
        "{denied:?}"
    );
    assert!(
        denied
            .iter()
            .any(|d| d.contains("\"sign\"") && d.contains("bob sign")),
        "{denied:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_never_reads_a_repository_the_caller_may_not_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(file) = htpasswd_file(tmp.path(), &[("alice", "pw-a"), ("bob", "pw-b")]) else {
        return;
    };
    let cfg = tmp.path().join("pavilion.toml");
    std::fs::write(
        &cfg,
        format!(
            "[auth]\nhtpasswd = {:?}\n[auth.grants]\nalice = [\"repository:team/*:pull,push\"]\nbob = [\"repository:bob/*:pull,push\"]\n",
            file.to_str().unwrap()
        ),
    )
    .unwrap();
    let s = Server::start_with(Backend::Sqlite, &["--config", cfg.to_str().unwrap()]).unwrap();
    let (alice, bob) = (basic("alice", "pw-a"), basic("bob", "pw-b"));
    let secret = put_blob(&s, &alice, "team/secret", b"alice's private weights").await;
    // bob may push to bob/*, and asks to mount alice's blob into it: with
    // `from`, without it (any repository holding it), and with the
    // parameter's name percent-encoded. Each starts a plain upload session
    // (202), never a mount (201), and the blob is not readable from bob/m.
    for query in [
        format!("mount={secret}&from=team/secret"),
        format!("mount={secret}"),
        format!("%6Dount={secret}&from=team%2Fsecret"),
        format!("mount={secret}&%66rom=team/secret"),
    ] {
        let r = client()
            .post(s.url(&format!("/v2/bob/m/blobs/uploads/?{query}")))
            .header("authorization", &bob)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "?{query} mounted a blob bob may not read");
        let r = client()
            .get(s.url(&format!("/v2/bob/m/blobs/{secret}")))
            .header("authorization", &bob)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "?{query}: the blob is readable from bob/m");
    }
    // alice, who may pull team/secret, mounts it into team/copy.
    let r = client()
        .post(s.url(&format!(
            "/v2/team/copy/blobs/uploads/?mount={secret}&from=team/secret"
        )))
        .header("authorization", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "a permitted mount is a mount");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_or_a_removed_user_revokes_refresh_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(file) = htpasswd_file(tmp.path(), &[("alice", "pw-a"), ("bob", "pw-b")]) else {
        return;
    };
    let s = Server::start_with(Backend::Sqlite, &["--htpasswd", file.to_str().unwrap()]).unwrap();
    let form = |fields: &[(&str, &str)]| {
        fields
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B").replace(' ', "+")))
            .collect::<Vec<_>>()
            .join("&")
    };
    let post = |body: String| {
        let url = s.url("/token");
        async move {
            let r = client()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let login = |user: &'static str, pw: &'static str| {
        form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", pw),
            ("access_type", "offline"),
            ("scope", "repository:team/m:pull"),
        ])
    };
    let (st, a) = post(login("alice", "pw-a")).await;
    assert_eq!(st, 200, "{a}");
    let (st, b) = post(login("bob", "pw-b")).await;
    assert_eq!(st, 200, "{b}");
    let refresh = |v: &serde_json::Value| {
        form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", v["refresh_token"].as_str().unwrap()),
            ("scope", "repository:team/m:pull"),
        ])
    };
    // Both refresh while nothing changed.
    assert_eq!(post(refresh(&a)).await.0, 200);
    assert_eq!(post(refresh(&b)).await.0, 200);
    // alice's password changes and bob is removed: their refresh tokens
    // stop working, without a restart.
    replace_file(
        &file,
        &format!("{}\n", htpasswd_line("alice", "new pw").unwrap()),
    );
    let (st, v) = post(refresh(&a)).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (401, Some("invalid_grant")),
        "{v}"
    );
    let (st, v) = post(refresh(&b)).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (401, Some("invalid_grant")),
        "{v}"
    );
    // A new login with the new password gets a working one.
    let (st, a2) = post(login("alice", "new pw")).await;
    assert_eq!(st, 200, "{a2}");
    assert_eq!(post(refresh(&a2)).await.0, 200);
}
