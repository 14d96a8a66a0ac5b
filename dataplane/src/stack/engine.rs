//! Engine `dpdk`: EAL, the ports of a NIC profile, one polling [`Lcore`] per dataplane lcore,
//! and the [`Engine`] seam over them.
//!
//! The control plane hands each session's listeners as kernel sockets bound (with
//! `IP_FREEBIND`) to a dataplane address the kernel does not own: they only hold the port
//! numbers. The engine listens on the same address and port inside the dataplane, on the port
//! that owns that address, and relays each connection to its target through the port that
//! reaches it. With several dataplane lcores, `rte_flow` rules steer each connection to the
//! queue of the lcore that owns it (`steering`); a device that refuses them is an error at
//! start. Dropping the engine stops the lcores, then removes the rules and closes the ports.

use std::net::{IpAddr, SocketAddr, SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nic_profiles::{LcoreLayout, PortSpec, Profile};

use super::device::PortDevice;
use super::lcore::{Command, Lcore, LcoreStats, PortAddr, QuicListen, StackOptions, StreamId};
use super::placement::{Placed, PlacementError, Placer};
use super::steering::{EphemeralBlocks, SteeringRule};
use crate::dpdk::flow::{self, Flow};
use crate::dpdk::{DpdkError, Eal, LcoreJob, Mempool, Port, PortSetup};
use crate::engine::{
    BoxFuture, Engine, EngineError, EngineKind, Proxy, ProxySpec, WanSecurity, WanSide,
};
use crate::quic::TuningError;
use crate::quic::tunnel::{self, QuicOptions};
use crate::stats::{StreamCounters, StreamStats};

/// What `s2cs` configures for the `dpdk` engine.
#[derive(Debug, Clone)]
pub struct DpdkOptions {
    pub profile: Profile,
    pub ports: Vec<PortSpec>,
    /// Main and dataplane lcores (default: the profile's recommendation).
    pub layout: LcoreLayout,
    /// The operator's stream-to-lcore mapping (`--dpdk_stream_lcores`): stream `k` of every
    /// session runs on lcore `stream_lcores[k mod len]`; empty: the least loaded lcore.
    pub stream_lcores: Vec<u32>,
    pub stack: StackOptions,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum DpdkEngineError {
    #[error("NIC profile: {0}")]
    Profile(#[from] nic_profiles::ProfileError),
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    #[error("no dataplane ports configured; give at least one with --dpdk_port")]
    NoPorts,
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error(
        "the NIC profile runs EAL on hugepages, and they are not ready (or set eal.memory = \
         \"no-huge\" in a profile for test devices)"
    )]
    Hugepages(#[source] hugepages::Error),
    #[error(
        "dpdk port {port}: device {device} did not come up (ports present: {present:?}); its \
         probe failed, see EAL's messages above (does the interface or PCI device exist, is it \
         bound to a DPDK-capable driver?)"
    )]
    PortMissing {
        port: String,
        device: String,
        present: Vec<String>,
    },
    #[error(
        "the profile has {queues} rx/tx queue pair(s) per port but {lcores} dataplane lcores \
         were asked for; every dataplane lcore polls its own queue pair"
    )]
    Queues { queues: u16, lcores: usize },
    #[error(
        "dpdk port {port}: {lcores} dataplane lcores need flow steering, which the device \
         refused: {source}; run one dataplane lcore (--cores N) on this device"
    )]
    Steering {
        port: String,
        lcores: usize,
        #[source]
        source: DpdkError,
    },
}

/// A polling lcore as the engine drives it.
struct LcoreHandle {
    commands: Mutex<Sender<Command>>,
    stats: Arc<LcoreStats>,
    job: Mutex<Option<LcoreJob>>,
}

/// The running `dpdk` engine.
pub struct DpdkEngine {
    lcores: Vec<LcoreHandle>,
    addrs: Vec<PortAddr>,
    names: Vec<String>,
    port_ids: Vec<u16>,
    placer: Arc<Placer>,
    next_stream: AtomicU64,
    /// IP MTU of the ports (the profile's).
    mtu: u16,
    /// With more than one lcore: the rules steering each lcore's ephemeral block to its
    /// queue, on every port (listener rules live with their sessions).
    steering: Vec<Flow>,
    // Declared after the lcores and rules: dropped once the lcores have stopped polling.
    _ports: Vec<Port>,
    _pool: Arc<Mempool>,
}

impl std::fmt::Debug for DpdkEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkEngine")
            .field("ports", &self.names)
            .field("addrs", &self.addrs)
            .field("lcores", &self.lcores.len())
            .finish()
    }
}

impl DpdkEngine {
    /// Starts EAL with the profile's arguments, configures and starts every port, and launches
    /// one polling loop per dataplane lcore.
    pub fn start(options: DpdkOptions) -> Result<Self, DpdkEngineError> {
        let super::preflight::Ready {
            eal_args: args,
            hugepages: plan,
            placer,
        } = super::preflight::check(&options, &hugepages::HostSys)?;
        let DpdkOptions {
            profile,
            ports: specs,
            layout,
            stream_lcores: _,
            stack,
        } = options;
        if let Some(p) = plan {
            tracing::info!(node = p.node.0, size = %p.size, pages = p.pages, "hugepages free and mounted for EAL");
        }
        let config = nic_profiles::port_config(&profile);
        let lcore_ids = layout.dataplane.clone();
        let eal = Eal::init(&args)?;
        let m = config.mempool;
        let pool = Arc::new(Mempool::new(
            "s2ds_pool",
            m.mbufs,
            m.cache,
            m.data_room,
            m.numa_node,
        )?);
        let setup = PortSetup::from(&config);
        let names = nic_profiles::device_names(&profile, &specs);
        let mut ports = Vec::with_capacity(specs.len());
        let mut addrs = Vec::with_capacity(specs.len());
        for (name, spec) in names.iter().zip(&specs) {
            let port = Port::start(name, &setup, Arc::clone(&pool)).map_err(|e| match e {
                DpdkError::UnknownPort { name, present } => DpdkEngineError::PortMissing {
                    port: spec.name.clone(),
                    device: name,
                    present,
                },
                e => e.into(),
            })?;
            addrs.push(PortAddr {
                mac: spec.mac.map_or(port.mac(), |m| m.0),
                ipv4: spec.ipv4.addr(),
                prefix: spec.ipv4.prefix_len(),
                gateway: spec.gateway,
            });
            ports.push(port);
        }
        let blocks = EphemeralBlocks::new(lcore_ids.len());
        let mut steering = Vec::new();
        if lcore_ids.len() > 1 {
            for ((port, addr), spec) in ports.iter().zip(&addrs).zip(&specs) {
                for rule in blocks.rules(addr.ipv4) {
                    let flow = flow::create(port.id(), &rule).map_err(|source| {
                        DpdkEngineError::Steering {
                            port: spec.name.clone(),
                            lcores: lcore_ids.len(),
                            source,
                        }
                    })?;
                    steering.push(flow);
                }
            }
        }
        let mut lcores = Vec::with_capacity(lcore_ids.len());
        for (q, &lcore) in lcore_ids.iter().enumerate() {
            let q = q as u16;
            let mut devices = Vec::with_capacity(ports.len());
            for (port, addr) in ports.iter_mut().zip(&addrs) {
                let dev = PortDevice::new(
                    port.rx_queue(q)?,
                    port.tx_queue(q)?,
                    Arc::clone(&pool),
                    config.burst,
                    usize::from(config.mtu),
                );
                devices.push((dev, addr.clone()));
            }
            let (tx, rx) = mpsc::channel();
            let stats = Arc::new(LcoreStats::default());
            let seed = u64::from(lcore) ^ std::process::id() as u64;
            let options = StackOptions {
                ephemeral: blocks.range(q.into()),
                ..stack.clone()
            };
            let looper = Lcore::new(devices, options, rx, Arc::clone(&stats), seed);
            let job = eal.launch(lcore, move || {
                looper.run();
                0
            })?;
            tracing::info!(lcore, cpu = ?eal.cpu_of(lcore), queue = q, "dataplane lcore polling");
            lcores.push(LcoreHandle {
                commands: Mutex::new(tx),
                stats,
                job: Mutex::new(Some(job)),
            });
        }
        Ok(Self {
            lcores,
            addrs,
            names: names.clone(),
            port_ids: ports.iter().map(Port::id).collect(),
            placer: Arc::new(placer),
            next_stream: AtomicU64::new(1),
            mtu: config.mtu,
            steering,
            _ports: ports,
            _pool: pool,
        })
    }

    /// The dataplane addresses, one per port, in port order.
    pub fn addresses(&self) -> Vec<std::net::Ipv4Addr> {
        self.addrs.iter().map(|a| a.ipv4).collect()
    }

    /// Active streams per dataplane lcore, in queue order.
    pub fn streams_per_lcore(&self) -> Vec<usize> {
        self.placer.active()
    }

    /// Busy and idle TSC cycles of each lcore so far.
    pub fn lcore_cycles(&self) -> Vec<(u64, u64)> {
        self.lcores
            .iter()
            .map(|l| {
                (
                    l.stats.busy_cycles.load(Ordering::Relaxed),
                    l.stats.idle_cycles.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    fn send(&self, lcore: usize, cmd: Command) -> Result<(), EngineError> {
        self.lcores[lcore]
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(cmd)
            .map_err(|_| unavailable(format!("dataplane lcore {lcore} has stopped")))
    }
}

fn unavailable(reason: String) -> EngineError {
    EngineError::Unavailable {
        engine: EngineKind::Dpdk,
        reason,
    }
}

impl Drop for DpdkEngine {
    fn drop(&mut self) {
        for (i, l) in self.lcores.iter().enumerate() {
            // A loop that already ended has dropped its receiver; nothing to stop then.
            let _ = l
                .commands
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(Command::Stop);
            if let Some(job) = l.job.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let rc = job.wait();
                tracing::info!(lcore = i, rc, "dataplane lcore stopped");
            }
        }
        // The ports close (stop + close) as the fields drop, after every lcore has stopped.
    }
}

struct DpdkStream {
    /// The stream's lcore (its position among the dataplane lcores is its queue); counts the
    /// stream there until the proxy is dropped.
    placed: Placed,
    id: StreamId,
    index: usize,
    target: Mutex<SocketAddr>,
    counters: Arc<StreamCounters>,
}

struct DpdkProxy {
    engine: Arc<DpdkEngine>,
    streams: Vec<DpdkStream>,
    /// Listener steering rules (several lcores only); removed at release.
    flows: Mutex<Vec<Flow>>,
    /// The kernel sockets that hold the port numbers; closed at release.
    held: Mutex<Vec<TcpListener>>,
}

fn v4(addr: SocketAddr, what: &str) -> Result<SocketAddrV4, EngineError> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(ip) => Ok(SocketAddrV4::new(ip, a.port())),
            None => Err(unavailable(format!(
                "{what} {addr} is IPv6; the dpdk engine is IPv4 only"
            ))),
        },
    }
}

/// The `Engine` seam over the running dataplane: engine `dpdk` (TCP terminated and
/// re-originated on both legs) or engine `quic` on the DPDK ports (TCP on the LAN legs, the
/// TCP↔QUIC tunnel on the WAN leg, `lcore::QuicListen`). The `Engine` seam needs `&self`; the
/// proxy needs to outlive a borrow of the engine, so the engine is shared.
#[derive(Debug, Clone)]
pub struct SharedDpdkEngine {
    engine: Arc<DpdkEngine>,
    quic: Option<Arc<QuicOptions>>,
}

impl SharedDpdkEngine {
    /// Engine `dpdk`.
    pub fn tcp(engine: Arc<DpdkEngine>) -> Self {
        Self { engine, quic: None }
    }

    /// Engine `quic` on the DPDK ports. The largest QUIC datagram is bounded by the ports' MTU.
    pub fn quic(engine: Arc<DpdkEngine>, mut options: QuicOptions) -> Result<Self, TuningError> {
        let t = &mut options.tuning;
        // IPv4 and UDP headers take 28 bytes of the IP MTU.
        let payload = engine.mtu.saturating_sub(28).max(1200);
        t.max_mtu = t.max_mtu.min(payload);
        t.initial_mtu = t.initial_mtu.min(t.max_mtu);
        t.validate()?;
        Ok(Self {
            engine,
            quic: Some(Arc::new(options)),
        })
    }

    /// The tuning the QUIC tunnel runs with (MTU bounded by the ports).
    pub fn quic_options(&self) -> Option<&QuicOptions> {
        self.quic.as_deref()
    }

    /// The message for a stream whose lcore is to run a QUIC tunnel.
    fn quic_command(
        &self,
        options: &QuicOptions,
        spec: &ProxySpec,
        stream: (StreamId, usize, SocketAddrV4, SocketAddrV4),
        counters: Arc<StreamCounters>,
        done: Sender<Result<(), String>>,
    ) -> Result<Command, EngineError> {
        let (id, port, local, target) = stream;
        let WanSecurity::Tls(tls) = &spec.security else {
            return Err(EngineError::QuicNeedsIdentity);
        };
        let t = &options.tuning;
        let driver = match spec.wan_side {
            WanSide::Listener => tunnel::server_driver(t, tls, &spec.allow)?,
            WanSide::Target => tunnel::client_driver(t, tls)?,
        };
        Ok(Command::ListenQuic {
            stream: id,
            spec: QuicListen {
                side: spec.wan_side,
                port,
                local_port: local.port(),
                target,
                driver: Box::new(driver),
                connect_timeout: options.connect_timeout,
            },
            allow: spec.allow.clone(),
            counters,
            done,
        })
    }
}

impl Engine for SharedDpdkEngine {
    fn kind(&self) -> EngineKind {
        if self.quic.is_some() {
            EngineKind::Quic
        } else {
            EngineKind::Dpdk
        }
    }

    fn listens_in_kernel(&self) -> bool {
        false
    }

    fn lcore_cycles(&self) -> Vec<(u64, u64)> {
        self.engine.lcore_cycles()
    }

    fn lcore_streams(&self) -> Vec<usize> {
        self.engine.streams_per_lcore()
    }

    fn start(&self, spec: ProxySpec) -> Result<Box<dyn Proxy>, EngineError> {
        let engine = &self.engine;
        match (&self.quic, &spec.security) {
            (None, WanSecurity::Tls(_)) => {
                return Err(EngineError::WanTlsUnsupported {
                    engine: EngineKind::Dpdk,
                });
            }
            (Some(_), WanSecurity::Plaintext) => return Err(EngineError::QuicNeedsIdentity),
            (Some(_), _) if !engine.steering.is_empty() => {
                return Err(unavailable(
                    "the QUIC tunnel on the dataplane runs on one dataplane lcore (UDP flow \
                     steering is not built); start s2cs with one dataplane core (--cores N)"
                        .into(),
                ));
            }
            _ => {}
        }
        if spec.listeners.len() != spec.targets.len() {
            return Err(EngineError::TargetCount {
                listeners: spec.listeners.len(),
                targets: spec.targets.len(),
            });
        }
        let mut streams: Vec<DpdkStream> = Vec::with_capacity(spec.listeners.len());
        let mut flows = Vec::new();
        let mut result = Ok(());
        for (index, (listener, &target)) in spec.listeners.iter().zip(&spec.targets).enumerate() {
            let local = listener
                .local_addr()
                .map_err(|source| EngineError::Listener { index, source })?;
            let r = (|| {
                let local = v4(local, "listener")?;
                let target = v4(target, "target")?;
                let port = engine
                    .addrs
                    .iter()
                    .position(|a| IpAddr::V4(a.ipv4) == IpAddr::V4(*local.ip()))
                    .ok_or_else(|| {
                        unavailable(format!(
                            "listener address {} is not a dataplane address (ports have {:?}); \
                             set --listener_ip to one of them",
                            local.ip(),
                            engine.addresses()
                        ))
                    })?;
                let placed = engine.placer.place(index);
                let lcore = placed.position();
                if !engine.steering.is_empty() {
                    let rule = SteeringRule::listener(*local.ip(), local.port(), lcore as u16);
                    flows.push(
                        flow::create(engine.port_ids[port], &rule)
                            .map_err(|e| unavailable(format!("steering {local}: {e}")))?,
                    );
                }
                let id = engine.next_stream.fetch_add(1, Ordering::Relaxed);
                let counters = Arc::new(StreamCounters::default());
                let (done, answer) = mpsc::channel();
                let command = match &self.quic {
                    Some(options) => self.quic_command(
                        options,
                        &spec,
                        (id, port, local, target),
                        Arc::clone(&counters),
                        done,
                    )?,
                    None => Command::Listen {
                        stream: id,
                        port,
                        local_port: local.port(),
                        target,
                        allow: spec.allow.clone(),
                        counters: Arc::clone(&counters),
                        done,
                    },
                };
                engine.send(lcore, command)?;
                answer
                    .recv_timeout(Duration::from_secs(5))
                    .map_err(|_| unavailable(format!("dataplane lcore {lcore} did not answer")))?
                    .map_err(unavailable)?;
                tracing::debug!(session = %spec.tag, stream = index, lcore = placed.lcore(), %local, %target, "dpdk stream listening");
                streams.push(DpdkStream {
                    placed,
                    id,
                    index,
                    target: Mutex::new(SocketAddr::V4(target)),
                    counters,
                });
                Ok(())
            })();
            if r.is_err() {
                result = r;
                break;
            }
        }
        let proxy = DpdkProxy {
            engine: Arc::clone(engine),
            streams,
            flows: Mutex::new(flows),
            held: Mutex::new(spec.listeners),
        };
        match result {
            Ok(()) => Ok(Box::new(proxy)),
            Err(e) => {
                proxy.close_all();
                Err(e)
            }
        }
    }
}

impl DpdkProxy {
    /// Closes every stream's listener and connections and waits for the lcores to confirm
    /// (blocking: a few polling rounds).
    fn close_all(&self) {
        let streams: Vec<(usize, StreamId)> = self
            .streams
            .iter()
            .map(|s| (s.placed.position(), s.id))
            .collect();
        close_streams(&self.engine, &streams);
        self.flows.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

fn close_streams(engine: &DpdkEngine, streams: &[(usize, StreamId)]) {
    let waits: Vec<_> = streams
        .iter()
        .filter_map(|&(lcore, stream)| {
            let (done, wait) = mpsc::channel();
            engine
                .send(lcore, Command::Close { stream, done })
                .ok()
                .map(|()| wait)
        })
        .collect();
    for w in waits {
        // A stopped lcore has freed everything already.
        let _ = w.recv_timeout(Duration::from_secs(5));
    }
}

impl Proxy for DpdkProxy {
    fn set_targets(&self, targets: &[SocketAddr]) -> Result<(), EngineError> {
        if targets.len() != self.streams.len() {
            return Err(EngineError::TargetCount {
                listeners: self.streams.len(),
                targets: targets.len(),
            });
        }
        for (s, &t) in self.streams.iter().zip(targets) {
            let target = v4(t, "target")?;
            self.engine.send(
                s.placed.position(),
                Command::Retarget {
                    stream: s.id,
                    target,
                },
            )?;
            *s.target.lock().unwrap_or_else(|e| e.into_inner()) = t;
        }
        Ok(())
    }

    fn targets(&self) -> Vec<SocketAddr> {
        self.streams
            .iter()
            .map(|s| *s.target.lock().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    fn stats(&self) -> Vec<StreamStats> {
        self.streams
            .iter()
            .map(|s| s.counters.snapshot(s.index))
            .collect()
    }

    fn release(&self) -> BoxFuture<'_, ()> {
        let engine = Arc::clone(&self.engine);
        let streams: Vec<(usize, StreamId)> = self
            .streams
            .iter()
            .map(|s| (s.placed.position(), s.id))
            .collect();
        Box::pin(async move {
            // Waiting for the lcores takes a few polling rounds; keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || close_streams(&engine, &streams)).await;
            self.flows.lock().unwrap_or_else(|e| e.into_inner()).clear();
            self.held.lock().unwrap_or_else(|e| e.into_inner()).clear();
        })
    }
}
