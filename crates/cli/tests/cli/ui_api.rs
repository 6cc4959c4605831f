//! The JSON a repository browser (the web UI) reads, at a real `pavilion
//! serve`: `/pavilion/v1/repositories` (search, counts, paging, wildcards
//! taken literally), `/pavilion/v1/repositories/<name>/tags`,
//! `/pavilion/v1/signatures/<name>/manifests/<reference>` (judged under
//! the server's trust policy), `/pavilion/v1/access/<name>` (a dry run of
//! the guard) and the decision log's `subject` filter; each authorized as
//! the `/v2` read it stands for.

use crate::common::auth::{authz_decisions, basic, htpasswd_file, write, Served};
use crate::common::notation::{policy_dir, User};
use crate::common::*;
use serde_json::{json, Value};

/// GET `url` with `authorization`: the status and the JSON body.
async fn get(url: &str, authorization: Option<&str>) -> (u16, Value) {
    let mut rq = client().get(url);
    if let Some(a) = authorization {
        rq = rq.header("authorization", a);
    }
    let r = rq.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| json!(text));
    (status, v)
}

/// GET `path` that must answer 200; its body.
async fn ok(s: &Server, path: &str) -> Value {
    let (st, v) = get(&s.url(path), None).await;
    assert_eq!(st, 200, "GET {path}: {v}");
    v
}

/// GET `path` that must fail with `status` and `code`, its detail one line.
async fn fails(s: &Server, path: &str, status: u16, code: &str) -> String {
    let (st, v) = get(&s.url(path), None).await;
    let e = &v["errors"][0];
    assert_eq!(
        (st, e["code"].as_str()),
        (status, Some(code)),
        "{path}: {v}"
    );
    let detail = e["detail"].as_str().unwrap().to_string();
    assert!(!detail.is_empty() && !detail.contains('\n'), "{detail:?}");
    detail
}

/// Pushes a one-layer image as `repo:tag`: (digest, manifest bytes, the
/// manifest's bytes plus its config's and layer's).
async fn image(s: &Server, repo: &str, tag: &str, seed: &str) -> (String, usize, usize) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let layer = format!("layer bytes for {seed}");
    let digest = push_image(s, repo, tag, seed).await;
    let m = image_manifest(
        (&sha256(config.as_bytes()), config.len()),
        &[(&sha256(layer.as_bytes()), layer.len())],
        "",
    );
    assert_eq!(sha256(&m), digest);
    (digest, m.len(), m.len() + config.len() + layer.len())
}

fn names(v: &Value) -> Vec<&str> {
    v["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

/// Search, counts, paging and bad input of the listings, and what a
/// server without authentication or trust policy says of access and
/// signatures.
async fn browsing(s: Server) {
    let (v1, v1_size, v1_total) = image(&s, "ui/alpha", "v1", "a1").await;
    image(&s, "ui/alpha", "v2", "a2").await;
    image(&s, "ui/a_b", "v1", "b").await;
    image(&s, "ui/axb", "v1", "x").await;
    image(&s, "other/zeta", "v1", "z").await;
    // A referrer with the Notary signature artifact type (not a real
    // signature: it counts, and nothing decodes it).
    let empty = push_blob(&s, "ui/alpha", b"{}").await;
    let sig = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.cncf.notary.signature","config":{{"mediaType":"{OCI_EMPTY}","digest":"{empty}","size":2}},"layers":[{{"mediaType":"{OCI_EMPTY}","digest":"{empty}","size":2}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{v1}","size":{v1_size}}}}}"#
    );
    let r = put_manifest(
        &s,
        "ui/alpha",
        &sha256(sig.as_bytes()),
        Some(OCI_MANIFEST),
        sig.as_bytes(),
    )
    .await;
    assert_eq!(r.status(), 201);

    // Every repository, in byte order, with its counts.
    let all = ok(&s, "/pavilion/v1/repositories").await;
    assert_eq!(names(&all), ["other/zeta", "ui/a_b", "ui/alpha", "ui/axb"]);
    let alpha = &all["repositories"][2];
    assert_eq!(
        (&alpha["tags"], &alpha["manifests"]),
        (&json!(2), &json!(3))
    );
    assert!(
        alpha["updatedAt"].as_i64().unwrap() > 1_700_000_000_000,
        "{alpha}"
    );
    assert_eq!(all["next"], Value::Null);
    // q: a case-insensitive part of the name; `_`, `%` and `\` literal.
    for (q, want) in [
        ("a_b", vec!["ui/a_b"]),
        ("A_B", vec!["ui/a_b"]),
        ("_", vec!["ui/a_b"]),
        ("%25", vec![]),
        ("%5C", vec![]),
        ("%5C_", vec![]),
        ("zet", vec!["other/zeta"]),
        ("ui%2Fal", vec!["ui/alpha"]),
    ] {
        let v = ok(&s, &format!("/pavilion/v1/repositories?q={q}")).await;
        assert_eq!(names(&v), want, "q={q}");
    }
    // Pages across a boundary, `next` carrying q and n.
    let p1 = ok(&s, "/pavilion/v1/repositories?n=2").await;
    assert_eq!(names(&p1), ["other/zeta", "ui/a_b"]);
    assert_eq!(p1["next"], "/pavilion/v1/repositories?n=2&last=ui/a_b");
    let p2 = ok(&s, p1["next"].as_str().unwrap()).await;
    assert_eq!(names(&p2), ["ui/alpha", "ui/axb"]);
    assert_eq!(p2["next"], Value::Null);
    let q1 = ok(&s, "/pavilion/v1/repositories?q=ui&n=1&last=ui/a_b").await;
    assert_eq!(names(&q1), ["ui/alpha"]);
    assert_eq!(
        q1["next"],
        "/pavilion/v1/repositories?q=ui&n=1&last=ui/alpha"
    );
    let q2 = ok(&s, q1["next"].as_str().unwrap()).await;
    assert_eq!((names(&q2), &q2["next"]), (vec!["ui/axb"], &Value::Null));
    // Bad input: 400, one line.
    let long = "a".repeat(257);
    for path in [
        "/pavilion/v1/repositories?n=0".to_string(),
        "/pavilion/v1/repositories?n=-1".into(),
        "/pavilion/v1/repositories?n=ten".into(),
        "/pavilion/v1/repositories?sort=name".into(),
        format!("/pavilion/v1/repositories?q={long}"),
        "/pavilion/v1/repositories?last=%0A".into(),
        "/pavilion/v1/repositories/ui/alpha/tags?n=x".into(),
    ] {
        fails(&s, &path, 400, "UNSUPPORTED").await;
    }
    let d = fails(
        &s,
        &format!("/pavilion/v1/repositories?q={long}"),
        400,
        "UNSUPPORTED",
    )
    .await;
    assert!(d.contains("257 bytes") && d.contains("256"), "{d}");
    // n above the bound is lowered to it.
    assert_eq!(
        names(&ok(&s, "/pavilion/v1/repositories?n=5000").await).len(),
        4
    );

    // Tags, with exact sizes and counts.
    let tags = ok(&s, "/pavilion/v1/repositories/ui/alpha/tags").await;
    assert_eq!(tags["name"], "ui/alpha");
    let t = &tags["tags"][0];
    assert_eq!(
        (
            t["tag"].as_str(),
            t["digest"].as_str(),
            t["mediaType"].as_str()
        ),
        (Some("v1"), Some(v1.as_str()), Some(OCI_MANIFEST))
    );
    // As the referrers API reports it: artifactType, else config.mediaType.
    assert_eq!(
        t["artifactType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(t["size"], json!(v1_size));
    assert_eq!(t["totalSize"], json!(v1_total));
    assert_eq!(t["signatures"], 1);
    assert!(t["pushedAt"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(tags["tags"][1]["signatures"], 0);
    let page = ok(&s, "/pavilion/v1/repositories/ui/alpha/tags?n=1").await;
    assert_eq!(page["tags"].as_array().unwrap().len(), 1);
    assert_eq!(
        page["next"],
        "/pavilion/v1/repositories/ui/alpha/tags?n=1&last=v1"
    );
    let rest = ok(&s, page["next"].as_str().unwrap()).await;
    assert_eq!(
        (&rest["tags"][0]["tag"], &rest["next"]),
        (&json!("v2"), &Value::Null)
    );
    fails(
        &s,
        "/pavilion/v1/repositories/ui/nope/tags",
        404,
        "NAME_UNKNOWN",
    )
    .await;
    fails(
        &s,
        "/pavilion/v1/repositories/UI/Alpha/tags",
        400,
        "NAME_INVALID",
    )
    .await;
    fails(
        &s,
        "/pavilion/v1/repositories/ui/alpha",
        404,
        "NAME_UNKNOWN",
    )
    .await;

    // Signatures without a trust policy: listed, not judged.
    let v = ok(
        &s,
        &format!("/pavilion/v1/signatures/ui/alpha/manifests/{v1}"),
    )
    .await;
    assert_eq!(
        (&v["digest"], &v["configured"], &v["verified"]),
        (&json!(v1), &json!(false), &Value::Null)
    );
    assert_eq!(
        (&v["trustPolicy"], &v["truncated"]),
        (&Value::Null, &json!(false))
    );
    assert_eq!(v["signatures"].as_array().unwrap().len(), 1);
    assert_eq!(v["signatures"][0]["verified"], Value::Null);
    let v2 = ok(&s, "/pavilion/v1/signatures/ui/alpha/manifests/v2").await;
    assert_eq!(v2["signatures"], json!([]));
    fails(
        &s,
        "/pavilion/v1/signatures/ui/alpha/manifests/v9",
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;

    // No authentication: the caller may do anything, known repository or not.
    for name in ["ui/alpha", "no/such"] {
        let v = ok(&s, &format!("/pavilion/v1/access/{name}")).await;
        assert_eq!(
            v,
            json!({"repository": name, "pull": true, "push": true, "delete": true})
        );
    }
    fails(&s, "/pavilion/v1/access/No", 400, "NAME_INVALID").await;

    // Metrics count route templates, never a repository.
    let metrics = crate::observability::scrape(&s).await;
    assert!(
        metrics.contains("route=\"/pavilion/v1/repositories/{name}/tags\""),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/pavilion/v1/access/{name}\""));
    assert!(!metrics.contains("ui/alpha"), "a repository in a label");
}

backend_tests!(sqlite, Sqlite, listings => browsing;);
backend_tests!(postgres, Postgres, listings => browsing;);

const GRANTS: &str = r#"
anonymous_pull = ["public/*"]

[auth.grants]
admin = ["repository:**:*", "registry:catalog:*"]
alice = ["repository:team/*:pull"]
"#;

/// The status of a HEAD of `url` with `authorization`.
async fn http_head(url: String, authorization: String) -> u16 {
    client()
        .head(url)
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The decisions other than the administrator's own reads of the log.
async fn log_without_admin_reads(base: &str, admin: &str) -> Vec<Value> {
    authz_decisions(base, admin)
        .await
        .into_iter()
        .filter(|d| d["subject"] != "admin catalog registry")
        .collect()
}

/// The `authz` denials counted in `/metrics`.
async fn counted_denials(s: &Served, admin: &str) -> String {
    let (st, text) = get(&s.url("/metrics"), Some(admin)).await;
    assert_eq!(st, 200);
    text.as_str()
        .unwrap()
        .lines()
        .filter(|l| {
            l.starts_with("pavilion_policy_decisions_total")
                && l.contains("\"authz\"")
                && l.contains("\"deny\"")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsing_is_authorized_as_the_reads_it_stands_for() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(users) = htpasswd_file(
        tmp.path(),
        &[("admin", "adm pw"), ("alice", "a pw"), ("dave", "d pw")],
    ) else {
        return;
    };
    let cfg = write(
        tmp.path(),
        "pavilion.toml",
        &format!("[auth]\nhtpasswd = \"{}\"\n{GRANTS}", users.display()),
    );
    let s = Served::start(None, &["--config", &cfg]);
    let base = s.url("");
    let (admin, alice, dave) = (
        basic("admin", "adm pw"),
        basic("alice", "a pw"),
        basic("dave", "d pw"),
    );
    let c = crate::common::auth::http();
    for repo in ["team/m", "secret/s", "public/p"] {
        let st = crate::common::auth::push_with(&c, &base, repo, "v1", Some(&admin)).await;
        assert_eq!(st, 201, "{repo}");
    }
    let status = |path: &str, who: Option<&str>| {
        let url = s.url(path);
        let who = who.map(str::to_string);
        async move { get(&url, who.as_deref()).await.0 }
    };
    // The search lists everything to the catalog grant, and to anyone
    // else only the repositories they may pull; nobody signed in: 401.
    let listed = |who: String| {
        let url = s.url("/pavilion/v1/repositories");
        async move {
            let (st, v) = get(&url, Some(&who)).await;
            assert_eq!(st, 200, "{v}");
            names(&v)
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(admin.clone()).await,
        ["public/p", "secret/s", "team/m"]
    );
    assert_eq!(listed(alice.clone()).await, ["team/m"]);
    assert_eq!(listed(dave.clone()).await, Vec::<String>::new());
    assert_eq!(status("/pavilion/v1/repositories", None).await, 401);
    // Tags and signatures are pulls of the repository.
    for kind in ["repositories/{}/tags", "signatures/{}/manifests/v1"] {
        let path = |repo: &str| format!("/pavilion/v1/{}", kind.replace("{}", repo));
        assert_eq!(status(&path("team/m"), Some(&alice)).await, 200, "{kind}");
        assert_eq!(status(&path("secret/s"), Some(&alice)).await, 403, "{kind}");
        assert_eq!(status(&path("secret/s"), Some(&dave)).await, 403, "{kind}");
        assert_eq!(status(&path("secret/s"), None).await, 401, "{kind}");
        assert_eq!(status(&path("public/p"), None).await, 200, "{kind}");
        // HEAD is the same read: its status must not tell what GET hides.
        let head = |repo: &str| http_head(s.url(&path(repo)), alice.clone());
        assert_eq!(head("secret/s").await, 403, "HEAD {kind}");
        assert_eq!(head("secret/none").await, 403, "HEAD {kind}");
        assert_eq!(head("team/m").await, 200, "HEAD {kind}");
    }

    // Access: a dry run of the guard, answered to anyone, recording nothing.
    let before = log_without_admin_reads(&base, &admin).await;
    let denials = counted_denials(&s, &admin).await;
    let access = |name: &str, who: Option<&str>| {
        let url = s.url(&format!("/pavilion/v1/access/{name}"));
        let who = who.map(str::to_string);
        async move {
            let (st, v) = get(&url, who.as_deref()).await;
            assert_eq!(st, 200, "{v}");
            (
                v["pull"].as_bool().unwrap(),
                v["push"].as_bool().unwrap(),
                v["delete"].as_bool().unwrap(),
            )
        }
    };
    assert_eq!(access("team/m", Some(&alice)).await, (true, false, false));
    assert_eq!(
        access("secret/s", Some(&alice)).await,
        (false, false, false)
    );
    // The same answer for a repository that does not exist.
    assert_eq!(
        access("secret/none", Some(&alice)).await,
        (false, false, false)
    );
    assert_eq!(access("team/m", Some(&dave)).await, (false, false, false));
    assert_eq!(access("team/m", Some(&admin)).await, (true, true, true));
    assert_eq!(access("public/p", None).await, (true, false, false));
    assert_eq!(access("secret/s", None).await, (false, false, false));
    let (st, v) = get(&s.url("/pavilion/v1/access/team/m"), None).await;
    assert_eq!((st, &v["repository"]), (200, &json!("team/m")));
    assert_eq!(log_without_admin_reads(&base, &admin).await, before);
    let after = counted_denials(&s, &admin).await;
    assert!(after.contains("deny"), "{after}");
    assert_eq!(after, denials);
    // Credentials that are sent must hold, as everywhere.
    let wrong = basic("alice", "wrong");
    assert_eq!(
        status("/pavilion/v1/access/team/m", Some(&wrong)).await,
        401
    );
}

const PUSH_RULES: &str = r#"
package pavilion.push
import rego.v1

deny contains "no tag named bad" if "bad" in input.tags
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_judged_under_the_servers_trust_policy() {
    let alice = User::new();
    let mallory = User::without_keys();
    mallory.ok(&["cert", "generate", "mallory"]);
    let rules = policy_dir(&[("push.rego", PUSH_RULES)]);
    let Some(s) = alice.gated_server(Backend::Sqlite, rules.path()) else {
        return;
    };
    let (digest, _, _) = image(&s, "signed/app", "v1", "app").await;
    let reference = format!("{}/signed/app:v1", s.addr);
    alice.sign(&reference);
    mallory.ok(&[
        "sign",
        &reference,
        "--key",
        &mallory.key("mallory"),
        "--cert",
        &mallory.cert("mallory"),
        "--signature-format",
        "cose",
        "--expiry",
        "30d",
    ]);

    let v = ok(&s, "/pavilion/v1/signatures/signed/app/manifests/v1").await;
    assert_eq!(v["digest"], digest);
    assert_eq!(
        (&v["configured"], &v["verified"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(v["trustPolicy"], "alice-default");
    assert_eq!(
        (&v["truncated"], &v["error"]),
        (&json!(false), &Value::Null)
    );
    let list = v["signatures"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    let by = |cn: &str| {
        list.iter()
            .find(|x| {
                x["signer"]
                    .as_str()
                    .is_some_and(|s| s.contains(&format!("CN={cn}")))
            })
            .unwrap_or_else(|| panic!("no signature by {cn}: {v}"))
    };
    let (good, bad) = (by("alice"), by("mallory"));
    assert_eq!(good["verified"], true);
    assert_eq!(good["failures"], json!([]));
    assert_eq!(good["mediaType"], "application/jose+json");
    assert_eq!(good["signingScheme"], "notary.x509");
    assert_eq!(good["expiry"], Value::Null);
    assert_eq!(
        good["steps"][0],
        json!({"validation": "integrity", "action": "enforce", "outcome": "passed",
               "detail": good["steps"][0]["detail"]})
    );
    assert_eq!(bad["verified"], false);
    assert_eq!(bad["mediaType"], "application/cose");
    assert!(
        bad["expiry"].as_str().is_some_and(|e| e.ends_with('Z')),
        "{bad}"
    );
    let why = bad["failures"].as_array().unwrap();
    assert!(
        !why.is_empty() && why[0].as_str().unwrap().starts_with("authenticity"),
        "{bad}"
    );
    for sig in [good, bad] {
        let chain = sig["chain"].as_array().unwrap();
        assert!(chain.len() >= 2, "leaf and CA: {sig}");
        assert_eq!(chain[0], sig["signer"]);
        let t = sig["signingTime"].as_str().unwrap();
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
        assert!(sig["digest"].as_str().unwrap().starts_with("sha256:"));
    }
    // By digest, the same; and the tag listing counts both.
    let d = ok(
        &s,
        &format!("/pavilion/v1/signatures/signed/app/manifests/{digest}"),
    )
    .await;
    assert_eq!(d["signatures"].as_array().unwrap().len(), 2);
    let tags = ok(&s, "/pavilion/v1/repositories/signed/app/tags").await;
    assert_eq!(tags["tags"][0]["signatures"], 2);

    // The decision log by subject: the latest decision about one digest.
    let cfg = push_blob(&s, "signed/app", b"{}").await;
    let other = image_manifest((&cfg, 2), &[], "");
    let r = put_manifest(&s, "signed/app", "bad", Some(OCI_MANIFEST), &other).await;
    assert_eq!(r.status(), 403);
    let subject = |d: &str| format!("signed/app@{d}");
    let log = ok(
        &s,
        &format!(
            "/pavilion/v1/decisions?subject={}",
            subject(&sha256(&other))
        ),
    )
    .await;
    let got: Vec<_> = log["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["point"].as_str().unwrap(),
                d["subject"].as_str().unwrap(),
                d["allowed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("push", subject(&sha256(&other)).as_str(), false)]);
    let log = ok(
        &s,
        &format!(
            "/pavilion/v1/decisions?point=push&n=1&subject={}",
            subject(&digest)
        ),
    )
    .await;
    assert_eq!(log["decisions"][0]["subject"], subject(&digest));
    assert_eq!(log["decisions"][0]["allowed"], true);
    let none = ok(&s, "/pavilion/v1/decisions?subject=signed/app@sha256:0").await;
    assert_eq!(none["decisions"], json!([]));
    fails(&s, "/pavilion/v1/decisions?subject=", 400, "UNSUPPORTED").await;
}
