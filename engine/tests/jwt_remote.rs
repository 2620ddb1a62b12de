//! JWKS-URL credentials through the engine's registry (no network here:
//! the test plays the fetcher's part; `server/src/jwks.rs` does it for real).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "jwt_support.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_engine::credential::jwt::testing::sign;
use portcullis_engine::credential::jwt::{registry, RemoteKeys};
use portcullis_engine::policy::{JwtAlgorithm as A, JwtKeySource};
use portcullis_engine::Reason;
use serde_json::{json, Value};
use support::*;

fn url_def(url: &str, cache: usize) -> portcullis_engine::policy::JwtDef {
    let mut d = def(
        &[A::ES256],
        JwtKeySource::JwksUrl {
            url: url.into(),
            refresh: Duration::from_secs(300),
            refetch_min_interval: Duration::from_secs(30),
        },
    );
    d.cache_size = cache;
    d
}

fn entry(url: &str) -> Arc<RemoteKeys> {
    registry()
        .entries()
        .into_iter()
        .find(|e| e.url() == url)
        .unwrap()
}

fn set(keys: &[(&str, &str)]) -> Vec<u8> {
    let list: Vec<Value> = keys
        .iter()
        .map(|(name, kid)| {
            let mut k = jwk(name);
            k["kid"] = json!(kid);
            k
        })
        .collect();
    serde_json::to_vec(&json!({ "keys": list })).unwrap()
}

fn es256(kid: &str, priv_name: &str) -> String {
    sign(
        A::ES256,
        &key(&format!("{priv_name}.key.pem")),
        Some(kid),
        None,
        &claims(),
    )
    .unwrap()
}

#[test]
fn denied_as_store_unavailable_until_a_set_is_installed() {
    let url = "https://keys.test/remote-1/jwks.json";
    let v = build(&url_def(url, 0));
    let t = es256("a", "ec256");
    assert_denied(&verify(&v, &t), Reason::StoreUnavailable);
    let e = entry(url);
    assert!(!e.has_keys());
    assert_eq!(e.install_jwks(&set(&[("ec256", "a")])).unwrap(), 1);
    assert_valid(&verify(&v, &t));
    // A second verifier on the same URL (a reload) shares the loaded set.
    let v2 = build(&url_def(url, 0));
    assert_valid(&verify(&v2, &t));
}

#[test]
fn unknown_kid_records_one_miss_and_wakes_the_fetcher() {
    static WAKES: AtomicUsize = AtomicUsize::new(0);
    registry().set_waker(|| {
        WAKES.fetch_add(1, Ordering::Relaxed);
    });
    let url = "https://keys.test/remote-2/jwks.json";
    let v = build(&url_def(url, 0));
    let e = entry(url);
    e.install_jwks(&set(&[("ec256", "a")])).unwrap();
    let before = WAKES.load(Ordering::Relaxed);
    for kid in ["b", "c", "d"] {
        assert_invalid_because(
            &verify(&v, &es256(kid, "ec256b")),
            "kid names no configured key",
        );
    }
    assert!(e.miss_pending());
    // Many misses, one wake: varying kids cannot force a fetch each.
    assert!(WAKES.load(Ordering::Relaxed) > before);
    assert!(e.take_miss());
    assert!(!e.take_miss());
    // The fetcher finds the new key: tokens with it verify.
    e.install_jwks(&set(&[("ec256", "a"), ("ec256b", "b")]))
        .unwrap();
    assert_valid(&verify(&v, &es256("b", "ec256b")));
}

#[test]
fn a_bad_fetch_keeps_the_last_good_set() {
    let url = "https://keys.test/remote-3/jwks.json";
    let v = build(&url_def(url, 0));
    let e = entry(url);
    e.install_jwks(&set(&[("ec256", "a")])).unwrap();
    let t = es256("a", "ec256");
    assert_valid(&verify(&v, &t));
    for bad in [
        &b"not json"[..],
        br#"{"keys":[]}"#,
        br#"{"keys":[{"kty":"oct","k":"AAAA"}]}"#,
        &set(&[("ec256", "a"), ("ec256b", "a")]),
    ] {
        assert!(e.install_jwks(bad).is_err());
        assert_valid(&verify(&v, &t));
    }
}

#[test]
fn a_rotated_set_invalidates_cached_verifications() {
    let url = "https://keys.test/remote-4/jwks.json";
    let v = build(&url_def(url, 100));
    let e = entry(url);
    e.install_jwks(&set(&[("ec256", "a")])).unwrap();
    let t = es256("a", "ec256");
    assert_valid(&verify(&v, &t));
    assert_eq!(v.cached(), 1);
    // Key `a` is withdrawn by the issuer: the cached verification must not survive.
    e.install_jwks(&set(&[("ec256b", "b")])).unwrap();
    assert_invalid_because(&verify(&v, &t), "kid names no configured key");
}

#[test]
fn fetched_sets_skip_keys_for_other_algorithms() {
    let url = "https://keys.test/remote-5/jwks.json";
    let _v = build(&url_def(url, 0));
    let e = entry(url);
    let mut rsa = jwk("rsa");
    rsa["kid"] = json!("r");
    rsa["alg"] = json!("RS256");
    let mut ec = jwk("ec256");
    ec["kid"] = json!("a");
    let body = serde_json::to_vec(&json!({"keys": [rsa, ec]})).unwrap();
    assert_eq!(e.install_jwks(&body).unwrap(), 1);
}
