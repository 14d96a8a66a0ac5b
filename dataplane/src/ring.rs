//! A fixed-capacity byte ring: the forwarding state of one direction of a proxied stream.
//!
//! Sans-io: the ring knows nothing about sockets. A driver asks for [`Ring::free_mut`], reads into
//! it and calls [`Ring::commit`]; it writes from [`Ring::filled`] and calls [`Ring::consume`]. Reads
//! and writes therefore overlap (a read can land while earlier bytes still wait for the peer), and
//! memory per direction is bounded by the capacity, which is what gives backpressure: a full ring
//! stops reading, the kernel's receive window closes, the sender slows down.

/// Fixed-capacity FIFO of bytes over one contiguous allocation.
#[derive(Debug)]
pub struct Ring {
    buf: Box<[u8]>,
    /// Index of the first filled byte.
    head: usize,
    /// Number of filled bytes.
    len: usize,
}

impl Ring {
    /// A ring holding at most `capacity` bytes (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: vec![0; capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.buf.len()
    }

    /// The longest contiguous run of filled bytes, oldest first.
    pub fn filled(&self) -> &[u8] {
        let end = (self.head + self.len).min(self.buf.len());
        &self.buf[self.head..end]
    }

    /// The longest contiguous run of free space after the filled bytes.
    pub fn free_mut(&mut self) -> &mut [u8] {
        let cap = self.buf.len();
        if self.len == cap {
            return &mut [];
        }
        let tail = (self.head + self.len) % cap;
        let end = if tail >= self.head { cap } else { self.head };
        // An empty ring restarts at 0 so that large reads get the whole buffer.
        if self.len == 0 {
            self.head = 0;
            return &mut self.buf[..];
        }
        &mut self.buf[tail..end]
    }

    /// Marks `n` bytes of the slice last returned by [`Ring::free_mut`] as filled.
    pub fn commit(&mut self, n: usize) {
        assert!(n <= self.buf.len() - self.len, "commit past the free space");
        self.len += n;
    }

    /// Drops `n` bytes from the front of [`Ring::filled`].
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.filled().len(), "consume past the filled run");
        self.head = (self.head + n) % self.buf.len();
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_survives_wraparound() {
        let mut ring = Ring::new(8);
        let mut produced = 0u8;
        let mut consumed = Vec::new();
        for step in 0..200 {
            // Write a varying amount, read a varying amount.
            let want = (step % 5) + 1;
            let free = ring.free_mut();
            let n = want.min(free.len());
            for b in &mut free[..n] {
                *b = produced;
                produced = produced.wrapping_add(1);
            }
            ring.commit(n);
            let take = ((step * 3) % 4 + 1).min(ring.filled().len());
            consumed.extend_from_slice(&ring.filled()[..take]);
            ring.consume(take);
            assert!(ring.len() <= ring.capacity());
        }
        while !ring.is_empty() {
            let n = ring.filled().len();
            consumed.extend_from_slice(ring.filled());
            ring.consume(n);
        }
        let expect: Vec<u8> = (0..consumed.len()).map(|i| i as u8).collect();
        assert_eq!(consumed, expect);
    }

    #[test]
    fn full_ring_offers_no_space_and_empty_ring_offers_all() {
        let mut ring = Ring::new(4);
        assert_eq!(ring.free_mut().len(), 4);
        ring.commit(4);
        assert!(ring.is_full());
        assert!(ring.free_mut().is_empty());
        ring.consume(3);
        // Free space is after the tail, which wrapped to index 0: one run of 3 bytes.
        assert_eq!(ring.free_mut().len(), 3);
        ring.consume(1);
        assert_eq!(ring.free_mut().len(), 4);
    }

    #[test]
    #[should_panic(expected = "commit past the free space")]
    fn commit_beyond_capacity_panics() {
        let mut ring = Ring::new(2);
        ring.commit(3);
    }
}
