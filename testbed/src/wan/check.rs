//! Measurements over the (emulated) WAN: ping RTT and one verified TCP
//! transfer GN1 → GN2, as run by `s2testbed wan-check` and the WAN tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;

use super::driver::DelayStats;
use super::profile::WanLink;
use crate::topology::{GN1_WAN_IP, GN2_WAN_IP, Host, Topology};
use crate::traffic::{TransferReport, expected_sha256, producer_seed};

/// The TCP port of the transfer's producer on GN1.
pub const TRANSFER_PORT: u16 = 5399;

/// `ping`'s round-trip summary, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PingStats {
    /// Echo requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// Smallest RTT.
    pub min_ms: f64,
    /// Mean RTT.
    pub avg_ms: f64,
    /// Largest RTT.
    pub max_ms: f64,
}

/// Pings GN2's WAN address from GN1 `count` times, `interval` apart.
pub fn ping_gn1_to_gn2(topo: &Topology, count: u32, interval: Duration) -> Result<PingStats> {
    let out = topo
        .command(Host::Gn1, "ping")
        .args(["-n", "-q", "-c", &count.to_string()])
        .args(["-i", &format!("{:.3}", interval.as_secs_f64())])
        .args(["-W", "2"])
        .arg(GN2_WAN_IP.to_string())
        .stdin(Stdio::null())
        .output()
        .context("running ping in gn1 (is iputils-ping installed?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "ping gn1 -> {GN2_WAN_IP} failed ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_ping(&text).with_context(|| format!("unexpected ping output: {text}"))
}

/// Parses `ping -q`'s summary (`N packets transmitted, M received` and
/// `rtt min/avg/max/mdev = a/b/c/d ms`).
pub fn parse_ping(text: &str) -> Option<PingStats> {
    let counts = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut fields = counts.split(',').map(str::trim);
    let sent = fields.next()?.split_whitespace().next()?.parse().ok()?;
    let received = fields.next()?.split_whitespace().next()?.parse().ok()?;
    let rtt = text.lines().find(|l| l.contains("min/avg/max"))?;
    let values = rtt.split('=').nth(1)?.split_whitespace().next()?;
    let mut v = values.split('/').map(|x| x.parse::<f64>().ok());
    Some(PingStats {
        sent,
        received,
        min_ms: v.next()??,
        avg_ms: v.next()??,
        max_ms: v.next()??,
    })
}

/// A verified TCP transfer from GN1 to GN2.
#[derive(Debug, Clone, Serialize)]
pub struct WanTransfer {
    /// Payload bytes received by GN2 (equal to the bytes asked for).
    pub bytes: u64,
    /// Seconds from connect to the last byte, as the receiver saw it.
    pub elapsed_secs: f64,
    /// Payload goodput, Gbit/s.
    pub goodput_gbps: f64,
}

/// Sends `bytes` of the deterministic pattern from GN1 (`s2testbed
/// producer`) to GN2 (`s2testbed consumer`) over one TCP connection and
/// checks their SHA-256. `bin_dir` holds `s2testbed`.
pub fn transfer_gn1_to_gn2(
    topo: &Topology,
    bin_dir: &Path,
    bytes: u64,
    seed: u64,
) -> Result<WanTransfer> {
    let bin = bin_dir.join("s2testbed");
    ensure!(
        bin.exists(),
        "{} is missing; build the workspace first (cargo build --release -p testbed)",
        bin.display()
    );
    let listen = format!("{GN1_WAN_IP}:{TRANSFER_PORT}");
    let mut producer = topo
        .command(Host::Gn1, &bin)
        .args(["producer", "--listen", &listen])
        .args(["--bytes", &bytes.to_string(), "--seed", &seed.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the producer in gn1")?;
    let stdout = producer.stdout.take().context("producer stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    if !matches!(lines.next(), Some(Ok(ref l)) if l.trim() == "READY") {
        let _ = producer.kill();
        let out = producer.wait_with_output()?;
        bail!(
            "the producer in gn1 did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let consumer = topo
        .command(Host::Gn2, &bin)
        .args(["consumer", "--connect", &listen, "--bytes", "0"])
        .args(["--seed", &seed.to_string()])
        .stdin(Stdio::null())
        .output()
        .context("running the consumer in gn2");
    let consumer = match consumer {
        Ok(c) if c.status.success() => c,
        other => {
            let _ = producer.kill();
            let _ = producer.wait();
            match other {
                Ok(c) => bail!(
                    "the consumer in gn2 failed ({}): {}",
                    c.status,
                    String::from_utf8_lossy(&c.stderr)
                ),
                Err(e) => return Err(e),
            }
        }
    };
    let status = producer.wait()?;
    ensure!(status.success(), "the producer in gn1 failed ({status})");
    let report: TransferReport = String::from_utf8_lossy(&consumer.stdout)
        .lines()
        .find(|l| l.trim_start().starts_with('{'))
        .context("the consumer printed no report")
        .and_then(|l| serde_json::from_str(l).context("bad consumer report"))?;
    let want = expected_sha256(producer_seed(seed, 0), bytes);
    ensure!(
        report.received_bytes == bytes && report.received_sha256 == want,
        "gn2 received {} bytes with SHA-256 {}, expected {bytes} bytes with {want}",
        report.received_bytes,
        report.received_sha256
    );
    let secs = report.elapsed_secs.max(1e-9);
    Ok(WanTransfer {
        bytes,
        elapsed_secs: report.elapsed_secs,
        goodput_gbps: bytes as f64 * 8.0 / secs / 1e9,
    })
}

/// What `s2testbed wan-check` measured against what the link emulates.
#[derive(Debug, Clone, Serialize)]
pub struct WanCheck {
    /// The link, described (`metro (RTT 5.50 ms, no rate cap, loss 0)`).
    pub link: String,
    /// The RTT the link adds, ms.
    pub rtt_expected_ms: f64,
    /// Measured ping RTT GN1 → GN2.
    pub ping: PingStats,
    /// The verified TCP transfer GN1 → GN2.
    pub transfer: WanTransfer,
    /// The delay line's counters after the transfer (`None` without one).
    pub delay_line: Option<DelayStats>,
}

/// Pings (20 × 10 ms) and transfers `bytes` GN1 → GN2 on a running testbed.
pub fn check(topo: &Topology, bin_dir: &Path, bytes: u64) -> Result<WanCheck> {
    // One ping first, so ARP (which crosses the delay line too) is done.
    ping_gn1_to_gn2(topo, 1, Duration::from_millis(10))?;
    let ping = ping_gn1_to_gn2(topo, 20, Duration::from_millis(10))?;
    let transfer = transfer_gn1_to_gn2(topo, bin_dir, bytes, 1)?;
    let delay_line = topo.wan_stats()?;
    Ok(WanCheck {
        link: topo
            .wan
            .as_ref()
            .map_or_else(|| "none (direct veth)".to_owned(), WanLink::describe),
        rtt_expected_ms: topo
            .wan
            .as_ref()
            .map_or(0.0, |l| l.rtt().as_secs_f64() * 1e3),
        ping,
        transfer,
        delay_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ping_summary() {
        let text = "PING 172.16.1.2 (172.16.1.2) 56(84) bytes of data.\n\n\
                    --- 172.16.1.2 ping statistics ---\n\
                    20 packets transmitted, 19 received, 5% packet loss, time 196ms\n\
                    rtt min/avg/max/mdev = 5.512/5.634/6.001/0.101 ms\n";
        let p = parse_ping(text).unwrap();
        assert_eq!((p.sent, p.received), (20, 19));
        assert_eq!((p.min_ms, p.avg_ms, p.max_ms), (5.512, 5.634, 6.001));
        assert_eq!(parse_ping("garbage"), None);
    }
}
