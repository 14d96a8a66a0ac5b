//! The DPDK TCP termination end to end inside one private network namespace: a real EAL,
//! `net_af_packet` vdevs on two veth pairs, kernel TCP peers on the other veth ends.
//!
//! ```text
//!  consumer (kernel, 10.2.0.1) ── wanK|wanD ── [DPDK gateway: 10.2.0.2 │ 10.1.0.2] ── lanD|lanK ── producer (kernel, 10.1.0.1:7000)
//! ```
//! The gateway listens on 10.2.0.2:5100, terminates each connection and re-originates it from
//! 10.1.0.2 to the producer. Needs root (namespaces, packet sockets); DPDK from Debian.
//! All scenarios share one EAL and one gateway (EAL is once per process), so they run in one
//! test, in order.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

mod support;
use support::{pattern, producer, sh, sha256};

use dataplane::AllowList;
use dataplane::dpdk::{Eal, Mempool, Port, PortSetup, tsc_hz};
use dataplane::stack::{Command, Lcore, LcoreStats, PortAddr, StackOptions};
use dataplane::stats::StreamCounters;
use nic_profiles::{LcoreLayout, device_names, eal_args, port_config};

const PRODUCER: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const GW_WAN: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);

struct Gateway {
    commands: mpsc::Sender<Command>,
    stats: Arc<LcoreStats>,
    job: Option<thread::JoinHandle<()>>,
    pool: Arc<Mempool>,
    /// When the lcore loop was launched.
    started: Instant,
    /// Closed after the lcore stopped (Drop below runs before the fields drop).
    _ports: Vec<Port>,
}

impl Drop for Gateway {
    /// On a failed assertion, stop polling before the ports close under the lcore.
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(job) = self.job.take() {
            let _ = job.join();
        }
    }
}

/// Namespace, veths, EAL, ports, and the lcore loop.
fn start_gateway() -> Gateway {
    support::enter_netns_with_veths();

    // The shipped test profile drives everything: EAL arguments, vdevs, port setup, mempool.
    let (profile, specs) = support::af_packet_ports();
    let layout = LcoreLayout::new(0, vec![1]);
    let mut args = eal_args(&profile, &specs, &layout, &[]).expect("EAL arguments");
    args[0] = "dpdk-relay-test".into();
    let eal = Eal::init(&args).expect("EAL starts with the profile's arguments");
    let config = port_config(&profile);
    let m = config.mempool;
    let pool = Arc::new(
        Mempool::new("relay_test", m.mbufs, m.cache, m.data_room, m.numa_node).expect("mempool"),
    );
    let setup = PortSetup::from(&config);
    let mut ports = Vec::new();
    let mut devices = Vec::new();
    for (name, spec) in device_names(&profile, &specs).iter().zip(&specs) {
        let mut port = Port::start(name, &setup, Arc::clone(&pool)).expect("port starts");
        let dev = support::queue_device(&mut port, &pool, &config);
        let addr = PortAddr {
            mac: port.mac(),
            ipv4: spec.ipv4.addr(),
            prefix: spec.ipv4.prefix_len(),
            gateway: spec.gateway,
        };
        devices.push((dev, addr));
        ports.push(port);
    }
    let (tx, rx) = mpsc::channel();
    let stats = Arc::new(LcoreStats::default());
    // Nap when idle, as on shared cores: the kernel peers get the core back, and the cycle
    // counters must still add up to the loop's wall time.
    let options = StackOptions {
        idle_sleep: Some(Duration::from_micros(50)),
        ..StackOptions::default()
    };
    let lcore = Lcore::new(devices, options, rx, Arc::clone(&stats), 7);
    let started = Instant::now();
    let worker = eal.workers()[0];
    let (done_tx, done_rx) = mpsc::channel();
    let launched = eal
        .launch(worker, move || {
            lcore.run();
            let _ = done_tx.send(());
            0
        })
        .expect("launch on the worker lcore");
    // Wait for the lcore from a plain thread so the test can join it later.
    // Wait for the loop's end on a channel first: rte_eal_wait_lcore spins, and a spinning
    // thread would take a core from the kernel peers for the whole test.
    let job = thread::spawn(move || {
        done_rx.recv().expect("lcore loop ended");
        assert_eq!(launched.wait(), 0);
    });
    Gateway {
        commands: tx,
        stats,
        job: Some(job),
        pool,
        started,
        _ports: ports,
    }
}

impl Gateway {
    fn listen(&self, stream: u64, port: u16, target: SocketAddrV4) -> Arc<StreamCounters> {
        self.listen_from(stream, port, target, AllowList::any())
    }

    fn listen_from(
        &self,
        stream: u64,
        port: u16,
        target: SocketAddrV4,
        allow: AllowList,
    ) -> Arc<StreamCounters> {
        let counters = Arc::new(StreamCounters::default());
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(Command::Listen {
                stream,
                port: 1,
                local_port: port,
                target,
                allow,
                counters: Arc::clone(&counters),
                done: tx,
            })
            .expect("lcore is running");
        rx.recv_timeout(Duration::from_secs(10))
            .expect("lcore answers")
            .expect("listener starts");
        counters
    }

    fn close(&self, stream: u64) {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(Command::Close { stream, done: tx })
            .expect("lcore is running");
        rx.recv_timeout(Duration::from_secs(10))
            .expect("stream closed within 10 s");
    }
}

#[test]
fn dpdk_gateway_terminates_and_reoriginates_tcp() {
    let gw = start_gateway();

    // 1. ARP and ICMP echo on the WAN port.
    sh(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.2.0.2"]);

    // 2. Four connections at once, 64 MiB each way, SHA-256 equal at both ends.
    let listener = TcpListener::bind((PRODUCER, 7000)).expect("producer listens");
    let target = SocketAddrV4::new(PRODUCER, 7000);
    let counters = gw.listen(1, 5100, target);
    let size = 64 << 20;
    let conns = 4;
    let prod = producer(listener, conns, size);
    let t0 = Instant::now();
    let consumers: Vec<_> = (0..conns)
        .map(|i| {
            thread::spawn(move || {
                let mut s = TcpStream::connect((GW_WAN, 5100)).expect("consumer connects");
                let data = pattern(2000 + i as u64, size);
                let mut w = s.try_clone().expect("clone");
                let writer = thread::spawn(move || {
                    w.write_all(&data).expect("consumer write");
                    w.shutdown(Shutdown::Write).expect("shutdown");
                });
                let mut got = Vec::new();
                s.read_to_end(&mut got).expect("consumer read");
                writer.join().expect("writer");
                got
            })
        })
        .collect();
    let mut from_producer: Vec<Vec<u8>> = consumers
        .into_iter()
        .map(|c| sha256(&c.join().expect("consumer")))
        .collect();
    let mut at_producer = prod.join().expect("producer");
    let secs = t0.elapsed().as_secs_f64();
    // Connections pair up in accept order, not index order: compare as sets.
    let mut sent_by_producer: Vec<_> = (0..conns)
        .map(|i| sha256(&pattern(1000 + i as u64, size)))
        .collect();
    let mut sent_by_consumer: Vec<_> = (0..conns)
        .map(|i| sha256(&pattern(2000 + i as u64, size)))
        .collect();
    for v in [
        &mut from_producer,
        &mut at_producer,
        &mut sent_by_producer,
        &mut sent_by_consumer,
    ] {
        v.sort();
    }
    assert_eq!(
        from_producer, sent_by_producer,
        "producer → consumer bytes differ"
    );
    assert_eq!(
        at_producer, sent_by_consumer,
        "consumer → producer bytes differ"
    );
    eprintln!(
        "4 × {} MiB each way in {secs:.2} s ({:.2} Gbit/s total)",
        size >> 20,
        (2 * conns * size) as f64 * 8.0 / secs / 1e9
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while counters.active_connections.load(Ordering::Relaxed) != 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let s = counters.snapshot(0);
    assert_eq!(s.bytes_to_target, (conns * size) as u64);
    assert_eq!(s.bytes_from_target, (conns * size) as u64);
    assert_eq!(s.total_connections, conns as u64);
    assert_eq!(s.active_connections, 0, "finished pairs are freed");

    // 3. A target that refuses: the consumer is reset and the stream reports why.
    let refused = gw.listen(2, 5101, SocketAddrV4::new(PRODUCER, 7999));
    // The reset can beat the connecting thread back to user space, so connect() itself may
    // report it.
    let r = TcpStream::connect((GW_WAN, 5101)).and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.read(&mut [0u8; 16])
    });
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "expected a reset from the gateway, got {r:?}"
    );
    let err = refused.snapshot(0).last_error;
    assert!(
        err.contains("10.1.0.1:7999"),
        "last_error names the target: {err:?}"
    );

    // 3b. A source outside the allow-list is reset and counted; the target never sees it.
    let listener = TcpListener::bind((PRODUCER, 7003)).expect("producer listens");
    listener.set_nonblocking(true).expect("nonblocking");
    let allow = AllowList::parse(&["192.0.2.0/24"]).expect("allow-list");
    let guarded = gw.listen_from(5, 5104, SocketAddrV4::new(PRODUCER, 7003), allow);
    let r = TcpStream::connect((GW_WAN, 5104)).and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.read(&mut [0u8; 16])
    });
    // Refused while its handshake is still open, so the RST usually answers the SYN itself.
    assert!(
        matches!(&r, Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused)),
        "expected a reset for a refused source, got {r:?}"
    );
    let g = guarded.snapshot(0);
    assert_eq!((g.rejected_connections, g.total_connections), (1, 0));
    assert!(
        listener.accept().is_err(),
        "the target saw a connection from a refused source"
    );

    // 4. The producer resets mid-stream: the consumer is reset too (not a clean EOF).
    let listener = TcpListener::bind((PRODUCER, 7001)).expect("producer listens");
    gw.listen(3, 5102, SocketAddrV4::new(PRODUCER, 7001));
    let resetter = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.write_all(&pattern(3, 1 << 20)).expect("write");
        thread::sleep(Duration::from_millis(300));
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .expect("linger 0");
        drop(s); // RST
    });
    let mut s = TcpStream::connect((GW_WAN, 5102)).expect("consumer connects");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut got = Vec::new();
    let r = s.read_to_end(&mut got);
    resetter.join().expect("resetter");
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "expected the producer's reset to reach the consumer, got {r:?} after {} bytes",
        got.len()
    );

    // 5. A consumer that stalls: the gateway holds a bounded amount (its socket buffers), the
    // producer is held back by TCP, and after the consumer resumes every byte arrives intact.
    let listener = TcpListener::bind((PRODUCER, 7002)).expect("producer listens");
    let stalled = gw.listen(4, 5103, SocketAddrV4::new(PRODUCER, 7002));
    let big = 256 << 20;
    let prod = producer(listener, 1, big);
    let mut s = TcpStream::connect((GW_WAN, 5103)).expect("consumer connects");
    s.shutdown(Shutdown::Write).expect("nothing to send");
    thread::sleep(Duration::from_secs(2));
    let pool_free = gw.pool.available();
    thread::sleep(Duration::from_secs(1));
    // The gateway's WAN socket send buffer (4 MiB) plus the consumer's kernel receive buffer
    // (tcp_rmem max, 6 MiB by default; its window still creeps open while nobody reads) bound
    // what can leave the producer.
    let held = stalled.snapshot(0).bytes_from_target;
    assert!(
        held <= 16 << 20,
        "{held} bytes moved toward a consumer that has not read for 3 s"
    );
    assert!(
        pool_free > 1024,
        "the stall drained the mbuf pool ({pool_free} left)"
    );
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("consumer resumes");
    assert_eq!(got.len(), big);
    assert_eq!(
        sha256(&got),
        sha256(&pattern(1000, big)),
        "bytes lost or changed after the stall"
    );
    prod.join().expect("producer");

    // 5b. The consumer half-closes first, the producer's last bytes and FIN arrive while the
    // consumer does not read, and it stays away past smoltcp's 10 s TIME-WAIT: the bytes the
    // gateway still held must survive the socket's end.
    let listener = TcpListener::bind((PRODUCER, 7004)).expect("producer listens");
    gw.listen(6, 5105, SocketAddrV4::new(PRODUCER, 7004));
    let tail = 6 << 20;
    let prod = producer(listener, 1, tail);
    let mut s = TcpStream::connect((GW_WAN, 5105)).expect("consumer connects");
    s.shutdown(Shutdown::Write).expect("nothing to send");
    thread::sleep(Duration::from_secs(12));
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("consumer resumes");
    assert_eq!(got.len(), tail, "bytes lost after TIME-WAIT");
    assert_eq!(sha256(&got), sha256(&pattern(1000, tail)));
    prod.join().expect("producer");

    // 6. Close: listener gone (connect is reset), every socket freed.
    for stream in 1..=6 {
        gw.close(stream);
    }
    let r = TcpStream::connect_timeout(&(GW_WAN, 5100).into(), Duration::from_secs(3));
    assert!(r.is_err(), "a closed stream still accepts connections");

    // 7. Stop: the loop ends, ports close, every mbuf is back in the pool.
    let busy = gw.stats.busy_cycles.load(Ordering::Relaxed);
    assert!(busy > 0, "the lcore counted busy cycles");
    gw.commands.send(Command::Stop).expect("stop");
    let mut gw = gw;
    gw.job.take().expect("job").join().expect("lcore job");
    // Busy plus idle cycles (naps included) account for the loop's whole run.
    let ran = gw.started.elapsed().as_secs_f64();
    let counted = (gw.stats.busy_cycles.load(Ordering::Relaxed)
        + gw.stats.idle_cycles.load(Ordering::Relaxed)) as f64
        / tsc_hz() as f64;
    assert!(
        counted > 0.9 * ran && counted <= 1.01 * ran,
        "busy + idle cycles cover {counted:.2} s of the lcore's {ran:.2} s"
    );
    let pool = Arc::clone(&gw.pool);
    drop(gw);
    assert_eq!(pool.available(), pool.size(), "mbufs leaked");
}
