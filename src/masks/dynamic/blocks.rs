//! Convolutional building blocks of the mask models (the reference's
//! `ConvAttBlock`, `SmallConvAttBlock`, `GlobalAttention`, `Block`,
//! `MiniUNet`), initialised as the reference: convolutions Kaiming-normal
//! (ReLU gain) with zero bias, batch norms with weight 1 and bias 0.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d, Relu};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::{adaptive_avg_pool2d, max_pool2d};
use burn::tensor::ops::{MaxPoolOptions, PadMode};

/// PyTorch's `kaiming_normal_(nonlinearity="relu")`: gain √2, fan-in.
pub fn kaiming_relu() -> Initializer {
    Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: false }
}

/// A convolution initialised as the reference's `init_weights`; `bias`
/// starts at zero.
pub fn conv(c_in: usize, c_out: usize, kernel: usize, stride: usize, dilation: usize, bias: bool, device: &Device) -> Conv2d {
    let mut c = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_dilation([dilation, dilation])
        .with_padding(PaddingConfig2d::Valid)
        .with_bias(bias)
        .with_initializer(kaiming_relu())
        .init(device);
    if let Some(b) = &c.bias {
        c.bias = Some(Param::from_tensor(b.val().zeros_like()));
    }
    c
}

/// The output convolution (1×1, no bias) of a mask model: Xavier-normal
/// with gain 1e-3, so the model starts near zero ("send everything").
pub fn output_conv(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [1, 1])
        .with_bias(false)
        .with_initializer(Initializer::XavierNormal { gain: 1e-3 })
        .init(device)
}

/// Reflection padding by `p` on both spatial axes.
pub fn reflect(x: Tensor<4>, p: usize) -> Tensor<4> {
    x.pad((p, p, p, p), PadMode::Reflect)
}

/// `sigmoid(conv1×1(avgpool(a + b)))` weights `a` against `b`.
#[derive(Module, Debug)]
pub struct GlobalAttention {
    conv: Conv2d,
}

impl GlobalAttention {
    /// A gate over `dims` channels.
    pub fn new(dims: usize, device: &Device) -> Self {
        GlobalAttention { conv: conv(dims, dims, 1, 1, 1, true, device) }
    }

    /// # Shapes
    /// - `a`, `b` `[B, D, H, W]` → `[B, D, H, W]`
    pub fn forward(&self, a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
        let att = sigmoid(self.conv.forward(adaptive_avg_pool2d(a.clone() + b.clone(), [1, 1]))); // [B, D, 1, 1]
        a * att.clone() + b * att.neg().add_scalar(1.0)
    }
}

/// Conv (+ padding) → batch norm → ReLU.
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    conv: Conv2d,
    bn: BatchNorm,
    pad: usize,
    relu: Relu,
}

impl ConvBnRelu {
    /// `kernel`×`kernel` convolution, reflection padding `pad`.
    pub fn new(c_in: usize, c_out: usize, kernel: usize, dilation: usize, pad: usize, device: &Device) -> Self {
        ConvBnRelu {
            conv: conv(c_in, c_out, kernel, 1, dilation, true, device),
            bn: BatchNormConfig::new(c_out).init(device),
            pad,
            relu: Relu::new(),
        }
    }

    /// # Shapes
    /// - `[B, Cin, H, W]` → `[B, Cout, H, W]` (padding keeps the size)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.pad > 0 { reflect(x, self.pad) } else { x };
        self.relu.forward(self.bn.forward(self.conv.forward(x)))
    }
}

/// Two convolution branches merged by a [`GlobalAttention`] gate:
/// `convatt` uses 3×3 and dilated 3×3, `smallconvatt` 1×1 and 3×3.
#[derive(Module, Debug)]
pub struct ConvAttBlock {
    a: ConvBnRelu,
    b: ConvBnRelu,
    att: GlobalAttention,
}

impl ConvAttBlock {
    /// The `convatt` block: 3×3 (pad 1) and 3×3 dilated by 2 (pad 2).
    pub fn wide(c_in: usize, dims: usize, device: &Device) -> Self {
        ConvAttBlock {
            a: ConvBnRelu::new(c_in, dims, 3, 1, 1, device),
            b: ConvBnRelu::new(c_in, dims, 3, 2, 2, device),
            att: GlobalAttention::new(dims, device),
        }
    }

    /// The `smallconvatt` block: 1×1 and 3×3 (pad 1).
    pub fn small(c_in: usize, dims: usize, device: &Device) -> Self {
        ConvAttBlock {
            a: ConvBnRelu::new(c_in, dims, 1, 1, 0, device),
            b: ConvBnRelu::new(c_in, dims, 3, 1, 1, device),
            att: GlobalAttention::new(dims, device),
        }
    }

    /// # Shapes
    /// - `[B, Cin, H, W]` → `[B, dims, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.att.forward(self.a.forward(x.clone()), self.b.forward(x))
    }
}

/// The reference's residual `Block` (strided, with a 1×1 downsampling
/// shortcut when the width changes).
#[derive(Module, Debug)]
pub struct ResidualBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    down: Option<(Conv2d, BatchNorm)>,
    relu: Relu,
}

impl ResidualBlock {
    /// `c_in` → `c_out` channels, the first convolution with `stride`.
    pub fn new(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Self {
        let down = (c_in != c_out)
            .then(|| (conv(c_in, c_out, 1, stride, 1, false, device), BatchNormConfig::new(c_out).init(device)));
        ResidualBlock {
            conv1: conv(c_in, c_out, 3, stride, 1, false, device),
            bn1: BatchNormConfig::new(c_out).init(device),
            conv2: conv(c_out, c_out, 3, 1, 1, false, device),
            bn2: BatchNormConfig::new(c_out).init(device),
            down,
            relu: Relu::new(),
        }
    }

    /// # Shapes
    /// - `[B, Cin, H, W]` → `[B, Cout, H', W']` (H' = ⌈H / stride⌉)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = self.relu.forward(self.bn1.forward(self.conv1.forward(reflect(x.clone(), 1))));
        let out = self.bn2.forward(self.conv2.forward(reflect(out, 1)));
        let identity = match &self.down {
            Some((c, bn)) => bn.forward(c.forward(x)),
            None => x,
        };
        self.relu.forward(out + identity)
    }
}

/// Two reflection-padded 3×3 convolutions with ReLU (a U-Net stage).
#[derive(Module, Debug)]
pub struct UStage {
    conv1: Conv2d,
    conv2: Conv2d,
    relu: Relu,
}

impl UStage {
    fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        UStage { conv1: conv(c_in, c_out, 3, 1, 1, true, device), conv2: conv(c_out, c_out, 3, 1, 1, true, device), relu: Relu::new() }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.relu.forward(self.conv1.forward(reflect(x, 1)));
        self.relu.forward(self.conv2.forward(reflect(x, 1)))
    }
}

/// 1×1 convolution to 4× the channels, ReLU, pixel shuffle by 2: the
/// reference's learned upscaling.
#[derive(Module, Debug)]
pub struct UpShuffle {
    conv: Conv2d,
    relu: Relu,
}

impl UpShuffle {
    fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        UpShuffle { conv: conv(c_in, 4 * c_out, 1, 1, 1, true, device), relu: Relu::new() }
    }

    /// # Shapes
    /// - `[B, Cin, H, W]` → `[B, Cout, 2H, 2W]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.relu.forward(self.conv.forward(x)); // [B, 4C, H, W]
        let [b, c4, h, w] = y.dims();
        let c = c4 / 4;
        // PixelShuffle(2): channel (c, i, j) goes to pixel (2h + i, 2w + j).
        y.reshape([b, c, 2, 2, h, w]).permute([0, 1, 4, 2, 5, 3]).reshape([b, c, 2 * h, 2 * w])
    }
}

/// The reference's `MiniUNet` (8/16/32/64 channels, three 2× poolings),
/// without its weight normalisation; input sides must be multiples of 8.
/// Its output concatenates the last stage (8 channels) with the input.
#[derive(Module, Debug)]
pub struct MiniUNet {
    down1: UStage,
    down2: UStage,
    down3: UStage,
    across: UStage,
    up_scale1: UpShuffle,
    up1: UStage,
    up_scale2: UpShuffle,
    up2: UStage,
    up_scale3: UpShuffle,
    up3: UStage,
}

impl MiniUNet {
    /// A U-Net over `c_in` input channels.
    pub fn new(c_in: usize, device: &Device) -> Self {
        MiniUNet {
            down1: UStage::new(c_in, 8, device),
            down2: UStage::new(8, 16, device),
            down3: UStage::new(16, 32, device),
            across: UStage::new(32, 64, device),
            up_scale1: UpShuffle::new(64, 32, device),
            up1: UStage::new(64, 32, device),
            up_scale2: UpShuffle::new(32, 16, device),
            up2: UStage::new(32, 16, device),
            up_scale3: UpShuffle::new(16, 8, device),
            up3: UStage::new(16, 8, device),
        }
    }

    /// # Shapes
    /// - `[B, C, H, W]` → `[B, 8 + C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let pool = |t: Tensor<4>| max_pool2d(t, MaxPoolOptions::new([2, 2]));
        let d1 = self.down1.forward(x.clone()); // [B, 8, H, W]
        let d2 = self.down2.forward(pool(d1.clone())); // [B, 16, H/2, W/2]
        let d3 = self.down3.forward(pool(d2.clone())); // [B, 32, H/4, W/4]
        let a = self.across.forward(pool(d3.clone())); // [B, 64, H/8, W/8]
        let u1 = self.up1.forward(Tensor::cat(vec![self.up_scale1.forward(a), d3], 1)); // [B, 32, H/4, W/4]
        let u2 = self.up2.forward(Tensor::cat(vec![self.up_scale2.forward(u1), d2], 1)); // [B, 16, H/2, W/2]
        let u3 = self.up3.forward(Tensor::cat(vec![self.up_scale3.forward(u2), d1], 1)); // [B, 8, H, W]
        Tensor::cat(vec![u3, x], 1)
    }
}
