//! The listener port pool (`--port_range`, default 5100-5200).
//!
//! Ports are handed out first-fit from the bottom of the range (upstream's order, so the first
//! session gets 5100) and *bound* as they are handed out: a port some other program holds is
//! skipped rather than promised. Ports come back to the pool when their session is released.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Mutex;

use socket2::{Domain, Socket, Type};

use crate::error::ControlError;

/// A `start-end` port range, inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange(pub RangeInclusive<u16>);

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("port range '{s}' must be START-END with 1 <= START <= END <= 65535");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let a: u16 = a.trim().parse().map_err(|_| bad())?;
        let b: u16 = b.trim().parse().map_err(|_| bad())?;
        if a == 0 || a > b {
            return Err(bad());
        }
        Ok(Self(a..=b))
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0.start(), self.0.end())
    }
}

/// The pool: which ports of the range are handed out.
#[derive(Debug)]
pub struct PortPool {
    range: PortRange,
    in_use: Mutex<BTreeSet<u16>>,
    /// Bind with `IP_FREEBIND`: the listeners only hold port numbers for an engine that owns
    /// the data address itself (`dpdk`), so the kernel need not have the address.
    freebind: bool,
}

/// A bound listener port on loan from the pool.
#[derive(Debug)]
pub struct Lease {
    pub port: u16,
    pub listener: TcpListener,
}

impl PortPool {
    pub fn new(range: PortRange) -> Self {
        Self {
            range,
            in_use: Mutex::new(BTreeSet::new()),
            freebind: false,
        }
    }

    /// A pool whose listeners hold port numbers on an address the kernel may not have.
    pub fn holding_only(range: PortRange) -> Self {
        Self {
            freebind: true,
            ..Self::new(range)
        }
    }

    pub fn range(&self) -> &PortRange {
        &self.range
    }

    /// Binds `n` listeners on `ip`, or none at all.
    pub fn allocate(&self, ip: IpAddr, n: usize) -> Result<Vec<Lease>, ControlError> {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        let mut leases = Vec::with_capacity(n);
        let mut occupied = 0;
        for port in self.range.0.clone() {
            if leases.len() == n {
                break;
            }
            if in_use.contains(&port) {
                continue;
            }
            match bind_listener(SocketAddr::new(ip, port), self.freebind) {
                Ok(listener) => leases.push(Lease { port, listener }),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => occupied += 1,
                Err(e) => {
                    return Err(ControlError::invalid(
                        "listener_ip",
                        format!("binding {ip} port {port} failed: {e}; is the address local?"),
                    ));
                }
            }
        }
        if leases.len() < n {
            let total = self.range.0.len();
            return Err(ControlError::PoolExhausted {
                range: self.range.to_string(),
                need: n,
                free: total - in_use.len() - occupied,
                occupied,
            });
        }
        in_use.extend(leases.iter().map(|l| l.port));
        Ok(leases)
    }

    /// Returns ports to the pool. Their listeners must already be closed.
    pub fn release(&self, ports: &[u16]) {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        for p in ports {
            in_use.remove(p);
        }
    }

    pub fn in_use(&self) -> usize {
        self.in_use.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn bind_listener(addr: SocketAddr, freebind: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if freebind {
        if addr.is_ipv4() {
            socket.set_freebind_v4(true)?;
        } else {
            socket.set_freebind_v6(true)?;
        }
    }
    // Lets a released port be reused at once despite connections in TIME_WAIT; Linux still
    // refuses the bind while another socket listens on the port.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn parses_ranges() {
        assert_eq!("5100-5200".parse::<PortRange>().unwrap().0, 5100..=5200);
        for bad in ["5200-5100", "0-5", "a-b", "5100", "1-70000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }

    fn free_range(len: u16) -> PortRange {
        // Find a run of free ports in the high range by probing.
        'outer: for start in (41000..60000).step_by(97) {
            for p in start..start + len {
                if TcpListener::bind((LO, p)).is_err() {
                    continue 'outer;
                }
            }
            return PortRange(start..=start + len - 1);
        }
        panic!("no free port run found");
    }

    #[test]
    fn allocates_first_fit_skips_occupied_and_returns_ports() {
        let range = free_range(4);
        let start = *range.0.start();
        let pool = PortPool::new(range);
        // Another program holds the second port.
        let squatter = TcpListener::bind((LO, start + 1)).unwrap();
        let a = pool.allocate(LO, 2).unwrap();
        assert_eq!(
            a.iter().map(|l| l.port).collect::<Vec<_>>(),
            vec![start, start + 2]
        );
        // Only one port left that we can bind.
        let err = pool.allocate(LO, 2).unwrap_err();
        assert!(
            matches!(
                err,
                ControlError::PoolExhausted {
                    need: 2,
                    free: 1,
                    occupied: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(pool.in_use(), 2);
        let ports: Vec<u16> = a.iter().map(|l| l.port).collect();
        drop(a);
        pool.release(&ports);
        drop(squatter);
        let b = pool.allocate(LO, 4).unwrap();
        assert_eq!(b.len(), 4);
        assert_eq!(b[0].port, start);
    }
}
