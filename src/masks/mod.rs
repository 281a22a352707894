//! Selection masks: granularities, static and dynamic masks, schedules.
//!
//! [`Mask`] is what the trainer holds: a static mask (one for all inputs;
//! also used, with scheduled instead of learned logits, by the random and
//! given baselines) or a dynamic one (per input, computed on the server).

pub mod dynamic;
pub mod granularity;
pub mod forest;
pub mod importance;
pub mod schedule;
pub mod scheduled;
pub mod static_mask;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use dynamic::{DynamicMask, DynamicMaskConfig};
use granularity::{CellLayout, Granularity};
use static_mask::{Masked, StaticMask, StaticMaskConfig};

/// Settings of a [`Mask`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MaskConfig {
    /// One mask for every input.
    Static(StaticMaskConfig),
    /// One mask per input, from a mask model on the server.
    Dynamic(DynamicMaskConfig),
}

/// A selection mask.
#[derive(Module, Debug)]
pub enum Mask {
    /// See [`StaticMask`].
    Static(StaticMask),
    /// See [`DynamicMask`].
    Dynamic(DynamicMask),
}

/// The hard masks of a batch, as deployed, with the masked inputs.
#[derive(Debug, Clone)]
pub struct HardBatch {
    /// Inputs masked with exact 0/1 masks (and upscaling if configured).
    pub x: Tensor<4>,
    /// Per item, the fraction of cells selected (Q).
    pub q: Vec<f64>,
    /// Per item, the fraction of input values selected (bytes).
    pub bytes: Vec<f64>,
}

impl MaskConfig {
    /// What one cell covers.
    pub fn granularity(&self) -> Granularity {
        match self {
            MaskConfig::Static(c) => c.granularity,
            MaskConfig::Dynamic(c) => c.granularity,
        }
    }

    /// One input's shape.
    pub fn input_shape(&self) -> [usize; 3] {
        match self {
            MaskConfig::Static(c) => c.input_shape,
            MaskConfig::Dynamic(c) => c.input_shape,
        }
    }

    /// Whether masked inputs are rescaled by the kept fraction.
    pub fn input_drop_upscaling(&self) -> bool {
        match self {
            MaskConfig::Static(c) => c.input_drop_upscaling,
            MaskConfig::Dynamic(c) => c.input_drop_upscaling,
        }
    }

    /// The cell layout, or a clear error if the granularity does not fit.
    pub fn layout(&self) -> Result<CellLayout> {
        self.granularity().layout(self.input_shape())
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<()> {
        match self {
            MaskConfig::Static(c) => c.layout().map(|_| ()),
            MaskConfig::Dynamic(c) => c.validate(),
        }
    }

    /// Builds the mask on `device`.
    pub fn init(&self, device: &Device) -> Result<Mask> {
        Ok(match self {
            MaskConfig::Static(c) => Mask::Static(c.init(device)?),
            MaskConfig::Dynamic(c) => Mask::Dynamic(c.init(device)?),
        })
    }
}

impl Mask {
    /// The cell geometry.
    pub fn layout(&self) -> &CellLayout {
        match self {
            Mask::Static(m) => m.layout(),
            Mask::Dynamic(m) => m.layout(),
        }
    }

    /// Applies the mask for training (straight-through, differentiable Q).
    ///
    /// # Shapes
    /// - `x` `[B, C, H, W]` → masked `[B, C, H, W]`, `q` `[1]`
    pub fn forward(&self, x: Tensor<4>, tau: f64) -> Masked {
        match self {
            Mask::Static(m) => m.forward(x, tau),
            Mask::Dynamic(m) => m.forward(x, tau),
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
                HardBatch { x: m.apply_hard(x, &hard), q: vec![hard.q; b], bytes: vec![bytes; b] }
            }
            Mask::Dynamic(m) => {
                let hard = m.hard(x.clone(), tau); // [B, c, h, w]
                let cells: Vec<f32> = hard.clone().into_data().convert::<f32>().try_into_vec().expect("f32 mask");
                let n = layout.n_cells();
                let q = cells.chunks(n).map(|c| c.iter().map(|&v| v as f64).sum::<f64>() / n as f64).collect();
                let bytes = cells.chunks(n).map(|c| layout.value_fraction(c)).collect();
                HardBatch { x: m.apply_hard(x, hard), q, bytes }
            }
        }
    }
}
