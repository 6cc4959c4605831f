//! The trust policy's unit tests: documents, levels, names, identities.

use super::*;

fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(t, v)| (t.to_string(), v.to_string()))
        .collect()
}

fn dn(s: &str) -> Vec<(String, String)> {
    DistinguishedName::parse(s).unwrap().attributes().to_vec()
}

#[test]
fn level_table_is_the_specifications() {
    use Action::*;
    let rows = [
        (Level::Strict, [Enforce, Enforce, Enforce, Enforce, Enforce]),
        (Level::Permissive, [Enforce, Enforce, Log, Log, Log]),
        (Level::Audit, [Enforce, Log, Log, Log, Log]),
        (Level::Skip, [Skip, Skip, Skip, Skip, Skip]),
    ];
    for (level, actions) in rows {
        let l = VerificationLevel::resolve(level.name(), &BTreeMap::new()).unwrap();
        assert_eq!(l.level, level);
        assert!(!l.is_custom());
        for (v, a) in Validation::ALL.into_iter().zip(actions) {
            assert_eq!(l.action(v), a, "{level} {v}");
        }
    }
}

fn ov(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn overrides_apply_within_their_rules() {
    let l = VerificationLevel::resolve("strict", &ov(&[("expiry", "log"), ("revocation", "skip")]))
        .unwrap();
    assert_eq!(l.expiry, Action::Log);
    assert_eq!(l.revocation, Action::Skip);
    assert_eq!(l.authenticity, Action::Enforce);
    assert!(l.is_custom());
    let l = VerificationLevel::resolve(
        "audit",
        &ov(&[
            ("authenticity", "enforce"),
            ("authenticTimestamp", "enforce"),
        ]),
    )
    .unwrap();
    assert_eq!(l.authenticity, Action::Enforce);
    assert_eq!(l.authentic_timestamp, Action::Enforce);
    assert_eq!(l.expiry, Action::Log);
    // Setting an action to the preset's is allowed and not custom.
    let l = VerificationLevel::resolve("permissive", &ov(&[("expiry", "log")])).unwrap();
    assert!(!l.is_custom());

    for (level, o, needle) in [
        (
            "strict",
            ov(&[("integrity", "log")]),
            "integrity cannot be overridden",
        ),
        (
            "strict",
            ov(&[("integrity", "enforce")]),
            "integrity cannot be overridden",
        ),
        (
            "strict",
            ov(&[("authenticity", "skip")]),
            "cannot set authenticity to skip",
        ),
        (
            "strict",
            ov(&[("authenticTimestamp", "skip")]),
            "cannot set authenticTimestamp",
        ),
        (
            "strict",
            ov(&[("expiry", "skip")]),
            "cannot set expiry to skip",
        ),
        (
            "skip",
            ov(&[("authenticity", "log")]),
            "skip level cannot be customized",
        ),
        ("strict", ov(&[("Expiry", "log")]), "unknown validation"),
        ("strict", ov(&[("expiry", "Log")]), "unknown action"),
        ("strict", ov(&[("expiry", "logged")]), "unknown action"),
        ("Strict", ov(&[]), "unknown verification level"),
        ("", ov(&[]), "level is missing"),
        ("custom", ov(&[]), "unknown verification level"),
    ] {
        let e = VerificationLevel::resolve(level, &o).unwrap_err();
        assert!(e.contains(needle), "{level} {o:?}: {e}");
    }
}

#[test]
fn verify_timestamp_values() {
    assert_eq!(VerifyTimestamp::parse(None), Ok(VerifyTimestamp::Always));
    assert_eq!(
        VerifyTimestamp::parse(Some("")),
        Ok(VerifyTimestamp::Always)
    );
    assert_eq!(
        VerifyTimestamp::parse(Some("always")),
        Ok(VerifyTimestamp::Always)
    );
    assert_eq!(
        VerifyTimestamp::parse(Some("afterCertExpiry")),
        Ok(VerifyTimestamp::AfterCertExpiry)
    );
    for bad in ["Always", "never", "aftercertexpiry", "after"] {
        assert!(VerifyTimestamp::parse(Some(bad)).is_err(), "{bad}");
    }
}

#[test]
fn dn_parsing_follows_rfc4514_and_notations_leniencies() {
    assert_eq!(
        dn("C=US, ST=WA, L=Seattle, O=acme-rockets.io, OU=Finance, CN=SecureBuilder"),
        attrs(&[
            ("C", "US"),
            ("ST", "WA"),
            ("L", "Seattle"),
            ("O", "acme-rockets.io"),
            ("OU", "Finance"),
            ("CN", "SecureBuilder")
        ])
    );
    // Leading space (the e2e vectors write "x509.subject: CN=..."),
    // spaces around '=' and separators.
    assert_eq!(
        dn(" CN = e2e ,O=Notary"),
        attrs(&[("CN", "e2e"), ("O", "Notary")])
    );
    // Escapes: special characters, hex, escaped leading/trailing space.
    assert_eq!(
        dn(r#"O=My "special" Org \, \; \\ others"#),
        attrs(&[("O", r#"My "special" Org , ; \ others"#)])
    );
    assert_eq!(dn(r"O=a\2Cb"), attrs(&[("O", "a,b")]));
    assert_eq!(dn(r"O=\ x\ "), attrs(&[("O", " x ")]));
    assert_eq!(dn(r"O=caf\C3\A9"), attrs(&[("O", "café")]));
    assert_eq!(dn(r"O=\#1"), attrs(&[("O", "#1")]));
    assert_eq!(dn("O=  My.  Org"), attrs(&[("O", "My.  Org")]));
    assert_eq!(dn("O=a=b"), attrs(&[("O", "a=b")]));
    // ';' separates like ','.
    assert_eq!(dn("C=US;O=x"), attrs(&[("C", "US"), ("O", "x")]));
    // Types: case-insensitive, S = ST, OIDs mapped.
    assert_eq!(
        dn("c=US,s=WA,o=x,2.5.4.3=name,1.2.3.4=v"),
        attrs(&[
            ("C", "US"),
            ("ST", "WA"),
            ("O", "x"),
            ("CN", "name"),
            ("1.2.3.4", "v")
        ])
    );

    for (bad, want) in [
        ("", DnError::Empty),
        ("   ", DnError::Empty),
        (",,,", DnError::Incomplete { at: 0 }),
        ("CN", DnError::Incomplete { at: 0 }),
        ("C=US,", DnError::Incomplete { at: 5 }),
        ("C=US,,O=x", DnError::Incomplete { at: 5 }),
        ("=US", DnError::Incomplete { at: 0 }),
        ("C=US,ST", DnError::Incomplete { at: 5 }),
        ("C=US,C=IN", DnError::Duplicate("C".into())),
        ("ST=WA,S=WA", DnError::Duplicate("ST".into())),
        ("C=US+ST=WA,O=MyOrg", DnError::MultiValued("C".into())),
        ("C=", DnError::EmptyValue("C".into())),
        ("C=  ,O=x", DnError::EmptyValue("C".into())),
        ("C=#0402", DnError::HexValue("C".into())),
        ("1C=US", DnError::InvalidType("1C".into())),
        ("C_x=US", DnError::InvalidType("C_x".into())),
        ("1.02=US", DnError::InvalidType("1.02".into())),
        (r"C=U\S", DnError::BadEscape { at: 3 }),
        (r"C=US\", DnError::BadEscape { at: 4 }),
        (r"C=\zz", DnError::BadEscape { at: 2 }),
        (r"C=\FF", DnError::NotUtf8("C".into())),
    ] {
        assert_eq!(DistinguishedName::parse(bad), Err(want), "{bad:?}");
    }
}

#[test]
fn identity_dns_need_country_state_and_organization() {
    assert!(DistinguishedName::parse_identity("C=US,ST=WA,O=x").is_ok());
    assert!(DistinguishedName::parse_identity("C=US,S=WA,O=x").is_ok());
    assert_eq!(
        DistinguishedName::parse_identity("CN=e2e,L=Seattle,ST=WA,C=US"),
        Err(DnError::MissingMandatory("O"))
    );
    assert_eq!(
        DistinguishedName::parse_identity("CN=e2e,O=Notary,L=Seattle,C=US"),
        Err(DnError::MissingMandatory("ST"))
    );
    assert_eq!(
        DistinguishedName::parse_identity("CN=e2e,O=Notary,L=Seattle,ST=WA"),
        Err(DnError::MissingMandatory("C"))
    );
}

#[test]
fn dn_display_round_trips() {
    for s in [
        r#"C=US, ST=WA, O=My "special" Org \, \; \\ others"#,
        r"C=US, ST=\ padded\ , O=\#hash",
        "C=US, ST=WA, O=café",
    ] {
        let d = DistinguishedName::parse(s).unwrap();
        let again = DistinguishedName::parse(&d.to_string()).unwrap();
        assert_eq!(d, again, "{s} -> {d}");
    }
}

#[test]
fn trusted_identity_entries() {
    assert_eq!(TrustedIdentity::parse("*"), Ok(TrustedIdentity::Any));
    let i = TrustedIdentity::parse("x509.subject: C=US, ST=WA, O=acme").unwrap();
    assert_eq!(i.to_string(), "x509.subject: C=US, ST=WA, O=acme");
    for (bad, needle) in [
        ("", "empty"),
        ("x509.subject", "missing separator"),
        (
            "x509.subject CN=e2e,O=Notary,L=Seattle,ST=WA,C=US",
            "missing separator",
        ),
        ("x509.subject:", "without a distinguished name"),
        ("x509.subject:   ", "without a distinguished name"),
        ("unknown:my-identity", "unsupported identity type"),
        ("X509.subject:C=US,ST=WA,O=x", "unsupported identity type"),
        ("x509.subject:,,,", "invalid distinguished name"),
        ("x509.subject:C=US,ST=WA", "mandatory attribute O"),
        ("**", "missing separator"),
    ] {
        let e = TrustedIdentity::parse(bad).unwrap_err();
        assert!(e.contains(needle), "{bad:?}: {e}");
    }
}

#[test]
fn subset_and_overlap() {
    let a = DistinguishedName::parse("C=US,ST=WA,O=wabbit-network.io,OU=org1").unwrap();
    let b = DistinguishedName::parse("C=US,ST=WA,O=wabbit-network.io").unwrap();
    let c = DistinguishedName::parse("C=US,ST=WA,O=wabbit-network.io,CN=x").unwrap();
    let d = DistinguishedName::parse("C=US,ST=WA,O=wabbit-network.io,OU=org2").unwrap();
    let e = DistinguishedName::parse("C=AU,ST=Some-State,O=Internet Widgits Pty Ltd").unwrap();
    assert!(b.is_subset_of(&a));
    assert!(!a.is_subset_of(&b));
    // The specification's example: overlapping because b ⊂ a.
    assert!(a.overlaps(&b) && b.overlaps(&a));
    // Disjoint optional attributes: a certificate with OU=org1 and CN=x
    // matches both.
    assert!(a.overlaps(&c) && c.overlaps(&a));
    // Conflicting values: no certificate matches both.
    assert!(!a.overlaps(&d) && !d.overlaps(&a));
    assert!(!a.overlaps(&e));
    assert!(a.overlaps(&a));
}

#[test]
fn registry_scopes_are_fully_qualified_repositories() {
    for ok in [
        "example.com/rep",
        "example.com:8080/rep/rep2",
        "example.com/rep/subrep/subsub",
        "10.10.10.10:8080/rep/rep2",
        "domain/rep",
        "domain:1234/rep",
        "localhost:5001/test-repo",
        "registry.acme-rockets.io/software/net-monitor",
        "docker.io/library/registry",
        "r.io/a.b/c_d/e__f/g---h",
        "Example.COM/rep",
    ] {
        assert_eq!(validate_registry_scope(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "1:1",
        "a,b",
        "abcd",
        "1111",
        "1,2",
        "example.com/rep:tag",
        "example.com/rep/subrep/sub:latest",
        "example.com",
        "rep/rep2:latest",
        "repository",
        "10.10.10.10",
        "10.10.10.10:8080/rep/rep2:latest",
        "localhost:5001\\test-repo",
        "example.com/*",
        "*/",
        "example*/",
        "ex*test",
        "example.com/Rep",
        "example.com/rep/",
        "example.com//rep",
        "example.com/-rep",
        "example.com/a..b",
        "example.com/a._b",
        "example.com/a___b",
        "https://example.com/rep",
        "example.com:/rep",
        "example.com:80a/rep",
        "-example.com/rep",
        "example.com/rep@sha256:abc",
    ] {
        assert!(validate_registry_scope(bad).is_err(), "{bad:?}");
    }
}

fn oci(json: serde_json::Value) -> Result<OciPolicies, PolicyError> {
    OciPolicies::from_json(json.to_string().as_bytes())
}

fn statement(name: &str, scopes: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "registryScopes": scopes,
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:acme-rockets"],
        "trustedIdentities": ["*"]
    })
}

#[test]
fn selection_prefers_exact_scope_then_wildcard() {
    let p = oci(serde_json::json!({
        "version": "1.0",
        "trustPolicies": [
            statement("global", &["*"]),
            statement("net", &["registry.acme-rockets.io/software/net-monitor", "registry.acme-rockets.io/software/net-logger"]),
            {"name": "unsigned", "registryScopes": ["registry.wabbit-networks.io/software/unsigned/net-utils"],
             "signatureVerification": {"level": "skip"}}
        ]
    }))
    .unwrap();
    assert_eq!(
        p.select("registry.acme-rockets.io/software/net-monitor")
            .unwrap()
            .name,
        "net"
    );
    assert_eq!(
        p.select("registry.acme-rockets.io/software/net-logger")
            .unwrap()
            .name,
        "net"
    );
    assert_eq!(
        p.select("registry.acme-rockets.io/software/net-monitor@sha256:0123")
            .unwrap()
            .name,
        "net"
    );
    let skip = p
        .select("registry.wabbit-networks.io/software/unsigned/net-utils")
        .unwrap();
    assert!(skip.is_skip());
    assert_eq!(
        p.select("registry.acme-rockets.io/software/other")
            .unwrap()
            .name,
        "global"
    );
    // No prefix matching: a parent or a child repository is another scope.
    assert_eq!(
        p.select("registry.acme-rockets.io/software").unwrap().name,
        "global"
    );
    assert_eq!(
        p.select("registry.acme-rockets.io/software/net-monitor/sub")
            .unwrap()
            .name,
        "global"
    );
    for bad in [
        "registry.acme-rockets.io/software/net-monitor:v1",
        "net-monitor",
        "",
    ] {
        assert!(
            matches!(
                p.select(bad),
                Err(PolicyError::InvalidArtifactReference { .. })
            ),
            "{bad}"
        );
    }

    let p = oci(serde_json::json!({
        "version": "1.0",
        "trustPolicies": [statement("only", &["r.io/a"])]
    }))
    .unwrap();
    assert_eq!(
        p.select("r.io/b"),
        Err(PolicyError::NoApplicablePolicy {
            reference: "r.io/b".into()
        })
    );
    assert!(p.global().is_none());
}

#[test]
fn identity_matching_is_attribute_subset() {
    let p = oci(serde_json::json!({
        "version": "1.0",
        "trustPolicies": [{
            "name": "p", "registryScopes": ["*"],
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:s"],
            "trustedIdentities": [
                "x509.subject: CN=e2e,O=Notary,L=Seattle,ST=WA,C=US",
                "x509.subject: O=Internet Widgits Pty Ltd,S=Some-State,C=AU"
            ]
        }]
    }))
    .unwrap();
    let pol = &p.policies[0];
    let e2e = attrs(&[
        ("C", "US"),
        ("ST", "WA"),
        ("L", "Seattle"),
        ("O", "Notary"),
        ("CN", "e2e"),
    ]);
    assert!(identity_trusted(pol, &e2e));
    assert!(pol.trusts_subject(&e2e));
    // More attributes in the certificate are fine.
    let more = [e2e.clone(), attrs(&[("OU", "x")])].concat();
    assert!(identity_trusted(pol, &more));
    // The second identity, with the certificate spelling ST and an OID.
    let au = attrs(&[
        ("2.5.4.6", "AU"),
        ("ST", "Some-State"),
        ("O", "Internet Widgits Pty Ltd"),
    ]);
    assert!(identity_trusted(pol, &au));
    // A value differs (case included), or an attribute is missing.
    assert!(!identity_trusted(
        pol,
        &attrs(&[
            ("C", "US"),
            ("ST", "WA"),
            ("L", "Seattle"),
            ("O", "notary"),
            ("CN", "e2e")
        ])
    ));
    assert!(!identity_trusted(
        pol,
        &attrs(&[("C", "US"), ("ST", "WA"), ("O", "Notary"), ("CN", "e2e")])
    ));
    assert!(!identity_trusted(
        pol,
        &attrs(&[
            ("C", "USB"),
            ("ST", "WA"),
            ("L", "Seattle"),
            ("O", "Notary"),
            ("CN", "e2e")
        ])
    ));
    // A repeated attribute type makes the subject ambiguous.
    let twice = [e2e.clone(), attrs(&[("CN", "other")])].concat();
    assert!(!identity_trusted(pol, &twice));
    assert!(!identity_trusted(pol, &[]));

    let any = oci(serde_json::json!({"version": "1.0", "trustPolicies": [statement("a", &["*"])]}))
        .unwrap();
    assert!(identity_trusted(&any.policies[0], &[]));
    assert!(identity_trusted(&any.policies[0], &twice));
}
