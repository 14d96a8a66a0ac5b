//! Shared helpers of the end-to-end tests.

use std::sync::{Mutex, MutexGuard};

/// End-to-end tests saturate this machine's cores; they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes per stream and direction: `S2_E2E_BYTES` (e.g. `64M`), default 1 GiB.
pub fn stream_bytes() -> u64 {
    std::env::var("S2_E2E_BYTES")
        .ok()
        .map(|v| testbed::parse_size(&v).expect("S2_E2E_BYTES must be a size like 64M or 1G"))
        .unwrap_or(1 << 30)
}

/// Fails the test (never skips) when not root: the testbed needs namespaces and veths.
pub fn require_root() {
    if let Err(e) = testbed::require_root() {
        panic!("{e}");
    }
}

/// A testbed prefix unique to this process and test.
pub fn prefix(test: &str) -> String {
    format!("s2e{}{test}", std::process::id() % 10000)
}

/// A child process that is killed and reaped when the guard drops, so a failing test leaves no
/// app running behind it.
pub struct Reap(pub std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
