//! Checkpoints of a run (one per Q interval) and warm-up networks.
//!
//! Both are [`container`](super::container) files: JSON metadata plus Burn
//! records (burnpack bytes) of the network, the mask and, for warm-up files,
//! the network's optimiser state.

use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::container;
use super::metrics::CurvePoint;
use super::step::Learner;
use super::{MaskType, TrainConfig};
use crate::data::{DatasetInfo, DatasetName};
use crate::error::{Error, Result};
use crate::masks::{Mask, MaskConfig};
use crate::models::{Network, NetworkConfig};

/// What a per-Q checkpoint records besides weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// `selmask` version that wrote it.
    pub selmask_version: String,
    /// The dataset's geometry and normalisation.
    pub dataset: DatasetInfo,
    /// The network.
    pub network: NetworkConfig,
    /// The mask kind.
    pub mask_type: MaskType,
    /// The mask settings (absent without a mask).
    pub mask: Option<MaskConfig>,
    /// The curve point this checkpoint is.
    pub point: CurvePoint,
    /// τ at that epoch.
    pub tau: f64,
}

fn record_bytes<M: Module>(module: &M, path: &Path) -> Result<Vec<u8>> {
    let bytes = module
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: format!("cannot serialise: {e}") })?;
    Ok(bytes.to_vec())
}

fn load_into<M: Module>(module: M, bytes: Vec<u8>, what: &str, path: &Path) -> Result<M> {
    let bad = |e: String| Error::Checkpoint { path: path.to_path_buf(), reason: format!("{what}: {e}") };
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| bad(e.to_string()))?;
    module.try_load_record(record).map_err(|e| bad(e.to_string()))
}

/// Writes a per-Q checkpoint atomically.
pub fn save(path: &Path, meta: &CheckpointMeta, net: &Network, mask: Option<&Mask>) -> Result<()> {
    let net_bytes = record_bytes(net, path)?;
    let mask_bytes = match mask {
        Some(m) => record_bytes(m, path)?,
        None => Vec::new(),
    };
    let mut sections: Vec<(&str, &[u8])> = vec![("net", &net_bytes)];
    if mask.is_some() {
        sections.push(("mask", &mask_bytes));
    }
    container::write(path, meta, &sections)
}

/// A trained network and mask loaded from a checkpoint: the artifact a
/// training run produces (what export and inference use).
#[derive(Debug)]
pub struct SelectionModel {
    /// Metadata of the checkpoint.
    pub meta: CheckpointMeta,
    /// The network.
    pub net: Network,
    /// The mask, if the run used one.
    pub mask: Option<Mask>,
}

impl SelectionModel {
    /// Loads a per-Q checkpoint onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let mut c = container::read::<CheckpointMeta>(path)?;
        let meta = c.meta.clone();
        let net = load_into(meta.network.init(device), c.take("net", path)?, "network", path)?;
        let mask = match &meta.mask {
            Some(cfg) => Some(load_into(cfg.init(device)?, c.take("mask", path)?, "mask", path)?),
            None => None,
        };
        Ok(SelectionModel { meta, net, mask })
    }
}

/// Writes the whole trainable state of `learner` (network, mask and both
/// optimisers) with `meta` to `path`, atomically: what `--resume` continues
/// from.
pub fn save_state<M: Serialize>(path: &Path, meta: &M, learner: &Learner) -> Result<()> {
    let optim_bytes = |o: &ModuleOptimizer, what: &str| -> Result<Vec<u8>> {
        Ok(o.into_bytes()
            .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: format!("cannot serialise {what}: {e}") })?
            .to_vec())
    };
    let net = record_bytes(&learner.net, path)?;
    let net_optim = optim_bytes(&learner.net_optim, "the network's optimiser")?;
    let mask_optim = optim_bytes(&learner.mask_optim, "the mask's optimiser")?;
    let mask = learner.mask.as_ref().map(|m| record_bytes(m, path)).transpose()?;
    let mut sections: Vec<(&str, &[u8])> = vec![("net", &net), ("net_optim", &net_optim), ("mask_optim", &mask_optim)];
    if let Some(mask) = &mask {
        sections.push(("mask", mask));
    }
    container::write(path, meta, &sections)
}

/// Reads a state written by [`save_state`] into `learner` (built with the
/// same settings), returning its metadata.
pub fn load_state<M: serde::de::DeserializeOwned>(path: &Path, mut learner: Learner) -> Result<(M, Learner)> {
    let mut c = container::read::<M>(path)?;
    learner.net = load_into(learner.net, c.take("net", path)?, "network", path)?;
    learner.mask = match learner.mask.take() {
        Some(mask) => Some(load_into(mask, c.take("mask", path)?, "mask", path)?),
        None if c.has("mask") => {
            return Err(Error::Checkpoint { path: path.to_path_buf(), reason: "it holds a mask, this run has none".into() });
        }
        None => None,
    };
    let optim = |o: ModuleOptimizer, bytes: Vec<u8>, what: &str| {
        o.from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: format!("{what}: {e}") })
    };
    learner.net_optim = optim(learner.net_optim, c.take("net_optim", path)?, "the network's optimiser")?;
    learner.mask_optim = optim(learner.mask_optim, c.take("mask_optim", path)?, "the mask's optimiser")?;
    Ok((c.meta, learner))
}

/// What a warm-up file records besides weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmupMeta {
    /// `selmask` version that wrote it.
    pub selmask_version: String,
    /// The dataset it was trained on.
    pub dataset: DatasetName,
    /// The network.
    pub network: NetworkConfig,
    /// Epochs trained.
    pub epochs: usize,
    /// Validation accuracy at the end (if there was a validation split).
    pub val_accuracy: Option<f64>,
    /// Test accuracy at the end.
    pub test_accuracy: f64,
    /// The training settings used.
    pub config: TrainConfig,
}

/// The conventional warm-up file of a dataset in `dir`.
pub fn warmup_path(dir: &Path, dataset: DatasetName) -> std::path::PathBuf {
    dir.join(format!("{dataset}.warmup"))
}

/// Writes a warm-up network and its optimiser state atomically.
pub fn save_warmup(path: &Path, meta: &WarmupMeta, net: &Network, optim: &ModuleOptimizer) -> Result<()> {
    let net_bytes = record_bytes(net, path)?;
    let optim_bytes = optim
        .into_bytes()
        .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: format!("cannot serialise optimiser: {e}") })?
        .to_vec();
    container::write(path, meta, &[("net", &net_bytes), ("net_optim", &optim_bytes)])
}

/// Whether two configurations are the same network started from the same
/// weights file, even when it was named by two paths (`w.safetensors` and
/// `../run/w.safetensors`, or a relative and an absolute path): the warm-up keeps
/// the path as it was given, the run may name it another way.
fn same_network_and_start(a: &NetworkConfig, b: &NetworkConfig) -> bool {
    match (a.pretrained(), b.pretrained()) {
        (Some(pa), Some(pb)) if a.architecture() == b.architecture() => {
            matches!((std::fs::canonicalize(pa), std::fs::canonicalize(pb)), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}

/// Loads a warm-up network and continues its optimiser state.
///
/// The network configuration must equal `expected` (a warm-up of another
/// network or class count cannot be continued).
pub fn load_warmup(
    path: &Path,
    expected: &NetworkConfig,
    optim: ModuleOptimizer,
    device: &Device,
) -> Result<(Network, ModuleOptimizer, WarmupMeta)> {
    let mut c = container::read::<WarmupMeta>(path)?;
    if &c.meta.network != expected && !same_network_and_start(&c.meta.network, expected) {
        let start = |p: Option<&Path>| p.map_or("random weights".to_string(), |p| format!("the weights in {}", p.display()));
        let reason = if c.meta.network.architecture() == expected.architecture() {
            // Same network, other starting weights (say a warm-up made
            // before --pretrained was given): say which and how to agree.
            format!(
                "the warm-up network started from {}, this run asks for {}; make a warm-up with the same \
                 --pretrained (selmask pretrain --pretrained ...), or run with the warm-up's",
                start(c.meta.network.pretrained()),
                start(expected.pretrained())
            )
        } else {
            format!("warm-up network is {:?}, this run needs {:?}", c.meta.network, expected)
        };
        return Err(Error::Checkpoint { path: path.to_path_buf(), reason });
    }
    let net = load_into(expected.init(device), c.take("net", path)?, "network", path)?;
    let optim = optim
        .from_bytes(Bytes::from_bytes_vec(c.take("net_optim", path)?))
        .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: format!("optimiser state: {e}") })?;
    Ok((net, optim, c.meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::example_config;

    /// A warm-up of `network` in `dir`, as `pretrain` writes one.
    fn warmup_of(network: &NetworkConfig, dir: &Path, device: &Device) -> std::path::PathBuf {
        let config = TrainConfig { network: network.clone(), ..example_config() };
        let meta = WarmupMeta {
            selmask_version: env!("CARGO_PKG_VERSION").into(),
            dataset: DatasetName::Synthetic,
            network: network.clone(),
            epochs: 1,
            val_accuracy: None,
            test_accuracy: 0.5,
            config: config.clone(),
        };
        let path = dir.join("synthetic.warmup");
        save_warmup(&path, &meta, &network.init(device), &config.optim.net()).unwrap();
        path
    }

    #[test]
    fn a_warm_up_from_other_starting_weights_says_which_and_what_to_do() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let plain = NetworkConfig::by_name("squeezenet1_1", [3, 32, 32], 2).unwrap();
        let path = warmup_of(&plain, dir.path(), &device);
        // The same network loads.
        let optim = || example_config().optim.net();
        assert!(load_warmup(&path, &plain, optim(), &device).is_ok());
        // The run asks for ImageNet weights; the warm-up started from random ones.
        let weights = dir.path().join("squeezenet1_1.safetensors");
        std::fs::write(&weights, b"only its name is compared").unwrap();
        let pretrained = plain.clone().with_pretrained(Some(weights.clone())).unwrap();
        let Err(err) = load_warmup(&path, &pretrained, optim(), &device) else { panic!("starting weights differ") };
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("started from random weights"), "{msg}");
        assert!(msg.contains(&weights.display().to_string()) && msg.contains("selmask pretrain --pretrained"), "{msg}");
        // The same file named by another path is the same start.
        let warm = pretrained.clone();
        let path_ab = warmup_of(&warm, dir.path(), &device);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let other_name = dir.path().join("sub/../squeezenet1_1.safetensors");
        let renamed = plain.clone().with_pretrained(Some(other_name)).unwrap();
        assert_ne!(renamed, warm);
        assert!(load_warmup(&path_ab, &renamed, optim(), &device).is_ok());
        // Another file is another start, even with the same contents.
        let copy = dir.path().join("copy.safetensors");
        std::fs::copy(&weights, &copy).unwrap();
        let elsewhere = plain.clone().with_pretrained(Some(copy)).unwrap();
        let Err(err) = load_warmup(&path_ab, &elsewhere, optim(), &device) else { panic!("another pretrained file") };
        let msg = err.to_string();
        assert!(msg.contains("the warm-up network started from the weights in") && msg.contains("this run asks for the weights in") && msg.contains("copy.safetensors"), "{msg}");
        // Another network is still named as such.
        let other = NetworkConfig::by_name("squeezenet1_1", [3, 32, 32], 3).unwrap();
        let Err(err) = load_warmup(&path, &other, optim(), &device) else { panic!("class counts differ") };
        assert!(err.to_string().contains("warm-up network is"), "{err}");
    }
}
