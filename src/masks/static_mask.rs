//! The static ("any") mask: one learned binary mask shared by every input.
//!
//! Forward: `s = sigmoid(logits / τ)`, `hard = round(s)`, and the
//! straight-through estimator `m = hard − stopgrad(s) + s`: the network sees
//! exactly 0/1, the logits get sigmoid's gradient. `m` is upsampled to the
//! input with PyTorch's nearest rule and multiplies it.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

use selmask_wire::granularity::{CellLayout, Granularity};
use crate::error::Result;

/// Settings of a [`StaticMask`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticMaskConfig {
    /// One input's shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// What one cell covers.
    pub granularity: Granularity,
    /// Mean of the initial logits (3.0: sigmoid ≈ 0.95, everything selected).
    pub init_mean: f64,
    /// Standard deviation of the initial logits.
    pub init_std: f64,
    /// Rescale the masked input by the fraction kept, like dropout.
    pub input_drop_upscaling: bool,
}

/// How the cell grid reaches the input, chosen once at init.
#[derive(Debug, Clone)]
enum Upsample {
    /// The mask broadcasts onto the input as `[1, c, h, w]` (same shape, or
    /// size-1 axes): no copy needed.
    Broadcast([usize; 4]),
    /// A gather of one cell per input value (uneven or coarser grids).
    Gather(Tensor<1, Int>),
}

/// A learned static selection mask.
#[derive(Module, Debug)]
pub struct StaticMask {
    /// Mask logits, `[c, h, w]`.
    pub logits: Param<Tensor<3>>,
    #[module(skip)]
    upsample: Upsample,
    #[module(skip)]
    layout: CellLayout,
    input_drop_upscaling: bool,
}

/// A mask fixed to 0/1, for evaluation and deployment.
#[derive(Debug, Clone)]
pub struct HardMask {
    /// 0/1 per cell, row-major `[c, h, w]`.
    pub values: Vec<f32>,
    /// The fraction of cells selected (Q).
    pub q: f64,
    /// Per-value multiplier `[1, C, H, W]` (0/1, or rescaled with input drop upscaling).
    multiplier: Tensor<4>,
}

/// The result of applying a mask to a batch.
#[derive(Debug, Clone)]
pub struct Masked {
    /// The masked inputs, `[B, C, H, W]`.
    pub x: Tensor<4>,
    /// The transfer loss Q of the batch (differentiable, `[1]`).
    pub q: Tensor<1>,
}

impl StaticMaskConfig {
    /// The cell layout this config gives, or a clear error if the
    /// granularity does not fit the input.
    pub fn layout(&self) -> Result<CellLayout> {
        Ok(self.granularity.layout(self.input_shape)?)
    }

    /// Builds the mask on `device`.
    pub fn init(&self, device: &Device) -> Result<StaticMask> {
        let layout = self.layout()?;
        let [c, h, w] = layout.mask;
        let logits = Tensor::<3>::random([c, h, w], Distribution::Normal(self.init_mean, self.init_std), device);
        let [ci, hi, wi] = self.input_shape;
        let broadcasts = (c == ci || c == 1) && (h == hi || h == 1) && (w == wi || w == 1);
        let upsample = if broadcasts {
            Upsample::Broadcast([1, c, h, w])
        } else {
            let idx: Vec<i64> = layout.cell_of_value.iter().map(|&v| v as i64).collect();
            let n = idx.len();
            Upsample::Gather(Tensor::from_data(TensorData::new(idx, [n]), device))
        };
        Ok(StaticMask {
            logits: Param::from_tensor(logits),
            upsample,
            layout,
            input_drop_upscaling: self.input_drop_upscaling,
        })
    }
}

/// The input-drop-upscaling factor of a hard mask keeping the fraction `q`
/// of `n_cells` cells: what the trainer multiplies kept values by, and what
/// an exported artifact records, so that a client reproduces it exactly.
pub fn upscale_factor(q: f64, n_cells: usize) -> f64 {
    1.0 / (q + 1e-7 / n_cells as f64)
}

impl StaticMask {
    /// Adds `delta` to every logit (see [`super::Mask::shift_logits`]).
    pub fn shift_logits(mut self, delta: f64) -> Self {
        self.logits = super::shift_param(self.logits, delta);
        self
    }

    /// The cell geometry.
    pub fn layout(&self) -> &CellLayout {
        &self.layout
    }

    /// Replaces the logits with fixed (not trained) values, row-major
    /// `[c, h, w]`: how scheduled baselines set their mask.
    pub fn set_logits(&mut self, values: &[f32]) {
        let device = self.logits.val().device();
        let [c, h, w] = self.layout.mask;
        let t = Tensor::<3>::from_data(TensorData::new(values.to_vec(), [c, h, w]), &device);
        self.logits = Param::from_tensor(t).set_require_grad(false);
    }

    /// Straight-through binary mask over cells, `[c, h, w]`.
    pub fn straight_through(&self, tau: f64) -> Tensor<3> {
        let soft = sigmoid(self.logits.val().div_scalar(tau));
        let hard = soft.clone().detach().round();
        hard - soft.clone().detach() + soft
    }

    /// The hard 0/1 mask over cells as host values (row-major `[c, h, w]`).
    pub fn hard_values(&self, tau: f64) -> Vec<f32> {
        let hard = sigmoid(self.logits.val().detach().div_scalar(tau)).round();
        hard.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 mask")
    }

    /// The hard mask, ready to apply at evaluation or inference time.
    pub fn hard_mask(&self, tau: f64) -> HardMask {
        let values = self.hard_values(tau);
        let n = values.len();
        let q = values.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let mut per_value = self.layout.upsample(&values);
        if self.input_drop_upscaling {
            let scale = upscale_factor(q, n);
            per_value.iter_mut().for_each(|v| *v = (*v as f64 * scale) as f32);
        }
        let [c, h, w] = self.layout.input;
        let device = self.logits.val().device();
        let multiplier = Tensor::<4>::from_data(TensorData::new(per_value, [1, c, h, w]), &device);
        HardMask { values, q, multiplier }
    }

    /// Applies a hard mask from [`StaticMask::hard_mask`]: exactly what a
    /// client computes from the values a server sent.
    ///
    /// # Shapes
    /// - `x` `[B, C, H, W]` → `[B, C, H, W]`
    pub fn apply_hard(&self, x: Tensor<4>, hard: &HardMask) -> Tensor<4> {
        x * hard.multiplier.clone()
    }

    /// Applies the mask to `x` (`[B, C, H, W]`) at temperature `tau`.
    ///
    /// # Shapes
    /// - `x` `[B, C, H, W]` → masked `[B, C, H, W]`, `q` `[1]`
    pub fn forward(&self, x: Tensor<4>, tau: f64) -> Masked {
        self.forward_cells(x, tau).0
    }

    /// [`StaticMask::forward`], also returning the straight-through cell
    /// mask `[c, h, w]` (what a transfer loss over several masks multiplies).
    pub fn forward_cells(&self, x: Tensor<4>, tau: f64) -> (Masked, Tensor<3>) {
        let [_, c, h, w] = x.dims();
        let m = self.straight_through(tau); // [c', h', w']
        let cells = m.clone();
        let n_cells = self.layout.n_cells();
        let q = m.clone().reshape([n_cells]).mean(); // [1]
        let m_input = match &self.upsample {
            Upsample::Broadcast(shape) => m.reshape(*shape), // [1, c', h', w'] broadcasts
            Upsample::Gather(idx) => m.reshape([n_cells]).select(0, idx.clone()).reshape([1, c, h, w]),
        };
        let mut x = x * m_input;
        if self.input_drop_upscaling {
            // As the reference: divide by the kept fraction (no gradient through it).
            let kept = q.clone().detach().add_scalar(1e-7 / n_cells as f64);
            x = x / kept.reshape([1, 1, 1, 1]);
        }
        (Masked { x, q }, cells)
    }
}
