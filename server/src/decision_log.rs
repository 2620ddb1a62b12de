//! Structured decision logs (JSON through `tracing`), sampled.
//!
//! What is logged: endpoint, verdict, reason, status, route, credential name,
//! principal id, consumer, latency. Never a key, token, secret, header value,
//! path or query string: a path can carry an id or a token, and is left out.

use std::cell::Cell;
use std::time::Duration;

use portcullis_engine::Decision;

use crate::metrics::Endpoint;

/// The `tracing` target of decision events, for filtering (`portcullis::decision=off`).
pub const TARGET: &str = "portcullis::decision";

/// Sampling rates for allows and denies, each from 0.0 (none) to 1.0 (all).
#[derive(Debug, Clone, Copy)]
pub struct DecisionLog {
    allow_rate: f64,
    deny_rate: f64,
}

impl DecisionLog {
    pub fn new(allow_rate: f64, deny_rate: f64) -> Self {
        Self {
            allow_rate: allow_rate.clamp(0.0, 1.0),
            deny_rate: deny_rate.clamp(0.0, 1.0),
        }
    }

    /// How many decisions until the next one sampled at `rate`, counting it:
    /// the gap between successes of independent trials with probability
    /// `rate` (geometric), so skipping that many is the same as drawing for
    /// each decision, with one draw per logged line instead of one per decision.
    fn gap(rate: f64) -> u64 {
        if rate >= 1.0 {
            return 1;
        }
        if rate <= 0.0 {
            return u64::MAX;
        }
        // 1 - f64() is in (0, 1]: ln is finite and <= 0.
        let u = 1.0 - fastrand::f64();
        let skip = (u.ln() / (-rate).ln_1p()).floor();
        if skip.is_finite() && skip < 1e18 {
            skip as u64 + 1
        } else {
            u64::MAX
        }
    }

    /// Is this thread's next decision of this verdict logged?
    fn next_sampled(&self, allow: bool) -> bool {
        thread_local! {
            /// Decisions left until the next logged one (allows, denies);
            /// 0: not drawn yet. With the rates of the last `DecisionLog`
            /// used on this thread (a server has one).
            static LEFT: [Cell<u64>; 2] = const { [Cell::new(0), Cell::new(0)] };
            static RATES: Cell<(f64, f64)> = const { Cell::new((-1.0, -1.0)) };
        }
        let rates = (self.allow_rate, self.deny_rate);
        let rate = if allow { rates.0 } else { rates.1 };
        if rate >= 1.0 {
            return true;
        }
        if rate <= 0.0 {
            return false;
        }
        LEFT.with(|left| {
            if RATES.with(|r| r.replace(rates)) != rates {
                for l in left {
                    l.set(0);
                }
            }
            let Some(l) = left.get(usize::from(!allow)) else {
                return false;
            };
            let n = match l.get() {
                0 => Self::gap(rate),
                n => n,
            };
            l.set(n - 1);
            n == 1
        })
    }

    pub fn record(&self, endpoint: Endpoint, d: &Decision, took: Duration) {
        if !self.next_sampled(d.allow) {
            return;
        }
        let rate = if d.allow {
            self.allow_rate
        } else {
            self.deny_rate
        };
        let principal = d.principal.as_ref();
        tracing::info!(
            target: TARGET,
            endpoint = endpoint.as_str(),
            verdict = if d.allow { "allow" } else { "deny" },
            reason = d.reason.as_str(),
            status = d.status,
            route = d.route.as_deref().unwrap_or(""),
            credential = d.credential.as_deref().unwrap_or(""),
            principal = principal.map(|p| &*p.id).unwrap_or(""),
            consumer = principal.and_then(|p| p.consumer.as_deref()).unwrap_or(""),
            // The key's fingerprint (first 8, last 4 characters), never the key.
            key = d.fingerprint.as_deref().unwrap_or(""),
            latency_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            sample_rate = rate,
            "decision"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_countdown_samples_at_the_rate() {
        let log = DecisionLog::new(0.1, 1.0);
        let allows = (0..100_000).filter(|_| log.next_sampled(true)).count();
        assert!((8_500..11_500).contains(&allows), "{allows}");
        assert!((0..100).all(|_| log.next_sampled(false)));
        let none = DecisionLog::new(0.0, 0.0);
        assert!(!(0..10_000).any(|_| none.next_sampled(true) || none.next_sampled(false)));
        let all = DecisionLog::new(1.0, 0.5);
        assert!((0..100).all(|_| all.next_sampled(true)));
        let half = (0..10_000).filter(|_| all.next_sampled(false)).count();
        assert!((4_000..6_000).contains(&half), "{half}");
    }
}
