//! The DPDK Environment Abstraction Layer: initialised once per process, never again.
//!
//! `rte_eal_init` pins the calling thread to the main lcore's CPU, so [`Eal::init`] runs it on a
//! short-lived thread of its own: the caller (a tokio worker in s2cs) keeps its affinity. Worker
//! lcores are EAL's own threads, each pinned by EAL to the CPU named in `-l`/`--lcores`; work is
//! put on them with [`Eal::launch`].

use std::ffi::{CStr, CString, c_int, c_void};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Mutex;

use super::error::{DpdkError, ToResult, rte_errno, strerror};

/// The process's EAL. Obtained from [`Eal::init`]; lives until the process exits.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
    main_lcore: u32,
    workers: Vec<u32>,
}

enum State {
    Uninit,
    Ready(&'static Eal),
    Failed(String),
}

static STATE: Mutex<State> = Mutex::new(State::Uninit);

impl Eal {
    /// Initialises EAL with `args` (`args[0]` is the program name, as in `argv`). A second call
    /// with the same arguments returns the running EAL; different arguments are refused, as is
    /// any call after a failed initialisation (DPDK cannot retry in the same process).
    pub fn init(args: &[String]) -> Result<&'static Eal, DpdkError> {
        let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
        match &*state {
            State::Ready(eal) if eal.args == args => return Ok(eal),
            State::Ready(eal) => {
                return Err(DpdkError::EalAlreadyInitialised {
                    first: eal.args.clone(),
                    requested: args.to_vec(),
                });
            }
            State::Failed(why) => return Err(DpdkError::EalFailedEarlier(why.clone())),
            State::Uninit => {}
        }
        let owned = args.to_vec();
        let result = std::thread::Builder::new()
            .name("dpdk-eal-init".into())
            .spawn(move || init_on_this_thread(&owned))
            .map_err(|e| DpdkError::Invalid {
                what: "EAL init thread".into(),
                reason: e.to_string(),
            })?
            .join()
            .unwrap_or_else(|_| Err((-1, "EAL initialisation panicked".into())));
        match result {
            Ok(()) => {
                let eal: &'static Eal = Box::leak(Box::new(Eal {
                    args: args.to_vec(),
                    main_lcore: main_lcore(),
                    workers: worker_lcores(),
                }));
                tracing::info!(version = %version(), args = ?args, workers = ?eal.workers, "DPDK EAL up");
                *state = State::Ready(eal);
                Ok(eal)
            }
            Err((errno, message)) => {
                *state = State::Failed(format!("{message}, with {args:?}"));
                if errno == libc::ENODEV {
                    let missing = missing_pmds(args, Path::new(dpdk_sys::PMD_DIR));
                    if !missing.is_empty() {
                        return Err(DpdkError::PmdMissing {
                            dir: dpdk_sys::PMD_DIR.to_owned(),
                            missing,
                        });
                    }
                }
                Err(DpdkError::EalInit {
                    args: args.to_vec(),
                    errno,
                    message,
                })
            }
        }
    }

    /// The running EAL, if this process initialised one.
    pub fn running() -> Option<&'static Eal> {
        match &*STATE.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Ready(eal) => Some(eal),
            _ => None,
        }
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn main_lcore(&self) -> u32 {
        self.main_lcore
    }

    /// Worker lcores (every enabled lcore but the main one), in id order.
    pub fn workers(&self) -> &[u32] {
        &self.workers
    }

    /// The CPU an lcore's thread is pinned to.
    pub fn cpu_of(&self, lcore: u32) -> Option<u32> {
        // SAFETY: rte_lcore_to_cpu_id only reads EAL's lcore table, which is immutable after init.
        let cpu = unsafe { dpdk_sys::rte_lcore_to_cpu_id(lcore as c_int) };
        u32::try_from(cpu).ok()
    }

    /// Runs `job` on worker `lcore` (EAL's thread pinned to that lcore's CPU). The lcore must be
    /// idle: one job at a time per lcore. [`LcoreJob::wait`] returns the job's result.
    pub fn launch<F>(&'static self, lcore: u32, job: F) -> Result<LcoreJob, DpdkError>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        if !self.workers.contains(&lcore) {
            return Err(DpdkError::Invalid {
                what: format!("lcore {lcore}"),
                reason: format!(
                    "not a worker lcore of this EAL (workers: {:?}, main: {}); list it in the \
                     EAL -l/--lcores argument",
                    self.workers, self.main_lcore
                ),
            });
        }
        let boxed: Box<Job> = Box::new(Box::new(job));
        let arg = Box::into_raw(boxed).cast::<c_void>();
        // SAFETY: `trampoline` matches lcore_function_t; `arg` is a leaked Box<Job> that the
        // trampoline takes back exactly once. On failure the job never runs, so we take it back.
        let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if rc != 0 {
            // SAFETY: the launch failed, so the trampoline will never see `arg`.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
            return Err(DpdkError::call(
                "rte_eal_remote_launch",
                format!("lcore {lcore}"),
                rc,
            ));
        }
        Ok(LcoreJob { lcore })
    }
}

type Job = Box<dyn FnOnce() -> i32 + Send>;

/// A job running on a worker lcore.
#[derive(Debug)]
#[must_use = "wait for the job, or the lcore stays busy"]
pub struct LcoreJob {
    lcore: u32,
}

impl LcoreJob {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Blocks until the job returns; its return value (-1 if it panicked). EAL busy-waits
    /// here: call it once the job has been told to stop, not to park a thread.
    pub fn wait(self) -> i32 {
        // SAFETY: waits for a worker lcore this EAL launched a job on; no memory is shared.
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) }
    }
}

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `Eal::launch`, handed to exactly one trampoline.
    let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
    match std::panic::catch_unwind(AssertUnwindSafe(job)) {
        Ok(rc) => rc,
        Err(_) => {
            tracing::error!("a job on a DPDK lcore panicked");
            -1
        }
    }
}

fn init_on_this_thread(args: &[String]) -> Result<(), (i32, String)> {
    let cstrings: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            (
                libc::EINVAL,
                "an EAL argument contains a NUL byte".to_owned(),
            )
        })?;
    // EAL may permute argv; give it its own array of pointers into `cstrings`.
    let mut argv: Vec<*mut libc::c_char> = cstrings.iter().map(|c| c.as_ptr().cast_mut()).collect();
    let argc =
        c_int::try_from(argv.len()).map_err(|_| (libc::E2BIG, "too many args".to_owned()))?;
    // SAFETY: argv holds `argc` valid NUL-terminated strings that outlive the call (EAL keeps
    // no pointer into them after init returns: it copies what it keeps).
    let rc = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if rc < 0 {
        let errno = rte_errno();
        return Err((errno, strerror(errno)));
    }
    Ok(())
}

/// The `--vdev` drivers of `args` whose plugin `plugins` lacks: (driver, expected file). A
/// shared DPDK loads each PMD from there (`librte_<driver>.so*`); EAL then only says "No such
/// device". Nothing is missing for static builds or when the directory is unknown.
pub(crate) fn missing_pmds(args: &[String], plugins: &Path) -> Vec<(String, String)> {
    if dpdk_sys::STATIC || plugins.as_os_str().is_empty() {
        return Vec::new();
    }
    let installed: Vec<String> = std::fs::read_dir(plugins)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut missing = Vec::new();
    for driver in vdev_drivers(args) {
        let lib = format!("librte_{}.so", plugin_of(&driver));
        if !installed.iter().any(|f| f.starts_with(&lib))
            && !missing.iter().any(|(d, _)| *d == driver)
        {
            missing.push((driver, lib));
        }
    }
    missing
}

/// The driver of each `--vdev`: its device name without the trailing instance number
/// (`--vdev=net_af_packet0,iface=x` → `net_af_packet`). Only network PMDs (`net_*`).
fn vdev_drivers(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let spec = match a.strip_prefix("--vdev=") {
            Some(v) => v,
            None if a == "--vdev" => match it.next() {
                Some(v) => v.as_str(),
                None => break,
            },
            None => continue,
        };
        let name = spec.split(',').next().unwrap_or_default();
        let driver = name.trim_end_matches(|c: char| c.is_ascii_digit());
        if driver.starts_with("net_") {
            out.push(driver.to_owned());
        }
    }
    out
}

/// The plugin a driver lives in, where its name differs from the driver's.
fn plugin_of(driver: &str) -> &str {
    match driver {
        "net_virtio_user" => "net_virtio",
        "net_bonding" => "net_bond",
        d => d,
    }
}

fn main_lcore() -> u32 {
    // SAFETY: reads EAL's configuration, immutable after init.
    unsafe { dpdk_sys::rte_get_main_lcore() }
}

fn worker_lcores() -> Vec<u32> {
    let mut out = Vec::new();
    // SAFETY: iterates EAL's enabled lcores (skip main, no wrap); immutable after init.
    let mut i = unsafe { dpdk_sys::rte_get_next_lcore(u32::MAX, 1, 0) };
    while i < dpdk_sys::RTE_MAX_LCORE {
        out.push(i);
        // SAFETY: as above.
        i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
    }
    out
}

/// The DPDK version string of the library linked at run time.
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(dpdk_sys::rte_version()) }
        .to_string_lossy()
        .into_owned()
}

/// Hot-plugs a virtual device (`net_ring_a`, `net_af_packet3,iface=veth0`, …) into the running
/// EAL; returns the device name. Used by tests that share one EAL per binary.
pub fn probe_vdev(devargs: &str) -> Result<String, DpdkError> {
    let c = CString::new(devargs).map_err(|_| DpdkError::Invalid {
        what: format!("vdev '{devargs}'"),
        reason: "contains a NUL byte".into(),
    })?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { dpdk_sys::rte_dev_probe(c.as_ptr()) }.check("rte_dev_probe", || devargs.into())?;
    Ok(devargs.split(',').next().unwrap_or(devargs).to_owned())
}

/// Removes a hot-plugged virtual device (its port must be closed).
pub fn remove_vdev(name: &str) -> Result<(), DpdkError> {
    let c = CString::new(name).map_err(|_| DpdkError::Invalid {
        what: format!("vdev '{name}'"),
        reason: "contains a NUL byte".into(),
    })?;
    // SAFETY: both strings are valid NUL-terminated strings for the duration of the call.
    unsafe { dpdk_sys::rte_eal_hotplug_remove(c"vdev".as_ptr(), c.as_ptr()) }
        .check("rte_eal_hotplug_remove", || name.into())?;
    Ok(())
}

/// Cycles per second of the TSC that [`tsc`] reads.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL calibrated at init.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// The time-stamp counter (cheap; for per-lcore busy/idle accounting).
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { dpdk_sys::shim_rte_rdtsc() }
}

#[cfg(test)]
mod tests {
    use super::{missing_pmds, vdev_drivers};

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn vdev_drivers_are_the_device_names_without_instance_numbers() {
        let a = args(&[
            "s2cs",
            "--vdev=net_af_packet0,iface=lan",
            "--vdev",
            "net_memif12,role=server",
            "--vdev=crypto_null0",
            "--no-pci",
            "--vdev",
        ]);
        assert_eq!(vdev_drivers(&a), ["net_af_packet", "net_memif"]);
    }

    #[test]
    fn a_driver_without_its_plugin_file_is_named() {
        let dir = std::env::temp_dir().join(format!("pmds-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["librte_net_null.so.23.0", "librte_net_virtio.so.23"] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        let a = args(&[
            "x",
            "--vdev=net_null0",
            "--vdev=net_virtio_user0,path=/dev/vhost-net",
            "--vdev=net_af_packet0,iface=a",
            "--vdev=net_af_packet1,iface=b",
        ]);
        let missing = missing_pmds(&a, &dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            missing,
            [(
                "net_af_packet".to_owned(),
                "librte_net_af_packet.so".to_owned()
            )]
        );
        assert!(missing_pmds(&a, std::path::Path::new("")).is_empty());
    }
}
