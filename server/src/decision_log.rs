//! Structured decision logs (JSON through `tracing`), sampled.
//!
//! What is logged: endpoint, verdict, reason, status, route, credential name,
//! principal id, consumer, latency. Never a key, token, secret, header value,
//! path or query string: a path can carry an id or a token, and is left out.

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

    fn sampled(rate: f64) -> bool {
        rate >= 1.0 || (rate > 0.0 && fastrand::f64() < rate)
    }

    pub fn record(&self, endpoint: Endpoint, d: &Decision, took: Duration) {
        let rate = if d.allow {
            self.allow_rate
        } else {
            self.deny_rate
        };
        if !Self::sampled(rate) {
            return;
        }
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
    fn sampling_bounds() {
        assert!(DecisionLog::sampled(1.0));
        assert!(!DecisionLog::sampled(0.0));
        let n = (0..10_000).filter(|_| DecisionLog::sampled(0.5)).count();
        assert!((4_000..6_000).contains(&n), "{n}");
    }
}
