//! Signing keys generated per run, and the tokens the harness presents.
//!
//! Keys come from aws-lc-rs (the engine's own crypto library); tokens are
//! minted by the engine's test signer, which goes through `jsonwebtoken`
//! (an encoder independent of the verifier under test), so a token the
//! server accepts proves the two agree.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_engine::credential::jwt::testing::sign;
use portcullis_engine::policy::JwtAlgorithm;

use super::mechanism::{JwtKeyRef, AUDIENCE, ISSUER, SCOPE};

/// A signing key and how the server finds its verifying half.
pub struct SigningKey {
    alg: JwtAlgorithm,
    /// PKCS#8 PEM private key, or the HMAC secret's bytes.
    signing: Vec<u8>,
    /// HMAC secret (HS algorithms), handed to the server in its environment.
    secret: Option<String>,
    /// SubjectPublicKeyInfo PEM (public-key algorithms).
    public_pem: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg.name())
            .finish_non_exhaustive()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn err(e: impl std::fmt::Display) -> String {
    format!("cannot generate a signing key: {e}")
}

impl SigningKey {
    /// A fresh key for `alg` (RSA: 2048 bits).
    pub fn generate(alg: JwtAlgorithm) -> Result<Self, String> {
        use JwtAlgorithm::*;
        let rng = SystemRandom::new();
        let (private_pem, public_der): (String, Vec<u8>) = match alg {
            HS256 | HS384 | HS512 => {
                // 64 alphanumeric characters: at least the hash length of every HS algorithm.
                let secret: String = (0..64).map(|_| fastrand::alphanumeric()).collect();
                return Ok(SigningKey {
                    alg,
                    signing: secret.as_bytes().to_vec(),
                    secret: Some(secret),
                    public_pem: None,
                });
            }
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
                let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(err)?;
                let der: Pkcs8V1Der = kp.as_der().map_err(err)?;
                let spki: PublicKeyX509Der = kp.public_key().as_der().map_err(err)?;
                (pem("PRIVATE KEY", der.as_ref()), spki.as_ref().to_vec())
            }
            ES256 | ES384 => {
                let curve = if alg == ES256 {
                    &ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let doc = EcdsaKeyPair::generate_pkcs8(curve, &rng).map_err(err)?;
                let kp = EcdsaKeyPair::from_pkcs8(curve, doc.as_ref()).map_err(err)?;
                let spki: PublicKeyX509Der = kp.public_key().as_der().map_err(err)?;
                (pem("PRIVATE KEY", doc.as_ref()), spki.as_ref().to_vec())
            }
            EdDSA => {
                let doc = Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(err)?;
                let kp = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(err)?;
                let spki: PublicKeyX509Der = kp.public_key().as_der().map_err(err)?;
                (pem("PRIVATE KEY", doc.as_ref()), spki.as_ref().to_vec())
            }
        };
        Ok(SigningKey {
            alg,
            signing: private_pem.into_bytes(),
            secret: None,
            public_pem: Some(pem("PUBLIC KEY", &public_der)),
        })
    }

    pub fn alg(&self) -> JwtAlgorithm {
        self.alg
    }

    /// The HMAC secret, for the server's environment (HS algorithms only).
    pub fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    /// Writes the verifying key beside the policy (public-key algorithms)
    /// and says how the policy names it.
    pub fn install(&self, dir: &Path, name: &str) -> Result<JwtKeyRef, String> {
        match &self.public_pem {
            Some(p) => {
                let file = format!("{name}.pub.pem");
                std::fs::write(dir.join(&file), p)
                    .map_err(|e| format!("cannot write `{file}`: {e}"))?;
                Ok(JwtKeyRef::PemFile(file))
            }
            None => Ok(JwtKeyRef::SecretEnv),
        }
    }

    /// A token for `sub` with the bench issuer, audience and scope, issued
    /// now and living `ttl`.
    pub fn token(&self, sub: &str, ttl: Duration) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = serde_json::json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "scope": SCOPE,
            "iat": now,
            "exp": now + ttl.as_secs().max(1),
            "jti": format!("{sub}-{}", fastrand::u64(..)),
        });
        sign(self.alg, &self.signing, None, Some("JWT"), &claims)
            .map_err(|e| format!("cannot sign a token: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use portcullis_engine::credential::jwt::testing::jwt_alg;

    #[test]
    fn every_algorithm_signs_a_verifiable_token() {
        let dir = tempfile::tempdir().unwrap();
        for alg in JwtAlgorithm::ALL {
            let k = SigningKey::generate(alg).unwrap();
            let t = k.token("user-1", Duration::from_secs(60)).unwrap();
            let parts: Vec<&str> = t.split('.').collect();
            assert_eq!(parts.len(), 3);
            let header: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
            assert_eq!(header["alg"], alg.name());
            // Verify with jsonwebtoken against the installed public key (or the secret).
            let decoding = match k.install(dir.path(), alg.name()).unwrap() {
                JwtKeyRef::SecretEnv => {
                    jsonwebtoken::DecodingKey::from_secret(k.secret().unwrap().as_bytes())
                }
                JwtKeyRef::PemFile(f) => {
                    let pem = std::fs::read(dir.path().join(f)).unwrap();
                    match alg {
                        JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => {
                            jsonwebtoken::DecodingKey::from_ec_pem(&pem).unwrap()
                        }
                        JwtAlgorithm::EdDSA => {
                            jsonwebtoken::DecodingKey::from_ed_pem(&pem).unwrap()
                        }
                        _ => jsonwebtoken::DecodingKey::from_rsa_pem(&pem).unwrap(),
                    }
                }
            };
            let mut v = jsonwebtoken::Validation::new(jwt_alg(alg));
            v.set_audience(&[AUDIENCE]);
            v.set_issuer(&[ISSUER]);
            let data = jsonwebtoken::decode::<serde_json::Value>(&t, &decoding, &v).unwrap();
            assert_eq!(data.claims["sub"], "user-1");
            assert_eq!(data.claims["scope"], SCOPE);
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let k = SigningKey::generate(JwtAlgorithm::HS256).unwrap();
        let d = format!("{k:?}");
        assert!(!d.contains(k.secret().unwrap()));
    }
}
