//! The bulk source and sink.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What the sink saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SinkReport {
    pub(crate) bytes: u64,
    /// Connect to EOF.
    pub(crate) secs: f64,
    /// Connect to the first byte.
    pub(crate) first_byte_secs: Option<f64>,
}

pub(crate) fn source(listen: SocketAddr, bytes: u64, msg_size: usize) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    println!("READY");
    std::io::stdout().flush()?;
    let (mut s, _) = listener.accept()?;
    let msg = vec![0x5a_u8; msg_size.max(1)];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).map_or(msg.len(), |l| l.min(msg.len()));
        s.write_all(&msg[..n])?;
        left -= n as u64;
    }
    s.shutdown(Shutdown::Write)?;
    // Wait for the reader to finish so the close is clean.
    let mut b = [0u8; 64];
    let _ = s.read(&mut b);
    Ok(())
}

pub(crate) fn sink(connect: SocketAddr, buf: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let start = Instant::now();
    let mut s = loop {
        match TcpStream::connect(connect) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e).with_context(|| format!("connecting to {connect}")),
        }
    };
    let start = if start.elapsed() > Duration::from_millis(100) {
        Instant::now()
    } else {
        start
    };
    let mut b = vec![0u8; buf.max(1)];
    let (mut total, mut first) = (0u64, None);
    loop {
        let n = s.read(&mut b)?;
        if n == 0 {
            break;
        }
        if first.is_none() {
            first = Some(start.elapsed().as_secs_f64());
        }
        total += n as u64;
    }
    let report = SinkReport {
        bytes: total,
        secs: start.elapsed().as_secs_f64(),
        first_byte_secs: first,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// One-way latency probe: messages of `size` bytes carrying a sequence number and the send
/// time (CLOCK_MONOTONIC, which every network namespace of the host shares), sent at a light
/// pace so the path is idle between them.
pub(crate) const STAMP_HEADER: usize = 16;

/// Writes `seq` and `sent_ns` (little-endian) at the front of `msg`.
pub(crate) fn encode_stamp(msg: &mut [u8], seq: u64, sent_ns: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[8..16].copy_from_slice(&sent_ns.to_le_bytes());
}

/// Reads what [`encode_stamp`] wrote; `None` for a message shorter than the header.
pub(crate) fn decode_stamp(msg: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_le_bytes(msg.get(..8)?.try_into().ok()?);
    let sent = u64::from_le_bytes(msg.get(8..16)?.try_into().ok()?);
    Some((seq, sent))
}

pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub(crate) fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// What the stamp sink measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LatencyReport {
    pub(crate) messages: u64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) max_us: f64,
    /// Messages whose sequence number was not the next one (loss or reordering).
    pub(crate) out_of_order: u64,
}

pub(crate) fn stamp_source(
    listen: SocketAddr,
    count: u64,
    size: usize,
    interval: Duration,
) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    println!("READY");
    std::io::stdout().flush()?;
    let (mut s, _) = listener.accept()?;
    s.set_nodelay(true)?;
    let mut msg = vec![0u8; size.max(STAMP_HEADER)];
    for seq in 0..count {
        encode_stamp(&mut msg, seq, monotonic_ns());
        s.write_all(&msg)?;
        std::thread::sleep(interval);
    }
    s.shutdown(Shutdown::Write)?;
    let mut b = [0u8; 64];
    let _ = s.read(&mut b);
    Ok(())
}

pub(crate) fn stamp_sink(connect: SocketAddr, size: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match TcpStream::connect(connect) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e).with_context(|| format!("connecting to {connect}")),
        }
    };
    let mut msg = vec![0u8; size.max(STAMP_HEADER)];
    let (mut delays, mut expect, mut out_of_order) = (Vec::new(), 0u64, 0u64);
    loop {
        match s.read_exact(&mut msg) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let now = monotonic_ns();
        let (seq, sent) = decode_stamp(&msg).context("short message")?;
        if seq != expect {
            out_of_order += 1;
        }
        expect = seq + 1;
        delays.push(now.saturating_sub(sent));
    }
    delays.sort_unstable();
    let us = |ns: u64| ns as f64 / 1e3;
    let report = LatencyReport {
        messages: delays.len() as u64,
        p50_us: us(quantile(&delays, 0.50)),
        p99_us: us(quantile(&delays, 0.99)),
        max_us: us(delays.last().copied().unwrap_or(0)),
        out_of_order,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_short_messages_are_refused() {
        let mut m = [0u8; 64];
        encode_stamp(&mut m, 7, 123_456_789);
        assert_eq!(decode_stamp(&m), Some((7, 123_456_789)));
        assert_eq!(decode_stamp(&m[..15]), None);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[5], 0.99), 5);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
