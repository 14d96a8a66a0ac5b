//! `s2testbed`: build the Fig. 5 namespace testbed and run verifiable
//! producer/consumer traffic over it.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};
use testbed::scenario::ScenarioOptions;
use testbed::topology::{DEFAULT_MTU, DEFAULT_PREFIX, Host, Topology};
use testbed::traffic::{self, TransferReport};
use testbed::units::parse_size;
use testbed::wan::{WanLink, WanProfile, parse_rate};

mod demo;

/// Network-namespace testbed (the paper's Fig. 5 topology) and traffic tools
/// for SciStream-RS.
#[derive(Debug, Parser)]
#[command(name = "s2testbed", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// The emulated WAN between GN1 and GN2.
#[derive(Debug, Args)]
struct WanArgs {
    /// WAN profile by gateway RTT: none (direct veth), lan (0.44 ms), metro (5.5 ms),
    /// shortwan (24.3 ms), wan (58.2 ms), longwan (143.7 ms). Anything but none runs the
    /// s2delay delay line in a sixth namespace PREFIX-wan.
    #[arg(long, default_value = "none")]
    wan: WanProfile,
    /// Rate cap of the emulated WAN per direction, e.g. 200mbit or 10gbit (decimal, bit/s).
    /// Default: no cap. Needs a profile other than none.
    #[arg(long = "wan-rate", value_parser = parse_rate)]
    wan_rate: Option<u64>,
    /// Frame-loss probability of the emulated WAN per direction, between 0 and 1.
    #[arg(long = "wan-loss", default_value_t = 0.0)]
    wan_loss: f64,
    /// Queue limit of the emulated WAN per direction in bytes (binary suffixes K, M, G).
    /// Default: rate x one-way delay (10 Gbit/s if no cap), at least 1M.
    #[arg(long = "wan-limit", value_parser = parse_size)]
    wan_limit: Option<u64>,
}

impl WanArgs {
    /// The link to emulate, or `None` for a direct veth.
    fn link(&self) -> Result<Option<WanLink>> {
        let Some(mut link) = self.wan.link() else {
            anyhow::ensure!(
                self.wan_rate.is_none() && self.wan_loss == 0.0 && self.wan_limit.is_none(),
                "--wan-rate, --wan-loss and --wan-limit need an emulated WAN; give --wan lan, \
                 metro, shortwan, wan or longwan"
            );
            return Ok(None);
        };
        link.rate_bps = self.wan_rate;
        link.loss = self.wan_loss;
        link.limit_bytes = self
            .wan_limit
            .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
        link.a_to_b().validate()?;
        Ok(Some(link))
    }
}

/// Which testbed to act on.
#[derive(Debug, Args)]
struct PrefixArg {
    /// Namespace-name prefix: the namespaces are PREFIX-prod, -gn1, -gn2,
    /// -cons and -ctl.
    #[arg(long, env = "S2TB_PREFIX", default_value = DEFAULT_PREFIX)]
    prefix: String,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the testbed (needs root). Rebuilds it if it already exists.
    Up {
        #[command(flatten)]
        prefix: PrefixArg,
        /// MTU of the data links (LANs and WAN); the control network uses 1500.
        #[arg(long, default_value_t = DEFAULT_MTU)]
        mtu: u32,
        #[command(flatten)]
        wan: WanArgs,
    },
    /// Build a testbed with a WAN profile, measure ping RTT (20 x 10 ms) and one verified TCP
    /// transfer GN1 -> GN2 against the profile, print the result as JSON (stdout) and
    /// markdown (stderr), and tear the testbed down (needs root).
    WanCheck {
        /// Testbed name prefix (namespaces PREFIX-prod, ..., PREFIX-wan).
        #[arg(long, default_value = "s2wan")]
        prefix: String,
        #[command(flatten)]
        wan: WanArgs,
        /// Bytes of the TCP transfer; binary suffixes K, M, G (1G = 2^30).
        #[arg(long, default_value = "256M", value_parser = parse_size)]
        bytes: u64,
        /// MTU of the data links.
        #[arg(long, default_value_t = DEFAULT_MTU)]
        mtu: u32,
    },
    /// Remove the testbed's namespaces (needs root). No error if absent.
    Down {
        #[command(flatten)]
        prefix: PrefixArg,
    },
    /// Show the testbed's namespaces and addresses; exits nonzero unless all
    /// namespaces exist.
    Status {
        #[command(flatten)]
        prefix: PrefixArg,
    },
    /// Listen, print READY once bound, then on every connection send a
    /// deterministic pattern (seed SEED+i on listener i) while hashing what
    /// arrives; print one JSON report per connection to stdout.
    Producer {
        /// Addresses to listen on, comma-separated (listener i is stream i;
        /// port 0 picks a free port, printed on stderr).
        #[arg(long, value_delimiter = ',', required = true)]
        listen: Vec<SocketAddr>,
        /// Bytes to send per connection; binary suffixes K, M, G, T (1G = 2^30).
        #[arg(long, default_value = "1G", value_parser = parse_size)]
        bytes: u64,
        /// Seed base: stream i sends seed SEED+i and expects SEED+1000+i.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Connections to accept on each listener.
        #[arg(long, default_value_t = 1, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
        conns: usize,
    },
    /// The two-gateway demo: builds the testbed, starts s2cs on both gateways, sets a session
    /// up with `s2uc connect`, streams producer → consumer (and back) through both gateways,
    /// prints goodput and verifies every byte, then releases everything.
    Demo {
        /// Testbed name prefix (namespaces PREFIX-prod, PREFIX-gn1, ...).
        #[arg(long, default_value = "s2demo")]
        prefix: String,
        /// Parallel streams (num_conn).
        #[arg(long, default_value_t = 4)]
        streams: usize,
        /// Bytes per stream producer → consumer; binary suffixes (1G = 2^30).
        #[arg(long, default_value = "256M", value_parser = parse_size)]
        bytes: u64,
        /// Bytes per stream consumer → producer.
        #[arg(long = "reverse-bytes", default_value = "16M", value_parser = parse_size)]
        reverse_bytes: u64,
        /// Data-path engine of both gateways: copy (TLS on the WAN), quic (the QUIC tunnel), or a
        /// plaintext one with --wan-plaintext: splice (implies it), sockmap, dpdk (the gateways'
        /// data veths become DPDK ports).
        #[arg(long, default_value = "copy")]
        engine: String,
        /// Run the WAN leg unencrypted (required by splice).
        #[arg(long = "wan-plaintext")]
        wan_plaintext: bool,
        /// Use upstream's two-step flow (inbound-request, outbound-request) instead of connect.
        #[arg(long = "two-step")]
        two_step: bool,
        /// MTU of the data links.
        #[arg(long, default_value_t = DEFAULT_MTU)]
        mtu: u32,
        #[command(flatten)]
        wan: WanArgs,
    },
    /// Connect to every address (stream i = i-th address), send a
    /// deterministic pattern (seed SEED+1000+i) while hashing what arrives;
    /// print one JSON report per stream to stdout and a goodput summary to
    /// stderr.
    Consumer {
        /// Addresses to connect to, comma-separated; refused connections are
        /// retried for 10 s.
        #[arg(long, value_delimiter = ',', required = true)]
        connect: Vec<SocketAddr>,
        /// Bytes to send per stream; binary suffixes K, M, G, T (1G = 2^30).
        #[arg(long, default_value = "1G", value_parser = parse_size)]
        bytes: u64,
        /// Seed base: stream i sends seed SEED+1000+i and expects SEED+i.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("s2testbed: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Up { prefix, mtu, wan } => {
            let topo = Topology {
                prefix: prefix.prefix,
                mtu,
                wan: wan.link()?,
            };
            topo.up()?;
            let link = topo
                .wan
                .as_ref()
                .map_or_else(|| "direct veth".to_owned(), WanLink::describe);
            eprintln!("s2testbed: testbed {:?} is up (WAN: {link})", topo.prefix);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::WanCheck {
            prefix,
            wan,
            bytes,
            mtu,
        } => {
            let topo = Topology {
                prefix,
                mtu,
                wan: wan.link()?,
            }
            .up_guarded()?;
            let report =
                testbed::wan::check::check(&topo, &testbed::scenario::default_bin_dir(), bytes)?;
            topo.teardown()?;
            let mut out = io::stdout().lock();
            serde_json::to_writer(&mut out, &report)?;
            writeln!(out)?;
            eprintln!("{}", wan_check_markdown(&report));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down { prefix } => {
            Topology::with_prefix(prefix.prefix).down()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { prefix } => status(&Topology::with_prefix(prefix.prefix)),
        Cmd::Producer {
            listen,
            bytes,
            seed,
            conns,
        } => {
            let listeners = traffic::bind_producer(&listen)?;
            for l in &listeners {
                eprintln!("s2testbed producer: listening on {}", l.local_addr()?);
            }
            {
                let mut out = io::stdout().lock();
                writeln!(out, "READY")?;
                out.flush()?;
            }
            let reports = traffic::serve_producer(listeners, bytes, seed, conns)?;
            print_reports(&reports)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Demo {
            prefix,
            streams,
            bytes,
            reverse_bytes,
            engine,
            wan_plaintext,
            two_step,
            mtu,
            wan,
        } => {
            let mut options = ScenarioOptions::new(&prefix);
            options.wan = wan.link()?;
            options.engine = engine;
            options.wan_plaintext = wan_plaintext || options.engine == "splice";
            options.mtu = mtu;
            demo::run(options, streams, bytes, reverse_bytes, two_step)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Consumer {
            connect,
            bytes,
            seed,
        } => {
            let reports = traffic::run_consumer(&connect, bytes, seed)?;
            print_reports(&reports)?;
            eprintln!("{}", summary(&reports));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn status(topo: &Topology) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    let mut all_present = true;
    for host in Host::ALL {
        let ns = topo.ns(host);
        if !topo.host_exists(host) {
            writeln!(out, "{ns}: absent")?;
            all_present = false;
            continue;
        }
        writeln!(out, "{ns}:")?;
        for iface in topo
            .interfaces(host)
            .with_context(|| format!("listing interfaces of {ns}"))?
        {
            writeln!(
                out,
                "  {:<6} {:<8} {}",
                iface.name,
                iface.state,
                iface.addrs.join(" ")
            )?;
        }
    }
    if let Some(ifaces) = topo
        .wan_interfaces()
        .context("listing the WAN emulator's interfaces")?
    {
        writeln!(out, "{} (WAN emulator, s2delay):", topo.wan_ns())?;
        for iface in ifaces {
            writeln!(out, "  {:<6} {:<8}", iface.name, iface.state)?;
        }
    }
    if !all_present {
        writeln!(
            out,
            "testbed {:?} is absent or incomplete; build it with: s2testbed up --prefix {}",
            topo.prefix, topo.prefix
        )?;
    }
    Ok(if all_present {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One markdown table row: profile, RTT expected / measured, goodput, delay-line counters.
fn wan_check_markdown(r: &testbed::wan::check::WanCheck) -> String {
    let counters = r.delay_line.as_ref().map_or_else(
        || "-".to_owned(),
        |s| {
            format!(
                "a->b {} frames, {} lost, {} full, max queue {} B; b->a {} frames",
                s.a_to_b.line.forwarded,
                s.a_to_b.line.dropped_loss,
                s.a_to_b.line.dropped_full,
                s.a_to_b.line.max_queued_bytes,
                s.b_to_a.line.forwarded
            )
        },
    );
    format!(
        "| link | RTT expected (ms) | ping min/avg/max (ms) | TCP GN1->GN2 | delay line |\n\
         |---|---|---|---|---|\n\
         | {} | {:.2} | {:.3}/{:.3}/{:.3} | {} MiB in {:.2} s = {:.3} Gbit/s | {counters} |",
        r.link,
        r.rtt_expected_ms,
        r.ping.min_ms,
        r.ping.avg_ms,
        r.ping.max_ms,
        r.transfer.bytes >> 20,
        r.transfer.elapsed_secs,
        r.transfer.goodput_gbps
    )
}

fn print_reports(reports: &[TransferReport]) -> Result<()> {
    let mut out = io::stdout().lock();
    for r in reports {
        serde_json::to_writer(&mut out, r)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// One-line aggregate goodput of a consumer run.
fn summary(reports: &[TransferReport]) -> String {
    let sent: u64 = reports.iter().map(|r| r.sent_bytes).sum();
    let received: u64 = reports.iter().map(|r| r.received_bytes).sum();
    let secs = reports
        .iter()
        .map(|r| r.elapsed_secs)
        .fold(0.0_f64, f64::max);
    let gbps = |bytes: u64| {
        if secs > 0.0 {
            bytes as f64 * 8.0 / secs / 1e9
        } else {
            0.0
        }
    };
    format!(
        "s2testbed consumer: {} streams in {secs:.3} s; sent {sent} B ({:.2} Gbit/s), \
         received {received} B ({:.2} Gbit/s), aggregate goodput {:.2} Gbit/s",
        reports.len(),
        gbps(sent),
        gbps(received),
        gbps(sent + received)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_sizes_and_lists() {
        let cli = Cli::try_parse_from([
            "s2testbed",
            "producer",
            "--listen",
            "127.0.0.1:5000,127.0.0.1:5001",
            "--bytes",
            "8M",
        ])
        .unwrap();
        match cli.command {
            Cmd::Producer {
                listen,
                bytes,
                seed,
                conns,
            } => {
                assert_eq!(listen.len(), 2);
                assert_eq!(bytes, 8 << 20);
                assert_eq!((seed, conns), (1, 1));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(
            Cli::try_parse_from(["s2testbed", "consumer", "--connect", "x", "--bytes", "1"])
                .is_err()
        );
        assert!(
            Cli::try_parse_from([
                "s2testbed",
                "producer",
                "--listen",
                "127.0.0.1:1",
                "--bytes",
                "1Q"
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from([
                "s2testbed",
                "producer",
                "--listen",
                "127.0.0.1:1",
                "--conns",
                "0"
            ])
            .is_err()
        );
    }

    #[test]
    fn summary_reports_goodput() {
        let r = TransferReport {
            stream: 0,
            sent_bytes: 1_000_000_000,
            sent_sha256: String::new(),
            received_bytes: 1_000_000_000,
            received_sha256: String::new(),
            first_byte_secs: Some(0.001),
            elapsed_secs: 1.0,
        };
        let s = summary(&[r]);
        assert!(s.contains("aggregate goodput 16.00 Gbit/s"), "{s}");
    }
}
