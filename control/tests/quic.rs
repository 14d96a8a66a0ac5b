//! The `quic` engine driven through the control service on loopback: a producer gateway and a
//! consumer gateway with a QUIC WAN leg between them. Bytes both ways, many TCP connections
//! multiplexed on one stream's QUIC connection, small request/response rounds, a stalled
//! consumer (held back, then intact), resets, a wrong key and an unknown peer gateway refused
//! before any data, datagrams of garbage, small UDP buffers, and release freeing every socket.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Client, Harness, consumer, pattern, producer, test_config};
use control::config::Config;

const UID: &str = "uid-quic";

struct Pair {
    prod: Harness,
    cons: Harness,
    pc: Client,
    cc: Client,
    /// The consumer gateway's listener (where consumer apps connect).
    listener: String,
    /// The producer gateway's listener (its UDP twin carries the QUIC connection).
    prod_listener: SocketAddr,
}

impl Pair {
    async fn stream_status(&self, c: &Client) -> control::proto::StreamStatus {
        c.status(UID).await.unwrap().streams[0].clone()
    }

    async fn wait(
        &self,
        prod_side: bool,
        what: &str,
        f: impl Fn(&control::proto::StreamStatus) -> bool,
    ) -> control::proto::StreamStatus {
        let c = if prod_side { &self.pc } else { &self.cc };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let st = self.stream_status(c).await;
            if f(&st) {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {st:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Releases the session on both gateways and checks that every socket of it is gone: the
    /// TCP listeners and the producer gateway's UDP socket can be bound again at once.
    async fn release(self) {
        self.pc.release(UID).await.unwrap();
        self.cc.release(UID).await.unwrap();
        assert!(
            UdpSocket::bind(self.prod_listener).is_ok(),
            "the QUIC UDP socket on {} is still open after release",
            self.prod_listener
        );
        assert!(
            TcpStream::connect(&self.listener).is_err(),
            "listener still open after release"
        );
        assert_eq!(self.prod.gateway.pool.in_use(), 0);
        assert_eq!(self.cons.gateway.pool.in_use(), 0);
        self.prod.stop().await;
        self.cons.stop().await;
    }
}

struct Setup<'a> {
    app: &'a str,
    prod_key: String,
    cons_key: String,
    prod_allowed: Vec<String>,
    tweak: fn(&mut Config),
}

impl<'a> Setup<'a> {
    fn new(app: &'a str) -> Self {
        Self {
            app,
            prod_key: "5a".repeat(32),
            cons_key: "5a".repeat(32),
            prod_allowed: Vec::new(),
            tweak: |_| {},
        }
    }

    async fn start(self) -> Pair {
        let mut pcfg = test_config(2);
        let mut ccfg = test_config(2);
        for c in [&mut pcfg, &mut ccfg] {
            c.engine = "quic".into();
            c.quic_idle_timeout = "6s".into();
            (self.tweak)(c);
        }
        let (prod, cons) = (Harness::start(pcfg).await, Harness::start(ccfg).await);
        let (pc, cc) = (prod.client(None).await, cons.client(None).await);
        let p = pc.open(UID, "PROD", 1, &[self.app]).await;
        let c = cc.open(UID, "CONS", 1, &[]).await;
        let pu = pc
            .update_with(control::proto::UpdateTargets {
                uid: UID.into(),
                role: "PROD".into(),
                remote_listeners: p.prod_listeners.clone(),
                wan_key: self.prod_key,
                allowed_sources: self.prod_allowed,
            })
            .await
            .unwrap();
        assert_eq!(pu.wan_security, "tls");
        cc.update_with(control::proto::UpdateTargets {
            uid: UID.into(),
            role: "CONS".into(),
            remote_listeners: p.listeners.clone(),
            wan_key: self.cons_key,
            ..Default::default()
        })
        .await
        .unwrap();
        Pair {
            prod,
            cons,
            pc,
            cc,
            listener: c.listeners[0].clone(),
            prod_listener: p.listeners[0].parse().unwrap(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_cross_both_ways_and_release_frees_every_socket() {
    let down = pattern(1, 64 << 20);
    let up = pattern(2, 16 << 20);
    let (app, app_thread) = producer(down.clone());
    let pair = Setup::new(&app).start().await;
    let listener = pair.listener.clone();
    let up2 = up.clone();
    let got_down = tokio::task::spawn_blocking(move || consumer(&listener, up2))
        .await
        .unwrap();
    let got_up = app_thread.join().unwrap();
    assert!(got_down == down, "producer→consumer bytes differ");
    assert!(got_up == up, "consumer→producer bytes differ");
    for (c, name) in [(&pair.cc, "consumer"), (&pair.pc, "producer")] {
        let st = pair.stream_status(c).await;
        assert_eq!(st.bytes_from_target, down.len() as u64, "{name}: {st:?}");
        assert_eq!(st.bytes_to_target, up.len() as u64, "{name}: {st:?}");
        assert_eq!(st.total_connections, 1, "{name}: {st:?}");
    }
    pair.wait(true, "the connection to close", |s| {
        s.active_connections == 0
    })
    .await;
    pair.wait(false, "the connection to close", |s| {
        s.active_connections == 0
    })
    .await;
    pair.release().await;
}

/// Eight apps at once on one listener: eight QUIC streams on the stream's one QUIC connection,
/// each carrying its own bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections_share_one_quic_connection_without_mixing_bytes() {
    const N: usize = 8;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = l.local_addr().unwrap().to_string();
    // The producer app answers each connection with the seed the consumer sent, repeated.
    let server = std::thread::spawn(move || {
        let mut handles = Vec::new();
        for _ in 0..N {
            let (mut s, _) = l.accept().unwrap();
            handles.push(std::thread::spawn(move || {
                let mut seed = [0u8; 1];
                s.read_exact(&mut seed).unwrap();
                s.write_all(&pattern(seed[0], 2 << 20)).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).unwrap();
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
    });
    let pair = Setup::new(&app).start().await;
    let mut clients = Vec::new();
    for i in 0..N {
        let listener = pair.listener.clone();
        clients.push(std::thread::spawn(move || {
            let mut s = TcpStream::connect(listener).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(&[i as u8 + 10]).unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            assert!(
                got == pattern(i as u8 + 10, 2 << 20),
                "connection {i} got other bytes"
            );
        }));
    }
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap();
    let st = pair
        .wait(false, "all connections to close", |s| {
            s.active_connections == 0 && s.total_connections == N as u64
        })
        .await;
    assert_eq!(st.bytes_from_target, (N * (2 << 20)) as u64);
    pair.release().await;
}

/// Small writes cross at once in both directions (no Nagle-like holding in the tunnel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_request_response_rounds_cross_without_delay() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = l.local_addr().unwrap().to_string();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).unwrap();
        }
    });
    let pair = Setup::new(&app).start().await;
    let listener = pair.listener.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(listener).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let start = Instant::now();
        for round in 0..50u8 {
            let msg = pattern(round, 16);
            s.write_all(&msg).unwrap();
            let mut echo = [0u8; 16];
            s.read_exact(&mut echo).unwrap();
            assert_eq!(&echo[..], &msg[..], "round {round}");
        }
        // A bound with a wide margin, not a speed target: held-back writes take 200 ms each.
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "50 rounds of 16 bytes took {:?}: the tunnel holds small writes back",
            start.elapsed()
        );
    })
    .await
    .unwrap();
    echo.join().unwrap();
    pair.release().await;
}

/// A consumer that stops reading for 3 s holds the producer back (flow control end to end, so
/// the gateways' memory stays bounded), and then gets every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_holds_the_producer_back_then_gets_every_byte() {
    const TOTAL: usize = 512 << 20;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = l.local_addr().unwrap().to_string();
    let written = Arc::new(AtomicU64::new(0));
    let w2 = written.clone();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        // Read the consumer's byte first: closing with unread bytes would send a reset.
        let mut x = [0u8; 1];
        s.read_exact(&mut x).unwrap();
        let chunk = pattern(5, 1 << 20);
        for _ in 0..TOTAL / chunk.len() {
            s.write_all(&chunk).unwrap();
            w2.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        s.shutdown(Shutdown::Write).unwrap();
    });
    let pair = Setup {
        // Windows of 1 Gbit/s × 20 ms: 2.5 MB per stream.
        tweak: |c| c.quic_bandwidth = "1G".into(),
        ..Setup::new(&app)
    }
    .start()
    .await;
    let listener = pair.listener.clone();
    let written2 = written.clone();
    let reader = std::thread::spawn(move || {
        let mut s = TcpStream::connect(listener).unwrap();
        s.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_secs(3));
        let during_stall = written2.load(Ordering::Relaxed);
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut got = Vec::with_capacity(TOTAL);
        s.read_to_end(&mut got).unwrap();
        (during_stall, got)
    });
    let (during_stall, got) = reader.join().unwrap();
    server.join().unwrap();
    // Socket buffers on four TCP sockets, the QUIC stream window and one read chunk: tens of
    // MiB at most, far from the 512 MiB the producer wanted to write.
    assert!(
        during_stall < 96 << 20,
        "the producer wrote {during_stall} bytes while the consumer read nothing"
    );
    assert_eq!(got.len(), TOTAL);
    let chunk = pattern(5, 1 << 20);
    assert!(got.chunks(1 << 20).all(|c| c == &chunk[..]), "bytes differ");
    pair.release().await;
}

/// A producer that resets its connection: the consumer sees a reset too, after the bytes that
/// were sent before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_reset_reaches_the_consumer_as_a_reset() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = l.local_addr().unwrap().to_string();
    let pair = Setup::new(&app).start().await;
    let listener = pair.listener.clone();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(listener).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"some bytes").unwrap();
        let (mut buf, mut total) = ([0u8; 64], 0);
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Err("clean EOF instead of a reset".to_string()),
                Ok(n) => total += n,
                Err(e) => return Ok((e.kind(), total)),
            }
        }
    });
    let (mut s, _) = tokio::task::spawn_blocking(move || l.accept().unwrap())
        .await
        .unwrap();
    s.write_all(b"hello").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    let (kind, total) = client
        .join()
        .unwrap()
        .expect("the consumer must see a reset");
    assert_eq!(kind, std::io::ErrorKind::ConnectionReset);
    assert_eq!(total, 5);
    let st = pair
        .wait(false, "the reset to be recorded", |s| {
            s.active_connections == 0 && !s.last_error.is_empty()
        })
        .await;
    assert!(st.last_error.contains("reset"), "{}", st.last_error);
    pair.release().await;
}

/// A consumer app through `pair` when the WAN leg cannot be opened: it is reset, with no bytes.
async fn assert_consumer_refused(pair: &Pair) {
    let listener = pair.listener.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(listener)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.write_all(b"must not reach the producer")?;
        let mut got = Vec::new();
        s.read_to_end(&mut got)?;
        Ok::<_, std::io::Error>(got.len())
    })
    .await
    .unwrap();
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the consumer must be reset: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_before_any_data() {
    let app = TcpListener::bind("127.0.0.1:0").unwrap();
    app.set_nonblocking(true).unwrap();
    let app_addr = app.local_addr().unwrap().to_string();
    let pair = Setup {
        cons_key: "a5".repeat(32),
        ..Setup::new(&app_addr)
    }
    .start()
    .await;
    assert_consumer_refused(&pair).await;
    let st = pair
        .wait(false, "the handshake failure", |s| !s.last_error.is_empty())
        .await;
    assert!(st.last_error.contains("handshake"), "{}", st.last_error);
    let prod = pair.stream_status(&pair.pc).await;
    assert_eq!(prod.total_connections, 0, "{prod:?}");
    assert_eq!(prod.bytes_to_target, 0);
    assert!(app.accept().is_err(), "the producer app saw a connection");
    pair.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_peer_gateway_is_refused_before_any_data() {
    let app = TcpListener::bind("127.0.0.1:0").unwrap();
    app.set_nonblocking(true).unwrap();
    let app_addr = app.local_addr().unwrap().to_string();
    let pair = Setup {
        prod_allowed: vec!["192.0.2.0/24".into()],
        ..Setup::new(&app_addr)
    }
    .start()
    .await;
    assert_consumer_refused(&pair).await;
    let prod = pair
        .wait(true, "the refusal", |s| s.rejected_connections >= 1)
        .await;
    assert_eq!(prod.total_connections, 0, "{prod:?}");
    assert!(app.accept().is_err(), "the producer app saw a connection");
    pair.release().await;
}

/// Random datagrams at the producer gateway's QUIC port while a transfer runs: they are
/// dropped and the transfer is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_do_not_disturb_a_transfer() {
    let down = pattern(3, 64 << 20);
    let (app, app_thread) = producer(down.clone());
    let pair = Setup::new(&app).start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, target) = (stop.clone(), pair.prod_listener);
    let noise = std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut sent = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            let mut junk = vec![0u8; 1 + (x % 1400) as usize];
            for b in junk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            // A long-header-looking first byte half the time, so the endpoint parses further.
            if x & 1 == 0 {
                junk[0] = 0xc0 | (junk[0] & 0x0f);
            }
            let _ = sock.send_to(&junk, target);
            sent += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        sent
    });
    let listener = pair.listener.clone();
    let got = tokio::task::spawn_blocking(move || consumer(&listener, b"up".to_vec()))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let sent = noise.join().unwrap();
    assert!(sent > 100, "only {sent} garbage datagrams were sent");
    assert!(got == down, "bytes differ");
    assert_eq!(app_thread.join().unwrap(), b"up");
    pair.release().await;
}

/// Log lines written by `tracing` on this thread (the gateways are built on the test's thread).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// UDP buffers left at what `rmem_max` allows: the engine warns, with the fix, and still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unforced_udp_buffers_below_the_configured_size_are_warned_and_still_work() {
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .expect("rmem_max")
        .trim()
        .parse()
        .expect("rmem_max is a number");
    assert!(
        rmem_max < 256 << 20,
        "this test asks for 256 MiB UDP buffers without SO_RCVBUFFORCE and expects rmem_max \
         ({rmem_max}) to cap them"
    );
    let down = pattern(4, 32 << 20);
    let (app, app_thread) = producer(down.clone());
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let pair = Setup {
        tweak: |c| {
            c.quic_udp_force = false;
            c.quic_udp_buffer = "256M".into();
        },
        ..Setup::new(&app)
    }
    .start()
    .await;
    drop(guard);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let warned = logs
        .lines()
        .filter(|l| {
            l.contains("WARN")
                && l.contains("QUIC UDP buffers are smaller than configured")
                && l.contains(&format!("rmem_max={rmem_max}"))
                && l.contains("net.core.rmem_max=268435456")
        })
        .count();
    assert_eq!(warned, 2, "one warning per gateway, with the fix:\n{logs}");
    let listener = pair.listener.clone();
    let got = tokio::task::spawn_blocking(move || consumer(&listener, Vec::new()))
        .await
        .unwrap();
    assert!(got == down, "bytes differ");
    app_thread.join().unwrap();
    pair.release().await;
}
