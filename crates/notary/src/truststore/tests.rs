//! Tests of store references, the store's paths and reading rules, and the
//! certificate file formats and anchor checks.

use super::*;

#[test]
fn store_types_round_trip_their_prefixes() {
    for t in StoreType::ALL {
        assert_eq!(StoreType::from_prefix(t.prefix()), Some(t));
        assert_eq!(t.prefix().parse::<StoreType>().unwrap(), t);
    }
    assert_eq!(StoreType::Ca.prefix(), "ca");
    assert_eq!(StoreType::SigningAuthority.prefix(), "signingAuthority");
    assert_eq!(StoreType::Tsa.prefix(), "tsa");
    assert_eq!(StoreType::from_prefix("CA"), None);
    assert_eq!(StoreType::from_prefix("signingauthority"), None);
    assert_eq!(StoreType::from_prefix("x509"), None);
}

#[test]
fn store_refs_parse_and_print() {
    let r: StoreRef = "ca:acme-rockets".parse().unwrap();
    assert_eq!(r.kind, StoreType::Ca);
    assert_eq!(r.name, "acme-rockets");
    assert_eq!(r.to_string(), "ca:acme-rockets");
    let r: StoreRef = "signingAuthority:a_b.C-9".parse().unwrap();
    assert_eq!(r.kind, StoreType::SigningAuthority);
    assert_eq!(r.to_string(), "signingAuthority:a_b.C-9");
    let r: StoreRef = "tsa:wabbit-networks.io".parse().unwrap();
    assert_eq!(r.kind, StoreType::Tsa);
}

#[test]
fn bad_store_refs_say_why() {
    assert_eq!(
        "ca".parse::<StoreRef>(),
        Err(StoreRefError::MissingSeparator { value: "ca".into() })
    );
    assert_eq!(
        "*".parse::<StoreRef>(),
        Err(StoreRefError::MissingSeparator { value: "*".into() })
    );
    assert_eq!(
        "x509:foo".parse::<StoreRef>(),
        Err(StoreRefError::UnknownType {
            value: "x509:foo".into(),
            kind: "x509".into()
        })
    );
    assert!(matches!(
        "CA:foo".parse::<StoreRef>(),
        Err(StoreRefError::UnknownType { .. })
    ));
    for bad in [
        "ca:", "ca:a/b", "ca:..", "ca:.", "ca:a:b", "ca:#@$", "ca:a b", "ca:é",
    ] {
        assert!(
            matches!(
                bad.parse::<StoreRef>(),
                Err(StoreRefError::InvalidName { .. })
            ),
            "{bad}"
        );
    }
    let msg = "ca:".parse::<StoreRef>().unwrap_err().to_string();
    assert!(
        msg.contains("invalid name") && msg.contains("[a-zA-Z0-9_.-]"),
        "{msg}"
    );
    assert!(StoreRef::new(StoreType::Ca, "ok.name").is_ok());
    assert!(StoreRef::new(StoreType::Ca, "../x").is_err());
}

#[test]
fn store_directory_layout_is_notations() {
    let ts = TrustStore::new("/cfg/notation/truststore");
    let r: StoreRef = "signingAuthority:sa1".parse().unwrap();
    assert_eq!(
        ts.store_dir(&r),
        PathBuf::from("/cfg/notation/truststore/x509/signingAuthority/sa1")
    );
}

#[cfg(all(unix, not(target_os = "macos")))]
#[test]
fn default_root_follows_xdg_config_home() {
    // Reading the environment only: other tests do not change it.
    let expected = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) if PathBuf::from(&x).is_absolute() => {
            Some(PathBuf::from(x).join("notation/truststore"))
        }
        Some(_) => None,
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|h| PathBuf::from(h).join(".config/notation/truststore")),
    };
    assert_eq!(default_root(), expected);
}

#[test]
fn pem_parsing_finds_every_certificate_block_and_skips_others() {
    let der = rcgen::generate_simple_self_signed(vec!["pem-test".to_string()])
        .unwrap()
        .cert
        .der()
        .to_vec();
    let pem = |label: &str, der: &[u8]| {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let mut s = format!("-----BEGIN {label}-----\n");
        for c in b.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(c).unwrap());
            s.push('\n');
        }
        s.push_str(&format!("-----END {label}-----\n"));
        s
    };
    let text = format!(
        "explanatory text\n{}{}{}",
        pem("CERTIFICATE", &der),
        pem("PRIVATE KEY", b"not a key"),
        pem("CERTIFICATE", &der)
    );
    let got = read_certificates(text.as_bytes()).unwrap();
    assert_eq!(got, vec![der.clone(), der.clone()]);

    // DER, one and two concatenated.
    assert_eq!(read_certificates(&der).unwrap(), vec![der.clone()]);
    let two = [der.clone(), der.clone()].concat();
    assert_eq!(read_certificates(&two).unwrap().len(), 2);

    // Nothing usable.
    assert!(matches!(
        read_certificates(pem("PRIVATE KEY", b"k").as_bytes()),
        Err(FileError::NoCertificate(_))
    ));
    assert!(matches!(
        read_certificates(b""),
        Err(FileError::NoCertificate(_))
    ));
    assert!(matches!(
        read_certificates(b"hello world"),
        Err(FileError::NoCertificate(_))
    ));
    // A certificate block that is not a certificate.
    assert!(matches!(
        read_certificates(pem("CERTIFICATE", b"garbage").as_bytes()),
        Err(FileError::Bad { index: 1, .. })
    ));
    // Unterminated block.
    let cut = pem("CERTIFICATE", &der).replace("-----END CERTIFICATE-----\n", "");
    assert!(matches!(
        read_certificates(cut.as_bytes()),
        Err(FileError::Bad { .. })
    ));
    // Trailing junk after a DER certificate.
    let junk = [der.clone(), b"xx".to_vec()].concat();
    assert!(matches!(
        read_certificates(&junk),
        Err(FileError::Bad { index: 2, .. })
    ));
}
