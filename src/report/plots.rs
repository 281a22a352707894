//! Figures, each written as PNG and SVG: per-epoch results of an
//! experiment, accuracy versus Q for all methods of a dataset, and example
//! inputs with their masks.
//!
//! Text is drawn with a bundled DejaVu Sans through plotters' `ab_glyph`
//! feature, so figures render the same on a headless machine without any
//! system font or fontconfig. SVG files name the family `sans-serif` and
//! leave the glyphs to the viewer.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::aggregate::{EpochPoint, EpochSeries, ExperimentSummary};
use crate::error::{Error, Result};
use crate::masks::picture::{REMOVED, shade};
use super::paper::PaperPoint;

type DrawResult = std::result::Result<(), Box<dyn StdError>>;

const FONT: &str = "sans-serif";
/// DejaVu Sans 2.37 (Bitstream Vera / Arev licence: `assets/fonts/LICENSE-DejaVu.txt`).
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the bundled font as plotters' `sans-serif` (once per process).
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Cannot fail for the bundled file; a failure would show up as
        // missing text, which the tests check.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS);
    });
}

// Tableau 10: distinguishable, and the usual matplotlib defaults.
const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const RED: RGBColor = RGBColor(214, 39, 40);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const BROWN: RGBColor = RGBColor(140, 86, 75);
const PINK: RGBColor = RGBColor(227, 119, 194);
const GRAY: RGBColor = RGBColor(127, 127, 127);
const OLIVE: RGBColor = RGBColor(188, 189, 34);
const CYAN: RGBColor = RGBColor(23, 190, 207);
const EXTRA: [RGBColor; 5] = [BROWN, PINK, CYAN, GRAY, OLIVE];

/// The colour of a method, shared by our line and the paper's markers.
fn method_color(method: &str) -> RGBColor {
    match method {
        m if m.starts_with("static") => BLUE,
        m if m.starts_with("dynamic") => ORANGE,
        m if m.starts_with("random") => GREEN,
        m if m.starts_with("given") => RED,
        m if m.starts_with("pipeline") => PURPLE,
        "full" => BLACK,
        "cae" => GRAY,
        _ => BROWN,
    }
}

/// A figure that can be drawn on any plotters backend.
trait Figure {
    /// Size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws everything onto `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// Writes `figure` to `<stem>.png` and `<stem>.svg`; returns both paths.
fn save(figure: &impl Figure, stem: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    // Appended, not `with_extension`: names may hold dots ("lr0.005").
    let with = |ext: &str| {
        let mut name = stem.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    let (png, svg) = (with(".png"), with(".svg"));
    {
        let root = BitMapBackend::new(&png, figure.size()).into_drawing_area();
        figure.draw(&root).map_err(|e| Error::plot(&png, e))?;
        root.present().map_err(|e| Error::plot(&png, e))?;
    }
    {
        let root = SVGBackend::new(&svg, figure.size()).into_drawing_area();
        figure.draw(&root).map_err(|e| Error::plot(&svg, e))?;
        root.present().map_err(|e| Error::plot(&svg, e))?;
    }
    Ok(vec![png, svg])
}

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy)]
enum Swatch {
    /// A line of a colour and width.
    Line(RGBAColor, u32),
    /// A dashed line.
    Dashed(RGBAColor, u32),
    /// A line with a filled circle.
    LineMarker(RGBColor),
    /// The paper's hollow diamond.
    Hollow(RGBColor),
    /// A vertical error bar.
    ErrorBar,
}

/// Draws a legend as rows of swatch + text from the top of `area`.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(Swatch, String)]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let text = TextStyle::from((FONT, 20).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (swatch, label)) in entries.iter().enumerate() {
        let y = 30 + 34 * i as i32;
        let (x0, x1) = (12, 52);
        match *swatch {
            Swatch::Line(c, w) => area.draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(w)))?,
            Swatch::Dashed(c, w) => {
                for x in (x0..x1).step_by(10) {
                    area.draw(&PathElement::new(vec![(x, y), ((x + 6).min(x1), y)], c.stroke_width(w)))?;
                }
            }
            Swatch::LineMarker(c) => {
                area.draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(2)))?;
                area.draw(&Circle::new(((x0 + x1) / 2, y), 5, c.filled()))?;
            }
            Swatch::Hollow(c) => area.draw(&(EmptyElement::at(((x0 + x1) / 2, y)) + diamond(c)))?,
            Swatch::ErrorBar => {
                let s = BLACK.stroke_width(2);
                let xm = (x0 + x1) / 2;
                area.draw(&PathElement::new(vec![(xm, y - 11), (xm, y + 11)], s))?;
                area.draw(&PathElement::new(vec![(xm - 6, y - 11), (xm + 6, y - 11)], s))?;
                area.draw(&PathElement::new(vec![(xm - 6, y + 11), (xm + 6, y + 11)], s))?;
            }
        }
        area.draw(&Text::new(label.clone(), (x1 + 10, y), text.clone()))?;
    }
    Ok(())
}

/// A hollow diamond (the paper's reference points) in pixel offsets, to be
/// placed with `EmptyElement::at(center) + diamond(color)`.
fn diamond(color: RGBColor) -> PathElement<(i32, i32)> {
    let r = 9;
    PathElement::new(vec![(0, -r), (r, 0), (0, r), (-r, 0), (0, -r)], color.stroke_width(3))
}

/// Rounds a range outwards to multiples of `step`, inside `[lo_min, hi_max]`.
fn padded_range(values: impl IntoIterator<Item = f64>, step: f64, lo_min: f64, hi_max: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (lo_min, hi_max);
    }
    let mut lo = ((lo - step * 0.2) / step).floor() * step;
    let mut hi = ((hi + step * 0.2) / step).ceil() * step;
    lo = lo.max(lo_min);
    hi = hi.min(hi_max);
    if hi - lo < step {
        (lo, hi) = ((hi - step).max(lo_min), (lo + step).min(hi_max));
    }
    (lo, hi)
}

/// The x range of epochs (padded when there is a single epoch).
fn epoch_range(series: &EpochSeries) -> (f64, f64) {
    let epochs = series.mean.iter().map(|p| p.epoch as f64);
    let lo = epochs.clone().fold(f64::INFINITY, f64::min);
    let hi = epochs.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi - lo < 1.0 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

/// A tick label that drops trailing zeros: 0.5, 0.85, 1.
fn tick(v: &f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// Ticks for a log axis covering `[lo, hi]`: the 1-2-5 sequence when that
/// gives a few labels, else whole decades (every other one over 8 decades),
/// and the range widened to hold at least two ticks. Returns the range,
/// labelled ticks and unlabelled grid lines (1..9 × 10^k).
fn log_ticks(lo: f64, hi: f64) -> ((f64, f64), Vec<f64>, Vec<f64>) {
    let (mut lo, mut hi) = (lo / 1.25, hi * 1.25);
    let seq = |lo: f64, hi: f64, mantissas: &[u32], step: i32| -> Vec<f64> {
        let (k0, k1) = (lo.log10().floor() as i32 - 1, hi.log10().ceil() as i32 + 1);
        let mut out = Vec::new();
        for k in (k0..=k1).filter(|k| (k - k0) % step == 0) {
            for &m in mantissas {
                let v = m as f64 * 10f64.powi(k);
                if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                    out.push(v);
                }
            }
        }
        out
    };
    let mut bold = seq(lo, hi, &[1, 2, 5], 1);
    if bold.len() < 2 {
        // Widen to the neighbouring 1-2-5 values.
        let all = seq(lo / 10.0, hi * 10.0, &[1, 2, 5], 1);
        lo = all.iter().copied().filter(|v| *v <= lo).fold(lo, |_, v| v);
        hi = all.iter().copied().find(|v| *v >= hi).unwrap_or(hi);
        bold = seq(lo, hi, &[1, 2, 5], 1);
    }
    if bold.len() > 8 {
        bold = seq(lo, hi, &[1], 1);
    }
    if bold.len() > 8 {
        bold = seq(lo, hi, &[1], 2);
    }
    let light = seq(lo, hi, &[1, 2, 3, 4, 5, 6, 7, 8, 9], 1);
    ((lo, hi), bold, light)
}

/// A 1-2-5 tick value as written by hand: 0.0005, 2, 100, 5e-6, 2e5.
fn log_tick(v: &f64) -> String {
    let k = (v.log10() + 1e-9).floor() as i32;
    let m = (v / 10f64.powi(k)).round() as u64;
    match k {
        0.. if k < 5 => format!("{}", m * 10u64.pow(k as u32)),
        -4..0 => format!("0.{}{m}", "0".repeat((-k - 1) as usize)),
        _ => format!("{m}e{k}"),
    }
}

/// An epoch tick: whole numbers only (fractional ticks stay unlabelled).
fn epoch_tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-6 { format!("{}", v.round() as i64) } else { String::new() }
}

/// Accuracy, Q and λ over epochs: thin translucent lines per repeat, thick
/// mean (the layout of the paper's "static results" figure).
struct EpochFigure<'a> {
    title: String,
    series: &'a EpochSeries,
}

impl Figure for EpochFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (1400, 1300)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let body = root.titled(&self.title, (FONT, 30))?;
        let (plots, legend) = body.split_horizontally(1090);
        let panels = plots.split_evenly((3, 1));
        let (x0, x1) = epoch_range(self.series);
        let runs = &self.series.per_run;
        let mean = &self.series.mean;
        let thin = |c: RGBColor| c.mix(0.3).stroke_width(1);
        let thick = |c: RGBColor| c.stroke_width(3);
        let has_val = mean.iter().any(|p| p.val_accuracy.is_some());

        // Accuracy.
        let accs = runs.iter().flat_map(|(_, ps)| ps.iter().flat_map(|p| [Some(p.test_accuracy), p.val_accuracy]).flatten());
        let (lo, hi) = padded_range(accs, 0.05, 0.0, 1.0);
        let mut chart =
            ChartBuilder::on(&panels[0]).margin(12).x_label_area_size(40).y_label_area_size(90).build_cartesian_2d(x0..x1, lo..hi)?;
        epoch_mesh(&mut chart, "accuracy")?;
        let line = |ps: &[EpochPoint], f: fn(&EpochPoint) -> Option<f64>| -> Vec<(f64, f64)> {
            ps.iter().filter_map(|p| f(p).map(|v| (p.epoch as f64, v))).collect()
        };
        for (_, ps) in runs {
            if has_val {
                chart.draw_series(LineSeries::new(line(ps, |p| p.val_accuracy), thin(BLUE)))?;
            }
            chart.draw_series(LineSeries::new(line(ps, |p| Some(p.test_accuracy)), thin(ORANGE)))?;
        }
        if has_val {
            chart.draw_series(LineSeries::new(line(mean, |p| p.val_accuracy), thick(BLUE)))?;
        }
        chart.draw_series(LineSeries::new(line(mean, |p| Some(p.test_accuracy)), thick(ORANGE)))?;

        // Q (and the bytes fraction where it differs, i.e. uneven cells).
        let mut chart =
            ChartBuilder::on(&panels[1]).margin(12).x_label_area_size(40).y_label_area_size(90).build_cartesian_2d(x0..x1, 0.0..1.05)?;
        epoch_mesh(&mut chart, "Q (fraction sent)")?;
        for (_, ps) in runs {
            chart.draw_series(LineSeries::new(line(ps, |p| Some(p.q)), thin(GREEN)))?;
        }
        chart.draw_series(LineSeries::new(line(mean, |p| Some(p.q)), thick(GREEN)))?;
        let bytes_differ = mean.iter().any(|p| (p.bytes_fraction - p.q).abs() > 1e-6);
        if bytes_differ {
            chart.draw_series(DashedLineSeries::new(line(mean, |p| Some(p.bytes_fraction)), 10, 6, thick(BROWN)))?;
        }

        // λ on a log axis, whole decades so that labelled ticks exist.
        let positive: Vec<f64> = runs.iter().flat_map(|(_, ps)| ps.iter().map(|p| p.lambda)).filter(|l| *l > 0.0).collect();
        if positive.is_empty() {
            let mut chart =
                ChartBuilder::on(&panels[2]).margin(12).x_label_area_size(60).y_label_area_size(90).build_cartesian_2d(x0..x1, 0.0..1.0)?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(0)
                .x_label_formatter(&epoch_tick)
                .x_desc("epoch")
                .y_desc("λ")
                .label_style((FONT, 18))
                .axis_desc_style((FONT, 22))
                .draw()?;
            chart.draw_series(std::iter::once(Text::new(
                "λ is 0 in every epoch (not used by this method)",
                ((x0 + x1) / 2.0, 0.5),
                TextStyle::from((FONT, 22).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
            )))?;
        } else {
            let lmin = positive.iter().copied().fold(f64::INFINITY, f64::min);
            let lmax = positive.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let ((lo, hi), bold, light) = log_ticks(lmin, lmax);
            let mut chart = ChartBuilder::on(&panels[2])
                .margin(12)
                .x_label_area_size(60)
                .y_label_area_size(90)
                .build_cartesian_2d(x0..x1, (lo..hi).log_scale().with_key_points(bold).with_light_points(light))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc("λ (log scale)")
                .y_label_formatter(&log_tick)
                .x_label_formatter(&epoch_tick)
                .label_style((FONT, 18))
                .axis_desc_style((FONT, 22))
                .bold_line_style(BLACK.mix(0.12))
                .light_line_style(BLACK.mix(0.04))
                .draw()?;
            let pos = |ps: &[EpochPoint]| -> Vec<(f64, f64)> {
                ps.iter().filter(|p| p.lambda > 0.0).map(|p| (p.epoch as f64, p.lambda)).collect()
            };
            for (_, ps) in runs {
                chart.draw_series(LineSeries::new(pos(ps), thin(PURPLE)))?;
            }
            chart.draw_series(LineSeries::new(pos(mean), thick(PURPLE)))?;
        }

        let mut entries = Vec::new();
        if has_val {
            entries.push((Swatch::Line(BLUE.to_rgba(), 3), "validation accuracy".to_string()));
        }
        entries.push((Swatch::Line(ORANGE.to_rgba(), 3), "test accuracy".into()));
        entries.push((Swatch::Line(GREEN.to_rgba(), 3), "Q".into()));
        if bytes_differ {
            entries.push((Swatch::Dashed(BROWN.to_rgba(), 3), "bytes fraction (mean)".into()));
        }
        if !positive.is_empty() {
            entries.push((Swatch::Line(PURPLE.to_rgba(), 3), "λ".into()));
        }
        if runs.len() > 1 {
            entries.push((Swatch::Line(BLACK.to_rgba(), 3), format!("thick: mean of {} runs", runs.len())));
            entries.push((Swatch::Line(BLACK.mix(0.3), 1), "thin: one run each".into()));
            if !positive.is_empty() {
                entries.push((Swatch::Line(WHITE.to_rgba(), 1), "(λ: geometric mean)".into()));
            }
        }
        draw_legend(&legend.margin(20, 0, 0, 0), &entries)?;
        Ok(())
    }
}

/// Axis styling of the linear epoch panels (the x description is left to
/// the bottom panel).
fn epoch_mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>,
    y_desc: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    chart
        .configure_mesh()
        .y_desc(y_desc)
        .x_label_formatter(&epoch_tick)
        .y_label_formatter(&|v| tick(v))
        .label_style((FONT, 18))
        .axis_desc_style((FONT, 22))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()?;
    Ok(())
}

/// Writes the per-epoch figure of `experiment` to `<stem>.png` / `.svg`.
pub fn epoch_figure(experiment: &ExperimentSummary, stem: &Path) -> Result<Vec<PathBuf>> {
    let title = format!(
        "{} · {}: accuracy, Q and λ per epoch ({} run{})",
        experiment.id.dataset,
        experiment.label,
        experiment.n_runs,
        if experiment.n_runs == 1 { "" } else { "s" }
    );
    save(&EpochFigure { title, series: &experiment.series }, stem)
}

/// One method's curve in the comparison figure.
#[derive(Debug, Clone)]
struct Line {
    label: String,
    color: RGBColor,
    /// `(mean Q, mean test accuracy, std of test accuracy)`, by Q.
    points: Vec<(f64, f64, f64)>,
}

/// Test accuracy versus Q for every method of a dataset, with the paper's
/// numbers: all Q on the left, the low-Q end enlarged on the right.
struct ComparisonFigure {
    title: String,
    lines: Vec<Line>,
    paper: Vec<PaperPoint>,
    zoom: f64,
}

impl ComparisonFigure {
    fn panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, caption: &str, xmax: f64) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let inside = |q: f64| q <= xmax + 1e-9;
        let ys = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().filter(|p| inside(p.0)).flat_map(|&(_, m, s)| [m - s, m + s]))
            .chain(self.paper.iter().filter(|p| inside(p.q)).map(|p| p.accuracy));
        let (lo, hi) = padded_range(ys, 0.05, 0.0, 1.0);
        // A little room right of the last interval so markers at Q = 1 (or
        // at the zoom limit) are not cut in half by the frame.
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .caption(caption, (FONT, 24))
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..xmax * 1.03, lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("Q (fraction of the input sent)")
            .y_desc("test accuracy")
            .x_label_formatter(&|v| tick(v))
            .y_label_formatter(&|v| tick(v))
            .label_style((FONT, 18))
            .axis_desc_style((FONT, 22))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .draw()?;
        for line in &self.lines {
            let pts: Vec<(f64, f64, f64)> = line.points.iter().copied().filter(|p| inside(p.0)).collect();
            let style = line.color.stroke_width(2);
            chart.draw_series(LineSeries::new(pts.iter().map(|&(q, m, _)| (q, m)), style))?;
            for &(q, m, s) in pts.iter().filter(|p| p.2 > 0.0) {
                chart.draw_series(std::iter::once(PathElement::new(vec![(q, m - s), (q, m + s)], style)))?;
                for y in [m - s, m + s] {
                    chart.draw_series(std::iter::once(EmptyElement::at((q, y)) + PathElement::new(vec![(-5, 0), (5, 0)], style)))?;
                }
            }
            chart.draw_series(pts.iter().map(|&(q, m, _)| Circle::new((q, m), 5, line.color.filled())))?;
        }
        chart.draw_series(
            self.paper.iter().filter(|p| inside(p.q)).map(|p| EmptyElement::at((p.q, p.accuracy)) + diamond(method_color(p.method))),
        )?;
        Ok(())
    }
}

impl Figure for ComparisonFigure {
    fn size(&self) -> (u32, u32) {
        (1800, 780)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let body = root.titled(&self.title, (FONT, 30))?;
        let (plots, legend) = body.split_horizontally(1420);
        let panels = plots.split_evenly((1, 2));
        self.panel(&panels[0], "all Q", 1.0)?;
        self.panel(&panels[1], &format!("zoom: Q ≤ {}", tick(&self.zoom)), self.zoom)?;
        let mut entries: Vec<(Swatch, String)> = self.lines.iter().map(|l| (Swatch::LineMarker(l.color), l.label.clone())).collect();
        entries.push((Swatch::ErrorBar, "± 1 std over runs".into()));
        for p in &self.paper {
            entries.push((Swatch::Hollow(method_color(p.method)), format!("paper: {} ({})", p.label, tick(&p.accuracy))));
        }
        draw_legend(&legend.margin(40, 0, 0, 0), &entries)?;
        Ok(())
    }
}

/// Writes the accuracy-versus-Q comparison of a dataset's experiments,
/// with `paper`'s reference points, to `<stem>.png` / `.svg`. Our points
/// sit at the mean Q of each interval's checkpoints.
pub fn comparison_figure(
    dataset: &str,
    experiments: &[ExperimentSummary],
    paper: &[PaperPoint],
    zoom_q: f64,
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let mut used: Vec<&str> = Vec::new();
    let mut extra = EXTRA.iter().cycle();
    let lines = experiments
        .iter()
        .map(|e| {
            // The first experiment of a mask type has the method's colour
            // (shared with the paper's markers); further ones get others.
            let color = if used.contains(&e.method.as_str()) { *extra.next().expect("cycle") } else { method_color(&e.method) };
            used.push(&e.method);
            let mut points: Vec<(f64, f64, f64)> = e.curve.iter().map(|r| (r.q, r.test_accuracy.0, r.test_accuracy.1)).collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Line { label: format!("{} ({} run{})", e.label, e.n_runs, if e.n_runs == 1 { "" } else { "s" }), color, points }
        })
        .collect();
    let title = format!("{dataset}: test accuracy versus Q (mean over runs; checkpoints selected per Q interval)");
    save(&ComparisonFigure { title, lines, paper: paper.to_vec(), zoom: zoom_q }, stem)
}

/// One example for [`mask_figure`].
#[derive(Debug, Clone, Copy)]
pub struct MaskExample<'a> {
    /// The normalised input, `[C, H, W]` row-major.
    pub image: &'a [f32],
    /// The hard mask upsampled to the input, `[C, H, W]`: 1 sent, 0 removed.
    pub mask: &'a [f32],
    /// A short caption ("label 7, predicted 7"), if any.
    pub caption: Option<&'a str>,
}

/// Inputs of [`mask_figure`].
#[derive(Debug, Clone, Copy)]
pub struct MaskFigure<'a> {
    /// Title; Q is appended.
    pub title: &'a str,
    /// Q of the mask (cells sent, as training reports it).
    pub q: f64,
    /// `[C, H, W]` of every example.
    pub shape: [usize; 3],
    /// Per-channel mean used to normalise (one value: all channels).
    pub mean: &'a [f32],
    /// Per-channel standard deviation used to normalise.
    pub std: &'a [f32],
    /// The examples, drawn row by row.
    pub examples: &'a [MaskExample<'a>],
    /// Examples per row (0: as many as fit 1600 pixels, at most 8).
    pub columns: usize,
}

/// One example as RGB bytes of `tile_h × tile_w`: the de-normalised input,
/// removed values darkened and tinted red in proportion to the channels
/// removed at that pixel. One channel is shown grey, three as RGB, any
/// other count as the grey mean of the channels.
fn render_tile(fig: &MaskFigure, ex: &MaskExample, tile: (usize, usize)) -> Vec<u8> {
    let [c, h, w] = fig.shape;
    let ch_stat = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let mut rgb = vec![[0f32; 3]; h * w];
    for (px, out) in rgb.iter_mut().enumerate() {
        let value = |ci: usize| (ex.image[ci * h * w + px] * ch_stat(fig.std, ci) + ch_stat(fig.mean, ci)).clamp(0.0, 1.0);
        let pixel = if c == 3 {
            [value(0), value(1), value(2)]
        } else {
            let g = (0..c).map(value).sum::<f32>() / c as f32;
            [g; 3]
        };
        let kept = (0..c).filter(|&ci| ex.mask[ci * h * w + px] > 0.5).count() as f32 / c as f32;
        *out = shade(pixel, kept);
    }
    // Box resampling: nearest when enlarging, an average when shrinking.
    let (th, tw) = tile;
    let mut bytes = Vec::with_capacity(th * tw * 3);
    for oy in 0..th {
        let (y0, y1) = (oy * h / th, ((oy + 1) * h).div_ceil(th).max(oy * h / th + 1));
        for ox in 0..tw {
            let (x0, x1) = (ox * w / tw, ((ox + 1) * w).div_ceil(tw).max(ox * w / tw + 1));
            let mut sum = [0f32; 3];
            for y in y0..y1.min(h) {
                for x in x0..x1.min(w) {
                    for k in 0..3 {
                        sum[k] += rgb[y * w + x][k];
                    }
                }
            }
            let n = ((y1.min(h) - y0) * (x1.min(w) - x0)) as f32;
            bytes.extend(sum.map(|s| (s / n * 255.0).round().clamp(0.0, 255.0) as u8));
        }
    }
    bytes
}

/// Pixel layout of the mask figure.
struct MaskLayout {
    tile: (usize, usize),
    columns: usize,
    rows: usize,
    cell_w: usize,
    cell_h: usize,
    top: usize,
    width: u32,
    height: u32,
}

const GAP: usize = 16;
const CAPTION_H: usize = 50;

impl MaskLayout {
    fn new(fig: &MaskFigure) -> Self {
        let [_, h, w] = fig.shape;
        // About 170 pixels per tile: whole-number enlargement for small
        // inputs (28 → 168), whole-number reduction for large ones.
        let side = h.max(w);
        let (tile_h, tile_w) = if side <= 170 {
            let f = (170 / side).max(1);
            (h * f, w * f)
        } else {
            let f = side.div_ceil(170);
            (h.div_ceil(f), w.div_ceil(f))
        };
        let cell_w = tile_w.max(150) + GAP;
        let cell_h = tile_h + CAPTION_H + GAP;
        let n = fig.examples.len();
        let columns = if fig.columns > 0 { fig.columns } else { (1600 / cell_w).clamp(1, 8) }.min(n).max(1);
        let rows = n.div_ceil(columns);
        let top = 70;
        let width = (columns * cell_w + GAP).max(640);
        let height = top + rows * cell_h + 80;
        MaskLayout { tile: (tile_h, tile_w), columns, rows, cell_w, cell_h, top, width: width as u32, height: height as u32 }
    }
}

impl Figure for MaskFigure<'_> {
    fn size(&self) -> (u32, u32) {
        let l = MaskLayout::new(self);
        (l.width, l.height)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let l = MaskLayout::new(self);
        root.fill(&WHITE)?;
        let center = |size| TextStyle::from((FONT, size).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(format!("{} — Q = {:.3}", self.title, self.q), (l.width as i32 / 2, 18), center(26)))?;
        let (tile_h, tile_w) = l.tile;
        for (i, ex) in self.examples.iter().enumerate() {
            let (row, col) = (i / l.columns, i % l.columns);
            let x = (GAP + col * l.cell_w + (l.cell_w - GAP - tile_w) / 2) as i32;
            let y = (l.top + row * l.cell_h) as i32;
            let bytes = render_tile(self, ex, l.tile);
            let element = BitMapElement::with_owned_buffer((x, y), (tile_w as u32, tile_h as u32), bytes).ok_or("tile buffer too small")?;
            root.draw(&element)?;
            root.draw(&Rectangle::new([(x - 1, y - 1), (x + tile_w as i32, y + tile_h as i32)], GRAY.stroke_width(1)))?;
            let sent = ex.mask.iter().filter(|&&m| m > 0.5).count() as f64 / ex.mask.len().max(1) as f64;
            let cx = x + tile_w as i32 / 2;
            let mut ty = y + tile_h as i32 + 6;
            if let Some(caption) = ex.caption {
                root.draw(&Text::new(caption.to_string(), (cx, ty), center(16)))?;
                ty += 22;
            }
            root.draw(&Text::new(format!("sent {:.1}% of values", 100.0 * sent), (cx, ty), center(16)))?;
        }
        // Legend, one entry per line so that it fits narrow figures.
        let y0 = (l.top + l.rows * l.cell_h + 10) as i32;
        let left = TextStyle::from((FONT, 18).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        let x = GAP as i32;
        let removed = RGBColor((REMOVED[0] * 0.7 * 255.0) as u8, (REMOVED[1] * 0.7 * 255.0) as u8, (REMOVED[2] * 0.7 * 255.0) as u8);
        root.draw(&Rectangle::new([(x, y0 - 9), (x + 18, y0 + 9)], removed.filled()))?;
        root.draw(&Text::new("removed (not sent): darkened, tinted red", (x + 26, y0), left.clone()))?;
        root.draw(&Rectangle::new([(x, y0 + 21), (x + 18, y0 + 39)], GRAY.stroke_width(1)))?;
        root.draw(&Text::new("kept (sent): shown as is", (x + 26, y0 + 30), left))?;
        Ok(())
    }
}

/// Writes a grid of `fig.examples` with their removed cells shaded to
/// `<stem>.png` / `.svg`. Errors when sizes disagree with `fig.shape`.
pub fn mask_figure(fig: &MaskFigure, stem: &Path) -> Result<Vec<PathBuf>> {
    let [c, h, w] = fig.shape;
    let n = c * h * w;
    if n == 0 {
        return Err(Error::MaskInput(format!("empty shape {:?}", fig.shape)));
    }
    if fig.examples.is_empty() {
        return Err(Error::MaskInput("no examples".into()));
    }
    for (name, v) in [("mean", fig.mean), ("std", fig.std)] {
        if v.len() != 1 && v.len() != c {
            return Err(Error::MaskInput(format!("{name} has {} values, expected 1 or {c} (channels)", v.len())));
        }
    }
    for (i, ex) in fig.examples.iter().enumerate() {
        if ex.image.len() != n || ex.mask.len() != n {
            return Err(Error::MaskInput(format!(
                "example {i}: image has {} values and mask {}, expected {n} ({c}×{h}×{w})",
                ex.image.len(),
                ex.mask.len()
            )));
        }
    }
    save(fig, stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_label_a_few_round_values() {
        // Less than a decade: widened to two 1-2-5 neighbours.
        let ((lo, hi), bold, light) = log_ticks(5e-4, 7.5e-4);
        assert!(lo <= 5e-4 && hi >= 7.5e-4);
        assert_eq!(bold.iter().map(log_tick).collect::<Vec<_>>(), ["0.0002", "0.0005", "0.001"]);
        assert!(light.len() > bold.len());
        // Seven decades: whole decades only, at most 8 labels.
        let (_, bold, _) = log_ticks(5e-4, 1e3);
        assert!((2..=8).contains(&bold.len()), "{bold:?}");
        assert!(bold.iter().all(|v| (v.log10() - v.log10().round()).abs() < 1e-9), "{bold:?}");
        assert_eq!([2e5, 100.0, 5e-6, 1.0, 0.02].map(|v| log_tick(&v)), ["2e5", "100", "5e-6", "1", "0.02"]);
    }

    #[test]
    fn axis_labels_read_cleanly() {
        assert_eq!([1.0, 1.5, 12.0].map(|v| epoch_tick(&v)), ["1", "", "12"]);
        assert_eq!([0.5, 0.85, 1.0, -0.0].map(|v| tick(&v)), ["0.5", "0.85", "1", "0"]);
        let (lo, hi) = padded_range([0.905, 0.919], 0.05, 0.0, 1.0);
        assert!((lo - 0.85).abs() < 1e-9 && (hi - 0.95).abs() < 1e-9, "{lo} {hi}");
        // Clamped to [0, 1], and a default for no data.
        assert_eq!(padded_range([0.99, 1.0], 0.05, 0.0, 1.0).1, 1.0);
        assert_eq!(padded_range([], 0.05, 0.0, 1.0), (0.0, 1.0));
    }
}
