//! smoltcp's CUBIC against a bottleneck with a shallow queue, without DPDK: two smoltcp hosts
//! under a virtual clock, the data direction through a rate-limited FIFO that drops what does
//! not fit (the testbed's delay line, and most WAN routers, do the same).
//!
//! smoltcp 0.12's CUBIC never lowered its window on loss and slow-started up to the peer's
//! whole receive window, so the sender kept many times the path's capacity in flight and the
//! queue dropped a large share of every window (the DPDK engine moved 0.04 Gbit/s over the
//! emulated metro WAN at 0.5 % loss, `copy` 1.27). The workspace's smoltcp carries an RFC 9438
//! controller (`third_party/smoltcp/PATCHES.md`); these tests fail on the old one.
//!
//! Everything runs in virtual time: the figures are properties of the algorithm, the same on
//! every run and machine.

use std::collections::VecDeque;

use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

mod smol;
use smol::{connecting_pair, next_event, tcp_of};

struct Path {
    /// Bottleneck rate, bytes per second.
    rate: f64,
    one_way: Duration,
    /// FIFO limit at the bottleneck, bytes.
    queue: usize,
}

#[derive(Debug)]
struct Report {
    data_frames: usize,
    dropped: usize,
    /// Bytes and time from the first quarter of the transfer to its end: the rate once the
    /// connection's start (handshake, slow start, its first loss) is behind it.
    steady: (usize, Duration),
    /// Data frames sent and dropped in that part.
    steady_frames: (usize, usize),
}

impl Report {
    fn steady_goodput(&self) -> f64 {
        self.steady.0 as f64 / (self.steady.1.total_micros() as f64 / 1e6)
    }
}

/// Moves `len` bytes from a server to a client over `path`; socket buffers of `buffer` bytes
/// (far more than the path holds, as the DPDK engine sizes them).
fn bulk(len: usize, buffer: usize, path: &Path) -> Report {
    let start = Instant::from_millis(0);
    let mut now = start;
    let (mut server, mut client) = connecting_pair(now, buffer);
    let payload = vec![0xa5; 64 << 10];
    let (mut sent, mut got) = (0usize, 0usize);
    let (mut data_frames, mut dropped) = (0usize, 0usize);
    // The bottleneck: frames with their departure time; the wire behind it and the way back.
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut queued = 0usize;
    let mut free_at = start;
    let mut to_client: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut to_server: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut steady_from = None;
    let limit = start + Duration::from_secs(600);
    while now < limit {
        for _ in 0..2 {
            server.iface.poll(now, &mut server.dev, &mut server.sockets);
            client.iface.poll(now, &mut client.dev, &mut client.sockets);
        }
        let s = server.sockets.get_mut::<tcp::Socket>(server.handle);
        while sent < len && s.can_send() {
            let n = s
                .send_slice(&payload[..(len - sent).min(payload.len())])
                .unwrap();
            sent += n;
        }
        let c = client.sockets.get_mut::<tcp::Socket>(client.handle);
        while c.can_recv() {
            got += c.recv(|b| (b.len(), b.len())).unwrap();
        }
        if steady_from.is_none() && got >= len / 4 {
            steady_from = Some((now, got, data_frames, dropped));
        }
        if got == len {
            let (t0, b0, f0, d0) = steady_from.unwrap_or((start, 0, 0, 0));
            return Report {
                data_frames,
                dropped,
                steady: (got - b0, now - t0),
                steady_frames: (data_frames - f0, dropped - d0),
            };
        }
        server.iface.poll(now, &mut server.dev, &mut server.sockets);
        client.iface.poll(now, &mut client.dev, &mut client.sockets);
        for frame in server.dev.tx.drain(..) {
            if tcp_of(&frame).is_some_and(|(_, n)| n > 0) {
                data_frames += 1;
                if queued + frame.len() > path.queue {
                    dropped += 1;
                    continue;
                }
            }
            let serialise = Duration::from_micros((frame.len() as f64 / path.rate * 1e6) as u64);
            free_at = free_at.max(now) + serialise;
            queued += frame.len();
            queue.push_back((free_at, frame));
        }
        while queue.front().is_some_and(|(at, _)| *at <= now) {
            let (at, frame) = queue.pop_front().unwrap();
            queued -= frame.len();
            to_client.push_back((at + path.one_way, frame));
        }
        for frame in client.dev.tx.drain(..) {
            to_server.push_back((now + path.one_way, frame));
        }
        while to_client.front().is_some_and(|(at, _)| *at <= now) {
            client.dev.rx.push_back(to_client.pop_front().unwrap().1);
        }
        while to_server.front().is_some_and(|(at, _)| *at <= now) {
            server.dev.rx.push_back(to_server.pop_front().unwrap().1);
        }
        now = next_event(
            now,
            &mut server,
            &mut client,
            &[
                queue.front().map(|q| q.0),
                to_client.front().map(|w| w.0),
                to_server.front().map(|w| w.0),
            ],
            Duration::from_millis(1),
            Duration::from_micros(1),
        );
    }
    panic!("the transfer did not finish in 600 s of virtual time: {got} of {len} bytes");
}

/// Once the start is behind it (handshake, slow start's overshoot and its recovery), the
/// sender keeps the bottleneck busy and its queue within bounds: at most 1 % of the data
/// frames dropped and at least 80 % of the bottleneck's rate. Over the whole transfer, at most
/// 5 %: without SACK, smoltcp resends go-back-N, so slow start's one overshoot costs a burst.
fn check(r: &Report, path: &Path) {
    let (frames, dropped) = r.steady_frames;
    let steady_loss = dropped as f64 / frames as f64;
    assert!(
        steady_loss < 0.01,
        "{:.1} % of the data frames were dropped at the bottleneck in steady state: the window \
         is not controlled ({r:?})",
        steady_loss * 100.0
    );
    let share = r.steady_goodput() / path.rate;
    assert!(
        share > 0.8,
        "steady goodput is {:.0} % of the bottleneck ({r:?})",
        share * 100.0
    );
    let loss = r.dropped as f64 / r.data_frames as f64;
    assert!(
        loss < 0.05,
        "{:.1} % of all data frames were dropped ({r:?})",
        loss * 100.0
    );
}

/// 100 Mbit/s, 10 ms RTT, a queue of one bandwidth-delay product (125 kB), 4 MiB socket
/// buffers: the window settles around the path's capacity instead of the buffers'.
#[test]
fn a_shallow_bottleneck_queue_drops_little_and_the_path_stays_full() {
    let path = Path {
        rate: 100e6 / 8.0,
        one_way: Duration::from_millis(5),
        queue: 125_000,
    };
    check(&bulk(32 << 20, 4 << 20, &path), &path);
}

/// A longer path (40 ms RTT, a 500 kB queue, 8 MiB buffers): the same holds.
#[test]
fn a_longer_path_stays_full_too() {
    let path = Path {
        rate: 100e6 / 8.0,
        one_way: Duration::from_millis(20),
        queue: 500_000,
    };
    check(&bulk(32 << 20, 8 << 20, &path), &path);
}
