//! Warm-up: train the network alone, without a mask, and save it with its
//! optimiser state, so mask runs can start from a trained network
//! (`--use-warmup-net`), as the paper did.

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;

use super::checkpoint::{WarmupMeta, save_warmup};
use super::progress::Progress;
use super::run::PreparedData;
use super::TrainConfig;
use crate::error::{Error, Result};

/// Trains `config`'s network without a mask (its mask and xor settings
/// are ignored; `data` must hold plain, unstacked items) into `run_dir`,
/// then writes the warm-up file `out`.
pub fn pretrain(config: &TrainConfig, data: &PreparedData, run_dir: &Path, out: &Path, device: &Device, progress: &Progress) -> Result<WarmupMeta> {
    if config.warmup.is_some() {
        return Err(Error::config("use-warmup-net", 1, "pretraining starts from scratch"));
    }
    let mut plain = config.clone();
    plain.use_any_mask = false;
    plain.xor = None;
    let (summary, learner) = plain.fit_learner(data, run_dir, 0, device, progress)?;
    let last = summary.last.as_ref().expect("at least one epoch");
    let meta = WarmupMeta {
        selmask_version: env!("CARGO_PKG_VERSION").to_string(),
        dataset: config.dataset,
        network: config.network.clone(),
        epochs: summary.epochs_completed,
        val_accuracy: last.val_accuracy,
        test_accuracy: last.test_accuracy,
        config: plain,
    };
    save_warmup(out, &meta, &learner.net.valid(), &learner.net_optim)?;
    Ok(meta)
}
