//! Prometheus text exposition (`GET /metrics`) of a gateway: sessions, the port pool and every
//! stream's counters, labelled by the non-secret session tag. Served on `--metrics_addr`, off
//! by default; bind it to a management address.

use std::fmt::Write as _;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::service::Gateway;

/// Renders the current metrics.
pub async fn render(gateway: &Gateway) -> String {
    let mut out = String::new();
    let sessions = gateway.registry.all();
    let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        &mut out,
        "scistream_sessions",
        "Sessions on this gateway.",
        sessions.len() as u64,
    );
    gauge(
        &mut out,
        "scistream_ports_in_use",
        "Listener ports handed out from the pool.",
        gateway.pool.in_use() as u64,
    );
    let families = [
        (
            "scistream_stream_bytes_to_target_total",
            "counter",
            "Bytes forwarded from the listener side to the target.",
        ),
        (
            "scistream_stream_bytes_from_target_total",
            "counter",
            "Bytes forwarded from the target back to the listener side.",
        ),
        (
            "scistream_stream_active_connections",
            "gauge",
            "Open proxied connections.",
        ),
        (
            "scistream_stream_connections_total",
            "counter",
            "Proxied connections accepted.",
        ),
        (
            "scistream_stream_rejected_total",
            "counter",
            "Connections refused by the source allow-list.",
        ),
        (
            "scistream_stream_kernel_backlog_bytes",
            "gauge",
            "sockmap engine: bytes queued inside the kernel toward a slow reader.",
        ),
        (
            "scistream_stream_pauses_total",
            "counter",
            "sockmap engine: directions paused by the backlog watchdog.",
        ),
    ];
    let mut rows: Vec<[String; 7]> = Vec::new();
    for s in &sessions {
        let data = s.data.lock().await;
        let Some(proxy) = data.proxy.as_ref() else {
            continue;
        };
        for st in proxy.stats() {
            let labels = format!(
                "session=\"{}\",role=\"{}\",stream=\"{}\"",
                s.tag,
                s.role.as_wire(),
                st.index
            );
            rows.push([
                format!("{{{labels}}} {}", st.bytes_to_target),
                format!("{{{labels}}} {}", st.bytes_from_target),
                format!("{{{labels}}} {}", st.active_connections),
                format!("{{{labels}}} {}", st.total_connections),
                format!("{{{labels}}} {}", st.rejected_connections),
                format!("{{{labels}}} {}", st.kernel_backlog),
                format!("{{{labels}}} {}", st.pauses),
            ]);
        }
    }
    for (i, (name, kind, help)) in families.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for r in &rows {
            let _ = writeln!(out, "{name}{}", r[i]);
        }
    }
    let cycles = gateway.engine.lcore_cycles();
    if !cycles.is_empty() {
        for (name, help, pick) in [
            (
                "scistream_dpdk_lcore_busy_cycles_total",
                "TSC cycles a dataplane lcore spent in rounds that moved a frame or a byte.",
                (|c: &(u64, u64)| c.0) as fn(&(u64, u64)) -> u64,
            ),
            (
                "scistream_dpdk_lcore_idle_cycles_total",
                "TSC cycles a dataplane lcore spent polling without work.",
                |c: &(u64, u64)| c.1,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (i, c) in cycles.iter().enumerate() {
                let _ = writeln!(out, "{name}{{lcore=\"{i}\"}} {}", pick(c));
            }
        }
    }
    let streams = gateway.engine.lcore_streams();
    if !streams.is_empty() {
        let name = "scistream_dpdk_lcore_streams";
        let _ = writeln!(
            out,
            "# HELP {name} Active streams placed on a dataplane lcore.\n# TYPE {name} gauge"
        );
        for (i, n) in streams.iter().enumerate() {
            let _ = writeln!(out, "{name}{{lcore=\"{i}\"}} {n}");
        }
    }
    if let Some(n) = gateway.engine.kernel_map_entries() {
        let _ = writeln!(
            out,
            "# HELP scistream_sockmap_map_entries Entries in the sockmap engine's BPF maps.\n\
             # TYPE scistream_sockmap_map_entries gauge\nscistream_sockmap_map_entries {n}"
        );
    }
    out
}

/// Serves `GET /metrics` until the task is dropped. Anything else gets 404.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            // Read the request head (it may arrive in pieces), up to 4 KiB or 5 s.
            let mut head = Vec::with_capacity(512);
            let mut buf = [0u8; 1024];
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 4096 {
                match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            let head = String::from_utf8_lossy(&head);
            let (status, body) = if head.starts_with("GET /metrics ") {
                ("200 OK", render(&gateway).await)
            } else {
                (
                    "404 Not Found",
                    "only GET /metrics is served here\n".to_owned(),
                )
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        });
    }
}
