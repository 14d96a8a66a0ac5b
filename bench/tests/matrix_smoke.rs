//! The matrix runner end to end on the testbed: two tiny cells (direct and SciStream-RS `copy`
//! over the `lan` WAN profile, the paper's ZeroMQ pub/sub), then the files a user reads: the
//! CSV, the JSON, the plots (PNG and SVG) and the Markdown report; a second run resumes and
//! measures nothing again. Needs root (namespaces).

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_s2bench");

fn require_root() {
    if let Err(e) = testbed::require_root() {
        panic!("this test builds network namespaces: {e}");
    }
    let dir = Path::new(BIN).parent().expect("bin dir");
    for b in ["s2cs", "s2uc", "s2delay"] {
        assert!(
            dir.join(b).exists(),
            "{b} is missing from {}: build the workspace first (cargo build --release --workspace --bins)",
            dir.display()
        );
    }
}

fn matrix(out: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["matrix", "--methods", "direct,copy", "--sizes", "4K"])
        .args(["--rtts", "lan", "--repeat", "1", "--dataset", "8M"])
        .arg("--out-dir")
        .arg(out)
        .output()
        .expect("running s2bench matrix")
}

#[test]
fn one_tiny_matrix_through_the_testbed() {
    require_root();
    let out = std::env::temp_dir().join(format!("s2bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = matrix(&out);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "s2bench matrix failed:\n{stderr}");

    // JSON: both cells measured, every sample arrived.
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("matrix.json")).expect("matrix.json"))
            .expect("matrix.json parses");
    assert_eq!(m["schema"], 1);
    assert!(m["machine"]["cores"].is_string(), "machine info: {m}");
    let cells = m["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 2, "{cells:?}");
    for c in cells {
        assert_eq!(c["ok"], true, "{c}");
        assert_eq!(c["workload"], "zmq");
        assert_eq!(c["rtt"], "lan");
        assert_eq!(c["size"], 4096);
        assert_eq!(c["samples_expected"], 2048, "8 MiB / 4 KiB: {c}");
        assert_eq!(c["samples_received"], 2048, "{c}");
        assert_eq!(c["efficiency_pct"], 100.0, "{c}");
        assert!(c["goodput_gbps"].as_f64().expect("goodput") > 0.0, "{c}");
        assert!(c["jitter_us"].as_f64().expect("jitter") >= 0.0, "{c}");
    }
    let copy = cells.iter().find(|c| c["method"] == "copy").expect("copy");
    assert!(
        copy["gateway_cpu_s_per_gb"].as_f64().is_some(),
        "gateway CPU accounted: {copy}"
    );

    // CSV: a header with the schema's columns and one row per cell.
    let csv = std::fs::read_to_string(out.join("matrix.csv")).expect("matrix.csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    for col in [
        "workload",
        "rtt",
        "method",
        "size",
        "rep",
        "ok",
        "goodput_gbps",
        "jitter_us",
    ] {
        assert!(header.contains(&col), "column {col} in {header:?}");
    }
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{csv}");
    for r in &rows {
        assert_eq!(r.split(',').count(), header.len(), "row {r}");
    }

    // Plots and the report.
    for stem in ["goodput-zmq-lan", "jitter-zmq-lan"] {
        let png = std::fs::read(out.join(format!("{stem}.png"))).expect("png");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
            "{stem}.png"
        );
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).expect("svg");
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{stem}.svg"
        );
        assert!(
            svg.contains("copy") && svg.contains("direct"),
            "legend in {stem}.svg"
        );
    }
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("copy") && md.contains("direct"), "{md}");

    // A second run finds everything done and measures nothing.
    let before = std::fs::read_to_string(out.join("cells.jsonl")).expect("cells.jsonl");
    let again = matrix(&out);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "resumed run failed:\n{stderr}");
    assert!(stderr.contains("resuming: 2 cells done"), "{stderr}");
    let after = std::fs::read_to_string(out.join("cells.jsonl")).expect("cells.jsonl");
    assert_eq!(before, after, "a resumed run re-measured cells");
    std::fs::remove_dir_all(&out).expect("cleaning up");
}
