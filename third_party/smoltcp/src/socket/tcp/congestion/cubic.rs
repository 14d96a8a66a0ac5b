// CUBIC (RFC 9438) in bytes, rewritten for SciStream-RS (see PATCHES.md).
//
// smoltcp 0.12's version never lowered the window on loss (it only recorded `w_max`), mixed
// bytes and segments in the cubic function (so `K` came out at minutes), and slow-started up to
// the peer's whole receive window. On a path with a shallow bottleneck queue the sender kept
// several times the path's capacity in flight and the queue dropped most of it.
//
// This one follows the RFC: slow start to `ssthresh`, a multiplicative decrease by
// `BETA_CUBIC` once per loss episode (third duplicate ACK; a retransmission timeout also
// collapses the window to one segment), the cubic growth function in segments with fast
// convergence, and the Reno-friendly region. Its behaviour is tested against a bottleneck
// link in `dataplane/tests/smoltcp_congestion.rs` (the vendored crate's own tests are not built).

use crate::time::{Duration, Instant};

use super::Controller;
use crate::socket::tcp::RttEstimator;

const BETA_CUBIC: f64 = 0.7;
const C: f64 = 0.4;
/// Reno-friendly additive increase per RTT (segments), RFC 9438 §4.3.
const ALPHA_CUBIC: f64 = 3.0 * (1.0 - BETA_CUBIC) / (1.0 + BETA_CUBIC);
const INITIAL_SEGMENTS: usize = 10;
/// Duplicate ACKs that mean a loss (smoltcp's fast retransmit fires at the same count).
const DUP_ACK_THRESHOLD: u8 = 3;

#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Cubic {
    cwnd: usize,
    ssthresh: usize,
    mss: usize,
    /// The largest receive window the peer advertised: the window never grows past it.
    rwnd: usize,
    /// Window (bytes) just before the last reduction.
    w_max: f64,
    /// Time (s) the cubic function takes to grow back to `w_max`.
    k: f64,
    /// Start of the current congestion-avoidance epoch.
    epoch_start: Option<Instant>,
    /// Reno-friendly estimate of the window (bytes).
    w_est: f64,
    dup_acks: u8,
    /// A loss before this time belongs to the episode already reacted to.
    recovery_until: Option<Instant>,
    srtt: Duration,
    /// Some data was acknowledged: before that, a timeout is the handshake's (a lost SYN
    /// says nothing about the path's capacity) and leaves the window alone.
    acked: bool,
}

impl Cubic {
    pub fn new() -> Cubic {
        let mss = 1024;
        Cubic {
            cwnd: INITIAL_SEGMENTS * mss,
            ssthresh: usize::MAX,
            mss,
            rwnd: 64 * 1024,
            w_max: 0.0,
            k: 0.0,
            epoch_start: None,
            w_est: 0.0,
            dup_acks: 0,
            recovery_until: None,
            srtt: Duration::from_millis(100),
            acked: false,
        }
    }

    fn min_cwnd(&self) -> usize {
        self.mss
    }

    /// A loss was detected at `now`; `timeout` when by the retransmission timer.
    fn on_loss(&mut self, now: Instant, timeout: bool) {
        if !self.acked {
            return;
        }
        let in_recovery = self.recovery_until.is_some_and(|t| now < t);
        if in_recovery && !timeout {
            return;
        }
        if !in_recovery {
            let cwnd = self.cwnd as f64;
            // Fast convergence: a flow whose window shrank since the last loss yields room.
            self.w_max = if cwnd < self.w_max {
                cwnd * (1.0 + BETA_CUBIC) / 2.0
            } else {
                cwnd
            };
            self.ssthresh = ((cwnd * BETA_CUBIC) as usize).max(2 * self.mss);
        }
        self.cwnd = if timeout {
            self.min_cwnd()
        } else {
            self.ssthresh
        };
        self.epoch_start = None;
        self.recovery_until = Some(now + self.srtt.max(Duration::from_millis(1)));
    }

    fn congestion_avoidance(&mut self, now: Instant, len: usize) {
        let mss = self.mss as f64;
        let cwnd = self.cwnd as f64;
        let epoch = match self.epoch_start {
            Some(e) => e,
            None => {
                self.epoch_start = Some(now);
                if cwnd < self.w_max {
                    self.k = ((self.w_max - cwnd) / mss / C).cbrt();
                } else {
                    self.k = 0.0;
                    self.w_max = cwnd;
                }
                self.w_est = cwnd;
                now
            }
        };
        let t = (now - epoch).total_micros() as f64 / 1e6 + self.srtt.total_micros() as f64 / 1e6;
        let cubic = C * (t - self.k).powi(3) * mss + self.w_max;
        // Reno-friendly region: never slower than Reno with the same decrease.
        self.w_est += ALPHA_CUBIC * mss * len as f64 / cwnd;
        let target = cubic.max(self.w_est).clamp(cwnd, 1.5 * cwnd);
        let grow = ((target - cwnd) * len as f64 / cwnd) as usize;
        self.cwnd = self.cwnd.saturating_add(grow);
    }
}

impl Controller for Cubic {
    fn window(&self) -> usize {
        self.cwnd
    }

    fn on_retransmit(&mut self, now: Instant) {
        // smoltcp calls this for the fast retransmit too (its timer fires at once after the
        // third duplicate ACK); that loss was counted in `on_duplicate_ack`. A timeout while
        // the duplicate ACKs still stand (the fast retransmit itself was lost) is the same
        // episode: collapsing the window then measured worse (go-back-N resends the whole
        // window either way, and slow start from one segment overshoots again).
        if self.dup_acks < DUP_ACK_THRESHOLD {
            self.on_loss(now, true);
        }
    }

    fn on_duplicate_ack(&mut self, now: Instant) {
        self.dup_acks = self.dup_acks.saturating_add(1);
        if self.dup_acks == DUP_ACK_THRESHOLD {
            self.on_loss(now, true);
        }
    }

    fn set_remote_window(&mut self, remote_window: usize) {
        if self.rwnd < remote_window {
            self.rwnd = remote_window;
        }
    }

    fn on_ack(&mut self, now: Instant, len: usize, rtt: &RttEstimator) {
        if len > 0 {
            self.dup_acks = 0;
        }
        self.acked |= len > 0;
        self.srtt = Duration::from_millis(u64::from(rtt.rtt.max(1)));
        if self.cwnd < self.ssthresh {
            // Slow start (also right after a timeout), at most two segments per ACK.
            self.cwnd = self.cwnd.saturating_add(len.min(self.cwnd));
        } else if self.recovery_until.is_some_and(|t| now < t) {
            // Recovery: the reduced window holds until the episode ends.
        } else {
            self.congestion_avoidance(now, len);
        }
        self.cwnd = self.cwnd.min(self.rwnd.max(self.min_cwnd())).max(self.min_cwnd());
    }

    fn set_mss(&mut self, mss: usize) {
        self.mss = mss.max(1);
        if !self.acked {
            self.cwnd = INITIAL_SEGMENTS * self.mss;
        }
    }
}
