//! `s2cs`: the control server daemon, plus `token` and `cert` helpers for operators.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

use crate::auth::static_tokens::StaticTokens;
use crate::config::Config;
use crate::server::{self, Secrets};

/// SciStream control server (S2CS): authenticates requests, allocates listener ports and runs
/// the data path (S2DS) of each session on this gateway node.
#[derive(Debug, Parser)]
#[command(name = "s2cs", version = crate::VERSION, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check what this host gives each data path (UDP buffers and offloads for quic, BPF for
    /// sockmap, cores) and print the fix for what falls short. Exits 1 if a check fails.
    Doctor {
        /// The daemon's config file, so the checks use its values.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage the static token file.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Write a self-signed certificate and key for the control channel.
    Cert {
        /// Names the certificate is valid for: the address(es) clients use to reach s2cs.
        #[arg(long = "ip", alias = "name", value_delimiter = ',', required = true)]
        names: Vec<String>,
        #[arg(
            long = "server_crt",
            alias = "server-crt",
            default_value = "server.crt"
        )]
        server_crt: PathBuf,
        #[arg(
            long = "server_key",
            alias = "server-key",
            default_value = "server.key"
        )]
        server_key: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for an identity: its hash is appended to the token file, the token itself
    /// is written to a 0600 file for the user (it is never printed).
    New {
        #[arg(long)]
        identity: String,
        /// The gateway's token file (created if missing).
        #[arg(long = "token_file", alias = "token-file")]
        token_file: PathBuf,
        /// Where to write the new token (0600).
        #[arg(long = "token_out", alias = "token-out")]
        token_out: PathBuf,
    },
}

/// Options of the daemon. Each overrides the same key of `--config`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file; keys are the long option names (see docs/configuration.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address the data listeners bind to (default 0.0.0.0).
    #[arg(long = "listener_ip", alias = "listener-ip")]
    pub listener_ip: Option<IpAddr>,
    /// Address given to clients for the listeners, when it differs (NAT, public IP).
    #[arg(long = "advertise_ip", alias = "advertise-ip")]
    pub advertise_ip: Option<String>,
    /// Address the gRPC port binds to (default ::, all).
    #[arg(long = "control_ip", alias = "control-ip")]
    pub control_ip: Option<IpAddr>,
    /// gRPC port (default 5000).
    #[arg(long)]
    pub port: Option<u16>,
    /// Listener port pool, START-END inclusive (default 5100-5200).
    #[arg(long = "port_range", alias = "port-range")]
    pub port_range: Option<String>,
    /// TLS on the control channel (default true); --ssl=false for plaintext.
    #[arg(long, value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub ssl: Option<bool>,
    /// Same as --ssl=false.
    #[arg(long)]
    pub nossl: bool,
    /// PEM certificate of the control channel (default server.crt).
    #[arg(long = "server_crt", alias = "server-crt")]
    pub server_crt: Option<PathBuf>,
    /// PEM key of the control channel (default server.key).
    #[arg(long = "server_key", alias = "server-key")]
    pub server_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mTLS).
    #[arg(long = "client_ca", alias = "client-ca")]
    pub client_ca: Option<PathBuf>,
    /// Data path: auto, copy, splice, sockmap, dpdk or quic (default auto; auto picks dpdk when
    /// a NIC profile and ports are configured and EAL starts, sockmap only with --sockmap_auto
    /// and --wan_plaintext, else copy; quic only when asked for).
    #[arg(long)]
    pub engine: Option<String>,
    /// Upstream's proxy type (Haproxy, StunnelSubprocess, ...). Accepted and ignored: the data
    /// path is built in; use --engine.
    #[arg(long = "type", short = 't')]
    pub proxy_type: Option<String>,
    /// Pin the data-path event loops to these cores, e.g. 2,3 (default: one unpinned loop per
    /// online core).
    #[arg(long, value_delimiter = ',')]
    pub cores: Option<Vec<usize>>,
    /// copy engine: bytes buffered per direction per connection (default 4M).
    #[arg(long = "buffer_size", alias = "buffer-size")]
    pub buffer_size: Option<String>,
    /// splice engine: pipe size per direction (default 1M).
    #[arg(long = "pipe_size", alias = "pipe-size")]
    pub pipe_size: Option<String>,
    /// Let --engine auto pick sockmap when the BPF program loads and the WAN is plaintext.
    #[arg(long = "sockmap_auto", alias = "sockmap-auto")]
    pub sockmap_auto: bool,
    /// sockmap engine: send buffer forced on both sockets of a pair (default 16M; a smaller one
    /// throttles the in-kernel splice).
    #[arg(long = "sockmap_sndbuf", alias = "sockmap-sndbuf")]
    pub sockmap_sndbuf: Option<String>,
    /// sockmap engine: bytes queued in the kernel toward a slow reader before that direction is
    /// paused and held back by TCP (default 64M).
    #[arg(long = "sockmap_max_backlog", alias = "sockmap-max-backlog")]
    pub sockmap_max_backlog: Option<String>,
    /// dpdk engine: NIC profile, a builtin name (connectx6dx, connectx5, e810, virtio,
    /// af_packet, af_packet_jumbo, af_xdp, memif, tap, ring, null) or a profile file.
    #[arg(long = "nic_profile", alias = "nic-profile")]
    pub nic_profile: Option<String>,
    /// dpdk engine: one data port, e.g. name=wan,ipv4=172.16.1.1/24,iface=wan0 (vdev) or
    /// name=wan,ipv4=198.51.100.10/24,pci=0000:81:00.1; optional gateway=, mac=. Repeat per
    /// port; --listener_ip must be one of their addresses. --cores names the dataplane lcores.
    #[arg(long = "dpdk_port", alias = "dpdk-port")]
    pub dpdk_ports: Vec<String>,
    /// dpdk engine: TCP buffer per direction per terminated socket (default 4M), or "bdp":
    /// two bandwidth-delay products of --quic_bandwidth × --quic_rtt (the WAN's).
    #[arg(long = "dpdk_tcp_buffer", alias = "dpdk-tcp-buffer")]
    pub dpdk_tcp_buffer: Option<String>,
    /// dpdk engine: pin streams to dataplane lcores, e.g. 2,2,3: stream k of every session
    /// runs on the (k mod n)-th listed lcore (default: each stream on the least loaded lcore).
    #[arg(
        long = "dpdk_stream_lcores",
        alias = "dpdk-stream-lcores",
        value_delimiter = ','
    )]
    pub dpdk_stream_lcores: Option<Vec<u32>>,
    /// dpdk engine: microseconds a polling lcore sleeps after a run of empty rounds (default 0:
    /// never; set it when the dataplane shares its cores with other work).
    #[arg(long = "dpdk_idle_sleep_us", alias = "dpdk-idle-sleep-us")]
    pub dpdk_idle_sleep_us: Option<u64>,
    /// quic engine: bottleneck rate of the WAN path in bit/s, e.g. 10G (default 10G); with
    /// --quic_rtt it sizes the flow-control windows.
    #[arg(long = "quic_bandwidth", alias = "quic-bandwidth")]
    pub quic_bandwidth: Option<String>,
    /// quic engine: round-trip time of the WAN path, e.g. 58ms (default 20ms).
    #[arg(long = "quic_rtt", alias = "quic-rtt")]
    pub quic_rtt: Option<String>,
    /// quic engine: congestion controller, auto, cubic, bbr or newreno (default auto: the
    /// host's TCP one, net.ipv4.tcp_congestion_control, when it is bbr or reno; else cubic).
    #[arg(long = "quic_cc", alias = "quic-cc")]
    pub quic_cc: Option<String>,
    /// quic engine: UDP payload the handshake starts with (default 1200, the QUIC minimum).
    #[arg(long = "quic_initial_mtu", alias = "quic-initial-mtu")]
    pub quic_initial_mtu: Option<u16>,
    /// quic engine: upper bound of path MTU discovery (default 8972: 9000-byte jumbo frames).
    #[arg(long = "quic_max_mtu", alias = "quic-max-mtu")]
    pub quic_max_mtu: Option<u16>,
    /// quic engine: a peer silent for this long is dropped, e.g. 30s (default 30s).
    #[arg(long = "quic_idle_timeout", alias = "quic-idle-timeout")]
    pub quic_idle_timeout: Option<String>,
    /// quic engine: UDP socket buffers (default 32M).
    #[arg(long = "quic_udp_buffer", alias = "quic-udp-buffer")]
    pub quic_udp_buffer: Option<String>,
    /// quic engine: force the UDP buffers past net.core.rmem_max (default true; needs root).
    #[arg(long = "quic_udp_force", alias = "quic-udp-force", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub quic_udp_force: Option<bool>,
    /// quic engine: pace each QUIC connection to at most this rate in bit/s (default: no cap).
    #[arg(long = "quic_rate", alias = "quic-rate")]
    pub quic_rate: Option<String>,
    /// Run the WAN leg unencrypted (required by --engine splice, sockmap and dpdk). Both
    /// gateways must agree.
    #[arg(long = "wan_plaintext", alias = "wan-plaintext")]
    pub wan_plaintext: bool,
    /// Default source allow-list of the listeners: addresses or CIDRs (default: any).
    #[arg(long = "allow_sources", alias = "allow-sources", value_delimiter = ',')]
    pub allow_sources: Option<Vec<String>>,
    /// Seconds a req waits for its hello (default 180).
    #[arg(long = "hello_timeout", alias = "hello-timeout")]
    pub hello_timeout: Option<u64>,
    /// Seconds a hello that arrives before its req waits for it (default 5).
    #[arg(long = "hello_grace", alias = "hello-grace")]
    pub hello_grace: Option<u64>,
    /// Largest num_conn accepted (default 128).
    #[arg(long = "max_num_conn", alias = "max-num-conn")]
    pub max_num_conn: Option<usize>,
    /// Disable authentication (development only; logged loudly).
    #[arg(long = "no_auth", alias = "no-auth")]
    pub no_auth: bool,
    /// Static token file: lines of '<identity> sha256:<hex>'.
    #[arg(long = "token_file", alias = "token-file")]
    pub token_file: Option<PathBuf>,
    /// OAuth2 client id of this gateway (Globus Auth introspection).
    #[arg(long = "client_id", alias = "client-id")]
    pub client_id: Option<String>,
    /// The client secret. Visible in `ps`: prefer --client_secret_file or S2CS_CLIENT_SECRET.
    #[arg(
        long = "client_secret",
        alias = "client-secret",
        env = "S2CS_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,
    /// File holding the client secret.
    #[arg(long = "client_secret_file", alias = "client-secret-file")]
    pub client_secret_file: Option<PathBuf>,
    /// RFC 7662 introspection endpoint (default: Globus Auth).
    #[arg(long = "introspection_url", alias = "introspection-url")]
    pub introspection_url: Option<String>,
    /// Scope a token must carry (default https://auth.globus.org/scopes/<client_id>/scistream).
    #[arg(long)]
    pub scope: Option<String>,
    /// Identities allowed to use this gateway (default: any verified identity).
    #[arg(
        long = "allowed_identities",
        alias = "allowed-identities",
        value_delimiter = ','
    )]
    pub allowed_identities: Option<Vec<String>>,
    /// Directory for the daemon's pid file (one daemon per directory and port).
    #[arg(long = "state_dir", alias = "state-dir")]
    pub state_dir: Option<PathBuf>,
    /// Serve Prometheus metrics (GET /metrics) on this address, e.g. 127.0.0.1:9464.
    #[arg(long = "metrics_addr", alias = "metrics-addr")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Debug logging.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

impl ServeArgs {
    /// Defaults, then `--config`, then the options given here.
    pub fn into_config(self) -> anyhow::Result<(Config, Secrets)> {
        let mut c = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { c.$field = v; } )* };
        }
        macro_rules! set_opt {
            ($($field:ident),*) => { $( if self.$field.is_some() { c.$field = self.$field; } )* };
        }
        set!(
            listener_ip,
            control_ip,
            port,
            port_range,
            ssl,
            server_crt,
            server_key,
            engine,
            buffer_size,
            pipe_size,
            sockmap_sndbuf,
            sockmap_max_backlog,
            dpdk_tcp_buffer,
            dpdk_stream_lcores,
            dpdk_idle_sleep_us,
            quic_bandwidth,
            quic_rtt,
            quic_cc,
            quic_initial_mtu,
            quic_max_mtu,
            quic_idle_timeout,
            quic_udp_buffer,
            quic_udp_force,
            allow_sources,
            hello_timeout,
            hello_grace,
            max_num_conn,
            allowed_identities
        );
        set_opt!(
            advertise_ip,
            client_ca,
            cores,
            token_file,
            client_id,
            client_secret_file,
            introspection_url,
            scope,
            state_dir,
            metrics_addr,
            nic_profile,
            quic_rate
        );
        if !self.dpdk_ports.is_empty() {
            c.dpdk_ports = self.dpdk_ports;
        }
        if self.nossl {
            c.ssl = false;
        }
        c.wan_plaintext |= self.wan_plaintext;
        c.sockmap_auto |= self.sockmap_auto;
        c.no_auth |= self.no_auth;
        if let Some(t) = &self.proxy_type {
            tracing::warn!(
                "--type {t} is ignored: SciStream-RS has a built-in data path (see --engine)"
            );
        }
        if self.client_secret.is_some() && std::env::var_os("S2CS_CLIENT_SECRET").is_none() {
            tracing::warn!(
                "--client_secret on the command line is visible to other users (ps); use \
                 --client_secret_file or S2CS_CLIENT_SECRET"
            );
        }
        Ok((
            c,
            Secrets {
                client_secret: self.client_secret,
            },
        ))
    }
}

/// Entry point of the `s2cs` binary.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_for(&cli);
    match cli.command {
        Some(Command::Token(TokenCommand::New {
            identity,
            token_file,
            token_out,
        })) => {
            anyhow::ensure!(
                !identity.is_empty() && !identity.contains(char::is_whitespace),
                "--identity must be a non-empty word"
            );
            let token = crate::secret::new_token();
            crate::secret::write_private(&token_out, &format!("{token}\n"))?;
            let mut lines = std::fs::read_to_string(&token_file).unwrap_or_default();
            if !lines.is_empty() && !lines.ends_with('\n') {
                lines.push('\n');
            }
            lines.push_str(&StaticTokens::entry(&identity, &token));
            lines.push('\n');
            std::fs::write(&token_file, lines)?;
            eprintln!(
                "token for '{identity}' written to {} (0600); its hash was added to {}",
                token_out.display(),
                token_file.display()
            );
            Ok(())
        }
        Some(Command::Doctor { config }) => {
            let cfg = match config {
                Some(p) => Config::load(&p)?,
                None => Config::default(),
            };
            let checks = crate::doctor::checks(&cfg);
            for c in &checks {
                println!("{c}");
            }
            if checks.iter().any(|c| c.level == crate::doctor::Level::Fail) {
                std::process::exit(1);
            }
            Ok(())
        }
        Some(Command::Cert {
            names,
            server_crt,
            server_key,
        }) => {
            server::write_self_signed(&names, &server_crt, &server_key)?;
            eprintln!(
                "wrote {} and {} (0600) for {}",
                server_crt.display(),
                server_key.display(),
                names.join(", ")
            );
            Ok(())
        }
        None => {
            let (config, secrets) = cli.serve.into_config()?;
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(server::run(config, secrets))
        }
    }
}

fn init_for(cli: &Cli) {
    super::init_logging(cli.serve.verbose);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["s2cs"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .unwrap()
            .serve
            .into_config()
            .unwrap()
            .0
    }

    #[test]
    fn upstream_spellings_and_defaults() {
        let d = config(&[]);
        assert_eq!(
            (d.port, d.port_range.as_str(), d.ssl),
            (5000, "5100-5200", true)
        );
        let c = config(&[
            "--listener_ip",
            "192.0.2.1",
            "--port-range",
            "6000-6010",
            "--ssl=False",
        ]);
        assert_eq!(c.listener_ip, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(c.port_range, "6000-6010");
        assert!(!c.ssl);
        let c = config(&[
            "--listener-ip=192.0.2.2",
            "--port_range=1-2",
            "--nossl",
            "-t",
            "Haproxy",
        ]);
        assert_eq!(c.listener_ip, "192.0.2.2".parse::<IpAddr>().unwrap());
        assert!(!c.ssl);
        assert!(config(&["--ssl"]).ssl);
        assert!(Cli::try_parse_from(["s2cs", "--port", "99999"]).is_err());
        assert!(Cli::try_parse_from(["s2cs", "--listener_ip", "not-an-ip"]).is_err());
    }

    #[test]
    fn command_line_overrides_the_config_file() {
        let dir = std::env::temp_dir().join(format!("s2cs-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s2cs.toml");
        std::fs::write(
            &file,
            "port = 7000\nengine = \"splice\"\nwan_plaintext = true\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let c = config(&["--config", path, "--port", "7100"]);
        assert_eq!(c.port, 7100);
        assert_eq!(c.engine, "splice");
        assert!(c.wan_plaintext);
        std::fs::write(&file, "prot = 1\n").unwrap();
        let err = Cli::try_parse_from(["s2cs", "--config", path])
            .unwrap()
            .serve
            .into_config()
            .unwrap_err();
        assert!(err.to_string().contains("invalid"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
