//! Selection masks: granularities, static and dynamic masks, schedules.
//!
//! [`Mask`] is what the trainer holds: a static mask (one for all inputs;
//! also used, with scheduled instead of learned logits, by the random and
//! given baselines), a dynamic one (per input, computed on the server), or
//! xor (version) selection, optionally followed by one of those (see
//! [`xor`]).

pub mod dynamic;
pub mod forest;
pub mod importance;
pub mod picture;
pub mod schedule;
pub mod scheduled;
pub mod static_mask;
pub mod xor;

use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use dynamic::{DynamicMask, DynamicMaskConfig};
use selmask_wire::granularity::{CellLayout, Granularity};
use static_mask::{Masked, StaticMask, StaticMaskConfig};
use xor::{AnyMask, XorPipeline, XorPipelineConfig};

/// Settings of a [`Mask`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MaskConfig {
    /// One mask for every input.
    Static(StaticMaskConfig),
    /// One mask per input, from a mask model on the server.
    Dynamic(DynamicMaskConfig),
    /// Xor (version) selection, then optionally an any mask.
    Xor(XorPipelineConfig),
}

/// A selection mask.
#[derive(Module, Debug)]
pub enum Mask {
    /// See [`StaticMask`].
    Static(StaticMask),
    /// See [`DynamicMask`].
    Dynamic(DynamicMask),
    /// See [`XorPipeline`].
    Xor(XorPipeline),
}

/// The hard masks of a batch, as deployed, with the masked inputs.
#[derive(Debug, Clone)]
pub struct HardBatch {
    /// Inputs masked with exact 0/1 masks (and upscaling if configured).
    pub x: Tensor<4>,
    /// Per item, the fraction of cells selected (Q).
    pub q: Vec<f64>,
    /// Per item, the fraction of input values selected (bytes); with xor
    /// selection weighted by the chosen versions' weights.
    pub bytes: Vec<f64>,
    /// Xor selection: per xor mask, per version, the share of cells
    /// choosing it, summed over the batch's items (empty otherwise).
    pub version_shares: Vec<Vec<f64>>,
}

impl MaskConfig {
    /// What one cell covers (xor selection: the any mask's, else the JPEG
    /// selection's, else the thumbnail selection's).
    pub fn granularity(&self) -> Granularity {
        match self {
            MaskConfig::Static(c) => c.granularity,
            MaskConfig::Dynamic(c) => c.granularity,
            MaskConfig::Xor(c) => match &c.any {
                Some(any) => any.granularity(),
                None if !c.xor.versions.quality_levels.is_empty() => c.xor.fmap_granularity,
                None => c.xor.thumb_granularity,
            },
        }
    }

    /// One input's shape (xor selection: one version's).
    pub fn input_shape(&self) -> [usize; 3] {
        match self {
            MaskConfig::Static(c) => c.input_shape,
            MaskConfig::Dynamic(c) => c.input_shape,
            MaskConfig::Xor(c) => c.xor.input_shape,
        }
    }

    /// Whether masked inputs are rescaled by the kept fraction.
    pub fn input_drop_upscaling(&self) -> bool {
        match self {
            MaskConfig::Static(c) => c.input_drop_upscaling,
            MaskConfig::Dynamic(c) => c.input_drop_upscaling,
            MaskConfig::Xor(c) => c.any.as_ref().is_some_and(|a| a.input_drop_upscaling()),
        }
    }

    /// The cell layout, or a clear error if the granularity does not fit
    /// (xor selection: the grid Q is measured on).
    pub fn layout(&self) -> Result<CellLayout> {
        match self {
            MaskConfig::Xor(c) => c.layout(),
            _ => Ok(self.granularity().layout(self.input_shape())?),
        }
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<()> {
        match self {
            MaskConfig::Static(c) => c.layout().map(|_| ()),
            MaskConfig::Dynamic(c) => c.validate(),
            MaskConfig::Xor(c) => c.validate(),
        }
    }

    /// The same mask without its initialisation (initial mean and spread
    /// set to 0): what two configurations must share for a trained mask to
    /// move between them, as its logits replace the initial ones.
    pub fn architecture(&self) -> MaskConfig {
        match self {
            MaskConfig::Static(c) => MaskConfig::Static(StaticMaskConfig { init_mean: 0.0, init_std: 0.0, ..c.clone() }),
            MaskConfig::Dynamic(c) => MaskConfig::Dynamic(DynamicMaskConfig { init_mean: 0.0, init_std: 0.0, ..c.clone() }),
            MaskConfig::Xor(c) => {
                let mut c = c.clone();
                c.xor.init_std = 0.0;
                c.any = c.any.map(|a| Box::new(a.architecture()));
                MaskConfig::Xor(c)
            }
        }
    }

    /// Builds the mask on `device`.
    pub fn init(&self, device: &Device) -> Result<Mask> {
        Ok(match self {
            MaskConfig::Static(c) => Mask::Static(c.init(device)?),
            MaskConfig::Dynamic(c) => Mask::Dynamic(c.init(device)?),
            MaskConfig::Xor(c) => Mask::Xor(c.init(device)?),
        })
    }
}

/// `p + delta`, as a new leaf: shifting the tracked tensor itself would
/// make the parameter the output of an operation whose graph the last
/// backward pass consumed. (`detach` alone keeps a parameter tracked, so
/// the sum would still be a graph node.)
pub(crate) fn shift_param(p: Param<Tensor<3>>, delta: f64) -> Param<Tensor<3>> {
    p.map(|t| {
        let tracked = t.is_require_grad();
        let t = t.set_require_grad(false).add_scalar(delta);
        if tracked { t.require_grad() } else { t }
    })
}

impl Mask {
    /// Adds `delta` to every logit of the learned selection (a static mask's
    /// logits, a dynamic mask's bias b, an xor pipeline's any mask), so that
    /// more (`delta > 0`) or fewer cells pass the threshold; the ranking of
    /// the cells is unchanged. The optimiser's state is left as it is.
    pub fn shift_logits(self, delta: f64) -> Self {
        match self {
            Mask::Static(m) => Mask::Static(m.shift_logits(delta)),
            Mask::Dynamic(m) => Mask::Dynamic(m.shift_logits(delta)),
            Mask::Xor(mut x) => {
                x.any = x.any.map(|any| match any {
                    AnyMask::Static(m) => AnyMask::Static(m.shift_logits(delta)),
                    AnyMask::Dynamic(m) => AnyMask::Dynamic(m.shift_logits(delta)),
                });
                Mask::Xor(x)
            }
        }
    }

    /// The cell geometry.
    pub fn layout(&self) -> &CellLayout {
        match self {
            Mask::Static(m) => m.layout(),
            Mask::Dynamic(m) => m.layout(),
            Mask::Xor(m) => m.layout(),
        }
    }

    /// Applies the mask for training (straight-through, differentiable Q).
    ///
    /// # Shapes
    /// - `x` `[B, C, H, W]` → masked `[B, C, H, W]`, `q` `[1]`
    /// - xor selection: `x` `[B, V·C, H, W]` (stacked versions) → masked `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>, tau: f64) -> Masked {
        match self {
            Mask::Static(m) => m.forward(x, tau),
            Mask::Dynamic(m) => m.forward(x, tau),
            Mask::Xor(m) => m.forward(x, tau),
        }
    }

    /// Xor selection: per xor mask, its name and its versions' names.
    pub fn version_labels(&self) -> Vec<(String, Vec<String>)> {
        match self {
            Mask::Xor(p) => p.xor_masks().map(|m| (m.name().to_string(), m.labels().to_vec())).collect(),
            _ => Vec::new(),
        }
    }

    /// Applies the exact hard masks, as a client does, and measures them.
    pub fn hard_batch(&self, x: Tensor<4>, tau: f64) -> HardBatch {
        let [b, ..] = x.dims();
        let layout = self.layout();
        match self {
            Mask::Static(m) => {
                let hard = m.hard_mask(tau);
                let bytes = layout.value_fraction(&hard.values);
                HardBatch { x: m.apply_hard(x, &hard), q: vec![hard.q; b], bytes: vec![bytes; b], version_shares: Vec::new() }
            }
            Mask::Dynamic(m) => {
                let hard = m.hard(x.clone(), tau); // [B, c, h, w]
                let cells: Vec<f32> = hard.clone().into_data().convert::<f32>().try_into_vec().expect("f32 mask");
                let n = layout.n_cells();
                let q = cells.chunks(n).map(|c| c.iter().map(|&v| v as f64).sum::<f64>() / n as f64).collect();
                let bytes = cells.chunks(n).map(|c| layout.value_fraction(c)).collect();
                HardBatch { x: m.apply_hard(x, hard), q, bytes, version_shares: Vec::new() }
            }
            Mask::Xor(m) => m.hard_batch(x, tau),
        }
    }
}
