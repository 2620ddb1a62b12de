//! The worked examples of RFC 7515 Appendix A.1 (HS256), A.2 (RS256), A.3
//! (ES256) and RFC 8037 Appendix A.4 (EdDSA), through `JwtVerifier`.
//! Their `exp` (1300819380, March 2011) is in the past, so `verify` is given
//! a `now` before it; RFC 8037's payload is not a claims set, so it runs
//! through the JWS layer (`verify_jws`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "jwt_support.rs"]
mod support;

use portcullis_engine::credential::jwt::JwtVerifier;
use portcullis_engine::policy::{JwtAlgorithm as A, JwtKeySource};
use portcullis_engine::Reason;
use serde_json::Value;
use support::*;

const RFC_EXP: u64 = 1_300_819_380;

fn vector(name: &str) -> (Value, String) {
    let all: Value =
        serde_json::from_slice(&std::fs::read(data().join("rfc/vectors.json")).unwrap()).unwrap();
    let v = &all[name];
    (v["jwk"].clone(), v["token"].as_str().unwrap().to_string())
}

/// The RFC tokens carry `iss: joe`, `exp`, and no `sub` or `aud`.
fn rfc_verifier(alg: A, src: JwtKeySource) -> JwtVerifier {
    let mut d = def(&[alg], src);
    d.issuer = Some("joe".into());
    d.audience = vec![];
    d.principal_claim = "iss".into();
    build(&d)
}

fn jwks_src(jwk: Value) -> JwtKeySource {
    JwtKeySource::JwksFile(jwks_file(&[(jwk, None, None)]))
}

fn check(v: &JwtVerifier, token: &str) {
    let before = v.verify(&bearer(token), at(RFC_EXP - 60));
    assert_eq!(&*assert_valid(&before).principal, "joe");
    // Today, it is expired (its signature is still checked first).
    assert_denied(&v.verify(&bearer(token), now()), Reason::CredentialExpired);
    // One flipped signature bit denies.
    let mut bad = token.to_string();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'Q' } else { 'A' });
    assert_denied(
        &v.verify(&bearer(&bad), at(RFC_EXP - 60)),
        Reason::CredentialInvalid,
    );
}

#[test]
fn rfc7515_a1_hs256() {
    let (jwk, token) = vector("rfc7515_a1_hs256");
    let var = env_secret(format!("base64url:{}", jwk["k"].as_str().unwrap()).as_bytes());
    check(
        &rfc_verifier(A::HS256, JwtKeySource::SecretEnv(var)),
        &token,
    );
}

#[test]
fn rfc7515_a2_rs256() {
    let (jwk, token) = vector("rfc7515_a2_rs256");
    check(&rfc_verifier(A::RS256, jwks_src(jwk)), &token);
}

#[test]
fn rfc7515_a3_es256() {
    let (jwk, token) = vector("rfc7515_a3_es256");
    check(&rfc_verifier(A::ES256, jwks_src(jwk)), &token);
}

#[test]
fn rfc8037_a4_eddsa() {
    let (jwk, token) = vector("rfc8037_a4_eddsa");
    let v = rfc_verifier(A::EdDSA, jwks_src(jwk));
    assert_eq!(v.verify_jws(&token).unwrap(), b"Example of Ed25519 signing");
    let mut bad = token.clone();
    bad.replace_range(21..22, if &token[21..22] == "A" { "B" } else { "A" });
    assert!(v.verify_jws(&bad).is_err());
    // As a JWT its payload is not a claims set: denied at the claims layer.
    assert_invalid_because(
        &v.verify(&bearer(&token), now()),
        "claims are not a valid json object",
    );
}
