//! End to end on the Fig. 5 testbed with real processes: two `s2cs`, `s2uc` on the control
//! host, producer and consumer apps in their LAN namespaces. Every cell moves
//! `S2_E2E_BYTES` (default 1 GiB) per stream in *both* directions at once over `num_conn` 5
//! and checks SHA-256 of every stream direction, then checks the gateways' byte counters and
//! that release leaves nothing behind.

use e2e::{Reap, prefix, require_root, serial, stream_bytes};
use testbed::scenario::{Scenario, ScenarioOptions, Session};
use testbed::topology::{GN2_LAN_IP, Host, PROD_APP_IP};
use testbed::wan::WanProfile;

const STREAMS: usize = 5;
/// `--metrics_addr` port of the gateways in the iperf3 cells (inside each gateway namespace).
const METRICS_PORT: u16 = 9464;

/// `GET /metrics` of a gateway, from inside its namespace (bash's /dev/tcp).
fn metrics(s: &Scenario, host: Host) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{METRICS_PORT} && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
    );
    let out = s
        .topology()
        .command(host, "bash")
        .args(["-c", &script])
        .output()
        .expect("bash");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Clone, Copy)]
enum Flow {
    Connect,
    TwoStep,
}

/// Options for `engine`; `ENGINE+dpdk` runs it on the DPDK ports (`quic+dpdk`: the QUIC tunnel
/// over UDP on the dataplane).
fn options(name: &str, engine: &str, plaintext: bool) -> ScenarioOptions {
    let mut o = ScenarioOptions::new(&prefix(name));
    let (engine, dpdk) = match engine.strip_suffix("+dpdk") {
        Some(e) => (e, true),
        None => (engine, false),
    };
    o.engine = engine.into();
    o.dpdk = dpdk;
    o.wan_plaintext = plaintext;
    o
}

fn start(name: &str, engine: &str, plaintext: bool) -> Scenario {
    require_root();
    Scenario::start(options(name, engine, plaintext))
        .unwrap_or_else(|e| panic!("starting the scenario failed: {e:#}"))
}

fn open(s: &Scenario, flow: Flow, ports: &[u16]) -> Session {
    match flow {
        Flow::Connect => s.connect(STREAMS, ports),
        Flow::TwoStep => s.two_step(STREAMS, ports),
    }
    .unwrap_or_else(|e| {
        panic!(
            "session set-up failed: {e:#}\ngn1:\n{}\ngn2:\n{}",
            s.log("gn1"),
            s.log("gn2")
        )
    })
}

fn sum(status: &serde_json::Value, field: &str) -> u64 {
    status["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| s[field].as_u64().unwrap_or(0))
        .sum()
}

fn cell(name: &str, flow: Flow, engine: &str, plaintext: bool) {
    let _serial = serial();
    let s = start(name, engine, plaintext);
    let ports: Vec<u16> = (0..STREAMS as u16).map(|i| 7000 + i).collect();
    let session = open(&s, flow, &ports);
    assert_eq!(
        session.wan_security,
        if plaintext { "plaintext" } else { "tls" }
    );
    assert_eq!(session.cons_listeners.len(), STREAMS);
    assert!(session.cons_listeners.iter().all(|l| l.ip() == GN2_LAN_IP));
    let bytes = stream_bytes();
    let t = s
        .transfer(&session, &ports, bytes, bytes, 7)
        .unwrap_or_else(|e| {
            panic!(
                "transfer failed: {e:#}\ngn1:\n{}\ngn2:\n{}",
                s.log("gn1"),
                s.log("gn2")
            )
        });
    eprintln!(
        "{name}: {STREAMS} x {bytes} B each way in {:.2} s, {:.2} Gbit/s producer->consumer",
        t.elapsed_secs, t.goodput_down_gbps
    );
    let total = bytes * STREAMS as u64;
    for gw in ["gn1", "gn2"] {
        let st = s.status(&session, gw).expect("status");
        assert_eq!(st["state"], "forwarding", "{gw}: {st}");
        assert_eq!(
            sum(&st, "bytes_from_target"),
            total,
            "{gw} from-target counter: {st}"
        );
        assert_eq!(
            sum(&st, "bytes_to_target"),
            total,
            "{gw} to-target counter: {st}"
        );
        assert_eq!(sum(&st, "total_connections"), STREAMS as u64, "{gw}: {st}");
        assert_eq!(sum(&st, "active_connections"), 0, "{gw}: {st}");
    }
    // The listeners serve again after the first connections closed (upstream's legacy S2DS
    // could not): a second, small round on the same session.
    s.transfer(&session, &ports, 1 << 20, 1 << 20, 8)
        .expect("second round on the same session");
    s.release(&session).expect("release");
    for gw in ["gn1", "gn2"] {
        let err = s
            .status(&session, gw)
            .expect_err("released session must be gone");
        assert!(format!("{err:#}").contains("NotFound"), "{gw}: {err:#}");
    }
    // Ports are closed: nothing listens on the consumer gateway's data address any more.
    let ss = s
        .topology()
        .command(Host::Gn2, "ss")
        .args(["-Hltn"])
        .output()
        .expect("ss");
    let listening = String::from_utf8_lossy(&ss.stdout);
    assert!(
        !listening.contains(&format!("{GN2_LAN_IP}:")),
        "listeners left after release:\n{listening}"
    );
    // No UDP socket is left on either gateway (the quic engine's tunnels).
    for host in [Host::Gn1, Host::Gn2] {
        let ss = s
            .topology()
            .command(host, "ss")
            .args(["-Huan"])
            .output()
            .expect("ss");
        let udp = String::from_utf8_lossy(&ss.stdout);
        assert!(
            udp.trim().is_empty(),
            "UDP sockets left after release:\n{udp}"
        );
    }
}

#[test]
fn connect_copy_wan_tls() {
    cell("ct", Flow::Connect, "copy", false);
}

#[test]
fn two_step_copy_wan_tls() {
    cell("tt", Flow::TwoStep, "copy", false);
}

#[test]
fn connect_copy_wan_plaintext() {
    cell("cp", Flow::Connect, "copy", true);
}

#[test]
fn two_step_copy_wan_plaintext() {
    cell("tp", Flow::TwoStep, "copy", true);
}

#[test]
fn connect_splice() {
    cell("cs", Flow::Connect, "splice", true);
}

#[test]
fn two_step_splice() {
    cell("ts", Flow::TwoStep, "splice", true);
}

#[test]
fn connect_sockmap() {
    cell("cm", Flow::Connect, "sockmap", true);
}

#[test]
fn two_step_sockmap() {
    cell("tm", Flow::TwoStep, "sockmap", true);
}

/// Both gateways on the DPDK engine: `net_af_packet` on their data veths, TCP terminated and
/// re-originated on smoltcp in each gateway.
#[test]
fn connect_dpdk() {
    cell("cd", Flow::Connect, "dpdk", true);
}

#[test]
fn two_step_dpdk() {
    cell("td", Flow::TwoStep, "dpdk", true);
}

/// Both gateways on the QUIC tunnel: TCP on the LAN legs, one QUIC connection per stream
/// between the gateways, each on its own event loop.
#[test]
fn connect_quic() {
    cell("cq", Flow::Connect, "quic", false);
}

#[test]
fn two_step_quic() {
    cell("tq", Flow::TwoStep, "quic", false);
}

/// The QUIC tunnel on the DPDK ports: smoltcp TCP on the LAN legs, QUIC over smoltcp UDP on
/// the WAN leg, all in one polling lcore per gateway.
#[test]
fn connect_quic_dpdk() {
    cell("cqd", Flow::Connect, "quic+dpdk", false);
}

/// iperf3 (control and data connections) through both gateways, both directions.
#[test]
fn iperf3_through_the_tunnel() {
    iperf3_case("ip", "copy", false);
}

#[test]
fn iperf3_through_sockmap_gateways() {
    iperf3_case("im", "sockmap", true);
}

#[test]
fn iperf3_through_quic_gateways() {
    iperf3_case("iq", "quic", false);
}

#[test]
fn iperf3_through_dpdk_gateways() {
    iperf3_case("id", "dpdk", true);
}

#[test]
fn iperf3_through_quic_dpdk_gateways() {
    iperf3_case("iqd", "quic+dpdk", false);
}

/// Waits until something listens on TCP `port` in `host`'s namespace (at most 10 s).
fn wait_listening(s: &Scenario, host: Host, port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = s
            .topology()
            .command(host, "ss")
            .args(["-Hltn", &format!("sport = :{port}")])
            .output()
            .expect("ss");
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on port {port} after 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn iperf3_case(name: &str, engine: &str, plaintext: bool) {
    let _serial = serial();
    require_root();
    let mut o = options(name, engine, plaintext);
    o.s2cs_args = vec!["--metrics_addr".into(), format!("127.0.0.1:{METRICS_PORT}")];
    let on_dpdk = o.on_dpdk();
    let s = Scenario::start(o).unwrap_or_else(|e| panic!("starting the scenario failed: {e:#}"));
    let _server = Reap(
        s.topology()
            .command(Host::Prod, "iperf3")
            .args(["-s", "-B", &PROD_APP_IP.to_string(), "-p", "7100"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("iperf3 is installed (cargo xtask setup)"),
    );
    wait_listening(&s, Host::Prod, 7100);
    let session = s.connect(1, &[7100]).expect("connect");
    let l = session.cons_listeners[0];
    for reverse in [false, true] {
        let mut cmd = s.topology().command(Host::Cons, "iperf3");
        cmd.args([
            "-c",
            &l.ip().to_string(),
            "-p",
            &l.port().to_string(),
            "-t",
            "2",
            "-J",
        ]);
        if reverse {
            cmd.arg("-R");
        }
        let out = cmd.output().expect("iperf3 client");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "iperf3 output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert!(out.status.success(), "iperf3 failed: {report}");
        let received = report["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
        let bps = report["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0);
        eprintln!(
            "iperf3 {engine} reverse={reverse}: {received} bytes, {:.2} Gbit/s",
            bps / 1e9
        );
        assert!(received > 0, "iperf3 moved no data: {report}");
    }
    let st = s.status(&session, "gn1").expect("status");
    assert!(
        sum(&st, "total_connections") >= 4,
        "iperf3 opens a control and a data connection per run: {st}"
    );
    let metrics = metrics(&s, Host::Gn1);
    assert!(
        metrics.contains("scistream_stream_bytes_to_target_total"),
        "{metrics}"
    );
    if on_dpdk {
        let busy: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("scistream_dpdk_lcore_busy_cycles_total{lcore=\"0\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no busy-cycle counter for lcore 0:\n{metrics}"));
        assert!(
            busy > 0,
            "the polling lcore counted no busy cycles:\n{metrics}"
        );
        assert!(
            metrics
                .lines()
                .any(|l| l == "scistream_dpdk_lcore_streams{lcore=\"0\"} 1"),
            "the session's one stream is not counted on lcore 0:\n{metrics}"
        );
    }
    s.release(&session).expect("release");
}

/// Frame loss (0.5 %) and the queue's tail drops on an emulated 5.5 ms WAN (the testbed's delay
/// line): every stream recovers and arrives intact. (`dpdk` stalled here until smoltcp was
/// patched to keep its retransmission timer after the peer's FIN, `third_party/smoltcp`.)
#[test]
fn copy_over_a_lossy_wan() {
    lossy_wan_case("cl", "copy");
}

#[test]
fn dpdk_over_a_lossy_wan() {
    lossy_wan_case("dl", "dpdk");
}

#[test]
fn quic_over_a_lossy_wan() {
    lossy_wan_case("ql", "quic");
}

#[test]
fn quic_dpdk_over_a_lossy_wan() {
    lossy_wan_case("qld", "quic+dpdk");
}

fn lossy_wan_case(name: &str, engine: &str) {
    let _serial = serial();
    require_root();
    // QUIC always encrypts; the others run plaintext so every engine can be compared.
    let mut o = options(name, engine, !engine.starts_with("quic"));
    let mut link = WanProfile::Metro
        .link()
        .expect("metro is an emulated profile");
    link.loss = 0.005;
    o.wan = Some(link);
    let s = Scenario::start(o).unwrap_or_else(|e| panic!("starting the scenario failed: {e:#}"));
    let ports = [7000, 7001];
    let session = s
        .connect(ports.len(), &ports)
        .unwrap_or_else(|e| panic!("connect failed: {e:#}"));
    let bytes = 64 << 20;
    let t = s
        .transfer(&session, &ports, bytes, bytes, 9)
        .unwrap_or_else(|e| {
            panic!(
                "transfer over the lossy WAN failed: {e:#}\ngn1:\n{}\ngn2:\n{}",
                s.log("gn1"),
                s.log("gn2")
            )
        });
    let stats = s
        .topology()
        .wan_stats()
        .expect("delay line counters")
        .expect("the WAN is emulated");
    let lost = stats.a_to_b.line.dropped_loss + stats.b_to_a.line.dropped_loss;
    assert!(lost > 0, "the delay line dropped nothing: {stats:?}");
    eprintln!(
        "{engine} over metro with 0.5 % loss: {} frames lost, {} tail-dropped, {:.2} Gbit/s",
        lost,
        stats.a_to_b.line.dropped_full + stats.b_to_a.line.dropped_full,
        t.goodput_down_gbps
    );
    s.release(&session).expect("release");
}

/// A peer gateway that vanishes (its WAN link goes down mid-connection): the QUIC idle timeout
/// ends the tunnel on the other gateway, the consumer app is reset, the gateway's counters show
/// nothing open, and once the link is back a new connection goes through.
#[test]
fn quic_drops_a_vanished_peer_after_the_idle_timeout() {
    let _serial = serial();
    require_root();
    let mut o = ScenarioOptions::new(&prefix("qv"));
    o.engine = "quic".into();
    o.s2cs_args = vec!["--quic_idle_timeout".into(), "3s".into()];
    let s = Scenario::start(o).unwrap_or_else(|e| panic!("starting the scenario failed: {e:#}"));
    // A producer that greets every connection and then holds it open.
    let mut producer = Reap(s
        .topology()
        .command(Host::Prod, "python3")
        .args([
            "-c",
            &format!(
                "import socket,threading,time\n\
                 s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                 s.bind(('{PROD_APP_IP}',7000)); s.listen(8); print('READY',flush=True)\n\
                 def serve(c):\n    c.sendall(b'hello'); time.sleep(120)\n\
                 while True:\n    c,_=s.accept(); threading.Thread(target=serve,args=(c,),daemon=True).start()\n"
            ),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3"));
    // Listening before the session exists: a consumer must never race the producer's start.
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(producer.0.stdout.take().expect("stdout")),
        &mut ready,
    )
    .expect("producer READY");
    assert_eq!(ready.trim(), "READY");
    let session = s.connect(1, &[7000]).expect("connect");
    let l = session.cons_listeners[0];
    // A consumer that reads the greeting, then waits for whatever ends the connection.
    let consumer = |host_wait: &str| {
        s.topology()
            .command(Host::Cons, "python3")
            .args([
                "-c",
                &format!(
                    "import socket,sys\n\
                     c=socket.create_connection(('{}',{}),timeout=5); assert c.recv(5)==b'hello'\n\
                     print('greeted',flush=True); c.settimeout({host_wait})\n\
                     try:\n    d=c.recv(1); print('eof' if not d else 'data')\n\
                     except ConnectionResetError: print('reset')\n\
                     except socket.timeout: print('timeout')\n",
                    l.ip(),
                    l.port()
                ),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3")
    };
    let held = consumer("60");
    let wait = |what: &str, f: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let st = s.status(&session, "gn2").expect("status");
            if f(&st) {
                return st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {st}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait("the connection", &|st| sum(st, "active_connections") == 1);
    let link = |state: &str| {
        let ok = s
            .topology()
            .command(Host::Gn1, "ip")
            .args(["link", "set", "wan0", state])
            .status()
            .expect("ip")
            .success();
        assert!(ok, "ip link set wan0 {state} failed");
    };
    link("down");
    let cut = std::time::Instant::now();
    let out = held.wait_with_output().expect("consumer");
    let seen = String::from_utf8_lossy(&out.stdout).into_owned();
    let waited = cut.elapsed();
    assert!(
        seen.contains("greeted") && seen.contains("reset"),
        "consumer saw: {seen}"
    );
    // Keep-alives every second, idle timeout 3 s: the tunnel ends within a few seconds, not
    // the 60 s the consumer was willing to wait.
    assert!(
        waited < std::time::Duration::from_secs(15),
        "took {waited:?}"
    );
    let st = wait("the gateway to record the loss", &|st| {
        sum(st, "active_connections") == 0
            && st["streams"][0]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("timed out"))
    });
    eprintln!(
        "vanished peer dropped after {waited:?}: {}",
        st["streams"][0]["last_error"]
    );
    link("up");
    let again = consumer("1");
    let out = again.wait_with_output().expect("consumer");
    let seen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        seen.contains("greeted"),
        "a new connection after the link came back must work: {seen}\ngn2:\n{}",
        s.log("gn2")
    );
    s.release(&session).expect("release");
}

/// The QUIC app relay with the QUIC apps we ship (`s2bench qpub`/`qsub`): two streams, each
/// through a LAN QUIC connection, the WAN QUIC connection and the far LAN connection, every
/// message in order and none lost; a consumer app without the session's app identity is
/// refused before any data.
#[test]
fn quic_relay_carries_quic_apps() {
    let _serial = serial();
    require_root();
    let mut o = ScenarioOptions::new(&prefix("qr"));
    o.engine = "quic-relay".into();
    let s = Scenario::start(o).unwrap_or_else(|e| panic!("starting the scenario failed: {e:#}"));
    let ports = [7000, 7001];
    let session = s.connect(ports.len(), &ports).expect("connect");
    assert_eq!(session.wan_security, "tls");
    let uid = session.uid().expect("uid");
    let s2bench = s.options.bin_dir.join("s2bench");
    let bytes = (stream_bytes() / 4).max(64 << 20);
    let mut publishers = Vec::new();
    for port in ports {
        let mut p = Reap(
            s.topology()
                .command(Host::Prod, &s2bench)
                .args(["qpub", "--listen", &format!("{PROD_APP_IP}:{port}")])
                .args([
                    "--size",
                    "1M",
                    "--dataset",
                    &bytes.to_string(),
                    "--uid",
                    &uid,
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("qpub"),
        );
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(p.0.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("READY");
        assert_eq!(line.trim(), "READY");
        publishers.push(p);
    }
    // Wrong identity first: refused in the handshake, nothing reaches a producer.
    let l0 = session.cons_listeners[0];
    let refused = s
        .topology()
        .command(Host::Cons, &s2bench)
        .args([
            "qsub",
            "--connect",
            &l0.to_string(),
            "--uid",
            "not-the-session",
        ])
        .args(["--connect-timeout", "3"])
        .output()
        .expect("qsub");
    assert!(
        !refused.status.success(),
        "a wrong app identity must be refused"
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("handshake"), "{err}");
    let subs: Vec<_> = session
        .cons_listeners
        .iter()
        .map(|l| {
            s.topology()
                .command(Host::Cons, &s2bench)
                .args(["qsub", "--connect", &l.to_string(), "--uid", &uid])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("qsub")
        })
        .collect();
    for sub in subs {
        let out = sub.wait_with_output().expect("qsub");
        assert!(
            out.status.success(),
            "qsub failed: {}\ngn1:\n{}\ngn2:\n{}",
            String::from_utf8_lossy(&out.stderr),
            s.log("gn1"),
            s.log("gn2")
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
        let count = bytes / (1 << 20);
        assert_eq!(r["samples_received"], count, "{r}");
        for field in ["lost", "reordered", "duplicates"] {
            assert_eq!(r[field], 0, "{field}: {r}");
        }
        eprintln!(
            "quic-relay stream: {:.2} Gbit/s",
            r["goodput_gbps"].as_f64().unwrap_or(0.0)
        );
    }
    for mut p in publishers {
        assert!(p.0.wait().expect("qpub").success(), "qpub failed");
    }
    for gw in ["gn1", "gn2"] {
        let st = s.status(&session, gw).expect("status");
        // Each subscriber sent one byte up; the payload went down.
        assert!(
            sum(&st, "bytes_from_target") >= bytes * ports.len() as u64,
            "{gw}: {st}"
        );
        assert_eq!(
            sum(&st, "bytes_to_target"),
            ports.len() as u64,
            "{gw}: {st}"
        );
        assert_eq!(
            sum(&st, "total_connections"),
            ports.len() as u64,
            "{gw}: {st}"
        );
    }
    s.release(&session).expect("release");
}
