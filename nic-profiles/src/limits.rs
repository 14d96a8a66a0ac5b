//! DPDK constants and ranges the validation enforces.
//!
//! Compile-time values are those of Debian's DPDK 22.11.11 (`rte_config.h`,
//! `rte_build_config.h`), the version this project builds against; the ranges are this
//! project's choices within what DPDK accepts. PMD-specific limits live in [`crate::pmd`].

use std::ops::RangeInclusive;

/// `RTE_PKTMBUF_HEADROOM`: bytes every mbuf keeps free before the packet data.
pub const MBUF_HEADROOM: u32 = 128;
/// `sizeof(struct rte_mbuf)`: the mbuf header that precedes the data room in a pool object.
pub const MBUF_HEADER: u32 = 128;
/// `sizeof(struct rte_mempool_objhdr)` rounded up to a cache line: per-object pool overhead.
pub const MEMPOOL_OBJECT_HEADER: u32 = 64;
/// `RTE_MEMPOOL_CACHE_MAX_SIZE`: the largest per-lcore mempool cache.
pub const MEMPOOL_CACHE_MAX: u32 = 512;
/// `RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN`: what ethdev adds to the MTU for the frame length
/// when a PMD reports no overhead of its own.
pub const ETHER_OVERHEAD: u32 = 18;
/// `RTE_MAX_LCORE`: lcore ids are below this.
pub const MAX_LCORE: u32 = 128;
/// `RTE_MAX_ETHPORTS`: ports one process can have.
pub const MAX_PORTS: usize = 32;
/// `RTE_MAX_NUMA_NODES`: NUMA node ids are below this.
pub const MAX_NUMA_NODES: u32 = 32;

/// MTU in bytes: `RTE_ETHER_MIN_MTU` (68) up to 9600, the largest jumbo MTU this project uses;
/// PMDs may allow less ([`crate::pmd::PmdInfo::max_mtu`]).
pub const MTU: RangeInclusive<u32> = 68..=9600;
/// Descriptors per queue (a power of two in this range; PMDs may allow less).
pub const DESCRIPTORS: RangeInclusive<u32> = 64..=32768;
/// Queues per direction per port.
pub const QUEUES: RangeInclusive<u32> = 1..=64;
/// Packets per `rte_eth_rx_burst`/`rte_eth_tx_burst` call.
pub const BURST: RangeInclusive<u32> = 1..=512;
/// Mbuf data room in bytes, headroom included: above the headroom, and at most the
/// `uint16_t` that `rte_pktmbuf_pool_create` takes.
pub const DATA_ROOM: RangeInclusive<u32> = (MBUF_HEADROOM + 64)..=65535;
/// EAL memory (`-m`) in MiB; 64 is the smallest size tried on the development machine.
pub const MEMORY_MB: RangeInclusive<u32> = 64..=1_048_576;
/// Interface names (`iface` devargs) are at most `IFNAMSIZ - 1` bytes.
pub const IFNAME_MAX: usize = 15;
