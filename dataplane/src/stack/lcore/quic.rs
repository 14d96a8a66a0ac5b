//! The `quic` engine's TCP↔QUIC tunnel inside a polling lcore: the LAN legs are smoltcp TCP
//! sockets on the dataplane ports, the WAN leg is one QUIC connection per session stream over a
//! smoltcp UDP socket on the port that faces the other gateway, driven by the sans-io
//! [`Driver`] in the same loop (no thread hop, no kernel socket).
//!
//! The wire protocol is the kernel tunnel's ([`crate::quic::tunnel`]): the same preamble,
//! application codes, FIN/RST mapping and flow control, so a DPDK gateway and a kernel-UDP
//! gateway interoperate.
//!
//! - Consumer gateway ([`WanSide::Target`]): a TCP listener on the session's listener port
//!   accepts apps (through the lcore's listener machinery); each accepted connection becomes a
//!   bidirectional stream on the QUIC connection this lcore opens from an ephemeral UDP port to
//!   the producer gateway's listener address.
//! - Producer gateway ([`WanSide::Listener`]): the QUIC server on the UDP twin of the listener
//!   port; each stream's preamble is checked, then the target (the producer app) is dialled
//!   over smoltcp TCP.

use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use quinn_proto::{ConnectionError, ConnectionHandle, Dir, StreamEvent, StreamId as QuicStreamId};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use super::{Lcore, StreamId};
use crate::engine::WanSide;
use crate::quic::driver::{Driver, DriverEvent};
use crate::quic::tunnel::{
    Active, CODE_PROTOCOL, CODE_RELEASED, CODE_RESET, Chunk, PREAMBLE, code, drain_into,
    read_chunk, read_preamble, refuse_stream, released, reset_stream,
};
use crate::stats::StreamCounters;

/// Datagrams a stream's UDP socket holds in each direction. Every round drains the receive
/// side completely, so it needs room for one RX burst of jumbo datagrams with a wide margin;
/// the send side holds what the connection emits in one round.
const UDP_PACKETS: usize = 512;
/// Payload bytes of each of those rings.
const UDP_BYTES: usize = 4 << 20;

/// What the control plane asks for one QUIC stream (see `Command::ListenQuic`).
#[derive(Debug)]
pub struct QuicListen {
    pub side: WanSide,
    /// The port and local port of the session's listener.
    pub port: usize,
    pub local_port: u16,
    /// Producer gateway: the producer app. Consumer gateway: the producer gateway's listener
    /// (its UDP twin).
    pub target: SocketAddrV4,
    pub driver: Box<Driver>,
    pub connect_timeout: Duration,
}

/// A connection this lcore opened toward the current target.
struct Dial {
    conn: ConnectionHandle,
    remote: SocketAddr,
    connected: bool,
    deadline: Instant,
}

enum Stage {
    /// Producer gateway: reading the stream's preamble.
    Preamble {
        got: usize,
    },
    /// Producer gateway: the target's handshake is running.
    Dialing,
    Open,
}

/// One app connection: its TCP socket and its QUIC stream.
struct Flow {
    stage: Stage,
    tcp: Option<(usize, SocketHandle)>,
    /// Bytes taken out of a TCP socket in TIME-WAIT (smoltcp clears its buffers when that
    /// timer ends) that the QUIC stream had no room for yet.
    up: Bytes,
    /// QUIC bytes the TCP socket has not taken yet.
    down: Bytes,
    /// The app sent its FIN (seen in a state only a received FIN leads to).
    fin_seen: bool,
    lan_eof: bool,
    wan_fin: bool,
    wan_eof: bool,
    lan_fin: bool,
    _active: Active,
}

impl Flow {
    fn new(stage: Stage, tcp: Option<(usize, SocketHandle)>, c: &Arc<StreamCounters>) -> Self {
        Self {
            stage,
            tcp,
            up: Bytes::new(),
            down: Bytes::new(),
            fin_seen: false,
            lan_eof: false,
            wan_fin: false,
            wan_eof: false,
            lan_fin: false,
            _active: Active::new(c),
        }
    }
}

enum Outcome {
    Continue(bool),
    Done,
    /// Reset both legs, recording why.
    Fail(String),
}

/// One session stream of the `quic` engine on this lcore.
pub(super) struct QuicStream {
    side: WanSide,
    /// The UDP socket: its port and handle.
    udp: (usize, SocketHandle),
    driver: Box<Driver>,
    pub(super) target: SocketAddrV4,
    counters: Arc<StreamCounters>,
    connect_timeout: Duration,
    flows: BTreeMap<(ConnectionHandle, QuicStreamId), Flow>,
    /// Consumer gateway: accepted app connections waiting for their WAN stream.
    pub(super) waiting: VecDeque<(usize, SocketHandle)>,
    dial: Option<Dial>,
    /// A datagram in `txbuf` the UDP socket had no room for.
    unsent: Option<(SocketAddr, usize)>,
    txbuf: Vec<u8>,
}

impl QuicStream {
    pub(super) fn flows(&self) -> usize {
        self.flows.len()
    }

    /// The dataplane port this stream's UDP socket is on.
    pub(super) fn udp_port(&self) -> usize {
        self.udp.0
    }
}

fn to_std(ep: IpEndpoint) -> SocketAddr {
    match ep.addr {
        IpAddress::Ipv4(a) => SocketAddr::V4(SocketAddrV4::new(a, ep.port)),
    }
}

fn to_smol(addr: SocketAddr) -> Option<IpEndpoint> {
    match addr {
        SocketAddr::V4(a) => Some(IpEndpoint::new(IpAddress::Ipv4(*a.ip()), a.port())),
        SocketAddr::V6(_) => None,
    }
}

impl Lcore {
    /// Opens the UDP socket (and, on the consumer gateway, the TCP listener) of a QUIC stream.
    pub(super) fn listen_quic(
        &mut self,
        stream: StreamId,
        spec: QuicListen,
        allow: crate::allow::AllowList,
        counters: Arc<StreamCounters>,
    ) -> Result<(), String> {
        if spec.port >= self.ports.len() {
            return Err(format!(
                "dataplane port {} does not exist (this lcore has {} ports)",
                spec.port,
                self.ports.len()
            ));
        }
        if self.listeners.contains_key(&stream) || self.quic.contains_key(&stream) {
            return Err(format!("stream {stream} already listens"));
        }
        // The producer gateway serves on the listener's UDP twin; the consumer gateway sends
        // from an ephemeral port of the port that reaches the producer gateway.
        let (udp_port, udp_local) = match spec.side {
            WanSide::Listener => {
                if self.quic.values().any(|q| {
                    q.side == WanSide::Listener && q.udp_port() == spec.port && {
                        let s = self.ports[q.udp.0].sockets.get::<udp::Socket>(q.udp.1);
                        s.endpoint().port == spec.local_port
                    }
                }) {
                    return Err(format!(
                        "UDP port {} is already taken on dataplane port {}",
                        spec.local_port, spec.port
                    ));
                }
                (spec.port, spec.local_port)
            }
            WanSide::Target => {
                let p = self.route(*spec.target.ip()).ok_or_else(|| {
                    format!(
                        "no dataplane port reaches {} (no subnet holds it and no gateway)",
                        spec.target
                    )
                })?;
                (p, self.next_local_port(p))
            }
        };
        if spec.side == WanSide::Target {
            self.listen(
                stream,
                spec.port,
                spec.local_port,
                spec.target,
                allow,
                Arc::clone(&counters),
            )?;
            if let Some(l) = self.listeners.get_mut(&stream) {
                l.quic = true;
            }
        }
        let buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_BYTES],
            )
        };
        let mut sock = udp::Socket::new(buffer(), buffer());
        let addr = self.ports[udp_port].net.address();
        if let Err(e) = sock.bind(IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(addr)),
            port: udp_local,
        }) {
            self.close_stream(stream);
            return Err(format!("binding UDP {addr}:{udp_local} failed: {e}"));
        }
        let handle = self.ports[udp_port].sockets.add(sock);
        self.quic.insert(
            stream,
            QuicStream {
                side: spec.side,
                udp: (udp_port, handle),
                driver: spec.driver,
                target: spec.target,
                counters,
                connect_timeout: spec.connect_timeout,
                flows: BTreeMap::new(),
                waiting: VecDeque::new(),
                dial: None,
                unsent: None,
                txbuf: Vec::new(),
            },
        );
        Ok(())
    }

    /// One round of every QUIC stream; whether anything happened.
    pub(super) fn quic_round(&mut self) -> bool {
        if self.quic.is_empty() {
            return false;
        }
        let now = Instant::now();
        let mut streams = std::mem::take(&mut self.quic);
        let mut worked = false;
        for q in streams.values_mut() {
            worked |= self.quic_step(q, now);
        }
        self.quic = streams;
        worked
    }

    fn quic_step(&mut self, q: &mut QuicStream, now: Instant) -> bool {
        let mut worked = self.quic_receive(q, now);
        if q.driver.timeout().is_some_and(|t| t <= now) {
            q.driver.handle_timeouts(now);
            worked = true;
        }
        worked |= self.quic_events(q, now);
        if !q.waiting.is_empty() {
            self.quic_ensure_dial(q, now);
        }
        worked |= self.quic_open_waiting(q);
        worked |= self.quic_pump(q, now);
        worked |= self.quic_events(q, now);
        self.quic_deadline(q, now);
        worked | self.quic_transmit(q, now)
    }

    fn quic_receive(&mut self, q: &mut QuicStream, now: Instant) -> bool {
        let (p, h) = q.udp;
        let s = self.ports[p].sockets.get_mut::<udp::Socket>(h);
        let mut any = false;
        while let Ok((data, meta)) = s.recv() {
            q.driver
                .handle_datagram(now, to_std(meta.endpoint), None, None, BytesMut::from(data));
            any = true;
        }
        any
    }

    /// Hands the driver's datagrams to the UDP socket until either runs out.
    fn quic_transmit(&mut self, q: &mut QuicStream, now: Instant) -> bool {
        let (p, h) = q.udp;
        let s = self.ports[p].sockets.get_mut::<udp::Socket>(h);
        let mut sent = false;
        loop {
            let (dest, len) = match q.unsent.take() {
                Some(u) => u,
                None => match q.driver.poll_transmit(now, 1, &mut q.txbuf) {
                    Some(t) => (t.destination, t.size.min(q.txbuf.len())),
                    None => break,
                },
            };
            let Some(ep) = to_smol(dest) else {
                continue; // the dataplane is IPv4 only; quinn never addresses IPv6 here
            };
            match s.send_slice(&q.txbuf[..len], ep) {
                Ok(()) => sent = true,
                Err(udp::SendError::BufferFull) => {
                    q.unsent = Some((dest, len));
                    break;
                }
                Err(e) => tracing::debug!(to = %dest, error = %e, "QUIC datagram not sent"),
            }
        }
        sent
    }

    fn quic_events(&mut self, q: &mut QuicStream, now: Instant) -> bool {
        let mut any = false;
        while let Some(ev) = q.driver.poll_event() {
            any = true;
            match ev {
                DriverEvent::Accepted { remote, .. } => {
                    tracing::debug!(%remote, "QUIC connection accepted on the dataplane");
                }
                DriverEvent::Refused { remote, reason } => {
                    q.counters
                        .rejected_connections
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%remote, %reason, "refused a QUIC connection");
                }
                DriverEvent::Connected { conn } => {
                    if let Some(d) = q.dial.as_mut().filter(|d| d.conn == conn) {
                        d.connected = true;
                    }
                }
                DriverEvent::Lost { conn, reason } => self.quic_lost(q, conn, reason, now),
                DriverEvent::Drained { conn } => {
                    if q.dial.as_ref().is_some_and(|d| d.conn == conn) {
                        q.dial = None;
                    }
                }
                DriverEvent::Stream {
                    conn,
                    event: StreamEvent::Opened { dir },
                } => accept_streams(q, conn, dir),
                // Readiness is re-checked for every flow in each round.
                DriverEvent::Stream { .. } => {}
            }
        }
        any
    }

    fn quic_lost(
        &mut self,
        q: &mut QuicStream,
        conn: ConnectionHandle,
        reason: ConnectionError,
        now: Instant,
    ) {
        let benign = released(&reason);
        let keys: Vec<_> = q.flows.keys().filter(|k| k.0 == conn).copied().collect();
        if !benign || !keys.is_empty() {
            let why = format!("the WAN QUIC connection ended: {reason}");
            tracing::warn!(open_streams = keys.len(), error = %why, "QUIC connection lost");
            q.counters.set_last_error(why);
        }
        for k in keys {
            if let Some(f) = q.flows.remove(&k)
                && let Some((p, h)) = f.tcp
            {
                self.reset_and_remove(p, h);
            }
        }
        if let Some(d) = q.dial.as_ref().filter(|d| d.conn == conn) {
            let handshake = !d.connected;
            q.dial = None;
            if handshake {
                self.quic_dial_failed(q, format!("QUIC handshake failed: {reason}"));
            } else if !q.waiting.is_empty() {
                self.quic_ensure_dial(q, now);
            }
        }
    }

    /// Consumer gateway: a connection to the current target, opened if there is none.
    fn quic_ensure_dial(&mut self, q: &mut QuicStream, now: Instant) {
        let target = SocketAddr::V4(q.target);
        if let Some(d) = &q.dial
            && d.remote == target
            && q.driver.conn(d.conn).is_some()
        {
            return;
        }
        match q.driver.connect(now, target) {
            Ok(conn) => {
                tracing::debug!(%target, "opening a QUIC connection on the dataplane");
                q.dial = Some(Dial {
                    conn,
                    remote: target,
                    connected: false,
                    deadline: now + q.connect_timeout,
                });
            }
            Err(e) => self.quic_dial_failed(q, format!("QUIC connect to {target} failed: {e}")),
        }
    }

    /// The WAN connection could not be opened: every app waiting for it is reset.
    fn quic_dial_failed(&mut self, q: &mut QuicStream, why: String) {
        tracing::warn!(error = %why, "QUIC connection unavailable; resetting the connections waiting for it");
        q.counters.set_last_error(why);
        for (p, h) in std::mem::take(&mut q.waiting) {
            self.reset_and_remove(p, h);
        }
    }

    fn quic_deadline(&mut self, q: &mut QuicStream, now: Instant) {
        let Some(d) = q
            .dial
            .as_ref()
            .filter(|d| !d.connected && now >= d.deadline)
        else {
            return;
        };
        let (conn, remote) = (d.conn, d.remote);
        q.dial = None;
        if let Some(c) = q.driver.conn(conn) {
            c.close(now, code(CODE_RELEASED), Bytes::new());
        }
        let why = format!(
            "QUIC handshake with {remote} did not finish within {:?}",
            q.connect_timeout
        );
        self.quic_dial_failed(q, why);
    }

    /// Consumer gateway: a WAN stream for every waiting app, while the peer allows more.
    fn quic_open_waiting(&mut self, q: &mut QuicStream) -> bool {
        let Some(conn_id) = q.dial.as_ref().filter(|d| d.connected).map(|d| d.conn) else {
            return false;
        };
        let mut progress = false;
        while let Some((p, h)) = q.waiting.pop_front() {
            if self.ports[p].sockets.get::<tcp::Socket>(h).state() == State::Closed {
                // The app gave up (or was reset) before its stream opened.
                self.ports[p].sockets.remove(h);
                continue;
            }
            let Some(conn) = q.driver.conn(conn_id) else {
                q.waiting.push_front((p, h));
                break;
            };
            let Some(id) = conn.streams().open(Dir::Bi) else {
                // The peer's stream limit; its next MAX_STREAMS brings us back.
                q.waiting.push_front((p, h));
                break;
            };
            if !matches!(conn.send_stream(id).write(&PREAMBLE), Ok(n) if n == PREAMBLE.len()) {
                reset_stream(conn, id, CODE_PROTOCOL);
                self.reset_and_remove(p, h);
                continue;
            }
            q.flows.insert(
                (conn_id, id),
                Flow::new(Stage::Open, Some((p, h)), &q.counters),
            );
            progress = true;
        }
        progress
    }

    fn quic_pump(&mut self, q: &mut QuicStream, now: Instant) -> bool {
        let mut progress = false;
        let keys: Vec<_> = q.flows.keys().copied().collect();
        for key in keys {
            let Some(mut flow) = q.flows.remove(&key) else {
                continue;
            };
            match self.quic_flow_step(q, key, &mut flow) {
                Outcome::Continue(moved) => {
                    progress |= moved;
                    q.flows.insert(key, flow);
                }
                Outcome::Done => {
                    progress = true;
                    if let Some((p, h)) = flow.tcp {
                        self.ports[p].sockets.remove(h);
                    }
                    retire_idle(q, key.0, now);
                }
                Outcome::Fail(why) => {
                    progress = true;
                    tracing::debug!(error = %why, "QUIC tunnel stream failed");
                    q.counters.set_last_error(why);
                    if let Some(c) = q.driver.conn(key.0) {
                        reset_stream(c, key.1, CODE_RESET);
                    }
                    if let Some((p, h)) = flow.tcp {
                        self.reset_and_remove(p, h);
                    }
                    retire_idle(q, key.0, now);
                }
            }
        }
        progress
    }

    fn quic_flow_step(
        &mut self,
        q: &mut QuicStream,
        (conn_id, id): (ConnectionHandle, QuicStreamId),
        flow: &mut Flow,
    ) -> Outcome {
        let mut moved = false;
        if let Stage::Preamble { got } = &mut flow.stage {
            let Some(conn) = q.driver.conn(conn_id) else {
                return Outcome::Fail("connection gone".into());
            };
            match read_preamble(conn, id, got) {
                Err(why) => {
                    reset_stream(conn, id, CODE_PROTOCOL);
                    q.counters.set_last_error(why);
                    // Already answered with the protocol code; just drop the flow.
                    return Outcome::Done;
                }
                Ok(m) => moved |= m,
            }
            if *got < PREAMBLE.len() {
                return Outcome::Continue(moved);
            }
            match self.dial(q.target) {
                Ok(tcp) => flow.tcp = Some(tcp),
                Err(e) => return Outcome::Fail(e),
            }
            flow.stage = Stage::Dialing;
        }
        let Some((p, h)) = flow.tcp else {
            return Outcome::Fail("the flow has no TCP leg".into());
        };
        if let Stage::Dialing = flow.stage {
            let s = self.ports[p].sockets.get_mut::<tcp::Socket>(h);
            match s.state() {
                State::SynSent => return Outcome::Continue(moved),
                State::Closed => {
                    return Outcome::Fail(format!(
                        "target {} refused or did not answer the handshake",
                        q.target
                    ));
                }
                _ => {
                    // The connect timeout guarded the handshake only.
                    s.set_timeout(None);
                    flow.stage = Stage::Open;
                }
            }
        }
        let up_is_to_target = q.side == WanSide::Target;
        let counters = &q.counters;
        let count = |up: bool, n: usize| {
            let c = if up == up_is_to_target {
                &counters.bytes_to_target
            } else {
                &counters.bytes_from_target
            };
            c.fetch_add(n as u64, Ordering::Relaxed);
        };
        let Some(conn) = q.driver.conn(conn_id) else {
            return Outcome::Fail("connection gone".into());
        };
        let s = self.ports[p].sockets.get_mut::<tcp::Socket>(h);
        match pump(s, conn, id, flow, count) {
            Err(why) => Outcome::Fail(why),
            Ok(m) => {
                let s = self.ports[p].sockets.get::<tcp::Socket>(h);
                let drained = flow.up.is_empty() && flow.down.is_empty() && s.send_queue() == 0;
                if flow.lan_eof
                    && flow.wan_fin
                    && flow.wan_eof
                    && flow.lan_fin
                    && drained
                    && matches!(s.state(), State::Closed | State::TimeWait)
                {
                    Outcome::Done
                } else {
                    Outcome::Continue(moved | m)
                }
            }
        }
    }

    /// Closes a QUIC stream: every connection with code 0 (the close frames go out now), every
    /// app connection reset, the UDP socket freed.
    pub(super) fn close_quic(&mut self, mut q: QuicStream) {
        let now = Instant::now();
        q.driver.close_all(now, CODE_RELEASED, b"session released");
        for (_, f) in std::mem::take(&mut q.flows) {
            if let Some((p, h)) = f.tcp {
                self.reset_and_remove(p, h);
            }
        }
        for (p, h) in std::mem::take(&mut q.waiting) {
            self.reset_and_remove(p, h);
        }
        self.quic_transmit(&mut q, now);
        let (p, h) = q.udp;
        let smol_now = self.now();
        self.egress(p, smol_now);
        self.ports[p].sockets.remove(h);
    }
}

/// A peer opened streams: the producer gateway takes bidirectional ones (each a tunnelled app
/// connection); anything else goes the wrong way and is refused with the protocol code.
fn accept_streams(q: &mut QuicStream, conn_id: ConnectionHandle, dir: Dir) {
    let Some(conn) = q.driver.conn(conn_id) else {
        return;
    };
    while let Some(id) = conn.streams().accept(dir) {
        if q.side == WanSide::Listener && dir == Dir::Bi {
            q.flows.insert(
                (conn_id, id),
                Flow::new(Stage::Preamble { got: 0 }, None, &q.counters),
            );
        } else {
            refuse_stream(conn, id, dir);
        }
    }
}

/// Consumer gateway: closes a connection that is no longer current once its last flow is gone.
fn retire_idle(q: &mut QuicStream, conn: ConnectionHandle, now: Instant) {
    if q.side == WanSide::Target
        && q.dial.as_ref().is_none_or(|d| d.conn != conn)
        && !q.flows.keys().any(|k| k.0 == conn)
        && let Some(c) = q.driver.conn(conn)
    {
        c.close(now, code(CODE_RELEASED), Bytes::new());
    }
}

/// Moves bytes between a TCP socket and its QUIC stream, both ways, FIN after the last byte.
/// `Ok(moved)`, or why both legs must be reset.
fn pump(
    s: &mut tcp::Socket<'_>,
    conn: &mut quinn_proto::Connection,
    id: QuicStreamId,
    flow: &mut Flow,
    count: impl Fn(bool, usize),
) -> Result<bool, String> {
    let mut moved = false;
    flow.fin_seen |= matches!(
        s.state(),
        State::CloseWait | State::LastAck | State::Closing | State::TimeWait
    );
    match s.state() {
        State::Closed if !(flow.fin_seen && flow.lan_fin) => {
            return Err("the app connection was reset".into());
        }
        // smoltcp sends a socket reset in SYN-RECEIVED back to LISTEN.
        State::Listen => return Err("the app connection was reset in its handshake".into()),
        // The app's handshake is still running (the stream already carries the preamble).
        State::SynReceived => return Ok(false),
        _ => {}
    }
    // TCP → QUIC: straight from the socket's receive ring into the stream (quinn copies).
    loop {
        let (eof, fin) = (flow.lan_eof, &mut flow.wan_fin);
        if !drain_into(conn, id, &mut flow.up, (eof, fin), &mut moved, |n| {
            count(true, n)
        })? {
            break;
        }
        if s.can_recv() {
            let mut stream = conn.send_stream(id);
            let r = s.recv(|buf| match stream.write(buf) {
                Ok(n) => (n, Ok(n)),
                Err(quinn_proto::WriteError::Blocked) => (0, Ok(0)),
                Err(e) => (0, Err(e)),
            });
            match r {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => {
                    count(true, n);
                    moved = true;
                    continue;
                }
                Ok(Err(e)) => return Err(format!("the WAN stream: {e}")),
            }
        }
        if flow.fin_seen && s.recv_queue() == 0 {
            flow.lan_eof = true;
            continue;
        }
        break;
    }
    if s.state() == State::TimeWait && s.recv_queue() > 0 && flow.up.is_empty() {
        let mut rest = vec![0; s.recv_queue()];
        let n = s.recv_slice(&mut rest).unwrap_or(0);
        rest.truncate(n);
        flow.up = rest.into();
    }
    // QUIC → TCP: a chunk at most as large as the socket's free send buffer.
    loop {
        if !flow.down.is_empty() {
            let n = s
                .send_slice(&flow.down)
                .map_err(|e| format!("the app connection: {e}"))?;
            if n == 0 {
                break;
            }
            flow.down.advance(n);
            count(false, n);
            moved = true;
            continue;
        }
        if flow.wan_eof {
            if !flow.lan_fin {
                s.close();
                flow.lan_fin = true;
                moved = true;
            }
            break;
        }
        let room = s.send_capacity() - s.send_queue();
        if room == 0 {
            break;
        }
        match read_chunk(conn, id, room)? {
            Chunk::Data(b) => flow.down = b,
            Chunk::End => flow.wan_eof = true,
            Chunk::Blocked => break,
        }
        moved = true;
    }
    Ok(moved)
}
