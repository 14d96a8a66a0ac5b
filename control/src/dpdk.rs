//! The `dpdk` engine as `s2cs` configures it, and its `doctor` checks. In a build without the
//! `dpdk` feature (`--no-default-features`: gateways that run the kernel engines and QUIC only,
//! and do not install DPDK), the same functions say how the binary was built instead.

use std::sync::Arc;

use dataplane::{Engine, EngineKind};

use crate::config::Config;
use crate::doctor::{Check, Level};

#[cfg(feature = "dpdk")]
pub use built::*;
#[cfg(not(feature = "dpdk"))]
pub use not_built::*;

/// Whether the config names a NIC profile and data ports (what `auto` needs to try DPDK).
pub fn configured(cfg: &Config) -> bool {
    cfg.nic_profile.is_some() && !cfg.dpdk_ports.is_empty()
}

#[cfg(feature = "dpdk")]
mod built {
    use std::net::IpAddr;
    use std::time::Duration;

    use anyhow::{Context, bail};
    use dataplane::stack::{DpdkEngine, DpdkOptions, SharedDpdkEngine, StackOptions, preflight};
    use nic_profiles::{LcoreLayout, PortSpec, Profile};

    use super::*;
    use crate::config::{parse_duration, parse_rate, parse_size};

    /// The running dataplane.
    pub type Dataplane = DpdkEngine;

    /// The engine's options from the config: profile, ports, lcores (`--cores`, else the
    /// profile's layout), placement, TCP buffers.
    pub fn options(cfg: &Config) -> anyhow::Result<DpdkOptions> {
        let name = cfg.nic_profile.as_deref().context(
            "the dpdk engine needs a NIC profile: --nic_profile NAME|FILE (e.g. connectx6dx, \
             af_packet_jumbo)",
        )?;
        let profile = Profile::resolve(name)?;
        for w in profile.warnings() {
            tracing::warn!(profile = name, "{w}");
        }
        if cfg.dpdk_ports.is_empty() {
            bail!(
                "the dpdk engine needs its data ports: --dpdk_port name=wan,ipv4=ADDR/PREFIX,... \
                 (one per port)"
            );
        }
        let ports: Vec<PortSpec> = cfg
            .dpdk_ports
            .iter()
            .map(|p| {
                p.parse()
                    .map_err(|e| anyhow::anyhow!("--dpdk_port {p:?}: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let IpAddr::V4(listener) = cfg.listener_ip else {
            bail!(
                "the dpdk engine is IPv4 only; --listener_ip {} is IPv6",
                cfg.listener_ip
            );
        };
        if !ports.iter().any(|p| p.ipv4.addr() == listener) {
            bail!(
                "--listener_ip {listener} is not the address of a dpdk port ({}); listeners live \
                 on the dataplane, so set --listener_ip to the address of the port clients reach",
                ports
                    .iter()
                    .map(|p| format!("{}={}", p.name, p.ipv4.addr()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let online: Vec<u32> = dataplane::cores::online_cores()
            .into_iter()
            .map(|c| c as u32)
            .collect();
        let layout = match &cfg.cores {
            Some(cores) => {
                let dataplane: Vec<u32> = cores.iter().map(|&c| c as u32).collect();
                // EAL's main lcore only initialises; put it on a core the loops do not poll.
                let main = online
                    .iter()
                    .copied()
                    .find(|c| !dataplane.contains(c))
                    .context("--cores names every online core; leave one for EAL's main lcore")?;
                LcoreLayout::new(main, dataplane)
            }
            None => LcoreLayout::from_profile(&profile, &online)?,
        };
        let stack = StackOptions {
            tcp_buffer: tcp_buffer(cfg)?,
            idle_sleep: (cfg.dpdk_idle_sleep_us > 0)
                .then(|| Duration::from_micros(cfg.dpdk_idle_sleep_us)),
            ..StackOptions::default()
        };
        Ok(DpdkOptions {
            profile,
            ports,
            layout,
            stream_lcores: cfg.dpdk_stream_lcores.clone(),
            stack,
        })
    }

    /// Starts EAL, the ports and the polling lcores.
    pub fn start(cfg: &Config) -> anyhow::Result<Dataplane> {
        let engine = DpdkEngine::start(options(cfg)?)?;
        tracing::info!(?engine, "dpdk dataplane up");
        Ok(engine)
    }

    /// The engine s2cs serves on the running dataplane: TCP termination (`dpdk`), or the QUIC
    /// tunnel on its ports (`quic`).
    pub fn engine(
        dataplane: Arc<Dataplane>,
        kind: EngineKind,
        cfg: &Config,
    ) -> anyhow::Result<Arc<dyn Engine>> {
        if kind != EngineKind::Quic {
            return Ok(Arc::new(SharedDpdkEngine::tcp(dataplane)));
        }
        let e = SharedDpdkEngine::quic(
            dataplane,
            crate::server::quic_options(cfg, "quic engine on dpdk")?,
        )?;
        if let Some(o) = e.quic_options() {
            tracing::info!(
                max_mtu = o.tuning.max_mtu,
                "quic engine on the dpdk ports (UDP on the dataplane)"
            );
        }
        Ok(Arc::new(e))
    }

    /// `dpdk_tcp_buffer`: a size, or `bdp` for two bandwidth-delay products of the WAN as
    /// `quic_bandwidth` and `quic_rtt` describe it.
    fn tcp_buffer(cfg: &Config) -> anyhow::Result<usize> {
        if !cfg.dpdk_tcp_buffer.trim().eq_ignore_ascii_case("bdp") {
            return parse_size(&cfg.dpdk_tcp_buffer)
                .map_err(anyhow::Error::msg)
                .context("dpdk_tcp_buffer (a size such as 4M, or bdp)");
        }
        let bandwidth = parse_rate(&cfg.quic_bandwidth)
            .map_err(anyhow::Error::msg)
            .context("quic_bandwidth (sizes dpdk_tcp_buffer = bdp)")?;
        let rtt = parse_duration(&cfg.quic_rtt)
            .map_err(anyhow::Error::msg)
            .context("quic_rtt (sizes dpdk_tcp_buffer = bdp)")?;
        let size = StackOptions::buffer_for(bandwidth as f64 / 1e9, rtt);
        tracing::info!(
            bytes = size,
            bandwidth = %cfg.quic_bandwidth,
            rtt = %cfg.quic_rtt,
            "dpdk TCP buffer per socket and direction from the bandwidth-delay product"
        );
        Ok(size)
    }

    /// What `s2cs doctor` says of the DPDK dataplane: the DPDK it runs on, and, when a NIC
    /// profile and ports are configured, everything the engine checks before EAL starts
    /// (configuration, driver plugins, hugepages), without starting it.
    pub fn checks(cfg: &Config) -> Vec<Check> {
        let mut out = vec![Check {
            name: "dpdk",
            level: Level::Ok,
            detail: format!(
                "built with {} (driver plugins in {})",
                dataplane::dpdk::version(),
                if dataplane::dpdk::PMD_DIR.is_empty() {
                    "this binary: a static build"
                } else {
                    dataplane::dpdk::PMD_DIR
                }
            ),
        }];
        if !configured(cfg) {
            out.push(Check {
                name: "dpdk ports",
                level: if cfg.engine.trim().eq_ignore_ascii_case("dpdk") {
                    Level::Fail
                } else {
                    Level::Ok
                },
                detail: "none configured (--nic_profile and --dpdk_port); the dpdk engine is not \
                         in use"
                    .into(),
            });
            return out;
        }
        let ready = options(cfg).and_then(|o| {
            let ready = preflight::check(&o, &hugepages::HostSys)?;
            Ok((o, ready))
        });
        out.push(match ready {
            Ok((o, ready)) => Check {
                name: "dpdk preflight",
                level: Level::Ok,
                detail: format!(
                    "profile {}, {} port(s), dataplane lcores {:?}; {}; EAL arguments: {}",
                    o.profile.name,
                    o.ports.len(),
                    o.layout.dataplane,
                    match ready.hugepages {
                        Some(p) => format!(
                            "{} free {} hugepages on node{} for EAL",
                            p.pages, p.size, p.node.0
                        ),
                        None => "the profile runs without hugepages".into(),
                    },
                    ready.eal_args.join(" ")
                ),
            },
            Err(e) => Check {
                name: "dpdk preflight",
                level: Level::Fail,
                detail: format!("{e:#}"),
            },
        });
        out
    }
}

#[cfg(not(feature = "dpdk"))]
mod not_built {
    use super::*;

    /// What `--engine dpdk` says in a build without DPDK.
    const NOT_BUILT: &str = "this s2cs was built without the DPDK dataplane (cargo feature \
                             `dpdk` off); build it with default features and DPDK 22.11 \
                             installed, or pick a kernel engine (copy, splice, sockmap) or quic \
                             on kernel UDP";

    /// No dataplane can run in this build.
    pub enum Dataplane {}

    pub fn start(_cfg: &Config) -> anyhow::Result<Dataplane> {
        anyhow::bail!(NOT_BUILT)
    }

    pub fn engine(
        dataplane: Arc<Dataplane>,
        _kind: EngineKind,
        _cfg: &Config,
    ) -> anyhow::Result<Arc<dyn Engine>> {
        match *dataplane {}
    }

    pub fn checks(cfg: &Config) -> Vec<Check> {
        let (level, detail) = if cfg.engine.trim().eq_ignore_ascii_case("dpdk") {
            (Level::Fail, NOT_BUILT.to_owned())
        } else if configured(cfg) {
            (
                Level::Warn,
                format!(
                    "a NIC profile and dpdk ports are configured, but {NOT_BUILT}; auto uses \
                     copy"
                ),
            )
        } else {
            (
                Level::Ok,
                "not in this build (cargo feature `dpdk` off); the kernel engines and quic on \
                 kernel UDP do not need it"
                    .to_owned(),
            )
        };
        vec![Check {
            name: "dpdk",
            level,
            detail,
        }]
    }
}

#[cfg(all(test, feature = "dpdk"))]
mod tests {
    use super::*;

    fn dpdk_config(listener: &str) -> Config {
        Config {
            listener_ip: listener.parse().unwrap(),
            nic_profile: Some("af_packet_jumbo".into()),
            dpdk_ports: vec!["name=wan,ipv4=127.0.0.2/8,iface=lo".into()],
            cores: Some(vec![1]),
            ..Config::default()
        }
    }

    fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
    }

    #[test]
    fn doctor_reports_the_eal_arguments_start_would_use() {
        let found = checks(&dpdk_config("127.0.0.2"));
        assert_eq!(check(&found, "dpdk").level, Level::Ok);
        let pre = check(&found, "dpdk preflight");
        assert_eq!(pre.level, Level::Ok, "{pre}");
        assert!(
            pre.detail.contains("without hugepages")
                && pre.detail.contains("--vdev=net_af_packet0,iface=lo")
                && pre.detail.contains("--no-huge"),
            "{pre}"
        );
    }

    #[test]
    fn doctor_fails_what_start_would_refuse() {
        let found = checks(&dpdk_config("127.0.0.3"));
        let pre = check(&found, "dpdk preflight");
        assert_eq!(pre.level, Level::Fail, "{pre}");
        assert!(
            pre.detail.contains("is not the address of a dpdk port"),
            "{pre}"
        );
        let mut cfg = dpdk_config("127.0.0.2");
        cfg.dpdk_stream_lcores = vec![7];
        let pre = check(&checks(&cfg), "dpdk preflight").clone();
        assert_eq!(pre.level, Level::Fail, "{pre}");
        let cfg = Config {
            engine: "dpdk".into(),
            ..Config::default()
        };
        assert_eq!(check(&checks(&cfg), "dpdk ports").level, Level::Fail);
    }
}
