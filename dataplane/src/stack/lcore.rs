//! One polling loop per dataplane lcore: the ports' queue pairs as smoltcp interfaces (own MAC
//! and IPv4 per port; smoltcp answers ARP and ICMP echo), the listeners of the streams pinned
//! to this lcore, and the relays between terminated connections.
//!
//! A round: take one RX burst per port, let smoltcp process it, hand new connections to
//! listeners and dial their targets, copy bytes between the paired sockets, let smoltcp emit
//! segments, flush TX. Commands from the control plane (add / retarget / close a stream) arrive
//! on a channel that is checked once per round; counters are published every few rounds.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::Duration;

use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::socket::tcp::{self, Socket, State};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr};

use super::device::{DeviceCounters, PortDevice};
use super::relay::{self, Direction, Ending};
use crate::allow::AllowList;
use crate::dpdk::{tsc, tsc_hz};
use crate::stats::StreamCounters;

mod quic;
pub use quic::QuicListen;

/// Addressing of one dataplane port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAddr {
    pub mac: [u8; 6],
    pub ipv4: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
}

/// Tunables of the TCP termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackOptions {
    /// Receive and send buffer of every terminated socket, per direction (bytes). Sized from
    /// bandwidth × RTT: see [`StackOptions::buffer_for`].
    pub tcp_buffer: usize,
    /// Listening sockets kept ready per listener (simultaneous handshakes it can take).
    pub listen_backlog: usize,
    /// A target that does not answer the handshake within this time resets the client.
    pub connect_timeout: Duration,
    /// Verify RX checksums in software (off only on links whose senders are trusted).
    pub verify_rx_checksums: bool,
    /// Sleep this long after a run of empty rounds instead of spinning (`None`: poll without
    /// pause, the right choice on dedicated cores). For gateways that share their cores with
    /// other work; it adds up to this much latency to the first packet after a quiet spell.
    pub idle_sleep: Option<Duration>,
    /// Local ports this lcore dials from (its steering block when several lcores share a port:
    /// `steering::EphemeralBlocks`).
    pub ephemeral: std::ops::RangeInclusive<u16>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            tcp_buffer: 4 << 20,
            listen_backlog: 2,
            connect_timeout: Duration::from_secs(10),
            verify_rx_checksums: true,
            idle_sleep: None,
            ephemeral: 49152..=65535,
        }
    }
}

impl StackOptions {
    /// A buffer that holds two bandwidth-delay products (so the window never limits a flow at
    /// `gbit_s` over `rtt`), at least 256 KiB, at most 1 GiB (TCP's window-scale limit).
    pub fn buffer_for(gbit_s: f64, rtt: Duration) -> usize {
        let bdp = gbit_s * 1e9 / 8.0 * rtt.as_secs_f64();
        ((2.0 * bdp) as usize).clamp(256 << 10, 1 << 30)
    }
}

/// Egress passes per port and round at most (each emits one packet per socket).
const EGRESS_PASSES: usize = 32;

/// Empty rounds in a row before an lcore with `idle_sleep` naps.
const IDLE_ROUNDS_BEFORE_SLEEP: u32 = 256;

/// Identifies a stream (one listener and its target) across lcores.
pub type StreamId = u64;

/// What the control plane asks of an lcore.
#[derive(Debug)]
pub enum Command {
    /// Listen on `port`'s address at `local_port`; relay every accepted connection to
    /// `target` through whichever port reaches it. `done` gets the outcome once the listener
    /// takes connections.
    Listen {
        stream: StreamId,
        port: usize,
        local_port: u16,
        target: SocketAddrV4,
        allow: AllowList,
        counters: Arc<StreamCounters>,
        done: Sender<Result<(), String>>,
    },
    /// The `quic` engine: a TCP↔QUIC tunnel stream (`quic::QuicListen`); `done` as for
    /// `Listen`.
    ListenQuic {
        stream: StreamId,
        spec: QuicListen,
        allow: AllowList,
        counters: Arc<StreamCounters>,
        done: Sender<Result<(), String>>,
    },
    /// New connections of `stream` go to `target`; open ones are untouched.
    Retarget {
        stream: StreamId,
        target: SocketAddrV4,
    },
    /// Stop listening and reset every connection of `stream`; `done` is signalled once its
    /// sockets are gone.
    Close { stream: StreamId, done: Sender<()> },
    /// Reset everything and leave the loop.
    Stop,
}

/// Cycle and round counters of one lcore (published by the loop, read by anyone).
#[derive(Debug, Default)]
pub struct LcoreStats {
    /// TSC cycles spent in rounds that moved a frame or a byte.
    pub busy_cycles: AtomicU64,
    /// TSC cycles spent in rounds that found nothing to do, naps (`idle_sleep`) included.
    pub idle_cycles: AtomicU64,
    pub rounds: AtomicU64,
    pub rx_frames: AtomicU64,
    pub tx_frames: AtomicU64,
    pub tx_dropped: AtomicU64,
    /// Chained frames copied into one buffer ([`DeviceCounters::rx_linearized`]).
    pub rx_linearized: AtomicU64,
    /// Frames sent as mbuf chains ([`DeviceCounters::tx_chained`]).
    pub tx_chained: AtomicU64,
    /// Received frames dropped before the stack (longer than the port's MTU).
    pub rx_dropped: AtomicU64,
    /// Received frames addressed to other stations, dropped before the stack
    /// ([`DeviceCounters::rx_not_ours`]).
    pub rx_not_ours: AtomicU64,
    pub active_connections: AtomicU64,
}

/// One port as this lcore sees it.
struct StackPort {
    iface: Interface,
    dev: PortDevice,
    sockets: SocketSet<'static>,
    net: Ipv4Cidr,
    gateway: Option<Ipv4Addr>,
    next_ephemeral: u16,
}

struct Listener {
    port: usize,
    local_port: u16,
    target: SocketAddrV4,
    allow: AllowList,
    counters: Arc<StreamCounters>,
    ready: Vec<SocketHandle>,
    /// Accepted connections go to the stream's QUIC tunnel, not to a TCP relay pair.
    quic: bool,
}

struct Conn {
    stream: StreamId,
    a: (usize, SocketHandle),
    b: Option<(usize, SocketHandle)>,
    target: SocketAddrV4,
    to_b: Direction,
    to_a: Direction,
    counters: Arc<StreamCounters>,
}

/// The loop of one lcore. Build it with [`Lcore::new`] on the lcore's thread (or before
/// launching it: it is `Send`), then call [`Lcore::run`].
pub struct Lcore {
    ports: Vec<StackPort>,
    options: StackOptions,
    listeners: HashMap<StreamId, Listener>,
    conns: Vec<Conn>,
    quic: BTreeMap<StreamId, quic::QuicStream>,
    commands: Receiver<Command>,
    stats: Arc<LcoreStats>,
    epoch_tsc: u64,
    tsc_hz: u64,
}

impl Lcore {
    pub fn new(
        devices: Vec<(PortDevice, PortAddr)>,
        options: StackOptions,
        commands: Receiver<Command>,
        stats: Arc<LcoreStats>,
        seed: u64,
    ) -> Self {
        let now = SmolInstant::from_micros(0);
        let ports = devices
            .into_iter()
            .enumerate()
            .map(|(i, (mut dev, addr))| {
                dev.set_rx_checksum_verification(options.verify_rx_checksums);
                dev.set_mac(addr.mac);
                let mut config = Config::new(EthernetAddress(addr.mac).into());
                config.random_seed = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let mut iface = Interface::new(config, &mut dev, now);
                let cidr = Ipv4Cidr::new(addr.ipv4, addr.prefix);
                iface.update_ip_addrs(|a| {
                    // One address per port; the capacity (2) cannot be exceeded here.
                    let _ = a.push(IpCidr::Ipv4(cidr));
                });
                if let Some(gw) = addr.gateway {
                    // The route table holds 2 entries; one default route always fits.
                    let _ = iface.routes_mut().add_default_ipv4_route(gw);
                }
                StackPort {
                    iface,
                    dev,
                    sockets: SocketSet::new(Vec::new()),
                    net: cidr,
                    gateway: addr.gateway,
                    // Start at a seeded point so a restarted gateway does not reuse the
                    // 4-tuples of its last run first.
                    next_ephemeral: {
                        let (lo, hi) = (*options.ephemeral.start(), *options.ephemeral.end());
                        let span = u64::from(hi.saturating_sub(lo)) + 1;
                        lo + (seed % span) as u16
                    },
                }
            })
            .collect();
        Self {
            ports,
            options,
            listeners: HashMap::new(),
            conns: Vec::new(),
            quic: BTreeMap::new(),
            commands,
            stats,
            epoch_tsc: tsc(),
            tsc_hz: tsc_hz().max(1),
        }
    }

    /// Polls until [`Command::Stop`] arrives or the command channel closes. Returns the
    /// device counters of each port.
    pub fn run(mut self) -> Vec<DeviceCounters> {
        let (mut busy, mut idle, mut rounds) = (0u64, 0u64, 0u64);
        let mut idle_rounds = 0u32;
        loop {
            let t0 = tsc();
            match self.commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => break,
                Ok(cmd) => self.command(cmd),
                Err(TryRecvError::Empty) => {}
            }
            let worked = self.round();
            let dt = tsc().wrapping_sub(t0);
            if worked {
                busy += dt;
                idle_rounds = 0;
            } else {
                idle_rounds += 1;
                // Shared cores: after a run of empty rounds, give the core away briefly. The nap
                // counts as idle time, so the busy share stays the share of wall time.
                if let Some(nap) = self.options.idle_sleep
                    && idle_rounds >= IDLE_ROUNDS_BEFORE_SLEEP
                {
                    std::thread::sleep(nap);
                    idle += tsc().wrapping_sub(t0);
                } else {
                    idle += dt;
                }
            }
            rounds += 1;
            if rounds % 1024 == 0 {
                self.publish(&mut busy, &mut idle, &mut rounds);
            }
        }
        self.publish(&mut busy, &mut idle, &mut rounds);
        let ids: Vec<StreamId> = self
            .listeners
            .keys()
            .chain(self.quic.keys())
            .copied()
            .collect();
        for id in ids {
            self.close_stream(id);
        }
        // Let the resets go out.
        for _ in 0..4 {
            self.round();
        }
        self.ports.iter().map(|p| p.dev.counters()).collect()
    }

    fn publish(&self, busy: &mut u64, idle: &mut u64, rounds: &mut u64) {
        let s = &self.stats;
        s.busy_cycles
            .fetch_add(std::mem::take(busy), Ordering::Relaxed);
        s.idle_cycles
            .fetch_add(std::mem::take(idle), Ordering::Relaxed);
        s.rounds
            .fetch_add(std::mem::take(rounds), Ordering::Relaxed);
        let mut sum = DeviceCounters::default();
        for p in &self.ports {
            let c = p.dev.counters();
            sum.rx_frames += c.rx_frames;
            sum.tx_frames += c.tx_frames;
            sum.tx_dropped += c.tx_dropped + c.tx_no_mbuf;
            sum.rx_linearized += c.rx_linearized;
            sum.tx_chained += c.tx_chained;
            sum.rx_dropped_oversize += c.rx_dropped_oversize;
            sum.rx_not_ours += c.rx_not_ours;
        }
        s.rx_frames.store(sum.rx_frames, Ordering::Relaxed);
        s.tx_frames.store(sum.tx_frames, Ordering::Relaxed);
        s.tx_dropped.store(sum.tx_dropped, Ordering::Relaxed);
        s.rx_linearized.store(sum.rx_linearized, Ordering::Relaxed);
        s.tx_chained.store(sum.tx_chained, Ordering::Relaxed);
        s.rx_dropped
            .store(sum.rx_dropped_oversize, Ordering::Relaxed);
        s.rx_not_ours.store(sum.rx_not_ours, Ordering::Relaxed);
        let quic: usize = self.quic.values().map(quic::QuicStream::flows).sum();
        s.active_connections
            .store((self.conns.len() + quic) as u64, Ordering::Relaxed);
    }

    /// smoltcp's clock, from the TSC the loop reads anyway (no clock_gettime per round).
    fn now(&self) -> SmolInstant {
        let ticks = tsc().wrapping_sub(self.epoch_tsc);
        SmolInstant::from_micros((u128::from(ticks) * 1_000_000 / u128::from(self.tsc_hz)) as i64)
    }

    /// One round; whether anything happened.
    fn round(&mut self) -> bool {
        let now = self.now();
        let mut worked = false;
        for pi in 0..self.ports.len() {
            let p = &mut self.ports[pi];
            worked |= p.dev.refill() > 0;
            loop {
                let p = &mut self.ports[pi];
                if p.iface.poll_ingress_single(now, &mut p.dev, &mut p.sockets)
                    == PollIngressSingleResult::None
                {
                    break;
                }
                if p.dev.take_syn() {
                    self.accept(pi);
                }
            }
        }
        worked |= self.relay();
        worked |= self.quic_round();
        for pi in 0..self.ports.len() {
            worked |= self.egress(pi, now);
        }
        worked
    }

    /// Lets every socket of `port` emit what it can and flushes TX; whether frames went out.
    /// smoltcp emits one packet per socket per pass, so a pass is repeated while sockets still
    /// send and the TX batch has room (the device refuses more once it is full).
    fn egress(&mut self, port: usize, now: SmolInstant) -> bool {
        let p = &mut self.ports[port];
        for _ in 0..EGRESS_PASSES {
            if p.iface.poll_egress(now, &mut p.dev, &mut p.sockets) == PollResult::None {
                break;
            }
        }
        p.dev.flush() > 0
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Listen {
                stream,
                port,
                local_port,
                target,
                allow,
                counters,
                done,
            } => {
                // The caller may have stopped waiting; nothing to do then.
                let _ = done.send(self.listen(stream, port, local_port, target, allow, counters));
            }
            Command::ListenQuic {
                stream,
                spec,
                allow,
                counters,
                done,
            } => {
                // The caller may have stopped waiting; nothing to do then.
                let _ = done.send(self.listen_quic(stream, spec, allow, counters));
            }
            Command::Retarget { stream, target } => {
                if let Some(l) = self.listeners.get_mut(&stream) {
                    l.target = target;
                }
                if let Some(q) = self.quic.get_mut(&stream) {
                    q.target = target;
                }
            }
            Command::Close { stream, done } => {
                self.close_stream(stream);
                // The caller may have stopped waiting; nothing to do then.
                let _ = done.send(());
            }
            Command::Stop => {}
        }
    }

    fn listen(
        &mut self,
        stream: StreamId,
        port: usize,
        local_port: u16,
        target: SocketAddrV4,
        allow: AllowList,
        counters: Arc<StreamCounters>,
    ) -> Result<(), String> {
        if port >= self.ports.len() {
            return Err(format!(
                "dataplane port {port} does not exist (this lcore has {} ports)",
                self.ports.len()
            ));
        }
        if self.listeners.contains_key(&stream) {
            return Err(format!("stream {stream} already listens"));
        }
        if self
            .listeners
            .values()
            .any(|l| l.port == port && l.local_port == local_port)
        {
            return Err(format!(
                "port {local_port} is already taken on dataplane port {port}"
            ));
        }
        let mut l = Listener {
            port,
            local_port,
            target,
            allow,
            counters,
            ready: Vec::new(),
            quic: false,
        };
        self.refill_listener(&mut l)?;
        self.listeners.insert(stream, l);
        Ok(())
    }

    fn new_socket(&self) -> Socket<'static> {
        let n = self.options.tcp_buffer;
        let mut s = Socket::new(
            tcp::SocketBuffer::new(vec![0; n]),
            tcp::SocketBuffer::new(vec![0; n]),
        );
        s.set_nagle_enabled(false);
        s.set_ack_delay(None);
        // smoltcp's default is no congestion control: a full window at line rate on every
        // (re)start, which overflows WAN queues (the testbed's delay line dropped the bursts)
        // and is unfair to everyone else on the path.
        s.set_congestion_control(tcp::CongestionControl::Cubic);
        s
    }

    fn refill_listener(&mut self, l: &mut Listener) -> Result<(), String> {
        while l.ready.len() < self.options.listen_backlog.max(1) {
            let mut s = self.new_socket();
            let ep = IpEndpoint::new(
                IpAddress::Ipv4(self.ports[l.port].net.address()),
                l.local_port,
            );
            s.listen(ep)
                .map_err(|e| format!("listening on {ep} failed: {e}"))?;
            l.ready.push(self.ports[l.port].sockets.add(s));
        }
        Ok(())
    }

    /// Moves the listening sockets of `port` that took a SYN into connections and re-arms
    /// their listeners. Runs only after a SYN arrived (a socket leaves LISTEN only on one).
    fn accept(&mut self, port: usize) {
        let ids: Vec<StreamId> = self
            .listeners
            .iter()
            .filter(|(_, l)| l.port == port)
            .map(|(id, _)| *id)
            .collect();
        let mut refused = Vec::new();
        for id in ids {
            let Some(mut l) = self.listeners.remove(&id) else {
                continue;
            };
            let mut i = 0;
            while i < l.ready.len() {
                let h = l.ready[i];
                let sockets = &mut self.ports[l.port].sockets;
                let s = sockets.get_mut::<Socket>(h);
                if s.state() == State::Listen {
                    i += 1;
                    continue;
                }
                l.ready.swap_remove(i);
                let remote = s.remote_endpoint();
                let allowed = remote.is_some_and(|ep| match ep.addr {
                    IpAddress::Ipv4(v4) => l.allow.allows(std::net::IpAddr::V4(v4)),
                });
                if !allowed {
                    // Reset at once; the target never sees it.
                    s.abort();
                    l.counters
                        .rejected_connections
                        .fetch_add(1, Ordering::Relaxed);
                    refused.push((l.port, h));
                    continue;
                }
                if l.quic {
                    // The tunnel counts it once its WAN stream opens.
                    if let Some(q) = self.quic.get_mut(&id) {
                        q.waiting.push_back((l.port, h));
                    }
                    continue;
                }
                l.counters.total_connections.fetch_add(1, Ordering::Relaxed);
                l.counters
                    .active_connections
                    .fetch_add(1, Ordering::Relaxed);
                self.conns.push(Conn {
                    stream: id,
                    a: (l.port, h),
                    b: None,
                    target: l.target,
                    to_b: Direction::default(),
                    to_a: Direction::default(),
                    counters: Arc::clone(&l.counters),
                });
            }
            if let Err(e) = self.refill_listener(&mut l) {
                l.counters.set_last_error(e);
            }
            self.listeners.insert(id, l);
        }
        for (port, h) in refused {
            self.reset_and_remove(port, h);
        }
    }

    /// Aborts a socket, lets its RST go out, and frees it.
    fn reset_and_remove(&mut self, port: usize, h: SocketHandle) {
        let now = self.now();
        let p = &mut self.ports[port];
        let s = p.sockets.get_mut::<Socket>(h);
        if s.state() != State::Closed {
            s.abort();
        }
        // An aborted socket emits its RST at its next egress.
        p.iface.poll_egress(now, &mut p.dev, &mut p.sockets);
        p.sockets.remove(h);
    }

    /// The port that reaches `ip`: the one whose subnet holds it, else one with a gateway.
    fn route(&self, ip: Ipv4Addr) -> Option<usize> {
        let addr: Ipv4Address = ip;
        self.ports
            .iter()
            .position(|p| p.net.contains_addr(&addr))
            .or_else(|| self.ports.iter().position(|p| p.gateway.is_some()))
    }

    fn dial(&mut self, target: SocketAddrV4) -> Result<(usize, SocketHandle), String> {
        let port = self.route(*target.ip()).ok_or_else(|| {
            format!("no dataplane port reaches {target} (no subnet holds it and no gateway)")
        })?;
        let mut s = self.new_socket();
        s.set_timeout(Some(SmolDuration::from_millis(
            self.options.connect_timeout.as_millis() as u64,
        )));
        let local = self.next_local_port(port);
        let p = &mut self.ports[port];
        let remote = IpEndpoint::new(IpAddress::Ipv4(*target.ip()), target.port());
        s.connect(p.iface.context(), remote, local)
            .map_err(|e| format!("connecting to {target}: {e}"))?;
        Ok((port, p.sockets.add(s)))
    }

    /// The next port of this lcore's ephemeral block on `port`.
    fn next_local_port(&mut self, port: usize) -> u16 {
        let p = &mut self.ports[port];
        let local = p.next_ephemeral;
        let range = &self.options.ephemeral;
        p.next_ephemeral = if local >= *range.end() {
            *range.start()
        } else {
            local + 1
        };
        local
    }

    /// Copies bytes of every connection pair, forwards FINs and resets, and drops finished
    /// pairs. Whether any byte moved.
    fn relay(&mut self) -> bool {
        let mut moved_any = false;
        let mut i = 0;
        while i < self.conns.len() {
            let (moved, ending) = self.relay_one(i);
            moved_any |= moved > 0;
            if ending == Ending::Running {
                i += 1;
                continue;
            }
            let c = self.conns.swap_remove(i);
            self.free_pair(&c, ending);
        }
        moved_any
    }

    fn relay_one(&mut self, i: usize) -> (usize, Ending) {
        let (a_port, a_h) = self.conns[i].a;
        let a_state = self.ports[a_port].sockets.get::<Socket>(a_h).state();
        if self.conns[i].b.is_none() {
            match a_state {
                State::SynReceived => return (0, Ending::Running),
                State::Closed => return (0, Ending::Reset),
                _ => {}
            }
            let target = self.conns[i].target;
            match self.dial(target) {
                Ok(b) => self.conns[i].b = Some(b),
                Err(e) => {
                    self.conns[i].counters.set_last_error(e);
                    self.ports[a_port].sockets.get_mut::<Socket>(a_h).abort();
                    return (0, Ending::Reset);
                }
            }
        }
        let (b_port, b_h) = self.conns[i].b.expect("dialed above");
        let b_state = self.ports[b_port].sockets.get::<Socket>(b_h).state();
        if b_state == State::SynSent {
            return (0, Ending::Running);
        }
        if b_state == State::Closed && !self.conns[i].to_a.fin_seen {
            // Never established: refused or timed out.
            let target = self.conns[i].target;
            self.conns[i].counters.set_last_error(format!(
                "target {target} refused or did not answer the handshake"
            ));
        }
        let c = &mut self.conns[i];
        let (to_b_bytes, to_a_bytes, ending) = if a_port != b_port {
            let (pa, pb) = pair_mut(&mut self.ports, a_port, b_port);
            step(
                c,
                pa.sockets.get_mut::<Socket>(a_h),
                pb.sockets.get_mut::<Socket>(b_h),
            )
        } else {
            // Both ends on one port (one socket set): lend `b` out of the set for the step so
            // both can be borrowed; the placeholder has no buffers and is never polled.
            let set = &mut self.ports[a_port].sockets;
            let placeholder = Socket::new(
                tcp::SocketBuffer::new(Vec::new()),
                tcp::SocketBuffer::new(Vec::new()),
            );
            let mut b = std::mem::replace(set.get_mut::<Socket>(b_h), placeholder);
            let r = step(c, set.get_mut::<Socket>(a_h), &mut b);
            *set.get_mut::<Socket>(b_h) = b;
            r
        };
        c.counters
            .bytes_to_target
            .fetch_add(to_b_bytes as u64, Ordering::Relaxed);
        c.counters
            .bytes_from_target
            .fetch_add(to_a_bytes as u64, Ordering::Relaxed);
        (to_b_bytes + to_a_bytes, ending)
    }

    fn free_pair(&mut self, c: &Conn, ending: Ending) {
        for (port, h) in std::iter::once(c.a).chain(c.b) {
            if ending == Ending::Reset {
                self.reset_and_remove(port, h);
            } else {
                self.ports[port].sockets.remove(h);
            }
        }
        c.counters
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
    }

    fn close_stream(&mut self, stream: StreamId) {
        if let Some(q) = self.quic.remove(&stream) {
            self.close_quic(q);
        }
        if let Some(l) = self.listeners.remove(&stream) {
            for h in l.ready {
                self.ports[l.port].sockets.remove(h);
            }
        }
        let mut i = 0;
        while i < self.conns.len() {
            if self.conns[i].stream == stream {
                let c = self.conns.swap_remove(i);
                self.free_pair(&c, Ending::Reset);
            } else {
                i += 1;
            }
        }
    }
}

/// Two distinct ports mutably at once.
fn pair_mut(ports: &mut [StackPort], a: usize, b: usize) -> (&mut StackPort, &mut StackPort) {
    debug_assert_ne!(a, b);
    if a < b {
        let (lo, hi) = ports.split_at_mut(b);
        (&mut lo[a], &mut hi[0])
    } else {
        let (lo, hi) = ports.split_at_mut(a);
        (&mut hi[0], &mut lo[b])
    }
}

/// One relay round of a connected pair: copy both ways, forward FINs, and decide the ending.
fn step(c: &mut Conn, a: &mut Socket<'_>, b: &mut Socket<'_>) -> (usize, usize, Ending) {
    if relay::was_open(b.state()) {
        // The connect timeout guarded the handshake only: a stalled peer must not abort.
        b.set_timeout(None);
    }
    let to_b = relay::pump(&mut c.to_b, a, b);
    let to_a = relay::pump(&mut c.to_a, b, a);
    relay::forward_fin(&mut c.to_b, a, b);
    relay::forward_fin(&mut c.to_a, b, a);
    (to_b, to_a, relay::ending(a, b, &c.to_b, &c.to_a))
}
