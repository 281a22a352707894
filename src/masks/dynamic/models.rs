//! The mask models g of dynamic masks: from the server's view of an input
//! to one logit per mask cell. Every model starts with an output near zero,
//! so training starts from the static bias alone ("send everything").

use std::fmt;
use std::str::FromStr;

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{Initializer, Relu};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::adaptive_avg_pool2d;
use serde::{Deserialize, Serialize};

use super::blocks::{ConvAttBlock, MiniUNet, ResidualBlock, output_conv, reflect};
use crate::error::{Error, Result};
use selmask_wire::granularity::nearest_source_index;

/// Which mask model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskModelKind {
    /// One dense layer on the flattened input, scaled by a learned γ (starts at 0).
    Linear,
    /// Dense → ReLU → dense (8 hidden units; the output layer starts near 0).
    Mlp,
    /// One reflection-padded 3×3 convolution.
    Conv,
    /// 3×3 and dilated 3×3 branches, merged by global attention, then 1×1.
    Convatt,
    /// 1×1 and 3×3 branches, merged by global attention, then 1×1.
    Smallconvatt,
    /// Strided residual blocks down to the mask resolution, then 1×1.
    Convnet,
    /// A small U-Net, then 1×1.
    Unet,
    /// SAGAN-style self-attention over pixels, scaled by a learned γ.
    Att,
}

impl MaskModelKind {
    /// Every kind, for messages.
    pub const ALL: [MaskModelKind; 8] = [
        MaskModelKind::Linear,
        MaskModelKind::Mlp,
        MaskModelKind::Conv,
        MaskModelKind::Convatt,
        MaskModelKind::Smallconvatt,
        MaskModelKind::Convnet,
        MaskModelKind::Unet,
        MaskModelKind::Att,
    ];

    /// The reference's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            MaskModelKind::Linear => "linear",
            MaskModelKind::Mlp => "mlp",
            MaskModelKind::Conv => "conv",
            MaskModelKind::Convatt => "convatt",
            MaskModelKind::Smallconvatt => "smallconvatt",
            MaskModelKind::Convnet => "convnet",
            MaskModelKind::Unet => "unet",
            MaskModelKind::Att => "att",
        }
    }
}

impl fmt::Display for MaskModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MaskModelKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        MaskModelKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let valid: Vec<&str> = MaskModelKind::ALL.iter().map(|k| k.as_str()).collect();
            Error::config("dynamic-mask", s, format!("unknown mask model; valid: {}", valid.join(", ")))
        })
    }
}

/// What a mask model maps: server input `[C, sh, sw]` to logits `[c, h, w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskModelShape {
    /// The server's input `[C, sh, sw]` (full size or thumbnail).
    pub server: [usize; 3],
    /// The mask `[c, h, w]`.
    pub mask: [usize; 3],
}

/// A mask model g.
#[derive(Module, Debug)]
pub enum MaskModel {
    /// See [`MaskModelKind::Linear`].
    Linear(LinearMask),
    /// See [`MaskModelKind::Mlp`].
    Mlp(MlpMask),
    /// The convolutional models: a trunk and a 1×1 output convolution.
    Conv(ConvMask),
    /// See [`MaskModelKind::Att`].
    Att(AttentionMask),
}

/// `γ · W x` on the flattened input (no bias, as the reference).
#[derive(Module, Debug)]
pub struct LinearMask {
    /// `[inputs, cells]`.
    weight: Param<Tensor<2>>,
    /// `[1]`, starts at 0.
    gamma: Param<Tensor<1>>,
    mask: [usize; 3],
}

/// Dense (8 units) → ReLU → dense.
#[derive(Module, Debug)]
pub struct MlpMask {
    w1: Param<Tensor<2>>,
    b1: Param<Tensor<1>>,
    w2: Param<Tensor<2>>,
    relu: Relu,
    mask: [usize; 3],
}

/// The trunks of the convolutional models.
#[derive(Module, Debug)]
pub enum ConvTrunk {
    /// Reflection padding of this size and nothing else: `conv`.
    Pad(usize),
    /// `convatt` / `smallconvatt`.
    Att(ConvAttBlock),
    /// `convnet`.
    Blocks(Vec<ResidualBlock>),
    /// `unet`.
    Unet(MiniUNet),
}

/// A trunk, then the output convolution, then resizing to the mask grid.
#[derive(Module, Debug)]
pub struct ConvMask {
    trunk: ConvTrunk,
    out: Conv2d,
    mask: [usize; 3],
}

/// Self-attention over the server input's pixels, scaled by γ.
#[derive(Module, Debug)]
pub struct AttentionMask {
    query: Param<Tensor<2>>,
    key: Param<Tensor<2>>,
    value: Param<Tensor<2>>,
    gamma: Param<Tensor<1>>,
    mask: [usize; 3],
}

fn xavier(shape: [usize; 2], gain: f64, fan: (usize, usize), device: &Device) -> Param<Tensor<2>> {
    Initializer::XavierNormal { gain }.init_with(shape, Some(fan.0), Some(fan.1), device)
}

impl MaskModelKind {
    /// Builds the model for `shape` on `device`.
    pub fn init(&self, shape: MaskModelShape, device: &Device) -> Result<MaskModel> {
        let [c_in, sh, sw] = shape.server;
        let [c, h, w] = shape.mask;
        let n_in = c_in * sh * sw;
        let n_out = c * h * w;
        Ok(match self {
            MaskModelKind::Linear => MaskModel::Linear(LinearMask {
                weight: xavier([n_in, n_out], 1.0, (n_in, n_out), device),
                gamma: Param::from_tensor(Tensor::zeros([1], device)),
                mask: shape.mask,
            }),
            MaskModelKind::Mlp => MaskModel::Mlp(MlpMask {
                w1: xavier([n_in, 8], 1.0, (n_in, 8), device),
                b1: Param::from_tensor(Tensor::zeros([8], device)),
                w2: xavier([8, n_out], 1e-4, (8, n_out), device),
                relu: Relu::new(),
                mask: shape.mask,
            }),
            MaskModelKind::Conv => MaskModel::Conv(ConvMask { trunk: ConvTrunk::Pad(1), out: conv3_out(c_in, c, device), mask: shape.mask }),
            MaskModelKind::Convatt | MaskModelKind::Smallconvatt => {
                let block = if *self == MaskModelKind::Convatt { ConvAttBlock::wide(c_in, 8, device) } else { ConvAttBlock::small(c_in, 8, device) };
                MaskModel::Conv(ConvMask { trunk: ConvTrunk::Att(block), out: output_conv(8, c, device), mask: shape.mask })
            }
            MaskModelKind::Convnet => {
                // Halve until at most the mask resolution, doubling width.
                let (mut blocks, mut dims_in, mut dims, mut hh, mut ww) = (Vec::new(), c_in, 8, sh, sw);
                while hh > h || ww > w {
                    blocks.push(ResidualBlock::new(dims_in, dims, 2, device));
                    hh = hh.div_ceil(2);
                    ww = ww.div_ceil(2);
                    dims_in = dims;
                    dims *= 2;
                }
                blocks.push(ResidualBlock::new(dims_in, dims, 1, device));
                MaskModel::Conv(ConvMask { trunk: ConvTrunk::Blocks(blocks), out: output_conv(dims, c, device), mask: shape.mask })
            }
            MaskModelKind::Unet => {
                if sh % 8 != 0 || sw % 8 != 0 {
                    return Err(Error::config(
                        "dynamic-mask",
                        "unet",
                        format!("needs server inputs whose sides are multiples of 8, got {sh}x{sw} (use --dynamic-h/--dynamic-w)"),
                    ));
                }
                MaskModel::Conv(ConvMask {
                    trunk: ConvTrunk::Unet(MiniUNet::new(c_in, device)),
                    out: output_conv(8 + c_in, c, device),
                    mask: shape.mask,
                })
            }
            MaskModelKind::Att => MaskModel::Att(AttentionMask {
                query: xavier([c_in, c_in], 1.0, (c_in, c_in), device),
                key: xavier([c_in, c_in], 1.0, (c_in, c_in), device),
                value: xavier([c, c_in], 1.0, (c_in, c), device),
                gamma: Param::from_tensor(Tensor::zeros([1], device)),
                mask: shape.mask,
            }),
        })
    }
}

/// The `conv` model's single 3×3 layer (no bias), near zero at start.
fn conv3_out(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    burn::nn::conv::Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_bias(false)
        .with_initializer(Initializer::XavierNormal { gain: 1e-3 })
        .init(device)
}

/// Resizes `[B, c, H', W']` to the mask grid as the reference: adaptive
/// average pooling when larger on both axes, else PyTorch's nearest rule.
fn to_grid(x: Tensor<4>, [_, h, w]: [usize; 3]) -> Tensor<4> {
    let [_, _, hh, ww] = x.dims();
    if hh == h && ww == w {
        x
    } else if hh > h && ww > w {
        adaptive_avg_pool2d(x, [h, w])
    } else {
        let device = x.device();
        let index = |n_out: usize, n_in: usize| {
            let idx: Vec<i64> = (0..n_out).map(|d| nearest_source_index(d, n_in, n_out) as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(idx, [n_out]), &device)
        };
        x.select(2, index(h, hh)).select(3, index(w, ww))
    }
}

impl MaskModel {
    /// Logits per cell (before the static bias).
    ///
    /// # Shapes
    /// - `server` `[B, C, sh, sw]` → `[B, c, h, w]`
    pub fn forward(&self, server: Tensor<4>) -> Tensor<4> {
        let [b, ..] = server.dims();
        match self {
            MaskModel::Linear(m) => {
                let [n_in, _] = m.weight.val().dims();
                let out = server.reshape([b, n_in]).matmul(m.weight.val()); // [B, cells]
                let [c, h, w] = m.mask;
                (out * m.gamma.val().reshape([1, 1])).reshape([b, c, h, w])
            }
            MaskModel::Mlp(m) => {
                let [n_in, _] = m.w1.val().dims();
                let hidden = m.relu.forward(server.reshape([b, n_in]).matmul(m.w1.val()) + m.b1.val().reshape([1, 8]));
                let [c, h, w] = m.mask;
                hidden.matmul(m.w2.val()).reshape([b, c, h, w]) // [B, c, h, w]
            }
            MaskModel::Conv(m) => {
                let x = match &m.trunk {
                    ConvTrunk::Pad(p) => reflect(server, *p),
                    ConvTrunk::Att(block) => block.forward(server),
                    ConvTrunk::Blocks(blocks) => blocks.iter().fold(server, |x, blk| blk.forward(x)),
                    ConvTrunk::Unet(unet) => unet.forward(server),
                };
                to_grid(m.out.forward(x), m.mask)
            }
            MaskModel::Att(m) => {
                let [_, c_in, sh, sw] = server.dims();
                let x = server.reshape([b, c_in, sh * sw]); // [B, C, N]
                let f = m.query.val().unsqueeze::<3>().matmul(x.clone()); // [B, C, N]
                let g = m.key.val().unsqueeze::<3>().matmul(x.clone()); // [B, C, N]
                let v = m.value.val().unsqueeze::<3>().matmul(x); // [B, c, N]
                let beta = softmax(f.swap_dims(1, 2).matmul(g), 1); // [B, N, N], softmax over dim 1 as the reference
                let out = v.matmul(beta) * m.gamma.val().reshape([1, 1, 1]); // [B, c, N]
                let c = m.mask[0];
                to_grid(out.reshape([b, c, sh, sw]), m.mask)
            }
        }
    }

    /// The mask shape `[c, h, w]` the model produces.
    pub fn mask_shape(&self) -> [usize; 3] {
        match self {
            MaskModel::Linear(m) => m.mask,
            MaskModel::Mlp(m) => m.mask,
            MaskModel::Conv(m) => m.mask,
            MaskModel::Att(m) => m.mask,
        }
    }
}
