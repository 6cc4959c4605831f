//! Certificates made with rcgen: SVIDs, plain client certificates, broken
//! ones; and XFCC header values as Envoy and Istio write them.

use super::*;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

/// A self-signed certificate with these common names (in order) and URI
/// SANs, plus a DNS SAN.
fn cert(cns: &[&str], uris: &[&str]) -> rcgen::Certificate {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Acme, Inc.");
    for (i, cn) in cns.iter().enumerate() {
        // rcgen keeps one value per type; a second CN goes in by its OID.
        let ty = if i == 0 {
            DnType::CommonName
        } else {
            DnType::CustomDnType(vec![2, 5, 4, 3])
        };
        dn.push(ty, *cn);
    }
    params.distinguished_name = dn;
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().unwrap()))
        .chain([SanType::DnsName("client.example".try_into().unwrap())])
        .collect();
    params.self_signed(&KeyPair::generate().unwrap()).unwrap()
}

fn identity(cns: &[&str], uris: &[&str]) -> Result<Identity, AuthError> {
    identity_from_certificate(cert(cns, uris).der())
}

/// `text` percent-encoded as Envoy encodes a Cert value.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// --- identity_from_certificate -----------------------------------------

#[test]
fn an_svid_gives_its_spiffe_id() {
    let id = identity(&["ignored"], &["spiffe://cluster.local/ns/build/sa/pusher"]).unwrap();
    assert_eq!(id.subject, "spiffe://cluster.local/ns/build/sa/pusher");
    assert_eq!(
        id.spiffe_id.as_deref(),
        Some("spiffe://cluster.local/ns/build/sa/pusher")
    );
    assert_eq!(id.method, Method::Certificate);
    assert!(id.groups.is_empty());
}

#[test]
fn an_svid_must_have_exactly_one_uri() {
    let two = identity(&[], &["spiffe://example.org/a", "spiffe://example.org/b"]);
    assert_eq!(two, Err(AuthError::Invalid));
    let mixed = identity(&[], &["https://example.org/a", "spiffe://example.org/b"]);
    assert_eq!(mixed, Err(AuthError::Invalid));
}

#[test]
fn an_invalid_spiffe_id_is_refused_not_skipped() {
    for uri in [
        "spiffe://Example.org/w",
        "spiffe://example.org/a/../b",
        "spiffe://example.org/",
        "spiffe://example.org:443/w",
        "SPIFFE://example.org/w",
        "spiffe://example.org/w?q",
    ] {
        assert_eq!(
            identity(&["fallback"], &[uri]),
            Err(AuthError::Invalid),
            "{uri}"
        );
    }
}

#[test]
fn without_spiffe_the_common_name_is_the_subject() {
    let id = identity(&["build-bot"], &[]).unwrap();
    assert_eq!(id, Identity::new("build-bot", Method::Certificate));
    // A non-SPIFFE URI SAN does not make it an SVID.
    let id = identity(&["build-bot"], &["https://example.org/bot"]).unwrap();
    assert_eq!(id.subject, "build-bot");
    assert_eq!(id.spiffe_id, None);
}

#[test]
fn without_one_common_name_the_whole_subject_is_used() {
    let none = identity(&[], &[]).unwrap();
    assert_eq!(none.subject, "O=Acme\\, Inc.");
    let two = identity(&["a", "b"], &[]).unwrap();
    assert_eq!(two.subject, "CN=b,CN=a,O=Acme\\, Inc.");
}

#[test]
fn unusable_subjects_are_refused() {
    assert_eq!(identity(&["bad\u{7}name"], &[]), Err(AuthError::Invalid));
    assert_eq!(identity(&[&"n".repeat(1025)], &[]), Err(AuthError::Invalid));
    // An empty subject altogether.
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let c = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
    assert_eq!(identity_from_certificate(c.der()), Err(AuthError::Invalid));
}

#[test]
fn what_is_not_a_certificate_is_refused() {
    let good = cert(&["x"], &[]).der().to_vec();
    let cases: [Vec<u8>; 5] = [
        vec![],
        b"-----BEGIN CERTIFICATE-----".to_vec(),
        good[..good.len() / 2].to_vec(),
        [&good[..], b"trailing"].concat(),
        vec![0x30; 70 << 10],
    ];
    for der in cases {
        assert_eq!(
            identity_from_certificate(&der),
            Err(AuthError::Invalid),
            "{}",
            der.len()
        );
    }
}

// --- identity_from_forwarded -------------------------------------------

#[test]
fn istio_style_values_give_the_spiffe_id() {
    let value = "By=spiffe://cluster.local/ns/registry/sa/pavilion;\
        Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;\
        Subject=\"\";URI=spiffe://cluster.local/ns/build/sa/pusher";
    let id = identity_from_forwarded(value).unwrap();
    assert_eq!(id.subject, "spiffe://cluster.local/ns/build/sa/pusher");
    assert_eq!(
        id.spiffe_id.as_deref(),
        Some("spiffe://cluster.local/ns/build/sa/pusher")
    );
    assert_eq!(id.method, Method::Certificate);
    // Keys in any case.
    let id = identity_from_forwarded("hash=ab;uri=spiffe://example.org/w").unwrap();
    assert_eq!(id.subject, "spiffe://example.org/w");
}

#[test]
fn the_last_element_is_the_one_used() {
    let value = "By=spiffe://a/x;URI=spiffe://example.org/first,\
        By=spiffe://a/y;URI=spiffe://example.org/last";
    assert_eq!(
        identity_from_forwarded(value).unwrap().subject,
        "spiffe://example.org/last"
    );
    // Quoted commas do not split elements.
    let value = "URI=spiffe://example.org/first,Subject=\"CN=last,O=Acme\"";
    assert_eq!(identity_from_forwarded(value).unwrap().subject, "last");
}

#[test]
fn quoted_values_keep_commas_semicolons_and_quotes() {
    let value = r#"Hash=ab;Subject="CN=build\, bot;x,OU=a=b,O=\"Quoted\" Org";DNS=client.example"#;
    let id = identity_from_forwarded(value).unwrap();
    assert_eq!(id.subject, "build, bot;x");
    let value = r#"Hash=ab;Subject="OU=a;b,O=\"Quoted\" Org""#;
    let id = identity_from_forwarded(value).unwrap();
    // Without one CN, the name re-serialised as RFC 4514 text (escapes
    // included), as for a certificate.
    assert_eq!(id.subject, r#"OU=a\;b,O=\"Quoted\" Org"#);
}

#[test]
fn a_forwarded_cert_is_read_like_a_direct_one() {
    let svid = cert(&[], &["spiffe://example.org/ns/build"]);
    let value = format!(
        "Hash=ab;Cert=\"{}\";DNS=client.example",
        url_encode(&svid.pem())
    );
    let id = identity_from_forwarded(&value).unwrap();
    assert_eq!(
        id.spiffe_id.as_deref(),
        Some("spiffe://example.org/ns/build")
    );
    let plain = cert(&["build-bot"], &[]);
    let value = format!(
        "Hash=ab;Cert={};Subject=\"CN=ignored\"",
        url_encode(&plain.pem())
    );
    assert_eq!(
        identity_from_forwarded(&value).unwrap().subject,
        "build-bot"
    );
    // A Cert that is not a certificate.
    let value = format!(
        "Cert={}",
        url_encode("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    );
    assert_eq!(identity_from_forwarded(&value), Err(AuthError::Invalid));
    let two = format!("Cert={0};Cert={0}", url_encode(&plain.pem()));
    assert_eq!(identity_from_forwarded(&two), Err(AuthError::Invalid));
}

#[test]
fn malformed_values_are_refused() {
    for value in [
        "",
        "Hash=ab,",
        "URI=spiffe://example.org/w;Subject=\"CN=x",
        "Hash=ab;Subject",
        "Hash=ab;=x",
        "Hash=ab;Sub ject=x",
        "Subject=a\"b",
        "Subject=\"a\"b\"",
        "Subject=\"CN=x\\\"",
        "Cert=%zz",
        "Cert=%4",
        "Cert=%ff%fe",
    ] {
        assert!(
            matches!(identity_from_forwarded(value), Err(AuthError::Malformed(_))),
            "{value}"
        );
    }
}

#[test]
fn values_without_a_usable_identity_are_invalid() {
    for value in [
        "Hash=ab;URI=https://example.org/w",
        "Hash=ab;DNS=client.example",
        "Hash=ab;Subject=\"\"",
        "Hash=ab;Subject=\"not a name\"",
        "URI=spiffe://Example.org/w",
        "URI=spiffe://example.org/a;URI=spiffe://example.org/b",
        "URI=https://example.org/a;URI=spiffe://example.org/b",
        "Subject=\"CN=a\";Subject=\"CN=b\"",
    ] {
        assert_eq!(
            identity_from_forwarded(value),
            Err(AuthError::Invalid),
            "{value}"
        );
    }
}

#[test]
fn oversized_values_are_refused() {
    let long = format!("URI=spiffe://example.org/w;Hash={}", "a".repeat(16 << 10));
    assert!(matches!(
        identity_from_forwarded(&long),
        Err(AuthError::Malformed(_))
    ));
    let many = vec!["Hash=ab"; 33].join(",") + ",URI=spiffe://example.org/w";
    assert!(matches!(
        identity_from_forwarded(&many),
        Err(AuthError::Malformed(_))
    ));
    let pairs = vec!["DNS=a"; 33].join(";") + ";URI=spiffe://example.org/w";
    assert!(matches!(
        identity_from_forwarded(&pairs),
        Err(AuthError::Malformed(_))
    ));
}
