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

mod smol;
use smol::{connecting_pair, next_event, tcp_of};

/// Runs a transfer of `len` bytes from the server to the client; the client half-closes right
/// after connecting. `drop(offset, len, nth)` decides, for each server→client data segment
/// (its stream offset, its length, and how many times that offset was sent before), whether the
/// link loses it. Returns the bytes the client received and the virtual time taken.
fn transfer(len: usize, mut drop: impl FnMut(usize, usize, usize) -> bool) -> (usize, Duration) {
    let start = Instant::from_millis(0);
    let mut now = start;
    let (mut server, mut client) = connecting_pair(now, 1 << 20);
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
        now = next_event(
            now,
            &mut server,
            &mut client,
            &[wire.front().map(|w| w.0)],
            Duration::from_millis(10),
            Duration::from_micros(10),
        );
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

/// After a retransmission timeout an empty ACK still carries the highest sequence number sent
/// (SND.MAX), not the point the timeout rewound to.
///
/// The peer may already hold the data beyond that point (only its ACKs were lost). An ACK below
/// the peer's RCV.NXT is outside its window and the peer discards it, ACK field and all
/// (RFC 9293 3.10.7.4). smoltcp 0.12 sent them there, so once both ends of a connection with
/// data both ways were retransmitting, neither heard the other's ACKs and the connection
/// stalled for good (`two_step_dpdk` on the testbed, with the congestion window down to one
/// segment after the timeout). Patched in `third_party/smoltcp` (PATCHES.md).
#[test]
fn an_ack_after_a_timeout_carries_the_highest_sequence_number_sent() {
    let mut now = Instant::from_millis(0);
    let (mut a, mut b) = connecting_pair(now, 1 << 20);
    // Polls both for `ms` of virtual time in 1 ms steps (smoltcp sends one segment per socket
    // per poll, so several polls a step); frames cross the link only if `up`. Returns the
    // frames `a` sent.
    let mut run = |a: &mut smol::Host, b: &mut smol::Host, ms: u64, up: bool| {
        let mut from_a = Vec::new();
        for _ in 0..ms {
            for _ in 0..16 {
                a.iface.poll(now, &mut a.dev, &mut a.sockets);
                b.iface.poll(now, &mut b.dev, &mut b.sockets);
            }
            for f in a.dev.tx.drain(..) {
                from_a.push(f.clone());
                if up {
                    b.dev.rx.push_back(f);
                }
            }
            for f in b.dev.tx.drain(..) {
                if up {
                    a.dev.rx.push_back(f);
                }
            }
            now += Duration::from_millis(1);
        }
        from_a
    };
    // Connect, and one clean exchange each way so that both have a congestion window in effect.
    run(&mut a, &mut b, 1500, true);
    for h in [&mut a, &mut b] {
        sockets(h).send_slice(&[7; 1460]).unwrap();
    }
    run(&mut a, &mut b, 100, true);
    for h in [&mut a, &mut b] {
        assert_eq!(sockets(h).send_queue(), 0);
        sockets(h).recv(|d| (d.len(), ())).unwrap();
    }
    // Both send 8 segments at once. The flights cross and arrive; then the link goes down
    // before either end's ACK of the other's flight gets through.
    for h in [&mut a, &mut b] {
        sockets(h).send_slice(&[9; 8 * 1460]).unwrap();
    }
    let sent = run(&mut a, &mut b, 1, true);
    let data: Vec<_> = sent
        .iter()
        .filter_map(|f| tcp_of(f))
        .filter(|&(_, n)| n > 0)
        .collect();
    let base = data.first().expect("a sent data").0;
    let snd_max = data
        .iter()
        .map(|&(seq, n)| seq.wrapping_add(n as i32))
        .max_by_key(|s| s.wrapping_sub(base))
        .expect("a sent data");
    // Both time out (several times) and rewind: each end now resends data the other holds.
    let resent = run(&mut a, &mut b, 3000, false);
    for h in [&mut a, &mut b] {
        assert_eq!(
            sockets(h).recv_queue(),
            8 * 1460,
            "the flights did not cross"
        );
        assert_eq!(sockets(h).send_queue(), 8 * 1460, "an ACK got through");
    }
    assert!(
        resent
            .iter()
            .filter_map(|f| tcp_of(f))
            .any(|(seq, n)| n > 0 && seq == base),
        "a did not retransmit from its first unacknowledged segment"
    );
    // The link is back. Every empty ACK `a` sends carries SND.MAX, and the connection goes on.
    let after = run(&mut a, &mut b, 5000, true);
    for (seq, _) in after
        .iter()
        .filter_map(|f| tcp_of(f))
        .filter(|&(_, n)| n == 0)
    {
        assert_eq!(
            seq, snd_max,
            "an empty ACK carried sequence number {seq}, not SND.MAX {snd_max}: the peer \
             discards it as outside its window"
        );
    }
    for h in [&mut a, &mut b] {
        assert_eq!(
            sockets(h).send_queue(),
            0,
            "the connection stalled with both ends retransmitting"
        );
    }
}

fn sockets(h: &mut smol::Host) -> &mut tcp::Socket<'static> {
    h.sockets.get_mut::<tcp::Socket>(h.handle)
}
