//! DPDK flag bits that bindgen cannot see (they are `RTE_BIT64(n)` macros). The C shim
//! `_Static_assert`s every value against the installed headers, so a DPDK that changes one fails
//! the build instead of misconfiguring a port.

pub(crate) const RX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;
pub(crate) const RX_OFFLOAD_UDP_CKSUM: u64 = 1 << 2;
pub(crate) const RX_OFFLOAD_TCP_CKSUM: u64 = 1 << 3;
pub(crate) const RX_OFFLOAD_TCP_LRO: u64 = 1 << 4;
pub(crate) const RX_OFFLOAD_SCATTER: u64 = 1 << 13;

pub(crate) const TX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;
pub(crate) const TX_OFFLOAD_UDP_CKSUM: u64 = 1 << 2;
pub(crate) const TX_OFFLOAD_TCP_CKSUM: u64 = 1 << 3;
pub(crate) const TX_OFFLOAD_TCP_TSO: u64 = 1 << 5;
pub(crate) const TX_OFFLOAD_MULTI_SEGS: u64 = 1 << 15;

pub(crate) const RSS_IPV4: u64 = 1 << 2;
pub(crate) const RSS_FRAG_IPV4: u64 = 1 << 3;
pub(crate) const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
pub(crate) const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
pub(crate) const RSS_IPV6: u64 = 1 << 8;
pub(crate) const RSS_FRAG_IPV6: u64 = 1 << 9;
pub(crate) const RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
pub(crate) const RSS_NONFRAG_IPV6_UDP: u64 = 1 << 11;
