//! The paper's stream metrics (reference §6: `sub_bench.py`), as pure functions and small
//! accumulators, so the ZeroMQ and raw-TCP subscribers compute them the same way.
//!
//! - goodput counts payload only (`size`, not the 10-byte `SciStream:` prefix nor framing), over
//!   `t = last data arrival − start`, where start is taken right after the sync reply (ZeroMQ) or
//!   the connection (raw TCP);
//! - efficiency is received / expected messages;
//! - jitter is the *sample* standard deviation (n − 1) of the gaps between consecutive data
//!   arrivals; computed online with Welford's algorithm, so 20 M messages cost no memory;
//! - latency percentiles are nearest-rank over every message; [`Latencies`] keeps each one as a
//!   `u32` in units of 100 ns (4 bytes per message: 80 MB for 20 M messages; saturates at 429 s).

use std::time::Duration;

use serde::Serialize;

/// Payload goodput in Gbit/s: `8 · size · count / (1e9 · t)`; 0 when `t` is not positive.
pub(crate) fn goodput_gbps(size: u64, count: u64, t_secs: f64) -> f64 {
    if t_secs <= 0.0 {
        return 0.0;
    }
    8.0 * size as f64 * count as f64 / (1e9 * t_secs)
}

/// `100 · count / samples_expected`; 0 when nothing was expected.
pub(crate) fn efficiency_pct(count: u64, samples_expected: u64) -> f64 {
    if samples_expected == 0 {
        return 0.0;
    }
    100.0 * count as f64 / samples_expected as f64
}

/// Mean and sample standard deviation of inter-arrival gaps, online (Welford).
///
/// Drive it with [`GapStats::arrival`] once per data message; the first arrival only sets the
/// reference point (the gap before it would include the publisher's start-up), so n messages
/// give n − 1 gaps.
#[derive(Debug, Clone, Default)]
pub(crate) struct GapStats {
    last: Option<Duration>,
    n: u64,
    mean: f64,
    m2: f64,
}

impl GapStats {
    /// Records a data message arriving at `at` (any monotonic origin, non-decreasing).
    pub(crate) fn arrival(&mut self, at: Duration) {
        if let Some(last) = self.last {
            self.gap(at.saturating_sub(last).as_secs_f64());
        }
        self.last = Some(at);
    }

    /// Adds one gap in seconds.
    pub(crate) fn gap(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Gaps recorded.
    #[cfg(test)]
    pub(crate) fn gaps(&self) -> u64 {
        self.n
    }

    /// Mean gap in seconds (0 with no gap).
    pub(crate) fn mean_secs(&self) -> f64 {
        self.mean
    }

    /// Sample standard deviation of the gaps in seconds (0 with fewer than two gaps).
    pub(crate) fn jitter_secs(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        (self.m2 / (self.n - 1) as f64).sqrt()
    }
}

/// Two-pass mean and sample standard deviation, the textbook formula [`GapStats`] must match.
#[cfg(test)]
pub(crate) fn mean_and_sample_stdev(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    (mean, (ss / (xs.len() - 1) as f64).sqrt())
}

/// One-way latencies, one `u32` of 100 ns units per message.
#[derive(Debug, Clone, Default)]
pub(crate) struct Latencies {
    ticks: Vec<u32>,
}

/// Nanoseconds per stored latency unit.
const LATENCY_TICK_NS: u64 = 100;

/// Latency percentiles in µs, nearest rank.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct LatencySummary {
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) max_us: f64,
}

impl Latencies {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            ticks: Vec::with_capacity(n),
        }
    }

    /// Records one latency in nanoseconds (rounded to 100 ns, saturating at about 429 s).
    pub(crate) fn record_ns(&mut self, ns: u64) {
        let ticks = (ns + LATENCY_TICK_NS / 2) / LATENCY_TICK_NS;
        self.ticks.push(u32::try_from(ticks).unwrap_or(u32::MAX));
    }

    /// p50, p99 and max; all 0 with no sample. Sorts in place.
    pub(crate) fn summary(&mut self) -> LatencySummary {
        self.ticks.sort_unstable();
        let us = |t: u32| f64::from(t) * LATENCY_TICK_NS as f64 / 1e3;
        LatencySummary {
            p50_us: nearest_rank(&self.ticks, 0.50).map_or(0.0, us),
            p99_us: nearest_rank(&self.ticks, 0.99).map_or(0.0, us),
            max_us: self.ticks.last().copied().map_or(0.0, us),
        }
    }
}

/// The `q` quantile (0..=1) of sorted values by nearest rank: the value at rank
/// `ceil(q · n)` (1-based, at least 1). `None` for no values.
pub(crate) fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Median and range of repeated runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

/// Median (mean of the two middle values for an even count), min and max; `None` for no value
/// or a NaN.
pub(crate) fn spread(values: &[f64]) -> Option<Spread> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[v.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn goodput_counts_payload_bits_over_elapsed() {
        // 1000 messages of 1250 B in 1 ms: 10 Mbit in 1 ms = 10 Gbit/s.
        assert!(close(goodput_gbps(1250, 1000, 0.001), 10.0));
        // The paper's 1 MiB row: 9536 messages in 5.36 s.
        assert!(close(
            goodput_gbps(1 << 20, 9536, 5.36),
            8.0 * 1_048_576.0 * 9536.0 / 5.36e9
        ));
        assert_eq!(goodput_gbps(1024, 10, 0.0), 0.0);
    }

    #[test]
    fn efficiency_is_received_over_expected() {
        assert!(close(efficiency_pct(9999, 10_000), 99.99));
        assert!(close(efficiency_pct(2000, 2000), 100.0));
        assert_eq!(efficiency_pct(5, 0), 0.0);
    }

    #[test]
    fn jitter_of_hand_computed_gaps() {
        // Arrivals at 0, 1, 3, 6 ms: gaps 1, 2, 3 ms; mean 2 ms; sample variance
        // ((1-2)² + 0 + (3-2)²) / 2 = 1 ms², stdev 1 ms.
        let mut g = GapStats::default();
        for ms in [0, 1, 3, 6] {
            g.arrival(Duration::from_millis(ms));
        }
        assert_eq!(g.gaps(), 3);
        assert!(close(g.mean_secs(), 0.002));
        assert!(close(g.jitter_secs(), 0.001));
    }

    #[test]
    fn jitter_needs_two_gaps() {
        let mut g = GapStats::default();
        assert_eq!(g.jitter_secs(), 0.0);
        g.arrival(Duration::from_millis(5));
        g.arrival(Duration::from_millis(7));
        assert_eq!(g.gaps(), 1);
        assert!(close(g.mean_secs(), 0.002));
        assert_eq!(g.jitter_secs(), 0.0);
    }

    #[test]
    fn welford_equals_two_pass() {
        // A deterministic, irregular sequence with a large offset (where a naive
        // sum-of-squares formula loses precision).
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let gaps: Vec<f64> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                1.0 + (x % 1000) as f64 * 1e-6
            })
            .collect();
        let mut g = GapStats::default();
        for &v in &gaps {
            g.gap(v);
        }
        let (mean, sd) = mean_and_sample_stdev(&gaps);
        assert!(close(g.mean_secs(), mean), "{} vs {mean}", g.mean_secs());
        assert!(
            (g.jitter_secs() - sd).abs() < 1e-9 * sd,
            "{} vs {sd}",
            g.jitter_secs()
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(50));
        assert_eq!(nearest_rank(&v, 0.99), Some(99));
        assert_eq!(nearest_rank(&v, 1.0), Some(100));
        assert_eq!(nearest_rank(&v, 0.0), Some(1));
        // ceil(0.5 · 5) = 3rd of five; ceil(0.99 · 5) = 5th.
        assert_eq!(nearest_rank(&[10, 20, 30, 40, 50], 0.5), Some(30));
        assert_eq!(nearest_rank(&[10, 20, 30, 40, 50], 0.99), Some(50));
        assert_eq!(nearest_rank(&[5], 0.99), Some(5));
        assert_eq!(nearest_rank::<u64>(&[], 0.5), None);
    }

    #[test]
    fn latencies_round_to_100ns_and_summarise() {
        let mut l = Latencies::with_capacity(4);
        for ns in [12_340, 1_050, 3_000, 250_000] {
            l.record_ns(ns);
        }
        // Sorted: 1.1, 3.0, 12.3, 250.0 µs; p50 = 2nd, p99 = 4th.
        let s = l.summary();
        assert!(close(s.p50_us, 3.0));
        assert!(close(s.p99_us, 250.0));
        assert!(close(s.max_us, 250.0));
        let mut huge = Latencies::default();
        huge.record_ns(u64::MAX / 2);
        assert!(close(huge.summary().max_us, f64::from(u32::MAX) / 10.0));
        assert_eq!(Latencies::default().summary().p50_us, 0.0);
    }

    #[test]
    fn spread_of_repeated_runs() {
        assert_eq!(
            spread(&[3.0, 1.0, 2.0]),
            Some(Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            })
        );
        assert_eq!(
            spread(&[4.0, 1.0, 2.0, 3.0]),
            Some(Spread {
                median: 2.5,
                min: 1.0,
                max: 4.0
            })
        );
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[1.0, f64::NAN]), None);
    }
}
