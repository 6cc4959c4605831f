//! Who a caller is, at a real `pavilion serve` (issue 16, items 1, 3 and
//! 6): API keys used as the password (within their scopes, until revoked
//! or expired), workload JWTs from issuers whose keys are in a file or at
//! a URL, TLS client certificates (the SPIFFE ID), certificates forwarded
//! by a trusted proxy, and an htpasswd file that cannot be read.

use crate::common::auth::*;
use crate::common::run::pv;
use pavilion_auth::jose::SigningKey;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Polls `check` every 200 ms until it holds or `limit` passed.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_work_within_their_scopes_until_revoked_or_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(users) = htpasswd_file(tmp.path(), &[("admin", "adm pw")]) else {
        return;
    };
    let cfg = write(
        tmp.path(),
        "pavilion.toml",
        &format!(
            "[auth]\nhtpasswd = \"{}\"\n[auth.grants]\nadmin = [\"repository:**:*\", \"registry:catalog:*\"]\n",
            users.display()
        ),
    );
    let s = Served::start(None, &["--config", &cfg]);
    let base = s.url("");
    let c = http();
    let admin = basic("admin", "adm pw");
    assert_eq!(
        push_with(&c, &base, "other/m", "v1", Some(&admin)).await,
        201
    );
    let key = create_key(&s.data, "ci", &["repository:team/*:pull,push"], "30d");
    assert!(key.starts_with("pvk_"), "{key}");
    let ci = basic("ci", &key);

    // Basic with the key as the password: within its scopes only.
    assert_eq!(push_with(&c, &base, "team/m", "v1", Some(&ci)).await, 201);
    assert_eq!(pull_status(&c, &base, "team/m", "v1", Some(&ci)).await, 200);
    // Any user name: the key is the credential.
    assert_eq!(
        pull_status(&c, &base, "team/m", "v1", Some(&basic("x", &key))).await,
        200
    );
    for (method, path, want) in [
        (
            Method::GET,
            "/v2/other/m/manifests/v1",
            "ci may not pull other/m",
        ),
        (
            Method::PUT,
            "/v2/other/m/manifests/v2",
            "ci may not push other/m",
        ),
        (
            Method::DELETE,
            "/v2/team/m/manifests/v1",
            "ci may not delete team/m",
        ),
        (Method::GET, "/v2/_catalog", "ci may not catalog"),
    ] {
        let (st, code, detail, _) = call(method.clone(), &s.url(path), Some(&ci)).await;
        assert_eq!((st, code.as_str()), (403, "DENIED"), "{method} {path}");
        assert!(detail.contains(want), "{detail}");
    }
    // A key with one character changed is no key.
    let mut forged = key.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(
        pull_status(&c, &base, "team/m", "v1", Some(&basic("ci", &forged))).await,
        401
    );

    // Through /token: the token's access is within the key's scopes.
    let (st, v) = get_token(
        &base,
        None,
        &[
            "repository:team/m:pull,push,delete",
            "repository:other/m:pull",
        ],
        Some(&ci),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let token = v["token"].as_str().unwrap();
    assert_eq!(jwt_payload(token)["sub"], "ci");
    assert_eq!(jwt_payload(token)["pavilion"]["method"], "api_key");
    assert_eq!(
        access_of(token),
        vec![("team/m".into(), vec!["pull".into(), "push".into()])]
    );
    let (st, v) = post_token(
        &base,
        &[
            ("grant_type", "password"),
            ("username", "ci"),
            ("password", &key),
            ("scope", "repository:team/m:pull"),
            ("access_type", "offline"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let refresh = v["refresh_token"].as_str().unwrap().to_string();

    // Revoked: refused everywhere within the key cache's 5 s.
    let d = s.data.display().to_string();
    pv(&["token", "revoke", "ci", "--data", &d]).ok();
    let refused = eventually(Duration::from_secs(8), || {
        let (c, base, ci) = (c.clone(), base.clone(), ci.clone());
        async move { pull_status(&c, &base, "team/m", "v1", Some(&ci)).await == 401 }
    })
    .await;
    assert!(refused, "a revoked key still works after 8 s");
    let (st, _) = get_token(&base, None, &["repository:team/m:pull"], Some(&ci)).await;
    assert_eq!(st, 401);
    let (st, v) = post_token(
        &base,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (401, Some("invalid_grant")),
        "{v}"
    );

    // Expired: a key made to last 2 s stops working.
    let short = create_key(&s.data, "short", &["repository:team/*:pull"], "2s");
    let short = basic("short", &short);
    let expired = eventually(Duration::from_secs(8), || {
        let (c, base, short) = (c.clone(), base.clone(), short.clone());
        async move { pull_status(&c, &base, "team/m", "v1", Some(&short)).await == 401 }
    })
    .await;
    assert!(expired, "an expired key still works");
}

/// A JWT of issuer `iss` for `aud`, subject `sub`, signed by `key`.
fn workload_token(
    key: &SigningKey,
    iss: &str,
    aud: &str,
    sub: &str,
    groups: &[&str],
    exp: u64,
) -> String {
    let now = now_secs();
    key.sign(&json!({
        "iss": iss, "aud": [aud], "sub": sub, "iat": now.min(exp), "exp": exp, "groups": groups,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_jwts_log_in_with_their_issuers_subject_and_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let ci_key = SigningKey::generate();
    let k8s_key = SigningKey::generate();
    let jwks = write(
        tmp.path(),
        "ci-jwks.json",
        &json!({"keys": [ci_key.public_jwk()]}).to_string(),
    );
    // The second issuer's keys are served over HTTP, as an OIDC issuer does.
    let published = json!({"keys": [k8s_key.public_jwk()]}).to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/keys",
        axum::routing::get(move || {
            let body = published.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let Some(users) = htpasswd_file(tmp.path(), &[("admin", "adm pw")]) else {
        return;
    };
    let cfg = write(
        tmp.path(),
        "pavilion.toml",
        &format!(
            r#"[auth]
htpasswd = "{}"

[[auth.workload]]
name = "ci"
issuer = "https://ci.test"
audiences = ["pavilion"]
groups_claim = "groups"
jwks_file = "{jwks}"

[[auth.workload]]
name = "k8s"
issuer = "https://k8s.test"
audiences = ["registry"]
jwks_url = "http://{jwks_addr}/keys"

[auth.grants]
admin = ["repository:**:*", "registry:catalog:*"]
"ci:repo:team/app" = ["repository:team/*:pull,push"]
"group:builders" = ["repository:shared/*:pull,push"]
"k8s:system:serviceaccount:ml:trainer" = ["repository:models/*:pull"]
"#,
            users.display()
        ),
    );
    let s = Served::start(None, &["--config", &cfg]);
    let base = s.url("");
    let c = http();
    let admin = basic("admin", "adm pw");
    let exp = now_secs() + 600;
    let jwt = workload_token(
        &ci_key,
        "https://ci.test",
        "pavilion",
        "repo:team/app",
        &["builders"],
        exp,
    );
    let ci = basic("ci", &jwt);

    // The JWT as the password: grants by subject <issuer name>:<sub> and
    // by the groups the token carries.
    assert_eq!(push_with(&c, &base, "team/m", "v1", Some(&ci)).await, 201);
    assert_eq!(push_with(&c, &base, "shared/m", "v1", Some(&ci)).await, 201);
    let (st, code, detail, _) =
        call(Method::PUT, &s.url("/v2/other/m/manifests/v1"), Some(&ci)).await;
    assert_eq!((st, code.as_str()), (403, "DENIED"));
    assert!(
        detail.contains("ci:repo:team/app may not push other/m"),
        "{detail}"
    );
    // Through /token, with no refresh token (the JWT is proved each time).
    let (st, v) = post_token(
        &base,
        &[
            ("grant_type", "password"),
            ("username", "whoever"),
            ("password", &jwt),
            (
                "scope",
                "repository:team/m:pull,delete repository:shared/m:push",
            ),
            ("access_type", "offline"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let t = v["access_token"].as_str().unwrap();
    assert_eq!(jwt_payload(t)["sub"], "ci:repo:team/app");
    assert_eq!(jwt_payload(t)["pavilion"]["groups"], json!(["builders"]));
    assert_eq!(
        access_of(t),
        vec![
            ("team/m".into(), vec!["pull".into()]),
            ("shared/m".into(), vec!["push".into()])
        ]
    );
    assert!(v.get("refresh_token").is_none(), "{v}");
    let log = authz_decisions(&base, &admin).await;
    let d = log
        .iter()
        .find(|d| d["subject"] == "ci:repo:team/app push shared/m:v1")
        .expect("the workload's push is logged");
    assert_eq!(d["detail"]["identity"]["method"], "workload");
    assert_eq!(d["detail"]["identity"]["groups"], json!(["builders"]));

    // Refused: another issuer, another audience, another key, expired, a
    // subject that is not a string.
    let other = SigningKey::generate();
    let refused = [
        (
            "untrusted issuer",
            workload_token(
                &ci_key,
                "https://evil.test",
                "pavilion",
                "repo:team/app",
                &[],
                exp,
            ),
        ),
        (
            "wrong audience",
            workload_token(
                &ci_key,
                "https://ci.test",
                "elsewhere",
                "repo:team/app",
                &[],
                exp,
            ),
        ),
        (
            "another key",
            workload_token(
                &other,
                "https://ci.test",
                "pavilion",
                "repo:team/app",
                &[],
                exp,
            ),
        ),
        (
            "the other issuer's key",
            workload_token(
                &k8s_key,
                "https://ci.test",
                "pavilion",
                "repo:team/app",
                &[],
                exp,
            ),
        ),
        (
            "expired",
            workload_token(
                &ci_key,
                "https://ci.test",
                "pavilion",
                "repo:team/app",
                &[],
                now_secs() - 600,
            ),
        ),
        (
            "no subject",
            ci_key
                .sign(&json!({"iss": "https://ci.test", "aud": "pavilion", "sub": 7, "exp": exp})),
        ),
    ];
    // (A user name each: failures for one name are slowed down, 429.)
    for (i, (what, token)) in refused.iter().enumerate() {
        let user = format!("w{i}");
        let (st, code, _, _) = call(
            Method::GET,
            &s.url("/v2/team/m/tags/list"),
            Some(&basic(&user, token)),
        )
        .await;
        assert_eq!((st, code.as_str()), (401, "UNAUTHORIZED"), "{what}");
        let (st, _) = get_token(
            &base,
            None,
            &["repository:team/m:pull"],
            Some(&basic(&user, token)),
        )
        .await;
        assert_eq!(st, 401, "{what} at /token");
    }

    // Keys from the URL: the server fetches them at start.
    let trainer = workload_token(
        &k8s_key,
        "https://k8s.test",
        "registry",
        "system:serviceaccount:ml:trainer",
        &[],
        exp,
    );
    let trainer = basic("trainer", &trainer);
    assert_eq!(
        push_with(&c, &base, "models/m", "v1", Some(&admin)).await,
        201
    );
    let fetched = eventually(Duration::from_secs(10), || {
        let (c, base, t) = (c.clone(), base.clone(), trainer.clone());
        async move { pull_status(&c, &base, "models/m", "v1", Some(&t)).await == 200 }
    })
    .await;
    assert!(fetched, "a token of the jwks_url issuer never worked");
    assert_eq!(
        push_with(&c, &base, "models/m", "v2", Some(&trainer)).await,
        403
    );
    // Its audience is its own: the ci issuer's audience is refused.
    let wrong = workload_token(
        &k8s_key,
        "https://k8s.test",
        "pavilion",
        "system:serviceaccount:ml:trainer",
        &[],
        exp,
    );
    assert_eq!(
        pull_status(&c, &base, "models/m", "v1", Some(&basic("t", &wrong))).await,
        401
    );
}

const TRAINER: &str = "spiffe://example.org/ns/ml/sa/trainer";

const CERT_GRANTS: &str = r#"
[auth.grants]
"spiffe://example.org/ns/ml/sa/trainer" = ["repository:models/*:pull,push"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_the_identity_and_an_untrusted_ca_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = crate::common::pki::pki(tmp.path(), "trainer", Some(TRAINER));
    let cfg = write(
        tmp.path(),
        "pavilion.toml",
        &format!("[auth]\n{CERT_GRANTS}"),
    );
    let s = Served::start(
        None,
        &[
            "--config",
            &cfg,
            "--tls-cert",
            pki.server_crt.to_str().unwrap(),
            "--tls-key",
            pki.server_key.to_str().unwrap(),
            "--tls-client-ca",
            pki.ca.to_str().unwrap(),
        ],
    );
    assert_eq!(s.scheme, "https");
    let https = |identity: Option<&str>| {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .use_rustls_tls()
            .timeout(Duration::from_secs(30))
            .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap());
        if let Some(pem) = identity {
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    };
    let base = s.url("");
    let trainer = https(Some(&(pki.client.0.clone() + &pki.client.1)));
    assert_eq!(
        push_with(&trainer, &base, "models/m", "v1", None).await,
        201
    );
    assert_eq!(
        pull_status(&trainer, &base, "models/m", "v1", None).await,
        200
    );
    let (st, body) = push_with_body(&trainer, &base, "team/m", "v1", None).await;
    assert_eq!(st, 403, "{body}");
    assert!(
        body.contains(&format!("{TRAINER} may not push team/m")),
        "{body}"
    );
    // /token with the certificate: a token for its SPIFFE ID.
    let r = trainer
        .get(s.url("/token"))
        .query(&[
            ("scope", "repository:models/m:pull,push,delete"),
            ("scope", "repository:team/m:pull"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let t = v["token"].as_str().unwrap();
    assert_eq!(jwt_payload(t)["sub"], TRAINER);
    assert_eq!(jwt_payload(t)["pavilion"]["spiffe_id"], TRAINER);
    assert_eq!(
        access_of(t),
        vec![("models/m".into(), vec!["pull".into(), "push".into()])]
    );
    // No certificate: anonymous, asked to log in.
    assert_eq!(
        pull_status(&https(None), &base, "models/m", "v1", None).await,
        401
    );
    // A certificate from another CA, with the same SPIFFE ID: the
    // handshake fails, nothing is served.
    let r = https(Some(&(pki.stranger.0.clone() + &pki.stranger.1)))
        .get(s.url("/v2/models/m/manifests/v1"))
        .send()
        .await;
    assert!(
        r.is_err(),
        "an untrusted CA's certificate got an answer: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_certificate_counts_only_from_a_trusted_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let xfcc = format!("By=spiffe://example.org/ns/mesh/sa/proxy;URI={TRAINER}");
    let c = http();
    let forwarded = |base: String, repo: &'static str| {
        let (c, xfcc) = (c.clone(), xfcc.clone());
        async move {
            c.get(format!("{base}/v2/{repo}/tags/list"))
                .header("x-forwarded-client-cert", xfcc)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for (proxies, believed) in [("[\"127.0.0.1\"]", true), ("[\"10.9.9.9/32\"]", false)] {
        let cfg = write(
            tmp.path(),
            "pavilion.toml",
            &format!("[auth]\ntrusted_proxies = {proxies}\n{CERT_GRANTS}"),
        );
        let s = Served::start(None, &["--config", &cfg]);
        let st = forwarded(s.url(""), "models/m").await;
        if believed {
            // Believed: the trainer may pull models/* (an unknown name).
            assert_eq!(st, 404, "from a trusted proxy");
            assert_eq!(forwarded(s.url(""), "team/m").await, 403);
        } else {
            assert_eq!(
                st, 401,
                "from an untrusted address the header grants nothing"
            );
        }
        // Garbage in the header from a trusted proxy is refused, not ignored.
        let r = c
            .get(s.url("/v2/models/m/tags/list"))
            .header("x-forwarded-client-cert", "URI=\"unterminated")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_htpasswd_file_that_cannot_be_read_lets_nobody_in() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(users) = htpasswd_file(tmp.path(), &[("alice", "a pw")]) else {
        return;
    };
    let good = std::fs::read_to_string(&users).unwrap();
    // At start: missing, a directory, garbled: serve refuses to start.
    let dir = tmp.path().join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let garbled = write(tmp.path(), "garbled", "alice:$2y$05$short\n");
    for bad in [tmp.path().join("missing"), dir, garbled.into()] {
        let log = match Served::try_start(None, &["--htpasswd", bad.to_str().unwrap()]) {
            Ok(_) => panic!("serve started with htpasswd {}", bad.display()),
            Err(log) => log,
        };
        assert!(log.contains("htpasswd"), "{log}");
    }

    // At run time: removed, then garbled, then restored.
    let s = Served::start(None, &["--htpasswd", users.to_str().unwrap()]);
    let base = s.url("");
    let c = http();
    let alice = basic("alice", "a pw");
    assert_eq!(
        push_with(&c, &base, "team/m", "v1", Some(&alice)).await,
        201
    );
    let status = || {
        let (c, base, alice) = (c.clone(), base.clone(), alice.clone());
        async move {
            // A fresh connection and no remembered answer matters not: the
            // file is looked at once a second.
            pull_status(&c, &base, "team/m", "v1", Some(&alice)).await
        }
    };
    std::fs::remove_file(&users).unwrap();
    assert!(eventually(Duration::from_secs(5), || async { status().await == 401 }).await);
    for _ in 0..5 {
        assert_eq!(status().await, 401, "a missing file let alice in");
    }
    std::fs::write(&users, "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (st, code, detail, _) =
        call(Method::GET, &s.url("/v2/team/m/tags/list"), Some(&alice)).await;
    assert_eq!((st, code.as_str()), (401, "UNAUTHORIZED"));
    assert!(detail.contains("cannot be checked"), "{detail}");
    let (st, _) = get_token(&base, None, &["repository:team/m:pull"], Some(&alice)).await;
    assert_eq!(st, 401, "no token from an unreadable file");
    std::fs::write(&users, good).unwrap();
    assert!(eventually(Duration::from_secs(5), || async { status().await == 200 }).await);
    assert!(
        s.log().contains("htpasswd file unusable"),
        "the failure is logged"
    );
}
