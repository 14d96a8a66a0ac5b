//! Wire compatibility with an independent implementation of the paper's protocol: our own
//! pyzmq publisher and subscriber (`tests/python/`) against `s2bench zsub` and `zpub`.
//! Needs python3 with pyzmq (`cargo xtask setup` installs it).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{expect_ready, finish, free_ports, json_of, spawn, zpub, zsub};

const T: Duration = Duration::from_secs(60);

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

fn require_pyzmq() {
    let ok = Command::new("python3")
        .args(["-c", "import zmq"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with pyzmq is needed for this test: run `cargo xtask setup` (it installs pyzmq)"
    );
}

fn python(name: &str, args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg(script(name)).args(args);
    c
}

#[test]
fn pyzmq_publisher_to_our_zsub() {
    require_pyzmq();
    // The script picks its own free ports: no window between choosing a port and binding it.
    let mut publ = spawn(
        python(
            "zmq_pub.py",
            &[
                "--port",
                "0",
                "--sync",
                "0",
                "--size",
                "1024",
                "--samples",
                "2000",
            ],
        ),
        "zmq_pub.py",
    );
    let (_stdout, ports) = expect_ready(&mut publ);
    let [port, sync]: [u16; 2] = ports
        .iter()
        .map(|p| p.parse().expect("a port number after READY"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("READY <port> <sync>");
    let r = json_of(spawn(zsub(port, sync, &[]), "zsub"), T);
    let (status, _, err) = finish(publ, T);
    assert!(status.success(), "zmq_pub.py failed: {err}");
    assert_eq!(r["samples_expected"], 2000);
    assert_eq!(r["samples_received"], 2000);
    assert_eq!(r["efficiency_pct"], 100.0);
    assert_eq!(r["size_mismatches"], 0);
    assert_eq!(r["fin_ack"], true);
}

#[test]
fn our_zpub_to_pyzmq_subscriber() {
    require_pyzmq();
    let (port, sync) = free_ports();
    let (port_s, sync_s) = (port.to_string(), sync.to_string());
    let publ = spawn(
        zpub(port, sync, &["--size", "512", "--dataset", "1M"]),
        "zpub",
    );
    let r = json_of(
        spawn(
            python("zmq_sub.py", &["--remote-port", &port_s, "--sync", &sync_s]),
            "zmq_sub.py",
        ),
        T,
    );
    let (status, _, err) = finish(publ, T);
    assert!(status.success(), "zpub failed: {err}");
    // floor(1 MiB / 512) = 2048, announced in the sync reply and all delivered.
    assert_eq!(r["size"], 512);
    assert_eq!(r["samples_expected"], 2048);
    assert_eq!(r["samples_received"], 2048);
    assert_eq!(r["bad_length"], 0);
    assert_eq!(r["fin_ack"], true);
}
