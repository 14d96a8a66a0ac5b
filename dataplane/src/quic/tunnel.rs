//! The QUIC engines: the TCP↔QUIC tunnel (`quic`) and the QUIC app relay (`quic-relay`).
//!
//! Between the gateways each session stream is one QUIC connection (its own UDP socket and
//! pinned event loop, so a session's streams spread over the data-path cores), and every app
//! connection on a stream is one bidirectional QUIC stream on it.
//!
//! - `quic`: apps keep speaking TCP on the LAN legs. The consumer gateway
//!   ([`WanSide::Target`]) accepts local apps on its TCP listeners and is the QUIC client
//!   toward the producer gateway's listener address (same port, UDP). The producer gateway
//!   ([`WanSide::Listener`]) is the QUIC server on the UDP twin of each listener port; for every
//!   QUIC stream it dials the stream's target (the producer app).
//! - `quic-relay` (the paper's QUIC proxy): apps speak QUIC. The consumer gateway terminates
//!   the consumer app's QUIC connection on the UDP twin of its listener; the producer gateway
//!   re-originates one toward the producer app (a QUIC server at the target address). Each
//!   gateway thus holds two QUIC connections per stream, LAN and WAN, and hands decrypted
//!   chunks from one to the other without copying them. On the LAN legs apps and gateways
//!   prove the session's app identity ([`WanTls::for_apps`], from the uid).
//!
//! Both gateways prove the session secret in the WAN handshake (the pinned per-session
//! certificate of [`WanTls`]), so a gateway without it is refused before any stream exists.
//! Each WAN stream starts with an 8-byte preamble ([`PREAMBLE`]): it announces the stream to
//! the producer gateway even when the app on the consumer side speaks second, and lets a future
//! tunnel version be refused cleanly.
//!
//! FIN ↔ FIN and RST ↔ RESET_STREAM/STOP_SENDING, in both directions. Flow control is end to
//! end: a slow consumer stops our reads, the QUIC receive window closes, the producer gateway
//! stops reading, and the producer's window closes.

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
    Connection, ConnectionError, ConnectionHandle, Dir, ReadError, ReadableError, StreamEvent,
    StreamId, Transmit, VarInt, WriteError,
};
use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Sleep;

use super::config::{QuicConfigError, QuicTuning};
use super::driver::{Admission, Driver, DriverEvent};
use super::udp::{self, UdpIo};
use crate::allow::AllowList;
use crate::cores::CorePool;
use crate::engine::{Engine, EngineError, EngineKind, Proxy, ProxySpec, WanSecurity, WanSide};
use crate::kernel::{self, KernelProxy, StreamShared};
use crate::stats::StreamCounters;
use crate::wan_tls::WanTls;

/// First bytes of every tunnel stream: magic and version 1.
pub const PREAMBLE: [u8; 8] = *b"S2QT\x00\x01\x00\x00";

/// Application error codes on the wire.
pub(crate) const CODE_RELEASED: u32 = 0;
/// The other leg reset or failed; the peer resets its leg too.
pub(crate) const CODE_RESET: u32 = 1;
/// The stream did not start with our preamble, or went the wrong way.
pub(crate) const CODE_PROTOCOL: u32 = 2;

/// Tunables of the QUIC engines.
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

/// The `quic` or `quic-relay` engine over a pool of pinned event loops.
#[derive(Debug)]
pub struct QuicEngine {
    pool: Arc<CorePool>,
    options: Arc<QuicOptions>,
    next_loop: AtomicUsize,
    relay: bool,
}

impl QuicEngine {
    /// The TCP↔QUIC tunnel (`quic`).
    pub fn new(pool: Arc<CorePool>, options: QuicOptions) -> Result<Self, super::TuningError> {
        options.tuning.validate()?;
        Ok(Self {
            pool,
            options: Arc::new(options),
            next_loop: AtomicUsize::new(0),
            relay: false,
        })
    }

    /// The QUIC app relay (`quic-relay`).
    pub fn relay(pool: Arc<CorePool>, options: QuicOptions) -> Result<Self, super::TuningError> {
        Ok(Self {
            relay: true,
            ..Self::new(pool, options)?
        })
    }

    pub fn options(&self) -> &QuicOptions {
        &self.options
    }
}

impl From<QuicConfigError> for EngineError {
    fn from(e: QuicConfigError) -> Self {
        EngineError::Unavailable {
            engine: EngineKind::Quic,
            reason: e.to_string(),
        }
    }
}

fn unspecified_like(addr: SocketAddr) -> SocketAddr {
    if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    }
}

/// The ends of one stream's endpoints, before they are registered on their event loop.
struct Planned {
    listener: std::net::TcpListener,
    wan: (std::net::UdpSocket, Driver),
    lan: Option<(std::net::UdpSocket, Driver)>,
    stream: Arc<StreamShared>,
}

impl Engine for QuicEngine {
    fn kind(&self) -> EngineKind {
        if self.relay {
            EngineKind::QuicRelay
        } else {
            EngineKind::Quic
        }
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
        let apps = if self.relay {
            Some(
                WanTls::for_apps(spec.uid.as_bytes()).map_err(|e| EngineError::Unavailable {
                    engine: EngineKind::QuicRelay,
                    reason: format!("the session's app identity: {e}"),
                })?,
            )
        } else {
            None
        };
        let t = &self.options.tuning;
        let server = |tls: &WanTls, allow: &AllowList| server_driver(t, tls, allow);
        let client = |tls: &WanTls| client_driver(t, tls);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel::<()>(1);
        let mut planned = Vec::with_capacity(spec.listeners.len());
        for (index, (listener, target)) in spec.listeners.into_iter().zip(spec.targets).enumerate()
        {
            let err = |source| EngineError::Listener { index, source };
            listener.set_nonblocking(true).map_err(err)?;
            let here = listener.local_addr().map_err(err)?;
            let bind = |at: SocketAddr| {
                let (sock, report) =
                    udp::bind(at, t.udp_buffer, t.force_udp_buffer).map_err(|e| {
                        err(io::Error::new(
                            e.kind(),
                            format!("binding the QUIC UDP socket on {at} failed: {e}"),
                        ))
                    })?;
                report.log(&format!("{} stream {index}", spec.tag));
                Ok::<_, EngineError>(sock)
            };
            // WAN: the producer gateway serves on its listener's UDP twin; the consumer
            // gateway dials from an ephemeral port. LAN (relay): the other way round.
            let (wan, lan) = match spec.wan_side {
                WanSide::Listener => (
                    (bind(here)?, server(tls, &spec.allow)?),
                    match &apps {
                        Some(a) => Some((bind(unspecified_like(target))?, client(a)?)),
                        None => None,
                    },
                ),
                WanSide::Target => (
                    (bind(unspecified_like(target))?, client(tls)?),
                    match &apps {
                        Some(a) => Some((bind(here)?, server(a, &spec.allow)?)),
                        None => None,
                    },
                ),
            };
            planned.push(Planned {
                listener,
                wan,
                lan,
                stream: Arc::new(StreamShared::new(index, target)),
            });
        }
        let streams = planned.iter().map(|p| p.stream.clone()).collect();
        for p in planned {
            let slot = self.next_loop.fetch_add(1, Ordering::Relaxed);
            let (core, handle) = self.pool.handle_for(slot);
            tracing::debug!(session = %spec.tag, stream = p.stream.index, core,
                target = %p.stream.target(), side = ?spec.wan_side, relay = self.relay,
                "starting QUIC stream");
            let ctx = TunnelCtx {
                tag: spec.tag.clone(),
                side: spec.wan_side,
                relay: self.relay,
                allow: spec.allow.clone(),
                options: self.options.clone(),
                stream: p.stream.clone(),
            };
            handle.spawn(run(ctx, p, stop_rx.clone(), done_tx.clone()));
        }
        Ok(Box::new(KernelProxy {
            streams,
            stop: stop_tx,
            done: tokio::sync::Mutex::new(Some((done_tx, done_rx))),
        }))
    }
}

/// A QUIC server endpoint proving `tls`, admitting the sources of `allow` only.
pub(crate) fn server_driver(
    t: &QuicTuning,
    tls: &WanTls,
    allow: &AllowList,
) -> Result<Driver, EngineError> {
    let allow = allow.clone();
    let admit: Admission = Box::new(move |peer: SocketAddr| allow.allows(peer.ip()));
    Ok(Driver::new(
        t.endpoint(),
        Some(t.server(tls)?),
        None,
        admit,
        None,
    ))
}

/// A QUIC client endpoint that proves `tls` and accepts no connections.
pub(crate) fn client_driver(t: &QuicTuning, tls: &WanTls) -> Result<Driver, EngineError> {
    let c = (t.client(tls)?, WanTls::server_name_str().into());
    Ok(Driver::new(
        t.endpoint(),
        None,
        Some(c),
        Box::new(|_| false),
        None,
    ))
}

struct TunnelCtx {
    tag: String,
    side: WanSide,
    relay: bool,
    allow: AllowList,
    options: Arc<QuicOptions>,
    stream: Arc<StreamShared>,
}

async fn run(ctx: TunnelCtx, p: Planned, mut stop: watch::Receiver<bool>, _done: mpsc::Sender<()>) {
    let counters = ctx.stream.counters.clone();
    let registered = (|| {
        let listener = TcpListener::from_std(p.listener)?;
        let wan = Side::new(p.wan)?;
        let lan = p.lan.map(Side::new).transpose()?;
        Ok::<_, io::Error>((listener, wan, lan))
    })();
    let (listener, wan, lan) = match registered {
        Ok(r) => r,
        Err(e) => {
            counters.set_last_error(format!("registering the stream's sockets failed: {e}"));
            return;
        }
    };
    // Only the consumer gateway of the TCP tunnel accepts on its TCP listener; the others hold
    // it so the port stays the session's.
    let accepts = ctx.side == WanSide::Target && !ctx.relay;
    let mut t = Tunnel {
        accept: accepts.then_some(listener),
        ctx,
        wan,
        lan,
        flows: BTreeMap::new(),
        wan_dial: None,
        lan_dial: None,
        waiting: VecDeque::new(),
        timer: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
    };
    let mut rounds = 0u32;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            () = std::future::poll_fn(|cx| t.poll_round(cx)) => {
                rounds = rounds.wrapping_add(1);
                // Let the other streams on this core have their turn.
                if rounds.is_multiple_of(8) {
                    tokio::task::yield_now().await;
                }
            }
        }
    }
    t.shutdown().await;
}

/// One endpoint and its UDP socket.
struct Side {
    driver: Driver,
    udp: UdpIo,
    /// A datagram the socket could not take yet.
    unsent: Option<(Transmit, Vec<u8>)>,
    txbuf: Vec<u8>,
}

impl Side {
    fn new((sock, driver): (std::net::UdpSocket, Driver)) -> io::Result<Self> {
        Ok(Self {
            driver,
            udp: UdpIo::new(sock)?,
            unsent: None,
            txbuf: Vec::new(),
        })
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> bool {
        self.udp.poll_recv(cx, &mut self.driver, 4).is_ready()
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
}

/// Which endpoint of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    Wan,
    Lan,
}

enum LanLeg {
    /// Producer gateway: reading the preamble before reaching the target.
    Preamble {
        got: usize,
    },
    /// Producer gateway, TCP tunnel: dialing the target.
    Dialing(Pin<Box<dyn Future<Output = Result<TcpStream, kernel::ConnError>> + Send>>),
    Tcp(TcpStream),
    /// Producer gateway, app relay: waiting for the QUIC connection to the producer app.
    AwaitStream,
    /// App relay: the app's QUIC stream.
    Quic {
        conn: ConnectionHandle,
        id: StreamId,
    },
}

/// One app connection: its LAN leg and its WAN stream.
struct Flow {
    lan: LanLeg,
    peer: SocketAddr,
    /// Bytes read from the LAN leg that the WAN stream has not taken yet (handed over without a
    /// copy).
    up: Bytes,
    lan_eof: bool,
    wan_fin: bool,
    /// Bytes read from the WAN stream that the LAN leg has not taken yet.
    down: Bytes,
    wan_eof: bool,
    lan_fin: bool,
    _active: Active,
}

impl Flow {
    fn new(lan: LanLeg, peer: SocketAddr, counters: &Arc<StreamCounters>) -> Self {
        Self {
            lan,
            peer,
            up: Bytes::new(),
            lan_eof: false,
            wan_fin: false,
            down: Bytes::new(),
            wan_eof: false,
            lan_fin: false,
            _active: Active::new(counters),
        }
    }

    fn done(&self) -> bool {
        self.lan_eof
            && self.wan_fin
            && self.wan_eof
            && self.lan_fin
            && self.up.is_empty()
            && self.down.is_empty()
    }
}

/// Holds one count in the active-connection gauge.
pub(crate) struct Active(Arc<StreamCounters>);

impl Active {
    pub(crate) fn new(counters: &Arc<StreamCounters>) -> Self {
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

/// A connection we opened, toward the current target.
struct Dial {
    conn: ConnectionHandle,
    remote: SocketAddr,
    connected: bool,
    /// The handshake must finish by then.
    deadline: Instant,
}

/// An app connection on the consumer gateway waiting for its WAN stream.
enum Waiting {
    Tcp(TcpStream, SocketAddr),
    Quic(ConnectionHandle, StreamId, SocketAddr),
}

/// What a flow step decided.
enum Outcome {
    Continue,
    Done,
    /// Reset both legs, recording why.
    Fail(String),
}

pub(crate) fn code(c: u32) -> VarInt {
    VarInt::from_u32(c)
}

/// Resets both directions of a QUIC stream (ignoring streams already gone).
pub(crate) fn reset_stream(conn: &mut Connection, id: StreamId, c: u32) {
    let _ = conn.send_stream(id).reset(code(c));
    let _ = conn.recv_stream(id).stop(code(c));
}

/// What reading a QUIC stream gave.
pub(crate) enum Chunk {
    Data(Bytes),
    /// The peer's FIN (or a stream already read to its end).
    End,
    /// Nothing buffered yet.
    Blocked,
}

/// Reads the next chunk of at most `max` bytes from stream `id`; `Err` when the peer reset it.
pub(crate) fn read_chunk(conn: &mut Connection, id: StreamId, max: usize) -> Result<Chunk, String> {
    let mut recv = conn.recv_stream(id);
    let mut chunks = match recv.read(true) {
        Ok(c) => c,
        Err(ReadableError::ClosedStream) => return Ok(Chunk::End),
        Err(e) => return Err(format!("stream unreadable: {e}")),
    };
    let got = chunks.next(max);
    let _ = chunks.finalize();
    match got {
        Ok(Some(c)) => Ok(Chunk::Data(c.bytes)),
        Ok(None) => Ok(Chunk::End),
        Err(ReadError::Blocked) => Ok(Chunk::Blocked),
        Err(ReadError::Reset(c)) => Err(format!("the peer reset the stream ({c})")),
    }
}

/// Hands `pending` to stream `id` without a copy (`write_chunks` advances it past what it
/// took): `Some(bytes taken)`, `None` when flow control blocks, `Err` when the peer stopped it.
fn write_pending(
    conn: &mut Connection,
    id: StreamId,
    pending: &mut Bytes,
) -> Result<Option<usize>, String> {
    match conn
        .send_stream(id)
        .write_chunks(std::slice::from_mut(pending))
    {
        Ok(w) => Ok(Some(w.bytes)),
        Err(WriteError::Blocked) => Ok(None),
        Err(WriteError::Stopped(c)) => Err(format!("the peer stopped the stream ({c})")),
        Err(WriteError::ClosedStream) => Err("the stream closed".into()),
    }
}

/// Whether a connection ended the ordinary way: released (code 0) by either side.
pub(crate) fn released(reason: &ConnectionError) -> bool {
    matches!(reason, ConnectionError::ApplicationClosed(c) if c.error_code == code(CODE_RELEASED))
        || matches!(reason, ConnectionError::LocallyClosed)
}

/// Refuses a stream the peer opened the wrong way (unidirectional, or from the wrong side) with
/// the protocol code.
pub(crate) fn refuse_stream(conn: &mut Connection, id: StreamId, dir: Dir) {
    let _ = conn.recv_stream(id).stop(code(CODE_PROTOCOL));
    if dir == Dir::Bi {
        let _ = conn.send_stream(id).reset(code(CODE_PROTOCOL));
    }
}

/// Reads what has arrived of a tunnel stream's preamble into `got` (bytes of it seen so far):
/// `Ok(anything read)`, `Err` when the stream is not ours.
pub(crate) fn read_preamble(
    conn: &mut Connection,
    id: StreamId,
    got: &mut usize,
) -> Result<bool, String> {
    let mut moved = false;
    while *got < PREAMBLE.len() {
        match read_chunk(conn, id, PREAMBLE.len() - *got)
            .map_err(|e| format!("before its preamble: {e}"))?
        {
            Chunk::Data(b) => {
                moved = true;
                if b[..] != PREAMBLE[*got..*got + b.len()] {
                    return Err("the stream does not start with the tunnel preamble".into());
                }
                *got += b.len();
            }
            Chunk::End => return Err("the stream ended inside its preamble".into()),
            Chunk::Blocked => break,
        }
    }
    Ok(moved)
}

/// Hands `pending` to stream `id`, then the stream's FIN once `eof`: `Ok(true)` when the caller
/// may read more from its source, `Ok(false)` when the stream is blocked or finished. `moved`
/// is set when anything went into the stream; `count` gets the bytes.
pub(crate) fn drain_into(
    conn: &mut Connection,
    id: StreamId,
    pending: &mut Bytes,
    (eof, fin): (bool, &mut bool),
    moved: &mut bool,
    mut count: impl FnMut(usize),
) -> Result<bool, String> {
    while !pending.is_empty() {
        match write_pending(conn, id, pending)? {
            Some(n) => {
                count(n);
                *moved = true;
            }
            None => return Ok(false),
        }
    }
    if eof {
        if !*fin {
            let _ = conn.send_stream(id).finish();
            *fin = true;
            *moved = true;
        }
        return Ok(false);
    }
    Ok(true)
}

/// Moves bytes from stream `sid` of `src` to stream `did` of `dst`, chunks handed over without
/// a copy; FIN follows the last byte. `Ok(moved)`, or why the pair must be reset.
#[allow(clippy::too_many_arguments)]
fn pump_quic(
    src: &mut Connection,
    sid: StreamId,
    dst: &mut Connection,
    did: StreamId,
    pending: &mut Bytes,
    src_eof: &mut bool,
    dst_fin: &mut bool,
    mut count: impl FnMut(usize),
) -> Result<bool, String> {
    let mut moved = false;
    loop {
        if !drain_into(
            dst,
            did,
            pending,
            (*src_eof, dst_fin),
            &mut moved,
            &mut count,
        )? {
            break;
        }
        match read_chunk(src, sid, usize::MAX)? {
            Chunk::Data(b) => *pending = b,
            Chunk::End => *src_eof = true,
            Chunk::Blocked => break,
        }
        moved = true;
    }
    Ok(moved)
}

struct Tunnel {
    ctx: TunnelCtx,
    wan: Side,
    /// The app relay's LAN endpoint.
    lan: Option<Side>,
    accept: Option<TcpListener>,
    flows: BTreeMap<(ConnectionHandle, StreamId), Flow>,
    /// Consumer gateway: the WAN connection new flows open streams on.
    wan_dial: Option<Dial>,
    /// Producer gateway of the app relay: the LAN connection to the producer app.
    lan_dial: Option<Dial>,
    waiting: VecDeque<Waiting>,
    timer: Pin<Box<Sleep>>,
}

impl Tunnel {
    fn counters(&self) -> &Arc<StreamCounters> {
        &self.ctx.stream.counters
    }

    fn side(&mut self, leg: Leg) -> Option<&mut Side> {
        match leg {
            Leg::Wan => Some(&mut self.wan),
            Leg::Lan => self.lan.as_mut(),
        }
    }

    fn dial_slot(&mut self, leg: Leg) -> &mut Option<Dial> {
        match leg {
            Leg::Wan => &mut self.wan_dial,
            Leg::Lan => &mut self.lan_dial,
        }
    }

    /// One round of I/O; `Ready` when anything moved (the caller polls again), `Pending` when
    /// every source has registered its waker.
    fn poll_round(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut progress = self.wan.poll_recv(cx);
        if let Some(lan) = &mut self.lan {
            progress |= lan.poll_recv(cx);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            self.wan.driver.handle_timeouts(now);
            if let Some(lan) = &mut self.lan {
                lan.driver.handle_timeouts(now);
            }
            progress = true;
        }
        progress |= self.poll_accept(cx);
        progress |= self.handle_events();
        progress |= self.open_waiting();
        progress |= self.pump_flows(cx);
        progress |= self.handle_events();
        self.check_deadlines();
        if let Poll::Ready(sent) = self.wan.flush(cx) {
            progress |= sent;
        }
        if let Some(lan) = &mut self.lan
            && let Poll::Ready(sent) = lan.flush(cx)
        {
            progress |= sent;
        }
        let pending_dial =
            |d: &Option<Dial>| d.as_ref().filter(|d| !d.connected).map(|d| d.deadline);
        let deadline = [
            self.wan.driver.timeout(),
            self.lan.as_mut().and_then(|l| l.driver.timeout()),
            pending_dial(&self.wan_dial),
            pending_dial(&self.lan_dial),
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

    /// Consumer gateway of the TCP tunnel: apps connecting.
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
                    self.waiting.push_back(Waiting::Tcp(tcp, peer));
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
            self.ensure_dial(Leg::Wan);
        }
        progress
    }

    /// A connection on `leg` to the current target (WAN: the producer gateway; LAN: the
    /// producer app), started if there is none.
    fn ensure_dial(&mut self, leg: Leg) {
        let target = self.ctx.stream.target();
        let live = match (
            leg,
            self.dial_slot(leg).as_ref().map(|d| (d.conn, d.remote)),
        ) {
            (_, Some((conn, remote))) if remote == target => self
                .side(leg)
                .is_some_and(|s| s.driver.conn(conn).is_some()),
            _ => false,
        };
        if live {
            return;
        }
        let now = Instant::now();
        let deadline = now + self.ctx.options.connect_timeout;
        let Some(side) = self.side(leg) else { return };
        match side.driver.connect(now, target) {
            Ok(conn) => {
                tracing::debug!(session = %self.ctx.tag, stream = self.ctx.stream.index,
                    %target, ?leg, "opening a QUIC connection");
                *self.dial_slot(leg) = Some(Dial {
                    conn,
                    remote: target,
                    connected: false,
                    deadline,
                });
            }
            Err(e) => self.dial_failed(leg, format!("QUIC connect to {target} failed: {e}")),
        }
    }

    /// The connection on `leg` could not be opened: every app waiting for it is reset.
    fn dial_failed(&mut self, leg: Leg, why: String) {
        tracing::warn!(session = %self.ctx.tag, stream = self.ctx.stream.index, error = %why,
            ?leg, "QUIC connection unavailable; resetting the connections waiting for it");
        self.counters().set_last_error(why);
        match leg {
            Leg::Wan => {
                for w in std::mem::take(&mut self.waiting) {
                    self.reset_waiting(w);
                }
            }
            Leg::Lan => {
                let stuck: Vec<_> = self
                    .flows
                    .iter()
                    .filter(|(_, f)| matches!(f.lan, LanLeg::AwaitStream))
                    .map(|(k, _)| *k)
                    .collect();
                for k in stuck {
                    self.flows.remove(&k);
                    if let Some(c) = self.wan.driver.conn(k.0) {
                        reset_stream(c, k.1, CODE_RESET);
                    }
                }
            }
        }
    }

    fn reset_waiting(&mut self, w: Waiting) {
        match w {
            Waiting::Tcp(tcp, _) => kernel::reset(&tcp),
            Waiting::Quic(conn, id, _) => {
                if let Some(c) = self.lan.as_mut().and_then(|l| l.driver.conn(conn)) {
                    reset_stream(c, id, CODE_RESET);
                }
            }
        }
    }

    fn check_deadlines(&mut self) {
        for leg in [Leg::Wan, Leg::Lan] {
            let Some(d) = self.dial_slot(leg).as_ref() else {
                continue;
            };
            if d.connected || Instant::now() < d.deadline {
                continue;
            }
            let (conn, remote) = (d.conn, d.remote);
            *self.dial_slot(leg) = None;
            if let Some(c) = self.side(leg).and_then(|s| s.driver.conn(conn)) {
                c.close(Instant::now(), code(CODE_RELEASED), Bytes::new());
            }
            self.dial_failed(
                leg,
                format!(
                    "QUIC handshake with {remote} did not finish within {:?}",
                    self.ctx.options.connect_timeout
                ),
            );
        }
    }

    /// Consumer gateway: a WAN stream for every waiting app, while the peer allows more.
    fn open_waiting(&mut self) -> bool {
        let Some(conn_id) = self
            .wan_dial
            .as_ref()
            .filter(|d| d.connected)
            .map(|d| d.conn)
        else {
            return false;
        };
        let mut progress = false;
        while let Some(w) = self.waiting.pop_front() {
            let Some(conn) = self.wan.driver.conn(conn_id) else {
                self.waiting.push_front(w);
                break;
            };
            let Some(id) = conn.streams().open(Dir::Bi) else {
                // The peer's stream limit; an `Available` event brings us back.
                self.waiting.push_front(w);
                break;
            };
            if !matches!(conn.send_stream(id).write(&PREAMBLE), Ok(n) if n == PREAMBLE.len()) {
                reset_stream(conn, id, CODE_PROTOCOL);
                self.reset_waiting(w);
                continue;
            }
            let (lan, peer) = match w {
                Waiting::Tcp(tcp, peer) => (LanLeg::Tcp(tcp), peer),
                Waiting::Quic(conn, id, peer) => (LanLeg::Quic { conn, id }, peer),
            };
            let flow = Flow::new(lan, peer, &self.ctx.stream.counters);
            self.flows.insert((conn_id, id), flow);
            progress = true;
        }
        progress
    }

    fn handle_events(&mut self) -> bool {
        let mut progress = false;
        for leg in [Leg::Wan, Leg::Lan] {
            while let Some(ev) = self.side(leg).and_then(|s| s.driver.poll_event()) {
                progress = true;
                self.handle_event(leg, ev);
            }
        }
        progress
    }

    fn handle_event(&mut self, leg: Leg, ev: DriverEvent) {
        match ev {
            DriverEvent::Accepted { remote, .. } => {
                tracing::debug!(session = %self.ctx.tag, stream = self.ctx.stream.index,
                    %remote, ?leg, "QUIC connection accepted");
            }
            DriverEvent::Refused { remote, reason } => {
                self.counters()
                    .rejected_connections
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(session = %self.ctx.tag, stream = self.ctx.stream.index,
                    %remote, %reason, ?leg, "refused a QUIC connection");
            }
            DriverEvent::Connected { conn } => {
                if let Some(d) = self.dial_slot(leg).as_mut().filter(|d| d.conn == conn) {
                    d.connected = true;
                }
            }
            DriverEvent::Lost { conn, reason } => self.connection_lost(leg, conn, reason),
            DriverEvent::Drained { conn } => {
                if self.dial_slot(leg).as_ref().is_some_and(|d| d.conn == conn) {
                    *self.dial_slot(leg) = None;
                }
            }
            DriverEvent::Stream {
                conn,
                event: StreamEvent::Opened { dir },
            } => self.accept_streams(leg, conn, dir),
            // Readiness is re-checked for every flow in each round.
            DriverEvent::Stream { .. } => {}
        }
    }

    fn connection_lost(&mut self, leg: Leg, conn: ConnectionHandle, reason: ConnectionError) {
        let benign = released(&reason);
        let on_conn = |k: &(ConnectionHandle, StreamId), f: &Flow| match leg {
            Leg::Wan => k.0 == conn,
            Leg::Lan => matches!(f.lan, LanLeg::Quic { conn: c, .. } if c == conn),
        };
        let keys: Vec<_> = self
            .flows
            .iter()
            .filter(|(k, f)| on_conn(k, f))
            .map(|(k, _)| *k)
            .collect();
        if !benign || !keys.is_empty() {
            let why = format!("the {leg:?} QUIC connection ended: {reason}");
            tracing::warn!(session = %self.ctx.tag, stream = self.ctx.stream.index,
                open_streams = keys.len(), error = %why, "QUIC connection lost");
            self.counters().set_last_error(why);
        }
        for k in keys {
            if let Some(flow) = self.flows.remove(&k) {
                self.reset_legs(k, &flow);
            }
        }
        // Apps whose streams were waiting on a lost LAN connection.
        if leg == Leg::Lan {
            self.waiting
                .retain(|w| !matches!(w, Waiting::Quic(c, ..) if *c == conn));
        }
        if self.dial_slot(leg).as_ref().is_some_and(|d| d.conn == conn) {
            let handshake = !self.dial_slot(leg).as_ref().is_some_and(|d| d.connected);
            *self.dial_slot(leg) = None;
            if handshake {
                self.dial_failed(leg, format!("QUIC handshake failed: {reason}"));
            } else if leg == Leg::Wan && !self.waiting.is_empty() {
                self.ensure_dial(Leg::Wan);
            }
        }
    }

    /// Resets whatever legs of `flow` are still there.
    fn reset_legs(&mut self, (wan_conn, wan_id): (ConnectionHandle, StreamId), flow: &Flow) {
        match &flow.lan {
            LanLeg::Tcp(tcp) => kernel::reset(tcp),
            LanLeg::Quic { conn, id } => {
                if let Some(c) = self.lan.as_mut().and_then(|l| l.driver.conn(*conn)) {
                    reset_stream(c, *id, CODE_RESET);
                }
            }
            _ => {}
        }
        if let Some(c) = self.wan.driver.conn(wan_conn) {
            reset_stream(c, wan_id, CODE_RESET);
        }
    }

    /// A peer opened streams on `leg`.
    fn accept_streams(&mut self, leg: Leg, conn_id: ConnectionHandle, dir: Dir) {
        let (side, relay) = (self.ctx.side, self.ctx.relay);
        let counters = self.ctx.stream.counters.clone();
        let Some(s) = self.side(leg) else { return };
        let Some(conn) = s.driver.conn(conn_id) else {
            return;
        };
        let peer = conn.remote_address();
        let mut accepted = Vec::new();
        while let Some(id) = conn.streams().accept(dir) {
            match (leg, side, dir) {
                // The consumer gateway opens the WAN streams; the consumer app opens the LAN
                // streams of the app relay.
                (Leg::Wan, WanSide::Listener, Dir::Bi) => accepted.push(id),
                (Leg::Lan, WanSide::Target, Dir::Bi) if relay => accepted.push(id),
                // Anything else goes the wrong way: unidirectional streams, streams opened
                // by the producer side.
                _ => refuse_stream(conn, id, dir),
            }
        }
        if accepted.is_empty() {
            return;
        }
        if leg == Leg::Wan {
            for id in accepted {
                let flow = Flow::new(LanLeg::Preamble { got: 0 }, peer, &counters);
                self.flows.insert((conn_id, id), flow);
            }
        } else {
            self.waiting.extend(
                accepted
                    .into_iter()
                    .map(|id| Waiting::Quic(conn_id, id, peer)),
            );
            self.ensure_dial(Leg::Wan);
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
                    self.retire_idle(key.0, &flow);
                }
                Outcome::Fail(why) => {
                    progress = true;
                    tracing::debug!(session = %self.ctx.tag, stream = self.ctx.stream.index,
                        peer = %flow.peer, error = %why, "stream failed");
                    self.counters().set_last_error(why);
                    self.reset_legs(key, &flow);
                    self.retire_idle(key.0, &flow);
                }
            }
        }
        progress
    }

    /// Closes connections we opened that are no longer current once their last flow is gone.
    fn retire_idle(&mut self, wan_conn: ConnectionHandle, flow: &Flow) {
        let close = |c: Option<&mut Connection>| {
            if let Some(c) = c {
                c.close(Instant::now(), code(CODE_RELEASED), Bytes::new());
            }
        };
        if self.ctx.side == WanSide::Target
            && self.wan_dial.as_ref().is_none_or(|d| d.conn != wan_conn)
            && !self.flows.keys().any(|k| k.0 == wan_conn)
        {
            close(self.wan.driver.conn(wan_conn));
        }
        if let (WanSide::Listener, LanLeg::Quic { conn, .. }) = (self.ctx.side, &flow.lan) {
            let conn = *conn;
            if self.lan_dial.as_ref().is_none_or(|d| d.conn != conn)
                && !self
                    .flows
                    .values()
                    .any(|f| matches!(f.lan, LanLeg::Quic { conn: c, .. } if c == conn))
            {
                close(self.lan.as_mut().and_then(|l| l.driver.conn(conn)));
            }
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
        // Producer gateway: preamble, then reach the target.
        if let LanLeg::Preamble { got } = &mut flow.lan {
            match self.read_preamble(conn_id, id, got) {
                Err(why) => {
                    if let Some(conn) = self.wan.driver.conn(conn_id) {
                        reset_stream(conn, id, CODE_PROTOCOL);
                    }
                    // Already answered with the protocol code; just drop the flow.
                    self.counters().set_last_error(why);
                    return (Outcome::Done, true);
                }
                Ok(m) => moved |= m,
            }
            if *got < PREAMBLE.len() {
                return (Outcome::Continue, moved);
            }
            moved = true;
            flow.lan = if self.ctx.relay {
                self.ensure_dial(Leg::Lan);
                LanLeg::AwaitStream
            } else {
                LanLeg::Dialing(Box::pin(kernel::dial(
                    self.ctx.stream.target(),
                    self.ctx.options.connect_timeout,
                )))
            };
        }
        if let LanLeg::Dialing(fut) = &mut flow.lan {
            match fut.as_mut().poll(cx) {
                Poll::Pending => return (Outcome::Continue, moved),
                Poll::Ready(Ok(tcp)) => {
                    flow.lan = LanLeg::Tcp(tcp);
                    moved = true;
                }
                Poll::Ready(Err(e)) => return (Outcome::Fail(e.to_string()), true),
            }
        }
        if let LanLeg::AwaitStream = flow.lan {
            // A connection lost since the flow started waiting is dialed again.
            self.ensure_dial(Leg::Lan);
            let Some(lan_conn) = self
                .lan_dial
                .as_ref()
                .filter(|d| d.connected)
                .map(|d| d.conn)
            else {
                return (Outcome::Continue, moved);
            };
            let Some(lid) = self
                .lan
                .as_mut()
                .and_then(|l| l.driver.conn(lan_conn))
                .and_then(|c| c.streams().open(Dir::Bi))
            else {
                return (Outcome::Continue, moved);
            };
            flow.lan = LanLeg::Quic {
                conn: lan_conn,
                id: lid,
            };
            moved = true;
        }
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
        let Some(wan) = self.wan.driver.conn(conn_id) else {
            return (Outcome::Fail("connection gone".into()), moved);
        };
        // The LAN leg is taken out while its bytes move, so the flow's buffers can be lent.
        let lan_leg = std::mem::replace(&mut flow.lan, LanLeg::AwaitStream);
        let result = match &lan_leg {
            LanLeg::Tcp(tcp) => pump_tcp(cx, tcp, wan, id, flow, self.ctx.options.chunk, count),
            LanLeg::Quic { conn, id: lid } => {
                match self.lan.as_mut().and_then(|l| l.driver.conn(*conn)) {
                    None => Err("the LAN connection is gone".into()),
                    Some(lan) => pump_quic(
                        lan,
                        *lid,
                        wan,
                        id,
                        &mut flow.up,
                        &mut flow.lan_eof,
                        &mut flow.wan_fin,
                        |n| count(true, n),
                    )
                    .and_then(|a| {
                        pump_quic(
                            wan,
                            id,
                            lan,
                            *lid,
                            &mut flow.down,
                            &mut flow.wan_eof,
                            &mut flow.lan_fin,
                            |n| count(false, n),
                        )
                        .map(|b| a | b)
                    }),
                }
            }
            _ => Ok(false),
        };
        flow.lan = lan_leg;
        match result {
            Err(why) => (Outcome::Fail(why), true),
            Ok(_) if flow.done() => (Outcome::Done, true),
            Ok(m) => (Outcome::Continue, moved | m),
        }
    }

    /// Reads what has arrived of a WAN stream's preamble into `got`; `Err` when it is not ours.
    fn read_preamble(
        &mut self,
        conn_id: ConnectionHandle,
        id: StreamId,
        got: &mut usize,
    ) -> Result<bool, String> {
        match self.wan.driver.conn(conn_id) {
            Some(conn) => read_preamble(conn, id, got),
            None => Err("connection gone".into()),
        }
    }

    /// Closes every connection (the peers learn at once), flushes the close frames briefly,
    /// and drops every socket.
    async fn shutdown(mut self) {
        let now = Instant::now();
        self.wan
            .driver
            .close_all(now, CODE_RELEASED, b"session released");
        if let Some(lan) = &mut self.lan {
            lan.driver
                .close_all(now, CODE_RELEASED, b"session released");
        }
        for (_, flow) in std::mem::take(&mut self.flows) {
            if let LanLeg::Tcp(tcp) = &flow.lan {
                kernel::reset(tcp);
            }
        }
        for w in std::mem::take(&mut self.waiting) {
            if let Waiting::Tcp(tcp, _) = w {
                kernel::reset(&tcp);
            }
        }
        let _ = tokio::time::timeout(
            Duration::from_millis(100),
            std::future::poll_fn(|cx| {
                let wan = self.wan.flush(cx);
                let lan = self
                    .lan
                    .as_mut()
                    .map_or(Poll::Ready(false), |l| l.flush(cx));
                if wan.is_ready() && lan.is_ready() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }),
        )
        .await;
    }
}

/// Moves bytes between a TCP leg and its WAN stream, both ways. `Ok(moved)`, or why both legs
/// must be reset.
fn pump_tcp(
    cx: &mut Context<'_>,
    tcp: &TcpStream,
    conn: &mut Connection,
    id: StreamId,
    flow: &mut Flow,
    chunk: usize,
    count: impl Fn(bool, usize),
) -> Result<bool, String> {
    let mut moved = false;
    // TCP → QUIC.
    loop {
        let (eof, fin) = (flow.lan_eof, &mut flow.wan_fin);
        if !drain_into(conn, id, &mut flow.up, (eof, fin), &mut moved, |n| {
            count(true, n)
        })? {
            break;
        }
        match tcp.poll_read_ready(cx) {
            Poll::Pending => break,
            Poll::Ready(Err(e)) => return Err(format!("TCP leg: {e}")),
            Poll::Ready(Ok(())) => {}
        }
        let mut buf = BytesMut::with_capacity(chunk);
        match tcp.try_read_buf(&mut buf) {
            Ok(0) => flow.lan_eof = true,
            Ok(_) => flow.up = buf.freeze(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(format!("TCP leg: {e}")),
        }
        moved = true;
    }

    // QUIC → TCP.
    loop {
        if !flow.down.is_empty() {
            match tcp.poll_write_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(e)) => return Err(format!("TCP leg: {e}")),
                Poll::Ready(Ok(())) => {}
            }
            match tcp.try_write(&flow.down) {
                Ok(n) => {
                    flow.down.advance(n);
                    count(false, n);
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("TCP leg: {e}")),
            }
            continue;
        }
        if flow.wan_eof {
            if !flow.lan_fin {
                let _ = SockRef::from(tcp).shutdown(Shutdown::Write);
                flow.lan_fin = true;
                moved = true;
            }
            break;
        }
        match read_chunk(conn, id, chunk)? {
            Chunk::Data(b) => flow.down = b,
            Chunk::End => flow.wan_eof = true,
            Chunk::Blocked => break,
        }
        moved = true;
    }
    Ok(moved)
}
