//! Hot swap: reader threads decide random requests while the engine is
//! reloaded back and forth between two random policies. Every decision must
//! be what one of the two policies answers (per the reference evaluator) on
//! allow, status, reason and route: never a mix of the two, never an answer
//! matching neither. Cases: `PROPTEST_CASES / 200` (at least 10); each case
//! runs two readers across 8 reloads. Routes require no Basic credential
//! here (the equivalence suite covers it): readers decide each request many
//! times, and every failed Basic check is a bcrypt hash. Generators:
//! `policygen/mod.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod policygen;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use policygen::*;
use portcullis_engine::reference::{Reference, Verdict};
use portcullis_engine::{DecideOptions, Decision, Engine};
use proptest::prelude::*;

const READERS: usize = 2;
const RELOADS: usize = 8;
const MAX_PASSES: usize = 8;

fn matches(d: &Decision, v: &Verdict) -> bool {
    d.allow == v.allow
        && d.status == v.status
        && d.reason == v.reason
        && d.route.as_deref() == v.route.as_deref()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: (cases(2_000) / 200).max(10),
        ..ProptestConfig::default()
    })]

    #[test]
    fn decisions_during_reload_match_one_policy_never_a_mix(
        routes_a in arb_routes(),
        routes_b in arb_routes(),
        unmatched_a in prop::bool::weighted(0.2),
        unmatched_b in prop::bool::weighted(0.2),
        requests in arb_requests(),
    ) {
        let f = fixtures();
        let now = now();
        // Readers decide each request many times; Basic's bcrypt would dominate.
        let strip = |r: Vec<RouteSpec>| r.into_iter().map(RouteSpec::without_basic).collect();
        let a = build_policy(strip(routes_a), unmatched_a);
        let b = build_policy(strip(routes_b), unmatched_b);
        let (ref_a, ref_b) = (Reference::new(&a).unwrap(), Reference::new(&b).unwrap());
        let cases: Vec<_> = requests
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                // Aimed at routes of either policy, half each.
                let req = build_request(spec, if i % 2 == 0 { &a } else { &b });
                let va = ref_a.decide(&req, f.index.as_ref(), now);
                let vb = ref_b.decide(&req, f.index.as_ref(), now);
                (spec, req, va, vb)
            })
            .collect();
        let engine = Arc::new(Engine::new(&a, f.keys()).unwrap());
        let done = AtomicBool::new(false);
        let decided = AtomicUsize::new(0);
        let opts = DecideOptions { explain: false, now: Some(now) };
        let failure = std::thread::scope(|s| {
            let readers: Vec<_> = (0..READERS)
                .map(|r| {
                    let (engine, done, decided, cases, opts) = (&engine, &done, &decided, &cases, &opts);
                    s.spawn(move || -> Option<String> {
                        let mut passes = 0;
                        // At least two passes, then until the reloads are
                        // done, but bounded: on a loaded machine the writer
                        // can be descheduled for long, and spinning readers
                        // would burn CPU for all of it.
                        while passes < 2 || (passes < MAX_PASSES && !done.load(Ordering::Acquire)) {
                            // Readers start at different requests, so they interleave differently.
                            for i in 0..cases.len() {
                                let (spec, req, va, vb) = &cases[(i + r) % cases.len()];
                                let d = engine.decide_with(req, opts);
                                decided.fetch_add(1, Ordering::Relaxed);
                                if !matches(&d, va) && !matches(&d, vb) {
                                    return Some(format!(
                                        "{spec:?}: got ({}, {}, {:?}, {:?}); policy a says {va:?}; policy b says {vb:?}",
                                        d.allow, d.status, d.reason, d.route
                                    ));
                                }
                            }
                            passes += 1;
                        }
                        None
                    })
                })
                .collect();
            for i in 0..RELOADS {
                engine.reload(if i % 2 == 0 { &b } else { &a }).unwrap();
                std::thread::yield_now();
            }
            done.store(true, Ordering::Release);
            readers.into_iter().find_map(|h| h.join().unwrap())
        });
        prop_assert!(failure.is_none(), "{}", failure.unwrap_or_default());
        prop_assert!(decided.load(Ordering::Relaxed) >= READERS * 2 * cases.len());
        prop_assert_eq!(engine.generation(), 1 + RELOADS as u64);
    }
}
