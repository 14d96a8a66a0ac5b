//! CPU accounting from /proc: the whole machine's busy time, and a process tree's CPU time.

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

/// CPU seconds of `root` and all its descendants, including reaped children.
pub(crate) fn tree_cpu_secs(root: u32) -> f64 {
    let mut parent = HashMap::new();
    let mut own = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && let Some((ppid, o, _)) = stat_of(pid)
            {
                parent.insert(pid, ppid);
                own.insert(pid, o);
            }
        }
    }
    let in_tree = |mut p: u32| {
        for _ in 0..64 {
            if p == root {
                return true;
            }
            match parent.get(&p) {
                Some(&pp) if pp != 0 => p = pp,
                _ => return false,
            }
        }
        false
    };
    let live: f64 = own
        .iter()
        .filter(|(p, _)| in_tree(**p))
        .map(|(_, t)| t)
        .sum();
    let reaped = stat_of(root).map_or(0.0, |(_, _, c)| c);
    (live + reaped) / hz()
}
