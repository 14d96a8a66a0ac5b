//! The data path driven through the control service, on loopback: bytes both ways through a
//! producer gateway and a consumer gateway (WAN TLS on and off; copy, splice and sockmap), reset
//! propagation, an unreachable target, the source allow-list, and that release closes every
//! socket (and, for sockmap, empties the kernel maps). The sockmap cases need root and BPF.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{Client, Harness, consumer, pattern, producer, test_config};

/// A producer app that echoes what it reads, until EOF; returns what it got.
fn echo_producer() -> (String, std::thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        s.shutdown(Shutdown::Write).unwrap();
        got
    });
    (addr, t)
}

/// A consumer app in request/response: `rounds` small messages, each answered before the next
/// is sent, so nothing behind a message can push it through. Returns the answers.
fn ping(engine: &str, addr: &str, rounds: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answers = Vec::new();
    // A held-back write waits for the kernel's cork timer (200 ms) at each of the four relay
    // sockets on the way there and back: 50 rounds took 42 s. Unheld, they take well under a
    // second; 100 ms a round is a bound with a wide margin on both sides, not a speed target.
    let deadline = Instant::now() + Duration::from_millis(100) * rounds as u32;
    for round in 0..rounds {
        let msg = pattern(round as u8, 16);
        s.write_all(&msg).unwrap();
        let mut echo = [0u8; 16];
        s.read_exact(&mut echo).unwrap_or_else(|e| {
            panic!("{engine}: round {round}: no answer to a 16-byte message within 1 s ({e}): the relay held a small write back")
        });
        answers.extend_from_slice(&echo);
    }
    assert!(
        Instant::now() < deadline,
        "{engine}: {rounds} request/response rounds of 16 bytes took over 100 ms a round: the \
         relay holds small writes back"
    );
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "bytes after the last answer");
    answers
}

/// What the apps exchange through the chain.
#[derive(Clone, Copy)]
enum Traffic {
    /// Both directions at once, then half-close.
    Bulk { down: usize, up: usize },
    /// Small request/response rounds.
    PingPong { rounds: usize },
}

async fn chain(wan_plaintext: bool, engine: &str, traffic: Traffic) {
    let mut pcfg = test_config(2);
    let mut ccfg = test_config(2);
    for c in [&mut pcfg, &mut ccfg] {
        c.wan_plaintext = wan_plaintext;
        c.engine = engine.into();
    }
    let (prod, cons) = (Harness::start(pcfg).await, Harness::start(ccfg).await);
    let (pc, cc) = (prod.client(None).await, cons.client(None).await);
    let (down, up, (app, app_thread)) = match traffic {
        Traffic::Bulk { down, up } => {
            let down = pattern(1, down);
            (down.clone(), pattern(2, up), producer(down))
        }
        Traffic::PingPong { rounds } => {
            let msgs: Vec<u8> = (0..rounds).flat_map(|r| pattern(r as u8, 16)).collect();
            (msgs.clone(), msgs, echo_producer())
        }
    };
    let uid = "uid-chain";
    let key = "5a".repeat(32);
    let p = pc.open(uid, "PROD", 1, &[app.as_str()]).await;
    let c = cc.open(uid, "CONS", 1, &[]).await;
    let upd = |client: &Client, role: &'static str, targets: Vec<String>| {
        let client = client.clone();
        let key = key.clone();
        async move {
            client
                .update_with(control::proto::UpdateTargets {
                    uid: uid.into(),
                    role: role.into(),
                    remote_listeners: targets,
                    wan_key: key,
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    let pu = upd(&pc, "PROD", p.prod_listeners.clone()).await;
    upd(&cc, "CONS", p.listeners.clone()).await;
    assert_eq!(
        pu.wan_security,
        if wan_plaintext { "plaintext" } else { "tls" }
    );
    let listener = c.listeners[0].clone();
    let up2 = up.clone();
    let engine = engine.to_owned();
    let got_down = tokio::task::spawn_blocking(move || match traffic {
        Traffic::Bulk { .. } => consumer(&listener, up2),
        Traffic::PingPong { rounds } => ping(&engine, &listener, rounds),
    })
    .await
    .unwrap();
    let got_up = app_thread.join().unwrap();
    assert!(
        got_down == down,
        "producer→consumer bytes differ ({} vs {})",
        got_down.len(),
        down.len()
    );
    assert!(got_up == up, "consumer→producer bytes differ");
    let st = cc.status(uid).await.unwrap();
    assert_eq!(st.streams[0].bytes_from_target, down.len() as u64);
    assert_eq!(st.streams[0].bytes_to_target, up.len() as u64);
    pc.release(uid).await.unwrap();
    cc.release(uid).await.unwrap();
    for h in [&prod, &cons] {
        let entries = h.gateway.engine.kernel_map_entries();
        assert!(
            matches!(entries, None | Some(0)),
            "kernel map entries left: {entries:?}"
        );
    }
    prod.stop().await;
    cons.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_chain_with_wan_tls_moves_bytes_both_ways() {
    chain(
        false,
        "copy",
        Traffic::Bulk {
            down: 3 << 20,
            up: 1 << 20,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_chain_with_plaintext_wan_moves_bytes_both_ways() {
    chain(
        true,
        "copy",
        Traffic::Bulk {
            down: 3 << 20,
            up: 1 << 20,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splice_chain_moves_bytes_both_ways() {
    // Large enough, both ways at once, that pipes run out of slots before bytes (a stall that
    // was only visible under sustained load).
    chain(
        true,
        "splice",
        Traffic::Bulk {
            down: 64 << 20,
            up: 64 << 20,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockmap_chain_moves_bytes_both_ways() {
    chain(
        true,
        "sockmap",
        Traffic::Bulk {
            down: 64 << 20,
            up: 64 << 20,
        },
    )
    .await;
}

/// Request/response apps (the paper's sync exchange, RPC-style consumers): every small write
/// must leave the relay on its own, without more data behind it. `splice` held them back
/// (`SPLICE_F_MORE` on the socket side corks partial segments) until s2bench's matrix hung on
/// a ZeroMQ FIN_ACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_request_response_rounds_cross_every_kernel_engine() {
    for engine in ["copy", "splice", "sockmap"] {
        chain(true, engine, Traffic::PingPong { rounds: 50 }).await;
    }
}

#[test]
fn engines_without_tls_are_refused_at_start_without_the_plaintext_opt_in() {
    for engine in ["splice", "sockmap", "dpdk"] {
        let mut cfg = test_config(1);
        cfg.engine = engine.into();
        let err = control::server::build_gateway(&cfg, Default::default())
            .err()
            .expect("must refuse");
        assert!(
            err.to_string().contains("--wan_plaintext"),
            "{engine}: {err}"
        );
    }
}

/// Without BPF privileges, `--engine sockmap` refuses to start and says why and what to do.
#[test]
fn sockmap_without_bpf_privileges_refuses_with_the_reason() {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["--inh-caps=-all", "--bounding-set=-all"])
        .arg(env!("CARGO_BIN_EXE_s2cs"))
        .args([
            "--engine",
            "sockmap",
            "--wan_plaintext",
            "--no_auth",
            "--nossl",
        ])
        .args(["--port", "1", "--port_range", "2-3"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("setpriv (util-linux) runs s2cs without privileges");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must not start: {err}");
    assert!(err.contains("--engine sockmap cannot start"), "{err}");
    assert!(
        err.contains("needs root") && err.contains("--engine copy"),
        "{err}"
    );
}

#[test]
fn auto_picks_sockmap_only_when_enabled_and_plaintext() {
    let pick = |sockmap_auto: bool, wan_plaintext: bool| {
        let mut cfg = test_config(1);
        cfg.sockmap_auto = sockmap_auto;
        cfg.wan_plaintext = wan_plaintext;
        control::server::choose_engine(&cfg).unwrap().kind.name()
    };
    assert_eq!(pick(false, true), "copy");
    assert_eq!(
        pick(true, false),
        "copy",
        "sockmap cannot carry the TLS WAN"
    );
    assert_eq!(pick(true, true), "sockmap");
}

/// `--engine dpdk` (and `quic` on the dpdk ports) says what is missing or wrong before it
/// touches EAL; `auto` tries DPDK only when it is configured and the WAN is plaintext.
#[cfg(feature = "dpdk")]
#[test]
fn dpdk_configuration_errors_are_precise() {
    let refuse = |edit: &dyn Fn(&mut control::config::Config)| {
        let mut cfg = test_config(1);
        cfg.engine = "dpdk".into();
        cfg.wan_plaintext = true;
        edit(&mut cfg);
        let err = control::server::build_gateway(&cfg, Default::default())
            .err()
            .expect("must refuse");
        format!("{err:#}")
    };
    let err = refuse(&|_| {});
    assert!(err.contains("--nic_profile"), "{err}");
    let err = refuse(&|c| c.nic_profile = Some("connectx7".into()));
    assert!(
        err.contains("no builtin NIC profile \"connectx7\""),
        "{err}"
    );
    let err = refuse(&|c| c.nic_profile = Some("af_packet_jumbo".into()));
    assert!(err.contains("--dpdk_port"), "{err}");
    let err = refuse(&|c| {
        c.nic_profile = Some("af_packet_jumbo".into());
        c.dpdk_ports = vec!["name=wan,iface=wan0".into()];
    });
    assert!(err.contains("needs name= and ipv4="), "{err}");
    let err = refuse(&|c| {
        c.nic_profile = Some("af_packet_jumbo".into());
        c.dpdk_ports = vec!["name=wan,ipv4=192.0.2.1/24,iface=wan0".into()];
    });
    assert!(
        err.contains("is not the address of a dpdk port (wan=192.0.2.1)"),
        "{err}"
    );
    // The operator's stream mapping and the BDP buffer are checked before EAL starts.
    let dpdk_port = |c: &mut control::config::Config| {
        c.nic_profile = Some("af_packet_jumbo".into());
        c.dpdk_ports = vec!["name=wan,ipv4=192.0.2.1/24,iface=wan0".into()];
        c.listener_ip = "192.0.2.1".parse().unwrap();
        c.cores = Some(vec![1]);
    };
    let err = refuse(&|c| {
        dpdk_port(c);
        c.dpdk_stream_lcores = vec![1, 7];
    });
    assert!(
        err.contains("--dpdk_stream_lcores names lcore 7")
            && err.contains("dataplane lcores are [1]"),
        "{err}"
    );
    let err = refuse(&|c| {
        dpdk_port(c);
        c.dpdk_tcp_buffer = "lots".into();
    });
    assert!(
        err.contains("dpdk_tcp_buffer (a size such as 4M, or bdp)"),
        "{err}"
    );
    let err = refuse(&|c| {
        dpdk_port(c);
        c.dpdk_tcp_buffer = "bdp".into();
        c.quic_rtt = "soon".into();
    });
    assert!(
        err.contains("quic_rtt (sizes dpdk_tcp_buffer = bdp)"),
        "{err}"
    );
    // QUIC on the dpdk ports: the tunnel yes (checked like dpdk), the app relay no.
    let err = refuse(&|c| {
        c.engine = "quic".into();
        c.wan_plaintext = false;
        c.nic_profile = Some("af_packet_jumbo".into());
        c.dpdk_ports = vec!["name=wan,ipv4=192.0.2.1/24,iface=wan0".into()];
    });
    assert!(
        err.contains("--engine quic on the dpdk ports cannot start")
            && err.contains("is not the address of a dpdk port"),
        "{err}"
    );
    let err = refuse(&|c| {
        c.engine = "quic-relay".into();
        c.wan_plaintext = false;
        c.nic_profile = Some("af_packet_jumbo".into());
        c.dpdk_ports = vec!["name=wan,ipv4=192.0.2.1/24,iface=wan0".into()];
    });
    assert!(err.contains("runs on kernel UDP only"), "{err}");

    let mut cfg = test_config(1);
    cfg.nic_profile = Some("af_packet_jumbo".into());
    cfg.dpdk_ports = vec!["name=wan,ipv4=192.0.2.1/24,iface=wan0".into()];
    let choice = control::server::choose_engine(&cfg).unwrap();
    assert_eq!(choice.kind.name(), "copy");
    assert!(choice.why.contains("TLS"), "{}", choice.why);
}

/// A dpdk port whose device does not exist: s2cs exits with the port, the device and a hint.
#[cfg(feature = "dpdk")]
#[test]
fn dpdk_with_a_missing_device_exits_with_the_port_and_a_hint() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s2cs"))
        .args([
            "--engine",
            "dpdk",
            "--wan_plaintext",
            "--no_auth",
            "--nossl",
        ])
        .args(["--nic_profile", "af_packet_jumbo"])
        .args(["--dpdk_port", "name=wan,ipv4=127.0.0.2/8,iface=s2nosuchif0"])
        .args([
            "--listener_ip",
            "127.0.0.2",
            "--port",
            "1",
            "--port_range",
            "2-3",
        ])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("s2cs runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must not start: {err}");
    assert!(err.contains("--engine dpdk cannot start"), "{err}");
    assert!(
        err.contains("dpdk port wan: device net_af_packet0 did not come up"),
        "{err}"
    );
}

/// One PROD gateway with a plaintext WAN, so a test can play the remote gateway itself.
async fn single(targets: &[&str], allowed: &[&str]) -> (Harness, Client, String) {
    single_with("copy", targets, allowed).await
}

async fn single_with(
    engine: &str,
    targets: &[&str],
    allowed: &[&str],
) -> (Harness, Client, String) {
    let mut cfg = test_config(1);
    cfg.wan_plaintext = true;
    cfg.engine = engine.into();
    let h = Harness::start(cfg).await;
    let c = h.client(None).await;
    let r = c.open("uid-s", "PROD", 1, &["127.0.0.1:1"]).await;
    c.update_with(control::proto::UpdateTargets {
        uid: "uid-s".into(),
        role: "PROD".into(),
        remote_listeners: targets.iter().map(|s| s.to_string()).collect(),
        allowed_sources: allowed.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .unwrap();
    (h, c, r.listeners[0].clone())
}

async fn wait_status<F: Fn(&control::proto::StreamStatus) -> bool>(
    c: &Client,
    what: &str,
    f: F,
) -> control::proto::StreamStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = c.status("uid-s").await.unwrap().streams[0].clone();
        if f(&st) {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_reset_mid_stream_resets_the_other_side() {
    peer_reset_case("copy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockmap_a_peer_reset_mid_stream_resets_the_other_side() {
    peer_reset_case("sockmap").await;
}

async fn peer_reset_case(engine: &str) {
    let app = TcpListener::bind("127.0.0.1:0").unwrap();
    let app_addr = app.local_addr().unwrap().to_string();
    let (h, c, listener) = single_with(engine, &[app_addr.as_str()], &[]).await;
    let client = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(listener).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"some bytes").unwrap();
        let mut buf = [0u8; 64];
        let mut total = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Err("clean EOF instead of a reset".to_string()),
                Ok(n) => total += n,
                Err(e) => return Ok((e.kind(), total)),
            }
        }
    });
    let (s, _) = tokio::task::spawn_blocking(move || app.accept().unwrap())
        .await
        .unwrap();
    let mut s = s;
    s.write_all(b"hello").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Abort the producer's connection with RST.
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    let (kind, total) = client
        .await
        .unwrap()
        .expect("the consumer side must see a reset");
    assert_eq!(kind, std::io::ErrorKind::ConnectionReset);
    assert_eq!(total, 5);
    let st = wait_status(&c, "the error to be recorded", |s| {
        s.active_connections == 0 && !s.last_error.is_empty()
    })
    .await;
    assert!(
        st.last_error.contains("reset") || st.last_error.contains("Connection reset"),
        "{}",
        st.last_error
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_resets_the_client_and_is_reported() {
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let (h, c, listener) = single(&[dead_addr.as_str()], &[]).await;
    let r = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(listener).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 8];
        s.read(&mut buf)
    })
    .await
    .unwrap();
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
    let st = wait_status(&c, "the connect error", |s| !s.last_error.is_empty()).await;
    assert!(
        st.last_error.contains(&dead_addr) && st.last_error.contains("refused"),
        "{}",
        st.last_error
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_outside_the_allow_list_are_refused() {
    let app = TcpListener::bind("127.0.0.1:0").unwrap();
    let app_addr = app.local_addr().unwrap().to_string();
    let (h, c, listener) = single(&[app_addr.as_str()], &["192.0.2.0/24"]).await;
    let r = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(listener).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 8];
        s.read(&mut buf)
    })
    .await
    .unwrap();
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "a refused source must not get data: {r:?}"
    );
    let st = wait_status(&c, "the rejection", |s| s.rejected_connections == 1).await;
    assert_eq!(st.total_connections, 0);
    // The target never saw a connection.
    app.set_nonblocking(true).unwrap();
    assert!(app.accept().is_err());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_closes_open_connections_and_listeners() {
    release_case("copy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockmap_release_closes_open_connections_and_empties_the_maps() {
    release_case("sockmap").await;
}

async fn release_case(engine: &str) {
    let app = TcpListener::bind("127.0.0.1:0").unwrap();
    let app_addr = app.local_addr().unwrap().to_string();
    let (h, c, listener) = single_with(engine, &[app_addr.as_str()], &[]).await;
    let l2 = listener.clone();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(l2).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 8];
        s.read(&mut buf)
    });
    let (app_side, _) = tokio::task::spawn_blocking(move || app.accept().unwrap())
        .await
        .unwrap();
    wait_status(&c, "the connection", |s| s.active_connections == 1).await;
    c.release("uid-s").await.unwrap();
    // The open connection was closed by the release.
    let r = client.join().unwrap();
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    // And the listener is gone.
    assert!(
        TcpStream::connect(&listener).is_err(),
        "listener still open after release"
    );
    assert_eq!(h.gateway.pool.in_use(), 0);
    let entries = h.gateway.engine.kernel_map_entries();
    assert!(
        matches!(entries, None | Some(0)),
        "kernel map entries left: {entries:?}"
    );
    h.stop().await;
    drop(app_side);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_sessions_and_stream_counters() {
    let (addr, app) = producer(pattern(3, 100_000));
    let (h, c, listener) = single(&[addr.as_str()], &[]).await;
    let got = tokio::task::spawn_blocking(move || consumer(&listener, vec![9u8; 1234]))
        .await
        .unwrap();
    assert_eq!(got.len(), 100_000);
    assert_eq!(app.join().unwrap().len(), 1234);
    wait_status(&c, "the connection to close", |s| {
        s.total_connections == 1 && s.active_connections == 0
    })
    .await;
    let tag = c.status("uid-s").await.unwrap().tag;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maddr = l.local_addr().unwrap();
    let server = tokio::spawn(control::metrics::serve(l, h.gateway.clone()));
    let get = |path: &'static str| {
        tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(maddr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            body
        })
    };
    let body = get("/metrics").await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    let labels = format!("session=\"{tag}\",role=\"PROD\",stream=\"0\"");
    for line in [
        "scistream_sessions 1".to_string(),
        "scistream_ports_in_use 1".to_string(),
        format!("scistream_stream_bytes_to_target_total{{{labels}}} 1234"),
        format!("scistream_stream_bytes_from_target_total{{{labels}}} 100000"),
        format!("scistream_stream_connections_total{{{labels}}} 1"),
        format!("scistream_stream_active_connections{{{labels}}} 0"),
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing '{line}' in:\n{body}"
        );
    }
    // The uid itself never appears.
    assert!(!body.contains("uid-s"));
    assert!(get("/other").await.unwrap().starts_with("HTTP/1.1 404"));
    server.abort();
    h.stop().await;
}
