//! Exact percentiles over all samples (no histogram buckets, no sampling) and per-cause tallies.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Latency figures in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// The nearest-rank percentile of sorted samples: the smallest sample such that at least `p` percent
/// of all samples are ≤ it. `None` for no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // The epsilon keeps float noise (0.999 × 1000 = 999.0000000000001) from skipping a rank.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Latency {
    /// Summarises the samples (sorts them in place).
    pub fn of(samples: &mut [Duration]) -> Latency {
        samples.sort_unstable();
        let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
        let total: Duration = samples.iter().sum();
        Latency {
            samples: samples.len(),
            p50_ms: ms(percentile(samples, 50.0)),
            p90_ms: ms(percentile(samples, 90.0)),
            p99_ms: ms(percentile(samples, 99.0)),
            max_ms: ms(samples.last().copied()),
            mean_ms: if samples.is_empty() { 0.0 } else { total.as_secs_f64() * 1e3 / samples.len() as f64 },
        }
    }
}

/// Counts per key, printed in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Tally(pub BTreeMap<String, u64>);

impl Tally {
    pub fn add(&mut self, key: impl Into<String>, n: u64) {
        *self.0.entry(key.into()).or_insert(0) += n;
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, n) in &other.0 {
            self.add(k.clone(), *n);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `a 2, b 1` or `none`.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&n| Duration::from_millis(n)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 90.0), Some(Duration::from_millis(90)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&sorted, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
        // Small sets: p99 of 10 samples is the largest; p50 of 4 is the second.
        assert_eq!(percentile(&ms(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 99.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&ms(&[1, 2, 3, 4]), 50.0), Some(Duration::from_millis(2)));
        assert_eq!(percentile(&ms(&[7]), 99.9), Some(Duration::from_millis(7)));
        // 1,000 samples: p99 is the 990th.
        let sorted = ms(&(1..=1000).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(990)));
        assert_eq!(percentile(&sorted, 99.9), Some(Duration::from_millis(999)));
    }

    #[test]
    fn latency_summary_sorts_and_averages() {
        let mut samples = ms(&[9, 1, 5, 3, 7]);
        let l = Latency::of(&mut samples);
        assert_eq!(l.samples, 5);
        assert_eq!(l.p50_ms, 5.0);
        assert_eq!(l.p90_ms, 9.0);
        assert_eq!(l.max_ms, 9.0);
        assert_eq!(l.mean_ms, 5.0);
        assert_eq!(Latency::of(&mut []), Latency::default());
    }

    #[test]
    fn tallies() {
        let mut a = Tally::default();
        assert_eq!(a.describe(), "none");
        a.add("timeout", 1);
        a.add("http-503", 2);
        let mut b = Tally::default();
        b.add("timeout", 3);
        a.merge(&b);
        assert_eq!(a.total(), 6);
        assert_eq!(a.describe(), "http-503 2, timeout 4");
    }
}
