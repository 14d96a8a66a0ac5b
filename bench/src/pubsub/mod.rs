//! Stream workloads for the pub/sub matrix.
//!
//! - `zpub` / `zsub` ([`zeromq`]): the paper's ZeroMQ benchmark (`pub_bench.py` /
//!   `sub_bench.py`, wire compatible with them), reporting goodput, efficiency and jitter.
//! - `tpub` / `tsub` ([`tcp`]): raw TCP with stamped, fixed-size messages ([`framing`]), which
//!   adds one-way latency and loss / reorder / duplicate detection.
//! - `qpub` / `qsub` ([`quic`]): the same stamped messages over one QUIC stream, for QUIC apps.
//!
//! Both subscribers print one JSON object on stdout and compute their metrics with
//! [`crate::metrics`]. Publishers send as fast as they can unless paced with `--pace-hz`.

mod framing;
mod protocol;
pub(crate) mod quic;
pub(crate) mod tcp;
pub(crate) mod zeromq;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::metrics::{GapStats, efficiency_pct, goodput_gbps};

/// What every subscriber reports, with the paper's definitions (field names are parsed by the
/// matrix runner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Arrivals {
    pub(crate) workload: String,
    pub(crate) size: u64,
    pub(crate) samples_expected: u64,
    pub(crate) samples_received: u64,
    /// Last data arrival − the start of the clock, seconds.
    pub(crate) elapsed_s: f64,
    pub(crate) goodput_gbps: f64,
    pub(crate) efficiency_pct: f64,
    /// Sample standard deviation of the inter-arrival gaps, µs.
    pub(crate) jitter_us: f64,
    pub(crate) mean_gap_us: f64,
}

impl Arrivals {
    pub(crate) fn new(
        workload: &str,
        size: u64,
        expected: u64,
        received: u64,
        elapsed_s: f64,
        gaps: &GapStats,
    ) -> Self {
        Self {
            workload: workload.into(),
            size,
            samples_expected: expected,
            samples_received: received,
            elapsed_s,
            goodput_gbps: goodput_gbps(size, received, elapsed_s),
            efficiency_pct: efficiency_pct(received, expected),
            jitter_us: gaps.jitter_secs() * 1e6,
            mean_gap_us: gaps.mean_secs() * 1e6,
        }
    }
}

/// An absolute send schedule: the n-th wait ends at `start + n · period`, so a late send does
/// not shift the ones after it (`next += period`, as the paper's `--jitter` mode).
#[derive(Debug)]
pub(crate) struct Pacer {
    period: Option<Duration>,
    next: Instant,
}

impl Pacer {
    /// `hz` of `None` or 0: no pacing.
    pub(crate) fn new(hz: Option<f64>) -> Self {
        let period = hz
            .filter(|hz| *hz > 0.0)
            .map(|hz| Duration::from_secs_f64(1.0 / hz));
        Self {
            period,
            next: Instant::now(),
        }
    }

    /// Waits for the next slot (returns at once when unpaced or behind schedule).
    pub(crate) fn wait(&mut self) {
        let Some(period) = self.period else { return };
        self.next += period;
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
    }
}

/// Checks a `--pace-hz` value: positive and finite.
pub(crate) fn parse_hz(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(hz) if hz.is_finite() && hz > 0.0 => Ok(hz),
        _ => Err(format!(
            "{s:?} is not a positive rate in Hz (e.g. 1000 for the paper's 1 kHz)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_keeps_an_absolute_schedule() {
        let start = Instant::now();
        let mut p = Pacer::new(Some(1000.0));
        // Falling behind by 5 ms: the next slots are taken at once until caught up.
        std::thread::sleep(Duration::from_millis(5));
        for _ in 0..10 {
            p.wait();
        }
        let e = start.elapsed();
        assert!(e >= Duration::from_millis(10), "{e:?}");
        let mut unpaced = Pacer::new(None);
        let t = Instant::now();
        for _ in 0..1000 {
            unpaced.wait();
        }
        assert!(t.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn pace_rates_must_be_positive() {
        assert_eq!(parse_hz("1000"), Ok(1000.0));
        assert!(parse_hz("0").is_err());
        assert!(parse_hz("-3").is_err());
        assert!(parse_hz("inf").is_err());
        assert!(parse_hz("fast").unwrap_err().contains("\"fast\""));
    }
}
