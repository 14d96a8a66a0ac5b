//! The paper's Fig. 5 topology, built from Linux network namespaces.
//!
//! ```text
//!  prod            gn1                     gn2            cons
//! [lan0]------[lan0]  [wan0]-----------[wan0]  [lan0]------[lan0]
//! 172.16.0.1  172.16.0.2  172.16.1.1   172.16.1.2  172.16.2.1  172.16.2.2
//!                 [mgmt0]                 [mgmt0]
//!               172.16.9.2              172.16.9.3
//!                    \                     /
//!                     [gn1]--(br0)--[gn2]      ctl: br0 = 172.16.9.1
//! ```
//!
//! Every host is a namespace named `{prefix}-{host}` (`s2tb-prod`, `s2tb-gn1`,
//! ...). veth pairs are created directly inside their namespaces, so
//! interface names never collide in the root namespace and several testbeds
//! with different prefixes can coexist. Data links (LAN and WAN) use the
//! configured MTU (jumbo frames by default); control links keep 1500.
//!
//! Besides the proxied path (producer ↔ GN1 ↔ GN2 ↔ consumer through the
//! SciStream gateways), GN1 and GN2 forward IPv4 and have routes to the far
//! LAN, so a *direct* routed path exists for baseline measurements:
//! `cons` can reach `172.16.0.1` without any proxy.
//!
//! With [`Topology::wan`] set, the WAN is emulated (this kernel has no
//! `tc netem`): a sixth namespace `{prefix}-wan` replaces the direct veth,
//! and `s2delay` forwards frames between its interfaces `a` and `b` after
//! the link's delay ([`crate::wan`], `docs/wan-emulation.md`):
//!
//! ```text
//!   gn1 [wan0]----[a]  wan  [b]----[wan0] gn2      (no addresses on a, b)
//! ```
//!
//! Building or removing the testbed needs root ([`require_root`]). The module
//! runs the `ip` binary from iproute2 (and `sysctl` inside the gateway
//! namespaces, `ethtool` and `s2delay` with a WAN link); it does not print
//! anything.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::net::Ipv4Addr;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::wan::{DelayStats, WanLink};

/// Producer application host, on the producer LAN (`prod` `lan0`).
pub const PROD_APP_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
/// GN1's producer-LAN side (`gn1` `lan0`).
pub const GN1_LAN_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);
/// GN1's WAN side (`gn1` `wan0`).
pub const GN1_WAN_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 1);
/// GN2's WAN side (`gn2` `wan0`).
pub const GN2_WAN_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 2);
/// GN2's consumer-LAN side (`gn2` `lan0`).
pub const GN2_LAN_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 2, 1);
/// Consumer application host, on the consumer LAN (`cons` `lan0`).
pub const CONS_APP_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 2, 2);
/// The control host (`ctl` `br0`), where control-plane services run.
pub const CTL_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 9, 1);
/// GN1 on the control network (`gn1` `mgmt0`).
pub const GN1_CTL_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 9, 2);
/// GN2 on the control network (`gn2` `mgmt0`).
pub const GN2_CTL_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 9, 3);
/// Prefix length of every testbed subnet.
pub const PREFIX_LEN: u8 = 24;

/// MTU used on the control network links.
pub const CONTROL_MTU: u32 = 1500;
/// Default namespace-name prefix.
pub const DEFAULT_PREFIX: &str = "s2tb";
/// Default MTU of the data links (jumbo frames, as on the paper's testbed).
pub const DEFAULT_MTU: u32 = 9000;

/// Smallest MTU accepted for the data links (IPv4 minimum).
const MIN_MTU: u32 = 68;
/// Largest MTU a veth accepts.
const MAX_MTU: u32 = 65535;
/// How long [`Topology::up`] waits for every link to be operationally up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest prefix accepted, so namespace names stay short and readable.
const MAX_PREFIX_LEN: usize = 32;

/// Namespace suffix of the WAN emulator (`{prefix}-wan`).
pub const WAN_NS_SUFFIX: &str = "wan";
/// The WAN emulator's interface towards GN1.
pub const WAN_IFACE_GN1: &str = "a";
/// The WAN emulator's interface towards GN2.
pub const WAN_IFACE_GN2: &str = "b";
/// Maximum TCP buffer (`tcp_rmem`/`tcp_wmem`) in the data namespaces when
/// the WAN is emulated, for long fat pipes (the paper used 512 MiB; the
/// namespaces' `net.core.rmem_max` is read-only on this kernel, but TCP
/// autotuning only needs `tcp_rmem`/`tcp_wmem`).
pub const WAN_TCP_BUFFER_MAX: u64 = 256 << 20;
/// How long [`Topology::up`] waits for `s2delay` to report `READY`, and
/// [`Topology::down`] for it to exit.
const DELAY_LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// Offloads turned off on `gn1:wan0` and `gn2:wan0`, the senders into the
/// delay line (see `docs/wan-emulation.md`): `tx` so every frame carries its
/// final checksum (a `CHECKSUM_PARTIAL` frame read from a packet socket has
/// none, and the far end drops it), `tso` so the stack never hands the veth
/// a super-frame larger than the MTU (ethtool also drops TSO with `tx`; it
/// is named for clarity). GSO may stay on: without TSO the stack segments in
/// software before the frame reaches the veth.
const WAN_SENDER_OFFLOADS_OFF: [&str; 4] = ["tx", "off", "tso", "off"];
/// Offloads turned off on the delay line's `a` and `b`: `gro`, so the veths
/// never merge received frames into a super-frame the line cannot send (off
/// by default on veths; with it on, 64 KiB frames arrive and `send` fails).
const WAN_PORT_OFFLOADS_OFF: [&str; 2] = ["gro", "off"];

/// Everything that can go wrong while building, inspecting or removing the
/// testbed.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// The process is not running with effective uid 0.
    #[error(
        "the testbed needs root (network namespaces, veth); run as root, e.g. sudo \
         (effective uid is {euid})"
    )]
    NotRoot {
        /// The effective uid of this process.
        euid: u32,
    },
    /// The `ip` binary could not be found.
    #[error(
        "the `ip` binary (iproute2) was not found in PATH; install it, e.g. apt-get install iproute2"
    )]
    IpMissing {
        /// The error from trying to run `ip`.
        source: io::Error,
    },
    /// A command could not be started at all.
    #[error("could not run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not be started.
        source: io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status, as printed by the standard library.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The namespace-name prefix is unusable.
    #[error("invalid testbed prefix {prefix:?}: {reason}")]
    InvalidPrefix {
        /// The prefix given.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The data-link MTU is out of range.
    #[error("invalid MTU {mtu}: must be between {MIN_MTU} and {MAX_MTU}")]
    InvalidMtu {
        /// The MTU given.
        mtu: u32,
    },
    /// Some links did not become operationally up in time.
    #[error("testbed {prefix:?}: links still not up after {waited:?}: {links}")]
    NotReady {
        /// The testbed prefix.
        prefix: String,
        /// How long we waited.
        waited: Duration,
        /// The links that were not up, as `namespace/interface=STATE`.
        links: String,
    },
    /// The `s2delay` binary is not where the testbed looks for it.
    #[error(
        "the WAN emulator {} is missing; build the workspace first (cargo build --release \
         --workspace), or run without a WAN profile",
        path.display()
    )]
    DelayLineMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// `s2delay` did not start or did not report `READY`.
    #[error("the WAN emulator did not start (`{command}`): {detail}")]
    DelayLineStart {
        /// Its command line.
        command: String,
        /// What happened, with its log.
        detail: String,
    },
    /// The WAN emulator's counters could not be read.
    #[error("reading the WAN emulator's counters from {} failed: {detail}", path.display())]
    DelayLineStats {
        /// The stats file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The WAN link is invalid.
    #[error("invalid WAN link: {0}")]
    InvalidWan(#[from] crate::wan::LineConfigError),
    /// Bringing the testbed up failed, and removing the partial testbed
    /// failed too; remove it by hand with `s2testbed down --prefix PREFIX`.
    #[error(
        "setting up testbed {prefix:?} failed ({setup}); removing the partial testbed also \
         failed ({cleanup}); remove it by hand: s2testbed down --prefix {prefix}"
    )]
    SetupAndCleanup {
        /// The testbed prefix.
        prefix: String,
        /// The error that stopped the setup.
        setup: Box<TestbedError>,
        /// The error from the cleanup attempt.
        cleanup: Box<TestbedError>,
    },
}

/// Returns this process's effective uid.
fn euid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory we own and
    // cannot fail; it is always safe to call.
    unsafe { libc::geteuid() }
}

/// Checks that the testbed can be built: the process must be root and the
/// `ip` binary from iproute2 must be installed.
pub fn require_root() -> Result<(), TestbedError> {
    let euid = euid();
    if euid != 0 {
        return Err(TestbedError::NotRoot { euid });
    }
    match Command::new("ip").arg("-V").stdin(Stdio::null()).output() {
        Ok(_) => Ok(()),
        Err(source) if source.kind() == io::ErrorKind::NotFound => {
            Err(TestbedError::IpMissing { source })
        }
        Err(source) => Err(TestbedError::Spawn {
            command: "ip -V".to_owned(),
            source,
        }),
    }
}

/// A host (network namespace) of the testbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host {
    /// The producer application host, on the producer LAN.
    Prod,
    /// Gateway node 1: producer LAN + WAN + control network.
    Gn1,
    /// Gateway node 2: WAN + consumer LAN + control network.
    Gn2,
    /// The consumer application host, on the consumer LAN.
    Cons,
    /// The control host: the control-network bridge and control services.
    Ctl,
}

impl Host {
    /// All hosts, in creation order.
    pub const ALL: [Host; 5] = [Host::Prod, Host::Gn1, Host::Gn2, Host::Cons, Host::Ctl];

    /// The short name used as the namespace suffix (`prod`, `gn1`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Host::Prod => "prod",
            Host::Gn1 => "gn1",
            Host::Gn2 => "gn2",
            Host::Cons => "cons",
            Host::Ctl => "ctl",
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One interface of a testbed namespace, as reported by `ip -brief addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Interface name (without the `@ifN` peer suffix).
    pub name: String,
    /// Operational state (`UP`, `DOWN`, `UNKNOWN`, ...).
    pub state: String,
    /// IPv4 addresses in CIDR notation.
    pub addrs: Vec<String>,
}

/// The Fig. 5 testbed: five namespaces named `{prefix}-{host}` (six with
/// an emulated WAN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Namespace-name prefix; letters, digits, `_` and `-` only.
    pub prefix: String,
    /// MTU of the data links (LAN and WAN).
    pub mtu: u32,
    /// The emulated WAN between GN1 and GN2; `None` for a direct veth.
    pub wan: Option<WanLink>,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            mtu: DEFAULT_MTU,
            wan: None,
        }
    }
}

impl Topology {
    /// A topology with the given prefix and the default MTU.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// The namespace name of `host`, e.g. `s2tb-gn1`.
    pub fn ns(&self, host: Host) -> String {
        format!("{}-{}", self.prefix, host.name())
    }

    /// `ip netns exec <ns> <program>`, ready for `.args(...)`.
    pub fn command(&self, host: Host, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.arg("netns").arg("exec").arg(self.ns(host)).arg(program);
        cmd
    }

    /// The namespace of the WAN emulator, e.g. `s2tb-wan` (present only
    /// with [`wan`](Self::wan) set).
    pub fn wan_ns(&self) -> String {
        format!("{}-{WAN_NS_SUFFIX}", self.prefix)
    }

    /// `ip netns exec <wan ns> <program>`, ready for `.args(...)`.
    pub fn wan_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.arg("netns").arg("exec").arg(self.wan_ns()).arg(program);
        cmd
    }

    /// Where `s2delay` writes its counters (snapshots on
    /// [`wan_stats`](Self::wan_stats), the final ones when it stops, which
    /// stay after [`down`](Self::down)).
    pub fn wan_stats_path(&self) -> PathBuf {
        std::env::temp_dir().join(format!("s2delay-{}.json", self.prefix))
    }

    /// `s2delay`'s log (its stderr).
    pub fn wan_log_path(&self) -> PathBuf {
        std::env::temp_dir().join(format!("s2delay-{}.log", self.prefix))
    }

    /// True if any namespace of this testbed exists (a complete or a
    /// partial testbed is present).
    pub fn exists(&self) -> bool {
        let Ok(present) = list_namespaces() else {
            return false;
        };
        present.contains(&self.wan_ns()) || Host::ALL.iter().any(|&h| present.contains(&self.ns(h)))
    }

    /// True if the namespace of `host` exists.
    pub fn host_exists(&self, host: Host) -> bool {
        list_namespaces().is_ok_and(|present| present.contains(&self.ns(host)))
    }

    /// Builds the testbed. Idempotent: an existing (possibly partial)
    /// testbed with the same prefix is torn down first and rebuilt.
    ///
    /// Returns once every link is operationally up (the kernel activates a
    /// link's queue asynchronously, and packets sent before that are
    /// dropped), waiting at most [`READY_TIMEOUT`].
    ///
    /// On failure, whatever was created is removed again and the error names
    /// the `ip` command that failed together with its stderr.
    pub fn up(&self) -> Result<(), TestbedError> {
        self.validate()?;
        require_root()?;
        if self.exists() {
            self.down()?;
        }
        let result = self
            .plan()
            .iter()
            .try_for_each(|step| run_ip(step))
            .and_then(|()| self.wait_ready(READY_TIMEOUT))
            .and_then(|()| self.start_delay_line());
        if let Err(setup) = result {
            return match self.down() {
                Ok(()) => Err(setup),
                Err(cleanup) => Err(TestbedError::SetupAndCleanup {
                    prefix: self.prefix.clone(),
                    setup: Box::new(setup),
                    cleanup: Box::new(cleanup),
                }),
            };
        }
        Ok(())
    }

    /// Like [`up`](Self::up), but returns a guard that tears the testbed down
    /// when dropped (also while unwinding from a failed assertion).
    pub fn up_guarded(self) -> Result<TestbedGuard, TestbedError> {
        self.up()?;
        Ok(TestbedGuard {
            topology: self,
            armed: true,
        })
    }

    /// Deletes the testbed's namespaces (which deletes their veths and the
    /// bridge). Idempotent: absent namespaces are not an error.
    ///
    /// Every namespace is attempted even if one fails; the first error is
    /// returned.
    pub fn down(&self) -> Result<(), TestbedError> {
        let present = list_namespaces()?;
        let mut first_error = None;
        // The WAN emulator first: stop s2delay (so it writes its final
        // counters), then its namespace.
        let wan = self.wan_ns();
        if present.contains(&wan) {
            let removed = require_root()
                .and_then(|()| self.stop_delay_line())
                .and_then(|()| run_ip(&["netns", "del", &wan]));
            if let Err(e) = removed {
                first_error.get_or_insert(e);
            }
        }
        // Reverse creation order: ctl first, prod last.
        for host in Host::ALL.iter().rev() {
            let ns = self.ns(*host);
            if !present.contains(&ns) {
                continue;
            }
            if let Err(e) = require_root().and_then(|()| run_ip(&["netns", "del", &ns])) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The interfaces of `host` that are not loopback, with their state and
    /// IPv4 addresses.
    pub fn interfaces(&self, host: Host) -> Result<Vec<InterfaceInfo>, TestbedError> {
        interfaces_in(&self.ns(host))
    }

    /// The interfaces of the WAN emulator's namespace (`a` and `b`), if it
    /// exists.
    pub fn wan_interfaces(&self) -> Result<Option<Vec<InterfaceInfo>>, TestbedError> {
        if !list_namespaces()?.contains(&self.wan_ns()) {
            return Ok(None);
        }
        interfaces_in(&self.wan_ns()).map(Some)
    }

    /// Waits until every non-loopback interface of every host (and of the
    /// WAN emulator, if any) is `UP`.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), TestbedError> {
        let mut namespaces: Vec<String> = Host::ALL.iter().map(|&h| self.ns(h)).collect();
        if self.wan.is_some() {
            namespaces.push(self.wan_ns());
        }
        let start = Instant::now();
        loop {
            let mut not_up = Vec::new();
            for ns in &namespaces {
                for iface in interfaces_in(ns)? {
                    if iface.state != "UP" {
                        not_up.push(format!("{ns}/{}={}", iface.name, iface.state));
                    }
                }
            }
            if not_up.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(TestbedError::NotReady {
                    prefix: self.prefix.clone(),
                    waited: timeout,
                    links: not_up.join(", "),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The running WAN emulator's counters now: `Ok(None)` without an
    /// emulated WAN. Asks `s2delay` for a snapshot (SIGUSR1) and reads it.
    pub fn wan_stats(&self) -> Result<Option<DelayStats>, TestbedError> {
        if self.wan.is_none() {
            return Ok(None);
        }
        let path = self.wan_stats_path();
        let stats_error = |detail: String| TestbedError::DelayLineStats {
            path: path.clone(),
            detail,
        };
        let _ = fs::remove_file(&path);
        let pids = run_ip_output(&["netns", "pids", &self.wan_ns()])?;
        let pids: Vec<u32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            return Err(stats_error(format!(
                "s2delay is not running in {}; see {}",
                self.wan_ns(),
                self.wan_log_path().display()
            )));
        }
        for pid in pids {
            crate::wan::sys::send_signal(pid, libc::SIGUSR1)
                .map_err(|e| stats_error(format!("signalling s2delay (pid {pid}): {e}")))?;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match DelayStats::read(&path) {
                Ok(stats) => return Ok(Some(stats)),
                Err(e) if Instant::now() >= deadline => {
                    return Err(stats_error(format!("no snapshot within 2 s: {e}")));
                }
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Starts `s2delay` in the WAN namespace (if the WAN is emulated) and
    /// waits for its `READY`.
    fn start_delay_line(&self) -> Result<(), TestbedError> {
        let Some(link) = &self.wan else {
            return Ok(());
        };
        let bin = crate::scenario::default_bin_dir().join("s2delay");
        if !bin.exists() {
            return Err(TestbedError::DelayLineMissing { path: bin });
        }
        let stats = self.wan_stats_path();
        let _ = fs::remove_file(&stats);
        let mut cmd = self.wan_command(&bin);
        cmd.args(delay_line_args(link)).arg("--stats").arg(&stats);
        let command = format!("{cmd:?}");
        let start_error = |detail: String| TestbedError::DelayLineStart {
            command: command.clone(),
            detail,
        };
        let log_path = self.wan_log_path();
        let log = fs::File::create(&log_path)
            .map_err(|e| start_error(format!("creating {}: {e}", log_path.display())))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| start_error(format!("spawning: {e}")))?;
        let stdout = child.stdout.take();
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::spawn(move || {
            let line = stdout.and_then(|s| BufReader::new(s).lines().next());
            let _ = ready_tx.send(matches!(line, Some(Ok(l)) if l.trim() == "READY"));
        });
        let ready = ready_rx.recv_timeout(DELAY_LINE_TIMEOUT).unwrap_or(false);
        if !ready {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            return Err(start_error(format!(
                "no READY within {DELAY_LINE_TIMEOUT:?} ({status}): {}",
                log.trim()
            )));
        }
        // Reaps s2delay when it exits (it outlives this process after
        // `s2testbed up`; then init reaps it).
        thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(())
    }

    /// Stops every process in the WAN namespace (SIGTERM, then SIGKILL
    /// after [`DELAY_LINE_TIMEOUT`]) and waits until they are gone.
    fn stop_delay_line(&self) -> Result<(), TestbedError> {
        let ns = self.wan_ns();
        let pids = || -> Result<Vec<u32>, TestbedError> {
            let out = run_ip_output(&["netns", "pids", &ns])?;
            Ok(out
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect())
        };
        for pid in pids()? {
            let _ = crate::wan::sys::send_signal(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + DELAY_LINE_TIMEOUT;
        loop {
            let left = pids()?;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                for pid in &left {
                    let _ = crate::wan::sys::send_signal(*pid, libc::SIGKILL);
                }
                thread::sleep(Duration::from_millis(100));
                return Ok(());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Checks the prefix and MTU.
    fn validate(&self) -> Result<(), TestbedError> {
        let invalid = |reason| TestbedError::InvalidPrefix {
            prefix: self.prefix.clone(),
            reason,
        };
        if self.prefix.is_empty() {
            return Err(invalid("it is empty"));
        }
        if self.prefix.len() > MAX_PREFIX_LEN {
            return Err(invalid("it is longer than 32 characters"));
        }
        if !self
            .prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid("use only ASCII letters, digits, '_' and '-'"));
        }
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) {
            return Err(TestbedError::InvalidMtu { mtu: self.mtu });
        }
        if let Some(link) = &self.wan {
            link.a_to_b().validate()?;
        }
        Ok(())
    }

    /// The `ip` invocations (argument vectors, without the leading `ip`)
    /// that build the testbed, in order.
    fn plan(&self) -> Vec<Vec<String>> {
        let prod = self.ns(Host::Prod);
        let gn1 = self.ns(Host::Gn1);
        let gn2 = self.ns(Host::Gn2);
        let cons = self.ns(Host::Cons);
        let ctl = self.ns(Host::Ctl);
        let mtu = self.mtu.to_string();
        let ctl_mtu = CONTROL_MTU.to_string();
        let cidr = |ip: Ipv4Addr| format!("{ip}/{PREFIX_LEN}");

        let mut steps: Vec<Vec<String>> = Vec::new();
        let mut step = |args: &[&str]| steps.push(args.iter().map(|s| (*s).to_owned()).collect());

        let wan = self.wan_ns();
        let mut namespaces: Vec<String> = Host::ALL.iter().map(|&h| self.ns(h)).collect();
        if self.wan.is_some() {
            namespaces.push(wan.clone());
        }
        for ns in &namespaces {
            step(&["netns", "add", ns]);
        }
        for ns in &namespaces {
            step(&["-n", ns, "link", "set", "dev", "lo", "up"]);
        }

        // veth pairs, created directly in their namespaces.
        let veth = |step: &mut dyn FnMut(&[&str]), a: (&str, &str), b: (&str, &str), mtu: &str| {
            step(&[
                "link", "add", a.1, "netns", a.0, "mtu", mtu, "type", "veth", "peer", "name", b.1,
                "netns", b.0, "mtu", mtu,
            ]);
        };
        veth(&mut step, (&prod, "lan0"), (&gn1, "lan0"), &mtu);
        if self.wan.is_some() {
            veth(&mut step, (&gn1, "wan0"), (&wan, WAN_IFACE_GN1), &mtu);
            // `wan0` first: iproute2 would read a bare `b` as `broadcast`.
            veth(&mut step, (&gn2, "wan0"), (&wan, WAN_IFACE_GN2), &mtu);
        } else {
            veth(&mut step, (&gn1, "wan0"), (&gn2, "wan0"), &mtu);
        }
        veth(&mut step, (&gn2, "lan0"), (&cons, "lan0"), &mtu);

        // Control network: a bridge in ctl with one port per gateway.
        step(&["-n", &ctl, "link", "add", "br0", "type", "bridge"]);
        veth(&mut step, (&gn1, "mgmt0"), (&ctl, "gn1"), &ctl_mtu);
        veth(&mut step, (&gn2, "mgmt0"), (&ctl, "gn2"), &ctl_mtu);
        for port in ["gn1", "gn2"] {
            step(&["-n", &ctl, "link", "set", "dev", port, "master", "br0"]);
        }

        let addrs = [
            (&prod, "lan0", PROD_APP_IP),
            (&gn1, "lan0", GN1_LAN_IP),
            (&gn1, "wan0", GN1_WAN_IP),
            (&gn2, "wan0", GN2_WAN_IP),
            (&gn2, "lan0", GN2_LAN_IP),
            (&cons, "lan0", CONS_APP_IP),
            (&ctl, "br0", CTL_IP),
            (&gn1, "mgmt0", GN1_CTL_IP),
            (&gn2, "mgmt0", GN2_CTL_IP),
        ];
        for (ns, dev, ip) in addrs {
            step(&["-n", ns, "addr", "add", &cidr(ip), "dev", dev]);
        }
        let links = [
            (&prod, "lan0"),
            (&gn1, "lan0"),
            (&gn1, "wan0"),
            (&gn1, "mgmt0"),
            (&gn2, "wan0"),
            (&gn2, "lan0"),
            (&gn2, "mgmt0"),
            (&cons, "lan0"),
            (&ctl, "br0"),
            (&ctl, "gn1"),
            (&ctl, "gn2"),
        ];
        for (ns, dev) in links {
            step(&["-n", ns, "link", "set", "dev", dev, "up"]);
        }
        if self.wan.is_some() {
            // The emulator's veths carry frames for GN1's and GN2's MACs.
            for dev in [WAN_IFACE_GN1, WAN_IFACE_GN2] {
                step(&["-n", &wan, "link", "set", "dev", dev, "promisc", "on", "up"]);
            }
            for (ns, dev, offloads) in [
                (&gn1, "wan0", &WAN_SENDER_OFFLOADS_OFF[..]),
                (&gn2, "wan0", &WAN_SENDER_OFFLOADS_OFF[..]),
                (&wan, WAN_IFACE_GN1, &WAN_PORT_OFFLOADS_OFF[..]),
                (&wan, WAN_IFACE_GN2, &WAN_PORT_OFFLOADS_OFF[..]),
            ] {
                let mut args = vec!["netns", "exec", ns, "ethtool", "-K", dev];
                args.extend(offloads);
                step(&args);
            }
            let max = WAN_TCP_BUFFER_MAX.to_string();
            let rmem = format!("net.ipv4.tcp_rmem=4096 131072 {max}");
            let wmem = format!("net.ipv4.tcp_wmem=4096 16384 {max}");
            for ns in [&prod, &gn1, &gn2, &cons] {
                step(&["netns", "exec", ns, "sysctl", "-qw", &rmem, &wmem]);
            }
        }

        // The direct (non-proxied) routed path, for baselines.
        let gn1_lan = GN1_LAN_IP.to_string();
        let gn2_lan = GN2_LAN_IP.to_string();
        let gn1_wan = GN1_WAN_IP.to_string();
        let gn2_wan = GN2_WAN_IP.to_string();
        step(&["-n", &prod, "route", "add", "default", "via", &gn1_lan]);
        step(&["-n", &cons, "route", "add", "default", "via", &gn2_lan]);
        step(&["-n", &gn1, "route", "add", "172.16.2.0/24", "via", &gn2_wan]);
        step(&["-n", &gn2, "route", "add", "172.16.0.0/24", "via", &gn1_wan]);
        for ns in [&gn1, &gn2] {
            step(&[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]);
        }
        steps
    }
}

/// `s2delay`'s arguments for `link` between `a` and `b` (without `--stats`).
fn delay_line_args(link: &WanLink) -> Vec<String> {
    let mut args: Vec<String> = ["--a", WAN_IFACE_GN1, "--b", WAN_IFACE_GN2]
        .map(str::to_owned)
        .into();
    match link.profile {
        Some(p) if p.one_way_delay() == link.delay => {
            args.extend(["--profile".to_owned(), p.name().to_owned()]);
        }
        _ => args.extend([
            "--delay-ms".to_owned(),
            (link.delay.as_nanos() as f64 / 1e6).to_string(),
        ]),
    }
    if let Some(rate) = link.rate_bps {
        args.extend(["--rate".to_owned(), rate.to_string()]);
    }
    if let Some(limit) = link.limit_bytes {
        args.extend(["--limit".to_owned(), limit.to_string()]);
    }
    args.extend([
        "--loss".to_owned(),
        link.loss.to_string(),
        "--seed".to_owned(),
        link.seed.to_string(),
    ]);
    args
}

/// Owns a running testbed and tears it down when dropped.
///
/// Dereferences to the [`Topology`]. A teardown error during `Drop` is
/// reported on stderr (the only output this library produces), because
/// `Drop` cannot return it; call [`teardown`](Self::teardown) to get it as a
/// `Result` instead.
#[derive(Debug)]
pub struct TestbedGuard {
    topology: Topology,
    armed: bool,
}

impl TestbedGuard {
    /// The guarded topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Tears the testbed down now and reports the outcome.
    pub fn teardown(mut self) -> Result<(), TestbedError> {
        self.armed = false;
        self.topology.down()
    }
}

impl Deref for TestbedGuard {
    type Target = Topology;

    fn deref(&self) -> &Topology {
        &self.topology
    }
}

impl Drop for TestbedGuard {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = self.topology.down()
        {
            eprintln!(
                "s2testbed: tearing down testbed {:?} failed: {e}; remove it with \
                 `s2testbed down --prefix {}`",
                self.topology.prefix, self.topology.prefix
            );
        }
    }
}

/// The non-loopback interfaces of namespace `ns`, with their state and
/// IPv4 addresses.
fn interfaces_in(ns: &str) -> Result<Vec<InterfaceInfo>, TestbedError> {
    let out = run_ip_output(&["-n", ns, "-brief", "-4", "addr", "show"])?;
    let brief = run_ip_output(&["-n", ns, "-brief", "link", "show"])?;
    let addrs: Vec<(String, Vec<String>)> = out
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = strip_peer(fields.next()?);
            let _state = fields.next();
            Some((name.to_owned(), fields.map(str::to_owned).collect()))
        })
        .collect();
    Ok(brief
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = strip_peer(fields.next()?).to_owned();
            let state = fields.next().unwrap_or("?").to_owned();
            (name != "lo").then(|| {
                let addrs = addrs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, a)| a.clone())
                    .unwrap_or_default();
                InterfaceInfo { name, state, addrs }
            })
        })
        .collect())
}

/// Strips the `@ifN` / `@lan0` peer suffix `ip -brief` adds to veth names.
fn strip_peer(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// `ip` followed by `args`, as a printable command line.
fn command_line(args: &[impl AsRef<str>]) -> String {
    let mut line = String::from("ip");
    for a in args {
        line.push(' ');
        line.push_str(a.as_ref());
    }
    line
}

/// Runs `ip args...`; returns its output if it exits successfully.
fn ip_output(args: &[impl AsRef<str>]) -> Result<Output, TestbedError> {
    let output = Command::new("ip")
        .args(args.iter().map(AsRef::as_ref))
        .stdin(Stdio::null())
        .output()
        .map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                TestbedError::IpMissing { source }
            } else {
                TestbedError::Spawn {
                    command: command_line(args),
                    source,
                }
            }
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(TestbedError::CommandFailed {
            command: command_line(args),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Runs `ip args...`, discarding its output.
fn run_ip(args: &[impl AsRef<str>]) -> Result<(), TestbedError> {
    ip_output(args).map(drop)
}

/// Runs `ip args...` and returns its stdout as text.
fn run_ip_output(args: &[&str]) -> Result<String, TestbedError> {
    ip_output(args).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Names of all network namespaces known to `ip netns`.
fn list_namespaces() -> Result<Vec<String>, TestbedError> {
    let out = run_ip_output(&["netns", "list"])?;
    // Lines look like `name` or `name (id: 3)`.
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_lines(t: &Topology) -> Vec<String> {
        t.plan().iter().map(|s| command_line(s)).collect()
    }

    #[test]
    fn namespace_names() {
        let t = Topology::default();
        assert_eq!(t.prefix, "s2tb");
        assert_eq!(t.mtu, 9000);
        let names: Vec<_> = Host::ALL.iter().map(|&h| t.ns(h)).collect();
        assert_eq!(
            names,
            ["s2tb-prod", "s2tb-gn1", "s2tb-gn2", "s2tb-cons", "s2tb-ctl"]
        );
    }

    #[test]
    fn command_wraps_ip_netns_exec() {
        let t = Topology::with_prefix("x");
        let mut cmd = t.command(Host::Cons, "ping");
        cmd.args(["-c", "1"]);
        assert_eq!(cmd.get_program(), "ip");
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(args, ["netns", "exec", "x-cons", "ping", "-c", "1"]);
    }

    #[test]
    fn plan_creates_veths_inside_namespaces_with_mtu() {
        let t = Topology {
            prefix: "p".into(),
            mtu: 4000,
            wan: None,
        };
        let lines = plan_lines(&t);
        for expected in [
            "ip link add lan0 netns p-prod mtu 4000 type veth peer name lan0 netns p-gn1 mtu 4000",
            "ip link add wan0 netns p-gn1 mtu 4000 type veth peer name wan0 netns p-gn2 mtu 4000",
            "ip link add lan0 netns p-gn2 mtu 4000 type veth peer name lan0 netns p-cons mtu 4000",
            "ip link add mgmt0 netns p-gn1 mtu 1500 type veth peer name gn1 netns p-ctl mtu 1500",
            "ip link add mgmt0 netns p-gn2 mtu 1500 type veth peer name gn2 netns p-ctl mtu 1500",
            "ip -n p-ctl link add br0 type bridge",
            "ip -n p-ctl link set dev gn1 master br0",
            "ip -n p-ctl addr add 172.16.9.1/24 dev br0",
            "ip -n p-prod addr add 172.16.0.1/24 dev lan0",
            "ip -n p-cons addr add 172.16.2.2/24 dev lan0",
            "ip -n p-prod route add default via 172.16.0.2",
            "ip -n p-cons route add default via 172.16.2.1",
            "ip -n p-gn1 route add 172.16.2.0/24 via 172.16.1.2",
            "ip -n p-gn2 route add 172.16.0.0/24 via 172.16.1.1",
            "ip netns exec p-gn1 sysctl -qw net.ipv4.ip_forward=1",
            "ip netns exec p-gn2 sysctl -qw net.ipv4.ip_forward=1",
        ] {
            assert!(
                lines.iter().any(|l| l == expected),
                "missing step: {expected}"
            );
        }
        for host in Host::ALL {
            let lo = format!("ip -n p-{host} link set dev lo up");
            assert!(lines.contains(&lo), "missing step: {lo}");
        }
        // Namespaces come first, routes after the addresses they depend on.
        assert!(lines[0].starts_with("ip netns add"));
        let first_route = lines.iter().position(|l| l.contains(" route add")).unwrap();
        let last_addr = lines.iter().rposition(|l| l.contains(" addr add")).unwrap();
        assert!(last_addr < first_route);
    }

    #[test]
    fn plan_with_wan_puts_the_delay_line_between_the_gateways() {
        let mut link = crate::wan::WanProfile::Metro.link().unwrap();
        link.rate_bps = Some(200_000_000);
        let t = Topology {
            prefix: "p".into(),
            mtu: 9000,
            wan: Some(link.clone()),
        };
        let lines = plan_lines(&t);
        for expected in [
            "ip netns add p-wan",
            "ip -n p-wan link set dev lo up",
            "ip link add wan0 netns p-gn1 mtu 9000 type veth peer name a netns p-wan mtu 9000",
            "ip link add wan0 netns p-gn2 mtu 9000 type veth peer name b netns p-wan mtu 9000",
            "ip -n p-wan link set dev a promisc on up",
            "ip -n p-wan link set dev b promisc on up",
            "ip netns exec p-gn1 ethtool -K wan0 tx off tso off",
            "ip netns exec p-gn2 ethtool -K wan0 tx off tso off",
            "ip netns exec p-wan ethtool -K a gro off",
            "ip netns exec p-wan ethtool -K b gro off",
            "ip -n p-gn1 addr add 172.16.1.1/24 dev wan0",
            "ip -n p-gn2 addr add 172.16.1.2/24 dev wan0",
        ] {
            assert!(
                lines.iter().any(|l| l == expected),
                "missing step: {expected}"
            );
        }
        for ns in ["p-prod", "p-gn1", "p-gn2", "p-cons"] {
            let sysctl = format!(
                "ip netns exec {ns} sysctl -qw net.ipv4.tcp_rmem=4096 131072 268435456 \
                 net.ipv4.tcp_wmem=4096 16384 268435456"
            );
            assert!(lines.contains(&sysctl), "missing step: {sysctl}");
        }
        // No direct veth, and no address on the delay line's ports.
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("peer name wan0 netns p-gn2"))
        );
        assert!(!lines.iter().any(|l| l.starts_with("ip -n p-wan addr")));
        assert_eq!(
            delay_line_args(&link).join(" "),
            "--a a --b b --profile metro --rate 200000000 --loss 0 --seed 1"
        );
        link.delay = Duration::from_micros(1500);
        link.profile = None;
        assert!(delay_line_args(&link).join(" ").contains("--delay-ms 1.5 "));
        // Without a WAN link the plan is unchanged: no wan namespace, no ethtool.
        let plain = plan_lines(&Topology::with_prefix("p"));
        assert!(
            !plain
                .iter()
                .any(|l| l.contains("p-wan") || l.contains("ethtool"))
        );
    }

    #[test]
    fn interface_names_fit_ifnamsiz() {
        let mut checked = 0;
        for step in Topology::default().plan() {
            for i in 1..step.len() {
                let after_link_add = i >= 2 && step[i - 2] == "link" && step[i - 1] == "add";
                if after_link_add || matches!(step[i - 1].as_str(), "dev" | "name" | "master") {
                    assert!(step[i].len() <= 15, "interface name too long: {}", step[i]);
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "only {checked} interface names checked");
    }

    #[test]
    fn validation() {
        let ok = Topology::default();
        assert!(ok.validate().is_ok());
        for bad in ["", "a b", "x/y", "a;rm", &"x".repeat(33)] {
            let t = Topology::with_prefix(bad);
            assert!(
                matches!(t.validate(), Err(TestbedError::InvalidPrefix { .. })),
                "{bad:?} accepted"
            );
        }
        let t = Topology {
            mtu: 70000,
            ..Topology::default()
        };
        assert!(matches!(
            t.validate(),
            Err(TestbedError::InvalidMtu { mtu: 70000 })
        ));
    }

    #[test]
    fn not_root_message_says_what_to_do() {
        let msg = TestbedError::NotRoot { euid: 1000 }.to_string();
        assert!(msg.contains("needs root") && msg.contains("sudo"), "{msg}");
    }

    #[test]
    fn strip_peer_suffix() {
        assert_eq!(strip_peer("lan0@if2"), "lan0");
        assert_eq!(strip_peer("br0"), "br0");
    }
}
