//! Deterministic, verifiable bulk-transfer traffic for end-to-end tests and
//! the demo.
//!
//! A *producer* listens, a *consumer* connects (directly or through the
//! SciStream proxies), and on every connection both sides send a
//! deterministic pseudo-random byte stream ([`Pattern`]) while reading
//! everything the other side sends, hashing it with SHA-256. Each side
//! returns one [`TransferReport`] per connection; because the patterns are
//! deterministic, [`expected_sha256`] tells what every hash must be, so a
//! test can prove that every byte arrived intact, in order and on the right
//! stream.
//!
//! # Seed convention
//!
//! For stream `i` (the listener index on the producer, the address index on
//! the consumer) and a shared `seed_base`:
//!
//! * producer → consumer data uses seed `seed_base + i` ([`producer_seed`]);
//! * consumer → producer data uses seed `seed_base + 1000 + i`
//!   ([`consumer_seed`]).
//!
//! Different streams and directions use different seeds, so a proxy that
//! cross-wires streams or reflects data is caught.
//!
//! Everything is blocking std networking with one thread per direction of
//! every connection. A connection that makes no progress for
//! [`IDLE_TIMEOUT`] fails instead of hanging. Nothing here prints.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use ring::digest;
use serde::{Deserialize, Serialize};

/// Offset added to `seed_base` for the consumer → producer direction.
pub const CONSUMER_SEED_OFFSET: u64 = 1000;
/// How long [`run_consumer`] keeps retrying a refused connection.
pub const CONNECT_RETRY_FOR: Duration = Duration::from_secs(10);
/// Pause between two connection attempts of [`run_consumer`].
pub const CONNECT_RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// A connection that can neither send nor receive for this long fails.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Socket read/write buffer size.
const IO_BUF: usize = 256 * 1024;
/// Chunk size used by [`expected_sha256`].
const PATTERN_CHUNK: usize = 64 * 1024;

/// Seed of the producer → consumer data on stream `stream`.
pub fn producer_seed(seed_base: u64, stream: usize) -> u64 {
    seed_base.wrapping_add(stream as u64)
}

/// Seed of the consumer → producer data on stream `stream`.
pub fn consumer_seed(seed_base: u64, stream: usize) -> u64 {
    seed_base
        .wrapping_add(CONSUMER_SEED_OFFSET)
        .wrapping_add(stream as u64)
}

/// A deterministic pseudo-random byte stream (splitmix64, 8 bytes per step).
///
/// The stream depends only on the seed, never on how it is chunked: filling
/// 3 bytes and then 5 gives the same 8 bytes as filling 8 at once.
#[derive(Debug, Clone)]
pub struct Pattern {
    state: u64,
    /// Bytes of the last generated word not yet handed out.
    spare: [u8; 8],
    /// Index of the first unused byte in `spare` (8 = none left).
    spare_pos: usize,
}

impl Pattern {
    /// A new stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: [0; 8],
            spare_pos: 8,
        }
    }

    /// The next 64-bit word (splitmix64).
    fn next_word(&mut self) -> [u8; 8] {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).to_le_bytes()
    }

    /// Fills `buf` with the next `buf.len()` bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let from_spare = (8 - self.spare_pos).min(buf.len());
        let (head, rest) = buf.split_at_mut(from_spare);
        head.copy_from_slice(&self.spare[self.spare_pos..self.spare_pos + from_spare]);
        self.spare_pos += from_spare;

        let mut words = rest.chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next_word());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            self.spare = self.next_word();
            tail.copy_from_slice(&self.spare[..tail.len()]);
            self.spare_pos = tail.len();
        }
    }
}

/// Lowercase hex of a digest.
fn hex(digest: digest::Digest) -> String {
    use std::fmt::Write as _;
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 (lowercase hex) of the first `bytes` bytes of `Pattern::new(seed)`,
/// computed without sockets.
pub fn expected_sha256(seed: u64, bytes: u64) -> String {
    let mut pattern = Pattern::new(seed);
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; PATTERN_CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = chunk_len(left, PATTERN_CHUNK);
        pattern.fill(&mut buf[..n]);
        ctx.update(&buf[..n]);
        left -= n as u64;
    }
    hex(ctx.finish())
}

/// `min(left, cap)` as a `usize`.
fn chunk_len(left: u64, cap: usize) -> usize {
    usize::try_from(left).map_or(cap, |l| l.min(cap))
}

/// What one side saw on one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    /// Stream index: the listener index on the producer, the address index
    /// on the consumer.
    pub stream: usize,
    /// Bytes sent to the peer.
    pub sent_bytes: u64,
    /// SHA-256 (lowercase hex) of the bytes sent.
    pub sent_sha256: String,
    /// Bytes received from the peer before EOF.
    pub received_bytes: u64,
    /// SHA-256 (lowercase hex) of the bytes received.
    pub received_sha256: String,
    /// Seconds from connect/accept to the first received byte; `None`
    /// (`null`) if nothing was received.
    pub first_byte_secs: Option<f64>,
    /// Seconds from connect/accept until both directions were done.
    pub elapsed_secs: f64,
}

/// Binds one listener per address (std sets `SO_REUSEADDR` on Unix), so the
/// caller can announce readiness before [`serve_producer`] accepts.
///
/// Port 0 picks an ephemeral port; read it back with
/// [`TcpListener::local_addr`].
pub fn bind_producer(listen: &[SocketAddr]) -> Result<Vec<TcpListener>> {
    listen
        .iter()
        .map(|addr| {
            TcpListener::bind(addr).with_context(|| {
                format!("producer: cannot listen on {addr} (address in use, or not local?)")
            })
        })
        .collect()
}

/// Serves bound listeners: listener `i` accepts `conns_per_listener`
/// connections (each handled in its own threads) and on each sends
/// `send_bytes` bytes of `Pattern::new(seed_base + i)`, then shuts down its
/// write side, while reading and hashing everything until EOF (the peer is
/// expected to send `Pattern::new(seed_base + 1000 + i)`).
///
/// Returns one report per connection, ordered by listener and accept order,
/// after every connection has finished. If any connection fails, the error
/// names every failed stream and its address.
pub fn serve_producer(
    listeners: Vec<TcpListener>,
    send_bytes: u64,
    seed_base: u64,
    conns_per_listener: usize,
) -> Result<Vec<TransferReport>> {
    thread::scope(|scope| {
        let handles: Vec<_> = listeners
            .iter()
            .enumerate()
            .map(|(stream, listener)| {
                scope.spawn(move || {
                    serve_listener(
                        listener,
                        stream,
                        send_bytes,
                        producer_seed(seed_base, stream),
                        conns_per_listener,
                    )
                })
            })
            .collect();
        let results = handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(anyhow!("producer thread panicked"))])
            })
            .collect();
        gather(results)
    })
}

/// Accepts `conns` connections on one listener and runs them concurrently.
fn serve_listener(
    listener: &TcpListener,
    stream: usize,
    send_bytes: u64,
    seed: u64,
    conns: usize,
) -> Vec<Result<TransferReport>> {
    let local = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    thread::scope(|scope| {
        let mut handles = Vec::with_capacity(conns);
        let mut results = Vec::new();
        for _ in 0..conns {
            match listener.accept() {
                Ok((sock, peer)) => {
                    let start = Instant::now();
                    let local = &local;
                    handles.push(scope.spawn(move || {
                        transfer(sock, stream, send_bytes, seed, start).with_context(|| {
                            format!("producer stream {stream} ({local} <- {peer})")
                        })
                    }));
                }
                Err(e) => {
                    results.push(Err(anyhow::Error::new(e).context(format!(
                        "producer stream {stream}: accept on {local} failed"
                    ))));
                    break;
                }
            }
        }
        let mut done: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("producer stream {stream}: thread panicked")))
            })
            .collect();
        done.append(&mut results);
        done
    })
}

/// Binds `listen` and serves it; see [`bind_producer`] and
/// [`serve_producer`] (which documents the seeds: stream `i` sends
/// `seed_base + i` and expects `seed_base + 1000 + i`).
/// `conns_per_listener` is usually 1.
pub fn run_producer(
    listen: &[SocketAddr],
    send_bytes: u64,
    seed_base: u64,
    conns_per_listener: usize,
) -> Result<Vec<TransferReport>> {
    serve_producer(
        bind_producer(listen)?,
        send_bytes,
        seed_base,
        conns_per_listener,
    )
}

/// Connects to every address (one thread each; stream `i` is `connect[i]`)
/// and on each connection sends `send_bytes` bytes of
/// `Pattern::new(seed_base + 1000 + i)`, then shuts down its write side,
/// while reading and hashing everything until EOF (the producer sends
/// `Pattern::new(seed_base + i)`).
///
/// A refused connection is retried every 100 ms for up to 10 s, so the
/// consumer may be started before the producer or proxy is listening.
/// Returns one report per address, in order; if any stream fails, the error
/// names every failed stream and its address.
pub fn run_consumer(
    connect: &[SocketAddr],
    send_bytes: u64,
    seed_base: u64,
) -> Result<Vec<TransferReport>> {
    thread::scope(|scope| {
        let handles: Vec<_> = connect
            .iter()
            .enumerate()
            .map(|(stream, &addr)| {
                scope.spawn(move || {
                    let sock = connect_with_retry(addr)?;
                    let start = Instant::now();
                    let seed = consumer_seed(seed_base, stream);
                    transfer(sock, stream, send_bytes, seed, start)
                        .with_context(|| format!("consumer stream {stream} (-> {addr})"))
                })
            })
            .collect();
        let results = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("consumer thread panicked")))
            })
            .collect();
        gather(results)
    })
}

/// Connects to `addr`, retrying refused connections for [`CONNECT_RETRY_FOR`].
fn connect_with_retry(addr: SocketAddr) -> Result<TcpStream> {
    let deadline = Instant::now() + CONNECT_RETRY_FOR;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let err = match TcpStream::connect_timeout(&addr, remaining.max(CONNECT_RETRY_INTERVAL)) {
            Ok(sock) => return Ok(sock),
            Err(e) => e,
        };
        if err.kind() != io::ErrorKind::ConnectionRefused || Instant::now() >= deadline {
            let hint = if err.kind() == io::ErrorKind::ConnectionRefused {
                format!(
                    " (still refused after {CONNECT_RETRY_FOR:?}; is the producer or proxy listening?)"
                )
            } else {
                String::new()
            };
            return Err(anyhow::Error::new(err)
                .context(format!("consumer: connect to {addr} failed{hint}")));
        }
        thread::sleep(CONNECT_RETRY_INTERVAL);
    }
}

/// Turns per-stream results into one result naming every failure.
fn gather(results: Vec<Result<TransferReport>>) -> Result<Vec<TransferReport>> {
    let total = results.len();
    let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    if failed.is_empty() {
        return Ok(ok.into_iter().filter_map(Result::ok).collect());
    }
    let messages: Vec<String> = failed
        .into_iter()
        .filter_map(Result::err)
        .map(|e| format!("{e:#}"))
        .collect();
    Err(anyhow!(
        "{} of {total} streams failed: {}",
        messages.len(),
        messages.join("; ")
    ))
}

/// Describes an I/O error, turning timeouts into a stall message.
fn io_error(e: io::Error, what: &str) -> anyhow::Error {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        anyhow!("{what}: no progress for {IDLE_TIMEOUT:?} (peer or proxy stalled)")
    } else {
        anyhow::Error::new(e).context(what.to_owned())
    }
}

/// Runs both directions of one connection and reports on it.
fn transfer(
    sock: TcpStream,
    stream: usize,
    send_bytes: u64,
    send_seed: u64,
    start: Instant,
) -> Result<TransferReport> {
    sock.set_read_timeout(Some(IDLE_TIMEOUT))
        .and_then(|()| sock.set_write_timeout(Some(IDLE_TIMEOUT)))
        .context("setting socket timeouts")?;
    let writer = sock.try_clone().context("cloning the socket")?;
    thread::scope(|scope| {
        let sender = scope.spawn(move || {
            let sent = send_pattern(&writer, send_bytes, send_seed)
                .and_then(|sha| writer.shutdown(Shutdown::Write).map(|()| sha));
            if sent.is_err() {
                // Unblock the receiving half too.
                let _ = writer.shutdown(Shutdown::Both);
            }
            sent.map_err(|e| io_error(e, "sending"))
        });
        let received = receive_all(&sock, start);
        if received.is_err() {
            let _ = sock.shutdown(Shutdown::Both);
        }
        let sent = sender
            .join()
            .unwrap_or_else(|_| Err(anyhow!("sender thread panicked")));
        let elapsed_secs = start.elapsed().as_secs_f64();
        let (received_bytes, received_sha256, first_byte) =
            received.map_err(|e| io_error(e, "receiving"))?;
        let sent_sha256 = sent?;
        Ok(TransferReport {
            stream,
            sent_bytes: send_bytes,
            sent_sha256,
            received_bytes,
            received_sha256,
            first_byte_secs: first_byte.map(|d| d.as_secs_f64()),
            elapsed_secs,
        })
    })
}

/// Sends `bytes` bytes of `Pattern::new(seed)`; returns their SHA-256.
fn send_pattern(mut sock: &TcpStream, bytes: u64, seed: u64) -> io::Result<String> {
    let mut pattern = Pattern::new(seed);
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; IO_BUF];
    let mut left = bytes;
    while left > 0 {
        let n = chunk_len(left, IO_BUF);
        pattern.fill(&mut buf[..n]);
        ctx.update(&buf[..n]);
        sock.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(hex(ctx.finish()))
}

/// Reads until EOF; returns (byte count, SHA-256, time to first byte).
fn receive_all(
    mut sock: &TcpStream,
    start: Instant,
) -> io::Result<(u64, String, Option<Duration>)> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; IO_BUF];
    let mut total = 0u64;
    let mut first_byte = None;
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        first_byte.get_or_insert_with(|| start.elapsed());
        ctx.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(ctx.finish()), first_byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(seed: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        Pattern::new(seed).fill(&mut v);
        v
    }

    fn sha(data: &[u8]) -> String {
        hex(digest::digest(&digest::SHA256, data))
    }

    #[test]
    fn pattern_is_deterministic() {
        assert_eq!(bytes_of(7, 100_000), bytes_of(7, 100_000));
        // Known first word of splitmix64 seeded with 0.
        assert_eq!(
            bytes_of(0, 8),
            0xE220_A839_7B1D_CDAFu64.to_le_bytes().to_vec()
        );
    }

    #[test]
    fn pattern_depends_on_seed() {
        let a = bytes_of(1, 4096);
        let b = bytes_of(2, 4096);
        let c = bytes_of(1001, 4096);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
        // Not a shifted copy either: no 64-byte window of b appears in a.
        assert!(!a.windows(64).any(|w| w == &b[..64]));
    }

    #[test]
    fn pattern_is_independent_of_chunking() {
        let whole = bytes_of(42, 10_000);
        let mut p = Pattern::new(42);
        let mut pieces = Vec::new();
        for len in [0usize, 1, 3, 5, 7, 8, 9, 13, 64, 1000, 4096]
            .iter()
            .cycle()
        {
            if pieces.len() >= whole.len() {
                break;
            }
            let len = (*len).min(whole.len() - pieces.len());
            let mut buf = vec![0u8; len];
            p.fill(&mut buf);
            pieces.extend_from_slice(&buf);
        }
        assert_eq!(pieces, whole);
    }

    #[test]
    fn expected_sha256_matches_odd_chunked_hashing() {
        for (seed, len) in [(1u64, 0usize), (2, 1), (3, 7), (4, 65_536), (5, 1_000_003)] {
            let mut p = Pattern::new(seed);
            let mut ctx = digest::Context::new(&digest::SHA256);
            let mut left = len;
            let mut step = 1usize;
            while left > 0 {
                let n = step.min(left);
                let mut buf = vec![0u8; n];
                p.fill(&mut buf);
                ctx.update(&buf);
                left -= n;
                step = step * 3 + 1; // 1, 4, 13, 40, ... never a multiple of 8
            }
            let chunked = hex(ctx.finish());
            assert_eq!(
                expected_sha256(seed, len as u64),
                chunked,
                "seed {seed} len {len}"
            );
            assert_eq!(chunked, sha(&bytes_of(seed, len)));
        }
        assert_eq!(
            expected_sha256(9, 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn seed_convention() {
        assert_eq!(producer_seed(1, 0), 1);
        assert_eq!(producer_seed(1, 2), 3);
        assert_eq!(consumer_seed(1, 0), 1001);
        assert_eq!(consumer_seed(1, 2), 1003);
    }

    #[test]
    fn report_serializes_missing_first_byte_as_null() {
        let r = TransferReport {
            stream: 0,
            sent_bytes: 0,
            sent_sha256: expected_sha256(1, 0),
            received_bytes: 0,
            received_sha256: expected_sha256(1, 0),
            first_byte_secs: None,
            elapsed_secs: 0.5,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"first_byte_secs\":null"), "{json}");
        let back: TransferReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn refused_connection_is_reported_with_address() {
        // Bind then drop to find a port that is (almost certainly) closed.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let start = Instant::now();
        let err = run_consumer(&[addr], 1, 1).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&addr.to_string()), "{msg}");
        assert!(start.elapsed() < CONNECT_RETRY_FOR + Duration::from_secs(5));
    }
}
