//! Per-stream counters, updated by the data path with relaxed atomics and read by the control
//! plane as snapshots.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Live counters of one stream (one listener and its target).
#[derive(Debug, Default)]
pub struct StreamCounters {
    pub bytes_to_target: AtomicU64,
    pub bytes_from_target: AtomicU64,
    pub active_connections: AtomicU32,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    /// Bytes queued inside the kernel toward a slow reader (`sockmap`; a gauge).
    pub kernel_backlog: AtomicU64,
    /// Times the backlog watchdog paused a direction whose reader stalled (`sockmap`).
    pub pauses: AtomicU64,
    last_error: Mutex<String>,
}

impl StreamCounters {
    pub fn set_last_error(&self, message: impl Into<String>) {
        // A poisoned lock only means another thread panicked while holding it; the string is
        // still a valid value to overwrite.
        let mut slot = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        *slot = message.into();
    }

    pub fn snapshot(&self, index: usize) -> StreamStats {
        StreamStats {
            index,
            bytes_to_target: self.bytes_to_target.load(Ordering::Relaxed),
            bytes_from_target: self.bytes_from_target.load(Ordering::Relaxed),
            active_connections: self.active_connections.load(Ordering::Relaxed),
            total_connections: self.total_connections.load(Ordering::Relaxed),
            rejected_connections: self.rejected_connections.load(Ordering::Relaxed),
            kernel_backlog: self.kernel_backlog.load(Ordering::Relaxed),
            pauses: self.pauses.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// A point-in-time copy of [`StreamCounters`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub index: usize,
    pub bytes_to_target: u64,
    pub bytes_from_target: u64,
    pub active_connections: u32,
    pub total_connections: u64,
    pub rejected_connections: u64,
    pub kernel_backlog: u64,
    pub pauses: u64,
    pub last_error: String,
}

/// Decrements the active-connection gauge when a connection task ends, however it ends.
pub(crate) struct ActiveGuard<'a>(&'a StreamCounters);

impl<'a> ActiveGuard<'a> {
    pub(crate) fn new(counters: &'a StreamCounters) -> Self {
        counters.active_connections.fetch_add(1, Ordering::Relaxed);
        counters.total_connections.fetch_add(1, Ordering::Relaxed);
        Self(counters)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}
