//! `s2bench report` and `s2bench compare` end to end on synthetic matrix runs: the built binary,
//! real files, the figures parsed back (PNG signature, SVG as XML).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

const METHODS: [&str; 4] = ["direct", "copy", "haproxy", "quic-proxy"];
const RTTS: [(&str, f64); 2] = [("lan", 0.44), ("wan", 58.0)];
const SIZES: [u64; 3] = [512, 4096, 1 << 20];
const FAILED_ERROR: &str = "sink: connect 10.10.2.2:7000, \"connection refused\"\nafter 3 tries";

/// Median goodput of a method at a size: direct grows with size; the others are fixed fractions.
fn base_gbps(method: &str, size: u64) -> f64 {
    let direct = match size {
        512 => 1.0,
        4096 => 4.0,
        _ => 8.0,
    };
    direct
        * match method {
            "direct" => 1.0,
            "copy" => 0.9,
            "haproxy" => 0.6,
            _ => 0.125,
        }
}

/// Median jitter of a method at a size, µs.
fn base_jitter_us(method: &str, size: u64) -> f64 {
    (10.0 + size as f64 / 256.0) * if method == "copy" { 2.0 } else { 1.0 }
}

/// 2 WAN profiles × 4 methods × 3 sizes × 2 repetitions (±2 % around the base), copy on lan at
/// 4 KiB failing its second repetition; `copy_factor` scales copy's goodput (for compare).
fn matrix(copy_factor: f64) -> Value {
    let mut cells = Vec::new();
    for (rtt, rtt_ms) in RTTS {
        for m in METHODS {
            for size in SIZES {
                for rep in 0..2u32 {
                    let spread = if rep == 0 { 0.98 } else { 1.02 };
                    let factor = if m == "copy" { copy_factor } else { 1.0 };
                    let gbps = base_gbps(m, size) * spread * factor;
                    let failed = m == "copy" && rtt == "lan" && size == 4096 && rep == 1;
                    // A failed run has no measurements (null), as the runner records it.
                    let measured = |v: f64| if failed { Value::Null } else { json!(v) };
                    let efficiency = if m == "haproxy" && size == 512 {
                        99.5
                    } else {
                        100.0
                    };
                    let gateway_cpu = if m == "direct" {
                        Value::Null
                    } else {
                        json!(1.0)
                    };
                    cells.push(json!({
                        "workload": "zmq", "rtt": rtt, "rtt_ms": rtt_ms, "method": m,
                        "size": size, "rep": rep, "ok": !failed,
                        "error": if failed { json!(FAILED_ERROR) } else { Value::Null },
                        "samples_expected": 1000,
                        "samples_received": if failed { 0 } else { 1000 },
                        "elapsed_s": measured(1.0),
                        "goodput_gbps": measured(gbps),
                        "efficiency_pct": measured(efficiency),
                        "jitter_us": measured(base_jitter_us(m, size) * spread),
                        "mean_gap_us": measured(4.0),
                        "latency_p50_us": null, "latency_p99_us": null, "latency_max_us": null,
                        "machine_cpu_s_per_gb": measured(2.0),
                        "gateway_cpu_s_per_gb": gateway_cpu,
                        "peak_mem_mib": measured(50.0),
                    }));
                }
            }
        }
    }
    json!({
        "schema": 1,
        "machine": {
            "cpu": "Test CPU", "cores": "2", "kernel": "6.1.0", "date": "2026-12-01T22:00:00Z",
        },
        "plan": {
            "profile": "quick", "methods": METHODS, "sizes": SIZES, "rtts": ["lan", "wan"],
            "repeat": 2, "dataset_bytes": 268435456u64, "workloads": ["zmq"],
        },
        "started": "2026-12-01T22:00:00Z", "finished": "2026-12-01T22:30:00Z",
        "cells": cells,
    })
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(v).unwrap()).unwrap();
    path
}

fn s2bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_s2bench"))
        .args(args)
        .output()
        .expect("run s2bench")
}

fn text_of(svg: &Path) -> String {
    let text = std::fs::read_to_string(svg).unwrap();
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", svg.display()));
    assert_eq!(
        doc.root_element().tag_name().name(),
        "svg",
        "{}",
        svg.display()
    );
    doc.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn report_writes_figures_and_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "matrix.json", &matrix(1.0));
    let out_dir = dir.path().join("report");
    let out = s2bench(&[
        "report",
        "--in",
        input.to_str().unwrap(),
        "--out-dir",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut stems = vec!["quic-goodput".to_owned()];
    for (rtt, _) in RTTS {
        stems.push(format!("goodput-zmq-{rtt}"));
        stems.push(format!("jitter-zmq-{rtt}"));
    }
    for stem in &stems {
        let png = std::fs::read(out_dir.join(format!("{stem}.png")))
            .unwrap_or_else(|e| panic!("{stem}.png: {e}"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{stem}.png is not a PNG"
        );
        assert!(
            (5_000..5_000_000).contains(&png.len()),
            "{stem}.png has {} bytes",
            png.len()
        );
        let text = text_of(&out_dir.join(format!("{stem}.svg")));
        let methods: &[&str] = if stem == "quic-goodput" {
            &["direct", "quic-proxy"]
        } else {
            &METHODS
        };
        for m in methods {
            assert!(
                text.contains(m),
                "{stem}.svg lacks the method name {m}:\n{text}"
            );
        }
    }
    let goodput_svg = text_of(&out_dir.join("goodput-zmq-lan.svg"));
    for label in ["512B", "4K", "1M", "RTT 0.44 ms"] {
        assert!(
            goodput_svg.contains(label),
            "goodput-zmq-lan.svg lacks {label}"
        );
    }

    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    for expected in [
        "- Machine: Test CPU (2 cores), kernel 6.1.0",
        "## zmq workload, lan profile (RTT 0.44 ms)",
        "## zmq workload, wan profile (RTT 58.00 ms)",
        "| size | direct | copy | haproxy | quic-proxy |",
        // Medians of the ±2 % repetitions; haproxy's efficiency flagged; the failed rep counted.
        "| 512B | 1.000 | 0.900 | 0.600 (⚠ 99.50 %) | 0.125 |",
        "| 4K | 4.000 | 3.528 [1/2 ok] | 2.400 | 0.500 |",
        "| 1M | 8.000 | 7.200 | 4.800 | 1.000 |",
        // Ratio table: copy 0.9 of direct and 1.5 × the best peer (haproxy).
        "| size | best peer | copy | haproxy | quic-proxy |",
        "| 1M | haproxy | 0.90 / 1.50 | 0.60 / 1.00 | 0.12 / 0.21 |",
        "whiskers: min and max",
        // Jitter over sizes: direct 12, 26, 4106 µs; copy twice that, its 4 KiB from rep 0 only.
        "| direct | 1381 | 26 | 12 | 4106 | 3 |",
        "| copy | 2762 | 51 | 24 | 8212 | 3 |",
        "### Cost at the largest size (1M)",
        "| direct | – | 2.00 | – | 50 |",
        "| copy | 1.00 | 2.00 | – | 50 |",
        "## Failed runs",
        "| zmq | lan | copy | 4K | 1 | sink: connect 10.10.2.2:7000, \"connection refused\" after 3 tries |",
        "[goodput PNG](goodput-zmq-lan.png)",
        "[jitter SVG](jitter-zmq-wan.svg)",
        "## QUIC",
        "[PNG](quic-goodput.png)",
        "## Paper reference (FABRIC, 32-core VMs, ConnectX-6 100 GbE — different hardware, for orientation only)",
        "### LAN UTAH–SALT (gateway RTT 0.3 ms) ↔ our `lan` (zmq workload)",
        "### WAN UTAH–MAX (gateway RTT 57.8 ms) ↔ our `wan` (zmq workload)",
        // Paper LAN 1 MiB: 14.926 / 11.410 / 13.500, beside our direct and best engine (copy).
        "| 1M | 14.926 | 11.410 | 13.500 | 0.76 | 0.90 | 8.000 | 7.200 (copy) | 0.90 |",
        "| 2K | 2.677 | 2.762 | 2.672 | 1.03 | 1.00 | – | – | – |",
        "| 4K | 4.157 | 4.140 | 3.723 | 1.00 | 0.90 | 4.000 | 3.600 (copy) | 0.90 |",
    ] {
        assert!(md.contains(expected), "report.md lacks {expected:?}:\n{md}");
    }
    assert!(
        !md.contains("Metro"),
        "only the profiles present get the paper's tables"
    );
}

#[test]
fn report_without_quic_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = matrix(1.0);
    let cells = m["cells"].as_array_mut().unwrap();
    cells.retain(|c| c["method"] != "quic-proxy");
    let input = write(dir.path(), "matrix.json", &m);
    let out_dir = dir.path().join("out");
    let out = s2bench(&[
        "report",
        "--in",
        input.to_str().unwrap(),
        "--out-dir",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out_dir.join("quic-goodput.png").exists());
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("No method named quic* in this run"), "{md}");
}

#[test]
fn compare_flags_a_doubled_method() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &matrix(1.0));
    let mut changed = matrix(2.0);
    // A cell only B has.
    let mut extra = changed["cells"][0].clone();
    extra["method"] = json!("splice");
    changed["cells"].as_array_mut().unwrap().push(extra);
    let b = write(dir.path(), "b.json", &changed);
    let out = s2bench(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--markdown",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "| zmq/lan/copy/1M | 7.200 [7.056–7.344] | 14.400 [14.112–14.688] | 2.00 | changed |",
        "| zmq/wan/direct/1M | 8.000 [7.840–8.160] | 8.000 [7.840–8.160] | 1.00 |  |",
        "goodput geometric mean of B/A per method: copy 2.00 (n 6), direct 1.00 (n 6)",
        "jitter geometric mean of B/A per method: copy 1.00 (n 6)",
        "only in B: zmq/lan/splice/512B",
        "6 of 48 compared values changed",
    ] {
        assert!(
            stdout.contains(expected),
            "compare lacks {expected:?}:\n{stdout}"
        );
    }

    // Plain-text mode aligns columns instead.
    let out = s2bench(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let row = stdout
        .lines()
        .find(|l| l.starts_with("zmq/lan/copy/1M"))
        .unwrap_or_else(|| panic!("no copy 1M row:\n{stdout}"));
    assert!(row.ends_with("2.00  changed"), "{row}");
}

#[test]
fn compare_reports_unreadable_and_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &matrix(1.0));
    let missing = dir.path().join("missing.json");
    let out = s2bench(&["compare", a.to_str().unwrap(), missing.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot read") && stderr.contains("missing.json"),
        "{stderr}"
    );

    let mut future = matrix(1.0);
    future["schema"] = json!(7);
    let b = write(dir.path(), "b.json", &future);
    let out = s2bench(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("schema 7"), "{stderr}");

    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "not json").unwrap();
    let out = s2bench(&["compare", garbage.to_str().unwrap(), a.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("garbage.json") && stderr.contains("not a results file"),
        "{stderr}"
    );
}
