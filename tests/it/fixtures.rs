//! Tiny seeded fixtures shared by the tests.

use std::path::Path;

use burn::prelude::*;
use selmask::data::{DatasetInfo, idx};
use selmask::data::synthetic::{SyntheticConfig, SyntheticData};
use selmask::masks::granularity::Granularity;
use selmask::masks::schedule::{LambdaScheduleConfig, TauScheduleConfig};
use selmask::masks::MaskConfig;
use selmask::masks::static_mask::StaticMaskConfig;
use selmask::models::NetworkConfig;
use selmask::training::optim::OptimConfig;
use selmask::training::{MaskType, SelectOn, TrainConfig};

/// The training device of the tests.
pub fn device() -> Device {
    Device::flex().autodiff()
}

/// Writes the four (Fashion-)MNIST IDX files of a tiny dataset into `dir`
/// (`n_train` and `n_test` items of 28x28, labels `i % 10`), gzipped or raw.
pub fn write_mnist(dir: &Path, n_train: usize, n_test: usize, gzip: bool) {
    use std::io::Write;
    let write = |name: &str, bytes: Vec<u8>| {
        if gzip {
            let f = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
            let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            enc.write_all(&bytes).unwrap();
            enc.finish().unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    };
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let pixels: Vec<u8> = (0..n * 784).map(|i| (i * 7 % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write(&format!("{prefix}-images-idx3-ubyte"), idx::encode(&[n as u32, 28, 28], &pixels));
        write(&format!("{prefix}-labels-idx1-ubyte"), idx::encode(&[n as u32], &labels));
    }
}

/// A small synthetic problem: 10x10 single-channel inputs, 10 informative
/// pixels, 4 classes.
pub fn small_synthetic(seed: u64) -> SyntheticData {
    SyntheticConfig {
        shape: [1, 10, 10],
        granularity: Granularity::Pixel,
        n_informative: 10,
        n_classes: 4,
        n_train: 3000,
        n_test: 500,
        seed,
        moving: false,
    }
    .generate()
}

/// A training configuration for the small synthetic problem (MLP network).
pub fn synthetic_config(data: &SyntheticData, n_epochs: usize) -> TrainConfig {
    config_for(&data.dataset.info, n_epochs)
}

/// [`synthetic_config`] for any small dataset of `info`: an MLP and a
/// static per-pixel mask.
pub fn config_for(info: &DatasetInfo, n_epochs: usize) -> TrainConfig {
    TrainConfig {
        dataset: info.name,
        network: NetworkConfig::by_name("mlp", info.shape, info.n_classes).unwrap(),
        mask_type: MaskType::Static,
        use_any_mask: true,
        mask: MaskConfig::Static(StaticMaskConfig {
            input_shape: info.shape,
            granularity: Granularity::Pixel,
            init_mean: 3.0,
            init_std: 0.01,
            input_drop_upscaling: false,
        }),
        xor: None,
        schedule: None,
        batch_size: 64,
        eval_batch_size: 500,
        n_epochs,
        optim: OptimConfig { lr_net: 2e-3, lr_mask: 0.05, ..OptimConfig::default() },
        lambda: LambdaScheduleConfig { init: 1.0, factor: 1.0, patience: 1, threshold: 0.0025, cooldown: 0 },
        target_q: None,
        tau: TauScheduleConfig { init: 1.0, min: 1.0, factor: 1.0 },
        checkpoint_qloss_interval: 0.05,
        val_split: 0.1,
        select_on: SelectOn::Val,
        seed: 3,
        log_iter: 0,
        warmup: None,
        init_checkpoint: None,
        freeze_mask: false,
        augment: Default::default(),
        sampling: Default::default(),
    }
}
