//! Issue 3 benchmarks: an API-key decision against its floor, and route
//! matching (compiled tree against the reference evaluator).
//!
//! Run: `cargo bench -p portcullis-bench --bench decide`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use portcullis_bench::{key_index, path_for, policy_with_routes};
use portcullis_engine::credential::apikey::index::DigestHasher;
use portcullis_engine::credential::KeyStore;
use portcullis_engine::reference::Reference;
use portcullis_engine::{Engine, Headers, Request};
use sha2::{Digest, Sha256};

fn request(path: &str, key: &str) -> Request {
    let mut headers = Headers::new();
    headers.append("x-api-key", key);
    Request {
        method: "GET".into(),
        path: path.into(),
        host: Some("api.example.com".into()),
        headers,
        source_ip: None,
    }
}

/// `decide` on an API-key route with 1,000,000 keys, next to its floor:
/// SHA-256 of the key plus one lookup in a 1,000,000-entry map.
fn api_key_decision(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let (index, sample) = key_index(N);
    let engine = Engine::new(
        &policy_with_routes(10),
        Arc::clone(&index) as Arc<dyn KeyStore>,
    )
    .unwrap();
    let floor_map: HashMap<[u8; 32], u64, BuildHasherDefault<DigestHasher>> = {
        let mut m = HashMap::with_capacity_and_hasher(N, BuildHasherDefault::default());
        for i in 0..N as u64 {
            let mut k = [0u8; 32];
            k.copy_from_slice(&Sha256::digest(i.to_le_bytes()));
            m.insert(k, i);
        }
        for s in &sample {
            m.insert(Sha256::digest(s.as_bytes()).into(), 7);
        }
        m
    };
    let reqs: Vec<Request> = sample.iter().map(|k| request(&path_for(0), k)).collect();
    assert!(
        engine.decide(&reqs[0]).allow,
        "benchmark request must be allowed"
    );

    let mut g = c.benchmark_group("api_key_1m");
    let mut i = 0usize;
    g.bench_function("floor_sha256_plus_map_lookup", |b| {
        b.iter(|| {
            i = (i + 1) % sample.len();
            let d: [u8; 32] = Sha256::digest(black_box(sample[i].as_bytes())).into();
            black_box(floor_map.get(&d))
        })
    });
    let mut j = 0usize;
    g.bench_function("decide", |b| {
        b.iter(|| {
            j = (j + 1) % reqs.len();
            black_box(engine.decide(black_box(&reqs[j])))
        })
    });
    g.finish();
}

/// Route matching at 10, 1,000 and 10,000 routes: the compiled tree against
/// the reference evaluator, on requests that pass (so both do the same credential work).
fn route_matching(c: &mut Criterion) {
    let (index, sample) = key_index(1_000);
    let mut g = c.benchmark_group("route_matching");
    for n in [10usize, 1_000, 10_000] {
        let policy = policy_with_routes(n);
        let engine = Engine::new(&policy, Arc::clone(&index) as Arc<dyn KeyStore>).unwrap();
        let reference = Reference::new(&policy).unwrap();
        let reqs: Vec<Request> = (0..64)
            .map(|i| request(&path_for(i * n / 64), &sample[0]))
            .collect();
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("tree", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % reqs.len();
                black_box(engine.decide(black_box(&reqs[i])))
            })
        });
        if n <= 10_000 {
            let now = SystemTime::now();
            let mut j = 0usize;
            g.bench_with_input(BenchmarkId::new("reference", n), &n, |b, _| {
                b.iter(|| {
                    j = (j + 1) % reqs.len();
                    black_box(reference.decide(black_box(&reqs[j]), index.as_ref(), now))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, api_key_decision, route_matching);
criterion_main!(benches);
