//! `appctrl`: the application controller's hello. `mock` keeps upstream's positional form;
//! `hello` is the same with named options and secrets by reference.

use clap::{Parser, Subcommand};

use super::s2uc::{ConnArgs, send_hello};
use crate::client;
use crate::secret;

/// SciStream application controller: registers a producer or consumer app with its gateway.
#[derive(Debug, Parser)]
#[command(name = "appctrl", version = crate::VERSION)]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upstream form: send the hello and start nothing. UID and ACCESS_TOKEN may be @FILE,
    /// env:NAME or - (literal values work but are visible in ps).
    Mock {
        uid: String,
        #[arg(default_value = "localhost:5000")]
        s2cs: String,
        access_token: String,
        role: String,
        #[arg(default_value = "127.0.0.1")]
        controller_ip: String,
        /// Ports where the producer app listens on CONTROLLER_IP.
        #[arg(
            long = "receiver_ports",
            alias = "receiver-ports",
            default_value = "5074,5075,5076,37000,47000"
        )]
        receiver_ports: String,
    },
    /// Send the hello for a session.
    Hello {
        /// The session uid: @FILE, env:NAME or -.
        #[arg(long)]
        uid: String,
        #[arg(long, default_value = "localhost:5000")]
        s2cs: String,
        /// PROD or CONS.
        #[arg(long)]
        role: String,
        /// PROD: where the producer app listens, host:port comma separated.
        #[arg(
            long = "prod-listeners",
            alias = "prod_listeners",
            value_delimiter = ','
        )]
        prod_listeners: Vec<String>,
    },
}

/// Entry point of the `appctrl` binary.
pub fn main() -> anyhow::Result<()> {
    super::run_client(run(Cli::parse()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut opts = cli.conn.options()?;
    let (uid, s2cs, role, listeners) = match cli.command {
        Command::Mock {
            uid,
            s2cs,
            access_token,
            role,
            controller_ip,
            receiver_ports,
        } => {
            let token = secret::read_secret_arg("access token", &access_token)?;
            // Upstream's placeholder when authentication is off.
            if token != "INVALID_TOKEN" {
                opts.token = Some(token);
            }
            let ip: std::net::IpAddr = controller_ip.parse().map_err(|_| {
                anyhow::anyhow!("CONTROLLER_IP '{controller_ip}' must be an IP address")
            })?;
            let listeners = receiver_ports
                .split(',')
                .map(|p| Ok(crate::addr::format_host_port(ip, p.trim().parse()?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            (secret::read_secret_arg("uid", &uid)?, s2cs, role, listeners)
        }
        Command::Hello {
            uid,
            s2cs,
            role,
            prod_listeners,
        } => (
            secret::read_secret_arg("uid", &uid)?,
            s2cs,
            role,
            prod_listeners,
        ),
    };
    let c = client::connect(&s2cs, &opts).await?;
    let is_prod = role.eq_ignore_ascii_case("PROD");
    let resp = send_hello(c, &uid, &role, if is_prod { listeners } else { Vec::new() }).await?;
    println!("{}", resp.message);
    if !resp.listeners.is_empty() {
        println!("Listeners: {}", resp.listeners.join(","));
    }
    Ok(())
}
