//! The driver under a virtual clock: two endpoints joined by an in-memory link with delay,
//! seeded loss, reordering and a path MTU. Nothing here touches a socket or the real clock, so
//! every run is the same run.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use quinn_proto::{ConnectionError, ConnectionHandle, Dir, StreamEvent, StreamId, VarInt};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::config::QuicTuning;
use super::driver::{Driver, DriverEvent};
use crate::wan_tls::WanTls;

#[derive(Clone, Copy)]
struct LinkSpec {
    delay: Duration,
    loss: f64,
    /// Share of datagrams held back an extra `delay` (so later ones overtake them).
    reorder: f64,
    /// Largest datagram the path carries; bigger ones vanish (as on a real path without
    /// fragmentation).
    mtu: usize,
}

impl Default for LinkSpec {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(5),
            loss: 0.0,
            reorder: 0.0,
            mtu: 1500,
        }
    }
}

struct InFlight {
    at: Instant,
    to_server: bool,
    data: BytesMut,
}

struct Pair {
    now: Instant,
    client: Driver,
    server: Driver,
    client_addr: SocketAddr,
    server_addr: SocketAddr,
    link: LinkSpec,
    rng: StdRng,
    wire: VecDeque<InFlight>,
    /// Datagrams the link lost at random.
    dropped: u64,
    /// Datagrams larger than the path MTU (path MTU probes, mostly).
    too_big: u64,
    /// Events not consumed by `run_until`, per side.
    client_events: Vec<DriverEvent>,
    server_events: Vec<DriverEvent>,
}

fn tuning() -> QuicTuning {
    QuicTuning {
        idle_timeout: Duration::from_secs(3),
        keep_alive: Duration::from_secs(1),
        ..QuicTuning::default()
    }
}

impl Pair {
    fn new(link: LinkSpec, client_secret: &[u8], server_secret: &[u8], t: &QuicTuning) -> Self {
        Self::with_admission(link, client_secret, server_secret, t, Box::new(|_| true))
    }

    fn with_admission(
        link: LinkSpec,
        client_secret: &[u8],
        server_secret: &[u8],
        t: &QuicTuning,
        admit: super::driver::Admission,
    ) -> Self {
        let ctls = WanTls::from_secret(client_secret).unwrap();
        let stls = WanTls::from_secret(server_secret).unwrap();
        let client = Driver::new(
            t.endpoint(),
            None,
            Some((t.client(&ctls).unwrap(), WanTls::server_name_str().into())),
            Box::new(|_| false),
            Some([1; 32]),
        );
        let server = Driver::new(
            t.endpoint(),
            Some(t.server(&stls).unwrap()),
            None,
            admit,
            Some([2; 32]),
        );
        Self {
            now: Instant::now(),
            client,
            server,
            client_addr: "10.0.0.1:40000".parse().unwrap(),
            server_addr: "10.0.0.2:5100".parse().unwrap(),
            link,
            rng: StdRng::seed_from_u64(7),
            wire: VecDeque::new(),
            dropped: 0,
            too_big: 0,
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    fn connect(&mut self) -> ConnectionHandle {
        self.client.connect(self.now, self.server_addr).unwrap()
    }

    /// Puts every pending datagram of both sides on the wire.
    fn transmit(&mut self) {
        let mut buf = Vec::new();
        for to_server in [true, false] {
            loop {
                let side = if to_server {
                    &mut self.client
                } else {
                    &mut self.server
                };
                let Some(t) = side.poll_transmit(self.now, 10, &mut buf) else {
                    break;
                };
                let seg = t.segment_size.unwrap_or(t.size);
                for chunk in buf[..t.size].chunks(seg) {
                    if chunk.len() > self.link.mtu {
                        self.too_big += 1;
                        continue;
                    }
                    if self.rng.random_bool(self.link.loss) {
                        self.dropped += 1;
                        continue;
                    }
                    let mut at = self.now + self.link.delay;
                    if self.rng.random_bool(self.link.reorder) {
                        at += self.link.delay;
                    }
                    self.wire.push_back(InFlight {
                        at,
                        to_server,
                        data: BytesMut::from(chunk),
                    });
                }
            }
        }
    }

    /// Delivers the datagrams that are due.
    fn deliver(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|d| d.at <= now);
        self.wire = later.into();
        for d in due {
            if d.to_server {
                self.server
                    .handle_datagram(now, self.client_addr, None, None, d.data);
            } else {
                self.client
                    .handle_datagram(now, self.server_addr, None, None, d.data);
            }
        }
    }

    /// Advances the virtual clock to the next delivery or timer.
    fn advance(&mut self) -> bool {
        let next = [
            self.wire.iter().map(|d| d.at).min(),
            self.client.timeout(),
            self.server.timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { return false };
        self.now = self.now.max(next);
        self.client.handle_timeouts(self.now);
        self.server.handle_timeouts(self.now);
        true
    }

    /// Runs the pair, handing every event to `app` (with `true` for the client side), until
    /// `app` returns true or `limit` of virtual time passes.
    fn run_until(
        &mut self,
        limit: Duration,
        mut app: impl FnMut(&mut Self, bool, Option<&DriverEvent>) -> bool,
    ) -> bool {
        let end = self.now + limit;
        loop {
            self.deliver();
            let mut done = false;
            while let Some(ev) = self.client.poll_event() {
                done |= app(self, true, Some(&ev));
                self.client_events.push(ev);
            }
            while let Some(ev) = self.server.poll_event() {
                done |= app(self, false, Some(&ev));
                self.server_events.push(ev);
            }
            // The application may have written; give it a turn without an event too.
            done |= app(self, true, None);
            if done {
                return true;
            }
            self.transmit();
            if self.now >= end || !self.advance() {
                return false;
            }
        }
    }
}

impl Pair {
    /// Runs until the client's connection is lost (or `limit` passes); why it was lost.
    fn client_lost(&mut self, limit: Duration) -> Option<ConnectionError> {
        let mut lost = None;
        self.run_until(limit, |_, client, ev| {
            if let (true, Some(DriverEvent::Lost { reason, .. })) = (client, ev) {
                lost = Some(reason.clone());
            }
            lost.is_some()
        });
        lost
    }
}

/// A stream transfer: the client sends `len` pattern bytes then FIN on one bidi stream; the
/// server checks every byte and the FIN.
struct Transfer {
    len: usize,
    sent: usize,
    client_conn: Option<ConnectionHandle>,
    client_stream: Option<StreamId>,
    server_stream: Option<(ConnectionHandle, StreamId)>,
    received: usize,
    fin: bool,
    corrupt: bool,
}

fn pattern(offset: usize) -> u8 {
    (offset.wrapping_mul(2_654_435_761) >> 13) as u8
}

impl Transfer {
    fn new(len: usize) -> Self {
        Self {
            len,
            sent: 0,
            client_conn: None,
            client_stream: None,
            server_stream: None,
            received: 0,
            fin: false,
            corrupt: false,
        }
    }

    fn on_event(&mut self, pair: &mut Pair, client: bool, ev: Option<&DriverEvent>) -> bool {
        match (client, ev) {
            (true, Some(DriverEvent::Connected { conn })) => {
                self.client_conn = Some(*conn);
                self.client_stream = pair.client.conn(*conn).unwrap().streams().open(Dir::Bi);
            }
            (
                false,
                Some(DriverEvent::Stream {
                    conn,
                    event: StreamEvent::Opened { dir: Dir::Bi },
                }),
            ) => {
                let id = pair.server.conn(*conn).unwrap().streams().accept(Dir::Bi);
                self.server_stream = id.map(|id| (*conn, id));
            }
            _ => {}
        }
        self.write(pair);
        self.read(pair);
        self.fin
    }

    fn write(&mut self, pair: &mut Pair) {
        let (Some(conn), Some(id)) = (self.client_conn, self.client_stream) else {
            return;
        };
        let Some(conn) = pair.client.conn(conn) else {
            return;
        };
        let mut send = conn.send_stream(id);
        while self.sent < self.len {
            let n = (self.len - self.sent).min(16 << 10);
            let chunk: Vec<u8> = (self.sent..self.sent + n).map(pattern).collect();
            match send.write(&chunk) {
                Ok(w) => self.sent += w,
                Err(_) => return,
            }
        }
        if self.sent == self.len {
            let _ = send.finish();
            self.sent += 1;
        }
    }

    fn read(&mut self, pair: &mut Pair) {
        let Some((conn, id)) = self.server_stream else {
            return;
        };
        let Some(conn) = pair.server.conn(conn) else {
            return;
        };
        let mut recv = conn.recv_stream(id);
        let Ok(mut chunks) = recv.read(true) else {
            return;
        };
        loop {
            match chunks.next(usize::MAX) {
                Ok(Some(chunk)) => {
                    for (i, b) in chunk.bytes.iter().enumerate() {
                        if *b != pattern(chunk.offset as usize + i) {
                            self.corrupt = true;
                        }
                    }
                    assert_eq!(chunk.offset as usize, self.received, "ordered read");
                    self.received += chunk.bytes.len();
                }
                Ok(None) => {
                    self.fin = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let _ = chunks.finalize();
    }
}

fn transfer(pair: &mut Pair, len: usize, limit: Duration) -> Transfer {
    let mut t = Transfer::new(len);
    pair.connect();
    let done = pair.run_until(limit, |p, client, ev| t.on_event(p, client, ev));
    assert!(
        done,
        "transfer did not finish: {} of {len} bytes",
        t.received
    );
    assert!(!t.corrupt, "corrupt bytes");
    assert_eq!(t.received, len);
    t
}

#[test]
fn bytes_cross_a_clean_link_intact() {
    let mut pair = Pair::new(LinkSpec::default(), b"k", b"k", &tuning());
    let t = transfer(&mut pair, 8 << 20, Duration::from_secs(30));
    assert_eq!(pair.dropped, 0);
    // Only path MTU probes beyond the 1500-byte path were lost, and nothing was resent for
    // anything else.
    let stats = pair.client.conn(t.client_conn.unwrap()).unwrap().stats();
    assert_eq!(stats.path.lost_packets, 0);
    assert!(pair.too_big > 0);
}

#[test]
fn loss_delay_and_reordering_are_repaired() {
    let link = LinkSpec {
        delay: Duration::from_millis(20),
        loss: 0.03,
        reorder: 0.1,
        ..LinkSpec::default()
    };
    let mut pair = Pair::new(link, b"k", b"k", &tuning());
    let t = transfer(&mut pair, 4 << 20, Duration::from_secs(120));
    assert!(
        pair.dropped > 50,
        "the link lost only {} datagrams",
        pair.dropped
    );
    let stats = pair.client.conn(t.client_conn.unwrap()).unwrap().stats();
    assert!(stats.path.lost_packets > 0);
}

#[test]
fn a_rate_cap_holds_the_connection_to_the_rate() {
    const LEN: usize = 4 << 20;
    const RATE: u64 = 50_000_000;
    // Virtual time from connect to the last byte, with and without the cap.
    let run = |rate_bps: Option<u64>| {
        let t = QuicTuning {
            rate_bps,
            ..tuning()
        };
        let mut pair = Pair::new(LinkSpec::default(), b"k", b"k", &t);
        let start = pair.now;
        transfer(&mut pair, LEN, Duration::from_secs(60));
        pair.now - start
    };
    let free = run(None);
    let capped = run(Some(RATE));
    let at_rate = Duration::from_secs_f64(LEN as f64 * 8.0 / RATE as f64);
    assert!(
        capped >= at_rate.mul_f64(0.9),
        "{LEN} bytes took {capped:?} under a {RATE} bit/s cap, faster than the cap allows \
         ({at_rate:?})"
    );
    assert!(
        capped <= at_rate.mul_f64(1.5),
        "{LEN} bytes took {capped:?} under a {RATE} bit/s cap; at the rate: {at_rate:?}"
    );
    assert!(
        free * 3 < capped,
        "without the cap the transfer took {free:?}, with it {capped:?}: the link, not the cap, \
         set the pace"
    );
}

#[test]
fn path_mtu_discovery_finds_jumbo_frames_and_respects_small_paths() {
    for (path_mtu, lo, hi) in [(8972, 8000, 8972), (1400, 1200, 1400)] {
        let link = LinkSpec {
            mtu: path_mtu,
            ..LinkSpec::default()
        };
        let mut pair = Pair::new(link, b"k", b"k", &tuning());
        let t = transfer(&mut pair, 16 << 20, Duration::from_secs(60));
        let mtu = pair
            .client
            .conn(t.client_conn.unwrap())
            .unwrap()
            .current_mtu();
        assert!(
            (lo..=hi).contains(&usize::from(mtu)),
            "path MTU {path_mtu}: discovered {mtu}, expected {lo}..={hi}"
        );
    }
}

#[test]
fn a_wrong_key_is_refused_before_any_stream() {
    let mut pair = Pair::new(LinkSpec::default(), b"right", b"wrong", &tuning());
    pair.connect();
    let lost = pair.client_lost(Duration::from_secs(10));
    let reason = lost.expect("the client connection must fail");
    assert!(
        matches!(
            reason,
            ConnectionError::TransportError(_) | ConnectionError::ConnectionClosed(_)
        ),
        "{reason:?}"
    );
    assert!(
        !pair.server_events.iter().any(|e| matches!(
            e,
            DriverEvent::Connected { .. } | DriverEvent::Stream { .. }
        )),
        "the server must not complete a handshake with a wrong key"
    );
}

#[test]
fn a_source_outside_the_admission_check_is_refused() {
    let mut pair = Pair::with_admission(
        LinkSpec::default(),
        b"k",
        b"k",
        &tuning(),
        Box::new(|remote| remote.ip().to_string() == "10.9.9.9"),
    );
    pair.connect();
    let lost = pair.client_lost(Duration::from_secs(10));
    match lost {
        Some(ConnectionError::ConnectionClosed(c)) => {
            assert_eq!(
                c.error_code,
                quinn_proto::TransportErrorCode::CONNECTION_REFUSED
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        pair.server_events.as_slice(),
        [DriverEvent::Refused { .. }]
    ));
    assert_eq!(pair.server.connections(), 0);
}

#[test]
fn a_vanished_peer_times_out_and_its_state_is_freed() {
    let mut pair = Pair::new(LinkSpec::default(), b"k", b"k", &tuning());
    pair.connect();
    assert!(
        pair.run_until(Duration::from_secs(5), |_, client, ev| client
            && matches!(ev, Some(DriverEvent::Connected { .. })))
    );
    // Keep-alives hold an idle connection open well past the idle timeout.
    let start = pair.now;
    pair.run_until(Duration::from_secs(10), |_, _, _| false);
    assert_eq!(
        pair.client.connections(),
        1,
        "keep-alive must hold the connection"
    );
    assert!(pair.now - start >= Duration::from_secs(10));
    // The server vanishes: everything toward it is lost.
    pair.link.loss = 1.0;
    let start = pair.now;
    let lost = pair.client_lost(Duration::from_secs(30));
    let waited = pair.now - start;
    assert_eq!(lost, Some(ConnectionError::TimedOut));
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(10),
        "timed out after {waited:?}"
    );
    // Its state is freed, at once or after the drain period.
    if pair.client.connections() > 0 {
        pair.run_until(Duration::from_secs(5), |_, client, ev| {
            client && matches!(ev, Some(DriverEvent::Drained { .. }))
        });
    }
    assert_eq!(pair.client.connections(), 0);
}

#[test]
fn garbage_datagrams_do_not_disturb_a_transfer() {
    let mut pair = Pair::new(LinkSpec::default(), b"k", b"k", &tuning());
    let mut rng = StdRng::seed_from_u64(99);
    let mut t = Transfer::new(2 << 20);
    pair.connect();
    let mut rounds = 0u32;
    let done = pair.run_until(Duration::from_secs(30), |p, client, ev| {
        rounds += 1;
        if rounds.is_multiple_of(3) {
            for _ in 0..4 {
                let len = rng.random_range(1..1500);
                let mut junk = vec![0u8; len];
                rng.fill_bytes(&mut junk);
                let now = p.now;
                let from = p.client_addr;
                p.server
                    .handle_datagram(now, from, None, None, BytesMut::from(&junk[..]));
                let from = p.server_addr;
                p.client
                    .handle_datagram(now, from, None, None, BytesMut::from(&junk[..]));
            }
        }
        t.on_event(p, client, ev)
    });
    assert!(done && !t.corrupt && t.received == 2 << 20);
    assert_eq!(pair.server.connections(), 1);
}

#[test]
fn close_all_ends_the_peer_connection_with_our_code() {
    let mut pair = Pair::new(LinkSpec::default(), b"k", b"k", &tuning());
    pair.connect();
    assert!(
        pair.run_until(Duration::from_secs(5), |_, client, ev| !client
            && matches!(ev, Some(DriverEvent::Connected { .. })))
    );
    let now = pair.now;
    pair.server.close_all(now, 7, b"released");
    let lost = pair.client_lost(Duration::from_secs(5));
    match lost {
        Some(ConnectionError::ApplicationClosed(c)) => {
            assert_eq!(c.error_code, VarInt::from_u32(7));
            assert_eq!(&c.reason[..], b"released");
        }
        other => panic!("{other:?}"),
    }
}
