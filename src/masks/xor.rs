//! Xor (version) selection: per cell, exactly one version of the input.
//!
//! The input of a batch is the stack of versions of every item (see
//! [`crate::data::versions`]): `[B, (T + 1)·(Q + 1)·C, H, W]`, thumbnail
//! `t` major, JPEG level `f` minor. As in the paper's code (`train.py`,
//! `masks/static_mask.py`, `masks/dynamic_mask.py`) there are up to two xor
//! masks and an optional any mask, applied in this order:
//!
//! 1. thumbnails (`T + 1` choices, `--thumb-granularity`, weights
//!    `(h + w) / (H + W)`, 1 for the original);
//! 2. JPEG "feature maps" (`Q + 1` choices, `--fmap-granularity`, weights
//!    `q / 100`, 1 for no JPEG);
//! 3. the any mask (`--any-granularity`), when `--use-any-mask` is on: the
//!    paper's "pipeline".
//!
//! An xor mask holds logits `[V, c, h, w]` (static) or computes them per
//! input from the original version (dynamic: `g(x_server) + b`, g one of
//! the dynamic mask models with `V·c` output channels). Per cell,
//! `soft = softmax(logits / τ)` over the versions and the straight-through
//! one-hot `m = onehot(argmax) − stopgrad(soft) + soft`: the network sees
//! exactly one version per cell, the logits get softmax's gradient. The
//! selection is `x' = Σ_v upsample(m_v) ⊙ version_v`, with PyTorch's nearest
//! rule as every mask here.
//!
//! Initial logits of version `v` are `N(w_v² · V, 0.01)` with `w_v` its
//! transfer weight (the reference's "best version takes full bits"), so
//! training starts from the original everywhere.
//!
//! The transfer loss multiplies the masks as the reference's `qloss_f`:
//! each mask contributes per cell `Σ_v m_v · w_v` (the any mask: `m` itself,
//! weight 1); going through the masks in order, the running product and
//! the next mask are both brought (nearest) to the element-wise largest
//! cell shape so far and multiplied; Q is the mean of the product.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

use super::dynamic::models::{MaskModel, MaskModelKind, MaskModelShape};
use super::dynamic::{DynamicMask, ZeroParams, adaptive_max_pool2d};
use selmask_wire::granularity::{CellLayout, Granularity, nearest_source_index};
use super::static_mask::{Masked, StaticMask};
use super::{HardBatch, MaskConfig};
use crate::data::versions::VersionsConfig;
use crate::error::{Error, Result};

/// Settings of dynamic xor masks (the reference gives them the same mask
/// model and flags as the dynamic any mask).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XorDynamicConfig {
    /// The mask model g.
    pub model: MaskModelKind,
    /// Height and width of the server's thumbnail (`None`: the full input).
    pub server_hw: Option<[usize; 2]>,
    /// Learn a per-cell bias b (else b is constant per version).
    pub learn_static: bool,
    /// Learn g (else g stays zero).
    pub learn_dynamic: bool,
}

/// Xor (version) selection as a run configures it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XorConfig {
    /// Which versions are stacked.
    pub versions: VersionsConfig,
    /// One version's shape `[C, H, W]` (the dataset's).
    pub input_shape: [usize; 3],
    /// Cells of the JPEG selection (`--fmap-granularity`).
    pub fmap_granularity: Granularity,
    /// Cells of the thumbnail selection (`--thumb-granularity`).
    pub thumb_granularity: Granularity,
    /// Standard deviation of the initial logits (the reference: 0.01).
    pub init_std: f64,
    /// Per-input masks from a mask model (`--mask-type dynamic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<XorDynamicConfig>,
}

/// One xor mask: a softmax over `weights.len()` versions per cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XorMaskConfig {
    /// `thumbnail` or `quality`.
    pub name: String,
    /// One version's shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// What one cell covers.
    pub granularity: Granularity,
    /// Transfer weight of each version (also sets the initial logits).
    pub weights: Vec<f64>,
    /// Name of each version.
    pub labels: Vec<String>,
    /// Standard deviation of the initial logits.
    pub init_std: f64,
    /// Per-input logits from a mask model.
    pub dynamic: Option<XorDynamicConfig>,
}

/// The xor masks of a run together with its (optional) any mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XorPipelineConfig {
    /// The xor selection.
    pub xor: XorConfig,
    /// The any mask after it (`None` with `--use-any-mask 0`).
    pub any: Option<Box<MaskConfig>>,
}

impl XorConfig {
    /// The xor masks, in the reference's order: thumbnails, then JPEG levels
    /// (a selection with one choice is left out).
    pub fn masks(&self) -> Vec<XorMaskConfig> {
        let v = &self.versions;
        let mut out = Vec::new();
        if !v.thumbs.is_empty() {
            out.push(XorMaskConfig {
                name: "thumbnail".into(),
                input_shape: self.input_shape,
                granularity: self.thumb_granularity,
                weights: v.thumb_weights(self.input_shape),
                labels: v.thumb_labels(),
                init_std: self.init_std,
                dynamic: self.dynamic.clone(),
            });
        }
        if !v.quality_levels.is_empty() {
            out.push(XorMaskConfig {
                name: "quality".into(),
                input_shape: self.input_shape,
                granularity: self.fmap_granularity,
                weights: v.quality_weights(),
                labels: v.quality_labels(),
                init_std: self.init_std,
                dynamic: self.dynamic.clone(),
            });
        }
        out
    }

    /// Checks the versions, granularities and dynamic settings.
    pub fn validate(&self) -> Result<()> {
        if self.versions.is_empty() {
            return Err(Error::config("quality-levels", "none", "xor selection needs --quality-levels or --thumb-w/--thumb-h"));
        }
        self.versions.validate(self.input_shape)?;
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return Err(Error::config("xor init std", self.init_std, "must be finite and >= 0"));
        }
        for m in self.masks() {
            m.granularity.layout(self.input_shape)?;
        }
        crate::masks::dynamic::check_server_hw(self.dynamic.as_ref().and_then(|d| d.server_hw), self.input_shape)
    }
}

/// The cell shape `[c, h, w]` the transfer loss of masks with cell shapes
/// `shapes` (in order) is computed on: their element-wise maximum.
fn q_grid(shapes: impl IntoIterator<Item = [usize; 3]>) -> [usize; 3] {
    shapes.into_iter().fold([1, 1, 1], |a, s| [a[0].max(s[0]), a[1].max(s[1]), a[2].max(s[2])])
}

impl XorPipelineConfig {
    /// The cell shapes of the masks, in order (xor masks, then the any mask).
    fn mask_shapes(&self) -> Result<Vec<[usize; 3]>> {
        let mut shapes: Vec<[usize; 3]> =
            self.xor.masks().iter().map(|m| m.granularity.mask_shape(self.xor.input_shape)).collect::<Result<_, _>>()?;
        if let Some(any) = &self.any {
            shapes.push(any.layout()?.mask);
        }
        Ok(shapes)
    }

    /// The grid Q is measured on (see the module docs).
    pub fn layout(&self) -> Result<CellLayout> {
        Ok(CellLayout::new(self.xor.input_shape, q_grid(self.mask_shapes()?))?)
    }

    /// Checks every part.
    pub fn validate(&self) -> Result<()> {
        self.xor.validate()?;
        if let Some(any) = &self.any {
            if matches!(**any, MaskConfig::Xor(_)) {
                return Err(Error::config("use-any-mask", "xor", "the mask after xor selection must be a static or dynamic any mask"));
            }
            if any.input_shape() != self.xor.input_shape {
                return Err(Error::config(
                    "any-granularity",
                    format!("{:?}", any.input_shape()),
                    format!("the any mask must see the selected input {:?}", self.xor.input_shape),
                ));
            }
            any.validate()?;
        }
        self.layout().map(|_| ())
    }

    /// Builds the masks on `device`.
    pub fn init(&self, device: &Device) -> Result<XorPipeline> {
        self.validate()?;
        let mut thumb = None;
        let mut quality = None;
        for m in self.xor.masks() {
            let mask = m.init(device)?;
            if m.name == "thumbnail" { thumb = Some(mask) } else { quality = Some(mask) }
        }
        let any = match self.any.as_deref() {
            None => None,
            Some(MaskConfig::Static(c)) => Some(AnyMask::Static(c.init(device)?)),
            Some(MaskConfig::Dynamic(c)) => Some(AnyMask::Dynamic(c.init(device)?)),
            Some(MaskConfig::Xor(_)) => unreachable!("validated: no xor after xor"),
        };
        let v = &self.xor.versions;
        Ok(XorPipeline {
            thumb,
            quality,
            any,
            layout: self.layout()?,
            choices: [v.n_thumb_choices(), v.n_quality_choices()],
        })
    }
}

impl XorMaskConfig {
    /// Initial logit mean of each version: `w² · V` (the reference's
    /// `reset_parameters`).
    fn init_means(&self) -> Vec<f64> {
        let v = self.weights.len() as f64;
        self.weights.iter().map(|w| w * w * v).collect()
    }

    /// Logits `[V, shape...]` with version `v` drawn from `N(mean_v, std)`.
    fn init_logits(&self, shape: [usize; 3], device: &Device) -> Tensor<4> {
        let [c, h, w] = shape;
        let parts = self
            .init_means()
            .into_iter()
            .map(|mean| Tensor::<4>::random([1, c, h, w], Distribution::Normal(mean, self.init_std), device))
            .collect();
        Tensor::cat(parts, 0)
    }

    /// Builds the mask on `device`.
    pub fn init(&self, device: &Device) -> Result<XorMask> {
        let layout = self.granularity.layout(self.input_shape)?;
        let [c, h, w] = layout.mask;
        let n_versions = self.weights.len();
        let logits = match &self.dynamic {
            None => XorLogits::Static(Param::from_tensor(self.init_logits(layout.mask, device))),
            Some(d) => {
                let [ci, hi, wi] = self.input_shape;
                let [sh, sw] = d.server_hw.unwrap_or([hi, wi]);
                // One output channel per (version, mask channel).
                let shape = MaskModelShape { server: [ci, sh, sw], mask: [n_versions * c, h, w] };
                let mut model = d.model.init(shape, device)?;
                if !d.learn_dynamic {
                    model = model.map(&mut ZeroParams).no_grad();
                }
                let bias = if d.learn_static {
                    Param::from_tensor(self.init_logits(layout.mask, device))
                } else {
                    Param::from_tensor(self.init_logits([1, 1, 1], device)).set_require_grad(false)
                };
                XorLogits::Dynamic(DynamicXorLogits { model, bias, server_hw: d.server_hw })
            }
        };
        let gather = (layout.mask != layout.input && layout.n_cells() > 1).then(|| {
            let idx: Vec<i64> = layout.cell_of_value.iter().map(|&v| v as i64).collect();
            let n = idx.len();
            Tensor::from_data(TensorData::new(idx, [n]), device)
        });
        Ok(XorMask {
            logits,
            gather,
            layout,
            weights: self.weights.iter().map(|&w| w as f32).collect(),
            labels: self.labels.clone(),
            name: self.name.clone(),
        })
    }
}

/// Where an xor mask's logits come from.
#[derive(Module, Debug)]
pub enum XorLogits {
    /// One set for every input, `[V, c, h, w]`.
    Static(Param<Tensor<4>>),
    /// Per input, from a mask model.
    Dynamic(DynamicXorLogits),
}

/// `g(x_server) + b` with `V·c` output channels.
#[derive(Module, Debug)]
pub struct DynamicXorLogits {
    /// The mask model g.
    pub model: MaskModel,
    /// The bias b: `[V, c, h, w]` when learned, `[V, 1, 1, 1]` (constant) otherwise.
    pub bias: Param<Tensor<4>>,
    #[module(skip)]
    server_hw: Option<[usize; 2]>,
}

/// One xor selection over versions.
#[derive(Module, Debug)]
pub struct XorMask {
    /// The logits.
    pub logits: XorLogits,
    /// Cell of each input value, when cells neither equal values nor are one cell.
    #[module(skip)]
    gather: Option<Tensor<1, Int>>,
    #[module(skip)]
    layout: CellLayout,
    #[module(skip)]
    weights: Vec<f32>,
    #[module(skip)]
    labels: Vec<String>,
    #[module(skip)]
    name: String,
}

impl XorMask {
    /// The cell geometry of one version.
    pub fn layout(&self) -> &CellLayout {
        &self.layout
    }

    /// Number of versions.
    pub fn n_versions(&self) -> usize {
        self.weights.len()
    }

    /// Transfer weight of each version.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Name of each version.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// `thumbnail` or `quality`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces static logits with fixed values, row-major `[V, c, h, w]`
    /// (tests; a dynamic mask is left alone).
    pub fn set_logits(&mut self, values: &[f32]) {
        if let XorLogits::Static(p) = &mut self.logits {
            let device = p.val().device();
            let [c, h, w] = self.layout.mask;
            let t = Tensor::<4>::from_data(TensorData::new(values.to_vec(), [self.weights.len(), c, h, w]), &device);
            *p = Param::from_tensor(t).set_require_grad(false);
        }
    }

    /// Logits `[b', V, c, h, w]`: `b' = 1` for a static mask, `B` for a
    /// dynamic one (computed from `original`, the first version).
    ///
    /// # Shapes
    /// - `original` `[B, C, H, W]` → `[b', V, c, h, w]`
    pub fn logits(&self, original: Tensor<4>) -> Tensor<5> {
        let [c, h, w] = self.layout.mask;
        let v = self.weights.len();
        match &self.logits {
            XorLogits::Static(p) => p.val().unsqueeze::<5>(),
            XorLogits::Dynamic(d) => {
                let [b, ..] = original.dims();
                let server = match d.server_hw {
                    Some(hw) => adaptive_max_pool2d(original.detach(), hw),
                    None => original.detach(),
                };
                let out = d.model.forward(server).reshape([b, v, c, h, w]); // [B, V, c, h, w]
                out + d.bias.val().unsqueeze::<5>()
            }
        }
    }

    /// The one-hot of the largest logit per cell, `[b', V, c, h, w]`.
    fn one_hot(logits: Tensor<5>) -> Tensor<5> {
        let dims = logits.dims();
        let idx = logits.argmax(1).expand(dims); // [b', V, c, h, w], the winner repeated
        let versions = Tensor::<1, Int>::arange(0..dims[1] as i64, &idx.device()).reshape([1, dims[1], 1, 1, 1]).expand(dims);
        versions.equal(idx).float()
    }

    /// Straight-through one-hot selection at temperature `tau`.
    ///
    /// # Shapes
    /// - `original` `[B, C, H, W]` → `[b', V, c, h, w]`
    pub fn straight_through(&self, original: Tensor<4>, tau: f64) -> Tensor<5> {
        let soft = softmax(self.logits(original).div_scalar(tau), 1);
        let hard = Self::one_hot(soft.clone().detach());
        hard - soft.clone().detach() + soft
    }

    /// The hard one-hot selection (no gradient).
    ///
    /// # Shapes
    /// - `original` `[B, C, H, W]` → `[b', V, c, h, w]`
    pub fn hard(&self, original: Tensor<4>) -> Tensor<5> {
        Self::one_hot(self.logits(original).detach())
    }

    /// Per cell, `Σ_v m_v · w_v`.
    ///
    /// # Shapes
    /// - `m` `[b', V, c, h, w]` → `[b', c, h, w]`
    pub fn weighted_cells(&self, m: Tensor<5>) -> Tensor<4> {
        let [b, v, c, h, w] = m.dims();
        let weights = Tensor::<5>::from_data(TensorData::new(self.weights.clone(), [1, v, 1, 1, 1]), &m.device());
        (m * weights).sum_dim(1).reshape([b, c, h, w])
    }

    /// Selects one version per value: `x` holds `V` versions, each `K`
    /// groups of one version's `N = C·H·W` values (`K > 1` while a later
    /// selection still has to choose among them).
    ///
    /// # Shapes
    /// - `x` `[B, V, K, N]`, `m` `[b', V, c, h, w]` → `[B, K, N]`
    pub fn select(&self, x: Tensor<4>, m: Tensor<5>) -> Tensor<3> {
        let [b, _, k, n] = x.dims();
        let [bm, v, ..] = m.dims();
        let cells = m.reshape([bm, v, self.layout.n_cells()]); // [b', V, cells]
        let per_value = match &self.gather {
            Some(idx) => cells.select(2, idx.clone()), // [b', V, N]
            None => cells,                             // [b', V, N] or [b', V, 1]
        };
        (x * per_value.unsqueeze_dim::<4>(2)).sum_dim(1).reshape([b, k, n])
    }
}

/// The any mask after xor selection.
#[derive(Module, Debug)]
pub enum AnyMask {
    /// See [`StaticMask`].
    Static(StaticMask),
    /// See [`DynamicMask`].
    Dynamic(DynamicMask),
}

/// Xor selection (thumbnails, then JPEG levels) and the optional any mask.
#[derive(Module, Debug)]
pub struct XorPipeline {
    /// The thumbnail selection (absent without thumbnails).
    pub thumb: Option<XorMask>,
    /// The JPEG selection (absent without quality levels).
    pub quality: Option<XorMask>,
    /// The any mask (absent with `--use-any-mask 0`).
    pub any: Option<AnyMask>,
    /// The grid Q is measured on.
    #[module(skip)]
    layout: CellLayout,
    /// `[T + 1, Q + 1]`.
    #[module(skip)]
    choices: [usize; 2],
}

/// Brings cell masks `[b, c, h, w]` to the cell shape `to` with PyTorch's
/// nearest rule on every axis (as `interpolate` on the reference's 5-d masks).
fn resize_cells(mut t: Tensor<4>, to: [usize; 3]) -> Tensor<4> {
    let device = t.device();
    for axis in 1..4 {
        let n_in = t.dims()[axis];
        let n_out = to[axis - 1];
        if n_in != n_out {
            let idx: Vec<i64> = (0..n_out).map(|d| nearest_source_index(d, n_in, n_out) as i64).collect();
            t = t.select(axis, Tensor::<1, Int>::from_data(TensorData::new(idx, [n_out]), &device));
        }
    }
    t
}

/// The reference's `qloss_f` product: per mask in order, the running
/// product and the mask are resized to the element-wise largest cell shape
/// so far, then multiplied.
///
/// # Shapes
/// - each of `cells` `[1 or B, c_k, h_k, w_k]` → `[1 or B, c, h, w]`
fn transfer_product(cells: Vec<Tensor<4>>) -> Tensor<4> {
    let mut shape = [1, 1, 1];
    let mut product: Option<Tensor<4>> = None;
    for m in cells {
        let [_, c, h, w] = m.dims();
        shape = q_grid([shape, [c, h, w]]);
        let m = resize_cells(m, shape);
        product = Some(match product {
            None => m,
            Some(p) => resize_cells(p, shape) * m,
        });
    }
    product.expect("a pipeline has at least one mask")
}

/// Per item, the mean of `product` (`[1 or B, ...]`), for `b` items.
fn per_item_mean(product: Tensor<4>, b: usize) -> Vec<f64> {
    let [bp, c, h, w] = product.dims();
    let means: Vec<f32> = product.reshape([bp, c * h * w]).mean_dim(1).into_data().convert::<f32>().try_into_vec().expect("f32 means");
    if bp == 1 { vec![means[0] as f64; b] } else { means.into_iter().map(f64::from).collect() }
}

impl XorPipeline {
    /// The grid Q is measured on.
    pub fn layout(&self) -> &CellLayout {
        &self.layout
    }

    /// The xor masks, in order.
    pub fn xor_masks(&self) -> impl Iterator<Item = &XorMask> {
        self.thumb.iter().chain(self.quality.iter())
    }

    /// The stack as `[B, T + 1, Q + 1, N]` and the original version `[B, C, H, W]`.
    fn split_stack(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [b, vc, h, w] = x.dims();
        let [t, f] = self.choices;
        let c = vc / (t * f);
        let [ci, hi, wi] = self.layout.input;
        assert_eq!([c, h, w], [ci, hi, wi], "a stack of {} versions of {:?} expected, got {:?}", t * f, self.layout.input, x.dims());
        let original = x.clone().slice([0..b, 0..c, 0..h, 0..w]);
        (x.reshape([b, t, f, c * h * w]), original)
    }

    /// Xor selection with per-mask selections `ms` (thumbnail, then JPEG).
    ///
    /// # Shapes
    /// - `stack` `[B, T + 1, Q + 1, N]` → `[B, C, H, W]`
    fn select_versions(&self, stack: Tensor<4>, ms: &[Tensor<5>]) -> Tensor<4> {
        let [b, t, f, n] = stack.dims();
        let [c, h, w] = self.layout.input;
        let mut ms = ms.iter();
        let mut x = stack;
        if let Some(thumb) = &self.thumb {
            x = thumb.select(x, ms.next().expect("a thumbnail selection").clone()).reshape([b, f, 1, n]);
        } else {
            debug_assert_eq!(t, 1);
            x = x.reshape([b, f, 1, n]);
        }
        if let Some(quality) = &self.quality {
            x = quality.select(x, ms.next().expect("a jpeg selection").clone()).reshape([b, 1, 1, n]);
        }
        x.reshape([b, c, h, w])
    }

    /// Applies the masks for training (straight-through, differentiable Q).
    ///
    /// # Shapes
    /// - `x` `[B, V·C, H, W]` → masked `[B, C, H, W]`, `q` `[1]`
    pub fn forward(&self, x: Tensor<4>, tau: f64) -> Masked {
        let (stack, original) = self.split_stack(x);
        let ms: Vec<Tensor<5>> = self.xor_masks().map(|m| m.straight_through(original.clone(), tau)).collect();
        let mut cells: Vec<Tensor<4>> = self.xor_masks().zip(&ms).map(|(mask, m)| mask.weighted_cells(m.clone())).collect();
        let selected = self.select_versions(stack, &ms);
        let x = match &self.any {
            None => selected,
            Some(AnyMask::Static(s)) => {
                let (masked, m) = s.forward_cells(selected, tau);
                cells.push(m.unsqueeze::<4>());
                masked.x
            }
            Some(AnyMask::Dynamic(d)) => {
                let (masked, m) = d.forward_cells(selected, original, tau);
                cells.push(m);
                masked.x
            }
        };
        let q = transfer_product(cells).mean();
        Masked { x, q }
    }

    /// Applies the exact hard masks and measures them: per item Q (cells of
    /// the Q grid, weighted), the weighted fraction of input values, and per
    /// xor mask the share of cells choosing each version (summed over items).
    pub fn hard_batch(&self, x: Tensor<4>, tau: f64) -> HardBatch {
        let [b, ..] = x.dims();
        let (x, product, ms) = self.hard_parts(x, tau);
        let version_shares = ms.iter().map(|m| version_shares(m.clone(), b)).collect();
        let q = per_item_mean(product.clone(), b);
        let bytes = per_item_mean(resize_cells(product, self.layout.input), b);
        HardBatch { x, q, bytes, version_shares }
    }

    /// What the client receives of each input: the input composed of the
    /// chosen versions with the any mask applied, and per value its
    /// transfer weight (the chosen version's weight, 0 where the any mask
    /// removes it), for figures.
    ///
    /// # Shapes
    /// - `x` `[B, V·C, H, W]` → input `[B, C, H, W]`, weights `[B or 1, C, H, W]`
    pub fn sent(&self, x: Tensor<4>, tau: f64) -> (Tensor<4>, Tensor<4>) {
        let (x, product, _) = self.hard_parts(x, tau);
        (x, resize_cells(product, self.layout.input))
    }

    /// The hard selection of `x`: the masked input, the transfer product on
    /// the Q grid, and each xor mask's hard choice.
    fn hard_parts(&self, x: Tensor<4>, tau: f64) -> (Tensor<4>, Tensor<4>, Vec<Tensor<5>>) {
        let (stack, original) = self.split_stack(x);
        let ms: Vec<Tensor<5>> = self.xor_masks().map(|m| m.hard(original.clone())).collect();
        let mut cells: Vec<Tensor<4>> = self.xor_masks().zip(&ms).map(|(mask, m)| mask.weighted_cells(m.clone())).collect();
        let selected = self.select_versions(stack, &ms);
        let x = match &self.any {
            None => selected,
            Some(AnyMask::Static(s)) => {
                let hard = s.hard_mask(tau);
                let [c, h, w] = s.layout().mask;
                let device = selected.device();
                cells.push(Tensor::from_data(TensorData::new(hard.values.clone(), [1, c, h, w]), &device));
                s.apply_hard(selected, &hard)
            }
            Some(AnyMask::Dynamic(d)) => {
                let hard = d.hard(original, tau); // [B, c, h, w]
                cells.push(hard.clone());
                d.apply_hard(selected, hard)
            }
        };
        (x, transfer_product(cells), ms)
    }
}

/// Per version, the share of cells choosing it summed over `b` items.
fn version_shares(m: Tensor<5>, b: usize) -> Vec<f64> {
    let [bm, v, c, h, w] = m.dims();
    let shares: Vec<f32> = m.reshape([bm, v, c * h * w]).mean_dim(2).sum_dim(0).reshape([v]).into_data().convert::<f32>().try_into_vec().expect("f32 shares");
    let repeat = if bm == 1 { b as f64 } else { 1.0 };
    shares.into_iter().map(|s| s as f64 * repeat).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masks::static_mask::StaticMaskConfig;

    fn device() -> Device {
        Device::flex().autodiff()
    }

    fn pipeline(quality: Vec<u8>, thumbs: Vec<[usize; 2]>, fmap: &str, any: Option<&str>, shape: [usize; 3]) -> XorPipelineConfig {
        XorPipelineConfig {
            xor: XorConfig {
                versions: VersionsConfig { quality_levels: quality, thumbs },
                input_shape: shape,
                fmap_granularity: fmap.parse().unwrap(),
                thumb_granularity: Granularity::Version,
                init_std: 0.01,
                dynamic: None,
            },
            any: any.map(|g| {
                Box::new(MaskConfig::Static(StaticMaskConfig {
                    input_shape: shape,
                    granularity: g.parse().unwrap(),
                    init_mean: 3.0,
                    init_std: 0.01,
                    input_drop_upscaling: false,
                }))
            }),
        }
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec().unwrap()
    }

    #[test]
    fn the_architecture_leaves_out_the_initialisation_only() {
        let base = MaskConfig::Xor(pipeline(vec![50, 10], vec![], "pixel", Some("pixel"), [3, 8, 8]));
        let mut other_init = pipeline(vec![50, 10], vec![], "pixel", Some("pixel"), [3, 8, 8]);
        other_init.xor.init_std = 0.5;
        if let Some(MaskConfig::Static(any)) = other_init.any.as_deref_mut() {
            any.init_mean = -2.0;
        }
        let other_init = MaskConfig::Xor(other_init);
        assert_ne!(other_init, base);
        assert_eq!(other_init.architecture(), base.architecture());
        let other_levels = MaskConfig::Xor(pipeline(vec![50], vec![], "pixel", Some("pixel"), [3, 8, 8]));
        assert_ne!(other_levels.architecture(), base.architecture());
        let other_any = MaskConfig::Xor(pipeline(vec![50, 10], vec![], "pixel", Some("quadrant"), [3, 8, 8]));
        assert_ne!(other_any.architecture(), base.architecture());
    }

    #[test]
    fn q_is_the_weighted_selection_times_the_any_mask() {
        // One 1x2x2 input, versions: original (weight 1) and JPEG 50 (0.5),
        // chosen per pixel; an any mask per pixel.
        let device = device();
        let cfg = pipeline(vec![50], vec![], "pixel", Some("pixel"), [1, 2, 2]);
        let mut p = cfg.init(&device).unwrap();
        // Pixels choose original, jpeg50, jpeg50, original.
        p.quality.as_mut().unwrap().set_logits(&[5.0, -5.0, -5.0, 5.0, 0.0, 0.0, 0.0, 0.0]);
        // The any mask drops pixel 2 only.
        let Some(AnyMask::Static(any)) = &mut p.any else { unreachable!() };
        any.set_logits(&[5.0, 5.0, -5.0, 5.0]);
        // Stack [1, 2 versions x 1 channel, 2, 2]: original 1..4, jpeg 11..14.
        let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 11.0, 12.0, 13.0, 14.0], [1, 2, 2, 2]), &device);
        // Q by hand: weights (1, .5, .5, 1) times kept (1, 1, 0, 1), over 4 cells.
        let expected_q = (1.0 + 0.5 + 0.0 + 1.0) / 4.0;
        let masked = p.forward(x.clone(), 1.0);
        assert_eq!(values(masked.x), [1.0, 12.0, 0.0, 4.0]);
        assert!((values(masked.q)[0] as f64 - expected_q).abs() < 1e-6);
        let hard = p.hard_batch(x, 1.0);
        assert_eq!(values(hard.x), [1.0, 12.0, 0.0, 4.0]);
        assert!((hard.q[0] - expected_q).abs() < 1e-6, "{:?}", hard.q);
        assert!((hard.bytes[0] - expected_q).abs() < 1e-6);
        assert_eq!(hard.version_shares, vec![vec![0.5, 0.5]]);
    }

    #[test]
    fn masks_multiply_on_the_largest_grid_and_versions_alone_work() {
        let device = device();
        // Whole-input JPEG choice (version granularity) picks quality 30,
        // the any mask keeps 3 of 4 pixels: Q = 0.3 x 3/4.
        let cfg = pipeline(vec![70, 30], vec![], "version", Some("pixel"), [1, 2, 2]);
        let mut p = cfg.init(&device).unwrap();
        p.quality.as_mut().unwrap().set_logits(&[0.0, 1.0, 2.0]);
        let Some(AnyMask::Static(any)) = &mut p.any else { unreachable!() };
        any.set_logits(&[5.0, -5.0, 5.0, 5.0]);
        let x = Tensor::<4>::ones([2, 3, 2, 2], &device);
        let hard = p.hard_batch(x.clone(), 1.0);
        assert!(hard.q.iter().all(|q| (q - 0.225).abs() < 1e-6), "{:?}", hard.q);
        assert_eq!(hard.version_shares, vec![vec![0.0, 0.0, 2.0]]);
        assert!((values(p.forward(x, 1.0).q)[0] - 0.225).abs() < 1e-6);
        // Without an any mask Q is the weight of the chosen versions; at
        // initialisation every cell chooses the original (Q = 1).
        let cfg = pipeline(vec![90, 10], vec![[1, 1]], "pixel", None, [3, 2, 2]);
        let p = cfg.init(&device).unwrap();
        assert_eq!(p.layout().mask, [1, 2, 2]);
        let x = Tensor::<4>::random([2, 18, 2, 2], Distribution::Default, &device);
        let hard = p.hard_batch(x.clone(), 1.0);
        assert_eq!(hard.q, vec![1.0, 1.0]);
        assert_eq!(values(hard.x), values(x.slice([0..2, 0..3, 0..2, 0..2])));
    }

    #[test]
    fn thumbnail_then_jpeg_selection_and_gradients() {
        let device = device();
        // Two thumbnail choices (original, 1x1 box: weight 2/4) and two JPEG
        // choices (original, 50: weight .5) on [1, 2, 2]; stack order t-major.
        let mut cfg = pipeline(vec![50], vec![[1, 1]], "pixel", None, [1, 2, 2]);
        cfg.xor.thumb_granularity = Granularity::Version;
        let mut p = cfg.init(&device).unwrap();
        p.thumb.as_mut().unwrap().set_logits(&[0.0, 1.0]); // the thumbnail
        p.quality.as_mut().unwrap().set_logits(&[0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]); // jpeg at pixels 0, 2
        let stack: Vec<f32> = (0..16).map(|v| v as f32).collect(); // (t, f, pixel)
        let x = Tensor::<4>::from_data(TensorData::new(stack, [1, 4, 2, 2]), &device);
        let hard = p.hard_batch(x, 1.0);
        // Thumbnail (t = 1): versions 8..11 (no jpeg) and 12..15 (jpeg).
        assert_eq!(values(hard.x), [12.0, 9.0, 14.0, 11.0]);
        // Q: thumbnail weight .5 everywhere, times (.5, 1, .5, 1).
        assert!((hard.q[0] - 0.5 * 0.75).abs() < 1e-6);
        assert_eq!(hard.version_shares, vec![vec![0.0, 1.0], vec![0.5, 0.5]]);
        // Q's gradient reaches the (trainable) logits of a fresh pipeline.
        let p = cfg.init(&device).unwrap();
        let x = Tensor::<4>::random([2, 4, 2, 2], Distribution::Default, &device);
        let masked = p.forward(x, 1.0);
        let grads = masked.q.backward();
        let XorLogits::Static(logits) = &p.quality.as_ref().unwrap().logits else { unreachable!() };
        let g = logits.val().grad(&grads).expect("a gradient for the jpeg logits");
        assert!(values(g).iter().any(|v| v.abs() > 0.0));
    }

    #[test]
    fn the_product_is_taken_on_the_running_largest_grid() {
        let device = device();
        let t = |v: Vec<f32>, shape: [usize; 4]| Tensor::<4>::from_data(TensorData::new(v, shape), &device);
        // [1, 1, 2] then [1, 1, 3]: the first is brought to 3 cells by
        // PyTorch's nearest rule (0, 0, 1), then multiplied.
        let p = transfer_product(vec![t(vec![0.5, 1.0], [1, 1, 1, 2]), t(vec![1.0, 0.0, 1.0], [1, 1, 1, 3])]);
        assert_eq!(values(p), [0.5, 0.0, 1.0]);
        // Per-item masks broadcast against a shared one; channels too.
        let p = transfer_product(vec![t(vec![0.5], [1, 1, 1, 1]), t(vec![1.0, 0.0, 0.0, 1.0], [2, 2, 1, 1])]);
        assert_eq!(p.dims(), [2, 2, 1, 1]);
        assert_eq!(per_item_mean(p, 2), [0.25, 0.25]);
    }

    #[test]
    fn initial_logits_follow_the_squared_weights() {
        let device = device();
        let cfg = pipeline(vec![90, 70, 50, 30, 10], vec![], "version", None, [3, 4, 4]);
        let p = cfg.init(&device).unwrap();
        let XorLogits::Static(logits) = &p.quality.as_ref().unwrap().logits else { unreachable!() };
        let got = values(logits.val());
        let want = [1.0, 0.81, 0.49, 0.25, 0.09, 0.01].map(|w| w * 6.0);
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 0.1, "{got:?}");
        }
    }

    #[test]
    fn dynamic_xor_masks_give_per_input_selections() {
        let device = device();
        let mut cfg = pipeline(vec![50], vec![], "pixel", None, [1, 4, 4]);
        cfg.xor.dynamic = Some(XorDynamicConfig { model: MaskModelKind::Conv, server_hw: Some([2, 2]), learn_static: true, learn_dynamic: true });
        let p = cfg.init(&device).unwrap();
        let x = Tensor::<4>::random([3, 2, 4, 4], Distribution::Default, &device);
        let masked = p.forward(x.clone(), 1.0);
        assert_eq!(masked.x.dims(), [3, 1, 4, 4]);
        let hard = p.hard_batch(x.clone(), 1.0);
        assert_eq!(hard.q.len(), 3);
        // g starts near zero: the bias picks the original everywhere.
        assert!(hard.q.iter().all(|&q| q == 1.0), "{:?}", hard.q);
        assert_eq!(hard.version_shares, vec![vec![3.0, 0.0]]);

        // With a g that has learned something (random weights, larger than
        // the bias's margin), the choice depends on the input: each item
        // picks its own versions, pixel by pixel.
        struct Random;
        impl burn::module::ModuleMapper for Random {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let (id, tensor, mapper) = param.consume();
                let random = Tensor::random(tensor.shape(), Distribution::Normal(0.0, 20.0), &tensor.device());
                Param::from_mapped_value(id, random, mapper)
            }
        }
        let mut p = p;
        let quality = p.quality.take().unwrap();
        let XorLogits::Dynamic(d) = quality.logits else { unreachable!() };
        let logits = XorLogits::Dynamic(DynamicXorLogits { model: d.model.map(&mut Random), ..d });
        p.quality = Some(XorMask { logits, ..quality });
        // Items around -3, 0 and 3: the server's view is a max-pooled
        // thumbnail, positive for zero-mean noise, so the items' levels are
        // what g's random weights can tell apart.
        let offsets: Vec<f32> = (0..3 * 32).map(|i| 3.0 * (i / 32) as f32 - 3.0).collect();
        let offsets = Tensor::<4>::from_data(TensorData::new(offsets, [3, 2, 4, 4]), &device);
        let x = Tensor::<4>::random([3, 2, 4, 4], Distribution::Normal(0.0, 1.0), &device) + offsets;
        let hard = p.hard_batch(x.clone(), 1.0);
        let (xs, chosen) = (values(x), values(hard.x));
        // Per item, which pixels took the JPEG version (stack channel 1).
        let picks: Vec<Vec<bool>> = (0..3)
            .map(|i| {
                (0..16)
                    .map(|px| {
                        let (orig, jpeg, got) = (xs[i * 32 + px], xs[i * 32 + 16 + px], chosen[i * 16 + px]);
                        assert!(got == orig || got == jpeg, "item {i} pixel {px}: {got} is neither version");
                        got == jpeg && jpeg != orig
                    })
                    .collect()
            })
            .collect();
        assert!(picks[0] != picks[1] || picks[1] != picks[2], "the same selection for every input: {picks:?} (Q {:?})", hard.q);
        assert!(hard.q.iter().any(|&q| q != hard.q[0]), "the same Q for every input: {:?}", hard.q);
        assert!(hard.q.iter().all(|&q| (0.5..=1.0).contains(&q)), "{:?}", hard.q);
    }
}
