//! A client built by a different gRPC implementation (Python grpcio, from the upstream wire
//! definition alone) against a real `s2cs` process, over TLS and over plaintext.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testbed::scenario::default_bin_dir;

fn python_ready() {
    let ok = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with grpcio and grpcio-tools is required: run 'cargo xtask setup' (pip install grpcio grpcio-tools)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts s2cs on loopback; `slot` keeps the port ranges of concurrent tests apart.
fn start_s2cs(dir: &Path, tls: bool, slot: u16) -> (Daemon, u16) {
    start_s2cs_with(dir, tls, slot, &[])
}

fn start_s2cs_with(dir: &Path, tls: bool, slot: u16, extra: &[&str]) -> (Daemon, u16) {
    let bin = default_bin_dir().join("s2cs");
    assert!(
        bin.exists(),
        "{} missing: build the workspace first",
        bin.display()
    );
    let port = free_port();
    let range_start = 30000 + (std::process::id() % 100) as u16 * 200 + slot * 20;
    let mut cmd = Command::new(&bin);
    cmd.args(["--listener_ip", "127.0.0.1", "--control_ip", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .args([
            "--port-range",
            &format!("{range_start}-{}", range_start + 9),
        ])
        .arg("--token_file")
        .arg(dir.join("tokens"))
        .arg("--server_crt")
        .arg(dir.join("s.crt"))
        .arg("--server_key")
        .arg(dir.join("s.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if !tls {
        cmd.arg("--ssl=false");
    }
    cmd.args(extra);
    let daemon = Daemon(cmd.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s2cs did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (daemon, port)
}

fn prepare(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("s2-interop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let s2cs = default_bin_dir().join("s2cs");
    run_ok(
        Command::new(&s2cs)
            .args(["cert", "--ip", "127.0.0.1"])
            .arg("--server_crt")
            .arg(dir.join("s.crt"))
            .arg("--server_key")
            .arg(dir.join("s.key")),
    );
    run_ok(
        Command::new(&s2cs)
            .args(["token", "new", "--identity", "py"])
            .arg("--token_file")
            .arg(dir.join("tokens"))
            .arg("--token_out")
            .arg(dir.join("py.token")),
    );
    dir
}

fn python_client(tls: bool) {
    python_ready();
    let dir = prepare(if tls { "tls" } else { "plain" });
    let (_daemon, port) = start_s2cs(&dir, tls, u16::from(tls));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/upstream_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .args(["--s2cs", &format!("127.0.0.1:{port}")])
        .arg("--token-file")
        .arg(dir.join("py.token"))
        .args(["--uid", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"]);
    if tls {
        cmd.arg("--cert").arg(dir.join("s.crt"));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hello_message"], "Sending Prod listeners...");
    assert_eq!(v["req_listeners"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["req_prod_listeners"],
        serde_json::json!(["127.0.0.1:5074", "127.0.0.1:5075"])
    );
    assert_eq!(
        v["update_prod_listeners"],
        serde_json::json!(["127.0.0.1:5074", "127.0.0.1:5075", "127.0.0.1:5074"])
    );
    assert_eq!(v["update_listeners"], v["req_listeners"]);
    assert_eq!(v["release_unknown"], "NOT_FOUND");
    assert_eq!(v["release_no_token"], "UNAUTHENTICATED");
    assert_eq!(v["release_bearer"], "OK");
    assert_eq!(v["release_again"], "NOT_FOUND");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn python_grpcio_upstream_client_over_tls() {
    python_client(true);
}

#[test]
fn python_grpcio_upstream_client_over_plaintext() {
    python_client(false);
}

/// Upstream's split flow with our binaries: `s2uc prod-req` waits for a hello that an external
/// `appctrl mock` (upstream's positional form) sends, then updates.
#[test]
fn split_flow_prod_req_and_appctrl_mock() {
    let dir = prepare("split");
    let (_daemon, port) = start_s2cs(&dir, true, 2);
    let s2cs = format!("127.0.0.1:{port}");
    let bin = default_bin_dir();
    let uid_file = dir.join("split.uid");
    let prod_req = Command::new(bin.join("s2uc"))
        .arg("--server_cert")
        .arg(dir.join("s.crt"))
        .arg("--token-file")
        .arg(dir.join("py.token"))
        .args(["prod-req", "--num_conn", "2", "--s2cs", &s2cs])
        .arg("--uid-out")
        .arg(&uid_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !uid_file.exists() {
        assert!(Instant::now() < deadline, "prod-req wrote no uid file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let hello = Command::new(bin.join("appctrl"))
        .arg("--server_cert")
        .arg(dir.join("s.crt"))
        .arg("mock")
        .arg(format!("@{}", uid_file.display()))
        .arg(&s2cs)
        .arg(format!("@{}", dir.join("py.token").display()))
        .args(["PROD", "127.0.0.1", "--receiver_ports", "7001,7002"])
        .output()
        .unwrap();
    assert!(
        hello.status.success(),
        "appctrl: {}",
        String::from_utf8_lossy(&hello.stderr)
    );
    assert!(String::from_utf8_lossy(&hello.stdout).contains("Sending Prod listeners..."));
    let out = prod_req.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prod-req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let listeners = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Listeners: "))
        .expect("listeners line");
    assert_eq!(listeners.split(',').count(), 2, "{stdout}");
    // The uid never appears on s2uc's output; only the file holds it.
    let uid = std::fs::read_to_string(&uid_file).unwrap();
    assert!(!stdout.contains(uid.trim()), "the uid was printed");
    let release = Command::new(bin.join("s2uc"))
        .arg("--server_cert")
        .arg(dir.join("s.crt"))
        .arg("--token-file")
        .arg(dir.join("py.token"))
        .args(["release", "--s2cs", &s2cs])
        .arg(format!("@{}", uid_file.display()))
        .output()
        .unwrap();
    assert!(
        release.status.success(),
        "release: {}",
        String::from_utf8_lossy(&release.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An s2cs that requires client certificates (`--client_ca`) refuses a client without one and
/// serves a client that presents one it trusts.
#[test]
fn mtls_control_channel() {
    let dir = prepare("mtls");
    let s2cs_bin = default_bin_dir().join("s2cs");
    run_ok(
        Command::new(&s2cs_bin)
            .args(["cert", "--ip", "client.example"])
            .arg("--server_crt")
            .arg(dir.join("client.crt"))
            .arg("--server_key")
            .arg(dir.join("client.key")),
    );
    let (_daemon, port) = start_s2cs_with(
        &dir,
        true,
        3,
        &["--client_ca", dir.join("client.crt").to_str().unwrap()],
    );
    let list = |with_cert: bool| {
        let mut c = Command::new(default_bin_dir().join("s2uc"));
        c.arg("--server_cert")
            .arg(dir.join("s.crt"))
            .arg("--token-file")
            .arg(dir.join("py.token"));
        if with_cert {
            c.arg("--client-cert")
                .arg(dir.join("client.crt"))
                .arg("--client-key")
                .arg(dir.join("client.key"));
        }
        c.args(["list", "--s2cs", &format!("127.0.0.1:{port}")])
            .output()
            .unwrap()
    };
    let refused = list(false);
    assert!(
        !refused.status.success(),
        "a client without a certificate must be refused"
    );
    let served = list(true);
    assert!(
        served.status.success(),
        "mTLS client refused: {}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert!(String::from_utf8_lossy(&served.stdout).contains("no sessions"));
    let _ = std::fs::remove_dir_all(&dir);
}
