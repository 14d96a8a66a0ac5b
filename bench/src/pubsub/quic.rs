//! `qpub` / `qsub`: the stamped-message workload of [`super::tcp`] over one QUIC stream, for
//! QUIC apps: directly between the app hosts (the baseline of the QUIC app relay) or through
//! gateways running the `quic-relay` engine. They use the async `quinn` crate, an independent
//! driver of the same protocol engine the gateways drive sans-io, with the same tuning
//! ([`dataplane::QuicTuning`]) so a comparison measures the path, not the settings.
//!
//! Both apps present the session's app identity ([`WanTls::for_apps`], derived from the uid),
//! as the gateways' LAN legs do. The subscriber opens the stream and sends one byte (a QUIC
//! stream exists for the peer only once it carries data); the publisher then sends. The
//! subscriber finishes its side after the last message and the publisher closes only then: a
//! QUIC acknowledgement means "received", and through a relay that is the relay, not the
//! subscriber (closing a connection discards what the relay has not forwarded yet).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use dataplane::quic::udp;
use dataplane::{QuicTuning, WanTls};
use testbed::parse_size;
use tokio_util::io::SyncIoBridge;

use super::parse_hz;
use super::tcp::{message_count, receive_messages, send_messages};

/// The largest datagram whose 10-datagram GSO batch fits in 64 KiB.
const QUINN_MAX_MTU: u16 = 6500;

/// QUIC tuning shared by both apps.
#[derive(Debug, Args)]
pub(crate) struct Tuning {
    /// The session uid; its app identity authenticates both ends.
    #[arg(long, default_value = "s2bench")]
    pub(crate) uid: String,
    /// Round-trip time the windows are sized for, milliseconds.
    #[arg(long = "rtt-ms", default_value_t = 20.0)]
    pub(crate) rtt_ms: f64,
    /// Path rate the windows are sized for, Gbit/s.
    #[arg(long = "rate-gbps", default_value_t = 10.0)]
    pub(crate) rate_gbps: f64,
    /// Congestion controller: auto (as the host's TCP, the gateways' default), cubic, bbr or
    /// newreno.
    #[arg(long, default_value = "auto")]
    pub(crate) cc: String,
}

impl Tuning {
    fn build(&self) -> Result<(QuicTuning, WanTls)> {
        let t = QuicTuning {
            rtt: Duration::from_secs_f64(self.rtt_ms / 1e3),
            bandwidth_bps: (self.rate_gbps * 1e9) as u64,
            // quinn sends GSO batches of up to 10 datagrams; the kernel refuses batches over
            // 64 KiB, and quinn then takes the path for a black hole and drops to 1200 bytes.
            // (The gateways' own driver caps the batch instead.)
            max_mtu: QUINN_MAX_MTU,
            congestion: self.cc.parse()?,
            ..QuicTuning::default()
        };
        t.validate()?;
        Ok((t, WanTls::for_apps(self.uid.as_bytes())?))
    }
}

/// `s2bench qpub`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("amount").required(true).args(["count", "dataset"])))]
pub(crate) struct PubArgs {
    /// UDP address to listen on; prints READY once bound, serves one connection.
    #[arg(long)]
    pub(crate) listen: SocketAddr,
    /// Bytes per message, header included (at least 32).
    #[arg(long, value_parser = parse_size)]
    pub(crate) size: u64,
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Bytes to send instead of --count: floor(dataset / size) messages.
    #[arg(long, value_parser = parse_size)]
    pub(crate) dataset: Option<u64>,
    #[arg(long = "pace-hz", value_parser = parse_hz)]
    pub(crate) pace_hz: Option<f64>,
    /// Seconds to wait for a subscriber, and for it to close after the last message.
    #[arg(long = "idle-timeout", default_value_t = 30)]
    pub(crate) idle_timeout: u64,
    #[command(flatten)]
    pub(crate) tuning: Tuning,
}

/// `s2bench qsub`.
#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    /// The qpub (or the gateway in front of it), UDP.
    #[arg(long)]
    pub(crate) connect: SocketAddr,
    /// Seconds to keep retrying the handshake.
    #[arg(long = "connect-timeout", default_value_t = 10)]
    pub(crate) connect_timeout: u64,
    /// Fail when nothing arrives for this many seconds.
    #[arg(long = "idle-timeout", default_value_t = 30)]
    pub(crate) idle_timeout: u64,
    #[command(flatten)]
    pub(crate) tuning: Tuning,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn endpoint(
    bind: SocketAddr,
    t: &QuicTuning,
    server: Option<quinn::ServerConfig>,
) -> Result<quinn::Endpoint> {
    let (sock, report) = udp::bind(bind, t.udp_buffer, t.force_udp_buffer)
        .with_context(|| format!("binding UDP {bind}"))?;
    report.log("s2bench");
    Ok(quinn::Endpoint::new(
        t.endpoint(),
        server,
        sock,
        Arc::new(quinn::TokioRuntime),
    )?)
}

pub(crate) fn publish(a: &PubArgs) -> Result<()> {
    let count = message_count(a.size, a.count, a.dataset)?;
    let (t, tls) = a.tuning.build()?;
    let rt = runtime()?;
    rt.block_on(async {
        let ep = endpoint(a.listen, &t, Some(t.server(&tls)?))?;
        println!("READY");
        std::io::stdout().flush()?;
        let wait = Duration::from_secs(a.idle_timeout);
        let incoming = tokio::time::timeout(wait, ep.accept())
            .await
            .context("no subscriber connected in time")?
            .context("endpoint closed")?;
        let conn = incoming
            .await
            .context("QUIC handshake with the subscriber")?;
        let (send, mut recv) = tokio::time::timeout(wait, conn.accept_bi())
            .await
            .context("the subscriber opened no stream")??;
        let mut hello = [0u8; 1];
        recv.read_exact(&mut hello).await?;
        // The subscriber finishes its side once it has read every message: that FIN, not an
        // acknowledgement (which a relay gives before forwarding), says the data arrived.
        let done = tokio::spawn(async move { recv.read_to_end(64).await });
        let (size, pace) = (a.size, a.pace_hz);
        let mut send = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut w = SyncIoBridge::new(send);
            send_messages(&mut w, size, count, pace)?;
            Ok(w.into_inner())
        })
        .await??;
        send.finish()?;
        match tokio::time::timeout(wait, done).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => bail!("the subscriber did not confirm the stream: {e}"),
            Ok(Err(e)) => bail!("waiting for the subscriber: {e}"),
            Err(_) => bail!("the subscriber did not confirm the stream within {wait:?}"),
        }
        conn.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
        Ok(())
    })
}

pub(crate) fn subscribe(a: &SubArgs) -> Result<()> {
    let (t, tls) = a.tuning.build()?;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let any: SocketAddr = if a.connect.is_ipv6() {
            "[::]:0".parse()?
        } else {
            "0.0.0.0:0".parse()?
        };
        let ep = endpoint(any, &t, None)?;
        let client = t.client(&tls)?;
        let deadline = Instant::now() + Duration::from_secs(a.connect_timeout);
        let conn = loop {
            let attempt = ep.connect_with(client.clone(), a.connect, WanTls::server_name_str())?;
            match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(c)) => break c,
                Ok(Err(e)) if Instant::now() >= deadline => {
                    bail!("QUIC handshake with {} failed: {e}", a.connect)
                }
                Err(_) if Instant::now() >= deadline => {
                    bail!(
                        "no QUIC answer from {} within {} s",
                        a.connect,
                        a.connect_timeout
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let (mut send, recv) = conn.open_bi().await?;
        let start = Instant::now();
        // One byte announces the stream; the FIN after the last message confirms it.
        send.write_all(b"h").await?;
        let (from, idle) = (a.connect.to_string(), a.idle_timeout);
        let report = tokio::task::spawn_blocking(move || {
            // A stalled path ends in quinn's idle timeout (an error from this reader).
            let mut r = SyncIoBridge::new(recv);
            receive_messages(&mut r, start, "tcp", &from, idle)
        })
        .await??;
        send.finish()?;
        // Closing before the FIN is acknowledged would discard it.
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
        conn.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
        Ok::<_, anyhow::Error>(report)
    })?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
