//! `s2bench`: benchmark harness. Suites on the testbed: `gateways` (bulk TCP through every
//! method) and `matrix` (the paper's pub/sub evaluation), plus `dpdk-rx`; the apps they run; and
//! the tools to read results (`report`, `compare`).
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
//! - `s2bench matrix`: the paper's evaluation, methods × sample sizes × WAN profiles × runs of the
//!   ZeroMQ (or stamped TCP) workload, resumable, into JSON/CSV and the [`report`] (plots like
//!   the paper's figures and a Markdown summary); `s2bench compare` diffs two runs
//!   (`docs/evaluation.md`).

mod compare;
mod deploy;
mod dpdk_relay;
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
    /// Listen on UDP, print READY, send stamped messages on one QUIC stream.
    Qpub(pubsub::quic::PubArgs),
    /// Connect over QUIC, read stamped messages: the same JSON report as tsub.
    Qsub(pubsub::quic::SubArgs),
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
    Matrix(matrix::Args),
    /// Packets per second through one dataplane lcore's receive path on net_null vdevs (frames
    /// for no one, and TCP resets to the port), beside dpdk-testpmd (rxonly and io) on the same
    /// devices, in one run.
    DpdkRx {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5)]
        secs: u64,
        /// Rounds of the three measurements, interleaved; medians are reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Where to write the JSON results.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// TCP goodput through one gateway lcore's smoltcp termination over net_memif at MTU 9000,
    /// beside the same links forwarding raw frames (the device ceiling), and the one-way latency
    /// the gateway adds at light load, in one run.
    DpdkRelay {
        /// Seconds measured per phase (after a warm-up).
        #[arg(long, default_value_t = 5)]
        secs: u64,
        /// Upper bound on the bytes the relay phase moves (K, M, G suffixes).
        #[arg(long, value_parser = parse_size, default_value = "16G")]
        bytes: u64,
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
    /// (internal) one phase of dpdk-relay, in its own process.
    #[command(hide = true)]
    DpdkRelayChild {
        #[arg(long)]
        phase: String,
        #[arg(long)]
        secs: u64,
        #[arg(long)]
        bytes: u64,
    },
    /// (internal) the dataplane side of dpdk-rx, in its own process.
    #[command(hide = true)]
    DpdkRxChild {
        #[arg(long)]
        secs: u64,
        #[arg(long, value_enum)]
        frames: dpdk_rx::Frames,
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
        Command::Qpub(a) => pubsub::quic::publish(&a),
        Command::Qsub(a) => pubsub::quic::subscribe(&a),
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
        Command::Matrix(a) => matrix::main(a),
        Command::DpdkRx { secs, repeat, out } => dpdk_rx::run(secs, repeat, out.as_deref()),
        Command::DpdkRxChild { secs, frames } => dpdk_rx::child(frames, secs),
        Command::DpdkRelay { secs, bytes, out } => dpdk_relay::run(secs, bytes, out.as_deref()),
        Command::DpdkRelayChild { phase, secs, bytes } => dpdk_relay::child(&phase, secs, bytes),
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
