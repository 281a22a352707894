//! LeNet5 as in the paper's MNIST / Fashion-MNIST experiments.
//!
//! conv 20 k5 → ReLU → max-pool 2 → conv 50 k5 → ReLU → max-pool 2 →
//! fc 500 → ReLU → fc classes (431,080 parameters for 10 classes).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;

use crate::kernels::{ConvSpec, conv_relu_pool};

/// Settings of [`LeNet5`].
#[derive(Config, Debug)]
pub struct LeNet5Config {
    /// Input channels.
    #[config(default = 1)]
    pub channels: usize,
    /// Number of classes.
    #[config(default = 10)]
    pub n_classes: usize,
}

/// The network.
#[derive(Module, Debug)]
pub struct LeNet5 {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    relu: Relu,
}

impl LeNet5Config {
    /// Builds the network with PyTorch's default initialisation scheme.
    pub fn init(&self, device: &Device) -> LeNet5 {
        LeNet5 {
            conv1: Conv2dConfig::new([self.channels, 20], [5, 5]).init(device),
            conv2: Conv2dConfig::new([20, 50], [5, 5]).init(device),
            fc1: LinearConfig::new(4 * 4 * 50, 500).init(device),
            fc2: LinearConfig::new(500, self.n_classes).init(device),
            relu: Relu::new(),
        }
    }
}

impl LeNet5 {
    /// # Shapes
    /// - input `[batch, channels, 28, 28]`
    /// - output `[batch, n_classes]` (logits)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [batch, _, _, _] = x.dims();
        // Convolution blocks run channels-last (see `kernels`).
        let valid = ConvSpec { stride: [1, 1], padding: [0, 0] };
        let block = |conv: &Conv2d, x| {
            let bias = conv.bias.as_ref().expect("lenet5 convolutions have a bias").val();
            conv_relu_pool(x, conv.weight.val(), bias, valid, 2)
        };
        let x = x.permute([0, 2, 3, 1]); // [b, 28, 28, c]
        let x = block(&self.conv1, x); // [b, 12, 12, 20]
        let x = block(&self.conv2, x); // [b, 4, 4, 50]
        // Flatten in PyTorch's channels-first order, so weights are interchangeable.
        let x = x.permute([0, 3, 1, 2]).reshape([batch, 4 * 4 * 50]); // [b, 800]
        let x = self.relu.forward(self.fc1.forward(x)); // [b, 500]
        self.fc2.forward(x) // [b, n_classes]
    }
}
