//! A whole two-gateway deployment on the testbed, with real processes: `s2cs` on GN1 and GN2
//! (each in its namespace, control port on the management network, TLS control channel, a
//! static token file), `s2uc` on the control host, and `s2testbed producer`/`consumer` as the
//! apps. Used by the demo (`s2testbed demo`) and the end-to-end tests.
//!
//! The binaries are looked up in one directory (the cargo target directory of the running
//! executable by default).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

use crate::topology::{
    CONS_APP_IP, GN1_CTL_IP, GN1_LAN_IP, GN1_WAN_IP, GN2_CTL_IP, GN2_LAN_IP, GN2_WAN_IP, Host,
    PREFIX_LEN, PROD_APP_IP, TestbedGuard, Topology,
};
use crate::traffic::{TransferReport, consumer_seed, expected_sha256, producer_seed};

/// Control port of both gateways.
pub const CONTROL_PORT: u16 = 5000;

/// How to run the two gateways.
#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    pub prefix: String,
    pub mtu: u32,
    /// `copy`, `splice`, `sockmap` or `dpdk`. With `dpdk` the gateways' data veths are handed to
    /// the dataplane (`net_af_packet`, profile `af_packet_jumbo`): their kernel addresses are
    /// removed, forwarding is turned off, and the apps' veths stop offloading (see
    /// `docs/dpdk.md`).
    pub engine: String,
    pub wan_plaintext: bool,
    /// Directory holding `s2cs`, `s2uc` and `s2testbed`.
    pub bin_dir: PathBuf,
    /// Extra `s2cs` options for both gateways.
    pub s2cs_args: Vec<String>,
    /// `--cores` of GN1 and GN2 (default: all online cores on both).
    pub cores: Option<(String, String)>,
    /// The emulated WAN between the gateways (`None`: a direct veth). It is L2-transparent, so
    /// every engine works over it, `dpdk` included (its `net_af_packet` ports stay on
    /// `gn1:wan0`/`gn2:wan0`).
    pub wan: Option<crate::wan::WanLink>,
    /// Run `engine` on the DPDK ports (as `dpdk` always does): `quic` then tunnels over UDP on
    /// the dataplane instead of kernel sockets.
    pub dpdk: bool,
}

impl ScenarioOptions {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
            mtu: crate::topology::DEFAULT_MTU,
            engine: "copy".into(),
            wan_plaintext: false,
            bin_dir: default_bin_dir(),
            s2cs_args: Vec::new(),
            cores: None,
            wan: None,
            dpdk: false,
        }
    }

    /// Whether the gateways' data veths go to the DPDK dataplane.
    pub fn on_dpdk(&self) -> bool {
        self.dpdk || self.engine == "dpdk"
    }
}

/// The directory of the running executable, or its parent for test binaries in `deps/`.
pub fn default_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

/// What `s2uc connect --json` reports.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectReport {
    pub tag: String,
    pub uid_file: PathBuf,
    pub cons_listeners: Vec<String>,
    pub prod_listeners: Vec<String>,
    pub prod_targets: Vec<String>,
    pub engine: String,
    pub wan_security: String,
    pub setup_ms: f64,
}

/// A session as the apps see it.
#[derive(Debug, Clone)]
pub struct Session {
    pub uid_file: PathBuf,
    /// Where the consumer app connects.
    pub cons_listeners: Vec<SocketAddr>,
    pub wan_security: String,
    pub setup_ms: f64,
}

impl Session {
    /// The session uid (`s2uc` wrote it to `uid_file`).
    pub fn uid(&self) -> std::io::Result<String> {
        Ok(std::fs::read_to_string(&self.uid_file)?.trim().to_owned())
    }
}

/// The verified outcome of one transfer.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub producer: Vec<TransferReport>,
    pub consumer: Vec<TransferReport>,
    /// Producer → consumer payload over the consumer's wall time, Gbit/s.
    pub goodput_down_gbps: f64,
    pub elapsed_secs: f64,
}

/// Two running gateways on a testbed. Dropping it stops them and removes the testbed.
pub struct Scenario {
    pub options: ScenarioOptions,
    pub work: PathBuf,
    gn1: Option<Child>,
    gn2: Option<Child>,
    // Declared last: dropped after the gateways are stopped.
    topo: TestbedGuard,
}

impl Scenario {
    /// Builds the testbed, creates certificates and a token, starts both gateways and waits
    /// until their control ports answer.
    pub fn start(options: ScenarioOptions) -> Result<Self> {
        for b in ["s2cs", "s2uc", "s2testbed"] {
            let p = options.bin_dir.join(b);
            ensure!(
                p.exists(),
                "{} is missing; build the workspace first (cargo build --release --workspace)",
                p.display()
            );
        }
        let topo = Topology {
            prefix: options.prefix.clone(),
            mtu: options.mtu,
            wan: options.wan.clone(),
        }
        .up_guarded()?;
        let work = std::env::temp_dir().join(format!("s2-scenario-{}", options.prefix));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let s2cs = options.bin_dir.join("s2cs");
        for (name, ip) in [("gn1", GN1_CTL_IP), ("gn2", GN2_CTL_IP)] {
            run_ok(
                Command::new(&s2cs)
                    .args(["cert", "--ip", &ip.to_string()])
                    .arg("--server_crt")
                    .arg(work.join(format!("{name}.crt")))
                    .arg("--server_key")
                    .arg(work.join(format!("{name}.key"))),
                "s2cs cert",
            )?;
        }
        run_ok(
            Command::new(&s2cs)
                .args(["token", "new", "--identity", "demo-user"])
                .arg("--token_file")
                .arg(work.join("tokens"))
                .arg("--token_out")
                .arg(work.join("user.token")),
            "s2cs token new",
        )?;
        if options.on_dpdk() {
            prepare_dpdk(&topo)?;
        }
        let mut scenario = Self {
            options,
            work,
            gn1: None,
            gn2: None,
            topo,
        };
        scenario.gn1 =
            Some(scenario.spawn_gateway(Host::Gn1, "gn1", GN1_WAN_IP.into(), GN1_CTL_IP.into())?);
        scenario.gn2 =
            Some(scenario.spawn_gateway(Host::Gn2, "gn2", GN2_LAN_IP.into(), GN2_CTL_IP.into())?);
        scenario.wait_gateways()?;
        Ok(scenario)
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Process ids of the two `s2cs` daemons (for CPU accounting).
    pub fn gateway_pids(&self) -> Vec<u32> {
        [&self.gn1, &self.gn2]
            .iter()
            .filter_map(|c| c.as_ref().map(Child::id))
            .collect()
    }

    fn spawn_gateway(
        &self,
        host: Host,
        name: &str,
        listener_ip: std::net::IpAddr,
        control_ip: std::net::IpAddr,
    ) -> Result<Child> {
        let log = std::fs::File::create(self.work.join(format!("{name}.log")))?;
        let mut cmd = self.topo.command(host, self.options.bin_dir.join("s2cs"));
        cmd.args(["--listener_ip", &listener_ip.to_string()])
            .args(["--control_ip", &control_ip.to_string()])
            .args(["--port", &CONTROL_PORT.to_string()])
            .args(["--engine", &self.options.engine])
            .arg("--server_crt")
            .arg(self.work.join(format!("{name}.crt")))
            .arg("--server_key")
            .arg(self.work.join(format!("{name}.key")))
            .arg("--token_file")
            .arg(self.work.join("tokens"))
            .args(&self.options.s2cs_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if self.options.wan_plaintext {
            cmd.arg("--wan_plaintext");
        }
        let cores = match &self.options.cores {
            Some((gn1, gn2)) => Some(if host == Host::Gn1 {
                gn1.clone()
            } else {
                gn2.clone()
            }),
            // Two polling dataplanes on one 2-core host: one core each.
            None if self.options.on_dpdk() => {
                Some(if host == Host::Gn1 { "0" } else { "1" }.to_owned())
            }
            None => None,
        };
        if let Some(c) = cores {
            cmd.args(["--cores", &c]);
        }
        if self.options.on_dpdk() {
            let (lan, wan) = if host == Host::Gn1 {
                (GN1_LAN_IP, GN1_WAN_IP)
            } else {
                (GN2_LAN_IP, GN2_WAN_IP)
            };
            cmd.args(["--nic_profile", "af_packet_jumbo"])
                // Two pollers on a 2-core host share it with the apps and the kernel: nap when
                // idle (measured 1.47 -> 1.90 Gbit/s through both gateways at 20-50 us).
                .args(["--dpdk_idle_sleep_us", "20"])
                .args([
                    "--dpdk_port",
                    &format!("name=lan,ipv4={lan}/{PREFIX_LEN},iface=lan0"),
                ])
                .args([
                    "--dpdk_port",
                    &format!("name=wan,ipv4={wan}/{PREFIX_LEN},iface=wan0"),
                ]);
        }
        cmd.spawn()
            .with_context(|| format!("starting s2cs on {name}"))
    }

    fn wait_gateways(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        for (name, ip) in [("gn1", GN1_CTL_IP), ("gn2", GN2_CTL_IP)] {
            loop {
                let child = if name == "gn1" {
                    &mut self.gn1
                } else {
                    &mut self.gn2
                };
                if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    bail!("s2cs on {name} exited ({status}):\n{}", self.log(name));
                }
                let out = self
                    .s2uc(name)
                    .args(["list", "--s2cs", &format!("{ip}:{CONTROL_PORT}")])
                    .output()?;
                if out.status.success() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "s2cs on {name} did not answer in 20 s: {}\n{}",
                        String::from_utf8_lossy(&out.stderr),
                        self.log(name)
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// The log of `gn1` or `gn2` so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.work.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// `s2uc` on the control host, with the token and the certificate of gateway `cert_of`.
    pub fn s2uc(&self, cert_of: &str) -> Command {
        let mut cmd = self
            .topo
            .command(Host::Ctl, self.options.bin_dir.join("s2uc"));
        cmd.arg("--token-file")
            .arg(self.work.join("user.token"))
            .arg("--server_cert")
            .arg(self.work.join(format!("{cert_of}.crt")))
            .stdin(Stdio::null());
        cmd
    }

    /// `s2uc connect`: one command sets up both gateways.
    pub fn connect(&self, num_conn: usize, prod_ports: &[u16]) -> Result<Session> {
        let targets: Vec<String> = prod_ports
            .iter()
            .map(|p| format!("{PROD_APP_IP}:{p}"))
            .collect();
        let uid_file = self.work.join("session.uid");
        let mut cmd = self
            .topo
            .command(Host::Ctl, self.options.bin_dir.join("s2uc"));
        cmd.arg("--token-file")
            .arg(self.work.join("user.token"))
            .arg("connect")
            .args(["--prod-s2cs", &format!("{GN1_CTL_IP}:{CONTROL_PORT}")])
            .args(["--cons-s2cs", &format!("{GN2_CTL_IP}:{CONTROL_PORT}")])
            .arg("--prod-server-cert")
            .arg(self.work.join("gn1.crt"))
            .arg("--cons-server-cert")
            .arg(self.work.join("gn2.crt"))
            .args(["--prod-targets", &targets.join(",")])
            .args(["--num-conn", &num_conn.to_string()])
            .args(["--allow-prod-from", &GN2_WAN_IP.to_string()])
            .args(["--allow-cons-from", &CONS_APP_IP.to_string()])
            .arg("--uid-out")
            .arg(&uid_file)
            .arg("--json");
        let out = output_ok(&mut cmd, "s2uc connect")?;
        let report: ConnectReport = serde_json::from_str(out.trim())
            .with_context(|| format!("s2uc connect printed unexpected output: {out}"))?;
        Ok(Session {
            uid_file: report.uid_file,
            cons_listeners: parse_addrs(&report.cons_listeners)?,
            wan_security: report.wan_security,
            setup_ms: report.setup_ms,
        })
    }

    /// Upstream's two-step flow: `inbound-request` at the producer facility, then
    /// `outbound-request` at the consumer facility with the uid and the producer listeners.
    pub fn two_step(&self, num_conn: usize, prod_ports: &[u16]) -> Result<Session> {
        let started = Instant::now();
        let uid_file = self.work.join("session.uid");
        let ports: Vec<String> = prod_ports.iter().map(u16::to_string).collect();
        let inbound = output_ok(
            self.s2uc("gn1")
                .arg("inbound-request")
                .args(["--s2cs", &format!("{GN1_CTL_IP}:{CONTROL_PORT}")])
                .args(["--remote_ip", &PROD_APP_IP.to_string()])
                .args(["--receiver_ports", &ports.join(",")])
                .args(["--num_conn", &num_conn.to_string()])
                .arg("--uid-out")
                .arg(&uid_file),
            "s2uc inbound-request",
        )?;
        let prod_listeners = listeners_line(&inbound)?;
        let outbound = output_ok(
            self.s2uc("gn2")
                .arg("outbound-request")
                .args(["--s2cs", &format!("{GN2_CTL_IP}:{CONTROL_PORT}")])
                .args(["--num_conn", &num_conn.to_string()])
                .arg(format!("@{}", uid_file.display()))
                .arg(prod_listeners.join(",")),
            "s2uc outbound-request",
        )?;
        let cons = listeners_line(&outbound)?;
        let wan = outbound
            .lines()
            .find_map(|l| l.strip_prefix("wan: "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        Ok(Session {
            uid_file,
            cons_listeners: parse_addrs(&cons)?,
            wan_security: wan,
            setup_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Releases a session on both gateways.
    pub fn release(&self, session: &Session) -> Result<()> {
        output_ok(
            self.s2uc("gn1")
                .arg("release")
                .arg(format!("@{}", session.uid_file.display()))
                .args(["--s2cs", &format!("{GN1_CTL_IP}:{CONTROL_PORT}")]),
            "s2uc release (gn1)",
        )?;
        output_ok(
            self.s2uc("gn2")
                .arg("release")
                .arg(format!("@{}", session.uid_file.display()))
                .args(["--s2cs", &format!("{GN2_CTL_IP}:{CONTROL_PORT}")]),
            "s2uc release (gn2)",
        )?;
        Ok(())
    }

    /// `s2uc status --json` of the session on gateway `gn1` or `gn2`.
    pub fn status(&self, session: &Session, gateway: &str) -> Result<serde_json::Value> {
        let ip = if gateway == "gn1" {
            GN1_CTL_IP
        } else {
            GN2_CTL_IP
        };
        let out = output_ok(
            self.s2uc(gateway)
                .arg("status")
                .arg(format!("@{}", session.uid_file.display()))
                .args(["--s2cs", &format!("{ip}:{CONTROL_PORT}")])
                .arg("--json"),
            "s2uc status",
        )?;
        Ok(serde_json::from_str(out.trim())?)
    }

    /// Runs the producer app on `prod_ports` and the consumer app against the session's
    /// listeners, `down` bytes per stream producer → consumer and `up` bytes back, and checks
    /// every stream's SHA-256 in both directions.
    pub fn transfer(
        &self,
        session: &Session,
        prod_ports: &[u16],
        down: u64,
        up: u64,
        seed: u64,
    ) -> Result<Transfer> {
        let listen: Vec<String> = prod_ports
            .iter()
            .map(|p| format!("{PROD_APP_IP}:{p}"))
            .collect();
        // Every producer listener serves as many connections as streams map onto it.
        let n = session.cons_listeners.len();
        let conns = n.div_ceil(prod_ports.len());
        ensure!(
            n.is_multiple_of(prod_ports.len()),
            "streams ({n}) must be a multiple of producer ports"
        );
        let mut producer = self
            .topo
            .command(Host::Prod, self.options.bin_dir.join("s2testbed"))
            .arg("producer")
            .args(["--listen", &listen.join(",")])
            .args(["--bytes", &down.to_string()])
            .args(["--seed", &seed.to_string()])
            .args(["--conns", &conns.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the producer app")?;
        let stdout = producer.stdout.take().context("producer stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(l)) if l.trim() == "READY" => {}
            other => {
                let _ = producer.kill();
                let out = producer.wait_with_output()?;
                bail!(
                    "the producer app did not start ({other:?}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let connect: Vec<String> = session
            .cons_listeners
            .iter()
            .map(ToString::to_string)
            .collect();
        let started = Instant::now();
        let consumer_out = output_ok(
            self.topo
                .command(Host::Cons, self.options.bin_dir.join("s2testbed"))
                .arg("consumer")
                .args(["--connect", &connect.join(",")])
                .args(["--bytes", &up.to_string()])
                .args(["--seed", &seed.to_string()]),
            "consumer app",
        );
        let elapsed = started.elapsed().as_secs_f64();
        let consumer_out = match consumer_out {
            Ok(o) => o,
            Err(e) => {
                let _ = producer.kill();
                let _ = producer.wait();
                return Err(e);
            }
        };
        let producer_lines: Vec<String> = lines.map_while(std::result::Result::ok).collect();
        let status = producer.wait()?;
        ensure!(status.success(), "the producer app failed ({status})");
        let parse = |text: &[String]| -> Result<Vec<TransferReport>> {
            text.iter()
                .filter(|l| l.trim_start().starts_with('{'))
                .map(|l| serde_json::from_str(l).with_context(|| format!("bad report line: {l}")))
                .collect()
        };
        let producer_reports = parse(&producer_lines)?;
        let consumer_reports = parse(&consumer_out.lines().map(str::to_owned).collect::<Vec<_>>())?;
        ensure!(
            consumer_reports.len() == n,
            "{} consumer reports for {n} streams",
            consumer_reports.len()
        );
        ensure!(
            producer_reports.len() == n,
            "{} producer reports for {n} streams",
            producer_reports.len()
        );
        // Consumer stream i reaches producer listener i mod ports (targets are cycled); the
        // producer's reports per listener may come in any order, so compare as multisets.
        for c in &consumer_reports {
            let listener = c.stream % prod_ports.len();
            let want = expected_sha256(producer_seed(seed, listener), down);
            ensure!(
                c.received_bytes == down && c.received_sha256 == want,
                "stream {}: consumer got {} bytes with SHA-256 {}, expected {down} bytes with {want}",
                c.stream,
                c.received_bytes,
                c.received_sha256
            );
        }
        let mut want_up: Vec<String> = (0..n)
            .map(|i| expected_sha256(consumer_seed(seed, i), up))
            .collect();
        let mut got_up: Vec<String> = producer_reports
            .iter()
            .map(|p| p.received_sha256.clone())
            .collect();
        want_up.sort();
        got_up.sort();
        ensure!(
            want_up == got_up && producer_reports.iter().all(|p| p.received_bytes == up),
            "consumer → producer data differs: expected hashes {want_up:?}, got {got_up:?}"
        );
        let total_down: u64 = consumer_reports.iter().map(|r| r.received_bytes).sum();
        Ok(Transfer {
            producer: producer_reports,
            consumer: consumer_reports,
            goodput_down_gbps: total_down as f64 * 8.0 / elapsed / 1e9,
            elapsed_secs: elapsed,
        })
    }

    fn stop_gateways(&mut self) {
        for child in [self.gn1.take(), self.gn2.take()].into_iter().flatten() {
            stop_child(child);
        }
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.stop_gateways();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// SIGTERM, then SIGKILL after 5 s.
fn stop_child(mut child: Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a pid we spawned; at worst the process is already gone.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Hands the gateways' data veths to the DPDK dataplane: the kernel gives up their addresses
/// and stops forwarding (the dataplane owns those addresses now), and the apps' veths send
/// complete checksums and MTU-sized frames, which a packet socket on the far end needs.
fn prepare_dpdk(topo: &Topology) -> Result<()> {
    for gn in [Host::Gn1, Host::Gn2] {
        for dev in ["lan0", "wan0"] {
            run_ok(
                topo.command(gn, "ip").args(["addr", "flush", "dev", dev]),
                "ip addr flush",
            )?;
        }
        run_ok(
            topo.command(gn, "sysctl")
                .args(["-qw", "net.ipv4.ip_forward=0"]),
            "sysctl ip_forward=0",
        )?;
    }
    for app in [Host::Prod, Host::Cons] {
        run_ok(
            topo.command(app, "ethtool")
                .args(["-K", "lan0", "tx", "off", "tso", "off", "gso", "off"]),
            "ethtool -K lan0 (needs the ethtool package)",
        )?;
    }
    Ok(())
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<()> {
    output_ok(cmd, what).map(drop)
}

/// Runs `cmd`, returns its stdout, fails with its stderr.
fn output_ok(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn listeners_line(out: &str) -> Result<Vec<String>> {
    out.lines()
        .find_map(|l| l.strip_prefix("Listeners: "))
        .map(|l| l.split(',').map(|s| s.trim().to_owned()).collect())
        .with_context(|| format!("no 'Listeners:' line in: {out}"))
}

fn parse_addrs(list: &[String]) -> Result<Vec<SocketAddr>> {
    list.iter()
        .map(|s| {
            s.parse()
                .with_context(|| format!("listener '{s}' is not ip:port"))
        })
        .collect()
}
