//! Accuracy-versus-Q tables: one run's curve, or the mean over repeats.

use std::collections::BTreeMap;

use crate::training::metrics::QCurve;

/// One row of an aggregated curve.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveRow {
    /// The Q interval.
    pub interval: [f64; 2],
    /// Runs that reached this interval.
    pub runs: usize,
    /// Mean Q.
    pub q: f64,
    /// Mean fraction of bytes sent.
    pub bytes_fraction: f64,
    /// Mean and standard deviation of validation accuracy.
    pub val_accuracy: Option<(f64, f64)>,
    /// Mean and standard deviation of test accuracy.
    pub test_accuracy: (f64, f64),
    /// Mean epoch of the checkpoints.
    pub epoch: f64,
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    // Sample standard deviation (0 for a single run).
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Aggregates curves interval by interval (highest Q first).
pub fn aggregate(curves: &[QCurve]) -> Vec<CurveRow> {
    let mut by_interval: BTreeMap<i64, Vec<&crate::training::metrics::CurvePoint>> = BTreeMap::new();
    for curve in curves {
        for p in &curve.points {
            // Keyed by the lower bound in units of 1e-9 (exact after rounding).
            by_interval.entry((p.interval[0] * 1e9).round() as i64).or_default().push(p);
        }
    }
    let mut rows: Vec<CurveRow> = by_interval
        .into_values()
        .map(|points| {
            let col = |f: &dyn Fn(&crate::training::metrics::CurvePoint) -> f64| points.iter().map(|p| f(p)).collect::<Vec<_>>();
            let vals: Vec<f64> = points.iter().filter_map(|p| p.val_accuracy).collect();
            CurveRow {
                interval: points[0].interval,
                runs: points.len(),
                q: mean_std(&col(&|p| p.q)).0,
                bytes_fraction: mean_std(&col(&|p| p.bytes_fraction)).0,
                val_accuracy: (vals.len() == points.len()).then(|| mean_std(&vals)),
                test_accuracy: mean_std(&col(&|p| p.test_accuracy)),
                epoch: mean_std(&col(&|p| p.epoch as f64)).0,
            }
        })
        .collect();
    rows.reverse();
    rows
}

/// Renders rows as an aligned plain-text table (for the terminal).
pub fn render_text(rows: &[CurveRow]) -> String {
    let header = ["Q interval", "runs", "Q", "bytes", "val acc", "test acc", "epoch"];
    let body: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let pm = |(m, s): (f64, f64)| if r.runs > 1 { format!("{m:.4} ± {s:.4}") } else { format!("{m:.4}") };
            [
                format!("[{:.2}, {:.2})", r.interval[0], r.interval[1]),
                r.runs.to_string(),
                format!("{:.4}", r.q),
                format!("{:.4}", r.bytes_fraction),
                r.val_accuracy.map_or("-".into(), pm),
                pm(r.test_accuracy),
                format!("{:.1}", r.epoch),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..7)
        .map(|i| body.iter().map(|row| row[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}", w = *w))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(&header.map(String::from));
    out.push('\n');
    out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    for row in &body {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::metrics::CurvePoint;
    use std::path::PathBuf;

    fn curve(points: &[(f64, f64)]) -> QCurve {
        let mut c = QCurve::new(0.05);
        for &(q, acc) in points {
            let p = CurvePoint {
                interval: c.interval(c.bucket(q)),
                q,
                bytes_fraction: q,
                val_accuracy: Some(acc),
                test_accuracy: acc,
                selection_accuracy: acc,
                epoch: 1,
                lambda: 1.0,
                checkpoint: PathBuf::from("c"),
            };
            c.record(p);
        }
        c
    }

    #[test]
    fn aggregates_matching_intervals() {
        let rows = aggregate(&[curve(&[(0.98, 0.9), (0.06, 0.8)]), curve(&[(0.97, 0.8)])]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].interval, [0.95, 1.0]);
        assert_eq!(rows[0].runs, 2);
        assert!((rows[0].test_accuracy.0 - 0.85).abs() < 1e-12);
        assert!((rows[0].test_accuracy.1 - (0.005f64).sqrt()).abs() < 1e-12);
        assert_eq!(rows[1].runs, 1);
        let text = render_text(&rows);
        assert!(text.contains("[0.95, 1.00)") && text.contains("0.8500 ± 0.0707"), "{text}");
    }
}
