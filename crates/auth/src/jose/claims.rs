//! The registered claims (RFC 7519 §4.1) a verifier checks once a token's
//! signature holds: lifetime, issuer, audience.

use super::JoseError;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a verifier expects of a token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The `iss` the token must carry, compared exactly.
    pub issuer: String,
    /// The token's `aud` must name at least one of these (none: nothing
    /// is accepted).
    pub audiences: Vec<String>,
    /// Clock difference tolerated between issuer and verifier.
    pub leeway: Duration,
}

/// Checks `exp` (required), `nbf`, `iat`, `iss` and `aud` of verified
/// `claims` at time `now`.
pub fn check_claims(
    claims: &Map<String, Value>,
    expect: &Expect,
    now: SystemTime,
) -> Result<(), JoseError> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| JoseError::Claims("the clock is before 1970"))?
        .as_secs_f64();
    let leeway = expect.leeway.as_secs_f64();
    let exp = time(claims, "exp", "\"exp\" is not a number")?
        .ok_or(JoseError::Claims("no expiry (\"exp\")"))?;
    if now >= exp + leeway {
        return Err(JoseError::Claims("expired"));
    }
    if let Some(nbf) = time(claims, "nbf", "\"nbf\" is not a number")? {
        if nbf > now + leeway {
            return Err(JoseError::Claims("not valid yet (\"nbf\")"));
        }
    }
    if let Some(iat) = time(claims, "iat", "\"iat\" is not a number")? {
        if iat > now + leeway {
            return Err(JoseError::Claims("issued in the future (\"iat\")"));
        }
    }
    match claims.get("iss") {
        Some(Value::String(iss)) if *iss == expect.issuer => {}
        Some(Value::String(_)) => return Err(JoseError::Claims("issuer not expected")),
        _ => return Err(JoseError::Claims("no string issuer (\"iss\")")),
    }
    let wanted = |a: &Value| {
        a.as_str()
            .is_some_and(|a| expect.audiences.iter().any(|w| w == a))
    };
    let fits = match claims.get("aud") {
        Some(aud @ Value::String(_)) => wanted(aud),
        Some(Value::Array(auds)) => {
            if !auds.iter().all(Value::is_string) {
                return Err(JoseError::Claims(
                    "\"aud\" holds a value that is not a string",
                ));
            }
            auds.iter().any(wanted)
        }
        Some(_) => {
            return Err(JoseError::Claims(
                "\"aud\" is neither a string nor an array",
            ))
        }
        None => return Err(JoseError::Claims("no audience (\"aud\")")),
    };
    if !fits {
        return Err(JoseError::Claims("audience not expected"));
    }
    Ok(())
}

/// A NumericDate claim (seconds since 1970, possibly fractional).
fn time(
    claims: &Map<String, Value>,
    name: &str,
    wrong_type: &'static str,
) -> Result<Option<f64>, JoseError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(t) if t.is_finite() => Ok(Some(t)),
            _ => Err(JoseError::Claims(wrong_type)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn expect() -> Expect {
        Expect {
            issuer: "https://issuer.example".into(),
            audiences: vec!["pavilion".into(), "registry.example".into()],
            leeway: Duration::from_secs(60),
        }
    }

    /// Good claims with `changes` merged in (a null removes the claim).
    fn claims(changes: Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "https://issuer.example",
            "aud": "pavilion",
            "sub": "someone",
            "exp": NOW + 600,
            "nbf": NOW - 10,
            "iat": NOW - 10,
        });
        let obj = base.as_object_mut().unwrap();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
        obj.clone()
    }

    fn check(changes: Value) -> Result<(), JoseError> {
        check_claims(&claims(changes), &expect(), at(NOW))
    }

    #[test]
    fn good_claims_pass() {
        assert_eq!(check(json!({})), Ok(()));
        assert_eq!(check(json!({"nbf": null, "iat": null})), Ok(()));
        assert_eq!(check(json!({"aud": ["other", "registry.example"]})), Ok(()));
        assert_eq!(check(json!({"exp": (NOW + 600) as f64 + 0.5})), Ok(()));
    }

    #[test]
    fn expiry_is_required_and_checked_with_leeway() {
        assert_eq!(
            check(json!({"exp": null})),
            Err(JoseError::Claims("no expiry (\"exp\")"))
        );
        assert!(check(json!({"exp": "soon"})).is_err());
        assert!(check(json!({"exp": NOW - 61})).is_err());
        assert!(check(json!({"exp": NOW - 60})).is_err());
        // Within the leeway a just-expired token still passes.
        assert_eq!(check(json!({"exp": NOW - 59})), Ok(()));
    }

    #[test]
    fn not_before_in_the_future_is_refused() {
        assert!(check(json!({"nbf": NOW + 61})).is_err());
        assert!(check(json!({"nbf": "later"})).is_err());
        assert_eq!(check(json!({"nbf": NOW + 60})), Ok(()));
    }

    #[test]
    fn issued_in_the_future_is_refused() {
        assert!(check(json!({"iat": NOW + 61})).is_err());
        assert!(check(json!({"iat": [1]})).is_err());
        assert_eq!(check(json!({"iat": NOW + 30})), Ok(()));
    }

    #[test]
    fn issuer_must_be_equal() {
        assert!(check(json!({"iss": "https://issuer.example/"})).is_err());
        assert!(check(json!({"iss": "https://ISSUER.example"})).is_err());
        assert!(check(json!({"iss": null})).is_err());
        assert!(check(json!({"iss": 7})).is_err());
    }

    #[test]
    fn audience_must_name_an_expected_one() {
        assert!(check(json!({"aud": "other"})).is_err());
        assert!(check(json!({"aud": ["other", "third"]})).is_err());
        assert!(check(json!({"aud": []})).is_err());
        assert!(check(json!({"aud": null})).is_err());
        assert!(check(json!({"aud": 5})).is_err());
        assert!(check(json!({"aud": ["pavilion", 5]})).is_err());
        let none = Expect {
            audiences: vec![],
            ..expect()
        };
        assert!(check_claims(&claims(json!({})), &none, at(NOW)).is_err());
    }

    #[test]
    fn a_clock_before_1970_is_refused() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert!(check_claims(&claims(json!({})), &expect(), before).is_err());
    }
}
