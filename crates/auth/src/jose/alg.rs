//! The signature algorithms a token may name (RFC 7518 §3), and which key
//! type each needs.

use super::JoseError;

/// An accepted JWS algorithm. HMAC and `none` are not among them: a
/// verifier holds public keys only, and a token must never pick a weaker
/// kind of check than the key was published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    Es256,
    Es384,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
}

/// The family of key an algorithm verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    P256,
    P384,
    Rsa,
}

impl Alg {
    /// The algorithm a header's `alg` names; the refusal says which kind
    /// of algorithm it was without repeating the token's text.
    pub(crate) fn parse(name: &str) -> Result<Alg, JoseError> {
        Ok(match name {
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "none" | "None" | "NONE" => {
                return Err(JoseError::Algorithm("unsigned tokens (alg none)"))
            }
            "HS256" | "HS384" | "HS512" => {
                return Err(JoseError::Algorithm(
                    "HMAC (shared secrets) is not accepted",
                ))
            }
            _ => {
                return Err(JoseError::Algorithm(
                    "not one of ES256, ES384, RS256, RS384, RS512, PS256",
                ))
            }
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
        }
    }

    /// The key family the algorithm needs: an ES256 token only ever meets
    /// a P-256 key, an RS256 token only an RSA key.
    pub(crate) fn family(self) -> Family {
        match self {
            Alg::Es256 => Family::P256,
            Alg::Es384 => Family::P384,
            Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 => Family::Rsa,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_names_round_trip() {
        for alg in [
            Alg::Es256,
            Alg::Es384,
            Alg::Rs256,
            Alg::Rs384,
            Alg::Rs512,
            Alg::Ps256,
        ] {
            assert_eq!(Alg::parse(alg.as_str()), Ok(alg));
        }
    }

    #[test]
    fn none_hmac_and_others_are_refused() {
        for name in [
            "none", "NONE", "HS256", "HS384", "HS512", "ES512", "PS384", "EdDSA", "", "es256",
        ] {
            assert!(
                matches!(Alg::parse(name), Err(JoseError::Algorithm(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn families_follow_the_algorithm() {
        assert_eq!(Alg::Es256.family(), Family::P256);
        assert_eq!(Alg::Es384.family(), Family::P384);
        assert_eq!(Alg::Ps256.family(), Family::Rsa);
        assert_eq!(Alg::Rs512.family(), Family::Rsa);
    }
}
