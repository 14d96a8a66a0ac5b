//! The paper's evaluation matrix on the testbed: methods × sample sizes × WAN profiles ×
//! repetitions of a pub/sub workload, resumable and bounded in time, written as JSON and CSV and
//! turned into the report (plots and Markdown).
//!
//! Driven as: one [`Deployment`] per (profile, method), then every (size, repetition, workload)
//! cell against it. Each finished cell is appended to `cells.jsonl` in the output directory
//! before the next one starts, so a run that is interrupted (or stops at `--max-minutes`) keeps
//! everything measured; the next run with the same plan skips the cells that succeeded and
//! retries the ones that failed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use testbed::parse_size;
use testbed::scenario::default_bin_dir;
use testbed::topology::{Host, PROD_APP_IP};
use testbed::wan::WanProfile;

use crate::deploy::{self, DeployOptions, Deployment, KillOnDrop};
use crate::procstat::{MemPeaks, MemWatch, machine_busy_secs, tree_cpu_secs};
use crate::pubsub::Arrivals;
use crate::report::model::{self, Cell, Matrix, Plan};

/// Where the producer app's data socket listens.
const DATA_PORT: u16 = 7000;
/// Where the producer app's sync socket listens (the paper's 17000).
const SYNC_PORT: u16 = 17000;

/// The paper's sample sizes: 512 B to 1 MiB, powers of two.
pub(crate) fn paper_sizes() -> Vec<u64> {
    (9..=20).map(|p| 1u64 << p).collect()
}

/// How a run behaves (not part of the matrix's identity).
pub(crate) struct RunOptions {
    pub(crate) out_dir: PathBuf,
    pub(crate) max_minutes: f64,
    /// Start over even if `out_dir` holds cells of the same plan.
    pub(crate) fresh: bool,
    pub(crate) report: bool,
}

/// Checks a plan before anything is built.
fn check(p: &Plan) -> Result<()> {
    deploy::check_methods(&p.methods)?;
    for r in &p.rtts {
        r.parse::<WanProfile>()?;
    }
    for w in &p.workloads {
        ensure!(
            w == "zmq" || w == "tcp",
            "unknown workload '{w}'; valid: zmq (the paper's pub/sub), tcp (stamped raw TCP)"
        );
    }
    if p.methods.iter().any(|m| deploy::quic_apps(m)) {
        ensure!(
            p.workloads.iter().all(|w| w == "tcp"),
            "quic-direct and quic-relay run QUIC apps, which carry only the stamped-message \
             workload: use --workloads tcp"
        );
    }
    ensure!(p.repeat > 0, "--repeat must be at least 1");
    for &size in &p.sizes {
        ensure!(
            (64..=p.dataset_bytes).contains(&size),
            "sample size {size} must be between 64 bytes and the dataset ({} bytes)",
            p.dataset_bytes
        );
    }
    Ok(())
}

/// How many cells the plan has.
fn cells(p: &Plan) -> usize {
    p.methods.len() * p.sizes.len() * p.rtts.len() * p.repeat as usize * p.workloads.len()
}

type Key = (String, String, String, u64, u32);

fn key(c: &Cell) -> Key {
    (
        c.workload.clone(),
        c.rtt.clone(),
        c.method.clone(),
        c.size,
        c.rep,
    )
}

pub(crate) fn run(plan: &Plan, o: &RunOptions) -> Result<()> {
    testbed::require_root()?;
    check(plan)?;
    deploy::remove_leftovers()?;
    let bin = default_bin_dir();
    ensure!(
        bin.join("s2bench").exists() && bin.join("s2delay").exists(),
        "s2bench and s2delay are missing from {}; build the workspace in release mode first \
         (cargo build --release --workspace --bins)",
        bin.display()
    );
    std::fs::create_dir_all(&o.out_dir)
        .with_context(|| format!("creating {}", o.out_dir.display()))?;
    let plan_file = o.out_dir.join("plan.json");
    let jsonl = o.out_dir.join("cells.jsonl");
    if o.fresh {
        let _ = std::fs::remove_file(&jsonl);
    }
    let mut done: HashMap<Key, Cell> = HashMap::new();
    if jsonl.exists() {
        let saved: Plan = serde_json::from_slice(
            &std::fs::read(&plan_file)
                .with_context(|| format!("reading {}", plan_file.display()))?,
        )
        .with_context(|| format!("parsing {}", plan_file.display()))?;
        ensure!(
            &saved == plan,
            "{} holds results of another plan ({saved:?}); pass --fresh to start over or choose \
             another --out-dir",
            o.out_dir.display()
        );
        for c in model::read_jsonl(&jsonl)? {
            done.insert(key(&c), c);
        }
        let ok = done.values().filter(|c| c.ok).count();
        eprintln!("resuming: {ok} cells done in {}", jsonl.display());
    }
    std::fs::write(&plan_file, serde_json::to_vec_pretty(plan)?)?;

    // A resumed run keeps the first run's start.
    let started = (!done.is_empty())
        .then(|| model::read_json(&o.out_dir.join("matrix.json")).ok())
        .flatten()
        .map_or_else(utc_now, |m| m.started);
    let t0 = Instant::now();
    let budget = Duration::from_secs_f64(o.max_minutes * 60.0);
    let total = cells(plan);
    let mut progress = Progress::new(total, done.values().filter(|c| c.ok).count());
    let mut truncated = false;
    'outer: for rtt in &plan.rtts {
        let wan: WanProfile = rtt.parse()?;
        for method in &plan.methods {
            let todo: Vec<(u64, u32, &String)> = plan
                .sizes
                .iter()
                .flat_map(|&s| (0..plan.repeat).map(move |r| (s, r)))
                .flat_map(|(s, r)| plan.workloads.iter().map(move |w| (s, r, w)))
                .filter(|&(s, r, w)| {
                    !done
                        .get(&(w.clone(), rtt.clone(), method.clone(), s, r))
                        .is_some_and(|c| c.ok)
                })
                .collect();
            if todo.is_empty() {
                continue;
            }
            if t0.elapsed() >= budget {
                truncated = true;
                break 'outer;
            }
            let options = deploy_options(plan, method, wan);
            let d = Deployment::start(method, &[DATA_PORT, SYNC_PORT], &options);
            let d = match d {
                Ok(d) => Some(d),
                Err(e) => {
                    eprintln!("   {rtt} {method}: deployment failed: {e:#}");
                    for &(size, rep, workload) in &todo {
                        let c = failed(
                            workload,
                            wan,
                            method,
                            size,
                            rep,
                            &format!("deployment: {e:#}"),
                        );
                        model::append_jsonl(&jsonl, &c)?;
                        done.insert(key(&c), c);
                        progress.step(None);
                    }
                    None
                }
            };
            let Some(d) = d else { continue };
            for &(size, rep, workload) in &todo {
                if t0.elapsed() >= budget {
                    truncated = true;
                    d.finish()?;
                    break 'outer;
                }
                let c = match run_cell(&d, &bin, method, wan, workload, size, plan.dataset_bytes) {
                    Ok(r) => measured(r, workload, wan, method, size, rep),
                    Err(e) => failed(workload, wan, method, size, rep, &format!("{e:#}")),
                };
                progress.step(Some(&c));
                model::append_jsonl(&jsonl, &c)?;
                done.insert(key(&c), c);
            }
            d.finish()?;
        }
    }

    let mut cells: Vec<Cell> = done.into_values().collect();
    let order = |c: &Cell| {
        (
            plan.workloads.iter().position(|w| *w == c.workload),
            plan.rtts.iter().position(|r| *r == c.rtt),
            plan.methods.iter().position(|m| *m == c.method),
            c.size,
            c.rep,
        )
    };
    cells.sort_by_key(order);
    let matrix = Matrix {
        schema: model::SCHEMA,
        machine: crate::gateways::machine_info(),
        plan: plan.clone(),
        started,
        finished: (!truncated).then(utc_now),
        cells,
    };
    model::write_json(&o.out_dir.join("matrix.json"), &matrix)?;
    model::write_csv(&o.out_dir.join("matrix.csv"), &matrix.cells)?;
    if o.report {
        crate::report::render(&matrix, &o.out_dir)?;
    }
    let failed = matrix.cells.iter().filter(|c| !c.ok).count();
    eprintln!(
        "results in {}: {} cells, {failed} failed{}",
        o.out_dir.display(),
        matrix.cells.len(),
        if truncated {
            format!(
                "; stopped at --max-minutes {} with cells left: run the same command again to resume",
                o.max_minutes
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// The RTT QUIC windows are sized for: the profile's, at least 1 ms (LAN).
fn quic_rtt_ms(wan: WanProfile) -> f64 {
    (wan.rtt().as_secs_f64() * 1e3).max(1.0)
}

fn deploy_options(plan: &Plan, method: &str, wan: WanProfile) -> DeployOptions {
    let mut s2cs_args = Vec::new();
    if method == "dpdk" {
        // Terminated sockets need two bandwidth-delay products of buffer for the WAN: size them
        // for 2.5 Gbit/s (what the af_packet vdevs carry here), within 4..64 MiB.
        let bdp = 2.5e9 / 8.0 * wan.rtt().as_secs_f64();
        let buf = ((2.0 * bdp) as u64).clamp(4 << 20, 64 << 20);
        s2cs_args.extend(["--dpdk_tcp_buffer".to_owned(), buf.to_string()]);
    }
    if method.starts_with("quic") {
        // QUIC windows from the profile's RTT (and the default 10 Gbit/s).
        s2cs_args.extend(["--quic_rtt".to_owned(), quic_rtt_ms(wan).to_string() + "ms"]);
    }
    DeployOptions {
        cores: plan.cores.clone(),
        s2cs_args,
        wan: wan.link(),
    }
}

/// What `zsub` or `tsub` printed; the latency and sequence fields come from `tsub` only.
#[derive(Debug, serde::Deserialize)]
struct SubscriberReport {
    #[serde(flatten)]
    arrivals: Arrivals,
    latency_p50_us: Option<f64>,
    latency_p99_us: Option<f64>,
    latency_max_us: Option<f64>,
    #[serde(default)]
    lost: u64,
    #[serde(default)]
    reordered: u64,
    #[serde(default)]
    duplicates: u64,
    /// zsub: data messages of the wrong length.
    #[serde(default)]
    size_mismatches: u64,
    /// zsub: whether the publisher's FIN_ACK came back.
    fin_ack: Option<bool>,
}

/// What the subscriber printed, plus the accounting around it.
struct Measured {
    report: SubscriberReport,
    machine_cpu_s: f64,
    /// CPU seconds of GN1's and GN2's gateway processes (none for direct).
    gateway_cpu_s: Option<[f64; 2]>,
    mem: MemPeaks,
}

/// One workload run against a deployment: the publisher on the producer host, the subscriber
/// on the consumer host through the deployment's targets.
fn run_cell(
    d: &Deployment,
    bin: &Path,
    method: &str,
    wan: WanProfile,
    workload: &str,
    size: u64,
    dataset: u64,
) -> Result<Measured> {
    let quic = deploy::quic_apps(method);
    let rtt_ms = quic_rtt_ms(wan).to_string();
    let topo = d.topology();
    let s2bench = bin.join("s2bench");
    let (data, sync) = (d.targets[0], d.targets[1]);
    let gateway_cpu = || {
        d.gateways
            .clone()
            .map(|g| g.iter().map(|&p| tree_cpu_secs(p)).sum::<f64>())
    };
    let mem = MemWatch::start(&d.gateway_pids());
    let mut publisher = topo.command(Host::Prod, &s2bench);
    if workload == "zmq" {
        publisher
            .arg("zpub")
            .args(["--bind-ip", &PROD_APP_IP.to_string()])
            .args(["--port", &DATA_PORT.to_string()])
            .args(["--sync", &SYNC_PORT.to_string()]);
    } else if quic {
        publisher
            .arg("qpub")
            .args(["--listen", &format!("{PROD_APP_IP}:{DATA_PORT}")])
            .args(["--rtt-ms", &rtt_ms, "--uid", &d.uid]);
    } else {
        publisher
            .arg("tpub")
            .args(["--listen", &format!("{PROD_APP_IP}:{DATA_PORT}")]);
    }
    let mut publisher = KillOnDrop(
        publisher
            .args(["--size", &size.to_string()])
            .args(["--dataset", &dataset.to_string()])
            .stdin(Stdio::null())
            .stdout(if quic { Stdio::piped() } else { Stdio::null() })
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the {workload} publisher"))?,
    );
    let ports: &[u16] = if workload == "zmq" {
        &[DATA_PORT, SYNC_PORT]
    } else {
        &[DATA_PORT]
    };
    if quic {
        wait_ready(&mut publisher)?;
    } else {
        for &port in ports {
            crate::peers::wait_listening(
                topo,
                Host::Prod,
                SocketAddr::new(PROD_APP_IP.into(), port),
            )?;
        }
    }
    let cpu0 = machine_busy_secs();
    let gw0 = gateway_cpu();
    let mut sub = topo.command(Host::Cons, &s2bench);
    match workload {
        "zmq" => {
            ensure!(
                data.ip() == sync.ip(),
                "the data ({data}) and sync ({sync}) targets must share a host"
            );
            sub.arg("zsub")
                .args(["--remote-host", &data.ip().to_string()])
                .args(["--remote-port", &data.port().to_string()])
                .args(["--sync", &sync.port().to_string()])
                // Nothing for 10 s is a failed run; it also bounds the FIN_ACK wait.
                .args(["--idle-timeout", "10"]);
        }
        _ if quic => {
            sub.arg("qsub")
                .args(["--connect", &data.to_string()])
                .args(["--rtt-ms", &rtt_ms, "--uid", &d.uid]);
        }
        _ => {
            sub.arg("tsub").args(["--connect", &data.to_string()]);
        }
    }
    let out = sub
        .stdin(Stdio::null())
        .output()
        .context("running the subscriber")?;
    let cpu1 = machine_busy_secs();
    let gw1 = gateway_cpu();
    let mem = mem.peaks();
    let publisher_log = finish_publisher(publisher)?;
    if !out.status.success() {
        bail!(
            "subscriber failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            publisher_log
        );
    }
    let report: SubscriberReport = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the subscriber printed no JSON report: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok(Measured {
        report,
        machine_cpu_s: cpu1 - cpu0,
        gateway_cpu_s: (!d.gateways[0].is_empty()).then_some([gw1[0] - gw0[0], gw1[1] - gw0[1]]),
        mem,
    })
}

/// Waits for a publisher's READY line (UDP listeners do not show in `ss -lt`).
fn wait_ready(p: &mut KillOnDrop) -> Result<()> {
    use std::io::BufRead;
    let out = p.0.stdout.take().context("publisher stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line)?;
    ensure!(
        line.trim() == "READY",
        "the publisher did not start: {line:?}"
    );
    Ok(())
}

/// Waits (bounded) for the publisher to finish its STOP/FIN exchange; returns its stderr as
/// context for a failure.
fn finish_publisher(mut p: KillOnDrop) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = p.0.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = p.0.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return Ok(if status.success() {
                String::new()
            } else {
                format!("; publisher {status}: {}", err.trim())
            });
        }
        if Instant::now() > deadline {
            return Ok("; the publisher did not exit within 15 s (killed)".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn measured(
    m: Measured,
    workload: &str,
    wan: WanProfile,
    method: &str,
    size: u64,
    rep: u32,
) -> Cell {
    let r = &m.report;
    let a = &r.arrivals;
    let (received, expected) = (a.samples_received, a.samples_expected);
    let gb = (received * size) as f64 / 1e9;
    let per_gb = |s: f64| if gb > 0.0 { s / gb } else { 0.0 };
    let mut error = None;
    if received < expected {
        error = Some(format!("{received} of {expected} samples arrived"));
    }
    for (n, what) in [
        (r.lost, "lost"),
        (r.reordered, "reordered"),
        (r.duplicates, "duplicate"),
        (r.size_mismatches, "wrong-length"),
    ] {
        if n > 0 {
            error = Some(format!("{n} {what} messages"));
        }
    }
    Cell {
        ok: error.is_none(),
        error,
        samples_expected: expected,
        samples_received: received,
        elapsed_s: Some(a.elapsed_s),
        goodput_gbps: Some(a.goodput_gbps),
        efficiency_pct: Some(a.efficiency_pct),
        jitter_us: Some(a.jitter_us),
        mean_gap_us: Some(a.mean_gap_us),
        latency_p50_us: r.latency_p50_us,
        latency_p99_us: r.latency_p99_us,
        latency_max_us: r.latency_max_us,
        machine_cpu_s_per_gb: Some(per_gb(m.machine_cpu_s)),
        gateway_cpu_s_per_gb: m.gateway_cpu_s.map(|[a, b]| per_gb(a + b)),
        gn1_cpu_s_per_gb: m.gateway_cpu_s.map(|[a, _]| per_gb(a)),
        gn2_cpu_s_per_gb: m.gateway_cpu_s.map(|[_, b]| per_gb(b)),
        peak_mem_mib: Some(mib(m.mem.machine)),
        gateway_rss_mib: m.gateway_cpu_s.map(|_| mib(m.mem.gateways)),
        fin_ack: r.fin_ack,
        ..failed(workload, wan, method, size, rep, "")
    }
}

/// A cell that failed with `error`; the base every measured cell fills in.
fn failed(workload: &str, wan: WanProfile, method: &str, size: u64, rep: u32, error: &str) -> Cell {
    Cell {
        workload: workload.into(),
        rtt: wan.name().into(),
        rtt_ms: Some(wan.rtt().as_secs_f64() * 1e3),
        method: method.into(),
        size,
        rep,
        ok: false,
        error: Some(error.into()),
        samples_expected: 0,
        samples_received: 0,
        elapsed_s: None,
        goodput_gbps: None,
        efficiency_pct: None,
        jitter_us: None,
        mean_gap_us: None,
        latency_p50_us: None,
        latency_p99_us: None,
        latency_max_us: None,
        machine_cpu_s_per_gb: None,
        gateway_cpu_s_per_gb: None,
        gn1_cpu_s_per_gb: None,
        gn2_cpu_s_per_gb: None,
        peak_mem_mib: None,
        gateway_rss_mib: None,
        fin_ack: None,
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// A one-line progress bar on stderr per finished cell, with an ETA from the cells so far.
struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    measured: usize,
}

impl Progress {
    fn new(total: usize, done: usize) -> Self {
        Self {
            total,
            done,
            started: Instant::now(),
            measured: 0,
        }
    }

    fn step(&mut self, cell: Option<&Cell>) {
        self.done += 1;
        self.measured += 1;
        let frac = self.done as f64 / self.total.max(1) as f64;
        let width = 24;
        let filled = ((frac * width as f64) as usize).min(width);
        let per_cell = self.started.elapsed().as_secs_f64() / self.measured as f64;
        let eta = per_cell * self.total.saturating_sub(self.done) as f64;
        let what = cell.map_or("failed deployment".to_owned(), |c| {
            if c.ok {
                format!(
                    "{} {} {} {} rep {}: {:.3} Gbit/s, jitter {:.0} us",
                    c.workload,
                    c.rtt,
                    c.method,
                    model::size_label(c.size),
                    c.rep,
                    c.goodput_gbps.unwrap_or(0.0),
                    c.jitter_us.unwrap_or(0.0)
                )
            } else {
                format!(
                    "{} {} {} {} rep {}: FAILED {}",
                    c.workload,
                    c.rtt,
                    c.method,
                    model::size_label(c.size),
                    c.rep,
                    c.error.as_deref().unwrap_or("")
                )
            }
        });
        eprintln!(
            "[{}{}] {:>4}/{} ETA {:>4.0} s  {what}",
            "#".repeat(filled),
            ".".repeat(width - filled),
            self.done,
            self.total,
            eta
        );
    }
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%FT%TZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// `s2bench matrix`: what to measure (explicit options win over the profile's defaults) and
/// how to run.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The everyday profile, a few minutes: sizes 512,8K,128K,1M, 2 runs of 64 MiB (other
    /// options still override it). Without it: the paper's 12 sizes, 3 runs of 1 GiB.
    #[arg(long)]
    quick: bool,
    /// Methods, comma separated (default: all that can run the workloads): direct, copy,
    /// copy-tls, splice, sockmap, dpdk, quic, quic-dpdk (the QUIC tunnel on the DPDK ports),
    /// quic-direct and quic-relay (QUIC apps: --workloads tcp only), haproxy, nginx, socat.
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    /// Sample (message) sizes, comma separated, e.g. 512,4K,1M.
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    sizes: Option<Vec<u64>>,
    /// WAN profiles between the gateways, comma separated: none, lan (0.44 ms RTT), metro
    /// (5.5), shortwan (24.3), wan (58.2), longwan (143.7). Default: lan,wan.
    #[arg(long, value_delimiter = ',')]
    rtts: Option<Vec<String>>,
    /// Runs per cell (median and spread are reported).
    #[arg(long)]
    repeat: Option<u32>,
    /// Bytes each run publishes (samples = dataset / size, as the paper).
    #[arg(long, value_parser = parse_size)]
    dataset: Option<u64>,
    /// Workloads, comma separated: zmq (the paper's ZeroMQ pub/sub), tcp (raw TCP with
    /// stamped messages: adds one-way latency).
    #[arg(long, value_delimiter = ',', default_value = "zmq")]
    workloads: Vec<String>,
    /// Stop starting new cells after this many minutes (the run can be resumed).
    #[arg(long = "max-minutes", default_value_t = 120.0)]
    max_minutes: f64,
    /// Pin the SciStream-RS gateways' data paths: GN1 on these cores, e.g. 0.
    #[arg(long = "gn1-cores", requires = "gn2_cores")]
    gn1_cores: Option<String>,
    /// Pin GN2's data path on these cores, e.g. 1.
    #[arg(long = "gn2-cores", requires = "gn1_cores")]
    gn2_cores: Option<String>,
    /// Output directory: cells.jsonl (resume log), matrix.json, matrix.csv, plots, report.md.
    /// Default: results/matrix-quick or results/matrix-full.
    #[arg(long = "out-dir")]
    out_dir: Option<PathBuf>,
    /// Discard cells already in the output directory instead of resuming.
    #[arg(long)]
    fresh: bool,
    /// Do not render the report.
    #[arg(long = "no-report")]
    no_report: bool,
}

pub(crate) fn main(a: Args) -> Result<()> {
    let o = RunOptions {
        out_dir: a.out_dir.clone().unwrap_or_else(|| {
            PathBuf::from(if a.quick {
                "results/matrix-quick"
            } else {
                "results/matrix-full"
            })
        }),
        max_minutes: a.max_minutes,
        fresh: a.fresh,
        report: !a.no_report,
    };
    run(&a.plan(), &o)
}

impl Args {
    /// The full matrix: every method the workloads allow, the paper's twelve sizes, LAN and WAN, three runs of
    /// 1 GiB each. The quick profile (a few minutes): four sizes, two runs of 64 MiB.
    pub(crate) fn plan(&self) -> Plan {
        // Every method that can run the chosen workloads: the QUIC-app methods carry only the
        // stamped-message workload.
        let tcp_only = self.workloads.iter().all(|w| w == "tcp");
        let all = || {
            deploy::METHODS
                .iter()
                .filter(|m| tcp_only || !deploy::quic_apps(m))
                .map(|m| (*m).to_owned())
                .collect()
        };
        let (profile, sizes, repeat, dataset) = if self.quick {
            ("quick", vec![512, 8 << 10, 128 << 10, 1 << 20], 2, 64 << 20)
        } else {
            ("full", paper_sizes(), 3, 1 << 30)
        };
        Plan {
            profile: profile.into(),
            methods: self.methods.clone().unwrap_or_else(all),
            sizes: self.sizes.clone().unwrap_or(sizes),
            rtts: self
                .rtts
                .clone()
                .unwrap_or_else(|| vec!["lan".into(), "wan".into()]),
            repeat: self.repeat.unwrap_or(repeat),
            dataset_bytes: self.dataset.unwrap_or(dataset),
            workloads: self.workloads.clone(),
            cores: self.gn1_cores.clone().zip(self.gn2_cores.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::Args,
    }

    fn plan(argv: &[&str]) -> super::Plan {
        let mut all = vec!["s2bench"];
        all.extend_from_slice(argv);
        Cli::parse_from(all).args.plan()
    }

    #[test]
    fn default_methods_fit_the_workloads() {
        // ZeroMQ has no QUIC apps: the default leaves the QUIC-app methods out...
        let p = plan(&["--quick"]);
        assert!(p.methods.iter().any(|m| m == "quic"));
        assert!(
            !p.methods
                .iter()
                .any(|m| m == "quic-direct" || m == "quic-relay")
        );
        super::check(&p).unwrap();
        // ...and takes them with the stamped-message workload alone.
        let p = plan(&["--quick", "--workloads", "tcp"]);
        assert!(p.methods.iter().any(|m| m == "quic-relay"));
        super::check(&p).unwrap();
        // Asked for explicitly with zmq, they are refused with the reason.
        let p = plan(&["--methods", "quic-relay"]);
        let e = super::check(&p).unwrap_err().to_string();
        assert!(e.contains("--workloads tcp"), "{e}");
    }
}
