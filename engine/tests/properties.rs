//! Property suites beyond the tree/reference equivalence: rate-limiter
//! bounds, key format round trip and corruption detection, path
//! normalisation idempotence. Cases: `PROPTEST_CASES`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use portcullis_engine::credential::apikey::{classify, generate, KeyShape};
use portcullis_engine::path;
use portcullis_engine::ratelimit::{BucketKey, LimitSpec, RateLimiter};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// For any arrival pattern, the requests allowed in any window [a, b] never
    /// exceed burst + rate × (b − a); and a request arriving a full emission
    /// interval after the previous allowed one at an idle bucket is allowed.
    #[test]
    fn rate_limiter_never_exceeds_burst_plus_rate(
        limit in 1u64..50,
        per_ms in 1u64..2_000,
        burst in 1u64..20,
        gaps in prop::collection::vec(0u64..200_000_000, 1..200),
    ) {
        let rl = RateLimiter::new();
        let spec = LimitSpec { name: "p".into(), limit, per: Duration::from_millis(per_ms), burst };
        let id = spec.id();
        let key = BucketKey::Text("k".into());
        let t_emit = u128::from(per_ms) * 1_000_000 / u128::from(limit);
        let mut now = 0u64;
        let mut allowed: Vec<u64> = Vec::new();
        for g in gaps {
            now += g;
            let r = rl.check_at(&spec, id, &key, now);
            prop_assert!(r.remaining < burst.max(1));
            if r.allowed {
                allowed.push(now);
            } else {
                prop_assert!(r.retry_after > Duration::ZERO);
            }
        }
        for i in 0..allowed.len() {
            for j in i..allowed.len() {
                let n = (j - i + 1) as u128;
                let window = u128::from(allowed[j] - allowed[i]);
                prop_assert!(
                    n * t_emit.max(1) <= u128::from(burst) * t_emit.max(1) + window + t_emit.max(1) / 1_000_000 + 1,
                    "{n} allowed in {window} ns with burst {burst} and interval {t_emit} ns"
                );
            }
        }
    }

    /// A generated key is well-formed under its prefix, and changing any one
    /// character (to any other base62 character) is always detected.
    #[test]
    fn key_single_character_corruption_is_detected(
        prefix in "[a-z]{1,6}_",
        pos in 0usize..36,
        replacement in prop::sample::select(
            "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".chars().collect::<Vec<_>>()),
    ) {
        let key = generate(&prefix).unwrap();
        prop_assert_eq!(classify(&key, std::slice::from_ref(&prefix)), KeyShape::WellFormed);
        prop_assert_eq!(classify(&key, &[]), KeyShape::WellFormed);
        let idx = prefix.len() + pos;
        let original = key.as_bytes()[idx] as char;
        prop_assume!(original != replacement);
        let mut bad = key.clone();
        bad.replace_range(idx..=idx, &replacement.to_string());
        prop_assert_eq!(classify(&bad, std::slice::from_ref(&prefix)), KeyShape::Corrupt);
    }

    /// Canonical paths are fixed points, and never contain what was refused.
    #[test]
    fn path_normalisation_is_idempotent(target in "(/([a-zA-Z0-9._~-]|%[0-9a-fA-F]{2}|/){0,8}){1,4}(\\?[a-z=&%/.]{0,8})?") {
        if let Ok(c) = path::canonical(&target) {
            let again = path::canonical(&c).unwrap();
            prop_assert_eq!(&again, &c);
            prop_assert!(!c.contains("//"));
            prop_assert!(!c.contains('%'));
            prop_assert!(path::segments(&c).all(|s| s != "." && s != ".."));
        }
    }
}
