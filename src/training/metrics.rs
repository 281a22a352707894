//! Per-epoch metrics (`metrics.jsonl`) and the accuracy-versus-Q curve.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch (1-based; 0 is the evaluation before training).
    pub epoch: usize,
    /// Mean training objective (task loss + λ·Q) over the epoch's batches.
    pub train_loss: f64,
    /// Mean training task loss (cross-entropy).
    pub task_loss: f64,
    /// Mean training Q (with the training temperature).
    pub train_q: f64,
    /// Q of the evaluated (hard) mask on the selection split.
    pub q: f64,
    /// Fraction of input values (bytes) the evaluated mask sends.
    pub bytes_fraction: f64,
    /// λ used during this epoch.
    pub lambda: f64,
    /// τ used during this epoch.
    pub tau: f64,
    /// Validation loss (cross-entropy).
    pub val_loss: Option<f64>,
    /// Validation accuracy (absent without a validation split).
    pub val_accuracy: Option<f64>,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Dynamic masks: 10th, 50th and 90th percentile of per-input Q on the
    /// selection split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_percentiles: Option<[f64; 3]>,
    /// Xor selection: per xor mask, the share of cells choosing each
    /// version on the selection split (absent without xor selection).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub version_fractions: Vec<VersionFractions>,
    /// Wall-clock seconds of the epoch (training and evaluation).
    pub seconds: f64,
    /// Seconds of the training part alone.
    pub train_seconds: f64,
}

/// How often an xor mask chose each version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionFractions {
    /// The xor mask: `thumbnail` or `quality` (JPEG levels).
    pub mask: String,
    /// The versions' names (`original`, `jpeg90`, `thumb16x16`, ...).
    pub versions: Vec<String>,
    /// Per version, the share of cells choosing it, averaged over the
    /// evaluated items (sums to 1).
    pub fractions: Vec<f64>,
}

impl VersionFractions {
    /// `quality: original 0.40 jpeg90 0.60`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.versions.iter().zip(&self.fractions).map(|(v, f)| format!("{v} {f:.2}")).collect();
        format!("{}: {}", self.mask, parts.join(" "))
    }
}

/// Appends one JSON object per line, flushed after each.
#[derive(Debug)]
pub struct JsonlWriter {
    path: PathBuf,
    file: File,
}

impl JsonlWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(JsonlWriter { path: path.to_path_buf(), file })
    }

    /// Reopens `path` for appending after its first `keep` lines, dropping
    /// any later ones (an epoch recorded after the resume state was saved is
    /// trained and recorded again). Fewer than `keep` lines is an error.
    pub fn resume(path: &Path, keep: usize) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() < keep {
            return Err(Error::invalid(
                path,
                "lines",
                format!("{} epochs recorded, the resume state is after epoch {keep}", lines.len()),
            ));
        }
        if lines.len() > keep {
            let mut kept = lines[..keep].join("\n");
            if keep > 0 {
                kept.push('\n');
            }
            selmask_wire::util::atomic_write(path, kept.as_bytes())?;
        }
        let file = OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(JsonlWriter { path: path.to_path_buf(), file })
    }

    /// Writes one object as a line.
    pub fn write<T: Serialize>(&mut self, value: &T) -> Result<()> {
        let mut line = serde_json::to_vec(value).map_err(|source| Error::json(self.path.clone(), source))?;
        line.push(b'\n');
        self.file.write_all(&line).and_then(|_| self.file.flush()).map_err(|e| Error::io(&self.path, e))
    }
}

/// Reads every line of a `metrics.jsonl`.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|source| Error::json(path.to_path_buf(), source)))
        .collect()
}

/// The best checkpoint of one Q interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The interval `[lo, hi)` of Q.
    pub interval: [f64; 2],
    /// Q of the checkpoint.
    pub q: f64,
    /// Fraction of input values the checkpoint's mask sends.
    pub bytes_fraction: f64,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// The accuracy it was selected by (validation, or test with `--select-on test`).
    pub selection_accuracy: f64,
    /// Epoch of the checkpoint.
    pub epoch: usize,
    /// λ at that epoch.
    pub lambda: f64,
    /// Checkpoint file, relative to the run directory.
    pub checkpoint: PathBuf,
}

/// The accuracy-versus-Q curve of one run: the best checkpoint (by the
/// selection accuracy) in each Q interval of width `width`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QCurve {
    /// Interval width.
    pub width: f64,
    /// Points, sorted by interval.
    pub points: Vec<CurvePoint>,
}

impl QCurve {
    /// An empty curve.
    pub fn new(width: f64) -> Self {
        QCurve { width, points: Vec::new() }
    }

    /// The index of the interval holding `q` (Q = 1 falls in the last one).
    pub fn bucket(&self, q: f64) -> usize {
        let n = (1.0 / self.width).ceil() as usize;
        // A tiny tolerance keeps 0.1 from landing in [0.05, 0.1) by rounding.
        (((q / self.width) + 1e-9).floor().max(0.0) as usize).min(n.saturating_sub(1))
    }

    /// The interval `[lo, hi)` of a bucket.
    pub fn interval(&self, bucket: usize) -> [f64; 2] {
        // Rounded so that bounds read 0.95, not 0.9500000000000001.
        let round = |v: f64| (v * 1e9).round() / 1e9;
        [round(bucket as f64 * self.width), round(((bucket + 1) as f64 * self.width).min(1.0))]
    }

    /// Whether a checkpoint at `q` with `accuracy` beats the interval's best
    /// (strictly, so the earliest of equals stays).
    pub fn improves(&self, q: f64, accuracy: f64) -> bool {
        let interval = self.interval(self.bucket(q));
        match self.points.iter().find(|p| p.interval == interval) {
            Some(p) => accuracy > p.selection_accuracy,
            None => true,
        }
    }

    /// Records `point` as its interval's best (callers check [`QCurve::improves`]).
    pub fn record(&mut self, point: CurvePoint) {
        match self.points.iter_mut().find(|p| p.interval == point.interval) {
            Some(p) => *p = point,
            None => {
                self.points.push(point);
                self.points.sort_by(|a, b| a.interval[0].total_cmp(&b.interval[0]));
            }
        }
    }

    /// The best point (by selection accuracy) with `q <= max_q`: the
    /// checkpoint to deploy under a bandwidth budget.
    pub fn best_within(&self, max_q: f64) -> Option<&CurvePoint> {
        self.points
            .iter()
            .filter(|p| p.q <= max_q + 1e-12)
            .max_by(|a, b| a.selection_accuracy.total_cmp(&b.selection_accuracy).then(b.q.total_cmp(&a.q)))
    }

    /// The point of the interval holding `q`, if any.
    pub fn at(&self, q: f64) -> Option<&CurvePoint> {
        let interval = self.interval(self.bucket(q));
        self.points.iter().find(|p| p.interval == interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(curve: &QCurve, q: f64, acc: f64, epoch: usize) -> CurvePoint {
        CurvePoint {
            interval: curve.interval(curve.bucket(q)),
            q,
            bytes_fraction: q,
            val_accuracy: Some(acc),
            test_accuracy: acc,
            selection_accuracy: acc,
            epoch,
            lambda: 1.0,
            checkpoint: PathBuf::from("x"),
        }
    }

    #[test]
    fn epoch_lines_without_version_fractions_still_parse() {
        let old = r#"{"epoch":1,"train_loss":1.0,"task_loss":0.9,"train_q":0.5,"q":0.5,"bytes_fraction":0.5,"lambda":1.0,"tau":1.0,"val_loss":null,"val_accuracy":0.8,"test_loss":0.7,"test_accuracy":0.75,"seconds":2.0,"train_seconds":1.5}"#;
        let m: EpochMetrics = serde_json::from_str(old).unwrap();
        assert!(m.version_fractions.is_empty());
        // And a line with them round-trips.
        let with = EpochMetrics {
            version_fractions: vec![VersionFractions { mask: "quality".into(), versions: vec!["original".into(), "jpeg50".into()], fractions: vec![0.25, 0.75] }],
            ..m
        };
        let line = serde_json::to_string(&with).unwrap();
        assert_eq!(serde_json::from_str::<EpochMetrics>(&line).unwrap(), with);
        assert_eq!(with.version_fractions[0].summary(), "quality: original 0.25 jpeg50 0.75");
    }

    #[test]
    fn buckets_follow_the_interval_width() {
        let c = QCurve::new(0.05);
        assert_eq!(c.bucket(0.0), 0);
        assert_eq!(c.bucket(0.049), 0);
        assert_eq!(c.bucket(0.05), 1);
        assert_eq!(c.bucket(0.1), 2); // not 1 through rounding
        assert_eq!(c.bucket(1.0), 19); // Q = 1 joins the last interval
        assert_eq!(c.interval(19), [0.95, 1.0]);
    }

    #[test]
    fn keeps_the_best_of_each_interval() {
        let mut c = QCurve::new(0.1);
        for (q, acc, epoch) in [(0.95, 0.9, 1), (0.93, 0.92, 2), (0.91, 0.92, 3), (0.45, 0.8, 4)] {
            if c.improves(q, acc) {
                let p = point(&c, q, acc, epoch);
                c.record(p);
            }
        }
        assert_eq!(c.points.len(), 2);
        assert_eq!(c.points[0].epoch, 4);
        assert_eq!(c.points[1].epoch, 2); // epoch 3 only tied
        assert_eq!(c.at(0.99).unwrap().q, 0.93);
        assert_eq!(c.best_within(0.5).unwrap().epoch, 4);
        assert_eq!(c.best_within(1.0).unwrap().epoch, 2);
        assert!(c.best_within(0.4).is_none());
    }
}
