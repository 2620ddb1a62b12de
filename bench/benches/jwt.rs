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
//! - `sha256_signing_input`: the cache key alone (SHA-256 over the
//!   token's `header.payload`; a hit then compares the signature segment);
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
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cpu_time::ThreadTime;
use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_bench::jwt_case::{self, Bare, ALGORITHMS};
use portcullis_bench::{key_index, path_for, policy_with_routes};
use portcullis_engine::credential::jwt::JwtVerifier;
use portcullis_engine::credential::KeyStore;
use portcullis_engine::credential::Outcome;
use portcullis_engine::{Engine, Request};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(jwt_case::keys_dir().join(name)).unwrap()
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

/// `jsonwebtoken`'s name for an algorithm, and its key object (for the
/// `jsonwebtoken_decode` reference row).
fn jsonwebtoken_key(
    name: &str,
    stem: &str,
    signing: &[u8],
) -> (jsonwebtoken::Algorithm, jsonwebtoken::DecodingKey) {
    let alg: jsonwebtoken::Algorithm = name.parse().unwrap();
    let key = match stem {
        "" => jsonwebtoken::DecodingKey::from_secret(signing),
        "rsa" => jsonwebtoken::DecodingKey::from_rsa_pem(&read("rsa.pub.pem")).unwrap(),
        "ec256" | "ec384" => {
            jsonwebtoken::DecodingKey::from_ec_pem(&read(&format!("{stem}.pub.pem"))).unwrap()
        }
        _ => jsonwebtoken::DecodingKey::from_ed_pem(&read(&format!("{stem}.pub.pem"))).unwrap(),
    };
    (alg, key)
}

fn cases() -> Vec<Case> {
    let only = std::env::var("JWT_BENCH_ALGS").ok();
    ALGORITHMS
        .into_iter()
        .filter(|(name, ..)| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == *name))
        })
        .map(|(name, alg, stem)| {
            let keys = jwt_case::key_material(name, alg, stem).unwrap();
            let (jwt_alg, jwt_key) = jsonwebtoken_key(name, stem, &keys.signing);
            let token = jwt_case::token(alg, &keys.signing).unwrap();
            let src = keys.source;
            let verifier =
                JwtVerifier::new(&jwt_case::def(alg, src.clone(), 0), Path::new(".")).unwrap();
            let cached =
                JwtVerifier::new(&jwt_case::def(alg, src.clone(), 10_000), Path::new(".")).unwrap();
            let engine = jwt_case::jwt_engine(jwt_case::def(alg, src.clone(), 0)).unwrap();
            let engine_cached = jwt_case::jwt_engine(jwt_case::def(alg, src, 10_000)).unwrap();
            Case {
                name,
                token,
                verifier,
                cached,
                engine,
                engine_cached,
                bare: keys.bare,
                jwt_key,
                jwt_alg,
            }
        })
        .collect()
}

fn request(token: &str) -> Request {
    jwt_case::request(token, "/v1/charges/ch_1")
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
        let sig = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
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
        let route_req = jwt_case::route_request(&case.token);
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
        // The cache key alone (SHA-256 of the signing input), for reading the hit cost.
        g.bench_function("sha256_signing_input", |b| {
            cpu_iter(b, || {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(input.as_bytes()))
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
