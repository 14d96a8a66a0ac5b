//! `s2bench compare A.json B.json`: two matrix runs side by side, joined on (workload, rtt,
//! method, size): medians, B/A and a "changed" flag where the ratio leaves the threshold band and
//! the repetitions' min–max ranges do not overlap; goodput and jitter.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use anyhow::{Result, ensure};

use crate::report::model::{self, Aggregate, Key, Stat};
use crate::report::table::Table;

/// The compared metrics: name, unit, accessor.
type Metric = (&'static str, &'static str, fn(&Aggregate) -> Option<Stat>);

const METRICS: [Metric; 2] = [
    ("goodput", "Gbit/s", |a| a.goodput_gbps),
    ("jitter", "µs", |a| a.jitter_us),
];

/// One joined (key, metric).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) key: Key,
    pub(crate) metric: &'static str,
    pub(crate) a: Option<Stat>,
    pub(crate) b: Option<Stat>,
    /// B median / A median.
    pub(crate) ratio: Option<f64>,
    pub(crate) changed: bool,
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Comparison {
    pub(crate) rows: Vec<Row>,
    pub(crate) only_a: Vec<Key>,
    pub(crate) only_b: Vec<Key>,
    /// Per (metric, method): geometric mean of B/A over the joined cells, and their count.
    pub(crate) geomean: BTreeMap<(&'static str, String), (f64, usize)>,
}

/// Joins two runs' aggregates. `changed` needs both |B/A − 1| > threshold and disjoint min–max
/// ranges, so a noisy cell does not flag on its median alone.
pub(crate) fn compare(a: &[Aggregate], b: &[Aggregate], threshold: f64) -> Comparison {
    let index = |v: &[Aggregate]| -> BTreeMap<Key, Aggregate> {
        v.iter().map(|x| (x.key.clone(), x.clone())).collect()
    };
    let (ia, ib) = (index(a), index(b));
    let mut c = Comparison {
        only_a: ia
            .keys()
            .filter(|k| !ib.contains_key(*k))
            .cloned()
            .collect(),
        only_b: ib
            .keys()
            .filter(|k| !ia.contains_key(*k))
            .cloned()
            .collect(),
        ..Comparison::default()
    };
    let mut logs: BTreeMap<(&'static str, String), Vec<f64>> = BTreeMap::new();
    for (metric, _, f) in METRICS {
        for (key, xa) in &ia {
            let Some(xb) = ib.get(key) else { continue };
            let (sa, sb) = (f(xa), f(xb));
            let ratio = model::ratio(sb.map(|s| s.median), sa.map(|s| s.median));
            let changed = match (ratio, sa, sb) {
                (Some(r), Some(sa), Some(sb)) => (r - 1.0).abs() > threshold && !sa.overlaps(&sb),
                _ => false,
            };
            if let Some(r) = ratio.filter(|r| *r > 0.0) {
                logs.entry((metric, key.method.clone()))
                    .or_default()
                    .push(r.ln());
            }
            c.rows.push(Row {
                key: key.clone(),
                metric,
                a: sa,
                b: sb,
                ratio,
                changed,
            });
        }
    }
    c.geomean = logs
        .into_iter()
        .map(|(k, v)| {
            let n = v.len();
            (k, ((v.iter().sum::<f64>() / n as f64).exp(), n))
        })
        .collect();
    c
}

fn stat(s: Option<Stat>, decimals: usize) -> String {
    match s {
        Some(s) => format!(
            "{:.d$} [{:.d$}–{:.d$}]",
            s.median,
            s.min,
            s.max,
            d = decimals
        ),
        None => "–".into(),
    }
}

/// The comparison as text: a table per metric, the one-sided cells and the summary lines.
pub(crate) fn render(
    c: &Comparison,
    a_name: &str,
    b_name: &str,
    threshold: f64,
    markdown: bool,
) -> String {
    let table = |t: &Table| if markdown { t.markdown() } else { t.text() };
    let mut out = String::new();
    writeln!(out, "A = {a_name}\nB = {b_name}\n").unwrap();
    for (metric, unit, _) in METRICS {
        let decimals = if metric == "goodput" { 3 } else { 0 };
        writeln!(
            out,
            "{metric} ({unit}, median [min–max]); changed: |B/A − 1| > {threshold} and the \
             ranges are disjoint\n"
        )
        .unwrap();
        let mut t = Table::new(["workload/rtt/method/size", "A", "B", "B/A", "flag"]);
        for r in c.rows.iter().filter(|r| r.metric == metric) {
            t.row([
                r.key.to_string(),
                stat(r.a, decimals),
                stat(r.b, decimals),
                r.ratio
                    .map(|x| format!("{x:.2}"))
                    .unwrap_or_else(|| "–".into()),
                if r.changed {
                    "changed".into()
                } else {
                    String::new()
                },
            ]);
        }
        out.push_str(&table(&t));
        let summary: Vec<String> = c
            .geomean
            .iter()
            .filter(|((m, _), _)| *m == metric)
            .map(|((_, method), (g, n))| format!("{method} {g:.2} (n {n})"))
            .collect();
        writeln!(
            out,
            "\n{metric} geometric mean of B/A per method: {}\n",
            summary.join(", ")
        )
        .unwrap();
    }
    let keys = |k: &[Key]| {
        k.iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !c.only_a.is_empty() {
        writeln!(out, "only in A: {}", keys(&c.only_a)).unwrap();
    }
    if !c.only_b.is_empty() {
        writeln!(out, "only in B: {}", keys(&c.only_b)).unwrap();
    }
    let changed = c.rows.iter().filter(|r| r.changed).count();
    writeln!(out, "{changed} of {} compared values changed", c.rows.len()).unwrap();
    out
}

/// Reads both files and prints the comparison.
pub(crate) fn run(a: &Path, b: &Path, threshold: f64, markdown: bool) -> Result<()> {
    ensure!(
        threshold.is_finite() && threshold >= 0.0,
        "--threshold {threshold} must be a non-negative fraction, e.g. 0.10 for 10 %"
    );
    let ma = model::read_json(a)?;
    let mb = model::read_json(b)?;
    let c = compare(
        &model::aggregate(&ma.cells),
        &model::aggregate(&mb.cells),
        threshold,
    );
    print!(
        "{}",
        render(
            &c,
            &a.display().to_string(),
            &b.display().to_string(),
            threshold,
            markdown
        )
    );
    Ok(())
}
