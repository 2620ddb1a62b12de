//! A counter and a latency histogram spread over per-thread shards.
//!
//! prometheus-client's `Counter` is one atomic and its `Histogram` takes a
//! write lock per observation; on the decision path every worker thread
//! would update the same cache lines on every request. Here each thread
//! writes its own cache-line-aligned shard and a scrape adds them up.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Shards per metric; threads beyond this share shards (still correct).
const SHARDS: usize = 16;

/// This thread's shard.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SLOT.with(|s| *s)
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Padded(AtomicU64);

/// A monotonic counter.
#[derive(Debug, Clone, Default)]
pub struct ShardedCounter(Arc<[Padded; SHARDS]>);

impl ShardedCounter {
    pub fn inc(&self) {
        if let Some(p) = self.0.get(shard()) {
            p.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for ShardedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ShardedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Upper bounds of the latency buckets, in nanoseconds (the last bucket, +Inf, is implicit).
const BOUNDS_NS: [u64; 14] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    500_000_000,
];

#[derive(Debug, Default)]
#[repr(align(64))]
struct HistShard {
    // No count of its own: it is the buckets' sum, one atomic add fewer per observation.
    sum_ns: AtomicU64,
    /// Per bucket (not cumulative); the last is +Inf.
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
}

/// A latency histogram in seconds with fixed buckets from 5 µs to 0.5 s.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram(Arc<[HistShard; SHARDS]>);

impl LatencyHistogram {
    pub fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let Some(s) = self.0.get(shard()) else {
            return;
        };
        s.sum_ns.fetch_add(ns, Ordering::Relaxed);
        let idx = BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BOUNDS_NS.len());
        if let Some(b) = s.buckets.get(idx) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (sum in seconds, count, per-bucket counts with upper bounds in seconds).
    fn totals(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut sum_ns = 0u64;
        let mut count = 0u64;
        let mut buckets = [0u64; BOUNDS_NS.len() + 1];
        for s in self.0.iter() {
            sum_ns = sum_ns.wrapping_add(s.sum_ns.load(Ordering::Relaxed));
            for (acc, b) in buckets.iter_mut().zip(s.buckets.iter()) {
                let n = b.load(Ordering::Relaxed);
                *acc = acc.wrapping_add(n);
                count = count.wrapping_add(n);
            }
        }
        let bounds = BOUNDS_NS
            .iter()
            .map(|&b| b as f64 / 1e9)
            .chain(std::iter::once(f64::MAX));
        (sum_ns as f64 / 1e9, count, bounds.zip(buckets).collect())
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.totals();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_add_up_across_threads() {
        let c = ShardedCounter::default();
        let h = LatencyHistogram::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..1000u64 {
                        c.inc();
                        h.observe(Duration::from_micros(i % 20));
                    }
                });
            }
        });
        assert_eq!(c.get(), 4000);
        let (sum, count, buckets) = h.totals();
        assert_eq!(count, 4000);
        assert_eq!(buckets.iter().map(|(_, n)| n).sum::<u64>(), 4000);
        // 0..=5 µs: 6 of every 20 observations.
        assert_eq!(buckets[0], (5e-6, 1200));
        assert!((sum - 4.0 * 50.0 * 190e-6).abs() < 1e-9, "{sum}");
    }
}
