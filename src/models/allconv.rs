//! The all-convolutional network of the paper's remote-sensing experiment
//! (35×35 inputs with 36 bands, 13 classes), exactly as the authors' code.
//!
//! Every convolution but the last is preceded by reflection padding of one
//! pixel (`nn.ReflectionPad2d(1)`) and followed by a leaky ReLU (slope
//! 0.01); the padding comes before the 1×1 convolutions too, where it does
//! not keep the size but grows the map by 2:
//!
//! | layer | kernel, stride | channels | map (35×35 input) |
//! |---|---|---|---|
//! | conv1 | 3×3, 2 | C → 64 | 37 → 18 |
//! | conv12 | 1×1 | 64 → 64 | 20 → 20 |
//! | conv2 | 3×3, 2 | 64 → 128 | 22 → 10 |
//! | conv22 | 1×1 | 128 → 128 | 12 → 12 |
//! | conv3 | 3×3, 2 | 128 → 256 | 14 → 6 |
//! | conv32 | 1×1 | 256 → 512 | 8 → 8 |
//! | convo | 1×1, no padding, no activation | 512 → classes | 8 → 8 |
//!
//! then the average over the map gives the logits: 548,749 parameters for
//! 36 bands and 13 classes. Convolutions use PyTorch's default
//! initialisation (Burn's default is the same), as the authors did.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;
use burn::tensor::ops::PadMode;

use crate::kernels::conv2d_module;

/// Slope of the leaky ReLUs (PyTorch's default, which the authors use).
const SLOPE: f64 = 0.01;

/// Settings of [`AllConv`].
#[derive(Config, Debug)]
pub struct AllConvConfig {
    /// Input channels (bands).
    #[config(default = 36)]
    pub channels: usize,
    /// Number of classes.
    #[config(default = 13)]
    pub n_classes: usize,
}

/// The network (field names are the authors').
#[derive(Module, Debug)]
pub struct AllConv {
    conv1: Conv2d,
    conv12: Conv2d,
    conv2: Conv2d,
    conv22: Conv2d,
    conv3: Conv2d,
    conv32: Conv2d,
    convo: Conv2d,
}

/// `nn.ReflectionPad2d(1)`: one pixel on every side, mirrored without
/// repeating the edge (row -1 is row 1), as PyTorch. Needs maps of at least
/// 2×2.
///
/// # Shapes
/// - input `[b, c, h, w]`
/// - output `[b, c, h + 2, w + 2]`
pub fn reflect_pad1(x: Tensor<4>) -> Tensor<4> {
    x.pad([(1, 1), (1, 1)], PadMode::Reflect)
}

impl AllConvConfig {
    /// Builds the network.
    pub fn init(&self, device: &Device) -> AllConv {
        let conv = |c_in: usize, c_out: usize, k: usize, stride: usize| {
            Conv2dConfig::new([c_in, c_out], [k, k]).with_stride([stride, stride]).init(device)
        };
        AllConv {
            conv1: conv(self.channels, 64, 3, 2),
            conv12: conv(64, 64, 1, 1),
            conv2: conv(64, 128, 3, 2),
            conv22: conv(128, 128, 1, 1),
            conv3: conv(128, 256, 3, 2),
            conv32: conv(256, 512, 1, 1),
            convo: conv(512, self.n_classes, 1, 1),
        }
    }
}

impl AllConv {
    /// # Shapes
    /// - input `[batch, channels, H, W]` (35×35 in the paper)
    /// - output `[batch, n_classes]` (logits)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let layer = |conv: &Conv2d, x: Tensor<4>| leaky_relu(conv2d_module(conv, reflect_pad1(x)), SLOPE);
        let x = layer(&self.conv1, x); // [b, 64, 18, 18]
        let x = layer(&self.conv12, x); // [b, 64, 20, 20]
        let x = layer(&self.conv2, x); // [b, 128, 10, 10]
        let x = layer(&self.conv22, x); // [b, 128, 12, 12]
        let x = layer(&self.conv3, x); // [b, 256, 6, 6]
        let x = layer(&self.conv32, x); // [b, 512, 8, 8]
        let x = conv2d_module(&self.convo, x); // [b, n_classes, 8, 8]
        let [batch, classes, _, _] = x.dims();
        // Adaptive average pooling to 1×1 is the mean over the map.
        x.mean_dim(3).mean_dim(2).reshape([batch, classes]) // [b, n_classes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::trainable_parameters;

    #[test]
    fn parameter_count_is_the_authors() {
        // 20,800 + 4,160 + 73,856 + 16,512 + 295,168 + 131,584 + 6,669.
        let net = AllConvConfig::new().init(&Device::flex());
        assert_eq!(trainable_parameters(&net), 548_749);
    }

    #[test]
    fn output_shape_on_remote_inputs() {
        let device = Device::flex();
        let net = AllConvConfig::new().init(&device);
        let x = Tensor::random([2, 36, 35, 35], burn::tensor::Distribution::Default, &device);
        assert_eq!(net.forward(x).dims(), [2, 13]);
    }

    #[test]
    fn reflection_padding_mirrors_without_the_edge() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new((1..=6).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 2, 3]), &device);
        // [[1, 2, 3], [4, 5, 6]] as torch.nn.ReflectionPad2d(1) pads it.
        #[rustfmt::skip]
        let expected = [
            5.0, 4.0, 5.0, 6.0, 5.0,
            2.0, 1.0, 2.0, 3.0, 2.0,
            5.0, 4.0, 5.0, 6.0, 5.0,
            2.0, 1.0, 2.0, 3.0, 2.0,
        ];
        let y = reflect_pad1(x);
        assert_eq!(y.dims(), [1, 1, 4, 5]);
        assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), expected);
    }

    #[test]
    fn reflection_padding_passes_gradients_back() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::ones([1, 1, 2, 3], &device).require_grad();
        let grads = reflect_pad1(x.clone()).sum().backward();
        // How often each value appears in the padded map: with 2 rows each
        // row is copied once; with 3 columns the middle one is copied to
        // both sides and the outer ones not at all.
        let g: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(g, [2.0, 6.0, 2.0, 2.0, 6.0, 2.0]);
    }
}
