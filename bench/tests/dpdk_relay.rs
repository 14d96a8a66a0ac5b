//! `s2bench dpdk-relay` end to end, briefly: a real EAL with four net_memif ports in one
//! process, jumbo frames (MTU 9000), the gateway lcore relaying one TCP connection between two
//! smoltcp peers. The relay child compares every received byte with the producer's pattern and
//! fails on the first difference, so a green run means the bytes arrived intact; the latency
//! children count every stamped message. Needs DPDK (`cargo xtask setup`); runs as root in CI
//! (EAL without hugepages still wants /dev access).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_s2bench");

#[test]
fn jumbo_tcp_through_the_gateway_lcore_over_memif() {
    let out = std::env::temp_dir().join(format!("s2bench-relay-{}.json", std::process::id()));
    let run = Command::new(BIN)
        .args(["dpdk-relay", "--secs", "1", "--bytes", "256M", "--out"])
        .arg(&out)
        .output()
        .expect("running s2bench dpdk-relay");
    assert!(
        run.status.success(),
        "s2bench dpdk-relay failed ({}):\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("the report file")).expect("JSON");
    let _ = std::fs::remove_file(&out);
    assert_eq!(report["mtu"], 9000);
    for phase in ["ceiling", "relay"] {
        let bytes = report[phase]["bytes"].as_u64().expect("bytes");
        let gbps = report[phase]["gbps"].as_f64().expect("gbps");
        assert!(bytes > 0 && gbps > 0.0, "{phase} moved nothing: {report}");
    }
    let busy = report["relay"]["gateway_busy"]
        .as_f64()
        .expect("busy share");
    assert!((0.0..=1.0).contains(&busy), "busy share {busy}");
    for path in ["latency_gateway", "latency_direct"] {
        let l = &report[path];
        assert_eq!(
            l["messages"], 1900,
            "{path}: every message after the warm-up: {l}"
        );
        let (p50, p99, max) = (
            l["p50_us"].as_f64().expect("p50"),
            l["p99_us"].as_f64().expect("p99"),
            l["max_us"].as_f64().expect("max"),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{path}: {l}");
    }
    let leftovers: Vec<_> = std::fs::read_dir("/tmp")
        .expect("/tmp")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("s2bench-relay-") && n.ends_with(".sock"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "memif sockets left behind: {leftovers:?}"
    );
}
