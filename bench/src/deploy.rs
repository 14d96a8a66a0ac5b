//! One method's data path on the testbed, as the apps see it: direct routing, a pair of
//! SciStream-RS gateways with one session, or a peer proxy on each gateway node. The benchmarks
//! start a [`Deployment`] per method and run their workloads against its consumer-side targets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;

use anyhow::{Context, Result};
use testbed::scenario::{Scenario, ScenarioOptions, Session};
use testbed::topology::{GN1_WAN_IP, GN2_LAN_IP, Host, PROD_APP_IP, TestbedGuard, Topology};
use testbed::wan::WanLink;

use crate::peers::{self, Peer};

/// Namespace prefix of the benchmark testbeds.
pub(crate) const PREFIX: &str = "s2bench";
/// First port the peer proxies listen on (one per app port).
const PEER_PORT: u16 = 9000;

/// The SciStream-RS methods and the engine each runs.
pub(crate) fn scistream_engine(method: &str) -> Option<&'static str> {
    match method {
        "copy" | "copy-tls" => Some("copy"),
        "splice" => Some("splice"),
        "sockmap" => Some("sockmap"),
        "dpdk" => Some("dpdk"),
        "quic" | "quic-dpdk" => Some("quic"),
        "quic-relay" => Some("quic-relay"),
        _ => None,
    }
}

/// Methods whose apps speak QUIC (`qpub`/`qsub`) instead of TCP.
pub(crate) fn quic_apps(method: &str) -> bool {
    matches!(method, "quic-direct" | "quic-relay")
}

/// Methods whose WAN leg is encrypted.
fn encrypted(method: &str) -> bool {
    matches!(method, "copy-tls" | "quic" | "quic-dpdk" | "quic-relay")
}

/// Methods whose gateways run on the DPDK ports.
fn on_dpdk(method: &str) -> bool {
    matches!(method, "dpdk" | "quic-dpdk")
}

/// Every method a benchmark accepts, in the order the reports list them.
pub(crate) const METHODS: &[&str] = &[
    "direct",
    "copy",
    "copy-tls",
    "splice",
    "sockmap",
    "dpdk",
    "quic",
    "quic-dpdk",
    "quic-direct",
    "quic-relay",
    "haproxy",
    "nginx",
    "socat",
];

/// Checks method names before anything is built.
pub(crate) fn check_methods(methods: &[String]) -> Result<()> {
    for m in methods {
        anyhow::ensure!(
            METHODS.contains(&m.as_str()),
            "unknown method '{m}'; valid: {}",
            METHODS.join(", ")
        );
    }
    Ok(())
}

/// Removes a testbed an interrupted benchmark left behind (its namespaces and delay line), so
/// the next run can build its own; benchmarks on one machine run one at a time.
pub(crate) fn remove_leftovers() -> Result<()> {
    let topo = Topology::with_prefix(PREFIX);
    if topo.exists() {
        eprintln!("removing the testbed an earlier run left behind ({PREFIX}-*)");
        topo.down()?;
    }
    Ok(())
}

/// How to build a deployment.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeployOptions {
    /// `--cores` of GN1 and GN2 for the SciStream-RS engines.
    pub(crate) cores: Option<(String, String)>,
    /// Extra `s2cs` options for both gateways.
    pub(crate) s2cs_args: Vec<String>,
    /// The emulated WAN between the gateway nodes (`None`: a direct veth).
    pub(crate) wan: Option<WanLink>,
}

/// A running data path; dropping it stops everything and removes the testbed.
pub(crate) struct Deployment {
    kind: Kind,
    /// Where the consumer connects, one per app port.
    pub(crate) targets: Vec<SocketAddr>,
    /// The processes of GN1 and of GN2 whose CPU counts as gateway (empty for direct).
    pub(crate) gateways: [Vec<u32>; 2],
    /// The session uid QUIC apps derive their identity from (a fixed one without gateways).
    pub(crate) uid: String,
    dir: PathBuf,
}

enum Kind {
    Direct(TestbedGuard),
    Scistream {
        session: Session,
        // Declared after the session: the scenario (gateways, testbed) goes last.
        scenario: Box<Scenario>,
    },
    Peer {
        children: Vec<KillOnDrop>,
        // Declared last: the proxies stop before the testbed goes.
        topo: TestbedGuard,
    },
}

impl Deployment {
    /// Builds the testbed and the path for `method`, forwarding each of `ports` (where the
    /// producer app listens on its host) to a consumer-side target.
    pub(crate) fn start(method: &str, ports: &[u16], o: &DeployOptions) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("s2bench-{method}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let (kind, targets, gateways) = if method == "direct" || method == "quic-direct" {
            let topo = topology(o).up_guarded()?;
            let targets = ports
                .iter()
                .map(|&p| SocketAddr::new(PROD_APP_IP.into(), p))
                .collect();
            (Kind::Direct(topo), targets, [Vec::new(), Vec::new()])
        } else if let Some(engine) = scistream_engine(method) {
            let mut so = ScenarioOptions::new(PREFIX);
            so.engine = engine.into();
            so.wan_plaintext = !encrypted(method);
            so.dpdk = on_dpdk(method);
            so.cores = o.cores.clone();
            so.s2cs_args = o.s2cs_args.clone();
            so.wan = o.wan.clone();
            let scenario = Scenario::start(so)?;
            let session = scenario.connect(ports.len(), ports)?;
            let targets = session.cons_listeners.clone();
            let pids = match scenario.gateway_pids()[..] {
                [gn1, gn2] => [vec![gn1], vec![gn2]],
                _ => anyhow::bail!("the scenario has no two running gateways"),
            };
            (
                Kind::Scistream {
                    session,
                    scenario: Box::new(scenario),
                },
                targets,
                pids,
            )
        } else {
            let peer = Peer::parse(method).with_context(|| format!("unknown method '{method}'"))?;
            let topo = topology(o).up_guarded()?;
            let mut children = Vec::new();
            let mut targets = Vec::new();
            let mut pids = [Vec::new(), Vec::new()];
            for (i, &port) in ports.iter().enumerate() {
                let listen_port = PEER_PORT + i as u16;
                let gn1 = SocketAddr::new(GN1_WAN_IP.into(), listen_port);
                let gn2 = SocketAddr::new(GN2_LAN_IP.into(), listen_port);
                let app = SocketAddr::new(PROD_APP_IP.into(), port);
                let g1 = KillOnDrop(peers::start(peer, &topo, Host::Gn1, gn1, app, &dir)?);
                let g2 = KillOnDrop(peers::start(peer, &topo, Host::Gn2, gn2, gn1, &dir)?);
                pids[0].push(g1.0.id());
                pids[1].push(g2.0.id());
                children.extend([g1, g2]);
                targets.push(gn2);
            }
            (Kind::Peer { children, topo }, targets, pids)
        };
        let uid = match &kind {
            Kind::Scistream { session, .. } => session.uid()?,
            _ => "s2bench".into(),
        };
        Ok(Self {
            kind,
            targets,
            gateways,
            uid,
            dir,
        })
    }

    /// Every gateway process, GN1's and GN2's.
    pub(crate) fn gateway_pids(&self) -> Vec<u32> {
        self.gateways.concat()
    }

    pub(crate) fn topology(&self) -> &Topology {
        match &self.kind {
            Kind::Direct(t) | Kind::Peer { topo: t, .. } => t,
            Kind::Scistream { scenario, .. } => scenario.topology(),
        }
    }

    /// The SciStream-RS scenario, for methods that have one.
    pub(crate) fn scenario(&self) -> Option<&Scenario> {
        match &self.kind {
            Kind::Scistream { scenario, .. } => Some(scenario),
            _ => None,
        }
    }

    /// Releases the session (SciStream-RS) and removes everything, reporting errors.
    pub(crate) fn finish(self) -> Result<()> {
        let dir = self.dir.clone();
        let result = match self.kind {
            Kind::Direct(topo) => topo.teardown().map_err(Into::into),
            Kind::Scistream { session, scenario } => scenario.release(&session),
            Kind::Peer { children, topo } => {
                drop(children);
                topo.teardown().map_err(Into::into)
            }
        };
        let _ = std::fs::remove_dir_all(dir);
        result
    }
}

fn topology(o: &DeployOptions) -> Topology {
    Topology {
        wan: o.wan.clone(),
        ..Topology::with_prefix(PREFIX)
    }
}

/// A child process killed and reaped when dropped.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
