//! Packet-buffer pools (`rte_pktmbuf_pool_create`), sized from the NIC profile.

use std::ffi::CString;
use std::ptr::NonNull;

use super::error::DpdkError;
use super::mbuf::Mbuf;

/// An mbuf pool. Shared (`Arc`) by the ports whose queues take buffers from it; it must outlive
/// them, which the ports ensure by holding the `Arc`.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    name: String,
    size: u32,
}

// SAFETY: DPDK's default mempool ops (ring_mp_mc) are safe for concurrent get/put from any
// thread; the pointer is only freed in Drop, when no other handle exists.
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `mbufs` buffers of `data_room` bytes each (headroom included), with a per-lcore cache of
    /// `cache` buffers, on NUMA `socket` (`None`: any).
    pub fn new(
        name: &str,
        mbufs: u32,
        cache: u32,
        data_room: u16,
        socket: Option<u32>,
    ) -> Result<Self, DpdkError> {
        // RTE_MEMPOOL_NAMESIZE is 26 including the NUL and the "MP_" prefix of the memzone.
        if name.is_empty() || name.len() > 22 {
            return Err(DpdkError::Invalid {
                what: format!("mempool name '{name}'"),
                reason: "must be 1 to 22 bytes".into(),
            });
        }
        let c = CString::new(name).map_err(|_| DpdkError::Invalid {
            what: format!("mempool name '{name}'"),
            reason: "contains a NUL byte".into(),
        })?;
        let socket_id = socket.map_or(-1, |s| s as i32); // SOCKET_ID_ANY
        // SAFETY: `c` is a valid NUL-terminated name; EAL is initialised (Mempool is only
        // created by callers holding an Eal); the call copies the name.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(c.as_ptr(), mbufs, cache, 0, data_room, socket_id)
        };
        let raw = NonNull::new(raw).ok_or_else(|| {
            DpdkError::errno(
                "rte_pktmbuf_pool_create",
                format!("{name}: {mbufs} mbufs of {data_room} B, cache {cache}"),
            )
        })?;
        Ok(Self {
            raw,
            name: name.to_owned(),
            size: mbufs,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Buffers currently in the pool (not held by queues, caches or callers).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid for self's lifetime; the count is a racy snapshot by design.
        unsafe { dpdk_sys::shim_rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// One empty buffer, or `None` when the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; a non-null result is an mbuf we now own.
        let m = unsafe { dpdk_sys::shim_rte_pktmbuf_alloc(self.raw.as_ptr()) };
        NonNull::new(m).map(|m| {
            // SAFETY: freshly allocated and owned by us.
            unsafe { Mbuf::from_raw(m) }
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: no port holds the pool any more (they hold an Arc) and every Mbuf taken from
        // it has been freed or is owned by a queue of a port already closed.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
