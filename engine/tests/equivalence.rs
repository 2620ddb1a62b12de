//! The compiled decision tree against the reference evaluator, on random
//! policies and random requests over every credential type (API key, HS256
//! and ES256 JWT, mTLS from XFCC and a PEM header, Basic): they must agree
//! on allow, status, reason and route. Cases: `PROPTEST_CASES` (CI sets
//! 10,000). Generators: `policygen/mod.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod policygen;

use std::collections::HashSet;

use policygen::*;
use portcullis_engine::reference::Reference;
use portcullis_engine::{DecideOptions, Engine};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2_000), ..ProptestConfig::default() })]

    #[test]
    fn compiled_tree_agrees_with_reference(
        routes in arb_routes(),
        unmatched_allow in prop::bool::weighted(0.2),
        requests in arb_requests(),
    ) {
        let f = fixtures();
        let policy = build_policy(routes, unmatched_allow);
        let reference = Reference::new(&policy).unwrap();
        let engine = Engine::new(&policy, f.keys()).unwrap();
        let now = now();
        for spec in &requests {
            let req = build_request(spec, &policy);
            let got = engine.decide_with(&req, &DecideOptions { explain: false, now: Some(now) });
            let want = reference.decide(&req, f.index.as_ref(), now);
            prop_assert_eq!(got.allow, want.allow, "allow for {:?}", spec);
            prop_assert_eq!(got.status, want.status, "status for {:?}", spec);
            prop_assert_eq!(got.reason, want.reason, "reason for {:?}", spec);
            prop_assert_eq!(got.route.as_deref(), want.route.as_deref(), "route for {:?}", spec);
        }
    }
}

#[test]
fn generator_exercises_every_reason_and_credential() {
    // Guards the generator: if it stopped producing some outcome, or some
    // credential stopped ever allowing, the equivalence property would
    // silently test less.
    let f = fixtures();
    let mut reasons = HashSet::new();
    let mut allowed_by = std::collections::HashMap::<String, usize>::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let now = now();
    for _ in 0..1000 {
        let routes = arb_routes().new_tree(&mut runner).unwrap().current();
        let reqs = arb_requests().new_tree(&mut runner).unwrap().current();
        let policy = build_policy(routes, false);
        let engine = Engine::new(&policy, f.keys()).unwrap();
        for spec in &reqs {
            let d = engine.decide_with(
                &build_request(spec, &policy),
                &DecideOptions {
                    explain: false,
                    now: Some(now),
                },
            );
            reasons.insert(d.reason.as_str());
            if d.allow {
                for c in d.credential.as_deref().unwrap_or("").split('+') {
                    *allowed_by.entry(c.to_string()).or_default() += 1;
                }
            }
        }
    }
    println!("allowed by: {allowed_by:?}");
    for r in [
        "allowed",
        "bad_path",
        "no_route",
        "credential_missing",
        "credential_invalid",
        "credential_expired",
        "credential_revoked",
        "ambiguous_credential",
        "insufficient_scope",
        "ip_not_allowed",
        "certificate_not_allowed",
    ] {
        assert!(
            reasons.contains(r),
            "generator never produced `{r}`; saw {reasons:?}"
        );
    }
    for c in [
        "k_header", "k_bearer", "k_both", "jwt_hs", "jwt_es", "mesh", "edge", "ops",
    ] {
        assert!(
            allowed_by.contains_key(c),
            "no generated request was allowed by `{c}`; saw {allowed_by:?}"
        );
    }
}
