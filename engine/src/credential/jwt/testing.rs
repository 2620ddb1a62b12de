//! Token minting for policy tests (`*_test.yaml` fixtures) and for the
//! engine's own tests. Not for production issuing.
//!
//! [`sign`] goes through `jsonwebtoken::encode` (an encoder independent of
//! the verifier's own parser); [`sign_raw`] signs header and payload bytes
//! exactly as given, so tests can build hostile but validly signed tokens
//! (duplicate members, `crit`, embedded keys, ...).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::compact;
use crate::policy::JwtAlgorithm;

/// The `jsonwebtoken` name of `alg` (also for the benchmark harness's minting).
pub fn jwt_alg(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// Signs `claims` with `key`: a PEM private key (PKCS#8, or PKCS#1 for RSA),
/// or the raw secret for HS algorithms.
pub fn sign(
    alg: JwtAlgorithm,
    key: &[u8],
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &serde_json::Value,
) -> Result<String, String> {
    let a = jwt_alg(alg);
    let enc = match alg {
        JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => {
            EncodingKey::from_secret(key)
        }
        JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => {
            EncodingKey::from_ec_pem(key).map_err(|e| format!("bad ec private key: {e}"))?
        }
        JwtAlgorithm::EdDSA => {
            EncodingKey::from_ed_pem(key).map_err(|e| format!("bad ed25519 private key: {e}"))?
        }
        _ => EncodingKey::from_rsa_pem(key).map_err(|e| format!("bad rsa private key: {e}"))?,
    };
    let mut header = Header::new(a);
    header.typ = typ.map(str::to_owned);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &enc).map_err(|e| format!("cannot sign: {e}"))
}

/// Signs exactly these header and payload bytes (base64url-encoded here).
pub fn sign_raw(
    alg: JwtAlgorithm,
    key: &[u8],
    header_json: &[u8],
    payload: &[u8],
) -> Result<String, String> {
    let input = format!(
        "{}.{}",
        compact::encode(header_json),
        compact::encode(payload)
    );
    let s = signature(alg, key, input.as_bytes())?;
    Ok(format!("{input}.{}", compact::encode(&s)))
}

/// The raw signature of `message` (for tests that assemble tokens by hand).
pub fn signature(alg: JwtAlgorithm, key: &[u8], message: &[u8]) -> Result<Vec<u8>, String> {
    use aws_lc_rs::hmac;
    use JwtAlgorithm::*;
    let rng = SystemRandom::new();
    let hmac_with = |h| {
        hmac::sign(&hmac::Key::new(h, key), message)
            .as_ref()
            .to_vec()
    };
    Ok(match alg {
        HS256 => hmac_with(hmac::HMAC_SHA256),
        HS384 => hmac_with(hmac::HMAC_SHA384),
        HS512 => hmac_with(hmac::HMAC_SHA512),
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
            let der = pem_der(key)?;
            let kp = RsaKeyPair::from_pkcs8(&der)
                .or_else(|_| RsaKeyPair::from_der(&der))
                .map_err(|e| format!("bad rsa private key: {e}"))?;
            let pad: &'static dyn sig::RsaEncoding = match alg {
                RS256 => &sig::RSA_PKCS1_SHA256,
                RS384 => &sig::RSA_PKCS1_SHA384,
                RS512 => &sig::RSA_PKCS1_SHA512,
                PS256 => &sig::RSA_PSS_SHA256,
                PS384 => &sig::RSA_PSS_SHA384,
                _ => &sig::RSA_PSS_SHA512,
            };
            let mut out = vec![0; kp.public_modulus_len()];
            kp.sign(pad, &rng, message, &mut out)
                .map_err(|_| "rsa signing failed".to_string())?;
            out
        }
        ES256 | ES384 => {
            let der = pem_der(key)?;
            let a = if alg == ES256 {
                &sig::ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &sig::ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let kp = EcdsaKeyPair::from_pkcs8(a, &der)
                .map_err(|e| format!("bad ec private key: {e}"))?;
            kp.sign(&rng, message)
                .map_err(|_| "ecdsa signing failed".to_string())?
                .as_ref()
                .to_vec()
        }
        EdDSA => {
            let der = pem_der(key)?;
            let kp = Ed25519KeyPair::from_pkcs8(&der)
                .map_err(|e| format!("bad ed25519 private key: {e}"))?;
            kp.sign(message).as_ref().to_vec()
        }
    })
}

fn pem_der(pem: &[u8]) -> Result<Vec<u8>, String> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not pem: {e}"))?;
    Ok(p.contents)
}
