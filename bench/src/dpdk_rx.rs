//! `s2bench dpdk-rx`: packets per second one dataplane lcore takes through its receive path
//! on `net_null` ports, beside `dpdk-testpmd` on the same virtual devices in the same run:
//! `rxonly` (RX + free, the floor of any receive path) and `io` (RX + TX, the usual
//! forwarding baseline). Two kinds of 64-byte frames:
//!
//! - **foreign**: what `net_null` hands out by itself (zeros: addressed to no one). The device's
//!   station filter drops them before smoltcp, as it drops other stations' traffic on a
//!   promiscuous port.
//! - **ours**: a TCP RST to the port's own MAC and IPv4 address, for a port with no socket.
//!   smoltcp takes each one through Ethernet, IPv4 (header checksum), TCP (checksum) and the
//!   socket lookup, then drops it (a reset for no connection gets no answer). `net_null` does
//!   not write frame data, so the child writes this frame into every mbuf of each port's pool
//!   before the port starts, and every burst hands it out.
//!
//! The TCP relay itself is measured by `s2bench dpdk-relay` and `s2bench gateways --methods
//! dpdk`. EAL runs once per process, so each measurement is a child process.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use dataplane::dpdk::{Eal, Mempool, Port, PortSetup};
use dataplane::stack::{
    Command as LcoreCommand, Lcore, LcoreStats, PortAddr, PortDevice, StackOptions,
};
use serde::Serialize;

const EAL_COMMON: &[&str] = &[
    "-l",
    "0,1",
    "--no-pci",
    "--no-huge",
    "-m",
    "512",
    "--no-shconf",
    "--vdev=net_null0",
    "--vdev=net_null1",
    "--log-level=lib.eal:error",
];

#[derive(Debug, Serialize)]
struct Report {
    secs: f64,
    /// Rounds of the three measurements, interleaved (ours, rxonly, io, ours, …), so a slow
    /// spell of the shared host hits all three; the figures below are medians over rounds.
    repeat: usize,
    /// Frames addressed to no one (dropped by the station filter).
    ours_mpps: f64,
    /// TCP resets to the port, classified by smoltcp down to the socket lookup.
    ours_for_us_mpps: f64,
    testpmd_rxonly_mpps: f64,
    testpmd_io_mpps: f64,
    ours_vs_rxonly: f64,
    ours_vs_io: f64,
    ours_for_us_vs_io: f64,
    /// ours ÷ io within each round.
    ours_vs_io_per_round: Vec<f64>,
    /// ours (frames for us) ÷ io within each round.
    ours_for_us_vs_io_per_round: Vec<f64>,
}

/// Which frames the dataplane child receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Frames {
    /// net_null's own frames, addressed to no one.
    Foreign,
    /// A TCP reset addressed to the port, written into every mbuf of its pool.
    Ours,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The parent: `repeat` rounds of the three measurements, then the table.
pub(crate) fn run(secs: u64, repeat: usize, out: Option<&std::path::Path>) -> Result<()> {
    ensure!(repeat >= 1, "--repeat must be at least 1");
    let (mut ours, mut for_us, mut rxonly, mut io) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat {
        ours.push(dataplane_child(Frames::Foreign, secs)?);
        for_us.push(dataplane_child(Frames::Ours, secs)?);
        rxonly.push(testpmd("rxonly", secs)?);
        io.push(testpmd("io", secs)?);
    }
    let (m_ours, m_for_us, m_rxonly, m_io) =
        (median(&ours), median(&for_us), median(&rxonly), median(&io));
    let ratios = |v: &[f64]| -> Vec<f64> { v.iter().zip(&io).map(|(a, b)| a / b).collect() };
    let r = Report {
        secs: secs as f64,
        repeat,
        ours_mpps: m_ours,
        ours_for_us_mpps: m_for_us,
        testpmd_rxonly_mpps: m_rxonly,
        testpmd_io_mpps: m_io,
        ours_vs_rxonly: m_ours / m_rxonly,
        ours_vs_io: m_ours / m_io,
        ours_for_us_vs_io: m_for_us / m_io,
        ours_vs_io_per_round: ratios(&ours),
        ours_for_us_vs_io_per_round: ratios(&for_us),
    };
    println!("| path (one lcore, 2 x net_null, 64 B; median of {repeat}) | Mpps | / testpmd io |");
    println!("|---|---|---|");
    println!(
        "| SciStream-RS lcore, foreign frames: rx + station filter + drop | {m_ours:.2} | {:.2} |",
        r.ours_vs_io
    );
    println!(
        "| SciStream-RS lcore, TCP RST to the port: rx + Ethernet/IPv4/TCP + lookup + drop | \
         {m_for_us:.2} | {:.2} |",
        r.ours_for_us_vs_io
    );
    println!(
        "| dpdk-testpmd rxonly | {m_rxonly:.2} | {:.2} |",
        m_rxonly / m_io
    );
    println!("| dpdk-testpmd io (rx + tx) | {m_io:.2} | 1.00 |");
    let show = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("foreign / io per round: {}", show(&r.ours_vs_io_per_round));
    println!(
        "for us / io per round: {}",
        show(&r.ours_for_us_vs_io_per_round)
    );
    if let Some(path) = out {
        std::fs::write(path, serde_json::to_string_pretty(&r)?)?;
    }
    Ok(())
}

/// Runs the dataplane child for `frames`; its Mpps.
fn dataplane_child(frames: Frames, secs: u64) -> Result<f64> {
    let value = clap::ValueEnum::to_possible_value(&frames).context("a named kind of frames")?;
    let frames = value.get_name();
    let o = Command::new(std::env::current_exe()?)
        .args(["dpdk-rx-child", "--secs", &secs.to_string()])
        .args(["--frames", frames])
        .stderr(Stdio::inherit())
        .output()
        .context("running the dataplane child")?;
    ensure!(
        o.status.success(),
        "the dataplane child ({frames} frames) failed"
    );
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse::<f64>()
        .context("the child prints Mpps")
}

/// Size of the frames net_null hands out (its default `size` devarg).
const NULL_FRAME: usize = 64;

/// A TCP RST from a neighbour to `addr`'s port 9, with valid checksums, padded to
/// [`NULL_FRAME`] bytes.
fn reset_for(addr: &PortAddr) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
        Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    };
    let octets = addr.ipv4.octets();
    let peer = Ipv4Address::new(octets[0], octets[1], octets[2], octets[3].wrapping_add(1));
    let tcp = TcpRepr {
        src_port: 40000,
        dst_port: 9,
        control: TcpControl::Rst,
        seq_number: TcpSeqNumber(1),
        ack_number: None,
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: peer,
        dst_addr: addr.ipv4,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([0x02, 0, 0, 0, 0xee, 0xee]),
        dst_addr: EthernetAddress(addr.mac),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0u8; NULL_FRAME];
    let caps = ChecksumCapabilities::default();
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet, &caps);
    let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
    tcp.emit(
        &mut segment,
        &IpAddress::Ipv4(peer),
        &IpAddress::Ipv4(addr.ipv4),
        &caps,
    );
    buf
}

/// Writes `frame` into the data room of every mbuf of `pool` (net_null hands mbufs out with
/// their data untouched). Returns how many mbufs were written.
fn fill_pool(pool: &Mempool, frame: &[u8]) -> Result<usize> {
    let len = u16::try_from(frame.len())?;
    let mut all = Vec::new();
    while let Some(mut m) = pool.alloc() {
        m.append(len)
            .context("an mbuf without room for one frame")?
            .copy_from_slice(frame);
        all.push(m);
    }
    Ok(all.len())
}

/// The child: EAL, two net_null ports, one Lcore on worker lcore 1 for `secs`; prints Mpps.
pub(crate) fn child(frames: Frames, secs: u64) -> Result<()> {
    let mut args = vec!["s2bench".to_owned()];
    args.extend(EAL_COMMON.iter().map(|s| s.to_string()));
    let eal = Eal::init(&args)?;
    let mut devices = Vec::new();
    let mut ports = Vec::new();
    let mut pools = Vec::new();
    for (i, name) in ["net_null0", "net_null1"].into_iter().enumerate() {
        let addr = PortAddr {
            mac: [0x02, 0, 0, 0, 0, i as u8 + 1],
            ipv4: std::net::Ipv4Addr::new(10, i as u8, 0, 1),
            prefix: 24,
            gateway: None,
        };
        // One pool per port, so each can hold frames addressed to its own port.
        let pool = Arc::new(Mempool::new(
            &format!("bench_rx{i}"),
            8191,
            256,
            2176,
            None,
        )?);
        if frames == Frames::Ours {
            let n = fill_pool(&pool, &reset_for(&addr))?;
            ensure!(
                n == pool.size() as usize,
                "wrote {n} of {} mbufs",
                pool.size()
            );
        }
        let mut port = Port::start(name, &PortSetup::default(), Arc::clone(&pool))?;
        let dev = PortDevice::new(
            port.rx_queue(0)?,
            port.tx_queue(0)?,
            Arc::clone(&pool),
            32,
            1500,
        );
        devices.push((dev, addr));
        pools.push(pool);
        ports.push(port);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let stats = Arc::new(LcoreStats::default());
    let lcore = Lcore::new(devices, StackOptions::default(), rx, Arc::clone(&stats), 1);
    let worker = *eal.workers().first().context("EAL has no worker lcore")?;
    let job = eal.launch(worker, move || {
        lcore.run();
        0
    })?;
    std::thread::sleep(Duration::from_millis(500)); // warm-up
    let t0 = Instant::now();
    let f0 = stats.rx_frames.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(secs));
    let f1 = stats.rx_frames.load(Ordering::Relaxed);
    let dt = t0.elapsed().as_secs_f64();
    let _ = tx.send(LcoreCommand::Stop);
    job.wait();
    drop(ports);
    // Each kind must have taken the path it names: foreign frames all stopped at the station
    // filter, frames for us none.
    let not_ours = stats.rx_not_ours.load(Ordering::Relaxed);
    let total = stats.rx_frames.load(Ordering::Relaxed);
    match frames {
        Frames::Foreign => ensure!(
            not_ours == total,
            "{not_ours} of {total} foreign frames hit the station filter"
        ),
        Frames::Ours => ensure!(
            not_ours == 0 && stats.tx_frames.load(Ordering::Relaxed) == 0,
            "frames for us were filtered ({not_ours}) or answered"
        ),
    }
    println!("{:.3}", (f1 - f0) as f64 / dt / 1e6);
    Ok(())
}

/// `dpdk-testpmd` in `mode` on the same vdevs; the median of its per-second Rx-pps samples.
fn testpmd(mode: &str, secs: u64) -> Result<f64> {
    let out = Command::new("timeout")
        .args(["-s", "INT", &(secs + 2).to_string(), "dpdk-testpmd"])
        .args(EAL_COMMON)
        .args(["--", "--stats-period", "1", "--total-num-mbufs=16384"])
        .arg(format!("--forward-mode={mode}"))
        .stdin(Stdio::null())
        .output()
        .context("running dpdk-testpmd (package dpdk-dev; cargo xtask setup)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Per-port "Rx-pps:  N" lines; the two ports' samples alternate.
    let per_port: Vec<f64> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Rx-pps:"))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    let mut sums: Vec<f64> = per_port.chunks(2).map(|c| c.iter().sum()).collect();
    if sums.len() > 1 {
        sums.remove(0); // the first sample includes start-up
    }
    if sums.is_empty() {
        bail!("dpdk-testpmd printed no Rx-pps samples:\n{text}");
    }
    sums.sort_by(f64::total_cmp);
    Ok(sums[sums.len() / 2] / 1e6)
}
