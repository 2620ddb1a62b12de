//! JWK Sets (RFC 7517), read into keys bound to one algorithm each.
//!
//! Rules (SECURITY.md, docs/jwt.md):
//! - duplicate `kid`s refuse the whole set (`JwkSet::find` would pick the first);
//! - symmetric (`oct`) keys and private members refuse the set: HMAC keys
//!   come only from `secret_env`, never from a key document;
//! - a key is bound to its `alg` if given (which must suit its `kty`/`crv`),
//!   else to the algorithm its curve implies (`P-256` → ES256, `P-384` → ES384,
//!   `Ed25519` → EdDSA), else (RSA) to the single configured RS/PS algorithm;
//! - keys meant for encryption (`use` other than `sig`, `key_ops` without
//!   `verify`) are skipped: a verifier never uses them;
//! - a key bound to an algorithm that is not configured refuses a file
//!   (it is a configuration mistake) and is skipped in a fetched set
//!   (identity providers publish keys for every client).

use std::collections::HashSet;

use serde::Deserialize;

use super::compact;
use super::keys::{family, Family, VerifyingKey};
use super::pem::{bind, fam_name};
use crate::policy::JwtAlgorithm;

/// Most keys a set may hold.
pub const MAX_KEYS: usize = 100;

#[derive(Deserialize)]
struct Doc {
    keys: Vec<Jwk>,
}

// Unknown members (`x5c`, `x5t`, ...) are ignored; known ones may not repeat
// (derive refuses a duplicate field).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    // Presence of any private or symmetric member refuses the set.
    #[serde(default)]
    d: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    k: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    p: Option<serde::de::IgnoredAny>,
}

/// How strictly to treat keys that cannot be used with this configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A file the operator wrote: a key for an unconfigured algorithm is an error.
    File,
    /// A set fetched from an identity provider: such keys are skipped.
    Remote,
}

/// A parsed set: the usable keys, and how many were skipped.
#[derive(Debug)]
pub struct Parsed {
    pub keys: Vec<VerifyingKey>,
    pub skipped: usize,
}

/// Parses a JWK Set document.
pub fn parse(bytes: &[u8], algorithms: &[JwtAlgorithm], origin: Origin) -> Result<Parsed, String> {
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| format!("not a jwk set: {e}"))?;
    if doc.keys.len() > MAX_KEYS {
        return Err(format!("jwk set has more than {MAX_KEYS} keys"));
    }
    let mut kids = HashSet::new();
    for jwk in &doc.keys {
        if let Some(kid) = &jwk.kid {
            if !kids.insert(kid.as_str()) {
                return Err(format!("jwk set has the `kid` `{}` twice", shorten(kid)));
            }
        }
    }
    let mut keys = Vec::new();
    let mut skipped = 0;
    for (i, jwk) in doc.keys.iter().enumerate() {
        let what = match &jwk.kid {
            Some(k) => format!("key `{}`", shorten(k)),
            None => format!("key #{i}"),
        };
        if jwk.kty == "oct" || jwk.k.is_some() {
            return Err(format!(
                "{what} is a symmetric key; hmac secrets come only from `secret_env`"
            ));
        }
        if jwk.d.is_some() || jwk.p.is_some() {
            return Err(format!(
                "{what} holds private key material; publish public keys only"
            ));
        }
        let for_signing = jwk.use_.as_deref().is_none_or(|u| u == "sig")
            && jwk
                .key_ops
                .as_ref()
                .is_none_or(|ops| ops.iter().any(|o| o == "verify"));
        if !for_signing {
            skipped += 1;
            continue;
        }
        match key_of(jwk, algorithms, &what) {
            Ok(k) => keys.push(k),
            Err(Unusable::Skip(msg)) => {
                if origin == Origin::File {
                    return Err(msg);
                }
                skipped += 1;
            }
            Err(Unusable::Refuse(msg)) => return Err(msg),
        }
    }
    Ok(Parsed { keys, skipped })
}

enum Unusable {
    /// Not usable with this configuration (error for files, skipped when fetched).
    Skip(String),
    /// Broken or dangerous: refuses the set wherever it came from.
    Refuse(String),
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

fn b64(field: &Option<String>, name: &str, what: &str) -> Result<Vec<u8>, Unusable> {
    let v = field
        .as_deref()
        .ok_or_else(|| Unusable::Refuse(format!("{what} has no `{name}`")))?;
    compact::decode(v).map_err(|_| Unusable::Refuse(format!("{what}: `{name}` is not base64url")))
}

fn key_of(jwk: &Jwk, algorithms: &[JwtAlgorithm], what: &str) -> Result<VerifyingKey, Unusable> {
    let fam = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => Family::Rsa,
        ("EC", Some("P-256")) => Family::P256,
        ("EC", Some("P-384")) => Family::P384,
        ("OKP", Some("Ed25519")) => Family::Ed25519,
        (kty, crv) => {
            return Err(Unusable::Skip(format!(
                "{what}: key type `{kty}`{} is not supported",
                crv.map(|c| format!(" on curve `{c}`")).unwrap_or_default()
            )))
        }
    };
    let alg = match jwk.alg.as_deref() {
        Some(name) => {
            let alg = JwtAlgorithm::from_name(name).ok_or_else(|| {
                Unusable::Skip(format!(
                    "{what}: algorithm `{}` is not supported",
                    shorten(name)
                ))
            })?;
            if family(alg) != fam {
                return Err(Unusable::Refuse(format!(
                    "{what}: `alg` `{name}` does not suit a {} key",
                    fam_name(fam)
                )));
            }
            if !algorithms.contains(&alg) {
                return Err(Unusable::Skip(format!(
                    "{what} has `alg` `{name}`, which is not among the configured algorithms"
                )));
            }
            alg
        }
        None => bind(fam, algorithms, what).map_err(Unusable::Skip)?,
    };
    let kid = jwk.kid.as_deref();
    let built = match fam {
        Family::Rsa => {
            let n = b64(&jwk.n, "n", what)?;
            let e = b64(&jwk.e, "e", what)?;
            VerifyingKey::rsa_components(alg, &n, &e, kid)
        }
        Family::P256 | Family::P384 => {
            let x = b64(&jwk.x, "x", what)?;
            let y = b64(&jwk.y, "y", what)?;
            let size = if fam == Family::P256 { 32 } else { 48 };
            if x.len() != size || y.len() != size {
                return Err(Unusable::Refuse(format!(
                    "{what}: coordinates must be {size} bytes each"
                )));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            VerifyingKey::public_point(alg, &point, kid)
        }
        Family::Ed25519 => {
            let x = b64(&jwk.x, "x", what)?;
            if x.len() != 32 {
                return Err(Unusable::Refuse(format!("{what}: `x` must be 32 bytes")));
            }
            VerifyingKey::public_point(alg, &x, kid)
        }
        Family::Hmac => {
            return Err(Unusable::Refuse(format!(
                "{what} is a symmetric key; hmac secrets come only from `secret_env`"
            )))
        }
    };
    built.map_err(|e| Unusable::Refuse(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0""#;

    fn set(keys: &[String]) -> Vec<u8> {
        format!(r#"{{"keys":[{}]}}"#, keys.join(",")).into_bytes()
    }

    #[test]
    fn infers_es256_from_the_curve() {
        let p = parse(
            &set(&[format!("{EC}}}")]),
            &[JwtAlgorithm::ES256],
            Origin::File,
        )
        .unwrap();
        assert_eq!(p.keys.len(), 1);
        assert_eq!(p.keys[0].alg(), JwtAlgorithm::ES256);
    }

    #[test]
    fn refuses_duplicate_kids_and_oct() {
        let k = format!(r#"{EC},"kid":"a"}}"#);
        let err = parse(
            &set(&[k.clone(), k]),
            &[JwtAlgorithm::ES256],
            Origin::Remote,
        )
        .unwrap_err();
        assert!(err.contains("twice"), "{err}");
        let oct = r#"{"kty":"oct","k":"AAAA"}"#.to_string();
        assert!(parse(&set(&[oct]), &[JwtAlgorithm::HS256], Origin::Remote).is_err());
    }

    #[test]
    fn alg_must_suit_the_key_and_be_configured() {
        let rs = format!(r#"{EC},"alg":"RS256"}}"#);
        assert!(parse(&set(&[rs]), &[JwtAlgorithm::RS256], Origin::Remote).is_err());
        let other = format!(r#"{EC},"alg":"ES256"}}"#);
        assert!(parse(
            &set(std::slice::from_ref(&other)),
            &[JwtAlgorithm::ES384],
            Origin::File
        )
        .is_err());
        let p = parse(&set(&[other]), &[JwtAlgorithm::ES384], Origin::Remote).unwrap();
        assert_eq!((p.keys.len(), p.skipped), (0, 1));
    }

    #[test]
    fn skips_encryption_keys() {
        let enc = format!(r#"{EC},"use":"enc"}}"#);
        let ops = format!(r#"{EC},"key_ops":["encrypt"]}}"#);
        let p = parse(&set(&[enc, ops]), &[JwtAlgorithm::ES256], Origin::File).unwrap();
        assert_eq!((p.keys.len(), p.skipped), (0, 2));
    }
}
