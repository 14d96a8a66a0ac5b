//! Kernel-socket engines (`copy`, `splice`, `sockmap`): accept loops on pinned per-core event
//! loops, the source allow-list, dialing, the WAN TLS leg, and the per-connection relay.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ebpf_fallback::{Meters, SockmapError, SpliceOptions, Splicer};
use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::allow::AllowList;
use crate::cores::CorePool;
use crate::engine::{
    BoxFuture, Engine, EngineError, EngineKind, Proxy, ProxySpec, WanSecurity, WanSide,
};
use crate::forward::{self, RelayError};
use crate::splice;
use crate::stats::{ActiveGuard, StreamCounters, StreamStats};
use crate::wan_tls::WanTls;

/// Tunables of the kernel engines.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// Bytes buffered per direction per connection (`copy`).
    pub buffer_size: usize,
    /// Pipe capacity per direction per connection (`splice`).
    pub pipe_size: usize,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// Per-pair tunables of the `sockmap` engine (forced send buffer, backlog watchdog).
    pub sockmap: SpliceOptions,
}

impl Default for KernelOptions {
    fn default() -> Self {
        Self {
            // 4 MiB per direction measured best for the copy proxy on this class of host
            // (research/kernel-paths-on-this-machine.md §2).
            buffer_size: 4 << 20,
            pipe_size: 1 << 20,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            sockmap: SpliceOptions::default(),
        }
    }
}

/// The `copy`, `splice` or `sockmap` engine over a shared pool of pinned event loops.
#[derive(Debug)]
pub struct KernelEngine {
    kind: EngineKind,
    pool: Arc<CorePool>,
    options: KernelOptions,
    /// The loaded BPF program (`sockmap` only), shared by all sessions.
    splicer: Option<Arc<Splicer>>,
    /// Round-robin cursor, so streams of all sessions spread over the cores.
    next_loop: AtomicUsize,
}

impl KernelEngine {
    pub fn new(kind: EngineKind, pool: Arc<CorePool>, options: KernelOptions) -> Self {
        Self {
            kind,
            pool,
            options,
            splicer: None,
            next_loop: AtomicUsize::new(0),
        }
    }

    /// The `sockmap` engine over an already loaded program ([`Splicer::load`]).
    pub fn sockmap(pool: Arc<CorePool>, options: KernelOptions, splicer: Arc<Splicer>) -> Self {
        Self {
            splicer: Some(splicer),
            ..Self::new(EngineKind::Sockmap, pool, options)
        }
    }
}

impl Engine for KernelEngine {
    fn kind(&self) -> EngineKind {
        self.kind
    }

    fn kernel_map_entries(&self) -> Option<usize> {
        self.splicer.as_ref().map(|s| s.entries())
    }

    fn start(&self, spec: ProxySpec) -> Result<Box<dyn Proxy>, EngineError> {
        if matches!(spec.security, WanSecurity::Tls(_)) && !self.kind.encrypts_wan() {
            return Err(EngineError::WanTlsUnsupported { engine: self.kind });
        }
        if spec.listeners.len() != spec.targets.len() {
            return Err(EngineError::TargetCount {
                listeners: spec.listeners.len(),
                targets: spec.targets.len(),
            });
        }
        if matches!(
            self.kind,
            EngineKind::Dpdk | EngineKind::Quic | EngineKind::QuicRelay
        ) {
            return Err(EngineError::Unavailable {
                engine: self.kind,
                reason: "not a kernel-socket engine (it has an engine of its own)".into(),
            });
        }
        if self.kind == EngineKind::Sockmap && self.splicer.is_none() {
            return Err(EngineError::Unavailable {
                engine: self.kind,
                reason: "no BPF program loaded (build the engine with KernelEngine::sockmap)"
                    .into(),
            });
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel::<()>(1);
        let ctx = Arc::new(ConnContext {
            tag: spec.tag,
            kind: self.kind,
            wan_side: spec.wan_side,
            tls: match spec.security {
                WanSecurity::Plaintext => None,
                WanSecurity::Tls(t) => Some(t),
            },
            allow: spec.allow,
            options: self.options.clone(),
            splicer: self.splicer.clone(),
        });
        let mut streams = Vec::with_capacity(spec.listeners.len());
        for (index, (listener, target)) in spec.listeners.into_iter().zip(spec.targets).enumerate()
        {
            listener
                .set_nonblocking(true)
                .map_err(|source| EngineError::Listener { index, source })?;
            let stream = Arc::new(StreamShared::new(index, target));
            let slot = self.next_loop.fetch_add(1, Ordering::Relaxed);
            let (core, handle) = self.pool.handle_for(slot);
            tracing::debug!(session = %ctx.tag, stream = index, core, %target, "starting stream");
            handle.spawn(accept_loop(
                listener,
                stream.clone(),
                ctx.clone(),
                stop_rx.clone(),
                done_tx.clone(),
            ));
            streams.push(stream);
        }
        Ok(Box::new(KernelProxy {
            streams,
            stop: stop_tx,
            done: tokio::sync::Mutex::new(Some((done_tx, done_rx))),
        }))
    }
}

/// One stream's target and counters, shared by its tasks and the proxy.
pub(crate) struct StreamShared {
    pub(crate) index: usize,
    pub(crate) target: RwLock<SocketAddr>,
    pub(crate) counters: Arc<StreamCounters>,
}

impl StreamShared {
    pub(crate) fn new(index: usize, target: SocketAddr) -> Self {
        Self {
            index,
            target: RwLock::new(target),
            counters: Arc::default(),
        }
    }

    pub(crate) fn target(&self) -> SocketAddr {
        *self.target.read().unwrap_or_else(|e| e.into_inner())
    }
}

struct ConnContext {
    tag: String,
    kind: EngineKind,
    wan_side: WanSide,
    tls: Option<WanTls>,
    allow: AllowList,
    options: KernelOptions,
    splicer: Option<Arc<Splicer>>,
}

/// The proxy of engines that run each stream as tasks on the core pool: targets and counters
/// per stream, a stop signal, and a channel whose senders the tasks hold until they end.
pub(crate) struct KernelProxy {
    pub(crate) streams: Vec<Arc<StreamShared>>,
    pub(crate) stop: watch::Sender<bool>,
    /// Every task holds a clone of the sender; `recv` returns `None` once all have ended.
    pub(crate) done: tokio::sync::Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

impl Proxy for KernelProxy {
    fn set_targets(&self, targets: &[SocketAddr]) -> Result<(), EngineError> {
        if targets.len() != self.streams.len() {
            return Err(EngineError::TargetCount {
                listeners: self.streams.len(),
                targets: targets.len(),
            });
        }
        for (s, t) in self.streams.iter().zip(targets) {
            *s.target.write().unwrap_or_else(|e| e.into_inner()) = *t;
        }
        Ok(())
    }

    fn targets(&self) -> Vec<SocketAddr> {
        self.streams.iter().map(|s| s.target()).collect()
    }

    fn stats(&self) -> Vec<StreamStats> {
        self.streams
            .iter()
            .map(|s| s.counters.snapshot(s.index))
            .collect()
    }

    fn release(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.stop.send(true);
            if let Some((tx, mut rx)) = self.done.lock().await.take() {
                drop(tx);
                // Resolves when the last task (and with it the last socket) is gone.
                let _ = rx.recv().await;
            }
        })
    }
}

impl Drop for KernelProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    stream: Arc<StreamShared>,
    ctx: Arc<ConnContext>,
    mut stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            stream
                .counters
                .set_last_error(format!("registering the listener failed: {e}"));
            return;
        }
    };
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    if !ctx.allow.allows(peer.ip()) {
                        stream.counters.rejected_connections.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(session = %ctx.tag, stream = stream.index, %peer,
                            "refused a connection from a source outside the allow-list");
                        reset(&tcp);
                        continue;
                    }
                    tokio::spawn(serve(tcp, peer, stream.clone(), ctx.clone(), stop.clone(), done.clone()));
                }
                Err(e) => {
                    // Out of fds or memory: back off instead of spinning.
                    stream.counters.set_last_error(format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    stream: Arc<StreamShared>,
    ctx: Arc<ConnContext>,
    mut stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let _active = ActiveGuard::new(&stream.counters);
    let target = stream.target();
    let outcome = tokio::select! {
        _ = stop.changed() => return,
        r = connect_and_relay(tcp, target, &stream.counters, &ctx, &done) => r,
    };
    if let Err(e) = outcome {
        tracing::warn!(session = %ctx.tag, stream = stream.index, %peer, %target, error = %e,
            "connection ended with an error");
        stream.counters.set_last_error(e.to_string());
    }
}

/// What ended a proxied connection abnormally.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("connecting to target {target} failed: {source}")]
    Connect {
        target: SocketAddr,
        source: std::io::Error,
    },
    #[error("connecting to target {target} timed out after {after:?}")]
    ConnectTimeout { target: SocketAddr, after: Duration },
    #[error("WAN TLS handshake with {peer} failed: {source}")]
    Handshake {
        peer: SocketAddr,
        source: std::io::Error,
    },
    #[error("WAN TLS handshake with {peer} timed out")]
    HandshakeTimeout { peer: SocketAddr },
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error("sockmap: {0}")]
    Sockmap(#[from] SockmapError),
    #[error("the sockmap watcher thread failed: {0}")]
    Watcher(String),
}

async fn connect_and_relay(
    accepted: TcpStream,
    target: SocketAddr,
    counters: &Arc<StreamCounters>,
    ctx: &ConnContext,
    done: &mpsc::Sender<()>,
) -> Result<(), ConnError> {
    let _ = accepted.set_nodelay(true);
    let peer = accepted
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let opts = &ctx.options;
    match (&ctx.tls, ctx.wan_side) {
        (None, _) => {
            let mut dialed = match dial(target, opts.connect_timeout).await {
                Ok(d) => d,
                Err(e) => {
                    reset(&accepted);
                    return Err(e);
                }
            };
            if let (EngineKind::Sockmap, Some(splicer)) = (ctx.kind, &ctx.splicer) {
                return sockmap_relay(accepted, dialed, splicer, counters, opts, done).await;
            }
            let mut accepted = accepted;
            let result = match ctx.kind {
                EngineKind::Splice => {
                    splice::relay(
                        &accepted,
                        &dialed,
                        opts.pipe_size,
                        &counters.bytes_to_target,
                        &counters.bytes_from_target,
                    )
                    .await
                }
                // `start` refuses `sockmap` without a splicer and the engines that are not
                // kernel engines (`dpdk`, `quic`, `quic-relay`), so this is `copy`.
                EngineKind::Copy
                | EngineKind::Sockmap
                | EngineKind::Dpdk
                | EngineKind::Quic
                | EngineKind::QuicRelay => forward::relay(
                    &mut accepted,
                    &mut dialed,
                    opts.buffer_size,
                    &counters.bytes_to_target,
                    &counters.bytes_from_target,
                )
                .await
                .map(drop),
            };
            if result.is_err() {
                reset(&accepted);
                reset(&dialed);
            }
            Ok(result?)
        }
        (Some(tls), WanSide::Listener) => {
            // Authenticate the remote gateway before touching the local target.
            let handshake = tls.acceptor().accept(accepted);
            let mut secured = match tokio::time::timeout(opts.handshake_timeout, handshake).await {
                Ok(Ok(s)) => s,
                Ok(Err(source)) => return Err(ConnError::Handshake { peer, source }),
                Err(_) => return Err(ConnError::HandshakeTimeout { peer }),
            };
            let mut dialed = match dial(target, opts.connect_timeout).await {
                Ok(d) => d,
                Err(e) => {
                    reset(secured.get_ref().0);
                    return Err(e);
                }
            };
            let result = forward::relay(
                &mut secured,
                &mut dialed,
                opts.buffer_size,
                &counters.bytes_to_target,
                &counters.bytes_from_target,
            )
            .await;
            if result.is_err() {
                reset(secured.get_ref().0);
                reset(&dialed);
            }
            Ok(result.map(drop)?)
        }
        (Some(tls), WanSide::Target) => {
            let dialed = match dial(target, opts.connect_timeout).await {
                Ok(d) => d,
                Err(e) => {
                    reset(&accepted);
                    return Err(e);
                }
            };
            let handshake = tls.connector().connect(WanTls::server_name(), dialed);
            let mut secured = match tokio::time::timeout(opts.handshake_timeout, handshake).await {
                Ok(Ok(s)) => s,
                Ok(Err(source)) => {
                    reset(&accepted);
                    return Err(ConnError::Handshake {
                        peer: target,
                        source,
                    });
                }
                Err(_) => {
                    reset(&accepted);
                    return Err(ConnError::HandshakeTimeout { peer: target });
                }
            };
            let mut accepted = accepted;
            let result = forward::relay(
                &mut accepted,
                &mut secured,
                opts.buffer_size,
                &counters.bytes_to_target,
                &counters.bytes_from_target,
            )
            .await;
            if result.is_err() {
                reset(&accepted);
                reset(secured.get_ref().0);
            }
            Ok(result.map(drop)?)
        }
    }
}

/// Hands a connected pair to the sockmap splicer on a blocking thread (it polls both sockets
/// and the kernel counters). Dropping this future (release) cancels the pair: both sides are
/// reset and the thread closes them; it holds `done`, so release waits for it.
async fn sockmap_relay(
    accepted: TcpStream,
    dialed: TcpStream,
    splicer: &Arc<Splicer>,
    counters: &Arc<StreamCounters>,
    opts: &KernelOptions,
    done: &mpsc::Sender<()>,
) -> Result<(), ConnError> {
    let to_std = |s: TcpStream| s.into_std().map_err(|e| ConnError::Watcher(e.to_string()));
    let (a, b) = (to_std(accepted)?, to_std(dialed)?);
    let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
    let (splicer, counters, options) = (splicer.clone(), counters.clone(), opts.sockmap.clone());
    let (flag, done) = (cancel.0.clone(), done.clone());
    let pair = tokio::task::spawn_blocking(move || {
        let _done = done;
        let meters = Meters {
            a_to_b: &counters.bytes_to_target,
            b_to_a: &counters.bytes_from_target,
            backlog: &counters.kernel_backlog,
            pauses: &counters.pauses,
            cancel: &flag,
        };
        splicer.splice(&a, &b, &options, meters)
    });
    match pair.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(ConnError::Watcher(e.to_string())),
    }
}

/// Sets the flag when dropped: how an abandoned future tells its blocking thread to stop.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

pub(crate) async fn dial(target: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnError> {
    match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(source)) => Err(ConnError::Connect { target, source }),
        Err(_) => Err(ConnError::ConnectTimeout {
            target,
            after: timeout,
        }),
    }
}

/// Makes the coming close send RST instead of FIN, so the peer learns the chain broke.
pub(crate) fn reset(tcp: &TcpStream) {
    let _ = SockRef::from(tcp).set_linger(Some(Duration::ZERO));
}
