//! Verification keys: each parsed once at load and bound to exactly one
//! algorithm, verified with aws-lc-rs directly.
//!
//! Why not `jsonwebtoken::decode`: its `DecodingKey` keeps key bytes and the
//! backend re-parses the public key (an `EVP_PKEY`) on every verification,
//! plus it builds a verifier object per token. Holding an
//! `aws_lc_rs::signature::ParsedPublicKey` (or an `hmac::Key`) per key makes
//! a token cost the signature check and little else.

use std::fmt;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};

use crate::policy::JwtAlgorithm;

/// Smallest RSA modulus accepted, in bits (RFC 7518 section 3.3, NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;

/// What kind of key material an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Hmac,
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// The key family of an algorithm.
pub fn family(alg: JwtAlgorithm) -> Family {
    use JwtAlgorithm::*;
    match alg {
        HS256 | HS384 | HS512 => Family::Hmac,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 => Family::P256,
        ES384 => Family::P384,
        EdDSA => Family::Ed25519,
    }
}

/// Why key material was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The material is not of the family the algorithm needs (key confusion).
    #[error("a {found} key cannot verify `{alg}`")]
    WrongFamily {
        alg: &'static str,
        found: &'static str,
    },
    /// An HMAC secret shorter than the hash output.
    #[error("hmac secret for `{alg}` is {len} bytes; at least {min} are required")]
    ShortSecret {
        alg: &'static str,
        len: usize,
        min: usize,
    },
    /// An RSA modulus under 2048 bits.
    #[error("rsa key of {bits} bits is too small; at least 2048 are required")]
    WeakRsa { bits: usize },
    /// The backend refused the key (bad encoding, wrong curve, point not on curve).
    #[error("key rejected: {0}")]
    Rejected(String),
}

enum Material {
    // Boxed: an aws-lc HMAC key holds its precomputed state inline (over 1 KiB).
    Hmac(Box<hmac::Key>),
    Public(ParsedPublicKey),
}

/// One verification key, bound to one algorithm.
pub struct VerifyingKey {
    alg: JwtAlgorithm,
    kid: Option<Box<str>>,
    material: Material,
}

// Hand-written: an HMAC key is a secret and must never be printed.
impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg.name())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn hmac_alg(alg: JwtAlgorithm) -> Option<hmac::Algorithm> {
    match alg {
        JwtAlgorithm::HS256 => Some(hmac::HMAC_SHA256),
        JwtAlgorithm::HS384 => Some(hmac::HMAC_SHA384),
        JwtAlgorithm::HS512 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

fn rsa_params(alg: JwtAlgorithm) -> Option<&'static signature::RsaParameters> {
    use JwtAlgorithm::*;
    Some(match alg {
        RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn public_alg(alg: JwtAlgorithm) -> Option<&'static dyn signature::VerificationAlgorithm> {
    match alg {
        JwtAlgorithm::ES256 => Some(&signature::ECDSA_P256_SHA256_FIXED),
        JwtAlgorithm::ES384 => Some(&signature::ECDSA_P384_SHA384_FIXED),
        JwtAlgorithm::EdDSA => Some(&signature::ED25519),
        other => rsa_params(other).map(|p| p as &'static dyn signature::VerificationAlgorithm),
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::Hmac => "hmac",
        Family::Rsa => "rsa",
        Family::P256 => "p-256",
        Family::P384 => "p-384",
        Family::Ed25519 => "ed25519",
    }
}

fn expect_family(alg: JwtAlgorithm, found: Family) -> Result<(), KeyError> {
    if family(alg) == found {
        Ok(())
    } else {
        Err(KeyError::WrongFamily {
            alg: alg.name(),
            found: family_name(found),
        })
    }
}

/// Bits of a big-endian unsigned integer.
pub fn bit_len(be: &[u8]) -> usize {
    let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
    let rest = be.get(start..).unwrap_or_default();
    match rest.first() {
        None => 0,
        Some(&top) => (rest.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

impl VerifyingKey {
    /// An HMAC key. Only ever built from a configured secret, never from
    /// public-key material; the secret must be at least the hash length.
    pub fn hmac(alg: JwtAlgorithm, secret: &[u8], kid: Option<&str>) -> Result<Self, KeyError> {
        let (Some(h), Some(min)) = (hmac_alg(alg), alg.hmac_min_len()) else {
            return Err(KeyError::WrongFamily {
                alg: alg.name(),
                found: "hmac",
            });
        };
        if secret.len() < min {
            return Err(KeyError::ShortSecret {
                alg: alg.name(),
                len: secret.len(),
                min,
            });
        }
        Ok(Self {
            alg,
            kid: kid.map(Into::into),
            material: Material::Hmac(Box::new(hmac::Key::new(h, secret))),
        })
    }

    /// An RSA key from its modulus and exponent (a JWK's `n` and `e`).
    pub fn rsa_components(
        alg: JwtAlgorithm,
        n: &[u8],
        e: &[u8],
        kid: Option<&str>,
    ) -> Result<Self, KeyError> {
        expect_family(alg, Family::Rsa)?;
        let bits = bit_len(n);
        if bits < MIN_RSA_BITS {
            return Err(KeyError::WeakRsa { bits });
        }
        let params = rsa_params(alg).ok_or(KeyError::WrongFamily {
            alg: alg.name(),
            found: "rsa",
        })?;
        let parsed = RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(params)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Self {
            alg,
            kid: kid.map(Into::into),
            material: Material::Public(parsed),
        })
    }

    /// A public key from DER: a SubjectPublicKeyInfo (what a PEM `PUBLIC
    /// KEY` or a certificate holds) or, for RSA, a PKCS#1 `RSAPublicKey`.
    /// `found` is the family the caller read from the encoding.
    pub fn public_der(
        alg: JwtAlgorithm,
        found: Family,
        der: &[u8],
        kid: Option<&str>,
    ) -> Result<Self, KeyError> {
        expect_family(alg, found)?;
        if found == Family::Rsa {
            let pk = aws_lc_rs::rsa::PublicKey::from_der(der)
                .map_err(|e| KeyError::Rejected(e.to_string()))?;
            let bits = signature::RsaParameters::public_modulus_len(pk.as_ref())
                .map_err(|e| KeyError::Rejected(e.to_string()))?;
            let bits = usize::try_from(bits).unwrap_or(0);
            if bits < MIN_RSA_BITS {
                return Err(KeyError::WeakRsa { bits });
            }
        }
        Self::public_raw(alg, der, kid)
    }

    /// An EC point (`04 || x || y`) or an Ed25519 public key (32 bytes), as
    /// a JWK gives them. The backend checks the point is on the curve.
    pub fn public_point(
        alg: JwtAlgorithm,
        bytes: &[u8],
        kid: Option<&str>,
    ) -> Result<Self, KeyError> {
        match family(alg) {
            Family::P256 | Family::P384 | Family::Ed25519 => Self::public_raw(alg, bytes, kid),
            f => Err(KeyError::WrongFamily {
                alg: alg.name(),
                found: family_name(f),
            }),
        }
    }

    fn public_raw(alg: JwtAlgorithm, bytes: &[u8], kid: Option<&str>) -> Result<Self, KeyError> {
        let va = public_alg(alg).ok_or(KeyError::WrongFamily {
            alg: alg.name(),
            found: "hmac",
        })?;
        let parsed =
            ParsedPublicKey::new(va, bytes).map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Self {
            alg,
            kid: kid.map(Into::into),
            material: Material::Public(parsed),
        })
    }

    pub fn alg(&self) -> JwtAlgorithm {
        self.alg
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Checks `signature` over `message`. The signature must have the exact
    /// length the algorithm produces (ES256 64 bytes, ES384 96, EdDSA 64,
    /// HMAC the tag length; RSA the modulus length, checked by the backend),
    /// so DER-encoded or padded ECDSA signatures never reach the backend,
    /// which itself refuses r or s outside [1, n-1]. MACs are compared in
    /// constant time by `hmac::verify`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let want = match self.alg {
            JwtAlgorithm::ES256 | JwtAlgorithm::EdDSA | JwtAlgorithm::HS512 => Some(64),
            JwtAlgorithm::ES384 => Some(96),
            JwtAlgorithm::HS384 => Some(48),
            JwtAlgorithm::HS256 => Some(32),
            _ => None,
        };
        if want.is_some_and(|w| w != sig.len()) {
            return false;
        }
        match &self.material {
            Material::Hmac(k) => hmac::verify(k, message, sig).is_ok(),
            Material::Public(k) => k.verify_sig(message, sig).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[0, 0]), 0);
        assert_eq!(bit_len(&[1]), 1);
        assert_eq!(bit_len(&[0, 0x80, 0]), 16);
        assert_eq!(bit_len(&[0x7f; 256]), 2047);
    }

    #[test]
    fn hmac_policy() {
        assert!(matches!(
            VerifyingKey::hmac(JwtAlgorithm::HS256, &[7; 31], None),
            Err(KeyError::ShortSecret { min: 32, .. })
        ));
        assert!(matches!(
            VerifyingKey::hmac(JwtAlgorithm::HS256, b"", None),
            Err(KeyError::ShortSecret { .. })
        ));
        assert!(matches!(
            VerifyingKey::hmac(JwtAlgorithm::RS256, &[7; 64], None),
            Err(KeyError::WrongFamily { .. })
        ));
        let k = VerifyingKey::hmac(JwtAlgorithm::HS384, &[7; 48], Some("a")).unwrap();
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA384, &[7; 48]), b"m");
        assert!(k.verify(b"m", tag.as_ref()));
        assert!(!k.verify(b"n", tag.as_ref()));
        assert!(!k.verify(b"m", tag.as_ref().get(..47).unwrap()));
        assert!(!format!("{k:?}").contains('7'));
    }
}
