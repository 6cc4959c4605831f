//! Authorization in Rego at a real `pavilion serve` (issue 16, item 4):
//! the default policy gives exactly `[auth.grants]` (per subject and per
//! `group:NAME` with `[auth.groups]`); a policy directory's `allow` and
//! `deny` rules of package `pavilion.authz`, deny winning and naming
//! itself to the client and in the decision log; audit mode; the push
//! gate's `input.identity`.

use crate::common::auth::*;
use crate::common::notation::policy_dir;
use reqwest::Method;
use serde_json::Value;
use std::path::Path;

const GRANTS: &str = r#"
[auth.grants]
admin = ["repository:**:*", "registry:catalog:*"]
alice = ["repository:team/*:pull"]
"group:ml" = ["repository:models/**:pull,push"]

[auth.groups]
ml = ["carol"]
"#;

fn start(tmp: &Path, extra: &str, args: &[&str]) -> Option<Served> {
    let users = htpasswd_file(
        tmp,
        &[
            ("admin", "adm pw"),
            ("alice", "a pw"),
            ("carol", "c pw"),
            ("dave", "d pw"),
        ],
    )?;
    let cfg = write(
        tmp,
        "pavilion.toml",
        &format!(
            "[auth]\nhtpasswd = \"{}\"\n{extra}\n{GRANTS}",
            users.display()
        ),
    );
    let mut all = vec!["--config", cfg.as_str()];
    all.extend_from_slice(args);
    Some(Served::start(None, &all))
}

/// The decision for `subject` (e.g. "alice push team/m:v1"), newest first.
fn find<'a>(log: &'a [Value], subject: &str) -> Option<&'a Value> {
    log.iter().find(|d| d["subject"] == subject)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_policy_gives_exactly_the_grants() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(s) = start(tmp.path(), "", &[]) else {
        return;
    };
    let base = s.url("");
    let c = http();
    let admin = basic("admin", "adm pw");
    let (alice, carol, dave) = (
        basic("alice", "a pw"),
        basic("carol", "c pw"),
        basic("dave", "d pw"),
    );
    for repo in ["team/m", "team/x/y", "models/a/b"] {
        assert_eq!(
            push_with(&c, &base, repo, "v1", Some(&admin)).await,
            201,
            "{repo}"
        );
    }

    // alice: pull in team/* (one component), nothing else.
    assert_eq!(
        pull_status(&c, &base, "team/m", "v1", Some(&alice)).await,
        200
    );
    let denied = [
        (
            Method::PUT,
            "/v2/team/m/manifests/v2",
            "alice may not push team/m",
        ),
        (
            Method::DELETE,
            "/v2/team/m/manifests/v1",
            "alice may not delete team/m",
        ),
        (
            Method::GET,
            "/v2/team/x/y/tags/list",
            "alice may not pull team/x/y",
        ),
        (
            Method::GET,
            "/v2/models/a/b/tags/list",
            "alice may not pull models/a/b",
        ),
        (
            Method::GET,
            "/v2/_catalog",
            "alice may not catalog the registry",
        ),
        (
            Method::GET,
            "/pavilion/v1/decisions",
            "alice may not catalog",
        ),
    ];
    for (method, path, want) in denied {
        let (st, code, detail, _) = call(method.clone(), &s.url(path), Some(&alice)).await;
        assert_eq!((st, code.as_str()), (403, "DENIED"), "{method} {path}");
        assert!(detail.contains(want), "{method} {path}: {detail}");
        assert!(detail.contains("no grant or rule allows it"), "{detail}");
    }
    assert_eq!(
        push_with(&c, &base, "team/m", "v2", Some(&alice)).await,
        403
    );

    // carol: through her group, push and pull models/**, nothing in team/.
    assert_eq!(
        push_with(&c, &base, "models/a/b", "v2", Some(&carol)).await,
        201
    );
    assert_eq!(
        push_with(&c, &base, "models/new", "v1", Some(&carol)).await,
        201
    );
    assert_eq!(
        pull_status(&c, &base, "models/a/b", "v1", Some(&carol)).await,
        200
    );
    assert_eq!(
        pull_status(&c, &base, "team/m", "v1", Some(&carol)).await,
        403
    );
    let (st, _, _, _) = call(
        Method::DELETE,
        &s.url("/v2/models/a/b/manifests/v1"),
        Some(&carol),
    )
    .await;
    assert_eq!(st, 403);

    // dave: authenticated, granted nothing.
    let (st, _, _, _) = call(Method::GET, &s.url("/v2/"), Some(&dave)).await;
    assert_eq!(st, 200);
    assert_eq!(
        pull_status(&c, &base, "team/m", "v1", Some(&dave)).await,
        403
    );
    assert_eq!(push_with(&c, &base, "dave/m", "v1", Some(&dave)).await, 403);

    // Tokens carry the same, trimmed.
    let t = token_for(
        &base,
        &[
            "repository:models/a/b:pull,push,delete",
            "repository:team/m:pull",
        ],
        &carol,
    )
    .await;
    assert_eq!(
        access_of(&t),
        vec![("models/a/b".into(), vec!["pull".into(), "push".into()])]
    );
    let t = token_for(
        &base,
        &["repository:team/m:pull", "registry:catalog:*"],
        &dave,
    )
    .await;
    assert!(access_of(&t).is_empty());

    // Every denial is in the decision log (point authz), with who asked.
    let log = authz_decisions(&base, &admin).await;
    let d = find(&log, "alice push team/m:v2").expect("alice's push is logged");
    assert_eq!(d["point"], "authz");
    assert_eq!(d["allowed"], false);
    assert_eq!(d["repository"], "team/m");
    assert_eq!(d["detail"]["enforced"], true);
    assert_eq!(d["detail"]["identity"]["method"], "htpasswd");
    assert_eq!(d["detail"]["granted"], serde_json::json!(["pull"]));
    let d = find(&log, "carol push models/a/b:v2").expect("carol's push is logged");
    assert_eq!(d["allowed"], true);
    assert_eq!(d["detail"]["identity"]["groups"], serde_json::json!(["ml"]));
    let d = find(&log, "dave pull team/m:v1").expect("dave's pull is logged");
    assert_eq!(d["allowed"], false);
    // Token scopes are decided (and logged) too.
    assert!(
        log.iter()
            .any(|d| d["detail"]["route"] == "token" && d["subject"] == "carol delete models/a/b"),
        "the trimmed delete is logged"
    );
}

const RULES: &[(&str, &str)] = &[
    (
        "authz.rego",
        r#"
package pavilion.authz
import rego.v1

default allow := false

allow if input.action in input.granted

# Anyone who logged in may read shared/.
allow if {
    input.action == "pull"
    startswith(input.repository, "shared/")
    input.identity != null
}

deny contains msg if {
    input.action == "delete"
    startswith(input.repository, "prod/")
    msg := sprintf("no deletes in prod/ (asked by %s)", [input.identity.subject])
}

deny contains "release tags are immutable" if {
    input.action == "push"
    input.tag == "release"
}
"#,
    ),
    (
        "push.rego",
        r#"
package pavilion.push
import rego.v1

deny contains msg if {
    "gated" in input.tags
    input.identity.username != "admin"
    msg := sprintf("%s may not push gated tags", [input.identity.username])
}
"#,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_rules_win_over_grants_and_allows_and_name_themselves() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = policy_dir(RULES);
    let Some(s) = start(
        tmp.path(),
        "",
        &["--policy", rules.path().to_str().unwrap()],
    ) else {
        return;
    };
    let base = s.url("");
    let c = http();
    let admin = basic("admin", "adm pw");
    let dave = basic("dave", "d pw");
    let carol = basic("carol", "c pw");
    assert_eq!(
        push_with(&c, &base, "prod/m", "v1", Some(&admin)).await,
        201
    );
    assert_eq!(
        push_with(&c, &base, "shared/m", "v1", Some(&admin)).await,
        201
    );

    // A custom allow: dave, granted nothing, reads shared/; not anonymous.
    assert_eq!(
        pull_status(&c, &base, "shared/m", "v1", Some(&dave)).await,
        200
    );
    assert_eq!(pull_status(&c, &base, "shared/m", "v1", None).await, 401);
    assert_eq!(
        pull_status(&c, &base, "prod/m", "v1", Some(&dave)).await,
        403
    );

    // Deny wins over admin's grant of everything, and names its rule.
    let (st, code, detail, _) = call(
        Method::DELETE,
        &s.url("/v2/prod/m/manifests/v1"),
        Some(&admin),
    )
    .await;
    assert_eq!((st, code.as_str()), (403, "DENIED"));
    assert_eq!(
        detail,
        "denied by policy: no deletes in prod/ (asked by admin)"
    );
    assert_eq!(
        pull_status(&c, &base, "prod/m", "v1", Some(&admin)).await,
        200
    );
    assert_eq!(
        push_with(&c, &base, "prod/m", "release", Some(&admin)).await,
        403
    );
    let (st, _, detail, _) = call(
        Method::PUT,
        &s.url("/v2/prod/m/manifests/release"),
        Some(&admin),
    )
    .await;
    assert_eq!(st, 403);
    assert!(detail.contains("release tags are immutable"), "{detail}");

    // A token is trimmed by the deny; using it to delete is DENIED with the
    // rule, not an insufficient scope (no token could allow it).
    let t = token_for(&base, &["repository:prod/m:pull,push,delete"], &admin).await;
    assert_eq!(
        access_of(&t),
        vec![("prod/m".into(), vec!["pull".into(), "push".into()])]
    );
    let (st, code, detail, _) = call(
        Method::DELETE,
        &s.url("/v2/prod/m/manifests/v1"),
        Some(&format!("Bearer {t}")),
    )
    .await;
    assert_eq!((st, code.as_str()), (403, "DENIED"));
    assert!(detail.contains("no deletes in prod/"), "{detail}");

    // The push gate still sees who pushes (input.identity), behind authz.
    let (st, body) = push_with_body(&c, &base, "models/m", "gated", Some(&carol)).await;
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("carol may not push gated tags"), "{body}");
    assert_eq!(
        push_with(&c, &base, "models/m", "gated", Some(&admin)).await,
        201
    );

    // The deny's message is in the decision log, beside the push gate's.
    let log = authz_decisions(&base, &admin).await;
    let d = find(&log, "admin delete prod/m:v1").expect("the denied delete is logged");
    assert_eq!(d["allowed"], false);
    assert_eq!(
        d["deny"],
        serde_json::json!(["no deletes in prod/ (asked by admin)"])
    );
    let d = find(&log, "dave pull shared/m:v1").expect("the custom allow is logged");
    assert_eq!(d["allowed"], true);
    assert_eq!(d["detail"]["granted"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_lets_denials_through_and_records_them() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(s) = start(tmp.path(), "audit = true", &[]) else {
        return;
    };
    let base = s.url("");
    let c = http();
    let admin = basic("admin", "adm pw");
    let alice = basic("alice", "a pw");
    // alice may only pull team/*: in audit mode her push goes through.
    assert_eq!(
        push_with(&c, &base, "team/m", "v1", Some(&alice)).await,
        201
    );
    assert_eq!(
        pull_status(&c, &base, "other/m", "v1", Some(&alice)).await,
        404
    );
    // Audit mode does not open the door to callers who do not log in.
    assert_eq!(pull_status(&c, &base, "team/m", "v1", None).await, 401);
    assert_eq!(
        pull_status(&c, &base, "team/m", "v1", Some(&basic("alice", "x"))).await,
        401
    );
    assert_eq!(push_with(&c, &base, "team/anon", "v1", None).await, 401);
    let (st, _, _, _) = call(Method::GET, &s.url("/v2/_catalog"), None).await;
    assert_eq!(st, 401);
    // Tokens carry what would be denied, as requests would go through.
    let t = token_for(&base, &["repository:team/m:pull,push"], &alice).await;
    assert_eq!(
        access_of(&t),
        vec![("team/m".into(), vec!["pull".into(), "push".into()])]
    );

    let log = authz_decisions(&base, &admin).await;
    let d = find(&log, "alice push team/m:v1").expect("the push is logged");
    assert_eq!(d["allowed"], false, "recorded as what the rules decided");
    assert_eq!(d["detail"]["enforced"], false);
    let d = find(&log, "alice pull other/m:v1").expect("the pull is logged");
    assert_eq!(d["allowed"], false);
    assert_eq!(d["detail"]["enforced"], false);
}

/// A HEAD of Pavilion's own read endpoints is decided as their GET: a
/// caller without the grant learns nothing from the status (found by the
/// web UI's review: a HEAD of the policy report told a user with no grant
/// at all whether a manifest existed, 200 or 404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_of_pavilions_own_reads_is_authorized_as_their_get() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = policy_dir(&[(
        "push.rego",
        "package pavilion.push\nimport rego.v1\ndeny contains \"never\" if false\n",
    )]);
    let Some(s) = start(
        tmp.path(),
        "",
        &["--policy", rules.path().to_str().unwrap()],
    ) else {
        return;
    };
    let base = s.url("");
    let c = http();
    let admin = basic("admin", "adm pw");
    assert_eq!(
        push_with(&c, &base, "secret/s", "v1", Some(&admin)).await,
        201
    );
    let dave = basic("dave", "d pw");
    let head = |path: &str| {
        let (c, url, dave) = (c.clone(), s.url(path), dave.clone());
        async move {
            c.head(url)
                .header("authorization", dave)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for path in [
        "/pavilion/v1/policy/secret/s/manifests/v1",
        "/pavilion/v1/policy/secret/s/manifests/v9",
        "/pavilion/v1/decisions",
        "/pavilion/v1/usage",
        "/pavilion/v1/webhooks",
    ] {
        assert_eq!(
            head(path).await,
            403,
            "HEAD {path} as a user without grants"
        );
    }
    // The administrator's HEAD still answers as the GET would.
    let r = c
        .head(s.url("/pavilion/v1/policy/secret/s/manifests/v1"))
        .header("authorization", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
