//! API-key verification cost, each group with its floor (SHA-256 of the
//! key plus one lookup in a plain hash map of the same size), so every row
//! reads as a ratio to what the hardware allows:
//!
//! - `api_key_replica`: replica mode (the in-memory index a replica keeps)
//!   at 1,000, 100,000 and 1,000,000 keys: the floor, digest + index lookup,
//!   and a full `decide` on an API-key route;
//! - `key_validation/{sqlite,postgres,redis}`: digest + `Store::lookup` in
//!   each serving mode against each backend, at 100,000 keys: replica (in
//!   memory), lookup (one query per decision), lookup + TTL cache.
//!
//! PostgreSQL and Redis come from `PORTCULLIS_TEST_POSTGRES` and
//! `PORTCULLIS_TEST_REDIS`; without them those groups are skipped.
//! `PORTCULLIS_BENCH_KEYS` changes the backends' population.
//!
//! Run: `cargo bench -p portcullis-bench --bench stores`
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
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use portcullis_bench::{key_index, key_requests, policy_with_routes};
use portcullis_engine::credential::apikey::index::DigestHasher;
use portcullis_engine::credential::apikey::{
    fingerprint, generate, KeyDigest, KeyRecord, KeyStore,
};
use portcullis_engine::Engine;
use portcullis_server::store::testkit::{PgSchema, RedisPrefix};
use portcullis_server::store::{Store, StoredRecord, VersionRow};
use sha2::{Digest, Sha256};

fn population(n: usize) -> (Vec<StoredRecord>, Vec<String>) {
    let mut recs = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let Ok(key) = generate("pk_live_") else {
            continue;
        };
        recs.push(StoredRecord {
            record: Arc::new(KeyRecord {
                id: format!("key_bench{i:010}").into(),
                consumer: format!("consumer{}", i % 1000).into(),
                scopes: Arc::from(vec!["read".to_string()]),
                created_at: 1,
                expires_at: None,
                not_before: None,
                revoked_at: None,
                allowed_cidrs: vec![],
                metadata: Default::default(),
                rate_limit: None,
            }),
            versions: vec![VersionRow {
                digest: KeyDigest::of(&key),
                prefix: "pk_live_".into(),
                fingerprint: fingerprint(&key),
                created_at: 1,
                expires_at: None,
            }],
            rev: 1,
        });
        keys.push(key);
    }
    (recs, keys)
}

/// The floor for `n` keys: a map of `n` SHA-256 digests (the sample's
/// among them), keyed the way the engine's index is.
type FloorMap = HashMap<[u8; 32], usize, BuildHasherDefault<DigestHasher>>;

fn floor_map(n: usize, sample: &[String]) -> FloorMap {
    let fillers = (0..n.saturating_sub(sample.len())).map(|i| Sha256::digest(i.to_le_bytes()));
    let present = sample.iter().map(|k| Sha256::digest(k.as_bytes()));
    fillers
        .chain(present)
        .enumerate()
        .map(|(i, d)| (d.into(), i))
        .collect()
}

/// Replica mode at 1,000, 100,000 and 1,000,000 keys, next to the floor.
fn replica_sizes(c: &mut Criterion) {
    let mut g = c.benchmark_group("api_key_replica");
    for n in [1_000usize, 100_000, 1_000_000] {
        let (index, sample) = key_index(n);
        let floor = floor_map(n, &sample);
        let engine = Engine::new(
            &policy_with_routes(10),
            Arc::clone(&index) as Arc<dyn KeyStore>,
        )
        .unwrap();
        let reqs = key_requests(&sample);
        assert!(engine.decide(&reqs[0]).allow, "the request must be allowed");
        assert!(index.lookup(&KeyDigest::of(&sample[0])).unwrap().is_some());

        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("floor_sha256_plus_map", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % sample.len();
                let d: [u8; 32] = Sha256::digest(black_box(sample[i].as_bytes())).into();
                black_box(floor.contains_key(&d))
            })
        });
        g.bench_with_input(BenchmarkId::new("digest_index_lookup", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % sample.len();
                let found = index.lookup(&KeyDigest::of(black_box(&sample[i])));
                black_box(matches!(found, Ok(Some(_))))
            })
        });
        g.bench_with_input(BenchmarkId::new("decide", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % reqs.len();
                black_box(engine.decide(black_box(&reqs[i])).allow)
            })
        });
    }
    g.finish();
}

fn bench_backend(
    c: &mut Criterion,
    name: &str,
    url: &dyn Fn(&str) -> String,
    recs: &[StoredRecord],
    keys: &[String],
) {
    let loader = match Store::open(&url("mode=lookup")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: cannot open the store, skipped: {e}");
            return;
        }
    };
    if let Err(e) = loader.import(recs) {
        eprintln!("{name}: import failed, skipped: {e}");
        return;
    }
    // A sample of keys, visited in turn: with 1,000 of them the cached mode
    // measures its hit path, the others a lookup per decision.
    let sample: Vec<&String> = keys.iter().step_by((keys.len() / 1000).max(1)).collect();
    let floor = floor_map(
        keys.len(),
        &sample.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
    );
    let mut g = c.benchmark_group(format!("key_validation/{name}"));
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    g.sample_size(20);
    let mut f = 0usize;
    g.bench_function("floor_sha256_plus_map", |b| {
        b.iter(|| {
            f = (f + 1) % sample.len();
            let d: [u8; 32] = Sha256::digest(black_box(sample[f].as_bytes())).into();
            black_box(floor.contains_key(&d))
        })
    });
    for (mode, opts) in [
        ("replica", "mode=replica"),
        ("lookup", "mode=lookup"),
        ("lookup_cache", "mode=lookup&cache_ttl=60s"),
    ] {
        // PORTCULLIS_BENCH_STORE_OPTS adds store options (e.g. pool_size=1).
        let extra = std::env::var("PORTCULLIS_BENCH_STORE_OPTS").unwrap_or_default();
        let opts = if extra.is_empty() {
            opts.to_string()
        } else {
            format!("{opts}&{extra}")
        };
        let store = match Store::open(&url(&opts)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}/{mode}: skipped: {e}");
                continue;
            }
        };
        let mut i = 0usize;
        g.bench_function(mode, |b| {
            b.iter(|| {
                i = (i + 1) % sample.len();
                let key = sample.get(i).map(|k| k.as_str()).unwrap_or("");
                let found = store.lookup(&KeyDigest::of(black_box(key)));
                black_box(matches!(found, Ok(Some(_))))
            })
        });
    }
    g.finish();
}

fn env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            eprintln!("{var} is not set: skipping that backend");
            None
        }
    }
}

fn stores(c: &mut Criterion) {
    let n: usize = std::env::var("PORTCULLIS_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (recs, keys) = population(n);

    if let Ok(dir) = tempfile::tempdir() {
        let path = dir.path().join("bench.db");
        bench_backend(
            c,
            "sqlite",
            &|o| format!("sqlite://{}?{o}", path.display()),
            &recs,
            &keys,
        );
    }
    if let Some(base) = env("PORTCULLIS_TEST_POSTGRES") {
        let schema = PgSchema::new(&base, "bench");
        bench_backend(c, "postgres", &|o| schema.url(o), &recs, &keys);
    }
    if let Some(base) = env("PORTCULLIS_TEST_REDIS") {
        let prefix = RedisPrefix::new(&base, "bench");
        bench_backend(c, "redis", &|o| prefix.url(o), &recs, &keys);
    }
}

criterion_group!(benches, replica_sizes, stores);
criterion_main!(benches);
