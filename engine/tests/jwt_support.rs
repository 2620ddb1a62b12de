//! Shared helpers for the `jwt_*` integration tests (included with
//! `#[path = "jwt_support.rs"] mod support;`; as a test target of its own it
//! only checks that the fixtures load).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_engine::credential::jwt::JwtVerifier;
use portcullis_engine::credential::Outcome;
use portcullis_engine::policy::{JwtAlgorithm, JwtDef, JwtKeySource, Source, Span, Spanned};
use portcullis_engine::{Reason, Request};
use serde_json::{json, Value};

/// The fixed "now" of these tests: 2027-01-15T08:00:00Z.
pub const NOW_S: u64 = 1_800_000_000;
pub const ISS: &str = "https://issuer.test/";
pub const AUD: &str = "payments-api";

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_S)
}

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jwt")
}

pub fn key_path(name: &str) -> PathBuf {
    data().join("keys").join(name)
}

pub fn key(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).unwrap()
}

pub fn jwk(name: &str) -> Value {
    serde_json::from_slice(&key(&format!("{name}.jwk.json"))).unwrap()
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory for this test.
pub fn temp_dir() -> PathBuf {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("portcullis-jwt-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A unique environment variable name, set to `value`.
pub fn env_secret(value: &[u8]) -> String {
    use std::os::unix::ffi::OsStrExt;
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let name = format!("PORTCULLIS_JWT_TEST_SECRET_{}_{n}", std::process::id());
    std::env::set_var(&name, std::ffi::OsStr::from_bytes(value));
    name
}

/// Writes a JWKS of `(jwk, kid, alg)` entries into a fresh directory.
pub fn jwks_file(keys: &[(Value, Option<&str>, Option<&str>)]) -> PathBuf {
    let list: Vec<Value> = keys
        .iter()
        .map(|(k, kid, alg)| {
            let mut k = k.clone();
            if let Some(kid) = kid {
                k["kid"] = json!(kid);
            }
            if let Some(alg) = alg {
                k["alg"] = json!(alg);
            }
            k
        })
        .collect();
    let p = temp_dir().join("jwks.json");
    std::fs::write(&p, serde_json::to_vec(&json!({ "keys": list })).unwrap()).unwrap();
    p
}

pub fn def(algorithms: &[JwtAlgorithm], keys: JwtKeySource) -> JwtDef {
    JwtDef {
        sources: vec![Source::Bearer],
        issuer: Some(ISS.into()),
        audience: vec![AUD.into()],
        algorithms: algorithms.to_vec(),
        keys: Spanned::new(keys, Span::default()),
        leeway: Duration::from_secs(30),
        max_lifetime: None,
        require_claims: vec!["exp".into()],
        scopes_claim: None,
        principal_claim: "sub".into(),
        typ: None,
        max_token_bytes: 8192,
        cache_size: 0,
    }
}

pub fn build(def: &JwtDef) -> JwtVerifier {
    JwtVerifier::new(def, &data()).unwrap()
}

pub fn build_err(def: &JwtDef) -> String {
    match JwtVerifier::new(def, &data()) {
        Ok(_) => panic!("verifier built, expected a load error"),
        Err(e) => e,
    }
}

/// Good claims for [`NOW_S`].
pub fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "user-1",
        "iat": NOW_S - 10,
        "exp": NOW_S + 600,
    })
}

pub fn bearer(token: &str) -> Request {
    let mut r = Request {
        method: "GET".into(),
        path: "/".into(),
        ..Request::default()
    };
    r.headers.append("authorization", format!("Bearer {token}"));
    r
}

pub fn verify(v: &JwtVerifier, token: &str) -> Outcome {
    v.verify(&bearer(token), now())
}

#[track_caller]
pub fn assert_valid(o: &Outcome) -> &portcullis_engine::credential::Identity {
    match o {
        Outcome::Valid(i) => i,
        other => panic!("expected valid, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_denied(o: &Outcome, reason: Reason) {
    match o {
        Outcome::Invalid(r, _) if *r == reason => {}
        other => panic!("expected {reason:?}, got {other:?}"),
    }
}

/// Denied as `credential_invalid` with a detail containing `needle`.
#[track_caller]
pub fn assert_invalid_because(o: &Outcome, needle: &str) {
    match o {
        Outcome::Invalid(Reason::CredentialInvalid, d) if d.contains(needle) => {}
        other => panic!("expected credential_invalid mentioning {needle:?}, got {other:?}"),
    }
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn fixtures_load() {
    for name in ["rsa", "rsa2", "ec256", "ec256b", "ec384", "ed25519"] {
        assert!(!key(&format!("{name}.key.pem")).is_empty());
        assert!(jwk(name).is_object());
    }
}
