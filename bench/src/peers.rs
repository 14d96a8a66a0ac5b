//! Peer proxies placed exactly where the SciStream-RS gateways sit: haproxy (mode tcp with
//! splice-auto), nginx stream, socat, each on GN1 and GN2, with the settings that measured best
//! for each on this class of host (research/kernel-paths §4).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testbed::topology::{Host, Topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    Haproxy,
    Nginx,
    Socat,
}

impl Peer {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "haproxy" => Some(Self::Haproxy),
            "nginx" => Some(Self::Nginx),
            "socat" => Some(Self::Socat),
            _ => None,
        }
    }
}

/// Starts `peer` in `host`, forwarding `listen` → `target`, and waits until it listens.
pub(crate) fn start(
    peer: Peer,
    topo: &Topology,
    host: Host,
    listen: SocketAddr,
    target: SocketAddr,
    dir: &Path,
) -> Result<Child> {
    let tag = format!("{host:?}").to_lowercase();
    let mut cmd = match peer {
        Peer::Haproxy => {
            let cfg = dir.join(format!("haproxy-{tag}.cfg"));
            std::fs::write(
                &cfg,
                format!(
                    "global\n  maxconn 4096\n  nbthread 2\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
                     timeout client 60s\n  timeout server 60s\n  option splice-auto\nfrontend f\n  bind {listen}\n  \
                     default_backend b\nbackend b\n  server s1 {target}\n"
                ),
            )?;
            let mut c = topo.command(host, "haproxy");
            c.arg("-db").arg("-f").arg(cfg);
            c
        }
        Peer::Nginx => {
            let cfg = dir.join(format!("nginx-{tag}.conf"));
            std::fs::write(
                &cfg,
                format!(
                    "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\ndaemon off;\nworker_processes 2;\n\
                     pid {pid};\nerror_log stderr;\nevents {{}}\nstream {{\n  server {{\n    listen {listen};\n    \
                     proxy_pass {target};\n    proxy_buffer_size 64k;\n  }}\n}}\n",
                    pid = dir.join(format!("nginx-{tag}.pid")).display()
                ),
            )?;
            let mut c = topo.command(host, "nginx");
            c.arg("-c")
                .arg(cfg)
                .arg("-p")
                .arg(dir)
                .args(["-e", "stderr"]);
            c
        }
        Peer::Socat => {
            let mut c = topo.command(host, "socat");
            c.args(["-b", "65536"])
                .arg(format!(
                    "TCP-LISTEN:{},bind={},reuseaddr,fork",
                    listen.port(),
                    listen.ip()
                ))
                .arg(format!("TCP:{target}"));
            c
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {peer:?} (is it installed? cargo xtask setup)"))?;
    wait_listening(topo, host, listen)?;
    Ok(child)
}

/// Waits until something listens on `addr` inside `host`.
pub(crate) fn wait_listening(topo: &Topology, host: Host, addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = topo.command(host, "ss").arg("-Hltn").output()?;
        if String::from_utf8_lossy(&out.stdout).contains(&addr.to_string()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} in {host:?} after 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
