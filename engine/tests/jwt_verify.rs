//! The JWT verifier on good tokens, per algorithm and key source, and its
//! claim rules (SECURITY.md checklist items 4-6). Built through the public
//! API: `JwtVerifier::new` + `verify` with a `Request`.
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
use portcullis_engine::credential::{CredentialType, Outcome};
use portcullis_engine::policy::{JwtAlgorithm as A, JwtKeySource, Source};
use portcullis_engine::{Reason, Request};
use serde_json::json;
use support::*;

fn pem_key(name: &str) -> JwtKeySource {
    JwtKeySource::PemFile(format!("keys/{name}").into())
}

#[test]
fn every_algorithm_verifies_with_a_jwks_file() {
    let cases: &[(A, &str)] = &[
        (A::RS256, "rsa"),
        (A::RS384, "rsa"),
        (A::RS512, "rsa"),
        (A::PS256, "rsa"),
        (A::PS384, "rsa"),
        (A::PS512, "rsa"),
        (A::ES256, "ec256"),
        (A::ES384, "ec384"),
        (A::EdDSA, "ed25519"),
    ];
    for (alg, name) in cases {
        let jwks = jwks_file(&[(jwk(name), Some("k1"), Some(alg.name()))]);
        let v = build(&def(&[*alg], JwtKeySource::JwksFile(jwks)));
        let priv_pem = key(&format!("{name}.key.pem"));
        let t = sign(*alg, &priv_pem, Some("k1"), Some("JWT"), &claims()).unwrap();
        let id = assert_valid(&verify(&v, &t)).clone();
        assert_eq!(id.kind, CredentialType::Jwt);
        assert_eq!(&*id.principal, "user-1");
        assert_eq!(id.consumer, None);
        assert_eq!(
            id.scopes, None,
            "no scopes_claim configured: carries no scopes"
        );
        // A token signed by another key of the same type does not verify.
        if *name == "rsa" {
            let other = sign(*alg, &key("rsa2.key.pem"), Some("k1"), None, &claims()).unwrap();
            assert_invalid_because(&verify(&v, &other), "signature");
        }
    }
}

#[test]
fn every_hmac_algorithm_verifies_with_secret_env() {
    for (alg, len) in [(A::HS256, 32), (A::HS384, 48), (A::HS512, 64)] {
        let secret: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let var = env_secret(&secret);
        let v = build(&def(&[alg], JwtKeySource::SecretEnv(var)));
        let t = sign(alg, &secret, None, None, &claims()).unwrap();
        assert_valid(&verify(&v, &t));
        let mut wrong = secret.clone();
        wrong[0] ^= 1;
        let t = sign(alg, &wrong, None, None, &claims()).unwrap();
        assert_invalid_because(&verify(&v, &t), "signature");
    }
}

#[test]
fn secret_env_accepts_base64url_values() {
    let secret = [0u8; 32];
    let var = env_secret(format!("base64url:{}", b64(&secret)).as_bytes());
    let v = build(&def(&[A::HS256], JwtKeySource::SecretEnv(var)));
    let t = sign(A::HS256, &secret, None, None, &claims()).unwrap();
    assert_valid(&verify(&v, &t));
}

#[test]
fn pem_public_keys_and_certificates_verify() {
    for (alg, file, priv_name) in [
        (A::RS256, "rsa.pub.pem", "rsa"),
        (A::PS384, "rsa.cert.pem", "rsa"),
        (A::ES256, "ec256.pub.pem", "ec256"),
        (A::ES256, "ec256.cert.pem", "ec256"),
        (A::ES384, "ec384.pub.pem", "ec384"),
        (A::EdDSA, "ed25519.pub.pem", "ed25519"),
    ] {
        let v = build(&def(&[alg], pem_key(file)));
        let t = sign(
            alg,
            &key(&format!("{priv_name}.key.pem")),
            None,
            None,
            &claims(),
        )
        .unwrap();
        assert_valid(&verify(&v, &t));
    }
}

#[test]
fn relative_and_absolute_paths_resolve() {
    let abs = key_path("ec256.pub.pem");
    let v = build(&def(&[A::ES256], JwtKeySource::PemFile(abs)));
    let t = sign(A::ES256, &key("ec256.key.pem"), None, None, &claims()).unwrap();
    assert_valid(&verify(&v, &t));
}

#[test]
fn scopes_claim_string_or_array() {
    let jwks = jwks_file(&[(jwk("ec256"), Some("k1"), None)]);
    let mut d = def(&[A::ES256], JwtKeySource::JwksFile(jwks));
    d.scopes_claim = Some("scope".into());
    let v = build(&d);
    let k = key("ec256.key.pem");
    let mut c = claims();
    c["scope"] = json!("charges:read  refunds:write");
    let t = sign(A::ES256, &k, None, None, &c).unwrap();
    let id = assert_valid(&verify(&v, &t)).clone();
    assert_eq!(
        id.scopes.unwrap().to_vec(),
        vec!["charges:read", "refunds:write"]
    );
    c["scope"] = json!(["a", "b"]);
    let t = sign(A::ES256, &k, None, None, &c).unwrap();
    assert_eq!(
        assert_valid(&verify(&v, &t))
            .scopes
            .clone()
            .unwrap()
            .to_vec(),
        vec!["a", "b"]
    );
    // Absent: carries an empty scope list (restricts everything), not None.
    let t = sign(A::ES256, &k, None, None, &claims()).unwrap();
    assert_eq!(
        assert_valid(&verify(&v, &t)).scopes.clone().unwrap().len(),
        0
    );
    for bad in [json!(5), json!(["a", 5]), json!({"a": 1}), json!(true)] {
        c["scope"] = bad;
        let t = sign(A::ES256, &k, None, None, &c).unwrap();
        assert_invalid_because(&verify(&v, &t), "scopes claim");
    }
}

#[test]
fn principal_claim_must_be_a_non_empty_string() {
    let mut d = def(&[A::ES256], pem_key("ec256.pub.pem"));
    d.principal_claim = "email".into();
    let v = build(&d);
    let k = key("ec256.key.pem");
    let mut c = claims();
    c["email"] = json!("a@example.com");
    let t = sign(A::ES256, &k, None, None, &c).unwrap();
    assert_eq!(&*assert_valid(&verify(&v, &t)).principal, "a@example.com");
    for bad in [json!(""), json!(5), json!(null), json!(["a"])] {
        c["email"] = bad;
        let t = sign(A::ES256, &k, None, None, &c).unwrap();
        assert_invalid_because(&verify(&v, &t), "principal");
    }
    let t = sign(A::ES256, &k, None, None, &claims()).unwrap();
    assert_invalid_because(&verify(&v, &t), "principal claim is missing");
}

fn es256_verifier() -> portcullis_engine::credential::jwt::JwtVerifier {
    build(&def(&[A::ES256], pem_key("ec256.pub.pem")))
}

fn es256(c: &serde_json::Value) -> String {
    sign(A::ES256, &key("ec256.key.pem"), None, None, c).unwrap()
}

#[test]
fn issuer_is_required_one_string_and_exact() {
    let v = es256_verifier();
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iss");
    assert_invalid_because(&verify(&v, &es256(&c)), "`iss` is missing");
    for (bad, why) in [
        (json!(5), "`iss` is not a string"),
        (json!([ISS]), "`iss` is not a string"),
        (json!(null), "`iss` is not a string"),
        (json!("https://ISSUER.test/"), "not the configured issuer"),
        (json!("https://issuer.test"), "not the configured issuer"),
    ] {
        c["iss"] = bad;
        assert_invalid_because(&verify(&v, &es256(&c)), why);
    }
}

#[test]
fn audience_is_required_and_may_be_an_array_holding_ours() {
    let v = es256_verifier();
    let mut c = claims();
    c["aud"] = json!(["other", AUD]);
    assert_valid(&verify(&v, &es256(&c)));
    c.as_object_mut().unwrap().remove("aud");
    assert_invalid_because(&verify(&v, &es256(&c)), "`aud` is missing");
    for (bad, why) in [
        (json!(5), "`aud` is not a string"),
        (json!({"a": AUD}), "`aud` is not a string"),
        (json!([AUD, 5]), "`aud` is not a string"),
        (json!([]), "does not name this audience"),
        (json!(["other"]), "does not name this audience"),
        (json!("PAYMENTS-API"), "does not name this audience"),
    ] {
        c["aud"] = bad;
        assert_invalid_because(&verify(&v, &es256(&c)), why);
    }
}

#[test]
fn expiry_with_leeway() {
    let v = es256_verifier();
    let mut c = claims();
    c["exp"] = json!(NOW_S - 31);
    assert_denied(&verify(&v, &es256(&c)), Reason::CredentialExpired);
    c["exp"] = json!(NOW_S - 29);
    assert_valid(&verify(&v, &es256(&c)));
    // Exactly at exp + leeway: expired (the current time must be before exp).
    c["exp"] = json!(NOW_S - 30);
    assert_denied(&verify(&v, &es256(&c)), Reason::CredentialExpired);
}

#[test]
fn exp_of_the_wrong_type_denies() {
    let v = es256_verifier();
    let mut c = claims();
    for bad in [
        json!((NOW_S + 600).to_string()),
        json!(null),
        json!(true),
        json!([1]),
    ] {
        c["exp"] = bad;
        assert_invalid_because(&verify(&v, &es256(&c)), "`exp` is not a number");
    }
    c["exp"] = json!(NOW_S as f64 + 600.5);
    assert_valid(&verify(&v, &es256(&c)));
}

#[test]
fn exp_is_required_when_listed() {
    let v = es256_verifier();
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_invalid_because(&verify(&v, &es256(&c)), "required claim");
}

#[test]
fn nbf_in_the_future_is_not_yet_valid() {
    let v = es256_verifier();
    let mut c = claims();
    c["nbf"] = json!(NOW_S + 31);
    // Documented choice: not-yet-valid is reported as credential_expired.
    assert_denied(&verify(&v, &es256(&c)), Reason::CredentialExpired);
    c["nbf"] = json!(NOW_S + 29);
    assert_valid(&verify(&v, &es256(&c)));
}

#[test]
fn nbf_non_numeric_denies() {
    let v = es256_verifier();
    let mut c = claims();
    for bad in [json!("0"), json!(null), json!({})] {
        c["nbf"] = bad;
        assert_invalid_because(&verify(&v, &es256(&c)), "`nbf` is not a number");
    }
}

#[test]
fn iat_must_be_numeric_and_not_in_the_future() {
    let v = es256_verifier();
    let mut c = claims();
    c["iat"] = json!("1");
    assert_invalid_because(&verify(&v, &es256(&c)), "`iat` is not a number");
    c["iat"] = json!(NOW_S + 100);
    assert_invalid_because(&verify(&v, &es256(&c)), "`iat` is in the future");
}

#[test]
fn max_lifetime_exceeded_denies() {
    let mut d = def(&[A::ES256], pem_key("ec256.pub.pem"));
    d.max_lifetime = Some(Duration::from_secs(3600));
    let v = build(&d);
    let mut c = claims();
    c["iat"] = json!(NOW_S - 10);
    c["exp"] = json!(NOW_S - 10 + 3600);
    assert_valid(&verify(&v, &es256(&c)));
    c["exp"] = json!(NOW_S - 10 + 3601);
    assert_invalid_because(&verify(&v, &es256(&c)), "max_lifetime");
    c.as_object_mut().unwrap().remove("iat");
    assert_invalid_because(&verify(&v, &es256(&c)), "needs both");
}

#[test]
fn require_claims_must_be_present_and_not_null() {
    let mut d = def(&[A::ES256], pem_key("ec256.pub.pem"));
    d.require_claims = vec!["sub".into(), "exp".into(), "iat".into(), "tenant".into()];
    let v = build(&d);
    let mut c = claims();
    assert_invalid_because(&verify(&v, &es256(&c)), "required claim");
    c["tenant"] = json!(null);
    assert_invalid_because(&verify(&v, &es256(&c)), "required claim");
    c["tenant"] = json!("t1");
    assert_valid(&verify(&v, &es256(&c)));
}

#[test]
fn typ_is_compared_case_insensitively_when_configured() {
    let mut d = def(&[A::ES256], pem_key("ec256.pub.pem"));
    d.typ = Some("at+jwt".into());
    let v = build(&d);
    let k = key("ec256.key.pem");
    for ok in [
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "Application/At+Jwt",
    ] {
        let t = sign(A::ES256, &k, None, Some(ok), &claims()).unwrap();
        assert_valid(&verify(&v, &t));
    }
    for bad in [Some("JWT"), Some("application/jwt"), Some("at+jwt2"), None] {
        let t = sign(A::ES256, &k, None, bad, &claims()).unwrap();
        assert_invalid_because(&verify(&v, &t), "typ");
    }
}

#[test]
fn extraction_rules() {
    let v = es256_verifier();
    let t = es256(&claims());
    // Absent, or not shaped like a JWT (no dot): absent for this credential.
    assert_eq!(v.verify(&Request::default(), now()), Outcome::Absent);
    assert_eq!(v.verify(&bearer("pk_live_abc"), now()), Outcome::Absent);
    // Given twice, or comma-merged by a proxy: ambiguous.
    let mut r = bearer(&t);
    r.headers.append("Authorization", format!("Bearer {t}"));
    assert_denied(&v.verify(&r, now()), Reason::AmbiguousCredential);
    assert_denied(
        &v.verify(&bearer(&format!("{t},Bearer {t}")), now()),
        Reason::AmbiguousCredential,
    );
    // In two configured sources: ambiguous.
    let mut d = def(&[A::ES256], pem_key("ec256.pub.pem"));
    d.sources = vec![Source::Header("x-jwt".into()), Source::Bearer];
    let v2 = build(&d);
    let mut r = bearer(&t);
    r.headers.append("x-jwt", t.clone());
    assert_denied(&v2.verify(&r, now()), Reason::AmbiguousCredential);
    let mut r = Request::default();
    r.headers.append("x-jwt", t.clone());
    assert_valid(&v2.verify(&r, now()));
}
