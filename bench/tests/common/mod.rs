//! Helpers shared by the workload tests: free loopback ports and child processes with a
//! deadline (a hung peer fails the test instead of hanging it).

#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const S2BENCH: &str = env!("CARGO_BIN_EXE_s2bench");

/// A loopback port that was free a moment ago (the kernel picks it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

/// Two distinct free ports.
pub fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let b = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let ports = (
        a.local_addr().expect("local address").port(),
        b.local_addr().expect("local address").port(),
    );
    drop((a, b));
    ports
}

/// A child that is killed when dropped.
pub struct Proc {
    pub child: Child,
    what: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` with stdout and stderr piped.
pub fn spawn(mut cmd: Command, what: &str) -> Proc {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    Proc {
        child,
        what: what.into(),
    }
}

/// Reads the first stdout line, expecting `READY` (optionally followed by words, returned).
/// If the child exits instead, the failure shows its status and stderr.
pub fn expect_ready(p: &mut Proc) -> (BufReader<ChildStdout>, Vec<String>) {
    let mut out = BufReader::new(p.child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("reading stdout");
    let mut words = line.split_whitespace().map(str::to_owned);
    if words.next().as_deref() == Some("READY") {
        return (out, words.collect());
    }
    let _ = p.child.kill(); // Harmless if it has exited; a child still running must not hang us.
    let status = p.child.wait().expect("waiting for the child");
    let mut err = String::new();
    if let Some(mut e) = p.child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    panic!(
        "{} did not start: expected READY, got {line:?}; it exited with {status}, stderr:\n{err}",
        p.what
    );
}

/// Waits for the child within `timeout`, returning its status, stdout and stderr.
pub fn finish(mut p: Proc, timeout: Duration) -> (ExitStatus, String, String) {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = p.child.try_wait().expect("waiting for the child") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not finish within {timeout:?}",
            p.what
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut o) = p.child.stdout.take() {
        o.read_to_string(&mut out).expect("reading stdout");
    }
    let mut err = String::new();
    if let Some(mut e) = p.child.stderr.take() {
        e.read_to_string(&mut err).expect("reading stderr");
    }
    (status, out, err)
}

/// Waits for success and parses the last stdout line as JSON.
pub fn json_of(p: Proc, timeout: Duration) -> serde_json::Value {
    let what = p.what.clone();
    let (status, out, err) = finish(p, timeout);
    assert!(status.success(), "{what} failed ({status}): {err}");
    let line = out
        .lines()
        .last()
        .unwrap_or_else(|| panic!("{what} printed nothing"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{what} printed {line:?}: {e}"))
}

pub fn s2bench(args: &[&str]) -> Command {
    let mut c = Command::new(S2BENCH);
    c.args(args);
    c
}

/// `s2bench zpub` bound to 127.0.0.1 on the data and sync ports, plus `args`.
pub fn zpub(port: u16, sync: u16, args: &[&str]) -> Command {
    let (port, sync) = (port.to_string(), sync.to_string());
    let mut c = s2bench(&[
        "zpub",
        "--bind-ip",
        "127.0.0.1",
        "--port",
        &port,
        "--sync",
        &sync,
    ]);
    c.args(args);
    c
}

/// `s2bench zsub` against a publisher on 127.0.0.1's data and sync ports, plus `args`.
pub fn zsub(port: u16, sync: u16, args: &[&str]) -> Command {
    let (port, sync) = (port.to_string(), sync.to_string());
    let mut c = s2bench(&[
        "zsub",
        "--remote-host",
        "127.0.0.1",
        "--remote-port",
        &port,
        "--sync",
        &sync,
    ]);
    c.args(args);
    c
}
