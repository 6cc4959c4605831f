//! The TSA's certificates: finding the signer among the token's
//! certificates, checking the `signing-certificate-v2` attribute, the
//! signature algorithm, and building the chain to a trusted TSA root.

use super::asn1::{
    inner, integer_digits, Hash, Tlv, CTX4_CONS, INTEGER, NULL, OCTET_STRING, OID_EC_PUBLIC_KEY,
    OID_RSA_ENCRYPTION, OID_RSA_PSS, OID_SUBJECT_KEY_ID, SEQUENCE,
};
use super::token::{SignerId, SignerInfo};
use super::{malformed, Result, TimestampError};
use crate::x509::Cert;
use der::{Decode, Encode};

fn parsed(c: &Cert) -> Result<x509_cert::Certificate> {
    x509_cert::Certificate::from_der(c.der())
        .map_err(|e| malformed(format!("certificate {}: {e}", c.subject())))
}

fn serial_of(c: &x509_cert::Certificate) -> &[u8] {
    integer_digits(c.tbs_certificate.serial_number.as_bytes())
}

fn subject_key_id(c: &x509_cert::Certificate) -> Option<Vec<u8>> {
    let ext = c
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == OID_SUBJECT_KEY_ID)?;
    x509_cert::ext::pkix::SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes())
        .ok()
        .map(|k| k.0.as_bytes().to_vec())
}

/// The token certificate the SignerInfo names.
pub(super) fn find_signer<'c>(certs: &'c [Cert], sid: &SignerId<'_>) -> Result<&'c Cert> {
    for c in certs {
        let p = parsed(c)?;
        let hit = match sid {
            SignerId::IssuerSerial { issuer, serial } => {
                x509_cert::name::Name::from_der(issuer).is_ok_and(|n| n == p.tbs_certificate.issuer)
                    && integer_digits(serial) == serial_of(&p)
            }
            SignerId::KeyId(id) => subject_key_id(&p).is_some_and(|k| k == *id),
        };
        if hit {
            return Ok(c);
        }
    }
    Err(TimestampError::SigningCertificate(
        "the signer certificate is not among the token's certificates".into(),
    ))
}

/// Checks the `signing-certificate-v2` attribute (RFC 5035) against the
/// signer certificate: its first ESSCertIDv2 must carry the certificate's
/// hash and, when present, its issuer and serial number.
pub(super) fn check_signing_certificate_v2(value: &Tlv<'_>, signer: &Cert) -> Result<()> {
    let bad =
        |why: &str| TimestampError::SigningCertificate(format!("signing-certificate-v2 {why}"));
    if value.tag != SEQUENCE {
        return Err(bad("is not a SEQUENCE"));
    }
    let mut r = inner(value);
    let certs = r.expect(SEQUENCE, "signing-certificate-v2 certs")?;
    let mut cr = inner(&certs);
    if cr.is_empty() {
        return Err(bad("names no certificate"));
    }
    let first = cr.expect(SEQUENCE, "ESSCertIDv2")?;
    let mut er = inner(&first);
    let hash = match er.optional(SEQUENCE, "ESSCertIDv2 hashAlgorithm")? {
        Some(alg) => Hash::from_algorithm(&alg, "signing-certificate-v2")?,
        None => Hash::Sha256,
    };
    let cert_hash = er.expect(OCTET_STRING, "ESSCertIDv2 certHash")?.value;
    if hash.digest(signer.der()) != cert_hash {
        return Err(bad(&format!(
            "does not match the signer certificate {} ({} hash)",
            signer.subject(),
            hash.name()
        )));
    }
    if let Some(is) = er.optional(SEQUENCE, "ESSCertIDv2 issuerSerial")? {
        let p = parsed(signer)?;
        let mut ir = inner(&is);
        let names = ir.expect(SEQUENCE, "issuerSerial issuer")?;
        let serial = ir.expect(INTEGER, "issuerSerial serialNumber")?.value;
        let mut nr = inner(&names);
        let mut issuer_matches = false;
        while !nr.is_empty() {
            let gn = nr.next("issuerSerial GeneralName")?;
            if gn.tag == CTX4_CONS {
                issuer_matches |= x509_cert::name::Name::from_der(gn.value)
                    .is_ok_and(|n| n == p.tbs_certificate.issuer);
            }
        }
        if !issuer_matches || integer_digits(serial) != serial_of(&p) {
            return Err(bad(
                "issuerSerial does not name the signer certificate's issuer and serial number",
            ));
        }
    }
    er.finish("ESSCertIDv2")?;
    Ok(())
}

/// The signature algorithm for `PublicKey::verify_x509`: CMS allows the bare
/// key algorithm (`rsaEncryption`, `id-ecPublicKey`) with the hash given by
/// the digest algorithm.
pub(super) fn signature_algorithm(si: &SignerInfo<'_>) -> Result<spki::AlgorithmIdentifierOwned> {
    let alg = spki::AlgorithmIdentifierOwned::from_der(si.signature_algorithm.raw)
        .map_err(|e| malformed(format!("SignerInfo signatureAlgorithm: {e}")))?;
    // Only RSASSA-PSS has parameters that matter; others have none or NULL.
    let plain = alg
        .parameters
        .as_ref()
        .is_none_or(|p| p.to_der().is_ok_and(|d| d == [NULL, 0]));
    if !plain && alg.oid != OID_RSA_PSS && alg.oid != OID_EC_PUBLIC_KEY {
        return Err(malformed(
            "SignerInfo signatureAlgorithm: unexpected parameters",
        ));
    }
    let oid = if alg.oid == OID_RSA_ENCRYPTION {
        si.digest.rsa_pkcs1_oid()
    } else if alg.oid == OID_EC_PUBLIC_KEY {
        si.digest.ecdsa_oid()
    } else {
        return Ok(alg);
    };
    Ok(spki::AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    })
}

/// Whether `issuer`'s key signed `child` (else why not).
fn signed_by(child: &x509_cert::Certificate, issuer: &Cert) -> std::result::Result<(), String> {
    let key = issuer.public_key().map_err(|e| e.to_string())?;
    let tbs = child.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    key.verify_x509(
        &child.signature_algorithm,
        &tbs,
        child.signature.raw_bytes(),
    )
    .map_err(|e| e.to_string())
}

/// Longest chain looked for (leaf included).
const MAX_CHAIN: usize = 10;
/// Most certificates tried while looking for a chain.
const MAX_TRIES: usize = 200;

/// Looks for a chain from a signer certificate through the token's
/// certificates (and the trust store's) to a certificate byte-equal to a
/// trust store certificate, trying every issuer of the right name whose key
/// signed the certificate (those of the trust store first): tokens carry
/// cross-certificates and other roots beside the path that is trusted.
struct ChainSearch<'a> {
    pool: &'a [Cert],
    roots: &'a [Vec<u8>],
    tries: usize,
    /// Why the first path tried ended.
    dead_end: Option<String>,
}

impl ChainSearch<'_> {
    fn trusted(&self, c: &Cert) -> bool {
        self.roots.iter().any(|r| r.as_slice() == c.der())
    }

    fn dead_end(&mut self, why: String) {
        self.dead_end.get_or_insert(why);
    }

    /// Extends `chain` to a trusted certificate; false when it cannot.
    fn extend(&mut self, chain: &mut Vec<Cert>) -> Result<bool> {
        let Some(current) = chain.last() else {
            return Ok(false);
        };
        if self.trusted(current) {
            return Ok(true);
        }
        let cur = parsed(current)?;
        if cur.tbs_certificate.issuer == cur.tbs_certificate.subject {
            self.dead_end(format!(
                "it ends at {}, which is not in the TSA trust store",
                current.subject()
            ));
            return Ok(false);
        }
        if chain.len() >= MAX_CHAIN {
            self.dead_end(format!("no trusted root within {MAX_CHAIN} certificates"));
            return Ok(false);
        }
        // Issuers of that name whose key signed it, those of the trust
        // store first.
        let mut candidates: Vec<&Cert> = Vec::new();
        let mut refused: Option<String> = None;
        for c in self.pool {
            if chain.iter().any(|k| k.der() == c.der())
                || candidates.iter().any(|k| k.der() == c.der())
                || parsed(c)?.tbs_certificate.subject != cur.tbs_certificate.issuer
            {
                continue;
            }
            match signed_by(&cur, c) {
                Ok(()) => candidates.push(c),
                Err(why) => {
                    refused.get_or_insert(why);
                }
            }
        }
        if candidates.is_empty() {
            self.dead_end(match refused {
                Some(why) => format!(
                    "no certificate named {} signed {}: {why}",
                    current.issuer(),
                    current.subject()
                ),
                None => format!(
                    "neither the token nor the TSA trust store has the issuer of {} ({})",
                    current.subject(),
                    current.issuer()
                ),
            });
            return Ok(false);
        }
        candidates.sort_by_key(|c| !self.trusted(c));
        for c in candidates {
            self.tries += 1;
            if self.tries > MAX_TRIES {
                self.dead_end("too many candidate certificates".into());
                return Ok(false);
            }
            chain.push(c.clone());
            if self.extend(chain)? {
                return Ok(true);
            }
            chain.pop();
        }
        Ok(false)
    }
}

/// The chain from `signer` through `pool` to a certificate byte-equal to one
/// of `roots`.
pub(super) fn build_chain(signer: &Cert, pool: &[Cert], roots: &[Vec<u8>]) -> Result<Vec<Cert>> {
    let mut search = ChainSearch {
        pool,
        roots,
        tries: 0,
        dead_end: None,
    };
    let mut chain = vec![signer.clone()];
    if search.extend(&mut chain)? {
        Ok(chain)
    } else {
        Err(TimestampError::Untrusted(
            search
                .dead_end
                .unwrap_or_else(|| "no chain to a trusted root".into()),
        ))
    }
}
