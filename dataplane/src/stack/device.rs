//! A smoltcp [`Device`] over one DPDK RX/TX queue pair.
//!
//! Driven in rounds by the lcore loop: [`PortDevice::refill`] takes one RX burst, smoltcp's
//! `poll` consumes it packet by packet (and queues replies and segments as TX mbufs), and
//! [`PortDevice::flush`] hands the TX batch to the NIC. Nothing allocates per packet: the burst
//! vectors are reserved once and mbufs come from the port's pool.

use std::sync::Arc;

use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::dpdk::{Mbuf, Mempool, RxQueue, TxQueue};

/// Frames the device counted but could not hand over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Multi-segment frames copied into one buffer before smoltcp read them: the port runs
    /// Rx scatter with mbufs smaller than a frame. They arrive intact but cost a copy; mbufs
    /// that hold a whole frame (the profile's `mempool.data_room`) avoid it.
    pub rx_linearized: u64,
    /// Multi-segment frames longer than the port's MTU allows (dropped).
    pub rx_dropped_oversize: u64,
    /// Frames addressed to another station (a promiscuous port on a shared segment, or runts
    /// without a whole address), dropped before smoltcp, which would drop them at more cost.
    pub rx_not_ours: u64,
    /// Frames longer than one mbuf sent as a chain (the port has multi-segment Tx and a
    /// data room below the frame): built in one buffer, then copied into the segments.
    pub tx_chained: u64,
    /// Frames smoltcp wanted to send while the pool was empty (retried by TCP).
    pub tx_no_mbuf: u64,
    /// Frames the NIC did not take after retries in one flush (dropped; TCP retransmits).
    pub tx_dropped: u64,
}

/// One queue pair of a port as a smoltcp device.
#[derive(Debug)]
pub struct PortDevice {
    rx: RxQueue,
    tx: TxQueue,
    pool: Arc<Mempool>,
    burst: u16,
    mtu: usize,
    rx_buf: Vec<Mbuf>,
    /// Next frame of `rx_buf` to hand to smoltcp (frames are consumed front to back).
    rx_next: usize,
    /// One frame's room for a chained frame, copied whole (allocated once).
    rx_linear: Box<[u8]>,
    tx_buf: Vec<Mbuf>,
    /// Where a frame is built that one mbuf cannot hold, or that has no mbuf (allocated once).
    tx_linear: Box<[u8]>,
    /// The TX queue takes chained mbufs.
    tx_multi_seg: bool,
    counters: DeviceCounters,
    checksum: ChecksumCapabilities,
    /// A TCP SYN (without ACK) was handed to smoltcp since the last [`PortDevice::take_syn`].
    syn: bool,
    /// The port's station address; once set, unicast frames for other stations are dropped
    /// here instead of inside smoltcp.
    mac: Option<[u8; 6]>,
}

impl PortDevice {
    /// `mtu` is the IP MTU of the port (the frame is 14 bytes longer); `burst` the RX/TX burst.
    pub fn new(rx: RxQueue, tx: TxQueue, pool: Arc<Mempool>, burst: u16, mtu: usize) -> Self {
        let burst = burst.max(1);
        let tx_multi_seg = tx.multi_seg();
        Self {
            rx,
            tx,
            pool,
            burst,
            mtu,
            rx_buf: Vec::with_capacity(usize::from(burst)),
            rx_next: 0,
            rx_linear: vec![0; mtu + 14].into_boxed_slice(),
            // Several rounds of segments may be queued before a flush drains them.
            tx_buf: Vec::with_capacity(usize::from(burst) * 4),
            tx_linear: vec![0; mtu + 14].into_boxed_slice(),
            tx_multi_seg,
            counters: DeviceCounters::default(),
            checksum: ChecksumCapabilities::default(),
            syn: false,
            mac: None,
        }
    }

    /// The station address smoltcp answers on: from now on the device drops unicast frames
    /// addressed elsewhere before the stack sees them (broadcast and multicast pass).
    pub fn set_mac(&mut self, mac: [u8; 6]) {
        self.mac = Some(mac);
    }

    /// Whether a connection request arrived since the last call: the loop then re-arms its
    /// listeners before the next frame, so back-to-back SYNs each find a listening socket.
    #[inline]
    pub fn take_syn(&mut self) -> bool {
        std::mem::take(&mut self.syn)
    }

    /// Trust the RX checksums (skip verification) — only for links whose sender the operator
    /// controls; the default verifies every checksum in software.
    pub fn set_rx_checksum_verification(&mut self, verify: bool) {
        let rx = if verify { Checksum::Both } else { Checksum::Tx };
        self.checksum.ipv4 = rx;
        self.checksum.tcp = rx;
        self.checksum.udp = rx;
        self.checksum.icmpv4 = rx;
    }

    /// Takes one RX burst if the previous one is used up. Returns the frames now waiting.
    #[inline]
    pub fn refill(&mut self) -> usize {
        if self.rx_next >= self.rx_buf.len() {
            Mbuf::free_bulk(&mut self.rx_buf);
            self.rx_next = 0;
            let n = self.rx.burst(&mut self.rx_buf, self.burst);
            self.counters.rx_frames += n as u64;
        }
        self.rx_buf.len() - self.rx_next
    }

    /// Sends what smoltcp queued. Frames the NIC refuses stay queued for the next flush, up to
    /// a bound; beyond it the oldest are dropped (TCP recovers them).
    #[inline]
    pub fn flush(&mut self) -> usize {
        let mut sent = 0;
        for _ in 0..4 {
            if self.tx_buf.is_empty() {
                break;
            }
            sent += self.tx.burst(&mut self.tx_buf);
        }
        self.counters.tx_frames += sent as u64;
        let bound = self.tx_buf.capacity();
        if self.tx_buf.len() >= bound {
            let drop_n = self.tx_buf.len() - bound / 2;
            self.tx_buf.drain(..drop_n);
            self.counters.tx_dropped += drop_n as u64;
        }
        sent
    }

    /// Frames waiting to be sent.
    pub fn tx_pending(&self) -> usize {
        self.tx_buf.len()
    }

    pub fn counters(&self) -> DeviceCounters {
        self.counters
    }
}

impl phy::Device for PortDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    #[inline]
    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        loop {
            let i = self.rx_next;
            let frame = self.rx_buf.get(i)?;
            self.rx_next += 1;
            if let Some(mac) = &self.mac
                && !for_station(frame.data(), mac)
            {
                self.counters.rx_not_ours += 1;
                continue;
            }
            let data = if frame.segments() == 1 {
                frame.data()
            } else {
                let len = frame.pkt_len();
                if len > self.rx_linear.len() {
                    self.counters.rx_dropped_oversize += 1;
                    continue;
                }
                let mut at = 0;
                for seg in frame.segment_data() {
                    let n = seg.len().min(len - at);
                    self.rx_linear[at..at + n].copy_from_slice(&seg[..n]);
                    at += n;
                }
                self.counters.rx_linearized += 1;
                &self.rx_linear[..at]
            };
            self.syn |= is_tcp_syn(data);
            let tx = TxToken {
                pool: &self.pool,
                out: &mut self.tx_buf,
                linear: &mut self.tx_linear,
                multi_seg: self.tx_multi_seg,
                counters: &mut self.counters,
            };
            return Some((RxToken { frame: data }, tx));
        }
    }

    #[inline]
    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        if self.tx_buf.len() >= self.tx_buf.capacity() {
            return None; // back-pressure smoltcp until the next flush
        }
        Some(TxToken {
            pool: &self.pool,
            out: &mut self.tx_buf,
            linear: &mut self.tx_linear,
            multi_seg: self.tx_multi_seg,
            counters: &mut self.counters,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        caps.max_burst_size = Some(usize::from(self.burst));
        caps.checksum = self.checksum.clone();
        caps
    }
}

/// Whether an Ethernet frame is for the station `mac`: addressed to it, or to a group
/// (broadcast or multicast: the group bit of the first octet). The same rule as smoltcp's
/// Ethernet ingress; `head` is the first segment, which holds the header.
#[inline]
fn for_station(head: &[u8], mac: &[u8; 6]) -> bool {
    match head.get(..6) {
        Some(dst) => dst[0] & 1 != 0 || dst == mac,
        None => false,
    }
}

/// An Ethernet/IPv4 TCP segment with SYN set and ACK clear (a connection request). Reads four
/// fixed offsets; anything shorter or else is not one.
#[inline]
fn is_tcp_syn(frame: &[u8]) -> bool {
    const ETHERTYPE: usize = 12;
    const IP: usize = 14;
    if frame.len() < IP + 20 || frame[ETHERTYPE..ETHERTYPE + 2] != [0x08, 0x00] {
        return false;
    }
    let ihl = usize::from(frame[IP] & 0x0f) * 4;
    let flags = IP + ihl + 13;
    frame[IP + 9] == 6 && frame.len() > flags && frame[flags] & 0x12 == 0x02
}

/// A received frame: the mbuf's data (the mbuf stays in the burst and is freed with it at the
/// next refill), or the device's copy of a chained frame.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    #[inline]
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Room for one frame: an mbuf from the pool (or a chain of them), queued for the next flush.
pub struct TxToken<'a> {
    pool: &'a Mempool,
    out: &'a mut Vec<Mbuf>,
    /// The device's one-frame buffer, for frames no single mbuf holds.
    linear: &'a mut [u8],
    multi_seg: bool,
    counters: &'a mut DeviceCounters,
}

impl TxToken<'_> {
    /// smoltcp needs the closure run to update its state even when the frame cannot be sent:
    /// build it into the scratch buffer and drop it (TCP retransmits).
    fn discard<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        match self.linear.get_mut(..len) {
            Some(buf) => f(buf),
            None => f(&mut vec![0u8; len]),
        }
    }

    fn queue(self, m: Mbuf) {
        if self.out.len() < self.out.capacity() {
            self.out.push(m);
        } else {
            self.counters.tx_dropped += 1;
        }
    }
}

impl phy::TxToken for TxToken<'_> {
    #[inline]
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let Some(mut m) = self.pool.alloc() else {
            self.counters.tx_no_mbuf += 1;
            return self.discard(len, f);
        };
        if len <= m.tailroom() {
            let buf = m
                .append(len as u16)
                .expect("len fits the tailroom, which a u16 bounds");
            let r = f(buf);
            self.queue(m);
            return r;
        }
        if !self.multi_seg || len > self.linear.len() {
            self.counters.tx_dropped += 1;
            return self.discard(len, f);
        }
        // A frame larger than one mbuf: build it whole, then copy it into a chain.
        let r = f(&mut self.linear[..len]);
        let mut rest = &self.linear[..len];
        let mut seg = Some(m);
        let mut head: Option<Mbuf> = None;
        while !rest.is_empty() {
            let Some(mut s) = seg.take().or_else(|| self.pool.alloc()) else {
                self.counters.tx_no_mbuf += 1;
                return r; // the partial chain is freed with `head`
            };
            let n = rest.len().min(s.tailroom()) as u16;
            s.append(n)
                .expect("n fits the tailroom")
                .copy_from_slice(&rest[..usize::from(n)]);
            rest = &rest[usize::from(n)..];
            match head.as_mut() {
                None => head = Some(s),
                Some(h) => {
                    if h.chain(s).is_err() {
                        self.counters.tx_dropped += 1;
                        return r;
                    }
                }
            }
        }
        self.counters.tx_chained += 1;
        if let Some(h) = head {
            self.queue(h);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::{for_station, is_tcp_syn};

    fn frame(flags: u8, proto: u8, ethertype: [u8; 2]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&ethertype);
        f[14] = 0x45;
        f[14 + 9] = proto;
        f[14 + 20 + 13] = flags;
        f
    }

    #[test]
    fn syn_detection() {
        assert!(is_tcp_syn(&frame(0x02, 6, [8, 0])));
        assert!(
            !is_tcp_syn(&frame(0x12, 6, [8, 0])),
            "SYN-ACK is not a request"
        );
        assert!(!is_tcp_syn(&frame(0x10, 6, [8, 0])), "plain ACK");
        assert!(!is_tcp_syn(&frame(0x02, 17, [8, 0])), "UDP");
        assert!(!is_tcp_syn(&frame(0x02, 6, [0x86, 0xdd])), "not IPv4");
        assert!(!is_tcp_syn(&frame(0x02, 6, [8, 0])[..40]), "truncated");
        let mut opts = frame(0x02, 6, [8, 0]);
        opts[14] = 0x46; // IHL 6: flags move 4 bytes further
        opts.extend_from_slice(&[0; 4]);
        opts[14 + 24 + 13] = 0x02;
        opts[14 + 20 + 13] = 0;
        assert!(is_tcp_syn(&opts));
    }

    #[test]
    fn station_filter() {
        let me = [0x02, 0, 0, 0, 0, 1];
        let with_dst = |dst: [u8; 6]| {
            let mut f = vec![0u8; 60];
            f[..6].copy_from_slice(&dst);
            f
        };
        assert!(for_station(&with_dst(me), &me));
        assert!(for_station(&with_dst([0xff; 6]), &me), "broadcast");
        assert!(
            for_station(&with_dst([0x01, 0, 0x5e, 0, 0, 1]), &me),
            "IPv4 multicast"
        );
        assert!(
            !for_station(&with_dst([0x02, 0, 0, 0, 0, 2]), &me),
            "another station"
        );
        assert!(!for_station(&with_dst([0; 6]), &me));
        assert!(!for_station(&me[..5], &me), "shorter than an address");
    }
}
