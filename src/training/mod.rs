//! Training: the joint network + mask loop, warm-up, checkpoints, metrics.
//!
//! [`TrainConfig::fit`] trains one run and returns a [`run::RunSummary`]
//! (the accuracy-versus-Q curve with its checkpoints), a different type
//! from the trainable modules, as linfa's `Fit`.

pub mod budget;
pub mod checkpoint;
pub mod container;
pub mod evaluate;
pub mod metrics;
pub mod optim;
pub mod pretrain;
pub mod progress;
pub mod run;
pub mod step;
pub mod tensorboard;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::data::DatasetName;
use crate::data::augment::{AugmentConfig, Augmenter};
use crate::data::sampling::Sampling;
use crate::error::{Error, Result};
use crate::masks::schedule::{LambdaScheduleConfig, TauScheduleConfig};
use crate::masks::MaskConfig;
use crate::masks::xor::{XorConfig, XorPipelineConfig};
use crate::masks::scheduled::CellScheduleConfig;
use crate::models::NetworkConfig;
use optim::OptimConfig;

/// How inputs are masked (the paper's `--mask-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskType {
    /// One learned mask for every input.
    Static,
    /// One learned mask per input, computed on the server.
    Dynamic,
    /// Baseline: cells removed in a random order on a schedule.
    Random,
    /// Baseline: cells removed in ascending order of an importance map.
    Given,
}

impl MaskType {
    /// Every mask type, for messages.
    pub const ALL: [MaskType; 4] = [MaskType::Static, MaskType::Dynamic, MaskType::Random, MaskType::Given];

    /// The paper's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            MaskType::Static => "static",
            MaskType::Dynamic => "dynamic",
            MaskType::Random => "random",
            MaskType::Given => "given",
        }
    }
}

impl FromStr for MaskType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        MaskType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| Error::config("mask-type", s, "known mask types: static, dynamic, random, given"))
    }
}

impl fmt::Display for MaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which split picks the best checkpoint of each Q interval and drives λ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectOn {
    /// The held-out validation split (default).
    Val,
    /// The test split, as the paper's code did.
    Test,
}

impl FromStr for SelectOn {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "val" | "validation" => Ok(SelectOn::Val),
            "test" => Ok(SelectOn::Test),
            _ => Err(Error::config("select-on", s, "must be val or test")),
        }
    }
}

impl fmt::Display for SelectOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SelectOn::Val => "val",
            SelectOn::Test => "test",
        })
    }
}

/// Everything one training run needs (saved as `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Dataset.
    pub dataset: DatasetName,
    /// Prediction network.
    pub network: NetworkConfig,
    /// Mask kind.
    pub mask_type: MaskType,
    /// Whether the any mask is used (false: a plain network, or xor
    /// selection alone).
    pub use_any_mask: bool,
    /// The any mask.
    pub mask: MaskConfig,
    /// Xor (version) selection before the any mask (`--quality-levels`,
    /// `--thumb-w/--thumb-h`); the prepared data then hold every item's
    /// stacked versions (see [`run::PreparedData::with_versions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xor: Option<XorConfig>,
    /// For the random and given baselines: the removal schedule.
    #[serde(default)]
    pub schedule: Option<CellScheduleConfig>,
    /// Training batch size.
    pub batch_size: usize,
    /// Evaluation batch size (no effect on results).
    pub eval_batch_size: usize,
    /// Epochs.
    pub n_epochs: usize,
    /// Optimisers.
    pub optim: OptimConfig,
    /// λ schedule.
    pub lambda: LambdaScheduleConfig,
    /// Budget-targeted training: λ driven to reach Q <= target (replaces
    /// the plateau schedule, which stays as its fallback).
    #[serde(default)]
    pub target_q: Option<budget::TargetQConfig>,
    /// τ schedule.
    pub tau: TauScheduleConfig,
    /// Width of the Q intervals that each keep their best checkpoint.
    pub checkpoint_qloss_interval: f64,
    /// Fraction of the training set held out for validation.
    pub val_split: f64,
    /// Which split selects checkpoints and drives λ.
    pub select_on: SelectOn,
    /// Base seed (repeat `i` uses `seed + i`).
    pub seed: u64,
    /// Print a progress line, and log the training losses to TensorBoard,
    /// every this many iterations (0: never).
    pub log_iter: usize,
    /// Write a TensorBoard event file into the run directory (see
    /// [`tensorboard`]); logging only, so a resume may change it.
    #[serde(default = "tensorboard_default")]
    pub tensorboard: bool,
    /// Warm-up network to start from (`--use-warmup-net`).
    pub warmup: Option<PathBuf>,
    /// A run's checkpoint whose network and mask weights this run starts
    /// from (`--init-checkpoint`), e.g. to fine-tune one point of a curve.
    #[serde(default)]
    pub init_checkpoint: Option<PathBuf>,
    /// Keep the mask fixed: only the network learns (with
    /// `init_checkpoint`, this fine-tunes one point of a curve).
    #[serde(default)]
    pub freeze_mask: bool,
    /// Training-time augmentation (the paper's per dataset; none for
    /// runs saved before it existed).
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Which training items an epoch visits.
    #[serde(default)]
    pub sampling: Sampling,
}

/// Runs saved before `tensorboard` existed resume with it on, the default.
fn tensorboard_default() -> bool {
    true
}

impl TrainConfig {
    /// The one constructor with defaults: `dataset` and `network` with a
    /// static per-pixel mask over inputs of `input_shape` (logits 3 ± 0.01,
    /// no input-drop upscaling), and the `train` defaults otherwise (batch
    /// 128, evaluation batch 1000, 50 epochs, λ from 1 × 1.25 on plateaus
    /// of 1 epoch, constant τ, validation split 0.1, seed 0, log every 140
    /// iterations, no augmentation). Tests, the warm-up and examples change
    /// what they need with struct-update syntax (`TrainConfig { n_epochs:
    /// 2, ..TrainConfig::new(...) }`); `train` sets every field from its
    /// flags in [`crate::cli::train::TrainArgs::to_config`].
    pub fn new(dataset: DatasetName, network: NetworkConfig, input_shape: [usize; 3]) -> TrainConfig {
        TrainConfig {
            dataset,
            network,
            mask_type: MaskType::Static,
            use_any_mask: true,
            mask: MaskConfig::Static(crate::masks::static_mask::StaticMaskConfig {
                input_shape,
                granularity: selmask_wire::granularity::Granularity::Pixel,
                init_mean: 3.0,
                init_std: 0.01,
                input_drop_upscaling: false,
            }),
            xor: None,
            schedule: None,
            batch_size: 128,
            eval_batch_size: 1000,
            n_epochs: 50,
            optim: OptimConfig::default(),
            lambda: LambdaScheduleConfig { init: 1.0, factor: 1.25, patience: 1, threshold: 0.0025, cooldown: 0 },
            target_q: None,
            tau: TauScheduleConfig { init: 1.0, min: 1.0, factor: 1.0 },
            checkpoint_qloss_interval: 0.05,
            val_split: 0.1,
            select_on: SelectOn::Val,
            seed: 0,
            log_iter: 140,
            tensorboard: true,
            warmup: None,
            init_checkpoint: None,
            freeze_mask: false,
            augment: AugmentConfig::NONE,
            sampling: Sampling::Shuffle,
        }
    }

    /// The mask the run trains: the any mask, xor selection followed by the
    /// any mask (the paper's pipeline) or alone, or none.
    pub fn selection_mask(&self) -> Option<MaskConfig> {
        match &self.xor {
            Some(xor) => Some(MaskConfig::Xor(XorPipelineConfig {
                xor: xor.clone(),
                any: self.use_any_mask.then(|| Box::new(self.mask.clone())),
            })),
            None => self.use_any_mask.then(|| self.mask.clone()),
        }
    }

    /// Values per prepared item: `[C, H, W]`, or `[V·C, H, W]` with xor
    /// selection's `V` stacked versions.
    pub fn prepared_shape(&self, shape: [usize; 3]) -> [usize; 3] {
        let [c, h, w] = shape;
        [self.xor.as_ref().map_or(1, |x| x.versions.n_versions()) * c, h, w]
    }

    /// Checks every range, naming the offending flag.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::config("batch-size", 0, "must be > 0"));
        }
        if self.eval_batch_size == 0 {
            return Err(Error::config("eval-batch-size", 0, "must be > 0"));
        }
        if self.n_epochs == 0 {
            return Err(Error::config("n-epochs", 0, "must be > 0"));
        }
        let w = self.checkpoint_qloss_interval;
        // Interval bounds are kept to 1e-9 (QCurve::interval), so widths
        // below 1e-6 would merge neighbouring intervals.
        if !(w.is_finite() && (1e-6..=1.0).contains(&w)) {
            return Err(Error::config("checkpoint-qloss-interval", w, "must be in [1e-6, 1]"));
        }
        if !(0.0..1.0).contains(&self.val_split) {
            return Err(Error::config("val-split", self.val_split, "must be in [0, 1)"));
        }
        if self.val_split == 0.0 && self.select_on == SelectOn::Val {
            return Err(Error::config("val-split", 0, "selecting on validation needs a validation split (or --select-on test)"));
        }
        if let MaskConfig::Static(m) = &self.mask {
            if !(m.init_std.is_finite() && m.init_std >= 0.0) {
                return Err(Error::config("any-init-std", m.init_std, "must be finite and >= 0"));
            }
            if !m.init_mean.is_finite() {
                return Err(Error::config("any-init-mean", m.init_mean, "must be finite"));
            }
        }
        let dynamic = matches!(self.mask, MaskConfig::Dynamic(_));
        let baseline = matches!(self.mask_type, MaskType::Random | MaskType::Given);
        if dynamic != (self.mask_type == MaskType::Dynamic) {
            return Err(Error::config("mask-type", self.mask_type, "dynamic masks go with --mask-type dynamic only"));
        }
        if baseline != self.schedule.is_some() {
            return Err(Error::config("mask-type", self.mask_type, "random and given masks need a removal schedule"));
        }
        if let Some(schedule) = &self.schedule {
            schedule.validate(self.mask.layout()?.n_cells())?;
        }
        if self.warmup.is_some() && self.init_checkpoint.is_some() {
            return Err(Error::config("init-checkpoint", "set", "cannot be combined with --use-warmup-net"));
        }
        if let Some(t) = &self.target_q {
            t.validate()?;
            if self.schedule.is_some() || self.freeze_mask {
                return Err(Error::config("target-q", t.q, "needs a learned mask (static or dynamic, not frozen)"));
            }
        }
        if let Some(xor) = &self.xor {
            self.validate_xor(xor)?;
        }
        // The crop must fit the input (reflect padding below its sides).
        Augmenter::new(self.augment, self.mask.input_shape())?;
        self.optim.validate()?;
        self.lambda.validate()?;
        self.tau.validate()?;
        self.mask.validate()?;
        Ok(())
    }
}

impl TrainConfig {
    fn validate_xor(&self, xor: &XorConfig) -> Result<()> {
        if self.dataset == DatasetName::Remote {
            // As the paper's code: versions are made of images, and turning
            // these measurements into images would lose precision.
            return Err(Error::config(
                "quality-levels",
                self.dataset,
                "jpeg and thumbnail versions need 8-bit images; the remote sensing data are measurements",
            ));
        }
        if matches!(self.mask_type, MaskType::Random | MaskType::Given) {
            return Err(Error::config("mask-type", self.mask_type, "xor (version) selection needs a learned mask: static or dynamic"));
        }
        if xor.dynamic.is_some() != (self.mask_type == MaskType::Dynamic) {
            return Err(Error::config("mask-type", self.mask_type, "dynamic xor masks go with --mask-type dynamic only"));
        }
        if xor.input_shape != self.mask.input_shape() {
            return Err(Error::config(
                "quality-levels",
                format!("{:?}", xor.input_shape),
                format!("versions must have the any mask's input shape {:?}", self.mask.input_shape()),
            ));
        }
        self.selection_mask().expect("xor selection is a mask").validate()
    }
}

/// A small valid configuration for unit tests.
#[cfg(test)]
pub(crate) fn example_config() -> TrainConfig {
    TrainConfig {
        batch_size: 2,
        eval_batch_size: 2,
        n_epochs: 1,
        lambda: LambdaScheduleConfig { init: 1.0, factor: 1.5, patience: 1, threshold: 0.0025, cooldown: 0 },
        log_iter: 0,
        tensorboard: false,
        ..TrainConfig::new(DatasetName::Synthetic, NetworkConfig::Mlp { inputs: 4, n_classes: 2, hidden: 4 }, [1, 2, 2])
    }
}
