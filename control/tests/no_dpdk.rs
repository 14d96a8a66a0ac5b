//! `s2cs` built without the `dpdk` feature, for gateways that run the kernel engines and QUIC
//! only and do not install DPDK. `cargo xtask test` builds and runs this file so
//! (`cargo test -p control --no-default-features --test no_dpdk`). Such an s2cs links no DPDK
//! library, runs and carries a stream with every DPDK library hidden, and refuses `--engine
//! dpdk` saying how it was built. The stream test needs root: it hides the libraries in a private
//! mount namespace (each `librte_*` file bound over by `/dev/null`; the host is untouched).

#![cfg(not(feature = "dpdk"))]

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, consumer, free_range, pattern, producer, temp_dir, test_config};
use control::proto::control_client::ControlClient;

const S2CS: &str = env!("CARGO_BIN_EXE_s2cs");

/// The directory the dynamic loader takes DPDK's libraries from (`librte_eal.so.23`'s).
fn dpdk_lib_dir() -> PathBuf {
    let out = Command::new("ldconfig")
        .arg("-p")
        .output()
        .expect("ldconfig runs");
    let list = String::from_utf8_lossy(&out.stdout);
    let eal = list
        .lines()
        .find(|l| l.trim_start().starts_with("librte_eal.so."))
        .and_then(|l| l.split("=> ").nth(1))
        .unwrap_or_else(|| {
            panic!(
                "DPDK's libraries are not installed, so this test cannot show s2cs runs without \
                 them; install them (cargo xtask setup)"
            )
        });
    PathBuf::from(eal.trim())
        .parent()
        .expect("a library directory")
        .to_owned()
}

/// The DPDK libraries the loader finds in `dir` (regular files; their symlinks point at them).
fn dpdk_libraries(dir: &PathBuf) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("library directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("librte_"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect()
}

#[test]
fn s2cs_links_no_dpdk_library() {
    let out = Command::new("ldd").arg(S2CS).output().expect("ldd runs");
    let deps = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ldd {S2CS}: {deps}");
    assert!(!deps.contains("librte_"), "s2cs links DPDK:\n{deps}");
}

/// Stops the daemon whatever the test's outcome.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2cs_carries_a_stream_with_every_dpdk_library_hidden() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (it hides DPDK's libraries in a private mount namespace); run it \
         as root, as CI does"
    );
    let dir = dpdk_lib_dir();
    let libs = dpdk_libraries(&dir);
    assert!(!libs.is_empty(), "no librte_* files in {}", dir.display());
    let (control_port, _) = free_range(1);
    let (a, b) = free_range(2);
    let state = temp_dir("no-dpdk-state");
    // Hide every library, check that a DPDK program no longer loads, then run s2cs.
    let script = r#"
        lib="$1"; shift
        for f in "$lib"/librte_*; do
            [ -f "$f" ] && [ ! -L "$f" ] && mount --bind /dev/null "$f" || true
        done
        if dpdk-testpmd --version >/dev/null 2>&1; then
            echo "DPDK's libraries are still loadable" >&2; exit 97
        fi
        exec "$@"
    "#;
    let child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&dir)
        .arg(S2CS)
        .args([
            "--engine",
            "copy",
            "--wan_plaintext",
            "--no_auth",
            "--nossl",
        ])
        .args(["--listener_ip", "127.0.0.1", "--cores", "0"])
        .args(["--port", &control_port.to_string()])
        .args(["--port_range", &format!("{a}-{b}")])
        .arg("--state_dir")
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) runs");
    let mut daemon = Daemon(child);

    // Wait for the control port; a daemon that exits shows why.
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", control_port)).is_err() {
        if let Some(status) = daemon.0.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = daemon.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("s2cs exited ({status}) before serving:\n{err}");
        }
        assert!(Instant::now() < deadline, "s2cs did not listen within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{control_port}"))
            .unwrap()
            .connect()
            .await
            .expect("gRPC connects");
    let c = Client {
        inner: ControlClient::new(channel),
        token: None,
    };
    let up = pattern(3, 1 << 20);
    let down = pattern(7, 1 << 20);
    let (app, app_got) = producer(down.clone());
    let r = c.open("uid-no-dpdk", "PROD", 1, &["127.0.0.1:1"]).await;
    c.update_with(control::proto::UpdateTargets {
        uid: "uid-no-dpdk".into(),
        role: "PROD".into(),
        remote_listeners: vec![app],
        ..Default::default()
    })
    .await
    .expect("targets");
    let listener = r.listeners[0].clone();
    let sent = up.clone();
    let got = tokio::task::spawn_blocking(move || consumer(&listener, sent))
        .await
        .unwrap();
    assert!(got == down, "producer -> consumer bytes differ");
    assert!(
        app_got.join().unwrap() == up,
        "consumer -> producer bytes differ"
    );
    c.release("uid-no-dpdk").await.expect("release");
    drop(daemon);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn engine_dpdk_is_refused_saying_how_s2cs_was_built() {
    let (port, _) = free_range(1);
    let out = Command::new(S2CS)
        .args([
            "--engine",
            "dpdk",
            "--wan_plaintext",
            "--no_auth",
            "--nossl",
        ])
        .args(["--nic_profile", "af_packet_jumbo"])
        .args(["--dpdk_port", "name=wan,ipv4=127.0.0.2/8,iface=lo"])
        .args(["--listener_ip", "127.0.0.2", "--port", &port.to_string()])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("s2cs runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must not start: {err}");
    assert!(
        err.contains("--engine dpdk cannot start")
            && err.contains("built without the DPDK dataplane")
            && err.contains("pick a kernel engine"),
        "{err}"
    );
}

#[test]
fn auto_with_a_dpdk_configuration_uses_copy_and_says_why() {
    let mut cfg = test_config(1);
    cfg.wan_plaintext = true;
    cfg.nic_profile = Some("af_packet_jumbo".into());
    cfg.dpdk_ports = vec!["name=wan,ipv4=127.0.0.1/8,iface=lo".into()];
    let choice = control::server::choose_engine(&cfg).unwrap();
    assert_eq!(choice.kind.name(), "copy");
    assert!(
        choice.why.contains("built without the DPDK dataplane"),
        "{}",
        choice.why
    );
}

#[test]
fn doctor_fails_a_dpdk_config_and_names_the_build() {
    let dir = temp_dir("no-dpdk-doctor");
    let config = dir.join("s2cs.toml");
    std::fs::write(&config, "engine = \"dpdk\"\n").unwrap();
    let out = Command::new(S2CS)
        .args(["doctor", "--config"])
        .arg(&config)
        .output()
        .expect("s2cs doctor runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("[FAIL] dpdk") && l.contains("built without")),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
