//! The delay line's driver: two [`DelayLine`]s between two interfaces, one
//! thread per direction, over AF_PACKET sockets ([`super::sys`]).
//!
//! Each thread loops: send every frame that is due, publish its counters,
//! wait (`ppoll`, 1 µs timer slack) until the next frame is due or one
//! arrives, then read a batch of frames and push them into its line. The
//! calling thread blocks SIGTERM, SIGINT and SIGUSR1 and takes them
//! synchronously: SIGUSR1 writes a snapshot of the counters, SIGTERM/SIGINT
//! stop both threads and return the final counters.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::line::{Counters, DelayLine, LineConfig, LineConfigError, MAX_FRAME_BYTES, Poll};
use super::sys::{PacketSocket, SignalSet, set_timer_slack};

/// The longest a thread sleeps, so it notices a stop request in time.
const MAX_WAIT: Duration = Duration::from_millis(20);
/// Frames read per wake-up before the thread sends again.
const RX_BATCH: usize = 64;
/// Timer slack of the forwarding threads.
const TIMER_SLACK: Duration = Duration::from_micros(1);

/// Everything that stops the delay line.
#[derive(Debug, thiserror::Error)]
pub enum DelayError {
    /// The configuration of a direction is invalid.
    #[error("invalid delay-line configuration: {0}")]
    Config(#[from] LineConfigError),
    /// A packet socket could not be opened or bound.
    #[error(
        "could not open a packet socket on interface {iface:?} (does it exist in this \
         namespace? are we root?)"
    )]
    Socket {
        /// The interface.
        iface: String,
        /// The failing call's error.
        source: io::Error,
    },
    /// Reading or waiting on an interface failed.
    #[error("reading frames from {iface:?} failed")]
    Receive {
        /// The interface.
        iface: String,
        /// The failing call's error.
        source: io::Error,
    },
    /// A syscall of the control thread failed.
    #[error("{call} failed")]
    Sys {
        /// The call.
        call: &'static str,
        /// Its error.
        source: io::Error,
    },
    /// The stats file could not be written.
    #[error("writing the stats file {path} failed")]
    Stats {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A forwarding thread panicked.
    #[error("the {direction} forwarding thread panicked")]
    Panicked {
        /// `a_to_b` or `b_to_a`.
        direction: &'static str,
    },
}

/// What the delay line is asked to do.
#[derive(Debug, Clone)]
pub struct DelayConfig {
    /// First interface (towards GN1 in the testbed).
    pub a: String,
    /// Second interface (towards GN2).
    pub b: String,
    /// Frames read on `a`, sent on `b`.
    pub a_to_b: LineConfig,
    /// Frames read on `b`, sent on `a`.
    pub b_to_a: LineConfig,
    /// Where SIGUSR1 snapshots and the final counters are written (as
    /// JSON, replaced atomically); the final counters also go to stderr.
    pub stats: Option<PathBuf>,
}

/// One direction's counters: the line's and the driver's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionStats {
    /// The line's counters.
    #[serde(flatten)]
    pub line: Counters,
    /// Frames whose `send` failed (dropped).
    pub send_errors: u64,
    /// Frames longer than [`MAX_FRAME_BYTES`] (dropped; a sign that an
    /// offload is still on).
    pub oversize: u64,
}

/// The delay line's report (the JSON of `s2delay --stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayStats {
    /// Interface a.
    pub a: String,
    /// Interface b.
    pub b: String,
    /// One-way delay (a → b), ns.
    pub delay_ns: u64,
    /// Rate cap (a → b), bit/s.
    pub rate_bps: Option<u64>,
    /// Loss probability (a → b).
    pub loss: f64,
    /// Queue limit per direction, bytes.
    pub limit_bytes: usize,
    /// `false` for a snapshot of a running line, `true` after it stopped.
    pub stopped: bool,
    /// Frames read on a and sent on b.
    pub a_to_b: DirectionStats,
    /// Frames read on b and sent on a.
    pub b_to_a: DirectionStats,
}

impl DelayStats {
    /// Reads a stats file written by `s2delay --stats`.
    pub fn read(path: &Path) -> io::Result<Self> {
        let text = fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(io::Error::other)
    }
}

/// A direction's counters, published by its thread for snapshots.
#[derive(Debug, Default)]
struct Published {
    forwarded: AtomicU64,
    dropped_loss: AtomicU64,
    dropped_full: AtomicU64,
    bytes: AtomicU64,
    max_queued_bytes: AtomicU64,
    send_errors: AtomicU64,
    oversize: AtomicU64,
}

impl Published {
    fn store(&self, s: &DirectionStats) {
        let r = Ordering::Relaxed;
        self.forwarded.store(s.line.forwarded, r);
        self.dropped_loss.store(s.line.dropped_loss, r);
        self.dropped_full.store(s.line.dropped_full, r);
        self.bytes.store(s.line.bytes, r);
        self.max_queued_bytes.store(s.line.max_queued_bytes, r);
        self.send_errors.store(s.send_errors, r);
        self.oversize.store(s.oversize, r);
    }

    fn load(&self) -> DirectionStats {
        let r = Ordering::Relaxed;
        DirectionStats {
            line: Counters {
                forwarded: self.forwarded.load(r),
                dropped_loss: self.dropped_loss.load(r),
                dropped_full: self.dropped_full.load(r),
                bytes: self.bytes.load(r),
                max_queued_bytes: self.max_queued_bytes.load(r),
            },
            send_errors: self.send_errors.load(r),
            oversize: self.oversize.load(r),
        }
    }
}

/// Runs the delay line until SIGTERM or SIGINT; returns the final counters.
///
/// `on_ready` is called once both sockets are bound and the threads run
/// (`s2delay` prints `READY` there).
pub fn run(config: &DelayConfig, on_ready: impl FnOnce()) -> Result<DelayStats, DelayError> {
    let ab = DelayLine::new(&config.a_to_b)?;
    let ba = DelayLine::new(&config.b_to_a)?;
    let bind = |iface: &str| {
        PacketSocket::bind(iface)
            .map(Arc::new)
            .map_err(|source| DelayError::Socket {
                iface: iface.to_owned(),
                source,
            })
    };
    let sock_a = bind(&config.a)?;
    let sock_b = bind(&config.b)?;
    // Blocked before spawning, so the threads inherit the mask and the
    // signals are only ever taken here.
    let signals =
        SignalSet::block(&[libc::SIGTERM, libc::SIGINT, libc::SIGUSR1]).map_err(|source| {
            DelayError::Sys {
                call: "pthread_sigmask",
                source,
            }
        })?;
    let stop = Arc::new(AtomicBool::new(false));
    let published = [
        Arc::new(Published::default()),
        Arc::new(Published::default()),
    ];
    let spawn = |rx: &Arc<PacketSocket>,
                 tx: &Arc<PacketSocket>,
                 mut line: DelayLine,
                 p: &Arc<Published>| {
        let (rx, tx, stop, p) = (
            Arc::clone(rx),
            Arc::clone(tx),
            Arc::clone(&stop),
            Arc::clone(p),
        );
        thread::spawn(move || forward(&rx, &tx, &mut line, &stop, &p))
    };
    let threads = [
        ("a_to_b", spawn(&sock_a, &sock_b, ab, &published[0])),
        ("b_to_a", spawn(&sock_b, &sock_a, ba, &published[1])),
    ];
    on_ready();
    let snapshot = |stopped: bool, ab: DirectionStats, ba: DirectionStats| DelayStats {
        a: config.a.clone(),
        b: config.b.clone(),
        delay_ns: u64::try_from(config.a_to_b.delay.as_nanos()).unwrap_or(u64::MAX),
        rate_bps: config.a_to_b.rate_bps,
        loss: config.a_to_b.loss,
        limit_bytes: config.a_to_b.limit(),
        stopped,
        a_to_b: ab,
        b_to_a: ba,
    };
    loop {
        let sig = signals.wait().map_err(|source| DelayError::Sys {
            call: "sigwait",
            source,
        })?;
        if sig == libc::SIGUSR1 {
            if let Some(path) = &config.stats {
                write_stats(
                    path,
                    &snapshot(false, published[0].load(), published[1].load()),
                )?;
            }
            continue;
        }
        break;
    }
    stop.store(true, Ordering::Relaxed);
    let mut finals = [DirectionStats::default(); 2];
    for (slot, (direction, handle)) in finals.iter_mut().zip(threads) {
        *slot = handle
            .join()
            .map_err(|_| DelayError::Panicked { direction })??;
    }
    let stats = snapshot(true, finals[0], finals[1]);
    if let Some(path) = &config.stats {
        write_stats(path, &stats)?;
    }
    Ok(stats)
}

/// One direction: frames read on `rx` go through `line` and out of `tx`.
fn forward(
    rx: &PacketSocket,
    tx: &PacketSocket,
    line: &mut DelayLine,
    stop: &AtomicBool,
    published: &Published,
) -> Result<DirectionStats, DelayError> {
    let rx_error = |source| DelayError::Receive {
        iface: rx.iface().to_owned(),
        source,
    };
    // Best effort: without it, short waits just end up to 50 us late.
    let _ = set_timer_slack(TIMER_SLACK);
    let mut buf = vec![0u8; MAX_FRAME_BYTES];
    let mut stats = DirectionStats::default();
    loop {
        let now = Instant::now();
        let wake = loop {
            match line.poll(now) {
                Poll::Send(frame) => {
                    if tx.send(frame).is_err() {
                        stats.send_errors += 1;
                    }
                    line.pop();
                }
                Poll::WakeAt(at) => break Some(at),
                Poll::Idle => break None,
            }
        };
        stats.line = line.counters();
        published.store(&stats);
        if stop.load(Ordering::Relaxed) {
            return Ok(stats);
        }
        let timeout = wake.map_or(MAX_WAIT, |at| {
            at.saturating_duration_since(now).min(MAX_WAIT)
        });
        if !timeout.is_zero() && !rx.wait_readable(timeout).map_err(rx_error)? {
            continue;
        }
        for _ in 0..RX_BATCH {
            match rx.recv(&mut buf).map_err(rx_error)? {
                None => break,
                Some(len) if len > buf.len() => stats.oversize += 1,
                Some(len) => {
                    line.push(Instant::now(), &buf[..len]);
                }
            }
        }
    }
}

/// Writes `stats` to `path` atomically (a temporary file, then rename).
fn write_stats(path: &Path, stats: &DelayStats) -> Result<(), DelayError> {
    let err = |source| DelayError::Stats {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_string(stats).map_err(|e| err(io::Error::other(e)))?;
    fs::write(&tmp, json).map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}
