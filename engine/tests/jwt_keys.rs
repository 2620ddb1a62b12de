//! Key loading: what policy load refuses (SECURITY.md checklist 10, the
//! duplicate-`kid` and key-confusion items, ES512), and how keys bind to
//! one algorithm each.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "jwt_support.rs"]
mod support;

use std::time::Duration;

use portcullis_engine::credential::jwt::testing::sign;
use portcullis_engine::policy::{JwtAlgorithm as A, JwtKeySource};
use serde_json::json;
use support::*;

fn pem(file: &str) -> JwtKeySource {
    JwtKeySource::PemFile(format!("keys/{file}").into())
}

#[track_caller]
fn refused(algs: &[A], src: JwtKeySource, needle: &str) {
    let err = build_err(&def(algs, src));
    assert!(err.contains(needle), "error {err:?} lacks {needle:?}");
}

#[test]
fn duplicate_kid_in_jwks_is_refused_at_load() {
    let jwks = jwks_file(&[
        (jwk("ec256"), Some("k1"), Some("ES256")),
        (jwk("ec256b"), Some("k1"), Some("ES256")),
    ]);
    refused(&[A::ES256], JwtKeySource::JwksFile(jwks), "twice");
}

#[test]
fn rsa_1024_is_refused_as_pem_and_as_jwk() {
    refused(
        &[A::RS256],
        pem("rsa1024.pub.pem"),
        "1024 bits is too small",
    );
    let jwks = jwks_file(&[(jwk("rsa1024"), Some("k"), Some("RS256"))]);
    refused(
        &[A::RS256],
        JwtKeySource::JwksFile(jwks),
        "1024 bits is too small",
    );
}

#[test]
fn hs_secret_shorter_than_the_hash_is_refused() {
    for (alg, short) in [(A::HS256, 31), (A::HS384, 47), (A::HS512, 63)] {
        let var = env_secret(&vec![b'x'; short]);
        refused(&[alg], JwtKeySource::SecretEnv(var), "at least");
        let var = env_secret(&vec![b'x'; short + 1]);
        build(&def(&[alg], JwtKeySource::SecretEnv(var)));
    }
}

#[test]
fn empty_hmac_secret_is_refused() {
    let var = env_secret(b"");
    refused(&[A::HS256], JwtKeySource::SecretEnv(var), "0 bytes");
    refused(
        &[A::HS256],
        JwtKeySource::SecretEnv("PORTCULLIS_JWT_TEST_UNSET_VARIABLE".into()),
        "is not set",
    );
}

#[test]
fn secret_errors_never_show_the_secret() {
    let secret = b"hunter2-hunter2-hunter2";
    let var = env_secret(secret);
    let err = build_err(&def(&[A::HS256], JwtKeySource::SecretEnv(var)));
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn hmac_keys_come_only_from_secret_env() {
    // An `oct` key in a JWKS is refused (file or fetched), whatever its size.
    let oct = json!({"kty": "oct", "k": b64(&[7u8; 64])});
    let jwks = jwks_file(&[(oct, Some("h"), Some("HS256"))]);
    refused(&[A::HS256], JwtKeySource::JwksFile(jwks), "secret_env");
    // A PEM public key never becomes an HMAC key.
    refused(
        &[A::HS256],
        pem("rsa.pub.pem"),
        "no configured algorithm uses",
    );
    // secret_env needs an HS algorithm, and only one.
    let var = env_secret(&[1u8; 64]);
    refused(
        &[A::RS256],
        JwtKeySource::SecretEnv(var.clone()),
        "needs an hs algorithm",
    );
    refused(
        &[A::HS256, A::HS512],
        JwtKeySource::SecretEnv(var),
        "single hs algorithm",
    );
}

#[test]
fn es512_and_p521_are_refused() {
    refused(&[A::ES256], pem("p521.pub.pem"), "es512");
    let p521 = json!({"kty": "EC", "crv": "P-521", "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt", "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"});
    let jwks = jwks_file(&[(p521, Some("k"), Some("ES512"))]);
    refused(&[A::ES256], JwtKeySource::JwksFile(jwks), "not supported");
}

#[test]
fn ec_keys_on_the_wrong_curve_are_refused() {
    // A P-384 key where ES256 is configured.
    refused(&[A::ES256], pem("ec384.pub.pem"), "p-384 key");
    // A JWK claiming P-256 with P-384 coordinates.
    let mut k = jwk("ec384");
    k["crv"] = json!("P-256");
    let jwks = jwks_file(&[(k, Some("k"), Some("ES256"))]);
    refused(&[A::ES256], JwtKeySource::JwksFile(jwks), "32 bytes");
    // A point that is not on the curve.
    let mut k = jwk("ec256");
    k["y"] = json!(b64(&[0x11; 32]));
    let jwks = jwks_file(&[(k, Some("k"), Some("ES256"))]);
    refused(&[A::ES256], JwtKeySource::JwksFile(jwks), "rejected");
}

#[test]
fn jwk_alg_must_suit_the_key_and_the_configuration() {
    // `alg` of another family: refused.
    let jwks = jwks_file(&[(jwk("ec256"), Some("k"), Some("RS256"))]);
    refused(
        &[A::ES256, A::RS256],
        JwtKeySource::JwksFile(jwks),
        "does not suit",
    );
    // `alg` not configured: refused in a file.
    let jwks = jwks_file(&[(jwk("rsa"), Some("k"), Some("PS256"))]);
    refused(
        &[A::RS256],
        JwtKeySource::JwksFile(jwks),
        "not among the configured",
    );
    // RSA without `alg` and two RSA algorithms configured: ambiguous.
    let jwks = jwks_file(&[(jwk("rsa"), Some("k"), None)]);
    refused(
        &[A::RS256, A::PS256],
        JwtKeySource::JwksFile(jwks),
        "one algorithm",
    );
    refused(&[A::RS256, A::PS256], pem("rsa.pub.pem"), "one algorithm");
}

#[test]
fn a_key_without_alg_binds_to_the_single_configured_algorithm_of_its_family() {
    let jwks = jwks_file(&[(jwk("rsa"), Some("k"), None)]);
    let v = build(&def(&[A::PS256, A::ES256], JwtKeySource::JwksFile(jwks)));
    let rsa = key("rsa.key.pem");
    let t = sign(A::PS256, &rsa, Some("k"), None, &claims()).unwrap();
    assert_valid(&verify(&v, &t));
    // Bound to PS256: the same key never verifies RS256 (not even configured).
    let t = sign(A::RS256, &rsa, Some("k"), None, &claims()).unwrap();
    assert_invalid_because(&verify(&v, &t), "alg");
}

#[test]
fn private_or_malformed_key_documents_are_refused() {
    refused(&[A::ES256], pem("ec256.key.pem"), "private key");
    // Two PEM blocks.
    let dir = temp_dir();
    let two = [key("ec256.pub.pem"), key("ec256b.pub.pem")].concat();
    std::fs::write(dir.join("two.pem"), two).unwrap();
    refused(
        &[A::ES256],
        JwtKeySource::PemFile(dir.join("two.pem")),
        "several pem blocks",
    );
    std::fs::write(dir.join("empty.pem"), "").unwrap();
    refused(
        &[A::ES256],
        JwtKeySource::PemFile(dir.join("empty.pem")),
        "no pem block",
    );
    refused(
        &[A::ES256],
        JwtKeySource::PemFile(dir.join("missing.pem")),
        "cannot read",
    );
    // Private members in a JWKS.
    let mut k = jwk("ec256");
    k["d"] = json!("AAAA");
    let jwks = jwks_file(&[(k, Some("k"), None)]);
    refused(
        &[A::ES256],
        JwtKeySource::JwksFile(jwks),
        "private key material",
    );
    // Not a JWKS.
    let p = dir.join("bad.json");
    std::fs::write(&p, r#"{"keys": 5}"#).unwrap();
    refused(
        &[A::ES256],
        JwtKeySource::JwksFile(p.clone()),
        "not a jwk set",
    );
    std::fs::write(&p, r#"{"keys": []}"#).unwrap();
    refused(
        &[A::ES256],
        JwtKeySource::JwksFile(p),
        "no usable signing key",
    );
}

#[test]
fn encryption_keys_in_a_jwks_are_never_used() {
    let mut enc = jwk("ec256");
    enc["use"] = json!("enc");
    let mut sig = jwk("ec256b");
    sig["use"] = json!("sig");
    let jwks = jwks_file(&[(enc, None, None), (sig, None, None)]);
    let v = build(&def(&[A::ES256], JwtKeySource::JwksFile(jwks)));
    let t = sign(A::ES256, &key("ec256b.key.pem"), None, None, &claims()).unwrap();
    assert_valid(&verify(&v, &t));
    let t = sign(A::ES256, &key("ec256.key.pem"), None, None, &claims()).unwrap();
    assert_invalid_because(&verify(&v, &t), "signature");
}

#[test]
fn jwks_url_must_be_https_and_never_hmac() {
    let url = |u: &str| JwtKeySource::JwksUrl {
        url: u.into(),
        refresh: Duration::from_secs(300),
        refetch_min_interval: Duration::from_secs(30),
    };
    refused(&[A::ES256], url("http://keys.test/jwks"), "https");
    refused(&[A::ES256, A::HS256], url("https://keys.test/jwks"), "hmac");
}

#[test]
fn configuration_sanity() {
    refused(&[], pem("ec256.pub.pem"), "at least one algorithm");
    let mut d = def(&[A::ES256], pem("ec256.pub.pem"));
    d.require_claims = (0..65).map(|i| format!("c{i}")).collect();
    assert!(build_err(&d).contains("at most 64"));
}
