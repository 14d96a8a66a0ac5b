//! The Engine seam: what the control plane asks of any data path.
//!
//! A session's listeners are bound by the control plane when the session is requested (so ports
//! are really held, and an occupied port is noticed then); when the targets arrive (`update`),
//! the engine is handed the bound listeners, the targets and the WAN protection, and returns a
//! running [`Proxy`]. Listener `i` forwards to target `i`; each listener serves any number of
//! connections, one after another or at once, until the proxy is released.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;

use crate::allow::AllowList;
use crate::stats::StreamStats;
use crate::wan_tls::WanTls;

/// The data paths s2cs can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// Buffered user-space forwarding over kernel sockets (per-core event loops).
    Copy,
    /// Zero-copy forwarding through a pipe with `splice(2)`; cannot encrypt.
    Splice,
    /// In-kernel splicing with a BPF sockmap verdict (`ebpf-fallback`); cannot encrypt.
    Sockmap,
    /// Kernel bypass: DPDK ports, TCP terminated and re-originated on smoltcp per polling
    /// lcore (`stack`); cannot encrypt yet.
    Dpdk,
    /// TCP on the LAN legs, QUIC between the gateways (`quic`): always encrypted, one QUIC
    /// connection per stream on its own event loop.
    Quic,
    /// QUIC app relay (`quic-relay`, the paper's QUIC proxy): apps speak QUIC; each gateway
    /// terminates the LAN connection and re-originates one on the WAN.
    QuicRelay,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Copy => "copy",
            Self::Splice => "splice",
            Self::Sockmap => "sockmap",
            Self::Dpdk => "dpdk",
            Self::Quic => "quic",
            Self::QuicRelay => "quic-relay",
        }
    }

    /// Whether the engine can carry TLS on the WAN leg.
    pub fn encrypts_wan(self) -> bool {
        match self {
            Self::Copy | Self::Quic | Self::QuicRelay => true,
            Self::Splice | Self::Sockmap | Self::Dpdk => false,
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An engine name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown engine '{0}'; choose one of: copy, splice, sockmap, dpdk, quic, quic-relay")]
pub struct UnknownEngine(pub String);

impl FromStr for EngineKind {
    type Err = UnknownEngine;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "copy" => Ok(Self::Copy),
            "splice" => Ok(Self::Splice),
            "sockmap" => Ok(Self::Sockmap),
            "dpdk" => Ok(Self::Dpdk),
            "quic" => Ok(Self::Quic),
            "quic-relay" => Ok(Self::QuicRelay),
            _ => Err(UnknownEngine(s.to_owned())),
        }
    }
}

/// Which leg of this gateway crosses the WAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WanSide {
    /// Producer gateway: the remote gateway connects to our listeners; targets are local apps.
    Listener,
    /// Consumer gateway: local apps connect to our listeners; targets are the remote gateway.
    Target,
}

/// Protection of the WAN leg.
#[derive(Debug, Clone)]
pub enum WanSecurity {
    /// Explicitly chosen by the operator: bytes cross the WAN in the clear.
    Plaintext,
    Tls(WanTls),
}

impl WanSecurity {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Tls(_) => "tls",
        }
    }
}

/// Everything an engine needs to run one session's streams.
#[derive(Debug)]
pub struct ProxySpec {
    /// A short non-secret session tag, for logs.
    pub tag: String,
    /// The session uid (the QUIC app relay derives the apps' identity from it).
    pub uid: String,
    /// Bound listening sockets, one per stream.
    pub listeners: Vec<std::net::TcpListener>,
    /// Where stream `i` connects, one per listener.
    pub targets: Vec<SocketAddr>,
    pub wan_side: WanSide,
    pub security: WanSecurity,
    /// Sources allowed to connect to the listeners.
    pub allow: AllowList,
}

/// Why an engine refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "the {engine} engine cannot encrypt the WAN leg; start s2cs with --wan-plaintext to accept \
         an unencrypted WAN, or use --engine copy"
    )]
    WanTlsUnsupported { engine: EngineKind },
    #[error(
        "the quic engines always encrypt the WAN leg (QUIC has no plaintext mode) and need the \
         session's WAN identity; start s2cs without --wan_plaintext"
    )]
    QuicNeedsIdentity,
    #[error("{listeners} listeners but {targets} targets; every stream needs exactly one target")]
    TargetCount { listeners: usize, targets: usize },
    #[error("the {engine} engine is not available in this process: {reason}")]
    Unavailable { engine: EngineKind, reason: String },
    #[error("preparing listener {index} failed: {source}")]
    Listener {
        index: usize,
        #[source]
        source: std::io::Error,
    },
}

/// A boxed future, for the object-safe [`Proxy::release`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The data path of one session, running.
pub trait Engine: Send + Sync {
    fn kind(&self) -> EngineKind;

    /// Starts forwarding. The listeners are consumed: releasing the proxy closes them.
    fn start(&self, spec: ProxySpec) -> Result<Box<dyn Proxy>, EngineError>;

    /// Entries in the engine's kernel maps (`sockmap`: sockets and their per-socket state;
    /// 0 when no connection is spliced), or `None` for engines without kernel maps.
    fn kernel_map_entries(&self) -> Option<usize> {
        None
    }

    /// Busy and idle TSC cycles of each polling lcore (`dpdk`); empty for engines without
    /// polling loops.
    fn lcore_cycles(&self) -> Vec<(u64, u64)> {
        Vec::new()
    }

    /// Active streams on each polling lcore (`dpdk`), in the order of [`Engine::lcore_cycles`].
    fn lcore_streams(&self) -> Vec<usize> {
        Vec::new()
    }

    /// Whether the engine accepts on the kernel listeners it is handed. Engines that own the
    /// data ports themselves (`dpdk`) only use them to hold their port numbers, so the control
    /// plane binds them with `IP_FREEBIND` on an address the kernel does not have.
    fn listens_in_kernel(&self) -> bool {
        true
    }
}

/// A running session data path.
pub trait Proxy: Send + Sync {
    /// Points stream `i` at `targets[i]` for new connections; open connections are untouched.
    /// Setting the same targets again changes nothing.
    fn set_targets(&self, targets: &[SocketAddr]) -> Result<(), EngineError>;

    fn targets(&self) -> Vec<SocketAddr>;

    fn stats(&self) -> Vec<StreamStats>;

    /// Stops accepting, closes every connection and listener, and resolves once all of the
    /// session's sockets are closed (so its ports can be reused at once).
    fn release(&self) -> BoxFuture<'_, ()>;
}
