//! The rules a profile, and a profile with its ports and lcores, must meet.
//!
//! [`Profile::validate`] checks what the profile alone decides; [`validate_deployment`] adds
//! the ports, the lcore layout and the EAL extras of one gateway. Both walk everything and
//! report every violation at once. Each rule is there because DPDK (22.11) or the kernel would
//! refuse the setting later, with a less helpful message, or because it silently loses
//! packets; the rule's comment or message says which.

use std::collections::{BTreeSet, HashMap};

use crate::devargs::{self, DevargValue, Devargs};
use crate::error::{Findings, ProfileError, Violation, Warning};
use crate::lcores::LcoreLayout;
use crate::limits::{self, MBUF_HEADROOM};
use crate::pmd::{self, PmdInfo, af_packet};
use crate::port::{PortDevice, PortSpec};
use crate::port_config::{RssHash, RxOffload, RxOffloads, TxOffload, TxOffloads};
use crate::profile::{Bus, DataplaneLcores, Eal, Iova, Memory, Profile};

pub(crate) fn profile(p: &Profile) -> Result<Vec<Warning>, ProfileError> {
    let mut f = Findings::default();
    check_profile(p, &mut f);
    finish(f, |violations| ProfileError::Invalid {
        origin: p.origin().clone(),
        violations,
    })
}

/// Checks that `ports`, `layout` and the profile fit together: the profile itself first
/// ([`ProfileError::Invalid`] if it is broken), then the ports (device type, required and
/// unknown devargs, addresses), the lcores (valid ids, a tx queue per dataplane lcore) and the
/// mempool's size for this many ports and lcores ([`ProfileError::Deployment`]). Returns the
/// deployment's warnings (the profile's own are in [`Profile::warnings`]).
pub fn validate_deployment(
    profile: &Profile,
    ports: &[PortSpec],
    layout: &LcoreLayout,
) -> Result<Vec<Warning>, ProfileError> {
    profile.validate()?;
    let mut f = Findings::default();
    check_ports(profile, ports, &mut f);
    check_layout(profile, layout.main, &layout.dataplane, &mut f);
    check_mempool_size(profile, ports.len(), layout.lcores().len(), &mut f);
    finish(f, |violations| ProfileError::Deployment {
        origin: profile.origin().clone(),
        violations,
    })
}

/// Checks the EAL arguments a caller appends (named `extra[i]` in errors).
pub(crate) fn extra_args(profile: &Profile, args: &[String]) -> Result<(), ProfileError> {
    let mut f = Findings::default();
    check_extra(&profile.eal, args, "extra", &mut f);
    finish(f, |violations| ProfileError::Deployment {
        origin: profile.origin().clone(),
        violations,
    })
    .map(drop)
}

fn finish(
    f: Findings,
    error: impl FnOnce(Vec<Violation>) -> ProfileError,
) -> Result<Vec<Warning>, ProfileError> {
    if f.violations.is_empty() {
        Ok(f.warnings)
    } else {
        Err(error(f.violations))
    }
}

fn check_profile(p: &Profile, f: &mut Findings) {
    if !is_identifier(&p.name, 64) {
        f.fail(
            "name",
            q(&p.name),
            "must be 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter or digit",
            "rename the profile, e.g. name = \"connectx6dx\"",
        );
    }
    let pmd = check_driver(p, f);
    check_queues(p, pmd, f);
    check_mtu(p, pmd, f);
    check_offloads(p, pmd, f);
    check_rss(p, pmd, f);
    check_mempool(p, pmd, f);
    check_lcores(p, f);
    check_eal(p, f);
}

fn check_driver(p: &Profile, f: &mut Findings) -> Option<&'static PmdInfo> {
    let d = &p.driver;
    if !d.pmd.starts_with("net_") || !is_identifier(&d.pmd, 64) {
        f.fail(
            "driver.pmd",
            q(&d.pmd),
            "is not an ethdev driver name (they start with net_, e.g. net_mlx5)",
            format!(
                "use one of: {}",
                pmd::known().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    let Some(info) = pmd::lookup(&d.pmd) else {
        f.warn(
            "driver.pmd",
            format!(
                "{} is not a PMD this crate knows ({}): its devargs, offloads, MTU and queue \
                 limits are left to DPDK to check at start",
                d.pmd,
                pmd::known().collect::<Vec<_>>().join(", ")
            ),
        );
        check_devargs("driver.devargs", &d.devargs, None, f);
        return None;
    };
    if d.bus != info.bus {
        let how = match info.bus {
            Bus::Pci => "a PCI driver: its devices are probed with -a <PCI address>",
            Bus::Vdev => "a virtual device: it is created with --vdev",
        };
        f.fail(
            "driver.bus",
            q(&d.bus.to_string()),
            format!("{} is {how}", info.name),
            format!("set driver.bus = \"{}\"", info.bus),
        );
    }
    check_devargs("driver.devargs", &d.devargs, Some(info), f);
    for key in info.port_devargs {
        if let Some(v) = d.devargs.get(key) {
            f.fail(
                format!("driver.devargs.{key}"),
                v.to_string(),
                format!(
                    "{key} is set per port: each port of {} has its own",
                    info.name
                ),
                format!("remove it here and set devargs.{key} in each port of the s2cs config"),
            );
        }
    }
    if info.name == "net_af_packet" {
        check_af_packet_frames(p, &|k| d.devargs.get(k), "driver.devargs", f);
    }
    if info.name == "net_memif" {
        check_memif_buffers(p, &|k| d.devargs.get(k), "driver.devargs", f);
    }
    Some(info)
}

/// The memif buffer size a jumbo MTU needs. `get` and `field` as in [`check_af_packet_frames`].
fn check_memif_buffers<'a>(
    p: &Profile,
    get: &dyn Fn(&str) -> Option<&'a DevargValue>,
    field: &str,
    f: &mut Findings,
) {
    const DEFAULT_BSIZE: i64 = 2048;
    let bsize = get("bsize")
        .and_then(DevargValue::as_int)
        .unwrap_or(DEFAULT_BSIZE);
    let frame = i64::from(p.mtu) + 14;
    if frame > bsize {
        f.fail(
            format!("{field}.bsize"),
            bsize.to_string(),
            format!(
                "net_memif splits a frame longer than bsize over several ring buffers, and \
                 DPDK 22.11 then delivers mbuf chains with wrong frame boundaries (MTU {} frames \
                 are {frame} bytes; at MTU 9000 over the default bsize 2048 the receiver got \
                 chains of 9580-11062 bytes and the relay stalled)",
                p.mtu
            ),
            format!(
                "set {field}.bsize = {} or lower mtu to {}",
                round_up(frame, 1024),
                bsize - 14
            ),
        );
    }
}

/// Key spelling, known keys and value kinds of one device's devargs.
fn check_devargs(field: &str, devargs: &Devargs, pmd: Option<&PmdInfo>, f: &mut Findings) {
    for (key, value) in devargs.iter() {
        let path = format!("{field}.{key}");
        if let Some(problem) = devargs::key_problem(key) {
            f.fail(path, value.to_string(), problem, "rename or remove the key");
            continue;
        }
        let kind = match pmd {
            Some(info) => match info.devarg_kind(key) {
                Some(kind) => Some(kind),
                None => {
                    f.fail(
                        path,
                        value.to_string(),
                        format!(
                            "{} has no devarg {key:?} (DPDK refuses to probe a device with an \
                             unknown key)",
                            info.name
                        ),
                        format!("use one of: {}", info.devarg_list()),
                    );
                    continue;
                }
            },
            None => None,
        };
        if let Some((problem, fix)) = devargs::value_problem(key, value, kind) {
            f.fail(path, value.to_string(), problem, fix);
        }
    }
}

/// net_af_packet's ring geometry, and the MTU and mbuf size it allows. `get` looks a devarg
/// up (the profile's, or a port's over the profile's); `field` prefixes the field paths.
fn check_af_packet_frames<'a>(
    p: &Profile,
    get: &dyn Fn(&str) -> Option<&'a DevargValue>,
    field: &str,
    f: &mut Findings,
) {
    let int = |key: &str, default: i64| get(key).and_then(DevargValue::as_int).unwrap_or(default);
    let framesz = int("framesz", af_packet::FRAMESZ);
    let blocksz = int("blocksz", af_packet::BLOCKSZ);
    let framecnt = int("framecnt", af_packet::FRAMECNT);
    let mut geometry_ok = true;
    for (key, v) in [
        ("framesz", framesz),
        ("blocksz", blocksz),
        ("framecnt", framecnt),
    ] {
        if v <= 0 {
            f.fail(
                format!("{field}.{key}"),
                v.to_string(),
                "must be positive",
                format!("remove {key} to use the PMD's default"),
            );
            geometry_ok = false;
        }
    }
    if !geometry_ok {
        return;
    }
    if framesz % af_packet::FRAME_ALIGN != 0 {
        f.fail(
            format!("{field}.framesz"),
            framesz.to_string(),
            "is not a multiple of 16 (TPACKET_ALIGNMENT); the kernel refuses the ring",
            format!("use {}", round_up(framesz, af_packet::FRAME_ALIGN)),
        );
    }
    if blocksz % af_packet::PAGE != 0 {
        f.fail(
            format!("{field}.blocksz"),
            blocksz.to_string(),
            "is not a multiple of the 4096-byte page size; the kernel refuses the ring",
            format!("use {}", round_up(blocksz, af_packet::PAGE)),
        );
    } else if !(blocksz as u64).is_power_of_two() {
        f.warn(
            format!("{field}.blocksz"),
            format!(
                "{blocksz} is not a power of two: the kernel allocates each block as 2^n pages, \
                 so {} bytes of every block are wasted",
                (blocksz as u64).next_power_of_two() - blocksz as u64
            ),
        );
    }
    if framesz > blocksz {
        f.fail(
            format!("{field}.framesz"),
            framesz.to_string(),
            format!("exceeds blocksz = {blocksz} (a frame must fit a block)"),
            format!("raise {field}.blocksz to at least {framesz}"),
        );
    } else if blocksz % framesz != 0 {
        // DPDK 22.11's af_packet addresses frame i at i * framesz from the start of the ring,
        // ignoring the gap the kernel leaves at the end of each block: with a gap, every frame
        // after the first block is read at the wrong place (measured: ARP, then silence).
        f.fail(
            format!("{field}.blocksz"),
            blocksz.to_string(),
            format!("is not a multiple of framesz = {framesz}; net_af_packet then reads frames at the wrong offsets"),
            format!("use blocksz = {}", round_up(blocksz, framesz)),
        );
    } else {
        let per_block = blocksz / framesz;
        if framecnt % per_block != 0 {
            f.fail(
                format!("{field}.framecnt"),
                framecnt.to_string(),
                format!(
                    "is not a multiple of the {per_block} frames per block (blocksz / framesz); \
                     the kernel refuses the ring (PACKET_RX_RING: Invalid argument)"
                ),
                format!("use {}", round_up(framecnt, per_block)),
            );
        }
    }
    // An MTU beyond the PMD's own limit is reported by check_mtu; raising framesz would not
    // help then.
    let mtu_refused = !limits::MTU.contains(&p.mtu) || p.pmd().is_some_and(|i| p.mtu > i.max_mtu);
    let max_mtu = framesz - af_packet::FRAME_OVERHEAD;
    if !mtu_refused && i64::from(p.mtu) > max_mtu {
        let need = round_up(
            i64::from(p.mtu) + af_packet::FRAME_OVERHEAD,
            af_packet::FRAME_ALIGN,
        );
        f.fail(
            "mtu",
            p.mtu.to_string(),
            format!(
                "net_af_packet frames of {field}.framesz = {framesz} bytes carry at most MTU \
                 {max_mtu} (the kernel puts the Ethernet header 66 bytes into the frame)"
            ),
            format!("raise {field}.framesz to {need} or lower mtu to {max_mtu}"),
        );
    }
    let copied = framesz - af_packet::RX_COPY_OVERHEAD;
    let room = i64::from(p.mempool.data_room) - i64::from(MBUF_HEADROOM);
    if copied > room {
        f.fail(
            "mempool.data_room",
            p.mempool.data_room.to_string(),
            format!(
                "net_af_packet copies up to framesz - 32 = {copied} bytes into one mbuf, which \
                 holds data_room - 128 = {room}; the rx queue setup fails"
            ),
            format!(
                "set mempool.data_room ≥ {} or lower {field}.framesz",
                copied + i64::from(MBUF_HEADROOM)
            ),
        );
    }
}

fn check_queues(p: &Profile, pmd: Option<&PmdInfo>, f: &mut Findings) {
    let q = &p.queues;
    for (field, n) in [
        ("queues.rx_descriptors", q.rx_descriptors),
        ("queues.tx_descriptors", q.tx_descriptors),
    ] {
        let range = limits::DESCRIPTORS;
        if !range.contains(&n) {
            f.fail(
                field,
                n.to_string(),
                format!("is outside {}..={}", range.start(), range.end()),
                format!(
                    "use a power of two from {} to {}, e.g. 1024",
                    range.start(),
                    range.end()
                ),
            );
        } else if !n.is_power_of_two() {
            let above = n.next_power_of_two();
            f.fail(
                field,
                n.to_string(),
                "is not a power of two",
                format!("use {} or {above}", above / 2),
            );
        } else if let Some(info) = pmd.filter(|i| n > i.max_descriptors) {
            f.fail(
                field,
                n.to_string(),
                format!(
                    "{} supports at most {} descriptors per queue (DPDK 22.11)",
                    info.name, info.max_descriptors
                ),
                format!("set {field} ≤ {}", info.max_descriptors),
            );
        }
        if pmd.is_some_and(|i| i.name == "net_virtio") && n > 1024 {
            f.warn(
                field,
                format!(
                    "{n}: net_virtio clamps descriptors to the device's ring size (QEMU: 256 by \
                     default, at most 1024)"
                ),
            );
        }
    }
    for (field, n) in [
        ("queues.rx_queues", q.rx_queues),
        ("queues.tx_queues", q.tx_queues),
    ] {
        let range = limits::QUEUES;
        if !range.contains(&n) {
            f.fail(
                field,
                n.to_string(),
                format!("is outside {}..={}", range.start(), range.end()),
                format!("use {}..={} queues per port", range.start(), range.end()),
            );
        } else if let Some(info) = pmd.filter(|i| n > i.max_queues) {
            f.fail(
                field,
                n.to_string(),
                format!(
                    "{} has at most {} queues per port",
                    info.name, info.max_queues
                ),
                format!("set {field} ≤ {}", info.max_queues),
            );
        }
    }
    if let Some(info) = pmd {
        check_queue_devarg(p, info, &|k| p.driver.devargs.get(k), "driver.devargs", f);
    }
    let range = limits::BURST;
    if !range.contains(&q.burst) {
        f.fail(
            "queues.burst",
            q.burst.to_string(),
            format!("is outside {}..={}", range.start(), range.end()),
            "use 32 (DPDK's usual burst) or another value in range",
        );
    } else {
        for (ring, n) in [("rx", q.rx_descriptors), ("tx", q.tx_descriptors)] {
            if q.burst > n / 2 {
                f.fail(
                    "queues.burst",
                    q.burst.to_string(),
                    format!(
                        "is more than half of the {n} {ring} descriptors; the ring cannot refill \
                         while a burst is out"
                    ),
                    format!(
                        "set queues.burst ≤ {} or raise queues.{ring}_descriptors",
                        n / 2
                    ),
                );
            }
        }
    }
}

/// A PMD whose queues are created by a devarg (af_packet `qpairs`, af_xdp `queue_count`):
/// packets spread over queues nobody polls never reach the dataplane.
fn check_queue_devarg<'a>(
    p: &Profile,
    info: &PmdInfo,
    get: &dyn Fn(&str) -> Option<&'a DevargValue>,
    field: &str,
    f: &mut Findings,
) {
    let Some((key, default)) = info.queue_devarg else {
        return;
    };
    // A value that is not an integer at all was reported by the devargs' kind check.
    let Some(n) = get(key).map_or(Some(i64::from(default)), DevargValue::as_int) else {
        return;
    };
    if n < 1 {
        f.fail(
            format!("{field}.{key}"),
            n.to_string(),
            "must be at least 1",
            format!("set {field}.{key} = {}", p.queues.rx_queues),
        );
        return;
    }
    let rxq = i64::from(p.queues.rx_queues);
    if n != rxq {
        f.fail(
            "queues.rx_queues",
            rxq.to_string(),
            format!(
                "{} creates {n} queues ({field}.{key} = {n}); packets spread over queues that \
                 are not polled never reach the dataplane",
                info.name
            ),
            format!("set {field}.{key} = {rxq} or queues.rx_queues = {n}"),
        );
    }
    let txq = i64::from(p.queues.tx_queues);
    if txq > n {
        f.fail(
            "queues.tx_queues",
            txq.to_string(),
            format!("{} has only {n} queues ({field}.{key} = {n})", info.name),
            format!("set queues.tx_queues ≤ {n} or raise {field}.{key}"),
        );
    }
}

fn check_mtu(p: &Profile, pmd: Option<&PmdInfo>, f: &mut Findings) {
    let range = limits::MTU;
    if !range.contains(&p.mtu) {
        f.fail(
            "mtu",
            p.mtu.to_string(),
            format!(
                "is outside {}..={} (RTE_ETHER_MIN_MTU to the largest jumbo MTU used here)",
                range.start(),
                range.end()
            ),
            format!("set mtu within {}..={}", range.start(), range.end()),
        );
    } else if let Some(info) = pmd.filter(|i| p.mtu > i.max_mtu) {
        f.fail(
            "mtu",
            p.mtu.to_string(),
            info.mtu_reason,
            format!("set mtu ≤ {}", info.max_mtu),
        );
    }
}

fn check_offloads(p: &Profile, pmd: Option<&PmdInfo>, f: &mut Findings) {
    let o = &p.offloads;
    if o.tso && !o.multi_seg {
        f.warn(
            "offloads.tso",
            "without offloads.multi_seg a TSO packet must fit one mbuf (data_room - 128 bytes)",
        );
    }
    if o.lro && !o.scatter {
        f.warn(
            "offloads.lro",
            "without offloads.scatter an aggregated packet must fit one mbuf",
        );
    }
    let Some(info) = pmd else {
        return;
    };
    let cksum_rx: RxOffloads = [
        RxOffload::Ipv4Cksum,
        RxOffload::TcpCksum,
        RxOffload::UdpCksum,
    ]
    .into_iter()
    .collect();
    let cksum_tx: TxOffloads = [
        TxOffload::Ipv4Cksum,
        TxOffload::TcpCksum,
        TxOffload::UdpCksum,
    ]
    .into_iter()
    .collect();
    let rx_has = |set: RxOffloads| !set.intersection(info.rx_offloads).is_empty();
    let tx_has = |set: TxOffloads| !set.intersection(info.tx_offloads).is_empty();
    let one_rx = |o: RxOffload| [o].into_iter().collect::<RxOffloads>();
    let one_tx = |o: TxOffload| [o].into_iter().collect::<TxOffloads>();
    let wanted = [
        (
            "rx_checksum",
            "Rx checksum offload",
            o.rx_checksum,
            rx_has(cksum_rx),
        ),
        (
            "tx_checksum",
            "Tx checksum offload",
            o.tx_checksum,
            tx_has(cksum_tx),
        ),
        ("tso", "TSO", o.tso, tx_has(one_tx(TxOffload::Tso))),
        ("lro", "LRO", o.lro, rx_has(one_rx(RxOffload::Lro))),
        (
            "scatter",
            "Rx scatter",
            o.scatter,
            rx_has(one_rx(RxOffload::Scatter)),
        ),
        (
            "multi_seg",
            "multi-segment Tx",
            o.multi_seg,
            tx_has(one_tx(TxOffload::MultiSegs)),
        ),
    ];
    for (key, what, on, offered) in wanted {
        if on && !offered {
            f.fail(
                format!("offloads.{key}"),
                "true",
                format!("{} does not offer {what}", info.name),
                format!("set offloads.{key} = false"),
            );
        }
    }
}

fn check_rss(p: &Profile, pmd: Option<&PmdInfo>, f: &mut Findings) {
    let r = &p.rss;
    if !r.enabled {
        if r.key.is_some() {
            f.warn("rss.key", "is ignored while rss.enabled = false");
        }
        if p.queues.rx_queues > 1 {
            f.warn(
                "rss.enabled",
                format!(
                    "false with {} rx queues: every packet lands on queue 0 unless rte_flow \
                     rules steer it",
                    p.queues.rx_queues
                ),
            );
        }
        return;
    }
    if let Some(info) = pmd.filter(|i| i.rss_key_len.is_none()) {
        f.fail(
            "rss.enabled",
            "true",
            format!("{} has no RSS", info.name),
            "set rss.enabled = false and queues.rx_queues = 1",
        );
        return;
    }
    let listed = format!(
        "[{}]",
        r.hash
            .iter()
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if r.hash.is_empty() {
        f.fail(
            "rss.hash",
            "[]",
            "RSS is on but hashes on nothing",
            "list what to hash on, e.g. rss.hash = [\"ipv4\", \"ipv6\", \"tcp\", \"udp\"]",
        );
    }
    let mut seen = BTreeSet::new();
    for h in &r.hash {
        if !seen.insert(*h as u8) {
            f.fail(
                "rss.hash",
                listed.clone(),
                format!("lists \"{h}\" twice"),
                "list each hash type once",
            );
        }
    }
    let has = |h: RssHash| r.hash.contains(&h);
    if (has(RssHash::Tcp) || has(RssHash::Udp)) && !has(RssHash::Ipv4) && !has(RssHash::Ipv6) {
        f.fail(
            "rss.hash",
            listed,
            "tcp and udp add ports to an IP hash, but no IP version is listed",
            "add \"ipv4\" and/or \"ipv6\"",
        );
    }
    if let Some(key) = &r.key {
        match hex::decode(key) {
            Err(e) => f.fail(
                "rss.key",
                q(key),
                format!("is not hex: {e}"),
                "write the key as hex digits only, two per byte",
            ),
            Ok(bytes) => {
                if let Some((info, want)) = pmd.and_then(|i| Some((i, i.rss_key_len?)))
                    && bytes.len() != want
                {
                    f.fail(
                        "rss.key",
                        format!("<{} bytes>", bytes.len()),
                        format!(
                            "{} takes a {want}-byte RSS key, this one has {} bytes",
                            info.name,
                            bytes.len()
                        ),
                        format!(
                            "give {} hex digits, or remove rss.key to keep the device's key",
                            want * 2
                        ),
                    );
                }
            }
        }
    }
}

fn check_mempool(p: &Profile, pmd: Option<&PmdInfo>, f: &mut Findings) {
    let m = &p.mempool;
    if m.mbufs == 0 {
        f.fail(
            "mempool.mbufs",
            "0",
            "the pool must hold mbufs",
            format!("set mempool.mbufs, e.g. {}", crate::defaults::MBUFS),
        );
    }
    if m.cache > limits::MEMPOOL_CACHE_MAX {
        f.fail(
            "mempool.cache",
            m.cache.to_string(),
            format!(
                "is above RTE_MEMPOOL_CACHE_MAX_SIZE ({})",
                limits::MEMPOOL_CACHE_MAX
            ),
            format!("set mempool.cache ≤ {}", limits::MEMPOOL_CACHE_MAX),
        );
    } else if flush_threshold(m.cache) > m.mbufs {
        // rte_mempool_create_empty: CALC_CACHE_FLUSHTHRESH(cache_size) > n → EINVAL.
        f.fail(
            "mempool.cache",
            m.cache.to_string(),
            format!(
                "DPDK refuses a cache whose flush threshold (1.5 × {} = {}) exceeds \
                 mempool.mbufs = {}",
                m.cache,
                flush_threshold(m.cache),
                m.mbufs
            ),
            format!(
                "set mempool.cache ≤ {} or mempool.mbufs ≥ {}",
                max_cache(m.mbufs),
                flush_threshold(m.cache)
            ),
        );
    }
    if m.cache < p.queues.burst && m.cache != 0 {
        f.warn(
            "mempool.cache",
            format!(
                "{} is smaller than queues.burst = {}: every burst bypasses the cache",
                m.cache, p.queues.burst
            ),
        );
    }
    let range = limits::DATA_ROOM;
    if !range.contains(&m.data_room) {
        f.fail(
            "mempool.data_room",
            m.data_room.to_string(),
            format!(
                "is outside {}..={} (above the 128-byte headroom; rte_pktmbuf_pool_create takes \
                 a uint16_t)",
                range.start(),
                range.end()
            ),
            format!(
                "set mempool.data_room within {}..={}",
                range.start(),
                range.end()
            ),
        );
    } else {
        let frame = p.max_rx_pkt_len();
        let room = m.data_room - MBUF_HEADROOM;
        if !p.offloads.scatter && room < frame {
            f.fail(
                "mempool.data_room",
                m.data_room.to_string(),
                format!(
                    "an mbuf holds data_room - 128 (headroom) = {room} bytes, less than a frame \
                     of mtu {} + 18 = {frame} bytes",
                    p.mtu
                ),
                format!(
                    "set mempool.data_room ≥ {}, or offloads.scatter = true and \
                     offloads.multi_seg = true to use mbuf chains",
                    frame + MBUF_HEADROOM
                ),
            );
        }
        if p.offloads.scatter && !p.offloads.multi_seg && room < frame {
            f.fail(
                "offloads.multi_seg",
                "false",
                format!(
                    "the stack sends frames of up to {frame} bytes and an mbuf holds {room}: \
                     without multi-segment Tx the larger ones cannot be sent"
                ),
                format!(
                    "set offloads.multi_seg = true, or mempool.data_room ≥ {}",
                    frame + MBUF_HEADROOM
                ),
            );
        }
        if let Some((max, why)) = pmd.and_then(|i| i.max_data_room)
            && m.data_room > max
        {
            f.fail(
                "mempool.data_room",
                m.data_room.to_string(),
                why,
                format!("set mempool.data_room ≤ {max}"),
            );
        }
    }
    if let Some(mb) = p.eal.effective_memory_mb() {
        let bytes = p.mempool_bytes();
        let mib = bytes.div_ceil(1 << 20);
        if bytes > u64::from(mb) << 20 {
            f.fail(
                "mempool.mbufs",
                m.mbufs.to_string(),
                format!(
                    "the pool needs about {mib} MiB ({} mbufs of {} bytes), more than the {mb} \
                     MiB EAL gets (eal.memory_mb)",
                    m.mbufs,
                    bytes / u64::from(m.mbufs.max(1))
                ),
                "lower mempool.mbufs or mempool.data_room, or raise eal.memory_mb",
            );
        } else if bytes > u64::from(mb) << 19 {
            f.warn(
                "mempool.mbufs",
                format!(
                    "the pool needs about {mib} MiB, more than half of the {mb} MiB EAL gets; EAL \
                     and the PMDs need memory too (measured here: -m 64 held at most about 28 MiB \
                     of mbufs, -m 256 about 142 MiB)"
                ),
            );
        }
    }
}

/// `CALC_CACHE_FLUSHTHRESH`: the cache size × 1.5, truncated.
fn flush_threshold(cache: u32) -> u32 {
    cache + cache / 2
}

/// The largest cache `mbufs` allows: the largest c with c + c/2 ≤ mbufs.
fn max_cache(mbufs: u32) -> u32 {
    ((u64::from(mbufs) * 2 + 1) / 3) as u32
}

fn check_lcores(p: &Profile, f: &mut Findings) {
    let l = &p.lcores;
    match &l.dataplane {
        DataplaneLcores::Count(0) => f.fail(
            "lcores.dataplane",
            "0",
            "the dataplane needs at least one lcore",
            "set lcores.dataplane = 1 or a list of lcore ids",
        ),
        DataplaneLcores::Count(n) if *n >= limits::MAX_LCORE => f.fail(
            "lcores.dataplane",
            n.to_string(),
            format!("is not below RTE_MAX_LCORE ({})", limits::MAX_LCORE),
            "use fewer dataplane lcores",
        ),
        DataplaneLcores::Count(n) => {
            if l.main >= limits::MAX_LCORE {
                f.fail(
                    "lcores.main",
                    l.main.to_string(),
                    format!("is not below RTE_MAX_LCORE ({})", limits::MAX_LCORE),
                    format!("use an lcore id below {}", limits::MAX_LCORE),
                );
            }
            check_queues_per_lcore(p, *n as usize, f);
        }
        DataplaneLcores::List(ids) => check_layout(p, l.main, ids, f),
    }
    if l.streams_per_lcore == Some(0) {
        f.fail(
            "lcores.streams_per_lcore",
            "0",
            "a dataplane lcore carries at least one stream",
            "remove it or set a positive hint",
        );
    }
    if let Some(node) = l.numa_node.filter(|n| *n >= limits::MAX_NUMA_NODES) {
        f.fail(
            "lcores.numa_node",
            node.to_string(),
            format!(
                "is not below RTE_MAX_NUMA_NODES ({})",
                limits::MAX_NUMA_NODES
            ),
            "use the NIC's node from /sys/bus/pci/devices/<address>/numa_node",
        );
    }
}

/// Lcore ids, duplicates, the main lcore, and queues for each dataplane lcore.
fn check_layout(p: &Profile, main: u32, dataplane: &[u32], f: &mut Findings) {
    let list = format!("{dataplane:?}");
    if dataplane.is_empty() {
        f.fail(
            "lcores.dataplane",
            list.clone(),
            "the dataplane needs at least one lcore",
            "give at least one lcore id, e.g. [1]",
        );
    }
    if main >= limits::MAX_LCORE {
        f.fail(
            "lcores.main",
            main.to_string(),
            format!("is not below RTE_MAX_LCORE ({})", limits::MAX_LCORE),
            format!("use an lcore id below {}", limits::MAX_LCORE),
        );
    }
    let mut seen = BTreeSet::new();
    for &id in dataplane {
        if id >= limits::MAX_LCORE {
            f.fail(
                "lcores.dataplane",
                list.clone(),
                format!(
                    "lcore {id} is not below RTE_MAX_LCORE ({})",
                    limits::MAX_LCORE
                ),
                format!("use lcore ids below {}", limits::MAX_LCORE),
            );
        }
        if !seen.insert(id) {
            f.fail(
                "lcores.dataplane",
                list.clone(),
                format!("lists lcore {id} twice"),
                "list each lcore once",
            );
        }
    }
    if dataplane.contains(&main) {
        f.fail(
            "lcores.dataplane",
            list,
            format!("contains the main lcore {main}, which runs control work"),
            format!("remove {main} from the dataplane lcores or choose another main lcore"),
        );
    }
    check_queues_per_lcore(p, dataplane.len(), f);
}

/// Each dataplane lcore transmits on a tx queue of its own (tx bursts are not thread-safe);
/// an lcore without an rx queue idles.
fn check_queues_per_lcore(p: &Profile, lcores: usize, f: &mut Findings) {
    let (rxq, txq) = (p.queues.rx_queues as usize, p.queues.tx_queues as usize);
    if lcores > 0 && txq < lcores {
        f.fail(
            "queues.tx_queues",
            txq.to_string(),
            format!(
                "each of the {lcores} dataplane lcores needs a tx queue of its own (DPDK tx \
                 queues are not thread-safe)"
            ),
            format!("set queues.tx_queues ≥ {lcores} or use fewer dataplane lcores"),
        );
    }
    if rxq < lcores {
        f.warn(
            "queues.rx_queues",
            format!(
                "{rxq} rx queues for {lcores} dataplane lcores: {} lcores poll no rx queue",
                lcores - rxq
            ),
        );
    }
}

fn check_eal(p: &Profile, f: &mut Findings) {
    let e = &p.eal;
    if let Some(mb) = e.memory_mb {
        let range = limits::MEMORY_MB;
        if !range.contains(&mb) {
            f.fail(
                "eal.memory_mb",
                mb.to_string(),
                format!("is outside {}..={} MiB", range.start(), range.end()),
                format!(
                    "set eal.memory_mb within {}..={} (256 is what the tests here use)",
                    range.start(),
                    range.end()
                ),
            );
        }
    }
    if e.iova == Iova::Pa && e.memory == Memory::NoHuge {
        f.fail(
            "eal.iova",
            "\"pa\"",
            "without hugepages there are no physical addresses and EAL selects VA anyway \
             (measured: \"Physical addresses are unavailable, selecting IOVA as VA mode\")",
            "set eal.iova = \"va\" or \"auto\"",
        );
    }
    if let Some(prefix) = &e.file_prefix
        && (prefix.is_empty() || prefix.contains('/') || prefix.chars().any(char::is_whitespace))
    {
        f.fail(
            "eal.file_prefix",
            q(prefix),
            "must be a non-empty name without '/' or spaces (EAL makes a directory of it \
                 under /var/run/dpdk)",
            "use a short name, e.g. file_prefix = \"scistream\"",
        );
    }
    for (i, level) in e.log_levels.iter().enumerate() {
        let word = level.rsplit(':').next().unwrap_or(level);
        let ok = LOG_LEVELS.contains(&word) || matches!(word.parse::<u8>(), Ok(1..=8));
        if !ok || level.starts_with("--") {
            f.fail(
                format!("eal.log_levels[{i}]"),
                q(level),
                format!(
                    "is not [<pattern>:]<level> with a level of {} or 1..8",
                    LOG_LEVELS.join(", ")
                ),
                "write it like \"lib.eal:error\" (without --log-level=)",
            );
        }
    }
    check_extra(e, &e.extra, "eal.extra", f);
}

const LOG_LEVELS: &[&str] = &[
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

/// EAL options this crate derives, and where to set them instead.
const DERIVED_OPTIONS: &[(&str, &str)] = &[
    ("-l", "lcores.main and lcores.dataplane (or s2cs --cores)"),
    ("-c", "lcores.main and lcores.dataplane (or s2cs --cores)"),
    (
        "--lcores",
        "lcores.main and lcores.dataplane (or s2cs --cores)",
    ),
    ("--main-lcore", "lcores.main"),
    ("--master-lcore", "lcores.main"),
    ("-a", "the ports (PCI addresses) and driver.devargs"),
    ("--allow", "the ports (PCI addresses) and driver.devargs"),
    ("-w", "the ports (PCI addresses) and driver.devargs"),
    (
        "--pci-whitelist",
        "the ports (PCI addresses) and driver.devargs",
    ),
    ("-b", "the ports (PCI addresses)"),
    ("--block", "the ports (PCI addresses)"),
    (
        "--no-pci",
        "the ports (it is added when no port is a PCI device)",
    ),
    ("--vdev", "the ports' devargs and driver.devargs"),
    ("-m", "eal.memory_mb"),
    ("--no-huge", "eal.memory = \"no-huge\""),
    ("--in-memory", "eal.memory = \"in-memory\""),
    ("--iova-mode", "eal.iova"),
    ("--file-prefix", "eal.file_prefix"),
    ("--no-shconf", "eal.file_prefix (absent: --no-shconf)"),
];

fn check_extra(eal: &Eal, args: &[String], field: &str, f: &mut Findings) {
    for (i, arg) in args.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let option = option_name(arg);
        match option {
            "--no-huge" if eal.memory == Memory::InMemory => f.fail(
                path,
                q(arg),
                "conflicts with eal.memory = \"in-memory\": EAL refuses --in-memory with \
                 --no-huge (\"Option --legacy-mem is not compatible with --in-memory\")",
                "remove it, or set eal.memory = \"no-huge\" instead of \"in-memory\"",
            ),
            "--in-memory" if eal.memory == Memory::NoHuge => f.fail(
                path,
                q(arg),
                "conflicts with eal.memory = \"no-huge\": EAL refuses --in-memory with \
                 --no-huge (\"Option --legacy-mem is not compatible with --in-memory\")",
                "remove it, or set eal.memory = \"in-memory\" instead of \"no-huge\"",
            ),
            "--socket-mem" if eal.memory == Memory::NoHuge => f.fail(
                path,
                q(arg),
                "EAL refuses --socket-mem with --no-huge (eal.memory = \"no-huge\")",
                "remove it, or use hugepages",
            ),
            "--socket-mem" if eal.memory_mb.is_some() => f.fail(
                path,
                q(arg),
                "EAL refuses -m (eal.memory_mb) together with --socket-mem",
                "remove it or eal.memory_mb",
            ),
            _ => {
                if let Some((_, instead)) = DERIVED_OPTIONS.iter().find(|(o, _)| *o == option) {
                    f.fail(
                        path,
                        q(arg),
                        format!("{option} is derived from {instead}"),
                        format!("remove it and set {instead}"),
                    );
                }
            }
        }
    }
}

/// `--vdev=x` → `--vdev`; `-l0-3` → `-l`; anything else as is.
fn option_name(arg: &str) -> &str {
    if let Some(long) = arg.strip_prefix("--") {
        let end = long.find('=').map_or(arg.len(), |i| i + 2);
        &arg[..end]
    } else if arg.starts_with('-') && arg.len() > 2 {
        &arg[..2]
    } else {
        arg
    }
}

fn check_ports(p: &Profile, ports: &[PortSpec], f: &mut Findings) {
    if ports.is_empty() {
        f.fail(
            "ports",
            None::<String>,
            "the dataplane needs at least one port",
            "configure the gateway's ports (lan, wan)",
        );
        return;
    }
    if ports.len() > limits::MAX_PORTS {
        f.fail(
            "ports",
            format!("<{} ports>", ports.len()),
            format!("is more than RTE_MAX_ETHPORTS ({})", limits::MAX_PORTS),
            "use fewer ports",
        );
    }
    let info = p.pmd();
    let mut names = HashMap::new();
    let mut pci = HashMap::new();
    let mut ifaces = HashMap::new();
    let mut memif_ids = HashMap::new();
    let mut macs = HashMap::new();
    for (i, port) in ports.iter().enumerate() {
        let prefix = if is_identifier(&port.name, 32) {
            format!("ports.{}", port.name)
        } else {
            f.fail(
                format!("ports[{i}].name"),
                q(&port.name),
                "must be 1 to 32 lowercase letters, digits, '_' or '-'",
                "name the port by its role, e.g. \"lan\" or \"wan\"",
            );
            format!("ports[{i}]")
        };
        if let Some(first) = names.insert(port.name.as_str(), i) {
            f.fail(
                format!("ports[{i}].name"),
                q(&port.name),
                format!("ports[{first}] has the same name"),
                "give each port its own name",
            );
        }
        match (&port.device, p.driver.bus) {
            (PortDevice::Pci(addr), Bus::Pci) => {
                if let Some(first) = pci.insert(*addr, &port.name) {
                    f.fail(
                        format!("{prefix}.pci"),
                        q(&addr.to_string()),
                        format!("port {first} has the same PCI address"),
                        "give each port its own PCI function",
                    );
                }
            }
            (PortDevice::Vdev(_), Bus::Pci) => f.fail(
                format!("{prefix}.pci"),
                None::<String>,
                format!("{} drives PCI devices", p.driver.pmd),
                "set pci = \"dddd:bb:dd.f\" for this port (lspci -D lists the addresses)",
            ),
            (PortDevice::Pci(addr), Bus::Vdev) => f.fail(
                format!("{prefix}.pci"),
                q(&addr.to_string()),
                format!("{} is a virtual device, not a PCI device", p.driver.pmd),
                "remove pci and give the port's devargs, e.g. devargs = { iface = \"…\" }",
            ),
            (PortDevice::Vdev(devargs), Bus::Vdev) => {
                check_port_devargs(p, info, port, devargs, &prefix, f);
                if let Some(iface) = devargs.get("iface").and_then(DevargValue::as_text)
                    && let Some(first) = ifaces.insert(iface.to_owned(), &port.name)
                {
                    f.fail(
                        format!("{prefix}.devargs.iface"),
                        q(iface),
                        format!("port {first} attaches to the same interface"),
                        "give each port its own interface",
                    );
                }
                if p.driver.pmd == "net_memif" {
                    // A server and a client with the same socket and id are the two ends of
                    // one link; two ends of the same role would fight over it.
                    let id = devargs.get("id").and_then(DevargValue::as_int).unwrap_or(0);
                    let role = devargs.get("role").and_then(DevargValue::as_text);
                    if let Some(socket) = devargs.get("socket").and_then(DevargValue::as_text)
                        && let Some(role) = role
                        && let Some(first) =
                            memif_ids.insert((socket.to_owned(), id, role), &port.name)
                    {
                        f.fail(
                            format!("{prefix}.devargs.id"),
                            id.to_string(),
                            format!(
                                "port {first} is also the {role} of socket {socket:?} with id {id}"
                            ),
                            "give ports of the same role on one socket different ids",
                        );
                    }
                }
            }
        }
        if let Some(mac) = port.mac {
            if mac.is_multicast() || mac.0 == [0; 6] {
                f.fail(
                    format!("{prefix}.mac"),
                    q(&mac.to_string()),
                    "is a multicast or all-zero address",
                    "use a unicast address, e.g. a locally administered 02:…",
                );
            } else if let Some(first) = macs.insert(mac, &port.name) {
                f.fail(
                    format!("{prefix}.mac"),
                    q(&mac.to_string()),
                    format!("port {first} has the same MAC address"),
                    "give each port its own MAC address",
                );
            }
        }
        check_addresses(port, &prefix, f);
    }
    for (i, a) in ports.iter().enumerate() {
        for b in &ports[i + 1..] {
            if a.ipv4.contains(&b.ipv4.network()) || b.ipv4.contains(&a.ipv4.network()) {
                f.warn(
                    format!("ports.{}.ipv4", b.name),
                    format!(
                        "{} overlaps port {}'s {}: routes between the ports are ambiguous",
                        b.ipv4, a.name, a.ipv4
                    ),
                );
            }
        }
    }
}

fn check_port_devargs(
    p: &Profile,
    info: Option<&PmdInfo>,
    port: &PortSpec,
    devargs: &Devargs,
    prefix: &str,
    f: &mut Findings,
) {
    let field = format!("{prefix}.devargs");
    check_devargs(&field, devargs, info, f);
    for (key, value) in devargs.iter() {
        if let Some(theirs) = p.driver.devargs.get(key) {
            f.fail(
                format!("{field}.{key}"),
                value.to_string(),
                format!("is also set by the profile (driver.devargs.{key} = {theirs})"),
                "set it in one place",
            );
        }
    }
    let Some(info) = info else {
        return;
    };
    for key in info.port_devargs {
        if !devargs.contains_key(key) {
            let (problem, example) = match *key {
                "iface" => (
                    format!("{} attaches each port to a kernel interface", info.name),
                    "iface = \"<interface>\"",
                ),
                "socket" => (
                    "net_memif connects each port through a control socket".into(),
                    "socket = \"/run/scistream/<port>.sock\"",
                ),
                "role" => (
                    "net_memif needs to know which end of the socket this port is".into(),
                    "role = \"server\" (or \"client\")",
                ),
                _ => (format!("{} needs {key} for each port", info.name), "…"),
            };
            f.fail(
                format!("{field}.{key}"),
                None::<String>,
                problem,
                format!("add {example} to the devargs of port {}", port.name),
            );
        }
    }
    if let Some(iface) = devargs.get("iface").and_then(DevargValue::as_text)
        && iface.len() > limits::IFNAME_MAX
    {
        f.fail(
            format!("{field}.iface"),
            q(iface),
            format!("is longer than {} bytes (IFNAMSIZ - 1)", limits::IFNAME_MAX),
            "use the interface's actual, shorter name",
        );
    }
    let get = |k: &str| devargs.get(k).or_else(|| p.driver.devargs.get(k));
    if info.name == "net_af_packet"
        && ["framesz", "blocksz", "framecnt"]
            .iter()
            .any(|k| devargs.contains_key(k))
    {
        check_af_packet_frames(p, &get, &field, f);
    }
    if info.name == "net_memif" && devargs.contains_key("bsize") {
        check_memif_buffers(p, &get, &field, f);
    }
    if let Some((key, _)) = info.queue_devarg
        && devargs.contains_key(key)
    {
        check_queue_devarg(p, info, &get, &field, f);
    }
}

fn check_addresses(port: &PortSpec, prefix: &str, f: &mut Findings) {
    let net = port.ipv4;
    let addr = net.addr();
    if net.prefix_len() == 0 {
        f.fail(
            format!("{prefix}.ipv4"),
            q(&net.to_string()),
            "prefix /0 puts every address on the link",
            "give the subnet's prefix, e.g. /24",
        );
    } else if net.prefix_len() <= 30 && (addr == net.network() || addr == net.broadcast()) {
        f.fail(
            format!("{prefix}.ipv4"),
            q(&net.to_string()),
            format!(
                "{addr} is the network or broadcast address of {}",
                net.trunc()
            ),
            "use a host address inside the subnet",
        );
    }
    if let Some(gw) = port.gateway {
        if gw == addr {
            f.fail(
                format!("{prefix}.gateway"),
                q(&gw.to_string()),
                "is the port's own address",
                "give the next-hop router's address",
            );
        } else if !net.contains(&gw) {
            f.fail(
                format!("{prefix}.gateway"),
                q(&gw.to_string()),
                format!("is not inside the port's subnet {}", net.trunc()),
                "use a router on the port's subnet, or fix ipv4's prefix",
            );
        }
    }
}

fn check_mempool_size(p: &Profile, ports: usize, lcores: usize, f: &mut Findings) {
    let need = p.minimum_mbufs(ports, lcores);
    if u64::from(p.mempool.mbufs) < need {
        let q = &p.queues;
        let next = (need + 1).next_power_of_two() - 1;
        f.fail(
            "mempool.mbufs",
            p.mempool.mbufs.to_string(),
            format!(
                "{} and {} need at least {need} mbufs: {ports} × ({} × {} rx + {} × {} tx \
                 descriptors) + {lcores} × (burst {} + cache {})",
                plural(ports, "port"),
                plural(lcores, "lcore"),
                q.rx_queues,
                q.rx_descriptors,
                q.tx_queues,
                q.tx_descriptors,
                q.burst,
                p.mempool.cache
            ),
            format!("set mempool.mbufs ≥ {need} ({next} is the next 2^n - 1)"),
        );
    }
}

/// `[a-z0-9][a-z0-9_-]*`, at most `max` bytes.
fn is_identifier(s: &str, max: usize) -> bool {
    let mut chars = s.chars();
    s.len() <= max
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// "1 port", "2 ports".
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `v` rounded up to a multiple of `m` (both positive).
fn round_up(v: i64, m: i64) -> i64 {
    (v + m - 1) / m * m
}

/// A string as TOML spells it.
fn q(s: &str) -> String {
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::DataplaneLcores;

    fn builtin(name: &str, edit: impl FnOnce(&mut Profile)) -> Profile {
        let mut p = Profile::builtin(name).unwrap();
        edit(&mut p);
        p
    }

    /// The violations of an edited builtin, as the user reads them.
    fn violations(name: &str, edit: impl FnOnce(&mut Profile)) -> Vec<String> {
        let p = builtin(name, edit);
        match p.validate() {
            Ok(w) => panic!("{name} still validates (warnings: {w:?})"),
            Err(e) => {
                assert!(matches!(e, ProfileError::Invalid { .. }), "{e}");
                e.violations().iter().map(ToString::to_string).collect()
            }
        }
    }

    fn warnings(name: &str, edit: impl FnOnce(&mut Profile)) -> Vec<String> {
        let p = builtin(name, edit);
        let w = p.validate().unwrap_or_else(|e| panic!("{e}"));
        w.iter().map(ToString::to_string).collect()
    }

    fn vdev_port(name: &str, devargs: &[(&str, &str)], ipv4: &str) -> PortSpec {
        PortSpec::vdev(name, devargs.iter().copied().collect(), ipv4).unwrap()
    }

    fn af_packet_ports() -> Vec<PortSpec> {
        vec![
            vdev_port("lan", &[("iface", "gn1-lan")], "172.16.1.1/24"),
            vdev_port("wan", &[("iface", "gn1-wan")], "198.51.100.10/24"),
        ]
    }

    fn deployment_violations(p: &Profile, ports: &[PortSpec], layout: &LcoreLayout) -> Vec<String> {
        match validate_deployment(p, ports, layout) {
            Ok(w) => panic!("the deployment validates (warnings: {w:?})"),
            Err(e) => {
                assert!(matches!(e, ProfileError::Deployment { .. }), "{e}");
                e.violations().iter().map(ToString::to_string).collect()
            }
        }
    }

    #[test]
    fn descriptors_must_be_a_power_of_two() {
        assert_eq!(
            violations("connectx6dx", |p| p.queues.rx_descriptors = 1000),
            ["queues.rx_descriptors = 1000: is not a power of two; use 512 or 1024"]
        );
    }

    #[test]
    fn descriptors_must_be_in_range_and_within_the_pmds_limit() {
        assert_eq!(
            violations("connectx6dx", |p| p.queues.tx_descriptors = 65536),
            [
                "queues.tx_descriptors = 65536: is outside 64..=32768; use a power of two from 64 \
              to 32768, e.g. 1024"
            ]
        );
        assert_eq!(
            violations("e810", |p| p.queues.rx_descriptors = 8192),
            [
                "queues.rx_descriptors = 8192: net_ice supports at most 4096 descriptors per queue \
              (DPDK 22.11); set queues.rx_descriptors ≤ 4096"
            ]
        );
        // mlx5 takes up to 32768.
        assert!(
            builtin("connectx6dx", |p| p.queues.rx_descriptors = 32768)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn burst_must_fit_half_a_ring() {
        assert_eq!(
            violations("af_packet", |p| {
                p.queues.rx_descriptors = 512;
                p.queues.burst = 300;
            }),
            [
                "queues.burst = 300: is more than half of the 512 rx descriptors; the ring cannot \
              refill while a burst is out; set queues.burst ≤ 256 or raise \
              queues.rx_descriptors"
            ]
        );
        assert_eq!(
            violations("af_packet", |p| p.queues.burst = 1000),
            [
                "queues.burst = 1000: is outside 1..=512; use 32 (DPDK's usual burst) or another \
              value in range"
            ]
        );
    }

    #[test]
    fn af_packet_frames_limit_the_mtu() {
        assert_eq!(
            violations("af_packet", |p| {
                p.mtu = 1500;
                p.driver.devargs.insert("framesz", 1024);
            }),
            [
                "mtu = 1500: net_af_packet frames of driver.devargs.framesz = 1024 bytes carry at \
              most MTU 944 (the kernel puts the Ethernet header 66 bytes into the frame); raise \
              driver.devargs.framesz to 1584 or lower mtu to 944"
            ]
        );
        // Jumbo frames are fine when the frames hold them (the port layer handles the PMD's
        // nominal 1518-byte limit).
        let mut jumbo = Profile::builtin("af_packet").unwrap();
        jumbo.mtu = 9000;
        jumbo.driver.devargs.insert("framesz", 16384);
        jumbo.driver.devargs.insert("blocksz", 16384);
        jumbo.driver.devargs.insert("framecnt", 448);
        jumbo.mempool.data_room = 16512;
        jumbo
            .validate()
            .expect("af_packet at MTU 9000 with 16 KiB frames");
    }

    #[test]
    fn af_packet_ring_geometry_follows_the_kernels_rules() {
        assert_eq!(
            violations("af_packet", |p| {
                p.driver.devargs.insert("framesz", 2008);
                p.driver.devargs.insert("blocksz", 6000);
                p.driver.devargs.insert("framecnt", 511);
            }),
            [
                "driver.devargs.framesz = 2008: is not a multiple of 16 (TPACKET_ALIGNMENT); the \
                 kernel refuses the ring; use 2016",
                "driver.devargs.blocksz = 6000: is not a multiple of the 4096-byte page size; the \
                 kernel refuses the ring; use 8192",
                // The PMD reads frame i at i * framesz, so blocks must hold whole frames.
                "driver.devargs.blocksz = 6000: is not a multiple of framesz = 2008; \
                 net_af_packet then reads frames at the wrong offsets; use blocksz = 6024",
            ]
        );
    }

    #[test]
    fn af_packet_blocks_of_other_sizes_than_2_to_the_n_waste_memory() {
        assert_eq!(
            warnings("af_packet", |p| {
                p.driver.devargs.insert("blocksz", 12288);
                p.driver.devargs.insert("framecnt", 510);
            }),
            [
                "driver.devargs.blocksz: 12288 is not a power of two: the kernel allocates each \
              block as 2^n pages, so 4096 bytes of every block are wasted"
            ]
        );
    }

    #[test]
    fn af_packet_data_room_must_hold_a_frame() {
        assert_eq!(
            violations("af_packet", |p| {
                p.driver.devargs.insert("framesz", 4096);
                p.mempool.data_room = 2176;
            }),
            [
                "mempool.data_room = 2176: net_af_packet copies up to framesz - 32 = 4064 bytes \
              into one mbuf, which holds data_room - 128 = 2048; the rx queue setup fails; set \
              mempool.data_room ≥ 4192 or lower driver.devargs.framesz"
            ]
        );
    }

    #[test]
    fn offloads_the_pmd_lacks_are_refused() {
        assert_eq!(
            violations("af_packet", |p| p.offloads.tso = true),
            ["offloads.tso = true: net_af_packet does not offer TSO; set offloads.tso = false"]
        );
        assert_eq!(
            violations("null", |p| {
                p.offloads.rx_checksum = true;
                p.offloads.multi_seg = true;
            }),
            [
                "offloads.rx_checksum = true: net_null does not offer Rx checksum offload; set \
                 offloads.rx_checksum = false",
                "offloads.multi_seg = true: net_null does not offer multi-segment Tx; set \
                 offloads.multi_seg = false",
            ]
        );
        assert_eq!(
            violations("e810", |p| p.offloads.lro = true),
            ["offloads.lro = true: net_ice does not offer LRO; set offloads.lro = false"]
        );
        // tap offers TSO (in software), virtio TCP/UDP checksums (no IPv4 header checksum):
        // partial support passes and is masked at port start.
        assert!(
            builtin("tap", |p| {
                p.offloads.tso = true;
                p.offloads.multi_seg = true;
            })
            .validate()
            .is_ok()
        );
        assert!(
            builtin("virtio", |p| p.offloads.rx_checksum = true)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn rss_key_length_is_the_pmds() {
        assert_eq!(
            violations("connectx6dx", |p| p.rss.key = Some("ab".repeat(32))),
            [
                "rss.key = <32 bytes>: net_mlx5 takes a 40-byte RSS key, this one has 32 bytes; \
              give 80 hex digits, or remove rss.key to keep the device's key"
            ]
        );
        assert_eq!(
            violations("e810", |p| p.rss.key = Some("ab".repeat(40))),
            [
                "rss.key = <40 bytes>: net_ice takes a 52-byte RSS key, this one has 40 bytes; \
              give 104 hex digits, or remove rss.key to keep the device's key"
            ]
        );
        assert_eq!(
            violations("connectx6dx", |p| p.rss.key = Some("xy".repeat(40))),
            [
                "rss.key = \"xyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxy\": \
              is not hex: Invalid character 'x' at position 0; write the key as hex digits only, \
              two per byte"
            ]
        );
        assert!(
            builtin("connectx6dx", |p| p.rss.key = Some("6d5a".repeat(20)))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn rss_needs_a_pmd_with_rss_and_something_to_hash() {
        assert_eq!(
            violations("af_xdp", |p| p.rss.enabled = true),
            [
                "rss.enabled = true: net_af_xdp has no RSS; set rss.enabled = false and \
              queues.rx_queues = 1"
            ]
        );
        assert_eq!(
            violations("connectx6dx", |p| p.rss.hash =
                vec![RssHash::Tcp, RssHash::Tcp]),
            [
                "rss.hash = [\"tcp\", \"tcp\"]: lists \"tcp\" twice; list each hash type once",
                "rss.hash = [\"tcp\", \"tcp\"]: tcp and udp add ports to an IP hash, but no IP \
                 version is listed; add \"ipv4\" and/or \"ipv6\"",
            ]
        );
        assert_eq!(
            warnings("connectx6dx", |p| p.rss.enabled = false),
            [
                "rss.enabled: false with 4 rx queues: every packet lands on queue 0 unless rte_flow \
              rules steer it"
            ]
        );
    }

    #[test]
    fn mempool_cache_limits() {
        assert_eq!(
            violations("af_packet", |p| p.mempool.cache = 600),
            [
                "mempool.cache = 600: is above RTE_MEMPOOL_CACHE_MAX_SIZE (512); set mempool.cache \
              ≤ 512"
            ]
        );
        assert_eq!(
            violations("af_packet", |p| {
                p.mempool.mbufs = 400;
                p.mempool.cache = 300;
            }),
            [
                "mempool.cache = 300: DPDK refuses a cache whose flush threshold (1.5 × 300 = 450) \
              exceeds mempool.mbufs = 400; set mempool.cache ≤ 267 or mempool.mbufs ≥ 450"
            ]
        );
    }

    #[test]
    fn max_cache_is_the_largest_cache_dpdk_accepts() {
        for mbufs in 0..2000 {
            let brute = (0..=mbufs)
                .filter(|c| flush_threshold(*c) <= mbufs)
                .max()
                .unwrap();
            assert_eq!(max_cache(mbufs), brute, "mbufs {mbufs}");
        }
    }

    #[test]
    fn data_room_must_hold_a_frame_unless_scatter() {
        assert_eq!(
            violations("connectx6dx", |p| p.mempool.data_room = 2176),
            [
                "mempool.data_room = 2176: an mbuf holds data_room - 128 (headroom) = 2048 bytes, \
              less than a frame of mtu 9000 + 18 = 9018 bytes; set mempool.data_room ≥ 9146, or \
              offloads.scatter = true and offloads.multi_seg = true to use mbuf chains"
            ]
        );
        assert!(
            builtin("connectx6dx", |p| {
                p.mempool.data_room = 2176;
                p.offloads.scatter = true;
            })
            .validate()
            .is_ok()
        );
        // The stack sends full-sized frames too: small mbufs need chains both ways.
        assert_eq!(
            violations("tap", |p| {
                p.mempool.data_room = 1152;
                p.offloads.scatter = true;
            }),
            [
                "offloads.multi_seg = false: the stack sends frames of up to 1518 bytes and an \
              mbuf holds 1024: without multi-segment Tx the larger ones cannot be sent; set \
              offloads.multi_seg = true, or mempool.data_room ≥ 1646"
            ]
        );
        assert_eq!(
            violations("af_xdp", |p| p.mempool.data_room = 4096),
            [
                "mempool.data_room = 4096: net_af_xdp receives into UMEM chunks of one 4 KiB page: \
              object header (64) + mbuf (128) + data room must fit (measured: 3905 fails with \
              \"Failed to create umem\"); set mempool.data_room ≤ 3904"
            ]
        );
    }

    #[test]
    fn the_pool_must_fit_the_eal_memory() {
        assert_eq!(
            violations("ring", |p| p.eal.memory_mb = Some(64)),
            [
                "mempool.mbufs = 8191: the pool needs about 75 MiB (8191 mbufs of 9536 bytes), more \
              than the 64 MiB EAL gets (eal.memory_mb); lower mempool.mbufs or \
              mempool.data_room, or raise eal.memory_mb"
            ]
        );
        assert_eq!(
            warnings("ring", |p| p.eal.memory_mb = Some(128)),
            [
                "mempool.mbufs: the pool needs about 75 MiB, more than half of the 128 MiB EAL gets; \
              EAL and the PMDs need memory too (measured here: -m 64 held at most about 28 MiB of \
              mbufs, -m 256 about 142 MiB)"
            ]
        );
    }

    #[test]
    fn unknown_devargs_of_a_known_pmd_list_the_known_keys() {
        assert_eq!(
            violations("af_packet", |p| {
                p.driver.devargs.insert("framesize", 2048);
            }),
            [
                "driver.devargs.framesize = 2048: net_af_packet has no devarg \"framesize\" (DPDK \
              refuses to probe a device with an unknown key); use one of: iface, qpairs, \
              blocksz, framesz, framecnt, qdisc_bypass"
            ]
        );
        assert_eq!(
            violations("ring", |p| {
                p.driver.devargs.insert("size", 64);
            }),
            [
                "driver.devargs.size = 64: net_ring has no devarg \"size\" (DPDK refuses to probe a \
              device with an unknown key); use one of: nodeaction"
            ]
        );
    }

    #[test]
    fn devarg_values_are_checked_by_kind() {
        assert_eq!(
            violations("af_packet", |p| {
                p.driver.devargs.insert("qpairs", "one");
            }),
            [
                "driver.devargs.qpairs = \"one\": must be an integer; write it without quotes, \
              e.g. qpairs = 1"
            ]
        );
        assert_eq!(
            violations("memif", |p| {
                p.driver.devargs.insert("zero-copy", 1);
            }),
            [
                "driver.devargs.zero-copy = 1: must be yes or no; this PMD does not read 1/0 here; \
              set zero-copy = true or zero-copy = false"
            ]
        );
    }

    #[test]
    fn memif_jumbo_frames_need_buffers_that_hold_a_frame() {
        let jumbo = |p: &mut Profile| {
            p.mtu = 9000;
            p.mempool.data_room = 128 + 9216;
        };
        assert_eq!(
            violations("memif", jumbo),
            [
                "driver.devargs.bsize = 2048: net_memif splits a frame longer than bsize over \
                 several ring buffers, and DPDK 22.11 then delivers mbuf chains with wrong frame \
                 boundaries (MTU 9000 frames are 9014 bytes; at MTU 9000 over the default bsize \
                 2048 the receiver got chains of 9580-11062 bytes and the relay stalled); set \
                 driver.devargs.bsize = 9216 or lower mtu to 2034"
            ]
        );
        let p = builtin("memif", |p| {
            jumbo(p);
            p.driver.devargs.insert("bsize", 9216);
        });
        p.validate().expect("bsize 9216 holds a 9014-byte frame");
        let over = violations("memif", |p| {
            jumbo(p);
            p.mtu = 9001;
            p.driver.devargs.insert("bsize", 10240);
        });
        assert_eq!(over.len(), 1, "{over:?}");
        assert!(
            over[0].starts_with("mtu = 9001")
                && over[0].contains("9014-byte frames are the largest measured over net_memif"),
            "{over:?}"
        );
    }

    #[test]
    fn an_unknown_pmd_takes_any_devargs_with_a_warning() {
        let p = builtin("ring", |p| {
            p.driver.pmd = "net_pcap".into();
            p.driver.devargs.insert("rx_pcap", "/tmp/in.pcap");
        });
        let w = p.validate().unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].to_string().starts_with(
                "driver.pmd: net_pcap is not a PMD this crate knows (net_mlx5, net_ice, \
                 net_virtio, net_af_packet, net_af_xdp, net_memif, net_tap, net_ring, net_null): \
                 its devargs, offloads, MTU and queue limits are left to DPDK"
            ),
            "{}",
            w[0]
        );
    }

    #[test]
    fn the_bus_must_be_the_pmds_and_port_keys_stay_out_of_the_profile() {
        assert_eq!(
            violations("connectx6dx", |p| p.driver.bus = Bus::Vdev),
            [
                "driver.bus = \"vdev\": net_mlx5 is a PCI driver: its devices are probed with -a \
              <PCI address>; set driver.bus = \"pci\""
            ]
        );
        assert_eq!(
            violations("af_packet", |p| {
                p.driver.devargs.insert("iface", "veth0");
            }),
            [
                "driver.devargs.iface = \"veth0\": iface is set per port: each port of \
              net_af_packet has its own; remove it here and set devargs.iface in each port of \
              the s2cs config"
            ]
        );
    }

    #[test]
    fn queue_creating_devargs_must_match_the_queues() {
        assert_eq!(
            violations("af_packet", |p| {
                p.driver.devargs.insert("qpairs", 2);
            }),
            [
                "queues.rx_queues = 1: net_af_packet creates 2 queues (driver.devargs.qpairs = 2); \
              packets spread over queues that are not polled never reach the dataplane; set \
              driver.devargs.qpairs = 1 or queues.rx_queues = 2"
            ]
        );
    }

    #[test]
    fn each_dataplane_lcore_needs_its_own_tx_queue() {
        assert_eq!(
            violations("af_packet", |p| p.lcores.dataplane =
                DataplaneLcores::List(vec![1, 2])),
            [
                "queues.tx_queues = 1: each of the 2 dataplane lcores needs a tx queue of its own \
              (DPDK tx queues are not thread-safe); set queues.tx_queues ≥ 2 or use fewer \
              dataplane lcores"
            ]
        );
        assert_eq!(
            violations("af_packet", |p| p.lcores.dataplane =
                DataplaneLcores::List(vec![0])),
            [
                "lcores.dataplane = [0]: contains the main lcore 0, which runs control work; remove 0 \
              from the dataplane lcores or choose another main lcore"
            ]
        );
    }

    #[test]
    fn eal_rules() {
        assert_eq!(
            violations("af_packet", |p| p.eal.iova = Iova::Pa),
            [
                "eal.iova = \"pa\": without hugepages there are no physical addresses and EAL \
              selects VA anyway (measured: \"Physical addresses are unavailable, selecting IOVA \
              as VA mode\"); set eal.iova = \"va\" or \"auto\""
            ]
        );
        assert_eq!(
            violations("af_packet", |p| p.eal.log_levels =
                vec!["--log-level=debug".into()]),
            [
                "eal.log_levels[0] = \"--log-level=debug\": is not [<pattern>:]<level> with a level \
              of emergency, alert, critical, error, warning, notice, info, debug or 1..8; write \
              it like \"lib.eal:error\" (without --log-level=)"
            ]
        );
        assert_eq!(
            violations("af_packet", |p| p.eal.file_prefix = Some("a/b".into())),
            [
                "eal.file_prefix = \"a/b\": must be a non-empty name without '/' or spaces (EAL makes \
              a directory of it under /var/run/dpdk); use a short name, e.g. file_prefix = \
              \"scistream\""
            ]
        );
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let err = builtin("af_packet", |p| {
            p.mtu = 20000;
            p.queues.rx_descriptors = 100;
            p.offloads.lro = true;
        })
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "builtin NIC profile \"af_packet\" is invalid:\n  \
             - queues.rx_descriptors = 100: is not a power of two; use 64 or 128\n  \
             - mtu = 20000: is outside 68..=9600 (RTE_ETHER_MIN_MTU to the largest jumbo MTU used \
             here); set mtu within 68..=9600\n  \
             - offloads.lro = true: net_af_packet does not offer LRO; set offloads.lro = false\n  \
             - mempool.data_room = 2176: an mbuf holds data_room - 128 (headroom) = 2048 bytes, \
             less than a frame of mtu 20000 + 18 = 20018 bytes; set mempool.data_room ≥ 20146, or \
             offloads.scatter = true and offloads.multi_seg = true to use mbuf chains"
        );
    }

    #[test]
    fn the_mempool_must_cover_the_ports_and_lcores() {
        let p = builtin("af_packet", |p| p.mempool.mbufs = 4095);
        assert_eq!(
            deployment_violations(&p, &af_packet_ports(), &LcoreLayout::new(0, vec![1])),
            // 2 × (1 × 1024 + 1 × 1024) + 2 × (32 + 256) = 4096 + 576 = 4672
            [
                "mempool.mbufs = 4095: 2 ports and 2 lcores need at least 4672 mbufs: 2 × (1 × 1024 \
              rx + 1 × 1024 tx descriptors) + 2 × (burst 32 + cache 256); set mempool.mbufs ≥ \
              4672 (8191 is the next 2^n - 1)"
            ]
        );
        let p = builtin("connectx6dx", |p| p.mempool.mbufs = 65535);
        let ports = [
            PortSpec::pci("lan", "0000:81:00.0", "172.16.1.1/24").unwrap(),
            PortSpec::pci("wan", "0000:81:00.1", "198.51.100.10/24").unwrap(),
        ];
        assert_eq!(
            deployment_violations(&p, &ports, &LcoreLayout::new(0, vec![1, 2, 3, 4])),
            // 2 × (4 × 4096 + 4 × 4096) + 5 × (32 + 512) = 65536 + 2720 = 68256
            [
                "mempool.mbufs = 65535: 2 ports and 5 lcores need at least 68256 mbufs: 2 × (4 × \
              4096 rx + 4 × 4096 tx descriptors) + 5 × (burst 32 + cache 512); set mempool.mbufs \
              ≥ 68256 (131071 is the next 2^n - 1)"
            ]
        );
    }

    #[test]
    fn vdev_ports_need_their_devargs() {
        let p = Profile::builtin("af_packet").unwrap();
        let ports = [
            vdev_port("lan", &[("iface", "gn1-lan")], "172.16.1.1/24"),
            vdev_port("wan", &[], "198.51.100.10/24"),
        ];
        assert_eq!(
            deployment_violations(&p, &ports, &LcoreLayout::new(0, vec![1])),
            [
                "ports.wan.devargs.iface is not set: net_af_packet attaches each port to a kernel \
              interface; add iface = \"<interface>\" to the devargs of port wan"
            ]
        );
        let p = Profile::builtin("memif").unwrap();
        let ports = [vdev_port(
            "lan",
            &[("socket", "/run/m.sock")],
            "172.16.1.1/24",
        )];
        assert_eq!(
            deployment_violations(&p, &ports, &LcoreLayout::new(0, vec![1])),
            [
                "ports.lan.devargs.role is not set: net_memif needs to know which end of the socket \
              this port is; add role = \"server\" (or \"client\") to the devargs of port lan"
            ]
        );
    }

    #[test]
    fn port_devargs_are_checked_like_the_profiles() {
        let p = Profile::builtin("af_packet").unwrap();
        let ports = [
            vdev_port(
                "lan",
                &[("iface", "gn1-lan"), ("qpairs", "2")],
                "172.16.1.1/24",
            ),
            vdev_port(
                "wan",
                &[("iface", "gn1-lan"), ("ifname", "x")],
                "198.51.100.10/24",
            ),
        ];
        assert_eq!(
            deployment_violations(&p, &ports, &LcoreLayout::new(0, vec![1])),
            [
                "ports.lan.devargs.qpairs = \"2\": must be an integer; write it without quotes, \
                 e.g. qpairs = 1",
                "ports.lan.devargs.qpairs = \"2\": is also set by the profile \
                 (driver.devargs.qpairs = 1); set it in one place",
                "ports.wan.devargs.ifname = \"x\": net_af_packet has no devarg \"ifname\" (DPDK \
                 refuses to probe a device with an unknown key); use one of: iface, qpairs, \
                 blocksz, framesz, framecnt, qdisc_bypass",
                "ports.wan.devargs.iface = \"gn1-lan\": port lan attaches to the same interface; \
                 give each port its own interface",
            ]
        );
    }

    #[test]
    fn memif_ends_pair_by_socket_and_id() {
        let p = Profile::builtin("memif").unwrap();
        let end = |name: &str, role: &str, net: &str| {
            vdev_port(name, &[("socket", "/run/m.sock"), ("role", role)], net)
        };
        let layout = LcoreLayout::new(0, vec![1]);
        // A server and a client on one socket and id: the two ends of one link.
        let pair = [
            end("lan", "server", "10.0.0.1/24"),
            end("wan", "client", "10.0.1.1/24"),
        ];
        assert_eq!(validate_deployment(&p, &pair, &layout).unwrap(), []);
        let two_servers = [
            end("lan", "server", "10.0.0.1/24"),
            end("wan", "server", "10.0.1.1/24"),
        ];
        assert_eq!(
            deployment_violations(&p, &two_servers, &layout),
            [
                "ports.wan.devargs.id = 0: port lan is also the server of socket \"/run/m.sock\" with \
              id 0; give ports of the same role on one socket different ids"
            ]
        );
    }

    #[test]
    fn ports_must_match_the_bus() {
        let p = Profile::builtin("connectx6dx").unwrap();
        let ports = [
            PortSpec::pci("lan", "0000:81:00.0", "172.16.1.1/24").unwrap(),
            vdev_port("wan", &[("iface", "eth1")], "198.51.100.10/24"),
        ];
        assert_eq!(
            deployment_violations(&p, &ports, &LcoreLayout::new(0, vec![1, 2, 3, 4])),
            [
                "ports.wan.pci is not set: net_mlx5 drives PCI devices; set pci = \"dddd:bb:dd.f\" \
              for this port (lspci -D lists the addresses)"
            ]
        );
        let p = Profile::builtin("af_packet").unwrap();
        let ports = [PortSpec::pci("lan", "0000:81:00.0", "172.16.1.1/24").unwrap()];
        assert_eq!(
            deployment_violations(&p, &ports, &LcoreLayout::new(0, vec![1])),
            [
                "ports.lan.pci = \"0000:81:00.0\": net_af_packet is a virtual device, not a PCI \
              device; remove pci and give the port's devargs, e.g. devargs = { iface = \"…\" }"
            ]
        );
    }

    #[test]
    fn addresses_are_checked() {
        let p = Profile::builtin("af_packet").unwrap();
        let mut ports = af_packet_ports();
        ports[0].gateway = Some("10.0.0.1".parse().unwrap());
        ports[1].ipv4 = "198.51.100.0/24".parse().unwrap();
        ports[1].mac = Some("01:00:5e:00:00:01".parse().unwrap());
        assert_eq!(
            deployment_violations(&p, &ports, &LcoreLayout::new(0, vec![1])),
            [
                "ports.lan.gateway = \"10.0.0.1\": is not inside the port's subnet 172.16.1.0/24; \
                 use a router on the port's subnet, or fix ipv4's prefix",
                "ports.wan.mac = \"01:00:5e:00:00:01\": is a multicast or all-zero address; use a \
                 unicast address, e.g. a locally administered 02:…",
                "ports.wan.ipv4 = \"198.51.100.0/24\": 198.51.100.0 is the network or broadcast \
                 address of 198.51.100.0/24; use a host address inside the subnet",
            ]
        );
    }

    #[test]
    fn the_layout_given_is_checked_too() {
        let p = Profile::builtin("af_packet").unwrap();
        assert_eq!(
            deployment_violations(
                &p,
                &af_packet_ports(),
                &LcoreLayout::new(0, vec![1, 1, 200])
            ),
            [
                "lcores.dataplane = [1, 1, 200]: lists lcore 1 twice; list each lcore once",
                "lcores.dataplane = [1, 1, 200]: lcore 200 is not below RTE_MAX_LCORE (128); use \
                 lcore ids below 128",
                "queues.tx_queues = 1: each of the 3 dataplane lcores needs a tx queue of its own \
                 (DPDK tx queues are not thread-safe); set queues.tx_queues ≥ 3 or use fewer \
                 dataplane lcores",
                // 2 × 2048 + 3 lcores (0, 1, 200) × 288 = 4960 ≤ 8191: no mempool violation.
            ]
        );
    }

    #[test]
    fn a_broken_profile_is_reported_as_such_by_the_deployment_check() {
        let p = builtin("af_packet", |p| p.queues.burst = 0);
        let err =
            validate_deployment(&p, &af_packet_ports(), &LcoreLayout::new(0, vec![1])).unwrap_err();
        assert!(matches!(err, ProfileError::Invalid { .. }), "{err}");
    }

    #[test]
    fn option_names() {
        assert_eq!(option_name("--vdev=net_null0"), "--vdev");
        assert_eq!(option_name("--no-pci"), "--no-pci");
        assert_eq!(option_name("-l0-3"), "-l");
        assert_eq!(option_name("-l"), "-l");
        assert_eq!(option_name("x"), "x");
    }
}
