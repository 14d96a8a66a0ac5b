//! `s2delay`: the testbed's WAN emulator. Forwards every Ethernet frame
//! between two interfaces after a one-way delay, optionally under a rate cap
//! and with random loss (see `docs/wan-emulation.md`). Needs root.
//!
//! Prints `READY` on stdout once both packet sockets are bound. SIGUSR1
//! writes a counter snapshot to `--stats`; SIGTERM/SIGINT stop it and print
//! the final counters as JSON on stderr (and to `--stats`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;
use testbed::units::parse_size;
use testbed::wan::{DelayConfig, WanLink, WanProfile, driver, parse_rate};

/// WAN emulator: a delay line between two interfaces (AF_PACKET, no netem).
#[derive(Debug, Parser)]
#[command(name = "s2delay", version)]
struct Cli {
    /// First interface; frames read here are sent on --b after the delay.
    #[arg(long)]
    a: String,
    /// Second interface; frames read here are sent on --a after the delay.
    #[arg(long)]
    b: String,
    /// One-way delay in milliseconds (fractions allowed), added in each
    /// direction. Required unless --profile is given.
    #[arg(long = "delay-ms", required_unless_present = "profile")]
    delay_ms: Option<f64>,
    /// A WAN profile instead of --delay-ms: none, lan, metro, shortwan, wan,
    /// longwan (one-way delay = half the profile's RTT).
    #[arg(long, conflicts_with = "delay_ms")]
    profile: Option<WanProfile>,
    /// Rate cap per direction, e.g. 200mbit or 10gbit (decimal units, bit/s,
    /// Ethernet frame bits). Default: no cap.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<u64>,
    /// Frame-loss probability per direction, between 0 and 1.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Queue limit per direction in bytes (binary suffixes K, M, G); default:
    /// rate x delay (10 Gbit/s if no cap), at least 1M.
    #[arg(long, value_parser = parse_size)]
    limit: Option<u64>,
    /// Seed of the loss RNG.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the counters as JSON here on SIGUSR1 and on exit.
    #[arg(long)]
    stats: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s2delay: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let delay = match (cli.profile, cli.delay_ms) {
        (Some(WanProfile::None), _) => bail!(
            "profile none means no delay line (a direct veth); give another profile or --delay-ms"
        ),
        (Some(p), _) => p.one_way_delay(),
        (None, Some(ms)) if ms.is_finite() && ms >= 0.0 => Duration::from_secs_f64(ms / 1e3),
        (None, Some(ms)) => bail!("invalid --delay-ms {ms}: give a number of milliseconds >= 0"),
        // clap requires one of the two.
        (None, None) => bail!("give --delay-ms or --profile"),
    };
    let limit_bytes = cli.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let link = WanLink {
        profile: cli.profile,
        delay,
        rate_bps: cli.rate,
        loss: cli.loss,
        limit_bytes,
        seed: cli.seed,
    };
    let config = DelayConfig {
        a: cli.a,
        b: cli.b,
        a_to_b: link.a_to_b(),
        b_to_a: link.b_to_a(),
        stats: cli.stats,
    };
    let stats = driver::run(&config, || {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "READY");
        let _ = out.flush();
    })?;
    eprintln!("{}", serde_json::to_string(&stats)?);
    Ok(())
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
    fn needs_a_delay_or_a_profile() {
        assert!(Cli::try_parse_from(["s2delay", "--a", "x", "--b", "y"]).is_err());
        let cli = Cli::try_parse_from([
            "s2delay",
            "--a",
            "x",
            "--b",
            "y",
            "--profile",
            "metro",
            "--rate",
            "200mbit",
        ])
        .unwrap();
        assert_eq!(cli.profile, Some(WanProfile::Metro));
        assert_eq!(cli.rate, Some(200_000_000));
        let err = Cli::try_parse_from(["s2delay", "--a", "x", "--b", "y", "--profile", "mars"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("longwan"), "{err}");
    }
}
