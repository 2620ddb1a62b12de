//! The raw results of a run, as written to `report.json` and read back by
//! the report renderers.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::load::LoadResult;
use super::mechanism::Mechanism;
use super::procfs::{CpuSample, Environment};
use super::recommend::Recommendation;
use super::revoke::Revocation;
use super::workload::Workload;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub harness_version: String,
    pub workload: Workload,
    pub environment: Environment,
    pub mechanisms: Vec<MechanismResult>,
    pub recommendation: Recommendation,
    /// Things the reader must know (skips, caveats found during the run).
    pub notes: Vec<String>,
    /// Wall-clock seconds of the whole run.
    pub run_seconds: f64,
}

/// Whether a mechanism was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum Status {
    Measured,
    /// Not measured, by design (its store is not configured).
    Skipped(String),
    /// Tried and failed (the server did not start, answered wrongly, ...).
    Failed(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MechanismResult {
    pub id: String,
    pub label: String,
    pub mechanism: Mechanism,
    pub status: Status,
    /// Server instances run (two on a shared store, for fleet revocation).
    pub instances: usize,
    /// The `--store` URL options.
    pub store_options: String,
    /// Seconds until the first instance listened and was ready.
    pub startup_s: Option<f64>,
    pub phases: Vec<PhaseResult>,
    /// `VmHWM` of the instance under load, at the end.
    pub peak_rss_bytes: Option<u64>,
    pub revocation: Option<RevocationResult>,
}

impl MechanismResult {
    pub fn new(m: &Mechanism, status: Status) -> Self {
        MechanismResult {
            id: m.id(),
            label: m.to_string(),
            mechanism: m.clone(),
            status,
            instances: 0,
            store_options: m.store_options(),
            startup_s: None,
            phases: Vec::new(),
            peak_rss_bytes: None,
            revocation: None,
        }
    }

    pub fn measured(&self) -> bool {
        self.status == Status::Measured
    }

    /// The open-loop phase at `rate`.
    pub fn open_at(&self, rate: u64) -> Option<&PhaseResult> {
        self.phases
            .iter()
            .find(|p| p.kind == PhaseKind::Open && p.offered_rate == Some(rate as f64))
    }

    pub fn closed(&self) -> Option<&PhaseResult> {
        self.phases.iter().find(|p| p.kind == PhaseKind::Closed)
    }

    pub fn wrong_total(&self) -> u64 {
        self.phases
            .iter()
            .map(|p| p.wrong.iter().sum::<u64>())
            .sum()
    }

    pub fn errors_total(&self) -> u64 {
        self.phases.iter().map(|p| p.errors).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    /// Fixed arrival rate.
    Open,
    /// As fast as N connections go.
    Closed,
    /// Background load while revocations were measured.
    Revocation,
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult {
    pub kind: PhaseKind,
    /// Requests per second offered (open loop).
    pub offered_rate: Option<f64>,
    pub connections: usize,
    pub seconds: f64,
    pub completed: u64,
    pub errors: u64,
    /// Wrong decisions for valid, invalid and missing credentials.
    pub wrong: [u64; 3],
    pub unsent: u64,
    /// Answers per second.
    pub throughput: f64,
    pub latency_ms: Percentiles,
    /// `[quantile, ms]` points of the latency distribution, for charts.
    pub curve: Vec<[f64; 2]>,
    pub server_cpu_s: f64,
    pub client_cpu_s: f64,
    /// Machine-wide busy fraction (all cores) during the phase: the
    /// server, the load generator, the stores, and any neighbours.
    pub machine_busy: f64,
    /// Server CPU milliseconds per 1,000 answers (= µs per decision).
    pub cpu_ms_per_1k: Option<f64>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The quantiles plotted: 0 to 99.99% evenly on a `-log10(1 - q)` axis.
pub fn curve_quantiles() -> Vec<f64> {
    (0..=40)
        .map(|i| 1.0 - 10f64.powf(-(i as f64) / 10.0))
        .chain(std::iter::once(1.0))
        .map(|q| if q < 0.0 { 0.0 } else { q })
        .collect()
}

pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: h.mean() / 1000.0,
    }
}

impl PhaseResult {
    pub fn from_load(
        kind: PhaseKind,
        offered_rate: Option<f64>,
        connections: usize,
        r: &LoadResult,
        before: &CpuSample,
        after: &CpuSample,
    ) -> Self {
        let server_cpu_s = after.server_since(before);
        let total = after.machine_total - before.machine_total;
        let machine_busy = if total > 0.0 {
            ((after.machine_busy - before.machine_busy) / total).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let curve = if r.hist.is_empty() {
            Vec::new()
        } else {
            curve_quantiles()
                .into_iter()
                .map(|q| [q, ms(r.hist.value_at_quantile(q))])
                .collect()
        };
        PhaseResult {
            kind,
            offered_rate,
            connections,
            seconds: r.elapsed.as_secs_f64(),
            completed: r.completed,
            errors: r.errors,
            wrong: r.wrong,
            unsent: r.unsent,
            throughput: r.throughput(),
            latency_ms: percentiles(&r.hist),
            curve,
            server_cpu_s,
            client_cpu_s: (after.client - before.client).max(0.0),
            machine_busy,
            cpu_ms_per_1k: (r.completed > 0)
                .then(|| server_cpu_s * 1e3 / (r.completed as f64 / 1e3)),
        }
    }
}

/// How fast a revoked credential stops working.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevocationResult {
    /// `measured` (API keys), `expiry` (JWTs: valid until `exp` + leeway).
    pub method: String,
    pub samples: Vec<Revocation>,
    pub failures: Vec<String>,
    /// Revocations still allowed somewhere when the wait timed out.
    pub timed_out: usize,
    pub p50_s: Option<f64>,
    /// The worst case: the slowest measured lag, or the timeout if any
    /// timed out, or a token's whole lifetime plus leeway.
    pub worst_s: Option<f64>,
    /// The longest wait allowed (measured) or the lifetime (expiry).
    pub timeout_s: f64,
}

impl RevocationResult {
    pub fn measured(samples: Vec<Revocation>, failures: Vec<String>, timeout_s: f64) -> Self {
        let mut lags: Vec<f64> = samples.iter().filter_map(|s| s.lag_s).collect();
        lags.sort_by(f64::total_cmp);
        let timed_out = samples.iter().filter(|s| s.lag_s.is_none()).count();
        let p50_s = lags.get(lags.len() / 2).copied();
        let worst_s = if timed_out > 0 {
            Some(timeout_s)
        } else {
            lags.last().copied()
        };
        RevocationResult {
            method: "measured".into(),
            samples,
            failures,
            timed_out,
            p50_s,
            worst_s,
            timeout_s,
        }
    }

    pub fn expiry(lifetime_s: f64) -> Self {
        RevocationResult {
            method: "expiry".into(),
            samples: Vec::new(),
            failures: Vec::new(),
            timed_out: 0,
            // A token revoked at a uniformly random moment of its life has half of it left.
            p50_s: Some(lifetime_s / 2.0),
            worst_s: Some(lifetime_s),
            timeout_s: lifetime_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_span_zero_to_one() {
        let q = curve_quantiles();
        assert_eq!(q.first().copied(), Some(0.0));
        assert_eq!(q.last().copied(), Some(1.0));
        assert!(q.windows(2).all(|w| w[0] <= w[1]));
        assert!(q.iter().any(|v| (v - 0.99).abs() < 1e-9));
        assert!(q.iter().any(|v| (v - 0.9999).abs() < 1e-9));
    }

    #[test]
    fn revocation_worst_case() {
        let s = |l: Option<f64>| Revocation {
            lag_s: l,
            per_instance_s: vec![l],
            visible_s: Some(0.01),
        };
        let r = RevocationResult::measured(vec![s(Some(0.02)), s(Some(0.05))], vec![], 30.0);
        assert_eq!(r.worst_s, Some(0.05));
        assert_eq!(r.timed_out, 0);
        let r = RevocationResult::measured(vec![s(Some(0.02)), s(None)], vec![], 30.0);
        assert_eq!(r.worst_s, Some(30.0));
        assert_eq!(r.timed_out, 1);
        let r = RevocationResult::expiry(905.0);
        assert_eq!(r.worst_s, Some(905.0));
    }
}
