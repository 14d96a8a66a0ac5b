//! The gateway benchmark: one producer → consumer stream through both gateways, per method and
//! message size, against direct routing in the same run.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use testbed::scenario::{Scenario, default_bin_dir};
use testbed::topology::{Host, PROD_APP_IP, Topology};

use crate::deploy::{DeployOptions, Deployment, KillOnDrop};
use crate::load::SinkReport;
use crate::metrics;
use crate::procstat::{MemWatch, machine_busy_secs, tree_cpu_secs};
use crate::pubsub::tcp::TcpReport;

const APP_PORT: u16 = 7000;

pub(crate) struct Plan {
    pub(crate) methods: Vec<String>,
    pub(crate) msg_sizes: Vec<u64>,
    pub(crate) bytes: u64,
    pub(crate) repeat: usize,
    pub(crate) setup_runs: usize,
    pub(crate) cores: Option<(String, String)>,
    /// Stamped messages for the one-way latency probe per method (0: none).
    pub(crate) latency_count: u64,
    pub(crate) out: PathBuf,
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    gbps: f64,
    machine_cpu_s_per_gb: f64,
    gateway_cpu_s_per_gb: f64,
    /// Machine memory taken during the run (MemAvailable drop), MiB.
    peak_mem_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Cell {
    method: String,
    msg_size: u64,
    samples: Vec<Sample>,
    median_gbps: f64,
    ratio_to_direct: Option<f64>,
    median_machine_cpu_s_per_gb: f64,
    median_gateway_cpu_s_per_gb: f64,
    median_peak_mem_mib: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: crate::report::model::Machine,
    bytes_per_run: u64,
    repeat: usize,
    cells: Vec<Cell>,
    setup_ms: Vec<f64>,
    setup_ms_median: Option<f64>,
    latency: Vec<(String, LatencyReport)>,
}

/// One-way latency at light load through one method (from `s2bench tsub`).
#[derive(Debug, Clone, Serialize)]
struct LatencyReport {
    messages: u64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    /// Messages lost, reordered or duplicated.
    out_of_order: u64,
}

/// The path the consumer uses for a method, and the processes whose CPU counts as gateway.
struct Path {
    target: SocketAddr,
    gateway_pids: Vec<u32>,
}

pub(crate) fn run(plan: &Plan) -> Result<()> {
    testbed::require_root()?;
    crate::deploy::check_methods(&plan.methods)?;
    if let Some(m) = plan.methods.iter().find(|m| crate::deploy::quic_apps(m)) {
        anyhow::bail!(
            "{m} needs QUIC apps, which the gateways benchmark (iperf-style TCP) does not run; use \
             s2bench matrix --methods {m} --workloads tcp"
        );
    }
    crate::deploy::remove_leftovers()?;
    let bin = default_bin_dir();
    ensure!(
        bin.join("s2bench").exists(),
        "build the workspace in release mode first"
    );
    let mut cells = Vec::new();
    let mut setup_ms = Vec::new();
    let mut latency = Vec::new();
    for method in &plan.methods {
        eprintln!("== {method}");
        let options = DeployOptions {
            cores: plan.cores.clone(),
            ..DeployOptions::default()
        };
        let d = Deployment::start(method, &[APP_PORT], &options)?;
        let path = Path {
            target: d.targets[0],
            gateway_pids: d.gateway_pids(),
        };
        for &size in &plan.msg_sizes {
            let mut samples = Vec::new();
            for r in 0..plan.repeat {
                let s = run_once(d.topology(), &bin, &path, plan.bytes, size)?;
                eprintln!("   {method} msg {size} run {r}: {:.2} Gbit/s", s.gbps);
                samples.push(s);
            }
            cells.push(cell(method, size, samples));
        }
        if plan.latency_count > 0 {
            let r = probe_latency(d.topology(), &bin, path.target, plan.latency_count)?;
            eprintln!(
                "   {method} one-way latency: p50 {:.1} us, p99 {:.1} us",
                r.p50_us, r.p99_us
            );
            latency.push((method.clone(), r));
        }
        if method == "copy-tls"
            && plan.setup_runs > 0
            && let Some(scenario) = d.scenario()
        {
            setup_ms = measure_setup(scenario, &bin, plan.setup_runs)?;
        }
        d.finish()?;
    }
    // Ratios against direct, per message size.
    for i in 0..cells.len() {
        let direct = cells
            .iter()
            .find(|c| c.method == "direct" && c.msg_size == cells[i].msg_size)
            .map(|c| c.median_gbps);
        cells[i].ratio_to_direct = direct
            .filter(|d| *d > 0.0)
            .map(|d| cells[i].median_gbps / d);
    }
    let report = Report {
        machine: machine_info(),
        bytes_per_run: plan.bytes,
        repeat: plan.repeat,
        setup_ms_median: median(&setup_ms),
        setup_ms,
        cells,
        latency,
    };
    if let Some(parent) = plan.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&plan.out, serde_json::to_string_pretty(&report)?)?;
    print_markdown(&report);
    eprintln!("results written to {}", plan.out.display());
    Ok(())
}

fn cell(method: &str, msg_size: u64, samples: Vec<Sample>) -> Cell {
    let pick =
        |f: fn(&Sample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0);
    Cell {
        method: method.into(),
        msg_size,
        median_gbps: pick(|s| s.gbps),
        median_machine_cpu_s_per_gb: pick(|s| s.machine_cpu_s_per_gb),
        median_gateway_cpu_s_per_gb: pick(|s| s.gateway_cpu_s_per_gb),
        median_peak_mem_mib: pick(|s| s.peak_mem_mib),
        ratio_to_direct: None,
        samples,
    }
}

fn spawn_source(
    topo: &Topology,
    bin: &std::path::Path,
    bytes: u64,
    msg: u64,
) -> Result<KillOnDrop> {
    let mut child = topo
        .command(Host::Prod, bin.join("s2bench"))
        .arg("source")
        .args(["--listen", &format!("{PROD_APP_IP}:{APP_PORT}")])
        .args([
            "--bytes",
            &bytes.to_string(),
            "--msg-size",
            &msg.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("source stdout")?).read_line(&mut line)?;
    if line.trim() != "READY" {
        let _ = child.kill();
        bail!("the source did not start");
    }
    Ok(KillOnDrop(child))
}

fn sink(topo: &Topology, bin: &std::path::Path, target: SocketAddr) -> Result<SinkReport> {
    let out = topo
        .command(Host::Cons, bin.join("s2bench"))
        .arg("sink")
        .args(["--connect", &target.to_string()])
        .output()?;
    ensure!(
        out.status.success(),
        "sink failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// One-way latency producer → consumer through `target`: stamped 64-byte messages at 1 kHz.
fn probe_latency(
    topo: &Topology,
    bin: &std::path::Path,
    target: SocketAddr,
    count: u64,
) -> Result<LatencyReport> {
    let mut source = topo
        .command(Host::Prod, bin.join("s2bench"))
        .arg("tpub")
        .args(["--listen", &format!("{PROD_APP_IP}:{APP_PORT}")])
        .args(["--count", &count.to_string()])
        .args(["--size", "64", "--pace-hz", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(source.stdout.take().context("tpub stdout")?).read_line(&mut line)?;
    let source = KillOnDrop(source);
    ensure!(line.trim() == "READY", "tpub did not start");
    let out = topo
        .command(Host::Cons, bin.join("s2bench"))
        .arg("tsub")
        .args(["--connect", &target.to_string()])
        .output()?;
    drop(source);
    ensure!(
        out.status.success(),
        "tsub failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: TcpReport = serde_json::from_slice(&out.stdout)?;
    ensure!(
        r.arrivals.samples_received == count,
        "{} of {count} stamped messages arrived",
        r.arrivals.samples_received
    );
    Ok(LatencyReport {
        messages: r.arrivals.samples_received,
        p50_us: r.latency_p50_us,
        p99_us: r.latency_p99_us,
        max_us: r.latency_max_us,
        out_of_order: r.lost + r.reordered + r.duplicates,
    })
}

fn run_once(
    topo: &Topology,
    bin: &std::path::Path,
    path: &Path,
    bytes: u64,
    msg: u64,
) -> Result<Sample> {
    let mem = MemWatch::start(&path.gateway_pids);
    let mut source = spawn_source(topo, bin, bytes, msg)?;
    let cpu0 = machine_busy_secs();
    let gw0: f64 = path.gateway_pids.iter().map(|&p| tree_cpu_secs(p)).sum();
    let report = sink(topo, bin, path.target)?;
    let cpu1 = machine_busy_secs();
    let gw1: f64 = path.gateway_pids.iter().map(|&p| tree_cpu_secs(p)).sum();
    let _ = source.0.wait();
    let peak_mem_mib = mem.peaks().machine as f64 / (1 << 20) as f64;
    ensure!(
        report.bytes == bytes,
        "sink got {} of {bytes} bytes",
        report.bytes
    );
    let gb = bytes as f64 / 1e9;
    Ok(Sample {
        gbps: bytes as f64 * 8.0 / report.secs / 1e9,
        machine_cpu_s_per_gb: (cpu1 - cpu0) / gb,
        gateway_cpu_s_per_gb: (gw1 - gw0) / gb,
        peak_mem_mib,
    })
}

/// `s2uc connect` (both gateways) until the consumer's first byte, `runs` times.
fn measure_setup(scenario: &Scenario, bin: &std::path::Path, runs: usize) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for _ in 0..runs {
        let _source = spawn_source(scenario.topology(), bin, 1 << 20, 1 << 20)?;
        let session = scenario.connect(1, &[APP_PORT])?;
        let r = sink(scenario.topology(), bin, session.cons_listeners[0])?;
        out.push(session.setup_ms + r.first_byte_secs.unwrap_or(0.0) * 1e3);
        scenario.release(&session)?;
    }
    eprintln!(
        "   session set-up (connect → first byte): median {:.1} ms",
        median(&out).unwrap_or(0.0)
    );
    Ok(out)
}

fn median(v: &[f64]) -> Option<f64> {
    metrics::spread(v).map(|s| s.median)
}

pub(crate) fn machine_info() -> crate::report::model::Machine {
    let sh = |c: &str| {
        Command::new("sh")
            .args(["-c", c])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    crate::report::model::Machine {
        cpu: sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
        cores: sh("nproc"),
        kernel: sh("uname -r"),
        date: sh("date -u +%FT%TZ"),
    }
}

fn print_markdown(r: &Report) {
    println!(
        "| method | msg size | Gbit/s (median of {}) | × direct | CPU-s/GB machine | CPU-s/GB gateways | peak mem MiB |",
        r.repeat
    );
    println!("|---|---|---|---|---|---|---|");
    for c in &r.cells {
        println!(
            "| {} | {} | {:.2} | {} | {:.2} | {} | {:.0} |",
            c.method,
            size(c.msg_size),
            c.median_gbps,
            c.ratio_to_direct.map_or("—".into(), |x| format!("{x:.2}")),
            c.median_machine_cpu_s_per_gb,
            if c.method == "direct" {
                "—".into()
            } else {
                format!("{:.2}", c.median_gateway_cpu_s_per_gb)
            },
            c.median_peak_mem_mib
        );
    }
    if let Some(m) = r.setup_ms_median {
        println!(
            "\nsession set-up, s2uc connect → first byte at the consumer: median {m:.1} ms over {} runs",
            r.setup_ms.len()
        );
    }
    if !r.latency.is_empty() {
        let direct = r
            .latency
            .iter()
            .find(|(m, _)| m == "direct")
            .map(|(_, l)| l.p50_us);
        println!("\n| method | one-way p50 µs | p99 µs | max µs | added per gateway, p50 µs |");
        println!("|---|---|---|---|---|");
        for (m, l) in &r.latency {
            let added = match direct {
                // Two gateways on the proxied paths.
                Some(d) if m != "direct" => format!("{:.1}", (l.p50_us - d) / 2.0),
                _ => "—".into(),
            };
            println!(
                "| {m} | {:.1} | {:.1} | {:.1} | {added} |",
                l.p50_us, l.p99_us, l.max_us
            );
        }
    }
}

fn size(b: u64) -> String {
    if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}
