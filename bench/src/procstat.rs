//! Accounting from /proc: the whole machine's busy time, a process tree's CPU time, and the
//! machine's available memory (which also sees kernel socket queues).

use std::collections::HashMap;

/// Clock ticks per second.
fn hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Busy seconds of all CPUs since boot (user+nice+system+irq+softirq+steal).
pub(crate) fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or_default();
    let v: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    busy / hz()
}

/// (ppid, utime+stime, cutime+cstime) of a process, in ticks.
fn stat_of(pid: u32) -> Option<(u32, f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let own = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let children = f.get(13)?.parse::<f64>().ok()? + f.get(14)?.parse::<f64>().ok()?;
    Some((ppid, own, children))
}

/// Own CPU ticks of every live process, with its parent.
fn process_table() -> HashMap<u32, (u32, f64)> {
    let mut table = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && let Some((ppid, own, _)) = stat_of(pid)
            {
                table.insert(pid, (ppid, own));
            }
        }
    }
    table
}

/// `root` and its live descendants.
fn tree(table: &HashMap<u32, (u32, f64)>, root: u32) -> impl Iterator<Item = u32> + '_ {
    let in_tree = move |mut p: u32| {
        for _ in 0..64 {
            if p == root {
                return true;
            }
            match table.get(&p) {
                Some(&(pp, _)) if pp != 0 => p = pp,
                _ => return false,
            }
        }
        false
    };
    table.keys().copied().filter(move |&p| in_tree(p))
}

/// CPU seconds of `root` and all its descendants, including reaped children.
pub(crate) fn tree_cpu_secs(root: u32) -> f64 {
    let table = process_table();
    let live: f64 = tree(&table, root).map(|p| table[&p].1).sum();
    let reaped = stat_of(root).map_or(0.0, |(_, _, c)| c);
    (live + reaped) / hz()
}

/// The processes of the trees under `roots`.
pub(crate) fn trees(roots: &[u32]) -> Vec<u32> {
    let table = process_table();
    roots.iter().flat_map(|&r| tree(&table, r)).collect()
}

/// Resident memory of `pids`, in bytes.
fn rss_bytes(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .sum()
}

/// MemAvailable of /proc/meminfo, in bytes.
pub(crate) fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Samples MemAvailable every 10 ms until dropped, and the resident memory of the gateway
/// processes every 50 ms (their pids are listed once, at start: reading all of /proc at 100 Hz
/// would cost the run a good part of a core).
pub(crate) struct MemWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<MemPeaks>>,
}

/// What a [`MemWatch`] saw, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MemPeaks {
    /// The largest drop of MemAvailable below the level at start: memory the run took, in user
    /// space or the kernel (socket and psock queues, but also the apps' own queues).
    pub(crate) machine: u64,
    /// The largest resident set of the gateway processes together.
    pub(crate) gateways: u64,
}

impl MemWatch {
    pub(crate) fn start(gateway_roots: &[u32]) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let base = mem_available();
        let pids = trees(gateway_roots);
        let thread = std::thread::spawn(move || {
            let mut low = base;
            let mut rss = rss_bytes(&pids);
            let mut tick = 0u32;
            while !flag.load(Ordering::Relaxed) {
                low = low.min(mem_available());
                tick += 1;
                if tick.is_multiple_of(5) {
                    rss = rss.max(rss_bytes(&pids));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            MemPeaks {
                machine: base.saturating_sub(low),
                gateways: rss.max(rss_bytes(&pids)),
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn peaks(mut self) -> MemPeaks {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map_or(MemPeaks::default(), |t| t.join().unwrap_or_default())
    }
}
