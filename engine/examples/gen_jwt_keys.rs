//! Regenerates the JWT test keys in `engine/tests/data/jwt/keys/`.
//!
//! `cargo run -p portcullis-engine --example gen_jwt_keys [-- OUT_DIR]`
//!
//! For each key NAME it writes `NAME.key.pem` (PKCS#8 private key),
//! `NAME.pub.pem` (SubjectPublicKeyInfo) and `NAME.jwk.json` (public JWK,
//! no `kid`/`alg`: tests add those). `ec256.cert.pem` is a self-signed
//! certificate over the `ec256` key, `rsa.cert.pem` one over `rsa`. The
//! 1024-bit RSA key used to test the size floor cannot come from aws-lc-rs
//! (it refuses to generate keys under 2048 bits); see the README beside
//! the keys for the `openssl` command that made it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, RsaKeyPair,
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn b64u(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    println!("wrote {}", p.display());
}

fn rsa(dir: &Path, name: &str) -> String {
    let kp = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let der: Pkcs8V1Der = kp.as_der().unwrap();
    let key_pem = pem("PRIVATE KEY", der.as_ref());
    write(dir, &format!("{name}.key.pem"), &key_pem);
    let spki: PublicKeyX509Der = kp.public_key().as_der().unwrap();
    write(
        dir,
        &format!("{name}.pub.pem"),
        &pem("PUBLIC KEY", spki.as_ref()),
    );
    let pk = kp.public_key();
    let jwk = serde_json::json!({
        "kty": "RSA",
        "n": b64u(pk.modulus().big_endian_without_leading_zero()),
        "e": b64u(pk.exponent().big_endian_without_leading_zero()),
    });
    write(dir, &format!("{name}.jwk.json"), &format!("{jwk:#}\n"));
    key_pem
}

fn ec(dir: &Path, name: &str, alg: &'static EcdsaSigningAlgorithm, crv: &str) -> String {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(alg, doc.as_ref()).unwrap();
    let key_pem = pem("PRIVATE KEY", doc.as_ref());
    write(dir, &format!("{name}.key.pem"), &key_pem);
    let spki: PublicKeyX509Der = kp.public_key().as_der().unwrap();
    write(
        dir,
        &format!("{name}.pub.pem"),
        &pem("PUBLIC KEY", spki.as_ref()),
    );
    let point = kp.public_key().as_ref();
    let half = (point.len() - 1) / 2;
    let jwk = serde_json::json!({
        "kty": "EC",
        "crv": crv,
        "x": b64u(&point[1..1 + half]),
        "y": b64u(&point[1 + half..]),
    });
    write(dir, &format!("{name}.jwk.json"), &format!("{jwk:#}\n"));
    key_pem
}

fn ed(dir: &Path, name: &str) {
    let rng = SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8v1(&rng).unwrap();
    let kp = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
    write(
        dir,
        &format!("{name}.key.pem"),
        &pem("PRIVATE KEY", doc.as_ref()),
    );
    let spki: PublicKeyX509Der = kp.public_key().as_der().unwrap();
    write(
        dir,
        &format!("{name}.pub.pem"),
        &pem("PUBLIC KEY", spki.as_ref()),
    );
    let jwk = serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64u(kp.public_key().as_ref()),
    });
    write(dir, &format!("{name}.jwk.json"), &format!("{jwk:#}\n"));
}

fn cert(dir: &Path, name: &str, key_pem: &str) {
    let kp = rcgen::KeyPair::from_pem(key_pem).unwrap();
    let params = rcgen::CertificateParams::new(vec!["issuer.test".to_string()]).unwrap();
    let c = params.self_signed(&kp).unwrap();
    write(dir, &format!("{name}.cert.pem"), &c.pem());
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jwt/keys"));
    fs::create_dir_all(&dir).unwrap();
    let rsa_pem = rsa(&dir, "rsa");
    rsa(&dir, "rsa2");
    let ec_pem = ec(&dir, "ec256", &ECDSA_P256_SHA256_FIXED_SIGNING, "P-256");
    ec(&dir, "ec256b", &ECDSA_P256_SHA256_FIXED_SIGNING, "P-256");
    ec(&dir, "ec384", &ECDSA_P384_SHA384_FIXED_SIGNING, "P-384");
    ed(&dir, "ed25519");
    cert(&dir, "ec256", &ec_pem);
    cert(&dir, "rsa", &rsa_pem);
}
