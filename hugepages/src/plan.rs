//! How many hugepages a DPDK process needs: byte estimates for mbuf mempools, the slack EAL needs
//! for itself, and the per-node page counts ([`Plan`]) that [`crate::ensure_plan`] reserves and
//! [`crate::Status::verify`] checks.
//!
//! The mempool estimate follows what `rte_pktmbuf_pool_create` allocates in DPDK 22.11 (the
//! version Debian ships and this project builds against). The struct sizes below were measured
//! with `sizeof` against the installed headers, and the formula was checked against
//! `rte_malloc_get_socket_stats` before and after creating pools of 1000, 8191 and 65535 mbufs
//! (EAL with `--no-huge`): it matched to within 2 KiB of allocator headers per pool.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::size::MIB;
use crate::{NodeId, PageSize};

/// `sizeof(struct rte_mbuf)`: two cache lines.
pub const MBUF_HEADER_BYTES: u64 = 128;
/// `RTE_PKTMBUF_HEADROOM`: room before the packet data for prepending headers.
pub const PKTMBUF_HEADROOM_BYTES: u64 = 128;
/// Memory EAL and the drivers take from hugepages on top of the mempools, per process.
///
/// 16 MiB. Measured on DPDK 22.11, EAL's heap holds 152 KiB after `rte_eal_init` with no devices
/// and 565 KiB with two virtual ports; the rest is headroom for what is not in a mempool: ethdev
/// queue state and descriptor rings (a NIC with 4 queues of 4096 descriptors each way takes a few
/// MiB; mlx5 takes more), `rte_ring`s and hash tables the application creates, and the page each
/// heap grows by at a time. It also covers the space mempools lose because an object never
/// straddles two hugepages (with 2M pages under 0.2% for 2 KiB mbufs).
pub const EAL_SLACK_BYTES: u64 = 16 * MIB;

const CACHE_LINE: u64 = 64;
/// `sizeof(struct rte_mempool_objhdr)` (24) rounded up to a cache line: each object's header.
const OBJECT_HEADER_BYTES: u64 = 64;
/// `sizeof(struct rte_mempool)`.
const MEMPOOL_BYTES: u64 = 192;
/// `sizeof(struct rte_pktmbuf_pool_private)`, stored after the mempool header.
const PKTMBUF_POOL_PRIVATE_BYTES: u64 = 8;
/// `sizeof(struct rte_mempool_cache)`: its object array is sized for the maximum cache
/// (2 × `RTE_MEMPOOL_CACHE_MAX_SIZE` pointers), whatever `cache_size` is.
const MEMPOOL_CACHE_BYTES: u64 = 8256;
/// `RTE_MAX_LCORE` of Debian's build: a mempool with a cache holds one cache per possible lcore.
const MAX_LCORE: u64 = 128;
/// `sizeof(struct rte_ring)`: the header of the ring that holds a mempool's free objects.
const RING_HEADER_BYTES: u64 = 384;
/// Memory channels times ranks that EAL assumes without `-n`; objects are padded so their size
/// in cache lines shares no factor with it, spreading them over the channels.
const MEMORY_CHANNELS: u64 = 4;

/// Hugepages of one size to have free on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub node: NodeId,
    pub size: PageSize,
    pub pages: u64,
}

/// Pages of `size` needed to hold `bytes` (rounded up).
pub fn pages_needed(bytes: u64, size: PageSize) -> u64 {
    bytes.div_ceil(size.bytes())
}

/// Bytes of hugepage memory one mbuf pool takes: what
/// `rte_pktmbuf_pool_create(name, n_mbufs, cache_size, 0, RTE_PKTMBUF_HEADROOM + data_room, ..)`
/// allocates in DPDK 22.11.
///
/// - `data_room`: packet bytes per mbuf, *excluding* the headroom (DPDK's `data_room_size`
///   argument includes it; its default `RTE_MBUF_DEFAULT_BUF_SIZE` is 2048 + 128).
/// - `cache_size`: objects in each lcore's cache. DPDK preallocates a cache for every possible
///   lcore whenever it is non-zero, so memory depends only on whether it is zero.
/// - `n_lcores`: lcores using the pool; counts only beyond DPDK's 128 possible lcores, which a
///   build for more lcores would have.
///
/// Per object: the mbuf header, headroom and data room rounded to 8 bytes, plus a 64-byte object
/// header, rounded up to whole cache lines and padded to an odd number of them (DPDK spreads
/// objects over memory channels). Then the mempool header with its per-lcore caches, and the ring
/// of free objects (the next power of two above `n_mbufs`, 8 bytes a slot). EAL's own needs are
/// not included: add [`EAL_SLACK_BYTES`] once per process, e.g. with [`process_bytes`].
pub fn mempool_bytes(n_mbufs: u32, data_room: u32, cache_size: u32, n_lcores: u32) -> u64 {
    let element =
        (MBUF_HEADER_BYTES + PKTMBUF_HEADROOM_BYTES + u64::from(data_room)).next_multiple_of(8);
    let mut lines = (OBJECT_HEADER_BYTES + element).div_ceil(CACHE_LINE);
    while gcd(lines, MEMORY_CHANNELS) != 1 {
        lines += 1;
    }
    let objects = u64::from(n_mbufs) * lines * CACHE_LINE;

    let caches = if cache_size == 0 {
        0
    } else {
        u64::from(n_lcores).max(MAX_LCORE) * MEMPOOL_CACHE_BYTES
    };
    let header = (MEMPOOL_BYTES + caches + PKTMBUF_POOL_PRIVATE_BYTES).next_multiple_of(CACHE_LINE);

    let slots = (u64::from(n_mbufs) + 1).next_power_of_two();
    let ring = (RING_HEADER_BYTES + slots * 8).next_multiple_of(CACHE_LINE);

    objects + header + ring
}

/// Hugepage bytes one DPDK process needs: its mempools plus [`EAL_SLACK_BYTES`].
pub fn process_bytes(mempools: impl IntoIterator<Item = u64>) -> u64 {
    mempools.into_iter().sum::<u64>() + EAL_SLACK_BYTES
}

/// The pages of `size` to have free per node for the byte needs given as `(node, bytes)`; needs
/// on the same node are added before rounding up, and nodes needing nothing are left out.
pub fn plan(size: PageSize, needs: &[(NodeId, u64)]) -> Vec<Plan> {
    let mut per_node: BTreeMap<NodeId, u64> = BTreeMap::new();
    for &(node, bytes) in needs {
        *per_node.entry(node).or_default() += bytes;
    }
    per_node
        .into_iter()
        .filter(|&(_, bytes)| bytes > 0)
        .map(|(node, bytes)| Plan {
            node,
            size,
            pages: pages_needed(bytes, size),
        })
        .collect()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::GIB;

    #[test]
    fn pages_needed_rounds_up() {
        let m2 = PageSize::TWO_MIB;
        assert_eq!(pages_needed(0, m2), 0);
        assert_eq!(pages_needed(1, m2), 1);
        assert_eq!(pages_needed(2 * MIB, m2), 1);
        assert_eq!(pages_needed(2 * MIB + 1, m2), 2);
        assert_eq!(pages_needed(GIB, m2), 512);
        assert_eq!(pages_needed(GIB + 1, PageSize::ONE_GIB), 2);
    }

    #[test]
    fn mempool_of_default_mbufs_matches_a_hand_computation() {
        // 8191 mbufs of 2048 data bytes (DPDK's default buffer), cache 256, 4 lcores:
        // object = 64 (objhdr) + 128 (mbuf) + 128 (headroom) + 2048 = 2368 = 37 cache lines,
        //          odd, so no spreading pad             → 8191 × 2368      = 19_396_288
        // header = 192 + 128 lcores × 8256 + 8 = 1_056_968 → cache-aligned =  1_057_024
        // ring   = 384 + 8192 slots × 8                                     =     65_920
        assert_eq!(
            mempool_bytes(8191, 2048, 256, 4),
            19_396_288 + 1_057_024 + 65_920
        );
    }

    #[test]
    fn mempool_objects_are_padded_to_an_odd_number_of_cache_lines() {
        // 64 + 128 + 128 + 2112 = 2432 = 38 lines → 39 lines = 2496 bytes (DPDK: trailer 64).
        // No cache: header 192 + 8 → 256; ring for 1000 mbufs: 1024 slots → 384 + 8192.
        assert_eq!(mempool_bytes(1000, 2112, 0, 1), 1000 * 2496 + 256 + 8576);
    }

    #[test]
    fn lcores_beyond_the_default_maximum_add_caches() {
        let base = mempool_bytes(4095, 2048, 256, 1);
        assert_eq!(mempool_bytes(4095, 2048, 256, 128), base);
        assert_eq!(
            mempool_bytes(4095, 2048, 256, 130),
            base + 2 * MEMPOOL_CACHE_BYTES
        );
    }

    #[test]
    fn process_adds_the_eal_slack_once() {
        assert_eq!(process_bytes([10, 20]), 30 + EAL_SLACK_BYTES);
        assert_eq!(process_bytes([]), EAL_SLACK_BYTES);
    }

    #[test]
    fn plan_adds_needs_per_node_before_rounding() {
        let m2 = PageSize::TWO_MIB;
        let plans = plan(
            m2,
            &[
                (NodeId(1), MIB),
                (NodeId(0), 3 * MIB),
                (NodeId(1), MIB),
                (NodeId(2), 0),
            ],
        );
        assert_eq!(
            plans,
            [
                Plan {
                    node: NodeId(0),
                    size: m2,
                    pages: 2
                },
                Plan {
                    node: NodeId(1),
                    size: m2,
                    pages: 1
                },
            ]
        );
    }
}
