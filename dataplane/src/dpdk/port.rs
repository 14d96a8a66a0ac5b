//! Ethernet ports: configuration from the NIC profile, start, queues, counters, and close.
//!
//! A [`Port`] owns the device from configuration until drop (stop + close). Each queue is handed
//! out once, as an [`RxQueue`] or [`TxQueue`] that one lcore polls: DPDK's burst functions are
//! not thread-safe per queue, and the types make sharing one impossible.

use std::ffi::{CStr, CString};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nic_profiles::{
    Flag, FlagSet, RssHash, RssHashes, RxOffload, RxOffloads, TxOffload, TxOffloads,
};

use super::error::{DpdkError, ToResult};
use super::flags;
use super::mbuf::Mbuf;
use super::mempool::Mempool;

/// What the dataplane asks of a port (derived from a NIC profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSetup {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    pub mtu: u16,
    pub rx_offloads: RxOffloads,
    pub tx_offloads: TxOffloads,
    /// RSS hash types; used when there is more than one RX queue.
    pub rss: RssHashes,
    /// RSS key (the device's default when `None`).
    pub rss_key: Option<Vec<u8>>,
    pub promiscuous: bool,
}

impl Default for PortSetup {
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mtu: 1500,
            rx_offloads: RxOffloads::default(),
            tx_offloads: TxOffloads::default(),
            rss: RssHashes::default(),
            rss_key: None,
            promiscuous: false,
        }
    }
}

impl From<&nic_profiles::PortConfig> for PortSetup {
    /// The port part of a NIC profile (`nic_profiles::port_config`); promiscuous mode stays off
    /// (each port owns its MAC).
    fn from(c: &nic_profiles::PortConfig) -> Self {
        Self {
            rx_queues: c.rx_queues,
            tx_queues: c.tx_queues,
            rx_descriptors: c.rx_descriptors,
            tx_descriptors: c.tx_descriptors,
            mtu: c.mtu,
            rx_offloads: c.rx_offloads,
            tx_offloads: c.tx_offloads,
            rss: c.rss.as_ref().map(|r| r.hash).unwrap_or_default(),
            rss_key: c.rss.as_ref().and_then(|r| r.key.clone()),
            promiscuous: false,
        }
    }
}

/// DPDK's bit and a readable name for each offload the profiles know.
const RX_BITS: [(RxOffload, u64, &str); 5] = [
    (
        RxOffload::Ipv4Cksum,
        flags::RX_OFFLOAD_IPV4_CKSUM,
        "rx ipv4 checksum",
    ),
    (
        RxOffload::TcpCksum,
        flags::RX_OFFLOAD_TCP_CKSUM,
        "rx tcp checksum",
    ),
    (
        RxOffload::UdpCksum,
        flags::RX_OFFLOAD_UDP_CKSUM,
        "rx udp checksum",
    ),
    (RxOffload::Lro, flags::RX_OFFLOAD_TCP_LRO, "rx lro"),
    (RxOffload::Scatter, flags::RX_OFFLOAD_SCATTER, "rx scatter"),
];
const TX_BITS: [(TxOffload, u64, &str); 5] = [
    (
        TxOffload::Ipv4Cksum,
        flags::TX_OFFLOAD_IPV4_CKSUM,
        "tx ipv4 checksum",
    ),
    (
        TxOffload::TcpCksum,
        flags::TX_OFFLOAD_TCP_CKSUM,
        "tx tcp checksum",
    ),
    (
        TxOffload::UdpCksum,
        flags::TX_OFFLOAD_UDP_CKSUM,
        "tx udp checksum",
    ),
    (TxOffload::Tso, flags::TX_OFFLOAD_TCP_TSO, "tx tso"),
    (
        TxOffload::MultiSegs,
        flags::TX_OFFLOAD_MULTI_SEGS,
        "tx multi-segment",
    ),
];

/// The DPDK bits of a flag set.
fn to_bits<T: Flag>(set: FlagSet<T>, table: &[(T, u64, &'static str)]) -> u64 {
    table
        .iter()
        .filter(|(f, _, _)| set.contains(*f))
        .fold(0, |b, (_, bit, _)| b | bit)
}

/// The flag set of DPDK bits (bits without a flag are ignored).
fn from_bits<T: Flag>(bits: u64, table: &[(T, u64, &'static str)]) -> FlagSet<T> {
    table
        .iter()
        .filter(|(_, bit, _)| bits & bit != 0)
        .map(|(f, _, _)| *f)
        .collect()
}

/// The names of the table's flags whose bits are set.
fn names<T>(bits: u64, table: &[(T, u64, &'static str)]) -> Vec<&'static str> {
    table
        .iter()
        .filter(|(_, bit, _)| bits & bit != 0)
        .map(|(_, _, name)| *name)
        .collect()
}

/// RSS hash types as DPDK flow types: each protocol for each IP version asked for.
fn rss_bits(h: RssHashes) -> u64 {
    let mut b = 0;
    for (ip, base, tcp, udp) in [
        (
            RssHash::Ipv4,
            flags::RSS_IPV4 | flags::RSS_FRAG_IPV4,
            flags::RSS_NONFRAG_IPV4_TCP,
            flags::RSS_NONFRAG_IPV4_UDP,
        ),
        (
            RssHash::Ipv6,
            flags::RSS_IPV6 | flags::RSS_FRAG_IPV6,
            flags::RSS_NONFRAG_IPV6_TCP,
            flags::RSS_NONFRAG_IPV6_UDP,
        ),
    ] {
        if h.contains(ip) {
            b |= base;
            if h.contains(RssHash::Tcp) {
                b |= tcp;
            }
            if h.contains(RssHash::Udp) {
                b |= udp;
            }
        }
    }
    b
}

/// What a started port ended up with, after masking the setup against the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub driver: String,
    pub mac: [u8; 6],
    pub mtu: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    pub rx_offloads: RxOffloads,
    pub tx_offloads: TxOffloads,
    /// Offloads the profile asked for that this device does not have (logged at start).
    pub missing: Vec<&'static str>,
}

/// Device counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the device: RX ring full (the lcore did not poll fast enough).
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// RX found no free mbuf (the mempool is too small for the layout).
    pub rx_no_mbuf: u64,
}

/// A configured, started port.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    info: PortInfo,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
    /// Mbufs the driver's RX rings hold come from here; keep it alive until close.
    pool: Arc<Mempool>,
    /// Incremented by every queue handle alive; close waits for none (enforced by lifetimes:
    /// queues borrow nothing, so the counter guards against closing under a polling lcore).
    live_queues: Arc<AtomicU64>,
}

impl Port {
    /// The port id of a probed device (`net_af_packet0`, `0000:81:00.0`, …).
    pub fn id_by_name(name: &str) -> Result<u16, DpdkError> {
        let c = CString::new(name).map_err(|_| DpdkError::Invalid {
            what: format!("port name '{name}'"),
            reason: "contains a NUL byte".into(),
        })?;
        let mut id = 0u16;
        // SAFETY: `c` is NUL-terminated; `id` is a valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(DpdkError::UnknownPort {
                name: name.to_owned(),
                present: port_names(),
            });
        }
        Ok(id)
    }

    /// Configures and starts port `name` with `setup`, taking RX buffers from `pool`.
    /// Offloads the device lacks are dropped from the configuration and listed in
    /// [`PortInfo::missing`]; descriptor counts are adjusted to the device's limits.
    pub fn start(name: &str, setup: &PortSetup, pool: Arc<Mempool>) -> Result<Self, DpdkError> {
        let id = Self::id_by_name(name)?;
        let what = || format!("port {id} ({name})");

        // SAFETY: rte_eth_dev_info is plain data; zeroed is a valid initial value.
        let mut dev: dpdk_sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: id is a valid port; `dev` is a valid out-pointer.
        unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut dev) }
            .check("rte_eth_dev_info_get", what)?;
        let driver = if dev.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: the driver name is a static NUL-terminated string of the PMD.
            unsafe { CStr::from_ptr(dev.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        if setup.rx_queues == 0
            || setup.tx_queues == 0
            || setup.rx_queues > dev.max_rx_queues
            || setup.tx_queues > dev.max_tx_queues
        {
            return Err(DpdkError::Invalid {
                what: what(),
                reason: format!(
                    "{} rx / {} tx queues requested; {driver} allows 1..={} rx and 1..={} tx",
                    setup.rx_queues, setup.tx_queues, dev.max_rx_queues, dev.max_tx_queues
                ),
            });
        }
        // The MTU ethdev accepts: the device's max frame minus Ethernet overhead.
        let device_mtu = dev
            .max_rx_pktlen
            .saturating_sub(ETHER_OVERHEAD)
            .min(u32::from(dev.max_mtu)) as u16;
        let ethdev_mtu = if setup.mtu > device_mtu && frame_limit_is_nominal(&driver) {
            tracing::info!(
                port = name,
                %driver,
                mtu = setup.mtu,
                device_mtu,
                "the PMD reports a smaller frame limit than it forwards; configuring ethdev with                  its limit and running the stack at the profile's MTU (set the kernel                  interface's MTU to match)"
            );
            device_mtu
        } else {
            setup.mtu
        };
        if ethdev_mtu > device_mtu || setup.mtu < dev.min_mtu {
            return Err(DpdkError::Invalid {
                what: what(),
                reason: format!(
                    "MTU {} is outside what {driver} supports ({}..={device_mtu}); lower mtu in \
                     the NIC profile",
                    setup.mtu, dev.min_mtu
                ),
            });
        }

        let rx_want = to_bits(setup.rx_offloads, &RX_BITS);
        let tx_want = to_bits(setup.tx_offloads, &TX_BITS);
        let rx_bits = rx_want & dev.rx_offload_capa;
        let tx_bits = tx_want & dev.tx_offload_capa;
        let mut missing = names(rx_want & !rx_bits, &RX_BITS);
        missing.extend(names(tx_want & !tx_bits, &TX_BITS));
        if !missing.is_empty() {
            tracing::warn!(port = name, %driver, ?missing, "device lacks offloads the profile asks for; running without them");
        }

        // SAFETY: rte_eth_conf is plain data; zeroed is DPDK's documented default.
        let mut conf: dpdk_sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        conf.rxmode.mtu = u32::from(ethdev_mtu);
        conf.rxmode.offloads = rx_bits;
        conf.txmode.offloads = tx_bits;
        let mut key = setup.rss_key.clone();
        if setup.rx_queues > 1 {
            let hf = rss_bits(setup.rss) & dev.flow_type_rss_offloads;
            conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
            if let Some(k) = key.as_mut() {
                conf.rx_adv_conf.rss_conf.rss_key = k.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = u8::try_from(k.len()).unwrap_or(0);
            }
        }
        // SAFETY: `conf` (and the key it may point into, alive in `key`) is valid for the call;
        // DPDK copies what it keeps.
        unsafe { dpdk_sys::rte_eth_dev_configure(id, setup.rx_queues, setup.tx_queues, &conf) }
            .check("rte_eth_dev_configure", what)?;
        drop(key);

        let (mut rxd, mut txd) = (setup.rx_descriptors, setup.tx_descriptors);
        // SAFETY: valid port; both pointers are valid in/out values.
        unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rxd, &mut txd) }
            .check("rte_eth_dev_adjust_nb_rx_tx_desc", what)?;
        // SAFETY: valid port.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = u32::try_from(socket).unwrap_or(0);

        let mut rxconf = dev.default_rxconf;
        rxconf.offloads = rx_bits;
        for q in 0..setup.rx_queues {
            // SAFETY: valid port and queue index (< configured); rxconf and the pool outlive
            // the call, and the pool outlives the port (we hold the Arc).
            unsafe { dpdk_sys::rte_eth_rx_queue_setup(id, q, rxd, socket, &rxconf, pool.as_ptr()) }
                .check("rte_eth_rx_queue_setup", || format!("port {id} queue {q}"))?;
        }
        let mut txconf = dev.default_txconf;
        txconf.offloads = tx_bits;
        for q in 0..setup.tx_queues {
            // SAFETY: valid port and queue index; txconf outlives the call.
            unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, q, txd, socket, &txconf) }
                .check("rte_eth_tx_queue_setup", || format!("port {id} queue {q}"))?;
        }
        // SAFETY: valid, configured port.
        unsafe { dpdk_sys::rte_eth_dev_start(id) }.check("rte_eth_dev_start", what)?;
        if setup.promiscuous {
            // SAFETY: valid, started port. Not every PMD supports it; failure is logged only.
            let rc = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
            if rc != 0 {
                tracing::warn!(port = name, rc, "promiscuous mode not available");
            }
        }
        let mut mac = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port; `mac` is a valid out-pointer.
        unsafe { dpdk_sys::rte_eth_macaddr_get(id, &mut mac) }
            .check("rte_eth_macaddr_get", what)?;

        let info = PortInfo {
            driver,
            mac: mac.addr_bytes,
            mtu: setup.mtu,
            rx_descriptors: rxd,
            tx_descriptors: txd,
            rx_offloads: from_bits(rx_bits, &RX_BITS),
            tx_offloads: from_bits(tx_bits, &TX_BITS),
            missing,
        };
        tracing::info!(port = name, id, info = ?info, "DPDK port started");
        Ok(Self {
            id,
            name: name.to_owned(),
            info,
            rx_taken: vec![false; usize::from(setup.rx_queues)],
            tx_taken: vec![false; usize::from(setup.tx_queues)],
            pool,
            live_queues: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    pub fn mac(&self) -> [u8; 6] {
        self.info.mac
    }

    pub fn pool(&self) -> &Arc<Mempool> {
        &self.pool
    }

    /// RX queue `q`, once.
    pub fn rx_queue(&mut self, q: u16) -> Result<RxQueue, DpdkError> {
        take(&mut self.rx_taken, q, "rx", &self.name)?;
        self.live_queues.fetch_add(1, Ordering::Relaxed);
        Ok(RxQueue {
            port: self.id,
            queue: q,
            live: Arc::clone(&self.live_queues),
        })
    }

    /// TX queue `q`, once.
    pub fn tx_queue(&mut self, q: u16) -> Result<TxQueue, DpdkError> {
        take(&mut self.tx_taken, q, "tx", &self.name)?;
        self.live_queues.fetch_add(1, Ordering::Relaxed);
        Ok(TxQueue {
            port: self.id,
            queue: q,
            multi_seg: self.info.tx_offloads.contains(TxOffload::MultiSegs),
            live: Arc::clone(&self.live_queues),
        })
    }

    pub fn counters(&self) -> PortCounters {
        counters(self.id)
    }
}

/// Ethernet header + CRC: what ethdev adds to an MTU to get a frame length.
const ETHER_OVERHEAD: u32 = 18;

/// PMDs whose reported frame limit is nominal (both report 1518 bytes in 22.11):
/// - `net_af_packet` receives and sends frames up to its `framesz`; its real limit is the
///   kernel interface's MTU;
/// - `net_memif` copies a frame of any length through its ring buffers into one mbuf when the
///   mbuf's data room holds it (9014-byte frames in `s2bench dpdk-relay`).
fn frame_limit_is_nominal(driver: &str) -> bool {
    matches!(driver, "net_af_packet" | "net_memif")
}

fn take(taken: &mut [bool], q: u16, dir: &str, port: &str) -> Result<(), DpdkError> {
    match taken.get_mut(usize::from(q)) {
        Some(t) if !*t => {
            *t = true;
            Ok(())
        }
        Some(_) => Err(DpdkError::Invalid {
            what: format!("{dir} queue {q} of {port}"),
            reason: "already handed to a polling lcore".into(),
        }),
        None => Err(DpdkError::Invalid {
            what: format!("{dir} queue {q} of {port}"),
            reason: format!("the port has {} {dir} queues", taken.len()),
        }),
    }
}

fn counters(id: u16) -> PortCounters {
    // SAFETY: rte_eth_stats is plain data.
    let mut s: dpdk_sys::rte_eth_stats = unsafe { std::mem::zeroed() };
    // SAFETY: `s` is a valid out-pointer; an invalid port just returns an error.
    if unsafe { dpdk_sys::rte_eth_stats_get(id, &mut s) } != 0 {
        return PortCounters::default();
    }
    PortCounters {
        rx_packets: s.ipackets,
        tx_packets: s.opackets,
        rx_bytes: s.ibytes,
        tx_bytes: s.obytes,
        rx_missed: s.imissed,
        rx_errors: s.ierrors,
        tx_errors: s.oerrors,
        rx_no_mbuf: s.rx_nombuf,
    }
}

/// Names of every probed port.
pub fn port_names() -> Vec<String> {
    let mut out = Vec::new();
    for id in 0..dpdk_sys::RTE_MAX_ETHPORTS as u16 {
        // SAFETY: only reads the port table.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } == 0 {
            continue;
        }
        let mut buf = [0 as libc::c_char; dpdk_sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: `buf` has RTE_ETH_NAME_MAX_LEN bytes, as the call requires.
        if unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) } == 0 {
            // SAFETY: DPDK wrote a NUL-terminated name into `buf`.
            out.push(
                unsafe { CStr::from_ptr(buf.as_ptr()) }
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    out
}

impl Drop for Port {
    fn drop(&mut self) {
        let live = self.live_queues.load(Ordering::Acquire);
        if live != 0 {
            tracing::error!(port = %self.name, live, "closing a port while queue handles are alive; their lcores must have stopped polling");
        }
        // SAFETY: valid port, closed once; errors at teardown are logged, nothing else to do.
        unsafe {
            let rc = dpdk_sys::rte_eth_dev_stop(self.id);
            if rc != 0 {
                tracing::warn!(port = %self.name, rc, "rte_eth_dev_stop failed");
            }
            let rc = dpdk_sys::rte_eth_dev_close(self.id);
            if rc != 0 {
                tracing::warn!(port = %self.name, rc, "rte_eth_dev_close failed");
            }
        }
    }
}

/// One RX queue, polled by one lcore.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    live: Arc<AtomicU64>,
}

/// One TX queue, used by one lcore.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    /// The port runs with multi-segment Tx: mbuf chains may be sent.
    multi_seg: bool,
    live: Arc<AtomicU64>,
}

impl RxQueue {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Receives up to `max` packets, appended to `out` (which must have spare capacity for
    /// them: no allocation happens here if the caller reserved it). Returns how many arrived.
    #[inline]
    pub fn burst(&mut self, out: &mut Vec<Mbuf>, max: u16) -> usize {
        let room = (out.capacity() - out.len()).min(usize::from(max));
        if room == 0 {
            return 0;
        }
        let len = out.len();
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, so the spare capacity is an
        // array of `room` rte_mbuf pointers; the driver writes `n <= room` valid mbufs we then
        // own, and set_len exposes exactly those.
        unsafe {
            let slots = out.as_mut_ptr().add(len).cast::<*mut dpdk_sys::rte_mbuf>();
            let n = dpdk_sys::shim_rte_eth_rx_burst(self.port, self.queue, slots, room as u16);
            out.set_len(len + usize::from(n));
            usize::from(n)
        }
    }
}

impl TxQueue {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the port was started with multi-segment Tx, so chained mbufs may be sent.
    pub fn multi_seg(&self) -> bool {
        self.multi_seg
    }

    /// Sends packets from the front of `pkts`; the ones the device took are removed, the rest
    /// stay (in order) for the next call. Returns how many were sent.
    #[inline]
    pub fn burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        let n = pkts.len().min(usize::from(u16::MAX));
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>; the driver takes ownership
        // of the first `sent` mbufs, which we then forget by shifting the rest down.
        unsafe {
            let base = pkts.as_mut_ptr().cast::<*mut dpdk_sys::rte_mbuf>();
            let sent = usize::from(dpdk_sys::shim_rte_eth_tx_burst(
                self.port, self.queue, base, n as u16,
            ));
            let rest = pkts.len() - sent;
            std::ptr::copy(base.add(sent), base, rest);
            pkts.set_len(rest);
            sent
        }
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Release);
    }
}
