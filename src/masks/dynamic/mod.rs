//! Dynamic ("any") masks: one mask per input, computed on the server.
//!
//! `logits(x) = g(x_server) + b`: a mask model g (see [`models`]) applied to
//! the server's view of the input (the full input, or a thumbnail made by
//! adaptive max pooling), plus a bias `b` that starts at `init_mean` and is
//! learned only with `learn_static`. g starts near zero, so training starts
//! from "send everything". The rest is the static mask's machinery per
//! input: straight-through rounding, nearest upsampling, per-input Q.

pub mod blocks;
pub mod models;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use serde::{Deserialize, Serialize};

use selmask_wire::granularity::{CellLayout, Granularity};
use super::static_mask::Masked;
use crate::error::{Error, Result};
use models::{MaskModel, MaskModelKind, MaskModelShape};

/// Settings of a [`DynamicMask`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicMaskConfig {
    /// One input's shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// What one cell covers.
    pub granularity: Granularity,
    /// The mask model g.
    pub model: MaskModelKind,
    /// Height and width of the server's thumbnail (`None`: the full input).
    pub server_hw: Option<[usize; 2]>,
    /// Learn a per-cell bias b (else b is a constant, `init_mean`).
    pub learn_static: bool,
    /// Learn g (else g stays zero: a constant "send everything" mask).
    pub learn_dynamic: bool,
    /// Initial bias (3.0: sigmoid ≈ 0.95, everything selected).
    pub init_mean: f64,
    /// Standard deviation of the initial bias.
    pub init_std: f64,
    /// Rescale each masked input by its kept fraction, like dropout.
    pub input_drop_upscaling: bool,
}

/// A dynamic selection mask.
#[derive(Module, Debug)]
pub struct DynamicMask {
    /// The mask model g.
    pub model: MaskModel,
    /// The bias b: `[c, h, w]` when learned, `[1, 1, 1]` (constant) otherwise.
    pub bias: Param<Tensor<3>>,
    #[module(skip)]
    gather: Tensor<1, Int>,
    #[module(skip)]
    layout: CellLayout,
    #[module(skip)]
    server_hw: Option<[usize; 2]>,
    input_drop_upscaling: bool,
}

/// PyTorch's `adaptive_max_pool2d` (bin `i` spans `⌊i·in/out⌋..⌈(i+1)·in/out⌉`).
///
/// # Shapes
/// - `[B, C, H, W]` → `[B, C, oh, ow]`
pub fn adaptive_max_pool2d(x: Tensor<4>, [oh, ow]: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if h % oh == 0 && w % ow == 0 {
        let k = [h / oh, w / ow];
        return max_pool2d(x, MaxPoolOptions::new(k));
    }
    let bins = |i: usize, n_in: usize, n_out: usize| (i * n_in / n_out, ((i + 1) * n_in).div_ceil(n_out));
    let rows: Vec<Tensor<4>> = (0..oh)
        .map(|i| {
            let (a, b) = bins(i, h, oh);
            x.clone().slice([0..x.dims()[0], 0..x.dims()[1], a..b, 0..w]).max_dim(2)
        })
        .collect();
    let x = Tensor::cat(rows, 2); // [B, C, oh, W]
    let cols: Vec<Tensor<4>> = (0..ow)
        .map(|j| {
            let (a, b) = bins(j, w, ow);
            let [bb, cc, hh, _] = x.dims();
            x.clone().slice([0..bb, 0..cc, 0..hh, a..b]).max_dim(3)
        })
        .collect();
    Tensor::cat(cols, 3)
}

impl DynamicMaskConfig {
    /// The cell layout, or a clear error if the granularity does not fit.
    pub fn layout(&self) -> Result<CellLayout> {
        Ok(self.granularity.layout(self.input_shape)?)
    }

    /// The server's input shape `[C, sh, sw]`.
    pub fn server_shape(&self) -> [usize; 3] {
        let [c, h, w] = self.input_shape;
        let [sh, sw] = self.server_hw.unwrap_or([h, w]);
        [c, sh, sw]
    }

    /// Checks the thumbnail size.
    pub fn validate(&self) -> Result<()> {
        check_server_hw(self.server_hw, self.input_shape)?;
        if !(self.init_mean.is_finite() && self.init_std.is_finite() && self.init_std >= 0.0) {
            return Err(Error::config("any-init-mean", self.init_mean, "mean and std must be finite, std >= 0"));
        }
        self.layout().map(|_| ())
    }

    /// Builds the mask on `device`.
    pub fn init(&self, device: &Device) -> Result<DynamicMask> {
        self.validate()?;
        let layout = self.layout()?;
        let shape = MaskModelShape { server: self.server_shape(), mask: layout.mask };
        let mut model = self.model.init(shape, device)?;
        if !self.learn_dynamic {
            // g fixed at zero and not trained: the bias alone decides.
            model = model.map(&mut ZeroParams).no_grad();
        }
        let bias_shape = if self.learn_static { layout.mask } else { [1, 1, 1] };
        let bias = Tensor::<3>::random(bias_shape, Distribution::Normal(self.init_mean, self.init_std), device);
        let bias = if self.learn_static { Param::from_tensor(bias) } else { Param::from_tensor(bias).set_require_grad(false) };
        let idx: Vec<i64> = layout.cell_of_value.iter().map(|&v| v as i64).collect();
        let n = idx.len();
        Ok(DynamicMask {
            model,
            bias,
            gather: Tensor::from_data(TensorData::new(idx, [n]), device),
            layout,
            server_hw: self.server_hw,
            input_drop_upscaling: self.input_drop_upscaling,
        })
    }
}

/// Sets every float parameter to zero (for `learn_dynamic = false`).
pub(crate) struct ZeroParams;

impl burn::module::ModuleMapper for ZeroParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.zeros_like(), mapper)
    }
}

impl DynamicMask {
    /// Adds `delta` to the bias b, so to every logit (see
    /// [`super::Mask::shift_logits`]).
    pub fn shift_logits(mut self, delta: f64) -> Self {
        self.bias = super::shift_param(self.bias, delta);
        self
    }

    /// The cell geometry.
    pub fn layout(&self) -> &CellLayout {
        &self.layout
    }

    /// What the server feeds g: the input, or its thumbnail.
    ///
    /// # Shapes
    /// - `[B, C, H, W]` → `[B, C, sh, sw]`
    pub fn server_view(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.detach();
        match self.server_hw {
            Some(hw) => adaptive_max_pool2d(x, hw),
            None => x,
        }
    }

    /// Mask logits per input.
    ///
    /// # Shapes
    /// - `x` `[B, C, H, W]` → `[B, c, h, w]`
    pub fn logits(&self, x: Tensor<4>) -> Tensor<4> {
        self.model.forward(self.server_view(x)) + self.bias.val().unsqueeze::<4>()
    }

    /// Applies per-input masks `m` (`[B, c, h, w]`, 0/1 or straight-through)
    /// to `x`, with per-input Q `q_items` (`[B]`, for upscaling).
    fn apply(&self, x: Tensor<4>, m: Tensor<4>, q_items: Tensor<1>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n_cells = self.layout.n_cells();
        let per_value = m.reshape([b, n_cells]).select(1, self.gather.clone()).reshape([b, c, h, w]);
        let x = x * per_value;
        if self.input_drop_upscaling {
            let kept = q_items.detach().add_scalar(1e-7 / n_cells as f64).reshape([b, 1, 1, 1]);
            x / kept
        } else {
            x
        }
    }

    /// Applies the mask at temperature `tau` (straight-through).
    ///
    /// # Shapes
    /// - `x` `[B, C, H, W]` → masked `[B, C, H, W]`, `q` `[1]` (batch mean)
    pub fn forward(&self, x: Tensor<4>, tau: f64) -> Masked {
        self.forward_cells(x.clone(), x, tau).0
    }

    /// [`DynamicMask::forward`] on `x` with the masks computed from
    /// `server_input` (in a pipeline after xor selection, the server still
    /// looks at the original input, as the reference), also returning the
    /// straight-through cell masks `[B, c, h, w]`.
    ///
    /// # Shapes
    /// - `x`, `server_input` `[B, C, H, W]` → masked `[B, C, H, W]`, `q` `[1]`, cells `[B, c, h, w]`
    pub fn forward_cells(&self, x: Tensor<4>, server_input: Tensor<4>, tau: f64) -> (Masked, Tensor<4>) {
        let [b, ..] = x.dims();
        let n_cells = self.layout.n_cells();
        let soft = sigmoid(self.logits(server_input).div_scalar(tau)); // [B, c, h, w]
        let hard = soft.clone().detach().round();
        let m = hard - soft.clone().detach() + soft;
        let q_items = m.clone().reshape([b, n_cells]).mean_dim(1).reshape([b]); // [B]
        let q = q_items.clone().mean(); // [1]
        (Masked { x: self.apply(x, m.clone(), q_items), q }, m)
    }

    /// The hard 0/1 masks of a batch, `[B, c, h, w]`.
    pub fn hard(&self, x: Tensor<4>, tau: f64) -> Tensor<4> {
        sigmoid(self.logits(x).detach().div_scalar(tau)).round()
    }

    /// Applies hard masks from [`DynamicMask::hard`]: exactly what a client
    /// computes from what the server sent.
    ///
    /// # Shapes
    /// - `x` `[B, C, H, W]`, `hard` `[B, c, h, w]` → `[B, C, H, W]`
    pub fn apply_hard(&self, x: Tensor<4>, hard: Tensor<4>) -> Tensor<4> {
        let [b, ..] = x.dims();
        let q_items = hard.clone().reshape([b, self.layout.n_cells()]).mean_dim(1).reshape([b]);
        self.apply(x, hard, q_items)
    }
}

/// Checks a server-side thumbnail size (`--dynamic-h/--dynamic-w`) against
/// the input: between 1×1 and the input's own size.
pub fn check_server_hw(server_hw: Option<[usize; 2]>, input_shape: [usize; 3]) -> Result<()> {
    if let Some([sh, sw]) = server_hw {
        let [_, h, w] = input_shape;
        if sh == 0 || sw == 0 || sh > h || sw > w {
            return Err(Error::config(
                "dynamic-h/dynamic-w",
                format!("{sh}x{sw}"),
                format!("the thumbnail must be between 1x1 and the input's {h}x{w}"),
            ));
        }
    }
    Ok(())
}
