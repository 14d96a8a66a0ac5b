//! `report.md`: the matrix run's tables (goodput, ratios, jitter, cost, latency, failures), links
//! to the figures and the paper's numbers beside ours.

use std::fmt::Write;

use super::model::{Aggregate, Matrix, PEERS, QuicSummary, Slice, Stat, ratio, size_label};
use super::paper;
use super::plot::JITTER_BOX;
use super::table::Table;

const NONE: &str = "–";

/// The paper-reference section's heading.
pub(crate) const PAPER_HEADING: &str = "Paper reference (FABRIC, 32-core VMs, ConnectX-6 100 GbE — \
     different hardware, for orientation only)";

/// SciStream-RS engines: what is neither the baseline, a peer proxy nor a QUIC method.
fn is_engine(method: &str) -> bool {
    method != "direct" && !PEERS.contains(&method) && !method.starts_with("quic")
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map(|v| format!("{v:.decimals$}"))
        .unwrap_or_else(|| NONE.into())
}

fn median(s: Option<Stat>) -> Option<f64> {
    s.map(|s| s.median)
}

/// One goodput table cell: median Gbit/s, the efficiency when below 100 %, ok/total when some
/// repetitions failed.
fn goodput_cell(a: Option<&Aggregate>) -> String {
    let Some(a) = a else {
        return NONE.into();
    };
    let Some(g) = a.goodput_gbps else {
        return format!("failed ({}/{} ok)", a.n_ok, a.n_total);
    };
    let mut out = format!("{:.3}", g.median);
    if let Some(e) = a.efficiency_pct.filter(|e| e.median < 100.0) {
        write!(out, " (⚠ {:.2} %)", e.median).unwrap();
    }
    if a.n_ok < a.n_total {
        write!(out, " [{}/{} ok]", a.n_ok, a.n_total).unwrap();
    }
    out
}

/// The whole report.
pub(crate) fn render(m: &Matrix, slices: &[Slice<'_>], quic: Option<&QuicSummary<'_>>) -> String {
    let mut md = String::new();
    header(&mut md, m);
    for s in slices {
        slice(&mut md, s);
    }
    failures(&mut md, slices);
    quic_section(&mut md, quic);
    paper_section(&mut md, slices);
    md
}

fn header(md: &mut String, m: &Matrix) {
    let ok = m.cells.iter().filter(|c| c.ok).count();
    let p = &m.plan;
    let sizes: Vec<String> = p.sizes.iter().map(|&z| size_label(z)).collect();
    writeln!(md, "# s2bench matrix report\n").unwrap();
    writeln!(
        md,
        "- Machine: {} ({} cores), kernel {}, {}",
        m.machine.cpu, m.machine.cores, m.machine.kernel, m.machine.date
    )
    .unwrap();
    writeln!(
        md,
        "- Run: {} → {}; {} runs, {} ok, {} failed",
        m.started,
        m.finished.as_deref().unwrap_or("unfinished"),
        m.cells.len(),
        ok,
        m.cells.len() - ok
    )
    .unwrap();
    let no_fin_ack = m.cells.iter().filter(|c| c.fin_ack == Some(false)).count();
    if no_fin_ack > 0 {
        writeln!(
            md,
            "- {no_fin_ack} runs ended without the publisher's FIN_ACK (the teardown after STOP; \
             their measurements are complete)"
        )
        .unwrap();
    }
    writeln!(
        md,
        "- Plan `{}`: workloads {}; WAN profiles {}; methods {}; sizes {}; {} repetitions of {} \
         payload bytes",
        p.profile,
        p.workloads.join(", "),
        p.rtts.join(", "),
        p.methods.join(", "),
        sizes.join(", "),
        p.repeat,
        p.dataset_bytes
    )
    .unwrap();
    writeln!(
        md,
        "- Values are medians over the ok repetitions; ⚠ marks an efficiency (received / expected \
         samples) below 100 %; [k/n ok] marks cells where some repetitions failed.\n"
    )
    .unwrap();
}

fn slice(md: &mut String, s: &Slice<'_>) {
    let stem = format!("{}-{}", s.workload, s.rtt);
    let rtt = s
        .rtt_ms
        .map(|ms| format!(" (RTT {ms:.2} ms)"))
        .unwrap_or_default();
    writeln!(md, "## {} workload, {} profile{rtt}\n", s.workload, s.rtt).unwrap();
    writeln!(
        md,
        "Figures: [goodput PNG](goodput-{stem}.png), [goodput SVG](goodput-{stem}.svg), \
         [jitter PNG](jitter-{stem}.png), [jitter SVG](jitter-{stem}.svg)\n\n\
         ![goodput {stem}](goodput-{stem}.png)\n"
    )
    .unwrap();

    writeln!(md, "### Goodput, Gbit/s\n").unwrap();
    let mut t = Table::new(std::iter::once("size").chain(s.methods.iter().copied()));
    for &z in &s.sizes {
        let cells = s.methods.iter().map(|m| goodput_cell(s.get(m, z)));
        t.row(std::iter::once(size_label(z)).chain(cells));
    }
    md.push_str(&t.markdown());

    let others: Vec<&str> = s
        .methods
        .iter()
        .copied()
        .filter(|m| *m != "direct")
        .collect();
    writeln!(
        md,
        "\n### Ratios: ÷ direct / ÷ best peer (best of {} measured at that size)\n",
        PEERS.join(", ")
    )
    .unwrap();
    let mut t = Table::new(
        ["size", "best peer"]
            .into_iter()
            .chain(others.iter().copied()),
    );
    for &z in &s.sizes {
        let peer = s.best_peer(z).map(|p| p.0).unwrap_or(NONE);
        let cells = others.iter().map(|m| {
            let r = s.ratios(m, z);
            format!("{} / {}", num(r.to_direct, 2), num(r.to_best_peer, 2))
        });
        t.row([size_label(z), peer.to_owned()].into_iter().chain(cells));
    }
    md.push_str(&t.markdown());

    writeln!(
        md,
        "\n### Jitter, µs\n\nOver the sample sizes, of each size's median jitter (sample stdev of \
         the arrival gaps, as in the paper's §6). Box plot ([PNG](jitter-{stem}.png)): {JITTER_BOX}.\n"
    )
    .unwrap();
    let mut t = Table::new(["method", "mean", "median", "min", "max", "sizes"]);
    for m in &s.methods {
        let v = s.jitter_over_sizes(m);
        let mut sorted = v.clone();
        let mean = (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        t.row([
            m.to_string(),
            num(mean, 0),
            num(super::model::median(&mut sorted), 0),
            num(sorted.first().copied(), 0),
            num(sorted.last().copied(), 0),
            v.len().to_string(),
        ]);
    }
    md.push_str(&t.markdown());
    if let Some(j) = paper::jitter(s.rtt) {
        writeln!(
            md,
            "\nPaper §5.6 (single run, mean / median over 12 sizes, µs): direct {:.0} / {:.0}, \
             legacy S2DS {:.0} / {:.0}, sockmap {:.0} / {:.0}.",
            j[0].0, j[0].1, j[1].0, j[1].1, j[2].0, j[2].1
        )
        .unwrap();
    }

    if let Some(&largest) = s.sizes.last() {
        writeln!(
            md,
            "\n### Cost at the largest size ({})\n\nCPU seconds per GB of payload; gateway RSS is \
             the largest resident set of the gateway processes; machine memory is the largest drop \
             of MemAvailable, which also counts kernel socket queues and the apps' own queues (the \
             paper's ZeroMQ publisher has no high-water mark).\n",
            size_label(largest)
        )
        .unwrap();
        let mut t = Table::new([
            "method",
            "gateway CPU-s/GB (GN1 + GN2)",
            "machine CPU-s/GB",
            "gateway RSS MiB",
            "machine memory MiB",
        ]);
        for m in &s.methods {
            let a = s.get(m, largest);
            let pick = |f: fn(&Aggregate) -> Option<Stat>| a.and_then(|a| median(f(a)));
            t.row([
                m.to_string(),
                match (pick(|a| a.gn1_cpu_s_per_gb), pick(|a| a.gn2_cpu_s_per_gb)) {
                    (Some(g1), Some(g2)) => format!("{:.2} ({g1:.2} + {g2:.2})", g1 + g2),
                    _ => num(pick(|a| a.gateway_cpu_s_per_gb), 2),
                },
                num(pick(|a| a.machine_cpu_s_per_gb), 2),
                num(pick(|a| a.gateway_rss_mib), 0),
                num(pick(|a| a.peak_mem_mib), 0),
            ]);
        }
        md.push_str(&t.markdown());
    }

    if s.workload == "tcp" {
        writeln!(md, "\n### One-way latency p50 / p99, µs\n").unwrap();
        let mut t = Table::new(std::iter::once("size").chain(s.methods.iter().copied()));
        for &z in &s.sizes {
            let cells = s.methods.iter().map(|m| {
                let a = s.get(m, z);
                format!(
                    "{} / {}",
                    num(a.and_then(|a| median(a.latency_p50_us)), 0),
                    num(a.and_then(|a| median(a.latency_p99_us)), 0)
                )
            });
            t.row(std::iter::once(size_label(z)).chain(cells));
        }
        md.push_str(&t.markdown());
    }
    md.push('\n');
}

fn failures(md: &mut String, slices: &[Slice<'_>]) {
    writeln!(md, "## Failed runs\n").unwrap();
    let mut t = Table::new(["workload", "rtt", "method", "size", "rep", "error"]);
    for s in slices {
        for m in &s.methods {
            for &z in &s.sizes {
                for (rep, error) in s.get(m, z).map(|a| a.failures.as_slice()).unwrap_or(&[]) {
                    t.row([
                        s.workload.to_owned(),
                        s.rtt.to_owned(),
                        m.to_string(),
                        size_label(z),
                        rep.to_string(),
                        error.clone(),
                    ]);
                }
            }
        }
    }
    if t.is_empty() {
        writeln!(md, "None.\n").unwrap();
    } else {
        md.push_str(&t.markdown());
        md.push('\n');
    }
}

fn quic_section(md: &mut String, quic: Option<&QuicSummary<'_>>) {
    writeln!(md, "## QUIC\n").unwrap();
    let Some(q) = quic else {
        writeln!(
            md,
            "No method named quic* in this run, so quic-goodput.png / .svg were not drawn.\n"
        )
        .unwrap();
        return;
    };
    writeln!(
        md,
        "{} workload; mean ± std over sample sizes of the per-size median goodput, Gbit/s, like \
         the paper's QUIC figure. Figures: [PNG](quic-goodput.png), [SVG](quic-goodput.svg)\n\n\
         ![QUIC goodput](quic-goodput.png)\n",
        q.workload
    )
    .unwrap();
    let mut t = Table::new(
        std::iter::once("profile")
            .chain(q.methods.iter().copied())
            .chain(["paper QUIC direct", "paper QUIC proxy"]),
    );
    for rtt in &q.rtts {
        let ours = q.methods.iter().map(|m| match q.values.get(&(*rtt, *m)) {
            Some(v) => format!("{:.3} ± {:.3} (n {})", v.mean, v.std, v.n),
            None => NONE.into(),
        });
        let (pd, pp) = match paper::quic(rtt) {
            Some(p) => {
                let filler = p.proxy.iter().any(|x| !x.measured);
                (
                    format!("{:.3} ± {:.3}", p.direct_mean_std.0, p.direct_mean_std.1),
                    format!(
                        "{:.3} ± {:.3}{}",
                        p.proxy_mean_std.0,
                        p.proxy_mean_std.1,
                        if filler { " (†)" } else { "" }
                    ),
                )
            }
            None => (NONE.into(), NONE.into()),
        };
        t.row(std::iter::once(rtt.to_string()).chain(ours).chain([pd, pp]));
    }
    md.push_str(&t.markdown());
    let setups: Vec<&paper::QuicSetup> = q.rtts.iter().filter_map(|r| paper::quic(r)).collect();
    if !setups.is_empty() {
        writeln!(md, "\nPaper §5.5 per size, QUIC direct / proxy, Gbit/s:\n").unwrap();
        let mut t = Table::new(std::iter::once("size").chain(setups.iter().map(|s| s.profile)));
        for (i, &z) in paper::SIZES.iter().enumerate() {
            let cells = setups.iter().map(|s| {
                let p = s.proxy[i];
                let mark = if p.measured { "" } else { " (†)" };
                format!("{:.3} / {:.3}{mark}", s.direct[i], p.gbps)
            });
            t.row(std::iter::once(size_label(z)).chain(cells));
        }
        md.push_str(&t.markdown());
    }
    writeln!(
        md,
        "\n† Only 512 B of the paper's Long-WAN QUIC proxy was measured; its other eleven values \
         (and so this mean) are filler without a source run (reference §5.5).\n"
    )
    .unwrap();
}

fn paper_section(md: &mut String, slices: &[Slice<'_>]) {
    writeln!(md, "## {PAPER_HEADING}\n").unwrap();
    writeln!(
        md,
        "The paper's §5.4 pub/sub goodput (ZeroMQ/Python, one run per point; the application is \
         the bottleneck there), Gbit/s, with its efficiency where below 100 %, beside ours for the \
         same WAN profile and sizes. Our \"best engine\" is the fastest SciStream-RS engine \
         (not direct, a peer proxy or QUIC) at that size.\n"
    )
    .unwrap();
    // One comparison per rtt: the zmq workload (the paper's) when present, else the first.
    let mut shown = Vec::new();
    for s in slices {
        if shown.contains(&s.rtt) {
            continue;
        }
        let s = slices
            .iter()
            .find(|t| t.rtt == s.rtt && t.workload == "zmq")
            .unwrap_or(s);
        shown.push(s.rtt);
        let Some(setup) = paper::setup(s.rtt) else {
            writeln!(md, "- `{}`: no corresponding setup in the paper.\n", s.rtt).unwrap();
            continue;
        };
        writeln!(
            md,
            "### {} (gateway RTT {:.1} ms) ↔ our `{}` ({} workload)\n",
            setup.name, setup.wan_rtt_ms, s.rtt, s.workload
        )
        .unwrap();
        let has_sockmap = s.methods.contains(&"sockmap");
        let mut header = vec![
            "size",
            "paper direct",
            "paper legacy",
            "paper sockmap",
            "paper legacy ÷ direct",
            "paper sockmap ÷ direct",
            "our direct",
            "our best engine",
            "our best ÷ direct",
        ];
        if has_sockmap {
            header.push("our sockmap ÷ direct");
        }
        let mut t = Table::new(header);
        let point = |p: paper::Point| {
            if p.efficiency_pct < 100.0 {
                format!("{:.3} ({:.2} %)", p.gbps, p.efficiency_pct)
            } else {
                format!("{:.3}", p.gbps)
            }
        };
        for (i, &z) in paper::SIZES.iter().enumerate() {
            let (d, l, k) = (setup.direct[i], setup.legacy[i], setup.sockmap[i]);
            let ours_direct = s.goodput("direct", z);
            let best = s
                .methods
                .iter()
                .filter(|m| is_engine(m))
                .filter_map(|m| Some((*m, s.goodput(m, z)?)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let mut row = vec![
                size_label(z),
                point(d),
                point(l),
                point(k),
                format!("{:.2}", l.gbps / d.gbps),
                format!("{:.2}", k.gbps / d.gbps),
                num(ours_direct, 3),
                best.map(|(m, g)| format!("{g:.3} ({m})"))
                    .unwrap_or_else(|| NONE.into()),
                num(ratio(best.map(|b| b.1), ours_direct), 2),
            ];
            if has_sockmap {
                row.push(num(ratio(s.goodput("sockmap", z), ours_direct), 2));
            }
            t.row(row);
        }
        md.push_str(&t.markdown());
        md.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{Cell, Machine, Plan, SCHEMA, aggregate, slices};

    fn tcp_cell(method: &str, size: u64, p50: f64) -> Cell {
        Cell {
            workload: "tcp".into(),
            rtt: "none".into(),
            method: method.into(),
            size,
            ok: true,
            goodput_gbps: Some(1.0),
            latency_p50_us: Some(p50),
            latency_p99_us: Some(p50 * 3.0),
            ..Cell::default()
        }
    }

    #[test]
    fn tcp_workload_gets_a_latency_table_and_none_no_paper_setup() {
        let m = Matrix {
            schema: SCHEMA,
            machine: Machine::default(),
            plan: Plan::default(),
            started: "t0".into(),
            finished: None,
            cells: vec![
                tcp_cell("direct", 512, 20.0),
                tcp_cell("copy", 512, 35.0),
                tcp_cell("copy", 4096, 41.0),
            ],
        };
        let aggs = aggregate(&m.cells);
        let s = slices(&aggs, &m.plan);
        let md = render(&m, &s, None);
        assert!(md.contains("### One-way latency p50 / p99, µs"), "{md}");
        assert!(md.contains("| 512B | 20 / 60 | 35 / 105 |"), "{md}");
        assert!(md.contains("| 4K | – / – | 41 / 123 |"), "{md}");
        assert!(
            md.contains("- `none`: no corresponding setup in the paper."),
            "{md}"
        );
        assert!(md.contains("No method named quic*"), "{md}");
        assert!(md.contains("## Failed runs\n\nNone."), "{md}");
    }
}
