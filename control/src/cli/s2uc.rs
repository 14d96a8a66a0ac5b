//! `s2uc`: the user client. Upstream's commands (`inbound-request`, `outbound-request`,
//! `prod-req`, `release`) with their option names and defaults, plus `connect`, which drives
//! both gateways in one go (the design flow upstream never shipped), and `status`/`list`.
//!
//! Secrets: the token comes from `S2UC_TOKEN` or a token file, never argv; uids are written to
//! 0600 files and passed back as `@FILE` (a literal uid is still accepted, with a warning).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::client::{self, Client, ClientOptions, describe_status};
use crate::proto;
use crate::secret;

/// SciStream user client (S2UC): requests streaming sessions from gateway control servers.
#[derive(Debug, Parser)]
#[command(name = "s2uc", version = crate::VERSION)]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach the control servers.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// PEM certificate of the s2cs to trust (default server.crt).
    #[arg(
        long = "server_cert",
        alias = "server-cert",
        global = true,
        default_value = "server.crt"
    )]
    pub server_cert: PathBuf,
    /// Talk plaintext gRPC, to an s2cs started with --ssl=false.
    #[arg(
        long = "insecure-plaintext",
        alias = "insecure_plaintext",
        global = true
    )]
    pub plaintext: bool,
    /// Name to verify in the server certificate, if not the address's host.
    #[arg(long = "tls-name", alias = "tls_name", global = true)]
    pub tls_name: Option<String>,
    /// File holding the access token (default ~/.scistream/token); S2UC_TOKEN wins.
    #[arg(long = "token-file", alias = "token_file", global = true)]
    pub token_file: Option<PathBuf>,
    /// Client certificate (PEM), for an s2cs that requires mTLS.
    #[arg(
        long = "client-cert",
        alias = "client_cert",
        global = true,
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// Key of --client-cert (PEM).
    #[arg(
        long = "client-key",
        alias = "client_key",
        global = true,
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
}

impl ConnArgs {
    pub fn options(&self) -> anyhow::Result<ClientOptions> {
        Ok(ClientOptions {
            server_cert: self.server_cert.clone(),
            plaintext: self.plaintext,
            tls_name: self.tls_name.clone(),
            token: client::load_token(self.token_file.as_ref())?,
            identity: self.client_cert.clone().zip(self.client_key.clone()),
            connect_timeout: Duration::from_secs(10),
        })
    }
}

/// What every session request carries.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Parallel streams, i.e. listeners per gateway.
    #[arg(long = "num_conn", alias = "num-conn", default_value_t = 5)]
    pub num_conn: i32,
    /// Rate sent with the request (stored by the gateway, not enforced, as upstream).
    #[arg(long, default_value_t = 10000)]
    pub rate: i32,
}

const DEFAULT_RECEIVER_PORTS: &str = "5074,5075,5076,37000,47000";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Producer facility: request inbound listeners for a producer app listening on
    /// --remote_ip:--receiver_ports; prints the listeners to hand to the consumer side.
    #[command(name = "inbound-request", alias = "inbound_request")]
    InboundRequest {
        #[command(flatten)]
        session: SessionArgs,
        #[arg(long, default_value = "localhost:5000")]
        s2cs: String,
        /// Use upstream's fixed test uid (never for real sessions).
        #[arg(long)]
        mock: bool,
        /// Accepted for compatibility; the token is chosen by S2UC_TOKEN / --token-file.
        #[arg(long, default_value = "")]
        scope: String,
        #[arg(long = "remote_ip", alias = "remote-ip", default_value = "localhost")]
        remote_ip: String,
        #[arg(long = "receiver_ports", alias = "receiver-ports", default_value = DEFAULT_RECEIVER_PORTS)]
        receiver_ports: String,
        /// Where to save the new uid (0600). Default ~/.scistream/sessions/<tag>.uid.
        #[arg(long = "uid-out", alias = "uid_out")]
        uid_out: Option<PathBuf>,
    },
    /// Consumer facility: request outbound listeners that forward to the producer side's
    /// listeners. UID is @FILE, env:NAME or - (a literal uid works but is visible in ps).
    #[command(name = "outbound-request", alias = "outbound_request")]
    OutboundRequest {
        uid: String,
        /// The producer gateway's listeners, comma separated.
        prod_lstn: String,
        #[command(flatten)]
        session: SessionArgs,
        #[arg(long, default_value = "localhost:6000")]
        s2cs: String,
        #[arg(long, default_value = "")]
        scope: String,
        /// Accepted for compatibility; has no effect on the data path (as upstream).
        #[arg(long = "remote_ip", alias = "remote-ip", default_value = "localhost")]
        remote_ip: String,
        #[arg(long = "receiver_ports", alias = "receiver-ports", default_value = DEFAULT_RECEIVER_PORTS)]
        receiver_ports: String,
    },
    /// Producer side, split flow: send only the req and wait for an external hello (appctrl).
    #[command(name = "prod-req", alias = "prod_req")]
    ProdReq {
        #[command(flatten)]
        session: SessionArgs,
        #[arg(long, default_value = "localhost:5000")]
        s2cs: String,
        #[arg(long)]
        mock: bool,
        #[arg(long, default_value = "")]
        scope: String,
        #[arg(long = "uid-out", alias = "uid_out")]
        uid_out: Option<PathBuf>,
    },
    /// Release a session on one or more control servers (comma separated).
    Release {
        uid: String,
        #[arg(long, default_value = "localhost:5000", value_delimiter = ',')]
        s2cs: Vec<String>,
    },
    /// Set up a whole session on both gateways: producer side inbound, consumer side outbound,
    /// fresh uid and WAN key. Prints where consumer apps connect.
    Connect {
        /// Control server of the producer facility's gateway.
        #[arg(long = "prod-s2cs", alias = "prod_s2cs")]
        prod_s2cs: String,
        /// Control server of the consumer facility's gateway.
        #[arg(long = "cons-s2cs", alias = "cons_s2cs")]
        cons_s2cs: String,
        /// Where the producer app listens (host:port, comma separated; cycled to num_conn).
        #[arg(
            long = "prod-targets",
            alias = "prod_targets",
            value_delimiter = ',',
            required = true
        )]
        prod_targets: Vec<String>,
        #[command(flatten)]
        session: SessionArgs,
        /// PEM of the producer s2cs, if it differs from --server_cert.
        #[arg(long = "prod-server-cert", alias = "prod_server_cert")]
        prod_server_cert: Option<PathBuf>,
        /// PEM of the consumer s2cs, if it differs from --server_cert.
        #[arg(long = "cons-server-cert", alias = "cons_server_cert")]
        cons_server_cert: Option<PathBuf>,
        /// Sources allowed on the producer gateway's listeners (the consumer gateway's WAN
        /// address), comma separated.
        #[arg(
            long = "allow-prod-from",
            alias = "allow_prod_from",
            value_delimiter = ','
        )]
        allow_prod_from: Vec<String>,
        /// Sources allowed on the consumer gateway's listeners (the consumer apps).
        #[arg(
            long = "allow-cons-from",
            alias = "allow_cons_from",
            value_delimiter = ','
        )]
        allow_cons_from: Vec<String>,
        #[arg(long = "uid-out", alias = "uid_out")]
        uid_out: Option<PathBuf>,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show a session's state and per-stream byte counters.
    Status {
        uid: String,
        #[arg(long, default_value = "localhost:5000")]
        s2cs: String,
        #[arg(long)]
        json: bool,
    },
    /// List your sessions on a control server.
    List {
        #[arg(long, default_value = "localhost:5000")]
        s2cs: String,
        #[arg(long)]
        json: bool,
    },
}

/// Upstream's fixed `--mock` uid.
const MOCK_UID: &str = "4f8583bc-a4d3-11ee-9fd6-034d1fcbd7c3";

/// What `connect` reports.
#[derive(Debug, Serialize)]
pub struct ConnectReport {
    pub tag: String,
    pub uid_file: PathBuf,
    /// Where consumer apps connect (the consumer gateway's listeners).
    pub cons_listeners: Vec<String>,
    /// The producer gateway's listeners (the consumer gateway's targets).
    pub prod_listeners: Vec<String>,
    /// The producer app endpoints, cycled to num_conn.
    pub prod_targets: Vec<String>,
    pub engine: String,
    pub wan_security: String,
    pub setup_ms: f64,
}

/// Entry point of the `s2uc` binary.
pub fn main() -> anyhow::Result<()> {
    super::run_client(run(Cli::parse()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let opts = cli.conn.options()?;
    match cli.command {
        Command::InboundRequest {
            session: SessionArgs { num_conn, rate },
            s2cs,
            mock,
            scope: _,
            remote_ip,
            receiver_ports,
            uid_out,
        } => {
            let uid = if mock {
                MOCK_UID.to_owned()
            } else {
                secret::new_uid()
            };
            let c = client::connect(&s2cs, &opts).await?;
            let app = endpoints(&remote_ip, &receiver_ports)?;
            let resp = req_with_hello(c.clone(), &uid, "PROD", num_conn, rate, "PROD", app).await?;
            let upd = update(
                c.clone(),
                &uid,
                resp.prod_listeners.clone(),
                "PROD",
                "",
                &[],
            )
            .await?;
            let file = save_uid(&uid, uid_out)?;
            println!(
                "session {} (uid saved to {}, 0600)",
                secret::tag(&uid),
                file.display()
            );
            println!("wan: {} ({} engine)", upd.wan_security, upd.engine);
            println!("Listeners: {}", upd.listeners.join(","));
            Ok(())
        }
        Command::OutboundRequest {
            uid,
            prod_lstn,
            session: SessionArgs { num_conn, rate },
            s2cs,
            scope: _,
            remote_ip,
            receiver_ports,
        } => {
            let uid = secret::read_secret_arg("uid", &uid)?;
            let c = client::connect(&s2cs, &opts).await?;
            let hello_targets = endpoints(&remote_ip, &receiver_ports)?;
            let resp = req_with_hello(
                c.clone(),
                &uid,
                "CONS",
                num_conn,
                rate,
                "CONS",
                hello_targets,
            )
            .await?;
            let targets: Vec<String> = prod_lstn.split(',').map(|s| s.trim().to_owned()).collect();
            let upd = update(c.clone(), &uid, targets, "CONS", "", &[]).await?;
            println!("session {}", secret::tag(&uid));
            println!("wan: {} ({} engine)", upd.wan_security, upd.engine);
            println!("Listeners: {}", resp.listeners.join(","));
            Ok(())
        }
        Command::ProdReq {
            session: SessionArgs { num_conn, rate },
            s2cs,
            mock,
            scope: _,
            uid_out,
        } => {
            let uid = if mock {
                MOCK_UID.to_owned()
            } else {
                secret::new_uid()
            };
            let file = save_uid(&uid, uid_out)?;
            println!(
                "session {}: uid saved to {} (0600); send the hello with: appctrl hello --uid @{} --s2cs {s2cs} --role PROD --prod-listeners HOST:PORT,...",
                secret::tag(&uid),
                file.display(),
                file.display()
            );
            let mut c = client::connect(&s2cs, &opts).await?;
            let resp = c
                .req(proto::Request {
                    uid: uid.clone(),
                    role: "PROD".into(),
                    num_conn,
                    rate,
                })
                .await
                .map_err(|s| anyhow::anyhow!("req failed: {}", describe_status(&s)))?
                .into_inner();
            let upd = update(c.clone(), &uid, resp.prod_listeners, "PROD", "", &[]).await?;
            println!("Listeners: {}", upd.listeners.join(","));
            Ok(())
        }
        Command::Release { uid, s2cs } => {
            let uid = secret::read_secret_arg("uid", &uid)?;
            let mut failed = Vec::new();
            for server in &s2cs {
                let result = async {
                    let mut c = client::connect(server, &opts).await?;
                    c.release(proto::Release { uid: uid.clone() })
                        .await
                        .map_err(|s| anyhow::anyhow!(describe_status(&s)))?;
                    anyhow::Ok(())
                }
                .await;
                match result {
                    Ok(()) => println!("released session {} on {server}", secret::tag(&uid)),
                    Err(e) => {
                        eprintln!("release on {server} failed: {e:#}");
                        failed.push(server.clone());
                    }
                }
            }
            if !failed.is_empty() {
                bail!("release failed on {}", failed.join(", "));
            }
            Ok(())
        }
        Command::Connect {
            prod_s2cs,
            cons_s2cs,
            prod_targets,
            session: SessionArgs { num_conn, rate },
            prod_server_cert,
            cons_server_cert,
            allow_prod_from,
            allow_cons_from,
            uid_out,
            json,
        } => {
            let mut prod_opts = opts.clone();
            if let Some(p) = prod_server_cert {
                prod_opts.server_cert = p;
            }
            let mut cons_opts = opts;
            if let Some(p) = cons_server_cert {
                cons_opts.server_cert = p;
            }
            let plan = ConnectPlan {
                prod_s2cs,
                cons_s2cs,
                prod_targets,
                num_conn,
                rate,
                allow_prod_from,
                allow_cons_from,
            };
            let report = connect(&plan, &prod_opts, &cons_opts, uid_out).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "session {} ready in {:.1} ms: {} engine, WAN {}",
                    report.tag, report.setup_ms, report.engine, report.wan_security
                );
                println!(
                    "producer gateway listeners: {}",
                    report.prod_listeners.join(",")
                );
                println!(
                    "consumer apps connect to:   {}",
                    report.cons_listeners.join(",")
                );
                println!(
                    "uid saved to {} (0600); release with: s2uc release @{} --s2cs {},{}",
                    report.uid_file.display(),
                    report.uid_file.display(),
                    plan.prod_s2cs,
                    plan.cons_s2cs
                );
            }
            Ok(())
        }
        Command::Status { uid, s2cs, json } => {
            let uid = secret::read_secret_arg("uid", &uid)?;
            let mut c = client::connect(&s2cs, &opts).await?;
            let st = c
                .status(proto::StatusRequest { uid })
                .await
                .map_err(|s| anyhow::anyhow!("status failed: {}", describe_status(&s)))?
                .into_inner();
            if json {
                println!("{}", status_json(&st));
            } else {
                print_status(&st);
            }
            Ok(())
        }
        Command::List { s2cs, json } => {
            let mut c = client::connect(&s2cs, &opts).await?;
            let list = c
                .list(proto::ListRequest {})
                .await
                .map_err(|s| anyhow::anyhow!("list failed: {}", describe_status(&s)))?
                .into_inner();
            if json {
                let items: Vec<String> = list.sessions.iter().map(status_json).collect();
                println!("[{}]", items.join(","));
            } else if list.sessions.is_empty() {
                println!("no sessions");
            } else {
                for s in &list.sessions {
                    print_status(s);
                }
            }
            Ok(())
        }
    }
}

/// The inputs of `connect`.
#[derive(Debug, Clone)]
pub struct ConnectPlan {
    pub prod_s2cs: String,
    pub cons_s2cs: String,
    pub prod_targets: Vec<String>,
    pub num_conn: i32,
    pub rate: i32,
    pub allow_prod_from: Vec<String>,
    pub allow_cons_from: Vec<String>,
}

/// Drives both gateways: req+hello on each (in parallel), then the updates with a fresh WAN
/// key. On any failure, whatever was set up on either side is released again.
pub async fn connect(
    plan: &ConnectPlan,
    prod_opts: &ClientOptions,
    cons_opts: &ClientOptions,
    uid_out: Option<PathBuf>,
) -> anyhow::Result<ConnectReport> {
    let started = Instant::now();
    let uid = secret::new_uid();
    let wan_key = secret::new_wan_key();
    let (prod_c, cons_c) = tokio::try_join!(
        client::connect(&plan.prod_s2cs, prod_opts),
        client::connect(&plan.cons_s2cs, cons_opts)
    )?;
    let (mut prod_c, mut cons_c) = (prod_c, cons_c);
    let result = async {
        let (prod, cons) = tokio::join!(
            req_with_hello(
                prod_c.clone(),
                &uid,
                "PROD",
                plan.num_conn,
                plan.rate,
                "PROD",
                plan.prod_targets.clone()
            ),
            req_with_hello(
                cons_c.clone(),
                &uid,
                "CONS",
                plan.num_conn,
                plan.rate,
                "CONS",
                Vec::new()
            ),
        );
        let prod = prod.with_context(|| format!("producer gateway {}", plan.prod_s2cs))?;
        let cons = cons.with_context(|| format!("consumer gateway {}", plan.cons_s2cs))?;
        let (pu, cu) = tokio::join!(
            update(
                prod_c.clone(),
                &uid,
                prod.prod_listeners.clone(),
                "PROD",
                &wan_key,
                &plan.allow_prod_from
            ),
            update(
                cons_c.clone(),
                &uid,
                prod.listeners.clone(),
                "CONS",
                &wan_key,
                &plan.allow_cons_from
            ),
        );
        let pu = pu.with_context(|| format!("producer gateway {}", plan.prod_s2cs))?;
        let cu = cu.with_context(|| format!("consumer gateway {}", plan.cons_s2cs))?;
        anyhow::ensure!(
            pu.wan_security == cu.wan_security,
            "the gateways disagree on WAN protection (producer {}, consumer {}); both must run \
             with or without --wan_plaintext",
            pu.wan_security,
            cu.wan_security
        );
        anyhow::Ok((pu, cons.listeners, cu))
    }
    .await;
    let (pu, cons_listeners, cu) = match result {
        Ok(v) => v,
        Err(e) => {
            // Best effort: leave nothing behind on either gateway.
            let _ = prod_c.release(proto::Release { uid: uid.clone() }).await;
            let _ = cons_c.release(proto::Release { uid: uid.clone() }).await;
            return Err(e.context("connect failed; anything set up was released"));
        }
    };
    let uid_file = save_uid(&uid, uid_out)?;
    Ok(ConnectReport {
        tag: secret::tag(&uid),
        uid_file,
        cons_listeners,
        prod_listeners: pu.listeners,
        prod_targets: pu.prod_listeners,
        engine: cu.engine,
        wan_security: cu.wan_security,
        setup_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// `req` and `hello` for the same uid at once; the hello is retried while the server does not
/// know the uid yet (upstream servers have no hello-before-req grace).
async fn req_with_hello(
    c: Client,
    uid: &str,
    role: &str,
    num_conn: i32,
    rate: i32,
    hello_role: &str,
    prod_listeners: Vec<String>,
) -> anyhow::Result<proto::Response> {
    let mut rc = c.clone();
    let req = rc.req(proto::Request {
        uid: uid.into(),
        role: role.into(),
        num_conn,
        rate,
    });
    let hello = send_hello(c.clone(), uid, hello_role, prod_listeners);
    let (resp, hello) = tokio::join!(req, hello);
    let resp = resp.map_err(|s| anyhow::anyhow!("req failed: {}", describe_status(&s)))?;
    hello.context("hello failed")?;
    Ok(resp.into_inner())
}

/// Sends a hello, retrying NOT_FOUND 5 times 100 ms apart (as upstream appctrl); any other
/// error (UNAUTHENTICATED first of all) ends at once.
pub async fn send_hello(
    mut c: Client,
    uid: &str,
    role: &str,
    prod_listeners: Vec<String>,
) -> anyhow::Result<proto::AppResponse> {
    let mut attempt = 0;
    loop {
        let r = c
            .hello(proto::Hello {
                uid: uid.into(),
                prod_listeners: prod_listeners.clone(),
                role: role.into(),
            })
            .await;
        match r {
            Ok(resp) => return Ok(resp.into_inner()),
            Err(s) if s.code() == tonic::Code::NotFound && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => bail!("{}", describe_status(&s)),
        }
    }
}

async fn update(
    mut c: Client,
    uid: &str,
    targets: Vec<String>,
    role: &str,
    wan_key: &str,
    allowed_sources: &[String],
) -> anyhow::Result<proto::Response> {
    c.update(proto::UpdateTargets {
        uid: uid.into(),
        remote_listeners: targets,
        role: role.into(),
        wan_key: wan_key.into(),
        allowed_sources: allowed_sources.to_vec(),
    })
    .await
    .map(tonic::Response::into_inner)
    .map_err(|s| anyhow::anyhow!("update failed: {}", describe_status(&s)))
}

fn endpoints(ip: &str, ports: &str) -> anyhow::Result<Vec<String>> {
    let host = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => ip.to_owned(),
    };
    ports
        .split(',')
        .map(|p| {
            let p: u16 = p
                .trim()
                .parse()
                .with_context(|| format!("bad port '{p}' in --receiver_ports"))?;
            Ok(format!("{host}:{p}"))
        })
        .collect()
}

fn save_uid(uid: &str, path: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match path {
        Some(p) => p,
        None => {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            let dir = home.join(".scistream/sessions");
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            dir.join(format!("{}.uid", secret::tag(uid)))
        }
    };
    secret::write_private(&path, &format!("{uid}\n"))
        .with_context(|| format!("saving the uid to {}", path.display()))?;
    Ok(path)
}

fn status_json(s: &proto::SessionStatus) -> String {
    let streams: Vec<serde_json::Value> = s
        .streams
        .iter()
        .map(|t| {
            serde_json::json!({
                "index": t.index, "listener": t.listener, "target": t.target,
                "bytes_to_target": t.bytes_to_target, "bytes_from_target": t.bytes_from_target,
                "active_connections": t.active_connections, "total_connections": t.total_connections,
                "rejected_connections": t.rejected_connections, "last_error": t.last_error,
                "kernel_backlog": t.kernel_backlog, "pauses": t.pauses,
            })
        })
        .collect();
    serde_json::json!({
        "tag": s.tag, "role": s.role, "num_conn": s.num_conn, "state": s.state,
        "listeners": s.listeners, "targets": s.targets, "engine": s.engine,
        "wan_security": s.wan_security, "age_seconds": s.age_seconds, "streams": streams,
    })
    .to_string()
}

fn print_status(s: &proto::SessionStatus) {
    println!(
        "session {} {} {} ({} streams, {} engine, WAN {}, age {} s)",
        s.tag,
        s.role,
        s.state,
        s.num_conn,
        s.engine,
        if s.wan_security.is_empty() {
            "-"
        } else {
            &s.wan_security
        },
        s.age_seconds
    );
    for t in &s.streams {
        println!(
            "  #{:<3} {} -> {}  to-target {}  from-target {}  conns {}/{}  rejected {}{}{}",
            t.index,
            t.listener,
            if t.target.is_empty() { "-" } else { &t.target },
            t.bytes_to_target,
            t.bytes_from_target,
            t.active_connections,
            t.total_connections,
            t.rejected_connections,
            if t.kernel_backlog > 0 || t.pauses > 0 {
                format!("  kernel-backlog {}  pauses {}", t.kernel_backlog, t.pauses)
            } else {
                String::new()
            },
            if t.last_error.is_empty() {
                String::new()
            } else {
                format!("  last error: {}", t.last_error)
            }
        );
    }
}
