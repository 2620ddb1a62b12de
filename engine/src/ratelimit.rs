//! Local rate limits: GCRA over sharded maps.
//!
//! Written by hand rather than with `governor`: decisions must report
//! `remaining` and `reset_after_ms` (SPEC section 3), limits are keyed by
//! runtime strings under many definitions at once, and state must survive a
//! policy reload for definitions that did not change. GCRA is a few lines;
//! the sharding keeps every decision off a global lock.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A rate-limit definition as the limiter sees it. Two definitions with the
/// same name and parameters share state across reloads; any change starts afresh.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LimitSpec {
    pub name: Arc<str>,
    pub limit: u64,
    pub per: Duration,
    pub burst: u64,
}

impl LimitSpec {
    /// Identity of the definition, stable across reloads.
    pub fn id(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }

    /// Nanoseconds between two requests at the sustained rate.
    fn emission_ns(&self) -> u64 {
        let per = u64::try_from(self.per.as_nanos()).unwrap_or(u64::MAX);
        (per / self.limit.max(1)).max(1)
    }
}

/// What a bucket is keyed by, besides its definition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BucketKey {
    Text(Arc<str>),
    Ip(IpAddr),
    /// No client address was known: all such requests share one bucket.
    UnknownIp,
}

/// The answer of one rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateResult {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Time until the bucket is full again.
    pub reset_after: Duration,
    /// When denied: time until one request would be allowed.
    pub retry_after: Duration,
}

/// Where rate-limit state lives: this process ([`RateLimiter`]), or a store
/// shared by a fleet (the server's Redis limiter). Synchronous like
/// [`crate::credential::KeyStore`]: the engine does no I/O of its own.
pub trait Limiter: Send + Sync + 'static {
    /// One check-and-count for `key` under `spec`; `spec_id` identifies the
    /// definition (stable across reloads while the definition is unchanged).
    fn check(&self, spec: &LimitSpec, spec_id: u64, key: &BucketKey) -> RateResult;
}

impl Limiter for RateLimiter {
    fn check(&self, spec: &LimitSpec, spec_id: u64, key: &BucketKey) -> RateResult {
        self.check_at(spec, spec_id, key, self.now_ns())
    }
}

const SHARDS: usize = 32;
/// Buckets per shard before expired ones are swept.
const SWEEP_AT: usize = 4096;
/// Hard bound on buckets per shard: beyond it (after a sweep) new keys are refused.
const MAX_PER_SHARD: usize = 65_536;

type Shard = HashMap<(u64, BucketKey), u64>;

/// Rate-limit state for every definition; owned by the engine, not the policy,
/// so it outlives reloads.
pub struct RateLimiter {
    epoch: Instant,
    shards: Vec<Mutex<Shard>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimiter {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Nanoseconds since the limiter started: the clock `check_at` expects.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// One GCRA step at time `now` (nanoseconds on the limiter's clock).
    pub fn check_at(
        &self,
        spec: &LimitSpec,
        spec_id: u64,
        key: &BucketKey,
        now: u64,
    ) -> RateResult {
        let t = spec.emission_ns();
        let burst = spec.burst.max(1);
        // The bucket admits `burst` requests at once: tolerance = t * burst.
        let tau = t.saturating_mul(burst);
        let mut h = DefaultHasher::new();
        (spec_id, key).hash(&mut h);
        let idx = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(idx) else {
            return deny_all(spec);
        };
        let mut map = shard.lock();
        if map.len() >= SWEEP_AT {
            map.retain(|_, tat| *tat > now);
            if map.len() >= MAX_PER_SHARD && !map.contains_key(&(spec_id, key.clone())) {
                // Fail closed rather than grow without bound under a flood of new keys.
                return deny_all(spec);
            }
        }
        let tat = map
            .get(&(spec_id, key.clone()))
            .copied()
            .unwrap_or(now)
            .max(now);
        let new_tat = tat.saturating_add(t);
        let used = new_tat - now;
        if used > tau {
            let retry_ns = used - tau;
            return RateResult {
                allowed: false,
                limit: burst,
                remaining: 0,
                reset_after: Duration::from_nanos(tat - now),
                retry_after: Duration::from_nanos(retry_ns),
            };
        }
        map.insert((spec_id, key.clone()), new_tat);
        RateResult {
            allowed: true,
            limit: burst,
            remaining: (tau - used) / t,
            reset_after: Duration::from_nanos(used),
            retry_after: Duration::ZERO,
        }
    }

    /// Buckets currently held (for metrics and tests).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn deny_all(spec: &LimitSpec) -> RateResult {
    RateResult {
        allowed: false,
        limit: spec.burst.max(1),
        remaining: 0,
        reset_after: spec.per,
        retry_after: spec.per,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(limit: u64, per_ms: u64, burst: u64) -> LimitSpec {
        LimitSpec {
            name: "t".into(),
            limit,
            per: Duration::from_millis(per_ms),
            burst,
        }
    }

    #[test]
    fn burst_then_sustained_rate() {
        let rl = RateLimiter::new();
        let s = spec(10, 1000, 3);
        let k = BucketKey::Text("acme".into());
        let id = s.id();
        let r: Vec<_> = (0..4).map(|_| rl.check_at(&s, id, &k, 0)).collect();
        assert_eq!(r.iter().filter(|r| r.allowed).count(), 3);
        assert_eq!(r[0].remaining, 2);
        assert_eq!(r[2].remaining, 0);
        assert!(!r[3].allowed);
        assert_eq!(r[3].retry_after, Duration::from_millis(100));
        // After one emission interval, exactly one more.
        assert!(rl.check_at(&s, id, &k, 100_000_000).allowed);
        assert!(!rl.check_at(&s, id, &k, 100_000_000).allowed);
    }

    #[test]
    fn keys_and_definitions_are_separate() {
        let rl = RateLimiter::new();
        let s = spec(1, 1000, 1);
        let a = BucketKey::Text("a".into());
        let b = BucketKey::Text("b".into());
        assert!(rl.check_at(&s, s.id(), &a, 0).allowed);
        assert!(!rl.check_at(&s, s.id(), &a, 0).allowed);
        assert!(rl.check_at(&s, s.id(), &b, 0).allowed);
        let changed = spec(2, 1000, 1);
        assert!(rl.check_at(&changed, changed.id(), &a, 0).allowed);
    }
}
