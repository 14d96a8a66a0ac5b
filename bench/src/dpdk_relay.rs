//! `s2bench dpdk-relay`: TCP goodput through one gateway lcore's smoltcp termination over
//! `net_memif` at MTU 9000, beside the ceiling of the same memif links without TCP, in one run.
//!
//! ```text
//!  producer (smoltcp, lcore 0) ─ memif A ─ [gateway lcore 1: LAN 10.1.0.1 │ WAN 10.2.0.1] ─ memif B ─ consumer (smoltcp, lcore 0)
//! ```
//! - **ceiling**: lcore 0 sends 9014-byte frames into link A and counts what arrives from
//!   link B; lcore 1 forwards A → B (RX burst, TX burst, nothing else). Each memif crossing
//!   copies the frame twice (into the ring, out of it), the same copies the relay pays.
//! - **relay**: lcore 1 runs the gateway's `Lcore` (the `dpdk` engine's loop): it terminates
//!   the producer's TCP connection on its LAN port and re-originates it on its WAN port. The
//!   producer and the consumer are smoltcp stacks polled by lcore 0; the consumer checks every
//!   byte against the producer's pattern.
//! - **latency** and **latency-direct**: 64-byte messages 1 ms apart, stamped at the producer,
//!   through the gateway and over one memif link without it (the consumer on the gateway's LAN
//!   port); the difference is what the gateway adds (its link and its lcore), on polling cores.
//!
//! Both ends of each link are in this one process (memif across processes crashed DPDK 22.11's
//! server here; `nic-profiles/profiles/memif.toml`). The peers share lcore 0, so when the
//! gateway lcore is not busy all the time the peers set the rate; the report gives the gateway's
//! busy share and its goodput per busy lcore. EAL is once per process: each phase is a child.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use dataplane::AllowList;
use dataplane::dpdk::{Eal, Mbuf, Mempool, Port, PortSetup, TxQueue};
use dataplane::stack::{
    Command as LcoreCommand, Lcore, LcoreStats, PortAddr, PortDevice, StackOptions,
};
use dataplane::stats::StreamCounters;
use serde::{Deserialize, Serialize};
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address};

/// IP MTU of every port; frames are 14 bytes longer.
const MTU: usize = 9000;
const FRAME: usize = MTU + 14;
const BURST: u16 = 32;
/// mbuf data room: a whole jumbo frame in one segment after the 128-byte headroom.
const DATA_ROOM: u16 = 128 + 9216;
const GW_LAN: Ipv4Address = Ipv4Address::new(10, 1, 0, 1);
const PRODUCER: Ipv4Address = Ipv4Address::new(10, 1, 0, 2);
const GW_WAN: Ipv4Address = Ipv4Address::new(10, 2, 0, 1);
const CONSUMER: Ipv4Address = Ipv4Address::new(10, 2, 0, 2);
const LISTEN_PORT: u16 = 5000;
const CONSUMER_PORT: u16 = 6000;
/// The pattern's period: not a power of two, so data moved by a power-of-two offset shows.
const PERIOD: usize = 1_048_573;

#[derive(Debug, Serialize, Deserialize)]
struct Phase {
    /// Payload bytes the receiver counted in the measured interval.
    bytes: u64,
    secs: f64,
    gbps: f64,
    /// Share of the gateway lcore's rounds that moved something (relay only; the ceiling's
    /// forwarder spins without counting).
    gateway_busy: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Latency {
    /// Messages measured (after the warm-up).
    messages: usize,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    mtu: usize,
    ceiling: Phase,
    relay: Phase,
    relay_vs_ceiling: f64,
    /// Relay goodput divided by the gateway lcore's busy share: what one busy lcore carries.
    relay_gbps_per_busy_lcore: f64,
    /// One-way latency at light load through the gateway, and over one link without it.
    latency_gateway: Latency,
    latency_direct: Latency,
    /// What the gateway adds (its link and its lcore): gateway p50 − direct p50.
    latency_added_p50_us: f64,
    latency_added_p99_us: f64,
}

/// The parent: one child per phase, then the table.
pub(crate) fn run(secs: u64, bytes: u64, out: Option<&std::path::Path>) -> Result<()> {
    let ceiling: Phase = child_phase("ceiling", secs, bytes)?;
    let relay: Phase = child_phase("relay", secs, bytes)?;
    let gateway: Latency = child_phase("latency", secs, bytes)?;
    let direct: Latency = child_phase("latency-direct", secs, bytes)?;
    let busy = relay.gateway_busy.unwrap_or(1.0).max(1e-9);
    let r = Report {
        mtu: MTU,
        relay_vs_ceiling: relay.gbps / ceiling.gbps,
        relay_gbps_per_busy_lcore: relay.gbps / busy,
        ceiling,
        relay,
        latency_added_p50_us: gateway.p50_us - direct.p50_us,
        latency_added_p99_us: gateway.p99_us - direct.p99_us,
        latency_gateway: gateway,
        latency_direct: direct,
    };
    println!("| path (MTU {MTU}, net_memif copy mode, 2 lcores) | Gbit/s | x ceiling |");
    println!("|---|---|---|");
    println!(
        "| ceiling: lcore 1 forwards raw frames A -> B | {:.2} | 1.00 |",
        r.ceiling.gbps
    );
    println!(
        "| relay: lcore 1 terminates TCP and re-originates it | {:.2} | {:.2} |",
        r.relay.gbps, r.relay_vs_ceiling
    );
    println!(
        "gateway lcore busy {:.0} % of its rounds: {:.2} Gbit/s per busy lcore",
        busy * 100.0,
        r.relay_gbps_per_busy_lcore
    );
    println!();
    println!("| one-way latency, 64 B every 1 ms, MTU {MTU} | p50 us | p99 us | max us |");
    println!("|---|---|---|---|");
    for (name, l) in [
        ("producer -> gateway lcore -> consumer", &r.latency_gateway),
        ("producer -> consumer, one memif link", &r.latency_direct),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            l.p50_us, l.p99_us, l.max_us
        );
    }
    println!(
        "added by the gateway (its link and lcore): p50 {:.1} us, p99 {:.1} us",
        r.latency_added_p50_us, r.latency_added_p99_us
    );
    if let Some(path) = out {
        std::fs::write(path, serde_json::to_string_pretty(&r)?)?;
    }
    Ok(())
}

fn child_phase<T: serde::de::DeserializeOwned>(phase: &str, secs: u64, bytes: u64) -> Result<T> {
    let exe = std::env::current_exe()?;
    let o = Command::new(exe)
        .args(["dpdk-relay-child", "--phase", phase])
        .args(["--secs", &secs.to_string(), "--bytes", &bytes.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running the {phase} child"))?;
    ensure!(
        o.status.success(),
        "the {phase} child failed ({})",
        o.status
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("the {phase} child printed no result:\n{text}"))?;
    serde_json::from_str(line).with_context(|| format!("parsing the {phase} result {line}"))
}

/// Removes the memif socket files, whichever way the child ends.
struct SocketFiles(Vec<String>);

impl Drop for SocketFiles {
    fn drop(&mut self) {
        for s in &self.0 {
            let _ = std::fs::remove_file(s);
        }
    }
}

/// The ports of one child: gateway LAN and WAN (memif servers), producer and consumer
/// (clients). Servers start first: a memif client needs its server's socket.
struct Ports {
    gw_lan: Port,
    gw_wan: Port,
    producer: Port,
    consumer: Port,
    pool: Arc<Mempool>,
    sockets: SocketFiles,
}

fn start(phase: &str) -> Result<(&'static Eal, Ports)> {
    let pid = std::process::id();
    let sock = |l: &str| format!("/tmp/s2bench-relay-{pid}-{l}.sock");
    let sockets = SocketFiles(vec![sock("a"), sock("b")]);
    let vdev = |i: u32, role: &str, link: &str| {
        format!(
            "--vdev=net_memif{i},role={role},id=0,socket={},socket-abstract=no,bsize=9216",
            sock(link)
        )
    };
    let args: Vec<String> = [
        format!("s2bench-{phase}"),
        "-l".into(),
        "0,1".into(),
        "--no-pci".into(),
        "--no-huge".into(),
        "-m".into(),
        "1024".into(),
        "--no-shconf".into(),
        "--log-level=lib.eal:error".into(),
        vdev(0, "server", "a"),
        vdev(1, "server", "b"),
        vdev(2, "client", "a"),
        vdev(3, "client", "b"),
    ]
    .into();
    let eal = Eal::init(&args)?;
    let pool = Arc::new(Mempool::new("bench_relay", 16383, 256, DATA_ROOM, None)?);
    let setup = PortSetup {
        mtu: MTU as u16,
        ..PortSetup::default()
    };
    let open = |i: u32| Port::start(&format!("net_memif{i}"), &setup, Arc::clone(&pool));
    let ports = Ports {
        gw_lan: open(0)?,
        gw_wan: open(1)?,
        producer: open(2)?,
        consumer: open(3)?,
        pool,
        sockets,
    };
    Ok((eal, ports))
}

/// The child: one phase, its result as one JSON line on stdout.
///
/// It exits without closing the memif ports: DPDK 22.11's memif control thread crashed in
/// about one teardown of 40 here (a SIGSEGV in librte_eal under the memif interrupt handler,
/// after the measurement), and the process ends anyway. The socket files are removed first.
pub(crate) fn child(phase: &str, secs: u64, bytes: u64) -> Result<()> {
    let (eal, mut ports) = start(phase)?;
    let worker = *eal.workers().first().context("EAL has no worker lcore")?;
    let result = match phase {
        "ceiling" => serde_json::to_string(&ceiling(eal, worker, &mut ports, secs)?)?,
        "relay" => serde_json::to_string(&relay(eal, worker, &mut ports, secs, bytes)?)?,
        "latency" => serde_json::to_string(&latency(eal, worker, &mut ports, false)?)?,
        "latency-direct" => serde_json::to_string(&latency(eal, worker, &mut ports, true)?)?,
        other => bail!("unknown phase {other}: ceiling, relay, latency or latency-direct"),
    };
    println!("{result}");
    std::io::Write::flush(&mut std::io::stdout())?;
    drop(std::mem::replace(
        &mut ports.sockets,
        SocketFiles(Vec::new()),
    )); // removes the files
    std::process::exit(0)
}

fn ceiling(eal: &'static Eal, worker: u32, p: &mut Ports, secs: u64) -> Result<Phase> {
    let (mut lan_rx, mut wan_tx) = (p.gw_lan.rx_queue(0)?, p.gw_wan.tx_queue(0)?);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_w = Arc::clone(&stop);
    let job = eal.launch(worker, move || {
        let mut burst = Vec::with_capacity(usize::from(BURST));
        while !stop_w.load(Ordering::Relaxed) {
            if lan_rx.burst(&mut burst, BURST) > 0 {
                send_all(&mut wan_tx, &mut burst);
            }
        }
        0
    })?;
    let (mut tx, mut rx) = (p.producer.tx_queue(0)?, p.consumer.rx_queue(0)?);
    let mut out = Vec::with_capacity(usize::from(BURST));
    let mut got = Vec::with_capacity(usize::from(BURST));
    let (mut bytes, mut t0, mut b0) = (0u64, None::<Instant>, 0u64);
    let warm_up = Duration::from_millis(500);
    let begin = Instant::now();
    while begin.elapsed() < warm_up + Duration::from_secs(secs) {
        while out.len() < usize::from(BURST) {
            let Some(mut m) = p.pool.alloc() else { break };
            if let Some(frame) = m.append(FRAME as u16) {
                frame[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
                frame[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
            }
            out.push(m);
        }
        send_all(&mut tx, &mut out);
        if rx.burst(&mut got, BURST) > 0 {
            bytes += got.iter().map(|m| m.pkt_len() as u64).sum::<u64>();
            Mbuf::free_bulk(&mut got);
        }
        if t0.is_none() && begin.elapsed() >= warm_up {
            t0 = Some(Instant::now());
            b0 = bytes;
        }
    }
    let secs = t0.map_or(0.0, |t| t.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    job.wait();
    let bytes = bytes - b0;
    ensure!(bytes > 0, "no frame crossed the two memif links");
    Ok(Phase {
        bytes,
        secs,
        gbps: bytes as f64 * 8.0 / secs / 1e9,
        gateway_busy: None,
    })
}

/// Sends the burst; what the ring does not take this time is freed (the ceiling counts
/// what arrives).
fn send_all(tx: &mut TxQueue, burst: &mut Vec<Mbuf>) {
    tx.burst(burst);
    burst.clear();
}

fn device(port: &mut Port, pool: &Arc<Mempool>) -> Result<PortDevice> {
    Ok(PortDevice::new(
        port.rx_queue(0)?,
        port.tx_queue(0)?,
        Arc::clone(pool),
        BURST,
        MTU,
    ))
}

/// The gateway's `Lcore` on `worker`, listening on its LAN address and relaying to the
/// consumer, as the `dpdk` engine runs it.
struct Gateway {
    commands: std::sync::mpsc::Sender<LcoreCommand>,
    job: Option<dataplane::dpdk::LcoreJob>,
    stats: Arc<LcoreStats>,
    counters: Arc<StreamCounters>,
}

impl Gateway {
    fn start(eal: &'static Eal, worker: u32, p: &mut Ports) -> Result<Self> {
        let addr = |port: &Port, ip: Ipv4Address| PortAddr {
            mac: port.mac(),
            ipv4: ip,
            prefix: 24,
            gateway: None,
        };
        let devices = vec![
            (device(&mut p.gw_lan, &p.pool)?, addr(&p.gw_lan, GW_LAN)),
            (device(&mut p.gw_wan, &p.pool)?, addr(&p.gw_wan, GW_WAN)),
        ];
        let (commands, commands_rx) = std::sync::mpsc::channel();
        let stats = Arc::new(LcoreStats::default());
        let options = StackOptions {
            tcp_buffer: 8 << 20,
            ..StackOptions::default()
        };
        let lcore = Lcore::new(devices, options, commands_rx, Arc::clone(&stats), 1);
        let job = eal.launch(worker, move || {
            lcore.run();
            0
        })?;
        let gateway = Self {
            commands,
            job: Some(job),
            stats,
            counters: Arc::new(StreamCounters::default()),
        };
        let (done, listening) = std::sync::mpsc::channel();
        gateway
            .commands
            .send(LcoreCommand::Listen {
                stream: 1,
                port: 0,
                local_port: LISTEN_PORT,
                target: std::net::SocketAddrV4::new(CONSUMER, CONSUMER_PORT),
                allow: AllowList::any(),
                counters: Arc::clone(&gateway.counters),
                done,
            })
            .map_err(|_| anyhow::anyhow!("the gateway lcore is gone"))?;
        listening
            .recv_timeout(Duration::from_secs(10))
            .context("the gateway lcore did not answer")?
            .map_err(anyhow::Error::msg)?;
        Ok(gateway)
    }
}

impl Drop for Gateway {
    /// Stops the loop before its ports can go away.
    fn drop(&mut self) {
        let _ = self.commands.send(LcoreCommand::Stop);
        if let Some(job) = self.job.take() {
            job.wait();
        }
    }
}

/// The producer, connecting to `GW_LAN:LISTEN_PORT`, and the consumer, listening. With
/// `direct` the consumer sits on the gateway's LAN port itself (one memif link, no gateway).
fn peers(p: &mut Ports, direct: bool) -> Result<(Peer, Peer)> {
    let mut producer = Peer::new(device(&mut p.producer, &p.pool)?, &p.producer, PRODUCER);
    let (mut consumer, port) = if direct {
        let c = Peer::new(device(&mut p.gw_lan, &p.pool)?, &p.gw_lan, GW_LAN);
        (c, LISTEN_PORT)
    } else {
        let c = Peer::new(device(&mut p.consumer, &p.pool)?, &p.consumer, CONSUMER);
        (c, CONSUMER_PORT)
    };
    consumer.socket().listen(port).context("consumer listen")?;
    let remote = (IpAddress::Ipv4(GW_LAN), LISTEN_PORT);
    let (iface, sockets, h) = (&mut producer.iface, &mut producer.sockets, producer.handle);
    sockets
        .get_mut::<tcp::Socket>(h)
        .connect(iface.context(), remote, 40000)
        .context("producer connect")?;
    Ok((producer, consumer))
}

fn relay(eal: &'static Eal, worker: u32, p: &mut Ports, secs: u64, bytes: u64) -> Result<Phase> {
    let gateway = Gateway::start(eal, worker, p)?;
    let (stats, counters) = (Arc::clone(&gateway.stats), Arc::clone(&gateway.counters));
    let (mut producer, mut consumer) = peers(p, false)?;

    let pattern: Vec<u8> = (0..PERIOD + (16 << 20))
        .map(|i| {
            let x = (i % PERIOD) as u64;
            (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
        })
        .collect();
    let (mut sent, mut received) = (0u64, 0u64);
    let (mut t0, mut b0, mut busy0) = (None::<Instant>, 0u64, (0u64, 0u64));
    let begin = Instant::now();
    let limit = Duration::from_secs(secs.max(1) * 4 + 10);
    let warm_up = (bytes / 16).min(256 << 20);
    let cycles = |s: &LcoreStats| {
        (
            s.busy_cycles.load(Ordering::Relaxed),
            s.idle_cycles.load(Ordering::Relaxed),
        )
    };
    let mut end = None;
    while received < bytes {
        if begin.elapsed() > limit {
            drop(gateway);
            bail!(
                "relay stalled: {received} of {bytes} bytes after {:?} (producer {}, consumer \
                 {}; gateway {:?}, producer port {:?}, consumer port {:?})",
                begin.elapsed(),
                producer.socket().state(),
                consumer.socket().state(),
                counters.snapshot(0),
                producer.dev.counters(),
                consumer.dev.counters(),
            );
        }
        let now = smoltcp::time::Instant::from(Instant::now());
        producer.ingress(now);
        consumer.ingress(now);
        let s = producer.socket();
        if sent < bytes && s.can_send() {
            let want = (bytes - sent) as usize;
            sent += s
                .send(|buf| {
                    let n = buf.len().min(want).min(16 << 20);
                    let at = (sent % PERIOD as u64) as usize;
                    buf[..n].copy_from_slice(&pattern[at..at + n]);
                    (n, n as u64)
                })
                .unwrap_or(0);
            if sent == bytes {
                s.close();
            }
        }
        let c = consumer.socket();
        if c.can_recv() {
            let got = c
                .recv(|buf| {
                    let n = buf.len().min(16 << 20);
                    let at = (received % PERIOD as u64) as usize;
                    (n, (buf[..n] == pattern[at..at + n], n as u64))
                })
                .unwrap_or((true, 0));
            ensure!(
                got.0,
                "the consumer received bytes {received}..{} that differ from what was sent",
                received + got.1
            );
            received += got.1;
        }
        if t0.is_none() && received >= warm_up {
            t0 = Some(Instant::now());
            b0 = received;
            busy0 = cycles(&stats);
        }
        if received >= bytes || t0.is_some_and(|t| t.elapsed() >= Duration::from_secs(secs)) {
            end = Some((Instant::now(), received, cycles(&stats)));
            break;
        }
        producer.egress(now);
        consumer.egress(now);
    }
    drop(gateway);
    let (t_end, b_end, busy_end) = end.context("the relay moved nothing")?;
    let t0 = t0.context("the relay did not get past its warm-up")?;
    let secs = (t_end - t0).as_secs_f64();
    let moved = b_end - b0;
    let busy = busy_end.0 - busy0.0;
    let idle = busy_end.1 - busy0.1;
    Ok(Phase {
        bytes: moved,
        secs,
        gbps: moved as f64 * 8.0 / secs / 1e9,
        gateway_busy: Some(busy as f64 / (busy + idle).max(1) as f64),
    })
}

/// Messages of the latency phases, and how many of the first are left out (warm-up).
const LATENCY_MESSAGES: usize = 2000;
const LATENCY_WARM_UP: usize = 100;
const MESSAGE: usize = 64;

/// One-way latency of 64-byte messages sent 1 ms apart (light load), through the gateway or
/// over one memif link without it (`direct`). Producer and consumer run on lcore 0 and share
/// its clock; every message carries its send time.
fn latency(eal: &'static Eal, worker: u32, p: &mut Ports, direct: bool) -> Result<Latency> {
    let gateway = if direct {
        None
    } else {
        Some(Gateway::start(eal, worker, p)?)
    };
    let (mut producer, mut consumer) = peers(p, direct)?;
    let begin = Instant::now();
    let limit = Duration::from_secs(30);
    let gap = Duration::from_millis(1);
    let mut next = begin;
    let (mut sent, mut pending) = (0usize, Vec::with_capacity(4 * MESSAGE));
    let mut samples = Vec::with_capacity(LATENCY_MESSAGES);
    let mut seen = 0usize;
    while seen < LATENCY_MESSAGES {
        ensure!(
            begin.elapsed() < limit,
            "latency phase stalled: {seen} of {LATENCY_MESSAGES} messages in {limit:?}"
        );
        let now = smoltcp::time::Instant::from(Instant::now());
        producer.ingress(now);
        consumer.ingress(now);
        let s = producer.socket();
        if sent < LATENCY_MESSAGES && s.can_send() && Instant::now() >= next {
            let mut m = [0u8; MESSAGE];
            m[..8].copy_from_slice(&(begin.elapsed().as_nanos() as u64).to_le_bytes());
            ensure!(
                s.send_slice(&m)? == MESSAGE,
                "the producer's buffer is full"
            );
            sent += 1;
            next += gap;
        }
        let c = consumer.socket();
        while c.can_recv() {
            c.recv(|b| {
                pending.extend_from_slice(b);
                (b.len(), ())
            })?;
        }
        let arrived = begin.elapsed().as_nanos() as u64;
        for m in pending.chunks_exact(MESSAGE) {
            let stamp = u64::from_le_bytes(m[..8].try_into().expect("8 bytes"));
            if seen >= LATENCY_WARM_UP {
                samples.push((arrived - stamp) as f64 / 1e3);
            }
            seen += 1;
        }
        let whole = pending.len() / MESSAGE * MESSAGE;
        pending.drain(..whole);
        producer.egress(now);
        consumer.egress(now);
    }
    drop(gateway);
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Ok(Latency {
        messages: samples.len(),
        p50_us: at(0.5),
        p99_us: at(0.99),
        max_us: at(1.0),
    })
}

/// A smoltcp host with one TCP socket on one memif port, polled by the main lcore.
struct Peer {
    dev: PortDevice,
    iface: Interface,
    sockets: SocketSet<'static>,
    handle: smoltcp::iface::SocketHandle,
}

impl Peer {
    fn new(mut dev: PortDevice, port: &Port, ip: Ipv4Address) -> Self {
        let now = smoltcp::time::Instant::from(Instant::now());
        let config = Config::new(EthernetAddress(port.mac()).into());
        let mut iface = Interface::new(config, &mut dev, now);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(ip), 24))
                .expect("one address");
        });
        let buffer = 8 << 20;
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buffer]),
            tcp::SocketBuffer::new(vec![0; buffer]),
        );
        socket.set_nagle_enabled(false);
        socket.set_congestion_control(tcp::CongestionControl::Cubic);
        let mut sockets = SocketSet::new(Vec::new());
        let handle = sockets.add(socket);
        Self {
            dev,
            iface,
            sockets,
            handle,
        }
    }

    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut(self.handle)
    }

    fn ingress(&mut self, now: smoltcp::time::Instant) {
        for _ in 0..4 {
            if self.dev.refill() == 0 {
                break;
            }
            while self
                .iface
                .poll_ingress_single(now, &mut self.dev, &mut self.sockets)
                != PollIngressSingleResult::None
            {}
        }
    }

    fn egress(&mut self, now: smoltcp::time::Instant) {
        for _ in 0..64 {
            if self
                .iface
                .poll_egress(now, &mut self.dev, &mut self.sockets)
                == smoltcp::iface::PollResult::None
            {
                break;
            }
        }
        self.dev.flush();
    }
}
