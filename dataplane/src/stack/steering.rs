//! Which RX queue (and so which lcore) a TCP segment belongs to, as flow rules.
//!
//! Each lcore polls queue `k` of every port and owns two kinds of connection: the ones its
//! listeners accept (segments to the listener's port) and the ones it dials (segments to the
//! ephemeral port it picked). So lcore `k` gets an aligned block of ephemeral ports, and a port
//! needs one rule per lcore (destination port under a mask → queue `k`) plus one rule per
//! listener (exact destination port → the owning lcore's queue). Pure data: the DPDK layer
//! (`dpdk::flow`) turns a [`SteeringRule`] into `rte_flow` items.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

/// TCP segments to `dst_ip` whose destination port matches `dst_port` under `port_mask` go to
/// RX queue `queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteeringRule {
    pub dst_ip: Ipv4Addr,
    pub dst_port: u16,
    pub port_mask: u16,
    pub queue: u16,
}

impl SteeringRule {
    /// Exact destination port (a listener).
    pub fn listener(dst_ip: Ipv4Addr, port: u16, queue: u16) -> Self {
        Self {
            dst_ip,
            dst_port: port,
            port_mask: u16::MAX,
            queue,
        }
    }

    pub fn matches(&self, ip: Ipv4Addr, port: u16) -> bool {
        ip == self.dst_ip && port & self.port_mask == self.dst_port & self.port_mask
    }
}

/// The ephemeral ports of the dynamic range (49152–65535), split into one aligned block per
/// lcore so a single masked rule covers each block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralBlocks {
    base: u16,
    block: u16,
    lcores: usize,
}

/// The dynamic port range's start (RFC 6335); 16384 ports, a power of two, aligned.
const DYNAMIC_BASE: u16 = 49152;
const DYNAMIC_LEN: u32 = 16384;

impl EphemeralBlocks {
    /// Blocks for `lcores` lcores (1..=1024): the largest power of two that fits `lcores`
    /// times into the dynamic range.
    pub fn new(lcores: usize) -> Self {
        let lcores = lcores.clamp(1, 1024);
        let per = DYNAMIC_LEN / lcores as u32;
        let block = 1u32 << (31 - per.leading_zeros());
        Self {
            base: DYNAMIC_BASE,
            block: block as u16,
            lcores,
        }
    }

    /// The ports lcore `k` dials from.
    pub fn range(&self, k: usize) -> RangeInclusive<u16> {
        let start = u32::from(self.base) + k as u32 * u32::from(self.block);
        let last = start + u32::from(self.block) - 1;
        start as u16..=last as u16
    }

    /// One rule per lcore: segments to lcore `k`'s block go to queue `k`.
    pub fn rules(&self, dst_ip: Ipv4Addr) -> Vec<SteeringRule> {
        (0..self.lcores)
            .map(|k| SteeringRule {
                dst_ip,
                dst_port: *self.range(k).start(),
                port_mask: !(self.block - 1),
                queue: k as u16,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

    #[test]
    fn blocks_are_aligned_disjoint_and_steer_each_port_to_its_lcore() {
        for lcores in [1, 2, 3, 4, 6, 8, 16] {
            let b = EphemeralBlocks::new(lcores);
            let rules = b.rules(IP);
            assert_eq!(rules.len(), lcores);
            for k in 0..lcores {
                let r = b.range(k);
                let (first, last) = (*r.start(), *r.end());
                let len = usize::from(last - first) + 1;
                assert!(first >= DYNAMIC_BASE, "{lcores}: {r:?}");
                assert_eq!(len.count_ones(), 1, "block is a power of two");
                assert_eq!(usize::from(first) % len, 0, "block is aligned");
                for port in [first, first + 1, last] {
                    let hits: Vec<u16> = rules
                        .iter()
                        .filter(|x| x.matches(IP, port))
                        .map(|x| x.queue)
                        .collect();
                    assert_eq!(hits, [k as u16], "{lcores} lcores, port {port}");
                }
            }
            // Ports below the dynamic range (listeners) match no lcore block.
            assert!(rules.iter().all(|r| !r.matches(IP, 5100)));
            assert!(
                rules
                    .iter()
                    .all(|r| !r.matches(Ipv4Addr::new(10, 0, 0, 1), 49152))
            );
        }
        assert_eq!(EphemeralBlocks::new(1).range(0), 49152..=65535);
        assert_eq!(EphemeralBlocks::new(4).range(3), 61440..=65535);
        assert_eq!(EphemeralBlocks::new(3).range(2), 57344..=61439);
    }

    #[test]
    fn a_listener_rule_is_exact() {
        let r = SteeringRule::listener(IP, 5100, 2);
        assert!(r.matches(IP, 5100));
        assert!(!r.matches(IP, 5101));
        assert_eq!(r.port_mask, 0xffff);
    }
}
