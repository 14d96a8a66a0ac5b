//! One packet buffer, owned: freed back to its pool on drop.

use std::ptr::NonNull;

/// An owned `rte_mbuf` (single segment as far as the accessors go). `repr(transparent)`, so a
/// `Vec<Mbuf>`'s spare capacity is exactly the `struct rte_mbuf **` that rx/tx bursts take.
#[derive(Debug)]
#[repr(transparent)]
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one Mbuf at a time; freeing it from another thread is
// allowed (mempools are multi-producer).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// # Safety
    /// `raw` must be a valid mbuf that the caller owns and hands over (it is freed on drop).
    #[inline]
    pub(crate) unsafe fn from_raw(raw: NonNull<dpdk_sys::rte_mbuf>) -> Self {
        Self(raw)
    }

    #[inline]
    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: we own a valid mbuf.
        unsafe { self.0.as_ref() }
    }

    /// Bytes in the first segment.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in all segments.
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    #[inline]
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The data of every segment, in order: one slice for a single-segment frame, several for a
    /// chained one (a device that splits frames larger than its buffers).
    #[inline]
    pub fn segment_data(&self) -> Segments<'_> {
        Segments {
            next: Some(self.0),
            _frame: std::marker::PhantomData,
        }
    }

    /// Free space after the data in the first segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    /// The first segment's data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer, which we own
        // for as long as self lives.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The first segment's data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (m.buf_addr, m.data_off, m.data_len);
        // SAFETY: as in `data`, and we hold the only handle (refcount 1 for buffers we
        // allocated or received), so no one else reads it.
        unsafe {
            std::slice::from_raw_parts_mut(
                addr.cast::<u8>().add(usize::from(off)),
                usize::from(len),
            )
        }
    }

    /// Grows the data by `len` bytes at the end and returns them, or `None` when the tailroom
    /// is too small.
    #[inline]
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: we own the mbuf; append checks the tailroom and returns NULL if short.
        let p = unsafe { dpdk_sys::shim_rte_pktmbuf_append(self.0.as_ptr(), len) };
        if p.is_null() {
            return None;
        }
        // SAFETY: DPDK returned `len` writable bytes inside our buffer.
        Some(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), usize::from(len)) })
    }

    /// Appends `tail` (and its segments) to this chain, as `rte_pktmbuf_chain` does. Gives
    /// `tail` back if the chain would exceed the 65535 segments an mbuf counts.
    pub fn chain(&mut self, tail: Mbuf) -> Result<(), Mbuf> {
        let (segs, extra) = (self.segments(), tail.segments());
        let Some(total) = segs.checked_add(extra) else {
            return Err(tail);
        };
        let tail_len = tail.pkt_len();
        let tail = std::mem::ManuallyDrop::new(tail);
        // SAFETY: we own both chains. The walk follows `next` links of our own segments to
        // the last one; linking the tail there hands its ownership to this chain (`tail` is
        // not dropped), and the head's counts then cover both, as DPDK's chain does.
        unsafe {
            let mut last = self.0.as_ptr();
            while let Some(n) = NonNull::new((*last).next) {
                last = n.as_ptr();
            }
            (*last).next = tail.0.as_ptr();
            let head = self.0.as_ptr();
            (*head).nb_segs = total;
            (*head).pkt_len += tail_len as u32;
            (*tail.0.as_ptr()).pkt_len = u32::from((*tail.0.as_ptr()).data_len);
        }
        Ok(())
    }

    /// Removes `len` bytes from the end.
    #[inline]
    pub fn trim(&mut self, len: u16) -> bool {
        // SAFETY: we own the mbuf; trim checks the length.
        unsafe { dpdk_sys::shim_rte_pktmbuf_trim(self.0.as_ptr(), len) == 0 }
    }

    /// Frees every mbuf of `mbufs` in one call (`rte_pktmbuf_free_bulk`) and empties it: much
    /// cheaper per packet than dropping them one by one.
    #[inline]
    pub fn free_bulk(mbufs: &mut Vec<Mbuf>) {
        if mbufs.is_empty() {
            return;
        }
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, so the vector's buffer is an
        // array of `len` owned mbuf pointers; DPDK frees them all, and set_len(0) forgets them
        // without running Drop.
        unsafe {
            dpdk_sys::shim_rte_pktmbuf_free_bulk(
                mbufs.as_mut_ptr().cast::<*mut dpdk_sys::rte_mbuf>(),
                mbufs.len() as u32,
            );
            mbufs.set_len(0);
        }
    }

    /// The port the packet arrived on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }
}

/// The segments of one [`Mbuf`] chain, borrowed from it.
#[derive(Debug)]
pub struct Segments<'a> {
    next: Option<NonNull<dpdk_sys::rte_mbuf>>,
    _frame: std::marker::PhantomData<&'a Mbuf>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        // SAFETY: `next` is the chain's head (owned by the Mbuf this borrows) or a `next` link
        // of a segment of it; DPDK keeps every segment valid while the head is owned, and
        // each segment's buf_addr + data_off .. + data_len lies inside its own buffer.
        unsafe {
            let m = self.next?.as_ref();
            self.next = NonNull::new(m.next);
            Some(std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            ))
        }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and give it back exactly once.
        unsafe { dpdk_sys::shim_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}
