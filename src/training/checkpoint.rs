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
    if &c.meta.network != expected {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            reason: format!("warm-up network is {:?}, this run needs {:?}", c.meta.network, expected),
        });
    }
    let net = load_into(expected.init(device), c.take("net", path)?, "network", path)?;
    let optim = optim
        .from_bytes(Bytes::from_bytes_vec(c.take("net_optim", path)?))
        .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: format!("optimiser state: {e}") })?;
    Ok((net, optim, c.meta))
}
