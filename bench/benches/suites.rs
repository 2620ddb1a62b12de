//! Issue 7 micro-benchmarks the other suites do not cover: policy load and
//! compile time and hot-swap cost from 10 to 10,000 routes, route matching
//! when nothing matches (the whole tree is searched) and at 100 routes, and
//! a full `decide` per requirement shape (one key, one JWT, `any_of` and
//! `all_of` of both).
//!
//! Run: `cargo bench -p portcullis-bench --bench suites`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portcullis_bench::harness::jwtkeys::SigningKey;
use portcullis_bench::harness::mechanism::JwtKeyRef;
use portcullis_bench::{key_index, path_for, policy_with_routes, policy_yaml_with_routes};
use portcullis_engine::credential::KeyStore;
use portcullis_engine::policy::JwtAlgorithm;
use portcullis_engine::{Engine, Headers, Request};

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

fn request(path: &str, headers: &[(&str, &str)]) -> Request {
    let mut h = Headers::new();
    for (k, v) in headers {
        h.append(k, *v);
    }
    Request {
        method: "GET".into(),
        path: path.into(),
        host: Some("api.example.com".into()),
        headers: h,
        source_ip: None,
    }
}

/// Parse + validate + compile from YAML text, compile alone from the model,
/// and a hot swap (`Engine::reload`: compile and publish) of the same policy.
fn policy_load_and_swap(c: &mut Criterion) {
    let (index, _) = key_index(1_000);
    let mut g = c.benchmark_group("policy");
    g.sample_size(20);
    for n in SIZES {
        let yaml = policy_yaml_with_routes(n);
        let model = policy_with_routes(n);
        let file = Path::new("bench.yaml");
        assert_eq!(
            portcullis_engine::policy::load_str(file, &yaml)
                .unwrap()
                .routes
                .len(),
            n
        );
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("load_yaml_and_compile", n), &n, |b, _| {
            b.iter(|| {
                let p = portcullis_engine::policy::load_str(file, black_box(&yaml)).unwrap();
                black_box(portcullis_engine::compile::compile(&p).unwrap())
            })
        });
        g.bench_with_input(BenchmarkId::new("compile", n), &n, |b, _| {
            b.iter(|| black_box(portcullis_engine::compile::compile(black_box(&model)).unwrap()))
        });
        let engine = Engine::new(&model, Arc::clone(&index) as Arc<dyn KeyStore>).unwrap();
        g.bench_with_input(BenchmarkId::new("hot_swap", n), &n, |b, _| {
            b.iter(|| black_box(engine.reload(black_box(&model)).unwrap()))
        });
    }
    g.finish();
}

/// Route matching where no route matches (`no_route`: the most searching),
/// and a matching request at 100 routes (decide.rs covers 10, 1,000, 10,000).
fn route_matching_more(c: &mut Criterion) {
    let (index, sample) = key_index(1_000);
    let mut g = c.benchmark_group("route_matching_more");
    for n in SIZES {
        let engine = Engine::new(
            &policy_with_routes(n),
            Arc::clone(&index) as Arc<dyn KeyStore>,
        )
        .unwrap();
        let miss: Vec<Request> = (0..64)
            .map(|i| {
                request(
                    &format!("/nowhere{i}/items/x"),
                    &[("x-api-key", &sample[0])],
                )
            })
            .collect();
        assert_eq!(engine.decide(&miss[0]).reason.as_str(), "no_route");
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("miss", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % miss.len();
                black_box(engine.decide(black_box(&miss[i])))
            })
        });
        if n == 100 {
            let hit: Vec<Request> = (0..64)
                .map(|i| request(&path_for(i * n / 64), &[("x-api-key", &sample[0])]))
                .collect();
            assert!(engine.decide(&hit[0]).allow);
            let mut j = 0usize;
            g.bench_with_input(BenchmarkId::new("hit", n), &n, |b, _| {
                b.iter(|| {
                    j = (j + 1) % hit.len();
                    black_box(engine.decide(black_box(&hit[j])))
                })
            });
        }
    }
    g.finish();
}

/// One policy with an API key and an ES256 JWT credential (verified-token
/// cache on, the default, so the JWT rows after the first are cache hits;
/// `jwt_no_cache` verifies the signature every time), and a route per
/// requirement shape.
fn shapes_policy(dir: &Path, key: &JwtKeyRef) -> String {
    let keys = match key {
        JwtKeyRef::PemFile(f) => format!("{{pem_file: {f}}}"),
        JwtKeyRef::SecretEnv => unreachable!("ES256 uses a PEM file"),
    };
    let _ = dir;
    format!(
        r#"version: 1
credentials:
  key:
    type: api_key
    in: [header:x-api-key]
    prefixes: [pk_live_]
  jwt:
    type: jwt
    in: [bearer]
    issuer: https://issuer.bench.example/
    audience: [bench-api]
    algorithms: [ES256]
    keys: {keys}
    require_claims: [sub, exp, iat]
    scopes_claim: scope
  jwt_nocache:
    type: jwt
    in: [bearer]
    issuer: https://issuer.bench.example/
    audience: [bench-api]
    algorithms: [ES256]
    keys: {keys}
    require_claims: [sub, exp, iat]
    scopes_claim: scope
    cache_size: 0
routes:
  - {{name: key, match: {{path: "/key/{{id}}"}}, require: key, scopes: {{all_of: [read]}}}}
  - {{name: jwt, match: {{path: "/jwt/{{id}}"}}, require: jwt, scopes: {{all_of: ["items:read"]}}}}
  - {{name: jwt_nocache, match: {{path: "/jwtnc/{{id}}"}}, require: jwt_nocache, scopes: {{all_of: ["items:read"]}}}}
  - {{name: any, match: {{path: "/any/{{id}}"}}, require: {{any_of: [key, jwt]}}}}
  - {{name: all, match: {{path: "/all/{{id}}"}}, require: {{all_of: [key, jwt]}}}}
"#
    )
}

/// A full decision per requirement shape, each request allowed.
fn requirement_shapes(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let signer = SigningKey::generate(JwtAlgorithm::ES256).unwrap();
    let key_ref = signer.install(dir.path(), "jwt").unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, shapes_policy(dir.path(), &key_ref)).unwrap();
    let (index, sample) = key_index(10_000);
    let engine = Engine::from_path(&policy, Arc::clone(&index) as Arc<dyn KeyStore>).unwrap();
    let key = sample[0].clone();
    let token = signer.token("user-1", Duration::from_secs(3600)).unwrap();
    let bearer = format!("Bearer {token}");
    let cases: Vec<(&str, Request)> = vec![
        ("key", request("/key/1", &[("x-api-key", &key)])),
        ("jwt", request("/jwt/1", &[("authorization", &bearer)])),
        (
            "jwt_no_cache",
            request("/jwtnc/1", &[("authorization", &bearer)]),
        ),
        (
            "any_of_key_present",
            request("/any/1", &[("x-api-key", &key)]),
        ),
        (
            "any_of_jwt_present",
            request("/any/1", &[("authorization", &bearer)]),
        ),
        (
            "all_of_key_and_jwt",
            request("/all/1", &[("x-api-key", &key), ("authorization", &bearer)]),
        ),
    ];
    let mut g = c.benchmark_group("decide_shape");
    for (name, req) in &cases {
        let d = engine.decide(req);
        assert!(d.allow, "{name}: {}", d.reason.as_str());
        g.bench_function(*name, |b| {
            b.iter(|| black_box(engine.decide(black_box(req))))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    policy_load_and_swap,
    route_matching_more,
    requirement_shapes
);
criterion_main!(benches);
