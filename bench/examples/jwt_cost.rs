//! Instruction counts of a JWT decision, for callgrind (load-independent):
//! `valgrind --tool=callgrind --toggle-collect='jwt_cost::run*' \
//!   target/release/examples/jwt_cost HS256 decide 1000`
//! then divide the total by the iteration count. Modes: `decide` (cache
//! off), `hit` (cache warm), `sig` (the bare signature check of the same
//! key), `apikey` (an API-key decision, 1,000 keys), and `diff`: `decide`
//! in `run_full` then `sig` in `run_bare`, in one process. Use `diff` for
//! the cost besides the signature: each run signs a fresh token, and an
//! ECDSA signature is randomised, so the instructions of one ECDSA
//! verification differ from token to token by up to 2%, more than the
//! whole decision costs besides it; only one process compares like with
//! like. `bench/scripts/jwt_instructions.sh` runs it for every algorithm.
//! The token, keys and rules are the criterion suite's
//! (`portcullis_bench::jwt_case`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_bench::jwt_case::{self, ALGORITHMS};
use portcullis_bench::{key_index, key_requests, policy_with_routes};
use portcullis_engine::credential::KeyStore;
use portcullis_engine::Engine;

#[inline(never)]
fn run(n: usize, f: &mut dyn FnMut() -> bool) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(black_box(f()));
    }
    ok
}

#[inline(never)]
fn run_full(n: usize, f: &mut dyn FnMut() -> bool) -> usize {
    run(n, f)
}

#[inline(never)]
fn run_bare(n: usize, f: &mut dyn FnMut() -> bool) -> usize {
    run(n, f)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("HS256", String::as_str);
    let mode = args.get(2).map_or("decide", String::as_str);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    if mode == "apikey" {
        let (index, sample) = key_index(1000);
        let engine = Engine::new(&policy_with_routes(10), index as Arc<dyn KeyStore>).unwrap();
        let reqs = key_requests(&sample);
        let req = &reqs[0];
        let mut f = || engine.decide(black_box(req)).allow;
        println!("{}", run(n, &mut f));
        return;
    }
    let (name, alg, stem) = ALGORITHMS
        .into_iter()
        .find(|(n, ..)| *n == name)
        .expect("an algorithm name, e.g. HS256");
    let keys = jwt_case::key_material(name, alg, stem).unwrap();
    let token = jwt_case::token(alg, &keys.signing).unwrap();
    let cache = if mode == "hit" { 10_000 } else { 0 };
    let engine = jwt_case::jwt_engine(jwt_case::def(alg, keys.source, cache)).unwrap();
    let req = jwt_case::route_request(&token);
    assert!(engine.decide(&req).allow, "the bench token must be allowed");
    let (signing_input, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let ok = match mode {
        "diff" => {
            let mut full = || engine.decide(black_box(&req)).allow;
            let mut bare = || keys.bare.verify(black_box(signing_input.as_bytes()), &sig);
            run_full(n, &mut full) + run_bare(n, &mut bare)
        }
        "sig" => {
            let mut f = || keys.bare.verify(black_box(signing_input.as_bytes()), &sig);
            run(n, &mut f)
        }
        _ => {
            let mut f = || engine.decide(black_box(&req)).allow;
            run(n, &mut f)
        }
    };
    println!("{ok}");
}
