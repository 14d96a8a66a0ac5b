//! The `quic` engine on the DPDK ports, against the kernel-UDP `quic` engine, inside one private
//! network namespace: a real EAL, `net_af_packet` vdevs on two veth pairs, kernel TCP apps.
//!
//! ```text
//!  consumer app ── 127.0.0.1 ── [kernel quic gateway] ── 10.2.0.1 wanK|wanD ── [DPDK quic gateway: 10.2.0.2 │ 10.1.0.2] ── lanD|lanK ── producer (10.1.0.1:7000)
//! ```
//! The DPDK gateway is the producer gateway: the QUIC server on UDP 10.2.0.2:5100 (the twin of
//! its listener), dialling the producer over smoltcp TCP for every tunnelled stream. The kernel
//! gateway is the consumer gateway. So this also proves that the two implementations of the
//! tunnel speak the same protocol. Needs root (namespaces, packet sockets); DPDK from Debian.
//! EAL is once per process, so every scenario runs in one test, in order.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

mod support;
use support::{pattern, producer, sh, sha256};

use dataplane::quic::tunnel::QuicOptions;
use dataplane::stack::{DpdkEngine, DpdkOptions, SharedDpdkEngine, StackOptions};
use dataplane::{
    AllowList, CorePool, Engine, EngineKind, Pinning, Proxy, ProxySpec, QuicEngine, QuicTuning,
    StreamStats, WanSecurity, WanSide, WanTls,
};
use nic_profiles::LcoreLayout;

const PRODUCER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 1), 7000);
const GW_QUIC: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 2, 0, 2), 5100);
const KEY: [u8; 32] = [0x5a; 32];
/// Bytes each way per connection in the bulk round.
const BULK: usize = 32 << 20;

fn options() -> QuicOptions {
    QuicOptions {
        tuning: QuicTuning {
            rtt: Duration::from_millis(1),
            idle_timeout: Duration::from_secs(3),
            keep_alive: Duration::from_secs(1),
            ..QuicTuning::default()
        },
        connect_timeout: Duration::from_secs(5),
        ..QuicOptions::default()
    }
}

/// A kernel socket holding the listener's port on the dataplane address (which the kernel does
/// not have), as `s2cs` does for the DPDK engines.
fn held(addr: SocketAddrV4) -> TcpListener {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.set_freebind_v4(true).expect("IP_FREEBIND");
    s.bind(&SocketAddr::V4(addr).into())
        .expect("bind held port");
    s.listen(16).expect("listen");
    s.into()
}

fn spec(listener: TcpListener, target: SocketAddrV4, side: WanSide, key: &[u8]) -> ProxySpec {
    ProxySpec {
        tag: "dq".into(),
        uid: "uid-dpdk-quic".into(),
        listeners: vec![listener],
        targets: vec![SocketAddr::V4(target)],
        wan_side: side,
        security: WanSecurity::Tls(WanTls::from_secret(key).expect("WAN identity")),
        allow: AllowList::any(),
    }
}

/// Waits until the stream's stats satisfy `f`.
fn wait_stats(p: &dyn Proxy, what: &str, f: impl Fn(&StreamStats) -> bool) -> StreamStats {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = p.stats().remove(0);
        if f(&st) {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {st:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// `conns` consumers through `at`, each sending `n` bytes and reading to the end; the hashes of
/// what they received, or the first failure.
fn consumers(at: SocketAddr, conns: usize, n: usize) -> Result<Vec<Vec<u8>>, String> {
    let handles: Vec<_> = (0..conns)
        .map(|i| {
            thread::spawn(move || -> std::io::Result<Vec<u8>> {
                let mut s = TcpStream::connect(at)?;
                s.set_read_timeout(Some(Duration::from_secs(60)))?;
                let mut w = s.try_clone()?;
                let writer = thread::spawn(move || -> std::io::Result<()> {
                    w.write_all(&pattern(2000 + i as u64, n))?;
                    w.shutdown(Shutdown::Write)
                });
                let mut got = Vec::new();
                s.read_to_end(&mut got)?;
                writer.join().expect("writer")?;
                Ok(sha256(&got))
            })
        })
        .collect();
    handles
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            h.join()
                .expect("consumer")
                .map_err(|e| format!("consumer {i}: {e}"))
        })
        .collect()
}

/// A bulk round of `conns` connections, `n` bytes each way: SHA-256 equal at both ends. A
/// failure shows both gateways' stream stats.
fn round(prod: &TcpListener, at: SocketAddr, conns: usize, n: usize, gws: [&dyn Proxy; 2]) {
    let p = producer(prod.try_clone().expect("clone listener"), conns, n);
    let mut got_by_consumers = consumers(at, conns, n).unwrap_or_else(|e| {
        panic!(
            "{e}\ndpdk gateway: {:?}\nkernel gateway: {:?}",
            gws[0].stats(),
            gws[1].stats()
        )
    });
    let mut got_by_producer = p.join().expect("producer");
    let sent = |base: u64| {
        let mut v: Vec<_> = (0..conns)
            .map(|i| sha256(&pattern(base + i as u64, n)))
            .collect();
        v.sort();
        v
    };
    got_by_consumers.sort();
    got_by_producer.sort();
    assert_eq!(
        got_by_consumers,
        sent(1000),
        "producer -> consumer bytes differ"
    );
    assert_eq!(
        got_by_producer,
        sent(2000),
        "consumer -> producer bytes differ"
    );
}

#[test]
fn quic_tunnel_on_the_dataplane_talks_to_the_kernel_tunnel() {
    support::enter_netns_with_veths();
    let (profile, ports) = support::af_packet_ports();
    let engine = Arc::new(
        DpdkEngine::start(DpdkOptions {
            profile,
            ports,
            layout: LcoreLayout::new(0, vec![1]),
            stream_lcores: Vec::new(),
            stack: StackOptions {
                // The kernel apps and gateway share the two cores with the poller.
                idle_sleep: Some(Duration::from_micros(20)),
                ..StackOptions::default()
            },
        })
        .expect("the dataplane starts"),
    );
    let dp = SharedDpdkEngine::quic(Arc::clone(&engine), options()).expect("QUIC on dpdk");
    assert_eq!(dp.kind(), EngineKind::Quic);
    assert_eq!(
        dp.quic_options().map(|o| o.tuning.max_mtu),
        Some(8972),
        "the datagram bound follows the ports' MTU (9000)"
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    // A plaintext session has no identity to prove: refused before anything listens.
    let mut plain = spec(held(GW_QUIC), PRODUCER, WanSide::Listener, &KEY);
    plain.security = WanSecurity::Plaintext;
    assert!(
        dp.start(plain).is_err(),
        "the QUIC tunnel must refuse a plaintext session"
    );

    let dp_proxy = dp
        .start(spec(held(GW_QUIC), PRODUCER, WanSide::Listener, &KEY))
        .expect("the DPDK producer gateway starts");
    let pool = Arc::new(CorePool::start(&[0], Pinning::Floating).expect("core pool"));
    let kernel = QuicEngine::new(pool, options()).expect("kernel quic engine");
    let local = TcpListener::bind("127.0.0.1:0").expect("consumer gateway listener");
    let at = local.local_addr().unwrap();
    let k_proxy = kernel
        .start(spec(local, GW_QUIC, WanSide::Target, &KEY))
        .expect("the kernel consumer gateway starts");
    let prod = TcpListener::bind(PRODUCER).expect("producer listens");

    // 1. Four connections at once, 32 MiB each way, on one QUIC connection.
    round(&prod, at, 4, BULK, [&*dp_proxy, &*k_proxy]);
    for (who, p) in [("dpdk", &*dp_proxy), ("kernel", &*k_proxy)] {
        let st = wait_stats(p, "exact counters", |s| {
            s.bytes_to_target == 4 * BULK as u64
                && s.bytes_from_target == 4 * BULK as u64
                && s.active_connections == 0
        });
        assert_eq!(st.total_connections, 4, "{who}: {st:?}");
    }

    // 2. Datagrams of garbage at the QUIC port are dropped; the tunnel still works.
    let junk = UdpSocket::bind("10.2.0.1:0").expect("udp");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..300usize {
        let len = 1 + (i * 37) % 1400;
        let mut d: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        if i % 3 == 0 {
            d[0] = 0xc0; // a long header, so the endpoint parses further
        }
        junk.send_to(&d, GW_QUIC).expect("send garbage");
    }
    round(&prod, at, 1, 1 << 20, [&*dp_proxy, &*k_proxy]);

    // 3. A consumer gateway with another key is refused in the handshake: no byte reaches the
    //    producer, the app is cut off.
    let other = TcpListener::bind("127.0.0.1:0").expect("listener");
    let other_at = other.local_addr().unwrap();
    let wrong = kernel
        .start(spec(other, GW_QUIC, WanSide::Target, &[0x33; 32]))
        .expect("the wrong-key gateway starts");
    let mut app = TcpStream::connect(other_at).expect("connect");
    app.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = app.write_all(b"must not arrive");
    let mut buf = [0u8; 64];
    match app.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the app behind the wrong key must be cut off, got {other:?}"),
    }
    let st = wait_stats(&*wrong, "the handshake failure", |s| {
        !s.last_error.is_empty()
    });
    assert!(st.last_error.contains("QUIC"), "{st:?}");
    prod.set_nonblocking(true).unwrap();
    assert!(
        matches!(prod.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
        "the producer was reached through a gateway with the wrong key"
    );
    prod.set_nonblocking(false).unwrap();
    rt.block_on(wrong.release());
    let st = dp_proxy.stats().remove(0);
    assert_eq!(
        st.total_connections, 5,
        "no stream was opened with the wrong key: {st:?}"
    );

    // 4. The consumer gateway vanishes (its link goes down mid-connection): the idle timeout
    //    ends the QUIC connection, and the producer's connection is reset, nothing held.
    let (tx, rx) = std::sync::mpsc::channel();
    let held_prod = prod.try_clone().unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = held_prod.accept().expect("accept");
        let mut hello = [0u8; 5];
        s.read_exact(&mut hello).expect("hello");
        s.write_all(b"world").expect("answer");
        tx.send(()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)
    });
    let mut app = TcpStream::connect(at).expect("connect");
    app.write_all(b"hello").unwrap();
    let mut answer = [0u8; 5];
    app.read_exact(&mut answer)
        .expect("answer through the tunnel");
    rx.recv().unwrap();
    wait_stats(&*dp_proxy, "the open connection", |s| {
        s.active_connections == 1
    });
    sh(&["ip", "link", "set", "wanK", "down"]);
    let st = wait_stats(&*dp_proxy, "the idle timeout", |s| {
        s.active_connections == 0
    });
    assert!(st.last_error.contains("timed out"), "{st:?}");
    let ended = server.join().expect("producer thread");
    assert!(
        matches!(&ended, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "the producer's connection must be reset when the tunnel dies, got {ended:?}"
    );
    // The consumer gateway's end times out too (a stream opened on a connection the other
    // side has forgotten would be answered with a stateless reset).
    wait_stats(&*k_proxy, "the consumer gateway's idle timeout", |s| {
        s.active_connections == 0
    });
    sh(&["ip", "link", "set", "wanK", "up"]);
    drop(app);
    round(&prod, at, 1, 1 << 20, [&*dp_proxy, &*k_proxy]);

    // 5. Release frees the UDP socket: the same port serves a new session at once.
    rt.block_on(dp_proxy.release());
    let again = dp
        .start(spec(held(GW_QUIC), PRODUCER, WanSide::Listener, &KEY))
        .expect("the released port serves again");
    round(&prod, at, 2, 1 << 20, [&*again, &*k_proxy]);
    rt.block_on(again.release());
    rt.block_on(k_proxy.release());
}
