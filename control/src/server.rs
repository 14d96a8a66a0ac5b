//! The `s2cs` daemon: turns a [`Config`] into a running gateway (engine, auth, TLS, gRPC), and
//! releases every session on shutdown.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use dataplane::quic::tunnel::QuicOptions;
use dataplane::{
    AllowList, CorePool, Engine, EngineKind, KernelEngine, KernelOptions, Pinning, QuicEngine,
    QuicTuning, SpliceOptions, Splicer,
};
use tonic::transport::{Certificate, Identity as TlsIdentity, Server, ServerTlsConfig};

use crate::auth::Authenticator;
use crate::auth::introspect::{Introspection, IntrospectionConfig};
use crate::auth::static_tokens::StaticTokens;
use crate::config::{Config, parse_duration, parse_rate, parse_size};
use crate::ports::{PortPool, PortRange};
use crate::service::{ControlService, Gateway, GatewaySettings};
use crate::session::Registry;

/// Everything `s2cs` needs besides the config: secrets that never sit in the config file.
#[derive(Debug, Default)]
pub struct Secrets {
    /// The OAuth2 client secret, if given on the command line or in the environment.
    pub client_secret: Option<String>,
}

/// The engine picked for `--engine`, why, and the loaded BPF program when it is `sockmap` or
/// the running dataplane when it is `dpdk`.
pub struct EngineChoice {
    pub kind: EngineKind,
    pub why: String,
    pub splicer: Option<Arc<Splicer>>,
    pub dpdk: Option<Arc<crate::dpdk::Dataplane>>,
}

/// Picks the engine for `--engine` and says why. `auto` takes `sockmap` only when the config
/// enables it (`sockmap_auto`), the WAN is plaintext (sockmap cannot encrypt) and the BPF
/// program loads; otherwise `copy`. An explicit `sockmap` that cannot load is an error.
pub fn choose_engine(cfg: &Config) -> anyhow::Result<EngineChoice> {
    let plain = |kind, why: String| EngineChoice {
        kind,
        why,
        splicer: None,
        dpdk: None,
    };
    match cfg.engine.trim().to_ascii_lowercase().as_str() {
        "auto" if crate::dpdk::configured(cfg) => {
            if !cfg.wan_plaintext {
                return Ok(plain(
                    EngineKind::Copy,
                    "auto: a NIC profile and dpdk ports are configured but the WAN leg is TLS, \
                     which the dpdk engine does not carry (--engine quic encrypts it on the dpdk \
                     ports, if the peer gateway runs quic too); using copy"
                        .into(),
                ));
            }
            match crate::dpdk::start(cfg) {
                Ok(engine) => Ok(EngineChoice {
                    kind: EngineKind::Dpdk,
                    why: "auto: a NIC profile and dpdk ports are configured and EAL started; \
                          using dpdk"
                        .into(),
                    splicer: None,
                    dpdk: Some(Arc::new(engine)),
                }),
                Err(e) => Ok(plain(
                    EngineKind::Copy,
                    format!("auto: the dpdk engine could not start ({e:#}); using copy"),
                )),
            }
        }
        "auto" => {
            if !cfg.sockmap_auto {
                return Ok(plain(
                    EngineKind::Copy,
                    "auto: no DPDK NIC profile is configured and sockmap_auto is off; using copy"
                        .into(),
                ));
            }
            if !cfg.wan_plaintext {
                return Ok(plain(
                    EngineKind::Copy,
                    "auto: sockmap_auto is on but the WAN leg is TLS, which sockmap cannot \
                     carry; using copy"
                        .into(),
                ));
            }
            match Splicer::load() {
                Ok(s) => Ok(EngineChoice {
                    kind: EngineKind::Sockmap,
                    why: "auto: sockmap_auto is on and the BPF program loaded; using sockmap"
                        .into(),
                    splicer: Some(Arc::new(s)),
                    dpdk: None,
                }),
                Err(e) => Ok(plain(
                    EngineKind::Copy,
                    format!("auto: sockmap unavailable ({e}); using copy"),
                )),
            }
        }
        other => {
            let kind: EngineKind = other.parse()?;
            let splicer = match kind {
                EngineKind::Sockmap => Some(Arc::new(
                    Splicer::load().context("--engine sockmap cannot start")?,
                )),
                _ => None,
            };
            if matches!(kind, EngineKind::Quic | EngineKind::QuicRelay) && cfg.wan_plaintext {
                bail!(
                    "the quic engine always encrypts the WAN leg (QUIC has no plaintext mode); \
                     remove --wan_plaintext, or pick a plaintext engine"
                );
            }
            let dpdk = match kind {
                // QUIC on the DPDK ports when the dataplane is configured.
                EngineKind::Quic if crate::dpdk::configured(cfg) => Some(Arc::new(
                    crate::dpdk::start(cfg)
                        .context("--engine quic on the dpdk ports cannot start")?,
                )),
                EngineKind::QuicRelay if crate::dpdk::configured(cfg) => bail!(
                    "the quic-relay engine runs on kernel UDP only; remove --nic_profile and \
                     --dpdk_port, or use --engine quic (the TCP<->QUIC tunnel) on the dpdk ports"
                ),
                EngineKind::Dpdk => {
                    if !cfg.wan_plaintext {
                        bail!(
                            "the dpdk engine does not encrypt the WAN leg; add --wan_plaintext \
                             to accept an unencrypted WAN explicitly, or use --engine quic (QUIC \
                             on the dpdk ports) or --engine copy (TLS 1.3)"
                        );
                    }
                    Some(Arc::new(
                        crate::dpdk::start(cfg).context("--engine dpdk cannot start")?,
                    ))
                }
                _ => None,
            };
            Ok(EngineChoice {
                kind,
                why: format!("{kind} requested with --engine"),
                splicer,
                dpdk,
            })
        }
    }
}

/// Builds the gateway from the config (no sockets opened except the data-path loops).
pub fn build_gateway(cfg: &Config, secrets: Secrets) -> anyhow::Result<Arc<Gateway>> {
    let EngineChoice {
        kind,
        why,
        splicer,
        dpdk,
    } = choose_engine(cfg)?;
    tracing::info!(engine = kind.name(), "{why}");
    if !kind.encrypts_wan() && !cfg.wan_plaintext {
        bail!(
            "the {kind} engine cannot encrypt the WAN leg; add --wan_plaintext to accept an \
             unencrypted WAN explicitly, or use --engine copy (TLS 1.3)"
        );
    }
    if cfg.wan_plaintext {
        tracing::warn!(
            "WAN LEG IS PLAINTEXT (--wan_plaintext): stream bytes cross the WAN unencrypted and \
             unauthenticated"
        );
    }
    let range: PortRange = cfg.port_range.parse().map_err(anyhow::Error::msg)?;
    let engine: Arc<dyn Engine> = match dpdk {
        Some(d) => crate::dpdk::engine(d, kind, cfg)?,
        None if matches!(kind, EngineKind::Quic | EngineKind::QuicRelay) => {
            quic_engine(cfg, kind == EngineKind::QuicRelay)?
        }
        None => kernel_engine(cfg, kind, splicer)?,
    };
    let auth = build_auth(cfg, secrets)?;
    if auth.is_disabled() {
        tracing::warn!(
            "AUTHENTICATION IS DISABLED (--no_auth): anyone who reaches port {} controls this \
             gateway; use only for development",
            cfg.port
        );
    } else {
        tracing::info!(auth = %auth.describe(), "authentication");
    }
    let advertise_host = match &cfg.advertise_ip {
        Some(a) => a.clone(),
        None => {
            if cfg.listener_ip.is_unspecified() {
                tracing::warn!(
                    "listener_ip is {} and no advertise_ip is set: clients will be told to \
                     connect to {0}; set --advertise_ip to this gateway's reachable address",
                    cfg.listener_ip
                );
            }
            cfg.listener_ip.to_string()
        }
    };
    let default_allow = AllowList::parse(&cfg.allow_sources)?;
    if cfg.max_num_conn == 0 || cfg.max_num_conn > 65535 {
        bail!("max_num_conn must be between 1 and 65535");
    }
    Ok(Arc::new(Gateway {
        settings: GatewaySettings {
            listener_ip: cfg.listener_ip,
            advertise_host,
            hello_timeout: Duration::from_secs(cfg.hello_timeout),
            hello_grace: Duration::from_secs(cfg.hello_grace),
            max_num_conn: cfg.max_num_conn,
            max_sessions: cfg.max_sessions,
            wan_plaintext: cfg.wan_plaintext,
            default_allow,
        },
        auth,
        registry: Registry::default(),
        pool: if engine.listens_in_kernel() {
            PortPool::new(range)
        } else {
            PortPool::holding_only(range)
        },
        engine,
    }))
}

/// The data-path event loops: pinned only where the operator chose cores; otherwise one
/// floating loop per online core.
fn start_pool(cfg: &Config) -> anyhow::Result<Arc<CorePool>> {
    let (cores, pinning) = match &cfg.cores {
        Some(c) => (c.clone(), Pinning::Pinned),
        None => (dataplane::cores::online_cores(), Pinning::Floating),
    };
    let pool = Arc::new(CorePool::start(&cores, pinning)?);
    tracing::info!(?cores, ?pinning, "data-path event loops started");
    Ok(pool)
}

/// The QUIC tuning of the config, checked.
pub fn quic_tuning(cfg: &Config) -> anyhow::Result<QuicTuning> {
    let msg = anyhow::Error::msg;
    let tuning = QuicTuning {
        bandwidth_bps: parse_rate(&cfg.quic_bandwidth)
            .map_err(msg)
            .context("quic_bandwidth")?,
        rtt: parse_duration(&cfg.quic_rtt)
            .map_err(msg)
            .context("quic_rtt")?,
        congestion: cfg.quic_cc.parse().context("quic_cc")?,
        initial_mtu: cfg.quic_initial_mtu,
        max_mtu: cfg.quic_max_mtu,
        idle_timeout: parse_duration(&cfg.quic_idle_timeout)
            .map_err(msg)
            .context("quic_idle_timeout")?,
        udp_buffer: parse_size(&cfg.quic_udp_buffer)
            .map_err(msg)
            .context("quic_udp_buffer")?,
        force_udp_buffer: cfg.quic_udp_force,
        rate_bps: cfg
            .quic_rate
            .as_deref()
            .map(parse_rate)
            .transpose()
            .map_err(msg)
            .context("quic_rate")?,
        ..QuicTuning::default()
    };
    // Keep-alives well inside the idle timeout, so a live peer is never dropped.
    let tuning = QuicTuning {
        keep_alive: (tuning.idle_timeout / 3).min(tuning.keep_alive),
        ..tuning
    };
    tuning.validate()?;
    Ok(tuning)
}

fn quic_engine(cfg: &Config, relay: bool) -> anyhow::Result<Arc<dyn Engine>> {
    let options = quic_options(cfg, "quic engine")?;
    let probe =
        dataplane::quic::udp::probe(options.tuning.udp_buffer, options.tuning.force_udp_buffer);
    probe.buffers.log("quic engine");
    let pool = start_pool(cfg)?;
    Ok(Arc::new(if relay {
        QuicEngine::relay(pool, options)?
    } else {
        QuicEngine::new(pool, options)?
    }))
}

/// The QUIC engines' options from the config, logged under `what`.
pub(crate) fn quic_options(cfg: &Config, what: &str) -> anyhow::Result<QuicOptions> {
    let tuning = quic_tuning(cfg)?;
    let w = tuning.windows();
    tracing::info!(
        bandwidth_bps = tuning.bandwidth_bps,
        rtt = ?tuning.rtt,
        cc = tuning.congestion.name(),
        initial_mtu = tuning.initial_mtu,
        max_mtu = tuning.max_mtu,
        stream_window = w.stream_receive,
        connection_window = w.connection_receive,
        send_window = w.send,
        rate_bps = ?tuning.rate_bps,
        "{what} tuning"
    );
    Ok(QuicOptions {
        tuning,
        ..QuicOptions::default()
    })
}

/// `copy`, `splice` or `sockmap` over the per-core event loops.
fn kernel_engine(
    cfg: &Config,
    kind: EngineKind,
    splicer: Option<Arc<Splicer>>,
) -> anyhow::Result<Arc<dyn Engine>> {
    let options = KernelOptions {
        buffer_size: parse_size(&cfg.buffer_size).map_err(anyhow::Error::msg)?,
        pipe_size: parse_size(&cfg.pipe_size).map_err(anyhow::Error::msg)?,
        sockmap: SpliceOptions {
            sndbuf: parse_size(&cfg.sockmap_sndbuf).map_err(anyhow::Error::msg)?,
            max_backlog: parse_size(&cfg.sockmap_max_backlog).map_err(anyhow::Error::msg)? as u64,
            ..SpliceOptions::default()
        },
        ..KernelOptions::default()
    };
    let pool = start_pool(cfg)?;
    Ok(Arc::new(match splicer {
        Some(splicer) => {
            tracing::info!(
                sndbuf = options.sockmap.sndbuf,
                max_backlog = options.sockmap.max_backlog,
                "sockmap BPF program loaded and attached"
            );
            KernelEngine::sockmap(pool, options, splicer)
        }
        None => KernelEngine::new(kind, pool, options),
    }))
}

fn build_auth(cfg: &Config, secrets: Secrets) -> anyhow::Result<Authenticator> {
    let allowed: Option<HashSet<String>> = (!cfg.allowed_identities.is_empty())
        .then(|| cfg.allowed_identities.iter().cloned().collect());
    let introspection = cfg.client_id.is_some();
    match (cfg.no_auth, &cfg.token_file, introspection) {
        (true, None, false) => Ok(Authenticator::disabled()),
        (false, Some(path), false) => Ok(Authenticator::new(
            Arc::new(StaticTokens::load(path)?),
            allowed,
        )),
        (false, None, true) => {
            let client_id = cfg.client_id.clone().unwrap_or_default();
            let secret = match (&cfg.client_secret_file, secrets.client_secret) {
                (Some(p), _) => std::fs::read_to_string(p)
                    .with_context(|| format!("reading client_secret_file {}", p.display()))?
                    .trim()
                    .to_owned(),
                (None, Some(s)) => s,
                (None, None) => bail!(
                    "--client_id needs the client secret: --client_secret_file FILE or the \
                     S2CS_CLIENT_SECRET environment variable"
                ),
            };
            let mut ic = IntrospectionConfig::globus(&client_id, secret);
            if let Some(url) = &cfg.introspection_url {
                ic.url = url.clone();
            }
            if let Some(scope) = &cfg.scope {
                ic.required_scope = scope.clone();
            }
            Ok(Authenticator::new(
                Arc::new(Introspection::new(ic)?),
                allowed,
            ))
        }
        (false, None, false) => bail!(
            "no authentication configured: pass --token_file FILE (create tokens with 's2cs token \
             new'), or --client_id with a client secret for OAuth2/Globus introspection, or \
             --no_auth for development"
        ),
        _ => bail!("choose exactly one of --no_auth, --token_file, --client_id (introspection)"),
    }
}

/// Runs the daemon until SIGINT/SIGTERM, then releases every session.
pub async fn run(cfg: Config, secrets: Secrets) -> anyhow::Result<()> {
    let gateway = build_gateway(&cfg, secrets)?;
    let _lock = match &cfg.state_dir {
        Some(dir) => Some(StateLock::acquire(dir, cfg.port)?),
        None => None,
    };
    let mut builder = Server::builder();
    if cfg.ssl {
        let cert = read(&cfg.server_crt, "server_crt")?;
        let key = read(&cfg.server_key, "server_key")?;
        let mut tls = ServerTlsConfig::new().identity(TlsIdentity::from_pem(cert, key));
        if let Some(ca) = &cfg.client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(read(ca, "client_ca")?));
            tracing::info!("control channel requires client certificates (mTLS)");
        }
        builder = builder.tls_config(tls)?;
    } else {
        tracing::warn!(
            "CONTROL CHANNEL IS PLAINTEXT (--ssl=false): tokens and uids cross the network \
             unencrypted"
        );
    }
    let addr = SocketAddr::new(cfg.control_ip, cfg.port);
    let listener = bind_control(addr)?;
    let local = listener.local_addr()?;
    tracing::info!(%local, tls = cfg.ssl, version = crate::VERSION, "s2cs listening");
    // Small gRPC frames must not wait for delayed ACKs (Nagle): 40 ms per round trip otherwise.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |conn| {
            if let Ok(c) = &conn {
                let _ = c.set_nodelay(true);
            }
            conn
        },
    );
    let metrics = match cfg.metrics_addr {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding metrics_addr {addr}"))?;
            tracing::info!(%addr, "metrics at GET /metrics");
            Some(tokio::spawn(crate::metrics::serve(l, gateway.clone())))
        }
        None => None,
    };
    let service = ControlService::new(gateway.clone()).into_server();
    builder
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown_signal())
        .await?;
    tracing::info!(
        sessions = gateway.registry.len(),
        "shutting down; releasing sessions"
    );
    if let Some(m) = metrics {
        m.abort();
    }
    gateway.release_all().await;
    Ok(())
}

fn bind_control(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let std = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        // Hosts without IPv6: fall back from [::] to 0.0.0.0.
        Err(_) if addr.ip() == IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED) => {
            std::net::TcpListener::bind(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), addr.port()))
                .with_context(|| format!("binding the control port {} failed", addr.port()))?
        }
        Err(e) => return Err(e).with_context(|| format!("binding the control port {addr} failed")),
    };
    std.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(std)?)
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "reading --{what} {} failed; create a pair with 's2cs cert --ip <control address>', or \
             run with --ssl=false for a plaintext control channel (not recommended)",
            path.display()
        )
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// One daemon per state directory and port: a pid file, removed on exit.
struct StateLock {
    path: PathBuf,
}

impl StateLock {
    fn acquire(dir: &Path, port: u16) -> anyhow::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating state_dir {}", dir.display()))?;
        let path = dir.join(format!("s2cs-{port}.pid"));
        if let Ok(old) = std::fs::read_to_string(&path)
            && let Ok(pid) = old.trim().parse::<i32>()
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            bail!(
                "another s2cs (pid {pid}) runs with state_dir {} and port {port}; stop it first",
                dir.display()
            );
        }
        crate::secret::write_private(&path, &format!("{}\n", std::process::id()))?;
        Ok(Self { path })
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes a self-signed certificate and key for the control channel, valid for `names` (IP
/// addresses or DNS names). The key file is 0600.
pub fn write_self_signed(names: &[String], crt: &Path, key: &Path) -> anyhow::Result<()> {
    let ck = rcgen::generate_simple_self_signed(names.to_vec())?;
    std::fs::write(crt, ck.cert.pem())?;
    crate::secret::write_private(key, &ck.signing_key.serialize_pem())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_daemon_per_state_dir_and_port() {
        let dir = std::env::temp_dir().join(format!("s2cs-state-{}", std::process::id()));
        let lock = StateLock::acquire(&dir, 5999).unwrap();
        // Our own pid is alive, so a second daemon is refused.
        let err = StateLock::acquire(&dir, 5999)
            .err()
            .expect("second lock refused");
        assert!(err.to_string().contains("another s2cs"), "{err}");
        // Another port is fine.
        let other = StateLock::acquire(&dir, 5998).unwrap();
        drop(lock);
        drop(other);
        assert!(!dir.join("s2cs-5999.pid").exists());
        StateLock::acquire(&dir, 5999).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn auth_must_be_chosen_explicitly() {
        let cfg = Config::default();
        let err = build_auth(&cfg, Secrets::default())
            .err()
            .expect("no verifier configured");
        assert!(err.to_string().contains("--no_auth"), "{err}");
        let both = Config {
            no_auth: true,
            client_id: Some("c".into()),
            ..Config::default()
        };
        assert!(build_auth(&both, Secrets::default()).is_err());
        let missing_secret = Config {
            client_id: Some("c".into()),
            ..Config::default()
        };
        let err = build_auth(&missing_secret, Secrets::default())
            .err()
            .expect("secret required");
        assert!(err.to_string().contains("client secret"), "{err}");
    }
}
