//! What the DPDK integration tests share: root check, the private namespace with its two veth
//! pairs, deterministic data, a kernel TCP producer.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::process::Command as Proc;
use std::thread;

use std::sync::Arc;

use dataplane::dpdk::{Mempool, Port};
use dataplane::stack::PortDevice;
use nic_profiles::{PortConfig, PortSpec, Profile};

pub(crate) fn sh(args: &[&str]) {
    let out = Proc::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (network namespaces, packet sockets for net_af_packet); run it as \
         root, as CI does"
    );
}

/// Deterministic test data: a keyed byte stream, so corruption, loss and reordering all show.
pub(crate) fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Moves this thread into a new network namespace with two veth pairs at MTU 9000:
/// `lanK` 10.1.0.1/24 ↔ `lanD` and `wanK` 10.2.0.1/24 ↔ `wanD`. The `*D` ends carry no address
/// (the dataplane's `net_af_packet` ports own them); the kernel ends do not offload.
pub(crate) fn enter_netns_with_veths() {
    require_root();
    // SAFETY: unshare affects only this thread (and threads it spawns later): the veths, packet
    // sockets and kernel peers of this test live in a namespace that dies with the process.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    sh(&["ip", "link", "set", "lo", "up"]);
    for (k, d, ip) in [
        ("lanK", "lanD", "10.1.0.1/24"),
        ("wanK", "wanD", "10.2.0.1/24"),
    ] {
        sh(&["ip", "link", "add", k, "type", "veth", "peer", "name", d]);
        sh(&["ip", "link", "set", k, "mtu", "9000", "up"]);
        sh(&["ip", "link", "set", d, "mtu", "9000", "up"]);
        sh(&["ip", "addr", "add", ip, "dev", k]);
        // The kernel peers must send complete checksums and MTU-sized frames: a packet socket
        // on the other end sees what veth carries, partial checksums and 64 KiB GSO frames
        // included.
        sh(&["ethtool", "-K", k, "tx", "off", "tso", "off", "gso", "off"]);
    }
}

/// The shipped `af_packet_jumbo` profile and the two dataplane ports on the `*D` veth ends:
/// `lan` 10.1.0.2/24 on `lanD`, `wan` 10.2.0.2/24 on `wanD`.
pub(crate) fn af_packet_ports() -> (Profile, Vec<PortSpec>) {
    let profile = Profile::builtin("af_packet_jumbo").expect("builtin profile");
    let ports = [
        ("lan", "lanD", "10.1.0.2/24"),
        ("wan", "wanD", "10.2.0.2/24"),
    ]
    .into_iter()
    .map(|(name, iface, ip)| {
        PortSpec::vdev(name, [("iface", iface)].into_iter().collect(), ip).expect("port spec")
    })
    .collect();
    (profile, ports)
}

/// A producer that sends `to_consumer` bytes and hashes what it receives, per connection.
pub(crate) fn producer(
    listener: TcpListener,
    conns: usize,
    to_consumer: usize,
) -> thread::JoinHandle<Vec<Vec<u8>>> {
    thread::spawn(move || {
        let mut handles = Vec::new();
        for i in 0..conns {
            let (mut s, _) = listener.accept().expect("accept");
            handles.push(thread::spawn(move || {
                let data = pattern(1000 + i as u64, to_consumer);
                let mut r = s.try_clone().expect("clone");
                let reader = thread::spawn(move || {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).expect("producer read");
                    got
                });
                s.write_all(&data).expect("producer write");
                s.shutdown(Shutdown::Write).expect("shutdown");
                sha256(&reader.join().expect("reader"))
            }));
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("producer conn"))
            .collect()
    })
}

/// Queue pair 0 of `port` as the stack's device, with the profile's burst and MTU.
pub(crate) fn queue_device(
    port: &mut Port,
    pool: &Arc<Mempool>,
    config: &PortConfig,
) -> PortDevice {
    PortDevice::new(
        port.rx_queue(0).expect("rx queue"),
        port.tx_queue(0).expect("tx queue"),
        Arc::clone(pool),
        config.burst,
        usize::from(config.mtu),
    )
}
