//! An artifact's modules rebuilt in Burn: the client's network
//! ([`ClientModel`]), run on what a server sent, and the server's dynamic
//! masker ([`BurnMasker`], which [`add_served_artifact`] attaches).
//!
//! Inputs go through exactly the trainer's evaluation arithmetic: stored
//! values are normalised as the trainer normalises a split, then multiplied
//! by the hard mask (static: the same per-value multiplier, upscaling
//! included; dynamic: the mask module's `apply_hard` on the cell masks the
//! server sent). So predictions equal the trainer's for that checkpoint.

use std::sync::Arc;

use burn::prelude::*;

use super::ModelDescription;
use crate::models::weights::load_module_tensors;
use crate::data::batch::TensorSplit;
use crate::data::{DatasetInfo, DatasetName, ImageSet};
use crate::error::{Error, Result};
use selmask_wire::artifact::{Artifact, ArtifactMask};
use crate::masks::dynamic::DynamicMask;
use crate::masks::{Mask, MaskConfig};
use crate::models::Network;
use selmask_wire::transfer::codec::DecodedBatch;
use selmask_wire::transfer::server::{DynamicMasker, MaskerError, ServerState};

/// The selection as the client applies it.
#[derive(Debug)]
enum ClientMask {
    /// Everything was sent.
    None,
    /// The per-value multiplier `[1, C, H, W]`.
    Static(Tensor<4>),
    /// Cell masks come with each item.
    Dynamic(DynamicMask),
}

/// The description stored in an artifact's manifest.
pub fn description(artifact: &Artifact) -> Result<ModelDescription> {
    serde_json::from_value(artifact.manifest.network.clone()).map_err(|e| {
        Error::invalid(artifact.dir.join("manifest.json"), "network", format!("not a selmask model: {e}"))
    })
}

/// The dataset geometry and normalisation of an artifact, as the trainer
/// holds them.
pub fn dataset_info(artifact: &Artifact) -> Result<DatasetInfo> {
    let d = &artifact.manifest.dataset;
    Ok(DatasetInfo {
        name: d.name.parse::<DatasetName>()?,
        shape: d.shape,
        n_classes: d.n_classes,
        mean: d.normalisation.mean.clone(),
        std: d.normalisation.std.clone(),
    })
}

/// The artifact's mask module (dynamic masks), with its trained weights.
fn mask_module(artifact: &Artifact, desc: &ModelDescription, device: &Device) -> Result<Mask> {
    let file = artifact.dir.join("mask_model.safetensors");
    match (&desc.mask, &artifact.mask) {
        (Some(cfg @ MaskConfig::Dynamic(_)), ArtifactMask::Dynamic { mask_model, .. }) => {
            let Mask::Dynamic(m) = cfg.init(device)? else { unreachable!("a dynamic config inits a dynamic mask") };
            Ok(Mask::Dynamic(load_module_tensors(m, mask_model, &file.display().to_string())?))
        }
        _ => Err(Error::invalid(file, "mask", "the manifest's mask is not dynamic")),
    }
}

/// A loaded artifact, ready to predict.
#[derive(Debug)]
pub struct ClientModel {
    /// The artifact.
    pub artifact: Arc<Artifact>,
    info: DatasetInfo,
    net: Network,
    mask: ClientMask,
    device: Device,
}

impl ClientModel {
    /// Builds the network (and mask) of `artifact` on the CPU.
    pub fn new(artifact: Arc<Artifact>) -> Result<Self> {
        let device = Device::flex();
        let desc = description(&artifact)?;
        let info = dataset_info(&artifact)?;
        let weights_file = artifact.dir.join("weights.safetensors").display().to_string();
        let net = load_module_tensors(desc.network.init(&device), &artifact.weights, &weights_file)?;
        let mask = match &artifact.mask {
            ArtifactMask::None => ClientMask::None,
            ArtifactMask::Static { layout, cells, .. } => {
                let mut per_value = layout.upsample(cells);
                let up = artifact.manifest.mask.input_drop_upscaling;
                if up != 1.0 {
                    per_value.iter_mut().for_each(|v| *v = (*v as f64 * up) as f32);
                }
                let [c, h, w] = layout.input;
                ClientMask::Static(Tensor::from_data(TensorData::new(per_value, [1, c, h, w]), &device))
            }
            ArtifactMask::Dynamic { .. } => match mask_module(&artifact, &desc, &device)? {
                Mask::Dynamic(m) => ClientMask::Dynamic(m),
                Mask::Static(_) | Mask::Xor(_) => unreachable!("mask_module returns dynamic masks"),
            },
        };
        Ok(ClientModel { artifact, info, net, mask, device })
    }

    /// Predicted classes of the decoded items, `batch_size` at a time (use
    /// the trainer's evaluation batch size for bit-identical results).
    pub fn predict(&self, decoded: &DecodedBatch, batch_size: usize) -> Result<Vec<i64>> {
        // Labels are not needed to predict (a deployment fetches none).
        let set = ImageSet { shape: decoded.shape, pixels: decoded.values.clone(), labels: vec![0; decoded.len()] };
        let split = TensorSplit::from_set(set, &self.info, &self.device);
        let n_cells = match &self.mask {
            ClientMask::Dynamic(m) => m.layout().n_cells(),
            _ => 0,
        };
        let [c, h, w] = match &self.mask {
            ClientMask::Dynamic(m) => m.layout().mask,
            _ => [0; 3],
        };
        let mut out = Vec::with_capacity(split.len);
        for (i, batch) in split.ordered(batch_size.max(1)).enumerate() {
            let batch = batch?;
            let n = batch.labels.dims()[0];
            let x = match &self.mask {
                ClientMask::None => batch.images,
                ClientMask::Static(mult) => batch.images * mult.clone(),
                ClientMask::Dynamic(m) => {
                    let masks = decoded
                        .cell_masks
                        .as_deref()
                        .ok_or_else(|| Error::payload("dynamic artifact but no cell masks were sent"))?;
                    let start = i * batch_size * n_cells;
                    let cells: Vec<f32> = masks
                        .get(start..start + n * n_cells)
                        .ok_or_else(|| Error::payload("fewer cell masks than items"))?
                        .iter()
                        .map(|&b| if b { 1.0 } else { 0.0 })
                        .collect();
                    let hard = Tensor::<4>::from_data(TensorData::new(cells, [n, c, h, w]), &self.device);
                    m.apply_hard(batch.images, hard)
                }
            };
            let pred = self.net.forward(x).argmax(1).squeeze_dim::<1>(1);
            out.extend(pred.into_data().convert::<i64>().iter::<i64>());
        }
        Ok(out)
    }
}

/// Runs an artifact's dynamic mask model on the server.
#[derive(Debug)]
pub struct BurnMasker {
    mask: DynamicMask,
    tau: f64,
    device: Device,
}

impl BurnMasker {
    /// The masker of a dynamic artifact.
    pub fn new(artifact: &Artifact) -> Result<Self> {
        let device = Device::flex();
        let desc = description(artifact)?;
        match mask_module(artifact, &desc, &device)? {
            Mask::Dynamic(mask) => Ok(BurnMasker { mask, tau: desc.tau, device }),
            Mask::Static(_) | Mask::Xor(_) => unreachable!("mask_module returns dynamic masks"),
        }
    }
}

/// Adds `artifact` to `state` under `id`, with a mask model for dynamic ones.
pub fn add_served_artifact(state: &mut ServerState, id: &str, artifact: &Artifact) -> Result<()> {
    match artifact.mask {
        ArtifactMask::Dynamic { .. } => {
            let masker = BurnMasker::new(artifact)?;
            state.add_dynamic_artifact(id, artifact, Arc::new(masker))?;
        }
        _ => state.add_artifact(id, artifact)?,
    }
    Ok(())
}

impl DynamicMasker for BurnMasker {
    fn cell_mask(&self, item: &[f32], layout: &selmask_wire::granularity::CellLayout) -> Result<Vec<bool>, MaskerError> {
        Ok(self.cell_masks(item, 1, layout)?.pop().unwrap_or_default())
    }

    fn cell_masks(
        &self,
        items: &[f32],
        n: usize,
        layout: &selmask_wire::granularity::CellLayout,
    ) -> Result<Vec<Vec<bool>>, MaskerError> {
        let [c, h, w] = layout.input;
        if items.len() != n * c * h * w {
            return Err(format!("{} values for {n} items of {:?}", items.len(), layout.input).into());
        }
        let x = Tensor::<4>::from_data(TensorData::new(items.to_vec(), [n, c, h, w]), &self.device);
        let hard = self.mask.hard(x, self.tau); // [n, c', h', w']
        let cells: Vec<f32> = hard.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        Ok(cells.chunks(layout.n_cells().max(1)).map(|m| m.iter().map(|&v| v > 0.5).collect()).collect())
    }
}
