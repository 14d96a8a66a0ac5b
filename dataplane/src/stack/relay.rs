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
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Direction {
    /// The source sent its FIN: it was seen in a state only a received FIN leads to
    /// (CLOSE-WAIT, LAST-ACK, CLOSING, TIME-WAIT). A source that reaches CLOSED without it was
    /// reset or timed out. Checked every round, and each of those states lasts at least until
    /// the next one (LAST-ACK waits for our own close, TIME-WAIT for its timer).
    pub(crate) fin_seen: bool,
    /// We closed the sink's sending side after the last byte.
    pub(crate) fin_forwarded: bool,
    /// Bytes taken out of a source in TIME-WAIT that the sink had no room for yet: smoltcp
    /// clears a socket's buffers when its TIME-WAIT timer (10 s) ends, so a slow sink would
    /// otherwise lose them. Allocated only then; at most one receive buffer.
    pub(crate) spill: Vec<u8>,
    pub(crate) spill_sent: usize,
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

/// Copies what `src` has received into `sink`'s send buffer, as far as it has room (spilled
/// bytes first). Returns the bytes handed to `sink`.
pub(crate) fn pump(dir: &mut Direction, src: &mut Socket<'_>, sink: &mut Socket<'_>) -> usize {
    let mut moved = 0;
    if dir.spill_sent < dir.spill.len() && sink.can_send() {
        let n = sink.send_slice(&dir.spill[dir.spill_sent..]).unwrap_or(0);
        dir.spill_sent += n;
        moved += n;
        if dir.spill_sent == dir.spill.len() {
            dir.spill = Vec::new();
            dir.spill_sent = 0;
        }
    }
    if dir.spill.is_empty() {
        // Two rounds: the receive ring may wrap, and recv hands out one contiguous piece at a
        // time.
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
    }
    if src.state() == State::TimeWait && src.recv_queue() > 0 {
        let mut rest = std::mem::take(&mut dir.spill);
        let keep = rest.len();
        rest.resize(keep + src.recv_queue(), 0);
        let n = src.recv_slice(&mut rest[keep..]).unwrap_or(0);
        rest.truncate(keep + n);
        dir.spill = rest;
    }
    moved
}

/// Forwards a FIN from `src` to `sink` once `src` has none of its bytes left to hand over.
pub(crate) fn forward_fin(dir: &mut Direction, src: &Socket<'_>, sink: &mut Socket<'_>) {
    dir.fin_seen |= matches!(
        src.state(),
        State::CloseWait | State::LastAck | State::Closing | State::TimeWait
    );
    if dir.fin_seen && !dir.fin_forwarded && src.recv_queue() == 0 && dir.spill.is_empty() {
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

/// Decides the pair's fate after a round: a side that is `Closed` without having sent its FIN
/// was reset (or timed out); both sides finished and drained is a clean end.
pub(crate) fn ending(a: &Socket<'_>, b: &Socket<'_>, to_b: &Direction, to_a: &Direction) -> Ending {
    let a_reset = a.state() == State::Closed && !to_b.fin_seen;
    let b_reset = b.state() == State::Closed && !to_a.fin_seen;
    if a_reset || b_reset {
        return Ending::Reset;
    }
    // A closed socket may still hold received bytes (its peer's FIN and our own FIN both
    // done): those are forwarded before the pair ends.
    let drained = |s: &Socket<'_>| s.send_queue() == 0 && s.recv_queue() == 0;
    let spilled = !to_b.spill.is_empty() || !to_a.spill.is_empty();
    if finished(a) && finished(b) && drained(a) && drained(b) && !spilled {
        return Ending::Done;
    }
    Ending::Running
}
