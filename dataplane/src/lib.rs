//! The SciStream-RS data path (S2DS).
//!
//! [`engine`] defines the seam the control plane drives: an [`Engine`] turns a session's bound
//! listeners, targets and WAN protection into a running [`Proxy`]. The engines here run over
//! kernel sockets on pinned per-core event loops ([`cores`]):
//! - `copy`: buffered forwarding through one bounded [`ring::Ring`] per direction ([`forward`]),
//!   the only kernel engine that can carry TLS 1.3 on the WAN leg ([`wan_tls`]);
//! - `splice`: zero-copy through a pipe ([`splice`]), plaintext only;
//! - `sockmap`: in-kernel splicing by a BPF verdict with a user-space safety net
//!   (`ebpf-fallback`), plaintext only;
//! - `quic`: TCP on the LAN legs, QUIC between the gateways ([`quic`]), over a sans-io
//!   quinn-proto driver.
//!
//! The forwarding state ([`ring`]) is sans-io; sockets are the drivers around it.

pub mod allow;
pub mod cores;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod engine;
pub mod forward;
pub mod kernel;
pub mod quic;
pub mod ring;
pub mod splice;
#[cfg(feature = "dpdk")]
pub mod stack;
pub mod stats;
pub mod wan_tls;

pub use allow::AllowList;
pub use cores::{CorePool, Pinning};
pub use ebpf_fallback::{SockmapError, SpliceOptions, Splicer};
pub use engine::{Engine, EngineError, EngineKind, Proxy, ProxySpec, WanSecurity, WanSide};
pub use kernel::{KernelEngine, KernelOptions};
pub use quic::{QuicEngine, QuicTuning};
pub use stats::StreamStats;
pub use wan_tls::WanTls;
