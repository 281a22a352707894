//! ResNet20 as in the paper's CIFAR-10, SVHN and Galaxy10 experiments.
//!
//! The common CIFAR ResNet of He et al. (2016, section 4.2) in the version
//! of akamaster/pytorch_resnet_cifar10, which the paper's code uses:
//!
//! - conv 3×3, 16 channels (no bias) → batch norm → ReLU;
//! - three stages of three [`BasicBlock`]s with 16, 32 and 64 channels; the
//!   first block of stages 2 and 3 has stride 2;
//! - global average pooling → fully connected → classes.
//!
//! Shortcuts are "option A": parameter-free. Where a block changes the map
//! size or the channel count, the shortcut takes every second pixel
//! (`x[:, :, ::2, ::2]`) and pads the channels with zeros on both sides.
//! 269,722 parameters for 10 classes (batch-norm scale and shift counted,
//! running statistics not), the count akamaster's `test()` prints. (The
//! often-quoted 272,474 is Keras's ResNet20 v1, whose projection shortcuts
//! and convolution biases add parameters.)
//!
//! Tensor names follow akamaster's `state_dict` (`conv1.weight`,
//! `bn1.running_mean`, `layer1.0.conv1.weight`, `linear.weight`, see
//! [`crate::models::weights`]).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Slice;
use burn::tensor::activation::relu;
use burn::tensor::ops::PadMode;

use crate::kernels::conv2d_module;

/// Settings of [`ResNet20`].
#[derive(Config, Debug)]
pub struct ResNet20Config {
    /// Input channels.
    #[config(default = 3)]
    pub channels: usize,
    /// Number of classes.
    #[config(default = 10)]
    pub n_classes: usize,
    /// Stride of the first block of stage 1: 1 (CIFAR-10, SVHN) or 2
    /// (Galaxy10, whose 69×69 images the paper's table gives "ResNet20
    /// (first stage stride 2)").
    ///
    /// The authors' code sets `net.layer1[0].stride = 2` after building the
    /// network, but akamaster's `BasicBlock` reads its stride only in
    /// `__init__`, so there the assignment changes nothing and their
    /// Galaxy10 network runs stage 1 at full size. This crate does what the
    /// paper says: the first convolution of stage 1 has stride 2 and that
    /// block's option-A shortcut subsamples to match.
    #[config(default = 1)]
    pub first_stride: usize,
}

/// conv 3×3 (stride) → BN → ReLU → conv 3×3 → BN, plus the shortcut, → ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    /// Stride of `conv1`; the shortcut subsamples by the same step.
    stride: usize,
    /// Zero channels the shortcut adds on each side (`(out - in) / 2`).
    pad_channels: usize,
}

/// The network.
#[derive(Module, Debug)]
pub struct ResNet20 {
    conv1: Conv2d,
    bn1: BatchNorm,
    layer1: Vec<BasicBlock>,
    layer2: Vec<BasicBlock>,
    layer3: Vec<BasicBlock>,
    linear: Linear,
}

/// He (Kaiming) normal initialisation with PyTorch's defaults
/// (`init.kaiming_normal_`: gain √2 for ReLU, fan in), as akamaster's
/// `_weights_init` applies to every convolution and linear weight.
fn kaiming_normal() -> Initializer {
    Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: false }
}

/// A 3×3 convolution with padding 1 and no bias (batch norm follows).
fn conv3x3(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .with_initializer(kaiming_normal())
        .init(device)
}

/// `bn.forward(x)`, with the running variance updated as PyTorch does.
///
/// In training, Burn's `BatchNorm` moves its running variance towards the
/// batch's biased variance (the mean of squared deviations), PyTorch's
/// `BatchNorm2d` towards the unbiased one (times `n / (n - 1)`, `n` the
/// values per channel: batch × height × width). The normalisation itself
/// uses the biased variance in both. Found by the PyTorch golden test
/// (`tests/it/golden.rs`): with batch 2 on 8×8 maps the running variances
/// of stage 3 differed by 0.08%; on CIFAR batches the gap is small but
/// systematic. Everything else is Burn's `forward`.
fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let [b, _, h, w] = x.dims();
    let n = b * h * w;
    if !(x.device().is_autodiff() && bn.training.is_enabled()) || n < 2 {
        return bn.forward(x);
    }
    let device = x.device();
    let result = burn::tensor::module::batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let m = bn.momentum;
    let unbiased = result.variance.detach().mul_scalar(n as f64 / (n - 1) as f64);
    let mean = bn.running_mean.value_sync().to_device(&device).mul_scalar(1.0 - m).add(result.mean.detach().mul_scalar(m));
    let var = bn.running_var.value_sync().to_device(&device).mul_scalar(1.0 - m).add(unbiased.mul_scalar(m));
    bn.running_mean.update(mean.detach());
    bn.running_var.update(var.detach());
    result.output
}

impl BasicBlock {
    fn new(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Self {
        assert!(c_out >= c_in && (c_out - c_in) % 2 == 0, "option-A shortcuts pad channels evenly");
        BasicBlock {
            conv1: conv3x3(c_in, c_out, stride, device),
            bn1: BatchNormConfig::new(c_out).init(device),
            conv2: conv3x3(c_out, c_out, 1, device),
            bn2: BatchNormConfig::new(c_out).init(device),
            stride,
            pad_channels: (c_out - c_in) / 2,
        }
    }

    /// # Shapes
    /// - input `[batch, c_in, h, w]`
    /// - output `[batch, c_out, ceil(h / stride), ceil(w / stride)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu(batch_norm(&self.bn1, conv2d_module(&self.conv1, x.clone()))); // [b, c_out, h', w']
        let y = batch_norm(&self.bn2, conv2d_module(&self.conv2, y)); // [b, c_out, h', w']
        relu(y + self.shortcut(x))
    }

    /// The option-A shortcut: identity, or every `stride`-th pixel with
    /// `pad_channels` zero channels on each side. A 3×3 convolution with
    /// padding 1 and stride 2 maps n pixels to ceil(n / 2), and so does
    /// taking every second pixel, so odd sizes (Galaxy10's 69) match too.
    ///
    /// # Shapes
    /// - input `[batch, c_in, h, w]`
    /// - output `[batch, c_in + 2 · pad_channels, ceil(h / stride), ceil(w / stride)]`
    pub fn shortcut(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.stride == 1 {
            x
        } else {
            let step = Slice::new(0, None, self.stride as isize);
            x.slice([Slice::from(..), Slice::from(..), step, step]) // [b, c_in, h', w']
        };
        if self.pad_channels == 0 {
            return x;
        }
        let p = self.pad_channels;
        x.pad([(0, 0), (p, p), (0, 0), (0, 0)], PadMode::Constant(0.0)) // [b, c_out, h', w']
    }
}

impl ResNet20Config {
    /// Builds the network with akamaster's initialisation: Kaiming normal
    /// convolution and linear weights, batch norm scale 1 and shift 0, the
    /// linear bias PyTorch's default U(±1/√64).
    pub fn init(&self, device: &Device) -> ResNet20 {
        assert!(self.first_stride >= 1, "first_stride must be at least 1");
        let stage = |c_in: usize, c_out: usize, stride: usize| -> Vec<BasicBlock> {
            (0..3)
                .map(|i| if i == 0 { BasicBlock::new(c_in, c_out, stride, device) } else { BasicBlock::new(c_out, c_out, 1, device) })
                .collect()
        };
        // Burn's default linear initialiser is PyTorch's default (uniform,
        // bound 1/√fan_in) for the bias; only the weight is Kaiming normal.
        let mut linear = LinearConfig::new(64, self.n_classes).init(device);
        linear.weight = kaiming_normal().init_with([64, self.n_classes], Some(64), Some(self.n_classes), device);
        ResNet20 {
            conv1: conv3x3(self.channels, 16, 1, device),
            bn1: BatchNormConfig::new(16).init(device),
            layer1: stage(16, 16, self.first_stride),
            layer2: stage(16, 32, 2),
            layer3: stage(32, 64, 2),
            linear,
        }
    }
}

impl ResNet20 {
    /// # Shapes
    /// - input `[batch, channels, H, W]` (any size: 32×32 CIFAR-10 and
    ///   SVHN, 69×69 Galaxy10)
    /// - output `[batch, n_classes]` (logits)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(batch_norm(&self.bn1, conv2d_module(&self.conv1, x))); // [b, 16, H, W]
        let blocks = self.layer1.iter().chain(&self.layer2).chain(&self.layer3);
        // [b, 16, H/s, W/s] → [b, 32, H/2s, W/2s] → [b, 64, H/4s, W/4s] (rounded up)
        let x = blocks.fold(x, |x, block| block.forward(x));
        let [batch, channels, _, _] = x.dims();
        // Average over whatever map remains (akamaster pools with a window
        // the size of the map, which is the same on square maps).
        let x = x.mean_dim(3).mean_dim(2).reshape([batch, channels]); // [b, 64]
        self.linear.forward(x) // [b, n_classes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::trainable_parameters;

    #[test]
    fn parameter_count_is_akamasters() {
        let net = ResNet20Config::new().init(&Device::flex());
        // Convolutions 432 + 6·2,304 + (4,608 + 5·9,216) + (18,432 + 5·36,864)
        // = 267,696, linear 650, batch norm 2·688.
        assert_eq!(trainable_parameters(&net), 269_722);
        // Burn's count adds the 2·688 running statistics.
        assert_eq!(net.num_params(), 269_722 + 1_376);
    }

    #[test]
    fn output_shapes_on_cifar_and_galaxy10_inputs() {
        let device = Device::flex();
        let net = ResNet20Config::new().init(&device);
        let y = net.forward(Tensor::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device));
        assert_eq!(y.dims(), [2, 10]);
        // Galaxy10: 69 → 35 → 18 → 9 with the strided first stage.
        let net = ResNet20Config::new().with_first_stride(2).init(&device);
        let x = Tensor::random([2, 3, 69, 69], burn::tensor::Distribution::Default, &device);
        let stem = relu(net.bn1.forward(conv2d_module(&net.conv1, x.clone())));
        let after1 = net.layer1.iter().fold(stem, |x, b| b.forward(x));
        assert_eq!(after1.dims(), [2, 16, 35, 35]);
        let after3 = net.layer2.iter().chain(&net.layer3).fold(after1, |x, b| b.forward(x));
        assert_eq!(after3.dims(), [2, 64, 9, 9]);
        assert_eq!(net.forward(x).dims(), [2, 10]);
    }

    #[test]
    fn option_a_shortcut_subsamples_and_pads_channels() {
        let device = Device::flex();
        // 2 channels of 3×3 (odd, as Galaxy10's maps) → 6 channels of 2×2.
        let block = BasicBlock::new(2, 6, 2, &device);
        let values: Vec<f32> = (0..18).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [1, 2, 3, 3]), &device);
        let y = block.shortcut(x);
        assert_eq!(y.dims(), [1, 6, 2, 2]);
        let y: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        // pad_channels = (6 - 2) / 2 = 2 zero channels on each side; the
        // input's channels at rows and columns 0 and 2.
        let zeros = [0.0f32; 8];
        let expected = [&zeros[..], &[0.0, 2.0, 6.0, 8.0], &[9.0, 11.0, 15.0, 17.0], &zeros[..]].concat();
        assert_eq!(y, expected);
        // The residual branch lands on the same shape.
        let x = Tensor::random([1, 2, 3, 3], burn::tensor::Distribution::Default, &device);
        assert_eq!(block.forward(x).dims(), [1, 6, 2, 2]);
        // Same channels, stride 1: the identity.
        let block = BasicBlock::new(4, 4, 1, &device);
        let x = Tensor::<4>::random([1, 4, 5, 5], burn::tensor::Distribution::Default, &device);
        assert_eq!(block.shortcut(x.clone()).into_data(), x.into_data());
    }
}
