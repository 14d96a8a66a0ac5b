//! The report's figures, each drawn once as PNG and once as SVG with `plotters`:
//! goodput over sample size per method (the paper's Fig. 6–8), jitter box plots per method
//! (Fig. 9) and QUIC mean ± std per WAN profile (the paper's QUIC figure).
//!
//! Text is laid out with `ab_glyph` over DejaVu Sans loaded at run time (no fontconfig or
//! freetype linking); both backends need it, since the chart measures its labels.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::model::{QuicSummary, Slice, Stat, size_label};

/// Where Debian's `fonts-dejavu-core` puts the font.
pub(crate) const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (1000, 640);

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum PlotError {
    #[error(
        "cannot read the plot font {path}: {reason}; install it with \
         `apt-get install fonts-dejavu-core` (or `cargo xtask setup`)"
    )]
    FontMissing { path: PathBuf, reason: String },
    #[error("{path} is not a TrueType font plotters can use; reinstall fonts-dejavu-core")]
    FontInvalid { path: PathBuf },
    #[error("cannot draw {path}: {message}")]
    Draw { path: PathBuf, message: String },
}

/// Registers DejaVu Sans with plotters, once per process.
pub(crate) fn load_font() -> Result<(), PlotError> {
    static LOADED: OnceLock<Result<(), PlotError>> = OnceLock::new();
    LOADED
        .get_or_init(|| register(Path::new(FONT_PATH)))
        .clone()
}

/// Reads a TrueType font and registers it as plotters' sans-serif.
fn register(path: &Path) -> Result<(), PlotError> {
    let bytes = std::fs::read(path).map_err(|e| PlotError::FontMissing {
        path: path.into(),
        reason: e.to_string(),
    })?;
    // plotters keeps fonts for the process lifetime; leaking the one copy is that.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| PlotError::FontInvalid { path: path.into() })
}

/// The same colour for a method in every figure: fixed for the known methods, a stable hash
/// into a palette for the others (quic-* and future ones).
pub(crate) fn method_color(method: &str) -> RGBColor {
    const KNOWN: [(&str, RGBColor); 11] = [
        ("direct", RGBColor(0, 0, 0)),
        ("copy", RGBColor(31, 119, 180)),
        ("copy-tls", RGBColor(23, 190, 207)),
        ("splice", RGBColor(44, 160, 44)),
        ("sockmap", RGBColor(255, 127, 14)),
        ("dpdk", RGBColor(214, 39, 40)),
        ("haproxy", RGBColor(148, 103, 189)),
        ("nginx", RGBColor(140, 86, 75)),
        ("socat", RGBColor(127, 127, 127)),
        ("quic-direct", RGBColor(227, 119, 194)),
        ("quic-proxy", RGBColor(188, 189, 34)),
    ];
    const OTHERS: [RGBColor; 6] = [
        RGBColor(57, 59, 121),
        RGBColor(0, 128, 128),
        RGBColor(230, 171, 2),
        RGBColor(102, 166, 30),
        RGBColor(231, 41, 138),
        RGBColor(117, 112, 179),
    ];
    if let Some((_, c)) = KNOWN.iter().find(|(m, _)| *m == method) {
        return *c;
    }
    // FNV-1a: stable across runs and builds, unlike the std hasher.
    let h = method.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    OTHERS[(h % OTHERS.len() as u64) as usize]
}

/// The log2 x axis: one tick per measured size, labelled 512B, 1K, …, 1M.
pub(crate) fn log2_ticks(sizes: &[u64]) -> Vec<(f64, String)> {
    sizes
        .iter()
        .map(|&s| ((s as f64).log2(), size_label(s)))
        .collect()
}

/// Min, lower quartile, median, upper quartile, max (linear interpolation between ranks).
/// None for no values.
pub(crate) fn five_numbers(values: &[f64]) -> Option<[f64; 5]> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = p * (v.len() - 1) as f64;
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
    };
    (!v.is_empty()).then(|| [v[0], at(0.25), at(0.5), at(0.75), v[v.len() - 1]])
}

/// One figure, drawable on any backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws `fig` to DIR/STEM.png and DIR/STEM.svg; returns both paths.
fn render(fig: &impl Figure, dir: &Path, stem: &str) -> Result<[PathBuf; 2], PlotError> {
    load_font()?;
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let draw_err = |path: &Path| {
        let path = path.to_owned();
        move |message| PlotError::Draw { path, message }
    };
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        fig.draw(&root)
            .and_then(|()| root.present().map_err(err))
            .map_err(draw_err(&png))?;
    }
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        fig.draw(&root)
            .and_then(|()| root.present().map_err(err))
            .map_err(draw_err(&svg))?;
    }
    Ok([png, svg])
}

fn title(what: &str, s: &Slice<'_>) -> String {
    let rtt = s
        .rtt_ms
        .map(|ms| format!(", RTT {ms:.2} ms"))
        .unwrap_or_default();
    format!("{what}: {} workload, {} profile{rtt}", s.workload, s.rtt)
}

struct Goodput<'a>(&'a Slice<'a>);

impl Figure for Goodput<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let s = self.0;
        root.fill(&WHITE).map_err(err)?;
        let ticks = log2_ticks(&s.sizes);
        let (x0, x1) = match (ticks.first(), ticks.last()) {
            (Some(a), Some(b)) => (a.0 - 0.5, b.0 + 0.5),
            _ => (9.0, 20.0),
        };
        let series: Vec<(&str, Vec<(f64, Stat)>)> = s
            .methods
            .iter()
            .map(|m| {
                let pts = s
                    .sizes
                    .iter()
                    .filter_map(|&z| Some(((z as f64).log2(), s.get(m, z)?.goodput_gbps?)))
                    .collect();
                (*m, pts)
            })
            .collect();
        let ymax = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|(_, st)| st.max))
            .fold(0.0, f64::max);
        let ymax = if ymax > 0.0 { ymax * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(root)
            .caption(title("Goodput", s), (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..ymax)
            .map_err(err)?;
        // Label only the measured sizes; plotters steps by 1 (one octave) when asked for span + 1.
        let label = |v: &f64| {
            ticks
                .iter()
                .find(|t| (t.0 - v).abs() < 1e-6)
                .map(|t| t.1.clone())
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .x_desc("sample size (log2)")
            .y_desc("goodput (Gbit/s), median; bars: min-max over reps")
            .x_labels((x1 - x0).round() as usize + 1)
            .x_label_formatter(&label)
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (m, pts) in &series {
            let c = method_color(m);
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|(x, st)| (*x, st.median)),
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(*m)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(
                    pts.iter()
                        .map(|(x, st)| Circle::new((*x, st.median), 4, c.filled())),
                )
                .map_err(err)?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|(x, st)| ErrorBar::new_vertical(*x, st.min, st.median, st.max, c, 8)),
                )
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(err)?;
        Ok(())
    }
}

/// Categorical x axis over `n` names: indices as f64, labelled by [`category`] at the integers
/// (asking for span + 1 labels makes plotters step by 1).
fn category_axis(n: usize) -> std::ops::Range<f64> {
    -0.5..n as f64 - 0.5
}

fn category<'a>(names: &'a [&'a str]) -> impl Fn(&f64) -> String + 'a {
    move |v| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 {
            names
                .get(i as usize)
                .map(|s| s.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}

struct Jitter<'a>(&'a Slice<'a>);

/// How the jitter boxes are drawn, for the figure and report.md.
pub(crate) const JITTER_BOX: &str = "box: quartiles of the per-size median jitter across sample \
     sizes, line: median, whiskers: min and max";

impl Figure for Jitter<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let s = self.0;
        root.fill(&WHITE).map_err(err)?;
        let boxes: Vec<(usize, &str, [f64; 5])> = s
            .methods
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, *m, five_numbers(&s.jitter_over_sizes(m))?)))
            .collect();
        let ymax = boxes.iter().map(|b| b.2[4]).fold(0.0, f64::max);
        let ymax = if ymax > 0.0 { ymax * 1.1 } else { 1.0 };
        let mut chart = ChartBuilder::on(root)
            .caption(title("Jitter", s), (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(category_axis(s.methods.len()), 0.0..ymax)
            .map_err(err)?;
        let names = category(&s.methods);
        let names_len = s.methods.len();
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .disable_x_mesh()
            .x_desc(JITTER_BOX)
            .y_desc("jitter (µs): stdev of arrival gaps")
            .x_labels(names_len + 1)
            .x_label_formatter(&names)
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (i, m, [lo, q1, med, q3, hi]) in boxes {
            let c = method_color(m);
            let x = i as f64;
            let (l, r) = (x - 0.3, x + 0.3);
            chart
                .draw_series([
                    Rectangle::new([(l, q1), (r, q3)], c.mix(0.25).filled()),
                    Rectangle::new([(l, q1), (r, q3)], c.stroke_width(2)),
                ])
                .map_err(err)?;
            chart
                .draw_series([
                    PathElement::new(vec![(l, med), (r, med)], c.stroke_width(3)),
                    PathElement::new(vec![(x, q3), (x, hi)], c.stroke_width(1)),
                    PathElement::new(vec![(x, q1), (x, lo)], c.stroke_width(1)),
                    PathElement::new(vec![(x - 0.12, hi), (x + 0.12, hi)], c.stroke_width(1)),
                    PathElement::new(vec![(x - 0.12, lo), (x + 0.12, lo)], c.stroke_width(1)),
                ])
                .map_err(err)?;
        }
        Ok(())
    }
}

struct Quic<'a>(&'a QuicSummary<'a>);

impl Figure for Quic<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let q = self.0;
        root.fill(&WHITE).map_err(err)?;
        let ymax = q
            .values
            .values()
            .map(|v| v.mean + v.std)
            .fold(0.0, f64::max);
        let ymax = if ymax > 0.0 { ymax * 1.2 } else { 1.0 };
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "QUIC goodput: {} workload, mean ± std over sample sizes",
                    q.workload
                ),
                (FONT, 22),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(category_axis(q.rtts.len()), 0.0..ymax)
            .map_err(err)?;
        let names = category(&q.rtts);
        let names_len = q.rtts.len();
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .disable_x_mesh()
            .x_desc("WAN profile")
            .y_desc("goodput (Gbit/s)")
            .x_labels(names_len + 1)
            .x_label_formatter(&names)
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        let width = 0.8 / q.methods.len().max(1) as f64;
        for (j, m) in q.methods.iter().enumerate() {
            let c = method_color(m);
            let bars: Vec<(f64, f64, f64)> = q
                .rtts
                .iter()
                .enumerate()
                .filter_map(|(i, rtt)| {
                    let v = q.values.get(&(*rtt, *m))?;
                    let x = i as f64 - 0.4 + width * (j as f64 + 0.5);
                    Some((x, v.mean, v.std))
                })
                .collect();
            chart
                .draw_series(bars.iter().map(|&(x, mean, _)| {
                    Rectangle::new(
                        [(x - width * 0.45, 0.0), (x + width * 0.45, mean)],
                        c.mix(0.75).filled(),
                    )
                }))
                .map_err(err)?
                .label(*m)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 15, y + 5)], c.mix(0.75).filled())
                });
            chart
                .draw_series(bars.iter().map(|&(x, mean, std)| {
                    ErrorBar::new_vertical(x, (mean - std).max(0.0), mean, mean + std, BLACK, 8)
                }))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(err)?;
        Ok(())
    }
}

/// goodput-WORKLOAD-RTT.{png,svg}.
pub(crate) fn goodput(dir: &Path, s: &Slice<'_>) -> Result<[PathBuf; 2], PlotError> {
    render(
        &Goodput(s),
        dir,
        &format!("goodput-{}-{}", s.workload, s.rtt),
    )
}

/// jitter-WORKLOAD-RTT.{png,svg}.
pub(crate) fn jitter(dir: &Path, s: &Slice<'_>) -> Result<[PathBuf; 2], PlotError> {
    render(&Jitter(s), dir, &format!("jitter-{}-{}", s.workload, s.rtt))
}

/// quic-goodput.{png,svg}.
pub(crate) fn quic(dir: &Path, q: &QuicSummary<'_>) -> Result<[PathBuf; 2], PlotError> {
    render(&Quic(q), dir, "quic-goodput")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_axis_ticks_and_labels() {
        let ticks = log2_ticks(&[512, 1024, 4096, 1 << 20]);
        assert_eq!(
            ticks,
            [
                (9.0, "512B".to_owned()),
                (10.0, "1K".to_owned()),
                (12.0, "4K".to_owned()),
                (20.0, "1M".to_owned())
            ]
        );
        let paper: Vec<String> = log2_ticks(&super::super::paper::SIZES)
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(
            paper,
            [
                "512B", "1K", "2K", "4K", "8K", "16K", "32K", "64K", "128K", "256K", "512K", "1M"
            ]
        );
    }

    #[test]
    fn missing_or_broken_font_names_the_package() {
        let err = register(Path::new("/nonexistent/DejaVuSans.ttf")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/DejaVuSans.ttf")
                && msg.contains("apt-get install fonts-dejavu-core"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.ttf");
        std::fs::write(&bad, b"not a font").unwrap();
        let msg = register(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("bad.ttf") && msg.contains("fonts-dejavu-core"),
            "{msg}"
        );
    }

    #[test]
    fn five_number_summary() {
        assert_eq!(five_numbers(&[]), None);
        assert_eq!(five_numbers(&[3.0]), Some([3.0; 5]));
        assert_eq!(
            five_numbers(&[5.0, 1.0, 4.0, 2.0, 3.0]),
            Some([1.0, 2.0, 3.0, 4.0, 5.0])
        );
        assert_eq!(
            five_numbers(&[1.0, 2.0, 3.0, 4.0]),
            Some([1.0, 1.75, 2.5, 3.25, 4.0])
        );
    }

    #[test]
    fn colours_are_stable_and_distinct_for_known_methods() {
        assert_eq!(method_color("quic-proxy"), method_color("quic-proxy"));
        let known = [
            "direct", "copy", "copy-tls", "splice", "sockmap", "dpdk", "haproxy", "nginx", "socat",
        ];
        let mut colours: Vec<(u8, u8, u8)> = known
            .iter()
            .map(|m| {
                let c = method_color(m);
                (c.0, c.1, c.2)
            })
            .collect();
        colours.sort_unstable();
        colours.dedup();
        assert_eq!(colours.len(), known.len());
    }
}
