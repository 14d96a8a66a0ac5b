//! Kernel UDP sockets for QUIC: buffers sized (and forced past `rmem_max` when root), the
//! effective sizes checked and reported, and batched I/O with GSO/GRO through quinn-udp.
//!
//! The default 208 KiB receive buffer drops 10–20 thousand datagrams per 5 s of a single
//! connection on this class of host (research/kernel-paths-on-this-machine.md §3); a buffer
//! that is smaller than asked is warned about with the sysctl that fixes it, and still works.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use quinn_proto::{EcnCodepoint, Transmit};
use quinn_udp::{RecvMeta, UdpSocketState};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;

use super::driver::Driver;

/// What the kernel gave a UDP socket, against what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpBufferReport {
    pub requested: usize,
    /// Effective SO_RCVBUF/SO_SNDBUF as the kernel reports them (twice the usable payload).
    pub recv: usize,
    pub send: usize,
    /// `net.core.rmem_max` / `wmem_max`: the ceiling without `SO_RCVBUFFORCE`.
    pub rmem_max: usize,
    pub wmem_max: usize,
    /// Whether `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` (CAP_NET_ADMIN) took effect.
    pub forced: bool,
}

impl UdpBufferReport {
    /// Whether either buffer is smaller than asked (the kernel reports double the size set).
    pub fn is_short(&self) -> bool {
        self.recv < self.requested || self.send < self.requested
    }

    /// Logs the effective sizes; warns, with the fix, when they fall short.
    pub fn log(&self, what: &str) {
        if self.is_short() {
            tracing::warn!(
                socket = what,
                requested = self.requested,
                recv = self.recv,
                send = self.send,
                rmem_max = self.rmem_max,
                "QUIC UDP buffers are smaller than configured; expect datagram drops at high \
                 rates. Run s2cs as root (SO_RCVBUFFORCE) or raise the limits: sysctl -w \
                 net.core.rmem_max={r} net.core.wmem_max={r}",
                r = self.requested
            );
        } else {
            tracing::debug!(
                socket = what,
                recv = self.recv,
                send = self.send,
                forced = self.forced,
                "QUIC UDP buffers"
            );
        }
    }
}

fn read_sysctl(name: &str) -> usize {
    std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `net.core.rmem_max` and `wmem_max`.
pub fn buffer_limits() -> (usize, usize) {
    (read_sysctl("rmem_max"), read_sysctl("wmem_max"))
}

fn force_buffer(sock: &Socket, option: libc::c_int, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `sock` is an open socket for the duration of the call; the option value points at
    // a live c_int whose size is passed alongside it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets both buffers of `sock` to `bytes`: forced when asked and allowed, else capped by the
/// sysctls.
pub fn size_buffers(sock: &Socket, bytes: usize, force: bool) -> UdpBufferReport {
    let forced = force
        && force_buffer(sock, libc::SO_RCVBUFFORCE, bytes).is_ok()
        && force_buffer(sock, libc::SO_SNDBUFFORCE, bytes).is_ok();
    if !forced {
        let _ = sock.set_recv_buffer_size(bytes);
        let _ = sock.set_send_buffer_size(bytes);
    }
    let (rmem_max, wmem_max) = buffer_limits();
    UdpBufferReport {
        requested: bytes,
        recv: sock.recv_buffer_size().unwrap_or(0),
        send: sock.send_buffer_size().unwrap_or(0),
        rmem_max,
        wmem_max,
        forced,
    }
}

/// A non-blocking UDP socket bound to `addr` with buffers of `buffer` bytes.
pub fn bind(
    addr: SocketAddr,
    buffer: usize,
    force: bool,
) -> io::Result<(std::net::UdpSocket, UdpBufferReport)> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        let _ = sock.set_only_v6(false);
    }
    let report = size_buffers(&sock, buffer, force);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok((sock.into(), report))
}

/// What a QUIC socket gets on this host.
#[derive(Debug, Clone, Copy)]
pub struct UdpProbe {
    pub buffers: UdpBufferReport,
    /// Datagrams per send with UDP GSO (1: no GSO).
    pub gso_segments: usize,
    /// Datagrams per receive with UDP GRO (1: no GRO).
    pub gro_segments: usize,
}

/// Opens a loopback UDP socket the way the engine does and reports what it got.
pub fn probe(buffer: usize, force: bool) -> UdpProbe {
    let fallback = UdpProbe {
        buffers: UdpBufferReport {
            requested: buffer,
            recv: 0,
            send: 0,
            rmem_max: buffer_limits().0,
            wmem_max: buffer_limits().1,
            forced: false,
        },
        gso_segments: 1,
        gro_segments: 1,
    };
    let Ok((sock, buffers)) = bind(SocketAddr::from(([127, 0, 0, 1], 0)), buffer, force) else {
        return fallback;
    };
    match UdpSocketState::new((&sock).into()) {
        Ok(state) => UdpProbe {
            buffers,
            gso_segments: state.max_gso_segments(),
            gro_segments: state.gro_segments(),
        },
        Err(_) => UdpProbe {
            buffers,
            ..fallback
        },
    }
}

/// Datagram buffers per `recvmmsg`; each holds one GRO batch of up to 64 KiB.
const RECV_SLOTS: usize = quinn_udp::BATCH_SIZE;
const SLOT_BYTES: usize = 64 << 10;

/// Counters of one socket.
#[derive(Debug, Default, Clone, Copy)]
pub struct UdpCounters {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// Sends the kernel refused (unreachable and the like); QUIC's loss recovery covers them.
    pub send_errors: u64,
}

/// A registered UDP socket with quinn-udp's GSO/GRO/ECN state.
pub struct UdpIo {
    sock: tokio::net::UdpSocket,
    state: UdpSocketState,
    slots: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    pub counters: UdpCounters,
}

impl UdpIo {
    /// Registers `sock` with the current tokio runtime.
    pub fn new(sock: std::net::UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new((&sock).into())?;
        Ok(Self {
            sock: tokio::net::UdpSocket::from_std(sock)?,
            state,
            slots: vec![vec![0; SLOT_BYTES]; RECV_SLOTS],
            meta: vec![RecvMeta::default(); RECV_SLOTS],
            counters: UdpCounters::default(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Datagrams one GSO send may carry.
    pub fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Feeds every datagram waiting on the socket to `driver`, at most `max_batches` receive
    /// calls. `Ready(true)`: something was received (call again); `Pending`: the socket is
    /// empty and the task will be woken when it is not.
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        driver: &mut Driver,
        max_batches: usize,
    ) -> Poll<bool> {
        let mut got = false;
        for _ in 0..max_batches {
            match self.sock.poll_recv_ready(cx) {
                Poll::Pending => {
                    return if got {
                        Poll::Ready(true)
                    } else {
                        Poll::Pending
                    };
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "UDP socket error");
                    return Poll::Ready(got);
                }
                Poll::Ready(Ok(())) => {}
            }
            let Self {
                sock,
                state,
                slots,
                meta,
                ..
            } = self;
            let res = sock.try_io(Interest::READABLE, || {
                let mut bufs: Vec<IoSliceMut<'_>> =
                    slots.iter_mut().map(|s| IoSliceMut::new(s)).collect();
                state.recv((&*sock).into(), &mut bufs, meta)
            });
            match res {
                Ok(n) => {
                    let now = Instant::now();
                    for (m, slot) in self.meta[..n].iter().zip(&self.slots) {
                        let stride = m.stride.max(1);
                        for seg in slot[..m.len].chunks(stride) {
                            self.counters.datagrams_in += 1;
                            driver.handle_datagram(
                                now,
                                m.addr,
                                m.dst_ip,
                                m.ecn.and_then(|e| EcnCodepoint::from_bits(e as u8)),
                                BytesMut::from(seg),
                            );
                        }
                    }
                    got = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // ICMP errors surface here on some kernels; the next call reads on.
                Err(e) => tracing::debug!(error = %e, "UDP receive error"),
            }
        }
        Poll::Ready(got)
    }

    /// Sends one transmit (the bytes of `buf`). `Pending` when the socket buffer is full; the
    /// task is woken when it drains.
    pub fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        t: &Transmit,
        buf: &[u8],
    ) -> Poll<io::Result<()>> {
        let transmit = quinn_udp::Transmit {
            destination: t.destination,
            ecn: t
                .ecn
                .and_then(|e| quinn_udp::EcnCodepoint::from_bits(e as u8)),
            contents: &buf[..t.size],
            segment_size: t.segment_size,
            src_ip: t.src_ip,
        };
        loop {
            match self.sock.poll_send_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let Self { sock, state, .. } = self;
            match sock.try_io(Interest::WRITABLE, || {
                state.send((&*sock).into(), &transmit)
            }) {
                Ok(()) => {
                    self.counters.datagrams_out += match t.segment_size {
                        Some(s) if s > 0 => t.size.div_ceil(s) as u64,
                        _ => 1,
                    };
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    self.counters.send_errors += 1;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unforced_buffers_stay_within_the_sysctls_and_are_reported_short() {
        let (rmem_max, _) = buffer_limits();
        let asked = (rmem_max * 4).max(1 << 20);
        let (_sock, r) = bind(SocketAddr::from(([127, 0, 0, 1], 0)), asked, false).unwrap();
        assert!(!r.forced);
        // Linux doubles the value set; capped at rmem_max that is at most 2 × rmem_max.
        assert!(r.recv <= 2 * rmem_max, "{r:?}");
        assert!(r.is_short(), "{r:?}");
    }

    #[test]
    fn forced_buffers_reach_the_size_asked_as_root() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            panic!("this test needs root (SO_RCVBUFFORCE); run it as root, as CI does");
        }
        let asked = 48 << 20;
        let (_sock, r) = bind(SocketAddr::from(([127, 0, 0, 1], 0)), asked, true).unwrap();
        assert!(r.forced && !r.is_short(), "{r:?}");
    }
}
