//! Typed errors from DPDK return codes and `rte_errno`.

use std::ffi::CStr;

/// A failed DPDK call: which call, on what, the error number and DPDK's text for it.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    #[error(
        "DPDK EAL initialisation failed with {args:?}: {message} (errno {errno}); check the EAL \
         arguments, hugepages (s2cs hugepages status) and that the vdev interfaces exist"
    )]
    EalInit {
        args: Vec<String>,
        errno: i32,
        message: String,
    },
    #[error(
        "DPDK EAL initialisation failed: no driver for {drivers}: {dir} has no {files} (the PMD \
         is not installed; on Debian `apt install dpdk` installs every PMD, or install the one \
         package librte-<driver>23, e.g. librte-net-af-packet23)",
        drivers = .missing.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>().join(", "),
        files = .missing.iter().map(|(_, f)| format!("{f}*")).collect::<Vec<_>>().join(", ")
    )]
    PmdMissing {
        dir: String,
        /// (driver, the plugin file expected for it)
        missing: Vec<(String, String)>,
    },
    #[error(
        "DPDK EAL is already initialised in this process with {first:?}; it cannot be started \
         again with {requested:?} (one EAL per process)"
    )]
    EalAlreadyInitialised {
        first: Vec<String>,
        requested: Vec<String>,
    },
    #[error("DPDK EAL initialisation failed earlier in this process ({0}); restart the process")]
    EalFailedEarlier(String),
    #[error("{call}({what}) failed: {message} (error {code})")]
    Call {
        call: &'static str,
        what: String,
        code: i32,
        message: String,
    },
    #[error("no DPDK port named '{name}'; ports present: {present:?}")]
    UnknownPort { name: String, present: Vec<String> },
    #[error("argument {what} is invalid: {reason}")]
    Invalid { what: String, reason: String },
}

impl DpdkError {
    /// From a negative return code (`-errno`) or a positive errno.
    pub(crate) fn call(call: &'static str, what: impl Into<String>, rc: i32) -> Self {
        let code = rc.abs();
        Self::Call {
            call,
            what: what.into(),
            code,
            message: strerror(code),
        }
    }

    /// From `rte_errno`, for calls that return NULL or -1.
    pub(crate) fn errno(call: &'static str, what: impl Into<String>) -> Self {
        Self::call(call, what, rte_errno())
    }
}

/// The calling thread's `rte_errno`.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads the calling thread's rte_errno; no preconditions.
    unsafe { dpdk_sys::shim_rte_errno() }
}

/// DPDK's message for an error number (covers DPDK's own codes as well as errno).
pub(crate) fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string
    // that stays valid until the next call on this thread; it is copied at once.
    unsafe {
        let p = dpdk_sys::rte_strerror(code);
        if p.is_null() {
            format!("error {code}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Turns a DPDK return code (0 or positive = success, negative = `-errno`) into a `Result`.
pub(crate) trait ToResult {
    fn check(self, call: &'static str, what: impl FnOnce() -> String) -> Result<i32, DpdkError>;
}

impl ToResult for i32 {
    fn check(self, call: &'static str, what: impl FnOnce() -> String) -> Result<i32, DpdkError> {
        if self < 0 {
            Err(DpdkError::call(call, what(), self))
        } else {
            Ok(self)
        }
    }
}
