//! What the DPDK layer configures on each port, as plain data: [`port_config()`] turns a
//! validated [`Profile`] into a [`PortConfig`].
//!
//! The DPDK layer maps these values onto `rte_eth_conf` and the queue setup calls:
//!
//! | here | DPDK |
//! |---|---|
//! | [`RxOffload::Ipv4Cksum`], `TcpCksum`, `UdpCksum` | `RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`, `_TCP_CKSUM`, `_UDP_CKSUM` |
//! | [`RxOffload::Lro`], `Scatter` | `RTE_ETH_RX_OFFLOAD_TCP_LRO`, `_SCATTER` |
//! | [`TxOffload::Ipv4Cksum`], `TcpCksum`, `UdpCksum` | `RTE_ETH_TX_OFFLOAD_IPV4_CKSUM`, `_TCP_CKSUM`, `_UDP_CKSUM` |
//! | [`TxOffload::Tso`], `MultiSegs` | `RTE_ETH_TX_OFFLOAD_TCP_TSO`, `_MULTI_SEGS` |
//! | [`RssHash::Ipv4`] | `RTE_ETH_RSS_IPV4 \| RTE_ETH_RSS_FRAG_IPV4` |
//! | [`RssHash::Ipv6`] | `RTE_ETH_RSS_IPV6 \| RTE_ETH_RSS_FRAG_IPV6` |
//! | [`RssHash::Tcp`] | `RTE_ETH_RSS_NONFRAG_IPV4_TCP` (with `Ipv4`), `_NONFRAG_IPV6_TCP` (with `Ipv6`) |
//! | [`RssHash::Udp`] | `RTE_ETH_RSS_NONFRAG_IPV4_UDP` (with `Ipv4`), `_NONFRAG_IPV6_UDP` (with `Ipv6`) |
//! | [`PortConfig::mtu`] | `rxmode.mtu` (ethdev derives the frame length: mtu + 18) |
//! | [`MempoolConfig`] | `rte_pktmbuf_pool_create(n, cache, 0, data_room, numa_node)` |
//!
//! Validation only rejects what a PMD family never offers (TSO on `net_af_packet`). What one
//! device of a family lacks (a virtio device without negotiated checksum offload, a ConnectX
//! firmware without LRO) is not known until the port is probed, so **the DPDK layer masks the
//! requested offloads and RSS hash types against `rte_eth_dev_info` at port start and logs
//! what the device lacks** (DPDK 22.11 refuses `rte_eth_dev_configure` when asked for an
//! offload outside `rx_offload_capa`/`tx_offload_capa`).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;

use crate::Profile;
use crate::limits::ETHER_OVERHEAD;

/// A small enum whose values can be collected in a [`FlagSet`].
pub trait Flag: Copy + Eq + fmt::Debug + 'static {
    /// Every value, in bit order.
    const ALL: &'static [Self];
    /// The value's bit index (below 8).
    fn index(self) -> u8;
}

/// A set of [`Flag`] values in one byte: copyable, ordered, cheap to compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlagSet<T> {
    bits: u8,
    flag: PhantomData<T>,
}

impl<T: Flag> FlagSet<T> {
    pub const fn empty() -> Self {
        Self::from_bits(0)
    }

    pub(crate) const fn from_bits(bits: u8) -> Self {
        Self {
            bits,
            flag: PhantomData,
        }
    }

    pub fn contains(self, flag: T) -> bool {
        self.bits & (1 << flag.index()) != 0
    }

    pub fn insert(&mut self, flag: T) {
        self.bits |= 1 << flag.index();
    }

    pub fn remove(&mut self, flag: T) {
        self.bits &= !(1 << flag.index());
    }

    pub fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// The values in `self` that are not in `other`.
    pub fn difference(self, other: Self) -> Self {
        Self::from_bits(self.bits & !other.bits)
    }

    /// The values in both.
    pub fn intersection(self, other: Self) -> Self {
        Self::from_bits(self.bits & other.bits)
    }

    /// The values, in bit order.
    pub fn iter(self) -> impl Iterator<Item = T> {
        T::ALL.iter().copied().filter(move |f| self.contains(*f))
    }
}

impl<T: Flag> Default for FlagSet<T> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T: Flag> FromIterator<T> for FlagSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut set = Self::empty();
        for f in iter {
            set.insert(f);
        }
        set
    }
}

impl<T: Flag> fmt::Debug for FlagSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A receive offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RxOffload {
    Ipv4Cksum,
    TcpCksum,
    UdpCksum,
    Lro,
    Scatter,
}

impl Flag for RxOffload {
    const ALL: &'static [Self] = &[
        Self::Ipv4Cksum,
        Self::TcpCksum,
        Self::UdpCksum,
        Self::Lro,
        Self::Scatter,
    ];
    fn index(self) -> u8 {
        self as u8
    }
}

/// A transmit offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxOffload {
    Ipv4Cksum,
    TcpCksum,
    UdpCksum,
    Tso,
    MultiSegs,
}

impl Flag for TxOffload {
    const ALL: &'static [Self] = &[
        Self::Ipv4Cksum,
        Self::TcpCksum,
        Self::UdpCksum,
        Self::Tso,
        Self::MultiSegs,
    ];
    fn index(self) -> u8 {
        self as u8
    }
}

/// What RSS hashes on (`rss.hash` in a profile: `"ipv4"`, `"ipv6"`, `"tcp"`, `"udp"`).
/// `tcp` and `udp` add the ports to the hash of the IP versions listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RssHash {
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
}

impl Flag for RssHash {
    const ALL: &'static [Self] = &[Self::Ipv4, Self::Ipv6, Self::Tcp, Self::Udp];
    fn index(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for RssHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RssHash::Ipv4 => "ipv4",
            RssHash::Ipv6 => "ipv6",
            RssHash::Tcp => "tcp",
            RssHash::Udp => "udp",
        })
    }
}

pub type RxOffloads = FlagSet<RxOffload>;
pub type TxOffloads = FlagSet<TxOffload>;
pub type RssHashes = FlagSet<RssHash>;

/// The configuration of every port of a profile (ports of one profile are configured alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// Packets per rx/tx burst call.
    pub burst: u16,
    /// Layer-3 MTU in bytes.
    pub mtu: u16,
    /// The largest frame the port receives: `mtu + 18` (Ethernet header and CRC), what ethdev
    /// 22.11 derives from `rxmode.mtu`.
    pub max_rx_pkt_len: u32,
    pub rx_offloads: RxOffloads,
    pub tx_offloads: TxOffloads,
    /// `None`: RSS off (`RTE_ETH_MQ_RX_NONE`), every packet lands on rx queue 0.
    pub rss: Option<RssConfig>,
    pub mempool: MempoolConfig,
}

/// Receive-side scaling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssConfig {
    pub hash: RssHashes,
    /// The hash key; `None` keeps the device's default key.
    pub key: Option<Vec<u8>>,
}

/// The mbuf pool the ports receive into and the stack allocates from (one per process, on the
/// NIC's NUMA node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolConfig {
    pub mbufs: u32,
    /// Per-lcore cache.
    pub cache: u32,
    /// Bytes per mbuf, the 128-byte headroom included (`data_room_size`).
    pub data_room: u16,
    /// Where to allocate (`None`: `SOCKET_ID_ANY`).
    pub numa_node: Option<u32>,
}

/// The port configuration of a profile. Expects a validated profile (one returned by a loader,
/// or one whose [`Profile::validate`] passed after editing): values outside the `u16` DPDK
/// takes cannot occur then, and would saturate otherwise.
pub fn port_config(profile: &Profile) -> PortConfig {
    let q = &profile.queues;
    let o = &profile.offloads;
    let mut rx = RxOffloads::empty();
    let mut tx = TxOffloads::empty();
    if o.rx_checksum {
        rx.insert(RxOffload::Ipv4Cksum);
        rx.insert(RxOffload::TcpCksum);
        rx.insert(RxOffload::UdpCksum);
    }
    if o.lro {
        rx.insert(RxOffload::Lro);
    }
    if o.scatter {
        rx.insert(RxOffload::Scatter);
    }
    if o.tx_checksum {
        tx.insert(TxOffload::Ipv4Cksum);
        tx.insert(TxOffload::TcpCksum);
        tx.insert(TxOffload::UdpCksum);
    }
    if o.tso {
        tx.insert(TxOffload::Tso);
    }
    if o.multi_seg {
        tx.insert(TxOffload::MultiSegs);
    }
    let rss = profile.rss.enabled.then(|| RssConfig {
        hash: profile.rss.hash.iter().copied().collect(),
        // A validated key is hex; an invalid one (unvalidated profile) falls back to the
        // device's key rather than to garbage.
        key: profile.rss.key.as_deref().and_then(|k| hex::decode(k).ok()),
    });
    PortConfig {
        rx_queues: narrow(q.rx_queues),
        tx_queues: narrow(q.tx_queues),
        rx_descriptors: narrow(q.rx_descriptors),
        tx_descriptors: narrow(q.tx_descriptors),
        burst: narrow(q.burst),
        mtu: narrow(profile.mtu),
        max_rx_pkt_len: profile.mtu + ETHER_OVERHEAD,
        rx_offloads: rx,
        tx_offloads: tx,
        rss,
        mempool: MempoolConfig {
            mbufs: profile.mempool.mbufs,
            cache: profile.mempool.cache,
            data_room: narrow(profile.mempool.data_room),
            numa_node: profile.lcores.numa_node,
        },
    }
}

/// Validated values fit (descriptors ≤ 32768, MTU ≤ 9600, data room ≤ 65535).
fn narrow(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_sets_hold_their_values_in_order() {
        let mut s: TxOffloads = [TxOffload::Tso, TxOffload::Ipv4Cksum].into_iter().collect();
        assert!(s.contains(TxOffload::Tso));
        assert!(!s.contains(TxOffload::MultiSegs));
        assert_eq!(format!("{s:?}"), "{Ipv4Cksum, Tso}");
        s.remove(TxOffload::Tso);
        assert_eq!(s.iter().collect::<Vec<_>>(), [TxOffload::Ipv4Cksum]);
        let all: TxOffloads = TxOffload::ALL.iter().copied().collect();
        assert_eq!(
            all.difference(s).iter().collect::<Vec<_>>(),
            [
                TxOffload::TcpCksum,
                TxOffload::UdpCksum,
                TxOffload::Tso,
                TxOffload::MultiSegs
            ]
        );
        assert!(RxOffloads::default().is_empty());
    }

    #[test]
    fn connectx6dx_port_config() {
        let p = Profile::builtin("connectx6dx").unwrap();
        let c = port_config(&p);
        assert_eq!((c.rx_queues, c.tx_queues), (4, 4));
        assert_eq!(
            (c.rx_descriptors, c.tx_descriptors, c.burst),
            (4096, 4096, 32)
        );
        assert_eq!((c.mtu, c.max_rx_pkt_len), (9000, 9018));
        assert_eq!(
            format!("{:?}", c.rx_offloads),
            "{Ipv4Cksum, TcpCksum, UdpCksum}"
        );
        assert_eq!(
            format!("{:?}", c.tx_offloads),
            "{Ipv4Cksum, TcpCksum, UdpCksum, Tso, MultiSegs}"
        );
        let rss = c.rss.expect("RSS on");
        assert_eq!(format!("{:?}", rss.hash), "{Ipv4, Ipv6, Tcp, Udp}");
        assert_eq!(rss.key, None);
        assert_eq!(
            c.mempool,
            MempoolConfig {
                mbufs: 131071,
                cache: 512,
                data_room: 9344,
                numa_node: Some(0),
            }
        );
    }

    #[test]
    fn af_packet_port_config_has_no_offloads_and_no_rss() {
        let c = port_config(&Profile::builtin("af_packet").unwrap());
        assert!(c.rx_offloads.is_empty() && c.tx_offloads.is_empty());
        assert_eq!(c.rss, None);
        assert_eq!((c.mtu, c.mempool.data_room), (1500, 2176));
    }

    #[test]
    fn rss_key_is_decoded() {
        let mut p = Profile::builtin("connectx6dx").unwrap();
        p.rss.key = Some("6d5a".repeat(20));
        let key = port_config(&p).rss.unwrap().key.unwrap();
        assert_eq!(key.len(), 40);
        assert_eq!(&key[..2], &[0x6d, 0x5a]);
    }
}
