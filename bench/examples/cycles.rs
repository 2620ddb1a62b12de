//! Cycle counting for the API-key decision and its floor, robust to a busy
//! machine: run under `perf stat -e cycles,instructions` twice with different
//! iteration counts and divide the difference by the difference in iterations.
//!
//! `cargo run --release -p portcullis-bench --example cycles -- decide 2000000`
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

use portcullis_bench::{key_index, path_for, policy_with_routes};
use portcullis_engine::credential::apikey::index::DigestHasher;
use portcullis_engine::credential::KeyStore;
use portcullis_engine::{Engine, Headers, Request};
use sha2::{Digest, Sha256};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("decide");
    let iters: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let keys: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let (index, sample) = key_index(keys);
    match mode {
        "floor" => {
            let mut m: HashMap<[u8; 32], u64, BuildHasherDefault<DigestHasher>> =
                HashMap::with_capacity_and_hasher(keys, BuildHasherDefault::default());
            for i in 0..keys as u64 {
                m.insert(Sha256::digest(i.to_le_bytes()).into(), i);
            }
            for s in &sample {
                m.insert(Sha256::digest(s.as_bytes()).into(), 1);
            }
            let mut hits = 0u64;
            for i in 0..iters {
                let d: [u8; 32] =
                    Sha256::digest(black_box(sample[i % sample.len()].as_bytes())).into();
                hits += m.get(&d).copied().unwrap_or(0);
            }
            println!("{hits}");
        }
        _ => {
            let engine = Engine::new(
                &policy_with_routes(10),
                Arc::clone(&index) as Arc<dyn KeyStore>,
            )
            .unwrap();
            let reqs: Vec<Request> = sample
                .iter()
                .map(|k| {
                    let mut h = Headers::new();
                    h.append("x-api-key", k.as_str());
                    Request {
                        method: "GET".into(),
                        path: path_for(0),
                        host: None,
                        headers: h,
                        source_ip: None,
                    }
                })
                .collect();
            let mut allowed = 0u64;
            for i in 0..iters {
                allowed += u64::from(engine.decide(black_box(&reqs[i % reqs.len()])).allow);
            }
            println!("{allowed}");
        }
    }
}
