//! Prometheus metrics (OpenMetrics text at `GET /metrics`).
//!
//! Label values come from the policy (route and credential names) and from
//! fixed sets, never from requests, so cardinality is bounded by the policy.

mod sharded;

pub use sharded::{LatencyHistogram, ShardedCounter};

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use portcullis_engine::Decision;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rustc_hash::FxHashMap;

/// Which endpoint answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Decide,
    ForwardAuth,
    ExtAuthz,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Decide => "decide",
            Endpoint::ForwardAuth => "forward_auth",
            Endpoint::ExtAuthz => "ext_authz",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    endpoint: &'static str,
    verdict: &'static str,
    reason: &'static str,
    route: Arc<str>,
    credential: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BadRequestLabels {
    endpoint: &'static str,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
    trigger: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConnLabels {
    listener: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FastKey {
    metrics: u64,
    endpoint: u8,
    allow: bool,
    /// Address of the reason's static code.
    reason: usize,
    /// Addresses of the route and credential names (0: none).
    route: usize,
    credential: usize,
}

struct FastEntry {
    /// Keep the names alive so their addresses stay theirs.
    _pins: (Option<Arc<str>>, Option<Arc<str>>),
    counter: ShardedCounter,
}

#[derive(Default)]
struct FastCounters {
    generation: u64,
    map: FxHashMap<FastKey, FastEntry>,
    /// The last key counted and its counter (pinned by its entry in `map`):
    /// a server mostly answers the same question, and comparing a key
    /// costs less than hashing it and probing the map.
    last: Option<(FastKey, ShardedCounter)>,
}

static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    static FAST: RefCell<FastCounters> = RefCell::new(FastCounters::default());
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, ShardedCounter>,
    latency: [LatencyHistogram; 3],
    bad_requests: Family<BadRequestLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    generation: Gauge,
    last_reload_ok: Gauge,
    last_reload_time: Gauge,
    open_connections: Family<ListenerLabel, Gauge>,
    ratelimit_fallbacks: Counter,
    connections: Family<ConnLabels, Counter>,
    none: Arc<str>,
    /// Distinguishes instances in the per-thread counter cache.
    instance: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let decisions = Family::<DecisionLabels, ShardedCounter>::default();
        registry.register(
            "decisions",
            "Decisions by endpoint, verdict, reason, route and credential",
            decisions.clone(),
        );
        let latency_family = Family::<EndpointLabel, LatencyHistogram>::default();
        registry.register(
            "decision_duration_seconds",
            "Time to decide one request (engine only, excluding HTTP)",
            latency_family.clone(),
        );
        let latency = [Endpoint::Decide, Endpoint::ForwardAuth, Endpoint::ExtAuthz].map(|e| {
            latency_family
                .get_or_create(&EndpointLabel {
                    endpoint: e.as_str(),
                })
                .clone()
        });
        let bad_requests = Family::<BadRequestLabels, Counter>::default();
        registry.register(
            "bad_requests",
            "Requests refused before a decision (malformed question, limits)",
            bad_requests.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy reload attempts by result and trigger",
            reloads.clone(),
        );
        let generation = Gauge::default();
        registry.register(
            "policy_generation",
            "Generation of the policy serving now (1 at start, +1 per successful reload)",
            generation.clone(),
        );
        let last_reload_ok = Gauge::default();
        registry.register(
            "policy_last_reload_success",
            "1 if the last reload attempt succeeded (or none was made), 0 if it failed",
            last_reload_ok.clone(),
        );
        last_reload_ok.set(1);
        let last_reload_time = Gauge::default();
        registry.register(
            "policy_last_reload_timestamp_seconds",
            "Unix time of the last reload attempt",
            last_reload_time.clone(),
        );
        let open_connections = Family::<ListenerLabel, Gauge>::default();
        registry.register(
            "open_connections",
            "Open connections by listener",
            open_connections.clone(),
        );
        let ratelimit_fallbacks = Counter::default();
        registry.register(
            "ratelimit_fallbacks",
            "Rate-limit checks answered without Redis (local limiter or deny, per --redis on_error)",
            ratelimit_fallbacks.clone(),
        );
        let connections = Family::<ConnLabels, Counter>::default();
        registry.register(
            "connections",
            "Accepted connections by listener and result (accepted, refused)",
            connections.clone(),
        );
        Self {
            registry,
            decisions,
            latency,
            bad_requests,
            reloads,
            generation,
            last_reload_ok,
            last_reload_time,
            open_connections,
            ratelimit_fallbacks,
            connections,
            none: Arc::from(""),
            instance: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Counts a decision and its latency. `generation` is the policy
    /// generation serving now; when it moves on, per-thread lookups made for
    /// older policies are dropped.
    pub fn record_decision(
        &self,
        endpoint: Endpoint,
        d: &Decision,
        took: Duration,
        generation: u64,
    ) {
        self.count_decision(endpoint, d, generation);
        let idx = match endpoint {
            Endpoint::Decide => 0,
            Endpoint::ForwardAuth => 1,
            Endpoint::ExtAuthz => 2,
        };
        if let Some(h) = self.latency.get(idx) {
            h.observe(took);
        }
    }

    /// Counts a decision under its labels.
    ///
    /// `Family::get_or_create` hashes every label string and takes a lock
    /// shared by all threads on each call; on the decision path a
    /// thread-local map keyed by the label strings' addresses finds the
    /// counter instead. The map holds the `Arc`s whose addresses it uses, so
    /// an address cannot be reused for another name while it is a key.
    ///
    /// The counter is incremented where it is found, not cloned out of the
    /// map: a clone and its drop are two more atomic read-modify-writes.
    fn count_decision(&self, endpoint: Endpoint, d: &Decision, generation: u64) {
        let key = FastKey {
            metrics: self.instance,
            endpoint: endpoint as u8,
            allow: d.allow,
            reason: d.reason.as_str().as_ptr() as usize,
            route: d
                .route
                .as_ref()
                .map_or(0, |r| Arc::as_ptr(r) as *const u8 as usize),
            credential: d
                .credential
                .as_ref()
                .map_or(0, |c| Arc::as_ptr(c) as *const u8 as usize),
        };
        FAST.with(|cell| {
            let mut fast = cell.borrow_mut();
            if fast.generation != generation {
                fast.generation = generation;
                fast.map.clear();
                fast.last = None;
            }
            if let Some((last, counter)) = &fast.last {
                if *last == key {
                    counter.inc();
                    return;
                }
            }
            if let Some(hit) = fast.map.get(&key) {
                hit.counter.inc();
                let counter = hit.counter.clone();
                fast.last = Some((key, counter));
                return;
            }
            let labels = DecisionLabels {
                endpoint: endpoint.as_str(),
                verdict: if d.allow { "allow" } else { "deny" },
                reason: d.reason.as_str(),
                route: d.route.clone().unwrap_or_else(|| Arc::clone(&self.none)),
                credential: d
                    .credential
                    .clone()
                    .unwrap_or_else(|| Arc::clone(&self.none)),
            };
            let counter = self.decisions.get_or_create(&labels).clone();
            counter.inc();
            fast.last = Some((key, counter.clone()));
            fast.map.insert(
                key,
                FastEntry {
                    _pins: (d.route.clone(), d.credential.clone()),
                    counter,
                },
            );
        })
    }

    /// `kind` is a fixed word (`json`, `too_large`, `missing_target`, ...).
    pub fn record_bad_request(&self, endpoint: &'static str, kind: &'static str) {
        self.bad_requests
            .get_or_create(&BadRequestLabels { endpoint, kind })
            .inc();
    }

    pub fn record_reload(&self, ok: bool, trigger: &'static str, generation: u64, at_unix: i64) {
        self.reloads
            .get_or_create(&ReloadLabels {
                result: if ok { "ok" } else { "error" },
                trigger,
            })
            .inc();
        self.set_generation(generation);
        self.last_reload_ok.set(i64::from(ok));
        self.last_reload_time.set(at_unix);
    }

    pub fn set_generation(&self, generation: u64) {
        self.generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    pub fn connection_opened(&self, listener: &'static str) {
        self.open_connections
            .get_or_create(&ListenerLabel { listener })
            .inc();
        self.connections
            .get_or_create(&ConnLabels {
                listener,
                result: "accepted",
            })
            .inc();
    }

    pub fn connection_closed(&self, listener: &'static str) {
        self.open_connections
            .get_or_create(&ListenerLabel { listener })
            .dec();
    }

    pub fn connection_refused(&self, listener: &'static str) {
        self.connections
            .get_or_create(&ConnLabels {
                listener,
                result: "refused",
            })
            .inc();
    }

    /// Counts rate-limit checks answered without Redis (shared with the limiter).
    pub fn ratelimit_fallbacks(&self) -> Counter {
        self.ratelimit_fallbacks.clone()
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing into a String cannot fail; keep the scrape parseable if it ever does.
            out.clear();
            out.push_str("# EOF\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_engine::Reason;

    #[test]
    fn exposes_decisions_reloads_and_connections() {
        let m = Metrics::new();
        let mut d = Decision::deny(Reason::InsufficientScope);
        d.route = Some("charges.read".into());
        d.credential = Some("partner_key".into());
        m.record_decision(Endpoint::ForwardAuth, &d, Duration::from_micros(3), 1);
        m.record_decision(Endpoint::ForwardAuth, &d, Duration::from_micros(3), 1);
        m.record_reload(false, "watch", 1, 1_700_000_000);
        m.connection_opened("decision");
        let text = m.encode();
        assert!(text.contains(
            r#"portcullis_decisions_total{endpoint="forward_auth",verdict="deny",reason="insufficient_scope",route="charges.read",credential="partner_key"} 2"#
        ), "{text}");
        assert!(
            text.contains(r#"portcullis_policy_reloads_total{result="error",trigger="watch"} 1"#)
        );
        assert!(text.contains("portcullis_policy_last_reload_success 0"));
        assert!(text.contains(r#"portcullis_open_connections{listener="decision"} 1"#));
        assert!(text.contains("portcullis_decision_duration_seconds_bucket"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn per_thread_counters_follow_reloads_and_instances() {
        let m = Metrics::new();
        let mut d = Decision::deny(Reason::Allowed).with_allow();
        d.route = Some("a".into());
        m.record_decision(Endpoint::Decide, &d, Duration::from_micros(1), 1);
        // A new generation with a new route name.
        d.route = Some("b".into());
        m.record_decision(Endpoint::Decide, &d, Duration::from_micros(1), 2);
        m.record_decision(Endpoint::Decide, &d, Duration::from_micros(1), 2);
        let text = m.encode();
        assert!(text.contains(r#"route="a",credential=""} 1"#), "{text}");
        assert!(text.contains(r#"route="b",credential=""} 2"#), "{text}");
        // Another instance on the same thread counts on its own.
        let other = Metrics::new();
        other.record_decision(Endpoint::Decide, &d, Duration::from_micros(1), 2);
        assert!(other.encode().contains(r#"route="b",credential=""} 1"#));
        assert!(m.encode().contains(r#"route="b",credential=""} 2"#));
    }
}
