//! The verified-token cache and the `jti` denylist.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "jwt_support.rs"]
mod support;

use std::sync::Arc;

use portcullis_engine::credential::jwt::denylist::{self, MemoryDenylist};
use portcullis_engine::credential::jwt::testing::sign;
use portcullis_engine::credential::jwt::JwtVerifier;
use portcullis_engine::policy::{JwtAlgorithm as A, JwtKeySource};
use portcullis_engine::Reason;
use serde_json::json;
use support::*;

fn cached_verifier(size: usize) -> JwtVerifier {
    let mut d = def(
        &[A::ES256],
        JwtKeySource::PemFile("keys/ec256.pub.pem".into()),
    );
    d.cache_size = size;
    build(&d)
}

fn token(sub: &str, jti: Option<&str>) -> String {
    let mut c = claims();
    c["sub"] = json!(sub);
    if let Some(j) = jti {
        c["jti"] = json!(j);
    }
    sign(A::ES256, &key("ec256.key.pem"), None, None, &c).unwrap()
}

#[test]
fn a_hit_returns_the_same_identity() {
    let v = cached_verifier(100);
    let t = token("u1", None);
    let a = assert_valid(&verify(&v, &t)).clone();
    assert_eq!(v.cached(), 1);
    let b = assert_valid(&verify(&v, &t)).clone();
    assert_eq!(a, b);
    assert_eq!(v.cached(), 1);
}

#[test]
fn cache_hit_after_denylist_denies() {
    let mut v = cached_verifier(100);
    let list = Arc::new(MemoryDenylist::new());
    v.set_denylist(list.clone());
    let t = token("u1", Some("jti-cache-1"));
    assert_valid(&verify(&v, &t));
    assert_eq!(v.cached(), 1);
    list.deny("jti-cache-1", at(NOW_S + 3600));
    assert_denied(&verify(&v, &t), Reason::CredentialRevoked);
    // Lifted: allowed again.
    list.allow("jti-cache-1");
    assert_valid(&verify(&v, &t));
}

#[test]
fn denied_jti_without_cache_is_revoked() {
    let mut v = cached_verifier(0);
    let list = Arc::new(MemoryDenylist::new());
    list.deny("jti-nocache", at(u64::from(u32::MAX)));
    v.set_denylist(list);
    assert_denied(
        &verify(&v, &token("u", Some("jti-nocache"))),
        Reason::CredentialRevoked,
    );
    assert_valid(&verify(&v, &token("u", Some("other"))));
    assert_eq!(v.cached(), 0);
}

#[test]
fn jti_of_the_wrong_type_denies() {
    let v = cached_verifier(0);
    let mut c = claims();
    c["jti"] = json!(12);
    let t = sign(A::ES256, &key("ec256.key.pem"), None, None, &c).unwrap();
    assert_invalid_because(&verify(&v, &t), "`jti` is not a string");
}

#[test]
fn the_process_wide_denylist_is_consulted() {
    let v = cached_verifier(10);
    let t = token("u", Some("jti-global-unique-1"));
    assert_valid(&verify(&v, &t));
    let list = Arc::new(MemoryDenylist::new());
    list.deny("jti-global-unique-1", at(u64::from(u32::MAX)));
    denylist::set_global(Some(list));
    assert_denied(&verify(&v, &t), Reason::CredentialRevoked);
    denylist::set_global(None);
    assert_valid(&verify(&v, &t));
}

#[test]
fn memory_denylist_entries_expire() {
    let list = MemoryDenylist::new();
    list.deny("old", at(1));
    list.deny("new", at(u64::from(u32::MAX)));
    use portcullis_engine::credential::jwt::JtiDenylist;
    assert!(!list.is_denied("old"));
    assert!(list.is_denied("new"));
    list.purge_expired(now());
    assert_eq!(list.len(), 1);
}

#[test]
fn cache_never_outlives_exp() {
    let v = cached_verifier(100);
    let t = token("u1", None);
    assert_valid(&verify(&v, &t));
    assert_eq!(v.cached(), 1);
    // exp is NOW+600, leeway 30s: valid until then, expired from then on.
    assert_valid(&v.verify(&bearer(&t), at(NOW_S + 629)));
    assert_denied(
        &v.verify(&bearer(&t), at(NOW_S + 630)),
        Reason::CredentialExpired,
    );
    assert_eq!(v.cached(), 0, "the expired entry is dropped");
    assert_denied(
        &v.verify(&bearer(&t), at(NOW_S + 10_000)),
        Reason::CredentialExpired,
    );
}

#[test]
fn a_hit_rechecks_nbf() {
    let v = cached_verifier(100);
    let mut c = claims();
    c["nbf"] = json!(NOW_S - 5);
    let t = sign(A::ES256, &key("ec256.key.pem"), None, None, &c).unwrap();
    assert_valid(&verify(&v, &t));
    // The clock went back: the cached token is not valid yet.
    assert_denied(
        &v.verify(&bearer(&t), at(NOW_S - 100)),
        Reason::CredentialExpired,
    );
}

#[test]
fn tokens_without_exp_are_not_cached() {
    let mut d = def(
        &[A::ES256],
        JwtKeySource::PemFile("keys/ec256.pub.pem".into()),
    );
    d.cache_size = 100;
    d.require_claims = vec![];
    let v = build(&d);
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    let t = sign(A::ES256, &key("ec256.key.pem"), None, None, &c).unwrap();
    assert_valid(&verify(&v, &t));
    assert_eq!(v.cached(), 0);
}

#[test]
fn the_cache_is_bounded() {
    let v = cached_verifier(4);
    for i in 0..40 {
        assert_valid(&verify(&v, &token(&format!("u{i}"), None)));
        assert!(v.cached() <= 4, "{} entries", v.cached());
    }
    // Evicted tokens still verify (afresh).
    assert_valid(&verify(&v, &token("u0", None)));
}

#[test]
fn denied_tokens_are_never_cached() {
    let v = cached_verifier(100);
    let mut c = claims();
    c["aud"] = json!("someone-else");
    let t = sign(A::ES256, &key("ec256.key.pem"), None, None, &c).unwrap();
    assert_denied(&verify(&v, &t), Reason::CredentialInvalid);
    assert_eq!(v.cached(), 0);
}

/// The cache is keyed by the signing input's digest and an entry holds
/// the signature: the same header and claims with any other signature is
/// never a hit, however the signature differs (a forged one, a truncated
/// one, one with a character changed, the token with the signature
/// dropped), and a second valid signature of the same claims (ECDSA
/// signs with a fresh nonce) is verified afresh.
#[test]
fn a_hit_needs_the_very_signature_that_was_verified() {
    let v = cached_verifier(100);
    let c = claims();
    let first = sign(A::ES256, &key("ec256.key.pem"), None, None, &c).unwrap();
    assert_valid(&verify(&v, &first));
    assert_eq!(v.cached(), 1);
    let (input, sig) = first.rsplit_once('.').unwrap();
    let flipped = {
        let mut b = sig.as_bytes().to_vec();
        b[10] = if b[10] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let forged = [
        format!("{input}.{flipped}"),
        format!("{input}.{}", &sig[..sig.len() - 4]),
        format!("{input}.{sig}AAAA"),
        format!("{input}."),
        input.to_string(),
        format!("{input}.{}", "A".repeat(86)),
    ];
    for t in &forged {
        assert_denied(&verify(&v, t), Reason::CredentialInvalid);
    }
    // The cached token is still a hit, and still valid.
    assert_valid(&verify(&v, &first));
    let second = sign(A::ES256, &key("ec256.key.pem"), None, None, &c).unwrap();
    assert_ne!(first, second, "ECDSA signatures are randomised");
    assert_eq!(second.rsplit_once('.').unwrap().0, input);
    assert_valid(&verify(&v, &second));
    assert_valid(&verify(&v, &first));
    assert_eq!(v.cached(), 1);
}
