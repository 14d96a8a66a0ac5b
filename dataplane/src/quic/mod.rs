//! QUIC on the WAN leg.
//!
//! - [`driver`]: the sans-io core, one quinn-proto endpoint and its connections, fed datagrams
//!   and the time by whatever loop owns the I/O;
//! - [`config`]: operator tuning (rate, RTT, congestion controller, MTU) turned into quinn
//!   configurations, windows sized to the bandwidth-delay product;
//! - [`udp`]: kernel UDP sockets with forced buffers and GSO/GRO (quinn-udp);
//! - [`tunnel`]: the `quic` engine, TCP on the LAN legs and one QUIC connection per stream
//!   between the gateways, each on its own pinned event loop.

pub mod config;
pub mod driver;
mod rate;
pub mod tunnel;
pub mod udp;

#[cfg(test)]
mod link_tests;

pub use config::{Congestion, QuicTuning, TuningError};
pub use driver::{Driver, DriverEvent};
pub use tunnel::QuicEngine;
pub use udp::UdpBufferReport;
