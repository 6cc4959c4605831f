//! Workload tokens signed for real (ES256 with our signing key, RS256 with
//! the rsa crate) against issuers configured with key files and URLs.

use super::*;
use crate::jose::testing::{rsa_jwk, rsa_key, sign_rsa};
use crate::jose::SigningKey;
use serde_json::json;
use std::path::Path;
use std::time::UNIX_EPOCH;

const NOW: u64 = 1_700_000_000;
const K8S: &str = "https://kubernetes.default.svc";
const CI: &str = "https://token.actions.githubusercontent.com";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn write_jwks(path: &Path, keys: Vec<Value>) {
    // A new inode each time, as an atomic writer would.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json!({"keys": keys}).to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn k8s_config(jwks: &Path) -> WorkloadIssuerConfig {
    WorkloadIssuerConfig {
        name: "k8s".into(),
        issuer: K8S.into(),
        audiences: vec!["pavilion".into()],
        groups_claim: Some("groups".into()),
        jwks_file: Some(jwks.to_path_buf()),
        ..Default::default()
    }
}

fn ci_config() -> WorkloadIssuerConfig {
    WorkloadIssuerConfig {
        name: "ci".into(),
        issuer: CI.into(),
        audiences: vec!["https://registry.example".into()],
        subject_claim: "repository".into(),
        jwks_url: Some(format!("{CI}/.well-known/jwks")),
        ..Default::default()
    }
}

/// Two issuers: k8s (ES256 key in a file) and ci (RS256 key by URL).
struct Fixture {
    _dir: tempfile::TempDir,
    jwks: PathBuf,
    k8s_key: SigningKey,
    issuers: WorkloadIssuers,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("k8s-jwks.json");
    let k8s_key = SigningKey::generate();
    write_jwks(&jwks, vec![k8s_key.public_jwk()]);
    let issuers =
        WorkloadIssuers::with_recheck(vec![k8s_config(&jwks), ci_config()], Duration::ZERO)
            .unwrap();
    let ci_keys = json!({"keys": [rsa_jwk(rsa_key(), "ci-1", Some("RS256"))]});
    issuers
        .set_keys("ci", KeySet::from_jwks(&ci_keys.to_string()).unwrap())
        .unwrap();
    Fixture {
        _dir: dir,
        jwks,
        k8s_key,
        issuers,
    }
}

/// Claims of a Kubernetes service-account token, `changes` merged in (a
/// null removes the claim).
fn k8s_claims(changes: Value) -> Value {
    let mut claims = json!({
        "iss": K8S,
        "aud": ["pavilion"],
        "sub": "system:serviceaccount:build:pusher",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:build"],
        "exp": NOW + 3600,
        "iat": NOW - 5,
        "nbf": NOW - 5,
    });
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn ci_token(changes: Value) -> String {
    let mut claims = json!({
        "iss": CI,
        "aud": "https://registry.example",
        "sub": "repo:acme/app:ref:refs/heads/main",
        "repository": "acme/app",
        "exp": NOW + 300,
        "iat": NOW,
    });
    for (k, v) in changes.as_object().unwrap() {
        claims[k] = v.clone();
    }
    sign_rsa(rsa_key(), &json!({"alg": "RS256", "kid": "ci-1"}), &claims)
}

#[test]
fn a_kubernetes_token_becomes_an_identity() {
    let f = fixture();
    let token = f.k8s_key.sign(&k8s_claims(json!({})));
    assert!(WorkloadIssuers::looks_like_jwt(&token));
    let id = f.issuers.verify_at(&token, at(NOW)).unwrap();
    assert_eq!(id.subject, "k8s:system:serviceaccount:build:pusher");
    assert_eq!(
        id.groups,
        vec!["system:serviceaccounts", "system:serviceaccounts:build"]
    );
    assert_eq!(id.method, Method::Workload);
    assert_eq!(id.spiffe_id, None);
    // Without a groups claim in the token: no groups.
    let token = f.k8s_key.sign(&k8s_claims(json!({"groups": null})));
    assert!(f
        .issuers
        .verify_at(&token, at(NOW))
        .unwrap()
        .groups
        .is_empty());
}

#[test]
fn a_ci_token_becomes_an_identity_by_its_subject_claim() {
    let f = fixture();
    let id = f.issuers.verify_at(&ci_token(json!({})), at(NOW)).unwrap();
    assert_eq!(id.subject, "ci:acme/app");
    assert!(id.groups.is_empty());
}

#[test]
fn the_real_clock_is_used_by_verify() {
    let f = fixture();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let live = k8s_claims(json!({"exp": now + 600, "iat": now, "nbf": now}));
    assert!(f.issuers.verify(&f.k8s_key.sign(&live)).is_ok());
    // NOW is long past for the real clock.
    let old = f.k8s_key.sign(&k8s_claims(json!({})));
    assert_eq!(f.issuers.verify(&old), Err(AuthError::Invalid));
}

#[test]
fn claims_that_do_not_fit_the_issuer_are_refused() {
    let f = fixture();
    let cases = [
        ("wrong audience", json!({"aud": ["other"]})),
        ("no audience", json!({"aud": null})),
        ("expired", json!({"exp": NOW - 120})),
        ("no expiry", json!({"exp": null})),
        ("not yet valid", json!({"nbf": NOW + 600})),
        ("issued in the future", json!({"iat": NOW + 600})),
        ("untrusted issuer", json!({"iss": "https://evil.example"})),
        (
            "issuer differs by a slash",
            json!({"iss": format!("{K8S}/")}),
        ),
        ("issuer not a string", json!({"iss": 1})),
        ("no issuer", json!({"iss": null})),
    ];
    for (what, changes) in cases {
        let token = f.k8s_key.sign(&k8s_claims(changes));
        assert_eq!(
            f.issuers.verify_at(&token, at(NOW)),
            Err(AuthError::Invalid),
            "{what}"
        );
    }
    // Another issuer's audience is not this one's.
    let token = f
        .k8s_key
        .sign(&k8s_claims(json!({"aud": "https://registry.example"})));
    assert_eq!(
        f.issuers.verify_at(&token, at(NOW)),
        Err(AuthError::Invalid)
    );
    assert_eq!(
        f.issuers
            .verify_at(&ci_token(json!({"aud": "pavilion"})), at(NOW)),
        Err(AuthError::Invalid)
    );
}

#[test]
fn a_key_outside_the_issuers_set_is_refused() {
    let f = fixture();
    let stranger = SigningKey::generate();
    let token = stranger.sign(&k8s_claims(json!({})));
    assert_eq!(
        f.issuers.verify_at(&token, at(NOW)),
        Err(AuthError::Invalid)
    );
}

#[test]
fn one_issuers_key_does_not_vouch_for_another() {
    let f = fixture();
    // Issuer A's claims signed with issuer B's key (the ci RSA key, whose
    // kid the token names).
    let token = sign_rsa(
        rsa_key(),
        &json!({"alg": "RS256", "kid": "ci-1"}),
        &k8s_claims(json!({})),
    );
    assert_eq!(
        f.issuers.verify_at(&token, at(NOW)),
        Err(AuthError::Invalid)
    );
    // And the other way round: a ci token signed with the k8s key.
    let mut claims = k8s_claims(json!({"iss": CI, "aud": "https://registry.example"}));
    claims["repository"] = json!("acme/app");
    let token = f.k8s_key.sign(&claims);
    assert_eq!(
        f.issuers.verify_at(&token, at(NOW)),
        Err(AuthError::Invalid)
    );
}

#[test]
fn a_replaced_key_file_takes_effect_without_restart() {
    let f = fixture();
    let old = f.k8s_key.sign(&k8s_claims(json!({})));
    assert!(f.issuers.verify_at(&old, at(NOW)).is_ok());
    let rotated = SigningKey::generate();
    write_jwks(&f.jwks, vec![rotated.public_jwk()]);
    assert_eq!(f.issuers.verify_at(&old, at(NOW)), Err(AuthError::Invalid));
    let new = rotated.sign(&k8s_claims(json!({})));
    assert!(f.issuers.verify_at(&new, at(NOW)).is_ok());
}

#[test]
fn an_unreadable_key_file_makes_its_issuer_unavailable() {
    let f = fixture();
    let token = f.k8s_key.sign(&k8s_claims(json!({})));
    std::fs::write(&f.jwks, "{ broken").unwrap();
    assert!(matches!(
        f.issuers.verify_at(&token, at(NOW)),
        Err(AuthError::Unavailable(_))
    ));
    std::fs::remove_file(&f.jwks).unwrap();
    assert!(matches!(
        f.issuers.verify_at(&token, at(NOW)),
        Err(AuthError::Unavailable(_))
    ));
    // The other issuer is not affected.
    assert!(f.issuers.verify_at(&ci_token(json!({})), at(NOW)).is_ok());
}

#[test]
fn url_keys_not_fetched_yet_make_the_issuer_unavailable() {
    let issuers = WorkloadIssuers::new(vec![ci_config()]).unwrap();
    assert_eq!(
        issuers.urls(),
        vec![("ci".to_string(), format!("{CI}/.well-known/jwks"))]
    );
    assert_eq!(
        issuers.verify_at(&ci_token(json!({})), at(NOW)),
        Err(AuthError::Unavailable(
            "keys of issuer ci not fetched yet".into()
        ))
    );
    // set_keys names an issuer that takes URL keys.
    assert!(issuers.set_keys("nope", KeySet::new()).is_err());
    let f = fixture();
    assert!(f.issuers.set_keys("k8s", KeySet::new()).is_err());
    assert_eq!(f.issuers.urls().len(), 1);
}

#[test]
fn subjects_must_be_usable_names() {
    let f = fixture();
    let cases = [
        ("missing", json!({"sub": null})),
        ("not a string", json!({"sub": 42})),
        ("empty", json!({"sub": ""})),
        ("too long", json!({"sub": "s".repeat(257)})),
        ("control character", json!({"sub": "a\nb"})),
    ];
    for (what, changes) in cases {
        let token = f.k8s_key.sign(&k8s_claims(changes));
        assert_eq!(
            f.issuers.verify_at(&token, at(NOW)),
            Err(AuthError::Invalid),
            "{what}"
        );
    }
    let token = f.k8s_key.sign(&k8s_claims(json!({"sub": "s".repeat(256)})));
    assert!(f.issuers.verify_at(&token, at(NOW)).is_ok());
}

#[test]
fn groups_must_be_a_bounded_array_of_names() {
    let f = fixture();
    let many: Vec<String> = (0..65).map(|i| format!("g{i}")).collect();
    let cases = [
        ("a string", json!({"groups": "admins"})),
        ("an object", json!({"groups": {"admins": true}})),
        ("a number inside", json!({"groups": ["ok", 1]})),
        ("an empty name", json!({"groups": [""]})),
        ("a long name", json!({"groups": ["g".repeat(257)]})),
        ("too many", json!({"groups": many})),
    ];
    for (what, changes) in cases {
        let token = f.k8s_key.sign(&k8s_claims(changes));
        assert_eq!(
            f.issuers.verify_at(&token, at(NOW)),
            Err(AuthError::Invalid),
            "{what}"
        );
    }
}

#[test]
fn garbage_is_refused() {
    let f = fixture();
    let token = f.k8s_key.sign(&k8s_claims(json!({})));
    let long = format!("{token}{}", "A".repeat(20 << 10));
    for bad in [
        "",
        "password",
        "a.b.c",
        "eyJ.eyJ.eyJ",
        &token[..token.len() / 2],
        &long,
    ] {
        assert_eq!(
            f.issuers.verify_at(bad, at(NOW)),
            Err(AuthError::Invalid),
            "{bad:.30}"
        );
    }
}

#[test]
fn looks_like_jwt_tells_tokens_from_passwords() {
    let token = SigningKey::generate().sign(&json!({"sub": "x"}));
    assert!(WorkloadIssuers::looks_like_jwt(&token));
    for not in [
        "hunter2",
        "eyJ",
        "eyJhbGciOi.x",
        "eyJa.b.c.d",
        "eyJa..c",
        "eyJa.b.",
        "abc.def.ghi",
        "eyJa.b+c.d",
        "eyJa.b.c=",
    ] {
        assert!(!WorkloadIssuers::looks_like_jwt(not), "{not}");
    }
    let long = format!("eyJ{}.a.b", "A".repeat(20 << 10));
    assert!(!WorkloadIssuers::looks_like_jwt(&long));
}

#[test]
fn configurations_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    write_jwks(&jwks, vec![SigningKey::generate().public_jwk()]);
    let good = k8s_config(&jwks);
    assert!(WorkloadIssuers::new(vec![good.clone(), ci_config()]).is_ok());
    let bad = [
        (
            "empty name",
            WorkloadIssuerConfig {
                name: String::new(),
                ..good.clone()
            },
        ),
        (
            "name with ':'",
            WorkloadIssuerConfig {
                name: "k8s:prod".into(),
                ..good.clone()
            },
        ),
        (
            "empty issuer",
            WorkloadIssuerConfig {
                issuer: String::new(),
                ..good.clone()
            },
        ),
        (
            "no audience",
            WorkloadIssuerConfig {
                audiences: vec![],
                ..good.clone()
            },
        ),
        (
            "empty audience",
            WorkloadIssuerConfig {
                audiences: vec![String::new()],
                ..good.clone()
            },
        ),
        (
            "empty subject claim",
            WorkloadIssuerConfig {
                subject_claim: String::new(),
                ..good.clone()
            },
        ),
        (
            "both key sources",
            WorkloadIssuerConfig {
                jwks_url: Some("https://x".into()),
                ..good.clone()
            },
        ),
        (
            "no key source",
            WorkloadIssuerConfig {
                jwks_file: None,
                ..good.clone()
            },
        ),
    ];
    for (what, config) in bad {
        assert!(WorkloadIssuers::new(vec![config]).is_err(), "{what}");
    }
    let twice = WorkloadIssuerConfig {
        issuer: "https://other".into(),
        ..good.clone()
    };
    let err = WorkloadIssuers::new(vec![good.clone(), twice]).unwrap_err();
    assert!(err.contains("twice"), "{err}");
    let same_iss = WorkloadIssuerConfig {
        name: "k8s2".into(),
        ..good.clone()
    };
    assert!(WorkloadIssuers::new(vec![good.clone(), same_iss]).is_err());
    // A key file that cannot be used is named in the error.
    let missing = WorkloadIssuerConfig {
        jwks_file: Some(dir.path().join("nope.json")),
        ..good.clone()
    };
    let err = WorkloadIssuers::new(vec![missing]).unwrap_err();
    assert!(err.contains("nope.json"), "{err}");
    std::fs::write(&jwks, "{\"keys\": 3}").unwrap();
    let err = WorkloadIssuers::new(vec![good]).unwrap_err();
    assert!(err.contains("jwks.json"), "{err}");
}
