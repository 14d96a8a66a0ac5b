//! The `quic` engine: a TCP↔QUIC tunnel. Apps keep speaking TCP on the LAN legs; between the
//! gateways each session stream is one QUIC connection (its own UDP socket and pinned event
//! loop, so a session's streams spread over the data-path cores), and every TCP connection
//! accepted on a stream's listener is one bidirectional QUIC stream on it.
//!
//! - The consumer gateway ([`WanSide::Target`]) accepts local apps on its TCP listeners and is
//!   the QUIC client toward the producer gateway's listener address (same port, UDP).
//! - The producer gateway ([`WanSide::Listener`]) is the QUIC server on the UDP twin of each
//!   listener port; for every QUIC stream it dials the stream's target (the producer app).
//!
//! Both ends prove the session secret in the TLS 1.3 handshake (the pinned per-session
//! certificate of [`WanTls`]), so a gateway without it is refused before any stream exists.
//! Each QUIC stream starts with an 8-byte preamble ([`PREAMBLE`]): it announces the stream to
//! the producer gateway even when the app on the consumer side speaks second, and lets a future
//! tunnel version be refused cleanly.
//!
//! TCP FIN ↔ QUIC FIN and TCP RST ↔ QUIC RESET_STREAM/STOP_SENDING, in both directions. Flow
//! control is end to end: a slow consumer stops our QUIC reads, the QUIC receive window
//! closes, the producer gateway stops reading TCP, and the producer's TCP window closes.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use quinn_proto::{
    ConnectionError, ConnectionHandle, Dir, ReadError, ReadableError, StreamEvent, StreamId,
    Transmit, VarInt, WriteError,
};
use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Sleep;

use super::config::{QuicConfigError, QuicTuning};
use super::driver::{Driver, DriverEvent};
use super::udp::{self, UdpIo};
use crate::allow::AllowList;
use crate::cores::CorePool;
use crate::engine::{Engine, EngineError, EngineKind, Proxy, ProxySpec, WanSecurity, WanSide};
use crate::kernel::{self, KernelProxy, StreamShared};
use crate::stats::StreamCounters;

/// First bytes of every tunnel stream: magic and version 1.
pub const PREAMBLE: [u8; 8] = *b"S2QT\x00\x01\x00\x00";

/// Application error codes on the wire.
const CODE_RELEASED: u32 = 0;
/// The TCP leg reset or failed; the peer resets its TCP leg too.
const CODE_TCP_RESET: u32 = 1;
/// The stream did not start with our preamble.
const CODE_PROTOCOL: u32 = 2;

/// Tunables of the `quic` engine.
#[derive(Debug, Clone)]
pub struct QuicOptions {
    pub tuning: QuicTuning,
    /// Dialing a target TCP socket, and a QUIC handshake, must finish within this.
    pub connect_timeout: Duration,
    /// Bytes read from a TCP socket per call.
    pub chunk: usize,
}

impl Default for QuicOptions {
    fn default() -> Self {
        Self {
            tuning: QuicTuning::default(),
            connect_timeout: Duration::from_secs(10),
            chunk: 256 << 10,
        }
    }
}

/// The `quic` engine over a pool of pinned event loops.
#[derive(Debug)]
pub struct QuicEngine {
    pool: Arc<CorePool>,
    options: Arc<QuicOptions>,
    next_loop: AtomicUsize,
}

impl QuicEngine {
    pub fn new(pool: Arc<CorePool>, options: QuicOptions) -> Result<Self, super::TuningError> {
        options.tuning.validate()?;
        Ok(Self {
            pool,
            options: Arc::new(options),
            next_loop: AtomicUsize::new(0),
        })
    }

    pub fn options(&self) -> &QuicOptions {
        &self.options
    }
}

fn unavailable(reason: impl Into<String>) -> EngineError {
    EngineError::Unavailable {
        engine: EngineKind::Quic,
        reason: reason.into(),
    }
}

impl From<QuicConfigError> for EngineError {
    fn from(e: QuicConfigError) -> Self {
        unavailable(e.to_string())
    }
}

impl Engine for QuicEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Quic
    }

    fn start(&self, spec: ProxySpec) -> Result<Box<dyn Proxy>, EngineError> {
        let WanSecurity::Tls(tls) = &spec.security else {
            return Err(EngineError::QuicNeedsIdentity);
        };
        if spec.listeners.len() != spec.targets.len() {
            return Err(EngineError::TargetCount {
                listeners: spec.listeners.len(),
                targets: spec.targets.len(),
            });
        }
        let tuning = &self.options.tuning;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel::<()>(1);
        let mut streams = Vec::with_capacity(spec.listeners.len());
        let mut tunnels = Vec::with_capacity(spec.listeners.len());
        for (index, (listener, target)) in spec.listeners.into_iter().zip(spec.targets).enumerate()
        {
            let err = |source| EngineError::Listener { index, source };
            listener.set_nonblocking(true).map_err(err)?;
            let (bind_at, driver) = match spec.wan_side {
                WanSide::Listener => {
                    let allow = spec.allow.clone();
                    let admit = Box::new(move |peer: SocketAddr| allow.allows(peer.ip()));
                    let driver = Driver::new(
                        tuning.endpoint(),
                        Some(tuning.server(tls)?),
                        None,
                        admit,
                        None,
                    );
                    (listener.local_addr().map_err(err)?, driver)
                }
                WanSide::Target => {
                    let any: SocketAddr = if target.is_ipv6() {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    } else {
                        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                    };
                    let client = (tuning.client(tls)?, crate::WanTls::server_name_str().into());
                    let driver = Driver::new(
                        tuning.endpoint(),
                        None,
                        Some(client),
                        Box::new(|_| false),
                        None,
                    );
                    (any, driver)
                }
            };
            let (udp, report) = udp::bind(bind_at, tuning.udp_buffer, tuning.force_udp_buffer)
                .map_err(|e| {
                    err(io::Error::new(
                        e.kind(),
                        format!("binding the QUIC UDP socket on {bind_at} failed: {e}"),
                    ))
                })?;
            report.log(&format!("{} stream {index}", spec.tag));
            let stream = Arc::new(StreamShared::new(index, target));
            streams.push(stream.clone());
            tunnels.push((listener, udp, driver, stream));
        }
        for (listener, udp, driver, stream) in tunnels {
            let slot = self.next_loop.fetch_add(1, Ordering::Relaxed);
            let (core, handle) = self.pool.handle_for(slot);
            tracing::debug!(session = %spec.tag, stream = stream.index, core,
                target = %stream.target(), side = ?spec.wan_side, "starting QUIC tunnel");
            let ctx = TunnelCtx {
                tag: spec.tag.clone(),
                side: spec.wan_side,
                allow: spec.allow.clone(),
                options: self.options.clone(),
                stream,
            };
            handle.spawn(run(
                ctx,
                listener,
                udp,
                driver,
                stop_rx.clone(),
                done_tx.clone(),
            ));
        }
        Ok(Box::new(KernelProxy {
            streams,
            stop: stop_tx,
            done: tokio::sync::Mutex::new(Some((done_tx, done_rx))),
        }))
    }
}

struct TunnelCtx {
    tag: String,
    side: WanSide,
    allow: AllowList,
    options: Arc<QuicOptions>,
    stream: Arc<StreamShared>,
}

async fn run(
    ctx: TunnelCtx,
    listener: std::net::TcpListener,
    udp: std::net::UdpSocket,
    driver: Driver,
    mut stop: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) {
    let counters = ctx.stream.counters.clone();
    let (listener, udp) = match (TcpListener::from_std(listener), UdpIo::new(udp)) {
        (Ok(l), Ok(u)) => (l, u),
        (Err(e), _) | (_, Err(e)) => {
            counters.set_last_error(format!("registering the tunnel sockets failed: {e}"));
            return;
        }
    };
    let mut t = Tunnel {
        // The producer gateway only holds its TCP listener so the port stays ours.
        accept: (ctx.side == WanSide::Target).then_some(listener),
        ctx,
        driver,
        udp,
        flows: BTreeMap::new(),
        current: None,
        waiting: VecDeque::new(),
        timer: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
        unsent: None,
        txbuf: Vec::new(),
    };
    let mut rounds = 0u32;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            () = std::future::poll_fn(|cx| t.poll_round(cx)) => {
                rounds = rounds.wrapping_add(1);
                // Let the other tunnels on this core have their turn.
                if rounds.is_multiple_of(8) {
                    tokio::task::yield_now().await;
                }
            }
        }
    }
    t.shutdown().await;
}

enum TcpLeg {
    /// Producer gateway: reading the preamble before dialing the target.
    Preamble {
        got: usize,
    },
    Dialing(Pin<Box<dyn Future<Output = Result<TcpStream, kernel::ConnError>> + Send>>),
    Open(TcpStream),
}

/// One TCP connection and its QUIC stream.
struct Flow {
    tcp: TcpLeg,
    peer: SocketAddr,
    /// Bytes read from TCP that QUIC has not accepted yet (handed over without a copy).
    up: Bytes,
    tcp_eof: bool,
    fin_sent: bool,
    /// Bytes read from QUIC that TCP has not accepted yet.
    down: Option<Bytes>,
    quic_eof: bool,
    tcp_shut: bool,
    _active: Active,
}

impl Flow {
    fn new(tcp: TcpLeg, peer: SocketAddr, counters: &Arc<StreamCounters>) -> Self {
        Self {
            tcp,
            peer,
            up: Bytes::new(),
            tcp_eof: false,
            fin_sent: false,
            down: None,
            quic_eof: false,
            tcp_shut: false,
            _active: Active::new(counters),
        }
    }

    fn done(&self) -> bool {
        self.fin_sent && self.quic_eof && self.tcp_shut && self.down.is_none()
    }
}

/// Holds one count in the active-connection gauge.
struct Active(Arc<StreamCounters>);

impl Active {
    fn new(counters: &Arc<StreamCounters>) -> Self {
        counters.active_connections.fetch_add(1, Ordering::Relaxed);
        counters.total_connections.fetch_add(1, Ordering::Relaxed);
        Self(counters.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The consumer gateway's QUIC connection toward the current target.
struct Current {
    conn: ConnectionHandle,
    remote: SocketAddr,
    connected: bool,
    /// The handshake must finish by then.
    deadline: Instant,
}

/// What a flow step decided.
enum Outcome {
    Continue,
    Done,
    /// Reset both legs, recording why.
    Fail(String),
}

struct Tunnel {
    ctx: TunnelCtx,
    driver: Driver,
    udp: UdpIo,
    accept: Option<TcpListener>,
    flows: BTreeMap<(ConnectionHandle, StreamId), Flow>,
    current: Option<Current>,
    /// Consumer gateway: accepted apps waiting for a connected QUIC connection.
    waiting: VecDeque<(TcpStream, SocketAddr)>,
    timer: Pin<Box<Sleep>>,
    /// A datagram the socket could not take yet.
    unsent: Option<(Transmit, Vec<u8>)>,
    txbuf: Vec<u8>,
}

impl Tunnel {
    fn counters(&self) -> &Arc<StreamCounters> {
        &self.ctx.stream.counters
    }

    /// One round of I/O; `Ready` when anything moved (the caller polls again), `Pending` when
    /// every source has registered its waker.
    fn poll_round(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut progress = false;
        progress |= self.udp.poll_recv(cx, &mut self.driver, 4).is_ready();
        if self.timer.as_mut().poll(cx).is_ready() {
            self.driver.handle_timeouts(Instant::now());
            progress = true;
        }
        progress |= self.poll_accept(cx);
        progress |= self.handle_events();
        progress |= self.open_waiting();
        progress |= self.pump_flows(cx);
        progress |= self.handle_events();
        self.check_handshake_deadline();
        match self.flush(cx) {
            Poll::Ready(sent) => progress |= sent,
            Poll::Pending => {}
        }
        let deadline = [
            self.driver.timeout(),
            self.current
                .as_ref()
                .filter(|c| !c.connected)
                .map(|c| c.deadline),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        self.timer.as_mut().reset(deadline.into());
        if self.timer.as_mut().poll(cx).is_ready() {
            progress = true;
        }
        if progress {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(listener) = &self.accept else {
            return false;
        };
        let mut progress = false;
        while let Poll::Ready(r) = listener.poll_accept(cx) {
            progress = true;
            match r {
                Ok((tcp, peer)) => {
                    if !self.ctx.allow.allows(peer.ip()) {
                        self.ctx
                            .stream
                            .counters
                            .rejected_connections
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(session = %self.ctx.tag, stream = self.ctx.stream.index,
                            %peer, "refused a connection from a source outside the allow-list");
                        kernel::reset(&tcp);
                        continue;
                    }
                    let _ = tcp.set_nodelay(true);
                    self.waiting.push_back((tcp, peer));
                }
                Err(e) => {
                    self.ctx
                        .stream
                        .counters
                        .set_last_error(format!("accept failed: {e}"));
                    break;
                }
            }
        }
        if !self.waiting.is_empty() {
            self.ensure_connection();
        }
        progress
    }

    /// Consumer gateway: a connection to the current target, started if there is none.
    fn ensure_connection(&mut self) {
        let target = self.ctx.stream.target();
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.remote == target && self.driver.conn(c.conn).is_some())
        {
            return;
        }
        let now = Instant::now();
        match self.driver.connect(now, target) {
            Ok(conn) => {
                tracing::debug!(session = %self.ctx.tag, stream = self.ctx.stream.index,
                    %target, "opening the QUIC connection");
                self.current = Some(Current {
                    conn,
                    remote: target,
                    connected: false,
                    deadline: now + self.ctx.options.connect_timeout,
                });
            }
            Err(e) => self.fail_waiting(format!("QUIC connect to {target} failed: {e}")),
        }
    }

    fn fail_waiting(&mut self, why: String) {
        tracing::warn!(session = %self.ctx.tag, stream = self.ctx.stream.index, error = %why,
            "WAN leg unavailable; resetting waiting connections");
        self.counters().set_last_error(why);
        for (tcp, _) in self.waiting.drain(..) {
            kernel::reset(&tcp);
        }
    }

    fn check_handshake_deadline(&mut self) {
        let Some(c) = &self.current else { return };
        if c.connected || Instant::now() < c.deadline {
            return;
        }
        let (conn, remote) = (c.conn, c.remote);
        self.current = None;
        if let Some(q) = self.driver.conn(conn) {
            q.close(
                Instant::now(),
                VarInt::from_u32(CODE_RELEASED),
                Bytes::new(),
            );
        }
        self.fail_waiting(format!(
            "QUIC handshake with {remote} did not finish within {:?}",
            self.ctx.options.connect_timeout
        ));
    }

    /// Consumer gateway: a stream for every waiting app, while the peer allows more.
    fn open_waiting(&mut self) -> bool {
        let Some(cur) = &self.current else {
            return false;
        };
        if !cur.connected {
            return false;
        }
        let conn_id = cur.conn;
        let mut progress = false;
        while let Some((tcp, peer)) = self.waiting.pop_front() {
            let Some(conn) = self.driver.conn(conn_id) else {
                self.waiting.push_front((tcp, peer));
                break;
            };
            let Some(id) = conn.streams().open(Dir::Bi) else {
                // The peer's stream limit; an `Available` event brings us back.
                self.waiting.push_front((tcp, peer));
                break;
            };
            if !matches!(conn.send_stream(id).write(&PREAMBLE), Ok(n) if n == PREAMBLE.len()) {
                let _ = conn.send_stream(id).reset(VarInt::from_u32(CODE_PROTOCOL));
                kernel::reset(&tcp);
                continue;
            }
            let flow = Flow::new(TcpLeg::Open(tcp), peer, &self.ctx.stream.counters);
            self.flows.insert((conn_id, id), flow);
            progress = true;
        }
        progress
    }

    fn handle_events(&mut self) -> bool {
        let mut progress = false;
        while let Some(ev) = self.driver.poll_event() {
            progress = true;
            match ev {
                DriverEvent::Accepted { remote, .. } => {
                    tracing::debug!(session = %self.ctx.tag, stream = self.ctx.stream.index,
                        %remote, "QUIC connection from the peer gateway");
                }
                DriverEvent::Refused { remote, reason } => {
                    self.counters()
                        .rejected_connections
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(session = %self.ctx.tag, stream = self.ctx.stream.index,
                        %remote, %reason, "refused a QUIC connection");
                }
                DriverEvent::Connected { conn } => {
                    if let Some(c) = self.current.as_mut().filter(|c| c.conn == conn) {
                        c.connected = true;
                    }
                }
                DriverEvent::Lost { conn, reason } => self.connection_lost(conn, reason),
                DriverEvent::Drained { conn } => {
                    if self.current.as_ref().is_some_and(|c| c.conn == conn) {
                        self.current = None;
                    }
                }
                DriverEvent::Stream {
                    conn,
                    event: StreamEvent::Opened { dir: Dir::Bi },
                } => self.accept_streams(conn),
                DriverEvent::Stream {
                    conn,
                    event: StreamEvent::Opened { dir: Dir::Uni },
                } => {
                    // The tunnel never uses unidirectional streams (and allows none).
                    if let Some(q) = self.driver.conn(conn) {
                        while let Some(id) = q.streams().accept(Dir::Uni) {
                            let _ = q.recv_stream(id).stop(VarInt::from_u32(CODE_PROTOCOL));
                        }
                    }
                }
                // Readiness is re-checked for every flow in each round.
                DriverEvent::Stream { .. } => {}
            }
        }
        progress
    }

    fn connection_lost(&mut self, conn: ConnectionHandle, reason: ConnectionError) {
        let benign = matches!(&reason, ConnectionError::ApplicationClosed(c)
            if c.error_code == VarInt::from_u32(CODE_RELEASED))
            || matches!(reason, ConnectionError::LocallyClosed);
        let keys: Vec<_> = self.flows.keys().filter(|k| k.0 == conn).copied().collect();
        if !benign || !keys.is_empty() {
            let why = format!("the QUIC connection ended: {reason}");
            tracing::warn!(session = %self.ctx.tag, stream = self.ctx.stream.index,
                open_streams = keys.len(), error = %why, "WAN connection lost");
            self.counters().set_last_error(why);
        }
        for k in keys {
            if let Some(flow) = self.flows.remove(&k)
                && let TcpLeg::Open(tcp) = &flow.tcp
            {
                kernel::reset(tcp);
            }
        }
        if self.current.as_ref().is_some_and(|c| c.conn == conn) {
            let handshake = !self.current.as_ref().is_some_and(|c| c.connected);
            self.current = None;
            if handshake {
                self.fail_waiting(format!("QUIC handshake failed: {reason}"));
            } else if !self.waiting.is_empty() {
                self.ensure_connection();
            }
        }
    }

    /// Producer gateway: the peer opened streams; each becomes a flow that reads the preamble
    /// and then dials the target.
    fn accept_streams(&mut self, conn_id: ConnectionHandle) {
        let Some(conn) = self.driver.conn(conn_id) else {
            return;
        };
        let peer = conn.remote_address();
        while let Some(id) = conn.streams().accept(Dir::Bi) {
            if self.ctx.side != WanSide::Listener {
                // Only the consumer gateway opens streams.
                let _ = conn.recv_stream(id).stop(VarInt::from_u32(CODE_PROTOCOL));
                let _ = conn.send_stream(id).reset(VarInt::from_u32(CODE_PROTOCOL));
                continue;
            }
            let flow = Flow::new(TcpLeg::Preamble { got: 0 }, peer, &self.ctx.stream.counters);
            self.flows.insert((conn_id, id), flow);
        }
    }

    fn pump_flows(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let keys: Vec<_> = self.flows.keys().copied().collect();
        for key in keys {
            let Some(mut flow) = self.flows.remove(&key) else {
                continue;
            };
            let (outcome, moved) = self.step(cx, key, &mut flow);
            progress |= moved;
            match outcome {
                Outcome::Continue => {
                    self.flows.insert(key, flow);
                }
                Outcome::Done => {
                    progress = true;
                    self.retire_idle_connection(key.0);
                }
                Outcome::Fail(why) => {
                    progress = true;
                    tracing::debug!(session = %self.ctx.tag, stream = self.ctx.stream.index,
                        peer = %flow.peer, error = %why, "tunnel stream failed");
                    self.counters().set_last_error(why);
                    if let TcpLeg::Open(tcp) = &flow.tcp {
                        kernel::reset(tcp);
                    }
                    if let Some(conn) = self.driver.conn(key.0) {
                        let code = VarInt::from_u32(CODE_TCP_RESET);
                        let _ = conn.send_stream(key.1).reset(code);
                        let _ = conn.recv_stream(key.1).stop(code);
                    }
                    self.retire_idle_connection(key.0);
                }
            }
        }
        progress
    }

    /// Closes a connection that is no longer the current one once its last flow is gone.
    fn retire_idle_connection(&mut self, conn: ConnectionHandle) {
        if self.ctx.side != WanSide::Target
            || self.current.as_ref().is_some_and(|c| c.conn == conn)
            || self.flows.keys().any(|k| k.0 == conn)
        {
            return;
        }
        if let Some(q) = self.driver.conn(conn) {
            q.close(
                Instant::now(),
                VarInt::from_u32(CODE_RELEASED),
                Bytes::new(),
            );
        }
    }

    /// Moves what can move on one flow.
    fn step(
        &mut self,
        cx: &mut Context<'_>,
        (conn_id, id): (ConnectionHandle, StreamId),
        flow: &mut Flow,
    ) -> (Outcome, bool) {
        let mut moved = false;
        // Producer gateway: preamble, then dial.
        if let TcpLeg::Preamble { got } = &mut flow.tcp {
            let Some(conn) = self.driver.conn(conn_id) else {
                return (Outcome::Fail("connection gone".into()), false);
            };
            let mut recv = conn.recv_stream(id);
            let mut chunks = match recv.read(true) {
                Ok(c) => c,
                Err(ReadableError::ClosedStream) => {
                    return (
                        Outcome::Fail("stream closed before its preamble".into()),
                        moved,
                    );
                }
                Err(e) => return (Outcome::Fail(format!("stream unreadable: {e}")), moved),
            };
            let mut bad = None;
            while *got < PREAMBLE.len() {
                match chunks.next(PREAMBLE.len() - *got) {
                    Ok(Some(c)) => {
                        moved = true;
                        if c.bytes[..] != PREAMBLE[*got..*got + c.bytes.len()] {
                            bad = Some("the stream does not start with the tunnel preamble");
                            break;
                        }
                        *got += c.bytes.len();
                    }
                    Ok(None) => {
                        bad = Some("the stream ended inside its preamble");
                        break;
                    }
                    Err(ReadError::Blocked) => break,
                    Err(ReadError::Reset(_)) => {
                        bad = Some("the peer reset the stream before its preamble");
                        break;
                    }
                }
            }
            let _ = chunks.finalize();
            if let Some(why) = bad {
                if let Some(conn) = self.driver.conn(conn_id) {
                    let _ = conn.send_stream(id).reset(VarInt::from_u32(CODE_PROTOCOL));
                    let _ = conn.recv_stream(id).stop(VarInt::from_u32(CODE_PROTOCOL));
                }
                // Already answered with the protocol code; just drop the flow.
                self.counters().set_last_error(why);
                return (Outcome::Done, true);
            }
            if *got < PREAMBLE.len() {
                return (Outcome::Continue, moved);
            }
            let target = self.ctx.stream.target();
            flow.tcp = TcpLeg::Dialing(Box::pin(kernel::dial(
                target,
                self.ctx.options.connect_timeout,
            )));
            moved = true;
        }
        if let TcpLeg::Dialing(fut) = &mut flow.tcp {
            match fut.as_mut().poll(cx) {
                Poll::Pending => return (Outcome::Continue, moved),
                Poll::Ready(Ok(tcp)) => {
                    flow.tcp = TcpLeg::Open(tcp);
                    moved = true;
                }
                Poll::Ready(Err(e)) => return (Outcome::Fail(e.to_string()), true),
            }
        }
        let TcpLeg::Open(tcp) = &flow.tcp else {
            return (Outcome::Continue, moved);
        };
        let to_target_is_up = self.ctx.side == WanSide::Target;
        let counters = self.ctx.stream.counters.clone();
        let count = |up: bool, n: usize| {
            let c = if up == to_target_is_up {
                &counters.bytes_to_target
            } else {
                &counters.bytes_from_target
            };
            c.fetch_add(n as u64, Ordering::Relaxed);
        };
        let Some(conn) = self.driver.conn(conn_id) else {
            return (Outcome::Fail("connection gone".into()), moved);
        };

        // TCP → QUIC.
        loop {
            if !flow.up.is_empty() {
                match conn
                    .send_stream(id)
                    .write_chunks(std::slice::from_mut(&mut flow.up))
                {
                    Ok(w) => {
                        // `write_chunks` advances `flow.up` past what it took.
                        count(true, w.bytes);
                        moved = true;
                        continue;
                    }
                    Err(WriteError::Blocked) => break,
                    Err(WriteError::Stopped(code)) => {
                        return (
                            Outcome::Fail(format!("the peer stopped the stream ({code})")),
                            true,
                        );
                    }
                    Err(WriteError::ClosedStream) => {
                        return (Outcome::Fail("the stream closed".into()), true);
                    }
                }
            }
            if flow.tcp_eof {
                if !flow.fin_sent {
                    let _ = conn.send_stream(id).finish();
                    flow.fin_sent = true;
                    moved = true;
                }
                break;
            }
            match tcp.poll_read_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(e)) => return (Outcome::Fail(format!("TCP leg: {e}")), true),
                Poll::Ready(Ok(())) => {}
            }
            let mut buf = BytesMut::with_capacity(self.ctx.options.chunk);
            match tcp.try_read_buf(&mut buf) {
                Ok(0) => {
                    flow.tcp_eof = true;
                    moved = true;
                }
                Ok(_) => {
                    flow.up = buf.freeze();
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return (Outcome::Fail(format!("TCP leg: {e}")), true),
            }
        }

        // QUIC → TCP.
        loop {
            if let Some(chunk) = &mut flow.down {
                match tcp.poll_write_ready(cx) {
                    Poll::Pending => break,
                    Poll::Ready(Err(e)) => return (Outcome::Fail(format!("TCP leg: {e}")), true),
                    Poll::Ready(Ok(())) => {}
                }
                match tcp.try_write(chunk) {
                    Ok(n) => {
                        chunk.advance(n);
                        count(false, n);
                        moved = true;
                        if chunk.is_empty() {
                            flow.down = None;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return (Outcome::Fail(format!("TCP leg: {e}")), true),
                }
                continue;
            }
            if flow.quic_eof {
                if !flow.tcp_shut {
                    let _ = SockRef::from(tcp).shutdown(Shutdown::Write);
                    flow.tcp_shut = true;
                    moved = true;
                }
                break;
            }
            let mut recv = conn.recv_stream(id);
            let mut chunks = match recv.read(true) {
                Ok(c) => c,
                Err(ReadableError::ClosedStream) => {
                    flow.quic_eof = true;
                    continue;
                }
                Err(e) => return (Outcome::Fail(format!("stream unreadable: {e}")), true),
            };
            let got = chunks.next(self.ctx.options.chunk);
            let _ = chunks.finalize();
            match got {
                Ok(Some(c)) => {
                    flow.down = Some(c.bytes);
                    moved = true;
                }
                Ok(None) => {
                    flow.quic_eof = true;
                    moved = true;
                }
                Err(ReadError::Blocked) => break,
                Err(ReadError::Reset(code)) => {
                    return (
                        Outcome::Fail(format!("the peer reset the stream ({code})")),
                        true,
                    );
                }
            }
        }
        if flow.done() {
            (Outcome::Done, true)
        } else {
            (Outcome::Continue, moved)
        }
    }

    /// Sends everything the driver has; `Ready(true)` if anything went out, `Pending` when the
    /// socket is full.
    fn flush(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut sent = false;
        loop {
            let (t, buf) = match self.unsent.take() {
                Some(u) => u,
                None => {
                    let segments = self.udp.max_segments();
                    let mut buf = std::mem::take(&mut self.txbuf);
                    match self
                        .driver
                        .poll_transmit(Instant::now(), segments, &mut buf)
                    {
                        Some(t) => (t, buf),
                        None => {
                            self.txbuf = buf;
                            return Poll::Ready(sent);
                        }
                    }
                }
            };
            match self.udp.poll_send(cx, &t, &buf) {
                Poll::Ready(r) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, to = %t.destination, "UDP send failed");
                    }
                    sent = true;
                    self.txbuf = buf;
                }
                Poll::Pending => {
                    self.unsent = Some((t, buf));
                    return Poll::Pending;
                }
            }
        }
    }

    /// Closes every connection (the peer learns at once), flushes the close frames briefly,
    /// and drops every socket.
    async fn shutdown(mut self) {
        self.driver
            .close_all(Instant::now(), CODE_RELEASED, b"session released");
        for (_, flow) in std::mem::take(&mut self.flows) {
            if let TcpLeg::Open(tcp) = &flow.tcp {
                kernel::reset(tcp);
            }
        }
        for (tcp, _) in self.waiting.drain(..) {
            kernel::reset(&tcp);
        }
        let _ = tokio::time::timeout(
            Duration::from_millis(100),
            std::future::poll_fn(|cx| match self.flush(cx) {
                Poll::Ready(_) => Poll::Ready(()),
                Poll::Pending => Poll::Pending,
            }),
        )
        .await;
    }
}
