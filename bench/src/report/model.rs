//! The results schema of the pub/sub benchmark matrix (`matrix.json`, its CSV twin and the
//! runner's resumable `cells.jsonl`) and the aggregation over repetitions that `report` and
//! `compare` work on.
//!
//! The matrix runner fills a [`Matrix`] cell by cell: it appends every finished [`Cell`] to
//! `cells.jsonl` ([`append_jsonl`], re-read with [`read_jsonl`] to resume), and at the end writes
//! `matrix.json` ([`write_json`]) and `matrix.csv` ([`write_csv`]). Measured values are `null`
//! where a run failed before producing them, and latency only exists for the `tcp` workload.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The schema version this build reads and writes.
pub(crate) const SCHEMA: u32 = 1;

/// Peer proxies a SciStream-RS engine is measured against ("best peer" in the ratio tables).
pub(crate) const PEERS: [&str; 3] = ["haproxy", "nginx", "socat"];

#[derive(Debug, thiserror::Error)]
pub(crate) enum ModelError {
    #[error("cannot read {path}: {source}; check the path (s2bench matrix writes matrix.json)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}; check that the directory exists and is writable")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a results file of schema {SCHEMA} (line {line}): {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error(
        "{path} has results schema {found}, this s2bench reads schema {SCHEMA}; use the s2bench \
         that wrote it"
    )]
    Schema { path: PathBuf, found: u32 },
}

/// One whole matrix run (`matrix.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Matrix {
    pub(crate) schema: u32,
    pub(crate) machine: Machine,
    pub(crate) plan: Plan,
    /// RFC 3339 UTC.
    pub(crate) started: String,
    /// RFC 3339 UTC; null while the run is unfinished.
    #[serde(default)]
    pub(crate) finished: Option<String>,
    pub(crate) cells: Vec<Cell>,
}

/// The machine the run was on (the same fields as the gateways benchmark's `machine_info`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: String,
    pub(crate) kernel: String,
    pub(crate) date: String,
}

/// What the runner was asked to measure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Plan {
    /// Matrix profile name, e.g. quick or full.
    pub(crate) profile: String,
    pub(crate) methods: Vec<String>,
    /// Sample sizes, bytes.
    pub(crate) sizes: Vec<u64>,
    /// WAN profile names (none, lan, metro, shortwan, wan, longwan).
    pub(crate) rtts: Vec<String>,
    pub(crate) repeat: u32,
    /// Payload bytes per run.
    pub(crate) dataset_bytes: u64,
    /// zmq (the paper's pub/sub) and/or tcp (raw stamped TCP).
    pub(crate) workloads: Vec<String>,
    /// `--cores` of GN1 and GN2, if the gateways' data paths were pinned.
    pub(crate) cores: Option<(String, String)>,
}

/// One run: one workload, WAN profile, method, sample size and repetition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cell {
    pub(crate) workload: String,
    pub(crate) rtt: String,
    /// The profile's measured gateway-to-gateway RTT, ms.
    pub(crate) rtt_ms: Option<f64>,
    pub(crate) method: String,
    /// Sample size, bytes.
    pub(crate) size: u64,
    pub(crate) rep: u32,
    pub(crate) ok: bool,
    /// What failed, for ok = false.
    pub(crate) error: Option<String>,
    pub(crate) samples_expected: u64,
    pub(crate) samples_received: u64,
    pub(crate) elapsed_s: Option<f64>,
    /// Application payload Gbit/s (size × received × 8 / elapsed).
    pub(crate) goodput_gbps: Option<f64>,
    /// 100 × received / expected.
    pub(crate) efficiency_pct: Option<f64>,
    /// Sample standard deviation of the arrival gaps, µs (the paper's jitter).
    pub(crate) jitter_us: Option<f64>,
    pub(crate) mean_gap_us: Option<f64>,
    /// One-way latency, workload tcp only.
    pub(crate) latency_p50_us: Option<f64>,
    pub(crate) latency_p99_us: Option<f64>,
    pub(crate) latency_max_us: Option<f64>,
    pub(crate) machine_cpu_s_per_gb: Option<f64>,
    /// Both gateways together; null for direct (no gateway process).
    pub(crate) gateway_cpu_s_per_gb: Option<f64>,
    /// GN1's (producer side) share.
    #[serde(default)]
    pub(crate) gn1_cpu_s_per_gb: Option<f64>,
    /// GN2's (consumer side) share.
    #[serde(default)]
    pub(crate) gn2_cpu_s_per_gb: Option<f64>,
    /// Largest drop of the machine's available memory during the run: gateways, kernel socket
    /// queues and the apps' own queues (an unbounded ZeroMQ PUB queue counts here).
    pub(crate) peak_mem_mib: Option<f64>,
    /// Largest resident set of the gateway processes together; null for direct.
    #[serde(default)]
    pub(crate) gateway_rss_mib: Option<f64>,
    /// zmq: whether the publisher's FIN_ACK came back after STOP (the paper's teardown).
    #[serde(default)]
    pub(crate) fin_ack: Option<bool>,
}

/// The CSV header, in [`Cell`]'s field order.
pub(crate) const CSV_COLUMNS: [&str; 25] = [
    "workload",
    "rtt",
    "rtt_ms",
    "method",
    "size",
    "rep",
    "ok",
    "error",
    "samples_expected",
    "samples_received",
    "elapsed_s",
    "goodput_gbps",
    "efficiency_pct",
    "jitter_us",
    "mean_gap_us",
    "latency_p50_us",
    "latency_p99_us",
    "latency_max_us",
    "machine_cpu_s_per_gb",
    "gateway_cpu_s_per_gb",
    "gn1_cpu_s_per_gb",
    "gn2_cpu_s_per_gb",
    "peak_mem_mib",
    "gateway_rss_mib",
    "fin_ack",
];

impl Cell {
    fn csv_fields(&self) -> [String; 25] {
        let f = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        [
            self.workload.clone(),
            self.rtt.clone(),
            f(self.rtt_ms),
            self.method.clone(),
            self.size.to_string(),
            self.rep.to_string(),
            self.ok.to_string(),
            self.error.clone().unwrap_or_default(),
            self.samples_expected.to_string(),
            self.samples_received.to_string(),
            f(self.elapsed_s),
            f(self.goodput_gbps),
            f(self.efficiency_pct),
            f(self.jitter_us),
            f(self.mean_gap_us),
            f(self.latency_p50_us),
            f(self.latency_p99_us),
            f(self.latency_max_us),
            f(self.machine_cpu_s_per_gb),
            f(self.gateway_cpu_s_per_gb),
            f(self.gn1_cpu_s_per_gb),
            f(self.gn2_cpu_s_per_gb),
            f(self.peak_mem_mib),
            f(self.gateway_rss_mib),
            self.fin_ack.map(|b| b.to_string()).unwrap_or_default(),
        ]
    }
}

/// One CSV field, quoted (RFC 4180) when it holds a comma, quote or line break.
pub(crate) fn csv_escape(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// Writes the cells as CSV: a header row, one row per cell, `null` as an empty field.
#[allow(
    dead_code,
    reason = "called by the matrix runner, which writes matrix.csv"
)]
pub(crate) fn write_csv(path: &Path, cells: &[Cell]) -> Result<(), ModelError> {
    let mut out = String::new();
    out.push_str(&CSV_COLUMNS.join(","));
    out.push('\n');
    for cell in cells {
        let row: Vec<String> = cell.csv_fields().iter().map(|f| csv_escape(f)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|source| ModelError::Write {
        path: path.into(),
        source,
    })
}

/// Writes `matrix.json` (pretty-printed).
#[allow(
    dead_code,
    reason = "called by the matrix runner; report and compare only read"
)]
pub(crate) fn write_json(path: &Path, matrix: &Matrix) -> Result<(), ModelError> {
    let text = serde_json::to_string_pretty(matrix).expect("a Matrix always serialises");
    std::fs::write(path, text + "\n").map_err(|source| ModelError::Write {
        path: path.into(),
        source,
    })
}

/// Reads `matrix.json`, refusing other schema versions.
pub(crate) fn read_json(path: &Path) -> Result<Matrix, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
        path: path.into(),
        source,
    })?;
    // Check the version first so an old or future file gets the schema error, not a field error.
    #[derive(Deserialize)]
    struct Version {
        schema: Option<u32>,
    }
    let parse_err = |source: serde_json::Error| ModelError::Parse {
        path: path.into(),
        line: source.line(),
        source,
    };
    let version: Version = serde_json::from_str(&text).map_err(parse_err)?;
    match version.schema {
        Some(SCHEMA) => serde_json::from_str(&text).map_err(parse_err),
        found => Err(ModelError::Schema {
            path: path.into(),
            found: found.unwrap_or(0),
        }),
    }
}

/// Appends one cell as a JSON line (creating the file), flushed before returning so a crash
/// loses at most the cell being measured.
pub(crate) fn append_jsonl(path: &Path, cell: &Cell) -> Result<(), ModelError> {
    let write_err = |source| ModelError::Write {
        path: path.into(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(write_err)?;
    let mut out = BufWriter::new(file);
    let line = serde_json::to_string(cell).expect("a Cell always serialises");
    writeln!(out, "{line}").map_err(write_err)?;
    out.flush().map_err(write_err)
}

/// Reads the cells of a `cells.jsonl`; a missing file is an empty run. A last line without its
/// newline (the runner died while writing it) is dropped; any other bad line is an error.
pub(crate) fn read_jsonl(path: &Path) -> Result<Vec<Cell>, ModelError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ModelError::Read {
                path: path.into(),
                source,
            });
        }
    };
    let mut reader = BufReader::new(file);
    let mut cells = Vec::new();
    let mut line = String::new();
    for number in 1.. {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|source| ModelError::Read {
                path: path.into(),
                source,
            })?;
        if n == 0 {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(cell) => cells.push(cell),
            Err(_) if !line.ends_with('\n') => break,
            Err(source) => {
                return Err(ModelError::Parse {
                    path: path.into(),
                    line: number,
                    source,
                });
            }
        }
    }
    Ok(cells)
}

/// What the repetitions of one measurement are grouped by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub(crate) workload: String,
    pub(crate) rtt: String,
    pub(crate) method: String,
    pub(crate) size: u64,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.workload,
            self.rtt,
            self.method,
            size_label(self.size)
        )
    }
}

/// Median, minimum and maximum of one metric over the ok repetitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stat {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Stat {
    /// None when no value is present.
    pub(crate) fn of(values: impl IntoIterator<Item = Option<f64>>) -> Option<Stat> {
        let mut v: Vec<f64> = values.into_iter().flatten().collect();
        let median = median(&mut v)?;
        Some(Stat {
            median,
            min: v[0],
            max: v[v.len() - 1],
        })
    }

    /// Whether the two min–max ranges share a point.
    pub(crate) fn overlaps(&self, other: &Stat) -> bool {
        self.min <= other.max && other.min <= self.max
    }
}

/// Median (mean of the middle two for even counts); sorts `v`. None for no values.
pub(crate) fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// One (workload, rtt, method, size) over its repetitions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Aggregate {
    pub(crate) key: Key,
    pub(crate) rtt_ms: Option<f64>,
    pub(crate) n_ok: usize,
    pub(crate) n_total: usize,
    pub(crate) goodput_gbps: Option<Stat>,
    pub(crate) efficiency_pct: Option<Stat>,
    pub(crate) jitter_us: Option<Stat>,
    pub(crate) mean_gap_us: Option<Stat>,
    pub(crate) latency_p50_us: Option<Stat>,
    pub(crate) latency_p99_us: Option<Stat>,
    pub(crate) latency_max_us: Option<Stat>,
    pub(crate) machine_cpu_s_per_gb: Option<Stat>,
    pub(crate) gateway_cpu_s_per_gb: Option<Stat>,
    pub(crate) gn1_cpu_s_per_gb: Option<Stat>,
    pub(crate) gn2_cpu_s_per_gb: Option<Stat>,
    pub(crate) peak_mem_mib: Option<Stat>,
    pub(crate) gateway_rss_mib: Option<Stat>,
    /// The failed repetitions: (rep, error text).
    pub(crate) failures: Vec<(u32, String)>,
}

/// Groups cells by [`Key`] (sorted) and summarises the ok repetitions of each; failed ones only
/// count in `n_total` and `failures`.
pub(crate) fn aggregate(cells: &[Cell]) -> Vec<Aggregate> {
    let mut groups: BTreeMap<Key, Vec<&Cell>> = BTreeMap::new();
    for c in cells {
        let key = Key {
            workload: c.workload.clone(),
            rtt: c.rtt.clone(),
            method: c.method.clone(),
            size: c.size,
        };
        groups.entry(key).or_default().push(c);
    }
    groups
        .into_iter()
        .map(|(key, reps)| {
            let ok: Vec<&Cell> = reps.iter().copied().filter(|c| c.ok).collect();
            let stat = |f: fn(&Cell) -> Option<f64>| Stat::of(ok.iter().map(|c| f(c)));
            let failures = reps
                .iter()
                .filter(|c| !c.ok)
                .map(|c| {
                    let error = c.error.clone().unwrap_or_else(|| "(no error text)".into());
                    (c.rep, error)
                })
                .collect();
            Aggregate {
                key,
                rtt_ms: Stat::of(reps.iter().map(|c| c.rtt_ms)).map(|s| s.median),
                n_ok: ok.len(),
                n_total: reps.len(),
                goodput_gbps: stat(|c| c.goodput_gbps),
                efficiency_pct: stat(|c| c.efficiency_pct),
                jitter_us: stat(|c| c.jitter_us),
                mean_gap_us: stat(|c| c.mean_gap_us),
                latency_p50_us: stat(|c| c.latency_p50_us),
                latency_p99_us: stat(|c| c.latency_p99_us),
                latency_max_us: stat(|c| c.latency_max_us),
                machine_cpu_s_per_gb: stat(|c| c.machine_cpu_s_per_gb),
                gateway_cpu_s_per_gb: stat(|c| c.gateway_cpu_s_per_gb),
                gn1_cpu_s_per_gb: stat(|c| c.gn1_cpu_s_per_gb),
                gn2_cpu_s_per_gb: stat(|c| c.gn2_cpu_s_per_gb),
                peak_mem_mib: stat(|c| c.peak_mem_mib),
                gateway_rss_mib: stat(|c| c.gateway_rss_mib),
                failures,
            }
        })
        .collect()
}

/// The aggregates of one (workload, rtt): what one plot and one table show.
#[derive(Debug)]
pub(crate) struct Slice<'a> {
    pub(crate) workload: &'a str,
    pub(crate) rtt: &'a str,
    pub(crate) rtt_ms: Option<f64>,
    /// In plan order, then direct, then by name.
    pub(crate) methods: Vec<&'a str>,
    /// Ascending.
    pub(crate) sizes: Vec<u64>,
    cells: BTreeMap<(&'a str, u64), &'a Aggregate>,
}

impl<'a> Slice<'a> {
    pub(crate) fn get(&self, method: &str, size: u64) -> Option<&'a Aggregate> {
        self.cells.get(&(method, size)).copied()
    }

    /// Median goodput of one method at one size.
    pub(crate) fn goodput(&self, method: &str, size: u64) -> Option<f64> {
        self.get(method, size)?.goodput_gbps.map(|s| s.median)
    }

    /// The best peer proxy (by median goodput) measured at this size, with its goodput.
    pub(crate) fn best_peer(&self, size: u64) -> Option<(&'a str, f64)> {
        self.methods
            .iter()
            .filter(|m| PEERS.contains(m))
            .filter_map(|m| Some((*m, self.goodput(m, size)?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Goodput of `method` ÷ direct and ÷ the best peer at `size`; None where either side is
    /// missing.
    pub(crate) fn ratios(&self, method: &str, size: u64) -> Ratios {
        let value = self.goodput(method, size);
        Ratios {
            to_direct: ratio(value, self.goodput("direct", size)),
            to_best_peer: ratio(value, self.best_peer(size).map(|(_, g)| g)),
        }
    }
}

impl<'a> Slice<'a> {
    /// The per-size median jitter of one method, µs, ascending by size (sizes without a value
    /// left out): what the jitter box plot and summary are over, as in the paper's Fig. 9.
    pub(crate) fn jitter_over_sizes(&self, method: &str) -> Vec<f64> {
        self.sizes
            .iter()
            .filter_map(|&z| self.get(method, z)?.jitter_us.map(|s| s.median))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ratios {
    pub(crate) to_direct: Option<f64>,
    pub(crate) to_best_peer: Option<f64>,
}

/// `value / reference`, None when either is missing or the reference is not positive.
pub(crate) fn ratio(value: Option<f64>, reference: Option<f64>) -> Option<f64> {
    match (value, reference) {
        (Some(v), Some(r)) if r > 0.0 => Some(v / r),
        _ => None,
    }
}

/// Splits aggregates into (workload, rtt) slices, ordered as the plan lists workloads and rtts
/// (then by name); methods ordered as the plan lists them, then direct, then by name.
pub(crate) fn slices<'a>(aggs: &'a [Aggregate], plan: &'a Plan) -> Vec<Slice<'a>> {
    let mut out: Vec<Slice<'a>> = Vec::new();
    for a in aggs {
        let idx = match out
            .iter()
            .position(|s| s.workload == a.key.workload && s.rtt == a.key.rtt)
        {
            Some(i) => i,
            None => {
                out.push(Slice {
                    workload: &a.key.workload,
                    rtt: &a.key.rtt,
                    rtt_ms: None,
                    methods: Vec::new(),
                    sizes: Vec::new(),
                    cells: BTreeMap::new(),
                });
                out.len() - 1
            }
        };
        let s = &mut out[idx];
        if s.rtt_ms.is_none() {
            s.rtt_ms = a.rtt_ms;
        }
        if !s.methods.contains(&a.key.method.as_str()) {
            s.methods.push(&a.key.method);
        }
        if !s.sizes.contains(&a.key.size) {
            s.sizes.push(a.key.size);
        }
        s.cells.insert((&a.key.method, a.key.size), a);
    }
    let rank =
        |list: &[String], name: &str| list.iter().position(|x| x == name).unwrap_or(usize::MAX);
    for s in &mut out {
        s.sizes.sort_unstable();
        // Names the plan does not list: direct (the baseline) first, then by name (the stable
        // sort keeps the aggregates' sorted order).
        s.methods
            .sort_by_key(|m| (rank(&plan.methods, m), *m != "direct"));
    }
    out.sort_by_key(|s| (rank(&plan.workloads, s.workload), rank(&plan.rtts, s.rtt)));
    out
}

/// Mean and sample standard deviation over `n` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MeanStd {
    pub(crate) mean: f64,
    pub(crate) std: f64,
    pub(crate) n: usize,
}

impl MeanStd {
    /// None for no values; std 0 for one.
    pub(crate) fn of(v: &[f64]) -> Option<MeanStd> {
        if v.is_empty() {
            return None;
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(MeanStd {
            mean,
            std: var.sqrt(),
            n,
        })
    }
}

/// The QUIC figure's data, like the paper's: per WAN profile, for direct and every `quic*`
/// method, mean ± std over sample sizes of the per-size median goodput.
#[derive(Debug)]
pub(crate) struct QuicSummary<'a> {
    /// The first workload (in plan order) that has quic methods.
    pub(crate) workload: &'a str,
    pub(crate) rtts: Vec<&'a str>,
    /// direct first (when measured), then the quic methods.
    pub(crate) methods: Vec<&'a str>,
    pub(crate) values: BTreeMap<(&'a str, &'a str), MeanStd>,
}

/// None when no method name starts with `quic`.
pub(crate) fn quic_summary<'a>(slices: &[Slice<'a>]) -> Option<QuicSummary<'a>> {
    let is_quic = |m: &str| m.starts_with("quic");
    let workload = slices
        .iter()
        .find(|s| s.methods.iter().any(|m| is_quic(m)))?
        .workload;
    let mut q = QuicSummary {
        workload,
        rtts: Vec::new(),
        methods: Vec::new(),
        values: BTreeMap::new(),
    };
    for s in slices.iter().filter(|s| s.workload == workload) {
        q.rtts.push(s.rtt);
        for m in s.methods.iter().filter(|m| **m == "direct" || is_quic(m)) {
            if !q.methods.contains(m) {
                q.methods.push(m);
            }
            let per_size: Vec<f64> = s.sizes.iter().filter_map(|&z| s.goodput(m, z)).collect();
            if let Some(v) = MeanStd::of(&per_size) {
                q.values.insert((s.rtt, m), v);
            }
        }
    }
    // direct first, as the paper's legend has it.
    q.methods.sort_by_key(|m| *m != "direct");
    Some(q)
}

/// Sample size as the paper's axis labels it: 512B, 1K, 2K, …, 1M (binary units).
pub(crate) fn size_label(bytes: u64) -> String {
    const K: u64 = 1024;
    match bytes {
        b if b >= K * K && b % (K * K) == 0 => format!("{}M", b / (K * K)),
        b if b >= K && b % K == 0 => format!("{}K", b / K),
        b => format!("{b}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(method: &str, size: u64, rep: u32, gbps: Option<f64>) -> Cell {
        Cell {
            workload: "zmq".into(),
            rtt: "lan".into(),
            rtt_ms: Some(0.44),
            method: method.into(),
            size,
            rep,
            ok: gbps.is_some(),
            error: gbps.is_none().then(|| "sink timed out".into()),
            samples_expected: 100,
            samples_received: if gbps.is_some() { 100 } else { 0 },
            goodput_gbps: gbps,
            jitter_us: gbps.map(|g| g * 10.0),
            ..Cell::default()
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut [7.0]), Some(7.0));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn aggregation_excludes_failed_reps_and_counts_them() {
        let cells = [
            cell("copy", 512, 0, Some(1.0)),
            cell("copy", 512, 1, None),
            cell("copy", 512, 2, Some(3.0)),
            cell("copy", 512, 3, Some(2.0)),
            cell("direct", 512, 0, None),
        ];
        let aggs = aggregate(&cells);
        assert_eq!(aggs.len(), 2);
        let copy = &aggs[0];
        assert_eq!(copy.key.method, "copy");
        assert_eq!((copy.n_ok, copy.n_total), (3, 4));
        assert_eq!(
            copy.goodput_gbps,
            Some(Stat {
                median: 2.0,
                min: 1.0,
                max: 3.0
            })
        );
        assert_eq!(copy.jitter_us.unwrap().median, 20.0);
        assert_eq!(copy.failures, [(1, "sink timed out".to_owned())]);
        assert_eq!(copy.gateway_cpu_s_per_gb, None);
        let direct = &aggs[1];
        assert_eq!((direct.n_ok, direct.n_total), (0, 1));
        assert_eq!(direct.goodput_gbps, None);
    }

    #[test]
    fn ratios_to_direct_and_best_peer() {
        let cells = [
            cell("direct", 512, 0, Some(4.0)),
            cell("copy", 512, 0, Some(3.0)),
            cell("haproxy", 512, 0, Some(2.0)),
            cell("socat", 512, 0, Some(1.5)),
            cell("copy", 1024, 0, Some(6.0)),
            cell("socat", 1024, 0, Some(3.0)),
        ];
        let aggs = aggregate(&cells);
        let plan = Plan::default();
        let s = &slices(&aggs, &plan)[0];
        assert_eq!(s.best_peer(512), Some(("haproxy", 2.0)));
        assert_eq!(
            s.ratios("copy", 512),
            Ratios {
                to_direct: Some(0.75),
                to_best_peer: Some(1.5)
            }
        );
        // No direct at 1 KiB: no ratio to direct, but one to the only peer.
        assert_eq!(
            s.ratios("copy", 1024),
            Ratios {
                to_direct: None,
                to_best_peer: Some(2.0)
            }
        );
        assert_eq!(s.ratios("sockmap", 512).to_direct, None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    }

    #[test]
    fn slices_follow_plan_order() {
        let cells = [
            cell("copy", 1024, 0, Some(1.0)),
            cell("direct", 512, 0, Some(1.0)),
            cell("zz-new", 512, 0, Some(1.0)),
        ];
        let aggs = aggregate(&cells);
        let plan = Plan {
            methods: vec!["direct".into(), "copy".into()],
            ..Plan::default()
        };
        let s = &slices(&aggs, &plan)[0];
        assert_eq!(s.methods, ["direct", "copy", "zz-new"]);
        assert_eq!(s.sizes, [512, 1024]);
    }

    #[test]
    fn size_labels_are_binary() {
        let labels: Vec<String> = [512, 1024, 65536, 1 << 20, 3000].map(size_label).into();
        assert_eq!(labels, ["512B", "1K", "64K", "1M", "3000B"]);
    }

    #[test]
    fn csv_escapes_commas_quotes_and_newlines() {
        assert_eq!(csv_escape("plain"), "plain");
        assert_eq!(csv_escape("a,b"), "\"a,b\"");
        assert_eq!(csv_escape("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_escape("line1\nline2"), "\"line1\nline2\"");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        let mut failed = cell("copy", 512, 1, None);
        failed.error = Some("connect 10.0.0.1:7000, \"refused\"\nretry".into());
        write_csv(&path, &[cell("copy", 512, 0, Some(1.5)), failed]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap().split(',').count(), CSV_COLUMNS.len());
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("zmq,lan,0.44,copy,512,0,true,,100,100,,1.5,,15,"),
            "{row}"
        );
        assert!(
            text.contains(",false,\"connect 10.0.0.1:7000, \"\"refused\"\"\nretry\",100,0,"),
            "{text}"
        );
    }

    #[test]
    fn jsonl_round_trip_and_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cells.jsonl");
        assert_eq!(read_jsonl(&path).unwrap(), []);
        let cells = [cell("copy", 512, 0, Some(1.5)), cell("copy", 512, 1, None)];
        for c in &cells {
            append_jsonl(&path, c).unwrap();
        }
        assert_eq!(read_jsonl(&path).unwrap(), cells);
        // A runner killed mid-write leaves a partial line: resume from the complete ones.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"workload\":\"zm").unwrap();
        assert_eq!(read_jsonl(&path).unwrap(), cells);
    }

    #[test]
    fn json_round_trip_and_schema_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("matrix.json");
        let m = Matrix {
            schema: SCHEMA,
            machine: Machine::default(),
            plan: Plan::default(),
            started: "2026-12-01T22:00:00Z".into(),
            finished: None,
            cells: vec![cell("copy", 512, 0, Some(1.5))],
        };
        write_json(&path, &m).unwrap();
        assert_eq!(read_json(&path).unwrap(), m);
        std::fs::write(&path, r#"{"schema": 2, "cells": []}"#).unwrap();
        let err = read_json(&path).unwrap_err().to_string();
        assert!(
            err.contains("schema 2") && err.contains("reads schema 1"),
            "{err}"
        );
        let err = read_json(&dir.path().join("nope.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read") && err.contains("nope.json"),
            "{err}"
        );
    }
}
