//! `zpub` / `zsub`: the paper's ZeroMQ benchmark ([`super::protocol`]), through libzmq.
//!
//! libzmq choice: the `zmq` 0.9 crate over `zmq-sys` 0.11 links the **system** libzmq found by
//! pkg-config (Debian 12 `libzmq3-dev`, in `cargo xtask setup`'s APT list). `zmq` 0.10 was
//! rejected: its `zmq-sys` 0.12 always builds libzmq from C++ source (`zeromq-src`, needing a
//! C++ compiler and libsodium handling on the build machine), which is slower and more fragile
//! on a fresh machine than one apt package. `LIBZMQ_LIB_DIR` / `LIBZMQ_INCLUDE_DIR` (or
//! `LIBZMQ_PREFIX`) point `zmq-sys` at another libzmq if needed.
//!
//! Slow joiner: a PUB socket drops what it sends before a subscription arrives, so `zsub`
//! connects its SUB socket, waits on a socket monitor for the ZMTP handshake with the
//! publisher (through any number of TCP proxies) and a short grace for the subscription to
//! reach it, and only then sends SYNC. On the wire this is the paper's protocol unchanged.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde::{Deserialize, Serialize};
use testbed::parse_size;

use super::protocol::{
    FIN, FIN_ACK, PREFIX, STOP, TOPIC, data_message, is_stop, parse_sync_reply, sample_count,
    sync_reply,
};
use super::{Arrivals, Pacer, parse_hz};
use crate::metrics::GapStats;

/// `s2bench zpub`: the paper's `pub_bench.py`.
#[derive(Debug, Args)]
pub(crate) struct PubArgs {
    /// Data (PUB) port to bind.
    #[arg(long, default_value_t = 50000)]
    port: u16,
    /// Sync (REP) port to bind.
    #[arg(long, default_value_t = 51000)]
    sync: u16,
    /// Payload bytes per message (the 10-byte "SciStream:" prefix comes on top).
    #[arg(long, value_parser = parse_size, default_value = "1024")]
    size: u64,
    /// Bytes to send: samples = floor(dataset / size). K/M/G are binary (10G = 10 GiB); the
    /// paper took 10 GB as 10·10⁹, give --samples to match its counts exactly.
    #[arg(long, value_parser = parse_size, default_value = "10G")]
    dataset: u64,
    /// Messages to send, overriding --dataset.
    #[arg(long)]
    samples: Option<u64>,
    /// Pace to this many messages per second on an absolute schedule (the paper's --jitter is
    /// 1000); unpaced when absent.
    #[arg(long = "pace-hz", value_parser = parse_hz)]
    pace_hz: Option<f64>,
    /// Address to bind both sockets to ("*": all interfaces).
    #[arg(long = "bind-ip", default_value = "*")]
    bind_ip: String,
    /// PUB send high-water mark in messages; 0 is unbounded, as the paper (the whole dataset
    /// may queue in memory when the subscriber is slower than the publisher).
    #[arg(long, default_value_t = 0)]
    sndhwm: i32,
    /// Seconds to wait for the subscriber's SYNC.
    #[arg(long = "sync-timeout", default_value_t = 300)]
    sync_timeout: u64,
    /// Seconds to wait for FIN after the last message is queued (the subscriber may still be
    /// draining the queue then).
    #[arg(long = "fin-timeout", default_value_t = 300)]
    fin_timeout: u64,
}

/// `s2bench zsub`: the paper's `sub_bench.py`.
#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    /// Publisher host (name or IP).
    #[arg(long = "remote-host", default_value = "127.0.0.1")]
    remote_host: String,
    /// Publisher data (PUB) port.
    #[arg(long = "remote-port", default_value_t = 50000)]
    remote_port: u16,
    /// Publisher sync (REP) port.
    #[arg(long, default_value_t = 51000)]
    sync: u16,
    /// Also append the paper's log line ("Elapsed: … | Efficiency: …") to this file.
    #[arg(long = "log-file")]
    log_file: Option<PathBuf>,
    /// Fail when nothing arrives for this many seconds (sync reply, data, FIN_ACK).
    #[arg(long = "idle-timeout", default_value_t = 30)]
    idle_timeout: u64,
    /// Seconds to wait for the SUB socket's ZMTP handshake with the publisher before SYNC.
    #[arg(long = "connect-timeout", default_value_t = 10)]
    connect_timeout: u64,
    /// Milliseconds to wait after the handshake for the subscription to reach the publisher.
    #[arg(long = "grace-ms", default_value_t = 50)]
    grace_ms: u64,
}

/// What `zsub` prints (field names are parsed by the matrix runner).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ZmqReport {
    /// The clock starts right after the sync reply, as the paper's.
    #[serde(flatten)]
    pub(crate) arrivals: Arrivals,
    /// Data messages whose length was not size + 10 (counted in samples_received too).
    pub(crate) size_mismatches: u64,
    /// Whether the publisher answered FIN with FIN_ACK in time.
    pub(crate) fin_ack: bool,
}

fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("tcp://[{host}]:{port}")
    } else {
        format!("tcp://{host}:{port}")
    }
}

fn millis(secs: u64) -> i32 {
    i32::try_from(secs.saturating_mul(1000)).unwrap_or(i32::MAX)
}

/// Receives one message within the socket's receive timeout; `what` names it in errors.
fn recv_within(sock: &zmq::Socket, what: &str, secs: u64) -> Result<Vec<u8>> {
    match sock.recv_bytes(0) {
        Ok(m) => Ok(m),
        Err(zmq::Error::EAGAIN) => bail!("no {what} within {secs} s"),
        Err(e) => Err(e).with_context(|| format!("receiving {what}")),
    }
}

pub(crate) fn publish(a: &PubArgs) -> Result<()> {
    let samples = sample_count(a.size, a.dataset, a.samples)?;
    let size = usize::try_from(a.size).context("--size does not fit in memory")?;
    let ctx = zmq::Context::new();
    let rep = ctx.socket(zmq::REP)?;
    let sync_ep = endpoint(&a.bind_ip, a.sync);
    rep.bind(&sync_ep)
        .with_context(|| format!("binding the sync socket to {sync_ep}"))?;
    let data = ctx.socket(zmq::PUB)?;
    data.set_sndhwm(a.sndhwm)?;
    let data_ep = endpoint(&a.bind_ip, a.port);
    data.bind(&data_ep)
        .with_context(|| format!("binding the data socket to {data_ep}"))?;

    rep.set_rcvtimeo(millis(a.sync_timeout))?;
    recv_within(&rep, "SYNC request", a.sync_timeout).context("is zsub running?")?;
    rep.send(sync_reply(a.size, samples).as_bytes(), 0)?;

    let msg = data_message(size);
    let mut pacer = Pacer::new(a.pace_hz);
    for _ in 0..samples {
        pacer.wait();
        data.send(&msg[..], 0).context("sending a data message")?;
    }
    data.send(STOP, 0).context("sending STOP")?;

    rep.set_rcvtimeo(millis(a.fin_timeout))?;
    let fin = recv_within(&rep, "FIN", a.fin_timeout).with_context(|| {
        format!("after {samples} messages of {size} bytes; did the subscriber die?")
    });
    // Whatever happened, do not let queued messages to a dead peer hold the exit.
    data.set_linger(1000)?;
    let fin = fin?;
    ensure!(
        fin == FIN,
        "expected FIN on the sync socket, got {:?}",
        String::from_utf8_lossy(&fin)
    );
    rep.send(FIN_ACK, 0)?;
    rep.set_linger(1000)?;
    Ok(())
}

/// Connects `sub` to `ep` and waits for the ZMTP handshake, reported by a socket monitor.
fn connect_with_handshake(
    ctx: &zmq::Context,
    sub: &zmq::Socket,
    ep: &str,
    timeout: Duration,
) -> Result<()> {
    let monitor_ep = "inproc://s2bench-zsub-monitor";
    sub.monitor(monitor_ep, zmq::SocketEvent::ALL as i32)?;
    let mon = ctx.socket(zmq::PAIR)?;
    mon.connect(monitor_ep)?;
    sub.connect(ep)
        .with_context(|| format!("connecting the data socket to {ep}"))?;
    let deadline = Instant::now() + timeout;
    let mut last = "none";
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "no ZMTP handshake with the publisher at {ep} within {} s (last socket event: {last}): \
                 is zpub running there and the path (gateways) up? raise --connect-timeout on slow paths",
                timeout.as_secs()
            );
        }
        mon.set_rcvtimeo(i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1))?;
        let frames = match mon.recv_multipart(0) {
            Ok(f) => f,
            Err(zmq::Error::EAGAIN) => continue,
            Err(e) => return Err(e).context("reading the socket monitor"),
        };
        // Frame 1: u16 event, u32 value (native endian); frame 2: the endpoint.
        let Some(ev) = frames
            .first()
            .and_then(|f| f.get(..2))
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        else {
            continue;
        };
        use zmq::SocketEvent as E;
        last = match ev {
            e if e == E::HANDSHAKE_SUCCEEDED.to_raw() => break,
            e if e == E::CONNECTED.to_raw() => "CONNECTED",
            e if e == E::CONNECT_DELAYED.to_raw() => "CONNECT_DELAYED",
            e if e == E::CONNECT_RETRIED.to_raw() => "CONNECT_RETRIED (refused or unreachable)",
            e if e == E::DISCONNECTED.to_raw() => "DISCONNECTED",
            e if e == E::CLOSED.to_raw() => "CLOSED",
            e if e == E::HANDSHAKE_FAILED_NO_DETAIL.to_raw()
                || e == E::HANDSHAKE_FAILED_PROTOCOL.to_raw()
                || e == E::HANDSHAKE_FAILED_AUTH.to_raw() =>
            {
                "HANDSHAKE_FAILED (the peer is not a ZeroMQ publisher?)"
            }
            _ => last,
        };
    }
    // The monitor stays attached; with its PAIR peer gone libzmq drops further events.
    Ok(())
}

pub(crate) fn subscribe(a: &SubArgs) -> Result<()> {
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB)?;
    sub.set_rcvhwm(0)?;
    sub.set_linger(0)?;
    sub.set_subscribe(TOPIC)?;
    let data_ep = endpoint(&a.remote_host, a.remote_port);
    connect_with_handshake(&ctx, &sub, &data_ep, Duration::from_secs(a.connect_timeout))?;
    std::thread::sleep(Duration::from_millis(a.grace_ms));

    let req = ctx.socket(zmq::REQ)?;
    req.set_linger(0)?;
    req.set_rcvtimeo(millis(a.idle_timeout))?;
    let sync_ep = endpoint(&a.remote_host, a.sync);
    req.connect(&sync_ep)
        .with_context(|| format!("connecting the sync socket to {sync_ep}"))?;
    req.send(super::protocol::SYNC_REQUEST, 0)?;
    let reply = recv_within(&req, "sync reply", a.idle_timeout)
        .with_context(|| format!("from {sync_ep}"))?;
    let (size, samples) = parse_sync_reply(&reply)?;
    let start = Instant::now();

    sub.set_rcvtimeo(millis(a.idle_timeout))?;
    let expected_len = PREFIX.len() as u64 + size;
    let (mut count, mut mismatches, mut last_arrival) = (0u64, 0u64, Duration::ZERO);
    let mut gaps = GapStats::default();
    let mut msg = zmq::Message::new();
    loop {
        match sub.recv(&mut msg, 0) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => bail!(
                "nothing arrived from {data_ep} for {} s: got {count} of {samples} messages \
                 (size {size}) and no STOP; is the path up?",
                a.idle_timeout
            ),
            Err(e) => return Err(e).context("receiving data"),
        }
        let at = start.elapsed();
        if is_stop(&msg) {
            break;
        }
        count += 1;
        if msg.len() as u64 != expected_len {
            mismatches += 1;
        }
        gaps.arrival(at);
        last_arrival = at;
    }

    let elapsed = last_arrival.as_secs_f64();
    req.send(FIN, 0)?;
    let fin_ack = match recv_within(&req, "FIN_ACK", a.idle_timeout) {
        Ok(r) if r == FIN_ACK => true,
        Ok(r) => {
            eprintln!(
                "s2bench zsub: warning: expected FIN_ACK, got {:?}",
                String::from_utf8_lossy(&r)
            );
            false
        }
        Err(e) => {
            eprintln!("s2bench zsub: warning: {e:#}");
            false
        }
    };
    if mismatches > 0 {
        eprintln!(
            "s2bench zsub: error: {mismatches} of {count} messages were not {expected_len} bytes \
             (announced size {size} + the {}-byte prefix)",
            PREFIX.len()
        );
    }
    let report = ZmqReport {
        arrivals: Arrivals::new("zmq", size, samples, count, elapsed, &gaps),
        size_mismatches: mismatches,
        fin_ack,
    };
    if let Some(path) = &a.log_file {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the log file {}", path.display()))?;
        writeln!(f, "{}", log_line(&report.arrivals))
            .with_context(|| format!("writing the log file {}", path.display()))?;
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The paper's `sub_bench.py` log line (seconds, Gbit/s, seconds, seconds, percent).
fn log_line(r: &Arrivals) -> String {
    format!(
        "Elapsed: {} secs. | Throughput: {} | Jitter: {} | Inter-message Space: {} | Efficiency: {}",
        r.elapsed_s,
        r.goodput_gbps,
        r.jitter_us / 1e6,
        r.mean_gap_us / 1e6,
        r.efficiency_pct
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_bracket_ipv6() {
        assert_eq!(endpoint("10.0.0.1", 7000), "tcp://10.0.0.1:7000");
        assert_eq!(endpoint("*", 50000), "tcp://*:50000");
        assert_eq!(endpoint("::1", 5), "tcp://[::1]:5");
    }

    #[test]
    fn log_line_in_the_paper_format() {
        let r = Arrivals {
            workload: "zmq".into(),
            size: 1024,
            samples_expected: 4,
            samples_received: 4,
            elapsed_s: 2.5,
            goodput_gbps: 1.25,
            efficiency_pct: 100.0,
            jitter_us: 30.0,
            mean_gap_us: 4.0,
        };
        assert_eq!(
            log_line(&r),
            "Elapsed: 2.5 secs. | Throughput: 1.25 | Jitter: 0.00003 | Inter-message Space: 0.000004 | Efficiency: 100"
        );
    }
}
