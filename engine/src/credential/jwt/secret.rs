//! `secret_env` keys: an HMAC secret read from the environment at load.
//!
//! The value is used as raw bytes; a value starting with `base64url:` is
//! decoded (strict, unpadded) so binary secrets fit in an environment
//! variable. HMAC keys are built from nothing else: never from a JWKS, a
//! PEM file or any public-key material, which is how RS→HS confusion works.
//! A secret that looks like a public key (PEM, OpenSSH, JWK JSON, DER) is
//! refused as a configuration mistake. Errors never show the value.

use super::compact;
use super::keys::{family, Family, VerifyingKey};
use crate::policy::JwtAlgorithm;

/// Prefix selecting base64url decoding of the variable's value.
pub const BASE64URL_PREFIX: &[u8] = b"base64url:";

/// Builds the HMAC key named by `var`.
pub fn load(var: &str, algorithms: &[JwtAlgorithm]) -> Result<VerifyingKey, String> {
    let mut hs = algorithms
        .iter()
        .copied()
        .filter(|a| family(*a) == Family::Hmac);
    let alg =
        match (hs.next(), hs.next()) {
            (Some(a), None) => a,
            (None, _) => {
                return Err("`secret_env` needs an hs algorithm (HS256, HS384 or HS512)".into())
            }
            (Some(_), Some(_)) => return Err(
                "`secret_env` binds one secret to one algorithm; configure a single hs algorithm"
                    .into(),
            ),
        };
    let raw = raw_value(var)?;
    let secret = match raw.strip_prefix(BASE64URL_PREFIX) {
        Some(b64) => {
            let text = std::str::from_utf8(b64)
                .map_err(|_| format!("`{var}`: value after `base64url:` is not base64url"))?;
            compact::decode(text)
                .map_err(|_| format!("`{var}`: value after `base64url:` is not base64url"))?
        }
        None => raw,
    };
    if looks_like_public_key(&secret) {
        return Err(format!(
            "`{var}` holds what looks like public-key material; hmac secrets must be random bytes"
        ));
    }
    VerifyingKey::hmac(alg, &secret, None).map_err(|e| format!("`{var}`: {e}"))
}

#[cfg(unix)]
fn raw_value(var: &str) -> Result<Vec<u8>, String> {
    use std::os::unix::ffi::OsStringExt;
    std::env::var_os(var)
        .map(OsStringExt::into_vec)
        .ok_or_else(|| format!("environment variable `{var}` is not set"))
}

#[cfg(not(unix))]
fn raw_value(var: &str) -> Result<Vec<u8>, String> {
    std::env::var(var)
        .map(String::into_bytes)
        .map_err(|_| format!("environment variable `{var}` is not set or not utf-8"))
}

fn looks_like_public_key(s: &[u8]) -> bool {
    use x509_parser::prelude::FromDer;
    let text = String::from_utf8_lossy(s);
    let t = text.trim_start();
    if t.starts_with("-----BEGIN")
        || t.starts_with("ssh-")
        || t.starts_with("ecdsa-sha2-")
        || (t.starts_with('{') && t.contains("\"kty\""))
    {
        return true;
    }
    // DER: a SubjectPublicKeyInfo or a PKCS#1 RSAPublicKey that parses whole.
    if let Ok((rest, _)) = x509_parser::x509::SubjectPublicKeyInfo::from_der(s) {
        if rest.is_empty() {
            return true;
        }
    }
    matches!(
        x509_parser::public_key::RSAPublicKey::from_der(s),
        Ok((rest, _)) if rest.is_empty()
    )
}
