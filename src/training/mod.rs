//! Training: the joint network + mask loop, warm-up, checkpoints, metrics.
//!
//! [`TrainConfig::fit`] trains one run and returns a [`run::RunSummary`]
//! (the accuracy-versus-Q curve with its checkpoints), a different type
//! from the trainable modules, as linfa's `Fit`.

pub mod checkpoint;
pub mod container;
pub mod evaluate;
pub mod metrics;
pub mod optim;
pub mod pretrain;
pub mod progress;
pub mod run;
pub mod step;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::data::DatasetName;
use crate::error::{Error, Result};
use crate::masks::schedule::{LambdaScheduleConfig, TauScheduleConfig};
use crate::masks::static_mask::StaticMaskConfig;
use crate::models::NetworkConfig;
use optim::OptimConfig;

/// How inputs are masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskType {
    /// One learned mask for every input.
    Static,
}

impl FromStr for MaskType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "static" => Ok(MaskType::Static),
            _ => Err(Error::config("mask-type", s, "known mask types: static")),
        }
    }
}

impl fmt::Display for MaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MaskType::Static => "static",
        })
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
    /// Whether a selection mask is used at all (false: plain network).
    pub use_any_mask: bool,
    /// The static mask.
    pub mask: StaticMaskConfig,
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
    /// Print a progress line every this many iterations (0: never).
    pub log_iter: usize,
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
}

impl TrainConfig {
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
        if !(w.is_finite() && w > 0.0 && w <= 1.0) {
            return Err(Error::config("checkpoint-qloss-interval", w, "must be in (0, 1]"));
        }
        if !(0.0..1.0).contains(&self.val_split) {
            return Err(Error::config("val-split", self.val_split, "must be in [0, 1)"));
        }
        if self.val_split == 0.0 && self.select_on == SelectOn::Val {
            return Err(Error::config("val-split", 0, "selecting on validation needs a validation split (or --select-on test)"));
        }
        if !(self.mask.init_std.is_finite() && self.mask.init_std >= 0.0) {
            return Err(Error::config("any-init-std", self.mask.init_std, "must be finite and >= 0"));
        }
        if !self.mask.init_mean.is_finite() {
            return Err(Error::config("any-init-mean", self.mask.init_mean, "must be finite"));
        }
        if self.warmup.is_some() && self.init_checkpoint.is_some() {
            return Err(Error::config("init-checkpoint", "set", "cannot be combined with --use-warmup-net"));
        }
        self.optim.validate()?;
        self.lambda.validate()?;
        self.tau.validate()?;
        self.mask.layout()?;
        Ok(())
    }
}

/// A small valid configuration for unit tests.
#[cfg(test)]
pub(crate) fn example_config() -> TrainConfig {
    use crate::masks::granularity::Granularity;
    TrainConfig {
        dataset: DatasetName::Synthetic,
        network: NetworkConfig::Mlp { inputs: 4, n_classes: 2, hidden: 4 },
        mask_type: MaskType::Static,
        use_any_mask: true,
        mask: StaticMaskConfig {
            input_shape: [1, 2, 2],
            granularity: Granularity::Pixel,
            init_mean: 3.0,
            init_std: 0.01,
            input_drop_upscaling: false,
        },
        batch_size: 2,
        eval_batch_size: 2,
        n_epochs: 1,
        optim: OptimConfig::default(),
        lambda: LambdaScheduleConfig { init: 1.0, factor: 1.5, patience: 1, threshold: 0.0025, cooldown: 0 },
        tau: TauScheduleConfig { init: 1.0, min: 1.0, factor: 1.0 },
        checkpoint_qloss_interval: 0.05,
        val_split: 0.1,
        select_on: SelectOn::Val,
        seed: 0,
        log_iter: 0,
        warmup: None,
        init_checkpoint: None,
        freeze_mask: false,
    }
}
