//! Two smoltcp hosts on an in-memory Ethernet link under a virtual clock (the smoltcp tests).

use std::collections::VecDeque;

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, EthernetFrame, IpAddress, IpCidr, Ipv4Packet, TcpPacket};

/// One end of the link: frames it received, frames it sent.
#[derive(Default)]
pub(crate) struct End {
    pub(crate) rx: VecDeque<Vec<u8>>,
    pub(crate) tx: VecDeque<Vec<u8>>,
}

impl phy::Device for End {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((Rx(frame), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

pub(crate) struct Rx(Vec<u8>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

pub(crate) struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        self.0.push_back(frame);
        r
    }
}

/// The sequence number and payload length of an Ethernet frame, if it is TCP.
pub(crate) fn tcp_of(frame: &[u8]) -> Option<(i32, usize)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some((tcp.seq_number().0, tcp.payload().len()))
}

pub(crate) struct Host {
    pub(crate) dev: End,
    pub(crate) iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    pub(crate) handle: smoltcp::iface::SocketHandle,
}

/// A host at `ip` with one TCP socket (Cubic, `buffer` bytes each way).
pub(crate) fn host(mac: u8, ip: [u8; 4], now: Instant, buffer: usize) -> Host {
    let mut dev = End::default();
    let config = Config::new(EthernetAddress([2, 0, 0, 0, 0, mac]).into());
    let mut iface = Interface::new(config, &mut dev, now);
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(ip[0], ip[1], ip[2], ip[3]), 24))
            .unwrap();
    });
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buffer]),
        tcp::SocketBuffer::new(vec![0; buffer]),
    );
    s.set_congestion_control(tcp::CongestionControl::Cubic);
    let mut sockets = SocketSet::new(Vec::new());
    let handle = sockets.add(s);
    Host {
        dev,
        iface,
        sockets,
        handle,
    }
}

/// A server at 10.0.0.1 listening on port 5000 and a client at 10.0.0.2 connecting to it (the
/// handshake runs once both are polled), `buffer` bytes each way.
pub(crate) fn connecting_pair(now: Instant, buffer: usize) -> (Host, Host) {
    let mut server = host(1, [10, 0, 0, 1], now, buffer);
    let mut client = host(2, [10, 0, 0, 2], now, buffer);
    server
        .sockets
        .get_mut::<tcp::Socket>(server.handle)
        .listen(5000)
        .unwrap();
    client
        .sockets
        .get_mut::<tcp::Socket>(client.handle)
        .connect(
            client.iface.context(),
            (IpAddress::v4(10, 0, 0, 1), 5000),
            40000,
        )
        .unwrap();
    (server, client)
}

/// The model's next instant: `now` while a delivered frame waits, else the earliest of `links`
/// (departures and deliveries) and both stacks' timers, or `now + idle` when nothing is due. It
/// always moves on, by `step` at least, so a timer that is due keeps the clock going.
pub(crate) fn next_event(
    now: Instant,
    server: &mut Host,
    client: &mut Host,
    links: &[Option<Instant>],
    idle: Duration,
    step: Duration,
) -> Instant {
    let pending = !server.dev.rx.is_empty() || !client.dev.rx.is_empty();
    let next = [
        pending.then_some(now),
        server.iface.poll_at(now, &server.sockets),
        client.iface.poll_at(now, &client.sockets),
    ]
    .into_iter()
    .chain(links.iter().copied())
    .flatten()
    .min()
    .unwrap_or(now + idle);
    if next > now { next } else { now + step }
}
