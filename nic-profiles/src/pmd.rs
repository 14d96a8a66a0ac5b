//! What this crate knows about each poll-mode driver family, for DPDK 22.11 (Debian's
//! 22.11.11, the version the project builds against).
//!
//! Sources, per entry: the virtual devices were probed on the development machine with
//! `dpdk-testpmd` (`show port info`, `show port 0 rx_offload capabilities`, `port config mtu`,
//! and probes with bad devargs); the known devargs are the PMDs' `valid_arguments` (and the
//! `PMD_INFO_STRING` embedded in the installed `.so`); the hardware entries come from the
//! 22.11 driver sources and the NIC guides, **not from hardware**, which this machine lacks.
//!
//! The numbers are family-wide ceilings. A particular device can offer less (firmware,
//! negotiated virtio features); the DPDK layer masks against `rte_eth_dev_info` at port start.

use crate::devargs::{DevargKind, DevargSpec};
use crate::limits;
use crate::port_config::{RxOffload as R, RxOffloads, TxOffload as T, TxOffloads};
use crate::profile::Bus;

/// A PMD family's limits and devargs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmdInfo {
    /// Driver name as EAL knows it (`net_mlx5`); vdevs are named `<name><index>`.
    pub name: &'static str,
    pub bus: Bus,
    /// Every devarg key the PMD accepts (DPDK refuses to probe a device with any other).
    pub devargs: &'static [DevargSpec],
    /// Keys each port must set itself (they name the port's interface or socket), and which a
    /// profile therefore must not set.
    pub port_devargs: &'static [&'static str],
    /// Receive offloads the family can offer.
    pub rx_offloads: RxOffloads,
    /// Transmit offloads the family can offer.
    pub tx_offloads: TxOffloads,
    /// RSS key length in bytes; `None`: the PMD has no RSS.
    pub rss_key_len: Option<usize>,
    /// The largest MTU `rte_eth_dev_configure` accepts.
    pub max_mtu: u32,
    /// Why `max_mtu` is what it is, for the error message.
    pub mtu_reason: &'static str,
    pub max_descriptors: u32,
    /// Queues per direction.
    pub max_queues: u32,
    /// The devarg that creates the queues and its default (`qpairs` for af_packet): rx queues
    /// must equal it (packets fanned out to a queue nobody polls are lost), tx queues may be
    /// fewer.
    pub queue_devarg: Option<(&'static str, u32)>,
    /// The largest mempool data room the PMD can receive into.
    pub max_data_room: Option<(u32, &'static str)>,
}

/// Looks a PMD up by driver name.
pub fn lookup(name: &str) -> Option<&'static PmdInfo> {
    PMDS.iter().find(|p| p.name == name)
}

/// Names of the PMDs this crate knows, in table order.
pub fn known() -> impl Iterator<Item = &'static str> {
    PMDS.iter().map(|p| p.name)
}

impl PmdInfo {
    /// The kind of a known devarg.
    pub fn devarg_kind(&self, key: &str) -> Option<DevargKind> {
        self.devargs.iter().find(|d| d.key == key).map(|d| d.kind)
    }

    /// Known keys, comma-separated (for error messages).
    pub(crate) fn devarg_list(&self) -> String {
        if self.devargs.is_empty() {
            return "(none: this PMD takes no devargs)".into();
        }
        self.devargs
            .iter()
            .map(|d| d.key)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

const fn rx(flags: &[R]) -> RxOffloads {
    let mut bits = 0u8;
    let mut i = 0;
    while i < flags.len() {
        bits |= 1 << flags[i] as u8;
        i += 1;
    }
    RxOffloads::from_bits(bits)
}

const fn tx(flags: &[T]) -> TxOffloads {
    let mut bits = 0u8;
    let mut i = 0;
    while i < flags.len() {
        bits |= 1 << flags[i] as u8;
        i += 1;
    }
    TxOffloads::from_bits(bits)
}

const fn int(key: &'static str) -> DevargSpec {
    DevargSpec {
        key,
        kind: DevargKind::Int,
    }
}

const fn flag(key: &'static str) -> DevargSpec {
    DevargSpec {
        key,
        kind: DevargKind::Flag,
    }
}

const fn text(key: &'static str) -> DevargSpec {
    DevargSpec {
        key,
        kind: DevargKind::Text,
    }
}

const fn yes_no(key: &'static str) -> DevargSpec {
    DevargSpec {
        key,
        kind: DevargKind::YesNo,
    }
}

const GLOBAL_MTU: &str = "9600 is the largest MTU this project configures";

/// mlx5 driver options of DPDK 22.11 (net/mlx5 and the common mlx5 options), as listed in the
/// mlx5 guide and present in the installed `librte_net_mlx5.so.23.0`.
const MLX5_DEVARGS: &[DevargSpec] = &[
    text("class"),
    int("rxq_cqe_comp_en"),
    flag("rxq_pkt_pad_en"),
    int("delay_drop"),
    flag("mprq_en"),
    int("mprq_log_stride_num"),
    int("mprq_log_stride_size"),
    int("mprq_max_memcpy_len"),
    int("rxqs_min_mprq"),
    int("txq_inline"),
    int("txqs_min_inline"),
    int("txqs_max_vec"),
    int("txq_inline_min"),
    int("txq_inline_max"),
    int("txq_inline_mpw"),
    flag("txq_mpw_en"),
    flag("txq_mpw_hdr_dseg_en"),
    int("txq_max_inline_len"),
    int("tx_db_nc"),
    int("sq_db_nc"),
    int("tx_pp"),
    int("tx_skew"),
    flag("tx_vec_en"),
    flag("rx_vec_en"),
    flag("vf_nl_en"),
    flag("l3_vxlan_en"),
    int("dv_xmeta_en"),
    int("dv_flow_en"),
    flag("dv_esw_en"),
    flag("fdb_def_rule_en"),
    flag("lacp_by_user"),
    text("representor"),
    flag("repr_matching_en"),
    int("max_dump_files_num"),
    int("lro_timeout_usec"),
    int("hp_buf_log_sz"),
    int("reclaim_mem_mode"),
    flag("sys_mem_en"),
    flag("decap_en"),
    flag("allow_duplicate_pattern"),
    flag("mr_ext_memseg_en"),
    flag("mr_mempool_reg_en"),
    int("cmd_fd"),
    int("pd_handle"),
];

const MLX5: PmdInfo = PmdInfo {
    name: "net_mlx5",
    bus: Bus::Pci,
    devargs: MLX5_DEVARGS,
    port_devargs: &[],
    rx_offloads: rx(&[R::Ipv4Cksum, R::TcpCksum, R::UdpCksum, R::Lro, R::Scatter]),
    tx_offloads: tx(&[T::Ipv4Cksum, T::TcpCksum, T::UdpCksum, T::Tso, T::MultiSegs]),
    // MLX5_RSS_HASH_KEY_LEN
    rss_key_len: Some(40),
    max_mtu: *limits::MTU.end(),
    mtu_reason: GLOBAL_MTU,
    // ConnectX-5/6: 2^15 WQEs per queue (log_max_wq_sz)
    max_descriptors: 32768,
    max_queues: *limits::QUEUES.end(),
    queue_devarg: None,
    max_data_room: None,
};

const ICE: PmdInfo = PmdInfo {
    name: "net_ice",
    bus: Bus::Pci,
    devargs: &[
        flag("safe-mode-support"),
        flag("pipeline-mode-support"),
        text("proto_xtr"),
        text("hw_debug_mask"),
        text("pps_out"),
        flag("rx_low_latency"),
    ],
    port_devargs: &[],
    // No LRO in ice.
    rx_offloads: rx(&[R::Ipv4Cksum, R::TcpCksum, R::UdpCksum, R::Scatter]),
    tx_offloads: tx(&[T::Ipv4Cksum, T::TcpCksum, T::UdpCksum, T::Tso, T::MultiSegs]),
    // 40-byte standard key + 12-byte extended hash key (ice_init_rss: rss_key_size).
    rss_key_len: Some(52),
    // ICE_FRAME_SIZE_MAX 9728 - ICE_ETH_OVERHEAD 26 = 9702; the global cap binds first.
    max_mtu: *limits::MTU.end(),
    mtu_reason: GLOBAL_MTU,
    // ICE_MAX_RING_DESC in 22.11
    max_descriptors: 4096,
    max_queues: *limits::QUEUES.end(),
    queue_devarg: None,
    max_data_room: None,
};

const VIRTIO: PmdInfo = PmdInfo {
    name: "net_virtio",
    bus: Bus::Pci,
    devargs: &[flag("vdpa"), int("speed"), flag("vectorized")],
    port_devargs: &[],
    // Only what the host negotiates (VIRTIO_NET_F_GUEST_CSUM, _GUEST_TSO4/6, _CSUM,
    // _HOST_TSO4/6); virtio has no IPv4 header checksum offload.
    rx_offloads: rx(&[R::TcpCksum, R::UdpCksum, R::Lro, R::Scatter]),
    tx_offloads: tx(&[T::TcpCksum, T::UdpCksum, T::Tso, T::MultiSegs]),
    // VIRTIO_NET_RSS_KEY_SIZE, only with VIRTIO_NET_F_RSS
    rss_key_len: Some(40),
    max_mtu: *limits::MTU.end(),
    mtu_reason: GLOBAL_MTU,
    // The virtio ring's limit; the PMD clamps to the device's ring size (QEMU: 256 by
    // default, at most 1024).
    max_descriptors: 32768,
    max_queues: *limits::QUEUES.end(),
    queue_devarg: None,
    max_data_room: None,
};

const AF_PACKET: PmdInfo = PmdInfo {
    name: "net_af_packet",
    bus: Bus::Vdev,
    devargs: &[
        text("iface"),
        int("qpairs"),
        int("blocksz"),
        int("framesz"),
        int("framecnt"),
        flag("qdisc_bypass"),
    ],
    port_devargs: &["iface"],
    rx_offloads: rx(&[]),
    tx_offloads: tx(&[T::MultiSegs]),
    rss_key_len: None,
    // DPDK 22.11 reports max_rx_pktlen 1518 whatever framesz is, but receives and sends frames
    // up to framesz; the dataplane's port layer configures ethdev at the nominal limit and runs
    // the stack at the profile's MTU (docs/dpdk.md). framesz is the real limit (checked below).
    max_mtu: 9600,
    mtu_reason: "the kernel interface's MTU limit (jumbo frames up to 9600 on veth)",
    max_descriptors: *limits::DESCRIPTORS.end(),
    max_queues: *limits::QUEUES.end(),
    queue_devarg: Some(("qpairs", 1)),
    max_data_room: None,
};

const AF_XDP: PmdInfo = PmdInfo {
    name: "net_af_xdp",
    bus: Bus::Vdev,
    devargs: &[
        text("iface"),
        int("start_queue"),
        int("queue_count"),
        flag("shared_umem"),
        text("xdp_prog"),
        int("busy_budget"),
        flag("force_copy"),
    ],
    port_devargs: &["iface"],
    rx_offloads: rx(&[]),
    tx_offloads: tx(&[]),
    rss_key_len: None,
    max_mtu: 3542,
    mtu_reason: "net_af_xdp's 4 KiB UMEM frames give max_rx_pktlen 3560 in DPDK 22.11 \
                 (measured: \"MTU (9000) > device max MTU (3542)\")",
    max_descriptors: *limits::DESCRIPTORS.end(),
    max_queues: *limits::QUEUES.end(),
    queue_devarg: Some(("queue_count", 1)),
    // 64-byte object header + 128-byte mbuf + data room must fit the 4096-byte UMEM chunk
    // (measured: 3904 works, 3905 fails with "Failed to create umem").
    max_data_room: Some((
        3904,
        "net_af_xdp receives into UMEM chunks of one 4 KiB page: object header (64) + mbuf (128) + \
         data room must fit (measured: 3905 fails with \"Failed to create umem\")",
    )),
};

const MEMIF: PmdInfo = PmdInfo {
    name: "net_memif",
    bus: Bus::Vdev,
    devargs: &[
        int("id"),
        DevargSpec {
            key: "role",
            kind: DevargKind::OneOf(&["server", "client"]),
        },
        int("bsize"),
        int("rsize"),
        text("socket"),
        yes_no("socket-abstract"),
        text("mac"),
        yes_no("zero-copy"),
        text("secret"),
    ],
    port_devargs: &["socket", "role"],
    rx_offloads: rx(&[]),
    tx_offloads: tx(&[T::MultiSegs]),
    rss_key_len: None,
    // DPDK 22.11 reports max_rx_pktlen 1518 ("Frame size (9018) > device max frame size
    // (1518)"), but copies longer frames through its ring buffers into one mbuf; the
    // dataplane's port layer configures ethdev at the nominal limit and runs the stack at the
    // profile's MTU. Jumbo frames need bsize ≥ the frame (checked in validate.rs).
    max_mtu: 9000,
    mtu_reason: "9014-byte frames are the largest measured over net_memif here \
                 (s2bench dpdk-relay)",
    max_descriptors: *limits::DESCRIPTORS.end(),
    max_queues: *limits::QUEUES.end(),
    queue_devarg: None,
    max_data_room: None,
};

const TAP: PmdInfo = PmdInfo {
    name: "net_tap",
    bus: Bus::Vdev,
    devargs: &[text("iface"), text("mac"), text("remote"), flag("persist")],
    port_devargs: &["iface"],
    // Software offloads in the PMD (measured with testpmd: rx IPV4/UDP/TCP_CKSUM, SCATTER;
    // tx IPV4/UDP/TCP_CKSUM, TCP_TSO, MULTI_SEGS).
    rx_offloads: rx(&[R::Ipv4Cksum, R::TcpCksum, R::UdpCksum, R::Scatter]),
    tx_offloads: tx(&[T::Ipv4Cksum, T::TcpCksum, T::UdpCksum, T::Tso, T::MultiSegs]),
    // tap's RSS is an rte_flow action run by a BPF program, not ethdev RSS, and needs
    // cls_flower and multiq, which this machine's kernel lacks.
    rss_key_len: None,
    max_mtu: 1504,
    mtu_reason: "net_tap reports max_rx_pktlen 1522 in DPDK 22.11 \
                 (measured: \"Frame size (9018) > device max frame size (1522)\")",
    max_descriptors: *limits::DESCRIPTORS.end(),
    // RTE_PMD_TAP_MAX_QUEUES
    max_queues: 16,
    queue_devarg: None,
    max_data_room: None,
};

const RING: PmdInfo = PmdInfo {
    name: "net_ring",
    bus: Bus::Vdev,
    devargs: &[text("nodeaction")],
    port_devargs: &[],
    rx_offloads: rx(&[R::Scatter]),
    tx_offloads: tx(&[T::MultiSegs]),
    rss_key_len: None,
    max_mtu: *limits::MTU.end(),
    mtu_reason: GLOBAL_MTU,
    max_descriptors: *limits::DESCRIPTORS.end(),
    // RTE_PMD_RING_MAX_RX_RINGS
    max_queues: 16,
    queue_devarg: None,
    max_data_room: None,
};

const NULL: PmdInfo = PmdInfo {
    name: "net_null",
    bus: Bus::Vdev,
    devargs: &[int("size"), flag("copy"), flag("no-rx")],
    port_devargs: &[],
    rx_offloads: rx(&[]),
    tx_offloads: tx(&[]),
    // Software RSS over a 40-byte key (hash_key_size).
    rss_key_len: Some(40),
    max_mtu: *limits::MTU.end(),
    mtu_reason: GLOBAL_MTU,
    max_descriptors: *limits::DESCRIPTORS.end(),
    max_queues: *limits::QUEUES.end(),
    queue_devarg: None,
    max_data_room: None,
};

const PMDS: &[PmdInfo] = &[MLX5, ICE, VIRTIO, AF_PACKET, AF_XDP, MEMIF, TAP, RING, NULL];

/// net_af_packet ring geometry (the PMD's and the kernel's `PACKET_RX_RING` rules).
pub(crate) mod af_packet {
    /// Defaults when the devargs are absent (`DFLT_FRAME_SIZE`, `DFLT_FRAME_COUNT`, the page
    /// size for the block).
    pub(crate) const FRAMESZ: i64 = 2048;
    pub(crate) const BLOCKSZ: i64 = 4096;
    pub(crate) const FRAMECNT: i64 = 512;
    /// `TPACKET_ALIGNMENT`: frame sizes are multiples of this.
    pub(crate) const FRAME_ALIGN: i64 = 16;
    /// Blocks are multiples of the (x86-64) page size.
    pub(crate) const PAGE: i64 = 4096;
    /// The kernel writes a TPACKET_V2 frame's Ethernet header at offset 66 (the 52-byte
    /// `TPACKET2_HDRLEN` plus room for a 16-byte MAC header, aligned to 16, minus the
    /// 14-byte header), so a frame holds `framesz - 66` bytes of packet and an MTU of
    /// `framesz - 80` without truncation. (The PMD's own `mtu_set` only checks
    /// `mtu <= framesz - 52`.)
    pub(crate) const FRAME_OVERHEAD: i64 = 80;
    /// The PMD's rx queue setup requires `framesz - 32` bytes of mbuf room after the headroom
    /// (measured: framesz 2048 with a 2015-byte room fails "2016 bytes will not fit in mbuf").
    pub(crate) const RX_COPY_OVERHEAD: i64 = 32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pmd_is_found_by_name_and_names_are_unique() {
        let names: Vec<_> = known().collect();
        for n in &names {
            assert_eq!(lookup(n).unwrap().name, *n);
            assert_eq!(names.iter().filter(|m| *m == n).count(), 1);
        }
        assert!(lookup("net_bogus").is_none());
    }

    #[test]
    fn per_port_keys_are_known_keys() {
        for p in PMDS {
            for k in p.port_devargs {
                assert!(p.devarg_kind(k).is_some(), "{} {k}", p.name);
            }
            if let Some((k, _)) = p.queue_devarg {
                assert_eq!(p.devarg_kind(k), Some(DevargKind::Int), "{} {k}", p.name);
            }
        }
    }
}
