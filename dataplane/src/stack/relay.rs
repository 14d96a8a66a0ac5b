//! Moving bytes between the two terminated TCP connections of one proxied connection.
//!
//! The client side (`a`: the connection our listener accepted) and the target side (`b`: the
//! connection we originated) are smoltcp sockets, usually on different ports. Bytes are copied
//! straight from one socket's receive buffer into the other's send buffer; when the send buffer
//! is full nothing more is read, the receive window closes and the sender is held back (memory
//! per connection is fixed by the buffer sizes). A FIN is forwarded once every byte before it
//! has been handed over; a reset on either side aborts the other.

use smoltcp::socket::tcp::{Socket, State};

/// What one direction has done so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Direction {
    /// The source sent its FIN (seen as `!may_recv` after it was established).
    pub(crate) fin_seen: bool,
    /// We closed the sink's sending side after the last byte.
    pub(crate) fin_forwarded: bool,
}

/// How a connection pair ended, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Running,
    /// Both sides closed cleanly.
    Done,
    /// One side reset or timed out; the other was aborted.
    Reset,
}

/// Copies what `src` has received into `sink`'s send buffer, as far as it has room.
/// Returns the bytes moved.
pub(crate) fn pump(src: &mut Socket<'_>, sink: &mut Socket<'_>) -> usize {
    let mut moved = 0;
    // Two rounds: the receive ring may wrap, and recv hands out one contiguous piece at a time.
    for _ in 0..2 {
        if !src.can_recv() || !sink.can_send() {
            break;
        }
        let n = src
            .recv(|buf| {
                let n = sink.send_slice(buf).unwrap_or(0);
                (n, n)
            })
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        moved += n;
    }
    moved
}

/// Room in `sink`'s send buffer, 0 if it cannot send.
pub(crate) fn room(sink: &Socket<'_>) -> usize {
    if sink.can_send() {
        sink.send_capacity() - sink.send_queue()
    } else {
        0
    }
}

/// Forwards a FIN from `src` to `sink` once `src` has none of its bytes left to hand over.
pub(crate) fn forward_fin(dir: &mut Direction, src: &Socket<'_>, sink: &mut Socket<'_>) {
    if !dir.fin_seen && was_open(src.state()) && !src.may_recv() && src.state() != State::Closed {
        dir.fin_seen = true;
    }
    if dir.fin_seen && !dir.fin_forwarded && src.recv_queue() == 0 {
        sink.close();
        dir.fin_forwarded = true;
    }
}

/// Whether a socket in `state` got past the handshake.
pub(crate) fn was_open(state: State) -> bool {
    !matches!(
        state,
        State::Closed | State::Listen | State::SynSent | State::SynReceived
    )
}

/// A socket that is gone: closed (after a reset or a finished close) or lingering in TIME-WAIT
/// (nothing more to deliver).
pub(crate) fn finished(s: &Socket<'_>) -> bool {
    matches!(s.state(), State::Closed | State::TimeWait)
}

/// Decides the pair's fate after a round. `a_up`/`b_up` say whether each side ever completed
/// its handshake; a side that is `Closed` without having seen its peer's FIN was reset (or
/// timed out).
pub(crate) fn ending(a: &Socket<'_>, b: &Socket<'_>, to_b: &Direction, to_a: &Direction) -> Ending {
    let a_reset = a.state() == State::Closed && !to_b.fin_seen;
    let b_reset = b.state() == State::Closed && !to_a.fin_seen;
    if a_reset || b_reset {
        return Ending::Reset;
    }
    if finished(a) && finished(b) && a.send_queue() == 0 && b.send_queue() == 0 {
        return Ending::Done;
    }
    Ending::Running
}
