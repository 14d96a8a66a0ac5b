//! `s2bench`: benchmark harness. For now one suite, `gateways` (the Foundation issue's
//! benchmark), and the workloads of the paper's pub/sub matrix.
//!
//! - `s2bench source` / `s2bench sink`: a bulk sender writing fixed-size messages and a receiver
//!   that reports bytes and times as JSON (no hashing: the end-to-end tests verify integrity;
//!   here every cycle should go to moving bytes).
//! - `s2bench zpub` / `zsub`: the paper's ZeroMQ pub/sub benchmark (wire compatible with its
//!   `pub_bench.py` / `sub_bench.py`); `tpub` / `tsub`: stamped raw-TCP messages adding
//!   one-way latency and loss / reorder counts ([`pubsub`]).
//! - `s2bench gateways`: on the testbed, producer → GN1 → GN2 → consumer for each method (direct
//!   routing, SciStream-RS `copy` plaintext and TLS, `splice`, `sockmap`, haproxy, nginx stream,
//!   socat) and message size, repeated; reports goodput, ratio to direct, CPU-seconds per GB
//!   (whole machine and gateway processes), peak memory (machine-wide, so kernel socket queues
//!   count) and the session set-up time.

mod compare;
mod deploy;
mod dpdk_rx;
mod gateways;
mod load;
mod matrix;
mod metrics;
mod peers;
mod procstat;
mod pubsub;
mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use testbed::parse_size;

/// SciStream-RS benchmarks.
#[derive(Debug, Parser)]
#[command(name = "s2bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Listen, print READY, accept one connection, write BYTES in MSG_SIZE writes, close.
    Source {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, value_parser = parse_size)]
        bytes: u64,
        #[arg(long = "msg-size", value_parser = parse_size, default_value = "1M")]
        msg_size: u64,
    },
    /// Connect (retrying for 10 s), read to EOF, print a JSON report.
    Sink {
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long = "buf", value_parser = parse_size, default_value = "1M")]
        buf: u64,
    },
    /// The paper's ZeroMQ publisher (pub_bench.py): SYNC, SAMPLES messages, STOP, FIN.
    Zpub(pubsub::zeromq::PubArgs),
    /// The paper's ZeroMQ subscriber (sub_bench.py): prints goodput, efficiency and jitter as JSON.
    Zsub(pubsub::zeromq::SubArgs),
    /// Listen, print READY, send stamped fixed-size messages on one TCP connection.
    Tpub(pubsub::tcp::PubArgs),
    /// Connect, read stamped messages: goodput, jitter, one-way latency, loss and reordering as JSON.
    Tsub(pubsub::tcp::SubArgs),
    /// The gateway benchmark on the testbed (needs root and the peer proxies installed).
    Gateways {
        /// Methods, comma separated: direct, copy, copy-tls, splice, sockmap, dpdk, haproxy,
        /// nginx, socat.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "direct,copy,copy-tls,splice,sockmap,dpdk,haproxy,nginx,socat"
        )]
        methods: Vec<String>,
        /// Message (write) sizes, comma separated.
        #[arg(long = "msg-sizes", value_delimiter = ',', value_parser = parse_size, default_value = "4K,1M")]
        msg_sizes: Vec<u64>,
        /// Bytes per run.
        #[arg(long, value_parser = parse_size, default_value = "2G")]
        bytes: u64,
        /// Runs per cell (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Session set-ups to time (s2uc connect → first byte at the consumer).
        #[arg(long = "setup-runs", default_value_t = 20)]
        setup_runs: usize,
        /// Pin the SciStream-RS gateways' data paths: GN1 on these cores, e.g. 0.
        #[arg(long = "gn1-cores")]
        gn1_cores: Option<String>,
        /// Pin GN2's data path on these cores, e.g. 1.
        #[arg(long = "gn2-cores")]
        gn2_cores: Option<String>,
        /// Also measure one-way latency at light load with this many 64-byte stamped messages
        /// 1 ms apart per method (0: off).
        #[arg(long = "latency-count", default_value_t = 0)]
        latency_count: u64,
        /// Where to write the JSON results.
        #[arg(long, default_value = "results/bench-gateways.json")]
        out: PathBuf,
    },
    /// The paper's evaluation matrix on the testbed (methods × sample sizes × WAN profiles ×
    /// runs), resumable, then the report (plots and Markdown) in the output directory.
    Matrix {
        /// The everyday profile, a few minutes: sizes 512,8K,128K,1M, 2 runs of 64 MiB (other
        /// options still override it). Without it: the paper's 12 sizes, 3 runs of 1 GiB.
        #[arg(long)]
        quick: bool,
        /// Methods, comma separated (default: all): direct, copy, copy-tls, splice, sockmap,
        /// dpdk, haproxy, nginx, socat.
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
    },
    /// Packets per second through one dataplane lcore's receive path on net_null vdevs, beside
    /// dpdk-testpmd (rxonly and io) on the same devices, in one run.
    DpdkRx {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        secs: u64,
        /// Where to write the JSON results.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Figures (PNG, SVG) and report.md for one matrix run, with the paper's numbers beside ours.
    Report {
        /// The matrix run's results (matrix.json).
        #[arg(long = "in")]
        input: PathBuf,
        /// Directory for the figures and report.md (created if missing).
        #[arg(long = "out-dir")]
        out_dir: PathBuf,
    },
    /// Compare two matrix runs: medians, B/A and the changed cells, for goodput and jitter.
    Compare {
        /// The baseline run (matrix.json).
        a: PathBuf,
        /// The run compared against A (matrix.json).
        b: PathBuf,
        /// Relative change that counts (with disjoint min–max ranges), e.g. 0.10 for 10 %.
        #[arg(long, default_value_t = 0.10)]
        threshold: f64,
        /// Print Markdown tables instead of aligned text.
        #[arg(long)]
        markdown: bool,
    },
    /// (internal) the dataplane side of dpdk-rx, in its own process.
    #[command(hide = true)]
    DpdkRxChild {
        #[arg(long)]
        secs: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Source {
            listen,
            bytes,
            msg_size,
        } => load::source(listen, bytes, msg_size as usize),
        Command::Sink { connect, buf } => load::sink(connect, buf as usize),
        Command::Zpub(a) => pubsub::zeromq::publish(&a),
        Command::Zsub(a) => pubsub::zeromq::subscribe(&a),
        Command::Tpub(a) => pubsub::tcp::publish(&a),
        Command::Tsub(a) => pubsub::tcp::subscribe(&a),
        Command::Gateways {
            methods,
            msg_sizes,
            bytes,
            repeat,
            setup_runs,
            gn1_cores,
            gn2_cores,
            latency_count,
            out,
        } => gateways::run(&gateways::Plan {
            methods,
            msg_sizes,
            bytes,
            repeat,
            setup_runs,
            cores: gn1_cores.zip(gn2_cores),
            latency_count,
            out,
        }),
        Command::Matrix {
            quick,
            methods,
            sizes,
            rtts,
            repeat,
            dataset,
            workloads,
            max_minutes,
            gn1_cores,
            gn2_cores,
            out_dir,
            fresh,
            no_report,
        } => {
            let plan = matrix::Ask {
                quick,
                methods,
                sizes,
                rtts,
                repeat,
                dataset,
                workloads,
                cores: gn1_cores.zip(gn2_cores),
            }
            .plan();
            let out_dir = out_dir
                .unwrap_or_else(|| PathBuf::from(format!("results/matrix-{}", plan.profile)));
            matrix::run(
                &plan,
                &matrix::RunOptions {
                    out_dir,
                    max_minutes,
                    fresh,
                    report: !no_report,
                },
            )
        }
        Command::DpdkRx { secs, out } => dpdk_rx::run(secs, out.as_deref()),
        Command::DpdkRxChild { secs } => dpdk_rx::child(secs),
        Command::Report { input, out_dir } => report::run(&input, &out_dir),
        Command::Compare {
            a,
            b,
            threshold,
            markdown,
        } => compare::run(&a, &b, threshold, markdown),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s2bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
