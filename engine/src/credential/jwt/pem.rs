//! `pem_file` keys: one public key or one certificate, bound to the single
//! configured algorithm of its family.

use std::path::Path;

use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::keys::{family, Family, VerifyingKey};
use crate::policy::JwtAlgorithm;

/// Largest key file read (a PEM key or certificate is a few KiB).
pub const MAX_KEY_FILE: u64 = 1 << 20;

/// Reads a small file, refusing anything larger than [`MAX_KEY_FILE`].
pub fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if buf.len() as u64 > MAX_KEY_FILE {
        return Err(format!("`{}` is larger than 1 MiB", path.display()));
    }
    Ok(buf)
}

/// The key family a SubjectPublicKeyInfo declares.
pub fn spki_family(spki: &SubjectPublicKeyInfo<'_>) -> Result<Family, String> {
    let oid = &spki.algorithm.algorithm;
    if *oid == OID_PKCS1_RSAENCRYPTION {
        return Ok(Family::Rsa);
    }
    if *oid == OID_SIG_ED25519 {
        return Ok(Family::Ed25519);
    }
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or("ec key without a named curve")?;
        if curve == OID_EC_P256 {
            return Ok(Family::P256);
        }
        if curve == OID_NIST_EC_P384 {
            return Ok(Family::P384);
        }
        if curve == OID_NIST_EC_P521 {
            return Err("p-521 keys (es512) are not supported".into());
        }
        return Err(format!("ec curve `{curve}` is not supported"));
    }
    Err(format!("public key type `{oid}` is not supported"))
}

/// The one configured algorithm that uses keys of `fam`.
pub fn bind(fam: Family, algorithms: &[JwtAlgorithm], what: &str) -> Result<JwtAlgorithm, String> {
    let mut it = algorithms.iter().copied().filter(|a| family(*a) == fam);
    match (it.next(), it.next()) {
        (Some(a), None) => Ok(a),
        (None, _) => Err(format!(
            "{what} is a {} key, but no configured algorithm uses such keys",
            fam_name(fam)
        )),
        (Some(a), Some(b)) => Err(format!(
            "{what} could verify both `{}` and `{}`; a key must be bound to one algorithm \
             (configure one, or use a jwks whose keys name their `alg`)",
            a.name(),
            b.name()
        )),
    }
}

pub fn fam_name(f: Family) -> &'static str {
    match f {
        Family::Hmac => "hmac",
        Family::Rsa => "rsa",
        Family::P256 => "p-256",
        Family::P384 => "p-384",
        Family::Ed25519 => "ed25519",
    }
}

/// Loads the single public key of a PEM file.
pub fn load(path: &Path, algorithms: &[JwtAlgorithm]) -> Result<VerifyingKey, String> {
    let bytes = read_limited(path)?;
    let mut blocks = Vec::new();
    for pem in Pem::iter_from_buffer(&bytes) {
        blocks.push(pem.map_err(|e| format!("`{}` is not valid pem: {e}", path.display()))?);
    }
    let pem = match blocks.as_slice() {
        [one] => one,
        [] => return Err(format!("`{}` holds no pem block", path.display())),
        _ => {
            return Err(format!(
                "`{}` holds several pem blocks; give exactly one public key or certificate",
                path.display()
            ))
        }
    };
    let what = format!("`{}`", path.display());
    match pem.label.as_str() {
        "PUBLIC KEY" => {
            let (rest, spki) = SubjectPublicKeyInfo::from_der(&pem.contents)
                .map_err(|e| format!("{what}: bad public key: {e}"))?;
            if !rest.is_empty() {
                return Err(format!("{what}: trailing bytes after the public key"));
            }
            from_spki(&spki, algorithms, &what)
        }
        "CERTIFICATE" => {
            let (rest, cert) = X509Certificate::from_der(&pem.contents)
                .map_err(|e| format!("{what}: bad certificate: {e}"))?;
            if !rest.is_empty() {
                return Err(format!("{what}: trailing bytes after the certificate"));
            }
            from_spki(cert.public_key(), algorithms, &what)
        }
        "RSA PUBLIC KEY" => {
            let alg = bind(Family::Rsa, algorithms, &what)?;
            VerifyingKey::public_der(alg, Family::Rsa, &pem.contents, None)
                .map_err(|e| format!("{what}: {e}"))
        }
        l if l.contains("PRIVATE") => Err(format!(
            "{what} holds a private key; give the public key or certificate"
        )),
        l => Err(format!(
            "{what}: pem block `{l}` is not a public key or certificate"
        )),
    }
}

fn from_spki(
    spki: &SubjectPublicKeyInfo<'_>,
    algorithms: &[JwtAlgorithm],
    what: &str,
) -> Result<VerifyingKey, String> {
    let fam = spki_family(spki).map_err(|e| format!("{what}: {e}"))?;
    let alg = bind(fam, algorithms, what)?;
    VerifyingKey::public_der(alg, fam, spki.raw, None).map_err(|e| format!("{what}: {e}"))
}
