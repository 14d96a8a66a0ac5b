//! The sans-io QUIC driver: one quinn-proto endpoint and its connections, with no sockets and no
//! clock of its own. The caller feeds it datagrams and the time, and takes datagrams out; the same
//! driver runs over kernel UDP sockets ([`super::udp`]), over a DPDK port, or over the in-memory
//! link of the unit tests with a virtual clock.
//!
//! The loop around it is, in order: [`Driver::handle_datagram`] for every datagram received,
//! [`Driver::handle_timeouts`] when [`Driver::timeout`] has passed, [`Driver::poll_event`] until
//! `None` (the application reacts, reading and writing streams through [`Driver::conn`]), then
//! [`Driver::poll_transmit`] until `None`, sending each datagram.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use quinn_proto::{
    ClientConfig, ConnectError, Connection, ConnectionError, ConnectionHandle, DatagramEvent,
    EcnCodepoint, Endpoint, EndpointConfig, Event, ServerConfig, StreamEvent, Transmit,
};

/// What happened on the endpoint, for the application.
#[derive(Debug)]
pub enum DriverEvent {
    /// A peer's connection attempt passed the admission check; its handshake runs.
    Accepted {
        conn: ConnectionHandle,
        remote: SocketAddr,
    },
    /// A connection attempt was refused before its handshake (admission check or endpoint).
    Refused { remote: SocketAddr, reason: String },
    /// The handshake finished: the peer proved the session identity.
    Connected { conn: ConnectionHandle },
    /// The connection ended (closed by either side, timed out, or its handshake failed).
    Lost {
        conn: ConnectionHandle,
        reason: ConnectionError,
    },
    Stream {
        conn: ConnectionHandle,
        event: StreamEvent,
    },
    /// The connection's state is gone; its handle is no longer valid.
    Drained { conn: ConnectionHandle },
}

/// Endpoint responses (version negotiation, stateless resets, refusals) kept at most; more
/// are dropped, so a flood of garbage cannot grow memory.
const MAX_RESPONSES: usize = 256;

/// Who may open a connection to this endpoint.
pub type Admission = Box<dyn FnMut(SocketAddr) -> bool + Send>;

/// A quinn-proto endpoint and its connections, driven by the caller.
pub struct Driver {
    endpoint: Endpoint,
    conns: BTreeMap<ConnectionHandle, Connection>,
    client: Option<(ClientConfig, String)>,
    admit: Admission,
    events: VecDeque<DriverEvent>,
    responses: VecDeque<(Transmit, Vec<u8>)>,
    scratch: Vec<u8>,
    /// The handle `poll_transmit` starts from.
    cursor: usize,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// An endpoint that accepts connections with `server` (when given, subject to `admit`) and
    /// opens them with `client` (when given, asking for `server_name`). `rng_seed` makes
    /// connection IDs and keys repeatable in tests; `None` seeds from the OS.
    pub fn new(
        endpoint: EndpointConfig,
        server: Option<ServerConfig>,
        client: Option<(ClientConfig, String)>,
        admit: Admission,
        rng_seed: Option<[u8; 32]>,
    ) -> Self {
        Self {
            endpoint: Endpoint::new(Arc::new(endpoint), server.map(Arc::new), true, rng_seed),
            conns: BTreeMap::new(),
            client,
            admit,
            events: VecDeque::new(),
            responses: VecDeque::new(),
            scratch: Vec::new(),
            cursor: 0,
        }
    }

    /// Starts a connection to `remote`; [`DriverEvent::Connected`] or [`DriverEvent::Lost`]
    /// follows.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddr,
    ) -> Result<ConnectionHandle, ConnectError> {
        let (config, name) = self
            .client
            .as_ref()
            .ok_or(ConnectError::NoDefaultClientConfig)?;
        let (handle, conn) = self.endpoint.connect(now, config.clone(), remote, name)?;
        self.conns.insert(handle, conn);
        Ok(handle)
    }

    /// The connection behind `handle`, for its streams and stats.
    pub fn conn(&mut self, handle: ConnectionHandle) -> Option<&mut Connection> {
        self.conns.get_mut(&handle)
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    pub fn handles(&self) -> Vec<ConnectionHandle> {
        self.conns.keys().copied().collect()
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) {
        self.scratch.clear();
        match self
            .endpoint
            .handle(now, remote, local_ip, ecn, data, &mut self.scratch)
        {
            None => {}
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(conn) = self.conns.get_mut(&handle) {
                    conn.handle_event(event);
                }
            }
            Some(DatagramEvent::Response(transmit)) => self.queue_response(transmit),
            Some(DatagramEvent::NewConnection(incoming)) => {
                let remote = incoming.remote_address();
                if !(self.admit)(remote) {
                    self.scratch.clear();
                    let transmit = self.endpoint.refuse(incoming, &mut self.scratch);
                    self.queue_response(transmit);
                    self.events.push_back(DriverEvent::Refused {
                        remote,
                        reason: "source not allowed".into(),
                    });
                    return;
                }
                self.scratch.clear();
                match self.endpoint.accept(incoming, now, &mut self.scratch, None) {
                    Ok((handle, conn)) => {
                        self.conns.insert(handle, conn);
                        self.events.push_back(DriverEvent::Accepted {
                            conn: handle,
                            remote,
                        });
                    }
                    Err(e) => {
                        if let Some(t) = e.response {
                            self.queue_response(t);
                        }
                        self.events.push_back(DriverEvent::Refused {
                            remote,
                            reason: e.cause.to_string(),
                        });
                    }
                }
            }
        }
    }

    fn queue_response(&mut self, transmit: Transmit) {
        if self.responses.len() < MAX_RESPONSES {
            let data = self.scratch[..transmit.size].to_vec();
            self.responses.push_back((transmit, data));
        }
    }

    /// The earliest time any connection needs [`Driver::handle_timeouts`].
    pub fn timeout(&mut self) -> Option<Instant> {
        self.conns
            .values_mut()
            .filter_map(|c| c.poll_timeout())
            .min()
    }

    pub fn handle_timeouts(&mut self, now: Instant) {
        for conn in self.conns.values_mut() {
            if conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now);
            }
        }
    }

    /// The next event, after moving every connection's pending events into the queue.
    pub fn poll_event(&mut self) -> Option<DriverEvent> {
        if self.events.is_empty() {
            self.collect_events();
        }
        self.events.pop_front()
    }

    fn collect_events(&mut self) {
        let mut drained = Vec::new();
        for (&handle, conn) in self.conns.iter_mut() {
            while let Some(ev) = conn.poll_endpoint_events() {
                let is_drained = ev.is_drained();
                if let Some(reply) = self.endpoint.handle_event(handle, ev) {
                    conn.handle_event(reply);
                }
                if is_drained {
                    drained.push(handle);
                }
            }
            while let Some(ev) = conn.poll() {
                match ev {
                    Event::Connected => self
                        .events
                        .push_back(DriverEvent::Connected { conn: handle }),
                    Event::ConnectionLost { reason } => self.events.push_back(DriverEvent::Lost {
                        conn: handle,
                        reason,
                    }),
                    Event::Stream(event) => self.events.push_back(DriverEvent::Stream {
                        conn: handle,
                        event,
                    }),
                    Event::HandshakeDataReady
                    | Event::DatagramReceived
                    | Event::DatagramsUnblocked => {}
                }
            }
        }
        for handle in drained {
            self.conns.remove(&handle);
            self.events.push_back(DriverEvent::Drained { conn: handle });
        }
    }

    /// The next datagram (or GSO batch of up to `max_segments` datagrams, never more than
    /// 64 KiB in all) to send; its bytes are in `buf`.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_segments: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        buf.clear();
        if let Some((t, data)) = self.responses.pop_front() {
            buf.extend_from_slice(&data);
            return Some(t);
        }
        // Start after the connection that sent last, so one busy connection cannot starve the
        // others.
        let cursor = self.cursor;
        for pass in 0..2 {
            let range: Box<dyn Iterator<Item = (&ConnectionHandle, &mut Connection)>> = if pass == 0
            {
                Box::new(self.conns.range_mut(ConnectionHandle(cursor)..))
            } else {
                Box::new(self.conns.range_mut(..ConnectionHandle(cursor)))
            };
            for (handle, conn) in range {
                // A GSO batch larger than 64 KiB is refused by the kernel (and quinn then takes
                // the path for a black hole), so jumbo MTUs get fewer segments.
                let segments = max_segments
                    .min((usize::from(u16::MAX) / usize::from(conn.current_mtu())).max(1))
                    .max(1);
                if let Some(t) = conn.poll_transmit(now, segments, buf) {
                    self.cursor = handle.0 + 1;
                    return Some(t);
                }
            }
        }
        None
    }

    /// Closes every connection with `code` and `reason` (their CONNECTION_CLOSE frames come
    /// out of the next `poll_transmit` calls).
    pub fn close_all(&mut self, now: Instant, code: u32, reason: &[u8]) {
        for conn in self.conns.values_mut() {
            conn.close(
                now,
                quinn_proto::VarInt::from_u32(code),
                bytes::Bytes::copy_from_slice(reason),
            );
        }
    }
}
