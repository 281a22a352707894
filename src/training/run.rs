//! The training loop of one run: train, evaluate, keep the best checkpoint
//! of each Q interval, step the schedules.
//!
//! [`TrainConfig::fit`] reads top to bottom: set-up (checks, the run's
//! record, the modules, resume), then per epoch the phases `METHOD.md`
//! describes, in that order, each a small function: train the epoch,
//! evaluate, keep the best checkpoint of the epoch's Q interval, record the
//! metrics, step λ and τ, save the resume state and the summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::budget::BudgetController;
use super::checkpoint::{self, CheckpointMeta, SelectionModel};
use super::evaluate::{Evaluation, evaluate};
use super::metrics::{CurvePoint, EpochMetrics, JsonlWriter, QCurve, read_jsonl};
use super::progress::Progress;
use super::step::{Learner, StepParams};
use super::tensorboard::RunBoard;
use super::{SelectOn, TrainConfig};
use crate::data::augment::Augmenter;
use crate::data::batch::{HostBatch, TensorSplit, augment_rng, epoch_rng};
use crate::data::listed::{FileSet, ListedDataset};
use crate::data::split::{split_indices, train_val_split};
use crate::data::versions::VersionsConfig;
use crate::data::{Dataset, DatasetInfo, ImageSet, TrainingData};
use crate::masks::schedule::{LambdaSchedule, TauSchedule};
use crate::masks::scheduled::CellSchedule;
use crate::masks::{Mask, MaskConfig};
use crate::models::Network;
use crate::error::{Error, Result};
use selmask_wire::util::{read_json, write_json};

/// A dataset's splits on the device, shared by the repeats of a run.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// Geometry and normalisation.
    pub info: DatasetInfo,
    /// Items trained on.
    pub train: TensorSplit,
    /// Held-out validation items (absent when `val_split` is 0).
    pub val: Option<TensorSplit>,
    /// Test items.
    pub test: TensorSplit,
}

impl PreparedData {
    /// Splits off `val_split` of the training set with `split_seed` (the
    /// same validation set for every repeat); batches go to `device`.
    pub fn new(dataset: &Dataset, val_split: f64, split_seed: u64, device: &Device) -> Result<Self> {
        Self::from_dataset(dataset.clone(), val_split, split_seed, None, device)
    }

    /// [`PreparedData::new`] for xor selection: every batch becomes the
    /// stacks of its items' `versions` (`[V·C, H, W]`, each version
    /// normalised with the dataset's mean and std), made per batch after
    /// augmentation (see [`TensorSplit::with_versions`]). `info` stays the
    /// dataset's (one version).
    pub fn with_versions(dataset: &Dataset, val_split: f64, split_seed: u64, versions: Option<&VersionsConfig>, device: &Device) -> Result<Self> {
        Self::from_dataset(dataset.clone(), val_split, split_seed, versions, device)
    }

    /// [`PreparedData::from_dataset`] or [`PreparedData::from_listed`], as
    /// `data` was loaded.
    pub fn from_training_data(data: TrainingData, val_split: f64, split_seed: u64, versions: Option<&VersionsConfig>, device: &Device) -> Result<Self> {
        match data {
            TrainingData::Held(d) => Self::from_dataset(d, val_split, split_seed, versions, device),
            TrainingData::Listed(d) => Self::from_listed(d, val_split, split_seed, versions, device),
        }
    }

    /// Splits read from image files batch by batch (the same validation
    /// items as [`PreparedData::from_dataset`] of the decoded files): memory
    /// is one batch, and every epoch decodes its images again.
    pub fn from_listed(listed: ListedDataset, val_split: f64, split_seed: u64, versions: Option<&VersionsConfig>, device: &Device) -> Result<Self> {
        let versions = versions.filter(|v| !v.is_empty());
        let ListedDataset { info, train, test } = listed;
        let prepare = |files: FileSet| TensorSplit::files_with_versions(files, &info, versions, device);
        let (train_idx, val_idx) = split_indices(train.len(), val_split, split_seed)?;
        let val = if val_idx.is_empty() { None } else { Some(prepare(train.subset(&val_idx))?) };
        let (train, test) = (prepare(train.subset(&train_idx))?, prepare(test)?);
        Ok(PreparedData { info, train, val, test })
    }

    /// [`PreparedData::with_versions`] holding `dataset`'s items themselves:
    /// memory is the dataset as stored (u8 for images), plus the
    /// validation part while it is split off; versions are not held.
    pub fn from_dataset(dataset: Dataset, val_split: f64, split_seed: u64, versions: Option<&VersionsConfig>, device: &Device) -> Result<Self> {
        let versions = versions.filter(|v| !v.is_empty());
        let Dataset { info, train, test } = dataset;
        let prepare = |set: ImageSet| TensorSplit::with_versions(set, &info, versions, device);
        let parts = train_val_split(train, val_split, split_seed)?;
        let val = if parts.val.is_empty() { None } else { Some(prepare(parts.val)?) };
        let (train, test) = (prepare(parts.train)?, prepare(test)?);
        Ok(PreparedData { info, train, val, test })
    }
}

/// What `config.json` holds: the settings and where they ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// `selmask` version.
    pub selmask_version: String,
    /// The settings.
    pub config: TrainConfig,
    /// The dataset's geometry and normalisation.
    pub dataset: DatasetInfo,
    /// Repeat index.
    pub repeat: usize,
    /// The seed this repeat used.
    pub seed: u64,
    /// Items in each split.
    pub split_sizes: SplitSizes,
}

/// Items per split.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Training items.
    pub train: usize,
    /// Validation items.
    pub val: usize,
    /// Test items.
    pub test: usize,
}

/// The outcome of a run (`summary.json`): its accuracy-versus-Q curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Epochs completed.
    pub epochs_completed: usize,
    /// Epochs planned.
    pub epochs_planned: usize,
    /// Which split selected the checkpoints.
    pub select_on: SelectOn,
    /// The best checkpoint per Q interval.
    pub curve: QCurve,
    /// Metrics of the last epoch.
    pub last: Option<EpochMetrics>,
    /// Total wall-clock seconds.
    pub seconds: f64,
    /// Budget-targeted runs: stopped before `epochs_planned` because the
    /// budget was met and accuracy had settled (a finished run).
    #[serde(default)]
    pub stopped_early: bool,
    /// Budget-targeted runs: the best checkpoint within the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_point: Option<CurvePoint>,
}

impl RunSummary {
    /// Whether the run ran to its end (all epochs, or an early stop).
    pub fn finished(&self) -> bool {
        self.stopped_early || self.epochs_completed == self.epochs_planned
    }
}

/// The resume state of a run directory, rewritten after every epoch.
pub const LAST_FILE: &str = "last.ckpt";

/// What a run directory holds besides TensorBoard event files; everything
/// in it is written by [`TrainConfig::fit`].
const RUN_ENTRIES: [&str; 5] = ["config.json", "metrics.jsonl", "summary.json", "checkpoints", LAST_FILE];

/// Everything besides the modules and optimisers that a run needs to
/// continue after `epoch` (saved in [`LAST_FILE`] with them).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    selmask_version: String,
    /// The settings the run was started with.
    config: TrainConfig,
    /// The last finished epoch.
    epoch: usize,
    /// A budget-targeted run stopped after `epoch`.
    stopped: bool,
    lambda: LambdaSchedule,
    budget: Option<BudgetController>,
    tau: TauSchedule,
    schedule: Option<CellSchedule>,
    curve: QCurve,
    /// Wall-clock seconds of the run so far.
    seconds: f64,
}

/// The seed of the device's generator in `epoch` of a run seeded `seed`.
fn epoch_device_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(epoch as u64)
}

/// Removes the checkpoint files of `run_dir` that `curve` does not name
/// (written by an epoch that a resume trains again, or superseded just
/// before the run was killed). Only `checkpoints/*.ckpt` are touched.
fn remove_unrecorded_checkpoints(run_dir: &Path, curve: &QCurve) -> Result<()> {
    let dir = run_dir.join("checkpoints");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
    for entry in entries {
        let path = entry.map_err(|e| Error::io(&dir, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let recorded = curve.points.iter().any(|p| p.checkpoint.file_name().is_some_and(|f| f.to_string_lossy() == name));
        if name.ends_with(".ckpt") && !recorded {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Whether `dir` is a run directory selmask wrote: a run's `config.json`
/// and nothing but a run's files. Only such a directory may be removed by
/// `train --overwrite`.
pub fn run_ownership(dir: &Path) -> std::result::Result<(), String> {
    // An empty directory (a run claimed by --slurm-friendly and killed at
    // once) holds nothing to lose.
    if std::fs::read_dir(dir).map_err(|e| format!("cannot list it: {e}"))?.next().is_none() {
        return Ok(());
    }
    let record: serde_json::Value =
        read_json(&dir.join("config.json")).map_err(|e| format!("it has no readable config.json of a run ({e})"))?;
    if record.get("selmask_version").is_none() || record.get("config").is_none() {
        return Err("its config.json is not a selmask run's".into());
    }
    selmask_wire::util::only_entries(dir, &|name| RUN_ENTRIES.contains(&name) || crate::tensorboard::is_event_file(name))?;
    let checkpoints = dir.join("checkpoints");
    if checkpoints.is_dir() {
        selmask_wire::util::only_entries(&checkpoints, &|name| name.ends_with(".ckpt")).map_err(|e| format!("checkpoints/: {e}"))?;
    }
    Ok(())
}

/// The ownership check of run directories, for `train --overwrite`.
pub const RUN_OWNER: selmask_wire::util::Ownership<'static> = selmask_wire::util::Ownership { what: "run directory", check: &run_ownership };

/// The settings of `config` that differ from those recorded in the run
/// directory's `config.json`, as `field: recorded -> now` (empty when
/// the same): a finished run is only skipped for the same settings.
pub fn differing_settings(run_dir: &Path, config: &TrainConfig) -> Result<Vec<String>> {
    let path = run_dir.join("config.json");
    let record: serde_json::Value = read_json(&path)?;
    let recorded = record.get("config").cloned().ok_or_else(|| Error::invalid(&path, "config", "missing"))?;
    // Both sides through the same types (f32 fields read back as JSON
    // numbers would otherwise compare 0.999 with 0.9990000128746033).
    let recorded: TrainConfig = serde_json::from_value(recorded)
        .map_err(|e| Error::invalid(&path, "config", format!("not this version's settings ({e}); pass --overwrite to redo the run")))?;
    settings_diff(&recorded, config, &path)
}

/// The settings that differ between `recorded` and `now`, as
/// `field: recorded -> now` (`path` names the record in errors).
fn settings_diff(recorded: &TrainConfig, now: &TrainConfig, path: &Path) -> Result<Vec<String>> {
    let json = |c: &TrainConfig| -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(c).map_err(|source| Error::json(path.to_path_buf(), source))?;
        // Logging only: what is trained does not depend on them.
        if let Some(o) = v.as_object_mut() {
            o.remove("tensorboard");
            o.remove("log_iter");
        }
        Ok(v)
    };
    let mut out = Vec::new();
    diff_values("", &json(recorded)?, &json(now)?, &mut out);
    Ok(out)
}

/// Appends `path: a -> b` for every leaf where `a` and `b` differ.
fn diff_values(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                diff_values(&sub, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}

/// The file of the checkpoint taken at `epoch` for Q interval `interval`,
/// relative to the run directory: `checkpoints/q_<lo>_e<epoch>.ckpt`.
///
/// Unique for any interval width, since one epoch writes at most one
/// checkpoint (the lower bound alone, printed to a fixed precision, once
/// gave two narrow intervals one file). A new best of an interval is a new
/// file; the one it replaces is removed after `summary.json` names the new
/// one, so the records never name a file holding another epoch.
pub fn checkpoint_file(interval: [f64; 2], epoch: usize) -> PathBuf {
    PathBuf::from("checkpoints").join(format!("q_{}_e{epoch:03}.ckpt", interval[0]))
}

/// The seed of repeat `repeat`.
pub fn repeat_seed(base: u64, repeat: usize) -> u64 {
    base.wrapping_add(repeat as u64)
}

impl TrainConfig {
    /// Refuses data with an empty training, selection or test split, before
    /// anything is written: such a run would "finish" with a summary that
    /// holds no usable point.
    pub fn check_splits(&self, data: &PreparedData) -> Result<()> {
        if data.train.len == 0 {
            return Err(Error::EmptySplit { split: "training", reason: "no items to train on".into() });
        }
        if let (SelectOn::Val, Some(val)) = (self.select_on, &data.val)
            && val.len == 0
        {
            return Err(Error::EmptySplit {
                split: "validation",
                reason: format!(
                    "--val-split {} of {} training items rounds to none, and it selects the checkpoints; \
                     raise --val-split or pass --select-on test",
                    self.val_split,
                    data.train.len
                ),
            });
        }
        if data.test.len == 0 {
            return Err(Error::EmptySplit { split: "test", reason: "no items to evaluate on".into() });
        }
        Ok(())
    }

    /// Trains one run into `run_dir` and returns its summary.
    ///
    /// `config.json` is written before the first step, `metrics.jsonl`
    /// after every epoch, `summary.json` and checkpoints atomically after
    /// every epoch, so a run stopped at any point (or by a non-finite
    /// loss) leaves complete files behind.
    pub fn fit(&self, data: &PreparedData, run_dir: &Path, repeat: usize, device: &Device, progress: &Progress) -> Result<RunSummary> {
        self.fit_inner(data, run_dir, repeat, device, progress, false, &mut |_, _| {}).map(|(summary, _)| summary)
    }

    /// [`TrainConfig::fit`], continuing from the run's resume state
    /// (`last.ckpt`, written after every epoch) when `resume` is set and
    /// the state exists; the settings must be those the run was started
    /// with. The epochs after the state give the same metrics as an
    /// uninterrupted run (bit for bit with one thread; with more, float
    /// sums may be ordered differently, as between any two runs).
    pub fn fit_or_resume(
        &self,
        data: &PreparedData,
        run_dir: &Path,
        repeat: usize,
        device: &Device,
        progress: &Progress,
        resume: bool,
    ) -> Result<RunSummary> {
        self.fit_inner(data, run_dir, repeat, device, progress, resume, &mut |_, _| {}).map(|(summary, _)| summary)
    }

    /// [`TrainConfig::fit`], also returning the final trainable state
    /// (what warm-up saves).
    pub fn fit_learner(
        &self,
        data: &PreparedData,
        run_dir: &Path,
        repeat: usize,
        device: &Device,
        progress: &Progress,
    ) -> Result<(RunSummary, Learner)> {
        self.fit_inner(data, run_dir, repeat, device, progress, false, &mut |_, _| {})
    }

    /// [`TrainConfig::fit_learner`], showing `observe` every training batch
    /// as the step receives it (after sampling and augmentation) with its
    /// epoch: how tests see what the loop does to the data.
    pub fn fit_observed(
        &self,
        data: &PreparedData,
        run_dir: &Path,
        repeat: usize,
        device: &Device,
        progress: &Progress,
        observe: &mut dyn FnMut(usize, &HostBatch),
    ) -> Result<(RunSummary, Learner)> {
        self.fit_inner(data, run_dir, repeat, device, progress, false, observe)
    }

    fn fit_inner(
        &self,
        data: &PreparedData,
        run_dir: &Path,
        repeat: usize,
        device: &Device,
        progress: &Progress,
        resume: bool,
        observe: &mut dyn FnMut(usize, &HostBatch),
    ) -> Result<(RunSummary, Learner)> {
        // Set-up: checks, the run's record, the modules, the schedules.
        self.check_prepared(data)?;
        let started = Instant::now();
        let seed = repeat_seed(self.seed, repeat);
        device.seed(seed);
        std::fs::create_dir_all(run_dir.join("checkpoints")).map_err(|e| Error::io(run_dir, e))?;
        self.write_record(data, run_dir, repeat, seed)?;
        let learner = self.build_learner(device, progress)?;
        let mut course = Course {
            lambda: self.lambda.init(),
            budget: self.target_q.map(|t| {
                BudgetController::new(t, self.lambda.init, self.lambda.factor, self.lambda.patience)
                    .shifting_from_start(self.mask_type == super::MaskType::Dynamic)
            }),
            tau: self.tau.init(),
            curve: QCurve::new(self.checkpoint_qloss_interval),
        };
        let (mut learner, first_epoch, seconds_before, mut metrics) =
            match self.start_or_resume(run_dir, resume, learner, &mut course, progress)? {
                Start::Finished(summary, learner) => return Ok((summary, learner)),
                Start::Continue { learner, first_epoch, seconds_before, metrics } => (learner, first_epoch, seconds_before, metrics),
            };
        let ce = CrossEntropyLossConfig::new().init(device);
        let mut summary: Option<RunSummary> = None;
        let n_batches = self.sampling.epoch_len(&data.train.classes).div_ceil(self.batch_size);
        let mut board = RunBoard::open(run_dir, first_epoch - 1, n_batches, self.tensorboard)?;
        // Items are augmented as stored, before any xor versions are made.
        let mut augmenter = Augmenter::new(self.augment, data.info.shape)?;

        for epoch in first_epoch..=self.n_epochs {
            // Device randomness (dropout) is seeded per epoch, so that a
            // resumed run draws what the uninterrupted one did.
            device.seed(epoch_device_seed(seed, epoch));
            let epoch_started = Instant::now();
            let mut params = StepParams {
                lambda: course.lambda.lambda(),
                tau: course.tau.tau(),
                lr_net: self.optim.lr_net,
                lr_mask: self.optim.lr_mask,
                freeze_mask: self.freeze_mask,
            };
            let mut batches = EpochBatches { data, seed, augmenter: &mut augmenter, ce: &ce, n_batches, board: board.as_mut(), observe };
            let sums;
            (learner, sums) = self.train_epoch(learner, epoch, &mut params, &mut course.budget, &mut batches, progress, run_dir)?;
            let train_seconds = epoch_started.elapsed().as_secs_f64();

            // Evaluate on validation and test, with the hard mask.
            let net = learner.net.valid();
            let mask = learner.mask.as_ref().map(|m| m.valid());
            let tau = course.tau.tau();
            let eval = |split: &TensorSplit| evaluate(&net, mask.as_ref(), tau, split, self.eval_batch_size);
            let val = data.val.as_ref().map(eval).transpose()?;
            let test = eval(&data.test)?;
            let selected: &Evaluation = match (self.select_on, &val) {
                (SelectOn::Val, Some(v)) => v,
                _ => &test,
            };
            let scores = Scores { val: val.as_ref(), test: &test, selected };
            let superseded = self.keep_best(&mut course.curve, run_dir, data, epoch, params.lambda, tau, &net, mask.as_ref(), &scores)?;

            // Record the epoch.
            let m = EpochMetrics {
                epoch,
                train_loss: sums.loss / n_batches as f64,
                task_loss: sums.task / n_batches as f64,
                train_q: sums.q / n_batches as f64,
                q: selected.q,
                bytes_fraction: selected.bytes_fraction,
                lambda: params.lambda,
                tau,
                val_loss: val.as_ref().map(|v| v.loss),
                val_accuracy: val.as_ref().map(|v| v.accuracy),
                test_loss: test.loss,
                test_accuracy: test.accuracy,
                q_percentiles: (self.mask_type == super::MaskType::Dynamic).then_some(selected.q_percentiles),
                version_fractions: selected.version_fractions.clone(),
                seconds: epoch_started.elapsed().as_secs_f64(),
                train_seconds,
            };
            metrics.write(&m)?;
            if let Some(board) = &mut board {
                board.epoch(&m, mask.as_ref(), data, self)?;
            }
            self.report_epoch(&m, progress);

            // Step the schedules for the next epoch: λ grows on a Q
            // plateau, τ anneals (and resets when λ grew).
            let (grew, stop) = match &mut course.budget {
                Some(b) => {
                    let verdict = b.after_epoch(selected.q, selected.accuracy);
                    (verdict.lambda_grew, verdict.stop)
                }
                None => (course.lambda.step(selected.q), false),
            };
            course.tau.step(grew);

            let s = RunSummary {
                run_dir: run_dir.to_path_buf(),
                epochs_completed: epoch,
                epochs_planned: self.n_epochs,
                select_on: self.select_on,
                curve: course.curve.clone(),
                last: Some(m),
                seconds: seconds_before + started.elapsed().as_secs_f64(),
                stopped_early: stop && epoch < self.n_epochs,
                budget_point: self.target_q.and_then(|t| course.curve.best_within(t.q).cloned()),
            };
            self.save_epoch(run_dir, epoch, stop, &course, &learner, &s, superseded)?;
            summary = Some(s);
            if stop {
                progress.line(format!("budget met and accuracy settled: stopping after epoch {epoch}"));
                break;
            }
        }
        // What was written last is what is returned.
        Ok((summary.expect("n_epochs > 0 (validated)"), learner))
    }

    /// The configuration and the prepared data agree (items of the shape
    /// this run trains on, splits it needs).
    fn check_prepared(&self, data: &PreparedData) -> Result<()> {
        self.validate()?;
        self.check_splits(data)?;
        let [c, h, w] = self.prepared_shape(data.info.shape);
        let [dc, dh, dw] = data.train.shape();
        if [dc, dh, dw] != [c, h, w] {
            return Err(Error::config(
                "quality-levels",
                format!("data items of {:?}", [dc, dh, dw]),
                format!("this run needs {:?} (xor selection needs PreparedData::with_versions of its versions)", [c, h, w]),
            ));
        }
        Ok(())
    }

    /// Writes the run's `config.json`: settings, data and seed.
    fn write_record(&self, data: &PreparedData, run_dir: &Path, repeat: usize, seed: u64) -> Result<()> {
        let record = RunRecord {
            selmask_version: env!("CARGO_PKG_VERSION").to_string(),
            config: self.clone(),
            dataset: data.info.clone(),
            repeat,
            seed,
            split_sizes: SplitSizes {
                train: data.train.len,
                val: data.val.as_ref().map_or(0, |v| v.len),
                test: data.test.len,
            },
        };
        Ok(write_json(&run_dir.join("config.json"), &record)?)
    }

    /// The network and mask with their optimisers, as the run starts: from
    /// the warm-up or a checkpoint when given, the baselines' masks with
    /// every cell, a frozen mask without gradients.
    fn build_learner(&self, device: &Device, progress: &Progress) -> Result<Learner> {
        let mut net_optim = self.optim.net();
        // With its pretrained weights, when it has them (SqueezeNet 1.1).
        let mut net = self.network.build(device)?;
        if let Some(path) = &self.warmup {
            if !path.is_file() {
                return Err(Error::WarmupMissing { path: path.clone(), dataset: self.dataset.to_string() });
            }
            let (warm_net, warm_optim, meta) = checkpoint::load_warmup(path, &self.network, net_optim, device)?;
            progress.line(format!(
                "starting from warm-up {} ({} epochs, test accuracy {:.4})",
                path.display(),
                meta.epochs,
                meta.test_accuracy
            ));
            (net, net_optim) = (warm_net, warm_optim);
        }
        let mut mask = self.selection_mask().map(|m| m.init(device)).transpose()?;
        if let Some(path) = &self.init_checkpoint {
            let model = SelectionModel::load(path, device)?;
            // The checkpoint's weights and mask logits replace the starting
            // ones, so only the architectures have to agree, not the
            // --pretrained file or the mask's initialisation.
            let reason = if model.meta.network.architecture() != self.network.architecture() {
                Some(format!("its network is {:?}, this run's is {:?}", model.meta.network, self.network))
            } else if model.meta.mask.as_ref().map(MaskConfig::architecture) != self.selection_mask().as_ref().map(MaskConfig::architecture) {
                Some(format!("its mask is {:?}, this run's is {:?}", model.meta.mask, self.selection_mask()))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(Error::Checkpoint { path: path.clone(), reason });
            }
            progress.line(format!(
                "starting from checkpoint {} (epoch {}, q {:.4}, test accuracy {:.4})",
                path.display(),
                model.meta.point.epoch,
                model.meta.point.q,
                model.meta.point.test_accuracy
            ));
            // Autodiff copies: the loaded modules are trained further.
            net = model.net.train();
            mask = model.mask.map(|m| m.train());
        }
        // The baselines' masks follow their schedule, starting with every cell.
        let schedule = match &self.schedule {
            Some(cfg) => Some(cfg.init(self.mask.layout()?.n_cells())?),
            None => None,
        };
        if let (Some(s), Some(Mask::Static(m))) = (&schedule, &mut mask) {
            m.set_logits(&s.logits());
        }
        if self.freeze_mask {
            // No gradient for the mask: the network's input gradient is not
            // even computed.
            mask = mask.map(|m| m.no_grad());
        }
        Ok(Learner { net, net_optim, mask, mask_optim: self.optim.mask(), schedule })
    }

    /// A fresh run's metrics file, or (with `resume` and a resume state in
    /// `run_dir`) the modules, schedules and records of its last epoch; a
    /// run killed after its last epoch but before its summary gets its
    /// summary and is finished.
    fn start_or_resume(&self, run_dir: &Path, resume: bool, learner: Learner, course: &mut Course, progress: &Progress) -> Result<Start> {
        let last_path = run_dir.join(LAST_FILE);
        let metrics_path = run_dir.join("metrics.jsonl");
        if !(resume && last_path.is_file()) {
            return Ok(Start::Continue { learner, first_epoch: 1, seconds_before: 0.0, metrics: JsonlWriter::create(&metrics_path)? });
        }
        let (state, mut learner): (ResumeState, Learner) = checkpoint::load_state(&last_path, learner)?;
        let differing = settings_diff(&state.config, self, &last_path)?;
        if !differing.is_empty() {
            return Err(Error::ResumeMismatch { path: last_path, settings: differing.join("; ") });
        }
        if self.freeze_mask {
            learner.mask = learner.mask.map(|m| m.no_grad());
        }
        learner.schedule = state.schedule;
        (course.lambda, course.budget, course.tau, course.curve) = (state.lambda, state.budget, state.tau, state.curve);
        remove_unrecorded_checkpoints(run_dir, &course.curve)?;
        progress.line(format!("resuming {} after epoch {} of {}", run_dir.display(), state.epoch, self.n_epochs));
        if state.stopped || state.epoch >= self.n_epochs {
            // Killed after its last state but before its summary.
            let last = read_jsonl::<EpochMetrics>(&metrics_path)?.into_iter().nth(state.epoch - 1);
            let s = RunSummary {
                run_dir: run_dir.to_path_buf(),
                epochs_completed: state.epoch,
                epochs_planned: self.n_epochs,
                select_on: self.select_on,
                budget_point: self.target_q.and_then(|t| course.curve.best_within(t.q).cloned()),
                curve: course.curve.clone(),
                last,
                seconds: state.seconds,
                stopped_early: state.stopped && state.epoch < self.n_epochs,
            };
            write_json(&run_dir.join("summary.json"), &s)?;
            return Ok(Start::Finished(s, learner));
        }
        Ok(Start::Continue {
            learner,
            first_epoch: state.epoch + 1,
            seconds_before: state.seconds,
            metrics: JsonlWriter::resume(&metrics_path, state.epoch)?,
        })
    }

    /// Trains one epoch: every batch a step of the network and the mask
    /// (λ from the budget controller when there is one, which may also
    /// shift the mask's logits after the step); the losses summed.
    #[allow(clippy::too_many_arguments)]
    fn train_epoch(
        &self,
        mut learner: Learner,
        epoch: usize,
        params: &mut StepParams,
        budget: &mut Option<BudgetController>,
        batches: &mut EpochBatches<'_>,
        progress: &Progress,
        run_dir: &Path,
    ) -> Result<(Learner, EpochSums)> {
        let data = batches.data;
        let bar = progress.epoch_bar(epoch, self.n_epochs, batches.n_batches);
        let mut sums = EpochSums::default();
        let order = self.sampling.epoch_order(&data.train.classes, &mut epoch_rng(batches.seed, epoch));
        let mut aug_rng = augment_rng(batches.seed, epoch);
        for (i, host) in data.train.host_batches(self.batch_size, &order).enumerate() {
            let mut host = host?;
            host.augment(batches.augmenter, &mut aug_rng);
            (batches.observe)(epoch, &host);
            let batch = data.train.to_device(host);
            if let Some(b) = budget.as_ref() {
                params.lambda = b.lambda();
            }
            let (next, losses) = learner.step(batch, batches.ce, *params);
            learner = next;
            if !losses.is_finite() {
                bar.abandon();
                return Err(Error::NonFiniteLoss {
                    value: if losses.loss.is_finite() { losses.task } else { losses.loss },
                    epoch,
                    batch: i,
                    run_dir: run_dir.to_path_buf(),
                });
            }
            if let Some(b) = budget.as_mut() {
                let shift = b.after_batch(losses.q as f64);
                if shift != 0.0 {
                    learner.mask = learner.mask.map(|m| m.shift_logits(shift));
                }
            }
            sums.loss += losses.loss as f64;
            sums.task += losses.task as f64;
            sums.q += losses.q as f64;
            bar.inc(1);
            if self.log_iter > 0 && (i + 1) % self.log_iter == 0 {
                bar.set_message(format!("loss {:.4} q {:.4}", sums.loss / (i + 1) as f64, sums.q / (i + 1) as f64));
                if let Some(board) = batches.board.as_deref_mut() {
                    board.iteration(epoch, i, &losses)?;
                }
            }
        }
        bar.finish_and_clear();
        Ok((learner, sums))
    }

    /// Keeps this epoch's modules as the checkpoint of its Q interval when
    /// they beat the interval's best; returns the checkpoint file they
    /// supersede (removed only once the summary names the new one).
    #[allow(clippy::too_many_arguments)]
    fn keep_best(
        &self,
        curve: &mut QCurve,
        run_dir: &Path,
        data: &PreparedData,
        epoch: usize,
        lambda: f64,
        tau: f64,
        net: &Network,
        mask: Option<&Mask>,
        scores: &Scores<'_>,
    ) -> Result<Option<PathBuf>> {
        let selected = scores.selected;
        if !curve.improves(selected.q, selected.accuracy) {
            return Ok(None);
        }
        let interval = curve.interval(curve.bucket(selected.q));
        let file = checkpoint_file(interval, epoch);
        let superseded = curve.points.iter().find(|p| p.interval == interval).map(|p| p.checkpoint.clone());
        let point = CurvePoint {
            interval,
            q: selected.q,
            bytes_fraction: selected.bytes_fraction,
            val_accuracy: scores.val.map(|v| v.accuracy),
            test_accuracy: scores.test.accuracy,
            selection_accuracy: selected.accuracy,
            epoch,
            lambda,
            checkpoint: file.clone(),
        };
        let meta = CheckpointMeta {
            selmask_version: env!("CARGO_PKG_VERSION").to_string(),
            dataset: data.info.clone(),
            network: self.network.clone(),
            mask_type: self.mask_type,
            mask: self.selection_mask(),
            point: point.clone(),
            tau,
        };
        checkpoint::save(&run_dir.join(&file), &meta, net, mask)?;
        curve.record(point);
        Ok(superseded)
    }

    /// The epoch's line in the log.
    fn report_epoch(&self, m: &EpochMetrics, progress: &Progress) {
        let versions: String = m.version_fractions.iter().map(|v| format!(" [{}]", v.summary())).collect();
        progress.line(format!(
            "epoch {:>3}/{} loss {:.4} q {:.4} bytes {:.4} λ {:.3e} val {} test {:.4}{versions} ({:.1}s)",
            m.epoch,
            self.n_epochs,
            m.train_loss,
            m.q,
            m.bytes_fraction,
            m.lambda,
            m.val_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
            m.test_accuracy,
            m.seconds
        ));
    }

    /// Writes the epoch's resume state, then its summary, then removes the
    /// checkpoint the epoch superseded.
    #[allow(clippy::too_many_arguments)]
    fn save_epoch(
        &self,
        run_dir: &Path,
        epoch: usize,
        stop: bool,
        course: &Course,
        learner: &Learner,
        summary: &RunSummary,
        superseded: Option<PathBuf>,
    ) -> Result<()> {
        // The resume state first: a run killed before its summary is
        // written continues from this epoch, and never from an older
        // state than the checkpoints on disk.
        let state = ResumeState {
            selmask_version: env!("CARGO_PKG_VERSION").to_string(),
            config: self.clone(),
            epoch,
            stopped: stop,
            lambda: course.lambda.clone(),
            budget: course.budget.clone(),
            tau: course.tau.clone(),
            schedule: learner.schedule.clone(),
            curve: course.curve.clone(),
            seconds: summary.seconds,
        };
        checkpoint::save_state(&run_dir.join(LAST_FILE), &state, learner)?;
        write_json(&run_dir.join("summary.json"), summary)?;
        // Only now that summary.json names the new checkpoint is the
        // one it replaces removed: a run killed in between still has
        // every checkpoint its records name.
        if let Some(old) = superseded {
            let old = run_dir.join(old);
            std::fs::remove_file(&old).map_err(|e| Error::io(&old, e))?;
        }
        Ok(())
    }
}

/// The schedules and the curve a run carries from epoch to epoch (saved in
/// [`LAST_FILE`] as part of its [`ResumeState`]).
struct Course {
    lambda: LambdaSchedule,
    budget: Option<BudgetController>,
    tau: TauSchedule,
    curve: QCurve,
}

/// How a run starts: already finished (a resume after its last epoch), or
/// at `first_epoch` with its metrics file open.
enum Start {
    Finished(RunSummary, Learner),
    Continue { learner: Learner, first_epoch: usize, seconds_before: f64, metrics: JsonlWriter },
}

/// What every epoch's batches are made with.
struct EpochBatches<'a> {
    data: &'a PreparedData,
    seed: u64,
    augmenter: &'a mut Augmenter,
    ce: &'a CrossEntropyLoss,
    n_batches: usize,
    board: Option<&'a mut RunBoard>,
    observe: &'a mut dyn FnMut(usize, &HostBatch),
}

/// Sums over one epoch's batches.
#[derive(Debug, Default, Clone, Copy)]
struct EpochSums {
    loss: f64,
    task: f64,
    q: f64,
}

/// An epoch's evaluations: validation (when there is a validation split),
/// test, and the one that selects checkpoints and drives λ.
struct Scores<'a> {
    val: Option<&'a Evaluation>,
    test: &'a Evaluation,
    selected: &'a Evaluation,
}
