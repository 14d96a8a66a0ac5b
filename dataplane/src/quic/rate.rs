//! A rate cap around any congestion controller: the window never exceeds rate × RTT, so
//! quinn's pacer (which spreads a window over one RTT) sends at most `rate` on average. This is
//! how the operator's `--quic_rate` reaches the QUIC WAN leg (a session's upstream `rate` field
//! is not used: docs/decisions.md, decision 32).

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn_proto::RttEstimator;
use quinn_proto::congestion::{Controller, ControllerFactory};

/// Builds [`RateCap`] controllers around the controllers of `inner`.
pub(crate) struct RateCapFactory {
    inner: Arc<dyn ControllerFactory + Send + Sync>,
    rate_bps: u64,
}

impl RateCapFactory {
    pub(crate) fn new(inner: Arc<dyn ControllerFactory + Send + Sync>, rate_bps: u64) -> Self {
        Self { inner, rate_bps }
    }
}

impl ControllerFactory for RateCapFactory {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(RateCap {
            inner: self.inner.clone().build(now, current_mtu),
            rate_bps: self.rate_bps,
            rtt: None,
            mtu: current_mtu,
        })
    }
}

struct RateCap {
    inner: Box<dyn Controller>,
    rate_bps: u64,
    /// Latest smoothed RTT; until the first ACK the inner controller's initial window applies.
    rtt: Option<Duration>,
    mtu: u16,
}

impl RateCap {
    fn cap(&self) -> Option<u64> {
        let rtt = self.rtt?;
        let bytes = (self.rate_bps as u128 * rtt.as_nanos() / 8 / 1_000_000_000) as u64;
        // Never below two datagrams, or a tiny RTT would stall the connection.
        Some(bytes.max(2 * u64::from(self.mtu)))
    }
}

impl Controller for RateCap {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.inner.on_sent(now, bytes, last_packet_number);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.rtt = Some(rtt.get());
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        self.inner
            .on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        self.inner
            .on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = new_mtu;
        self.inner.on_mtu_update(new_mtu);
    }

    fn window(&self) -> u64 {
        let w = self.inner.window();
        self.cap().map_or(w, |cap| w.min(cap))
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(Self {
            inner: self.inner.clone_box(),
            rate_bps: self.rate_bps,
            rtt: self.rtt,
            mtu: self.mtu,
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}
