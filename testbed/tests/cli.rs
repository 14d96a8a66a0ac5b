//! The `s2testbed producer` / `consumer` commands over loopback: the READY
//! handshake, JSON report lines and the goodput summary (no root needed).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use common::{BIN, Reap, reports};
use testbed::traffic::{consumer_seed, expected_sha256, producer_seed};

/// Waits for the child to exit within `DEADLINE`; returns (success, stdout, stderr).
fn finish(mut child: Reap) -> (bool, String, String) {
    let status = common::wait(&mut child, "child");
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.0.stdout.take() {
        s.read_to_string(&mut out).unwrap();
    }
    if let Some(mut s) = child.0.stderr.take() {
        s.read_to_string(&mut err).unwrap();
    }
    (status.success(), out, err)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn producer_and_consumer_commands_agree() {
    let ports = [free_port(), free_port()];
    let list = ports.map(|p| format!("127.0.0.1:{p}")).join(",");

    let mut producer = Reap(
        Command::new(BIN)
            .args([
                "producer", "--listen", &list, "--bytes", "1M", "--seed", "5",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn producer"),
    );
    let mut stdout = BufReader::new(producer.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read READY");
    assert_eq!(line, "READY\n", "producer's first line");

    let consumer = Reap(
        Command::new(BIN)
            .args([
                "consumer",
                "--connect",
                &list,
                "--bytes",
                "1M",
                "--seed",
                "5",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn consumer"),
    );
    let (ok, c_out, c_err) = finish(consumer);
    assert!(ok, "consumer failed: {c_err}");
    assert!(c_err.contains("Gbit/s"), "no summary on stderr: {c_err}");

    producer.0.stdout = None;
    let (ok, _, p_err) = finish(producer);
    assert!(ok, "producer failed: {p_err}");
    let mut p_out = String::new();
    stdout.read_to_string(&mut p_out).unwrap();

    let (p, c) = (reports(&p_out), reports(&c_out));
    assert_eq!((p.len(), c.len()), (2, 2));
    for i in 0..2 {
        let down = expected_sha256(producer_seed(5, i), 1 << 20);
        let up = expected_sha256(consumer_seed(5, i), 1 << 20);
        assert_eq!((p[i].stream, c[i].stream), (i, i));
        assert_eq!((&p[i].sent_sha256, &p[i].received_sha256), (&down, &up));
        assert_eq!((&c[i].sent_sha256, &c[i].received_sha256), (&up, &down));
        assert_eq!(c[i].received_bytes, 1 << 20);
    }
}

#[test]
fn bad_size_is_rejected_with_a_hint() {
    let out = Command::new(BIN)
        .args(["consumer", "--connect", "127.0.0.1:9", "--bytes", "12X"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("K, M, G or T"), "{err}");
}
