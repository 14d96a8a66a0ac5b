//! `s2cs` configuration: one TOML file (`--config`) whose keys are the long option names, with
//! every default documented here; command-line options override the file.
//!
//! ```toml
//! listener_ip = "172.16.1.1"     # bind address of the data listeners (default 0.0.0.0)
//! advertise_ip = "203.0.113.7"   # address handed to clients, if NAT (default: listener_ip)
//! control_ip = "::"              # bind address of the gRPC port (default ::, all)
//! port = 5000                    # gRPC port
//! port_range = "5100-5200"       # listener port pool, inclusive
//! ssl = true                     # TLS on the control channel
//! server_crt = "server.crt"
//! server_key = "server.key"
//! # client_ca = "clients-ca.pem" # require client certificates (mTLS)
//! engine = "auto"                # auto | copy | splice | sockmap | dpdk | quic
//! # cores = [0, 1]               # data-path cores (default: all online)
//! buffer_size = "4M"             # copy engine, bytes buffered per direction per connection
//! pipe_size = "1M"               # splice engine, pipe capacity per direction
//! sockmap_auto = false           # auto may pick sockmap (needs wan_plaintext and BPF)
//! sockmap_sndbuf = "16M"         # sockmap engine, send buffer forced on both sockets
//! sockmap_max_backlog = "64M"    # sockmap engine, kernel backlog that pauses a direction
//! # nic_profile = "af_packet_jumbo"  # dpdk engine: builtin NIC profile name or profile file
//! # dpdk_ports = ["name=wan,ipv4=172.16.1.1/24,iface=wan0"]  # dpdk engine: one per data port
//! dpdk_tcp_buffer = "4M"         # dpdk engine, TCP buffer per direction per terminated socket;
//!                                # "bdp": two quic_bandwidth × quic_rtt products
//! dpdk_stream_lcores = []        # dpdk engine: stream k of a session on lcore [k mod n]
//!                                # (default []: the least loaded dataplane lcore)
//! dpdk_idle_sleep_us = 0         # dpdk engine: nap after idle rounds (0: poll, dedicated cores)
//! quic_bandwidth = "10G"         # quic engine (and dpdk_tcp_buffer = "bdp"): WAN bottleneck,
//!                                # bit/s (K, M, G, T: ×1000)
//! quic_rtt = "20ms"              # quic engine (and "bdp"): WAN round trip; windows = bw × rtt
//! quic_cc = "auto"               # quic engine: auto (as host TCP) | cubic | bbr | newreno
//! quic_initial_mtu = 1200        # quic engine: first UDP payload size (≥ 1200)
//! quic_max_mtu = 8972            # quic engine: path MTU discovery bound (9000-byte jumbo)
//! quic_idle_timeout = "30s"      # quic engine: a silent peer is dropped after this
//! quic_udp_buffer = "32M"        # quic engine: SO_RCVBUF/SO_SNDBUF of each UDP socket
//! quic_udp_force = true          # quic engine: force them past rmem_max (needs root)
//! # quic_rate = "5G"             # quic engine: pace each connection to at most this, bit/s
//! wan_plaintext = false          # true: WAN leg unencrypted (required by splice, sockmap)
//! allow_sources = []             # default source allow-list of listeners (empty: any)
//! hello_timeout = 180            # seconds a req waits for its hello
//! hello_grace = 5                # seconds a hello waits for its req
//! max_num_conn = 128
//! max_sessions = 1024
//! no_auth = false                # development only
//! # token_file = "/etc/scistream/tokens"
//! # client_id = "…"              # OAuth2 introspection (Globus) …
//! # client_secret_file = "/etc/scistream/client_secret"
//! # introspection_url = "https://auth.globus.org/v2/oauth2/token/introspect"
//! # scope = "https://auth.globus.org/scopes/<client_id>/scistream"
//! allowed_identities = []        # empty: any verified identity
//! # state_dir = "/var/lib/scistream"
//! # metrics_addr = "127.0.0.1:9464"  # Prometheus GET /metrics (default: off)
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The daemon's settings after defaults, file and command line are merged.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listener_ip: IpAddr,
    pub advertise_ip: Option<String>,
    pub control_ip: IpAddr,
    pub port: u16,
    pub port_range: String,
    pub ssl: bool,
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub engine: String,
    pub cores: Option<Vec<usize>>,
    pub buffer_size: String,
    pub pipe_size: String,
    pub sockmap_auto: bool,
    pub sockmap_sndbuf: String,
    pub sockmap_max_backlog: String,
    pub nic_profile: Option<String>,
    pub dpdk_ports: Vec<String>,
    pub dpdk_tcp_buffer: String,
    pub dpdk_stream_lcores: Vec<u32>,
    pub dpdk_idle_sleep_us: u64,
    pub quic_bandwidth: String,
    pub quic_rtt: String,
    pub quic_cc: String,
    pub quic_initial_mtu: u16,
    pub quic_max_mtu: u16,
    pub quic_idle_timeout: String,
    pub quic_udp_buffer: String,
    pub quic_udp_force: bool,
    pub quic_rate: Option<String>,
    pub wan_plaintext: bool,
    pub allow_sources: Vec<String>,
    pub hello_timeout: u64,
    pub hello_grace: u64,
    pub max_num_conn: usize,
    pub max_sessions: usize,
    pub no_auth: bool,
    pub token_file: Option<PathBuf>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub introspection_url: Option<String>,
    pub scope: Option<String>,
    pub allowed_identities: Vec<String>,
    pub state_dir: Option<PathBuf>,
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listener_ip: IpAddr::from([0, 0, 0, 0]),
            advertise_ip: None,
            control_ip: "::".parse().expect("valid literal"),
            port: 5000,
            port_range: "5100-5200".into(),
            ssl: true,
            server_crt: "server.crt".into(),
            server_key: "server.key".into(),
            client_ca: None,
            engine: "auto".into(),
            cores: None,
            buffer_size: "4M".into(),
            pipe_size: "1M".into(),
            sockmap_auto: false,
            sockmap_sndbuf: "16M".into(),
            sockmap_max_backlog: "64M".into(),
            nic_profile: None,
            dpdk_ports: Vec::new(),
            dpdk_tcp_buffer: "4M".into(),
            dpdk_stream_lcores: Vec::new(),
            dpdk_idle_sleep_us: 0,
            quic_bandwidth: "10G".into(),
            quic_rtt: "20ms".into(),
            quic_cc: "auto".into(),
            quic_initial_mtu: 1200,
            quic_max_mtu: 8972,
            quic_idle_timeout: "30s".into(),
            quic_udp_buffer: "32M".into(),
            quic_udp_force: true,
            quic_rate: None,
            wan_plaintext: false,
            allow_sources: Vec::new(),
            hello_timeout: 180,
            hello_grace: 5,
            max_num_conn: 128,
            max_sessions: 1024,
            no_auth: false,
            token_file: None,
            client_id: None,
            client_secret_file: None,
            introspection_url: None,
            scope: None,
            allowed_identities: Vec::new(),
            state_dir: None,
            metrics_addr: None,
        }
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path} failed: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}

/// Parses `4096`, `64K`, `4M`, `1G` (binary multiples).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1usize << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("'{s}': unknown size suffix (use K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size like 4096, 64K, 4M"))?;
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("'{s}' is out of range"))
}

/// Parses a rate in bit/s: `10G`, `2.5G`, `800M`, `100000` (decimal multiples, as link
/// rates are quoted).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("bit/s").trim_end_matches("bps");
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1e3,
                'M' => 1e6,
                'G' => 1e9,
                'T' => 1e12,
                _ => return Err(format!("'{s}': unknown rate suffix (use K, M, G or T)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1.0),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a rate like 10G, 2.5G or 800M (bit/s)"))?;
    let v = n * mult;
    if !(1.0..=1e15).contains(&v) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(v as u64)
}

/// Parses a duration: `20ms`, `1.5s`, `500us`, `2m`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("'{s}' needs a unit: us, ms, s or m (e.g. 20ms)"))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 20ms or 1.5s"))?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use us, ms, s or m)")),
    };
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{s}' is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations() {
        assert_eq!(parse_rate("10G").unwrap(), 10_000_000_000);
        assert_eq!(parse_rate("2.5g").unwrap(), 2_500_000_000);
        assert_eq!(parse_rate("800Mbit/s").unwrap(), 800_000_000);
        assert_eq!(parse_rate("100000").unwrap(), 100_000);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("10X").is_err());
        use std::time::Duration;
        assert_eq!(parse_duration("20ms").unwrap(), Duration::from_millis(20));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("400us").unwrap(), Duration::from_micros(400));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("20").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("4m").unwrap(), 4 << 20);
        assert!(parse_size("0").is_err());
        assert!(parse_size("4X").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn documented_example_parses_and_unknown_keys_fail() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start().to_owned() + "\n")
            .collect();
        let cfg: Config = toml::from_str(&example).unwrap();
        assert_eq!(cfg.port_range, "5100-5200");
        assert_eq!(cfg.listener_ip, "172.16.1.1".parse::<IpAddr>().unwrap());
        assert!(toml::from_str::<Config>("portt = 1").is_err());
    }
}
