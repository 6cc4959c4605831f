//! The Docker registry token flow at a real `pavilion serve` (issue 16,
//! items 2 and 6): the 401 challenge, `/token` by GET and by POST (the
//! password and refresh_token grants), tokens trimmed to what the subject
//! may do, verified with the published JWKS and by every replica, and each
//! forged, expired, misused or malformed credential refused with the
//! specification's `UNAUTHORIZED`, and never written to the log.

use crate::common::auth::*;
use crate::common::*;
use pavilion_auth::jose::{KeySet, SigningKey};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

/// alice may pull team/*; bob may do everything on team/* and read the
/// catalog (and so the decision log).
fn config(dir: &Path, htpasswd: &Path, extra: &str) -> String {
    write(
        dir,
        "pavilion.toml",
        &format!(
            r#"[auth]
htpasswd = "{}"
{extra}

[auth.grants]
alice = ["repository:team/*:pull"]
bob = ["repository:team/*:pull,push,delete", "registry:catalog:*"]
"#,
            htpasswd.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_flow_is_the_specifications_and_tokens_are_trimmed() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(users) = htpasswd_file(tmp.path(), &[("alice", "a pw"), ("bob", "b pw")]) else {
        return;
    };
    let s = Served::start(None, &["--config", &config(tmp.path(), &users, "")]);
    let base = s.url("");
    let alice = basic("alice", "a pw");
    let bob = basic("bob", "b pw");
    let c = http();

    // An API request without credentials: 401 and the Bearer challenge
    // naming the realm, the service and the scope this request needs.
    let (st, code, _, challenge) = call(Method::GET, &s.url("/v2/team/m/tags/list"), None).await;
    assert_eq!((st, code.as_str()), (401, "UNAUTHORIZED"));
    assert_eq!(
        challenge_param(&challenge, "realm").as_deref(),
        Some(s.url("/token").as_str()),
        "{challenge}"
    );
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    let service = challenge_param(&challenge, "service").expect("service");
    assert_eq!(service, s.addr, "the service defaults to the realm's host");
    assert_eq!(
        challenge_param(&challenge, "scope").as_deref(),
        Some("repository:team/m:pull")
    );

    // bob pushes with a token for pull,push.
    let push_token = token_for(&base, &["repository:team/m:pull,push"], &bob).await;
    let st = push_with(
        &c,
        &base,
        "team/m",
        "v1",
        Some(&format!("Bearer {push_token}")),
    )
    .await;
    assert_eq!(st, 201);

    // GET /token with Basic credentials: token, access_token, expires_in,
    // issued_at; the access asked beyond alice's grants is trimmed away.
    let (st, v) = get_token(
        &base,
        Some(&service),
        &[
            "repository:team/m:pull,push,delete",
            "repository:other/x:pull",
        ],
        Some(&alice),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["access_token"], v["token"]);
    assert_eq!(v["expires_in"], 300);
    let issued_at = v["issued_at"].as_str().unwrap();
    assert!(
        issued_at.ends_with('Z') && issued_at.contains('T'),
        "{issued_at}"
    );
    assert!(v.get("refresh_token").is_none(), "no refresh token unasked");
    let claims = jwt_payload(&token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], service.as_str());
    assert_eq!(claims["iss"], "pavilion");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 300);
    assert!(exp > now_secs() && iat <= now_secs() + 1);
    assert_eq!(
        access_of(&token),
        vec![("team/m".into(), vec!["pull".into()])]
    );
    let header = jwt_header(&token);
    assert_eq!(header["alg"], "ES256");

    // The JWKS verifies it, by its kid.
    let jwks = c.get(s.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(jwks.status(), 200);
    let jwks = jwks.text().await.unwrap();
    let keys = KeySet::from_jwks(&jwks).unwrap();
    let verified = keys.verify(&token).expect("the JWKS verifies the token");
    assert_eq!(verified["sub"], "alice");
    let doc: Value = serde_json::from_str(&jwks).unwrap();
    assert!(doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == header["kid"]));
    assert!(!jwks.contains("\"d\""), "no private part published: {jwks}");

    // The token works as Bearer where it grants, and not beyond.
    let bearer = format!("Bearer {token}");
    assert_eq!(
        pull_status(&c, &base, "team/m", "v1", Some(&bearer)).await,
        200
    );
    let (st, _, _, _) = call(Method::GET, &s.url("/v2/"), Some(&bearer)).await;
    assert_eq!(st, 200);
    for (method, path, scope) in [
        (
            Method::PUT,
            "/v2/team/m/manifests/v2",
            "repository:team/m:pull,push",
        ),
        (
            Method::DELETE,
            "/v2/team/m/manifests/v1",
            "repository:team/m:delete",
        ),
        (
            Method::GET,
            "/v2/other/x/tags/list",
            "repository:other/x:pull",
        ),
        (
            Method::GET,
            "/v2/team/n/tags/list",
            "repository:team/n:pull",
        ),
    ] {
        let (st, code, detail, challenge) = call(method.clone(), &s.url(path), Some(&bearer)).await;
        assert_eq!(
            (st, code.as_str()),
            (401, "UNAUTHORIZED"),
            "{method} {path}"
        );
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert_eq!(challenge_param(&challenge, "scope").as_deref(), Some(scope));
        assert!(detail.contains("the token does not grant"), "{detail}");
        if path.contains("other/x") {
            // Asking /token again cannot help there, and the detail says so.
            assert!(detail.contains("alice may not"), "{detail}");
        }
    }
    // The manifest is still there: the refused DELETE changed nothing.
    assert_eq!(
        pull_status(&c, &base, "team/m", "v1", Some(&bob)).await,
        200
    );

    // A service that is not this registry's is refused.
    let (st, v) = get_token(&base, Some("elsewhere"), &[], Some(&alice)).await;
    assert_eq!((st, v["error"].as_str()), (400, Some("invalid_request")));
    // No credentials and nothing anonymous: 401 with a Basic challenge.
    let r = c.get(s.url("/token")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(hdr(&r, "www-authenticate").unwrap().starts_with("Basic "));
    let (st, _) = get_token(&base, None, &[], Some(&basic("alice", "nope"))).await;
    assert_eq!(st, 401);

    // POST: the password grant, offline access gives a refresh token.
    let (st, v) = post_token(
        &base,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "a pw"),
            ("service", &service),
            (
                "scope",
                "repository:team/m:pull,push repository:other/x:pull",
            ),
            ("access_type", "offline"),
            ("client_id", "test"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["scope"], "repository:team/m:pull");
    let access = v["access_token"].as_str().unwrap().to_string();
    let refresh = v["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        access_of(&access),
        vec![("team/m".into(), vec!["pull".into()])]
    );
    let (st, v) = post_token(
        &base,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wrong"),
        ],
    )
    .await;
    assert_eq!(st, 401, "{v}");
    // The refresh_token grant: a new access token, for the same subject.
    let (st, v) = post_token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "repository:team/m:pull,delete"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let renewed = v["access_token"].as_str().unwrap();
    assert_eq!(jwt_payload(renewed)["sub"], "alice");
    assert_eq!(
        access_of(renewed),
        vec![("team/m".into(), vec!["pull".into()])]
    );
    let renewed = format!("Bearer {renewed}");
    assert_eq!(
        pull_status(&c, &base, "team/m", "v1", Some(&renewed)).await,
        200
    );
    // A refresh token is no bearer token, an access token no refresh token.
    let (st, code, _, _) = call(
        Method::GET,
        &s.url("/v2/team/m/tags/list"),
        Some(&format!("Bearer {refresh}")),
    )
    .await;
    assert_eq!((st, code.as_str()), (401, "UNAUTHORIZED"));
    let (st, v) = post_token(
        &base,
        &[("grant_type", "refresh_token"), ("refresh_token", &access)],
    )
    .await;
    assert_eq!((st, v["error"].as_str()), (401, Some("invalid_grant")));
    for form in [
        vec![("grant_type", "client_credentials")],
        vec![("grant_type", "password"), ("username", "alice")],
        vec![("username", "alice"), ("password", "a pw")],
    ] {
        let (st, v) = post_token(&base, &form).await;
        assert_eq!(st, 400, "{form:?}: {v}");
    }
}

/// Writes `[auth]` for a replica set: the same service name (what clients
/// see behind one address) and grants.
fn replica_config(dir: &Path, htpasswd: &Path) -> String {
    config(dir, htpasswd, "token_service = \"registry.test\"")
}

async fn each_accepts_the_others_tokens(a: &str, b: &str) {
    let bob = basic("bob", "b pw");
    let c = http();
    let from_a = token_for(a, &["repository:team/m:pull,push"], &bob).await;
    let from_b = token_for(b, &["repository:team/m:pull"], &bob).await;
    assert_eq!(jwt_payload(&from_a)["aud"], "registry.test");
    assert_eq!(jwt_header(&from_a)["kid"], jwt_header(&from_b)["kid"]);
    let st = push_with(&c, b, "team/m", "v1", Some(&format!("Bearer {from_a}"))).await;
    assert_eq!(st, 201, "B accepts A's token");
    let st = pull_status(&c, a, "team/m", "v1", Some(&format!("Bearer {from_b}"))).await;
    assert_eq!(st, 200, "A accepts B's token");
    // Each publishes the key the other signs with.
    let jwks = c
        .get(format!("{a}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let keys = KeySet::from_jwks(&jwks.text().await.unwrap()).unwrap();
    keys.verify(&from_b).expect("A's JWKS verifies B's token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_database_accept_each_others_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(users) = htpasswd_file(tmp.path(), &[("bob", "b pw")]) else {
        return;
    };
    let cfg = replica_config(tmp.path(), &users);
    // Two processes over one data directory (SQLite), the signing key made
    // by the first and read from the database by the second.
    let data = tmp.path().join("data");
    let a = Served::start(Some(&data), &["--config", &cfg]);
    let b = Served::start(Some(&data), &["--config", &cfg]);
    each_accepts_the_others_tokens(&a.url(""), &b.url("")).await;
    drop((a, b));
    // Over PostgreSQL: the harness's replicas (separate data directories,
    // one blob store, as replicas share one).
    let shared = format!("file://{}", tmp.path().join("blobs").display());
    if let Some(a) =
        Server::start_with(Backend::Postgres, &["--config", &cfg, "--storage", &shared])
    {
        let b = a.replica();
        each_accepts_the_others_tokens(&a.url(""), &b.url("")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_tokens_cover_anonymous_pull_only() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(users) = htpasswd_file(tmp.path(), &[("bob", "b pw")]) else {
        return;
    };
    let extra = "anonymous_pull = [\"team/public\"]";
    let s = Served::start(None, &["--config", &config(tmp.path(), &users, extra)]);
    let base = s.url("");
    let c = http();
    let bob = basic("bob", "b pw");
    assert_eq!(
        push_with(&c, &base, "team/public", "v1", Some(&bob)).await,
        201
    );
    assert_eq!(
        push_with(&c, &base, "team/private", "v1", Some(&bob)).await,
        201
    );

    let (st, v) = get_token(
        &base,
        None,
        &[
            "repository:team/public:pull,push",
            "repository:team/private:pull",
        ],
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let token = v["token"].as_str().unwrap();
    assert_eq!(jwt_payload(token)["sub"], "anonymous");
    assert_eq!(
        access_of(token),
        vec![("team/public".into(), vec!["pull".into()])]
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        pull_status(&c, &base, "team/public", "v1", Some(&bearer)).await,
        200
    );
    assert_eq!(
        pull_status(&c, &base, "team/private", "v1", Some(&bearer)).await,
        401
    );
    assert_eq!(
        push_with(&c, &base, "team/public", "v2", Some(&bearer)).await,
        401
    );
    // Without any header at all, the same.
    assert_eq!(pull_status(&c, &base, "team/public", "v1", None).await, 200);
    assert_eq!(
        pull_status(&c, &base, "team/private", "v1", None).await,
        401
    );
}

/// A server trusting `key` (`[auth] token_key`), service registry.test.
fn keyed_server(tmp: &Path, users: &Path, key: &SigningKey) -> Served {
    let pem = write(tmp, "token.pem", &key.to_pem());
    let extra = format!("token_key = \"{pem}\"\ntoken_service = \"registry.test\"");
    Served::start(None, &["--config", &config(tmp, users, &extra)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_early_and_misused_tokens_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(users) = htpasswd_file(tmp.path(), &[("bob", "b pw")]) else {
        return;
    };
    let key = SigningKey::generate();
    let s = keyed_server(tmp.path(), &users, &key);
    let base = s.url("");
    let c = http();
    assert_eq!(
        push_with(&c, &base, "team/a", "v1", Some(&basic("bob", "b pw"))).await,
        201
    );
    assert_eq!(
        push_with(&c, &base, "team/b", "v1", Some(&basic("bob", "b pw"))).await,
        201
    );
    let now = now_secs();
    let pull_a = json!([{"type": "repository", "name": "team/a", "actions": ["pull"]}]);
    let claims = |aud: &str, iat: u64, nbf: u64, exp: u64| {
        token_claims(aud, "bob", pull_a.clone(), iat, nbf, exp)
    };
    // Control: the configured key's own token, made here, is accepted.
    let good = key.sign(&claims("registry.test", now, now, now + 300));
    let good_bearer = format!("Bearer {good}");
    assert_eq!(
        pull_status(&c, &base, "team/a", "v1", Some(&good_bearer)).await,
        200
    );
    // The server's own tokens are signed by the configured key.
    let issued = token_for(&base, &["repository:team/a:pull"], &basic("bob", "b pw")).await;
    assert_eq!(jwt_header(&issued)["kid"], key.kid().as_str());

    let other = SigningKey::generate();
    let parts: Vec<&str> = good.split('.').collect();
    let widened = b64url(
        token_claims(
            "registry.test",
            "bob",
            json!([{"type": "repository", "name": "team/b", "actions": ["pull", "push"]}]),
            now,
            now,
            now + 300,
        )
        .to_string()
        .as_bytes(),
    );
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let hs_header =
        b64url(format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#, key.kid()).as_bytes());
    let mut wrong_iss = claims("registry.test", now, now, now + 300);
    wrong_iss["iss"] = json!("someone-else");
    let mut refresh_like = claims("registry.test", now, now, now + 300);
    refresh_like["pavilion"]["use"] = json!("refresh");
    let refused: Vec<(&str, String)> = vec![
        (
            "signed by another key",
            other.sign(&claims("registry.test", now, now, now + 300)),
        ),
        ("alg none", format!("{none_header}.{}.", parts[1])),
        (
            "alg none with a signature",
            format!("{none_header}.{}.{}", parts[1], parts[2]),
        ),
        (
            "HS256 naming the server's kid",
            format!("{hs_header}.{}.{}", parts[1], parts[2]),
        ),
        (
            "expired",
            key.sign(&claims("registry.test", now - 900, now - 900, now - 300)),
        ),
        (
            "not yet valid",
            key.sign(&claims("registry.test", now, now + 600, now + 900)),
        ),
        (
            "issued in the future",
            key.sign(&claims("registry.test", now + 600, now, now + 900)),
        ),
        (
            "for another service",
            key.sign(&claims("elsewhere", now, now, now + 300)),
        ),
        ("from another issuer", key.sign(&wrong_iss)),
        ("a refresh token", key.sign(&refresh_like)),
        (
            "payload swapped",
            format!("{}.{widened}.{}", parts[0], parts[2]),
        ),
        ("no signature", format!("{}.{}.", parts[0], parts[1])),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
    ];
    for (what, token) in &refused {
        let (st, code, detail, challenge) = call(
            Method::GET,
            &s.url("/v2/team/a/tags/list"),
            Some(&format!("Bearer {token}")),
        )
        .await;
        assert_eq!(
            (st, code.as_str()),
            (401, "UNAUTHORIZED"),
            "{what}: {detail}"
        );
        assert!(
            challenge.starts_with("Bearer realm="),
            "{what}: {challenge}"
        );
        assert!(
            !detail.contains(token.as_str()),
            "{what}: the detail repeats the token"
        );
    }
    // A token for repository A on B: the scope is missing, whatever the
    // subject's grants would allow.
    let (st, code, _, challenge) = call(
        Method::GET,
        &s.url("/v2/team/b/tags/list"),
        Some(&good_bearer),
    )
    .await;
    assert_eq!((st, code.as_str()), (401, "UNAUTHORIZED"));
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    let st = push_with(&c, &base, "team/a", "v2", Some(&good_bearer)).await;
    assert_eq!(st, 401, "a pull token pushes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorization_headers_are_refused_never_anonymous() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(users) = htpasswd_file(tmp.path(), &[("bob", "b pw")]) else {
        return;
    };
    // team/* is open to anonymous pulls: a bad header must not fall back
    // to anonymous access.
    let extra = "anonymous_pull = [\"team/*\"]";
    let s = Served::start(None, &["--config", &config(tmp.path(), &users, extra)]);
    let base = s.url("");
    let c = http();
    assert_eq!(
        push_with(&c, &base, "team/m", "v1", Some(&basic("bob", "b pw"))).await,
        201
    );
    assert_eq!(pull_status(&c, &base, "team/m", "v1", None).await, 200);
    let headers: Vec<String> = vec![
        "Bearer".into(),
        "Bearer ".into(),
        "Bearer not-a-jwt".into(),
        "Bearer a.b.c".into(),
        "Bearer eyJ.eyJ.sig extra".into(),
        format!("Bearer {}", "A".repeat(20_000)),
        "Basic".into(),
        "Basic !!!".into(),
        format!("Basic {}", base64(b"no colon here")),
        format!("Basic {}", base64(b":")),
        format!("Basic {}", base64(b"bob:")),
        format!("Basic {}=", base64(b"bob:b pw")),
        "Digest username=\"bob\", realm=\"pavilion\"".into(),
        "Token abc".into(),
        "bob:b pw".into(),
        String::new(),
        format!("Basic {}", "A".repeat(20_000)),
    ];
    for h in &headers {
        let r = c
            .get(s.url("/v2/team/m/manifests/v1"))
            .header("authorization", h)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{:.40}", h);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED", "{h:.40}");
    }
    // Bytes that are not ASCII.
    let bad = reqwest::header::HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap();
    let r = c
        .get(s.url("/v2/team/m/manifests/v1"))
        .header("authorization", bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Two Authorization headers, in either order: neither is believed (a
    // proxy in front may have checked the other one).
    for (first, second) in [
        (basic("bob", "b pw"), "Bearer x.y.z".to_string()),
        ("Bearer x.y.z".to_string(), basic("bob", "b pw")),
        (basic("bob", "b pw"), basic("bob", "b pw")),
    ] {
        let r = c
            .get(s.url("/v2/team/m/manifests/v1"))
            .header("authorization", &first)
            .header("authorization", &second)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{first:.10} then {second:.10}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_key_or_token_reaches_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let password = "Pa55-unique-7f3a";
    let wrong = "Wr0ng-unique-9c1d";
    let Some(users) = htpasswd_file(tmp.path(), &[("bob", password)]) else {
        return;
    };
    let s = Served::start(None, &["--config", &config(tmp.path(), &users, "")]);
    let base = s.url("");
    let c = http();
    let key = create_key(&s.data, "ci", &["repository:team/*:pull,push"], "1d");
    let bob = basic("bob", password);
    assert_eq!(push_with(&c, &base, "team/m", "v1", Some(&bob)).await, 201);
    assert_eq!(
        push_with(&c, &base, "team/k", "v1", Some(&basic("ci", &key))).await,
        201
    );
    assert_eq!(
        push_with(&c, &base, "other/k", "v1", Some(&basic("ci", &key))).await,
        403
    );
    let (_, v) = post_token(
        &base,
        &[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", password),
            ("scope", "repository:team/m:pull"),
            ("access_type", "offline"),
        ],
    )
    .await;
    let token = v["access_token"].as_str().unwrap().to_string();
    let refresh = v["refresh_token"].as_str().unwrap().to_string();
    let (_, v) = post_token(
        &base,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    let renewed = v["access_token"].as_str().unwrap().to_string();
    let key_token = token_for(&base, &["repository:team/k:pull"], &basic("ci", &key)).await;
    for auth in [
        format!("Bearer {token}"),
        format!("Bearer {key_token}"),
        format!("Bearer {renewed}x"),
        format!("Bearer {refresh}"),
        basic("bob", wrong),
        basic("ci", &format!("{}AAAA", &key[..key.len() - 4])),
    ] {
        let _ = pull_status(&c, &base, "team/m", "v1", Some(&auth)).await;
        let _ = pull_status(&c, &base, "team/k", "v1", Some(&auth)).await;
    }
    let _ = get_token(
        &base,
        None,
        &["repository:team/m:pull"],
        Some(&basic("bob", wrong)),
    )
    .await;
    let log = s.log();
    assert!(
        log.contains("DEBUG"),
        "the log was at debug level: {log:.2000}"
    );
    let secret = &key[17..];
    let signature = |t: &str| t.rsplit('.').next().unwrap().to_string();
    for (what, needle) in [
        ("the password", password.to_string()),
        ("a wrong password", wrong.to_string()),
        ("the Basic header", bob[6..].to_string()),
        ("the API key's secret", secret.to_string()),
        ("the API key's secret, truncated", secret[..20].to_string()),
        ("an access token", signature(&token)),
        (
            "an access token's payload",
            token.split('.').nth(1).unwrap().to_string(),
        ),
        ("a key's token", signature(&key_token)),
        ("a refresh token", signature(&refresh)),
        ("a renewed token", signature(&renewed)),
    ] {
        assert!(!log.contains(&needle), "{what} is in the server's log");
    }
}
