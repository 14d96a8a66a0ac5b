//! Helpers shared by the testbed's integration tests: a child process that is killed if the
//! test fails first, a bounded wait for it, and parsing of the traffic tools' JSON reports.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses part of the helpers"
)]

use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use testbed::traffic::TransferReport;

pub const BIN: &str = env!("CARGO_BIN_EXE_s2testbed");
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Kills the child if the test fails before it is waited for.
pub struct Reap(pub Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for the child to exit, failing the test after `DEADLINE`.
pub fn wait(child: &mut Reap, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what} did not exit within {DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// One `TransferReport` per JSON line.
pub fn reports(stdout: &str) -> Vec<TransferReport> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}
