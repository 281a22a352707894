//! The training loop of one run: train, evaluate, keep the best checkpoint
//! of each Q interval, step the schedules.
//!
//! Written top to bottom on purpose: every epoch does exactly what
//! `METHOD.md` describes, in that order.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::budget::BudgetController;
use super::checkpoint::{self, CheckpointMeta, SelectionModel};
use super::evaluate::{Evaluation, evaluate};
use super::metrics::{CurvePoint, EpochMetrics, JsonlWriter, QCurve};
use super::progress::Progress;
use super::step::{Learner, StepParams};
use super::{SelectOn, TrainConfig};
use crate::data::augment::Augmenter;
use crate::data::batch::{HostBatch, TensorSplit, augment_rng, epoch_rng};
use crate::data::ships::{FileSet, ListedDataset};
use crate::data::split::{split_indices, train_val_split};
use crate::data::versions::VersionsConfig;
use crate::data::{Dataset, DatasetInfo, ImageSet, TrainingData};
use crate::masks::{Mask, MaskConfig};
use crate::error::{Error, Result};
use crate::util::write_json;

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

/// The seed of repeat `repeat`.
pub fn repeat_seed(base: u64, repeat: usize) -> u64 {
    base.wrapping_add(repeat as u64)
}

impl TrainConfig {
    /// Trains one run into `run_dir` and returns its summary.
    ///
    /// `config.json` is written before the first step, `metrics.jsonl`
    /// after every epoch, `summary.json` and checkpoints atomically after
    /// every epoch, so a run stopped at any point (or by a non-finite
    /// loss) leaves complete files behind.
    pub fn fit(&self, data: &PreparedData, run_dir: &Path, repeat: usize, device: &Device, progress: &Progress) -> Result<RunSummary> {
        self.fit_learner(data, run_dir, repeat, device, progress).map(|(summary, _)| summary)
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
        self.fit_observed(data, run_dir, repeat, device, progress, &mut |_, _| {})
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
        self.validate()?;
        let [c, h, w] = self.prepared_shape(data.info.shape);
        let [dc, dh, dw] = data.train.shape();
        if [dc, dh, dw] != [c, h, w] {
            return Err(Error::config(
                "quality-levels",
                format!("data items of {:?}", [dc, dh, dw]),
                format!("this run needs {:?} (xor selection needs PreparedData::with_versions of its versions)", [c, h, w]),
            ));
        }
        let started = Instant::now();
        let seed = repeat_seed(self.seed, repeat);
        device.seed(seed);
        std::fs::create_dir_all(run_dir.join("checkpoints")).map_err(|e| Error::io(run_dir, e))?;
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
        write_json(&run_dir.join("config.json"), &record)?;

        // Modules and optimisers.
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
        let mut learner = Learner { net, net_optim, mask, mask_optim: self.optim.mask(), schedule };

        let mut lambda = self.lambda.init();
        let mut budget = self.target_q.map(|t| BudgetController::new(t, self.lambda.init, self.lambda.factor, self.lambda.patience));
        let mut tau = self.tau.init();
        let mut curve = QCurve::new(self.checkpoint_qloss_interval);
        let mut metrics = JsonlWriter::create(&run_dir.join("metrics.jsonl"))?;
        let ce = CrossEntropyLossConfig::new().init(device);
        let mut summary: Option<RunSummary> = None;
        let n_batches = self.sampling.epoch_len(&data.train.classes).div_ceil(self.batch_size);
        // Items are augmented as stored, before any xor versions are made.
        let mut augmenter = Augmenter::new(self.augment, data.info.shape)?;

        for epoch in 1..=self.n_epochs {
            // Train one epoch.
            let epoch_started = Instant::now();
            let mut params = StepParams {
                lambda: lambda.lambda(),
                tau: tau.tau(),
                lr_net: self.optim.lr_net,
                lr_mask: self.optim.lr_mask,
                freeze_mask: self.freeze_mask,
            };
            let bar = progress.epoch_bar(epoch, self.n_epochs, n_batches);
            let (mut loss_sum, mut task_sum, mut q_sum) = (0.0f64, 0.0f64, 0.0f64);
            let order = self.sampling.epoch_order(&data.train.classes, &mut epoch_rng(seed, epoch));
            let mut aug_rng = augment_rng(seed, epoch);
            for (i, host) in data.train.host_batches(self.batch_size, &order).enumerate() {
                let mut host = host?;
                host.augment(&mut augmenter, &mut aug_rng);
                observe(epoch, &host);
                let batch = data.train.to_device(host);
                if let Some(b) = &budget {
                    params.lambda = b.lambda();
                }
                let (next, losses) = learner.step(batch, &ce, params);
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
                if let Some(b) = &mut budget {
                    b.after_batch(losses.q as f64);
                }
                loss_sum += losses.loss as f64;
                task_sum += losses.task as f64;
                q_sum += losses.q as f64;
                bar.inc(1);
                if self.log_iter > 0 && (i + 1) % self.log_iter == 0 {
                    bar.set_message(format!("loss {:.4} q {:.4}", loss_sum / (i + 1) as f64, q_sum / (i + 1) as f64));
                }
            }
            bar.finish_and_clear();
            let train_seconds = epoch_started.elapsed().as_secs_f64();

            // Evaluate on validation and test, with the hard mask.
            let net = learner.net.valid();
            let mask = learner.mask.as_ref().map(|m| m.valid());
            let eval = |split: &TensorSplit| evaluate(&net, mask.as_ref(), tau.tau(), split, self.eval_batch_size);
            let val = data.val.as_ref().map(eval).transpose()?;
            let test = eval(&data.test)?;
            let selected: &Evaluation = match (self.select_on, &val) {
                (SelectOn::Val, Some(v)) => v,
                _ => &test,
            };

            // Keep the best checkpoint of this Q interval.
            if curve.improves(selected.q, selected.accuracy) {
                let interval = curve.interval(curve.bucket(selected.q));
                let file = PathBuf::from("checkpoints").join(format!("q_{:.4}.ckpt", interval[0]));
                let point = CurvePoint {
                    interval,
                    q: selected.q,
                    bytes_fraction: selected.bytes_fraction,
                    val_accuracy: val.as_ref().map(|v| v.accuracy),
                    test_accuracy: test.accuracy,
                    selection_accuracy: selected.accuracy,
                    epoch,
                    lambda: params.lambda,
                    checkpoint: file.clone(),
                };
                let meta = CheckpointMeta {
                    selmask_version: env!("CARGO_PKG_VERSION").to_string(),
                    dataset: data.info.clone(),
                    network: self.network.clone(),
                    mask_type: self.mask_type,
                    mask: self.selection_mask(),
                    point: point.clone(),
                    tau: tau.tau(),
                };
                checkpoint::save(&run_dir.join(&file), &meta, &net, mask.as_ref())?;
                curve.record(point);
            }

            // Record the epoch.
            let m = EpochMetrics {
                epoch,
                train_loss: loss_sum / n_batches as f64,
                task_loss: task_sum / n_batches as f64,
                train_q: q_sum / n_batches as f64,
                q: selected.q,
                bytes_fraction: selected.bytes_fraction,
                lambda: params.lambda,
                tau: tau.tau(),
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
            let versions: String = m.version_fractions.iter().map(|v| format!(" [{}]", v.summary())).collect();
            progress.line(format!(
                "epoch {epoch:>3}/{} loss {:.4} q {:.4} bytes {:.4} λ {:.3e} val {} test {:.4}{versions} ({:.1}s)",
                self.n_epochs,
                m.train_loss,
                m.q,
                m.bytes_fraction,
                m.lambda,
                m.val_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
                m.test_accuracy,
                m.seconds
            ));

            // Step the schedules for the next epoch: λ grows on a Q
            // plateau, τ anneals (and resets when λ grew).
            let (grew, stop) = match &mut budget {
                Some(b) => {
                    let verdict = b.after_epoch(selected.q, selected.accuracy);
                    (verdict.lambda_grew, verdict.stop)
                }
                None => (lambda.step(selected.q), false),
            };
            tau.step(grew);

            let s = RunSummary {
                run_dir: run_dir.to_path_buf(),
                epochs_completed: epoch,
                epochs_planned: self.n_epochs,
                select_on: self.select_on,
                curve: curve.clone(),
                last: Some(m),
                seconds: started.elapsed().as_secs_f64(),
                stopped_early: stop && epoch < self.n_epochs,
                budget_point: self.target_q.and_then(|t| curve.best_within(t.q).cloned()),
            };
            write_json(&run_dir.join("summary.json"), &s)?;
            summary = Some(s);
            if stop {
                progress.line(format!("budget met and accuracy settled: stopping after epoch {epoch}"));
                break;
            }
        }
        // What was written last is what is returned.
        Ok((summary.expect("n_epochs > 0 (validated)"), learner))
    }
}
