//! Frames larger than one mbuf, both ways, through the DPDK TCP termination: a `net_tap` port
//! whose mbufs hold 1024 bytes at MTU 1500, with Rx scatter and multi-segment Tx (the shape of
//! a NIC profile that uses small mbufs for jumbo frames). Every full-sized frame arrives as a
//! chain, which the device copies into one buffer for smoltcp, and every full-sized frame the
//! stack sends leaves as a chain.
//!
//! ```text
//!  kernel (s2chain, 10.3.0.1): producer :7000, consumer ── tap ── [DPDK lcore 10.3.0.2:5100 → 10.3.0.1:7000]
//! ```
//! One port carries both legs: the consumer connects to the gateway, which re-originates the
//! connection to the producer on the same tap. Needs root (a private network namespace, the
//! tap device); DPDK from Debian.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::process::Command as Proc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

mod support;
use support::{pattern, producer, require_root, sh, sha256};

use dataplane::AllowList;
use dataplane::dpdk::{Eal, Mempool, Port, PortSetup};
use dataplane::stack::{Command, Lcore, LcoreStats, PortAddr, StackOptions};
use dataplane::stats::StreamCounters;
use nic_profiles::{LcoreLayout, PortSpec, Profile, device_names, eal_args, port_config};

const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 1);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 2);
/// mbuf data room: 128 bytes of headroom and 1024 of data, less than a 1514-byte frame.
const DATA_ROOM: u32 = 128 + 1024;

/// The shipped `tap` profile with small mbufs, scatter and multi-segment Tx.
fn small_mbuf_profile() -> Profile {
    let mut p = Profile::builtin("tap").expect("builtin profile");
    p.mempool.data_room = DATA_ROOM;
    p.offloads.scatter = true;
    p.offloads.multi_seg = true;
    p.validate().expect("the profile validates");
    p
}

#[test]
fn frames_larger_than_one_mbuf_cross_intact_both_ways() {
    require_root();
    // SAFETY: unshare affects only this thread (and threads it spawns later): the tap and the
    // kernel peers live in a namespace that dies with the process.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    sh(&["ip", "link", "set", "lo", "up"]);

    let profile = small_mbuf_profile();
    let specs = vec![
        PortSpec::vdev(
            "lan",
            [("iface", "s2chain")].into_iter().collect(),
            "10.3.0.2/24",
        )
        .expect("port spec"),
    ];
    let mut args = eal_args(&profile, &specs, &LcoreLayout::new(0, vec![1]), &[]).expect("EAL");
    args[0] = "dpdk-chained-test".into();
    let eal = Eal::init(&args).expect("EAL starts");
    let config = port_config(&profile);
    let m = config.mempool;
    let pool = Arc::new(
        Mempool::new("chained", m.mbufs, m.cache, m.data_room, m.numa_node).expect("mempool"),
    );
    let setup = PortSetup::from(&config);
    let name = &device_names(&profile, &specs)[0];
    let mut port = Port::start(name, &setup, Arc::clone(&pool)).expect("port starts");
    assert!(
        port.info()
            .rx_offloads
            .contains(nic_profiles::RxOffload::Scatter),
        "net_tap runs with rx scatter: {:?}",
        port.info()
    );
    // The tap's kernel side: the peers' address, MTU 1500 (the default).
    sh(&["ip", "addr", "add", "10.3.0.1/24", "dev", "s2chain"]);
    sh(&["ip", "link", "set", "s2chain", "up"]);

    let dev = support::queue_device(&mut port, &pool, &config);
    let addr = PortAddr {
        mac: port.mac(),
        ipv4: GATEWAY,
        prefix: 24,
        gateway: None,
    };
    let (commands, commands_rx) = mpsc::channel();
    let stats = Arc::new(LcoreStats::default());
    let lcore = Lcore::new(
        vec![(dev, addr)],
        StackOptions::default(),
        commands_rx,
        Arc::clone(&stats),
        9,
    );
    let (ended_tx, ended) = mpsc::channel();
    let job = eal
        .launch(eal.workers()[0], move || {
            lcore.run();
            let _ = ended_tx.send(());
            0
        })
        .expect("launch the lcore");
    let stop = || {
        let _ = commands.send(Command::Stop);
    };

    // 1. ICMP echo with full-sized frames and a payload pattern: ping compares every reply
    //    byte and reports "wrong data byte" on a mismatch.
    let ping = Proc::new("ping")
        .args([
            "-c", "5", "-i", "0.2", "-W", "2", "-s", "1472", "-p", "a5c3",
        ])
        .arg(GATEWAY.to_string())
        .output()
        .expect("ping runs");
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(ping.status.success(), "ping failed:\n{text}");
    assert!(
        !text.contains("wrong data"),
        "corrupted echo replies:\n{text}"
    );

    // 2. 8 MiB each way over one connection through the lcore, SHA-256 equal.
    let listener = TcpListener::bind((KERNEL, 7000)).expect("producer listens");
    let counters = Arc::new(StreamCounters::default());
    let (done, listening) = mpsc::channel();
    commands
        .send(Command::Listen {
            stream: 1,
            port: 0,
            local_port: 5100,
            target: SocketAddrV4::new(KERNEL, 7000),
            allow: AllowList::any(),
            counters: Arc::clone(&counters),
            done,
        })
        .expect("lcore runs");
    listening
        .recv_timeout(Duration::from_secs(10))
        .expect("lcore answers")
        .expect("listener starts");
    let size = 8 << 20;
    let prod = producer(listener, 1, size);
    let mut s = TcpStream::connect((GATEWAY, 5100)).expect("consumer connects");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = s.try_clone().expect("clone");
    let writer = thread::spawn(move || {
        w.write_all(&pattern(2000, size)).expect("consumer write");
        w.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("consumer read");
    writer.join().expect("writer");
    let at_producer = prod.join().expect("producer");
    stop();
    ended
        .recv_timeout(Duration::from_secs(10))
        .expect("the lcore stops");
    assert_eq!(job.wait(), 0);

    assert_eq!(got.len(), size, "the consumer got every byte");
    assert_eq!(
        sha256(&got),
        sha256(&pattern(1000, size)),
        "producer → consumer"
    );
    assert_eq!(
        at_producer,
        vec![sha256(&pattern(2000, size))],
        "consumer → producer"
    );
    let (linearized, chained) = (
        stats.rx_linearized.load(Ordering::Relaxed),
        stats.tx_chained.load(Ordering::Relaxed),
    );
    // 16 MiB in 1448-byte segments is over 11000 full frames each way.
    assert!(
        linearized > 10_000 && chained > 10_000,
        "full-sized frames went as chains: {linearized} received, {chained} sent"
    );
    assert_eq!(stats.rx_dropped.load(Ordering::Relaxed), 0, "none dropped");
    drop(port);
}
