//! End-to-end on loopback: our zpub → our zsub and tpub → tsub, as the built `s2bench`
//! processes, plus the failure modes a user meets (no publisher, a stalled publisher, a peer
//! that is not tpub). Small streams, bounded in time.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use common::{expect_ready, finish, free_port, free_ports, json_of, s2bench, spawn, zpub, zsub};

const T: Duration = Duration::from_secs(60);

fn field(v: &serde_json::Value, k: &str) -> f64 {
    v.get(k)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("no numeric field {k} in {v}"))
}

#[test]
fn zpub_to_zsub_delivers_every_sample() {
    let (port, sync) = free_ports();
    let log = std::env::temp_dir().join(format!("s2bench-zsub-{port}.log"));
    let _ = std::fs::remove_file(&log);
    // The subscriber first: it must wait for the publisher's handshake before SYNC.
    let mut sub_cmd = zsub(port, sync, &["--log-file"]);
    sub_cmd.arg(&log);
    let sub = spawn(sub_cmd, "zsub");
    std::thread::sleep(Duration::from_millis(300));
    let publ = spawn(
        zpub(port, sync, &["--size", "1024", "--samples", "2000"]),
        "zpub",
    );
    let r = json_of(sub, T);
    let (status, _, err) = finish(publ, T);
    assert!(status.success(), "zpub failed: {err}");

    assert_eq!(r["workload"], "zmq");
    assert_eq!(field(&r, "size"), 1024.0);
    assert_eq!(field(&r, "samples_expected"), 2000.0);
    assert_eq!(field(&r, "samples_received"), 2000.0);
    assert_eq!(field(&r, "efficiency_pct"), 100.0);
    assert!(field(&r, "goodput_gbps") > 0.0, "{r}");
    assert!(field(&r, "elapsed_s") > 0.0, "{r}");
    assert!(field(&r, "jitter_us") >= 0.0, "{r}");
    assert!(field(&r, "mean_gap_us") > 0.0, "{r}");
    assert_eq!(field(&r, "size_mismatches"), 0.0);
    assert_eq!(r["fin_ack"], true);
    // Goodput is the paper's formula over the reported elapsed time.
    let expect = 8.0 * 1024.0 * 2000.0 / (1e9 * field(&r, "elapsed_s"));
    assert!((field(&r, "goodput_gbps") - expect).abs() < 1e-9 * expect);

    let line = std::fs::read_to_string(&log).expect("reading the zsub log file");
    let _ = std::fs::remove_file(&log);
    assert!(
        line.starts_with("Elapsed: ")
            && line.contains(" secs. | Throughput: ")
            && line.contains(" | Jitter: ")
            && line.contains(" | Inter-message Space: ")
            && line.trim_end().ends_with("| Efficiency: 100"),
        "{line:?}"
    );
}

#[test]
fn zsub_without_a_publisher_fails_clearly() {
    let (port, sync) = free_ports();
    let (status, _, err) = finish(
        spawn(zsub(port, sync, &["--connect-timeout", "1"]), "zsub"),
        T,
    );
    assert!(!status.success());
    assert!(err.contains("no ZMTP handshake"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn zsub_times_out_on_a_stalled_publisher_and_reports_progress() {
    let (port, sync) = free_ports();
    // One message per 10 s: the subscriber's 1 s idle timeout fires first.
    let publ = spawn(
        zpub(
            port,
            sync,
            &["--size", "64", "--samples", "3", "--pace-hz", "0.1"],
        ),
        "zpub",
    );
    let (status, out, err) = finish(spawn(zsub(port, sync, &["--idle-timeout", "1"]), "zsub"), T);
    drop(publ);
    assert!(!status.success(), "zsub succeeded: {out}");
    assert!(err.contains("nothing arrived"), "{err}");
    assert!(err.contains("got 0 of 3 messages"), "{err}");
}

#[test]
fn zpub_refuses_bad_sizes() {
    for (args, msg) in [
        (&["--size", "0"][..], "message size 0"),
        (
            &["--size", "2K", "--dataset", "1K"][..],
            "smaller than one message",
        ),
    ] {
        let mut c = s2bench(&["zpub", "--port", "1", "--sync", "2"]);
        c.args(args);
        let (status, _, err) = finish(spawn(c, "zpub"), T);
        assert!(!status.success());
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

#[test]
fn tpub_to_tsub_counts_every_message_in_order() {
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let mut publ = spawn(
        s2bench(&["tpub", "--listen", &addr, "--size", "1K", "--count", "3000"]),
        "tpub",
    );
    let (_stdout, _) = expect_ready(&mut publ);
    let r = json_of(spawn(s2bench(&["tsub", "--connect", &addr]), "tsub"), T);
    let (status, _, err) = finish(publ, T);
    assert!(status.success(), "tpub failed: {err}");

    assert_eq!(r["workload"], "tcp");
    assert_eq!(field(&r, "size"), 1024.0);
    assert_eq!(field(&r, "samples_expected"), 3000.0);
    assert_eq!(field(&r, "samples_received"), 3000.0);
    assert_eq!(field(&r, "efficiency_pct"), 100.0);
    assert_eq!(field(&r, "lost"), 0.0);
    assert_eq!(field(&r, "reordered"), 0.0);
    assert_eq!(field(&r, "duplicates"), 0.0);
    assert!(field(&r, "goodput_gbps") > 0.0, "{r}");
    for k in ["jitter_us", "mean_gap_us"] {
        assert!(field(&r, k) >= 0.0, "{k}: {r}");
    }
    let (p50, p99, max) = (
        field(&r, "latency_p50_us"),
        field(&r, "latency_p99_us"),
        field(&r, "latency_max_us"),
    );
    assert!(0.0 <= p50 && p50 <= p99 && p99 <= max, "{r}");
}

#[test]
fn tpub_paced_by_dataset_sends_floor_of_dataset_over_size() {
    let addr = format!("127.0.0.1:{}", free_port());
    // floor(1000 / 64) = 15 messages at 500 Hz: about 30 ms.
    let mut publ = spawn(
        s2bench(&[
            "tpub",
            "--listen",
            &addr,
            "--size",
            "64",
            "--dataset",
            "1000",
            "--pace-hz",
            "500",
        ]),
        "tpub",
    );
    let (_stdout, _) = expect_ready(&mut publ);
    let r = json_of(spawn(s2bench(&["tsub", "--connect", &addr]), "tsub"), T);
    assert_eq!(field(&r, "samples_expected"), 15.0);
    assert_eq!(field(&r, "samples_received"), 15.0);
    // 14 gaps of nominally 2 ms.
    let gap = field(&r, "mean_gap_us");
    assert!(gap > 1000.0, "{r}");
}

#[test]
fn tsub_refuses_a_peer_that_is_not_tpub() {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding");
    let addr = l.local_addr().expect("address").to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accepting tsub");
        let _ = s.write_all(&[0x42; 64]);
    });
    let (status, _, err) = finish(spawn(s2bench(&["tsub", "--connect", &addr]), "tsub"), T);
    server.join().expect("server thread");
    assert!(!status.success());
    assert!(err.contains("bad magic 0x42424242"), "{err}");
}

#[test]
fn tsub_reports_a_truncated_stream() {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding");
    let addr = l.local_addr().expect("address").to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accepting tsub");
        // A valid 64-byte header announcing 2 messages, then half of the second message.
        let mut m = [0u8; 64];
        m[..4].copy_from_slice(b"S2TS");
        m[4..8].copy_from_slice(&64u32.to_le_bytes());
        m[24..32].copy_from_slice(&2u64.to_le_bytes());
        let _ = s.write_all(&m);
        m[8..16].copy_from_slice(&1u64.to_le_bytes());
        let _ = s.write_all(&m[..40]);
    });
    let (status, _, err) = finish(spawn(s2bench(&["tsub", "--connect", &addr]), "tsub"), T);
    server.join().expect("server thread");
    assert!(!status.success());
    assert!(err.contains("after 40 of 64 bytes"), "{err}");
}
