//! QUIC tuning: what the operator configures (link rate, RTT, congestion controller, MTU) and
//! the quinn-proto configurations derived from it.
//!
//! Flow-control windows follow the bandwidth-delay product of the configured path: a stream may
//! have one BDP unacknowledged in flight, the connection (and our send buffer) two. quinn's
//! defaults (1.25 MB per stream) cap a 50 ms path at 200 Mbit/s, which is why the windows are
//! derived rather than fixed (research/kernel-paths-on-this-machine.md §3).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use quinn_proto::congestion::{BbrConfig, ControllerFactory, CubicConfig, NewRenoConfig};
use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn_proto::{
    ClientConfig, EndpointConfig, IdleTimeout, MtuDiscoveryConfig, ServerConfig, TransportConfig,
    VarInt,
};

use super::rate::RateCapFactory;
use crate::wan_tls::WanTls;

/// The smallest datagram every QUIC path must carry (RFC 9000 §14).
pub const MIN_MTU: u16 = 1200;
/// The largest UDP payload over IPv4 with a 9000-byte jumbo MTU (9000 − 20 − 8).
pub const JUMBO_UDP_PAYLOAD: u16 = 8972;
/// The smallest per-stream receive window.
pub const MIN_STREAM_WINDOW: u64 = 16 << 20;
/// Largest UDP payload quinn accepts.
const MAX_UDP_PAYLOAD: u16 = 65527;

/// The congestion controller of each QUIC connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Congestion {
    #[default]
    Cubic,
    Bbr,
    NewReno,
}

/// Where the host keeps its TCP congestion control (per network namespace).
const HOST_TCP_CC: &str = "/proc/sys/net/ipv4/tcp_congestion_control";

impl Congestion {
    /// The controller closest to the host's TCP default (`net.ipv4.tcp_congestion_control`
    /// in this network namespace), so the QUIC leg follows the policy the kernel TCP legs
    /// already use: `bbr` gives BBR, `reno` NewReno, anything else (and no readable sysctl)
    /// Cubic. This is what `auto` means.
    pub fn host() -> Self {
        std::fs::read_to_string(HOST_TCP_CC)
            .map(|s| Self::for_tcp(&s))
            .unwrap_or_default()
    }

    /// The controller for a Linux TCP congestion control name.
    pub fn for_tcp(name: &str) -> Self {
        match name.trim() {
            n if n.starts_with("bbr") => Self::Bbr,
            "reno" => Self::NewReno,
            _ => Self::Cubic,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cubic => "cubic",
            Self::Bbr => "bbr",
            Self::NewReno => "newreno",
        }
    }
}

impl FromStr for Congestion {
    type Err = TuningError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::host()),
            "cubic" => Ok(Self::Cubic),
            "bbr" => Ok(Self::Bbr),
            "newreno" | "new-reno" | "reno" => Ok(Self::NewReno),
            _ => Err(TuningError::Congestion(s.to_owned())),
        }
    }
}

/// A tuning value that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TuningError {
    #[error("unknown congestion controller '{0}'; choose one of: auto, cubic, bbr, newreno")]
    Congestion(String),
    #[error("quic bandwidth must be above 0 bit/s")]
    Bandwidth,
    #[error("quic rtt must be above 0 ms")]
    Rtt,
    #[error("quic initial MTU {initial} is below the {MIN_MTU} bytes every QUIC path must carry")]
    InitialMtu { initial: u16 },
    #[error(
        "quic max MTU {max} must be at least the initial MTU {initial} and at most \
         {MAX_UDP_PAYLOAD} (the largest UDP payload)"
    )]
    MaxMtu { initial: u16, max: u16 },
    #[error(
        "quic idle timeout must be above 0 and longer than the keep-alive interval ({keep_alive:?})"
    )]
    IdleTimeout { keep_alive: Duration },
    #[error("quic UDP buffer {0} bytes is below the 256 KiB a QUIC socket needs")]
    UdpBuffer(usize),
}

/// Operator-facing QUIC tuning of the WAN leg.
#[derive(Debug, Clone, PartialEq)]
pub struct QuicTuning {
    /// Bottleneck rate of the WAN path, bit/s (sizes the windows with `rtt`).
    pub bandwidth_bps: u64,
    /// Round-trip time of the WAN path (sizes the windows; also quinn's initial RTT estimate).
    pub rtt: Duration,
    pub congestion: Congestion,
    /// UDP payload size the handshake starts with (at least 1200).
    pub initial_mtu: u16,
    /// Upper bound of path MTU discovery and the largest UDP payload we accept.
    pub max_mtu: u16,
    /// A connection that hears nothing for this long is closed and its resources freed.
    pub idle_timeout: Duration,
    /// Interval of keep-alive pings on an idle connection (keeps NAT and firewall state, and
    /// tells a live peer from a vanished one well before `idle_timeout`).
    pub keep_alive: Duration,
    /// SO_RCVBUF/SO_SNDBUF asked for each UDP socket.
    pub udp_buffer: usize,
    /// Force `udp_buffer` past `net.core.rmem_max`/`wmem_max` (SO_RCVBUFFORCE, needs
    /// CAP_NET_ADMIN); off: stay within the limits the host's administrator set.
    pub force_udp_buffer: bool,
    /// Caps each connection's sending rate, bit/s (the operator's `--quic_rate`; a session's
    /// `rate` is not used, decision 32); `None`: no cap.
    pub rate_bps: Option<u64>,
}

impl Default for QuicTuning {
    fn default() -> Self {
        Self {
            bandwidth_bps: 10_000_000_000,
            rtt: Duration::from_millis(20),
            congestion: Congestion::Cubic,
            initial_mtu: MIN_MTU,
            max_mtu: JUMBO_UDP_PAYLOAD,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
            udp_buffer: 32 << 20,
            force_udp_buffer: true,
            rate_bps: None,
        }
    }
}

/// Window sizes derived from the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub stream_receive: u64,
    pub connection_receive: u64,
    pub send: u64,
}

impl QuicTuning {
    pub fn validate(&self) -> Result<(), TuningError> {
        if self.bandwidth_bps == 0 || self.rate_bps == Some(0) {
            return Err(TuningError::Bandwidth);
        }
        if self.rtt.is_zero() {
            return Err(TuningError::Rtt);
        }
        if self.initial_mtu < MIN_MTU {
            return Err(TuningError::InitialMtu {
                initial: self.initial_mtu,
            });
        }
        if self.max_mtu < self.initial_mtu || self.max_mtu > MAX_UDP_PAYLOAD {
            return Err(TuningError::MaxMtu {
                initial: self.initial_mtu,
                max: self.max_mtu,
            });
        }
        if self.idle_timeout.is_zero() || self.idle_timeout <= self.keep_alive {
            return Err(TuningError::IdleTimeout {
                keep_alive: self.keep_alive,
            });
        }
        if self.udp_buffer < 256 << 10 {
            return Err(TuningError::UdpBuffer(self.udp_buffer));
        }
        Ok(())
    }

    /// Bytes in flight that fill the path: bandwidth × RTT (of the capped rate, if any).
    pub fn bdp(&self) -> u64 {
        let rate = self
            .rate_bps
            .map_or(self.bandwidth_bps, |r| r.min(self.bandwidth_bps));
        (rate as u128 * self.rtt.as_nanos() / 8 / 1_000_000_000) as u64
    }

    /// One BDP per stream, two per connection and for the send buffer; at least 16 MiB per
    /// stream (a gateway's effective RTT under load is several times the wire's, and
    /// window-limited streams were 15–20 % slower here), at most 1 GiB per stream (what a
    /// single gateway can be asked to hold).
    pub fn windows(&self) -> Windows {
        let stream = self.bdp().clamp(MIN_STREAM_WINDOW, 1 << 30);
        Windows {
            stream_receive: stream,
            connection_receive: (2 * stream).min(VarInt::MAX.into_inner()),
            send: 2 * stream,
        }
    }

    pub fn transport(&self) -> TransportConfig {
        let w = self.windows();
        let mut t = TransportConfig::default();
        // Varints hold up to 2^62; the windows are clamped far below that.
        t.stream_receive_window(VarInt::from_u64(w.stream_receive).unwrap_or(VarInt::MAX))
            .receive_window(VarInt::from_u64(w.connection_receive).unwrap_or(VarInt::MAX))
            .send_window(w.send)
            .max_concurrent_bidi_streams(VarInt::from_u32(1024))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .initial_rtt(self.rtt)
            .initial_mtu(self.initial_mtu)
            .min_mtu(MIN_MTU)
            .keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(Some(
                IdleTimeout::try_from(self.idle_timeout).unwrap_or(IdleTimeout::from(VarInt::MAX)),
            ))
            .datagram_receive_buffer_size(None);
        let mut mtud = MtuDiscoveryConfig::default();
        mtud.upper_bound(self.max_mtu);
        t.mtu_discovery_config(Some(mtud));
        let mtu = self.initial_mtu;
        let factory: Arc<dyn ControllerFactory + Send + Sync> = match self.congestion {
            Congestion::Cubic => {
                let mut c = CubicConfig::default();
                c.initial_window(initial_window(mtu));
                Arc::new(c)
            }
            Congestion::NewReno => {
                let mut c = NewRenoConfig::default();
                c.initial_window(initial_window(mtu));
                Arc::new(c)
            }
            Congestion::Bbr => {
                let mut c = BbrConfig::default();
                c.initial_window(initial_window(mtu));
                Arc::new(c)
            }
        };
        t.congestion_controller_factory(match self.rate_bps {
            Some(rate) => Arc::new(RateCapFactory::new(factory, rate)),
            None => factory,
        });
        t
    }

    pub fn endpoint(&self) -> EndpointConfig {
        let mut e = EndpointConfig::default();
        // Checked by `validate`: MIN_MTU ≤ max_mtu ≤ 65527.
        let _ = e.max_udp_payload_size(self.max_mtu);
        e
    }

    /// The QUIC server end of a session's WAN identity.
    pub fn server(&self, tls: &WanTls) -> Result<ServerConfig, QuicConfigError> {
        let crypto = QuicServerConfig::try_from(tls.server_config())
            .map_err(|_| QuicConfigError::CipherSuite)?;
        let mut s = ServerConfig::with_crypto(Arc::new(crypto));
        s.transport_config(Arc::new(self.transport()));
        // Gateways do not roam; a changed source address is an attacker or a NAT rebinding,
        // and the connection re-establishes on the next stream either way.
        s.migration(false);
        Ok(s)
    }

    /// The QUIC client end of a session's WAN identity.
    pub fn client(&self, tls: &WanTls) -> Result<ClientConfig, QuicConfigError> {
        let crypto = QuicClientConfig::try_from(tls.client_config())
            .map_err(|_| QuicConfigError::CipherSuite)?;
        let mut c = ClientConfig::new(Arc::new(crypto));
        c.transport_config(Arc::new(self.transport()));
        Ok(c)
    }
}

/// Ten full datagrams, quinn's own rule, at the starting MTU.
fn initial_window(mtu: u16) -> u64 {
    14_720.max(10 * u64::from(mtu))
}

/// Why a QUIC configuration could not be built from a session's identity.
#[derive(Debug, thiserror::Error)]
pub enum QuicConfigError {
    #[error("the WAN TLS configuration lacks TLS_AES_128_GCM_SHA256, which QUIC requires")]
    CipherSuite,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_bdp() {
        let t = QuicTuning {
            bandwidth_bps: 10_000_000_000,
            rtt: Duration::from_millis(50),
            ..QuicTuning::default()
        };
        assert_eq!(t.bdp(), 62_500_000);
        assert_eq!(
            t.windows(),
            Windows {
                stream_receive: 62_500_000,
                connection_receive: 125_000_000,
                send: 125_000_000
            }
        );
        // A LAN path: the floor.
        let lan = QuicTuning {
            rtt: Duration::from_micros(400),
            bandwidth_bps: 1_000_000_000,
            ..QuicTuning::default()
        };
        assert_eq!(lan.windows().stream_receive, MIN_STREAM_WINDOW);
        assert_eq!(lan.windows().send, 2 * MIN_STREAM_WINDOW);
        // 100 Gbit/s × 144 ms is 1.8 GB: one stream is capped at 1 GiB.
        let far = QuicTuning {
            bandwidth_bps: 100_000_000_000,
            rtt: Duration::from_millis(144),
            ..QuicTuning::default()
        };
        assert_eq!(far.windows().stream_receive, 1 << 30);
        // A rate cap sizes the windows to the capped rate.
        let capped = QuicTuning {
            rate_bps: Some(1_000_000_000),
            rtt: Duration::from_millis(50),
            ..QuicTuning::default()
        };
        assert_eq!(capped.bdp(), 6_250_000);
    }

    #[test]
    fn bad_values_are_named() {
        let ok = QuicTuning::default();
        assert_eq!(ok.validate(), Ok(()));
        let bad = |f: fn(&mut QuicTuning)| {
            let mut t = ok.clone();
            f(&mut t);
            t.validate().unwrap_err()
        };
        assert_eq!(bad(|t| t.bandwidth_bps = 0), TuningError::Bandwidth);
        assert_eq!(bad(|t| t.rate_bps = Some(0)), TuningError::Bandwidth);
        assert_eq!(bad(|t| t.rtt = Duration::ZERO), TuningError::Rtt);
        assert_eq!(
            bad(|t| t.initial_mtu = 1000),
            TuningError::InitialMtu { initial: 1000 }
        );
        assert_eq!(
            bad(|t| t.max_mtu = 1199),
            TuningError::MaxMtu {
                initial: 1200,
                max: 1199
            }
        );
        assert!(matches!(
            bad(|t| t.idle_timeout = Duration::from_secs(5)),
            TuningError::IdleTimeout { .. }
        ));
        assert_eq!(bad(|t| t.udp_buffer = 4096), TuningError::UdpBuffer(4096));
        assert_eq!(
            "Vegas".parse::<Congestion>().unwrap_err().to_string(),
            "unknown congestion controller 'Vegas'; choose one of: auto, cubic, bbr, newreno"
        );
        assert_eq!("BBR".parse::<Congestion>(), Ok(Congestion::Bbr));
    }

    #[test]
    fn auto_follows_the_hosts_tcp_congestion_control() {
        for (tcp, quic) in [
            ("bbr\n", Congestion::Bbr),
            ("bbr2", Congestion::Bbr),
            ("reno\n", Congestion::NewReno),
            ("cubic\n", Congestion::Cubic),
            ("htcp", Congestion::Cubic),
            ("", Congestion::Cubic),
        ] {
            assert_eq!(Congestion::for_tcp(tcp), quic, "{tcp:?}");
        }
        let host = std::fs::read_to_string(HOST_TCP_CC).expect("the host's TCP congestion control");
        assert_eq!("auto".parse::<Congestion>(), Ok(Congestion::for_tcp(&host)));
    }

    #[test]
    fn configs_build_from_a_session_identity() {
        let tls = WanTls::from_secret(b"uid").unwrap();
        let t = QuicTuning::default();
        t.server(&tls).unwrap();
        t.client(&tls).unwrap();
        for cc in ["cubic", "bbr", "newreno"] {
            let t = QuicTuning {
                congestion: cc.parse().unwrap(),
                rate_bps: Some(1_000_000_000),
                ..QuicTuning::default()
            };
            t.client(&tls).unwrap();
        }
    }
}
