//! Finding runs on disk, loading them, and aggregating them per experiment.
//!
//! A runs directory is laid out as
//! `<runs>/<dataset>/<mask-type>/<name>/run_<i>/` (what `selmask train
//! --exp-dir <runs>` writes). An *experiment* is one `<name>` directory;
//! its `run_<i>` directories are the repeats. Other directories (such as
//! `<dataset>/pretrain/seed_0/`) hold no `run_<i>` and are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::training::metrics::EpochMetrics;
use crate::training::SelectOn;
use crate::training::run::{RunRecord, RunSummary};
use super::table::{self, CurveRow, mean_std};

/// Which experiment: the three directory levels above `run_<i>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExperimentId {
    /// Dataset directory (`fashion_mnist`, ...).
    pub dataset: String,
    /// Mask-type directory (`static`, `dynamic`, `random`, `given`, ...).
    pub mask_type: String,
    /// Experiment name (`--name`).
    pub name: String,
}

impl ExperimentId {
    /// `mask_type/name`, how an experiment is named inside a dataset.
    pub fn label(&self) -> String {
        format!("{}/{}", self.mask_type, self.name)
    }

    /// A file-name-safe `dataset_masktype_name`.
    pub fn slug(&self) -> String {
        [&self.dataset, &self.mask_type, &self.name].map(|s| slug(s)).join("_")
    }
}

/// Replaces everything but ASCII letters, digits, `-` and `.` by `_`.
pub fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

/// The order methods are listed in: the paper's, then anything else by name.
pub fn method_rank(mask_type: &str) -> (usize, String) {
    let known = ["static", "dynamic", "random", "given", "pipeline"];
    let rank = known.iter().position(|k| mask_type.starts_with(k)).unwrap_or(known.len());
    (rank, mask_type.to_string())
}

/// One complete run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The `run_<i>` directory.
    pub dir: PathBuf,
    /// `i` of `run_<i>`.
    pub index: usize,
    /// `config.json`.
    pub record: RunRecord,
    /// `config.json` as raw JSON (to compare settings between repeats).
    pub config_json: serde_json::Value,
    /// `metrics.jsonl`, cut to the epochs `summary.json` covers.
    pub metrics: Vec<EpochMetrics>,
    /// `summary.json`.
    pub summary: RunSummary,
}

/// A run left out of the report, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRun {
    /// The `run_<i>` directory.
    pub dir: PathBuf,
    /// Why, in a few words.
    pub reason: String,
}

/// The complete runs of one experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Which one.
    pub id: ExperimentId,
    /// The `<name>` directory.
    pub dir: PathBuf,
    /// Its complete runs, by index.
    pub runs: Vec<Run>,
    /// Things a reader should know (settings that differ between repeats, ...).
    pub warnings: Vec<String>,
}

impl Experiment {
    /// The method its runs are compared with the paper as: `full` (the
    /// paper's "full data") for a static mask frozen at its all-selected
    /// start, so that every epoch's Q is 1, else the mask-type directory.
    pub fn method(&self) -> &str {
        let full_data = self.runs.iter().all(|r| {
            let c = &r.record.config;
            c.mask_type == crate::training::MaskType::Static
                && c.freeze_mask
                && c.init_checkpoint.is_none()
                && !r.metrics.is_empty()
                && r.metrics.iter().all(|m| m.q >= 1.0 - 1e-9)
        });
        if full_data { "full" } else { &self.id.mask_type }
    }
}

/// How runs are loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Also use runs that stopped before their planned epochs (by default
    /// they are skipped: a mean over runs of different lengths mixes
    /// schedules, and a run still training would change under the report).
    pub include_unfinished: bool,
}

/// Everything found under a runs directory.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Experiments with at least one complete run, sorted by dataset,
    /// method (paper order) and name.
    pub experiments: Vec<Experiment>,
    /// Runs left out, sorted by directory.
    pub skipped: Vec<SkippedRun>,
}

impl Loaded {
    /// The dataset names, sorted.
    pub fn datasets(&self) -> Vec<String> {
        let mut d: Vec<String> = self.experiments.iter().map(|e| e.id.dataset.clone()).collect();
        d.dedup();
        d
    }
}

/// Subdirectories of `dir`, sorted by name (hidden ones left out).
fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        if !name.starts_with('.') && path.is_dir() {
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

/// `i` of a `run_<i>` directory name.
fn run_index(name: &str) -> Option<usize> {
    name.strip_prefix("run_")?.parse().ok()
}

/// Finds and loads every run under `runs_dir`.
///
/// Bad JSON is an error naming the file; a run with a missing file, a
/// partly written last line, too few metrics or (unless
/// [`LoadOptions::include_unfinished`]) fewer epochs than planned is
/// skipped and listed in [`Loaded::skipped`]. Errors when the directory
/// holds no run at all, or only skipped ones.
pub fn load_runs(runs_dir: &Path, options: LoadOptions) -> Result<Loaded> {
    if !runs_dir.is_dir() {
        return Err(Error::NotADirectory { path: runs_dir.to_path_buf() });
    }
    let mut experiments = Vec::new();
    let mut skipped = Vec::new();
    let mut found = 0usize;
    for (dataset, dataset_dir) in subdirs(runs_dir)? {
        for (mask_type, mask_dir) in subdirs(&dataset_dir)? {
            for (name, exp_dir) in subdirs(&mask_dir)? {
                let mut run_dirs: Vec<(usize, PathBuf)> =
                    subdirs(&exp_dir)?.into_iter().filter_map(|(n, p)| run_index(&n).map(|i| (i, p))).collect();
                if run_dirs.is_empty() {
                    continue;
                }
                run_dirs.sort();
                found += run_dirs.len();
                let id = ExperimentId { dataset: dataset.clone(), mask_type: mask_type.clone(), name };
                let mut runs = Vec::new();
                for (index, dir) in run_dirs {
                    match load_run(&dir, index, options)? {
                        Ok(run) => runs.push(run),
                        Err(reason) => skipped.push(SkippedRun { dir, reason }),
                    }
                }
                if !runs.is_empty() {
                    let warnings = warnings(&id, &runs);
                    experiments.push(Experiment { id, dir: exp_dir, runs, warnings });
                }
            }
        }
    }
    if found == 0 {
        return Err(Error::NoRuns { path: runs_dir.to_path_buf() });
    }
    if experiments.is_empty() {
        let first = skipped.first().map(|s| format!("{}: {}", s.dir.display(), s.reason)).unwrap_or_default();
        return Err(Error::NoCompleteRuns { path: runs_dir.to_path_buf(), skipped: skipped.len(), first });
    }
    experiments.sort_by(|a, b| {
        (&a.id.dataset, method_rank(&a.id.mask_type), &a.id.name).cmp(&(&b.id.dataset, method_rank(&b.id.mask_type), &b.id.name))
    });
    Ok(Loaded { experiments, skipped })
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
fn read_json_file(path: &Path) -> Result<Option<serde_json::Value>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map(Some).map_err(|source| Error::json(path.to_path_buf(), source))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Parses a JSON value as `T`, naming the file on failure.
fn from_value<T: serde::de::DeserializeOwned>(path: &Path, value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|source| Error::json(path.to_path_buf(), source))
}

/// Loads one run: `Ok(Ok(run))`, `Ok(Err(reason))` to skip it, or an error
/// for a file that exists but is not what it should be.
fn load_run(dir: &Path, index: usize, options: LoadOptions) -> Result<Result<Run, String>> {
    let config_path = dir.join("config.json");
    let summary_path = dir.join("summary.json");
    let metrics_path = dir.join("metrics.jsonl");
    let Some(config_json) = read_json_file(&config_path)? else {
        return Ok(Err("no config.json".into()));
    };
    let record: RunRecord = from_value(&config_path, config_json.clone())?;
    // `summary.json` is written after each epoch, so its absence means the
    // run has not finished its first epoch (or died before).
    let Some(summary_json) = read_json_file(&summary_path)? else {
        return Ok(Err("no summary.json (not started, or still in its first epoch)".into()));
    };
    let summary: RunSummary = from_value(&summary_path, summary_json)?;
    let text = match std::fs::read_to_string(&metrics_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Err("no metrics.jsonl".into())),
        Err(e) => return Err(Error::io(&metrics_path, e)),
    };
    let mut metrics = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<EpochMetrics>(line) {
            Ok(m) => metrics.push(m),
            // Lines are written whole and flushed; a last line without its
            // newline is one being written right now, not a corrupt file.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {
                return Ok(Err("metrics.jsonl ends in a partly written line (still running?)".into()));
            }
            Err(source) => return Err(Error::JsonLine { path: metrics_path, line: i + 1, source }),
        }
    }
    if !summary.finished() && !options.include_unfinished {
        return Ok(Err(format!("unfinished: {} of {} epochs", summary.epochs_completed, summary.epochs_planned)));
    }
    // `metrics.jsonl` is written before `summary.json`, so it may be one
    // epoch ahead; the summary is what the curve covers.
    metrics.retain(|m| m.epoch <= summary.epochs_completed);
    let trained = metrics.iter().filter(|m| m.epoch >= 1).count();
    if trained < summary.epochs_completed {
        return Ok(Err(format!("metrics.jsonl holds {trained} epochs but summary.json reports {}", summary.epochs_completed)));
    }
    if summary.curve.points.is_empty() {
        return Ok(Err("summary.json has no checkpoint on its curve".into()));
    }
    Ok(Ok(Run { dir: dir.to_path_buf(), index, record, config_json, metrics, summary }))
}

/// Warnings about an experiment's runs: settings that differ between
/// repeats, or directories that disagree with the configuration.
fn warnings(id: &ExperimentId, runs: &[Run]) -> Vec<String> {
    let mut out = Vec::new();
    let first = &runs[0];
    for run in &runs[1..] {
        if run.config_json.get("config") != first.config_json.get("config") {
            out.push(format!("run_{} was trained with other settings than run_{}", run.index, first.index));
        }
        if run.summary.curve.width != first.summary.curve.width {
            out.push(format!(
                "run_{} uses Q intervals of width {} but run_{} of width {}",
                run.index, run.summary.curve.width, first.index, first.summary.curve.width
            ));
        }
        if run.summary.select_on != first.summary.select_on {
            out.push(format!(
                "run_{} selects checkpoints on {}, run_{} on {}",
                run.index, run.summary.select_on, first.index, first.summary.select_on
            ));
        }
    }
    let c = &first.record.config;
    if c.mask_type.to_string() != id.mask_type {
        out.push(format!("directory says mask type {} but config.json says {}", id.mask_type, c.mask_type));
    }
    if c.dataset.as_str() != id.dataset {
        out.push(format!("directory says dataset {} but config.json says {}", id.dataset, c.dataset));
    }
    out
}

/// One epoch of one run, or the mean over runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochPoint {
    /// Epoch.
    pub epoch: usize,
    /// Runs averaged (1 for a single run).
    pub runs: usize,
    /// Validation accuracy (absent when some run has none).
    pub val_accuracy: Option<f64>,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Q of the evaluated mask.
    pub q: f64,
    /// Fraction of input values sent.
    pub bytes_fraction: f64,
    /// λ (the mean is geometric: λ grows multiplicatively and is shown on a
    /// log axis, where an arithmetic mean would follow the largest run).
    pub lambda: f64,
}

impl From<&EpochMetrics> for EpochPoint {
    fn from(m: &EpochMetrics) -> Self {
        EpochPoint {
            epoch: m.epoch,
            runs: 1,
            val_accuracy: m.val_accuracy,
            test_accuracy: m.test_accuracy,
            q: m.q,
            bytes_fraction: m.bytes_fraction,
            lambda: m.lambda,
        }
    }
}

/// Per-epoch series of an experiment: every run, and their mean.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochSeries {
    /// `(run index, its epochs)` for every run.
    pub per_run: Vec<(usize, Vec<EpochPoint>)>,
    /// The mean over the runs that reached each epoch.
    pub mean: Vec<EpochPoint>,
}

/// The per-epoch series of `runs`.
pub fn epoch_series(runs: &[Run]) -> EpochSeries {
    let per_run: Vec<(usize, Vec<EpochPoint>)> = runs.iter().map(|r| (r.index, r.metrics.iter().map(EpochPoint::from).collect())).collect();
    let mut by_epoch: BTreeMap<usize, Vec<&EpochPoint>> = BTreeMap::new();
    for (_, points) in &per_run {
        for p in points {
            by_epoch.entry(p.epoch).or_default().push(p);
        }
    }
    let mean = by_epoch
        .into_iter()
        .map(|(epoch, ps)| {
            let n = ps.len() as f64;
            let avg = |f: fn(&EpochPoint) -> f64| ps.iter().map(|p| f(p)).sum::<f64>() / n;
            let vals: Vec<f64> = ps.iter().filter_map(|p| p.val_accuracy).collect();
            // λ = 0 (a method without λ) has no logarithm; its mean is 0.
            let lambda = if ps.iter().all(|p| p.lambda > 0.0) { avg(|p| p.lambda.ln()).exp() } else { avg(|p| p.lambda) };
            EpochPoint {
                epoch,
                runs: ps.len(),
                val_accuracy: (vals.len() == ps.len()).then(|| vals.iter().sum::<f64>() / n),
                test_accuracy: avg(|p| p.test_accuracy),
                q: avg(|p| p.q),
                bytes_fraction: avg(|p| p.bytes_fraction),
                lambda,
            }
        })
        .collect();
    EpochSeries { per_run, mean }
}

/// Test accuracy within a bandwidth budget: see [`at_budget`].
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetResult {
    /// The budget: the largest Q allowed.
    pub budget: f64,
    /// Runs with at least one epoch within the budget.
    pub runs: usize,
    /// Runs of the experiment.
    pub total_runs: usize,
    /// Mean Q of the chosen epochs.
    pub q: f64,
    /// Mean and sample standard deviation of the chosen epochs' test accuracy.
    pub test_accuracy: (f64, f64),
    /// Mean epoch chosen.
    pub epoch: f64,
}

/// The test accuracy of each run at its best epoch with `Q ≤ budget`, by
/// the accuracy the run selects checkpoints on (validation unless the run
/// selected on test), earliest among equals as checkpoints are kept;
/// averaged over the runs that got within the budget. Epoch 0 (before
/// training) is not a candidate, as it never becomes a checkpoint.
///
/// Computed from `metrics.jsonl`, which holds every evaluated epoch, rather
/// than from the curve: a curve interval straddling the budget keeps only
/// its best point, which may lie above the budget.
pub fn at_budget(runs: &[Run], budget: f64) -> Option<BudgetResult> {
    let chosen: Vec<&EpochMetrics> = runs
        .iter()
        .filter_map(|r| {
            let on_test = r.summary.select_on == SelectOn::Test;
            let select = |m: &EpochMetrics| if on_test { m.test_accuracy } else { m.val_accuracy.unwrap_or(m.test_accuracy) };
            let mut best: Option<&EpochMetrics> = None;
            for m in r.metrics.iter().filter(|m| m.epoch >= 1 && m.q <= budget + 1e-9) {
                if best.is_none_or(|b| select(m) > select(b)) {
                    best = Some(m);
                }
            }
            best
        })
        .collect();
    if chosen.is_empty() {
        return None;
    }
    let col = |f: fn(&EpochMetrics) -> f64| chosen.iter().map(|m| f(m)).collect::<Vec<f64>>();
    Some(BudgetResult {
        budget,
        runs: chosen.len(),
        total_runs: runs.len(),
        q: mean_std(&col(|m| m.q)).0,
        test_accuracy: mean_std(&col(|m| m.test_accuracy)),
        epoch: mean_std(&col(|m| m.epoch as f64)).0,
    })
}

/// An experiment, aggregated over its runs.
#[derive(Debug, Clone)]
pub struct ExperimentSummary {
    /// Which one.
    pub id: ExperimentId,
    /// From [`Experiment::method`].
    pub method: String,
    /// How it is labelled in tables and legends (the mask type, or
    /// `mask_type/name` when a dataset has several experiments of that type).
    pub label: String,
    /// Complete runs.
    pub n_runs: usize,
    /// The first run's `config.json`.
    pub record: RunRecord,
    /// Which split selected checkpoints (`val` or `test`).
    pub select_on: SelectOn,
    /// The accuracy-versus-Q curve, mean ± std per interval (highest Q first).
    pub curve: Vec<CurveRow>,
    /// Per-epoch series.
    pub series: EpochSeries,
    /// From [`Experiment::warnings`].
    pub warnings: Vec<String>,
}

/// Aggregates one experiment; `label` names it in tables and figures.
pub fn summarize(experiment: &Experiment, label: String) -> ExperimentSummary {
    let curves: Vec<_> = experiment.runs.iter().map(|r| r.summary.curve.clone()).collect();
    let first = &experiment.runs[0];
    ExperimentSummary {
        id: experiment.id.clone(),
        method: experiment.method().to_string(),
        label,
        n_runs: experiment.runs.len(),
        record: first.record.clone(),
        select_on: first.summary.select_on,
        curve: table::aggregate(&curves),
        series: epoch_series(&experiment.runs),
        warnings: experiment.warnings.clone(),
    }
}

/// Labels for a dataset's experiments: the mask type alone where it is
/// unique within `experiments`, else `mask_type/name`.
pub fn labels(experiments: &[&Experiment]) -> Vec<String> {
    experiments
        .iter()
        .map(|e| {
            let same = experiments.iter().filter(|o| o.id.mask_type == e.id.mask_type).count();
            if same > 1 { e.id.label() } else { e.id.mask_type.clone() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run whose metrics are `(epoch, q, val, test, lambda)`.
    fn run(index: usize, select_on: &str, epochs: &[(usize, f64, f64, f64, f64)]) -> Run {
        let mut config = crate::training::example_config();
        config.n_epochs = epochs.len();
        let record = RunRecord {
            selmask_version: "0".into(),
            config,
            dataset: crate::data::DatasetInfo {
                name: crate::data::DatasetName::Synthetic,
                shape: [1, 2, 2],
                n_classes: 2,
                mean: vec![0.0],
                std: vec![1.0],
            },
            repeat: index,
            seed: index as u64,
            split_sizes: crate::training::run::SplitSizes { train: 1, val: 1, test: 1 },
        };
        let metrics = epochs
            .iter()
            .map(|&(epoch, q, val, test, lambda)| EpochMetrics {
                epoch,
                train_loss: 0.0,
                task_loss: 0.0,
                train_q: q,
                q,
                bytes_fraction: q,
                lambda,
                tau: 1.0,
                val_loss: None,
                val_accuracy: Some(val),
                test_loss: 0.0,
                test_accuracy: test,
                q_percentiles: None,
                version_fractions: Vec::new(),
                seconds: 0.0,
                train_seconds: 0.0,
            })
            .collect();
        Run {
            dir: PathBuf::from(format!("run_{index}")),
            index,
            config_json: serde_json::to_value(&record).unwrap(),
            record,
            metrics,
            summary: RunSummary {
                run_dir: PathBuf::new(),
                epochs_completed: epochs.len(),
                epochs_planned: epochs.len(),
                select_on: select_on.parse().unwrap(),
                curve: crate::training::metrics::QCurve::new(0.05),
                last: None,
                seconds: 0.0,
                stopped_early: false,
                budget_point: None,
            },
        }
    }

    #[test]
    fn budget_picks_the_best_selection_accuracy_within_q() {
        let epochs = [
            (0, 0.01, 0.99, 0.99, 1.0),
            (1, 0.2, 0.95, 0.9, 1.0),
            (2, 0.05, 0.8, 0.7, 1.0),
            (3, 0.04, 0.8, 0.75, 1.0),
            (4, 0.03, 0.7, 0.8, 1.0),
        ];
        // Epoch 0 never counts; epochs 2 (Q exactly at the budget) and 3
        // tie on validation: the earlier one wins.
        let r = at_budget(&[run(0, "val", &epochs)], 0.05).unwrap();
        assert_eq!((r.epoch, r.q, r.test_accuracy), (2.0, 0.05, (0.7, 0.0)));
        // Selected on test, epoch 4 wins.
        let r = at_budget(&[run(0, "test", &epochs)], 0.05).unwrap();
        assert_eq!(r.epoch, 4.0);
        // Nothing within 0.02.
        assert!(at_budget(&[run(0, "val", &epochs)], 0.02).is_none());
        // Runs that got there count, the others not.
        let other = run(1, "val", &[(1, 0.5, 0.9, 0.9, 1.0)]);
        let r = at_budget(&[run(0, "val", &epochs), other], 0.05).unwrap();
        assert_eq!((r.runs, r.total_runs), (1, 2));
    }

    #[test]
    fn epoch_means_use_the_runs_present_and_a_geometric_lambda() {
        let a = run(0, "val", &[(1, 1.0, 0.9, 0.8, 1.0), (2, 0.5, 0.8, 0.7, 4.0)]);
        let b = run(1, "val", &[(1, 0.8, 0.7, 0.6, 4.0)]);
        let s = epoch_series(&[a, b]);
        assert_eq!(s.per_run.len(), 2);
        assert_eq!(s.mean.len(), 2);
        let m = &s.mean[0];
        assert_eq!(m.runs, 2);
        assert!((m.q - 0.9).abs() < 1e-12 && (m.test_accuracy - 0.7).abs() < 1e-12);
        assert!((m.val_accuracy.unwrap() - 0.8).abs() < 1e-12);
        assert!((m.lambda - 2.0).abs() < 1e-12, "geometric mean of 1 and 4");
        assert_eq!((s.mean[1].runs, s.mean[1].lambda), (1, 4.0));
    }

    #[test]
    fn names_and_order() {
        assert_eq!(slug("a b/c|d"), "a_b_c_d");
        let mut types = vec!["zeta", "given", "random", "static", "pipeline_any", "dynamic"];
        types.sort_by_key(|t| method_rank(t));
        assert_eq!(types, ["static", "dynamic", "random", "given", "pipeline_any", "zeta"]);
    }
}
