//! Per-decision key validation cost (digest + store lookup) in each serving
//! mode against each backend, at 100,000 keys:
//! replica (in memory), lookup (one query per decision), lookup + cache.
//! PostgreSQL and Redis come from `PORTCULLIS_TEST_POSTGRES` and
//! `PORTCULLIS_TEST_REDIS`; without them those groups are skipped.
//! `PORTCULLIS_BENCH_KEYS` changes the population.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_engine::credential::apikey::{
    fingerprint, generate, KeyDigest, KeyRecord, KeyStore,
};
use portcullis_server::store::testkit::{PgSchema, RedisPrefix};
use portcullis_server::store::{Store, StoredRecord, VersionRow};

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
    let mut g = c.benchmark_group(format!("key_validation/{name}"));
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    g.sample_size(20);
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

criterion_group!(benches, stores);
criterion_main!(benches);
