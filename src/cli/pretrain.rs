//! `selmask pretrain`: the warm-up network, its flags and the action.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::error::Result;
use crate::masks::schedule::LambdaScheduleConfig;
use crate::training::{SelectOn, TrainConfig};
use crate::training::optim::OptimConfig;
use crate::training::pretrain::pretrain;
use crate::training::progress::{Progress, Verbosity};
use crate::training::run::PreparedData;
use super::{DataArgs, device, load_dataset};

/// `selmask pretrain`.
#[derive(Debug, Clone, Args)]
pub struct PretrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub n_epochs: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.001, allow_negative_numbers = true)]
    pub lr_net: f64,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Directory the warm-up file <dataset>.warmup is written to.
    #[arg(long, default_value = "models")]
    pub warmup_dir: PathBuf,
    /// Where the pretraining run's metrics go: <exp-dir>/<dataset>/pretrain/.
    #[arg(long, default_value = "./runs")]
    pub exp_dir: PathBuf,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print only errors and the result.
    #[arg(long, short)]
    pub quiet: bool,
}

impl PretrainArgs {
    /// The configuration of a plain-network run, and the warm-up file path.
    pub fn to_config(&self, shape: [usize; 3], n_classes: usize) -> Result<(TrainConfig, PathBuf)> {
        let dataset = self.data.dataset;
        self.data.check_val_split()?;
        let config = TrainConfig {
            use_any_mask: false,
            batch_size: self.batch_size,
            n_epochs: self.n_epochs,
            optim: OptimConfig { lr_net: self.lr_net, ..OptimConfig::default() },
            lambda: LambdaScheduleConfig { init: 0.0, factor: 1.0, patience: 1, threshold: 0.0, cooldown: 0 },
            val_split: self.data.val_split,
            select_on: if self.data.val_split > 0.0 { SelectOn::Val } else { SelectOn::Test },
            seed: self.seed,
            augment: self.data.augment_config(dataset)?,
            sampling: self.data.sampling(dataset)?,
            ..TrainConfig::new(dataset, self.data.network(shape, n_classes)?, shape)
        };
        config.validate()?;
        Ok((config, crate::training::checkpoint::warmup_path(&self.warmup_dir, dataset)))
    }
}

/// `selmask pretrain`.
pub fn run(args: &PretrainArgs) -> anyhow::Result<()> {
    let dataset = load_dataset(&args.data)?;
    let (config, out) = args.to_config(dataset.info().shape, dataset.info().n_classes)?;
    let device = device(args.data.backend);
    let data = PreparedData::from_training_data(dataset, config.val_split, config.seed, None, &device)?;
    let run_dir = args.exp_dir.join(config.dataset.as_str()).join("pretrain").join(format!("seed_{}", config.seed));
    let verbosity = if args.quiet { Verbosity::Quiet } else { Verbosity::Normal };
    let meta = pretrain(&config, &data, &run_dir, &out, &device, &Progress::new(verbosity, "pretrain"))
        .with_context(|| format!("pretraining {} into {}", config.dataset, out.display()))?;
    println!(
        "warm-up network written to {} ({} epochs, val accuracy {}, test accuracy {:.4})",
        out.display(),
        meta.epochs,
        meta.val_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
        meta.test_accuracy
    );
    Ok(())
}
