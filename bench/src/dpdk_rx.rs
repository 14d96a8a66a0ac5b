//! `s2bench dpdk-rx`: packets per second one dataplane lcore takes through its L2/L3 path
//! (RX burst, smoltcp's Ethernet/ARP/IPv4 classification, drop, free) on `net_null` ports,
//! beside `dpdk-testpmd` on the same virtual devices in the same run: `rxonly` (RX + free, the
//! floor of any receive path) and `io` (RX + TX, the usual forwarding baseline).
//!
//! `net_null` hands out 64-byte frames the stack classifies and drops, so this measures the
//! per-packet cost of the receive side; the TCP relay itself is measured by `s2bench gateways
//! --methods dpdk`. EAL runs once per process, so each measurement is a child process.

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
    ours_mpps: f64,
    testpmd_rxonly_mpps: f64,
    testpmd_io_mpps: f64,
    ours_vs_rxonly: f64,
    ours_vs_io: f64,
    /// ours ÷ io within each round.
    ours_vs_io_per_round: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The parent: `repeat` rounds of the three measurements, then the table.
pub(crate) fn run(secs: u64, repeat: usize, out: Option<&std::path::Path>) -> Result<()> {
    ensure!(repeat >= 1, "--repeat must be at least 1");
    let exe = std::env::current_exe()?;
    let (mut ours, mut rxonly, mut io) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat {
        let o = Command::new(&exe)
            .args(["dpdk-rx-child", "--secs", &secs.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .context("running the dataplane child")?;
        ensure!(o.status.success(), "the dataplane child failed");
        ours.push(
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .context("the child prints Mpps")?,
        );
        rxonly.push(testpmd("rxonly", secs)?);
        io.push(testpmd("io", secs)?);
    }
    let (m_ours, m_rxonly, m_io) = (median(&ours), median(&rxonly), median(&io));
    let r = Report {
        secs: secs as f64,
        repeat,
        ours_mpps: m_ours,
        testpmd_rxonly_mpps: m_rxonly,
        testpmd_io_mpps: m_io,
        ours_vs_rxonly: m_ours / m_rxonly,
        ours_vs_io: m_ours / m_io,
        ours_vs_io_per_round: ours.iter().zip(&io).map(|(a, b)| a / b).collect(),
    };
    println!("| path (one lcore, 2 x net_null, 64 B; median of {repeat}) | Mpps | x ours |");
    println!("|---|---|---|");
    println!("| SciStream-RS lcore: rx + L2/L3 classify + drop | {m_ours:.2} | 1.00 |");
    println!(
        "| dpdk-testpmd rxonly | {m_rxonly:.2} | {:.2} |",
        m_rxonly / m_ours
    );
    println!(
        "| dpdk-testpmd io (rx + tx) | {m_io:.2} | {:.2} |",
        m_io / m_ours
    );
    let per_round: Vec<String> = r
        .ours_vs_io_per_round
        .iter()
        .map(|x| format!("{x:.2}"))
        .collect();
    println!("ours / io per round: {}", per_round.join(", "));
    if let Some(path) = out {
        std::fs::write(path, serde_json::to_string_pretty(&r)?)?;
    }
    Ok(())
}

/// The child: EAL, two net_null ports, one Lcore on worker lcore 1 for `secs`; prints Mpps.
pub(crate) fn child(secs: u64) -> Result<()> {
    let mut args = vec!["s2bench".to_owned()];
    args.extend(EAL_COMMON.iter().map(|s| s.to_string()));
    let eal = Eal::init(&args)?;
    let pool = Arc::new(Mempool::new("bench_rx", 16383, 256, 2176, None)?);
    let mut devices = Vec::new();
    let mut ports = Vec::new();
    for (i, name) in ["net_null0", "net_null1"].into_iter().enumerate() {
        let mut port = Port::start(name, &PortSetup::default(), Arc::clone(&pool))?;
        let dev = PortDevice::new(
            port.rx_queue(0)?,
            port.tx_queue(0)?,
            Arc::clone(&pool),
            32,
            1500,
        );
        let addr = PortAddr {
            mac: [0x02, 0, 0, 0, 0, i as u8 + 1],
            ipv4: std::net::Ipv4Addr::new(10, i as u8, 0, 1),
            prefix: 24,
            gateway: None,
        };
        devices.push((dev, addr));
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
