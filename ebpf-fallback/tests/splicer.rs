//! The splicer against real kernel sockets on loopback (needs root and BPF; fails, never skips,
//! without them). Each test runs a tiny proxy: accept a client, connect upstream, splice. Tests
//! take one lock so the map-emptiness checks see only their own pairs.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use ebpf_fallback::{Meters, SockmapError, SpliceOptions, Spliced, Splicer};

fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

fn splicer() -> Arc<Splicer> {
    static S: OnceLock<Arc<Splicer>> = OnceLock::new();
    S.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "the sockmap tests need root (BPF, SO_SNDBUFFORCE); run them as root"
        );
        Arc::new(Splicer::load().unwrap_or_else(|e| panic!("{e}")))
    })
    .clone()
}

/// Counters one proxied pair reports into.
#[derive(Default)]
struct Counters {
    a_to_b: AtomicU64,
    b_to_a: AtomicU64,
    backlog: AtomicU64,
    pauses: AtomicU64,
    cancel: AtomicBool,
}

impl Counters {
    fn meters(&self) -> Meters<'_> {
        Meters {
            a_to_b: &self.a_to_b,
            b_to_a: &self.b_to_a,
            backlog: &self.backlog,
            pauses: &self.pauses,
            cancel: &self.cancel,
        }
    }
}

type Outcome = thread::JoinHandle<Result<Spliced, SockmapError>>;

/// A one-connection proxy in front of `upstream`; returns its address and the splice outcome.
fn proxy(
    upstream: SocketAddr,
    opts: SpliceOptions,
    counters: Arc<Counters>,
) -> (SocketAddr, Outcome) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s = splicer();
    let t = thread::spawn(move || {
        let (client, _) = l.accept().unwrap();
        let up = TcpStream::connect(upstream).unwrap();
        s.splice(&client, &up, &opts, counters.meters())
    });
    (addr, t)
}

fn simple_proxy(upstream: SocketAddr) -> (SocketAddr, Outcome) {
    proxy(upstream, SpliceOptions::default(), Arc::default())
}

/// The stream is a sequence of little-endian u64 words, each its own index: a corrupt read can
/// say where its bytes really came from.
fn pattern(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let p = offset + i as u64;
        *b = (p / 8).to_le_bytes()[(p % 8) as usize];
    }
}

/// Reads to EOF, checking the pattern from `offset`; returns the byte count.
fn read_pattern(s: &mut TcpStream, offset: u64) -> u64 {
    let (mut buf, mut want) = (vec![0u8; 256 << 10], vec![0u8; 256 << 10]);
    let mut got = 0u64;
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            return got;
        }
        pattern(offset + got, &mut want[..n]);
        if buf[..n] != want[..n] {
            let bad = buf[..n]
                .iter()
                .zip(&want[..n])
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let at = offset + got + bad as u64;
            // Find where the bytes at `bad` really came from: two consecutive words.
            let word = |i: usize| {
                buf[..n]
                    .get(i..i + 8)
                    .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
            };
            let found = (0..8).find_map(|k| match (word(bad + k), word(bad + k + 8)) {
                (Some(w0), Some(w1)) if w1 == w0.wrapping_add(1) => {
                    Some((w0 * 8).wrapping_sub(k as u64))
                }
                _ => None,
            });
            let shift = found.map(|f| f as i64 - at as i64);
            panic!(
                "corrupt data at offset {at} (read of {n}, {bad} bytes in): the bytes there came \
                 from offset {found:?}, shift {shift:?}"
            );
        }
        got += n as u64;
    }
}

fn write_pattern(s: &mut TcpStream, offset: u64, total: u64, chunk: usize) {
    let mut buf = vec![0u8; chunk];
    let mut off = 0u64;
    while off < total {
        let n = chunk.min((total - off) as usize);
        pattern(offset + off, &mut buf[..n]);
        s.write_all(&buf[..n]).unwrap();
        off += n as u64;
    }
}

fn assert_maps_empty() {
    // Entries are removed before splice returns; allow a moment for nothing else.
    assert_eq!(
        splicer().entries(),
        0,
        "map entries left after all pairs ended"
    );
}

/// Waits until the splicer's maps hold `n` entries (both sockets of one pair in SOCKS, PEERS and
/// STATS make 6; each armed direction adds one).
fn wait_for_entries(n: usize) {
    let start = Instant::now();
    while splicer().entries() != n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the pair's map entries stayed at {} (want {n})",
            splicer().entries()
        );
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn one_gib_one_way_arrives_intact() {
    let _g = serial();
    const TOTAL: u64 = 1 << 30;
    const FIRST: u64 = 1 << 20;
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = up.local_addr().unwrap();
    let sink = thread::spawn(move || read_pattern(&mut up.accept().unwrap().0, 0));
    let counters = Arc::new(Counters::default());
    // The backlog can never exceed the stream, so the watchdog never pauses: how much user space
    // copies is then a fact of the design, not of how this host schedules the reader.
    let opts = SpliceOptions {
        max_backlog: TOTAL,
        ..SpliceOptions::default()
    };
    let (addr, proxy) = proxy(up_addr, opts, counters.clone());
    let mut c = TcpStream::connect(addr).unwrap();
    // Whatever part of the first MiB arrives before the pair is armed, the verdict passes and
    // user space forwards. Once the MiB is through and both directions are armed, user space has
    // caught up, and every later skb must be redirected in the kernel.
    write_pattern(&mut c, 0, FIRST, 1 << 20);
    let start = Instant::now();
    while counters.a_to_b.load(Ordering::Relaxed) < FIRST {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the first MiB did not get through"
        );
        thread::sleep(Duration::from_millis(2));
    }
    wait_for_entries(8);
    write_pattern(&mut c, FIRST, TOTAL - FIRST, 1 << 20);
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(sink.join().unwrap(), TOTAL);
    let moved = proxy.join().unwrap().unwrap();
    assert_eq!((moved.a_to_b, moved.b_to_a), (TOTAL, 0));
    assert_eq!(moved.pauses, 0);
    assert!(
        moved.copied <= FIRST,
        "user space copied {} of {TOTAL} bytes, only bytes of the first {FIRST} may be: the \
         verdict did not redirect",
        moved.copied
    );
    assert_eq!(counters.a_to_b.load(Ordering::Relaxed), TOTAL);
    assert_eq!(counters.backlog.load(Ordering::Relaxed), 0);
    assert_maps_empty();
}

/// An echo server: every connection gets its bytes back, then a FIN after the client's FIN. It
/// checks the pattern it receives and raises `corrupt` (and stops echoing) on a mismatch.
fn echo_server(corrupt: Arc<AtomicBool>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            let corrupt = corrupt.clone();
            thread::spawn(move || {
                let mut buf = vec![0u8; 256 << 10];
                let mut want = vec![0u8; 256 << 10];
                let mut seen = 0u64;
                let mut start = None;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            // The forward direction is checked here, the return one by the
                            // client: the stream's first word says where it starts.
                            if start.is_none() && n >= 8 {
                                start = Some(u64::from_le_bytes(buf[..8].try_into().unwrap()) * 8);
                            }
                            if let Some(st) = start {
                                pattern(st + seen, &mut want[..n]);
                                if buf[..n] != want[..n] {
                                    corrupt.store(true, Ordering::Relaxed);
                                    break;
                                }
                            }
                            seen += n as u64;
                            if s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = s.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// Clients write from their first moment, before the proxy can have inserted the pair: this is
/// what lost and shifted bytes when the insert window existed.
#[test]
fn sixty_four_pairs_echo_both_ways_five_runs_without_loss() {
    let _g = serial();
    const PER: u64 = 8 << 20;
    let corrupt = Arc::new(AtomicBool::new(false));
    let echo = echo_server(corrupt.clone());
    for run in 0..5 {
        let pairs: Vec<_> = (0..64u64)
            .map(|i| {
                let (addr, proxy) = simple_proxy(echo);
                let client = thread::spawn(move || {
                    let c = TcpStream::connect(addr).unwrap();
                    let mut w = c.try_clone().unwrap();
                    let writer = thread::spawn(move || {
                        write_pattern(&mut w, i * PER, PER, 64 << 10);
                        w.shutdown(Shutdown::Write).unwrap();
                    });
                    let got = read_pattern(&mut c.try_clone().unwrap(), i * PER);
                    writer.join().unwrap();
                    got
                });
                (client, proxy)
            })
            .collect();
        for (i, (client, proxy)) in pairs.into_iter().enumerate() {
            let echoed = client.join();
            let outcome = proxy.join().unwrap();
            let Ok(echoed) = echoed else {
                panic!("run {run} pair {i}: the client failed (above); the proxy: {outcome:?}")
            };
            assert_eq!(echoed, PER, "run {run} pair {i}: echo incomplete");
            let moved = outcome.unwrap_or_else(|e| panic!("run {run} pair {i}: {e}"));
            assert_eq!(
                (moved.a_to_b, moved.b_to_a),
                (PER, PER),
                "run {run} pair {i}"
            );
        }
        assert!(
            !corrupt.load(Ordering::Relaxed),
            "run {run}: the echo server received corrupt data"
        );
    }
    assert_maps_empty();
}

#[test]
fn an_upstream_that_speaks_first_is_heard() {
    let _g = serial();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            // Greets at once, before the proxy can have inserted the pair.
            let _ = s.write_all(b"220 ready\r\n");
            let _ = s.shutdown(Shutdown::Write);
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        }
    });
    for i in 0..200 {
        let (addr, proxy) = simple_proxy(up);
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let r = c.read_to_end(&mut got);
        let _ = c.shutdown(Shutdown::Write);
        proxy
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("attempt {i}: {e}"));
        r.unwrap_or_else(|e| panic!("attempt {i}: {e}"));
        assert_eq!(got, b"220 ready\r\n", "attempt {i}");
    }
    assert_maps_empty();
}

fn reset_now(s: TcpStream) {
    let lin = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a linger struct of the right size on an open socket.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const lin).cast(),
            size_of::<libc::linger>() as u32,
        )
    };
    drop(s);
}

#[test]
fn an_upstream_reset_resets_the_client() {
    let _g = serial();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"partial").unwrap();
        thread::sleep(Duration::from_millis(100));
        reset_now(s);
    });
    let (addr, proxy) = simple_proxy(up);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = [0u8; 7];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"partial");
    let r = c.read(&mut [0u8; 16]);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the client must see the reset, got {r:?}"
    );
    let r = proxy.join().unwrap();
    assert!(
        matches!(r, Err(SockmapError::Reset { side: "b", .. })),
        "{r:?}"
    );
    assert_maps_empty();
}

#[test]
fn a_client_reset_resets_the_upstream() {
    let _g = serial();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    let upstream = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = [0u8; 5];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        s.read(&mut [0u8; 16])
    });
    let (addr, proxy) = simple_proxy(up);
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"hello").unwrap();
    thread::sleep(Duration::from_millis(100));
    reset_now(c);
    let r = upstream.join().unwrap();
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the upstream must see the reset, got {r:?}"
    );
    let r = proxy.join().unwrap();
    assert!(
        matches!(r, Err(SockmapError::Reset { side: "a", .. })),
        "{r:?}"
    );
    assert_maps_empty();
}

/// The consumer stops reading for a while: the kernel would queue without bound (it applies no
/// backpressure to redirected bytes); the watchdog pauses the direction so the producer is held
/// back by TCP, and once the consumer reads again every byte arrives, in order.
#[test]
fn a_stalled_consumer_holds_memory_bounded_and_loses_nothing() {
    let _g = serial();
    const TOTAL: u64 = 2 << 30;
    const LIMIT: u64 = 32 << 20;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    let stall = Duration::from_secs(3);
    let consumer = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        thread::sleep(stall);
        read_pattern(&mut s, 0)
    });
    let counters = Arc::new(Counters::default());
    let opts = SpliceOptions {
        max_backlog: LIMIT,
        ..SpliceOptions::default()
    };
    let (addr, proxy) = proxy(up, opts, counters.clone());
    let sent = Arc::new(AtomicU64::new(0));
    let producer = {
        let sent = sent.clone();
        thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            let mut off = 0u64;
            while off < TOTAL {
                pattern(off, &mut buf);
                c.write_all(&buf).unwrap();
                off += buf.len() as u64;
                sent.store(off, Ordering::Relaxed);
            }
            c.shutdown(Shutdown::Write).unwrap();
        })
    };
    // Sample what the producer got rid of while the consumer sleeps.
    let start = Instant::now();
    let mut max_backlog = 0;
    while start.elapsed() < stall - Duration::from_millis(300) {
        max_backlog = max_backlog.max(counters.backlog.load(Ordering::Relaxed));
        thread::sleep(Duration::from_millis(5));
    }
    let accepted_during_stall = sent.load(Ordering::Relaxed);
    // Everything the producer could write sits in socket buffers (its send buffer, the proxy's
    // receive buffer, the 16 MiB forced send buffer, the consumer's receive buffer) or in the
    // bounded backlog; without the watchdog this was gigabytes.
    assert!(
        accepted_during_stall < LIMIT + (160 << 20),
        "the producer pushed {accepted_during_stall} bytes into a stalled path"
    );
    assert!(
        max_backlog < LIMIT + (64 << 20),
        "kernel backlog reached {max_backlog} bytes (limit {LIMIT})"
    );
    producer.join().unwrap();
    assert_eq!(
        consumer.join().unwrap(),
        TOTAL,
        "bytes lost after the consumer resumed"
    );
    let moved = proxy.join().unwrap().unwrap();
    assert_eq!(moved.a_to_b, TOTAL);
    assert!(
        moved.pauses >= 1,
        "the watchdog never paused the stalled direction"
    );
    assert!(
        moved.copied_in_pauses > 0,
        "the paused direction was not forwarded by user space"
    );
    assert_eq!(counters.pauses.load(Ordering::Relaxed), moved.pauses);
    assert_maps_empty();
}

#[test]
fn cancel_resets_both_sides_and_clears_the_maps() {
    let _g = serial();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    let upstream = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.read(&mut [0u8; 16])
    });
    let counters = Arc::new(Counters::default());
    let (addr, proxy) = proxy(up, SpliceOptions::default(), counters.clone());
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    thread::sleep(Duration::from_millis(100));
    counters.cancel.store(true, Ordering::Relaxed);
    assert!(matches!(
        proxy.join().unwrap(),
        Err(SockmapError::Cancelled)
    ));
    let r = c.read(&mut [0u8; 16]);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
    let r = upstream.join().unwrap();
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
    assert_maps_empty();
}
