//! Tests of signing keys, key sets and token verification.

use super::testing::{forge, hmac_sha256, other_rsa_key, rsa_jwk, rsa_key, sign_rsa};
use super::*;
use serde_json::{json, Value};

fn claims() -> Value {
    json!({"iss": "https://issuer.example", "sub": "alice", "aud": "pavilion", "exp": 2_000_000_000u64})
}

fn es256_set(key: &SigningKey) -> KeySet {
    let mut set = KeySet::new();
    set.insert_signing(key);
    set
}

fn rsa_set(kid: &str, alg: Option<&str>) -> KeySet {
    let doc = json!({"keys": [rsa_jwk(rsa_key(), kid, alg)]});
    KeySet::from_jwks(&doc.to_string()).unwrap()
}

/// The header, payload and signature parts of a token.
fn parts(token: &str) -> Vec<String> {
    token.split('.').map(String::from).collect()
}

// --- SigningKey --------------------------------------------------------

#[test]
fn es256_round_trip() {
    let key = SigningKey::generate();
    let token = key.sign(&claims());
    let got = es256_set(&key).verify(&token).unwrap();
    assert_eq!(Value::Object(got), claims());
    let header: Value = serde_json::from_slice(&unb64(&parts(&token)[0]).unwrap()).unwrap();
    assert_eq!(
        header,
        json!({"alg": "ES256", "typ": "JWT", "kid": key.kid()})
    );
    // JWS signatures are r || s, not DER.
    assert_eq!(unb64(&parts(&token)[2]).unwrap().len(), 64);
}

#[test]
fn pem_round_trip_keeps_the_key() {
    let key = SigningKey::generate();
    let pem = key.to_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let again = SigningKey::from_pem(&pem).unwrap();
    assert_eq!(again.kid(), key.kid());
    assert!(es256_set(&key).verify(&again.sign(&claims())).is_ok());
}

#[test]
fn sec1_pem_is_read() {
    use p256::pkcs8::LineEnding;
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let pem = secret.to_sec1_pem(LineEnding::LF).unwrap();
    assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let key = SigningKey::from_pem(&pem).unwrap();
    let expected = SigningKey::with(secret.into());
    assert_eq!(key.kid(), expected.kid());
}

#[test]
fn bad_private_pems_are_refused() {
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    let p384 = p384::SecretKey::random(&mut rand_core::OsRng)
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
    let rsa = {
        use rsa::pkcs8::EncodePrivateKey as _;
        rsa_key().to_pkcs8_pem(LineEnding::LF).unwrap()
    };
    let public = {
        use p256::pkcs8::EncodePublicKey as _;
        p256::SecretKey::random(&mut rand_core::OsRng)
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    let huge = "A".repeat(70 << 10);
    for pem in ["", "not a pem", &p384, &rsa, &public, &huge] {
        assert!(
            matches!(SigningKey::from_pem(pem), Err(JoseError::Key(_))),
            "{pem:.40}"
        );
    }
}

#[test]
fn debug_does_not_show_the_secret() {
    let key = SigningKey::generate();
    let shown = format!("{key:?}");
    assert!(shown.contains(&key.kid()));
    assert!(
        !shown.contains("secret") && !shown.contains("scalar"),
        "{shown}"
    );
}

#[test]
fn kid_is_the_rfc7638_thumbprint() {
    // RFC 7638 §3.1: this key's thumbprint.
    let jwk = json!({
        "kty": "RSA",
        "e": "AQAB",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    });
    let set = KeySet::from_jwks(&json!({"keys": [jwk]}).to_string()).unwrap();
    let doc = set.to_jwks();
    assert_eq!(
        doc["keys"][0]["kid"],
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn public_jwk_has_the_members_a_verifier_needs() {
    let key = SigningKey::generate();
    let jwk = key.public_jwk();
    for (k, v) in [
        ("kty", "EC"),
        ("crv", "P-256"),
        ("alg", "ES256"),
        ("use", "sig"),
    ] {
        assert_eq!(jwk[k], v);
    }
    assert_eq!(jwk["kid"], key.kid());
    assert_eq!(unb64(jwk["x"].as_str().unwrap()).unwrap().len(), 32);
    assert_eq!(unb64(jwk["y"].as_str().unwrap()).unwrap().len(), 32);
    assert!(jwk.get("d").is_none());
    // What we publish is what a verifier reads back.
    let set = KeySet::from_jwks(&json!({"keys": [jwk]}).to_string()).unwrap();
    assert_eq!(set, es256_set(&key));
    assert!(set.verify(&key.sign(&claims())).is_ok());
}

// --- KeySet documents --------------------------------------------------

#[test]
fn jwks_with_ec_and_rsa_keys_verifies_both() {
    let es = SigningKey::generate();
    let p384 = p384::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let point = p384.verifying_key().to_encoded_point(false);
    let p384_jwk = json!({
        "kty": "EC", "crv": "P-384", "kid": "p384",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
    });
    let doc = json!({"keys": [es.public_jwk(), rsa_jwk(rsa_key(), "rsa", None), p384_jwk]});
    let set = KeySet::from_jwks(&doc.to_string()).unwrap();
    assert_eq!(set.len(), 3);
    assert!(set.verify(&es.sign(&claims())).is_ok());
    for alg in ["RS256", "RS384", "RS512", "PS256"] {
        let token = sign_rsa(rsa_key(), &json!({"alg": alg, "kid": "rsa"}), &claims());
        assert_eq!(set.verify(&token).map(Value::Object), Ok(claims()), "{alg}");
    }
    // ES384, signed by hand (r || s of 48 bytes each).
    let header = json!({"alg": "ES384", "kid": "p384"});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let sig: p384::ecdsa::Signature = p384::ecdsa::signature::Signer::sign(&p384, input.as_bytes());
    let token = format!("{input}.{}", b64(&sig.to_bytes()));
    assert!(set.verify(&token).is_ok());
    // And the document round-trips.
    assert_eq!(KeySet::from_jwks(&set.to_jwks().to_string()).unwrap(), set);
}

#[test]
fn jwks_skips_keys_for_other_uses_and_types() {
    let es = SigningKey::generate();
    let mut enc = rsa_jwk(rsa_key(), "enc", None);
    enc["use"] = json!("enc");
    let mut wrap = rsa_jwk(other_rsa_key(), "wrap", None);
    wrap.as_object_mut().unwrap().remove("use");
    wrap["key_ops"] = json!(["wrapKey"]);
    let mut oaep = rsa_jwk(other_rsa_key(), "oaep", None);
    oaep["alg"] = json!("RSA-OAEP");
    let okp =
        json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    let p521 = json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"});
    let doc = json!({"keys": [enc, wrap, oaep, okp, p521, es.public_jwk()]});
    let set = KeySet::from_jwks(&doc.to_string()).unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.verify(&es.sign(&claims())).is_ok());
}

#[test]
fn bad_jwks_documents_are_refused() {
    let es = SigningKey::generate();
    let jwk = es.public_jwk();
    let with = |k: &str, v: Value| {
        let mut j = jwk.clone();
        j[k] = v;
        json!({"keys": [j]}).to_string()
    };
    let small = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).unwrap();
    let mut enc_only = rsa_jwk(rsa_key(), "a", None);
    enc_only["use"] = json!("enc");
    let mut off_curve = jwk.clone();
    off_curve["y"] = off_curve["x"].clone();
    let cases = [
        ("not JSON", "{".to_string()),
        ("no keys", json!({}).to_string()),
        ("keys not an array", json!({"keys": {}}).to_string()),
        ("empty", json!({"keys": []}).to_string()),
        (
            "only unusable keys",
            json!({"keys": [enc_only]}).to_string(),
        ),
        ("entry not an object", json!({"keys": ["key"]}).to_string()),
        (
            "short RSA",
            json!({"keys": [rsa_jwk(&small, "s", None)]}).to_string(),
        ),
        ("bad base64", with("x", json!("a+b/"))),
        (
            "padded base64",
            with("x", json!(format!("{}=", jwk["x"].as_str().unwrap()))),
        ),
        ("short coordinate", with("x", json!("AAAA"))),
        ("off curve", json!({"keys": [off_curve]}).to_string()),
        ("kty missing", with("kty", Value::Null)),
        ("kid not a string", with("kid", json!(1))),
        ("kid too long", with("kid", json!("k".repeat(300)))),
        ("use not a string", with("use", json!(true))),
        ("alg of another family", with("alg", json!("RS256"))),
        ("same kid twice", json!({"keys": [jwk, jwk]}).to_string()),
        (
            "too many",
            json!({"keys": vec![jwk.clone(); 101]}).to_string(),
        ),
        (
            "too large",
            format!("{{\"keys\":[], \"pad\":\"{}\"}}", "x".repeat(1 << 20)),
        ),
    ];
    for (what, doc) in cases {
        assert!(
            matches!(KeySet::from_jwks(&doc), Err(JoseError::Key(_))),
            "{what}"
        );
    }
}

#[test]
fn public_pems_make_a_set_of_one() {
    use p256::pkcs8::{EncodePublicKey as _, LineEnding};
    let es = SigningKey::generate();
    let pem = es
        .key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let set = KeySet::from_public_pem(&pem).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set.to_jwks()["keys"][0]["kid"], es.kid());
    assert!(set.verify(&es.sign(&claims())).is_ok());

    let rsa_pem = {
        use rsa::pkcs8::EncodePublicKey as _;
        rsa_key()
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    let set = KeySet::from_public_pem(&rsa_pem).unwrap();
    let token = sign_rsa(rsa_key(), &json!({"alg": "RS256"}), &claims());
    assert!(set.verify(&token).is_ok());
}

#[test]
fn bad_public_pems_are_refused() {
    use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
    let small = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).unwrap();
    let small = small
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let private = SigningKey::generate().to_pem();
    let huge = "A".repeat(70 << 10);
    for pem in [
        "",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        &small,
        &private,
        &huge,
    ] {
        assert!(
            matches!(KeySet::from_public_pem(pem), Err(JoseError::Key(_))),
            "{pem:.40}"
        );
    }
}

// --- verify ------------------------------------------------------------

#[test]
fn a_token_of_another_key_is_refused() {
    let key = SigningKey::generate();
    let other = SigningKey::generate();
    let set = es256_set(&key);
    assert!(matches!(
        set.verify(&other.sign(&claims())),
        Err(JoseError::UnknownKey(_))
    ));
    // Even when it claims the trusted key's kid.
    let header = json!({"alg": "ES256", "kid": key.kid()});
    let forged = forge(&header, &claims(), &[0; 64]);
    let p = parts(&forged);
    let input = format!("{}.{}", p[0], p[1]);
    let sig: p256::ecdsa::Signature =
        p256::ecdsa::signature::Signer::sign(&other.key, input.as_bytes());
    let token = format!("{input}.{}", b64(&sig.to_bytes()));
    assert_eq!(set.verify(&token), Err(JoseError::BadSignature));
    // A key embedded in the header is not trusted.
    let header = json!({"alg": "ES256", "kid": key.kid(), "jwk": other.public_jwk()});
    let forged = forge(&header, &claims(), &[0; 64]);
    let p = parts(&forged);
    let input = format!("{}.{}", p[0], p[1]);
    let sig: p256::ecdsa::Signature =
        p256::ecdsa::signature::Signer::sign(&other.key, input.as_bytes());
    let token = format!("{input}.{}", b64(&sig.to_bytes()));
    assert_eq!(set.verify(&token), Err(JoseError::BadSignature));
}

#[test]
fn alg_none_is_refused() {
    let key = SigningKey::generate();
    let set = es256_set(&key);
    for alg in ["none", "None"] {
        let token = forge(&json!({"alg": alg, "kid": key.kid()}), &claims(), b"");
        assert!(
            matches!(set.verify(&token), Err(JoseError::Algorithm(_))),
            "{alg}"
        );
    }
    let token = format!("{}.", &forge(&json!({"alg": "none"}), &claims(), b"")[..]);
    assert!(set.verify(&token).is_err());
}

#[test]
fn hmac_with_the_public_key_as_secret_is_refused() {
    // The classic confusion: the attacker "signs" with HS256 using the
    // published public key as the HMAC secret.
    let key = SigningKey::generate();
    let set = es256_set(&key);
    let pem = {
        use p256::pkcs8::{EncodePublicKey as _, LineEnding};
        key.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    let point = key.key.verifying_key().to_encoded_point(false);
    for secret in [pem.as_bytes(), point.as_bytes()] {
        for alg in ["HS256", "HS384", "HS512"] {
            let header = json!({"alg": alg, "kid": key.kid()});
            let p = parts(&forge(&header, &claims(), b""));
            let input = format!("{}.{}", p[0], p[1]);
            let token = format!("{input}.{}", b64(&hmac_sha256(secret, input.as_bytes())));
            assert!(
                matches!(set.verify(&token), Err(JoseError::Algorithm(_))),
                "{alg}"
            );
        }
    }
    let rsa = rsa_set("rsa", None);
    let pem = {
        use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
        rsa_key()
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    let header = json!({"alg": "HS256", "kid": "rsa"});
    let p = parts(&forge(&header, &claims(), b""));
    let input = format!("{}.{}", p[0], p[1]);
    let token = format!(
        "{input}.{}",
        b64(&hmac_sha256(pem.as_bytes(), input.as_bytes()))
    );
    assert!(matches!(rsa.verify(&token), Err(JoseError::Algorithm(_))));
}

#[test]
fn other_algorithms_are_refused() {
    let key = SigningKey::generate();
    let set = es256_set(&key);
    for alg in [
        json!("ES512"),
        json!("EdDSA"),
        json!("es256"),
        json!(256),
        Value::Null,
    ] {
        let token = forge(&json!({"alg": alg, "kid": key.kid()}), &claims(), &[0; 64]);
        assert!(set.verify(&token).is_err(), "{alg}");
    }
    let token = forge(&json!({"kid": key.kid()}), &claims(), &[0; 64]);
    assert!(matches!(set.verify(&token), Err(JoseError::Malformed(_))));
}

#[test]
fn a_tampered_payload_is_refused() {
    let key = SigningKey::generate();
    let set = es256_set(&key);
    let p = parts(&key.sign(&claims()));
    let mut evil = claims();
    evil["sub"] = json!("admin");
    let token = format!("{}.{}.{}", p[0], b64(evil.to_string().as_bytes()), p[2]);
    assert_eq!(set.verify(&token), Err(JoseError::BadSignature));
    // A header changed after signing, too.
    let header = json!({"alg": "ES256", "kid": key.kid(), "typ": "at+jwt"});
    let token = format!("{}.{}.{}", b64(header.to_string().as_bytes()), p[1], p[2]);
    assert_eq!(set.verify(&token), Err(JoseError::BadSignature));
    let rsa = rsa_set("rsa", None);
    let p = parts(&sign_rsa(
        rsa_key(),
        &json!({"alg": "RS256", "kid": "rsa"}),
        &claims(),
    ));
    let token = format!("{}.{}.{}", p[0], b64(evil.to_string().as_bytes()), p[2]);
    assert_eq!(rsa.verify(&token), Err(JoseError::BadSignature));
}

#[test]
fn a_wrong_kid_is_refused() {
    let key = SigningKey::generate();
    let set = es256_set(&key);
    let p = parts(&key.sign(&claims()));
    for kid in [json!("nope"), json!(""), json!(7), json!([key.kid()])] {
        let header = json!({"alg": "ES256", "kid": kid});
        let token = format!("{}.{}.{}", b64(header.to_string().as_bytes()), p[1], p[2]);
        assert!(set.verify(&token).is_err(), "{kid}");
    }
}

#[test]
fn without_kid_only_a_set_of_one_key_is_used() {
    let key = SigningKey::generate();
    let header = json!({"alg": "ES256"});
    let p = parts(&forge(&header, &claims(), b""));
    let input = format!("{}.{}", p[0], p[1]);
    let sig: p256::ecdsa::Signature =
        p256::ecdsa::signature::Signer::sign(&key.key, input.as_bytes());
    let token = format!("{input}.{}", b64(&sig.to_bytes()));
    let mut set = es256_set(&key);
    assert!(set.verify(&token).is_ok());
    set.insert_signing(&SigningKey::generate());
    assert!(matches!(set.verify(&token), Err(JoseError::UnknownKey(_))));
    assert!(matches!(
        KeySet::new().verify(&token),
        Err(JoseError::UnknownKey(_))
    ));
}

#[test]
fn the_algorithm_must_fit_the_key() {
    let key = SigningKey::generate();
    let es = es256_set(&key);
    // An RS256 token naming the EC key's kid.
    let token = sign_rsa(
        rsa_key(),
        &json!({"alg": "RS256", "kid": key.kid()}),
        &claims(),
    );
    assert!(matches!(es.verify(&token), Err(JoseError::UnknownKey(_))));
    // ES384 against a P-256 key.
    let token = forge(
        &json!({"alg": "ES384", "kid": key.kid()}),
        &claims(),
        &[1; 96],
    );
    assert!(matches!(es.verify(&token), Err(JoseError::UnknownKey(_))));
    // An ES256 header naming an RSA key.
    let rsa = rsa_set("rsa", None);
    let token = forge(&json!({"alg": "ES256", "kid": "rsa"}), &claims(), &[1; 64]);
    assert!(matches!(rsa.verify(&token), Err(JoseError::UnknownKey(_))));
    // A JWK restricted to RS512 takes no RS256 (nor PS256) token.
    let rs512 = rsa_set("rsa", Some("RS512"));
    for alg in ["RS256", "PS256"] {
        let token = sign_rsa(rsa_key(), &json!({"alg": alg, "kid": "rsa"}), &claims());
        assert!(
            matches!(rs512.verify(&token), Err(JoseError::UnknownKey(_))),
            "{alg}"
        );
    }
    let token = sign_rsa(rsa_key(), &json!({"alg": "RS512", "kid": "rsa"}), &claims());
    assert!(rs512.verify(&token).is_ok());
    // An RS256 signature presented as PS256 does not verify.
    let p = parts(&sign_rsa(
        rsa_key(),
        &json!({"alg": "RS256", "kid": "rsa"}),
        &claims(),
    ));
    let header = json!({"alg": "PS256", "kid": "rsa"});
    let token = format!("{}.{}.{}", b64(header.to_string().as_bytes()), p[1], p[2]);
    assert_eq!(rsa.verify(&token), Err(JoseError::BadSignature));
}

#[test]
fn truncated_or_reshaped_signatures_are_refused() {
    let key = SigningKey::generate();
    let set = es256_set(&key);
    let token = key.sign(&claims());
    assert!(set.verify(&token[..token.len() - 4]).is_err());
    let p = parts(&token);
    let sig = unb64(&p[2]).unwrap();
    for len in [63, 60, 32, 1] {
        let cut = format!("{}.{}.{}", p[0], p[1], b64(&sig[..len]));
        assert_eq!(set.verify(&cut), Err(JoseError::BadSignature), "{len}");
    }
    let empty = format!("{}.{}.", p[0], p[1]);
    assert_eq!(set.verify(&empty), Err(JoseError::BadSignature));
    // The same signature in DER form, as some libraries emit it.
    let raw = p256::ecdsa::Signature::from_slice(&unb64(&p[2]).unwrap()).unwrap();
    let der = format!("{}.{}.{}", p[0], p[1], b64(raw.to_der().as_bytes()));
    assert_eq!(set.verify(&der), Err(JoseError::BadSignature));
    let rsa = rsa_set("rsa", None);
    let token = sign_rsa(rsa_key(), &json!({"alg": "RS256", "kid": "rsa"}), &claims());
    let p = parts(&token);
    let sig = unb64(&p[2]).unwrap();
    let cut = format!("{}.{}.{}", p[0], p[1], b64(&sig[..sig.len() - 1]));
    assert_eq!(rsa.verify(&cut), Err(JoseError::BadSignature));
    let long = format!("{}.{}.{}", p[0], p[1], b64(&[&sig[..], &[0]].concat()));
    assert_eq!(rsa.verify(&long), Err(JoseError::BadSignature));
}

#[test]
fn non_base64url_parts_are_refused() {
    let key = SigningKey::generate();
    let set = es256_set(&key);
    let p = parts(&key.sign(&claims()));
    let cases = [
        format!("{}=.{}.{}", p[0], p[1], p[2]),
        format!("{}.{}.{}=", p[0], p[1], p[2]),
        format!("{}+.{}.{}", &p[0][..p[0].len() - 1], p[1], p[2]),
        format!("{}.{}.{}/", p[0], p[1], &p[2][..p[2].len() - 1]),
        format!("{}.{}!.{}", p[0], p[1], p[2]),
        format!("{}.{}.{} ", p[0], p[1], p[2]),
        format!("é{}.{}.{}", p[0], p[1], p[2]),
    ];
    for token in cases {
        assert!(set.verify(&token).is_err(), "{token}");
    }
}

#[test]
fn shapes_other_than_three_parts_are_refused() {
    let key = SigningKey::generate();
    let set = es256_set(&key);
    let token = key.sign(&claims());
    let p = parts(&token);
    for bad in [
        String::new(),
        p[0].clone(),
        format!("{}.{}", p[0], p[1]),
        format!("{token}.x"),
        format!("{token}."),
    ] {
        assert_eq!(
            set.verify(&bad),
            Err(JoseError::Malformed("not three dot-separated parts")),
            "{bad}"
        );
    }
}

#[test]
fn oversized_tokens_are_refused_before_decoding() {
    let key = SigningKey::generate();
    let set = es256_set(&key);
    let big = json!({"exp": 1, "pad": "x".repeat(20 << 10)});
    assert_eq!(set.verify(&key.sign(&big)), Err(JoseError::TooLarge));
    assert_eq!(set.verify(&"a".repeat(20 << 10)), Err(JoseError::TooLarge));
}

#[test]
fn headers_and_payloads_must_be_json_objects() {
    let key = SigningKey::generate();
    let set = es256_set(&key);
    let p = parts(&key.sign(&claims()));
    let bomb = format!("{}{}", "[".repeat(4000), "]".repeat(4000));
    let deep_object = format!(
        "{{\"alg\":\"ES256\",\"x\":{}1{}}}",
        "{\"a\":".repeat(1000),
        "}".repeat(1000)
    );
    for header in [
        bomb.as_str(),
        &deep_object,
        "[]",
        "\"ES256\"",
        "null",
        "{",
        "",
    ] {
        let token = format!("{}.{}.{}", b64(header.as_bytes()), p[1], p[2]);
        assert!(
            matches!(set.verify(&token), Err(JoseError::Malformed(_))),
            "{header:.20}"
        );
    }
    // A validly signed payload that is not an object.
    for payload in [json!([1, 2]), json!("claims"), json!(null)] {
        assert!(matches!(
            set.verify(&key.sign(&payload)),
            Err(JoseError::Malformed(_))
        ));
    }
}

#[test]
fn critical_headers_are_refused() {
    let key = SigningKey::generate();
    let set = es256_set(&key);
    for crit in [json!(["b64"]), json!([]), json!("exp")] {
        let header = json!({"alg": "ES256", "kid": key.kid(), "crit": crit, "b64": false});
        let p = parts(&forge(&header, &claims(), b""));
        let input = format!("{}.{}", p[0], p[1]);
        let sig: p256::ecdsa::Signature =
            p256::ecdsa::signature::Signer::sign(&key.key, input.as_bytes());
        let token = format!("{input}.{}", b64(&sig.to_bytes()));
        assert_eq!(set.verify(&token), Err(JoseError::Critical));
    }
}

#[test]
fn errors_never_repeat_the_token() {
    let key = SigningKey::generate();
    let set = es256_set(&key);
    let token = SigningKey::generate().sign(&json!({"sub": "secret-subject"}));
    let p = parts(&token);
    let header = json!({"alg": "secret-alg", "kid": "secret-kid"});
    let odd = format!("{}.{}.{}", b64(header.to_string().as_bytes()), p[1], p[2]);
    for t in [token.as_str(), &odd, &token[..20]] {
        let msg = set.verify(t).unwrap_err().to_string();
        assert!(!msg.contains("secret") && !msg.contains(&p[1]), "{msg}");
    }
}

#[test]
fn unverified_claims_read_the_payload_only() {
    let token = SigningKey::generate().sign(&claims());
    assert_eq!(unverified_claims(&token).map(Value::Object), Ok(claims()));
    let p = parts(&token);
    let unsigned = format!("{}.{}.", p[0], p[1]);
    assert!(unverified_claims(&unsigned).is_ok());
    let big = "a".repeat(20 << 10);
    for bad in [
        "",
        "a.b",
        "a.b.c.d",
        &format!("{}.!.{}", p[0], p[2]),
        &format!("{}.{}.{}", p[0], b64(b"[1]"), p[2]),
        &big,
    ] {
        assert!(unverified_claims(bad).is_err(), "{bad:.20}");
    }
}
