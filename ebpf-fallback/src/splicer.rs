//! The loaded sockmap program and the splicing of one connected pair.
//!
//! Both sockets of a pair join the SOCKHASH with each other as peers; from then on the verdict
//! (`bpf/sockmap.bpf.c`) either redirects a received skb to the peer's send path or hands it to
//! user space, which forwards it itself. One watcher thread per pair drives each direction
//! through these phases:
//!
//! - **catch-up**: bytes the verdict passed (before the pair was armed, or while paused) are read
//!   and written to the peer by user space, in order, and the consumed count is published in
//!   `ARMED`; the verdict resumes redirecting only once that count equals its passed count, so
//!   a passed byte can never be overtaken by a redirected one;
//! - **settled**: a redirect happened after catch-up, so nothing more will be passed; the watcher
//!   only waits for the end of the stream and checks the backlog on a tick;
//! - **paused**: the peer stopped reading and more than `max_backlog` bytes sit in the kernel
//!   toward it (the kernel applies no backpressure to redirected bytes). The direction is
//!   disarmed: new bytes are passed, stay charged to this socket's receive buffer and so close
//!   the sender's TCP window. Once the backlog has drained to zero, user space forwards what was
//!   passed and the direction re-arms: nothing is lost or reordered, memory stays bounded.
//!
//! A FIN is forwarded only after a drain check (every byte received went through the verdict and
//! all of it is in the peer's send queue); a reset on either side resets the other; `POLLERR` is
//! never taken as the end of a stream.

use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aya::Ebpf;
use aya::maps::{HashMap, MapData, SockHash};
use aya::programs::SkSkb;

use crate::shared::sock_stats;
use crate::sys;

static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sockmap.bpf.o"));

/// Why the sockmap engine cannot run or a pair failed.
#[derive(Debug, thiserror::Error)]
pub enum SockmapError {
    #[error(
        "loading the sockmap BPF program was refused ({0}); the sockmap engine needs root (or \
         CAP_BPF + CAP_NET_ADMIN) and a kernel built with CONFIG_BPF_STREAM_PARSER; use --engine \
         copy instead"
    )]
    NotPermitted(String),
    #[error("the sockmap BPF object is unusable: {0}")]
    Object(String),
    #[error("{call} failed: {source}")]
    Io {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("updating map {map} failed: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(
        "the {side} side ended but its bytes made no progress toward the peer for {after:?} \
         ({received} received, {through_verdict} seen by the verdict, {written} written to the \
         peer); the stream is failed rather than truncated"
    )]
    DrainStalled {
        side: &'static str,
        received: u64,
        through_verdict: u64,
        written: u64,
        after: Duration,
    },
    #[error("the {side} side was reset: {source}")]
    Reset {
        side: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the pair was cancelled (session released)")]
    Cancelled,
}

fn io(call: &'static str) -> impl FnOnce(std::io::Error) -> SockmapError {
    move |source| SockmapError::Io { call, source }
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> SockmapError {
    move |source| SockmapError::Map { map, source }
}

/// Tunables of one spliced pair.
#[derive(Debug, Clone)]
pub struct SpliceOptions {
    /// Send buffer forced on both sockets: a full one is retried only after a jiffy, so it sets
    /// the splice's throughput (16 MiB measured near the best here).
    pub sndbuf: usize,
    /// Bytes allowed in the kernel toward one side before that direction is paused.
    pub max_backlog: u64,
    /// How long a direction may make no progress after its FIN before the pair is failed.
    pub stall_timeout: Duration,
    /// How often the backlog is checked while nothing else happens. The memory bound per
    /// direction is about `max_backlog` plus what the sender can push in one tick.
    pub tick: Duration,
}

impl Default for SpliceOptions {
    fn default() -> Self {
        Self {
            sndbuf: 16 << 20,
            max_backlog: 64 << 20,
            stall_timeout: Duration::from_secs(60),
            tick: Duration::from_millis(10),
        }
    }
}

/// Where a pair reports progress; counters are shared by all pairs of a stream, so the pair
/// adds deltas. `a` is the first socket passed to [`Splicer::splice`].
#[derive(Debug, Clone, Copy)]
pub struct Meters<'a> {
    /// Bytes written into `b` (from `a`).
    pub a_to_b: &'a AtomicU64,
    /// Bytes written into `b`'s peer `a` (from `b`).
    pub b_to_a: &'a AtomicU64,
    /// Bytes currently queued in the kernel toward either side (a gauge).
    pub backlog: &'a AtomicU64,
    /// Times a direction was paused because its reader stalled.
    pub pauses: &'a AtomicU64,
    /// Set to end the pair at once (both sides reset).
    pub cancel: &'a AtomicBool,
}

/// Bytes moved by a finished pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spliced {
    pub a_to_b: u64,
    pub b_to_a: u64,
    /// Times a direction was paused by the backlog watchdog.
    pub pauses: u64,
    /// Bytes user space forwarded itself (passed by the verdict) in both directions.
    pub copied: u64,
    /// The part of `copied` passed while a direction was paused by the watchdog; the rest
    /// arrived before the pair was armed (or the pair could not join the map).
    pub copied_in_pauses: u64,
}

struct Maps {
    socks: SockHash<MapData, u64>,
    peers: HashMap<MapData, u64, u64>,
    stats: HashMap<MapData, u64, sock_stats>,
    armed: HashMap<MapData, u64, u64>,
}

/// The loaded, attached program and its maps; one per process serves any number of pairs.
pub struct Splicer {
    maps: Mutex<Maps>,
    // Keeps the program attached (aya 0.14 detaches when the Ebpf object is dropped).
    _ebpf: Ebpf,
}

impl std::fmt::Debug for Splicer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Splicer").finish_non_exhaustive()
    }
}

fn take<T>(ebpf: &mut Ebpf, name: &str) -> Result<T, SockmapError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    ebpf.take_map(name)
        .ok_or_else(|| SockmapError::Object(format!("map {name} missing")))?
        .try_into()
        .map_err(|e: aya::maps::MapError| SockmapError::Object(format!("map {name}: {e}")))
}

impl Splicer {
    /// Loads the verdict and attaches it to the SOCKHASH.
    pub fn load() -> Result<Self, SockmapError> {
        let refused = |e: &dyn std::error::Error| {
            // aya's messages name the step; the OS error (EPERM, ...) is in the source chain.
            let mut msg = e.to_string();
            let mut cause = e.source();
            while let Some(c) = cause {
                msg = format!("{msg}: {c}");
                cause = c.source();
            }
            SockmapError::NotPermitted(msg)
        };
        let mut ebpf = Ebpf::load(PROGRAM).map_err(|e| refused(&e))?;
        let socks: SockHash<MapData, u64> = take(&mut ebpf, "SOCKS")?;
        let peers = take(&mut ebpf, "PEERS")?;
        let stats = take(&mut ebpf, "STATS")?;
        let armed = take(&mut ebpf, "ARMED")?;
        let map_fd = socks.fd().try_clone().map_err(io("dup(sockhash)"))?;
        let prog: &mut SkSkb = ebpf
            .program_mut("verdict")
            .ok_or_else(|| SockmapError::Object("program verdict missing".into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| SockmapError::Object(e.to_string()))?;
        prog.load().map_err(|e| refused(&e))?;
        prog.attach(&map_fd).map_err(|e| refused(&e))?;
        Ok(Self {
            maps: Mutex::new(Maps {
                socks,
                peers,
                stats,
                armed,
            }),
            _ebpf: ebpf,
        })
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entries left in the pair maps (0 when no pair is spliced).
    pub fn entries(&self) -> usize {
        let m = self.maps();
        m.socks.keys().count()
            + m.peers.keys().count()
            + m.stats.keys().count()
            + m.armed.keys().count()
    }

    /// Puts a socket into SOCKS; false (and its counters removed) when the kernel refuses.
    fn join(&self, cookie: u64, s: &TcpStream) -> bool {
        let mut m = self.maps();
        match m.socks.insert(cookie, s.as_raw_fd(), 0) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "socket not admitted to the sockmap");
                let _ = m.stats.remove(&cookie);
                false
            }
        }
    }

    /// What the verdict did with src's bytes; for a socket outside the map, user space reads
    /// everything, so its reads count as passed.
    fn stats(&self, d: &Direction<'_>) -> Result<sock_stats, SockmapError> {
        if !d.mapped {
            return Ok(sock_stats {
                passed: d.read_total,
                redirected: 0,
            });
        }
        self.maps()
            .stats
            .get(&d.cookie, 0)
            .map_err(map_err("STATS"))
    }

    fn arm(&self, cookie: u64, consumed: u64) -> Result<(), SockmapError> {
        self.maps()
            .armed
            .insert(cookie, consumed, 0)
            .map_err(map_err("ARMED"))
    }

    fn disarm(&self, cookie: u64) {
        let _ = self.maps().armed.remove(&cookie);
    }

    /// Splices `a` and `b` until both directions ended (each FIN forwarded only after every byte
    /// before it reached the peer) or the pair failed, in which case both sides are reset.
    /// Blocks the calling thread; the sockets stay owned by the caller.
    pub fn splice(
        &self,
        a: &TcpStream,
        b: &TcpStream,
        opts: &SpliceOptions,
        meters: Meters<'_>,
    ) -> Result<Spliced, SockmapError> {
        let result = self.run(a, b, opts, meters);
        if result.is_err() {
            // The caller's close then sends RST, so each side learns the chain broke (a
            // shutdown here would send a FIN first, which reads as a clean end).
            for s in [a, b] {
                sys::linger_zero(s);
            }
        }
        result
    }

    fn run(
        &self,
        a: &TcpStream,
        b: &TcpStream,
        opts: &SpliceOptions,
        meters: Meters<'_>,
    ) -> Result<Spliced, SockmapError> {
        for s in [a, b] {
            s.set_nonblocking(true).map_err(io("O_NONBLOCK"))?;
            sys::force_sndbuf(s, opts.sndbuf).map_err(io("SO_SNDBUFFORCE"))?;
        }
        let (ca, cb) = (
            sys::cookie(a).map_err(io("SO_COOKIE"))?,
            sys::cookie(b).map_err(io("SO_COOKIE"))?,
        );
        let _entries = Entries {
            splicer: self,
            cookies: [ca, cb],
        };
        // Not armed yet: until both sockets are in SOCKS every byte is passed to us, so none is
        // redirected to a key that is not there (the kernel would drop it). STATS goes first:
        // the verdict ignores (and does not count) sockets without it.
        {
            let mut m = self.maps();
            for c in [ca, cb] {
                m.stats
                    .insert(c, sock_stats::default(), 0)
                    .map_err(map_err("STATS"))?;
            }
            m.peers.insert(ca, cb, 0).map_err(map_err("PEERS"))?;
            m.peers.insert(cb, ca, 0).map_err(map_err("PEERS"))?;
        }
        // A socket that already received its FIN (or a full map) cannot join: the kernel admits
        // only established sockets. Such a pair is relayed by user space instead; a socket that
        // did join stays in pass mode, so nothing is lost either way.
        let mapped_a = self.join(ca, a);
        let mapped_b = mapped_a && self.join(cb, b);
        if !(mapped_a && mapped_b) {
            tracing::debug!(
                "a socket could not join the sockmap; the pair is copied in user space"
            );
        }
        let both = mapped_a && mapped_b;
        let mut dirs = [
            Direction::new("a", a, b, ca, meters.a_to_b, mapped_a, both),
            Direction::new("b", b, a, cb, meters.b_to_a, mapped_b, both),
        ];
        // Bytes that arrived before insertion sit unprocessed until more arrive or the socket
        // is read: the first step reads each socket once, which pushes them through the verdict.
        for d in &mut dirs {
            d.readable = true;
        }
        let result = self.watch(&mut dirs, opts, meters);
        for d in &mut dirs {
            d.set_backlog(0, meters.backlog);
        }
        result?;
        Ok(Spliced {
            a_to_b: dirs[0].reported,
            b_to_a: dirs[1].reported,
            pauses: dirs[0].pauses + dirs[1].pauses,
            copied: dirs[0].consumed + dirs[1].consumed,
            copied_in_pauses: dirs[0].consumed_in_pauses + dirs[1].consumed_in_pauses,
        })
    }

    fn watch(
        &self,
        dirs: &mut [Direction<'_>; 2],
        opts: &SpliceOptions,
        meters: Meters<'_>,
    ) -> Result<(), SockmapError> {
        let mut fds = [dirs[0].src.as_raw_fd(), dirs[1].src.as_raw_fd()].map(|fd| libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        });
        loop {
            if meters.cancel.load(Ordering::Relaxed) {
                return Err(SockmapError::Cancelled);
            }
            // Socket i is the source of direction i and the destination of direction 1 - i.
            for i in 0..2 {
                let (src, dst) = (&dirs[i], &dirs[1 - i]);
                let mut ev = 0;
                if !src.done {
                    ev |= libc::POLLRDHUP;
                    if src.wants_read() {
                        ev |= libc::POLLIN;
                    }
                }
                if dst.has_pending() {
                    ev |= libc::POLLOUT;
                }
                fds[i].events = ev;
            }
            let busy = dirs.iter().any(|d| !d.done && !d.settled);
            let tick = if busy { opts.tick / 4 } else { opts.tick };
            sys::poll(&mut fds, tick.as_millis().max(1) as i32).map_err(io("poll"))?;
            for i in 0..2 {
                let hup = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR;
                if fds[i].revents & hup != 0 {
                    // Socket i's write side is shut once the direction into it is done.
                    check_reset(&dirs[i], dirs[1 - i].done)?;
                    if fds[i].revents & (libc::POLLRDHUP | libc::POLLHUP) != 0 {
                        dirs[i].hup_seen = true;
                    }
                }
                if fds[i].revents & libc::POLLIN != 0 {
                    dirs[i].readable = true;
                }
            }
            for d in dirs.iter_mut() {
                if !d.done {
                    self.step(d, opts, meters)?;
                }
            }
            if dirs.iter().all(|d| d.done) {
                return Ok(());
            }
        }
    }

    /// Advances one direction: watchdog, catch-up copying, arming, and the FIN.
    fn step(
        &self,
        d: &mut Direction<'_>,
        opts: &SpliceOptions,
        meters: Meters<'_>,
    ) -> Result<(), SockmapError> {
        let st = self.stats(d)?;
        let (_, written) = sys::written(d.dst).map_err(io("TCP_INFO/SIOCOUTQ"))?;
        // Bytes sent toward dst that the kernel has not yet put into dst's send queue.
        let backlog = (st.redirected + d.consumed).saturating_sub(written);
        d.set_backlog(backlog, meters.backlog);
        d.report(written.min(st.redirected + d.consumed));

        if d.armed && backlog > opts.max_backlog {
            // The reader behind dst stalls. Stop redirecting: new bytes are passed and stay
            // charged to src's receive buffer, which closes the sender's window.
            self.disarm(d.cookie);
            d.armed = false;
            d.paused = true;
            d.settled = false;
            d.pauses += 1;
            meters.pauses.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(side = d.name, backlog, "reader stalled; direction paused");
        }
        if d.paused && backlog == 0 {
            // Every redirected byte is in dst's send queue: passed bytes may follow now.
            d.paused = false;
            tracing::debug!(side = d.name, "backlog drained; direction resumes");
        }
        if !d.paused {
            self.catch_up(d, &st)?;
            if !d.armed && d.can_arm {
                self.arm(d.cookie, d.consumed)?;
                d.armed = true;
                d.redirected_at_arm = st.redirected;
            }
            // Once a redirect follows a caught-up arm, the verdict never passes again (it would
            // need user space to be behind), so the watcher stops reading this socket.
            let latest = if st.redirected > d.redirected_at_arm {
                st
            } else {
                self.stats(d)?
            };
            d.settled = d.armed
                && !d.has_pending()
                && d.consumed == latest.passed
                && latest.redirected > d.redirected_at_arm;
        }
        if d.hup_seen {
            self.finish(d, opts)?;
        }
        Ok(())
    }

    /// Forwards bytes the verdict passed to user space, in order, without blocking.
    fn catch_up(&self, d: &mut Direction<'_>, st: &sock_stats) -> Result<(), SockmapError> {
        let mut passed = st.passed;
        loop {
            if d.has_pending() {
                let sent = sys::send_now(d.dst, &d.pending[d.pending_at..]).map_err(|e| {
                    SockmapError::Reset {
                        side: d.peer_name(),
                        source: e,
                    }
                })?;
                let Some(n) = sent else { return Ok(()) };
                d.pending_at += n;
                d.consumed += n as u64;
                if !d.armed && d.pauses > 0 {
                    // Disarmed after a pause and not yet re-armed.
                    d.consumed_in_pauses += n as u64;
                }
                if !d.has_pending() {
                    d.pending.clear();
                    d.pending_at = 0;
                }
                if d.armed {
                    self.arm(d.cookie, d.consumed)?;
                }
                continue;
            }
            // Only bytes the verdict passed are readable on a mapped socket. Once armed, read only
            // bytes the verdict counted as passed: a read that races the
            // verdict's redirects on the same socket was seen to make the kernel hand one skb to
            // the verdict twice. Before arming, poll's word is enough.
            if d.read_total >= passed && d.mapped {
                passed = self.stats(d)?.passed;
            }
            let wanted = d.read_total < passed || (!d.armed && (d.readable || d.hup_seen));
            if !wanted {
                return Ok(());
            }
            d.pending.resize(COPY_CHUNK, 0);
            match sys::recv_now(d.src, &mut d.pending) {
                Ok(Some(n)) if n > 0 => {
                    d.pending.truncate(n);
                    d.pending_at = 0;
                    d.read_total += n as u64;
                }
                Ok(_) => {
                    d.pending.clear();
                    d.readable = false;
                    return Ok(());
                }
                Err(e) => {
                    d.pending.clear();
                    return Err(SockmapError::Reset {
                        side: d.name,
                        source: e,
                    });
                }
            }
        }
    }

    /// Forwards the FIN once every byte before it is in the peer's send queue.
    fn finish(&self, d: &mut Direction<'_>, opts: &SpliceOptions) -> Result<(), SockmapError> {
        let st = self.stats(d)?;
        let src = sys::tcp_counters(d.src).map_err(io("TCP_INFO"))?;
        let (_, written) = sys::written(d.dst).map_err(io("TCP_INFO/SIOCOUTQ"))?;
        let through = st.passed + st.redirected;
        // The FIN takes one sequence number, so every data byte went through the verdict when
        // the received count is one more than what the verdict saw.
        let all_through_verdict = src.bytes_received == through + 1;
        let all_forwarded = !d.has_pending() && d.consumed == st.passed;
        let all_in_peer = written >= through;
        if all_through_verdict && all_forwarded && all_in_peer {
            self.disarm(d.cookie);
            d.dst
                .shutdown(Shutdown::Write)
                .map_err(|e| SockmapError::Reset {
                    side: d.peer_name(),
                    source: e,
                })?;
            d.report(through);
            d.done = true;
            return Ok(());
        }
        if src.state == sys::TCP_CLOSE && src.bytes_received == through && all_forwarded {
            // Closed without a FIN's sequence number: the sender reset.
            return Err(SockmapError::Reset {
                side: d.name,
                source: std::io::ErrorKind::ConnectionReset.into(),
            });
        }
        let progress = (src.bytes_received, through, written);
        if d.last_progress.0 != progress {
            d.last_progress = (progress, Instant::now());
        } else if d.last_progress.1.elapsed() > opts.stall_timeout {
            return Err(SockmapError::DrainStalled {
                side: d.name,
                received: src.bytes_received.saturating_sub(1),
                through_verdict: through,
                written,
                after: opts.stall_timeout,
            });
        }
        Ok(())
    }
}

/// User space forwards passed bytes in chunks of this size.
const COPY_CHUNK: usize = 256 << 10;

/// Reports a reset seen on socket `d.src`. After a reset the socket is closed without a FIN; a
/// FIN leaves it in CLOSE_WAIT while we still write to it. `SO_ERROR` alone is not enough: after
/// a reset on a mapped socket it can read 0.
fn check_reset(d: &Direction<'_>, write_shut: bool) -> Result<(), SockmapError> {
    if let Some(e) = sys::socket_error(d.src) {
        return Err(SockmapError::Reset {
            side: d.name,
            source: e,
        });
    }
    let state = sys::tcp_counters(d.src).map_err(io("TCP_INFO"))?.state;
    if state == sys::TCP_CLOSE && !write_shut {
        return Err(SockmapError::Reset {
            side: d.name,
            source: std::io::ErrorKind::ConnectionReset.into(),
        });
    }
    Ok(())
}

/// One direction: bytes received on `src` go to `dst`.
struct Direction<'s> {
    name: &'static str,
    src: &'s TcpStream,
    dst: &'s TcpStream,
    cookie: u64,
    /// src is in SOCKS (else user space reads all of it).
    mapped: bool,
    /// Both sockets are in SOCKS, so the verdict may redirect.
    can_arm: bool,
    /// The stream's counter of bytes written into dst.
    moved: &'s AtomicU64,
    /// Bytes of `moved` this pair reported so far.
    reported: u64,
    /// This pair's share of the backlog gauge.
    backlog: u64,
    /// Bytes user space read from src and wrote into dst.
    consumed: u64,
    /// The part of `consumed` passed after a pause and before the re-arm.
    consumed_in_pauses: u64,
    pending: Vec<u8>,
    pending_at: usize,
    armed: bool,
    paused: bool,
    settled: bool,
    redirected_at_arm: u64,
    /// poll reported src readable and a read has not yet come back empty.
    readable: bool,
    /// Bytes user space read from src.
    read_total: u64,
    pauses: u64,
    hup_seen: bool,
    last_progress: ((u64, u64, u64), Instant),
    done: bool,
}

impl<'s> Direction<'s> {
    fn new(
        name: &'static str,
        src: &'s TcpStream,
        dst: &'s TcpStream,
        cookie: u64,
        moved: &'s AtomicU64,
        mapped: bool,
        can_arm: bool,
    ) -> Self {
        Self {
            name,
            src,
            dst,
            cookie,
            mapped,
            can_arm,
            moved,
            reported: 0,
            backlog: 0,
            consumed: 0,
            consumed_in_pauses: 0,
            pending: Vec::new(),
            pending_at: 0,
            armed: false,
            paused: false,
            settled: false,
            redirected_at_arm: 0,
            readable: false,
            read_total: 0,
            pauses: 0,
            hup_seen: false,
            last_progress: ((0, 0, 0), Instant::now()),
            done: false,
        }
    }

    fn peer_name(&self) -> &'static str {
        if self.name == "a" { "b" } else { "a" }
    }

    fn has_pending(&self) -> bool {
        self.pending_at < self.pending.len()
    }

    /// Whether to wake up when src becomes readable: only while the verdict may pass bytes, and
    /// not after the FIN (src then stays readable; the tick drives the rest).
    fn wants_read(&self) -> bool {
        !self.done
            && !self.paused
            && !self.settled
            && !self.hup_seen
            && !self.has_pending()
            && (!self.armed || !self.mapped)
    }

    fn report(&mut self, total: u64) {
        if total > self.reported {
            self.moved
                .fetch_add(total - self.reported, Ordering::Relaxed);
            self.reported = total;
        }
    }

    fn set_backlog(&mut self, now: u64, gauge: &AtomicU64) {
        if now >= self.backlog {
            gauge.fetch_add(now - self.backlog, Ordering::Relaxed);
        } else {
            gauge.fetch_sub(self.backlog - now, Ordering::Relaxed);
        }
        self.backlog = now;
    }
}

/// Removes a pair's entries from all maps, however the splice ends; disarming first, so no
/// redirect can target a socket that is leaving.
struct Entries<'a> {
    splicer: &'a Splicer,
    cookies: [u64; 2],
}

impl Drop for Entries<'_> {
    fn drop(&mut self) {
        let mut m = self.splicer.maps();
        for c in self.cookies {
            let _ = m.armed.remove(&c);
        }
        for c in self.cookies {
            let _ = m.socks.remove(&c);
            let _ = m.peers.remove(&c);
            let _ = m.stats.remove(&c);
        }
    }
}
