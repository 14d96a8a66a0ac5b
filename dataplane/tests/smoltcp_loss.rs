//! smoltcp's loss recovery after the peer's FIN, reproduced without DPDK: two smoltcp
//! interfaces joined by an in-memory Ethernet link under a virtual clock, with chosen frames
//! dropped. This is the DPDK engine's situation on a lossy WAN: the consumer closes its side
//! (FIN) while the producer side still has data in flight, and a data segment is lost.
//!
//! smoltcp 0.12 reset the retransmission timer to idle on the FIN and on every later ACK in
//! CLOSE-WAIT, so once the one fast retransmit was spent (or with fewer than three duplicate
//! ACKs) the lost segment was never resent and the stream stalled for good. The workspace
//! patches it (`third_party/smoltcp/PATCHES.md`); these tests fail on the unpatched crate.

use std::collections::VecDeque;

use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpAddress;

mod smol;
use smol::{host, tcp_of};

/// Runs a transfer of `len` bytes from the server to the client; the client half-closes right
/// after connecting. `drop(offset, len, nth)` decides, for each server→client data segment
/// (its stream offset, its length, and how many times that offset was sent before), whether the
/// link loses it. Returns the bytes the client received and the virtual time taken.
fn transfer(len: usize, mut drop: impl FnMut(usize, usize, usize) -> bool) -> (usize, Duration) {
    let start = Instant::from_millis(0);
    let mut now = start;
    let mut server = host(1, [10, 0, 0, 1], now, 1 << 20);
    let mut client = host(2, [10, 0, 0, 2], now, 1 << 20);
    server
        .sockets
        .get_mut::<tcp::Socket>(server.handle)
        .listen(5000)
        .unwrap();
    client
        .sockets
        .get_mut::<tcp::Socket>(client.handle)
        .connect(
            client.iface.context(),
            (IpAddress::v4(10, 0, 0, 1), 5000),
            40000,
        )
        .unwrap();
    let (mut sent, mut got) = (0usize, 0usize);
    let mut first_seq = None;
    let mut seen = std::collections::HashMap::<usize, usize>::new();
    let mut client_closed = false;
    let payload = vec![0x5a; 64 << 10];
    // 2 ms one-way; bounded to 60 s of virtual time.
    let mut wire: VecDeque<(Instant, bool, Vec<u8>)> = VecDeque::new();
    while now < start + Duration::from_secs(60) {
        server.iface.poll(now, &mut server.dev, &mut server.sockets);
        client.iface.poll(now, &mut client.dev, &mut client.sockets);
        {
            let s = server.sockets.get_mut::<tcp::Socket>(server.handle);
            while sent < len && s.can_send() {
                let n = s
                    .send_slice(&payload[..(len - sent).min(payload.len())])
                    .unwrap();
                if n == 0 {
                    break;
                }
                sent += n;
            }
            if sent == len {
                s.close();
            }
        }
        {
            let c = client.sockets.get_mut::<tcp::Socket>(client.handle);
            if c.may_send() && !client_closed {
                // The consumer closes its side at once, as a subscriber that only reads does.
                c.close();
                client_closed = true;
            }
            while c.can_recv() {
                got += c.recv(|b| (b.len(), b.len())).unwrap();
            }
            if got == len && !c.may_recv() {
                return (got, now - start);
            }
        }
        server.iface.poll(now, &mut server.dev, &mut server.sockets);
        client.iface.poll(now, &mut client.dev, &mut client.sockets);
        for frame in server.dev.tx.drain(..) {
            if let Some((seq, n)) = tcp_of(&frame)
                && n > 0
            {
                let base = *first_seq.get_or_insert(seq);
                let offset = seq.wrapping_sub(base) as usize;
                let nth = seen.entry(offset).or_insert(0);
                *nth += 1;
                if drop(offset, n, *nth - 1) {
                    continue;
                }
            }
            wire.push_back((now + Duration::from_millis(2), false, frame));
        }
        for frame in client.dev.tx.drain(..) {
            wire.push_back((now + Duration::from_millis(2), true, frame));
        }
        while let Some((at, _, _)) = wire.front() {
            if *at > now {
                break;
            }
            let (_, to_server, frame) = wire.pop_front().unwrap();
            if to_server {
                server.dev.rx.push_back(frame);
            } else {
                client.dev.rx.push_back(frame);
            }
        }
        // Advance to the next event: a frame delivered but not yet processed, a delivery, or a
        // timer of either stack.
        let pending = !server.dev.rx.is_empty() || !client.dev.rx.is_empty();
        let next = [
            pending.then_some(now),
            wire.front().map(|w| w.0),
            server.iface.poll_at(now, &server.sockets),
            client.iface.poll_at(now, &client.sockets),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_millis(10));
        now = if next > now {
            next
        } else {
            now + Duration::from_micros(10)
        };
    }
    (got, now - start)
}

#[test]
fn a_clean_transfer_after_the_peers_fin_completes() {
    let (got, took) = transfer(4 << 20, |_, _, _| false);
    assert_eq!(got, 4 << 20);
    assert!(took < Duration::from_secs(10), "{took}");
}

/// The segment at 1 MiB lost once: duplicate ACKs follow and the fast retransmit repairs it.
#[test]
fn one_lost_segment_after_the_peers_fin_is_repaired() {
    let (got, took) = transfer(4 << 20, |at, n, nth| {
        nth == 0 && (at..at + n).contains(&(1 << 20))
    });
    assert_eq!(
        got,
        4 << 20,
        "the stream stalled after one lost segment ({took})"
    );
}

/// The segment and its fast retransmit both lost: only the retransmission timer can repair it,
/// and smoltcp used to cancel that timer on every ACK after the peer's FIN.
#[test]
fn a_lost_fast_retransmit_after_the_peers_fin_is_repaired_by_the_timer() {
    let (got, took) = transfer(4 << 20, |at, n, nth| {
        nth < 2 && (at..at + n).contains(&(1 << 20))
    });
    assert_eq!(
        got,
        4 << 20,
        "the stream stalled after a lost fast retransmit ({took})"
    );
}

/// The last segment lost (a tail loss): no duplicate ACKs at all, only the timer.
#[test]
fn a_lost_last_segment_after_the_peers_fin_is_repaired_by_the_timer() {
    let len = 4 << 20;
    let (got, took) = transfer(len, |at, n, nth| nth == 0 && at + n == len);
    assert_eq!(got, len, "the stream stalled after a tail loss ({took})");
}
