//! JWT verification cost, per algorithm, next to the bare signature check
//! of the same key (docs/jwt.md has the figures and how to read them).
//!
//! Per algorithm group:
//! - `sig_aws_lc`: `aws_lc_rs` verifying the token's signature with a key
//!   parsed once (`ParsedPublicKey::verify_sig` / `hmac::verify`): the floor;
//! - `jwt_verify`: `JwtVerifier::verify` on a `Request`, cache off: extraction,
//!   strict parse, header, key choice, signature, claims, identity;
//! - `overhead_vs_sig`: `jwt_verify` minus `sig_aws_lc`, timed interleaved;
//! - `jwt_cache_hit`: the same request with the verified-token cache warm;
//! - `sha256_token`: the cache key alone (SHA-256 over the token);
//! - `jsonwebtoken_decode`: `jsonwebtoken::decode` with a `DecodingKey`
//!   built once and default `Validation`, for reference;
//! - `decide`: `Engine::decide` on a route that requires the JWT (10
//!   routes, cache off): the whole decision, route matching included;
//! - `decide_overhead_vs_sig`: `decide` minus `sig_aws_lc`, timed interleaved
//!   (the figure the 2 µs goal is about);
//! - `decide_cache_hit`: `decide` with the verified-token cache warm.
//!
//! Group `api_key_1m/decide` is `Engine::decide` on an API-key route with
//! 1,000,000 keys (as in `benches/decide.rs`), in the same run, for reading
//! the cache-hit figures against it.
//!
//! Times are this thread's CPU time (`cpu_time::ThreadTime`), not wall
//! time: the figures stay readable on a machine shared with other jobs.
//!
//! `cargo bench -p portcullis-bench --bench jwt -- --warm-up-time 1 --measurement-time 3`
//! (`JWT_BENCH_ALGS=HS256,ES256` limits the run to those algorithms, and
//! runs the API-key group only if the list also names `api_key`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self, ParsedPublicKey};
use b64::decode_b64url;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cpu_time::ThreadTime;
use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_bench::{key_index, path_for, policy_with_routes};
use portcullis_engine::credential::apikey::MemoryIndex;
use portcullis_engine::credential::jwt::testing::sign;
use portcullis_engine::credential::jwt::JwtVerifier;
use portcullis_engine::credential::KeyStore;
use portcullis_engine::credential::Outcome;
use portcullis_engine::policy::{
    CredentialKind, JwtAlgorithm, JwtDef, JwtKeySource, Source, Span, Spanned,
};
use portcullis_engine::{Engine, Request};
use serde_json::json;
use std::sync::Arc;

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/data/jwt/keys")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(keys_dir().join(name)).unwrap()
}

fn def(alg: JwtAlgorithm, keys: JwtKeySource, cache: usize) -> JwtDef {
    JwtDef {
        sources: vec![Source::Bearer],
        issuer: Some("https://issuer.test/".into()),
        audience: vec!["payments-api".into()],
        algorithms: vec![alg],
        keys: Spanned::new(keys, Span::default()),
        leeway: Duration::from_secs(30),
        max_lifetime: Some(Duration::from_secs(3600)),
        require_claims: vec!["sub".into(), "exp".into(), "iat".into()],
        scopes_claim: Some("scope".into()),
        principal_claim: "sub".into(),
        typ: None,
        max_token_bytes: 8192,
        cache_size: cache,
    }
}

/// Decodes unpadded base64url (the bench's own, to stay off the engine's code).
mod b64 {
    pub fn decode_b64url(s: &str) -> Vec<u8> {
        let val = |c: u8| -> u32 {
            match c {
                b'A'..=b'Z' => u32::from(c - b'A'),
                b'a'..=b'z' => u32::from(c - b'a') + 26,
                b'0'..=b'9' => u32::from(c - b'0') + 52,
                b'-' => 62,
                b'_' => 63,
                _ => panic!("not base64url"),
            }
        };
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in s.bytes() {
            acc = (acc << 6) | val(c);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        out
    }
}

enum Bare {
    Public(ParsedPublicKey),
    Hmac(Box<aws_lc_rs::hmac::Key>),
}

impl Bare {
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            Bare::Public(k) => k.verify_sig(msg, sig).is_ok(),
            Bare::Hmac(k) => aws_lc_rs::hmac::verify(k, msg, sig).is_ok(),
        }
    }
}

fn pem_body(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    // Standard alphabet with padding → base64url without padding.
    let url: String = b64
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    decode_b64url(&url)
}

struct Case {
    name: &'static str,
    token: String,
    verifier: JwtVerifier,
    cached: JwtVerifier,
    engine: Engine,
    engine_cached: Engine,
    bare: Bare,
    jwt_key: jsonwebtoken::DecodingKey,
    jwt_alg: jsonwebtoken::Algorithm,
}

fn cases() -> Vec<Case> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": "https://issuer.test/",
        "aud": "payments-api",
        "sub": "user-1",
        "iat": now - 10,
        "exp": now + 3000,
        "scope": "read charges:read refunds:write",
        "jti": "bench-token-1",
    });
    use jsonwebtoken::Algorithm as J;
    use JwtAlgorithm as A;
    // Key file stem ("" for HMAC: a secret of the hash length, from the environment).
    let specs: Vec<(&'static str, JwtAlgorithm, &str, jsonwebtoken::Algorithm)> = vec![
        ("HS256", A::HS256, "", J::HS256),
        ("HS384", A::HS384, "", J::HS384),
        ("HS512", A::HS512, "", J::HS512),
        ("RS256", A::RS256, "rsa", J::RS256),
        ("RS384", A::RS384, "rsa", J::RS384),
        ("RS512", A::RS512, "rsa", J::RS512),
        ("PS256", A::PS256, "rsa", J::PS256),
        ("PS384", A::PS384, "rsa", J::PS384),
        ("PS512", A::PS512, "rsa", J::PS512),
        ("ES256", A::ES256, "ec256", J::ES256),
        ("ES384", A::ES384, "ec384", J::ES384),
        ("EdDSA", A::EdDSA, "ed25519", J::EdDSA),
    ];
    let only = std::env::var("JWT_BENCH_ALGS").ok();
    specs
        .into_iter()
        .filter(|(name, ..)| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == *name))
        })
        .map(|(name, alg, key, jwt_alg)| {
            let (src, signing, bare, jwt_key) = if key.is_empty() {
                let (len, h) = match alg {
                    A::HS256 => (32u8, aws_lc_rs::hmac::HMAC_SHA256),
                    A::HS384 => (48, aws_lc_rs::hmac::HMAC_SHA384),
                    _ => (64, aws_lc_rs::hmac::HMAC_SHA512),
                };
                let hs_secret: Vec<u8> = (0..len).collect();
                let hs_var = format!("PORTCULLIS_BENCH_{name}_SECRET");
                // Set before the verifiers load it.
                std::env::set_var(
                    &hs_var,
                    format!("base64url:{}", URL_SAFE_NO_PAD.encode(&hs_secret)),
                );
                (
                    JwtKeySource::SecretEnv(hs_var),
                    hs_secret.clone(),
                    Bare::Hmac(Box::new(aws_lc_rs::hmac::Key::new(h, &hs_secret))),
                    jsonwebtoken::DecodingKey::from_secret(&hs_secret),
                )
            } else {
                let pub_pem = read(&format!("{key}.pub.pem"));
                let der = pem_body(&pub_pem);
                let va: &'static dyn signature::VerificationAlgorithm = match alg {
                    A::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    A::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    A::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    A::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    A::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    A::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    A::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                    A::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => &signature::ED25519,
                };
                let jwt_key = match key {
                    "rsa" => jsonwebtoken::DecodingKey::from_rsa_pem(&pub_pem).unwrap(),
                    "ec256" | "ec384" => jsonwebtoken::DecodingKey::from_ec_pem(&pub_pem).unwrap(),
                    _ => jsonwebtoken::DecodingKey::from_ed_pem(&pub_pem).unwrap(),
                };
                (
                    JwtKeySource::PemFile(keys_dir().join(format!("{key}.pub.pem"))),
                    read(&format!("{key}.key.pem")),
                    Bare::Public(ParsedPublicKey::new(va, &der).unwrap()),
                    jwt_key,
                )
            };
            let token = sign(alg, &signing, None, None, &claims).unwrap();
            let verifier = JwtVerifier::new(&def(alg, src.clone(), 0), Path::new(".")).unwrap();
            let cached = JwtVerifier::new(&def(alg, src.clone(), 10_000), Path::new(".")).unwrap();
            let engine = jwt_engine(def(alg, src.clone(), 0));
            let engine_cached = jwt_engine(def(alg, src, 10_000));
            Case {
                name,
                token,
                verifier,
                cached,
                engine,
                engine_cached,
                bare,
                jwt_key,
                jwt_alg,
            }
        })
        .collect()
}

/// The 10-route bench policy with its credential swapped for this JWT.
fn jwt_engine(jwt: JwtDef) -> Engine {
    let mut policy = policy_with_routes(10);
    policy.credentials[0].kind = CredentialKind::Jwt(jwt);
    Engine::new(&policy, Arc::new(MemoryIndex::new()) as Arc<dyn KeyStore>).unwrap()
}

/// `request` on a route of the bench policy.
fn route_request(token: &str) -> Request {
    let mut r = request(token);
    r.path = path_for(0);
    r
}

fn request(token: &str) -> Request {
    let mut r = Request {
        method: "GET".into(),
        path: "/v1/charges/ch_1".into(),
        ..Request::default()
    };
    r.headers.append("authorization", format!("Bearer {token}"));
    r.headers.append("accept", "application/json");
    r.headers.append("user-agent", "bench/1.0");
    r
}

/// Times `f` in this thread's CPU time: on a shared machine, time spent
/// preempted by other processes is not charged to the code under test.
fn cpu_iter<R>(b: &mut criterion::Bencher<'_>, mut f: impl FnMut() -> R) {
    b.iter_custom(|iters| {
        let t = ThreadTime::now();
        for _ in 0..iters {
            black_box(f());
        }
        t.elapsed()
    })
}

/// The cost of `full` above `bare`, measured directly: batches of each
/// alternate and only the difference is kept, so drift (frequency, cache,
/// neighbours) hits both sides alike. Clamped at 1 ns: criterion refuses zero.
fn overhead_iter<R, S>(
    b: &mut criterion::Bencher<'_>,
    mut full: impl FnMut() -> R,
    mut bare: impl FnMut() -> S,
) {
    b.iter_custom(|iters| {
        let (mut full_t, mut bare_t) = (Duration::ZERO, Duration::ZERO);
        let mut left = iters;
        while left > 0 {
            let n = left.min(16);
            left -= n;
            let t0 = ThreadTime::now();
            for _ in 0..n {
                black_box(full());
            }
            let t1 = ThreadTime::now();
            for _ in 0..n {
                black_box(bare());
            }
            let t2 = ThreadTime::now();
            full_t += t1.duration_since(t0);
            bare_t += t2.duration_since(t1);
        }
        full_t.saturating_sub(bare_t).max(Duration::from_nanos(1))
    })
}

fn bench(c: &mut Criterion) {
    for case in cases() {
        let req = request(&case.token);
        let (input, sig_b64) = case.token.rsplit_once('.').unwrap();
        let sig = decode_b64url(sig_b64);
        let now = SystemTime::now();
        assert!(case.bare.verify(input.as_bytes(), &sig), "{}", case.name);
        assert!(
            matches!(case.verifier.verify(&req, now), Outcome::Valid(_)),
            "{}",
            case.name
        );
        assert!(
            matches!(case.cached.verify(&req, now), Outcome::Valid(_)),
            "{}",
            case.name
        );
        let route_req = route_request(&case.token);
        assert!(case.engine.decide(&route_req).allow, "{}", case.name);
        assert!(case.engine_cached.decide(&route_req).allow, "{}", case.name);
        let mut validation = jsonwebtoken::Validation::new(case.jwt_alg);
        validation.set_audience(&["payments-api"]);
        validation.set_issuer(&["https://issuer.test/"]);
        jsonwebtoken::decode::<serde_json::Value>(&case.token, &case.jwt_key, &validation).unwrap();

        let mut g = c.benchmark_group(format!("jwt/{}", case.name));
        g.bench_function("sig_aws_lc", |b| {
            cpu_iter(b, || {
                case.bare
                    .verify(black_box(input.as_bytes()), black_box(&sig))
            })
        });
        g.bench_function("jwt_verify", |b| {
            cpu_iter(b, || case.verifier.verify(black_box(&req), now))
        });
        // The JWT cost above the bare signature (see `overhead_iter`).
        g.bench_function("overhead_vs_sig", |b| {
            overhead_iter(
                b,
                || case.verifier.verify(black_box(&req), now),
                || {
                    case.bare
                        .verify(black_box(input.as_bytes()), black_box(&sig))
                },
            )
        });
        g.bench_function("jwt_cache_hit", |b| {
            cpu_iter(b, || case.cached.verify(black_box(&req), now))
        });
        // The cache key alone (SHA-256 of the token), for reading the hit cost.
        g.bench_function("sha256_token", |b| {
            cpu_iter(b, || {
                aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    black_box(case.token.as_bytes()),
                )
            })
        });
        g.bench_function("jsonwebtoken_decode", |b| {
            cpu_iter(b, || {
                jsonwebtoken::decode::<serde_json::Value>(
                    black_box(&case.token),
                    &case.jwt_key,
                    &validation,
                )
            })
        });
        g.bench_function("decide", |b| {
            cpu_iter(b, || case.engine.decide(black_box(&route_req)))
        });
        g.bench_function("decide_overhead_vs_sig", |b| {
            overhead_iter(
                b,
                || case.engine.decide(black_box(&route_req)),
                || {
                    case.bare
                        .verify(black_box(input.as_bytes()), black_box(&sig))
                },
            )
        });
        g.bench_function("decide_cache_hit", |b| {
            cpu_iter(b, || case.engine_cached.decide(black_box(&route_req)))
        });
        g.finish();
    }
}

/// An API-key decision with 1,000,000 keys, as `benches/decide.rs` runs it,
/// so the cache-hit figures above have their yardstick from the same run.
fn api_key(c: &mut Criterion) {
    const N: usize = 1_000_000;
    if std::env::var("JWT_BENCH_ALGS").is_ok_and(|o| !o.split(',').any(|n| n == "api_key")) {
        return;
    }
    let (index, sample) = key_index(N);
    let engine = Engine::new(&policy_with_routes(10), index as Arc<dyn KeyStore>).unwrap();
    let reqs: Vec<Request> = sample
        .iter()
        .map(|k| {
            let mut r = Request {
                method: "GET".into(),
                path: path_for(0),
                host: Some("api.example.com".into()),
                ..Request::default()
            };
            r.headers.append("x-api-key", k.as_str());
            r
        })
        .collect();
    assert!(engine.decide(&reqs[0]).allow);
    let mut g = c.benchmark_group("api_key_1m");
    let mut j = 0usize;
    g.bench_function("decide", |b| {
        cpu_iter(b, || {
            j = (j + 1) % reqs.len();
            engine.decide(black_box(&reqs[j]))
        })
    });
    g.finish();
}

criterion_group!(benches, api_key, bench);
criterion_main!(benches);
