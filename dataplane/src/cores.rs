//! Per-core event loops: one OS thread per core, each running a single-threaded tokio runtime.
//! A stream is placed on one loop and all its work (accepting, dialing, relaying) stays there.
//! With [`Pinning::Pinned`] each thread is bound to its core with `sched_setaffinity` (the
//! operator chose the cores); with [`Pinning::Floating`] the kernel schedules the threads, which
//! is the right default when the gateway shares its cores with other processes.

use std::io;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The pinned event loops of one engine.
#[derive(Debug)]
pub struct CorePool {
    loops: Vec<Loop>,
}

#[derive(Debug)]
struct Loop {
    core: usize,
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Why the pool could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(
        "core {core} is not online (this host has cores {online:?}); pass --cores with online cores"
    )]
    Offline { core: usize, online: Vec<usize> },
    #[error("no cores given for the data path; pass --cores, e.g. --cores 0,1")]
    Empty,
    #[error("starting the event loop for core {core} failed: {source}")]
    Spawn {
        core: usize,
        #[source]
        source: io::Error,
    },
}

/// Whether loop threads are bound to their cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    Pinned,
    Floating,
}

impl CorePool {
    /// Starts one loop per entry of `cores` (duplicates allowed: two loops on one core).
    pub fn start(cores: &[usize], pinning: Pinning) -> Result<Self, CoreError> {
        if cores.is_empty() {
            return Err(CoreError::Empty);
        }
        let online = online_cores();
        let mut loops = Vec::with_capacity(cores.len());
        for &core in cores {
            if !online.contains(&core) {
                return Err(CoreError::Offline {
                    core,
                    online: online.clone(),
                });
            }
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("s2ds-core{core}"))
                .spawn(move || {
                    if pinning == Pinning::Pinned
                        && let Err(e) = pin_current_thread(core)
                    {
                        tracing::warn!(core, error = %e, "could not pin data-path thread; running unpinned");
                    }
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = handle_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = handle_tx.send(Ok(rt.handle().clone()));
                    rt.block_on(async {
                        let _ = stop_rx.await;
                    });
                    // Dropping the runtime cancels every task still on this loop, which closes
                    // their sockets.
                    drop(rt);
                })
                .map_err(|source| CoreError::Spawn { core, source })?;
            let handle = handle_rx
                .recv()
                .map_err(|_| CoreError::Spawn {
                    core,
                    source: io::Error::other("event-loop thread exited during start"),
                })?
                .map_err(|source| CoreError::Spawn { core, source })?;
            loops.push(Loop {
                core,
                handle,
                stop: Some(stop_tx),
                thread: Some(thread),
            });
        }
        Ok(Self { loops })
    }

    pub fn len(&self) -> usize {
        self.loops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.loops.is_empty()
    }

    /// The loop that serves stream `index` (round-robin over the configured cores).
    pub fn handle_for(&self, index: usize) -> (usize, &Handle) {
        let l = &self.loops[index % self.loops.len()];
        (l.core, &l.handle)
    }
}

impl Drop for CorePool {
    fn drop(&mut self) {
        for l in &mut self.loops {
            if let Some(stop) = l.stop.take() {
                let _ = stop.send(());
            }
        }
        for l in &mut self.loops {
            if let Some(t) = l.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Cores this process may run on.
pub fn online_cores() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain old data; zeroed is a valid empty set, and sched_getaffinity
    // writes at most size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return (0..n).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below CPU_SETSIZE, the bound CPU_ISSET requires.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

fn pin_current_thread(core: usize) -> io::Result<()> {
    // SAFETY: as above, a zeroed cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `core` was checked against the online set, which is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_run_tasks_and_stop_cleanly() {
        let cores = online_cores();
        let pool = CorePool::start(&cores, Pinning::Pinned).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..pool.len() {
            let tx = tx.clone();
            pool.handle_for(i).1.spawn(async move {
                tx.send(i).unwrap();
            });
        }
        let mut got: Vec<usize> = (0..pool.len()).map(|_| rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..pool.len()).collect::<Vec<_>>());
        drop(pool);
    }

    #[test]
    fn offline_core_is_refused_with_the_online_list() {
        let err = CorePool::start(&[100_000], Pinning::Pinned).unwrap_err();
        assert!(
            matches!(err, CoreError::Offline { core: 100_000, .. }),
            "{err}"
        );
        assert!(matches!(
            CorePool::start(&[], Pinning::Floating),
            Err(CoreError::Empty)
        ));
    }
}
