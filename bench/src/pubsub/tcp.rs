//! `tpub` / `tsub`: stamped fixed-size messages over one raw TCP connection ([`super::framing`]),
//! for one-way latency (CLOCK_MONOTONIC is shared by every network namespace of a host), loss,
//! reordering and duplicates through a gateway, with the same goodput and jitter as `zsub`.
//!
//! `tsub` keeps one bit per announced message to classify sequence numbers and one `u32` per
//! message for latency ([`crate::metrics::Latencies`]): about 4.1 bytes per message.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde::{Deserialize, Serialize};
use testbed::parse_size;

use super::framing::{HEADER_LEN, Header, checked_size};
use super::protocol::sample_count;
use super::{Arrivals, Pacer, parse_hz};
use crate::metrics::{GapStats, Latencies};

/// `s2bench tpub`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("amount").required(true).args(["count", "dataset"])))]
pub(crate) struct PubArgs {
    /// Address to listen on; prints READY once listening, serves one connection.
    #[arg(long)]
    pub(crate) listen: SocketAddr,
    /// Bytes per message, header included (at least 32).
    #[arg(long, value_parser = parse_size)]
    pub(crate) size: u64,
    /// Messages to send.
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Bytes to send instead of --count: floor(dataset / size) messages.
    #[arg(long, value_parser = parse_size)]
    pub(crate) dataset: Option<u64>,
    /// Pace to this many messages per second on an absolute schedule; unpaced when absent.
    #[arg(long = "pace-hz", value_parser = parse_hz)]
    pub(crate) pace_hz: Option<f64>,
    /// Seconds to wait for a connection, and for the reader to close after the last message.
    #[arg(long = "idle-timeout", default_value_t = 30)]
    pub(crate) idle_timeout: u64,
}

/// `s2bench tsub`.
#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    /// The tpub (or the gateway in front of it) to connect to; retried for --connect-timeout.
    #[arg(long)]
    pub(crate) connect: SocketAddr,
    /// Seconds to keep retrying the connection.
    #[arg(long = "connect-timeout", default_value_t = 10)]
    pub(crate) connect_timeout: u64,
    /// Fail when nothing arrives for this many seconds.
    #[arg(long = "idle-timeout", default_value_t = 30)]
    pub(crate) idle_timeout: u64,
}

/// What `tsub` prints (field names are parsed by the matrix runner).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TcpReport {
    /// `samples_received` counts distinct sequence numbers (duplicates not counted); the clock
    /// starts when the connection is established.
    #[serde(flatten)]
    pub(crate) arrivals: Arrivals,
    pub(crate) latency_p50_us: f64,
    pub(crate) latency_p99_us: f64,
    pub(crate) latency_max_us: f64,
    /// Announced messages never received.
    pub(crate) lost: u64,
    /// Messages with a sequence number below one already received (not duplicates).
    pub(crate) reordered: u64,
    /// Messages whose sequence number was already received.
    pub(crate) duplicates: u64,
}

/// The largest stream `tsub` tracks (its bitmap is count / 8 bytes: 512 MiB here).
const MAX_COUNT: u64 = 1 << 32;

/// CLOCK_MONOTONIC in nanoseconds.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux, so
    // the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The message count of a publisher's arguments, checked against what `tsub` tracks.
pub(crate) fn message_count(size: u64, count: Option<u64>, dataset: Option<u64>) -> Result<u64> {
    let count = match (count, dataset) {
        (Some(n), _) => sample_count(size, 0, Some(n))?,
        (None, Some(d)) => sample_count(size, d, None)?,
        (None, None) => bail!("give --count or --dataset"),
    };
    ensure!(
        count <= MAX_COUNT,
        "{count} messages is more than tsub tracks ({MAX_COUNT}): use larger messages"
    );
    Ok(count)
}

/// Writes `count` stamped messages of `size` bytes to `w`.
pub(crate) fn send_messages(
    w: &mut impl Write,
    size: u64,
    count: u64,
    pace_hz: Option<f64>,
) -> Result<()> {
    let size32 = checked_size(size)?;
    let mut msg = vec![0x5a_u8; size32 as usize];
    let mut pacer = Pacer::new(pace_hz);
    for seq in 0..count {
        pacer.wait();
        Header {
            size: size32,
            seq,
            sent_ns: monotonic_ns(),
            count,
        }
        .encode(&mut msg)?;
        w.write_all(&msg)
            .with_context(|| format!("sending message {seq} of {count}"))?;
    }
    w.flush()?;
    Ok(())
}

pub(crate) fn publish(a: &PubArgs) -> Result<()> {
    checked_size(a.size)?;
    let count = message_count(a.size, a.count, a.dataset)?;
    let listener = TcpListener::bind(a.listen).with_context(|| format!("binding {}", a.listen))?;
    println!("READY");
    std::io::stdout().flush()?;
    let (mut s, _) = accept_within(&listener, Duration::from_secs(a.idle_timeout))?;
    s.set_nodelay(true)?;
    send_messages(&mut s, a.size, count, a.pace_hz)?;
    s.shutdown(Shutdown::Write)?;
    // Wait for the reader to finish so the close is clean.
    s.set_read_timeout(Some(Duration::from_secs(a.idle_timeout.max(1))))?;
    let mut b = [0u8; 64];
    let _ = s.read(&mut b);
    Ok(())
}

fn accept_within(listener: &TcpListener, timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((s, peer)) => {
                s.set_nonblocking(false)?;
                return Ok((s, peer));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                bail!("no subscriber connected within {} s", timeout.as_secs())
            }
            Err(e) => return Err(e).context("accepting the subscriber"),
        }
    }
}

fn connect_within(addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return Ok(s),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "connecting to {addr} for {} s: is tpub (or the gateway) listening?",
                        timeout.as_secs()
                    )
                });
            }
        }
    }
}

/// Fills `buf`; `Ok(false)` on a clean end of stream before its first byte.
fn read_full(s: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match s.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "stream ended inside a message, after {filled} of {} bytes",
                        buf.len()
                    ),
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Classifies sequence numbers of a stream of `count` messages.
#[derive(Debug)]
pub(crate) struct SeqTracker {
    seen: Vec<u64>,
    count: u64,
    highest: Option<u64>,
    distinct: u64,
    reordered: u64,
    duplicates: u64,
}

/// How one sequence number was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqClass {
    InOrder,
    Reordered,
    Duplicate,
}

impl SeqTracker {
    pub(crate) fn new(count: u64) -> Self {
        Self {
            seen: vec![0; count.div_ceil(64) as usize],
            count,
            highest: None,
            distinct: 0,
            reordered: 0,
            duplicates: 0,
        }
    }

    /// Records `seq`, which must be below the count (the header check guarantees it).
    pub(crate) fn record(&mut self, seq: u64) -> SeqClass {
        debug_assert!(seq < self.count);
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return SeqClass::Duplicate;
        }
        self.seen[word] |= bit;
        self.distinct += 1;
        match self.highest {
            Some(h) if seq < h => {
                self.reordered += 1;
                SeqClass::Reordered
            }
            _ => {
                self.highest = Some(seq);
                SeqClass::InOrder
            }
        }
    }

    pub(crate) fn distinct(&self) -> u64 {
        self.distinct
    }

    pub(crate) fn lost(&self) -> u64 {
        self.count - self.distinct
    }
}

pub(crate) fn subscribe(a: &SubArgs) -> Result<()> {
    let mut s = connect_within(a.connect, Duration::from_secs(a.connect_timeout))?;
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(a.idle_timeout.max(1))))?;
    let report = receive_messages(&mut s, start, "tcp", &a.connect.to_string(), a.idle_timeout)?;
    drop(s);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Reads stamped messages from `r` until a clean end of stream; the clock started at `start`.
/// `from` and `idle_timeout` only word the errors (the reader's timeout is the caller's).
pub(crate) fn receive_messages(
    r: &mut impl Read,
    start: Instant,
    workload: &str,
    from: &str,
    idle_timeout: u64,
) -> Result<TcpReport> {
    let idle = |e: std::io::Error, got: u64| -> anyhow::Error {
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            anyhow::anyhow!(
                "nothing arrived from {from} for {idle_timeout} s after {got} messages; is the \
                 path up?"
            )
        } else {
            anyhow::Error::new(e).context(format!("reading from {from} after {got} messages"))
        }
    };

    let mut head = [0u8; HEADER_LEN];
    if !read_full(r, &mut head).map_err(|e| idle(e, 0))? {
        bail!("{from} closed the connection before any message");
    }
    let first = Header::decode(&head).context("message 0")?;
    ensure!(
        first.count <= MAX_COUNT,
        "the stream announces {} messages, more than tsub tracks ({MAX_COUNT})",
        first.count
    );
    let (size, count) = (first.size as usize, first.count);
    let mut msg = vec![0u8; size];
    msg[..HEADER_LEN].copy_from_slice(&head);
    if !read_full(r, &mut msg[HEADER_LEN..]).map_err(|e| idle(e, 0))? && size > HEADER_LEN {
        bail!("stream ended inside message 0, after its header");
    }

    let mut seqs = SeqTracker::new(count);
    let mut gaps = GapStats::default();
    // Reserve for the announced stream, but no more than 64 MiB up front: a corrupt or hostile
    // count must not allocate before messages actually arrive.
    let mut lat = Latencies::with_capacity(usize::try_from(count.min(1 << 24)).unwrap_or(0));
    let mut last_arrival = Duration::ZERO;
    let mut received = 0u64;
    loop {
        let now_ns = monotonic_ns();
        let at = start.elapsed();
        let h = Header::decode(&msg).with_context(|| format!("message {received}"))?;
        ensure!(
            h.size as usize == size && h.count == count,
            "message {received} announces size {} and count {}, the stream started with size {size} \
             and count {count}",
            h.size,
            h.count
        );
        received += 1;
        if seqs.record(h.seq) != SeqClass::Duplicate {
            gaps.arrival(at);
            last_arrival = at;
            lat.record_ns(now_ns.saturating_sub(h.sent_ns));
        }
        if !read_full(r, &mut msg).map_err(|e| idle(e, received))? {
            break;
        }
    }

    let distinct = seqs.distinct();
    let elapsed = last_arrival.as_secs_f64();
    let l = lat.summary();
    Ok(TcpReport {
        arrivals: Arrivals::new(workload, size as u64, count, distinct, elapsed, &gaps),
        latency_p50_us: l.p50_us,
        latency_p99_us: l.p99_us,
        latency_max_us: l.max_us,
        lost: seqs.lost(),
        reordered: seqs.reordered,
        duplicates: seqs.duplicates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_classified() {
        let mut t = SeqTracker::new(130);
        assert_eq!(t.record(0), SeqClass::InOrder);
        assert_eq!(t.record(2), SeqClass::InOrder);
        assert_eq!(t.record(1), SeqClass::Reordered);
        assert_eq!(t.record(2), SeqClass::Duplicate);
        assert_eq!(t.record(129), SeqClass::InOrder);
        assert_eq!(t.record(64), SeqClass::Reordered);
        assert_eq!(t.record(64), SeqClass::Duplicate);
        assert_eq!(t.distinct(), 5);
        assert_eq!(t.lost(), 125);
        assert_eq!((t.reordered, t.duplicates), (2, 2));
    }

    #[test]
    fn read_full_tells_clean_end_from_truncation() {
        let mut buf = [0u8; 4];
        let mut empty: &[u8] = &[];
        assert!(!read_full(&mut empty, &mut buf).unwrap());
        let mut whole: &[u8] = &[1, 2, 3, 4];
        assert!(read_full(&mut whole, &mut buf).unwrap());
        assert_eq!(buf, [1, 2, 3, 4]);
        let mut short: &[u8] = &[1, 2];
        let e = read_full(&mut short, &mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("2 of 4"), "{e}");
    }

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_ns();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_ns() - a >= 2_000_000);
    }
}
