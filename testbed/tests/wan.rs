//! The emulated WAN on the real namespace testbed (needs root, iproute2,
//! ethtool, ping): with profile `metro` the ping RTT between the gateways is
//! the profile's, a TCP transfer GN1 → GN2 arrives intact through the delay
//! line, a rate cap is never exceeded, the delay line's counters add up, and
//! teardown leaves no namespace and no `s2delay` behind.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use testbed::wan::check::{ping_gn1_to_gn2, transfer_gn1_to_gn2};
use testbed::wan::{DelayStats, MAX_FRAME_BYTES, WanProfile, queue_limit};
use testbed::{Topology, require_root};

const BIN: &str = env!("CARGO_BIN_EXE_s2testbed");
const MIB: u64 = 1 << 20;

fn bin_dir() -> PathBuf {
    Path::new(BIN).parent().unwrap().to_path_buf()
}

/// Namespaces whose name starts with `prefix-`.
fn namespaces_of(prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_owned)
        .collect()
}

/// Pids of `s2delay` processes (zombies included) whose command line names
/// this testbed's stats file.
fn delay_lines_of(topo: &Topology) -> Vec<String> {
    let stats = topo.wan_stats_path().display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            comm.trim() == "s2delay"
                && (cmdline.is_empty() || String::from_utf8_lossy(&cmdline).contains(&stats))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Tears `guard` down and checks that nothing of it is left.
fn teardown_leaves_nothing(guard: testbed::TestbedGuard) -> DelayStats {
    let topo = guard.topology().clone();
    guard.teardown().expect("teardown");
    assert_eq!(namespaces_of(&topo.prefix), Vec::<String>::new());
    // The reaper thread collects s2delay right after it exits.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !delay_lines_of(&topo).is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        delay_lines_of(&topo),
        Vec::<String>::new(),
        "s2delay still running"
    );
    let stats = DelayStats::read(&topo.wan_stats_path()).expect("final delay-line counters");
    assert!(stats.stopped, "{stats:?}");
    stats
}

#[test]
fn metro_wan_delays_caps_and_cleans_up() {
    if let Err(e) = require_root() {
        panic!("metro_wan_delays_caps_and_cleans_up cannot run: {e}");
    }
    let pid = std::process::id();

    // 1. metro: 5.5 ms RTT, no cap.
    let topo = Topology {
        wan: WanProfile::Metro.link(),
        ..Topology::with_prefix(format!("s2wan{pid}"))
    };
    let guard = topo.up_guarded().expect("testbed with profile metro");
    assert!(namespaces_of(&guard.prefix).contains(&guard.wan_ns()));
    // One ping first, so ARP (which also crosses the delay line) is done.
    ping_gn1_to_gn2(&guard, 1, Duration::from_millis(10)).expect("warm-up ping");
    let ping = ping_gn1_to_gn2(&guard, 20, Duration::from_millis(10)).expect("ping");
    assert_eq!(ping.received, 20, "{ping:?}");
    assert!(
        ping.min_ms >= 5.5,
        "RTT below the profile's 5.5 ms: {ping:?}"
    );
    assert!(
        ping.avg_ms <= 5.5 + 3.0,
        "RTT far above the profile's 5.5 ms: {ping:?}"
    );

    let bytes = 32 * MIB;
    let transfer = transfer_gn1_to_gn2(&guard, &bin_dir(), bytes, 7).expect("32 MiB GN1 -> GN2");
    assert_eq!(transfer.bytes, bytes);

    let stats = guard
        .wan_stats()
        .expect("delay-line snapshot")
        .expect("a delay line");
    assert!(!stats.stopped);
    let delay = WanProfile::Metro.one_way_delay();
    assert_eq!(stats.delay_ns, delay.as_nanos() as u64);
    assert_eq!(stats.limit_bytes, queue_limit(None, delay));
    let (ab, ba) = (stats.a_to_b, stats.b_to_a);
    // Every payload byte crossed a -> b in frames no larger than the MTU.
    assert!(ab.line.bytes >= bytes, "{ab:?}");
    assert!(ab.line.forwarded >= bytes / (9000 + 14), "{ab:?}");
    assert!(
        ba.line.forwarded > 0 && ba.line.bytes < ab.line.bytes / 10,
        "ACKs: {ba:?}"
    );
    for d in [ab, ba] {
        assert_eq!(
            (d.line.dropped_loss, d.send_errors, d.oversize),
            (0, 0, 0),
            "{d:?}"
        );
        assert!(d.line.max_queued_bytes <= stats.limit_bytes as u64, "{d:?}");
    }
    let last = teardown_leaves_nothing(guard);
    assert!(last.a_to_b.line.forwarded >= ab.line.forwarded, "{last:?}");

    // 2. metro with a 200 Mbit/s cap and 0.5 % loss: intact, never faster
    // than the cap.
    let rate = 200_000_000;
    let mut link = WanProfile::Metro.link().unwrap();
    link.rate_bps = Some(rate);
    link.loss = 0.005;
    let topo = Topology {
        wan: Some(link),
        ..Topology::with_prefix(format!("s2wan{pid}r"))
    };
    let guard = topo
        .up_guarded()
        .expect("testbed with profile metro, 200 Mbit/s");
    let transfer = transfer_gn1_to_gn2(&guard, &bin_dir(), bytes, 8).expect("capped transfer");
    let cap_gbps = rate as f64 / 1e9;
    assert!(
        transfer.goodput_gbps <= cap_gbps * 1.05,
        "goodput {:.3} Gbit/s above the {cap_gbps} Gbit/s cap",
        transfer.goodput_gbps
    );
    let stats = teardown_leaves_nothing(guard);
    assert_eq!(stats.rate_bps, Some(rate));
    let ab = stats.a_to_b;
    assert!(ab.line.bytes >= bytes, "{ab:?}");
    // 0.5 % of several thousand frames; TCP retransmitted them all.
    assert!(ab.line.dropped_loss > 0, "{ab:?}");
    assert!(ab.oversize == 0 && ab.send_errors == 0, "{ab:?}");
    assert!(ab.line.max_queued_bytes <= stats.limit_bytes as u64);
    assert!(stats.limit_bytes >= MAX_FRAME_BYTES);
}
