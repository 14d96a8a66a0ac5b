//! `s2bench report`: figures (PNG and SVG) and a Markdown summary of one matrix run, laid out
//! like the paper's evaluation (Fig. 6–9, §5.4–§5.6) with the paper's numbers beside ours.
//!
//! [`model`] is the results schema the matrix runner writes and the aggregation over
//! repetitions; [`plot`] and [`markdown`] render it; [`paper`] holds the paper's data.

pub(crate) mod markdown;
pub(crate) mod model;
pub(crate) mod paper;
pub(crate) mod plot;
pub(crate) mod table;

use std::path::Path;

use anyhow::{Context, Result};

/// Reads `input` (matrix.json) and writes the figures and report.md into `out_dir`.
pub(crate) fn run(input: &Path, out_dir: &Path) -> Result<()> {
    let matrix = model::read_json(input)?;
    render(&matrix, out_dir).with_context(|| format!("reporting {}", input.display()))
}

/// Writes the figures and report.md of `matrix` into `out_dir`.
pub(crate) fn render(matrix: &model::Matrix, out_dir: &Path) -> Result<()> {
    let aggs = model::aggregate(&matrix.cells);
    let slices = model::slices(&aggs, &matrix.plan);
    anyhow::ensure!(
        !slices.is_empty(),
        "the results hold no cells; run the matrix first (or point --in at a finished run)"
    );
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create the output directory {}", out_dir.display()))?;
    let mut written = Vec::new();
    for s in &slices {
        written.extend(plot::goodput(out_dir, s)?);
        written.extend(plot::jitter(out_dir, s)?);
    }
    let quic = model::quic_summary(&slices);
    if let Some(q) = &quic {
        written.extend(plot::quic(out_dir, q)?);
    }
    let md = out_dir.join("report.md");
    std::fs::write(&md, markdown::render(matrix, &slices, quic.as_ref()))
        .with_context(|| format!("cannot write {}", md.display()))?;
    written.push(md);
    for path in &written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
