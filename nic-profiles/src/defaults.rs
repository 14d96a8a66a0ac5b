//! Every default of a profile, in one place. `README.md`'s schema table quotes these values;
//! a test checks that a minimal profile gets exactly them.

use crate::port_config::RssHash;

/// `description` when absent.
pub const DESCRIPTION: &str = "";
/// `mtu` in bytes: the Ethernet standard.
pub const MTU: u32 = 1500;
/// `queues.rx_descriptors`.
pub const RX_DESCRIPTORS: u32 = 1024;
/// `queues.tx_descriptors`.
pub const TX_DESCRIPTORS: u32 = 1024;
/// `queues.rx_queues` (per port).
pub const RX_QUEUES: u32 = 1;
/// `queues.tx_queues` (per port).
pub const TX_QUEUES: u32 = 1;
/// `queues.burst`: DPDK's usual burst.
pub const BURST: u32 = 32;
/// `rss.hash` when `rss.enabled` is set without a list.
pub const RSS_HASH: [RssHash; 4] = [RssHash::Ipv4, RssHash::Ipv6, RssHash::Tcp, RssHash::Udp];
/// `mempool.mbufs`: 2^13 - 1 (a ring-backed pool of 2^n - 1 objects uses its ring fully).
pub const MBUFS: u32 = 8191;
/// `mempool.cache` per lcore.
pub const MEMPOOL_CACHE: u32 = 256;
/// `mempool.data_room` in bytes, headroom included: `RTE_MBUF_DEFAULT_BUF_SIZE`
/// (2048 + 128), which holds a 1500-byte MTU frame.
pub const DATA_ROOM: u32 = 2176;
/// `lcores.main`.
pub const MAIN_LCORE: u32 = 0;
/// `lcores.dataplane` when absent: one dataplane lcore.
pub const DATAPLANE_LCORES: u32 = 1;
/// `eal.memory_mb` with `eal.memory = "no-huge"` when absent (what the tests here use).
pub const NO_HUGE_MEMORY_MB: u32 = 256;
